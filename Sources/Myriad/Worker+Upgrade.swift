import Glibc
import WebSocketCodec

/// The upgrade hook: the handler sees the request before the 101 and accepts (with the
/// connection's state, a subprotocol, extra headers), refuses with an HTTP status, or decides
/// later from any thread. MYRIAD_HANDSHAKE_TIMEOUT keeps running while it decides.
extension Worker {
    /// A complete, valid upgrade request: ask the handler.
    func upgradeRequested(
        _ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, _ request: UpgradeRequest,
        headLength: Int, _ bytes: UnsafeMutableRawBufferPointer
    ) {
        let head = UpgradeRequestHead(request: request, peerAddress: peerAddress(of: connection))
        let ticket = UpgradeTicket(connection: core.id(of: slot))
        // Negotiated on the request's bytes now: a pending upgrade no longer has them later.
        let deflate = core.compression?.negotiate(request.offeredExtensions)
        let decision = handlerStorage.pointee.upgrade(head, ticket: ticket)
        let trailing = UnsafeRawBufferPointer(rebasing: bytes[headLength...])
        switch decision.verdict {
        case .accept(let state, let subprotocol, let headers):
            var acceptValue = [UInt8](repeating: 0, count: HandshakeResponse.acceptValueLength)
            acceptValue.withUnsafeMutableBytes { HandshakeResponse.writeAcceptValue(key: request.key, into: $0.baseAddress!) }
            acceptValue.withUnsafeBytes {
                open(slot, connection, acceptValue: $0, state: state, subprotocol: subprotocol, headers: headers, deflate: deflate)
            }
            if !trailing.isEmpty && connection.pointee.state == .open {
                frameBytes(slot, connection, UnsafeMutableRawBufferPointer(mutating: trailing))
            }
        case .refuse(let status, let body):
            refuseUpgrade(slot, connection, status: status, body: body)
        case .pending:
            core.counters.add(.upgradesPending)
            connection.pointee.flags.insert(.upgradePending)
            let entry = side(connection)
            withUnsafeMutableBytes(of: &entry.pointee.acceptValue) {
                HandshakeResponse.writeAcceptValue(key: request.key, into: $0.baseAddress!)
            }
            entry.pointee.deflate = deflate
            if !trailing.isEmpty { keepWhilePending(slot, connection, trailing) }
        }
    }

    /// Bytes that arrive while the application decides. A client should not send before the
    /// 101 (RFC 6455 section 4.1); what it sends anyway is kept for after an accept, up to
    /// MYRIAD_MAX_HEADER_SIZE, past which the upgrade is refused with 400.
    func keepWhilePending(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, _ bytes: UnsafeRawBufferPointer) {
        let entry = side(connection)
        guard Int(entry.pointee.inbound.count) + bytes.count <= core.settings.maxHeaderBytes,
              core.pool.append(bytes, to: &entry.pointee.inbound, budget: .inbound)
        else {
            refuseUpgrade(slot, connection, status: .badRequest, body: "data before the upgrade was decided")
            return
        }
    }

    /// The decision for a `.pending` upgrade, from the mailbox.
    func applyDeferredUpgrade(_ id: ConnectionID, _ box: AnyUpgradeDecision) {
        guard let connection = core.live(id), connection.pointee.state == .handshaking,
              connection.pointee.flags.contains(.upgradePending)
        else {
            // The client left, or the handshake timed out, meanwhile: the decision (and any
            // state in it) is dropped with the box.
            core.counters.add(.upgradesStale)
            return
        }
        guard let decision = box.value as? UpgradeDecision<Handler.ConnectionState> else {
            logger.error("worker \(core.index): completeUpgrade for \(id) with \(type(of: box.value)), but the handler's state is \(Handler.ConnectionState.self): refused with 503")
            connection.pointee.flags.remove(.upgradePending)
            refuseUpgrade(id.slot, connection, status: .serviceUnavailable, body: "")
            return
        }
        let slot = id.slot
        switch decision.verdict {
        case .pending:
            return  // still pending: nothing to do
        case .refuse(let status, let body):
            connection.pointee.flags.remove(.upgradePending)
            refuseUpgrade(slot, connection, status: status, body: body)
        case .accept(let state, let subprotocol, let headers):
            connection.pointee.flags.remove(.upgradePending)
            var acceptValue = side(connection).pointee.acceptValue
            let deflate = side(connection).pointee.deflate
            withUnsafeBytes(of: &acceptValue) {
                open(slot, connection, acceptValue: UnsafeRawBufferPointer(rebasing: $0[..<HandshakeResponse.acceptValueLength]),
                     state: state, subprotocol: subprotocol, headers: headers, deflate: deflate)
            }
            // onOpen may have closed it (.closing): the early bytes may hold the peer's answer.
            let reading = connection.pointee.state == .open || connection.pointee.state == .closing
            guard reading, let entry = existingSide(connection) else { return }
            var early = entry.pointee.inbound
            entry.pointee.inbound = PooledBuffer()
            if early.count > 0 { frameBytes(slot, connection, early.bytes) }
            core.pool.release(&early)
            if connection.pointee.state == .open || connection.pointee.state == .closing { releaseSideIfIdle(connection) }
        }
    }

