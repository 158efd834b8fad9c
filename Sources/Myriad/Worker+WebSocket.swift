import WebSocketCodec
import WebSocketCompression

/// The WebSocket protocol on a connection's bytes, as a worker runs it: the opening
/// handshake (parsed where it lies, or gathered in a pooled buffer when it comes in pieces),
/// frames decoded and unmasked in place and delivered to the handler (fragments reassembled in
/// a pooled buffer), pings answered, and the close handshake.
extension Worker {
    // MARK: - Handshake

    func handshakeBytes(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, _ bytes: UnsafeMutableRawBufferPointer) {
        if connection.pointee.flags.contains(.upgradePending) {
            keepWhilePending(slot, connection, UnsafeRawBufferPointer(bytes))
            return
        }
        let entry = side(connection)  // made at the accept
        if !entry.pointee.inbound.isAllocated {
            // The usual case: the whole request in one receive, parsed where it lies.
            let step = entry.pointee.handshake.parse(UnsafeRawBufferPointer(bytes), maxHeadBytes: core.settings.maxHeaderBytes)
            if case .needMore = step {
                if !core.pool.append(UnsafeRawBufferPointer(bytes), to: &entry.pointee.inbound, budget: .inbound) {
                    refuseHandshakeForMemory(slot, connection)
                }
                return
            }
            completeHandshake(slot, connection, step, bytes)
            return
        }
        // The request came in pieces: keep them together in a pooled buffer.
        guard core.pool.append(UnsafeRawBufferPointer(bytes), to: &entry.pointee.inbound, budget: .inbound) else {
            refuseHandshakeForMemory(slot, connection)
            return
        }
        var buffer = entry.pointee.inbound
        entry.pointee.inbound = PooledBuffer()
        let step = entry.pointee.handshake.parse(UnsafeRawBufferPointer(buffer.bytes), maxHeadBytes: core.settings.maxHeaderBytes)
        if case .needMore = step {
            entry.pointee.inbound = buffer
            return
        }
        completeHandshake(slot, connection, step, buffer.bytes)
        core.pool.release(&buffer)
    }

    /// No memory to hold the rest of an upgrade request: 503 when the worker's budget is
    /// used up (the client may retry), else close at once.
    private func refuseHandshakeForMemory(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>) {
        if let entry = existingSide(connection) { core.pool.release(&entry.pointee.inbound) }
        guard core.pool.lastFailure == .overBudget else {
            abortNow(slot, connection, cause: .outOfMemory)
            return
        }
        core.queueRaw(slot, connection, HandshakeResponse.serviceUnavailable)
        beginDraining(slot, connection, cause: .memoryBudget)
    }

    func completeHandshake(
        _ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, _ step: HandshakeStep,
        _ bytes: UnsafeMutableRawBufferPointer
    ) {
        switch step {
        case .needMore:
            preconditionFailure("completeHandshake with an incomplete request")
        case .reject(let rejection):
            core.queueRaw(slot, connection, rejection.response)
            beginDraining(slot, connection, cause: .handshakeRejected)
        case .plainRequest(let request, _):
            let response = request.isHealthCheck ? HandshakeResponse.healthy
                : request.isGet ? HandshakeResponse.notFound : HandshakeResponse.badRequest
            core.queueRaw(slot, connection, response)
            beginDraining(slot, connection, cause: .http)
        case .upgrade(let request, let headLength):
            upgradeRequested(slot, connection, request, headLength: headLength, bytes)
        }
    }

    // MARK: - Frames

