@_spi(Simulation) import Myriad
@_spi(Simulation) @testable import MyriadLoad
import Testing

/// The client role's deterministic simulation (`Sources/MyriadLoad/Simulation`): the load
/// generator's real `ClientWorker` over the engine's scripted kernel and scripted servers, a
/// fixed budget of seeds. `myriad simulate --role client` runs it for longer.
@Suite struct ClientSimulationTests {
    /// 16 seeds run clean and reach what they exist to reach: every kind of failure a server
    /// provokes, echoes, pongs checked by the servers, short sends, -ENOBUFS, cancels that
    /// found their target's completion gone, partial CQ deliveries.
    @Test func fixedSeedsRunClean() {
        var failures: [String: Int] = [:]
        var messages = 0
        var pongs = 0
        var shortSends = 0
        var noBuffers = 0
        var partial = 0
        for seed in UInt64(1)...16 {
            let report = ClientSimulation.run(seed: seed)
            #expect(report.failure == nil, "\(report)")
            if report.failure != nil { return }
            failures.merge(report.failures, uniquingKeysWith: +)
            messages += report.messagesReceived
            pongs += report.pongsChecked
            shortSends += report.shortSends
            noBuffers += report.noBufferEnds
            partial += report.partialDeliveries
        }
        for kind in FailureKind.allCases {
            #expect(failures[kind.rawValue, default: 0] > 0, "no \(kind) failure was provoked in 16 seeds")
        }
        #expect(messages > 10_000)
        #expect(pongs > 500)
        #expect(shortSends > 1000)
        #expect(noBuffers > 100)
        #expect(partial > 100)
    }

    @Test func aRunReplaysExactly() {
        let first = ClientSimulation.run(seed: 424_242)
        let second = ClientSimulation.run(seed: 424_242)
        #expect(first.description == second.description)
        #expect(first.steps > 100)
    }

    /// The checks can fail: a kernel that loses a completion, or a wait that oversleeps the
    /// client's deadlines, is caught in every seed tried.
    @Test(arguments: [Simulation.Fault.loseCompletion, .oversleep])
    func brokenPromisesAreCaught(fault: Simulation.Fault) {
        let caught = (UInt64(1)...5).filter { ClientSimulation.run(seed: $0, breaking: fault).failure != nil }.count
        #expect(caught == 5)
    }
}
