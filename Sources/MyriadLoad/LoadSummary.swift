/// The result of a load run: what `myriad load` prints as JSON on stdout (and writes to
/// `--json PATH`) when the run ends, however it ends.
///
/// JSON schema (keys always in this order; durations in seconds, times in milliseconds):
///
/// ```
/// {
///   "mode": "hold" | "ping" | "echo" | "churn" | "fanout",
///   "server": "127.0.0.1:8080",    // several ports: "127.0.0.1:8080,8081"
///   "target": Int,                 // connections to hold (hold/ping/echo); cycles (churn) = rate x duration
///   "connected": Int,              // open at the end of the hold/measurement, before the client closed
///                                  // them (churn: cycles that completed the upgrade)
///   "peak": Int,                   // most connections open at once
///   "duration_s": Double,          // the whole run, start to summary
///   "ramp_s": Double,              // start to the last handshake of the ramp (churn: the cycling)
///   "hold_s": Double,              // the hold / measurement window (0 for churn; fanout: the publishing)
///   "threads": Int,                // client threads (one per core unless --threads)
///   "rings": Int,                  // io_uring rings over all threads (each table <= RLIMIT_NOFILE)
///   "sources": "127.0.0.2-127.0.0.3",
///   "failures": {                  // by kind, then by errno name or protocol reason; kinds always present
///     "connect": {"ECONNREFUSED": 3}, "handshake": {}, "read": {}, "unexpected_close": {}, "close": {}
///   },
///   "failures_total": Int,
///   "handshakes": Int,             // upgrades completed
///   "handshake_rate_per_s": Double,// handshakes / ramp_s
///   "unexpected_closes": Int,      // open connections lost before the client closed them
///                                  // (= failures.read + failures.unexpected_close)
///   "clean_closes": Int,           // close handshakes the client started that the server answered
///   "pings_sent": Int, "pongs_received": Int,   // the client's own pings (ping mode)
///   "server_pings_answered": Int,  // pongs sent for the server's pings
///   "rtt_ms": {"p50": Double, "p99": Double, "max": Double, "samples": Int},   // ping -> pong
///   "messages_sent": Int, "messages_received": Int,   // fanout: published; received, duplicates included
///   "messages_per_s": Double,      // echo: messages received per second in the hold window
///   "latency_ms": {"p50": Double, "p99": Double, "max": Double, "samples": Int}, // echo round trip;
///                                  // fanout: publish -> receive of every delivery
///   "verify_echo": {"ok": Int, "failed": Int},   // only with --verify-echo
///   "fanout": {                    // only in fanout mode
///     "publish_interval_ms": Int, "size": Int,
///     "subscribers": Int,          // N = target (the publisher is one of them)
///     "publishes_planned": Int,    // duration / publish interval
///     "published": Int,
///     "expected": Int,             // published x subscribers
///     "delivered": Int,            // first copies received, over every connection
///     "lost": Int,                 // expected - delivered, after the drain
///     "duplicated": Int,           // a connection got the sequence it got last, again
///     "out_of_order": Int,         // a connection got a sequence lower than its last
///     "publish_s": Double, "drain_s": Double,
///     "deliveries_per_s": Double,  // deliveries received while publishing / publish_s
///     "publish_to_last_delivery_ms": {"p50", "p99", "max", "samples"},  // per message
///     "nodes": {"127.0.0.1:8080": {"subscribers": Int, "connected": Int, "expected": Int,
///                                  "delivered": Int, "lost": Int}, ...},  // per --port, in order
///     "node_latency_ms": {"127.0.0.1:8080": {"p50", "p99", "max", "samples"}, ...},
///                                  // per --port: publish -> receive of that node's deliveries (the
///                                  // publisher is on the first; with a cluster the others go through the broker)
///     "server": {"pid": Int, "cpu_s": Double, "cpu_us_per_delivery": Double, "rss_mib": Double}
///                                  // only with --server-pid
///   },
///   "diagnostics": {               // the client's own backpressure, for explaining odd runs
///     "enobufs_rearms": Int,       // receives parked because the thread's buffer ring ran dry
///     "cq_overflows": Int,         // times the kernel held completions back (CQ full)
///     "waits": Int,                // blocking waits of every thread (each may sleep): wake-ups at most
///     "dropped_frames": Int,       // frames not queued: the connection's send queue was full
///     "unexpected_messages": Int   // data messages the client did not ask for
///   },
///   "client_rss_mib": Double,      // peak resident memory of the load process (VmHWM)
///   "client_state_bytes_per_connection": Int,   // the slab slot each connection costs the client
///   "time_limit_reached": Bool,    // --time-limit cut the run short
///   "interrupted": Bool,           // SIGINT/SIGTERM cut the run short
///   "ok": Bool,                    // what the exit status says: see `succeeded`
///   "error": String                // only when the run could not start (then nothing else is meaningful)
/// }
/// ```
public struct LoadSummary: Sendable, Equatable {
    public var mode: LoadMode
    public var server: String
    public var target = 0
    public var connected = 0
    public var peak = 0
    public var durationSeconds = 0.0
    public var rampSeconds = 0.0
    public var holdSeconds = 0.0
    public var threads = 0
    public var rings = 0
    public var sources = ""
    public var failures = FailureCounts()
    public var handshakes = 0
    public var unexpectedCloses = 0
    public var cleanCloses = 0
    public var pingsSent = 0
    public var pongsReceived = 0
    public var serverPingsAnswered = 0
    public var roundTrip = Histogram()
    public var messagesSent = 0
    public var messagesReceived = 0
    public var messagesPerSecond = 0.0
    public var latency = Histogram()
    /// nil unless --verify-echo.
    public var verifyOK: Int?
    public var verifyFailed: Int?
    /// nil unless fanout.
    public var fanout: FanoutSummary?
    public var enobufsRearms = 0
    public var cqOverflows = 0
    public var waits = 0
    public var droppedFrames = 0
    public var unexpectedMessages = 0
    /// --deflate: data messages the load sent compressed, and compressed ones it inflated.
    public var messagesCompressed = 0
    public var messagesInflated = 0
    public var clientRSSBytes = 0
    public var clientStateBytesPerConnection = 0
    public var timeLimitReached = false
    public var interrupted = false
    public var error: String?

