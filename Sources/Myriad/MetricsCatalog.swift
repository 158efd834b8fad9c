import Glibc

/// One metric family, as the Prometheus exposition and the swift-metrics exporter see it.
public struct MetricFamily: Sendable {
    public enum Kind: String, Sendable {
        case counter, gauge, histogram
    }

    /// The Prometheus name: `myriad_` prefix, `_total` for counters, base units.
    public var name: String
    public var kind: Kind
    public var help: String
    public var samples: [MetricSample]
}

/// One series of a family: its labels and its value now.
public struct MetricSample: Sendable {
    public var labels: [MetricLabel]
    public var value: MetricValue

    public init(labels: [MetricLabel] = [], value: MetricValue) {
        self.labels = labels
        self.value = value
    }
}

public struct MetricLabel: Sendable, Hashable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

public enum MetricValue: Sendable {
    case integer(Int)
    case real(Double)
    case histogram(HistogramSnapshot)
}

/// What a metric of the catalog is: its name, kind, labels and meaning, and the stats-line
/// counter it comes from (the README's metrics table lists the same).
public struct MetricDescription: Sendable {
    public var name: String
    public var kind: MetricFamily.Kind
    /// Label names its series carry (`le` of histograms not included).
    public var labels: [String]
    public var help: String
    /// The stats line's names of the counters it reads, if any.
    public var statsNames: [String]
}

/// How one `StatCounter` becomes a metric. The switch is exhaustive: a new counter does not
/// compile until it is given a metric.
enum CounterMetric {
    /// Its own family: per worker (label `worker`) for gauges, summed over workers for counters.
    case own(String, help: String)
    /// One series of a family shared with other counters: `label="<the counter's stats name>"`.
    case labelled(String, label: String, help: String)
    /// The close counters: one series per close reason.
    case closes
}

