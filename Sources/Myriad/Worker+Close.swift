import Glibc
import WebSocketCodec

/// Every way a connection ends, in one place. Each close starts on one of the paths below
/// and ends in `closeSocket`, then `releaseIfDone` once no operation is in flight:
///
/// | cause (as counted)                        | starts in                              | then                                  |
/// |-------------------------------------------|----------------------------------------|---------------------------------------|
/// | normal (the peer's close frame)           | `peerClosed`                           | reply, `beginDraining`                |
/// | application, idle_timeout, shutdown       | `WorkerCore.startClose`                | our close frame, wait for the peer's  |
/// | protocol_error, invalid_utf8,             | `failConnection`                       | our close frame, `beginDraining`      |
/// | message_too_big, memory_budget (1013)     |                                        |                                       |
/// | handshake_rejected, http, upgrade_refused,| `completeHandshake`, `refuseUpgrade`,  | HTTP response, `beginDraining`        |
/// | memory_budget (503)                       | `refuseHandshakeForMemory`             |                                       |
/// | peer_eof, socket_error, out_of_memory     | `receiveEnded`, `sent`, the handshake  | `abortNow`                            |
/// | handshake_timeout, pong_timeout           | `timerFired` (`Worker+KeepAlive`)      | `abortNow`                            |
/// | close_timeout, draining past its deadline | `timerFired`                           | `closeSocket`                         |
/// | slow_consumer                             | `WorkerCore.requestAbort`              | `flush` calls `closeSocket`           |
/// | shutdown (past MYRIAD_SHUTDOWN_TIMEOUT)   | `shutdownStep`                         | `abortNow`                            |
///
/// `onClose` is delivered once, by `notifyClose`, on whichever path runs first; the handler's
/// state is dropped right after it (`dropState`), or with the slot for a connection the
/// handler never saw open.
extension Worker {
    // MARK: - Closing

    /// Nothing more to read: send what is queued, then close (bounded by MYRIAD_CLOSE_TIMEOUT).
    func beginDraining(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, cause: CloseReason) {
        guard connection.pointee.state.rawValue < SlotState.draining.rawValue else { return }
        if connection.pointee.closeReason == .none { connection.pointee.closeReason = cause }
        connection.pointee.state = .draining
        dropSide(connection)
        core.wheel.schedule(slot, at: core.nowTick + UInt64(core.settings.closeTicks))
        core.markForFlush(slot, connection)
    }

    /// Closes the socket now, without a close handshake.
    func abortNow(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, cause: CloseReason) {
        guard connection.pointee.state != .closed else { return }
        if connection.pointee.closeReason == .none { connection.pointee.closeReason = cause }
        closeSocket(slot, connection)
    }

    /// Submits the socket's close (cancelling its receive and send first) and drops every
    /// buffer except the one a send in flight still reads.
    func closeSocket(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>) {
        if connection.pointee.flags.contains(.handlerOpened) {
            let code = connection.pointee.closeHandshake.reportedCode(exchanged: CloseCode(rawValue: connection.pointee.closeCode))
            notifyClose(slot, code: code, reason: UnsafeRawBufferPointer(start: nil, count: 0))
        }
        connection.pointee.state = .closed
        connection.pointee.flags.remove(.abortRequested)
        core.wheel.cancel(slot)
        core.removeAllSubscriptions(connection)
        dropSide(connection)
        if connection.pointee.flags.contains(.dedicatedDeflate) {
            connection.pointee.flags.remove(.dedicatedDeflate)
            core.compression?.close(slot: slot)
        }
        core.releaseQueue(connection, keepingHead: connection.pointee.io.flags.contains(.sendInFlight))
        backend.closeSocket(connection, handle: connection.pointee.handle, slot: slot)
    }

    func operationDone(_ tag: UserData, result: Int32) {
        core.assertOnOwnThread()
        let slot = tag.slot
        let connection = core.slab.slot(completing: tag, "completion")
        switch connection.pointee.io.operationDone(tag.operation, result: result) {
        case .none:
            break
        case .receive:
            core.counters.add(.lostCompletions)
        case .send:
            core.releaseQueue(connection, keepingHead: false)
            core.counters.add(.lostCompletions)
        }
        releaseIfDone(slot)
    }

