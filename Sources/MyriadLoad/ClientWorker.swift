import CLibURing
import Glibc
@_spi(Benchmarks) import Myriad
import WebSocketCodec
import WebSocketCompression

/// What one client thread is told: its share of the run.
struct ThreadAssignment: Sendable {
    var index: Int
    var threadCount: Int
    /// Slots: connections open at once at most.
    var slots: Int
    /// The fixed-file table size of each of the thread's rings (their sum is `slots`).
    var ringTables: [Int]
    /// Connections (churn: cycles) to establish.
    var target: Int
    var concurrency: Int
    /// Connects per second (0: unlimited).
    var rate: Double
    var sources: [UInt32]
    var destination: UInt32
}

/// One client thread: the client role of the engine's connection core, generic over its
/// backend as the server's `Worker` is. `myriad load` runs it over `URingBackend` with no
/// listener (`ClientWorker+URing`: as many rings as the thread's share needs, each with a
/// sparse fixed-file table of up to RLIMIT_NOFILE entries and a provided buffer ring); the
/// client simulation runs it over `SimulatedBackend`. One slab of `ClientConnection`s over all
/// of the rings, and the loop that drives them.
///
/// What the server and this client share is the engine's: the backend (ring set-up with its
/// ordered fallbacks, the wait over several rings, receive buffers posted most recently used
/// first, CQ overflow and kernel-error handling), the completion tag (`UserData`, with the same
/// rule: a completion for an older generation of its slot is a bug and stops the process),
/// `ConnectionIO`, `SendQueues` over `BufferPool`, the timing wheel over the slab, and the
/// WebSocket rules above the codec (`CloseHandshake`, `ControlFrame`). What is the client's
/// own: connect, source addresses, the request writer, the response check, and the load modes.
///
/// A connection's socket comes from `IOBackend.openClientSocket` (io_uring: socket(), bound to
/// its source address with IP_BIND_ADDRESS_NO_PORT, installed into the fixed-file table at its
/// slot's index, the ordinary descriptor closed at once: the process fd table never holds more
/// than one at a time, and each ring holds up to RLIMIT_NOFILE connections). The thread's slots
/// are cut into runs of `span`: slot s lives in ring s / span at index s % span.
///
/// Every failure is counted (kind and errno or reason) and ends only its connection.
final class ClientWorker<Backend: IOBackend>: CompletionSink {
    /// Connects started per loop iteration at most, so completions keep flowing during a ramp.
    static var connectBatch: Int { 512 }
    /// Verify messages and close frames queued per loop iteration at most (bounds CQ bursts).
    static var phaseBatch: Int { 1024 }
    /// Longest sleep: phase changes are noticed within this.
    static var maximumWaitNanoseconds: Int64 { 50_000_000 }

    let assignment: ThreadAssignment
    let options: LoadOptions
    let shared: ThreadShared
    let control: RunControl
    let backend: Backend
    /// Slots per ring (the last ring may hold fewer).
    let span: UInt32
    /// The eventfd the backend's other rings signal (`URingBackend`'s wait); -1 for none.
    private let wakeDescriptor: Int32
    /// The engine's slab, over the client's slot.
    let slab: Slab<ClientConnection>
    /// Send queues and gathering buffers: the engine's `SendQueues` over its `BufferPool`.
    let queues: SendQueues
    /// Bytes a connection may have queued (its echo depth, a control frame, the request),
    /// and the publisher's (a few messages): past them a frame is dropped and counted.
    private let sendLimitBytes: Int
    private let publisherSendLimitBytes: Int
    /// The longest response head, and the buffer that gathers one that came in pieces.
    private let inboundLimitBytes: Int
    private var random: RandomPool
    /// Every connection's deadline (connect, handshake or close, by its state): the engine's
    /// timing wheel over this slab, one entry per slot, ticks of `tickNanoseconds` from
    /// `wheelOrigin`. A deadline fires within a tick after it passes, never before.
    let wheel: TimingWheel<SlabTimerStore<ClientConnection>>
    let wheelOrigin: Int64
    static var tickNanoseconds: Int64 { 10_000_000 }
    /// The server's address at each port, and the upgrade request written once per port
    /// (the Host header names the port) with the offset of its key.
    private let destinations: UnsafeMutablePointer<sockaddr_in>
    private let requestTemplates: [UnsafeMutableRawBufferPointer]
    /// Where the connection number goes in a request, when --path has `{i}`.
    private let numberOffset: Int?
    private let keyOffsets: [Int]
    private let portCount: Int
    private let decoderConfiguration = FrameDecoderConfiguration(role: .client, maxMessageSizeBytes: 1 << 30)
    private(set) var counters = CounterValues()
    private var roundTrip = Histogram()
    private var latency = Histogram()
    private var starved = StarvedReceives()
    /// permessage-deflate (`--deflate`): the thread's one compressor and decompressor; nil when off.
    private let deflate: ClientDeflate?
    /// What echo's and fanout's messages carry after their header (`--payload`).
    private var bodies: PayloadBodies
    /// `--deflate both`: a message is written here whole, then compressed into its frame.
    private let plainMessage: UnsafeMutableRawBufferPointer

    // Timeouts in nanoseconds.
    private let connectTimeout: Int64
    private let handshakeTimeout: Int64
    private let closeTimeout: Int64
    private let verifyTimeout: Int64
    private let pingInterval: Int64

    // Ramp.
    private var remainingToStart: Int
    /// Whether this thread has told the others it started its whole ramp.
    private var rampStartedReported = false
    private var attemptIndex = 0
    private var tokens = 0.0
    private var lastTokenTime: Int64

    // Phases.
    private var phaseSeen = LoadPhase.ramp
    private var verifyCursor: UInt32 = 0
    private var verifyOutstanding = 0
    private var verifyDeadline: Int64 = 0
    private var closeCursor: UInt32 = 0
    /// Close handshakes we started that have not ended: the close phase keeps at most
    /// `assignment.concurrency` of them, like the ramp, so the server sees a paced stream of
    /// close frames instead of a million at once (which it answers slower than the close
    /// timeout, and meanwhile times out pongs stuck behind them).
    private var closesOutstanding = 0
    private var pingCursor: UInt32 = 0
    private var pingBudget = 0.0
    private var lastPingSweep: Int64 = 0
    /// The clock, read once per loop iteration and again at the first completion after a
    /// wait (`refreshClockIfStale`).
    private(set) var now: Int64
    /// Set before each wait: the loop's reading may be a whole wait old when completions come.
    private var clockStale = false

    // Fanout.
    /// This thread's slot 0 publishes (thread 0).
    private let publishes: Bool
    private let plannedPublishes: Int
    private let publishInterval: Int64
    private let publishDuration: Int64
    /// When this thread entered the publish phase: message k leaves at start + k x interval.
    private var publishStart: Int64 = 0
    /// Messages whose time has come (the next sequence), and of them those sent: a message
    /// that finds the publisher's send queue full is skipped (and counted as a dropped frame).
    private var scheduledCount = 0
    private var publishedCount = 0
    private var publishOver = false
    private var deliveredPerPort: [Int]
    private var connectedPerPort: [Int]
    /// By sequence: the slowest publish-to-receive time of this thread's deliveries.
    private var slowest: [UInt64]
    /// By port index: publish-to-receive times of the deliveries on that node.
    private var latencyPerPort: [Histogram]
    private var drainSettled = false
    private var nextDrainCheck: Int64 = 0
    /// How often the drain looks for open connections still missing the last message.
    private static var drainCheckNanoseconds: Int64 { 10_000_000 }