extension StatCounter {
    var metric: CounterMetric {
        switch self {
        case .open: return .own("myriad_connections_open", help: "Connections a worker holds now: handshaking, open or closing (its slab's occupied slots).")
        case .accepts: return .own("myriad_accepts_total", help: "Accepted TCP connections, including those closed at once because the worker was full or shutting down.")
        case .handshakes: return .own("myriad_handshakes_total", help: "WebSocket upgrades completed (101 queued).")
        case .acceptENFILE, .acceptEMFILE, .acceptENOMEM, .acceptOther, .acceptRejectedFull:
            return .labelled("myriad_accept_refusals_total", label: "reason",
                             help: "Connections refused at accept, by reason: accept_enfile (io_uring fixed-file table full), accept_emfile (fd limit), accept_enomem (kernel memory), accept_other (any other errno), accept_rejected_full (accepted, then closed: the slab was full).")
        case .rings: return .own("myriad_rings", help: "io_uring rings a worker runs (0 with epoll).")
        case .enobufsRearms: return .own("myriad_enobufs_rearms_total", help: "Receives that ended with ENOBUFS (the provided buffer ring ran dry), parked and re-armed; nothing is lost.")
        case .receiveRearms: return .own("myriad_receive_rearms_total", help: "Multishot receives the kernel ended without an error (e.g. after a CQ overflow), re-armed.")
        case .cqOverflows: return .own("myriad_cq_overflows_total", help: "Times the kernel reported completions held back because a completion queue was full.")
        case .messagesIn: return .own("myriad_messages_received_total", help: "WebSocket messages received (data messages, reassembled).")
        case .messagesOut: return .own("myriad_messages_sent_total", help: "WebSocket messages queued for sending (echoes, sends, publish deliveries).")
        case .bytesIn: return .own("myriad_received_bytes_total", help: "Bytes received from sockets (handshakes and frames).")
        case .bytesOut: return .own("myriad_sent_bytes_total", help: "Bytes queued for sending to sockets (101s, HTTP responses and frames).")
        case .pingsSent: return .own("myriad_pings_sent_total", help: "Keep-alive pings queued by the server.")
        case .pongsReceived: return .own("myriad_pongs_received_total", help: "Pongs received (answers to our pings, and unsolicited ones).")
        case .sends: return .own("myriad_sends_total", help: "Send operations submitted (io_uring SQEs or write calls).")
        case .waits: return .own("myriad_waits_total", help: "Blocking waits for completions: io_uring_enter or epoll_wait calls.")
        case .otherSyscalls: return .own("myriad_other_syscalls_total", help: "Every other system call on the workers' hot path (epoll: accept, read, write, epoll_ctl, close; io_uring: extra submits when the SQ was full).")
        case .pooledBytes: return .own("myriad_pooled_bytes", help: "Bytes a worker's buffer pool has lent out now (partial messages, send queues, control frames; size-class bytes).")
        case .kernelErrors: return .own("myriad_kernel_errors_total", help: "Calls into the kernel's I/O interface that failed unexpectedly and were survived (logged).")
        case .cqDropped: return .own("myriad_cq_dropped_total", help: "Completions the kernel reported lost (io_uring_enter EBADR under memory pressure).")
        case .lostCompletions: return .own("myriad_lost_completions_total", help: "Operations whose completion never came, accounted for by the cancel that found them gone.")
        case .sqSpills: return .own("myriad_sq_spills_total", help: "Submissions that waited in user space because the kernel would not take a full SQ.")
        case .upgradesPending: return .own("myriad_upgrades_deferred_total", help: "Upgrades the handler answered .pending (decided later through the handle).")
        case .upgradesStale: return .own("myriad_upgrades_stale_total", help: "Deferred upgrade decisions that came after the connection was gone.")
        case .badUpgradeHeaders: return .own("myriad_bad_upgrade_headers_total", help: "Extra 101 response headers from the handler left out because they were not valid.")
        case .mailboxCommands: return .own("myriad_mailbox_commands_total", help: "Commands workers took from their mailboxes (sends, closes, subscribes, publishes from other threads).")
        case .mailboxRefused: return .own("myriad_mailbox_refused_total", help: "Posts to a worker's mailbox refused because it was full (MYRIAD_MAILBOX_CAPACITY / MYRIAD_MAILBOX_BYTES).")
        case .forwarded: return .own("myriad_forwarded_total", help: "Sends and closes a worker handed to another worker's mailbox.")
        case .forwardsRefused: return .own("myriad_forwards_refused_total", help: "Forwards refused because the target mailbox was full.")
        case .forwardedToClosed: return .own("myriad_forwarded_to_closed_total", help: "Forwarded sends or subscribes that found their connection gone.")
        case .topics: return .own("myriad_topics", help: "Topics with at least one subscriber on a worker now.")
        case .subscriptions: return .own("myriad_subscriptions", help: "Topic subscriptions on a worker now.")
        case .subscribes: return .own("myriad_subscribes_total", help: "Subscribe operations.")
        case .unsubscribes: return .own("myriad_unsubscribes_total", help: "Unsubscribe operations (including those of closing connections).")
        case .subscriptionsRefused: return .own("myriad_subscriptions_refused_total", help: "Subscribes refused by MYRIAD_MAX_SUBSCRIPTIONS.")
        case .publishes: return .own("myriad_publishes_total", help: "Publishes made on workers (by handlers).")
        case .publishesRefused: return .own("myriad_publishes_refused_total", help: "Publishes refused because a target worker's mailbox was full.")
        case .publishesReceived: return .own("myriad_publishes_received_total", help: "Publishes a worker received from other workers or threads.")
        case .deliveries: return .own("myriad_deliveries_total", help: "Messages queued to subscribers by publishes.")
        case .messagesCompressed: return .own("myriad_messages_compressed_total", help: "Messages sent compressed with permessage-deflate (a publish's compressed frame counts once per recipient).")
        case .messagesInflated: return .own("myriad_messages_inflated_total", help: "Compressed messages received and inflated.")
        case .deflateAgreed: return .own("myriad_deflate_agreed_total", help: "Connections that agreed permessage-deflate at the upgrade.")
        case .dedicatedDeflate: return .own("myriad_dedicated_deflate_connections", help: "Connections with their own zlib streams now (MYRIAD_COMPRESSION=dedicated, within MYRIAD_COMPRESSION_DEDICATED_BUDGET).")
        case .sideEntries: return .own("myriad_side_entries", help: "Connections with a side entry now: handshaking, or in the middle of a frame or message (an idle open connection has none).")
        case .poolFreeBytes: return .own("myriad_pool_free_bytes", help: "Bytes of free buffers a worker's pool keeps for reuse now (given back after a second unused).")
        case .receiveBufferBytes: return .own("myriad_receive_buffer_bytes", help: "Receive buffer memory a worker has written since it was last given back (io_uring buffer rings; epoll: its one read buffer).")
        case .sideTableBytes: return .own("myriad_side_table_bytes", help: "Bytes of a worker's side table touched since it last gave its pages back.")
        case .memoryReturnedBytes: return .own("myriad_memory_returned_bytes_total", help: "Bytes workers gave back to malloc or the kernel after bursts (pool buffers, receive buffer pages, side table pages, send segments, idle permessage-deflate streams).")
        case .queuedBytes: return .own("myriad_queued_bytes", help: "Bytes a worker's pool has lent for queued data frames now: the outbound part of MYRIAD_BUFFER_BUDGET (size-class bytes; shared publish frames are referenced, not counted).")
        case .reassemblyBytes: return .own("myriad_reassembly_bytes", help: "Bytes a worker's pool has lent for partial upgrade requests and messages being reassembled now: the inbound part of MYRIAD_BUFFER_BUDGET (at most half of it).")
        case .closesBase: return .closes
        }
    }
}

