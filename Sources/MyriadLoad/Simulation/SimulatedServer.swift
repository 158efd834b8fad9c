@_spi(Simulation) import Myriad
import WebSocketCodec

/// A scripted WebSocket server at the far end of one of the client role's simulated
/// connections, written against the codec's server role (the request parsed with
/// `HandshakeParser`, the 101 written by `HandshakeResponse`, frames decoded and encoded
/// unmasked). Each behaviour provokes one outcome the load generator must count exactly once
/// and name (`expected`); the well-behaved ones check what the client sends: masked frames,
/// pongs that carry their ping's payload, one close frame.
final class SimulatedServer: SimulatedRemote {
    enum Behaviour: CaseIterable {
        /// Echoes every message (fragmented sometimes, a ping between the fragments), pings
        /// now and then, answers the client's close and then closes TCP.
        case echo
        /// The same, but after its close answer TCP stays open: the client closes at its
        /// close deadline, cleanly.
        case keepsTCPOpen
        /// Echoes, but never answers the client's close frame.
        case ignoresClose
        /// Answers the upgrade with 503.
        case refuses
        /// A 101 whose Sec-WebSocket-Accept is wrong.
        case badAccept
        /// Never answers the upgrade (the handshake deadline ends it).
        case stalls
        /// Sends close 1001 with the 101: a connection lost while the client held it.
        case closesFirst
        /// The same, then neither reads the client's answer nor closes TCP: the client closes
        /// at its close deadline, counted from when it read the 1001.
        case closesFirstAndHangs
        /// Half a frame, then a reset.
        case resetsMidFrame
        /// Half a frame, then EOF.
        case eofMidFrame
        /// A masked frame (servers must not mask): the client fails the connection, 1002.
        case masksFrames
        /// The connect is refused (ECONNREFUSED).
        case refusesConnect
        /// The connect never completes (the connect deadline ends it).
        case hangsConnect
    }

    /// The failure the client must count for this connection (kind and the reasons it may
    /// name), nil when it must end cleanly.
    var expected: (kind: FailureKind, reasons: Set<String>)? {
        switch behaviour {
        case .echo, .keepsTCPOpen: return nil
        case .ignoresClose: return (.close, ["ETIMEDOUT"])
        case .refuses: return (.handshake, ["HTTP_503"])
        case .badAccept: return (.handshake, ["BAD_ACCEPT"])
        case .stalls: return (.handshake, ["ETIMEDOUT"])
        case .closesFirst, .closesFirstAndHangs: return (.unexpectedClose, ["CLOSE_1001"])
        case .resetsMidFrame: return (.read, ["ECONNRESET", "EPIPE"])
        case .eofMidFrame: return (.unexpectedClose, ["EOF"])
        case .masksFrames: return (.read, ["PROTOCOL_1002"])
        case .refusesConnect: return (.connect, ["ECONNREFUSED"])
        case .hangsConnect: return (.connect, ["ETIMEDOUT"])
        }
    }

    let id: Int
    let behaviour: Behaviour
    let windowBytes: Int
    private let fail: (String) -> Void
    private(set) weak var socket: SimulatedSocket?

    private enum Phase { case waitingForRequest, open, closed }
    private var phase = Phase.waitingForRequest
    private var inbound: [UInt8] = []
    private var parser = HandshakeParser()
    private var reader = SimulatedFrameReader(role: .server, maxMessageSizeBytes: 1 << 20)
    private var message: [UInt8] = []
    private var messageOpcode: Opcode = .binary
    private var control: [UInt8] = []
    /// Pings sent and not yet answered, oldest first.
    private var pings: [[UInt8]] = []
    private var pingsLeft: Int
    /// The hostile act was done (after the client read the 101).
    private var actDone = false
    private(set) var echoed = 0
    private(set) var pongsChecked = 0
    private(set) var sawClientClose = false
    private(set) var upgraded = false

    init(id: Int, behaviour: Behaviour, random: inout SimulationRandom, fail: @escaping (String) -> Void) {
        self.id = id
        self.behaviour = behaviour
        self.fail = fail
        // Small windows make the client's sends short and wait; not so small that a close
        // frame queued behind echoes takes longer than the close timeout to be read.
        windowBytes = random.chance(20) ? random.inRange(64...1024) : random.inRange(4096...65_536)
        pingsLeft = random.inRange(0...4)
    }