    /// A client thread over `backend` (made on the calling thread: `ClientWorker+URing` for
    /// the kernel's, the simulation's for a scripted one), whose table holds `span` sockets per
    /// ring; `wakeDescriptor` (or -1) is closed with the worker, `random` makes nonces and masks.
    init(assignment: ThreadAssignment, options: LoadOptions, shared: ThreadShared, control: RunControl,
         backend: Backend, span: UInt32, wakeDescriptor: Int32, random: consuming RandomPool) throws(LoadError) {
        self.assignment = assignment
        self.options = options
        self.shared = shared
        self.control = control
        self.backend = backend
        self.span = span
        self.wakeDescriptor = wakeDescriptor
        self.random = random
        remainingToStart = assignment.target
        now = backend.clockNanoseconds
        lastTokenTime = now
        lastPingSweep = now
        connectTimeout = Int64(options.connectTimeoutMilliseconds) * 1_000_000
        handshakeTimeout = Int64(options.handshakeTimeoutMilliseconds) * 1_000_000
        closeTimeout = Int64(options.closeTimeoutMilliseconds) * 1_000_000
        verifyTimeout = 10_000_000_000 + Int64(assignment.slots) * 100_000
        pingInterval = Int64(options.pingIntervalMilliseconds) * 1_000_000
        portCount = options.ports.count
        publishes = options.mode == .fanout && assignment.index == 0
        plannedPublishes = options.mode == .fanout ? options.plannedPublishes : 0
        publishInterval = Int64(options.publishIntervalMilliseconds) * 1_000_000
        publishDuration = Int64(options.durationMilliseconds) * 1_000_000
        deliveredPerPort = [Int](repeating: 0, count: options.ports.count)
        connectedPerPort = [Int](repeating: 0, count: options.ports.count)
        slowest = [UInt64](repeating: 0, count: plannedPublishes)
        latencyPerPort = options.mode == .fanout ? [Histogram](repeating: Histogram(), count: options.ports.count) : []

        let headerBytes = options.mode == .fanout ? FanoutMessage.headerBytes : 8
        bodies = PayloadBodies(options.payload, length: max(0, options.messageSizeBytes - headerBytes),
                               filler: options.mode == .fanout ? FanoutMessage.filler : 0x61,
                               seed: 0x4D59_5249_4144 &+ UInt64(assignment.index))
        if options.deflate == .off {
            deflate = nil
        } else {
            // The largest message a connection expects: its own size, a verify token, or
            // something small the server sends; more fails it with 1009.
            guard let made = ClientDeflate(maxMessageBytes: max(options.messageSizeBytes, 4096)) else {
                throw LoadError("thread \(assignment.index): zlib could not allocate its streams")
            }
            deflate = made
        }
        plainMessage = .allocate(byteCount: options.deflate == .both ? options.messageSizeBytes : 0, alignment: 8)

        // What a connection queues at once: a request or control frames; in echo mode `depth`
        // whole messages as well; fanout's publisher a few messages. A queue may hold twice
        // that (one part in flight, one filling), as the fixed chunks it replaced allowed.
        let frameSize = FrameEncoder.frameSize(payloadLength: options.messageSizeBytes, masked: true)
        let batchBytes = options.mode == .echo ? options.depth * frameSize + 512 : 2048
        let publisherBatchBytes = options.mode == .fanout ? (frameSize > 1 << 20 ? 2 : 4) * frameSize + 512 : 0
        queues = SendQueues(segments: SendSegmentPool(), pool: BufferPool())
        sendLimitBytes = 2 * batchBytes
        publisherSendLimitBytes = 2 * max(batchBytes, publisherBatchBytes)
        inboundLimitBytes = batchBytes
        // `{i}` in --path becomes the connection's number (8 digits, written per connection
        // like the key): one path, so one topic, per connection.
        let numbered = options.path.firstRange(of: LoadOptions.connectionNumberPlaceholder)
        let requestTarget = Array(options.path.replacing(LoadOptions.connectionNumberPlaceholder, with: "00000000").utf8)
        numberOffset = numbered.map { 4 + options.path.utf8.distance(from: options.path.startIndex, to: $0.lowerBound) }
        let hostName = options.host == "localhost" ? "127.0.0.1" : options.host
        var templates: [UnsafeMutableRawBufferPointer] = []
        var offsets: [Int] = []
        for port in options.ports {
            let requestHost = Array(hostName.utf8) + Array(":\(port)".utf8)
            let requestSize = ClientHandshake.requestSize(targetLength: requestTarget.count, hostLength: requestHost.count,
                                                          offersDeflate: options.deflate != .off)
            guard requestSize <= batchBytes else {
                for template in templates { template.deallocate() }
                throw LoadError("--path is too long: the upgrade request must fit in \(batchBytes) bytes")
            }
            // The upgrade request, written once; each connection copies it and writes its own key.
            let template = UnsafeMutableRawBufferPointer.allocate(byteCount: requestSize, alignment: 1)
            let placeholder = [UInt8](repeating: 0x41, count: ClientHandshake.keyLength)
            _ = requestTarget.withUnsafeBytes { t in
                requestHost.withUnsafeBytes { h in
                    placeholder.withUnsafeBytes { k in
                        ClientHandshake.writeRequest(target: t, host: h, key: k, offersDeflate: options.deflate != .off, into: template)
                    }
                }
            }
            templates.append(template)
            offsets.append(ClientHandshake.keyOffset(targetLength: requestTarget.count, hostLength: requestHost.count,
                                                     offersDeflate: options.deflate != .off))
        }
        requestTemplates = templates
        keyOffsets = offsets
        func releaseTemplates() { for template in templates { template.deallocate() } }

        do {
            slab = try Slab(capacity: UInt32(assignment.slots))
        } catch {
            releaseTemplates()
            throw LoadError("thread \(assignment.index): \(error)")
        }
        wheelOrigin = now
        wheel = TimingWheel(store: SlabTimerStore(slots: slab.slots), capacity: UInt32(assignment.slots), startTick: 0)
        destinations = .allocate(capacity: options.ports.count)
        for (index, port) in options.ports.enumerated() {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = assignment.destination.bigEndian
            (destinations + index).initialize(to: address)
        }
    }

    deinit {
        plainMessage.deallocate()
        destinations.deallocate()
        for template in requestTemplates { template.deallocate() }
        if wakeDescriptor >= 0 { close(wakeDescriptor) }
    }

    /// `slot`'s handle: ring slot / span, index slot % span.
    @inline(__always)
    private func handle(_ slot: UInt32) -> Int32 {
        RingHandle.make(ring: Int(slot / span), index: Int32(bitPattern: slot % span))
    }

    /// The port (index into `options.ports`) of the connection on `slot`.
    @inline(__always)
    private func portIndex(_ slot: UInt32) -> Int {
        LoadOptions.portIndex(slot: Int(slot), thread: assignment.index, threadCount: assignment.threadCount,
                              portCount: portCount)
    }

    var histograms: (roundTrip: Histogram, latency: Histogram) { (roundTrip, latency) }

    // MARK: - Loop

