import Logging
import WebSocketCodec

/// One run: builds the worker over the simulated backend, schedules the peers, runs the
/// worker's real loop to its end, and checks.
struct SimulationRun {
    var random: SimulationRandom
    let seed: UInt64
    let peerCount: Int
    let virtualSeconds: Int
    var fault: Simulation.Fault?

    init(random: SimulationRandom, seed: UInt64, peerCount: Int, virtualSeconds: Int) {
        self.random = random
        self.seed = seed
        self.peerCount = peerCount
        self.virtualSeconds = virtualSeconds
    }

    mutating func run() -> Simulation.Report {
        Simulation.currentSeed = seed
        Simulation.currentRole = "server"
        var report = Simulation.Report(seed: seed)
        var failure: String?
        let fail: (String) -> Void = { message in if failure == nil { failure = message } }
        // Small limits, so the slab fills, queues overflow and deadlines come within the run.
        var config = Config()
        config.workers = 1
        config.timerTickMilliseconds = 10
        config.handshakeTimeoutMilliseconds = 1000
        config.pingIntervalMilliseconds = 500
        config.pongTimeoutMilliseconds = 500
        config.closeTimeoutMilliseconds = 500
        config.shutdownTimeoutMilliseconds = 2000
        config.maxMessageSizeBytes = 16_384
        config.maxQueuedBytes = random.chance(50) ? 65_536 : 20_000
        config.bufferBudgetBytes = random.chance(70) ? 8 << 20 : 96 << 10
        let capacity = UInt32(random.inRange(4...32))
        let settings = WorkerSettings(config, memoryBytes: 1 << 30)
        let shared = EngineShared(
            mailboxes: [Mailbox(capacityCommands: 64, capacityBytes: 1 << 16, waker: WorkerWaker(eventFileDescriptor: -1, workerIndex: 0))],
            maxSubscriptions: 1024)
        let backend = SimulatedBackend(
            random: SimulationRandom(seed: random.next()), multishotReceive: random.chance(60),
            receiveBufferBytes: random.chance(50) ? 4096 : random.inRange(16...512), slots: Int(capacity))
        backend.fault = fault
        let ledger = SimulationLedger()
        ledger.failure = fail
        let control = WorkerControl(index: 0, waker: shared.mailboxes[0].waker)
        let logger = Logger(label: "simulation", factory: { _ in SwiftLogNoOpLogHandler() })
        let worker: Worker<SimulatedBackend, SimulationHandler>
        do {
            let core = try WorkerCore(index: 0, settings: settings, capacity: capacity, shared: shared)
            worker = try Worker(core: core, backend: backend, handler: SimulationHandler(ledger: ledger), control: control, logger: logger)
        } catch {
            report.failure = "the worker could not be built: \(error)"
            return report
        }

        // The peers, and when each connects.
        let behaviours = SimulatedPeer.Behaviour.allCases
        let start = backend.nowNanoseconds
        let endNanoseconds = start + Int64(virtualSeconds) * 1_000_000_000
        var arrivals: [(at: Int64, peer: SimulatedPeer)] = (0..<peerCount).map { id in
            // Half of them echo; the rest pick any behaviour.
            let behaviour = random.chance(50) ? .echo : behaviours[random.below(behaviours.count)]
            let at = start + Int64(random.below(Int(endNanoseconds - start) * 7 / 10 / 1_000_000)) * 1_000_000
            return (at, SimulatedPeer(id: id, behaviour: behaviour, random: &random, maxMessageSizeBytes: config.maxMessageSizeBytes, fail: fail))
        }
        arrivals.sort { $0.at < $1.at || ($0.at == $1.at && $0.peer.id < $1.peer.id) }
        let peers = arrivals.map(\.peer)
        var nextArrival = 0
        var peerRandom = SimulationRandom(seed: random.next())
        var steps = 0
        let maxSteps = 2_000_000
        var stopAt: Int64 = -1

        backend.onPoll = {
            steps += 1
            if steps > maxSteps { fail("the worker did not finish within \(maxSteps) steps") }
            if failure == nil { SimulationRun.checkInvariants(worker, backend, fail) }
            if failure != nil || backend.nowNanoseconds >= endNanoseconds {
                // The run is over (or broken): shut the worker down, as SIGTERM would.
                if stopAt < 0 { stopAt = backend.nowNanoseconds }
                control.stopRequested.store(true, ordering: .relaxed)
            }
            while nextArrival < arrivals.count && arrivals[nextArrival].at <= backend.nowNanoseconds {
                if stopAt < 0 { backend.connect(arrivals[nextArrival].peer) } else { arrivals[nextArrival].peer.refusedByListener() }
                nextArrival += 1
            }
            for peer in peers { peer.act(&peerRandom) }
        }
        // The worker never sleeps past its next deadline: when the wait ends, no wheel entry is
        // more than a tick overdue.
        let tick = settings.tickNanoseconds
        backend.onWake = {
            let nowTick = UInt64((backend.nowNanoseconds - start) / tick)
            if let next = worker.core.wheel.nextEventTick(), nowTick > next + 1 {
                fail("the wait ended at tick \(nowTick), \(nowTick - next) ticks after a deadline (tick \(next))")
            }
        }
        worker.run()
        backend.onPoll = nil
        backend.onWake = nil

        // The end: every socket the worker accepted is closed, every open got its close.
        if failure == nil {
            SimulationRun.checkInvariants(worker, backend, fail)
            SimulationRun.checkEnd(worker, backend, ledger, settings: settings, stopAt: stopAt, fail)
        }
        report.steps = steps
        report.virtualMilliseconds = (backend.nowNanoseconds - start) / 1_000_000
        report.peers = peerCount
        report.accepted = backend.sockets.count
        report.opened = ledger.opened
        report.echoesChecked = peers.reduce(0) { $0 + $1.echoesChecked }
        report.deliveriesChecked = peers.reduce(0) { $0 + $1.deliveriesChecked }
        report.completions = backend.completionsDelivered
        report.shortSends = backend.shortSends
        report.noBufferEnds = backend.noBufferEnds
        report.acceptFailures = backend.acceptFailures
        report.cancelsThatMissed = backend.cancelsThatMissed
        report.partialDeliveries = backend.overflowCount
        report.provokedCodesSeen = peers.filter { $0.provokedCloseCode != nil && $0.closeCode?.rawValue == $0.provokedCloseCode }.count
        for cause in CloseReason.allCases where cause != .none {
            let count = worker.core.counters.closedCount(cause)
            if count > 0 { report.closes[cause.name] = count }
        }
        report.failure = failure
        return report
    }

