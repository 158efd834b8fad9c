@_spi(Simulation) @_spi(Benchmarks) import Myriad
import WebSocketCodec

/// One run of the client role's simulation: builds the client worker over the simulated
/// backend, moves it through the load phases as the coordinator would, and checks.
struct ClientSimulationRun {
    var random: SimulationRandom
    let seed: UInt64
    let serverCount: Int
    var fault: Simulation.Fault?

    /// Deadlines short enough to fire within a run (virtual time is cheap).
    static let connectTimeoutMilliseconds = 2000
    static let handshakeTimeoutMilliseconds = 3000
    static let closeTimeoutMilliseconds = 5000
    /// The hold lasts at least this, and until every server's script has played out.
    static let minimumHoldNanoseconds: Int64 = 1_000_000_000
    static let maximumVirtualNanoseconds: Int64 = 300_000_000_000
    static let maximumSteps = 2_000_000

    init(random: SimulationRandom, seed: UInt64, serverCount: Int) {
        self.random = random
        self.seed = seed
        self.serverCount = serverCount
    }

    mutating func run() -> ClientSimulation.Report {
        Simulation.currentSeed = seed
        Simulation.currentRole = "client"
        var report = ClientSimulation.Report(seed: seed)
        var failure: String?
        let fail: (String) -> Void = { message in if failure == nil { failure = message } }

        var options = LoadOptions()
        options.mode = [LoadMode.echo, .echo, .hold, .ping][random.below(4)]
        options.connections = serverCount
        options.concurrency = random.inRange(1...serverCount)
        options.depth = random.inRange(1...4)
        options.messageSizeBytes = random.chance(70) ? random.inRange(8...300) : random.inRange(8...8192)
        options.pingIntervalMilliseconds = 1000
        options.connectTimeoutMilliseconds = Self.connectTimeoutMilliseconds
        options.handshakeTimeoutMilliseconds = Self.handshakeTimeoutMilliseconds
        options.closeTimeoutMilliseconds = Self.closeTimeoutMilliseconds
        report.mode = options.mode
        let slots = serverCount
        let backend = SimulatedBackend(
            random: SimulationRandom(seed: random.next()), multishotReceive: random.chance(60),
            receiveBufferBytes: random.chance(50) ? 4096 : random.inRange(16...512), slots: slots)
        backend.fault = fault
        var servers: [SimulatedServer] = []
        let behaviours = SimulatedServer.Behaviour.allCases
        backend.makeRemote = { random in
            // Half of them echo; the rest pick any behaviour.
            let behaviour = random.chance(50) ? .echo : behaviours[random.below(behaviours.count)]
            let server = SimulatedServer(id: servers.count, behaviour: behaviour, random: &random, fail: fail)
            servers.append(server)
            return server
        }
        let start = backend.nowNanoseconds
        let control = RunControl(startNanoseconds: start, threads: 1, concurrency: options.concurrency)
        let shared = ThreadShared()
        let assignment = ThreadAssignment(
            index: 0, threadCount: 1, slots: slots, ringTables: [slots], target: serverCount,
            concurrency: options.concurrency, rate: 0, sources: [0x7F00_0001], destination: 0x7F00_0001)
        let worker: ClientWorker<SimulatedBackend>
        do {
            worker = try ClientWorker(assignment: assignment, options: options, shared: shared, control: control,
                                      backend: backend, span: UInt32(slots), wakeDescriptor: -1,
                                      random: RandomPool(seed: random.next()))
        } catch {
            report.failure = "the client worker could not be built: \(error)"
            return report
        }

        var serverRandom = SimulationRandom(seed: random.next())
        var steps = 0
        var phase = LoadPhase.ramp
        var holdStart: Int64 = 0
        backend.onPoll = {
            steps += 1
            if steps > Self.maximumSteps { fail("the client did not finish within \(Self.maximumSteps) steps") }
            if backend.nowNanoseconds - start > Self.maximumVirtualNanoseconds { fail("the client did not finish within 300 virtual seconds") }
            if failure == nil { Self.checkInvariants(worker, backend, fail) }
            if failure != nil {
                control.set(.stop)
                return
            }
            // The coordinator's part, in virtual time.
            let values = shared.snapshot()
            switch phase {
            case .ramp where values[.rampDone] != 0:
                phase = .hold
                holdStart = backend.nowNanoseconds
                control.set(.hold)
            case .hold where backend.nowNanoseconds - holdStart >= Self.minimumHoldNanoseconds && servers.allSatisfy(\.isSettled):
                phase = .close
                control.set(.close)
            case .close where values[.closeDone] != 0:
                phase = .stop
                control.set(.stop)
            default:
                break
            }
            for server in servers { server.act(&serverRandom) }
        }
        let tick = ClientWorker<SimulatedBackend>.tickNanoseconds
        backend.onWake = {
            let nowTick = UInt64(max(0, backend.nowNanoseconds - worker.wheelOrigin) / tick)
            if let next = worker.wheel.nextEventTick(), nowTick > next + 1 {
                fail("the client's wait ended at tick \(nowTick), \(nowTick - next) ticks after a deadline (tick \(next))")
            }
        }
        worker.run()
        backend.onPoll = nil
        backend.onWake = nil
        backend.makeRemote = nil

        let values = shared.snapshot()
        let failures = shared.failures.withLock { $0 }
        if failure == nil {
            Self.checkEnd(worker, backend, servers, values, failures, fail)
        }
        report.steps = steps
        report.virtualMilliseconds = (backend.nowNanoseconds - start) / 1_000_000
        report.servers = servers.count
        report.handshakes = values[.handshakes]
        report.messagesReceived = values[.messagesReceived]
        report.pongsChecked = servers.reduce(0) { $0 + $1.pongsChecked }
        report.completions = backend.completionsDelivered
        report.shortSends = backend.shortSends
        report.noBufferEnds = backend.noBufferEnds
        report.cancelsThatMissed = backend.cancelsThatMissed
        report.partialDeliveries = backend.overflowCount
        report.connectsRefused = backend.connectsRefused
        report.connectsCancelled = backend.connectsCancelled
        for kind in FailureKind.allCases where failures.total(kind) > 0 { report.failures[kind.rawValue] = failures.total(kind) }
        report.failure = failure
        return report
    }