    /// Decodes `bytes` with the connection's decoder (`Worker+Side.swift`: the side entry's
    /// live one, or the scratch one at rest) and, while the connection still reads frames,
    /// leaves the decoder's state where the next receive will find it.
    func frameBytes(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, _ bytes: UnsafeMutableRawBufferPointer) {
        let decoder = decoder(for: connection)
        defer { scratchDecoderBusy = false }
        var offset = 0
        while true {
            switch decoder.pointee.next(bytes, offset: &offset, configuration: core.settings.decoder) {
            case .needMore:
                settleDecoder(connection, decoder)
                return
            case .failure(let code):
                failConnection(slot, connection, code: code)
                return
            case .chunk(let chunk):
                handleChunk(slot, connection, chunk)
                let state = connection.pointee.state
                if state != .open && state != .closing { return }
            }
        }
    }

    @inline(__always)
    func handleChunk(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, _ chunk: FrameChunk) {
        switch chunk.opcode {
        case .text, .binary:
            guard connection.pointee.state == .open else { return }  // after our close: dropped
            if chunk.isCompressed {
                compressedChunk(slot, connection, chunk)
                return
            }
            if chunk.isMessageStart && chunk.isMessageEnd {
                deliver(slot, connection, chunk.opcode, UnsafeRawBufferPointer(chunk.bytes))
                return
            }
            guard let entry = appendPartial(slot, connection, chunk) else { return }
            if chunk.isMessageEnd {
                var message = entry.pointee.inbound
                entry.pointee.inbound = PooledBuffer()
                deliver(slot, connection, chunk.opcode, UnsafeRawBufferPointer(message.bytes))
                core.pool.release(&message)
            }
        case .ping, .pong, .close:
            // Which control frame asks for what is `ControlFrame`'s (both roles); what doing
            // it means for a server connection is here.
            var payload = UnsafeRawBufferPointer(chunk.bytes)
            var assembled = PooledBuffer()
            if !(chunk.isFrameStart && chunk.isFrameEnd) {
                switch ControlFrame.gather(chunk, into: &side(connection).pointee.control, pool: core.pool) {
                case .partial: return
                case .outOfMemory: return abortNow(slot, connection, cause: .outOfMemory)
                case .whole(let whole): assembled = whole
                }
                payload = UnsafeRawBufferPointer(assembled.bytes)
            }
            defer { core.pool.release(&assembled) }
            switch ControlFrame.action(chunk.opcode, closeCode: chunk.closeCode, handshake: &connection.pointee.closeHandshake) {
            case .answerPing:
                _ = core.queueFrame(slot, connection, opcode: .pong, payload: payload)
            case .ignorePing:
                break
            case .pong:
                core.counters.add(.pongsReceived)
                if connection.pointee.flags.contains(.pingOutstanding) {
                    // The one place traffic touches the wheel, once per ping round trip: the
                    // entry points at the pong deadline, and the next ping is due one
                    // interval after this pong (earlier, when PONG_TIMEOUT > PING_INTERVAL).
                    connection.pointee.flags.remove(.pingOutstanding)
                    core.counters.pongAnswered(pingSentTick: connection.pointee.pingSentTick)
                    if connection.pointee.state == .open { scheduleKeepAlive(slot, connection) }
                }
            case .close(let step):
                let reason = payload.count > 2 ? UnsafeRawBufferPointer(rebasing: payload[2...]) : UnsafeRawBufferPointer(start: nil, count: 0)
                peerClosed(slot, connection, step, code: chunk.closeCode, reason: reason)
            }
        case .continuation:
            preconditionFailure("the decoder reports a continuation as its message's opcode")
        }
    }

    /// Adds a piece of a message that came in several to the connection's side entry; nil when
    /// the worker's budget or memory refused it (the connection is then closing).
    @inline(__always)
    func appendPartial(
        _ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, _ chunk: FrameChunk
    ) -> UnsafeMutablePointer<ConnectionSide>? {
        let entry = side(connection)
        guard core.pool.append(UnsafeRawBufferPointer(chunk.bytes), to: &entry.pointee.inbound, budget: .inbound) else {
            if core.pool.lastFailure == .overBudget {
                // Partial messages may hold half the worker's budget; this one would pass it.
                failConnection(slot, connection, code: .tryAgainLater, cause: .memoryBudget)
            } else {
                abortNow(slot, connection, cause: .outOfMemory)
            }
            return nil
        }
        return entry
    }

