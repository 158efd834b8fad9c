import Synchronization

/// The counters every worker keeps. Each is a plain integer bumped on the worker's own
/// thread; `StatsBoard` publishes copies for other threads.
public enum StatCounter: Int, CaseIterable, Sendable {
    /// Connections in the slab right now (a gauge, not a counter).
    case open
    case accepts
    /// Upgrades completed.
    case handshakes
    /// Accept completions that failed, by errno: the fixed-file table full, the process
    /// fd limit, kernel memory, anything else. Logged once per burst.
    case acceptENFILE
    case acceptEMFILE
    case acceptENOMEM
    case acceptOther
    /// Accepted while the slab was full: closed at once.
    case acceptRejectedFull
    /// io_uring: rings this worker runs (a gauge).
    case rings
    /// Receives that ended with -ENOBUFS (the buffer ring was empty) and were parked,
    /// then re-armed when buffers came back. Nothing is lost.
    case enobufsRearms
    /// Multishot receives that ended without an error (e.g. after a CQ overflow) and were
    /// re-armed.
    case receiveRearms
    /// Times the kernel reported completions held back because the CQ was full.
    case cqOverflows
    case messagesIn
    case messagesOut
    case bytesIn
    case bytesOut
    case pingsSent
    case pongsReceived
    /// Sends submitted (SQEs or write calls).
    case sends
    /// Blocking waits: io_uring_enter or epoll_wait calls.
    case waits
    /// Every other system call the worker made on the hot path (epoll: accept, read,
    /// write, epoll_ctl, close; io_uring: extra submits when the SQ was full).
    case otherSyscalls
    /// Bytes the worker's buffer pool has lent out (a gauge).
    case pooledBytes
    /// Calls into the kernel's I/O interface that failed unexpectedly and were survived:
    /// io_uring_enter errors other than timeouts and signals, epoll_ctl failures. Logged.
    case kernelErrors
    /// Completions the kernel reported lost (io_uring_enter -EBADR, memory pressure).
    case cqDropped
    /// Operations whose completion never came and were accounted for by the cancel that
    /// found them gone (what `cqDropped` cost).
    case lostCompletions
    /// SQEs that waited in user space because the kernel would not take a full SQ.
    case sqSpills
    /// Upgrades the handler answered `.pending`; decisions that came after the connection
    /// was gone; extra response headers left out because they were not valid.
    case upgradesPending
    case upgradesStale
    case badUpgradeHeaders
    /// Commands taken from the worker's mailbox; posts to it refused because it was full.
    case mailboxCommands
    case mailboxRefused
    /// Sends and closes this worker handed to another worker's mailbox, those refused (full
    /// mailbox), and forwarded sends (or subscribes) that found their connection gone.
    case forwarded
    case forwardsRefused
    case forwardedToClosed
    /// Topics and subscriptions on this worker (gauges); subscribe and unsubscribe operations;
    /// subscribes refused by MYRIAD_MAX_SUBSCRIPTIONS.
    case topics
    case subscriptions
    case subscribes
    case unsubscribes
    case subscriptionsRefused
    /// Publishes made on this worker, refused because a target mailbox was full, received
    /// from other workers or threads; messages queued to subscribers by publishes.
    case publishes
    case publishesRefused
    case publishesReceived
    case deliveries
    /// permessage-deflate: messages sent compressed (a publish's compressed frame counts once
    /// per recipient), messages received compressed and inflated, connections that agreed it,
    /// and connections with their own zlib streams now (a gauge).
    case messagesCompressed
    case messagesInflated
    case deflateAgreed
    case dedicatedDeflate
    /// Connections with a side entry now (a gauge): handshaking, or in the middle of a frame
    /// or message (`ConnectionSideTable`); an idle open connection has none.
    case sideEntries
    /// Memory the worker keeps for reuse (gauges, bytes): free pool buffers, receive buffers
    /// written since last given back, the side table's touched entries; and the bytes given
    /// back to malloc or the kernel by the once-a-second trim (`Worker+Memory.swift`).
    case poolFreeBytes
    case receiveBufferBytes
    case sideTableBytes
    case memoryReturnedBytes
    /// Bytes the worker's buffer pool has lent for queued data frames, and for partial upgrade
    /// requests and messages being reassembled: the two halves of MYRIAD_BUFFER_BUDGET (gauges,
    /// size-class bytes; shared publish frames are referenced, not pooled, and not counted).
    case queuedBytes
    case reassemblyBytes
    // One counter per close reason follows `closesBase`, then the latency histograms
    // (`LatencyHistogram`).
    case closesBase

