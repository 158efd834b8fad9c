import CLibURing
import Glibc
import Logging
import Synchronization

/// A start-up failure, said so that the operator knows what to change.
public struct EngineError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Starts the workers, owns their shared controls, and stops them.
///
/// `start` probes the kernel, sizes every worker's tables, opens one SO_REUSEPORT listener per
/// worker (so bind errors surface before any thread runs) and starts the worker threads;
/// each creates its own ring (SINGLE_ISSUER binds a ring to its creator) and its handler.
public final class Engine<Handler: WebSocketHandler>: @unchecked Sendable {
    public let config: Config
    let logger: Logger
    let makeHandler: @Sendable (Int) -> Handler
    /// The port the listeners are bound to (useful with MYRIAD_PORT=0).
    public private(set) var port: UInt16 = 0
    /// "io_uring" or "epoll".
    public private(set) var backendName = ""
    /// Connections the largest worker can hold (shares differ by at most one).
    public private(set) var connectionsPerWorker = 0
    /// The port the metrics listener is bound to (MYRIAD_METRICS_PORT); nil when it is off.
    public private(set) var metricsPort: UInt16?
    /// What the metrics report besides the counters: each worker's capacity, its budget.
    private var capacityPerWorker: [Int] = []
    private var bufferBudgetBytes = 0
    private var metricsServer: MetricsServer?
    private var controls: [WorkerControl] = []
    private var threads: [pthread_t] = []
    /// `wait` may be called from several threads (a service's join thread, a test's stop):
    /// each worker thread is joined once, and every caller returns once all have exited.
    private let joinLock = Mutex(())
    let shared: EngineShared

    public init(config: Config, logger: Logger, makeHandler: @escaping @Sendable (Int) -> Handler) {
        self.config = config
        self.logger = logger
        self.makeHandler = makeHandler
        let mailboxes = (0..<config.workers).map { index in
            Mailbox(capacityCommands: config.mailboxCapacity, capacityBytes: config.mailboxBytes,
                    waker: WorkerWaker(eventFileDescriptor: eventfd(0, Int32(EFD_CLOEXEC) | Int32(EFD_NONBLOCK)), workerIndex: index))
        }
        shared = EngineShared(mailboxes: mailboxes, maxSubscriptions: config.maxSubscriptions)
    }

    deinit {
        metricsServer?.stop()
        for mailbox in shared.mailboxes where mailbox.waker.eventFileDescriptor >= 0 { close(mailbox.waker.eventFileDescriptor) }
    }

    /// The handle for any thread and async code: send, close, subscribe, publish, complete
    /// deferred upgrades. Valid before `start` (calls return `.engineStopped` until it runs).
    public var handle: EngineHandle { EngineHandle(shared: shared) }

    /// Starts the engine, one named step after another: choose the backend, size every
    /// worker's tables, bind the listeners, make the workers' controls, serve metrics, start
    /// the worker threads and wait until each runs (or one failed, which stops the rest).
    public func start() throws(EngineError) {
        let limit = FileLimit.raiseSoftToHard()
        let backend = try chooseBackend()
        let plan = try planCapacity(backend, softFileLimit: limit.soft)
        connectionsPerWorker = plan.perWorker.max() ?? 0
        let listeners = try openListeners()
        do {
            try makeControls()
            let settings = WorkerSettings(config)
            capacityPerWorker = plan.perWorker
            bufferBudgetBytes = settings.bufferBudgetBytes
            try startMetrics(plan, settings)
            shared.running.store(true, ordering: .releasing)
            startWorkers(backend, plan, settings, listeners)
        } catch {
            for fd in listeners { close(fd) }
            throw error
        }
        try awaitWorkers()
        let layout = plan.ringsPerWorker.isEmpty ? ""
            : ", \(plan.ringCounts.max() ?? 0) ring(s) per worker of up to \(plan.ringsPerWorker.flatMap { $0 }.max() ?? 0) connections"
        logger.info("listening on \(config.host):\(port): \(config.workers) worker(s), backend \(backendName), \(plan.total) connections (\(connectionsPerWorker) per worker\(layout)), \(connectionSlotBytes) bytes per connection slot")
        if let metricsServer {
            metricsServer.start()
            logger.info("metrics on http://\(metricsServer.host):\(metricsServer.port)/metrics")
        }
    }

    /// How many connections each worker (and each of its rings) holds.
    private func planCapacity(_ backend: BackendPlan, softFileLimit: Int) throws(EngineError) -> CapacityPlan {
        switch backend {
        case .uring:
            let perRing = min(softFileLimit, maximumFixedFilesPerRing)
            if let asked = config.fixedFilesPerRing, asked > perRing {
                throw EngineError("MYRIAD_FIXED_FILES_PER_RING=\(asked) is more than a ring's fixed-file table may hold here: "
                                  + "RLIMIT_NOFILE = \(perRing) at registration")
            }
            return try CapacityPlan.uring(workers: config.workers, fixedFilesPerRing: config.fixedFilesPerRing ?? perRing,
                                          maxConnections: config.maxConnections)
        case .epoll:
            return try CapacityPlan.epoll(workers: config.workers, softFileLimit: softFileLimit, maxConnections: config.maxConnections)
        }
    }

