import WebSocketCodec

/// A WebSocket client at the far end of a `SimulatedSocket`, written against the codec (the
/// client role of `FrameDecoder` and `FrameEncoder`, `ClientHandshake`), well-behaved or
/// hostile. It checks what it receives as it goes: echoes in order and unchanged, close codes
/// from its allowed set, frames a client may accept; it reports a broken promise through
/// `fail`.
final class SimulatedPeer: SimulatedRemote {
    enum Behaviour: CaseIterable {
        /// Sends messages (some fragmented, some interleaved with pings), checks every echo,
        /// answers pings, closes with 1000.
        case echo
        /// Asks for a path the handler refuses: expects a 403 and EOF.
        case refused
        /// Sends part of its request, then nothing: the handshake timeout must close it.
        case stalledHandshake
        /// Upgrades, then never sends or answers a ping: the pong timeout must close it.
        case silent
        /// An unmasked frame: expects 1002.
        case unmasked
        /// Text that is not UTF-8: expects 1007.
        case badUTF8
        /// A frame longer than the server's message limit: expects 1009.
        case tooBig
        /// Half a frame, then EOF.
        case eofMidFrame
        /// Some messages, then a reset.
        case reset
        /// Asks for echoes and never reads: the server's queue bound or close timeout must end it.
        case slowReader
        /// Asks the handler to close it: expects 4000.
        case closer
        /// Random bytes after the upgrade: usually 1002, 1007 or 1009 (or EOF); the bytes may
        /// form any frame, a close frame with any code among them.
        case garbage
        /// Asks the handler to close it, then never answers the close frame: the close
        /// timeout must end it.
        case ignoresClose
        /// Upgrades, answers pings, stays: the shutdown must close it with 1001.
        case idler
        /// Publishes numbered messages to the topic every connection joins ("pub:"), and
        /// checks the echoes of its other messages.
        case publisher
    }

    let id: Int
    let behaviour: Behaviour
    let windowBytes: Int
    private(set) weak var socket: SimulatedSocket?
    private let fail: (String) -> Void
    private let maxMessageSizeBytes: Int

    private enum Phase { case connecting, upgrading, open, closeSent, finished }
    private var phase = Phase.connecting
    private var requestBytes: [UInt8] = []
    private var key: [UInt8] = []
    private var inbound: [UInt8] = []
    private var parser = UpgradeResponseParser()
    private var reader: SimulatedFrameReader
    private var messageOpcode: Opcode?
    private var message: [UInt8] = []
    private var control: [UInt8] = []
    private var controlOpcode: Opcode?
    /// Messages sent and not echoed yet, oldest first.
    private var expectedEchoes: [(Opcode, [UInt8])] = []
    private var expectedHead = 0
    private var messagesLeft: Int
    private var hostileSent = false
    private var publishedCount = 0
    /// The last sequence number seen from each publisher: a topic's deliveries from one
    /// publisher arrive in order.
    private var lastSequence: [Int: Int] = [:]
    private(set) var deliveriesChecked = 0
    /// A close frame or a refusal came: nothing may follow it but EOF.
    private var ended = false

    /// What happened, for the verdict and the report.
    private(set) var upgraded = false
    private(set) var refusedStatus: Int?
    private(set) var closeCode: CloseCode?
    private(set) var sawEOF = false
    private(set) var echoesChecked = 0
    private(set) var listenerRefused = false

    init(id: Int, behaviour: Behaviour, random: inout SimulationRandom, maxMessageSizeBytes: Int,
         fail: @escaping (String) -> Void) {
        self.id = id
        self.behaviour = behaviour
        self.fail = fail
        self.maxMessageSizeBytes = maxMessageSizeBytes
        reader = SimulatedFrameReader(role: .client, maxMessageSizeBytes: UInt64(max(maxMessageSizeBytes, 1 << 16)))
        windowBytes = behaviour == .slowReader ? random.inRange(1...512) : random.inRange(64...65_536)
        messagesLeft = random.inRange(0...12)
    }

    // MARK: - Kernel events

