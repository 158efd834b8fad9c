import WebSocketCodec

/// The knobs a worker uses on its hot path, converted once to its own units (ticks, bytes).
struct WorkerSettings {
    let tickNanoseconds: Int64
    let handshakeTicks: UInt32
    /// 0: pings off.
    let pingTicks: UInt32
    let pongTicks: UInt32
    /// 0: idle timeout off.
    let idleTicks: UInt32
    let closeTicks: UInt32
    let shutdownTicks: UInt32
    let maxQueuedBytes: Int
    let maxHeaderBytes: Int
    /// MYRIAD_BUFFER_BUDGET for this worker's pool.
    let bufferBudgetBytes: Int
    let decoder: FrameDecoderConfiguration

    init(_ config: Config, memoryBytes: Int = memoryLimitBytes()) {
        let tick = config.timerTickMilliseconds
        func ticks(_ milliseconds: Int) -> UInt32 {
            milliseconds == 0 ? 0 : UInt32(max(1, (milliseconds + tick - 1) / tick))
        }
        tickNanoseconds = Int64(tick) * 1_000_000
        handshakeTicks = ticks(config.handshakeTimeoutMilliseconds)
        pingTicks = ticks(config.pingIntervalMilliseconds)
        pongTicks = ticks(config.pongTimeoutMilliseconds)
        idleTicks = ticks(config.idleTimeoutMilliseconds)
        closeTicks = ticks(config.closeTimeoutMilliseconds)
        shutdownTicks = ticks(config.shutdownTimeoutMilliseconds)
        maxQueuedBytes = config.maxQueuedBytes
        maxHeaderBytes = config.maxHeaderBytes
        bufferBudgetBytes = config.bufferBudgetPerWorker(memoryBytes: memoryBytes)
        decoder = FrameDecoderConfiguration(role: .server, maxMessageSizeBytes: UInt64(config.maxMessageSizeBytes))
    }
}

/// The part of a worker that connection handles reach: the slab, the timing wheel, the
/// buffer pool, the counters and the list of connections with bytes to flush.
///
/// It never performs I/O itself. Sends are queued into the connection's pending buffer and
/// the connection is linked into the flush list; closes change the connection's state. The
/// worker's event loop turns both into backend operations once per batch, so every send and
/// ping due in one batch leaves with one submit.
final class WorkerCore {
    let index: Int
    let settings: WorkerSettings
    let slab: Slab
    let wheel: TimingWheel<SlabTimerStore>
    let pool: BufferPool
    let counters = WorkerCounters()
    /// The clock and the flush list, by pointer: read on every event, so kept out of class
    /// stored `var`s (each access to one is a dynamic exclusivity check).
    private let state: UnsafeMutablePointer<(nowTick: UInt64, flushHead: UInt32, flushTail: UInt32)>

    /// The current wheel tick (set once per loop iteration from the monotonic clock).
    var nowTick: UInt64 {
        @inline(__always) get { state.pointee.nowTick }
        @inline(__always) set { state.pointee.nowTick = newValue }
    }

    init(index: Int, settings: WorkerSettings, capacity: UInt32) throws(SystemError) {
        self.index = index
        self.settings = settings
        slab = try Slab(capacity: capacity)
        wheel = TimingWheel(store: SlabTimerStore(slots: slab.slots), capacity: capacity, startTick: 0)
        pool = BufferPool(budgetBytes: settings.bufferBudgetBytes)
        state = .allocate(capacity: 1)
        state.initialize(to: (0, Connection.noSlot, Connection.noSlot))
    }

    deinit { state.deallocate() }

    /// `nowTick` as stored in connections (wrapping 32-bit ticks).
    @inline(__always)
    var now32: UInt32 { UInt32(truncatingIfNeeded: nowTick) }

    /// The absolute tick `ticks` after the 32-bit stamp `stamp` (which is at most 2^31
    /// ticks in the past or future).
    @inline(__always)
    func absoluteTick(_ stamp: UInt32, plus ticks: UInt32) -> UInt64 {
        let offset = Int64(Int32(bitPattern: stamp &- now32)) + Int64(ticks)
        return UInt64(max(Int64(nowTick) + offset, Int64(nowTick)))
    }

    /// The ID of the connection in `slot` now.
    @inline(__always)
    func id(of slot: UInt32) -> ConnectionID {
        ConnectionID(worker: UInt16(truncatingIfNeeded: index), slot: slot, generation: slab[slot].pointee.generation)
    }

    /// The connection `id` names, if it is this worker's and still in its slot.
    @inline(__always)
    func live(_ id: ConnectionID) -> UnsafeMutablePointer<Connection>? {
        guard Int(id.worker) == index else { return nil }
        return slab.live(id)
    }

    // MARK: - Flush list

    /// Links `slot` into the flush list (once).
    @inline(__always)
    func markForFlush(_ slot: UInt32, _ connection: UnsafeMutablePointer<Connection>) {
        guard !connection.pointee.flags.contains(.inFlushList) else { return }
        connection.pointee.flags.insert(.inFlushList)
        connection.pointee.listNext = Connection.noSlot
        if state.pointee.flushTail == Connection.noSlot {
            state.pointee.flushHead = slot
        } else {
            slab[state.pointee.flushTail].pointee.listNext = slot
        }
        state.pointee.flushTail = slot
    }

    /// Unlinks and returns the first connection of the flush list.
    @inline(__always)
    func popFlush() -> UInt32? {
        let slot = state.pointee.flushHead
        guard slot != Connection.noSlot else { return nil }
        let connection = slab[slot]
        state.pointee.flushHead = connection.pointee.listNext
        if state.pointee.flushHead == Connection.noSlot { state.pointee.flushTail = Connection.noSlot }
        connection.pointee.listNext = Connection.noSlot
        connection.pointee.flags.remove(.inFlushList)
        return slot
    }

