import Glibc
import Logging
import WebSocketCodec

/// A deterministic simulation of one worker: the real `Worker` (its loop, codec, timing wheel,
/// send queues, close paths) over `SimulatedBackend`, with `SimulatedPeer`s at the far end of
/// its connections, every choice drawn from one seed. Modelled on TigerBeetle's simulator
/// (`src/testing/io.zig`, the VOPR): the world is scripted, the code under test is not.
///
/// At every poll, before anything moves, it checks the worker against the model:
/// - every slot's `inFlight` equals the final completions the model still owes it, and no
///   completion is owed to a free slot or to an older generation (a slot is never released
///   with work outstanding);
/// - the slab's count of occupied slots matches its slots' states;
/// - no wheel entry is due at or before the current tick (every deadline fired in its tick),
///   and when a wait ends, none is more than a tick overdue (the worker never oversleeps);
/// and as it goes: each connection the handler saw open gets exactly one `onClose`, echoes
/// arrive unchanged and in order, close codes are the ones the peer's behaviour calls for.
/// At the end: every accepted socket was closed by the worker, every `onClose` came, every
/// handshake timeout and pong timeout fired within one tick of its deadline.
///
/// A broken invariant stops the run with its seed; `myriad simulate --seed N` replays it
/// exactly. These are tests of the engine, never used by it: integration tests keep running on
/// real rings and sockets.
@_spi(Simulation)
public enum Simulation {
    /// What one run did.
    public struct Report: Sendable, CustomStringConvertible {
        public var seed: UInt64
        /// Polls of the worker's loop (the simulation's steps).
        public var steps = 0
        public var virtualMilliseconds: Int64 = 0
        public var peers = 0
        public var accepted = 0
        public var opened = 0
        public var echoesChecked = 0
        /// Topic deliveries the peers checked (in order per publisher).
        public var deliveriesChecked = 0
        public var completions = 0
        public var shortSends = 0
        public var noBufferEnds = 0
        public var acceptFailures = 0
        public var cancelsThatMissed = 0
        public var partialDeliveries = 0
        /// Peers that saw the close code their behaviour exists to provoke.
        public var provokedCodesSeen = 0
        /// Closes by cause, as the worker counted them.
        public var closes: [String: Int] = [:]
        /// The first broken invariant, nil when the run was clean.
        public var failure: String?

        public var description: String {
            let causes = closes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            return "seed \(seed): \(failure.map { "FAILED: \($0)" } ?? "ok") steps=\(steps) virtual_ms=\(virtualMilliseconds) "
                + "peers=\(peers) accepted=\(accepted) opened=\(opened) echoes=\(echoesChecked) deliveries=\(deliveriesChecked) completions=\(completions) "
                + "short_sends=\(shortSends) enobufs=\(noBufferEnds) accept_failures=\(acceptFailures) "
                + "cancels_missed=\(cancelsThatMissed) partial_cq=\(partialDeliveries) provoked_codes=\(provokedCodesSeen) [\(causes)]"
        }
    }

    /// A defect the simulated kernel can be told to have, to show that the checks catch it.
    public enum Fault: Sendable {
        /// A send's completion vanishes (the worker's in-flight count never comes down).
        case loseCompletion
        /// The clock runs past the worker's deadlines (a wait that oversleeps).
        case oversleep
    }

    /// Runs the simulation for `seed`; `breaking` makes the model misbehave on purpose.
    public static func run(seed: UInt64, peers: Int = 48, virtualSeconds: Int = 20, breaking fault: Fault? = nil) -> Report {
        var runner = Runner(random: SimulationRandom(seed: seed), seed: seed, peerCount: peers, virtualSeconds: virtualSeconds)
        runner.fault = fault
        return runner.run()
    }

    /// Runs the simulation with every choice read from `script` first (a fuzzer's input).
    public static func run(script: [UInt8], peers: Int = 16, virtualSeconds: Int = 8) -> Report {
        var runner = Runner(random: SimulationRandom(script: script), seed: 0, peerCount: peers, virtualSeconds: virtualSeconds)
        return runner.run()
    }

    /// The seed of the run in progress, for `installCrashReport` (a worker precondition stops
    /// the process, not the run).
    nonisolated(unsafe) static var currentSeed: UInt64 = 0

    /// On a crash (a failed precondition traps), writes the seed being simulated to stderr so
    /// the run can be replayed: `myriad simulate --seed N`.
    public static func installCrashReport() {
        for signal in [SIGILL, SIGTRAP, SIGABRT, SIGSEGV, SIGBUS] {
            Glibc.signal(signal) { number in
                var text = "\nsimulation: crashed (signal \(number)) in seed \(Simulation.currentSeed); replay: myriad simulate --seed \(Simulation.currentSeed)\n"
                text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
                Glibc.signal(number, SIG_DFL)
                raise(number)
            }
        }
    }
}

