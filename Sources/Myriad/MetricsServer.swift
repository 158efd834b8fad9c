import CLibURing
import Glibc
import Synchronization

/// The `/metrics` listener (MYRIAD_METRICS_PORT): a small, strict HTTP/1.1 server on its own
/// thread that answers `GET /metrics` with the Prometheus text format, read from the workers'
/// published counters at the moment of the scrape. The workers never see it: a scrape costs
/// them nothing, and between scrapes nothing runs.
///
/// One request per connection, one connection at a time (Prometheus scrapes a target
/// serially): the request head is read up to `maxRequestBytes`, the whole exchange is bounded
/// by `deadlineMilliseconds`, and the connection closes after the response. Anything else than
/// a well-formed `GET /metrics` gets 400, 404, 405, 431 or 505, without a body beyond a line
/// of text. Bound without SO_REUSEPORT, so a second process (or engine) asking for the same
/// port fails at start-up instead of sharing it.
final class MetricsServer: @unchecked Sendable {
    static let maxRequestBytes = 8192
    static let deadlineMilliseconds: Int64 = 3000

    let host: String
    let port: UInt16
    private let listener: Int32
    private let stopEvent: Int32
    private let render: @Sendable () -> String
    private let thread = Mutex<pthread_t?>(nil)
    private let closed = Atomic<Bool>(false)