    func run() {
        while true {
            now = backend.clockNanoseconds
            let phase = control.current
            if phase == .stop { break }
            if phase != phaseSeen { enter(phase) }
            if phase == .ramp { startConnections() }
            expireDeadlines()
            if options.mode == .ping && (phase == .ramp || phase == .hold) { pingSweep() }
            if phase == .verify { verifyStep() }
            if phase == .publish && publishes { publishStep() }
            if phase == .drain { drainCheck() }
            if phase == .close { closeStep() }
            rearmStarved()
            updateDoneFlags()
            publish()
            poll(timeoutNanoseconds: waitNanoseconds())
        }
        publish()
        shared.histograms.withLock { $0 = (roundTrip, latency) }
        if options.mode == .fanout {
            let result = FanoutThreadResult(deliveredPerPort: deliveredPerPort, connectedPerPort: connectedPerPort,
                                            slowest: slowest, latencyPerPort: latencyPerPort)
            shared.fanout.withLock { $0 = result }
        }
    }

    private func enter(_ phase: LoadPhase) {
        phaseSeen = phase
        switch phase {
        case .verify:
            verifyCursor = 0
            verifyDeadline = now + verifyTimeout
        case .close:
            closeCursor = 0
        case .publish:
            publishStart = now
        case .drain:
            nextDrainCheck = now
        default:
            break
        }
    }

    private func publish() {
        counters[.buffersInUse] = queues.pool.outstandingCount
        shared.publish(counters)
    }

    /// How long the loop may sleep: not at all when it can start connections or queue a
    /// batch right now; otherwise until the next token, deadline or ping, at most 50 ms.
    private func waitNanoseconds() -> Int64 {
        var wait = ClientWorker.maximumWaitNanoseconds
        if phaseSeen == .ramp && remainingToStart > 0 && counters[.establishing] < rampConcurrency
            && !slab.isFull
        {
            if assignment.rate <= 0 || tokens >= 1 { return 0 }
            wait = min(wait, max(100_000, Int64((1 - tokens) / assignment.rate * 1e9)))
        }
        if phaseSeen == .verify && verifyCursor < highWater { return 0 }
        if phaseSeen == .close && closeCursor < highWater && closesOutstanding < assignment.concurrency { return 0 }
        if let tick = wheel.nextEventTick() {
            wait = min(wait, max(0, wheelOrigin + Int64(tick) * ClientWorker.tickNanoseconds - now))
        }
        if phaseSeen == .verify { wait = min(wait, max(0, verifyDeadline - now)) }
        if phaseSeen == .publish && publishes && !publishOver {
            let next = scheduledCount < plannedPublishes
                ? publishStart + Int64(scheduledCount) * publishInterval : publishStart + publishDuration
            wait = min(wait, max(0, next - now))
        }
        if phaseSeen == .drain && !drainSettled { wait = min(wait, ClientWorker.drainCheckNanoseconds) }
        if options.mode == .ping && highWater > 0 {
            // Pings leave in batches at most every 20 ms (a few per thread at a time), not
            // one wake-up per ping: a million connections on a 25 s interval are 40,000
            // pings a second, and the client shares the cores with the server.
            wait = min(wait, max(20_000_000, pingInterval / Int64(highWater)))
        }
        return wait
    }

    private func poll(timeoutNanoseconds: Int64) {
        clockStale = true
        backend.poll(timeoutNanoseconds: timeoutNanoseconds, sink: self)
        now = backend.clockNanoseconds
        counters[.cqOverflows] = backend.overflowCount
        counters[.waits] = backend.waitCount
    }

    // MARK: - Slots

    @inline(__always)
    func connection(_ slot: UInt32) -> UnsafeMutablePointer<ClientConnection> { slab.slots + Int(slot) }

    /// Slots below this have been used at least once (the slab's).
    private var highWater: UInt32 { slab.highWater }

    private func allocateSlot() -> UInt32? {
        guard let slot = slab.allocate() else { return nil }
        counters[.live] += 1
        return slot
    }

    /// Returns the slot once its socket is closed and no operation refers to it any more.
    private func releaseIfDone(_ slot: UInt32) {
        let c = connection(slot)
        guard c.pointee.state == .closed, c.pointee.io.isSettled else { return }
        queues.releaseQueue(c, keepingHead: false)
        queues.pool.release(&c.pointee.inbound)
        deflate?.close(slot: slot)
        slab.release(slot)
        counters[.live] -= 1
    }

    @inline(__always)
    private func tag(_ operation: Operation, _ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>) -> UserData {
        UserData(operation, slot: slot, generation: c.pointee.generation)
    }

    // MARK: - Failures

    /// Counts a failure once per connection (a connection that fails twice, say a reset while
    /// its close is timing out, is one lost connection).
    private func fail(_ c: UnsafeMutablePointer<ClientConnection>, _ kind: FailureKind, reason: String) {
        guard !c.pointee.flags.contains(.failed) else { return }
        c.pointee.flags.insert(.failed)
        counters[LoadCounter.failureCounter(kind)] += 1
        if kind == .read || kind == .unexpectedClose { counters[.unexpectedCloses] += 1 }
        shared.failures.withLock { $0.record(kind, reason: reason) }
    }

    private func fail(_ c: UnsafeMutablePointer<ClientConnection>, _ kind: FailureKind, errno: Int32) {
        fail(c, kind, reason: errnoName(errno))
    }

    /// The kind a socket error falls under, by the connection's state.
    private func kindForSocketError(_ c: UnsafeMutablePointer<ClientConnection>) -> FailureKind? {
        switch c.pointee.state {
        case .connecting: return .connect
        case .handshaking: return .handshake
        case .open: return .read
        case .closing: return c.pointee.flags.contains(.closeInitiated) ? .close : .read
        case .closed, .free: return nil
        }
    }

    // MARK: - Connecting

    /// This thread's share of `--concurrency`: an equal split while every thread ramps; as
    /// threads finish starting theirs, the ones still ramping share the whole budget, so a
    /// thread whose handshakes are slow is not held to 1/threads of it at the end of the ramp
    /// (at a million on 50 threads, 82 in flight each).
    private var rampConcurrency: Int {
        let ramping = max(1, control.rampingThreads.load(ordering: .relaxed))
        return max(assignment.concurrency, control.totalConcurrency / ramping)
    }

    private func startConnections() {
        if assignment.rate > 0 {
            let elapsed = Double(now - lastTokenTime) / 1e9
            tokens = min(tokens + elapsed * assignment.rate, max(1, assignment.rate * 0.05))
        }
        lastTokenTime = now
        var started = 0
        let concurrency = rampConcurrency
        while remainingToStart > 0 && counters[.establishing] < concurrency
            && started < ClientWorker.connectBatch && (assignment.rate <= 0 || tokens >= 1)
        {
            guard let slot = allocateSlot() else { break }
            remainingToStart -= 1
            started += 1
            if assignment.rate > 0 { tokens -= 1 }
            startConnect(slot)
        }
        if remainingToStart == 0 && !rampStartedReported {
            rampStartedReported = true
            control.rampingThreads.subtract(1, ordering: .relaxed)
        }
    }

    private func startConnect(_ slot: UInt32) {
        let c = connection(slot)
        c.pointee.state = .connecting
        c.pointee.flags = .establishing
        // A released slot keeps what its last connection left (a decoder stopped mid-frame by
        // a reset, an agreement, echo counts): every connection starts from nothing.
        c.pointee.decoder = FrameDecoder()
        c.pointee.outstanding = 0
        c.pointee.owed = 0
        if publishes && slot == 0 { c.pointee.flags.insert(.publisher) }
        counters[.establishing] += 1
        counters[.attempts] += 1
        let sources = assignment.sources
        let source = sources[(attemptIndex &* assignment.threadCount &+ assignment.index) % sources.count]
        attemptIndex += 1

        let opened = backend.openClientSocket(handle: handle(slot), source: source)
        guard opened == 0 else { return connectFailedEarly(slot, c, errno: -opened) }
        backend.connect(handle: handle(slot), to: destinations + portIndex(slot), tag: tag(.connect, slot, c))
        c.pointee.io.inFlight += 1
        scheduleDeadline(slot, c, nanoseconds: connectTimeout)
    }