    /// One SO_REUSEPORT listener per worker, bound before any thread runs so that a bind error
    /// is the start's error.
    private func openListeners() throws(EngineError) -> [Int32] {
        var listeners: [Int32] = []
        do {
            var port = config.port
            for _ in 0..<config.workers {
                let fd = try Listener.open(host: config.host, port: port, backlog: config.listenBacklog)
                listeners.append(fd)
                if port == 0 { port = Listener.port(of: fd) }
            }
            self.port = port
            return listeners
        } catch {
            for fd in listeners { close(fd) }
            throw EngineError("cannot listen on \(config.host):\(config.port): \(error)")
        }
    }

    private func makeControls() throws(EngineError) {
        for index in 0..<config.workers {
            let waker = shared.mailboxes[index].waker
            guard waker.eventFileDescriptor >= 0 else {
                throw EngineError("eventfd for worker \(index) could not be created (the fd limit?)")
            }
            controls.append(WorkerControl(index: index, waker: waker))
        }
    }

    /// The `/metrics` listener, when MYRIAD_METRICS_PORT is set (it starts serving once the
    /// workers run).
    private func startMetrics(_ plan: CapacityPlan, _ settings: WorkerSettings) throws(EngineError) {
        guard let port = config.metricsPort else { return }
        let boards = controls.map(\.board)
        let shared = self.shared
        let facts = EngineFacts(backend: backendName, capacityPerWorker: plan.perWorker, bufferBudgetBytes: settings.bufferBudgetBytes)
        do {
            metricsServer = try MetricsServer(host: config.metricsHost, port: port) {
                PrometheusText.render(MetricsCatalog.read(boards: boards, shared: shared, facts: facts))
            }
            metricsPort = metricsServer?.port
        } catch {
            throw EngineError("MYRIAD_METRICS_PORT=\(port): cannot serve metrics on \(config.metricsHost):\(port): \(error)")
        }
    }

    /// One thread per worker; each makes its own ring or epoll set (SINGLE_ISSUER binds a ring
    /// to the thread that creates it), its core and its handler, then runs its loop.
    private func startWorkers(_ backend: BackendPlan, _ plan: CapacityPlan, _ settings: WorkerSettings, _ listeners: [Int32]) {
        let shared = self.shared
        for index in 0..<config.workers {
            let control = controls[index]
            let listener = listeners[index]
            let config = self.config
            let logger = self.logger
            let makeHandler = self.makeHandler
            let capacity = UInt32(plan.perWorker[index])
            let thread = spawnThread(name: "myriad-w\(index)") {
                do {
                    let core = try WorkerCore(index: index, settings: settings, capacity: capacity, shared: shared)
                    let eventFD = Waker(fileDescriptor: control.waker.eventFileDescriptor)
                    switch backend {
                    case .uring(let capabilities):
                        let io = try URingBackend(config: config, capabilities: capabilities, listener: listener, waker: eventFD,
                                                  fixedFilesPerRing: plan.ringsPerWorker[index].map { UInt32($0) })
                        io.messageFallback = { target in shared.mailboxes[target].waker.wakeThroughEventFD() }
                        let worker = try Worker(core: core, backend: io, handler: makeHandler(index), control: control, logger: logger)
                        // Other workers may now wake this one with ring messages, and this one them.
                        control.waker.ringFileDescriptor.store(io.waitRing.ring.fileDescriptor, ordering: .releasing)
                        CurrentRingMessenger.set(io)
                        control.phase.store(.running, ordering: .releasing)
                        worker.run()
                        control.waker.ringFileDescriptor.store(-1, ordering: .releasing)
                        CurrentRingMessenger.set(nil)
                    case .epoll:
                        let io = try EpollBackend(config: config, listener: listener, waker: eventFD)
                        let worker = try Worker(core: core, backend: io, handler: makeHandler(index), control: control, logger: logger)
                        control.phase.store(.running, ordering: .releasing)
                        worker.run()
                    }
                    control.phase.store(.exited, ordering: .releasing)
                } catch {
                    control.failure.withLock { $0 = "worker \(index): \(error)" }
                    control.phase.store(.failedToStart, ordering: .releasing)
                    close(listener)
                }
            }
            threads.append(thread)
        }
    }

    /// Waits until every worker runs; if one failed to start, stops the others and says why.
    private func awaitWorkers() throws(EngineError) {
        while controls.contains(where: { $0.phase.load(ordering: .acquiring) == .starting }) { usleep(1000) }
        let failures = controls.compactMap { control in control.failure.withLock { $0 } }
        if !failures.isEmpty {
            shutdown()
            wait()
            throw EngineError("a worker failed to start: " + failures.joined(separator: "; "))
        }
    }

    private enum BackendPlan {
        case uring(URingCapabilities)
        case epoll
    }