    public init(mode: LoadMode, server: String) {
        self.mode = mode
        self.server = server
    }

    public var handshakeRatePerSecond: Double { rampSeconds > 0 ? Double(handshakes) / rampSeconds : 0 }

    /// Exit status 0 only when this is true: no setup error, the target was reached, no
    /// connection was lost, every verify echo came back; ping mode also wants every ping
    /// answered; churn wants every cycle to complete cleanly (no failure of any kind); fanout
    /// wants every planned message published and delivered to every connection exactly once,
    /// in order (`FanoutSummary.complete`).
    public var succeeded: Bool {
        guard error == nil, !timeLimitReached, !interrupted else { return false }
        guard connected >= target, unexpectedCloses == 0, (verifyFailed ?? 0) == 0 else { return false }
        if let verifyOK, verifyOK < target { return false }
        switch mode {
        case .hold: return true
        case .ping: return pongsReceived == pingsSent
        case .echo: return messagesReceived > 0
        case .churn: return failures.total == 0
        case .fanout: return fanout?.complete ?? false
        }
    }

    /// The summary as one JSON object (the schema above), keys in a fixed order.
    public var json: String {
        var writer = JSONWriter()
        writer.object {
            $0.field("mode", string: mode.rawValue)
            $0.field("server", string: server)
            $0.field("target", target)
            $0.field("connected", connected)
            $0.field("peak", peak)
            $0.field("duration_s", durationSeconds)
            $0.field("ramp_s", rampSeconds)
            $0.field("hold_s", holdSeconds)
            $0.field("threads", threads)
            $0.field("rings", rings)
            $0.field("sources", string: sources)
            $0.key("failures")
            $0.object { kinds in
                for kind in FailureKind.allCases {
                    kinds.key(kind.rawValue)
                    kinds.object { reasons in
                        for (reason, count) in (failures.counts[kind] ?? [:]).sorted(by: { $0.key < $1.key }) {
                            reasons.field(reason, count)
                        }
                    }
                }
            }
            $0.field("failures_total", failures.total)
            $0.field("handshakes", handshakes)
            $0.field("handshake_rate_per_s", handshakeRatePerSecond)
            $0.field("unexpected_closes", unexpectedCloses)
            $0.field("clean_closes", cleanCloses)
            $0.field("pings_sent", pingsSent)
            $0.field("pongs_received", pongsReceived)
            $0.field("server_pings_answered", serverPingsAnswered)
            $0.key("rtt_ms")
            $0.percentiles(roundTrip)
            $0.field("messages_sent", messagesSent)
            $0.field("messages_received", messagesReceived)
            $0.field("messages_per_s", messagesPerSecond)
            $0.key("latency_ms")
            $0.percentiles(latency)
            if let verifyOK, let verifyFailed {
                $0.key("verify_echo")
                $0.object {
                    $0.field("ok", verifyOK)
                    $0.field("failed", verifyFailed)
                }
            }
            if let fanout {
                $0.key("fanout")
                $0.fanout(fanout)
            }
            $0.key("diagnostics")
            $0.object {
                $0.field("enobufs_rearms", enobufsRearms)
                $0.field("cq_overflows", cqOverflows)
                $0.field("waits", waits)
                $0.field("dropped_frames", droppedFrames)
                $0.field("unexpected_messages", unexpectedMessages)
                $0.field("messages_compressed", messagesCompressed)
                $0.field("messages_inflated", messagesInflated)
            }
            $0.field("client_rss_mib", Double(clientRSSBytes) / 1_048_576)
            $0.field("client_state_bytes_per_connection", clientStateBytesPerConnection)
            $0.field("time_limit_reached", timeLimitReached)
            $0.field("interrupted", interrupted)
            $0.field("ok", succeeded)
            if let error { $0.field("error", string: error) }
        }
        return writer.text
    }
}

