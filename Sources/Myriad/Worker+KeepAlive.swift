/// Keep-alive and deadlines: what a worker does when a connection's wheel entry fires.
///
/// Every connection has exactly one wheel entry, set to its earliest deadline: handshake,
/// next ping, pong due, idle, or close. Traffic never touches the wheel; it only stamps
/// `lastInboundTick` / `lastMessageTick` (the one exception is the pong answering our ping,
/// which moves the entry from the pong deadline to the next ping: once per round trip). When the entry fires, the connection's stamps
/// decide what happens, and the entry re-arms itself for the next deadline. Pings follow
/// each connection's own silence, so they are spread over the interval by the connections'
/// own start times, and every ping due in one tick leaves with one submit.
extension Worker {
    func timerFired(_ slot: UInt32) {
        core.assertOnOwnThread()
        let connection = core.slab[slot]
        switch connection.pointee.state {
        case .handshaking:
            abortNow(slot, connection, cause: .handshakeTimeout)
        case .open:
            keepAlive(slot, connection)
        case .closing:
            // We sent a close frame and the peer never answered it: that is the cause now,
            // whatever made us start the close.
            connection.pointee.closeReason = .closeTimeout
            closeSocket(slot, connection)
        case .draining:
            // The peer did not read our last bytes (a close reply, an HTTP response) in time;
            // the close keeps the cause it already has.
            closeSocket(slot, connection)
        case .closed, .free:
            assertionFailure("timer fired for a connection in state \(connection.pointee.state)")
        }
    }

    private func keepAlive(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>) {
        let settings = core.settings
        let now = core.now32
        if connection.pointee.flags.contains(.pingOutstanding) {
            // Any inbound bytes since the ping prove the peer alive (a pong clears the flag
            // itself). A ping only goes to a connection silent for a whole interval, so an
            // inbound stamp in the ping's own tick came after it.
            if Int32(bitPattern: connection.pointee.lastInboundTick &- connection.pointee.pingSentTick) >= 0 {
                connection.pointee.flags.remove(.pingOutstanding)
            } else if now &- connection.pointee.pingSentTick >= settings.pongTicks {
                abortNow(slot, connection, cause: .pongTimeout)
                return
            }
        }
        if settings.idleTicks > 0 && now &- connection.pointee.lastMessageTick >= settings.idleTicks {
            var reason = "idle timeout"
            reason.withUTF8 {
                core.startClose(slot, connection, code: .goingAway, reason: UnsafeRawBufferPointer($0), cause: .idleTimeout)
            }
            return
        }
        if settings.pingTicks > 0 && !connection.pointee.flags.contains(.pingOutstanding)
            && now &- connection.pointee.lastInboundTick >= settings.pingTicks
        {
            if core.queueFrame(slot, connection, opcode: .ping, payload: UnsafeRawBufferPointer(start: nil, count: 0)) == .queued {
                connection.pointee.flags.insert(.pingOutstanding)
                connection.pointee.pingSentTick = now
                core.counters.add(.pingsSent)
                core.counters.pingQueued(tick: now)
            }
        }
        if connection.pointee.state == .open { scheduleKeepAlive(slot, connection) }
    }

    /// Points the connection's wheel entry at its next keep-alive deadline (none when pings
    /// and the idle timeout are both off).
    func scheduleKeepAlive(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>) {
        let settings = core.settings
        var next: UInt64?
        if connection.pointee.flags.contains(.pingOutstanding) {
            next = core.absoluteTick(connection.pointee.pingSentTick, plus: settings.pongTicks)
        } else if settings.pingTicks > 0 {
            next = core.absoluteTick(connection.pointee.lastInboundTick, plus: settings.pingTicks)
        }
        if settings.idleTicks > 0 {
            let idle = core.absoluteTick(connection.pointee.lastMessageTick, plus: settings.idleTicks)
            next = min(next ?? idle, idle)
        }
        if let next {
            core.wheel.schedule(slot, at: max(next, core.nowTick + 1))
        } else {
            core.wheel.cancel(slot)
        }
    }
}
