import Foundation
import Glibc
import Logging
import Myriad

/// A real engine on 127.0.0.1 with a free port, in this process, for one test. Shared by
/// MyriadTests and MyriadLoadTests (target MyriadTestSupport).
public final class TestServer<Handler: WebSocketHandler>: @unchecked Sendable {
    public let engine: Engine<Handler>
    private var stopped = false

    public init(
        backend: BackendChoice = .ioUring, workers: Int = 2,
        configure: (inout Config) -> Void = { _ in },
        handler: @escaping @Sendable (Int) -> Handler
    ) throws {
        var config = Config()
        config.host = "127.0.0.1"
        config.port = 0
        config.workers = workers
        config.backend = backend
        config.logLevel = .warning
        configure(&config)
        try config.validate()
        var logger = Logger(label: "test-server") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = config.logLevel
        engine = Engine(config: config, logger: logger, makeHandler: handler)
        try engine.start()
    }

    public var port: UInt16 { engine.port }

    public func stats() -> StatsSnapshot { engine.stats() }

    /// Polls the published counters until `condition` holds or `seconds` pass.
    @discardableResult
    public func waitFor(seconds: Double = 10, _ condition: (StatsSnapshot) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition(stats()) { return true }
            usleep(10_000)
        }
        return condition(stats())
    }

    /// Graceful shutdown (close 1001 to every connection), then joins the workers.
    public func stop() {
        guard !stopped else { return }
        stopped = true
        engine.shutdown()
        engine.wait()
    }

    deinit { stop() }
}

extension TestServer where Handler == EchoHandler {
    public convenience init(backend: BackendChoice = .ioUring, workers: Int = 2, configure: (inout Config) -> Void = { _ in }) throws {
        try self.init(backend: backend, workers: workers, configure: configure) { _ in EchoHandler() }
    }
}

/// A TCP port on 127.0.0.1 with nothing listening on it: bound, never listened on, released.
/// A server may bind it next; a client connecting to it is refused.
public func unusedLoopbackPort() -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return UInt16(bigEndian: address.sin_port)
}
