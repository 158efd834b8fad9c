/// The latencies a worker records, as histograms with fixed buckets kept in its counters
/// (`WorkerCounters`), so they reach other threads with the counters' own publish: plain
/// integers on the worker thread, no allocation, no atomics beyond the board's copy.
///
/// The clock is CLOCK_MONOTONIC read through the vDSO (no system call), once per sample end:
/// the wheel's tick (MYRIAD_TIMER_TICK, 50 ms by default) is far coarser than a loopback
/// handshake (tens of microseconds) or a ping round trip on a LAN.
public enum LatencyHistogram: Int, CaseIterable, Sendable {
    /// Accept to the 101 queued: the side entry is stamped at the accept (with the peer
    /// address request) and read when the 101 is queued. Includes the time the client took to
    /// send its upgrade request, and an upgrade the application decided later (`.pending`).
    case handshake
    /// Ping queued to its pong received. Pings due in one tick are queued in one sweep of the
    /// wheel, and the sweep's first ping stamps the time for all of them (one clock read per
    /// tick that has pings); a pong is timed when it answers an outstanding ping.
    case pingRoundTrip

    /// Upper bounds of the buckets, in seconds (a last bucket, +Inf, takes the rest). One set
    /// for both: loopback handshakes and round trips are ~0.1 ms, the Internet's 10-300 ms,
    /// and the timeouts (handshake 10 s, pong 10 s by default) end the range.
    public static let bucketBoundsSeconds: [Double] = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ]
    /// As the Prometheus `le` label writes them.
    public static let bucketLabels: [String] = [
        "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
        "1", "2.5", "5", "10", "+Inf",
    ]
    static let boundsNanoseconds: [Int64] = bucketBoundsSeconds.map { Int64(($0 * 1e9).rounded()) }

    /// Buckets, +Inf included.
    public static var bucketCount: Int { bucketBoundsSeconds.count + 1 }
    /// Per histogram: each bucket's own count (not cumulative), then the sum in nanoseconds.
    static var slotsPerHistogram: Int { bucketCount + 1 }

    var base: Int { StatCounter.histogramsBase + rawValue * Self.slotsPerHistogram }

    /// The bucket a duration falls in (le: a value equal to a bound is in that bucket).
    @inline(__always)
    static func bucket(nanoseconds: Int64) -> Int {
        var index = 0
        let bounds = boundsNanoseconds
        while index < bounds.count && nanoseconds > bounds[index] { index += 1 }
        return index
    }
}

/// A histogram's counts at one moment.
public struct HistogramSnapshot: Sendable, Equatable {
    /// Each bucket's own count, in the order of `LatencyHistogram.bucketLabels` (+Inf last).
    public var bucketCounts: [Int]
    public var sumNanoseconds: Int

    public var count: Int { bucketCounts.reduce(0, +) }
    public var sumSeconds: Double { Double(sumNanoseconds) / 1e9 }

    /// Counts at or below each bound, as Prometheus's `_bucket` series give them.
    public var cumulativeCounts: [Int] {
        var total = 0
        return bucketCounts.map { total += $0; return total }
    }
}

/// When a worker queued the pings of one wheel tick: a ring indexed by tick, 4096 ticks deep
/// (205 s at the default 50 ms tick, past the default 10 s pong timeout). A pong whose ping's
/// entry was overwritten (a pong timeout longer than 4096 ticks) is not timed.
struct PingClockEntry {
    var tick: UInt32 = .max
    var nanoseconds: Int64 = 0

    static let count = 4096
}

extension WorkerCounters {
    /// Adds one sample to `histogram` (worker thread only).
    @inline(__always)
    func record(_ histogram: LatencyHistogram, nanoseconds: Int64) {
        let duration = max(0, nanoseconds)
        let base = histogram.base
        values[base + LatencyHistogram.bucket(nanoseconds: duration)] &+= 1
        values[base + LatencyHistogram.bucketCount] &+= Int(duration)
    }

    /// A ping was queued in wheel tick `tick`: the first of the tick reads the clock.
    @inline(__always)
    func pingQueued(tick: UInt32) {
        let entry = pingClock + Int(tick % UInt32(PingClockEntry.count))
        if entry.pointee.tick != tick {
            entry.pointee = PingClockEntry(tick: tick, nanoseconds: monotonicNanoseconds())
        }
    }

    /// The pong to the ping queued in tick `pingSentTick` arrived: one round-trip sample.
    @inline(__always)
    func pongAnswered(pingSentTick: UInt32) {
        let entry = pingClock + Int(pingSentTick % UInt32(PingClockEntry.count))
        guard entry.pointee.tick == pingSentTick else { return }
        record(.pingRoundTrip, nanoseconds: monotonicNanoseconds() - entry.pointee.nanoseconds)
    }
}