    /// socket(), bind() or the fixed-file install failed: nothing is in the table, the slot
    /// goes straight back.
    private func connectFailedEarly(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>, errno: Int32) {
        fail(c, .connect, errno: errno)
        leaveEstablishing(c)
        c.pointee.state = .closed
        releaseIfDone(slot)
    }

    private func connectDone(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>, result: Int32) {
        _ = c.pointee.io.operationDone(.connect, result: result)
        guard c.pointee.state == .connecting else {
            releaseIfDone(slot)
            return
        }
        guard result == 0 else {
            fail(c, .connect, errno: c.pointee.flags.contains(.timedOut) && result == -ECANCELED ? ETIMEDOUT : -result)
            closeSocket(slot, c)
            return
        }
        c.pointee.state = .handshaking
        let port = portIndex(slot)
        let template = requestTemplates[port]
        guard let base = queues.reserve(c, template.count, budget: .exempt) else {
            fail(c, .handshake, errno: ENOMEM)
            closeSocket(slot, c)
            return
        }
        base.copyMemory(from: template.baseAddress!, byteCount: template.count)
        c.pointee.nonceLow = random.next64()
        c.pointee.nonceHigh = random.next64()
        withUnsafeBytes(of: (c.pointee.nonceLow, c.pointee.nonceHigh)) {
            ClientHandshake.writeKey(nonce: $0, into: base + keyOffsets[port])
        }
        if let numberOffset {
            // Unique over the run's threads: slot-major, thread-minor, 8 decimal digits.
            var number = Int(slot) * assignment.threadCount + assignment.index
            for digit in (0..<8).reversed() {
                (base + numberOffset + digit).storeBytes(of: UInt8(ascii: "0") + UInt8(number % 10), as: UInt8.self)
                number /= 10
            }
        }
        queues.commit(c, template.count)
        armReceive(slot, c)
        flushSend(slot, c)
        scheduleDeadline(slot, c, nanoseconds: handshakeTimeout)
    }

    private func leaveEstablishing(_ c: UnsafeMutablePointer<ClientConnection>) {
        if c.pointee.flags.contains(.establishing) {
            c.pointee.flags.remove(.establishing)
            counters[.establishing] -= 1
        }
    }

    private func leaveOpen(_ c: UnsafeMutablePointer<ClientConnection>) {
        if c.pointee.flags.contains(.counted) {
            c.pointee.flags.remove(.counted)
            counters[.open] -= 1
        }
    }

    // MARK: - Deadlines

    /// The wheel's tick at `now`.
    var nowTick: UInt64 { UInt64(max(0, now - wheelOrigin) / ClientWorker.tickNanoseconds) }

    /// Sets the connection's one deadline `nanoseconds` from now (rounded up to a tick),
    /// replacing the one its previous state had.
    private func scheduleDeadline(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>, nanoseconds: Int64) {
        let ticks = (nanoseconds + ClientWorker.tickNanoseconds - 1) / ClientWorker.tickNanoseconds
        wheel.schedule(slot, at: nowTick + UInt64(max(1, ticks)))
    }

    private func expireDeadlines() {
        while let slot = wheel.nextExpired(upTo: nowTick) { deadlinePassed(slot, connection(slot)) }
        verifyDeadlinePassed()
    }

    /// What a passed deadline means depends on the state it was set for.
    private func deadlinePassed(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>) {
        switch c.pointee.state {
        case .connecting:
            guard !c.pointee.flags.contains(.timedOut) else { return }
            // Cancel the connect: its completion (-ECANCELED) then counts ETIMEDOUT.
            c.pointee.flags.insert(.timedOut)
            backend.cancel(tag(.connect, slot, c), handle: handle(slot), tag: tag(.cancelConnect, slot, c))
            c.pointee.io.inFlight += 1
        case .handshaking:
            fail(c, .handshake, errno: ETIMEDOUT)
            closeSocket(slot, c)
        case .closing:
            if !c.pointee.closeHandshake.received {
                // The server never answered the close frame.
                fail(c, c.pointee.flags.contains(.closeInitiated) ? .close : .read, errno: ETIMEDOUT)
            }
            // Close frames were exchanged but TCP is still open: close it ourselves.
            closeSocket(slot, c)
        case .open, .closed, .free:
            preconditionFailure("client slot \(slot): a deadline fired in state \(c.pointee.state)")
        }
    }

    private func verifyDeadlinePassed() {
        if phaseSeen == .verify && now >= verifyDeadline && verifyOutstanding > 0 {
            for slot in 0..<highWater {
                let c = connection(slot)
                if c.pointee.flags.contains(.verifyPending) {
                    c.pointee.flags.remove(.verifyPending)
                    counters[.verifyFailed] += 1
                }
            }
            verifyOutstanding = 0
            verifyCursor = highWater
        }
    }

    // MARK: - Completions (the backend's `CompletionSink`)

    /// Re-reads the clock at the first completion after a wait, as the server's worker does:
    /// a deadline set from the reading before the wait would fire up to a wait early. Found
    /// by the client's simulation (a close deadline 11 ms early).
    @inline(__always)
    private func refreshClockIfStale() {
        if clockStale {
            clockStale = false
            now = backend.clockNanoseconds
        }
    }

    func connected(_ tag: UserData, result: Int32) {
        refreshClockIfStale()
        connectDone(tag.slot, slab.slot(completing: tag, "connect completion"), result: result)
    }

    func received(_ tag: UserData, bytes: UnsafeMutableRawBufferPointer, more: Bool) {
        refreshClockIfStale()
        received(tag.slot, slab.slot(completing: tag, "receive completion"), bytes: bytes, more: more)
    }

    func receiveEnded(_ tag: UserData, result: Int32) {
        refreshClockIfStale()
        receiveEnded(tag.slot, slab.slot(completing: tag, "receive completion"), result: result)
    }

    func sent(_ tag: UserData, result: Int32) {
        refreshClockIfStale()
        sent(tag.slot, slab.slot(completing: tag, "send completion"), result: result)
    }

    /// A cancel or a close (the rules, lost completions included, are `ConnectionIO`'s).
    func operationDone(_ tag: UserData, result: Int32) {
        refreshClockIfStale()
        let c = slab.slot(completing: tag, "cancel or close completion")
        switch c.pointee.io.operationDone(tag.operation, result: result) {
        case .none, .receive: break
        case .send: queues.releaseQueue(c, keepingHead: false)
        }
        releaseIfDone(tag.slot)
    }

    /// Woken through the eventfd: another ring of this thread has work (`URingBackend.poll`
    /// enters it next).
    func woken() {}

    // The server role's callbacks: a client has no listener and asks for no peer address.
    func accepted(handle: Int32) { preconditionFailure("a client thread has no listener") }
    func acceptEnded(result: Int32, retryNow: Bool) { preconditionFailure("a client thread has no listener") }
    func peerAddressDone(_ tag: UserData, result: Int32) { preconditionFailure("a client thread asks for no peer address") }

    // MARK: - Receiving

    private func armReceive(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>) {
        backend.armReceive(c, handle: handle(slot), slot: slot)
    }

    @inline(__always)
    private func wantsToRead(_ c: UnsafeMutablePointer<ClientConnection>) -> Bool {
        switch c.pointee.state {
        case .handshaking, .open, .closing: return true
        default: return false
        }
    }

