import MyriadTestSupport
import Testing
@testable import Myriad

/// How connections are shared out over workers (issue 12, defect 1: the epoll backend with
/// the default maximum did not start whenever the worker count did not divide what the fd
/// limit leaves, e.g. MYRIAD_BACKEND=epoll MYRIAD_WORKERS=3).
@Suite struct CapacityPlanTests {
    static let fileLimits = [1024, 4096, 20_000, 65_536, 1_048_576]

    @Test(arguments: fileLimits)
    func epollDefaultStartsWithAnyWorkerCount(softLimit: Int) throws {
        for workers in 1...16 {
            let plan = try CapacityPlan.epoll(workers: workers, softFileLimit: softLimit, maxConnections: nil)
            let available = softLimit - CapacityPlan.epollReserve(workers: workers)
            #expect(plan.perWorker.count == workers)
            #expect(plan.total == available, "workers \(workers), limit \(softLimit)")
            #expect(plan.perWorker.max()! - plan.perWorker.min()! <= 1)
        }
    }

    @Test(arguments: fileLimits)
    func uringDefaultFillsEveryRing(softLimit: Int) throws {
        for workers in 1...16 {
            let perRing = min(softLimit, maximumFixedFilesPerRing)
            let plan = try CapacityPlan.uring(workers: workers, fixedFilesPerRing: perRing, maxConnections: nil)
            #expect(plan.perWorker == Array(repeating: perRing, count: workers))
        }
    }

    /// Issue 14: a million connections on two workers, as many rings as the fd limit needs.
    @Test func aMillionOnTwoWorkersTakesTwentyFiveRingsEach() throws {
        let plan = try CapacityPlan.uring(workers: 2, fixedFilesPerRing: 20_000, maxConnections: 1_000_000)
        #expect(plan.perWorker == [500_000, 500_000])
        #expect(plan.ringsPerWorker == [Array(repeating: 20_000, count: 25), Array(repeating: 20_000, count: 25)])
        let uneven = try CapacityPlan.uring(workers: 2, fixedFilesPerRing: 20_000, maxConnections: 1_000_001)
        #expect(uneven.perWorker == [500_001, 500_000])
        #expect(uneven.ringCounts == [26, 25])
        #expect(uneven.ringsPerWorker[0].reduce(0, +) == 500_001 && uneven.ringsPerWorker[0].max()! <= 20_000)
    }

    @Test func anExplicitTotalIsSplitExactly() throws {
        let plan = try CapacityPlan.epoll(workers: 3, softFileLimit: 20_000, maxConnections: 10_000)
        #expect(plan.perWorker == [3334, 3333, 3333])
        #expect(plan.total == 10_000)
        let ring = try CapacityPlan.uring(workers: 3, fixedFilesPerRing: 20_000, maxConnections: 60_000)
        #expect(ring.perWorker == [20_000, 20_000, 20_000])
        #expect(ring.ringsPerWorker == [[20_000], [20_000], [20_000]])
        // A total the epoll backend can hold exactly, with workers that do not divide it.
        let available = 20_000 - CapacityPlan.epollReserve(workers: 7)
        #expect(try CapacityPlan.epoll(workers: 7, softFileLimit: 20_000, maxConnections: available).total == available)
    }

    @Test func whatCannotFitIsRefusedWithTheWayOut() {
        #expect(throws: EngineError.self) {
            try CapacityPlan.epoll(workers: 2, softFileLimit: 20_000, maxConnections: 20_000)
        }
        #expect(throws: EngineError.self) {
            try CapacityPlan.uring(workers: 1, fixedFilesPerRing: 1, maxConnections: 16_000)  // 16,000 rings
        }
        do {
            _ = try CapacityPlan.epoll(workers: 4, softFileLimit: 70, maxConnections: nil)
            Issue.record("an fd limit below the engine's own reserve was accepted")
        } catch {
            #expect(error.description.contains("RLIMIT_NOFILE = 70"), "\(error)")
        }
    }
}

extension Integration {
    /// The real engine, epoll backend, default maximum, on worker counts that do not divide
    /// the fd limit's share.
    @Suite struct EpollWorkerCountTests {
        @Test(arguments: [3, 5, 7])
        func epollStartsWithTheDefaultMaximum(workers: Int) throws {
            let server = try TestServer(backend: .epoll, workers: workers)
            defer { server.stop() }
            let client = try RawClient(port: server.port)
            try client.upgrade()
            try client.sendText("fits")
            #expect(try client.readMessage()?.payload == Array("fits".utf8))
        }
    }
}
