import Glibc
import Myriad

/// Runs a load test: starts the client threads, moves them through the phases (ramp, hold,
/// verify, close), draws progress, enforces the time limit, and sums up.
///
/// Phases: every thread connects its share (bounded by `--concurrency` and `--rate`); when
/// every connection is resolved (open or failed) the hold starts (skipped when nothing is
/// open); after the duration, `--verify-echo` sends one message per connection and waits
/// for each; then every connection is closed with a close handshake and the run ends. Churn
/// cycles during the ramp and ends when its cycles are done. Fanout publishes instead of
/// holding (for the duration), then drains (until every open connection has the last
/// message, or `--drain`), then closes. The time limit stops everything at once, wherever
/// the run is.
public enum LoadGenerator {
    /// How often the coordinator looks at the threads.
    static let tickMicroseconds: UInt32 = 20_000

    /// Runs `options` to the end. Throws only when the run cannot start (bad options, no
    /// io_uring); everything that goes wrong after that is counted in the summary.
    /// `progress` is called at most 4 times a second; `log` gets warnings. With
    /// `stopOnSignals`, SIGINT and SIGTERM end the run early (closing nothing gracefully)
    /// and the summary still comes back, marked `interrupted`.
    public static func run(
        _ options: LoadOptions,
        progress: ((ProgressSnapshot) -> Void)? = nil,
        log: (String) -> Void = { _ in },
        stopOnSignals: Bool = false
    ) throws(LoadError) -> LoadSummary {
        var configured = options
        try configured.readFixedFilesPerRingFromEnvironment()
        let options = configured
        try options.validate()
        let limit = FileLimit.raiseSoftToHard()
        let plan = try LoadPlan.make(options: options, ports: .current(), fileLimit: limit.soft, cores: Config.onlineCores)
        for warning in plan.warnings { log("warning: " + warning) }
        let destination = try options.destinationAddress()
        // Signals are taken synchronously by the coordinator: blocked here, before the client
        // threads start (they inherit the mask), and restored at the end.
        var previousMask = sigset_t()
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        if stopOnSignals {
            sigaddset(&stopSignals, SIGINT)
            sigaddset(&stopSignals, SIGTERM)
        }
        pthread_sigmask(SIG_BLOCK, &stopSignals, &previousMask)
        defer { pthread_sigmask(SIG_SETMASK, &previousMask, nil) }
        let start = monotonicNanoseconds()
        let control = RunControl(startNanoseconds: start, threads: plan.threads,
                                 concurrency: max(options.concurrency, plan.threads))
        let shared = (0..<plan.threads).map { _ in ThreadShared() }
        var threads: [pthread_t] = []
        for index in 0..<plan.threads {
            let assignment = ThreadAssignment(
                index: index, threadCount: plan.threads, slots: plan.slotsPerThread[index],
                ringTables: plan.ringTablesPerThread[index],
                target: plan.targetPerThread[index], concurrency: max(1, plan.concurrencyPerThread[index]),
                rate: plan.ratePerThread, sources: plan.sources, destination: destination)
            let mine = shared[index]
            threads.append(spawnThread(name: "myriad-load\(index)") {
                do {
                    let worker = try ClientWorker<URingBackend>.make(assignment: assignment, options: options, shared: mine, control: control)
                    mine.status.store(1, ordering: .releasing)
                    worker.run()
                } catch {
                    let message = "\(error)"
                    mine.startError.withLock { $0 = message }
                    mine.status.store(2, ordering: .releasing)
                    return
                }
                mine.status.store(3, ordering: .releasing)
            })
        }
        while shared.contains(where: { $0.status.load(ordering: .acquiring) == 0 }) { usleep(1000) }
        let startErrors = shared.compactMap { item in item.startError.withLock { $0 } }
        if let first = startErrors.first {
            control.set(.stop)
            for thread in threads { pthread_join(thread, nil) }
            throw LoadError(first)
        }

        var coordinator = Coordinator(options: options, plan: plan, control: control, shared: shared, start: start)
        coordinator.stopSignals = stopSignals
        coordinator.drive(progress: progress)
        control.set(.stop)
        for thread in threads { pthread_join(thread, nil) }
        return coordinator.summary()
    }
}