    private func received(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>, bytes: UnsafeMutableRawBufferPointer, more: Bool) {
        c.pointee.io.received(more: more)
        switch c.pointee.state {
        case .handshaking: handshakeBytes(slot, c, bytes)
        case .open, .closing: frameBytes(slot, c, bytes)
        default: break
        }
        if !more {
            // A multishot receive ended with data (a CQ overflow ends them): re-arm.
            if c.pointee.io.needsReceive(wantsToRead: wantsToRead(c)) { armReceive(slot, c) }
            releaseIfDone(slot)
        }
    }

    private func receiveEnded(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>, result: Int32) {
        switch c.pointee.io.receiveEnded(result: result, wantsToRead: wantsToRead(c)) {
        case .outOfBuffers(let park):
            // Backpressure, not EOF: re-armed at the end of the batch.
            counters[.enobufs] += 1
            if park { starved.park(slot) }
        case .cancelled:
            break
        case .endOfFile:
            switch c.pointee.state {
            case .handshaking: fail(c, .handshake, reason: "EOF")
            case .open: fail(c, .unexpectedClose, reason: "EOF")
            case .closing:
                if !c.pointee.flags.contains(.closeReceived) {
                    fail(c, c.pointee.flags.contains(.closeInitiated) ? .close : .read, reason: "EOF")
                }
            default: break
            }
            closeSocket(slot, c)
        case .failed(let errno):
            if let kind = kindForSocketError(c) {
                if !(c.pointee.state == .closing && c.pointee.flags.contains(.closeReceived)) {
                    fail(c, kind, errno: errno)
                }
                closeSocket(slot, c)
            }
        }
        releaseIfDone(slot)
    }

    private func rearmStarved() {
        starved.rearm(in: slab.slots) { slot, c in
            if c.pointee.io.needsReceive(wantsToRead: wantsToRead(c)) {
                armReceive(slot, c)
            } else {
                releaseIfDone(slot)
            }
        }
    }

    // MARK: - Handshake

    private func handshakeBytes(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>, _ bytes: UnsafeMutableRawBufferPointer) {
        if !c.pointee.inbound.isAllocated {
            // The usual case: the whole response in one receive, parsed where it lies.
            let step = parseResponse(c, UnsafeRawBufferPointer(bytes), searched: 0)
            if case .needMore = step {
                // The parser asks for more only below `inboundLimitBytes`, so this fits.
                guard var buffer = queues.pool.acquire(minimumBytes: inboundLimitBytes) else {
                    fail(c, .handshake, errno: ENOMEM)
                    return closeSocket(slot, c)
                }
                buffer.base!.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
                buffer.count = UInt32(bytes.count)
                c.pointee.inbound = buffer
                return
            }
            completeHandshake(slot, c, step, bytes)
            return
        }
        // The response came in pieces: gather them (the parser stops at `inboundLimitBytes`).
        let length = Int(c.pointee.inbound.count)
        let room = inboundLimitBytes - length
        let take = min(room, bytes.count)
        (c.pointee.inbound.base! + length).copyMemory(from: bytes.baseAddress!, byteCount: take)
        c.pointee.inbound.count += UInt32(take)
        var buffer = c.pointee.inbound
        let gathered = UnsafeMutableRawBufferPointer(start: buffer.base, count: Int(buffer.count))
        let step = parseResponse(c, UnsafeRawBufferPointer(gathered), searched: length)
        if case .needMore = step { return }
        // Detach the buffer first: frames behind the head may need one of their own.
        c.pointee.inbound = PooledBuffer()
        completeHandshake(slot, c, step, gathered)
        if take < bytes.count && (c.pointee.state == .open || c.pointee.state == .closing) {
            frameBytes(slot, c, UnsafeMutableRawBufferPointer(rebasing: bytes[take...]))
        }
        queues.pool.release(&buffer)
    }

    /// Parses the response head received so far, resuming after the `searched` bytes an
    /// earlier call already looked through (the gathered length before this piece: a parse
    /// that asked for more searched everything it was given), so the slot keeps no parser.
    private func parseResponse(
        _ c: UnsafeMutablePointer<ClientConnection>, _ bytes: UnsafeRawBufferPointer, searched: Int
    ) -> UpgradeResponseStep {
        withUnsafeTemporaryAllocation(byteCount: ClientHandshake.keyLength, alignment: 1) { key in
            withUnsafeBytes(of: (c.pointee.nonceLow, c.pointee.nonceHigh)) {
                ClientHandshake.writeKey(nonce: $0, into: key.baseAddress!)
            }
            var parser = UpgradeResponseParser(resumingAfter: searched)
            return parser.parse(bytes, key: UnsafeRawBufferPointer(key), maxHeadBytes: inboundLimitBytes,
                                                  offeredDeflate: deflate != nil)
        }
    }

    private func completeHandshake(
        _ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>, _ step: UpgradeResponseStep,
        _ bytes: UnsafeMutableRawBufferPointer
    ) {
        switch step {
        case .needMore:
            return
        case .failed(let failure):
            fail(c, .handshake, reason: failure.name)
            closeSocket(slot, c)
        case .accepted(let headLength, let agreed):
            if let deflate {
                // --deflate measures compression: a connection the server keeps plain would
                // measure something else, so it fails.
                guard let agreed else {
                    fail(c, .handshake, reason: "DEFLATE_DECLINED")
                    return closeSocket(slot, c)
                }
                deflate.open(slot: slot, agreed)
                c.pointee.decoder.acceptsCompressedMessages = true
            }
            leaveEstablishing(c)
            wheel.cancel(slot)
            c.pointee.state = .open
            // The nonce is checked; its bytes now serve fanout (`prefixHigh`, `sequenceEnd`).
            c.pointee.nonceLow = 0
            c.pointee.nonceHigh = 0
            c.pointee.flags.insert(.counted)
            counters[.open] += 1
            counters[.handshakes] += 1
            counters[.lastHandshakeNanoseconds] = max(counters[.lastHandshakeNanoseconds], Int(now - control.startNanoseconds))
            connectedPerPort[portIndex(slot)] += 1
            opened(slot, c)
            if headLength < bytes.count && (c.pointee.state == .open || c.pointee.state == .closing) {
                frameBytes(slot, c, UnsafeMutableRawBufferPointer(rebasing: bytes[headLength...]))
            }
        }
    }

    /// A connection just upgraded: what it does depends on the mode and the phase.
    private func opened(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>) {
        if options.mode == .churn || phaseSeen == .close {
            startClose(slot, c)
        } else if options.mode == .echo && (phaseSeen == .ramp || phaseSeen == .hold) {
            c.pointee.owed = UInt16(options.depth)
            fillEcho(slot, c)
        }
    }

    // MARK: - Frames

    private func frameBytes(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>, _ bytes: UnsafeMutableRawBufferPointer) {
        var offset = 0
        while true {
            switch c.pointee.decoder.next(bytes, offset: &offset, configuration: decoderConfiguration) {
            case .needMore:
                return
            case .failure(let code):
                // The server broke the protocol: fail the connection (RFC 6455 section 7.1.7).
                if let kind = kindForSocketError(c) { fail(c, kind, reason: "PROTOCOL_\(code.rawValue)") }
                closeSocket(slot, c)
                return
            case .chunk(let chunk):
                handleChunk(slot, c, chunk)
                let state = c.pointee.state
                if state != .open && state != .closing { return }
            }
        }
    }