    /// Sends the 101, sets the state, and opens the connection.
    private func open(
        _ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, acceptValue: UnsafeRawBufferPointer,
        state: Handler.ConnectionState, subprotocol: String?, headers: [(name: String, value: String)],
        deflate: PerMessageDeflateAgreement?
    ) {
        var lines: [UInt8] = []
        if let deflate, startCompression(slot, connection, deflate) {
            let start = lines.count
            lines += [UInt8](repeating: 0, count: deflate.headerLineLength)
            let written = lines.withUnsafeMutableBytes {
                deflate.writeHeaderLine(into: UnsafeMutableRawBufferPointer(rebasing: $0[start...]))
            }
            precondition(written == deflate.headerLineLength)
        }
        for (name, value) in headers {
            guard Self.isToken(name), Self.isFieldValue(value) else {
                core.counters.add(.badUpgradeHeaders)
                continue
            }
            lines += Array(name.utf8) + Array(": ".utf8) + Array(value.utf8) + [13, 10]
        }
        var subprotocol = subprotocol ?? ""
        let written: Int? = subprotocol.withUTF8 { chosen in
            lines.withUnsafeBytes { extra in
                let size = HandshakeResponse.switchingProtocolsSize(subprotocolLength: chosen.count, extraHeaderBytes: extra.count)
                guard let destination = core.reserveQueued(connection, size, budget: .exempt) else { return nil }
                let written = HandshakeResponse.writeSwitchingProtocols(
                    acceptValue: acceptValue, subprotocol: UnsafeRawBufferPointer(chosen), extraHeaders: extra,
                    into: UnsafeMutableRawBufferPointer(start: destination, count: size))
                precondition(written == size)
                return size
            }
        }
        guard let written else {
            abortNow(slot, connection, cause: .outOfMemory)
            return
        }
        core.commitQueued(connection, written)
        recordHandshakeTime(connection)
        core.markForFlush(slot, connection)
        states.initialize(slot, to: state)
        connection.pointee.flags.insert(.stateInitialized)
        connection.pointee.state = .open
        // The upgrade is over: the entry goes, unless it still holds early bytes of a deferred
        // upgrade (applyDeferredUpgrade lets it go after them) or awaits the peer's address.
        releaseSideIfIdle(connection)
        connection.pointee.lastMessageTick = core.now32
        connection.pointee.flags.insert(.handlerOpened)
        core.counters.add(.handshakes)
        scheduleKeepAlive(slot, connection)
        handlerStorage.pointee.onOpen(handle(slot))
    }

    /// Takes up a permessage-deflate agreement: the decoder accepts RSV1, and with context
    /// takeover the connection gets its own streams. False when those cannot be made (zlib
    /// out of memory): the extension is then declined (the 101 does not name it).
    private func startCompression(
        _ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, _ agreement: PerMessageDeflateAgreement
    ) -> Bool {
        guard let compression = core.compression else { return false }
        let parameters = agreement.parameters
        let ownStreams = parameters.needsConnectionDeflater || parameters.needsConnectionInflater
        if ownStreams {
            guard compression.open(slot: slot, parameters: parameters) else { return false }
            connection.pointee.flags.insert(.dedicatedDeflate)
        }
        connection.pointee.flags.insert(.deflate)
        connection.pointee.deflateWindowBits = parameters.serverMaxWindowBits
        core.counters.add(.deflateAgreed)
        return true
    }

    /// Answers the upgrade with `status` and a plain-text body (at most 1 KiB), then closes.
    func refuseUpgrade(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, status: UpgradeRefusal, body: String) {
        var body = Array(body.utf8.prefix(1024))
        while body.count == 1024, let last = body.last, last & 0xC0 == 0x80 || last >= 0xC0 { body.removeLast() }
        let head = "HTTP/1.1 \(status.rawValue) \(status.reasonPhrase)\r\nContent-Type: text/plain; charset=utf-8\r\n"
            + "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let response = Array(head.utf8) + body
        if let entry = existingSide(connection) { core.pool.release(&entry.pointee.inbound) }
        response.withUnsafeBytes { core.queueRaw(slot, connection, $0) }
        beginDraining(slot, connection, cause: .upgradeRefused)
    }

    // MARK: - The peer's address

    /// Asks the backend for the peer's address of a just-accepted connection (and stamps the
    /// accept for the handshake histogram in the same new side entry).
    func requestPeerAddress(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>) {
        let entry = side(connection)
        entry.pointee.acceptedNanoseconds = monotonicNanoseconds()
        switch backend.requestPeerAddress(handle: connection.pointee.handle,
                                          into: &entry.pointee.peer, tag: tag(.peerName, slot, connection)) {
        case .known:
            entry.pointee.peerKnown = true
        case .requested:
            connection.pointee.flags.insert(.peerAddressPending)
            connection.pointee.io.inFlight += 1
        case .unavailable:
            break
        }
    }

    /// The kernel wrote the peer's address (or failed to).
    func peerAddressDone(_ tag: UserData, result: Int32) {
        core.assertOnOwnThread()
        let slot = tag.slot
        let connection = core.slab.slot(completing: tag, "peer address")
        _ = connection.pointee.io.operationDone(.peerName, result: result)
        connection.pointee.flags.remove(.peerAddressPending)
        if result > 0, let entry = existingSide(connection) { entry.pointee.peerKnown = true }
        switch connection.pointee.state {
        case .handshaking: break  // the upgrade still needs the entry
        case .open, .closing: releaseSideIfIdle(connection)
        case .draining, .closed, .free: dropSide(connection)
        }
        releaseIfDone(slot)
    }

    func peerAddress(of connection: UnsafeMutablePointer<ConnectionSlot>) -> PeerAddress? {
        guard let entry = existingSide(connection) else { return nil }
        return entry.pointee.peerKnown ? PeerAddress(entry.pointee.peer) : nil
    }

    static func isToken(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { byte in
            switch byte {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
            case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: return true
            default: return false
            }
        }
    }

    static func isFieldValue(_ value: String) -> Bool {
        value.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }
    }
}