/// Facts about the engine that are not in the workers' counters.
public struct EngineFacts: Sendable {
    public var backend: String
    /// Connections each worker can hold.
    public var capacityPerWorker: [Int]
    /// MYRIAD_BUFFER_BUDGET of each worker.
    public var bufferBudgetBytes: Int
    /// `EngineHandle` calls refused because the target mailbox was full, and made while the
    /// engine was not running.
    public var handleQueueFull: Int
    public var handleStopped: Int

    public init(backend: String = "", capacityPerWorker: [Int] = [], bufferBudgetBytes: Int = 0,
                handleQueueFull: Int = 0, handleStopped: Int = 0) {
        self.backend = backend
        self.capacityPerWorker = capacityPerWorker
        self.bufferBudgetBytes = bufferBudgetBytes
        self.handleQueueFull = handleQueueFull
        self.handleStopped = handleStopped
    }
}

/// Every metric Myriad exports, and how to read them from the workers' published counters.
public enum MetricsCatalog {
    public static let handshakeHistogram = "myriad_handshake_duration_seconds"
    public static let pingHistogram = "myriad_ping_round_trip_seconds"
    public static let closes = "myriad_closes_total"

    static let closesHelp = "Connections closed, by cause (the stats line's closes={...}): normal, peer_eof, socket_error, protocol_error, invalid_utf8, message_too_big, handshake_rejected, handshake_timeout, http, pong_timeout, idle_timeout, slow_consumer, close_timeout, application, shutdown, out_of_memory, memory_budget, upgrade_refused."

    /// Every metric, in the order the exposition lists them. `includeProcess` adds the
    /// process_* metrics Prometheus client libraries conventionally export.
    public static func descriptions(includeProcess: Bool = true) -> [MetricDescription] {
        var result: [MetricDescription] = []
        var index: [String: Int] = [:]
        func add(_ description: MetricDescription) {
            if let at = index[description.name] {
                result[at].statsNames += description.statsNames
            } else {
                index[description.name] = result.count
                result.append(description)
            }
        }
        for counter in StatCounter.allCases {
            switch counter.metric {
            case .own(let name, let help):
                add(MetricDescription(name: name, kind: counter.isGauge ? .gauge : .counter,
                                      labels: counter.isGauge ? ["worker"] : [], help: help, statsNames: [counter.name]))
            case .labelled(let name, let label, let help):
                add(MetricDescription(name: name, kind: .counter, labels: [label], help: help, statsNames: [counter.name]))
            case .closes:
                add(MetricDescription(name: closes, kind: .counter, labels: ["cause"], help: closesHelp, statsNames: ["closes"]))
            }
        }
        for description in extraDescriptions { add(description) }
        if includeProcess { for description in processDescriptions { add(description) } }
        return result
    }