    public var name: String {
        switch self {
        case .open: return "open"
        case .accepts: return "accepts"
        case .handshakes: return "handshakes"
        case .acceptENFILE: return "accept_enfile"
        case .acceptEMFILE: return "accept_emfile"
        case .acceptENOMEM: return "accept_enomem"
        case .acceptOther: return "accept_other"
        case .acceptRejectedFull: return "accept_rejected_full"
        case .rings: return "rings"
        case .enobufsRearms: return "enobufs_rearms"
        case .receiveRearms: return "recv_rearms"
        case .cqOverflows: return "cq_overflows"
        case .messagesIn: return "messages_in"
        case .messagesOut: return "messages_out"
        case .bytesIn: return "bytes_in"
        case .bytesOut: return "bytes_out"
        case .pingsSent: return "pings_sent"
        case .pongsReceived: return "pongs_received"
        case .sends: return "sends"
        case .waits: return "waits"
        case .otherSyscalls: return "other_syscalls"
        case .pooledBytes: return "pooled_bytes"
        case .kernelErrors: return "kernel_errors"
        case .cqDropped: return "cq_dropped"
        case .lostCompletions: return "lost_completions"
        case .sqSpills: return "sq_spills"
        case .upgradesPending: return "upgrades_pending"
        case .upgradesStale: return "upgrades_stale"
        case .badUpgradeHeaders: return "bad_upgrade_headers"
        case .mailboxCommands: return "mailbox_commands"
        case .mailboxRefused: return "mailbox_refused"
        case .forwarded: return "forwarded"
        case .forwardsRefused: return "forwards_refused"
        case .forwardedToClosed: return "forwarded_to_closed"
        case .topics: return "topics"
        case .subscriptions: return "subscriptions"
        case .subscribes: return "subscribes"
        case .unsubscribes: return "unsubscribes"
        case .subscriptionsRefused: return "subscriptions_refused"
        case .publishes: return "publishes"
        case .publishesRefused: return "publishes_refused"
        case .publishesReceived: return "publishes_received"
        case .deliveries: return "deliveries"
        case .messagesCompressed: return "messages_compressed"
        case .messagesInflated: return "messages_inflated"
        case .deflateAgreed: return "deflate_agreed"
        case .dedicatedDeflate: return "dedicated_deflate"
        case .sideEntries: return "side_entries"
        case .poolFreeBytes: return "pool_free_bytes"
        case .receiveBufferBytes: return "receive_buffer_bytes"
        case .sideTableBytes: return "side_table_bytes"
        case .memoryReturnedBytes: return "memory_returned_bytes"
        case .queuedBytes: return "queued_bytes"
        case .reassemblyBytes: return "reassembly_bytes"
        case .closesBase: return "closes"
        }
    }

    /// Whether the counter is a level that goes up and down (the rest only grow).
    public var isGauge: Bool {
        switch self {
        case .open, .rings, .pooledBytes, .topics, .subscriptions, .queuedBytes, .reassemblyBytes, .dedicatedDeflate, .sideEntries,
             .poolFreeBytes, .receiveBufferBytes, .sideTableBytes: return true
        default: return false
        }
    }

    /// Where the latency histograms' slots start: after the close reasons.
    static var histogramsBase: Int { closesBase.rawValue + CloseReason.allCases.count }

    public static var slotCount: Int { histogramsBase + LatencyHistogram.allCases.count * LatencyHistogram.slotsPerHistogram }
}