/// The coordinator's view of a run in progress.
struct Coordinator {
    let options: LoadOptions
    let plan: LoadPlan
    let control: RunControl
    let shared: [ThreadShared]
    let start: Int64
    var phase = LoadPhase.ramp
    var peak = 0
    var rampEnd: Int64?
    var holdStart: Int64?
    var holdEnd: Int64?
    /// Open connections when the hold (fanout: the drain) ended, or when the run was cut.
    var connectedAtHoldEnd = 0
    var connectedRecorded = false
    var messagesAtHoldStart = 0
    var messagesAtHoldEnd = 0
    // Fanout: the publishing window (holdStart...holdEnd), the drain, and the server's usage.
    var drainEnd: Int64?
    var deliveredAtHoldStart = 0
    var deliveredAtHoldEnd = 0
    var serverAtStart: (cpuNanoseconds: Int64, residentBytes: Int)?
    var serverAtEnd: (cpuNanoseconds: Int64, residentBytes: Int)?
    var timeLimitReached = false
    var interrupted = false
    /// Signals that end the run (empty: none); blocked in every thread of the run.
    var stopSignals = sigset_t()
    var end: Int64 = 0

    init(options: LoadOptions, plan: LoadPlan, control: RunControl, shared: [ThreadShared], start: Int64) {
        self.options = options
        self.plan = plan
        self.control = control
        self.shared = shared
        self.start = start
    }

    func totals() -> (sum: CounterValues, all: (LoadCounter) -> Bool) {
        var sum = CounterValues()
        var flags: [LoadCounter: Bool] = [.rampDone: true, .verifyDone: true, .closeDone: true, .drainDone: true]
        for thread in shared {
            let values = thread.snapshot()
            for counter in LoadCounter.allCases {
                switch counter {
                case .lastHandshakeNanoseconds: sum[counter] = max(sum[counter], values[counter])
                case .rampDone, .verifyDone, .closeDone, .drainDone: if values[counter] == 0 { flags[counter] = false }
                default: sum[counter] += values[counter]
                }
            }
        }
        return (sum, { flags[$0] ?? false })
    }

    mutating func move(to next: LoadPhase) {
        phase = next
        control.set(next)
    }

    /// Moves the threads through the phases until the run is over or the time limit passes.
    mutating func drive(progress: ((ProgressSnapshot) -> Void)?) {
        let timeLimit = Int64(options.effectiveTimeLimitMilliseconds) * 1_000_000
        let duration = Int64(options.durationMilliseconds) * 1_000_000
        let drain = Int64(options.drainMilliseconds) * 1_000_000
        var lastProgress: Int64 = 0
        var rateSample = (time: start, handshakes: 0)
        var rate = 0.0
        loop: while true {
            // Sleep one tick, or less when a stop signal arrives.
            var tick = timespec(tv_sec: 0, tv_nsec: Int(LoadGenerator.tickMicroseconds) * 1000)
            let signal = sigtimedwait(&stopSignals, nil, &tick)
            let now = monotonicNanoseconds()
            if signal == SIGINT || signal == SIGTERM {
                interrupted = true
                if !connectedRecorded { connectedAtHoldEnd = totals().sum[.open] }
                break loop
            }
            let (sum, all) = totals()
            peak = max(peak, sum[.open])
            if now - start >= timeLimit {
                timeLimitReached = true
                if !connectedRecorded { connectedAtHoldEnd = sum[.open] }
                break loop
            }
            switch phase {
            case .ramp:
                guard all(.rampDone) else { break }
                rampEnd = now
                if options.mode == .churn { break loop }
                holdStart = now
                messagesAtHoldStart = sum[.messagesReceived]
                deliveredAtHoldStart = sum[.delivered]
                if sum[.open] == 0 {
                    // Nothing to hold: every connection failed.
                    holdEnd = now
                    move(to: .close)
                } else if options.mode == .fanout {
                    if let pid = options.serverPID { serverAtStart = ServerProcess.sample(pid: pid) }
                    move(to: .publish)
                } else {
                    move(to: .hold)
                }
            case .hold:
                guard now - holdStart! >= duration else { break }
                holdEnd = now
                connectedAtHoldEnd = sum[.open]
                connectedRecorded = true
                messagesAtHoldEnd = sum[.messagesReceived]
                move(to: options.verifyEcho ? .verify : .close)
            case .publish:
                // The publisher's thread says when its last message is out and the duration
                // has passed (or it can no longer publish).
                guard sum[.publishDone] > 0 else { break }
                holdEnd = now
                deliveredAtHoldEnd = sum[.delivered]
                move(to: .drain)
            case .drain:
                let expected = sum[.messagesSent] * options.target
                guard all(.drainDone) || sum[.delivered] >= expected || now - holdEnd! >= drain else { break }
                drainEnd = now
                if let pid = options.serverPID { serverAtEnd = ServerProcess.sample(pid: pid) }
                connectedAtHoldEnd = sum[.open]
                connectedRecorded = true
                move(to: .close)
            case .verify:
                if all(.verifyDone) { move(to: .close) }
            case .close:
                if all(.closeDone) { break loop }
            case .stop:
                break loop
            }
            if let progress, now - lastProgress >= ProgressLine.intervalNanoseconds {
                // Handshakes per second over the last second (the average so far, before that).
                let seconds = Double(now - rateSample.time) / 1e9
                if seconds > 0 && (seconds >= 1 || rateSample.time == start) {
                    rate = Double(sum[.handshakes] - rateSample.handshakes) / seconds
                }
                if seconds >= 1 { rateSample = (now, sum[.handshakes]) }
                lastProgress = now
                progress(snapshot(sum, now: now, rate: rate))
            }
        }
        end = monotonicNanoseconds()
        if let progress {
            let (sum, _) = totals()
            progress(snapshot(sum, now: end, rate: rate))
        }
    }

