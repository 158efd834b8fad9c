import NATSTestSupport
import Foundation
import Glibc
import Synchronization

/// A scripted NATS "server" on 127.0.0.1 for the hostile-server tests: it accepts
/// connections one at a time on its own thread and runs `script` on each, which may speak
/// the protocol properly, badly, or not at all. Connections are counted; `stop()` closes the
/// listener and joins the thread.
final class FakeNATSServer: @unchecked Sendable {
    let port: UInt16
    private let listener: Int32
    private let stopping = Atomic<Bool>(false)
    private let accepted = Atomic<Int>(0)
    private let finished = DispatchSemaphore(value: 0)
    private var stopped = false

    /// One accepted connection, with blocking helpers (5 s timeouts).
    struct Connection {
        let fd: Int32
        let index: Int

        /// Sends everything (false once the peer is gone).
        @discardableResult
        func send(_ bytes: [UInt8]) -> Bool {
            var offset = 0
            while offset < bytes.count {
                let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
                if sent <= 0 { return false }
                offset += sent
            }
            return true
        }

        @discardableResult
        func send(_ text: String) -> Bool { send(Array(text.utf8)) }

        /// Reads up to and including the next LF (nil on close or timeout).
        func readLine() -> String? {
            var line: [UInt8] = []
            var byte: UInt8 = 0
            while line.count < 1 << 20 {
                guard recv(fd, &byte, 1, 0) == 1 else { return nil }
                line.append(byte)
                if byte == 0x0A { return String(decoding: line, as: UTF8.self) }
            }
            return nil
        }

        /// INFO, then reads CONNECT and PING and answers PONG: the client is connected.
        func handshake(maxPayload: Int = 1_048_576) -> Bool {
            guard send("INFO {\"server_id\":\"FAKE\",\"version\":\"0.0.0\",\"proto\":1,\"max_payload\":\(maxPayload)}\r\n"),
                let connect = readLine(), connect.hasPrefix("CONNECT {"),
                let ping = readLine(), ping == "PING\r\n"
            else { return false }
            return send("PONG\r\n")
        }

        /// Waits until the client closes (or `seconds` pass); true if it closed.
        func waitForClose(seconds: Double) -> Bool {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if count == 0 { return true }
                if count < 0 && errno != EAGAIN && errno != EWOULDBLOCK { return true }
            }
            return false
        }
    }

    init(script: @escaping @Sendable (Connection) -> Void) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = loopbackAddress(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            close(fd)
            throw NATSServerProcess.Failure(description: "fake server: bind/listen failed")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = UInt16(bigEndian: address.sin_port)
        let thread = Thread { [self] in
            defer { finished.signal() }
            var listening = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            while !stopping.load(ordering: .relaxed) {
                guard poll(&listening, 1, 50) > 0 else { continue }
                let fd = accept(listener, nil, nil)
                guard fd >= 0 else { continue }
                var timeout = timeval(tv_sec: 5, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                let index = accepted.add(1, ordering: .relaxed).newValue
                script(Connection(fd: fd, index: index))
                close(fd)
            }
        }
        thread.start()
    }

    /// Connections accepted so far.
    var connections: Int { accepted.load(ordering: .relaxed) }

    var url: String { "nats://127.0.0.1:\(port)" }

    func stop() {
        guard !stopped else { return }
        stopped = true
        stopping.store(true, ordering: .relaxed)
        finished.wait()
        close(listener)
    }

    deinit { stop() }
}