    var connectOutcome: SimulatedConnectOutcome {
        switch behaviour {
        case .refusesConnect: return .refused
        case .hangsConnect: return .hangs
        default: return .accepted
        }
    }

    func attach(_ socket: SimulatedSocket) { self.socket = socket }
    func workerClosed() {}
    func refusedByListener() { phase = .closed }

    /// Its script has played out as far as the client needs to see it before the close
    /// phase: upgraded (or refused), and any hostile act read by the client.
    var isSettled: Bool {
        guard let socket else { return behaviour == .refusesConnect || behaviour == .hangsConnect || phase == .closed }
        if socket.workerClosed { return true }
        switch behaviour {
        case .echo, .keepsTCPOpen, .ignoresClose: return upgraded
        default: return false
        }
    }

    // MARK: - Acting

    func act(_ random: inout SimulationRandom) {
        guard let socket, phase != .closed, !socket.peerReset else { return }
        read(socket, &random)
        guard phase == .open, !socket.peerWriteClosed, !socket.peerReset, socket.toWorker.isEmpty else { return }
        // The client has read everything so far (the 101 included): the hostile act now, so
        // the client sees it as an open connection's.
        if !actDone {
            actDone = true
            switch behaviour {
            case .resetsMidFrame:
                socket.toWorker += Array(frame(.binary, Array("half".utf8)).dropLast(2))
                socket.peerReset = true
                return
            case .eofMidFrame:
                socket.toWorker += Array(frame(.binary, Array("half".utf8)).dropLast(2))
                socket.peerWriteClosed = true
                return
            case .masksFrames:
                socket.toWorker += frame(.binary, [1, 2, 3], maskKey: 0x0102_0304)
                return
            default:
                break
            }
        }
        if behaviour == .echo && pingsLeft > 0 && random.oneIn(8) {
            pingsLeft -= 1
            sendPing(socket, &random)
        }
    }