    func snapshot(_ sum: CounterValues, now: Int64, rate: Double) -> ProgressSnapshot {
        var failures: [FailureKind: Int] = [:]
        for kind in FailureKind.allCases { failures[kind] = sum[LoadCounter.failureCounter(kind)] }
        return ProgressSnapshot(
            mode: options.mode, phase: phase, open: sum[.open], target: options.target, handshakes: sum[.handshakes],
            ratePerSecond: rate, failures: failures, elapsedSeconds: Double(now - start) / 1e9,
            published: sum[.messagesSent], plannedPublishes: options.mode == .fanout ? options.plannedPublishes : 0,
            delivered: sum[.delivered], expected: sum[.messagesSent] * options.target)
    }

    /// The summary, once every thread has exited.
    func summary() -> LoadSummary {
        let (sum, _) = totals()
        var result = LoadSummary(mode: options.mode, server: options.serverDescription)
        result.target = options.target
        result.connected = options.mode == .churn ? sum[.handshakes] : connectedAtHoldEnd
        result.peak = max(peak, result.connected)
        result.durationSeconds = Double(end - start) / 1e9
        if options.mode == .churn {
            result.rampSeconds = Double((rampEnd ?? end) - start) / 1e9
        } else if sum[.handshakes] > 0 {
            result.rampSeconds = Double(sum[.lastHandshakeNanoseconds]) / 1e9
        } else {
            result.rampSeconds = Double((rampEnd ?? end) - start) / 1e9
        }
        if let holdStart {
            result.holdSeconds = Double((holdEnd ?? end) - holdStart) / 1e9
        }
        result.threads = plan.threads
        result.rings = plan.rings
        result.sources = SourceAddresses.describe(plan.sources)
        for thread in shared { result.failures.merge(thread.failures.withLock { $0 }) }
        result.handshakes = sum[.handshakes]
        result.unexpectedCloses = sum[.unexpectedCloses]
        result.cleanCloses = sum[.cleanCloses]
        result.pingsSent = sum[.pingsSent]
        result.pongsReceived = sum[.pongsReceived]
        result.serverPingsAnswered = sum[.serverPingsAnswered]
        result.messagesSent = sum[.messagesSent]
        result.messagesReceived = sum[.messagesReceived]
        if options.mode == .echo, let holdStart, let holdEnd, holdEnd > holdStart {
            result.messagesPerSecond = Double(messagesAtHoldEnd - messagesAtHoldStart) / (Double(holdEnd - holdStart) / 1e9)
        }
        for thread in shared {
            if let histograms = thread.histograms.withLock({ $0 }) {
                result.roundTrip.merge(histograms.roundTrip)
                result.latency.merge(histograms.latency)
            }
        }
        if options.verifyEcho {
            result.verifyOK = sum[.verifyOK]
            result.verifyFailed = sum[.verifyFailed]
        }
        if options.mode == .fanout { result.fanout = fanoutSummary(sum) }
        result.enobufsRearms = sum[.enobufs]
        result.cqOverflows = sum[.cqOverflows]
        result.waits = sum[.waits]
        result.droppedFrames = sum[.droppedFrames]
        result.unexpectedMessages = sum[.unexpectedMessages]
        result.messagesCompressed = sum[.messagesCompressed]
        result.messagesInflated = sum[.messagesInflated]
        result.clientRSSBytes = peakResidentBytes()
        result.clientStateBytesPerConnection = MemoryLayout<ClientConnection>.stride
        result.timeLimitReached = timeLimitReached
        result.interrupted = interrupted
        return result
    }
}