    private func chooseBackend() throws(EngineError) -> BackendPlan {
        if config.backend == .epoll {
            backendName = EpollBackend.name
            logger.info("backend: epoll (MYRIAD_BACKEND=epoll)")
            return .epoll
        }
        switch URingBackend.probe(disabled: config.disabledURingFeatures) {
        case .success(let capabilities):
            backendName = URingBackend.name
            logger.info("backend: io_uring (\(capabilities))")
            return .uring(capabilities)
        case .failure(let unavailable):
            if config.backend == .ioUring {
                throw EngineError("MYRIAD_BACKEND=io_uring, but io_uring cannot be used here: \(unavailable.reason)")
            }
            backendName = EpollBackend.name
            logger.warning("backend: epoll, because io_uring cannot be used here: \(unavailable.reason)")
            return .epoll
        }
    }

    /// Asks every worker to stop accepting and close its connections with 1001 (non-blocking).
    public func shutdown() {
        for control in controls {
            control.stopRequested.store(true, ordering: .relaxed)
            control.waker.wakeThroughEventFD()
        }
    }

    /// Waits for every worker thread to exit. The handle refuses work from then on.
    public func wait() {
        // Held while joining: a second caller waits for the first to finish.
        joinLock.withLock { _ in
            for thread in threads { pthread_join(thread, nil) }
            threads.removeAll()
            metricsServer?.stop()
        }
        shared.running.store(false, ordering: .releasing)
    }

    /// Suspends until every worker thread has exited (after `shutdown`), without blocking a
    /// thread of the caller's executor: a helper thread joins the workers.
    public func waitUntilStopped() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let joiner = spawnThread(name: "myriad-join") {
                self.wait()
                continuation.resume()
            }
            pthread_detach(joiner)
        }
    }

    /// Counters summed over every worker.
    public func stats() -> StatsSnapshot {
        controls.reduce(StatsSnapshot()) { $0 + $1.board.snapshot() }
    }

    /// Each worker's counters.
    public func workerStats() -> [StatsSnapshot] { controls.map { $0.board.snapshot() } }

    /// Every metric family with its value now: what `/metrics` serves and `MyriadMetrics`
    /// exports (reads the published counters; any thread).
    public func metrics(includeProcess: Bool = true) -> [MetricFamily] {
        MetricsCatalog.read(boards: controls.map(\.board), shared: shared,
                            facts: EngineFacts(backend: backendName, capacityPerWorker: capacityPerWorker, bufferBudgetBytes: bufferBudgetBytes),
                            includeProcess: includeProcess)
    }

    /// The metrics in the Prometheus text format (what `GET /metrics` answers), for an
    /// application that serves them on its own HTTP server.
    public func prometheusText() -> String { PrometheusText.render(metrics()) }

    /// One line: open connections per worker, every non-zero counter, RSS.
    public func statsLine() -> String {
        let perWorker = workerStats()
        let total = perWorker.reduce(StatsSnapshot(), +)
        let open = perWorker.map { String($0[.open]) }.joined(separator: "/")
        let rss = Double(residentBytes()) / 1_048_576
        return "stats open=\(total[.open]) [\(open)] \(total.fields) rss_mib=\(Int(rss.rounded()))"
    }

    /// Runs until SIGTERM or SIGINT: prints a stats line every MYRIAD_STATS_INTERVAL, then
    /// shuts down gracefully and prints the final line. Signals must already be blocked in
    /// every thread (`Engine.blockShutdownSignals()` before `start`).
    public func serveUntilSignalled(print: (String) -> Void) {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        let interval = config.statsIntervalMilliseconds
        while true {
            var timeout = timespec(tv_sec: interval > 0 ? interval / 1000 : 3600, tv_nsec: interval > 0 ? (interval % 1000) * 1_000_000 : 0)
            let signal = sigtimedwait(&signals, nil, &timeout)
            if signal == SIGTERM || signal == SIGINT {
                logger.info("received \(signal == SIGTERM ? "SIGTERM" : "SIGINT"): shutting down (up to \(formatMilliseconds(config.shutdownTimeoutMilliseconds)))")
                break
            }
            if interval > 0 && signal < 0 && errno == EAGAIN { print(statsLine()) }
        }
        shutdown()
        wait()
        print("final " + statsLine())
    }

    /// Blocks SIGTERM and SIGINT in the calling thread (and the threads it starts later) so
    /// `serveUntilSignalled` receives them synchronously; ignores SIGPIPE.
    public static func blockShutdownSignals() {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        signal(SIGPIPE, SIG_IGN)
    }
}

/// Starts a thread running `body`.
package func spawnThread(name: String, _ body: @escaping @Sendable () -> Void) -> pthread_t {
    final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        let name: String
        init(_ body: @escaping @Sendable () -> Void, name: String) { self.body = body; self.name = name }
    }
    let box = Unmanaged.passRetained(Box(body, name: name)).toOpaque()
    var thread = pthread_t()
    let result = pthread_create(&thread, nil, { argument in
        let box = Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue()
        box.body()
        return nil
    }, box)
    precondition(result == 0, "pthread_create failed: \(result)")
    return thread
}