/// A minimal JSON writer: objects with keys in the order written, integers, decimals with
/// three places, strings escaped per RFC 8259. No Foundation.
struct JSONWriter {
    private(set) var text = ""
    private var needsComma = false

    mutating func object(_ body: (inout JSONWriter) -> Void) {
        separate()
        text += "{"
        needsComma = false
        body(&self)
        text += "}"
        needsComma = true
    }

    mutating func key(_ name: String) {
        separate()
        text += JSONWriter.quoted(name) + ":"
        needsComma = false
    }

    mutating func field(_ name: String, _ value: Int) {
        key(name)
        text += String(value)
        needsComma = true
    }

    mutating func field(_ name: String, _ value: Double) {
        key(name)
        text += JSONWriter.decimal(value)
        needsComma = true
    }

    mutating func field(_ name: String, _ value: Bool) {
        key(name)
        text += value ? "true" : "false"
        needsComma = true
    }

    mutating func field(_ name: String, string value: String) {
        key(name)
        text += JSONWriter.quoted(value)
        needsComma = true
    }

    /// `{"p50": ms, "p99": ms, "max": ms, "samples": n}` of a nanosecond histogram.
    mutating func percentiles(_ histogram: Histogram) {
        object {
            $0.field("p50", Double(histogram.percentile(0.50)) / 1e6)
            $0.field("p99", Double(histogram.percentile(0.99)) / 1e6)
            $0.field("max", Double(histogram.maximum) / 1e6)
            $0.field("samples", Int(histogram.count))
        }
    }

    /// The `fanout` object (schema in `LoadSummary`).
    mutating func fanout(_ fanout: FanoutSummary) {
        object {
            $0.field("publish_interval_ms", fanout.publishIntervalMilliseconds)
            $0.field("size", fanout.messageSizeBytes)
            $0.field("subscribers", fanout.subscribers)
            $0.field("publishes_planned", fanout.plannedPublishes)
            $0.field("published", fanout.published)
            $0.field("expected", fanout.expected)
            $0.field("delivered", fanout.delivered)
            $0.field("lost", fanout.lost)
            $0.field("duplicated", fanout.duplicated)
            $0.field("out_of_order", fanout.outOfOrder)
            $0.field("publish_s", fanout.publishSeconds)
            $0.field("drain_s", fanout.drainSeconds)
            $0.field("deliveries_per_s", fanout.deliveriesPerSecond)
            $0.key("publish_to_last_delivery_ms")
            $0.percentiles(fanout.publishToLastDelivery)
            $0.key("nodes")
            $0.object { nodes in
                for node in fanout.nodes {
                    nodes.key("\(fanout.host):\(node.port)")
                    nodes.object {
                        $0.field("subscribers", node.subscribers)
                        $0.field("connected", node.connected)
                        $0.field("expected", node.expected)
                        $0.field("delivered", node.delivered)
                        $0.field("lost", node.lost)
                    }
                }
            }
            $0.key("node_latency_ms")
            $0.object { nodes in
                for node in fanout.nodes {
                    nodes.key("\(fanout.host):\(node.port)")
                    nodes.percentiles(node.latency)
                }
            }
            if let server = fanout.server {
                $0.key("server")
                $0.object {
                    $0.field("pid", Int(server.pid))
                    $0.field("cpu_s", Double(server.cpuNanoseconds) / 1e9)
                    $0.field("cpu_us_per_delivery", fanout.serverMicrosecondsPerDelivery ?? 0)
                    $0.field("rss_mib", Double(server.residentBytes) / 1_048_576)
                }
            }
        }
    }

    private mutating func separate() {
        if needsComma { text += "," }
    }

    /// A finite value with three decimals (`12.500`); `null` for NaN or infinity.
    static func decimal(_ value: Double) -> String {
        guard value.isFinite else { return "null" }
        let thousandths = Int((abs(value) * 1000).rounded())
        let sign = value < 0 && thousandths != 0 ? "-" : ""
        let fraction = String(thousandths % 1000)
        return sign + String(thousandths / 1000) + "." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    static func quoted(_ value: String) -> String {
        var result = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