    /// Returns the slot to the slab once the socket is closed and nothing refers to it.
    func releaseIfDone(_ slot: UInt32) {
        let connection = core.slab[slot]
        guard connection.pointee.state == .closed, connection.pointee.io.isSettled,
              !connection.pointee.flags.contains(.inFlushList)
        else { return }
        core.releaseQueue(connection, keepingHead: false)
        dropSide(connection)
        if connection.pointee.flags.contains(.stateInitialized) { dropState(slot, connection) }
        core.counters.closed(connection.pointee.closeReason == .none ? .normal : connection.pointee.closeReason)
        core.slab.release(slot)
    }

    /// Delivers `onClose` once for a connection the handler saw open, then drops its state.
    func notifyClose(_ slot: UInt32, code: CloseCode, reason: UnsafeRawBufferPointer, cause: CloseReason? = nil) {
        let connection = core.slab[slot]
        guard connection.pointee.flags.contains(.handlerOpened) else { return }
        connection.pointee.flags.remove(.handlerOpened)
        let event = CloseEvent(code: code, reason: reason, cause: cause ?? connection.pointee.closeReason)
        handlerStorage.pointee.onClose(handle(slot), event: event)
        if connection.pointee.flags.contains(.stateInitialized) { dropState(slot, connection) }
    }

    /// Deinitialises the connection's state: once, after `onClose` (or when the slot goes, for
    /// a connection that never got that far).
    func dropState(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>) {
        precondition(connection.pointee.flags.contains(.stateInitialized), "state dropped twice")
        connection.pointee.flags.remove(.stateInitialized)
        states.deinitialize(slot)
    }

    /// The peer's close frame, as `CloseHandshake` read it: our answer (echoing its code) ends
    /// the handshake the peer started, or the peer's ends ours.
    func peerClosed(
        _ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, _ step: CloseHandshake.Step, code: CloseCode,
        reason: UnsafeRawBufferPointer
    ) {
        switch step {
        case .ignored:
            return
        case .completed:
            beginDraining(slot, connection, cause: connection.pointee.closeReason)
        case .answer(let answer):
            connection.pointee.closeCode = code.rawValue
            let empty = UnsafeRawBufferPointer(start: nil, count: 0)
            if let answer {
                _ = core.queueFrame(slot, connection, opcode: .close, payload: empty, closeCode: answer)
            } else {
                _ = core.queueFrame(slot, connection, opcode: .close, payload: empty)
            }
            notifyClose(slot, code: code, reason: reason, cause: .normal)
            beginDraining(slot, connection, cause: .normal)
        }
    }

    /// "Fail the WebSocket connection" (RFC 6455 section 7.1.7): our close frame with the
    /// code, then close the socket without waiting for the peer's.
    func failConnection(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, code: CloseCode, cause: CloseReason? = nil) {
        let cause = cause ?? CloseReason(failure: code)
        if connection.pointee.state == .open && connection.pointee.closeHandshake.start() {
            _ = core.queueFrame(slot, connection, opcode: .close, payload: UnsafeRawBufferPointer(start: nil, count: 0), closeCode: code)
        }
        connection.pointee.closeCode = code.rawValue
        notifyClose(slot, code: code, reason: UnsafeRawBufferPointer(start: nil, count: 0), cause: cause)
        beginDraining(slot, connection, cause: cause)
    }

    // MARK: - Shutdown