    init(host: String, port: UInt16, render: @escaping @Sendable () -> String) throws(SystemError) {
        self.host = host
        self.render = render
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        // SO_REUSEADDR lets a restarted server bind past TIME_WAIT; it never lets two listen.
        var one: Int32 = 1
        guard setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            let saved = errno
            Glibc.close(fd)
            throw SystemError("setsockopt(SO_REUSEADDR)", errno: saved)
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            Glibc.close(fd)
            throw SystemError("inet_pton(\(host))", errno: EINVAL)
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            let saved = errno
            Glibc.close(fd)
            throw SystemError("bind(\(host):\(port))", errno: saved)
        }
        guard listen(fd, 64) == 0 else {
            let saved = errno
            Glibc.close(fd)
            throw SystemError("listen", errno: saved)
        }
        let event = eventfd(0, Int32(EFD_CLOEXEC) | Int32(EFD_NONBLOCK))
        guard event >= 0 else {
            let saved = errno
            Glibc.close(fd)
            throw SystemError("eventfd", errno: saved)
        }
        listener = fd
        stopEvent = event
        self.port = Listener.port(of: fd)
    }

    deinit { closeDescriptors() }

    /// Starts answering on the server's own thread.
    func start() {
        thread.withLock { thread in
            guard thread == nil, !closed.load(ordering: .relaxed) else { return }
            thread = spawnThread(name: "myriad-metrics") { [self] in serve() }
        }
    }

    /// Stops the thread (a scrape in progress finishes first, within its deadline) and
    /// closes the listener. Idempotent.
    func stop() {
        let running = thread.withLock { thread -> pthread_t? in
            defer { thread = nil }
            return thread
        }
        if let running {
            var one: UInt64 = 1
            _ = write(stopEvent, &one, 8)
            pthread_join(running, nil)
        }
        closeDescriptors()
    }

    private func closeDescriptors() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        Glibc.close(listener)
        Glibc.close(stopEvent)
    }

    private func serve() {
        var fds = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0), pollfd(fd: stopEvent, events: Int16(POLLIN), revents: 0)]
        while true {
            let ready = poll(&fds, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                usleep(10_000)  // nothing else can fail here but resources; do not spin
                continue
            }
            if fds[1].revents != 0 { return }
            guard fds[0].revents != 0 else { continue }
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM { usleep(10_000) }
                continue
            }
            // No other thread forks or execs here, so setting these after accept is not racy
            // in practice; and the socket must not block past the exchange's deadline.
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
            exchange(client)
            Glibc.close(client)
        }
    }

    /// Reads one request head, answers it, and returns (the caller closes).
    private func exchange(_ client: Int32) {
        let deadline = monotonicNanoseconds() + Self.deadlineMilliseconds * 1_000_000
        var head = [UInt8](repeating: 0, count: Self.maxRequestBytes)
        var count = 0
        var end: Int?
        while end == nil {
            if count == head.count {
                send(client, Self.response(status: 431, body: "request head larger than \(Self.maxRequestBytes) bytes\n"), deadline: deadline)
                finish(client, deadline: deadline)
                return
            }
            guard wait(client, for: Int16(POLLIN), until: deadline) else { return }
            let received = head.withUnsafeMutableBytes { recv(client, $0.baseAddress! + count, $0.count - count, 0) }
            if received < 0 && (errno == EAGAIN || errno == EINTR) { continue }
            guard received > 0 else { return }
            let searchFrom = max(0, count - 3)
            count += received
            end = Self.headEnd(head, from: searchFrom, to: count)
        }
        let request = Self.route(head[..<end!])
        let body = request.status == 200 ? render() : request.body
        send(client, Self.response(status: request.status, body: body, extraHeaders: request.extraHeaders), deadline: deadline)
        finish(client, deadline: deadline)
    }

    /// Ends the response with FIN, then reads and drops what the client still sends (bounded:
    /// 64 KiB, 1 s, the deadline) until it closes: closing a socket with unread bytes sends RST,
    /// which can destroy the response before the client reads it.
    private func finish(_ client: Int32, deadline: Int64) {
        shutdown(client, Int32(SHUT_WR))
        let until = min(deadline, monotonicNanoseconds() + 1_000_000_000)
        var dropped = 0
        var sink = [UInt8](repeating: 0, count: 4096)
        while dropped < 65536 && wait(client, for: Int16(POLLIN), until: until) {
            let received = sink.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if received < 0 && (errno == EAGAIN || errno == EINTR) { continue }
            guard received > 0 else { return }
            dropped += received
        }
    }

    /// Where the head ends (after CRLF CRLF), searching `[from, to)`.
    static func headEnd(_ bytes: [UInt8], from: Int, to: Int) -> Int? {
        var index = from
        while index + 3 < to {
            if bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
                return index + 4
            }
            index += 1
        }
        return nil
    }

    struct Routed: Equatable {
        var status: Int
        var body: String
        var extraHeaders: String = ""
    }

    /// The answer to a request head (CRLF CRLF included): 200 for `GET /metrics`, otherwise
    /// the status that says what is wrong.
    static func route(_ head: ArraySlice<UInt8>) -> Routed {
        let bad = Routed(status: 400, body: "bad request\n")
        // Visible ASCII, spaces, tabs and CRLF line ends only.
        guard head.allSatisfy({ ($0 >= 0x20 && $0 < 0x7F) || $0 == 9 || $0 == 13 || $0 == 10 }) else { return bad }
        // Lines end with CRLF; a lone CR or LF anywhere else is malformed.
        var lines: [String] = []
        var line: [UInt8] = []
        var bytes = Array(head.dropLast(4))[...]
        while let byte = bytes.popFirst() {
            if byte == 13 && bytes.first == 10 {
                bytes.removeFirst()
                lines.append(String(decoding: line, as: UTF8.self))
                line.removeAll(keepingCapacity: true)
            } else if byte == 13 || byte == 10 {
                return bad
            } else {
                line.append(byte)
            }
        }
        lines.append(String(decoding: line, as: UTF8.self))
        let requestLine = lines[0]
        let parts = requestLine.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy({ $0 >= "A" && $0 <= "Z" }), parts[1].hasPrefix("/") else { return bad }
        let version = parts[2]
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else {
            return version.hasPrefix("HTTP/") ? Routed(status: 505, body: "HTTP/1.1 only\n") : bad
        }
        var hosts = 0
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { return bad }
            let name = line[..<colon]
            guard !name.isEmpty, name.utf8.allSatisfy(isTokenByte) else { return bad }
            let value = line[line.index(after: colon)...].trimmingSpaces
            switch name.lowercased() {
            case "host": hosts += 1
            case "content-length": guard value == "0" else { return bad }  // a GET carries no body
            case "transfer-encoding": return bad
            default: break
            }
        }
        // RFC 9112 section 3.2: exactly one Host in an HTTP/1.1 request.
        if version == "HTTP/1.1" && hosts != 1 || hosts > 1 { return bad }
        let path = parts[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        guard path == "/metrics" else { return Routed(status: 404, body: "not found: only GET /metrics is served here\n") }
        guard parts[0] == "GET" else { return Routed(status: 405, body: "method not allowed\n", extraHeaders: "Allow: GET\r\n") }
        return Routed(status: 200, body: "")
    }

    static func response(status: Int, body: String, extraHeaders: String = "") -> [UInt8] {
        let reason: String
        switch status {
        case 200: reason = "OK"
        case 400: reason = "Bad Request"
        case 404: reason = "Not Found"
        case 405: reason = "Method Not Allowed"
        case 431: reason = "Request Header Fields Too Large"
        case 505: reason = "HTTP Version Not Supported"
        default: reason = "Error"
        }
        let type = status == 200 ? PrometheusText.contentType : "text/plain; charset=utf-8"
        let bodyBytes = Array(body.utf8)
        let head = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(type)\r\nContent-Length: \(bodyBytes.count)\r\n"
            + extraHeaders + "Connection: close\r\n\r\n"
        return Array(head.utf8) + bodyBytes
    }

    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: return true
        default: return false
        }
    }

    /// Waits until `fd` is ready for `events` or the deadline passes.
    private func wait(_ fd: Int32, for events: Int16, until deadline: Int64) -> Bool {
        while true {
            let left = (deadline - monotonicNanoseconds()) / 1_000_000
            guard left > 0 else { return false }
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let ready = poll(&entry, 1, Int32(clamping: left))
            if ready > 0 { return true }
            if ready < 0 && errno == EINTR { continue }
            if ready == 0 { return false }
            return false
        }
    }

    /// Writes all of `bytes` unless the peer goes away or the deadline passes.
    private func send(_ client: Int32, _ bytes: [UInt8], deadline: Int64) {
        var sent = 0
        while sent < bytes.count {
            let result = bytes.withUnsafeBytes { Glibc.send(client, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if result > 0 {
                sent += result
            } else if result < 0 && (errno == EAGAIN || errno == EINTR) {
                guard wait(client, for: Int16(POLLOUT), until: deadline) else { return }
            } else {
                return
            }
        }
    }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var view = self
        while let first = view.first, first == " " || first == "\t" { view = view.dropFirst() }
        while let last = view.last, last == " " || last == "\t" { view = view.dropLast() }
        return view
    }
}
