import Foundation
import Glibc
import WebSocketCodec

public struct ClientError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A blocking WebSocket client over a plain socket, byte-exact: tests use it to send what
/// real clients send, and what hostile ones do.
public final class RawClient {
    public let fd: Int32
    private var pending: [UInt8] = []
    private var decoder = FrameDecoder()
    private let configuration = FrameDecoderConfiguration(role: .client, maxMessageSizeBytes: 1 << 26)
    private var fragments: [UInt8] = []

    /// `receiveBufferBytes`: SO_RCVBUF set before connecting, so the window stays that small
    /// (a client that reads slowly, or not at all).
    public init(port: UInt16, host: String = "127.0.0.1", source: String? = nil, receiveBufferBytes: Int32? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ClientError("socket: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(4))
        if var size = receiveBufferBytes { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(4)) }
        if let source {
            setsockopt(fd, Int32(IPPROTO_IP), 24 /* IP_BIND_ADDRESS_NO_PORT */, &one, socklen_t(4))
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            inet_pton(AF_INET, source, &local.sin_addr)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else { Glibc.close(fd); throw ClientError("bind \(source): errno \(errno)") }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        inet_pton(AF_INET, host, &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            let saved = errno
            Glibc.close(fd)
            throw ClientError("connect: errno \(saved)")
        }
    }

    public private(set) var isClosed = false

    deinit { close() }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(fd)
    }

    // MARK: Sending

    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard written > 0 else { throw ClientError("send: errno \(errno)") }
            offset += written
        }
    }

    public func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// The upgrade request a browser would send.
    public static func upgradeRequest(path: String = "/", key: String = "dGhlIHNhbXBsZSBub25jZQ==", extra: String = "") -> String {
        "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\(extra)\r\n"
    }

    /// Sends the upgrade request and reads the 101 response; throws on anything else.
    @discardableResult
    public func upgrade(path: String = "/", extra: String = "") throws -> String {
        try send(RawClient.upgradeRequest(path: path, extra: extra))
        let head = try readHead(timeout: 5)
        guard head.hasPrefix("HTTP/1.1 101 ") else { throw ClientError("upgrade refused: \(head)") }
        return head
    }

    /// A masked frame, as a client must send it.
    public static func frame(_ opcode: Opcode, _ payload: [UInt8], fin: Bool = true, masked: Bool = true, rsv: UInt8 = 0) -> [UInt8] {
        let key: UInt32 = masked ? UInt32.random(in: 0...UInt32.max) : 0
        var out = [UInt8](repeating: 0, count: FrameEncoder.frameSize(payloadLength: payload.count, masked: masked))
        out.withUnsafeMutableBytes { destination in
            payload.withUnsafeBytes {
                FrameEncoder.writeFrame(into: destination.baseAddress!, opcode: opcode, fin: fin, payload: $0,
                                        maskKey: masked ? key : nil)
            }
        }
        out[0] |= rsv << 4
        return out
    }

    public func sendFrame(_ opcode: Opcode, _ payload: [UInt8], fin: Bool = true, masked: Bool = true) throws {
        try send(RawClient.frame(opcode, payload, fin: fin, masked: masked))
    }

    public func sendText(_ text: String) throws { try sendFrame(.text, Array(text.utf8)) }

    public func sendClose(code: UInt16 = 1000, reason: String = "") throws {
        try sendFrame(.close, [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8))
    }

    // MARK: Receiving

    /// Waits up to `timeout` seconds for bytes; nil at EOF, throws on timeout or error.
    private func fill(timeout: Double) throws -> Bool {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = Glibc.poll(&poller, 1, Int32(timeout * 1000))
        guard ready > 0 else { throw ClientError("timed out after \(timeout) s") }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count == 0 { return false }
        guard count > 0 else {
            if errno == ECONNRESET { return false }
            throw ClientError("recv: errno \(errno)")
        }
        pending += buffer[..<count]
        return true
    }

    /// The HTTP response head (through the blank line).
    public func readHead(timeout: Double) throws -> String {
        while true {
            if let end = pending.firstRange(of: [13, 10, 13, 10]) {
                let head = String(decoding: pending[..<end.upperBound], as: UTF8.self)
                pending.removeFirst(end.upperBound)
                return head
            }
            guard try fill(timeout: timeout) else { return String(decoding: pending, as: UTF8.self) }
        }
    }

    /// Everything until the server closes the connection.
    public func readToEnd(timeout: Double) throws -> [UInt8] {
        while try fill(timeout: timeout) {}
        defer { pending = [] }
        return pending
    }

    /// The next complete message or control frame; nil when the connection ended.
    public func readMessage(timeout: Double = 5) throws -> (opcode: Opcode, payload: [UInt8], closeCode: UInt16?)? {
        while true {
            var result: (Opcode, [UInt8], UInt16?)?
            var failure: CloseCode?
            var consumed = 0
            pending.withUnsafeMutableBytes { buffer in
                var offset = 0
                loop: while true {
                    switch decoder.next(buffer, offset: &offset, configuration: configuration) {
                    case .needMore: break loop
                    case .failure(let code): failure = code; break loop
                    case .chunk(let chunk):
                        if chunk.opcode.isControl {
                            if chunk.isFrameStart { fragments = [] }
                        } else if chunk.isMessageStart {
                            fragments = []
                        }
                        fragments += chunk.bytes
                        if chunk.isMessageEnd {
                            result = (chunk.opcode, fragments, chunk.opcode == .close ? chunk.closeCode.rawValue : nil)
                            break loop
                        }
                    }
                }
                consumed = offset
            }
            pending.removeFirst(consumed)
            if let failure { throw ClientError("server sent a bad frame: \(failure)") }
            if let result { return result }
            guard try fill(timeout: timeout) else { return nil }
        }
    }

    /// The next frame as it is on the wire (an unmasked server frame, whole), without the
    /// decoder: for frames the decoder would refuse, such as compressed ones (RSV1).
    public func readRawFrame(timeout: Double = 5) throws -> (opcode: Opcode, rsv1: Bool, fin: Bool, payload: [UInt8]) {
        while true {
            if pending.count >= 2 {
                var length = Int(pending[1] & 0x7F)
                var offset = 2
                if length == 126, pending.count >= 4 {
                    length = Int(pending[2]) << 8 | Int(pending[3])
                    offset = 4
                } else if length == 127, pending.count >= 10 {
                    length = pending[2..<10].reduce(0) { $0 << 8 | Int($1) }
                    offset = 10
                } else if length >= 126 {
                    length = -1
                }
                if length >= 0 && pending.count >= offset + length {
                    let first = pending[0]
                    let payload = Array(pending[offset..<(offset + length)])
                    pending.removeFirst(offset + length)
                    return (Opcode(rawValue: first & 0x0F)!, first & 0x40 != 0, first & 0x80 != 0, payload)
                }
            }
            guard try fill(timeout: timeout) else { throw ClientError("connection ended before a whole frame") }
        }
    }

    /// Reads until EOF; true if the server closed the connection within `timeout`.
    public func waitForClose(timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            do {
                if try !fill(timeout: max(0.01, deadline.timeIntervalSinceNow)) { return true }
                pending.removeAll()
            } catch {
                return false
            }
        }
        return false
    }

    /// Closes with RST (SO_LINGER 0) instead of FIN.
    public func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close()
    }
}