    private func sendPing(_ socket: SimulatedSocket, _ random: inout SimulationRandom) {
        let payload = (0..<random.inRange(0...125)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        pings.append(payload)
        socket.toWorker += frame(.ping, payload)
    }

    private func frame(_ opcode: Opcode, _ payload: [UInt8], fin: Bool = true, maskKey: UInt32? = nil) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: FrameEncoder.frameSize(payloadLength: payload.count, masked: maskKey != nil))
        let written = bytes.withUnsafeMutableBytes { destination in
            payload.withUnsafeBytes { FrameEncoder.writeFrame(into: destination.baseAddress!, opcode: opcode, fin: fin, payload: $0, maskKey: maskKey) }
        }
        precondition(written == bytes.count)
        return bytes
    }

    // MARK: - Reading

    private func read(_ socket: SimulatedSocket, _ random: inout SimulationRandom) {
        if !socket.toPeer.isEmpty {
            let count = random.chance(50) ? socket.toPeer.count : random.inRange(1...socket.toPeer.count)
            inbound += socket.toPeer[..<count]
            socket.toPeer.removeFirst(count)
        }
        if phase == .waitingForRequest {
            upgrade(socket, &random)
            return
        }
        if phase == .open { frames(socket, &random) }
        if socket.workerClosed && socket.toPeer.isEmpty {
            phase = .closed
            // Our end closes too once the client's is gone (a server closing after EOF).
            if !socket.peerReset { socket.peerWriteClosed = true }
        }
    }

    private func upgrade(_ socket: SimulatedSocket, _ random: inout SimulationRandom) {
        guard !inbound.isEmpty, behaviour != .stalls else { return }
        let step = inbound.withUnsafeBytes { parser.parse($0) }
        switch step {
        case .needMore:
            return
        case .upgrade(let request, let headLength):
            if behaviour == .refuses {
                socket.toWorker += Array("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".utf8)
                phase = .closed
                socket.peerWriteClosed = true
                return
            }
            var response = [UInt8](repeating: 0, count: HandshakeResponse.switchingProtocolsSize(subprotocolLength: 0))
            let size = inbound.withUnsafeBytes { _ in
                response.withUnsafeMutableBytes { HandshakeResponse.writeSwitchingProtocols(for: request, into: $0) }
            }
            precondition(size == response.count)
            if behaviour == .badAccept {
                // Change one character of the accept value: still base64, no longer SHA-1 of the key.
                let index = response.count - 5
                response[index] = response[index] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            }
            inbound.removeFirst(headLength)
            if !inbound.isEmpty { fail("server \(id): the client sent \(inbound.count) bytes before the 101") }
            socket.toWorker += response
            if behaviour == .badAccept {
                phase = .closed
                return
            }
            upgraded = true
            phase = .open
            if behaviour == .closesFirst || behaviour == .closesFirstAndHangs {
                socket.toWorker += frame(.close, [0x03, 0xE9])
                if behaviour == .closesFirstAndHangs { phase = .closed }
            }
        case .plainRequest, .reject:
            fail("server \(id): the client's upgrade request was not one")
            phase = .closed
        }
    }

    private func frames(_ socket: SimulatedSocket, _ random: inout SimulationRandom) {
        var replies: [[UInt8]] = []
        reader.read(&inbound) { item in
            switch item {
            case .failure(let code):
                fail("server \(id) (\(behaviour)): the client's frames break the protocol (\(code.rawValue))")
                return false
            case .control(let opcode, let payload):
                control = payload
                if let reply = controlFrame(socket, opcode) { replies.append(reply) }
                return !sawClientClose
            case .message(let opcode, let payload):
                message = payload
                messageOpcode = opcode
                replies.append(contentsOf: echo(&random))
                return true
            }
        }
        if sawClientClose && !inbound.isEmpty { fail("server \(id): \(inbound.count) bytes after the client's close frame") }
        // Nothing is written once our side is shut or reset (a pong after a half frame and EOF
        // would turn the half frame into garbage the client rightly fails with 1002).
        if !socket.peerWriteClosed && !socket.peerReset {
            for reply in replies { socket.toWorker += reply }
        }
        if sawClientClose && behaviour == .echo { socket.peerWriteClosed = true }
    }

    /// The frames that echo the message just read: whole, or in two fragments with a ping
    /// between them now and then.
    private func echo(_ random: inout SimulationRandom) -> [[UInt8]] {
        guard behaviour == .echo || behaviour == .keepsTCPOpen || behaviour == .ignoresClose else { return [] }
        echoed += 1
        guard message.count > 1 && random.chance(25) else { return [frame(messageOpcode, message)] }
        let cut = random.inRange(1...message.count - 1)
        var frames = [frame(messageOpcode, Array(message[..<cut]), fin: false)]
        if behaviour == .echo && random.chance(40) {
            let payload = (0..<random.inRange(0...125)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            pings.append(payload)
            frames.append(frame(.ping, payload))
        }
        frames.append(frame(.continuation, Array(message[cut...])))
        return frames
    }

    /// What a whole control frame from the client asks for (nil: nothing to send).
    private func controlFrame(_ socket: SimulatedSocket, _ opcode: Opcode) -> [UInt8]? {
        switch opcode {
        case .pong:
            guard !pings.isEmpty else {
                fail("server \(id): a pong for no ping")
                return nil
            }
            let expected = pings.removeFirst()
            if control != expected { fail("server \(id): a pong of \(control.count) bytes answers a ping of \(expected.count) with other bytes") }
            pongsChecked += 1
            return nil
        case .ping:
            return frame(.pong, control)  // the load generator pings only in ping mode
        case .close:
            if sawClientClose { fail("server \(id): a second close frame") }
            sawClientClose = true
            switch behaviour {
            case .closesFirst:
                // The answer to our 1001: the handshake is done; close TCP.
                socket.peerWriteClosed = true
                return nil
            case .ignoresClose:
                return nil
            default:
                if control.count >= 2 && !(control[0] == 0x03 && control[1] == 0xE8) {
                    fail("server \(id): the client closed with \(UInt16(control[0]) << 8 | UInt16(control[1])), not 1000")
                }
                return frame(.close, Array(control.prefix(2)))
            }
        default:
            return nil
        }
    }
}