    static let extraDescriptions: [MetricDescription] = [
        MetricDescription(name: handshakeHistogram, kind: .histogram, labels: [],
                          help: "Time from accept to the 101 queued (includes the client's sending of its upgrade request and a deferred decision).",
                          statsNames: []),
        MetricDescription(name: pingHistogram, kind: .histogram, labels: [],
                          help: "Time from a keep-alive ping queued to its pong received.", statsNames: []),
        MetricDescription(name: "myriad_handle_refusals_total", kind: .counter, labels: ["reason"],
                          help: "EngineHandle calls refused: queue_full (the target worker's mailbox was full), stopped (the engine was not running).",
                          statsNames: []),
        MetricDescription(name: "myriad_connection_capacity", kind: .gauge, labels: ["worker"],
                          help: "Connections a worker can hold (its slab).", statsNames: []),
        MetricDescription(name: "myriad_buffer_budget_bytes", kind: .gauge, labels: [],
                          help: "MYRIAD_BUFFER_BUDGET: the most each worker's pool lends for partial messages and queued data frames together.",
                          statsNames: []),
        MetricDescription(name: "myriad_info", kind: .gauge, labels: ["backend"],
                          help: "Always 1; the backend in use (io_uring or epoll).", statsNames: []),
    ]

    static let processDescriptions: [MetricDescription] = [
        MetricDescription(name: "process_resident_memory_bytes", kind: .gauge, labels: [], help: "Resident memory of the process.", statsNames: ["rss_mib"]),
        MetricDescription(name: "process_virtual_memory_bytes", kind: .gauge, labels: [], help: "Virtual memory of the process.", statsNames: []),
        MetricDescription(name: "process_cpu_seconds_total", kind: .counter, labels: [], help: "User and system CPU time of the process.", statsNames: []),
        MetricDescription(name: "process_open_fds", kind: .gauge, labels: [], help: "Open file descriptors (io_uring connections are direct descriptors and not among them).", statsNames: []),
        MetricDescription(name: "process_max_fds", kind: .gauge, labels: [], help: "RLIMIT_NOFILE (soft).", statsNames: []),
        MetricDescription(name: "process_threads", kind: .gauge, labels: [], help: "Threads of the process.", statsNames: []),
        MetricDescription(name: "process_start_time_seconds", kind: .gauge, labels: [], help: "Start time of the process since the Unix epoch.", statsNames: []),
    ]

    /// From the engine's boards and shared state (any thread).
    static func read(boards: [StatsBoard], shared: EngineShared, facts: EngineFacts, includeProcess: Bool = true) -> [MetricFamily] {
        var facts = facts
        facts.handleQueueFull = shared.handleQueueFull.load(ordering: .relaxed)
        facts.handleStopped = shared.handleStopped.load(ordering: .relaxed)
        return read(workers: boards.map { $0.snapshot() }, engine: facts, includeProcess: includeProcess)
    }