    /// The client worker against the model, between two iterations of its loop.
    static func checkInvariants(_ worker: ClientWorker<SimulatedBackend>, _ backend: SimulatedBackend, _ fail: (String) -> Void) {
        if let broken = backend.brokenBalance(worker.slab, describe: { "\(worker.connection($0).pointee.state)" }) { return fail(broken) }
        // A deadline exactly while the state has one (a connect whose deadline fired is being
        // cancelled: its entry is gone).
        for slot in 0..<worker.slab.highWater {
            let c = worker.connection(slot)
            let needsDeadline: Bool
            switch c.pointee.state {
            case .connecting: needsDeadline = !c.pointee.flags.contains(.timedOut)
            case .handshaking, .closing: needsDeadline = true
            case .open, .closed, .free: needsDeadline = false
            }
            let scheduled = worker.wheel.isScheduled(slot)
            if needsDeadline != scheduled {
                return fail("slot \(slot) (\(c.pointee.state)) \(scheduled ? "has a deadline it should not" : "has no deadline")")
            }
        }
        let occupied = worker.slab.occupied
        if worker.counters[.live] != Int(occupied) { return fail("live counts \(worker.counters[.live]); \(occupied) slots are in use") }
        if let next = worker.wheel.nextEventTick(), next <= worker.nowTick {
            return fail("a client deadline due at tick \(next) has not fired at tick \(worker.nowTick)")
        }
    }

    /// At the end: everything closed, and each server's outcome counted once, as it should be.
    static func checkEnd(
        _ worker: ClientWorker<SimulatedBackend>, _ backend: SimulatedBackend, _ servers: [SimulatedServer],
        _ values: CounterValues, _ failures: FailureCounts, _ fail: (String) -> Void
    ) {
        for socket in backend.sockets where !socket.workerClosed {
            return fail("the client exited with socket \(socket.handle) open")
        }
        if worker.slab.occupied != 0 { return fail("the client exited with \(worker.slab.occupied) slot(s) in use") }
        // Failures: exactly one per provoking server (or socket that could not open), under
        // its kind and one of its reasons.
        var expectedByKind: [FailureKind: Int] = [:]
        var allowed: [FailureKind: Set<String>] = [.connect: ["EMFILE", "ENOBUFS", "EADDRNOTAVAIL"]]
        expectedByKind[.connect] = backend.socketFailures
        for server in servers {
            guard let (kind, reasons) = server.expected else { continue }
            expectedByKind[kind, default: 0] += 1
            allowed[kind, default: []].formUnion(reasons)
        }
        for kind in FailureKind.allCases {
            let counted = failures.total(kind)
            if counted != expectedByKind[kind, default: 0] {
                return fail("\(counted) \(kind) failure(s) counted, \(expectedByKind[kind, default: 0]) provoked: \(failures.counts[kind] ?? [:])")
            }
            for (reason, count) in failures.counts[kind] ?? [:] where count > 0 && !(allowed[kind] ?? []).contains(reason) {
                return fail("\(count) \(kind) failure(s) counted as \(reason), which no server provoked")
            }
        }
        let clean = servers.filter { $0.behaviour == .echo || $0.behaviour == .keepsTCPOpen }.count
        if values[.cleanCloses] != clean { return fail("\(values[.cleanCloses]) clean closes counted, \(clean) servers closed cleanly") }
        let upgraded = servers.filter { $0.upgraded }.count
        if values[.handshakes] != upgraded { return fail("\(values[.handshakes]) handshakes counted, \(upgraded) servers upgraded") }
        if values[.unexpectedMessages] != 0 { return fail("\(values[.unexpectedMessages]) unexpected message(s)") }
        let echoed = servers.reduce(0) { $0 + $1.echoed }
        if values[.messagesReceived] > echoed { return fail("\(values[.messagesReceived]) echoes counted, \(echoed) sent") }
        // Deadlines within a tick of when they were due (never early by more than the tick
        // the deadline was rounded in, never late by more than the tick it fires in and one
        // more for the cancel's round trip).
        let tick = ClientWorker<SimulatedBackend>.tickNanoseconds
        for server in servers {
            guard let socket = server.socket ?? backend.sockets.first(where: { $0.remote === server }) else { continue }
            let due: Int64
            switch server.behaviour {
            case .stalls:
                guard socket.connectedAtNanoseconds >= 0 else { continue }
                due = socket.connectedAtNanoseconds + Int64(handshakeTimeoutMilliseconds) * 1_000_000
            case .hangsConnect:
                due = socket.connectSubmittedAtNanoseconds + Int64(connectTimeoutMilliseconds) * 1_000_000
            case .closesFirstAndHangs:
                // The 1001 came with the 101: the last bytes the client received.
                due = socket.lastReceivedAtNanoseconds + Int64(closeTimeoutMilliseconds) * 1_000_000
            default:
                continue
            }
            let closedAt = socket.workerClosedAtNanoseconds
            if closedAt < due - tick { return fail("server \(server.id) (\(server.behaviour)): the deadline fired \((due - closedAt) / 1_000_000) ms early") }
            if closedAt > due + 3 * tick { return fail("server \(server.id) (\(server.behaviour)): the deadline fired \((closedAt - due) / 1_000_000) ms late") }
        }
    }
}