    private func handleChunk(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>, _ chunk: FrameChunk) {
        switch chunk.opcode {
        case .text, .binary:
            if chunk.isCompressed { return compressedChunk(slot, c, chunk) }
            if chunk.isMessageStart { startMessage(c) }
            absorb(c, UnsafeRawBufferPointer(chunk.bytes))
            if chunk.isMessageEnd { messageReceived(slot, c) }
        case .ping, .pong, .close:
            // Which control frame asks for what is the engine's `ControlFrame` (both roles);
            // what doing it means for a load-generating client is here.
            var payload = UnsafeRawBufferPointer(chunk.bytes)
            var assembled = PooledBuffer()
            if !(chunk.isFrameStart && chunk.isFrameEnd) {
                if chunk.isFrameStart && c.pointee.flags.contains(.gatheringCompressed) {
                    // `inbound` holds the compressed message this control frame came between
                    // the fragments of; a second buffer would cost every slot.
                    fail(c, kindForSocketError(c) ?? .read, reason: "SPLIT_CONTROL_FRAME_IN_COMPRESSED_MESSAGE")
                    return closeSocket(slot, c)
                }
                switch ControlFrame.gather(chunk, into: &c.pointee.inbound, pool: queues.pool) {
                case .partial: return
                case .outOfMemory:
                    fail(c, kindForSocketError(c) ?? .read, errno: ENOMEM)
                    return closeSocket(slot, c)
                case .whole(let whole): assembled = whole
                }
                payload = UnsafeRawBufferPointer(assembled.bytes)
            }
            defer { queues.pool.release(&assembled) }
            switch ControlFrame.action(chunk.opcode, closeCode: chunk.closeCode, handshake: &c.pointee.closeHandshake) {
            case .answerPing:
                if queueFrame(slot, c, opcode: .pong, payload: payload) { counters[.serverPingsAnswered] += 1 }
            case .ignorePing:
                break
            case .pong:
                counters[.pongsReceived] += 1
                c.pointee.flags.remove(.pingOutstanding)
                if payload.count == 8 {
                    let sent = Int64(bitPattern: payload.loadUnaligned(as: UInt64.self))
                    let received = backend.clockNanoseconds
                    if sent > 0 && sent <= received { roundTrip.record(UInt64(received - sent)) }
                }
            case .close(let step):
                peerClosed(slot, c, step, code: chunk.closeCode)
            }
        case .continuation:
            break  // the decoder reports continuations as their message's opcode
        }
    }

    private func startMessage(_ c: UnsafeMutablePointer<ClientConnection>) {
        c.pointee.prefix = 0
        c.pointee.prefixHigh = 0
        c.pointee.prefixCount = 0
        c.pointee.messageLength = 0
    }

    /// The next bytes of a data message: the first `prefixLimit` are kept, the rest counted.
    @inline(__always)
    private func absorb(_ c: UnsafeMutablePointer<ClientConnection>, _ bytes: UnsafeRawBufferPointer) {
        var index = 0
        while c.pointee.prefixCount < prefixLimit && index < bytes.count {
            let byte = UInt64(bytes[index])
            let position = UInt64(c.pointee.prefixCount)
            if position < 8 {
                c.pointee.prefix |= byte << (position * 8)
            } else {
                c.pointee.prefixHigh |= byte << ((position - 8) * 8)
            }
            c.pointee.prefixCount += 1
            index += 1
        }
        let length = UInt64(c.pointee.messageLength) + UInt64(bytes.count)
        c.pointee.messageLength = UInt32(min(length, UInt64(UInt32.max)))
    }

    /// A piece of a compressed data message (`--deflate`, RSV1 on its first frame). The
    /// thread's decompressor takes a message only once it is whole, so two connections'
    /// pieces never mix in it: a message in one piece (the usual case) is inflated where it
    /// lies, one in pieces is gathered in `inbound` first, up to `maxCompressedBytes`.
    private func compressedChunk(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>, _ chunk: FrameChunk) {
        guard let deflate else { preconditionFailure("RSV1 accepted without an agreement") }
        let isText = chunk.opcode == .text
        if chunk.isMessageStart && chunk.isMessageEnd {
            return inflated(slot, c, deflate.inflate(UnsafeRawBufferPointer(chunk.bytes), isText: isText, slot: slot))
        }
        if chunk.isMessageStart {
            queues.pool.release(&c.pointee.inbound)
            c.pointee.flags.insert(.gatheringCompressed)
        }
        guard Int(c.pointee.inbound.count) + chunk.bytes.count <= deflate.maxCompressedBytes,
              let destination = queues.pool.reserve(chunk.bytes.count, in: &c.pointee.inbound)
        else {
            fail(c, kindForSocketError(c) ?? .read, reason: "COMPRESSED_MESSAGE_TOO_LARGE")
            return closeSocket(slot, c)
        }
        if chunk.bytes.count > 0 { destination.copyMemory(from: chunk.bytes.baseAddress!, byteCount: chunk.bytes.count) }
        c.pointee.inbound.count += UInt32(chunk.bytes.count)
        guard chunk.isMessageEnd else { return }
        var gathered = c.pointee.inbound
        c.pointee.inbound = PooledBuffer()
        c.pointee.flags.remove(.gatheringCompressed)
        let result = deflate.inflate(UnsafeRawBufferPointer(start: gathered.base, count: Int(gathered.count)),
                                     isText: isText, slot: slot)
        queues.pool.release(&gathered)
        inflated(slot, c, result)
    }

    private func inflated(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>, _ result: ClientDeflate.Inflated) {
        switch result {
        case .message(let bytes):
            counters[.messagesInflated] += 1
            startMessage(c)
            absorb(c, bytes)
            messageReceived(slot, c)
        case .failure(let reason):
            if let kind = kindForSocketError(c) { fail(c, kind, reason: reason) }
            closeSocket(slot, c)
        }
    }

    /// Payload bytes kept from the start of each data message: 8 (a send time or a token),
    /// fanout 16 (send time and sequence).
    private var prefixLimit: UInt8 { options.mode == .fanout ? UInt8(FanoutMessage.headerBytes) : 8 }

    private func messageReceived(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>) {
        if options.mode == .fanout {
            fanoutReceived(slot, c)
            return
        }
        if c.pointee.flags.contains(.verifyPending) {
            c.pointee.flags.remove(.verifyPending)
            verifyOutstanding -= 1
            if c.pointee.messageLength == 8 && c.pointee.prefixCount == 8 && c.pointee.prefix == verifyToken(slot, c) {
                counters[.verifyOK] += 1
            } else {
                counters[.verifyFailed] += 1
            }
            return
        }
        if options.mode == .echo && c.pointee.outstanding > 0 {
            c.pointee.outstanding -= 1
            counters[.messagesReceived] += 1
            if phaseSeen == .hold && c.pointee.prefixCount == 8 {
                let sent = Int64(bitPattern: c.pointee.prefix)
                let received = backend.clockNanoseconds
                if sent > 0 && sent <= received { latency.record(UInt64(received - sent)) }
            }
            if c.pointee.state == .open && (phaseSeen == .ramp || phaseSeen == .hold) {
                c.pointee.owed += 1
                fillEcho(slot, c)
            }
            return
        }
        counters[.unexpectedMessages] += 1
    }