    /// Stops accepting and starts a close 1001 handshake with every open connection.
    func beginShutdown() {
        shuttingDown = true
        shutdownDeadline = core.nowTick + UInt64(core.settings.shutdownTicks)
        acceptRearmTick = nil
        backend.stopAccepting()
        let reason = "server shutting down"
        var open = 0
        for slot in 0..<core.slab.highWater {
            let connection = core.slab[slot]
            switch connection.pointee.state {
            case .handshaking:
                abortNow(slot, connection, cause: .shutdown)
            case .open:
                open += 1
                var text = reason
                text.withUTF8 {
                    core.startClose(slot, connection, code: .goingAway, reason: UnsafeRawBufferPointer($0), cause: .shutdown)
                }
            default:
                break
            }
        }
        logger.info("worker \(core.index): shutting down, closing \(open) open connection(s)")
    }

    /// True when the worker may exit: every connection is gone, or the shutdown timeout
    /// passed (then whatever remains is closed without a handshake, and the loop gets one
    /// more tick to see those closes complete).
    func shutdownStep() -> Bool {
        if core.slab.occupied == 0 { return true }
        guard core.nowTick >= shutdownDeadline else { return false }
        if !forcedCloseDone {
            forcedCloseDone = true
            var forced = 0
            for slot in 0..<core.slab.highWater {
                let connection = core.slab[slot]
                if connection.pointee.state != .free && connection.pointee.state != .closed {
                    forced += 1
                    abortNow(slot, connection, cause: connection.pointee.closeReason == .none ? .shutdown : connection.pointee.closeReason)
                }
            }
            logger.warning("worker \(core.index): shutdown timeout: closed \(forced) connection(s) without a close handshake")
            shutdownDeadline = core.nowTick + max(1, UInt64(1_000_000_000 / core.settings.tickNanoseconds))
            return false
        }
        return true
    }
}

extension WorkerCore {
    // MARK: - Closing

    /// Starts the close handshake: our close frame, then wait (MYRIAD_CLOSE_TIMEOUT) for the
    /// peer's. Data frames that arrive meanwhile are dropped. For another worker's connection
    /// the request goes through that worker's mailbox.
    func close(_ id: ConnectionID, code: CloseCode, reason: UnsafeRawBufferPointer, cause: CloseReason) {
        assertOnOwnThread()
        guard Int(id.worker) == index else {
            if Int(id.worker) < shared.workerCount {
                let posted = shared.mailboxes[Int(id.worker)].post(.close(id, code, String(decoding: reason, as: UTF8.self)))
                counters.add(posted ? .forwarded : .forwardsRefused)
            }
            return
        }
        guard let connection = live(id) else { return }
        startClose(id.slot, connection, code: code, reason: reason, cause: cause)
    }

    func startClose(
        _ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, code: CloseCode,
        reason: UnsafeRawBufferPointer, cause: CloseReason
    ) {
        guard connection.pointee.state == .open else { return }
        precondition(code.maySend(as: .server), "close code \(code) may not be sent by a server")
        let first = connection.pointee.closeHandshake.start()
        assert(first, "an open connection has sent no close frame")
        connection.pointee.closeReason = cause
        connection.pointee.closeCode = code.rawValue
        connection.pointee.state = .closing
        _ = queueFrame(slot, connection, opcode: .close, payload: reason, closeCode: code)
        wheel.schedule(slot, at: nowTick + UInt64(settings.closeTicks))
        markForFlush(slot, connection)
    }

    /// The worker's MYRIAD_BUFFER_BUDGET cannot lend `connection` what it asked for: close it
    /// with 1013 (try again later), counted as memory_budget. The close frame is exempt from
    /// the budget, so the close handshake still happens.
    func closeOverBudget(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>) {
        var reason = "memory budget"
        reason.withUTF8 {
            startClose(slot, connection, code: .tryAgainLater, reason: UnsafeRawBufferPointer($0), cause: .memoryBudget)
        }
    }

    /// Asks the loop to close the socket without a close handshake (queued bytes are dropped).
    func requestAbort(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, cause: CloseReason) {
        guard connection.pointee.state.rawValue < SlotState.closed.rawValue else { return }
        if connection.pointee.closeReason == .none { connection.pointee.closeReason = cause }
        connection.pointee.state = .draining
        connection.pointee.flags.insert(.abortRequested)
        markForFlush(slot, connection)
    }
}
