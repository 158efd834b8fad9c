import Glibc
import Logging

/// Which I/O backend serves connections.
public enum BackendChoice: String, Sendable, CaseIterable {
    /// io_uring when the start-up probe finds everything the engine needs, else epoll.
    case auto
    case ioUring = "io_uring"
    case epoll
}

/// The application `myriad serve` runs.
public enum ServeApp: String, Sendable, CaseIterable {
    /// Every message goes back to its sender.
    case echo
    /// Every connection subscribes to its request path; every message is published to it.
    case broadcast
    /// The baseline topics are measured against: each worker keeps its connections per path
    /// and sends every message to each of them itself, copying it per connection (a handler
    /// without topics). Reaches the sender's worker only.
    case naiveBroadcast = "naive-broadcast"
}

/// io_uring features that can be turned off by hand (MYRIAD_URING_DISABLE), to run the
/// fallback paths a newer kernel would otherwise never take.
public enum URingFeature: String, Sendable, CaseIterable {
    /// SINGLE_ISSUER | DEFER_TASKRUN (6.1): fall back to COOP_TASKRUN | TASKRUN_FLAG.
    case deferTaskrun = "defer_taskrun"
    /// Multishot recv (6.0): fall back to single-shot receives re-armed after each completion.
    case multishotReceive = "multishot_recv"
    /// IORING_OP_MSG_RING (5.18): wake other workers through their eventfd instead.
    case messageRing = "msg_ring"
    /// The socket getsockopt command (6.7): upgrade hooks see no peer address with io_uring.
    case peerName = "peer_name"
}

/// Every knob of the engine, read from `MYRIAD_*` environment variables and validated.
///
/// Each knob is described once, in `Config.knobs`: its variable, default, accepted range
/// and meaning. `myriad serve --help` and the README list the same table, and a bad value
/// stops start-up with a message naming the variable, the value and the range.
public struct Config: Sendable {
    public var host = "0.0.0.0"
    /// 0 picks a free port (the first worker binds it, the others join it).
    public var port: UInt16 = 8080
    public var workers: Int = Config.onlineCores
    /// nil: as many as the fd limit allows (workers x RLIMIT_NOFILE for io_uring).
    public var maxConnections: Int? = nil
    public var backend: BackendChoice = .auto
    public var ringEntries: UInt32 = 4096
    /// nil: 4 x ringEntries.
    public var completionEntries: UInt32? = nil
    public var bufferSizeBytes: UInt32 = 4096
    public var bufferCount: UInt32 = 1024
    public var maxMessageSizeBytes = 1 << 20
    public var maxQueuedBytes = 4 << 20
    /// nil: a quarter of the host's memory (or of the cgroup's limit) over the workers.
    public var bufferBudgetBytes: Int? = nil
    /// Commands and bytes each worker's mailbox holds (requests from other threads).
    public var mailboxCapacity = 65_536
    public var mailboxBytes = 64 << 20
    /// Topic subscriptions in the whole process.
    public var maxSubscriptions = 10_000_000
    /// io_uring: the largest fixed-file table a ring gets (nil: RLIMIT_NOFILE, the kernel's
    /// own bound). Fewer per ring means more rings per worker.
    public var fixedFilesPerRing: Int? = nil
    /// permessage-deflate (RFC 7692).
    public var compression: CompressionMode = .off
    /// Messages smaller than this go out uncompressed.
    public var compressionThresholdBytes = 256
    /// Per worker: bytes of zlib state for dedicated-mode connections.
    public var compressionDedicatedBudgetBytes = 64 << 20
    /// For benchmarks only: compress a publish once per recipient instead of once, as a
    /// server without compress-once does (the baseline `bench/compression` measures against).
    public var compressionPerRecipient = false
    /// `myriad serve`'s application.
    public var app: ServeApp = .echo
    /// `myriad serve`'s Origin allow-list.
    public var allowedOrigins = OriginPolicy.any
    public var maxHeaderBytes = 8192
    public var listenBacklog = 4096
    public var timerTickMilliseconds = 50
    public var handshakeTimeoutMilliseconds = 10_000
    public var pingIntervalMilliseconds = 25_000
    public var pongTimeoutMilliseconds = 10_000
    public var idleTimeoutMilliseconds = 0
    public var closeTimeoutMilliseconds = 5_000
    public var shutdownTimeoutMilliseconds = 10_000
    public var statsIntervalMilliseconds = 0
    /// The Prometheus `/metrics` listener: off (nil) unless set; 0 picks a free port.
    public var metricsPort: UInt16? = nil
    /// Loopback by default: metrics are not for the public.
    public var metricsHost = "127.0.0.1"
    public var logLevel: Logger.Level = .info
    public var disabledURingFeatures: Set<URingFeature> = []
    /// Clustering (MYRIAD_CLUSTER_*, see Config+Cluster.swift): off while `clusterURL` is nil.
    public var cluster = ClusterSettings()