    @inline(__always)
    func deliver(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, _ opcode: Opcode, _ payload: UnsafeRawBufferPointer) {
        connection.pointee.lastMessageTick = core.now32
        core.counters.add(.messagesIn)
        handlerStorage.pointee.onMessage(handle(slot), kind: opcode == .text ? .text : .binary, payload: payload)
    }

    // MARK: - permessage-deflate

    /// A piece of a compressed message (RSV1, RFC 7692). A connection with its own inflater
    /// (dedicated mode, client context takeover) inflates each piece as it comes into the
    /// message buffer. Otherwise the worker's one shared inflater takes each message whole,
    /// so pieces of another connection's message never come between: the compressed pieces
    /// are gathered first (bounded by the decoder's limit on compressed size), then inflated.
    /// Either way the inflated size is bounded by MYRIAD_MAX_MESSAGE_SIZE while inflating
    /// (1009 before anything past it is produced) and text is validated as it inflates (1007).
    func compressedChunk(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, _ chunk: FrameChunk) {
        guard let compression = core.compression else {
            failConnection(slot, connection, code: .protocolError)  // the decoder allows RSV1 only once agreed
            return
        }
        let isText = chunk.opcode == .text
        if connection.pointee.flags.contains(.dedicatedDeflate), let streams = compression.streams(slot: slot),
           streams.inflater != nil {
            let entry = side(connection)
            var output = PooledOutput(pool: core.pool, buffer: entry.pointee.inbound, budget: .inbound)
            let result = streams.inflater!.inflate(UnsafeRawBufferPointer(chunk.bytes), isMessageEnd: chunk.isMessageEnd,
                                                   isText: isText, into: &output)
            entry.pointee.inbound = output.take()
            inflated(slot, connection, result, chunk.opcode, message: &entry.pointee.inbound)
            return
        }
        if chunk.isMessageStart && chunk.isMessageEnd {
            inflateWhole(slot, connection, UnsafeRawBufferPointer(chunk.bytes), chunk.opcode, compression)
            return
        }
        guard let entry = appendPartial(slot, connection, chunk) else { return }
        guard chunk.isMessageEnd else { return }
        var gathered = entry.pointee.inbound
        entry.pointee.inbound = PooledBuffer()
        inflateWhole(slot, connection, UnsafeRawBufferPointer(gathered.bytes), chunk.opcode, compression)
        core.pool.release(&gathered)
    }

    private func inflateWhole(
        _ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, _ compressed: UnsafeRawBufferPointer,
        _ opcode: Opcode, _ compression: WorkerCompression
    ) {
        var output = PooledOutput(pool: core.pool, budget: .inbound)
        let result = compression.shared.inflate(compressed, isMessageEnd: true, isText: opcode == .text, into: &output)
        var message = output.take()
        inflated(slot, connection, result, opcode, message: &message)
        core.pool.release(&message)
    }

    /// What inflating a piece came to: deliver a whole message, wait for more, or fail.
    private func inflated(
        _ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, _ result: MessageInflater.Result,
        _ opcode: Opcode, message: inout PooledBuffer
    ) {
        switch result {
        case .needMore:
            return
        case .messageEnd:
            var whole = message
            message = PooledBuffer()
            core.counters.add(.messagesInflated)
            deliver(slot, connection, opcode, UnsafeRawBufferPointer(whole.bytes))
            core.pool.release(&whole)
        case .failure(let code):
            core.pool.release(&message)
            failConnection(slot, connection, code: code)
        case .outputUnavailable:
            let overBudget = core.pool.lastFailure == .overBudget
            core.pool.release(&message)
            if overBudget {
                failConnection(slot, connection, code: .tryAgainLater, cause: .memoryBudget)
            } else {
                abortNow(slot, connection, cause: .outOfMemory)
            }
        }
    }
}