    /// The server's close frame, as `CloseHandshake` read it: the answer to ours, or its own
    /// close that we answer (echoing its code).
    private func peerClosed(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>, _ step: CloseHandshake.Step, code: CloseCode) {
        switch step {
        case .ignored:
            return
        case .completed:
            // Our close handshake is complete; the server closes TCP next (we wait for the
            // EOF, bounded by the close deadline, so the TIME_WAIT stays on the server side).
            if c.pointee.flags.contains(.closeInitiated) { counters[.cleanCloses] += 1 }
        case .answer(let answer):
            // The server closed first while we held the connection: a lost connection.
            if c.pointee.state == .open { fail(c, .unexpectedClose, reason: "CLOSE_\(code.rawValue)") }
            failVerifyIfPending(c)
            leaveOpen(c)
            var payload = (answer?.rawValue ?? 0).bigEndian
            let length = answer == nil ? 0 : 2
            withUnsafeBytes(of: &payload) {
                _ = queueFrame(slot, c, opcode: .close, payload: UnsafeRawBufferPointer(rebasing: $0[..<length]))
            }
            c.pointee.state = .closing
            scheduleDeadline(slot, c, nanoseconds: closeTimeout)
        }
    }

    private func failVerifyIfPending(_ c: UnsafeMutablePointer<ClientConnection>) {
        if c.pointee.flags.contains(.verifyPending) {
            c.pointee.flags.remove(.verifyPending)
            verifyOutstanding -= 1
            counters[.verifyFailed] += 1
        }
    }

    // MARK: - Sending

    /// Appends a masked frame to the connection's queue and starts a send if none is in
    /// flight. False when the queue is full (the frame is dropped and counted).
    @discardableResult
    private func queueFrame(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>, opcode: Opcode,
                            payload: UnsafeRawBufferPointer) -> Bool {
        guard c.pointee.state != .closed && c.pointee.state != .free else { return false }
        let size = FrameEncoder.frameSize(payloadLength: payload.count, masked: true)
        guard let destination = reserve(c, size) else {
            counters[.droppedFrames] += 1
            return false
        }
        FrameEncoder.writeFrame(into: destination, opcode: opcode, payload: payload, maskKey: random.next32())
        queues.commit(c, size)
        flushSend(slot, c)
        return true
    }

    /// Room for `size` more bytes at the end of the connection's queue (write them, then
    /// `queues.commit`), or nil when that would take the queue past its bound.
    private func reserve(_ c: UnsafeMutablePointer<ClientConnection>, _ size: Int) -> UnsafeMutableRawPointer? {
        let limit = c.pointee.flags.contains(.publisher) ? publisherSendLimitBytes : sendLimitBytes
        guard Int(queues.queuedBytes(c)) + size <= limit else { return nil }
        return queues.reserve(c, size, budget: .exempt)
    }

    /// echo: queues the messages owed, each carrying its send time in its first 8 bytes.
    private func fillEcho(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>) {
        while c.pointee.owed > 0, queueData(slot, c, sequence: nil) {
            c.pointee.owed -= 1
            c.pointee.outstanding += 1
            counters[.messagesSent] += 1
        }
        flushSend(slot, c)
    }

    /// Queues one data message of `--size` bytes: its send time (and fanout's sequence), then
    /// the next body (`--payload`); with `--deflate both` compressed, RSV1 set. False when the
    /// send queue has no room for it, or when compressing failed (the connection is failed).
    private func queueData(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>, sequence: UInt64?) -> Bool {
        let body = bodies.take()
        guard options.deflate == .both, let deflate else {
            let payloadLength = options.messageSizeBytes
            let size = FrameEncoder.frameSize(payloadLength: payloadLength, masked: true)
            guard let destination = reserve(c, size) else { return false }
            let key = random.next32()
            let header = FrameEncoder.writeHeader(into: destination, opcode: .binary, payloadLength: payloadLength, maskKey: key)
            let payload = UnsafeMutableRawBufferPointer(start: destination + header, count: payloadLength)
            writeMessage(into: payload, body: body, sequence: sequence)
            Masking.apply(key: key, keyOffset: 0, to: payload)
            queues.commit(c, size)
            return true
        }
        // The send time is taken before compressing: the latency includes it, as a real
        // sender's does.
        writeMessage(into: plainMessage, body: body, sequence: sequence)
        guard let compressed = deflate.compress(UnsafeRawBufferPointer(plainMessage), slot: slot) else {
            fail(c, kindForSocketError(c) ?? .read, reason: "DEFLATE_FAILED")
            closeSocket(slot, c)
            return false
        }
        let size = FrameEncoder.frameSize(payloadLength: compressed.count, masked: true)
        guard let destination = reserve(c, size) else { return false }
        let key = random.next32()
        let header = FrameEncoder.writeHeader(into: destination, opcode: .binary, compressed: true,
                                              payloadLength: compressed.count, maskKey: key)
        let payload = UnsafeMutableRawBufferPointer(start: destination + header, count: compressed.count)
        payload.copyMemory(from: compressed)
        Masking.apply(key: key, keyOffset: 0, to: payload)
        queues.commit(c, size)
        counters[.messagesCompressed] += 1
        return true
    }

    /// A data message's plain bytes: send time, fanout's sequence, body.
    @inline(__always)
    private func writeMessage(into payload: UnsafeMutableRawBufferPointer, body: UnsafeRawBufferPointer, sequence: UInt64?) {
        let headerBytes = payload.count - body.count
        if body.count > 0 { (payload.baseAddress! + headerBytes).copyMemory(from: body.baseAddress!, byteCount: body.count) }
        if let sequence { payload.storeBytes(of: sequence.littleEndian, toByteOffset: 8, as: UInt64.self) }
        payload.storeBytes(of: UInt64(bitPattern: backend.clockNanoseconds).littleEndian, as: UInt64.self)
    }

    /// Starts sending the queue's first segment when no send is in flight (one per
    /// connection, so frames leave in order).
    private func flushSend(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>) {
        guard !c.pointee.io.flags.contains(.sendInFlight), c.pointee.sendHead != SendSegment.none,
              c.pointee.state != .closed
        else { return }
        submitSend(slot, c)
    }

    private func submitSend(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>) {
        backend.send(c, handle: handle(slot), slot: slot, bytes: queues.headBytes(c))
    }

    private func sent(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>, result: Int32) {
        c.pointee.io.sendCompleted()
        if result < 0 {
            queues.releaseQueue(c, keepingHead: false)
            if result != -ECANCELED, let kind = kindForSocketError(c) {
                if !(c.pointee.state == .closing && c.pointee.flags.contains(.closeReceived)) { fail(c, kind, errno: -result) }
                closeSocket(slot, c)
            }
            releaseIfDone(slot)
            return
        }
        if queues.sent(c, byteCount: Int(result)) && c.pointee.state != .closed {
            submitSend(slot, c)  // a short send: the rest goes next
            return
        }
        queues.popHead(c)
        if c.pointee.state == .closed {
            queues.releaseQueue(c, keepingHead: false)
            releaseIfDone(slot)
            return
        }
        flushSend(slot, c)
    }

    // MARK: - Closing

    /// Our close handshake: close frame 1000, then wait for the server's close frame and its
    /// TCP close (bounded by the close timeout).
    private func startClose(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>) {
        guard c.pointee.state == .open, c.pointee.closeHandshake.start() else { return }
        leaveOpen(c)
        failVerifyIfPending(c)
        var code = CloseCode.normalClosure.rawValue.bigEndian
        withUnsafeBytes(of: &code) { _ = queueFrame(slot, c, opcode: .close, payload: UnsafeRawBufferPointer($0)) }
        c.pointee.flags.insert(.closeInitiated)
        c.pointee.state = .closing
        closesOutstanding += 1
        scheduleDeadline(slot, c, nanoseconds: closeTimeout)
    }

