import Foundation
import Glibc

/// A real `nats-server` child on 127.0.0.1, on free client and monitoring ports, started by
/// the test and stopped by its PID. It can be stopped and started again on the same ports
/// (the outage tests). When nats-server is not installed the test fails, never skips:
/// `make test` installs it (scripts/ensure-deps.sh).
public final class NATSServerProcess {
    public let port: UInt16
    public let monitorPort: UInt16
    private let arguments: [String]
    private let configURL: URL?
    private let logURL: URL
    private var process: Process?

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    /// `configuration` is nats-server config-file text (e.g. `ping_interval: "200ms"`);
    /// `arguments` are extra command-line flags (e.g. `--user`, `--pass`, `--auth`).
    public init(arguments: [String] = [], configuration: String? = nil) throws {
        port = freeLoopbackPort()
        var monitor = freeLoopbackPort()
        while monitor == port { monitor = freeLoopbackPort() }
        monitorPort = monitor
        let directory = FileManager.default.temporaryDirectory
        logURL = directory.appendingPathComponent("nats-server-test-\(port).log")
        if let configuration {
            let url = directory.appendingPathComponent("nats-server-test-\(port).conf")
            try configuration.write(to: url, atomically: true, encoding: .utf8)
            configURL = url
        } else {
            configURL = nil
        }
        self.arguments = arguments
        try start()
    }

    public var url: String { "nats://127.0.0.1:\(port)" }
    var pid: Int32? { process?.processIdentifier }

    /// Starts (again) on the same ports and waits until it accepts connections (bounded).
    public func start() throws {
        precondition(process == nil, "already running")
        let binary = try Self.binary()
        let child = Process()
        child.executableURL = URL(fileURLWithPath: binary)
        var args = ["-a", "127.0.0.1", "-p", String(port), "-m", String(monitorPort)]
        if let configURL { args += ["-c", configURL.path] }
        child.arguments = args + arguments
        if !FileManager.default.fileExists(atPath: logURL.path) {
            _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        }
        let log = try FileHandle(forWritingTo: logURL)
        log.seekToEndOfFile()
        child.standardOutput = log
        child.standardError = log
        try child.run()
        process = child
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if !child.isRunning { throw Failure(description: "nats-server exited at start: \(self.log)") }
            if (try? httpGet(port: monitorPort, path: "/varz")) != nil, canConnect(port: port) { return }
            usleep(20_000)
        }
        throw Failure(description: "nats-server did not start within 10 s: \(self.log)")
    }

    /// SIGTERM by PID, wait for the exit (SIGKILL after 5 s).
    public func stop() {
        guard let child = process else { return }
        process = nil
        guard child.isRunning else { return }
        kill(child.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(5)
        while child.isRunning && Date() < deadline { usleep(10_000) }
        if child.isRunning { kill(child.processIdentifier, SIGKILL) }
        child.waitUntilExit()
    }

    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// GET a monitoring endpoint (`/connz?subs=1`, `/subsz`, `/varz`) as a JSON object.
    public func monitor(_ path: String) throws -> [String: Any] {
        let body = try httpGet(port: monitorPort, path: path)
        guard let object = try JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            throw Failure(description: "\(path) is not a JSON object")
        }
        return object
    }

    /// The subjects the connection named `name` is subscribed to, per /connz?subs=1.
    public func subscriptions(ofClientNamed name: String) throws -> [String]? {
        let connz = try monitor("/connz?subs=1")
        let connections = connz["connections"] as? [[String: Any]] ?? []
        guard let connection = connections.first(where: { $0["name"] as? String == name }) else { return nil }
        return (connection["subscriptions_list"] as? [String] ?? []).sorted()
    }

    /// Messages the server received from clients since it started (/varz in_msgs).
    public func messagesIn() throws -> Int { (try monitor("/varz")["in_msgs"] as? Int) ?? -1 }

    public static func binary() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let candidates = path.split(separator: ":").map { "\($0)/nats-server" } + ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        if let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) { return found }
        throw Failure(
            description: "nats-server is not installed: these tests need a real one. Run scripts/ensure-deps.sh "
                + "(make test does), or apt-get install -y nats-server")
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: logURL)
        if let configURL { try? FileManager.default.removeItem(at: configURL) }
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on (bound to 0, read, released): a server
/// may bind it next; a client connecting to it is refused.
public func freeLoopbackPort() -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = loopbackAddress(port: 0)
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return UInt16(bigEndian: address.sin_port)
}

public func loopbackAddress(port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    address.sin_port = port.bigEndian
    return address
}

/// A blocking TCP connection to 127.0.0.1:port with 5 s send/receive timeouts, or -1.
public func connectLoopback(port: UInt16) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = loopbackAddress(port: port)
    let status = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    if status != 0 {
        close(fd)
        return -1
    }
    return fd
}

public func canConnect(port: UInt16) -> Bool {
    let fd = connectLoopback(port: port)
    if fd >= 0 { close(fd) }
    return fd >= 0
}

/// A plain HTTP/1.0 GET on loopback (the monitoring endpoint); returns the body.
///
/// A GET is idempotent, so an attempt that got no complete response is made again (up to
/// three times, 50 ms apart): the test process runs other tests' child processes beside this
/// one, and a signal (SIGCHLD) landing on this thread interrupts a blocking recv (EINTR),
/// which once failed a cluster test with an empty response. EINTR itself is retried in place.
public func httpGet(port: UInt16, path: String) throws -> Data {
    var failure = ""
    for attempt in 0..<3 {
        if attempt > 0 { usleep(50_000) }
        let (body, reason) = httpGetOnce(port: port, path: path)
        if let body { return body }
        failure = reason
    }
    throw NATSServerProcess.Failure(description: "GET \(path): \(failure) (3 attempts)")
}

private func httpGetOnce(port: UInt16, path: String) -> (body: Data?, failure: String) {
    let fd = connectLoopback(port: port)
    guard fd >= 0 else { return (nil, "cannot connect to 127.0.0.1:\(port)") }
    defer { close(fd) }
    let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)
    var sent = 0
    while sent < request.count {
        let count = request.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { return (nil, "send: errno \(errno)") }
        sent += count
    }
    var response = [UInt8]()
    var chunk = [UInt8](repeating: 0, count: 16_384)
    var ended = "EOF"
    while response.count < 16 << 20 {
        let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count < 0 && errno == EINTR { continue }
        if count < 0 { ended = "recv: errno \(errno)" }
        if count <= 0 { break }
        response.append(contentsOf: chunk[0..<count])
    }
    let separator = Array("\r\n\r\n".utf8)
    guard let headerEnd = (0..<max(0, response.count - 3)).first(where: { Array(response[$0..<($0 + 4)]) == separator }),
        String(decoding: response.prefix(12), as: UTF8.self).contains("200")
    else {
        return (nil, "\(ended) after \(response.count) bytes: \(String(decoding: response.prefix(200), as: UTF8.self))")
    }
    return (Data(response[(headerEnd + 4)...]), "")
}

/// Polls `condition` every 10 ms until it holds or `seconds` pass; returns whether it held.
@discardableResult
public func waitUntil(seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        usleep(10_000)
    }
    return try condition()
}
