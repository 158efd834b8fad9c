import WebSocketCodec

/// What the server puts in a connection's send queue (`SendQueues`, shared with the client
/// role): frames unmasked, counted against the budget, bounded by MYRIAD_MAX_QUEUED_BYTES;
/// shared frames (publishes) referenced, not copied.
extension WorkerCore {
    /// Shared frames this small are copied into the queue's last segment when other bytes
    /// already wait (they leave together anyway, and the queue stays short); larger ones, and
    /// every frame to a connection with nothing waiting, are referenced.
    static let copySharedBelowBytes = 512

    /// The last segment of the connection's queue, or `SendSegment.none`.
    @inline(__always)
    func sendTail(_ connection: UnsafeMutablePointer<ConnectionSlot>) -> UInt32 { queues.tail(connection) }

    /// Bytes queued on the connection and not yet sent.
    @inline(__always)
    func queuedBytes(_ connection: UnsafeMutablePointer<ConnectionSlot>) -> UInt32 { queues.queuedBytes(connection) }

    /// Room for `byteCount` bytes at the end of the connection's queue (`SendQueues.reserve`).
    @inline(__always)
    func reserveQueued(_ connection: UnsafeMutablePointer<ConnectionSlot>, _ byteCount: Int, budget: PoolBudget) -> UnsafeMutableRawPointer? {
        queues.reserve(connection, byteCount, budget: budget)
    }

    /// Counts `byteCount` bytes written where `reserveQueued` said.
    @inline(__always)
    func commitQueued(_ connection: UnsafeMutablePointer<ConnectionSlot>, _ byteCount: Int) {
        queues.commit(connection, byteCount)
        counters.add(.bytesOut, byteCount)
    }

    /// Whether a frame of `frameBytes` may join the queue: MYRIAD_MAX_QUEUED_BYTES bounds the
    /// backlog, not a message, so a frame that finds nothing waiting always may; one that would
    /// take waiting bytes past the limit marks the connection for closing as a slow consumer.
    @inline(__always)
    private func admits(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, frameBytes: Int) -> Bool {
        let queued = Int(queuedBytes(connection))
        if queued > 0 && queued + frameBytes > settings.maxQueuedBytes {
            requestAbort(slot, connection, cause: .slowConsumer)
            return false
        }
        return true
    }

    /// Appends one frame to the connection's queue. Data frames count against the worker's
    /// MYRIAD_BUFFER_BUDGET (past it the connection is closed with 1013); control frames are
    /// exempt, so pongs and close frames always go out.
    @inline(__always)
    func queueFrame(
        _ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, opcode: Opcode,
        payload: UnsafeRawBufferPointer, closeCode: CloseCode? = nil, compressed: Bool = false
    ) -> SendResult {
        let payloadCount = closeCode == nil ? payload.count : FrameEncoder.closePayloadSize(code: closeCode, reason: payload)
        let frameSize = FrameEncoder.frameSize(payloadLength: payloadCount, masked: false)
        guard admits(slot, connection, frameBytes: frameSize) else { return .slowConsumer }
        let budget: PoolBudget = opcode.isControl ? .exempt : .outbound
        guard let destination = reserveQueued(connection, frameSize, budget: budget) else {
            if pool.lastFailure == .overBudget {
                closeOverBudget(slot, connection)
                return .memoryBudget
            }
            requestAbort(slot, connection, cause: .outOfMemory)
            return .closed
        }
        let headerSize = FrameEncoder.writeHeader(into: destination, opcode: opcode, compressed: compressed,
                                                  payloadLength: payloadCount)
        if let closeCode {
            let written = FrameEncoder.writeClosePayload(into: destination + headerSize, code: closeCode, reason: payload)
            precondition(written == payloadCount, "close payload size and the bytes written disagree")
        } else if let base = payload.baseAddress, payload.count > 0 {
            (destination + headerSize).copyMemory(from: base, byteCount: payload.count)
        }
        commitQueued(connection, frameSize)
        markForFlush(slot, connection)
        return .queued
    }

    /// Queues an encoded frame shared with other connections: by reference (one retain), or
    /// copied when it is small and other bytes wait anyway.
    @inline(__always)
    func queueShared(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, _ frame: SharedFrame) -> SendResult {
        let size = frame.byteCount
        guard admits(slot, connection, frameBytes: size) else { return .slowConsumer }
        if queuedBytes(connection) > 0 && size < Self.copySharedBelowBytes,
           let destination = reserveQueued(connection, size, budget: .outbound) {
            destination.copyMemory(from: frame.bytes.baseAddress!, byteCount: size)
            commitQueued(connection, size)
            markForFlush(slot, connection)
            return .queued
        }
        let index = segments.allocate()
        let segment = segments[index]
        segment.pointee.frame = Unmanaged.passRetained(frame)
        segment.pointee.buffer.base = UnsafeMutableRawPointer(mutating: frame.bytes.baseAddress)
        segment.pointee.buffer.count = UInt32(size)
        queues.append(index, to: connection)
        segments[connection.pointee.sendHead].pointee.queuedBytes += UInt32(size)
        counters.add(.bytesOut, size)
        markForFlush(slot, connection)
        return .queued
    }

    /// Queues bytes that are not a frame (HTTP responses). Exempt from the budget.
    func queueRaw(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, _ bytes: UnsafeRawBufferPointer) {
        guard let destination = reserveQueued(connection, bytes.count, budget: .exempt) else {
            requestAbort(slot, connection, cause: .outOfMemory)
            return
        }
        if let base = bytes.baseAddress, bytes.count > 0 { destination.copyMemory(from: base, byteCount: bytes.count) }
        commitQueued(connection, bytes.count)
        markForFlush(slot, connection)
    }

    func queueRaw(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, _ text: StaticString) {
        queueRaw(slot, connection, UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Drops what the connection has queued (`SendQueues.releaseQueue`).
    @inline(__always)
    func releaseQueue(_ connection: UnsafeMutablePointer<ConnectionSlot>, keepingHead: Bool) {
        queues.releaseQueue(connection, keepingHead: keepingHead)
    }

    /// Removes the first segment, fully sent (or abandoned).
    @inline(__always)
    func popHeadSegment(_ connection: UnsafeMutablePointer<ConnectionSlot>) { queues.popHead(connection) }
}