    /// Closes the socket now: cancels what is armed, then close_direct on the fixed file
    /// (an armed receive would otherwise keep the socket alive). The slot returns once every
    /// completion is in.
    private func closeSocket(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>) {
        guard c.pointee.state != .closed && c.pointee.state != .free else { return }
        leaveEstablishing(c)
        leaveOpen(c)
        failVerifyIfPending(c)
        if c.pointee.flags.contains(.closeInitiated) { closesOutstanding -= 1 }
        c.pointee.state = .closed
        wheel.cancel(slot)
        // A send in flight still reads the queue's first segment: it goes with that completion.
        queues.releaseQueue(c, keepingHead: c.pointee.io.flags.contains(.sendInFlight))
        queues.pool.release(&c.pointee.inbound)
        backend.closeSocket(c, handle: handle(slot), slot: slot)
    }

    // MARK: - Phases

    private func verifyToken(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>) -> UInt64 {
        (UInt64(slot) | c.pointee.generation << 32) ^ 0x5EC0_DE5E_C0DE_5EC0
    }

    /// --verify-echo: one 8-byte message (a token naming the slot) on every open connection,
    /// a batch per loop iteration.
    private func verifyStep() {
        var queued = 0
        while verifyCursor < highWater && queued < ClientWorker.phaseBatch {
            let slot = verifyCursor
            verifyCursor += 1
            let c = connection(slot)
            guard c.pointee.state == .open, !c.pointee.flags.contains(.closeSent) else { continue }
            var token = verifyToken(slot, c).littleEndian
            let sent = withUnsafeBytes(of: &token) { queueFrame(slot, c, opcode: .binary, payload: UnsafeRawBufferPointer($0)) }
            if sent {
                c.pointee.flags.insert(.verifyPending)
                verifyOutstanding += 1
            } else {
                counters[.verifyFailed] += 1
            }
            queued += 1
        }
    }

    /// Closes every open connection, a batch per loop iteration.
    private func closeStep() {
        var closed = 0
        while closeCursor < highWater && closed < ClientWorker.phaseBatch && closesOutstanding < assignment.concurrency {
            let slot = closeCursor
            closeCursor += 1
            let c = connection(slot)
            if c.pointee.state == .open {
                startClose(slot, c)
                closed += 1
            }
        }
    }

    /// ping mode: walks the slots at a pace that visits each once per interval and pings the
    /// open ones with no ping outstanding. The payload is the send time (8 bytes), which the
    /// pong brings back.
    private func pingSweep() {
        let span = highWater
        defer { lastPingSweep = now }
        guard span > 0 else { return }
        pingBudget = min(pingBudget + Double(span) * Double(now - lastPingSweep) / Double(pingInterval), Double(span))
        var visits = Int(pingBudget)
        pingBudget -= Double(visits)
        while visits > 0 {
            visits -= 1
            let slot = pingCursor % span
            pingCursor = (slot + 1) % span
            let c = connection(slot)
            guard c.pointee.state == .open, !c.pointee.flags.contains(.closeSent),
                  !c.pointee.flags.contains(.pingOutstanding) else { continue }
            var stamp = UInt64(bitPattern: backend.clockNanoseconds).littleEndian
            let sent = withUnsafeBytes(of: &stamp) { queueFrame(slot, c, opcode: .ping, payload: UnsafeRawBufferPointer($0)) }
            if sent {
                c.pointee.flags.insert(.pingOutstanding)
                counters[.pingsSent] += 1
            }
        }
    }

    // MARK: - Fanout

    /// The publisher (slot 0 of thread 0): message k leaves at publish start + k x interval,
    /// stamped with the time it is written; late ones (after a long completion batch) leave
    /// at once, so the count stays as planned. The publishing is over once every message's
    /// time has come and the duration has passed, or when the publisher can no longer send.
    private func publishStep() {
        guard !publishOver else { return }
        let c = connection(0)
        guard highWater > 0, c.pointee.state == .open, !c.pointee.flags.contains(.closeSent) else {
            publishOver = true
            return
        }
        while scheduledCount < plannedPublishes && now >= publishStart + Int64(scheduledCount) * publishInterval {
            if sendPublish(c, sequence: scheduledCount) {
                publishedCount += 1
                counters[.messagesSent] += 1
                control.sequenceEnd.store(scheduledCount + 1, ordering: .relaxed)
            }
            scheduledCount += 1
        }
        flushSend(0, c)
        if scheduledCount == plannedPublishes && now >= publishStart + publishDuration { publishOver = true }
    }

    /// Queues message `sequence` on the publisher; false when its send queue is full (the
    /// message is skipped and counted as a dropped frame).
    private func sendPublish(_ c: UnsafeMutablePointer<ClientConnection>, sequence: Int) -> Bool {
        guard queueData(0, c, sequence: UInt64(sequence)) else {
            if c.pointee.state == .open { counters[.droppedFrames] += 1 }
            return false
        }
        return true
    }

    /// A fanout message arrived: a delivery, a duplicate or out of order, by the sequence
    /// the connection received last. Allocates nothing.
    @inline(__always)
    private func fanoutReceived(_ slot: UInt32, _ c: UnsafeMutablePointer<ClientConnection>) {
        let sequence = c.pointee.prefixHigh
        guard c.pointee.prefixCount == UInt8(FanoutMessage.headerBytes),
              c.pointee.messageLength == UInt32(options.messageSizeBytes), sequence < UInt64(plannedPublishes)
        else {
            counters[.unexpectedMessages] += 1
            return
        }
        counters[.messagesReceived] += 1
        let end = UInt32(sequence) + 1
        let last = c.pointee.sequenceEnd
        if end == last {
            counters[.duplicated] += 1
            return
        }
        if end < last {
            // Lower than the last one: TCP and the server keep a topic's order, so this one
            // is late (or a copy of an older one; only the last sequence is kept).
            counters[.outOfOrder] += 1
        } else {
            c.pointee.sequenceEnd = end
        }
        counters[.delivered] += 1
        let port = portIndex(slot)
        deliveredPerPort[port] += 1
        let sent = Int64(bitPattern: c.pointee.prefix)
        let received = backend.clockNanoseconds
        if sent > 0 && sent <= received {
            let elapsed = UInt64(received - sent)
            latency.record(elapsed)
            latencyPerPort[port].record(elapsed)
            if elapsed > slowest[Int(sequence)] { slowest[Int(sequence)] = elapsed }
        }
    }

    /// The drain: settled once every open connection has the last published message (TCP
    /// delivers in order, so nothing older can still come); checked every 10 ms.
    private func drainCheck() {
        guard !drainSettled, now >= nextDrainCheck else { return }
        nextDrainCheck = now + ClientWorker.drainCheckNanoseconds
        let end = UInt32(control.sequenceEnd.load(ordering: .acquiring))
        guard end > 0 else {
            drainSettled = true
            return
        }
        for slot in 0..<highWater {
            let c = connection(slot)
            if c.pointee.state == .open && c.pointee.sequenceEnd < end { return }
        }
        drainSettled = true
    }

    private func updateDoneFlags() {
        let rampDone = options.mode == .churn
            ? remainingToStart == 0 && counters[.live] == 0
            : remainingToStart == 0 && counters[.establishing] == 0
        counters[.rampDone] = rampDone ? 1 : 0
        counters[.verifyDone] = phaseSeen == .verify && verifyCursor >= highWater && verifyOutstanding == 0 ? 1 : 0
        counters[.closeDone] = phaseSeen == .close && closeCursor >= highWater && counters[.live] == 0 ? 1 : 0
        counters[.publishDone] = publishes && publishOver ? 1 : 0
        counters[.drainDone] = drainSettled ? 1 : 0
    }
}