    public init() {}

    public static var onlineCores: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Reads every `MYRIAD_*` variable in `environment`, then applies `overrides` (command
    /// line flags, keyed by variable name), validating each value.
    public static func load(
        environment: [String: String], overrides: [String: String] = [:]
    ) throws(ConfigError) -> Config {
        var config = Config()
        let known = Set(knobs.map(\.variable))
        for name in environment.keys.sorted() where name.hasPrefix("MYRIAD_") && !known.contains(name) {
            throw ConfigError(variable: name, value: environment[name]!, expected: "a known MYRIAD_* variable (see myriad serve --help)")
        }
        for knob in knobs {
            if let value = overrides[knob.variable] ?? environment[knob.variable] {
                try knob.apply(&config, value.trimmingSpaces)
            }
        }
        try config.validate()
        return config
    }

    /// Cross-knob rules (each knob's own range is checked when it is read).
    public func validate() throws(ConfigError) {
        if let completionEntries, completionEntries < ringEntries {
            throw ConfigError(variable: "MYRIAD_CQ_ENTRIES", value: String(completionEntries),
                              expected: "at least MYRIAD_RING_ENTRIES (\(ringEntries)): the kernel requires cq >= sq")
        }
        if let maxConnections, maxConnections < workers {
            throw ConfigError(variable: "MYRIAD_MAX_CONNECTIONS", value: String(maxConnections),
                              expected: "at least MYRIAD_WORKERS (\(workers)): every worker needs a slot")
        }
        if let bufferBudgetBytes, bufferBudgetBytes < Config.minimumBufferBudget(maxMessageSizeBytes: maxMessageSizeBytes) {
            throw ConfigError(variable: "MYRIAD_BUFFER_BUDGET", value: formatBytes(bufferBudgetBytes),
                              expected: "at least \(formatBytes(Config.minimumBufferBudget(maxMessageSizeBytes: maxMessageSizeBytes))): "
                                  + "twice MYRIAD_MAX_MESSAGE_SIZE (\(formatBytes(maxMessageSizeBytes))) rounded up to a power of two, "
                                  + "so that one largest message fits in the half the budget gives to partial messages")
        }
        if timerTickMilliseconds > handshakeTimeoutMilliseconds {
            throw ConfigError(variable: "MYRIAD_TIMER_TICK", value: "\(timerTickMilliseconds)ms",
                              expected: "at most MYRIAD_HANDSHAKE_TIMEOUT (\(handshakeTimeoutMilliseconds)ms)")
        }
        try validateCluster()
    }

}

extension Config {
    /// The smallest MYRIAD_BUFFER_BUDGET that lets one largest message be reassembled (the
    /// pool lends powers of two; partial messages may use half the budget).
    public static func minimumBufferBudget(maxMessageSizeBytes: Int) -> Int {
        2 * (1 << (Int.bitWidth - (max(maxMessageSizeBytes, 256) - 1).leadingZeroBitCount))
    }

    /// Each worker's MYRIAD_BUFFER_BUDGET: the configured value, or a quarter of
    /// `memoryBytes` (the host's, or its cgroup's limit) over the workers, and never less
    /// than the minimum.
    public func bufferBudgetPerWorker(memoryBytes: Int) -> Int {
        if let bufferBudgetBytes { return bufferBudgetBytes }
        return max(memoryBytes / 4 / workers, Config.minimumBufferBudget(maxMessageSizeBytes: maxMessageSizeBytes))
    }
}

/// A rejected configuration value.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public var variable: String
    public var value: String
    public var expected: String

    public init(variable: String, value: String, expected: String) {
        self.variable = variable
        self.value = value
        self.expected = expected
    }

    public var description: String { "invalid \(variable)=\"\(value)\": expected \(expected)" }
}

