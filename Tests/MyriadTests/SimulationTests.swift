@_spi(Simulation) import Myriad
import XCTest

/// The deterministic simulation (`Sources/Myriad/Simulation`): the real worker over a scripted
/// backend and scripted peers, a fixed budget of seeds. `myriad simulate` runs it for longer.
final class SimulationTests: XCTestCase {
    func testFixedSeedsRunClean() {
        Simulation.installCrashReport()
        var provoked = 0
        var echoes = 0
        var shortSends = 0
        var noBuffers = 0
        var cancelsMissed = 0
        for seed in UInt64(1)...60 {
            let report = Simulation.run(seed: seed)
            XCTAssertNil(report.failure, "\(report)")
            if report.failure != nil { return }
            provoked += report.provokedCodesSeen
            echoes += report.echoesChecked
            shortSends += report.shortSends
            noBuffers += report.noBufferEnds
            cancelsMissed += report.cancelsThatMissed
        }
        // The runs reached what they exist to reach (else the simulation tests little).
        XCTAssertGreaterThan(provoked, 20)
        XCTAssertGreaterThan(echoes, 500)
        XCTAssertGreaterThan(shortSends, 50)
        XCTAssertGreaterThan(noBuffers, 20)
        XCTAssertGreaterThan(cancelsMissed, 0)
    }

    func testARunReplaysExactly() {
        let first = Simulation.run(seed: 424_242)
        let second = Simulation.run(seed: 424_242)
        XCTAssertEqual(first.description, second.description)
        XCTAssertGreaterThan(first.steps, 100)
    }

    /// The checks can fail: a kernel that loses a completion, or a wait that oversleeps the
    /// worker's deadlines, is caught.
    func testBrokenPromisesAreCaught() {
        for fault in [Simulation.Fault.loseCompletion, .oversleep] {
            let caught = (UInt64(1)...5).filter { Simulation.run(seed: $0, breaking: fault).failure != nil }.count
            XCTAssertEqual(caught, 5, "\(fault)")
        }
    }
}