    /// The worker against the model, between two iterations of its loop.
    static func checkInvariants(_ worker: Worker<SimulatedBackend, SimulationHandler>, _ backend: SimulatedBackend, _ fail: (String) -> Void) {
        let core = worker.core
        if let broken = backend.brokenBalance(core.slab, describe: { "\(core.slab[$0].pointee.state)" }) { return fail(broken) }
        if let next = core.wheel.nextEventTick(), next <= core.nowTick {
            return fail("a wheel entry due at tick \(next) has not fired at tick \(core.nowTick)")
        }
    }

    static func checkEnd(_ worker: Worker<SimulatedBackend, SimulationHandler>, _ backend: SimulatedBackend, _ ledger: SimulationLedger,
                         settings: WorkerSettings, stopAt: Int64, _ fail: (String) -> Void) {
        if !ledger.open.isEmpty { return fail("\(ledger.open.count) connection(s) never got onClose") }
        let tick = settings.tickNanoseconds
        for socket in backend.sockets {
            guard socket.workerClosed else { return fail("the worker exited with socket \(socket.handle) (\(socket.peer.behaviour)) open") }
            // Deadlines: within one tick of when they were due (unless shutdown came first).
            let closedAt = socket.workerClosedAtNanoseconds
            switch socket.peer.behaviour {
            case .stalledHandshake:
                let due = socket.acceptedAtNanoseconds + Int64(settings.handshakeTicks) * tick
                if closedAt > due + tick { return fail("the handshake timeout of socket \(socket.handle) fired \((closedAt - due) / 1_000_000) ms late") }
            case .silent where socket.peer.upgraded && (stopAt < 0 || closedAt < stopAt):
                let quietSince = max(socket.acceptedAtNanoseconds, socket.lastReceivedAtNanoseconds)
                let due = quietSince + Int64(settings.pingTicks + settings.pongTicks) * tick
                if closedAt > due + 2 * tick { return fail("the pong timeout of socket \(socket.handle) fired \((closedAt - due) / 1_000_000) ms late") }
                if closedAt < due - 2 * tick { return fail("the pong timeout of socket \(socket.handle) fired \((due - closedAt) / 1_000_000) ms early") }
            default:
                break
            }
        }
    }
}