    // MARK: - Queueing frames

    /// Queues a message for `id` if it is open.
    func send(to id: ConnectionID, opcode: Opcode, payload: UnsafeRawBufferPointer) -> SendResult {
        guard let connection = live(id), connection.pointee.state == .open else { return .closed }
        let result = queueFrame(id.slot, connection, opcode: opcode, payload: payload)
        if result == .queued {
            connection.pointee.lastMessageTick = now32
            counters.add(.messagesOut)
        }
        return result
    }

    /// Appends one frame to the connection's pending buffer.
    ///
    /// MYRIAD_MAX_QUEUED_BYTES bounds the backlog, not the size of a message: a frame that
    /// finds nothing waiting is always queued (so a message larger than the limit can still
    /// be sent, or echoed), while one that would take waiting bytes past the limit marks the
    /// connection for closing as a slow consumer and queues nothing. Data frames count against
    /// the worker's MYRIAD_BUFFER_BUDGET; past it the connection is closed with 1013.
    @inline(__always)
    func queueFrame(
        _ slot: UInt32, _ connection: UnsafeMutablePointer<Connection>, opcode: Opcode,
        payload: UnsafeRawBufferPointer, closeCode: CloseCode? = nil
    ) -> SendResult {
        let payloadCount = closeCode == nil ? payload.count : FrameEncoder.closePayloadSize(code: closeCode, reason: payload)
        let frameSize = FrameEncoder.frameSize(payloadLength: payloadCount, masked: false)
        let queued = connection.pointee.queuedBytes
        if queued > 0 && queued + frameSize > settings.maxQueuedBytes {
            requestAbort(slot, connection, cause: .slowConsumer)
            return .slowConsumer
        }
        let budget: PoolBudget = opcode.isControl ? .exempt : .outbound
        guard let destination = pool.reserve(frameSize, in: &connection.pointee.sendPending, budget: budget) else {
            if pool.lastFailure == .overBudget {
                closeOverBudget(slot, connection)
                return .memoryBudget
            }
            requestAbort(slot, connection, cause: .outOfMemory)
            return .closed
        }
        let headerSize = FrameEncoder.writeHeader(into: destination, opcode: opcode, payloadLength: payloadCount)
        if let closeCode {
            let written = FrameEncoder.writeClosePayload(into: destination + headerSize, code: closeCode, reason: payload)
            precondition(written == payloadCount, "close payload size and the bytes written disagree")
        } else if let base = payload.baseAddress, payload.count > 0 {
            (destination + headerSize).copyMemory(from: base, byteCount: payload.count)
        }
        connection.pointee.sendPending.count += UInt32(frameSize)
        counters.add(.bytesOut, frameSize)
        markForFlush(slot, connection)
        return .queued
    }

    /// The worker's MYRIAD_BUFFER_BUDGET cannot lend `connection` what it asked for: close it
    /// with 1013 (try again later), counted as memory_budget. The close frame is exempt from
    /// the budget, so the close handshake still happens.
    func closeOverBudget(_ slot: UInt32, _ connection: UnsafeMutablePointer<Connection>) {
        var reason = "memory budget"
        reason.withUTF8 {
            startClose(slot, connection, code: .tryAgainLater, reason: UnsafeRawBufferPointer($0), cause: .memoryBudget)
        }
    }

    /// Queues bytes that are not a frame (HTTP responses).
    func queueRaw(_ slot: UInt32, _ connection: UnsafeMutablePointer<Connection>, _ text: StaticString) {
        let bytes = UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount)
        guard pool.append(bytes, to: &connection.pointee.sendPending) else {
            requestAbort(slot, connection, cause: .outOfMemory)
            return
        }
        counters.add(.bytesOut, bytes.count)
        markForFlush(slot, connection)
    }

    // MARK: - Closing

    /// Starts the close handshake: our close frame, then wait (MYRIAD_CLOSE_TIMEOUT) for the
    /// peer's. Data frames that arrive meanwhile are dropped.
    func close(_ id: ConnectionID, code: CloseCode, reason: UnsafeRawBufferPointer, cause: CloseReason) {
        guard let connection = live(id) else { return }
        startClose(id.slot, connection, code: code, reason: reason, cause: cause)
    }

    func startClose(
        _ slot: UInt32, _ connection: UnsafeMutablePointer<Connection>, code: CloseCode,
        reason: UnsafeRawBufferPointer, cause: CloseReason
    ) {
        guard connection.pointee.state == .open else { return }
        precondition(code.maySend(as: .server), "close code \(code) may not be sent by a server")
        connection.pointee.closeReason = cause
        connection.pointee.closeCode = code.rawValue
        connection.pointee.state = .closing
        connection.pointee.flags.insert(.closeFrameSent)
        _ = queueFrame(slot, connection, opcode: .close, payload: reason, closeCode: code)
        wheel.schedule(slot, at: nowTick + UInt64(settings.closeTicks))
        markForFlush(slot, connection)
    }

    /// Asks the loop to close the socket without a close handshake (queued bytes are dropped).
    func requestAbort(_ slot: UInt32, _ connection: UnsafeMutablePointer<Connection>, cause: CloseReason) {
        guard connection.pointee.state.rawValue < ConnectionState.closed.rawValue else { return }
        if connection.pointee.closeReason == .none { connection.pointee.closeReason = cause }
        connection.pointee.state = .draining
        connection.pointee.flags.insert(.abortRequested)
        markForFlush(slot, connection)
    }
}
