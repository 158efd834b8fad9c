import ArgumentParser
import Glibc
import Logging
import Myriad
import MyriadClusterBridge
import MyriadDoctor

/// `myriad serve`: the engine with the echo application. Every flag has a MYRIAD_* twin;
/// a flag wins over its variable.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve WebSocket connections (echo, or broadcast with --app broadcast) until SIGTERM or SIGINT.",
        discussion: "Every option can also be set with its environment variable; an option on the command line wins. "
            + "Durations take ms/s/m/h suffixes (bare numbers are seconds); sizes take K/M/G (binary).")

    @Option(help: knobHelp("MYRIAD_HOST")) var host: String?
    @Option(help: knobHelp("MYRIAD_PORT")) var port: String?
    @Option(help: knobHelp("MYRIAD_WORKERS")) var workers: String?
    @Option(help: knobHelp("MYRIAD_MAX_CONNECTIONS")) var maxConnections: String?
    @Option(help: knobHelp("MYRIAD_FIXED_FILES_PER_RING")) var fixedFilesPerRing: String?
    @Option(help: knobHelp("MYRIAD_BACKEND")) var backend: String?
    @Option(help: knobHelp("MYRIAD_RING_ENTRIES")) var ringEntries: String?
    @Option(help: knobHelp("MYRIAD_CQ_ENTRIES")) var cqEntries: String?
    @Option(help: knobHelp("MYRIAD_BUFFER_SIZE")) var bufferSize: String?
    @Option(help: knobHelp("MYRIAD_BUFFER_COUNT")) var bufferCount: String?
    @Option(help: knobHelp("MYRIAD_MAX_MESSAGE_SIZE")) var maxMessageSize: String?
    @Option(help: knobHelp("MYRIAD_MAX_QUEUED_BYTES")) var maxQueuedBytes: String?
    @Option(help: knobHelp("MYRIAD_BUFFER_BUDGET")) var bufferBudget: String?
    @Option(help: knobHelp("MYRIAD_MAILBOX_CAPACITY")) var mailboxCapacity: String?
    @Option(help: knobHelp("MYRIAD_MAILBOX_BYTES")) var mailboxBytes: String?
    @Option(help: knobHelp("MYRIAD_MAX_SUBSCRIPTIONS")) var maxSubscriptions: String?
    @Option(help: knobHelp("MYRIAD_COMPRESSION")) var compression: String?
    @Option(help: knobHelp("MYRIAD_COMPRESSION_THRESHOLD")) var compressionThreshold: String?
    @Option(help: knobHelp("MYRIAD_COMPRESSION_DEDICATED_BUDGET")) var compressionDedicatedBudget: String?
    @Option(help: knobHelp("MYRIAD_COMPRESSION_PER_RECIPIENT")) var compressionPerRecipient: String?
    @Option(help: knobHelp("MYRIAD_MAX_HEADER_SIZE")) var maxHeaderSize: String?
    @Option(help: knobHelp("MYRIAD_BACKLOG")) var backlog: String?
    @Option(help: knobHelp("MYRIAD_TIMER_TICK")) var timerTick: String?
    @Option(help: knobHelp("MYRIAD_HANDSHAKE_TIMEOUT")) var handshakeTimeout: String?
    @Option(help: knobHelp("MYRIAD_PING_INTERVAL")) var pingInterval: String?
    @Option(help: knobHelp("MYRIAD_PONG_TIMEOUT")) var pongTimeout: String?
    @Option(help: knobHelp("MYRIAD_IDLE_TIMEOUT")) var idleTimeout: String?
    @Option(help: knobHelp("MYRIAD_CLOSE_TIMEOUT")) var closeTimeout: String?
    @Option(help: knobHelp("MYRIAD_SHUTDOWN_TIMEOUT")) var shutdownTimeout: String?
    @Option(help: knobHelp("MYRIAD_STATS_INTERVAL")) var statsInterval: String?
    @Option(help: knobHelp("MYRIAD_METRICS_PORT")) var metricsPort: String?
    @Option(help: knobHelp("MYRIAD_METRICS_HOST")) var metricsHost: String?
    @Option(help: knobHelp("MYRIAD_LOG_LEVEL")) var logLevel: String?
    @Option(help: knobHelp("MYRIAD_APP")) var app: String?
    @Option(help: knobHelp("MYRIAD_ALLOWED_ORIGINS")) var allowedOrigins: String?
    @Option(help: knobHelp("MYRIAD_URING_DISABLE")) var uringDisable: String?
    @Option(help: knobHelp("MYRIAD_CLUSTER_URL")) var clusterUrl: String?
    @Option(help: knobHelp("MYRIAD_CLUSTER_PREFIX")) var clusterPrefix: String?
    @Option(help: knobHelp("MYRIAD_CLUSTER_TOKEN")) var clusterToken: String?
    @Option(help: knobHelp("MYRIAD_CLUSTER_USER")) var clusterUser: String?
    @Option(help: knobHelp("MYRIAD_CLUSTER_PASSWORD")) var clusterPassword: String?
    @Option(help: knobHelp("MYRIAD_CLUSTER_BUFFER")) var clusterBuffer: String?

    func run() throws {
        let overrides: [(String, String?)] = [
            ("MYRIAD_HOST", host),
            ("MYRIAD_PORT", port),
            ("MYRIAD_WORKERS", workers),
            ("MYRIAD_MAX_CONNECTIONS", maxConnections),
            ("MYRIAD_FIXED_FILES_PER_RING", fixedFilesPerRing),
            ("MYRIAD_BACKEND", backend),
            ("MYRIAD_RING_ENTRIES", ringEntries),
            ("MYRIAD_CQ_ENTRIES", cqEntries),
            ("MYRIAD_BUFFER_SIZE", bufferSize),
            ("MYRIAD_BUFFER_COUNT", bufferCount),
            ("MYRIAD_MAX_MESSAGE_SIZE", maxMessageSize),
            ("MYRIAD_MAX_QUEUED_BYTES", maxQueuedBytes),
            ("MYRIAD_BUFFER_BUDGET", bufferBudget),
            ("MYRIAD_MAILBOX_CAPACITY", mailboxCapacity),
            ("MYRIAD_MAILBOX_BYTES", mailboxBytes),
            ("MYRIAD_MAX_SUBSCRIPTIONS", maxSubscriptions),
            ("MYRIAD_COMPRESSION", compression),
            ("MYRIAD_COMPRESSION_THRESHOLD", compressionThreshold),
            ("MYRIAD_COMPRESSION_DEDICATED_BUDGET", compressionDedicatedBudget),
            ("MYRIAD_COMPRESSION_PER_RECIPIENT", compressionPerRecipient),
            ("MYRIAD_MAX_HEADER_SIZE", maxHeaderSize),
            ("MYRIAD_BACKLOG", backlog),
            ("MYRIAD_TIMER_TICK", timerTick),
            ("MYRIAD_HANDSHAKE_TIMEOUT", handshakeTimeout),
            ("MYRIAD_PING_INTERVAL", pingInterval),
            ("MYRIAD_PONG_TIMEOUT", pongTimeout),
            ("MYRIAD_IDLE_TIMEOUT", idleTimeout),
            ("MYRIAD_CLOSE_TIMEOUT", closeTimeout),
            ("MYRIAD_SHUTDOWN_TIMEOUT", shutdownTimeout),
            ("MYRIAD_STATS_INTERVAL", statsInterval),
            ("MYRIAD_METRICS_PORT", metricsPort),
            ("MYRIAD_METRICS_HOST", metricsHost),
            ("MYRIAD_LOG_LEVEL", logLevel),
            ("MYRIAD_APP", app),
            ("MYRIAD_ALLOWED_ORIGINS", allowedOrigins),
            ("MYRIAD_URING_DISABLE", uringDisable),
            ("MYRIAD_CLUSTER_URL", clusterUrl),
            ("MYRIAD_CLUSTER_PREFIX", clusterPrefix),
            ("MYRIAD_CLUSTER_TOKEN", clusterToken),
            ("MYRIAD_CLUSTER_USER", clusterUser),
            ("MYRIAD_CLUSTER_PASSWORD", clusterPassword),
            ("MYRIAD_CLUSTER_BUFFER", clusterBuffer),
        ]
        var flags: [String: String] = [:]
        for (variable, value) in overrides { if let value { flags[variable] = value } }
        let config: Config
        let cluster: ClusterBridgeConfiguration?
        do {
            config = try Config.load(environment: currentEnvironment(), overrides: flags)
            cluster = try ClusterBridgeConfiguration.from(config, name: Self.clusterNodeName(config))
        } catch {
            FileHandle.standardErrorWrite("myriad: \(error)\n")
            throw ExitCode(2)
        }
        let logger = makeLogger(level: config.logLevel)
        Engine<EchoHandler>.blockShutdownSignals()
        for warning in Doctor.startupWarnings(config: config) { logger.warning("\(warning)") }
        let origins = config.allowedOrigins
        switch config.app {
        case .echo: try serve(Engine(config: config, logger: logger) { _ in EchoHandler(origins: origins) }, cluster: cluster, logger: logger)
        case .broadcast: try serve(Engine(config: config, logger: logger) { _ in BroadcastHandler(origins: origins) }, cluster: cluster, logger: logger)
        case .naiveBroadcast: try serve(Engine(config: config, logger: logger) { _ in NaiveBroadcastHandler() }, cluster: cluster, logger: logger)
        }
    }

    /// With MYRIAD_CLUSTER_URL: the bridge is attached before the engine starts (it must see
    /// every subscription) and started after (it connects in the background, retrying); it
    /// stops after the engine, so the last publishes and unsubscribes reach the broker. Its
    /// counters close every stats line, and a last line follows its stop.
    private func serve<Handler>(_ engine: Engine<Handler>, cluster: ClusterBridgeConfiguration?, logger: Logger) throws {
        var bridge: ClusterBridge?
        if let cluster {
            do {
                bridge = try ClusterBridge(configuration: cluster, engine: engine.handle, logger: clusterLogger(level: engine.config.logLevel))
            } catch {
                logger.critical("\(error)")
                throw ExitCode(2)
            }
            engine.attachCluster(bridge)
        }
        do {
            try engine.start()
        } catch {
            logger.critical("\(error)")
            throw ExitCode(1)
        }
        logger.info("application: \(engine.config.app.rawValue)")
        bridge?.start()
        engine.serveUntilSignalled { line in
            print(bridge.map { "\(line) \($0.stats().fields)" } ?? line)
            fflush(nil)
        }
        if let bridge {
            bridge.stop()
            print("final cluster \(bridge.stats().fields)")
            fflush(nil)
        }
    }

    /// CONNECT's name, shown in the NATS server's /connz: host, port and process.
    static func clusterNodeName(_ config: Config) -> String {
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, host.count - 1)
        let name = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return "myriad/\(name):\(config.port)/\(getpid())"
    }
}

/// The cluster bridge's log lines (connects, outages) go to stderr like the engine's.
func clusterLogger(level: Logger.Level) -> Logger {
    var logger = Logger(label: "myriad.cluster") { label in StreamLogHandler.standardError(label: label) }
    logger.logLevel = level
    return logger
}

/// The help text of a knob: its meaning, variable, default and range.
func knobHelp(_ variable: String) -> ArgumentHelp {
    guard let knob = Config.knobs.first(where: { $0.variable == variable }) else {
        preconditionFailure("no knob \(variable)")
    }
    return ArgumentHelp("\(knob.help) [\(knob.variable); default \(knob.defaultValue); \(knob.range)]")
}
