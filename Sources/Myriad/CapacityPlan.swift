/// How many connections each worker holds (the size of its slab) and, with io_uring, how many
/// rings it needs for them and the size of each ring's fixed-file table. Decided once at
/// start-up from the backend, the worker count, the process fd limit and
/// `MYRIAD_MAX_CONNECTIONS`: the thread count follows the cores, the ring count follows the
/// connections (a table holds at most RLIMIT_NOFILE).
///
/// A total is split as evenly as integers allow (worker shares differ by at most one), so any
/// worker count can hold any total that fits: rounding every share up, as the engine once did,
/// asked for more than the fd limit allows whenever the workers did not divide it.
struct CapacityPlan: Equatable, Sendable {
    /// Connections each worker holds, indexed by worker.
    var perWorker: [Int]
    /// io_uring: the fixed-file table size of each of a worker's rings, indexed by worker
    /// (their sum is the worker's share). Empty for epoll.
    var ringsPerWorker: [[Int]] = []

    var total: Int { perWorker.reduce(0, +) }

    /// Descriptors the epoll backend keeps for itself besides connections: stdio, the
    /// listeners, each worker's epoll and eventfd, and a margin for the application.
    static func epollReserve(workers: Int) -> Int { 64 + 4 * workers }

    /// `total` split over `workers`: the first `total % workers` workers get one more.
    static func split(_ total: Int, over workers: Int) -> [Int] {
        precondition(workers > 0 && total >= workers)
        let base = total / workers
        let extra = total % workers
        return (0..<workers).map { $0 < extra ? base + 1 : base }
    }

    /// The plan for io_uring: a worker's share is spread over as few rings as hold it, each
    /// with at most `fixedFilesPerRing` direct descriptors (RLIMIT_NOFILE at registration, and
    /// the kernel's own cap), shares differing by at most one.
    static func uring(workers: Int, fixedFilesPerRing: Int, maxConnections: Int?) throws(EngineError) -> CapacityPlan {
        precondition(fixedFilesPerRing > 0)
        let total = maxConnections ?? workers * fixedFilesPerRing
        guard total >= workers else {
            throw EngineError("MYRIAD_MAX_CONNECTIONS=\(total) is less than MYRIAD_WORKERS=\(workers): every worker needs a slot")
        }
        var plan = CapacityPlan(perWorker: split(total, over: workers))
        plan.ringsPerWorker = plan.perWorker.map { share in
            let rings = (share + fixedFilesPerRing - 1) / fixedFilesPerRing
            return split(share, over: rings)
        }
        guard plan.ringsPerWorker.allSatisfy({ $0.count <= RingHandle.maxRings }) else {
            throw EngineError("MYRIAD_MAX_CONNECTIONS=\(total) needs more than \(RingHandle.maxRings) rings per worker "
                              + "at \(fixedFilesPerRing) fixed files each: raise the fd limit or add workers")
        }
        return plan
    }

    /// Rings every worker runs (io_uring), most first.
    var ringCounts: [Int] { ringsPerWorker.map(\.count) }

    /// The plan for epoll: every connection is a descriptor of this process, so all workers
    /// together hold what the soft fd limit leaves after `epollReserve`.
    static func epoll(workers: Int, softFileLimit: Int, maxConnections: Int?) throws(EngineError) -> CapacityPlan {
        let available = softFileLimit - epollReserve(workers: workers)
        guard available >= workers else {
            throw EngineError(
                "the epoll backend needs a file descriptor per connection, but RLIMIT_NOFILE = \(softFileLimit) leaves "
                    + "\(max(0, available)) after \(epollReserve(workers: workers)) for the engine itself with \(workers) worker(s): "
                    + "raise the fd limit, use fewer workers, or use the io_uring backend")
        }
        let total = maxConnections ?? available
        guard total <= available else {
            throw EngineError(
                "MYRIAD_MAX_CONNECTIONS=\(total) is more than the epoll backend can hold: every connection is a file "
                    + "descriptor and RLIMIT_NOFILE = \(softFileLimit) leaves \(available) "
                    + "(use the io_uring backend, or raise the fd limit)")
        }
        guard total >= workers else {
            throw EngineError("MYRIAD_MAX_CONNECTIONS=\(total) is less than MYRIAD_WORKERS=\(workers): every worker needs a slot")
        }
        return CapacityPlan(perWorker: split(total, over: workers))
    }
}