/// A worker's counters as plain memory: written only by the worker thread.
struct WorkerCounters: ~Copyable {
    let values: UnsafeMutablePointer<Int>
    /// When this worker queued the pings of each recent wheel tick (`LatencyHistogram`).
    let pingClock: UnsafeMutablePointer<PingClockEntry>

    init() {
        values = .allocate(capacity: StatCounter.slotCount)
        values.initialize(repeating: 0, count: StatCounter.slotCount)
        pingClock = .allocate(capacity: PingClockEntry.count)
        pingClock.initialize(repeating: PingClockEntry(), count: PingClockEntry.count)
    }

    deinit {
        values.deallocate()
        pingClock.deallocate()
    }

    @inline(__always)
    func add(_ counter: StatCounter, _ amount: Int = 1) { values[counter.rawValue] &+= amount }

    @inline(__always)
    func set(_ counter: StatCounter, _ value: Int) { values[counter.rawValue] = value }

    @inline(__always)
    func closed(_ reason: CloseReason) { values[StatCounter.closesBase.rawValue + Int(reason.rawValue)] &+= 1 }

    func value(_ counter: StatCounter) -> Int { values[counter.rawValue] }

    func closedCount(_ reason: CloseReason) -> Int { values[StatCounter.closesBase.rawValue + Int(reason.rawValue)] }
}

/// Published copies of one worker's counters, readable from any thread.
public final class StatsBoard: @unchecked Sendable {
    private let slots: UnsafeMutablePointer<Atomic<Int>>

    init() {
        slots = .allocate(capacity: StatCounter.slotCount)
        for index in 0..<StatCounter.slotCount { (slots + index).initialize(to: Atomic(0)) }
    }

    deinit {
        slots.deinitialize(count: StatCounter.slotCount)
        slots.deallocate()
    }

    /// Copies the worker's counters (worker thread only).
    func publish(_ counters: borrowing WorkerCounters) {
        for index in 0..<StatCounter.slotCount {
            slots[index].store(counters.values[index], ordering: .relaxed)
        }
    }

    public func snapshot() -> StatsSnapshot {
        var values = [Int](repeating: 0, count: StatCounter.slotCount)
        for index in 0..<StatCounter.slotCount { values[index] = slots[index].load(ordering: .relaxed) }
        return StatsSnapshot(values: values)
    }
}

/// Counter values at one moment, for one worker or summed over all.
public struct StatsSnapshot: Sendable, Equatable {
    public var values: [Int]

    public init(values: [Int] = [Int](repeating: 0, count: StatCounter.slotCount)) { self.values = values }

    public subscript(_ counter: StatCounter) -> Int { values[counter.rawValue] }

    public func closes(_ reason: CloseReason) -> Int { values[StatCounter.closesBase.rawValue + Int(reason.rawValue)] }

    public var totalCloses: Int { CloseReason.allCases.reduce(0) { $0 + closes($1) } }

    public static func + (lhs: StatsSnapshot, rhs: StatsSnapshot) -> StatsSnapshot {
        StatsSnapshot(values: zip(lhs.values, rhs.values).map { $0 + $1 })
    }

    /// The latency histogram `histogram` (bucket counts summed over the workers summed here).
    public func histogram(_ histogram: LatencyHistogram) -> HistogramSnapshot {
        let base = histogram.base
        return HistogramSnapshot(bucketCounts: Array(values[base..<(base + LatencyHistogram.bucketCount)]),
                                 sumNanoseconds: values[base + LatencyHistogram.bucketCount])
    }

    /// `name=value` for every non-zero counter and close reason.
    public var fields: String {
        var parts: [String] = []
        for counter in StatCounter.allCases where counter != .closesBase && counter != .open {
            let value = self[counter]
            if value != 0 { parts.append("\(counter.name)=\(value)") }
        }
        let closes = CloseReason.allCases.compactMap { reason -> String? in
            let value = self.closes(reason)
            return value == 0 ? nil : "\(reason.name):\(value)"
        }
        if !closes.isEmpty { parts.append("closes={\(closes.joined(separator: ","))}") }
        return parts.joined(separator: " ")
    }
}
