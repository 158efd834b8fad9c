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