    func attach(_ socket: SimulatedSocket) {
        self.socket = socket
        var nonce = (0..<16).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ id) }
        key = [UInt8](repeating: 0, count: ClientHandshake.keyLength)
        nonce.withUnsafeMutableBytes { nonce in
            key.withUnsafeMutableBytes { ClientHandshake.writeKey(nonce: UnsafeRawBufferPointer(nonce), into: $0.baseAddress!) }
        }
        let target = Array((behaviour == .refused ? "/refuse" : "/sim").utf8)
        let host = Array("127.0.0.1:8080".utf8)
        requestBytes = [UInt8](repeating: 0, count: ClientHandshake.requestSize(targetLength: target.count, hostLength: host.count))
        let size = target.withUnsafeBytes { target in
            host.withUnsafeBytes { host in
                key.withUnsafeBytes { key in
                    requestBytes.withUnsafeMutableBytes { ClientHandshake.writeRequest(target: target, host: host, key: key, into: $0) }
                }
            }
        }
        precondition(size == requestBytes.count)
        if behaviour == .stalledHandshake { requestBytes.removeLast(requestBytes.count / 2) }
        phase = .upgrading
    }

    /// The listener went (shutdown) or the connection was reset before its accept.
    func refusedByListener() {
        listenerRefused = true
        phase = .finished
    }

    /// The server closed its socket; the peer reads EOF once it has read what came before.
    func workerClosed() {}

    /// A client connects to the worker's listener; it is never connected to.
    var connectOutcome: SimulatedConnectOutcome { .accepted }

    /// Whether the peer is done: it saw EOF, or it was never accepted.
    var isFinished: Bool { phase == .finished }

    // MARK: - Acting

    /// One step: read some of what arrived, write what the script says next.
    func act(_ random: inout SimulationRandom) {
        guard let socket, phase != .finished else { return }
        if behaviour != .slowReader || random.oneIn(50) { read(socket, &random) }
        guard phase != .finished, !socket.peerWriteClosed, !socket.peerReset else { return }
        if !requestBytes.isEmpty {
            // The request in pieces.
            let count = random.chance(50) ? requestBytes.count : random.inRange(1...requestBytes.count)
            socket.toWorker.append(contentsOf: requestBytes[..<count])
            requestBytes.removeFirst(count)
            return
        }
        guard phase == .open, random.chance(30) else { return }
        switch behaviour {
        case .publisher:
            guard messagesLeft > 0 else { return }
            messagesLeft -= 1
            publishedCount += 1
            write(socket, opcode: .text, payload: Array("pub:\(id):\(publishedCount)".utf8), masked: true)
        case .echo, .slowReader, .reset:
            if messagesLeft > 0 {
                messagesLeft -= 1
                sendMessage(socket, &random)
                if behaviour == .echo && random.oneIn(4) { sendPing(socket, &random) }
            } else if behaviour == .reset {
                socket.peerReset = true
            } else if behaviour == .echo && expectedHead == expectedEchoes.count {
                sendClose(socket, code: .normalClosure)
            }
        case .closer, .ignoresClose:
            guard !hostileSent else { return }
            hostileSent = true
            write(socket, opcode: .text, payload: Array("close-me".utf8), masked: true)
        case .unmasked:
            guard !hostileSent else { return }
            hostileSent = true
            write(socket, opcode: .binary, payload: [1, 2, 3], masked: false)
        case .badUTF8:
            guard !hostileSent else { return }
            hostileSent = true
            write(socket, opcode: .text, payload: [0x61, 0xC3, 0x28, 0x62], masked: true)
        case .tooBig:
            guard !hostileSent else { return }
            hostileSent = true
            var header = [UInt8](repeating: 0, count: FrameEncoder.maxHeaderSizeBytes)
            let size = header.withUnsafeMutableBytes {
                FrameEncoder.writeHeader(into: $0.baseAddress!, opcode: .binary, payloadLength: maxMessageSizeBytes + 1, maskKey: 0x0102_0304)
            }
            socket.toWorker.append(contentsOf: header[..<size])
        case .eofMidFrame:
            guard !hostileSent else { return }
            hostileSent = true
            var frame = frameBytes(opcode: .text, payload: Array("half a frame".utf8), masked: true)
            frame.removeLast(random.inRange(1...frame.count - 1))
            socket.toWorker.append(contentsOf: frame)
            socket.peerWriteClosed = true
        case .garbage:
            guard !hostileSent else { return }
            hostileSent = true
            socket.toWorker.append(contentsOf: (0..<random.inRange(1...64)).map { _ in UInt8(truncatingIfNeeded: random.next()) })
        case .refused, .stalledHandshake, .silent, .idler:
            break
        }
    }

    private func sendMessage(_ socket: SimulatedSocket, _ random: inout SimulationRandom) {
        let opcode: Opcode = random.chance(50) ? .text : .binary
        let length = behaviour == .slowReader || random.chance(20)
            ? random.inRange(0...maxMessageSizeBytes) : random.inRange(0...300)
        // Printable ASCII is UTF-8; binary takes any byte.
        var payload = (0..<length).map { _ in opcode == .text ? UInt8(0x20 + random.below(95)) : UInt8(truncatingIfNeeded: random.next()) }
        // "pub:" marks a topic delivery; an echo never starts with it.
        if opcode == .text && payload.first == UInt8(ascii: "p") { payload[0] = UInt8(ascii: "q") }
        expectedEchoes.append((opcode, payload))
        if payload.count > 1 && random.chance(25) {
            // Fragmented, with a ping between the fragments sometimes.
            let cut = random.inRange(1...payload.count - 1)
            write(socket, opcode: opcode, payload: Array(payload[..<cut]), masked: true, fin: false)
            if random.chance(30) { sendPing(socket, &random) }
            write(socket, opcode: .continuation, payload: Array(payload[cut...]), masked: true)
        } else {
            write(socket, opcode: opcode, payload: payload, masked: true)
        }
    }

    private func sendPing(_ socket: SimulatedSocket, _ random: inout SimulationRandom) {
        write(socket, opcode: .ping, payload: (0..<random.inRange(0...8)).map { UInt8($0) }, masked: true)
    }

    private func sendClose(_ socket: SimulatedSocket, code: CloseCode) {
        write(socket, opcode: .close, payload: [UInt8(code.rawValue >> 8), UInt8(code.rawValue & 0xFF)], masked: true)
        phase = .closeSent
        // A client closes its side once its close is out (RFC 6455 section 7.1.1 lets the
        // server close first; the peer still reads until EOF).
        socket.peerWriteClosed = true
    }

    private func frameBytes(opcode: Opcode, payload: [UInt8], masked: Bool, fin: Bool = true) -> [UInt8] {
        var frame = [UInt8](repeating: 0, count: FrameEncoder.frameSize(payloadLength: payload.count, masked: masked))
        let written = frame.withUnsafeMutableBytes { frame in
            payload.withUnsafeBytes {
                FrameEncoder.writeFrame(into: frame.baseAddress!, opcode: opcode, fin: fin, payload: $0,
                                        maskKey: masked ? UInt32(truncatingIfNeeded: 0x5A5A_0000 &+ id) : nil)
            }
        }
        precondition(written == frame.count)
        return frame
    }

    private func write(_ socket: SimulatedSocket, opcode: Opcode, payload: [UInt8], masked: Bool, fin: Bool = true) {
        socket.toWorker.append(contentsOf: frameBytes(opcode: opcode, payload: payload, masked: masked, fin: fin))
    }

    // MARK: - Reading

    private func read(_ socket: SimulatedSocket, _ random: inout SimulationRandom) {
        if socket.peerReset {
            phase = .finished
            return
        }
        if !socket.toPeer.isEmpty {
            let count = random.chance(50) ? socket.toPeer.count : random.inRange(1...socket.toPeer.count)
            inbound.append(contentsOf: socket.toPeer[..<count])
            socket.toPeer.removeFirst(count)
            consume(socket)
        }
        if socket.toPeer.isEmpty && socket.workerClosed && phase != .finished {
            sawEOF = true
            phase = .finished
        }
    }

    private func consume(_ socket: SimulatedSocket) {
        if ended {
            // A refusal's body may follow its head; nothing may follow a close frame.
            if refusedStatus == nil && !inbound.isEmpty { fail("peer \(id) (\(behaviour)): \(inbound.count) bytes after the close frame") }
            inbound.removeAll()
            return
        }
        if phase == .upgrading {
            let step = inbound.withUnsafeBytes { bytes in key.withUnsafeBytes { parser.parse(bytes, key: $0) } }
            switch step {
            case .needMore:
                return
            case .accepted(let headLength, _):
                inbound.removeFirst(headLength)
                upgraded = true
                phase = .open
                if behaviour == .refused { fail("peer \(id): the handler refuses /refuse, yet the upgrade was accepted") }
            case .failed(.status(let status)):
                refusedStatus = status
                inbound.removeAll()
                ended = true
                // 503: the worker's buffer budget could not hold the request (any peer may get it).
                if status != 503 && (behaviour != .refused || status != 403) { fail("peer \(id) (\(behaviour)): upgrade answered \(status)") }
                return
            case .failed(let failure):
                fail("peer \(id): a bad upgrade response: \(failure.name)")
                return
            }
        }
        reader.read(&inbound) { item in
            switch item {
            case .failure(let code):
                fail("peer \(id): the server's frames break the protocol (\(code.rawValue))")
                return false
            case .control(let opcode, let payload):
                control = payload
                controlOpcode = opcode
                return controlFrame(socket, opcode)
            case .message(let opcode, let payload):
                message = payload
                messageOpcode = opcode
                dataMessage()
                return true
            }
        }
        if ended && !inbound.isEmpty { fail("peer \(id) (\(behaviour)): \(inbound.count) bytes after the close frame") }
    }

    private func dataMessage() {
        if messageOpcode == .text && message.starts(with: "pub:".utf8) {
            topicDelivery()
            return
        }
        // Random bytes may happen to form a valid frame, which the server echoes.
        if behaviour == .garbage { return }
        guard expectedHead < expectedEchoes.count else {
            fail("peer \(id) (\(behaviour)): a message nobody asked for (\(message.count) bytes)")
            return
        }
        let (opcode, payload) = expectedEchoes[expectedHead]
        expectedHead += 1
        if opcode != messageOpcode || payload != message {
            fail("peer \(id): echo \(expectedHead) differs from what was sent (\(message.count) bytes for \(payload.count)): out of order or corrupted")
        }
        echoesChecked += 1
    }

    /// "pub:<publisher>:<n>": from any one publisher, n only grows (and never from itself:
    /// the handler excludes the sender).
    private func topicDelivery() {
        let fields = message.split(separator: UInt8(ascii: ":")).map { Int(String(decoding: $0, as: UTF8.self)) }
        guard fields.count == 3, let publisher = fields[1], let sequence = fields[2] else {
            return fail("peer \(id): a malformed topic delivery")
        }
        if publisher == id { return fail("peer \(id): got its own publish back (the sender is excluded)") }
        if sequence <= lastSequence[publisher, default: 0] {
            return fail("peer \(id): publish \(sequence) of peer \(publisher) after \(lastSequence[publisher, default: 0]): out of order")
        }
        lastSequence[publisher] = sequence
        deliveriesChecked += 1
    }

    /// Returns false when the peer stops reading (a close frame).
    private func controlFrame(_ socket: SimulatedSocket, _ opcode: Opcode) -> Bool {
        switch opcode {
        case .ping:
            if behaviour != .silent && !socket.peerWriteClosed && !socket.peerReset && !(behaviour == .ignoresClose && hostileSent) {
                write(socket, opcode: .pong, payload: control, masked: true)
            }
            return true
        case .close:
            let code = control.count >= 2 ? CloseCode(rawValue: UInt16(control[0]) << 8 | UInt16(control[1])) : CloseCode.noStatusReceived
            closeCode = code
            // Random bytes may form a close frame of their own, whose code the server echoes.
            if behaviour != .garbage && !allowedCloseCodes.contains(code.rawValue) {
                fail("peer \(id) (\(behaviour)): closed with \(code.rawValue), expected one of \(allowedCloseCodes.sorted())")
            }
            if phase == .open && !socket.peerWriteClosed && !socket.peerReset && behaviour != .ignoresClose {
                sendClose(socket, code: code.rawValue == 1005 ? .normalClosure : code)
            }
            phase = .closeSent
            ended = true
            return false
        default:
            return true
        }
    }

    /// Codes the server may close this peer with: its own reason, or the server's (1001
    /// shutting down, 1013 over the worker's buffer budget) that may come first.
    var allowedCloseCodes: Set<UInt16> {
        var codes: Set<UInt16> = [1001, 1013]
        switch behaviour {
        case .echo: codes.insert(1000)
        case .unmasked: codes.insert(1002)
        case .badUTF8: codes.insert(1007)
        case .tooBig: codes.insert(1009)
        case .closer, .ignoresClose: codes.insert(4000)
        case .refused, .stalledHandshake, .silent, .eofMidFrame, .reset, .slowReader, .idler, .publisher, .garbage: break
        }
        return codes
    }

    /// The close code this behaviour exists to provoke, if any.
    var provokedCloseCode: UInt16? {
        switch behaviour {
        case .unmasked: return 1002
        case .badUTF8: return 1007
        case .tooBig: return 1009
        case .closer, .ignoresClose: return 4000
        case .echo: return 1000
        case .idler: return 1001
        default: return nil
        }
    }
}