/// Records what the handler saw: each connection opened once, closed once.
final class SimulationLedger {
    var open: Set<ConnectionID> = []
    var opened = 0
    var closed = 0
    var failure: ((String) -> Void)?

    func opened(_ id: ConnectionID) {
        if !open.insert(id).inserted { failure?("onOpen twice for \(id)") }
        opened += 1
    }

    func closed(_ id: ConnectionID) {
        if open.remove(id) == nil { failure?("onClose for \(id), which is not open (a second onClose, or one without onOpen)") }
        closed += 1
    }
}

/// The application in the simulation: echoes every message, refuses `/refuse` with 403,
/// closes with 4000 when asked by a message "close-me", subscribes every connection to one
/// topic and publishes there (excluding the sender) what starts with "pub:".
struct SimulationHandler: WebSocketHandler {
    typealias ConnectionState = Void
    let ledger: SimulationLedger

    mutating func upgrade(_ request: UpgradeRequestHead, ticket: UpgradeTicket) -> UpgradeDecision<Void> {
        request.path == "/refuse" ? .refuse(.forbidden, body: "no") : .accept()
    }

    mutating func onOpen(_ connection: Connection) {
        ledger.opened(connection.id)
        _ = connection.subscribe(to: "room")
    }

    mutating func onMessage(_ connection: Connection, kind: MessageKind, payload: UnsafeRawBufferPointer) {
        if kind == .text && payload.elementsEqual("close-me".utf8) {
            connection.close(code: CloseCode(rawValue: 4000), reason: "asked")
            return
        }
        if kind == .text && payload.starts(with: "pub:".utf8) {
            _ = connection.context.publish(to: "room", text: payload, excluding: connection.id)
            return
        }
        _ = kind == .text ? connection.send(text: payload) : connection.send(binary: payload)
    }

    mutating func onClose(_ connection: Connection, event: CloseEvent) { ledger.closed(connection.id) }
}

/// One run: builds the worker over the simulated backend, schedules the peers, runs the
/// worker's real loop to its end, and checks.
struct Runner {
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
            if failure == nil { Runner.checkInvariants(worker, backend, fail) }
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
            Runner.checkInvariants(worker, backend, fail)
            Runner.checkEnd(worker, backend, ledger, settings: settings, stopAt: stopAt, fail)
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
        var occupied: UInt32 = 0
        for slot in UInt32(core.slab.highWater)..<UInt32(core.slab.capacity) where backend.owed[Int(slot)] != 0 {
            return fail("slot \(slot) was never used, yet \(backend.owed[Int(slot)]) completion(s) are owed to it")
        }
        for slot in 0..<UInt32(core.slab.highWater) {
            let connection = core.slab[slot]
            let owed = backend.owed[Int(slot)]
            if connection.pointee.state == .free {
                if owed != 0 { return fail("slot \(slot) is free with \(owed) completion(s) still owed to it") }
                continue
            }
            occupied += 1
            if Int(connection.pointee.inFlight) != owed {
                return fail("slot \(slot) (\(connection.pointee.state)) counts \(connection.pointee.inFlight) operation(s) in flight; the kernel owes it \(owed)")
            }
            if owed > 0 && backend.owedGeneration[Int(slot)] != UInt32(truncatingIfNeeded: connection.pointee.generation) {
                return fail("slot \(slot) was reused while completions of its previous connection were owed")
            }
        }
        if occupied != core.slab.occupied { return fail("the slab counts \(core.slab.occupied) occupied slots; \(occupied) are") }
        if let next = core.wheel.nextEventTick(), next <= core.nowTick {
            return fail("a wheel entry due at tick \(next) has not fired at tick \(core.nowTick)")
        }
    }

    static func checkEnd(_ worker: Worker<SimulatedBackend, SimulationHandler>, _ backend: SimulatedBackend, _ ledger: SimulationLedger,
                         settings: WorkerSettings, stopAt: Int64, _ fail: (String) -> Void) {
        if !ledger.open.isEmpty { return fail("\(ledger.open.count) connection(s) never got onClose") }
        let tick = settings.tickNanoseconds
        for socket in backend.sockets {
            guard socket.serverClosed else { return fail("the worker exited with socket \(socket.handle) (\(socket.peer.behaviour)) open") }
            // Deadlines: within one tick of when they were due (unless shutdown came first).
            let closedAt = socket.serverClosedAtNanoseconds
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