/// One tunable: its variable, what it means, its default and range, and how to read it.
public struct Knob: Sendable {
    public var variable: String
    /// The `myriad serve` flag that sets the same knob.
    public var flag: String
    public var defaultValue: String
    public var range: String
    public var help: String
    let apply: @Sendable (inout Config, String) throws(ConfigError) -> Void
}

extension Config {
    /// The table of every knob, in the order `--help` and the README list them.
    public static let knobs: [Knob] = [
        Knob(variable: "MYRIAD_HOST", flag: "host", defaultValue: "0.0.0.0", range: "an IPv4 address",
             help: "Address every worker's listener binds.") { config, value throws(ConfigError) in
            var address = in_addr()
            guard inet_pton(AF_INET, value, &address) == 1 else {
                throw ConfigError(variable: "MYRIAD_HOST", value: value, expected: "an IPv4 address such as 0.0.0.0 or 127.0.0.1")
            }
            config.host = value
        },
        Knob(variable: "MYRIAD_PORT", flag: "port", defaultValue: "8080", range: "0-65535 (0: any free port)",
             help: "TCP port; all workers share it with SO_REUSEPORT.") { config, value throws(ConfigError) in
            config.port = UInt16(try integer("MYRIAD_PORT", value, 0...65535))
        },
        Knob(variable: "MYRIAD_WORKERS", flag: "workers", defaultValue: "online cores", range: "1-1024",
             help: "Worker threads, each with its own rings, listener, slab and timing wheel.") { config, value throws(ConfigError) in
            config.workers = try integer("MYRIAD_WORKERS", value, 1...1024)
        },
        Knob(variable: "MYRIAD_MAX_CONNECTIONS", flag: "max-connections",
             defaultValue: "workers x fd limit (io_uring), fd limit (epoll)", range: "1-16777216",
 help: "Connections held at once, split evenly over workers. With io_uring a worker runs as many rings as its share needs (each holds at most RLIMIT_NOFILE).") { config, value throws(ConfigError) in
            config.maxConnections = try integer("MYRIAD_MAX_CONNECTIONS", value, 1...16_777_216)
        },
        Knob(variable: "MYRIAD_FIXED_FILES_PER_RING", flag: "fixed-files-per-ring", defaultValue: "fd limit (RLIMIT_NOFILE)",
             range: "1-1048576 (at most the fd limit)",
             help: "io_uring: connections one ring's fixed-file table holds; a worker runs as many rings as its share needs, on its one thread.") { config, value throws(ConfigError) in
            config.fixedFilesPerRing = try integer("MYRIAD_FIXED_FILES_PER_RING", value, 1...1_048_576)
        },
        Knob(variable: "MYRIAD_BACKEND", flag: "backend", defaultValue: "auto", range: "auto | io_uring | epoll",
             help: "I/O backend; auto probes io_uring and falls back to epoll, logging why.") { config, value throws(ConfigError) in
            guard let choice = BackendChoice(rawValue: value) else {
                throw ConfigError(variable: "MYRIAD_BACKEND", value: value, expected: "one of auto, io_uring, epoll")
            }
            config.backend = choice
        },
        Knob(variable: "MYRIAD_RING_ENTRIES", flag: "ring-entries", defaultValue: "4096", range: "power of two, 8-32768",
             help: "Submission queue entries per ring.") { config, value throws(ConfigError) in
            config.ringEntries = UInt32(try powerOfTwo("MYRIAD_RING_ENTRIES", value, 8...32768))
        },
        Knob(variable: "MYRIAD_CQ_ENTRIES", flag: "cq-entries", defaultValue: "4 x ring entries", range: "power of two, 8-131072, >= ring entries",
             help: "Completion queue entries per ring; overflow is survived (NODROP) but costs multishot re-arms.") { config, value throws(ConfigError) in
            config.completionEntries = UInt32(try powerOfTwo("MYRIAD_CQ_ENTRIES", value, 8...131_072))
        },
        Knob(variable: "MYRIAD_BUFFER_SIZE", flag: "buffer-size", defaultValue: "4096", range: "256 B-1 MiB",
             help: "Size of each provided receive buffer (bytes; K/M suffixes allowed).") { config, value throws(ConfigError) in
            config.bufferSizeBytes = UInt32(try size("MYRIAD_BUFFER_SIZE", value, 256...(1 << 20)))
        },
        Knob(variable: "MYRIAD_BUFFER_COUNT", flag: "buffer-count", defaultValue: "1024", range: "power of two, 1-32768",
             help: "Provided receive buffers per ring (epoll: one read buffer per worker); when they run dry receives wait (counted as enobufs_rearms).") { config, value throws(ConfigError) in
            config.bufferCount = UInt32(try powerOfTwo("MYRIAD_BUFFER_COUNT", value, 1...32768))
        },
        Knob(variable: "MYRIAD_MAX_MESSAGE_SIZE", flag: "max-message-size", defaultValue: "1 MiB", range: "1 B-64 MiB",
             help: "Largest message accepted, all fragments together; larger ones close with 1009.") { config, value throws(ConfigError) in
            config.maxMessageSizeBytes = try size("MYRIAD_MAX_MESSAGE_SIZE", value, 1...(64 << 20))
        },
        Knob(variable: "MYRIAD_MAX_QUEUED_BYTES", flag: "max-queued-bytes", defaultValue: "4 MiB", range: "1 KiB-64 MiB",
             help: "Bytes queued for one connection before it is closed as a slow consumer.") { config, value throws(ConfigError) in
            config.maxQueuedBytes = try size("MYRIAD_MAX_QUEUED_BYTES", value, 1024...(64 << 20))
        },
        Knob(variable: "MYRIAD_BUFFER_BUDGET", flag: "buffer-budget",
             defaultValue: "memory / 4 / workers", range: "1 MiB-1 TiB, >= 2 x max message size",
             help: "Per worker: bytes of partial messages and queued sends together (partial messages at most half); past it the connection asking for more is closed with 1013 (memory_budget).") { config, value throws(ConfigError) in
            config.bufferBudgetBytes = try size("MYRIAD_BUFFER_BUDGET", value, (1 << 20)...(1 << 40))
        },
        Knob(variable: "MYRIAD_MAILBOX_CAPACITY", flag: "mailbox-capacity", defaultValue: "65536", range: "16-16777216",
             help: "Per worker: requests from other threads and workers (sends, closes, subscribes, publishes) waiting to be applied; past it the caller is told queueFull.") { config, value throws(ConfigError) in
            config.mailboxCapacity = try integer("MYRIAD_MAILBOX_CAPACITY", value, 16...16_777_216)
        },
        Knob(variable: "MYRIAD_MAILBOX_BYTES", flag: "mailbox-bytes", defaultValue: "64 MiB", range: "64 KiB-16 GiB",
             help: "Per worker: bytes of messages in those requests; past it the caller is told queueFull.") { config, value throws(ConfigError) in
            config.mailboxBytes = try size("MYRIAD_MAILBOX_BYTES", value, (64 << 10)...(16 << 30))
        },
        Knob(variable: "MYRIAD_MAX_SUBSCRIPTIONS", flag: "max-subscriptions", defaultValue: "10000000", range: "1-1000000000",
             help: "Topic subscriptions in the whole process; past it subscribe returns limitReached (subscriptions_refused).") { config, value throws(ConfigError) in
            config.maxSubscriptions = try integer("MYRIAD_MAX_SUBSCRIPTIONS", value, 1...1_000_000_000)
        },
        Knob(variable: "MYRIAD_COMPRESSION", flag: "compression", defaultValue: "off", range: "off | shared | dedicated",
             help: "permessage-deflate: shared (no context takeover: no zlib state per connection, a broadcast compresses once), dedicated (context kept, windows of 11 bits, within MYRIAD_COMPRESSION_DEDICATED_BUDGET; shared past it), or off.") { config, value throws(ConfigError) in
            guard let mode = CompressionMode(rawValue: value) else {
                throw ConfigError(variable: "MYRIAD_COMPRESSION", value: value, expected: "one of off, shared, dedicated")
            }
            config.compression = mode
        },
        Knob(variable: "MYRIAD_COMPRESSION_THRESHOLD", flag: "compression-threshold", defaultValue: "256 B", range: "0 B-64 MiB",
             help: "Messages smaller than this are sent uncompressed (compressing them costs more than it saves).") { config, value throws(ConfigError) in
            config.compressionThresholdBytes = try size("MYRIAD_COMPRESSION_THRESHOLD", value, 0...(64 << 20))
        },
        Knob(variable: "MYRIAD_COMPRESSION_DEDICATED_BUDGET", flag: "compression-dedicated-budget", defaultValue: "64 MiB",
             range: "0 B-64 GiB",
             help: "Per worker, dedicated mode: bytes of zlib state for connections that keep context (about 32 KiB each); connections past it get the shared mode.") { config, value throws(ConfigError) in
            config.compressionDedicatedBudgetBytes = try size("MYRIAD_COMPRESSION_DEDICATED_BUDGET", value, 0...(64 << 30))
        },
        Knob(variable: "MYRIAD_COMPRESSION_PER_RECIPIENT", flag: "compression-per-recipient", defaultValue: "off",
             range: "off | on",
             help: "For benchmarks: on compresses a publish once for each recipient instead of once for all (the cost compress-once saves).") { config, value throws(ConfigError) in
            switch value {
            case "off": config.compressionPerRecipient = false
            case "on": config.compressionPerRecipient = true
            default: throw ConfigError(variable: "MYRIAD_COMPRESSION_PER_RECIPIENT", value: value, expected: "off or on")
            }
        },
        Knob(variable: "MYRIAD_MAX_HEADER_SIZE", flag: "max-header-size", defaultValue: "8 KiB", range: "256 B-64 KiB",
             help: "Largest upgrade request head; larger ones get 431.") { config, value throws(ConfigError) in
            config.maxHeaderBytes = try size("MYRIAD_MAX_HEADER_SIZE", value, 256...(64 << 10))
        },
        Knob(variable: "MYRIAD_BACKLOG", flag: "backlog", defaultValue: "4096", range: "1-1048576 (capped by net.core.somaxconn)",
             help: "listen() backlog of each worker's socket.") { config, value throws(ConfigError) in
            config.listenBacklog = try integer("MYRIAD_BACKLOG", value, 1...1_048_576)
        },
        Knob(variable: "MYRIAD_TIMER_TICK", flag: "timer-tick", defaultValue: "50ms", range: "1ms-1s",
             help: "Resolution of every deadline (the timing wheel's tick).") { config, value throws(ConfigError) in
            config.timerTickMilliseconds = try duration("MYRIAD_TIMER_TICK", value, 1...1000)
        },
        Knob(variable: "MYRIAD_HANDSHAKE_TIMEOUT", flag: "handshake-timeout", defaultValue: "10s", range: "10ms-1h",
             help: "Time to complete the upgrade request before the connection is closed (slowloris defence).") { config, value throws(ConfigError) in
            config.handshakeTimeoutMilliseconds = try duration("MYRIAD_HANDSHAKE_TIMEOUT", value, 10...3_600_000)
        },
        Knob(variable: "MYRIAD_PING_INTERVAL", flag: "ping-interval", defaultValue: "25s", range: "0 (off) or 100ms-24h",
             help: "A connection silent this long gets a ping.") { config, value throws(ConfigError) in
            config.pingIntervalMilliseconds = try duration("MYRIAD_PING_INTERVAL", value, 100...86_400_000, allowZero: true)
        },
        Knob(variable: "MYRIAD_PONG_TIMEOUT", flag: "pong-timeout", defaultValue: "10s", range: "100ms-1h",
             help: "Time after a ping for a pong (or any frame) before the connection is closed as pong_timeout.") { config, value throws(ConfigError) in
            config.pongTimeoutMilliseconds = try duration("MYRIAD_PONG_TIMEOUT", value, 100...3_600_000)
        },
        Knob(variable: "MYRIAD_IDLE_TIMEOUT", flag: "idle-timeout", defaultValue: "0 (off)", range: "0 or 1s-30d",
             help: "No application message either way for this long: close 1001 (idle_timeout).") { config, value throws(ConfigError) in
            config.idleTimeoutMilliseconds = try duration("MYRIAD_IDLE_TIMEOUT", value, 1000...2_592_000_000, allowZero: true)
        },
        Knob(variable: "MYRIAD_CLOSE_TIMEOUT", flag: "close-timeout", defaultValue: "5s", range: "10ms-1h",
             help: "Time the peer has to answer our close frame before the socket is closed anyway.") { config, value throws(ConfigError) in
            config.closeTimeoutMilliseconds = try duration("MYRIAD_CLOSE_TIMEOUT", value, 10...3_600_000)
        },
        Knob(variable: "MYRIAD_SHUTDOWN_TIMEOUT", flag: "shutdown-timeout", defaultValue: "10s", range: "0-1h",
             help: "On SIGTERM/SIGINT: time for connections to answer close 1001 before the process exits anyway.") { config, value throws(ConfigError) in
            config.shutdownTimeoutMilliseconds = try duration("MYRIAD_SHUTDOWN_TIMEOUT", value, 0...3_600_000, allowZero: true)
        },
        Knob(variable: "MYRIAD_STATS_INTERVAL", flag: "stats-interval", defaultValue: "0 (off)", range: "0 or 100ms-1h",
             help: "Print a stats line this often.") { config, value throws(ConfigError) in
            config.statsIntervalMilliseconds = try duration("MYRIAD_STATS_INTERVAL", value, 100...3_600_000, allowZero: true)
        },
        Knob(variable: "MYRIAD_METRICS_PORT", flag: "metrics-port", defaultValue: "(off)", range: "0-65535 (0: any free port)",
             help: "Serve Prometheus metrics (GET /metrics) on this TCP port, from its own thread; off unless set.") { config, value throws(ConfigError) in
            config.metricsPort = UInt16(try integer("MYRIAD_METRICS_PORT", value, 0...65535))
        },
        Knob(variable: "MYRIAD_METRICS_HOST", flag: "metrics-host", defaultValue: "127.0.0.1", range: "an IPv4 address",
             help: "Address the metrics listener binds (loopback unless you mean to expose it).") { config, value throws(ConfigError) in
            var address = in_addr()
            guard inet_pton(AF_INET, value, &address) == 1 else {
                throw ConfigError(variable: "MYRIAD_METRICS_HOST", value: value, expected: "an IPv4 address such as 127.0.0.1 or 0.0.0.0")
            }
            config.metricsHost = value
        },
        Knob(variable: "MYRIAD_LOG_LEVEL", flag: "log-level", defaultValue: "info",
             range: "trace | debug | info | notice | warning | error | critical",
             help: "Least severe log level printed.") { config, value throws(ConfigError) in
            guard let level = Logger.Level(rawValue: value.lowercased()) else {
                throw ConfigError(variable: "MYRIAD_LOG_LEVEL", value: value,
                                  expected: "one of trace, debug, info, notice, warning, error, critical")
            }
            config.logLevel = level
        },
        Knob(variable: "MYRIAD_APP", flag: "app", defaultValue: "echo", range: "echo | broadcast | naive-broadcast",
             help: "myriad serve's application: echo, or broadcast (each connection subscribes to its request path; each message is published to it, the sender included); naive-broadcast is the benchmarks' baseline (a loop over the worker's own connections, a copy each).") { config, value throws(ConfigError) in
            guard let app = ServeApp(rawValue: value) else {
                throw ConfigError(variable: "MYRIAD_APP", value: value, expected: "one of echo, broadcast, naive-broadcast")
            }
            config.app = app
        },
        Knob(variable: "MYRIAD_ALLOWED_ORIGINS", flag: "allowed-origins", defaultValue: "(any)",
             range: "comma list of origins, e.g. https://chat.example.com",
             help: "myriad serve: upgrades whose Origin header is not in the list are refused with 403 (cross-site WebSocket hijacking); requests without Origin (not from a browser) are allowed.") { config, value throws(ConfigError) in
            for origin in value.split(separator: ",").map({ String($0).trimmingSpaces }) where !origin.isEmpty {
                guard origin.hasPrefix("http://") || origin.hasPrefix("https://"), !origin.hasSuffix("/"),
                      origin.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
                    throw ConfigError(variable: "MYRIAD_ALLOWED_ORIGINS", value: value,
                                      expected: "a comma list of origins as browsers send them: scheme://host[:port], no path or trailing slash")
                }
            }
            config.allowedOrigins = OriginPolicy(list: value)
        },
        Knob(variable: "MYRIAD_URING_DISABLE", flag: "uring-disable", defaultValue: "(none)",
             range: "comma list of: defer_taskrun, multishot_recv, msg_ring, peer_name",
             help: "Turn off io_uring features to run their fallbacks (for testing older-kernel paths).") { config, value throws(ConfigError) in
            var disabled: Set<URingFeature> = []
            for item in value.split(separator: ",") {
                let name = String(item).trimmingSpaces
                guard let feature = URingFeature(rawValue: name) else {
                    throw ConfigError(variable: "MYRIAD_URING_DISABLE", value: value,
                                      expected: "a comma list of: defer_taskrun, multishot_recv, msg_ring, peer_name")
                }
                disabled.insert(feature)
            }
            config.disabledURingFeatures = disabled
        },
    ] + clusterKnobs

    // MARK: - Value parsing

    static func integer(_ variable: String, _ value: String, _ range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let number = Int(value), range.contains(number) else {
            throw ConfigError(variable: variable, value: value, expected: "an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return number
    }

    static func powerOfTwo(_ variable: String, _ value: String, _ range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let number = Int(value), range.contains(number), number & (number - 1) == 0 else {
            throw ConfigError(variable: variable, value: value,
                              expected: "a power of two in \(range.lowerBound)...\(range.upperBound)")
        }
        return number
    }

    /// Bytes, with an optional K/KiB/M/MiB/G/GiB suffix (binary multiples).
    static func size(_ variable: String, _ value: String, _ range: ClosedRange<Int>) throws(ConfigError) -> Int {
        let units: [(String, Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40),
                                      ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("T", 1 << 40), ("B", 1)]
        var digits = value
        var multiplier = 1
        for (suffix, factor) in units where value.hasSuffix(suffix) {
            digits = String(value.dropLast(suffix.count)).trimmingSpaces
            multiplier = factor
            break
        }
        guard let number = Int(digits), number >= 0, number <= Int.max / multiplier,
              range.contains(number * multiplier) else {
            throw ConfigError(variable: variable, value: value,
                              expected: "a size in \(formatBytes(range.lowerBound))...\(formatBytes(range.upperBound)) (bytes, or with K/M/G)")
        }
        return number * multiplier
    }

    /// Milliseconds, from `250ms`, `10s`, `1.5s`, `2m`, `1h`, `1d`, or a bare number of seconds.
    static func duration(
        _ variable: String, _ value: String, _ range: ClosedRange<Int>, allowZero: Bool = false
    ) throws(ConfigError) -> Int {
        let units: [(String, Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        var digits = value
        var multiplier = 1000.0
        for (suffix, factor) in units where value.hasSuffix(suffix) {
            digits = String(value.dropLast(suffix.count))
            multiplier = factor
            break
        }
        let expected = (allowZero ? "0 or " : "") + "a duration in \(formatMilliseconds(range.lowerBound))...\(formatMilliseconds(range.upperBound)) (e.g. 500ms, 10s, 2m)"
        guard let number = Double(digits), number.isFinite, number >= 0 else {
            throw ConfigError(variable: variable, value: value, expected: expected)
        }
        // Decimal fractions are inexact in binary (1.005 x 1000 = 1004.9999...): accept a
        // product within rounding error of a whole millisecond, as that millisecond.
        let product = number * multiplier
        let milliseconds = product.rounded()
        guard abs(product - milliseconds) <= product.ulp * 4 else {
            throw ConfigError(variable: variable, value: value, expected: expected)
        }
        if milliseconds == 0 && allowZero { return 0 }
        guard milliseconds <= Double(range.upperBound),
              range.contains(Int(milliseconds)) else {
            throw ConfigError(variable: variable, value: value, expected: expected)
        }
        return Int(milliseconds)
    }
}

func formatBytes(_ bytes: Int) -> String {
    if bytes >= 1 << 40 && bytes % (1 << 40) == 0 { return "\(bytes >> 40) TiB" }
    if bytes >= 1 << 30 && bytes % (1 << 30) == 0 { return "\(bytes >> 30) GiB" }
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
    if bytes >= 1 << 10 && bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
    return "\(bytes) B"
}

func formatMilliseconds(_ milliseconds: Int) -> String {
    if milliseconds >= 86_400_000 && milliseconds % 86_400_000 == 0 { return "\(milliseconds / 86_400_000)d" }
    if milliseconds >= 3_600_000 && milliseconds % 3_600_000 == 0 { return "\(milliseconds / 3_600_000)h" }
    if milliseconds >= 60_000 && milliseconds % 60_000 == 0 { return "\(milliseconds / 60_000)m" }
    if milliseconds >= 1000 && milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
    return "\(milliseconds)ms"
}

extension String {
    var trimmingSpaces: String {
        var view = Substring(self)
        while let first = view.first, first == " " || first == "\t" { view = view.dropFirst() }
        while let last = view.last, last == " " || last == "\t" { view = view.dropLast() }
        return String(view)
    }
}