    /// Every family with its values now, from each worker's published counters.
    public static func read(workers: [StatsSnapshot], engine: EngineFacts, includeProcess: Bool = true) -> [MetricFamily] {
        let total = workers.reduce(StatsSnapshot(), +)
        var families: [MetricFamily] = []
        var index: [String: Int] = [:]
        func add(_ name: String, _ kind: MetricFamily.Kind, _ help: String, _ samples: [MetricSample]) {
            if let at = index[name] {
                families[at].samples += samples
            } else {
                index[name] = families.count
                families.append(MetricFamily(name: name, kind: kind, help: help, samples: samples))
            }
        }
        for counter in StatCounter.allCases {
            switch counter.metric {
            case .own(let name, let help):
                if counter.isGauge {
                    add(name, .gauge, help, workers.enumerated().map { worker, snapshot in
                        MetricSample(labels: [MetricLabel("worker", String(worker))], value: .integer(snapshot[counter]))
                    })
                } else {
                    add(name, .counter, help, [MetricSample(value: .integer(total[counter]))])
                }
            case .labelled(let name, let label, let help):
                add(name, .counter, help, [MetricSample(labels: [MetricLabel(label, counter.name)], value: .integer(total[counter]))])
            case .closes:
                add(closes, .counter, closesHelp, CloseReason.allCases.filter { $0 != .none }.map { reason in
                    MetricSample(labels: [MetricLabel("cause", reason.name)], value: .integer(total.closes(reason)))
                })
            }
        }
        let extras = Dictionary(uniqueKeysWithValues: extraDescriptions.map { ($0.name, $0.help) })
        add(handshakeHistogram, .histogram, extras[handshakeHistogram]!, [MetricSample(value: .histogram(total.histogram(.handshake)))])
        add(pingHistogram, .histogram, extras[pingHistogram]!, [MetricSample(value: .histogram(total.histogram(.pingRoundTrip)))])
        add("myriad_handle_refusals_total", .counter, extras["myriad_handle_refusals_total"]!, [
            MetricSample(labels: [MetricLabel("reason", "queue_full")], value: .integer(engine.handleQueueFull)),
            MetricSample(labels: [MetricLabel("reason", "stopped")], value: .integer(engine.handleStopped)),
        ])
        add("myriad_connection_capacity", .gauge, extras["myriad_connection_capacity"]!, engine.capacityPerWorker.enumerated().map {
            MetricSample(labels: [MetricLabel("worker", String($0.offset))], value: .integer($0.element))
        })
        add("myriad_buffer_budget_bytes", .gauge, extras["myriad_buffer_budget_bytes"]!, [MetricSample(value: .integer(engine.bufferBudgetBytes))])
        add("myriad_info", .gauge, extras["myriad_info"]!, [MetricSample(labels: [MetricLabel("backend", engine.backend)], value: .integer(1))])
        if includeProcess {
            let process = ProcessFacts.read()
            let help = Dictionary(uniqueKeysWithValues: processDescriptions.map { ($0.name, $0.help) })
            add("process_resident_memory_bytes", .gauge, help["process_resident_memory_bytes"]!, [MetricSample(value: .integer(process.residentBytes))])
            add("process_virtual_memory_bytes", .gauge, help["process_virtual_memory_bytes"]!, [MetricSample(value: .integer(process.virtualBytes))])
            add("process_cpu_seconds_total", .counter, help["process_cpu_seconds_total"]!, [MetricSample(value: .real(process.cpuSeconds))])
            add("process_open_fds", .gauge, help["process_open_fds"]!, [MetricSample(value: .integer(process.openFiles))])
            add("process_max_fds", .gauge, help["process_max_fds"]!, [MetricSample(value: .integer(process.maxFiles))])
            add("process_threads", .gauge, help["process_threads"]!, [MetricSample(value: .integer(process.threads))])
            add("process_start_time_seconds", .gauge, help["process_start_time_seconds"]!, [MetricSample(value: .real(process.startTimeSeconds))])
        }
        return families
    }
}

/// The process's own figures, from /proc/self (read per scrape, on the metrics thread).
struct ProcessFacts {
    var residentBytes = 0
    var virtualBytes = 0
    var cpuSeconds = 0.0
    var openFiles = 0
    var maxFiles = 0
    var threads = 0
    var startTimeSeconds = 0.0

    static func read() -> ProcessFacts {
        var facts = ProcessFacts()
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let page = sysconf(Int32(_SC_PAGESIZE))
        if let stat = ProcText.readProcFile("/proc/self/stat"), let close = stat.lastIndex(of: ")") {
            // Fields after the command name, from field 3 (state) on.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            func field(_ number: Int) -> Double { number - 3 < fields.count ? Double(fields[number - 3]) ?? 0 : 0 }
            facts.cpuSeconds = (field(14) + field(15)) / ticks
            facts.threads = Int(field(20))
            facts.virtualBytes = Int(field(23))
            facts.residentBytes = Int(field(24)) * page
            if let boot = ProcText.readProcFile("/proc/stat")?.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
               let seconds = boot.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) {
                facts.startTimeSeconds = seconds + field(22) / ticks
            }
        }
        if let directory = opendir("/proc/self/fd") {
            var count = 0
            while let entry = readdir(directory) {
                if entry.pointee.d_name.0 != CChar(UInt8(ascii: ".")) { count += 1 }
            }
            closedir(directory)
            facts.openFiles = max(0, count - 1)  // the directory's own descriptor
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { facts.maxFiles = Int(clamping: limit.rlim_cur) }
        return facts
    }
}