extension Coordinator {
    /// The fanout part of the summary, once every thread has exited.
    func fanoutSummary(_ sum: CounterValues) -> FanoutSummary {
        var fanout = FanoutSummary()
        fanout.host = options.host
        fanout.publishIntervalMilliseconds = options.publishIntervalMilliseconds
        fanout.messageSizeBytes = options.messageSizeBytes
        fanout.subscribers = options.target
        fanout.plannedPublishes = options.plannedPublishes
        fanout.published = sum[.messagesSent]
        fanout.delivered = sum[.delivered]
        fanout.duplicated = sum[.duplicated]
        fanout.outOfOrder = sum[.outOfOrder]
        if let holdStart {
            let publishEnd = holdEnd ?? end
            fanout.publishSeconds = Double(publishEnd - holdStart) / 1e9
            fanout.drainSeconds = holdEnd.map { Double((drainEnd ?? end) - $0) / 1e9 } ?? 0
            fanout.deliveredWhilePublishing = (holdEnd != nil ? deliveredAtHoldEnd : sum[.delivered]) - deliveredAtHoldStart
        }
        var slowest = [UInt64](repeating: 0, count: options.plannedPublishes)
        fanout.nodes = options.ports.map { FanoutNode(port: $0) }
        for (index, count) in options.connectionsPerPort().enumerated() {
            fanout.nodes[index].subscribers = count
            fanout.nodes[index].expected = count * fanout.published
        }
        for thread in shared {
            guard let result = thread.fanout.withLock({ $0 }) else { continue }
            for index in fanout.nodes.indices {
                fanout.nodes[index].delivered += result.deliveredPerPort[index]
                fanout.nodes[index].connected += result.connectedPerPort[index]
                fanout.nodes[index].latency.merge(result.latencyPerPort[index])
            }
            for sequence in result.slowest.indices where result.slowest[sequence] > slowest[sequence] {
                slowest[sequence] = result.slowest[sequence]
            }
        }
        for time in slowest where time > 0 { fanout.publishToLastDelivery.record(time) }
        if let pid = options.serverPID, let first = serverAtStart {
            // Without a sample at the end (the run was cut short), up to now.
            let last = serverAtEnd ?? ServerProcess.sample(pid: pid) ?? first
            var usage = ServerUsage(pid: pid)
            usage.cpuNanoseconds = last.cpuNanoseconds - first.cpuNanoseconds
            usage.residentBytes = last.residentBytes
            fanout.server = usage
        }
        return fanout
    }
}

/// Peak resident set size of this process (VmHWM in /proc/self/status), in bytes.
func peakResidentBytes() -> Int {
    let fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return residentBytes() }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 8192)
    let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 8192) }
    guard count > 0 else { return residentBytes() }
    for line in String(decoding: buffer[..<count], as: UTF8.self).split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let digits = line.dropFirst(6).filter { $0.isNumber }
        if let kilobytes = Int(digits) { return kilobytes * 1024 }
    }
    return residentBytes()
}
