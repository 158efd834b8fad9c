/// A fixed-bucket, log-linear histogram of nanosecond durations (the HdrHistogram layout,
/// reduced): values below 128 ns have a bucket each; above, every power of two is split into
/// 64 equal buckets, so a reported percentile is within 1/64 (1.6%) of the true value. Fixed
/// size (3,776 counters), no allocation per sample; one per client thread, merged at the end.
public struct Histogram: Sendable, Equatable, CustomStringConvertible {
    static let subBucketBits = 6
    static let subBucketCount = 1 << subBucketBits
    static let bucketCount = (64 - subBucketBits - 1) * subBucketCount + 2 * subBucketCount

    public private(set) var counts: [UInt64]
    public private(set) var count: UInt64 = 0
    public private(set) var maximum: UInt64 = 0
    public private(set) var minimum: UInt64 = .max

    public init() { counts = [UInt64](repeating: 0, count: Histogram.bucketCount) }

    @inline(__always)
    static func index(of value: UInt64) -> Int {
        if value < UInt64(2 * subBucketCount) { return Int(value) }
        let exponent = 63 - value.leadingZeroBitCount
        let shift = exponent - subBucketBits
        return shift * subBucketCount + Int(value >> UInt64(shift))
    }

    /// The middle of bucket `index`'s range of values.
    static func value(at index: Int) -> UInt64 {
        if index < 2 * subBucketCount { return UInt64(index) }
        let shift = index / subBucketCount - 1
        let mantissa = UInt64(index % subBucketCount + subBucketCount)
        return mantissa << UInt64(shift) + (UInt64(1) << UInt64(shift)) / 2
    }

    @inline(__always)
    public mutating func record(_ value: UInt64) {
        counts[Histogram.index(of: value)] &+= 1
        count &+= 1
        if value > maximum { maximum = value }
        if value < minimum { minimum = value }
    }

    /// The value below which `fraction` (0...1) of the samples lie; 0 when there are none.
    public func percentile(_ fraction: Double) -> UInt64 {
        guard count > 0 else { return 0 }
        let rank = max(1, UInt64((fraction * Double(count)).rounded(.up)))
        var seen: UInt64 = 0
        for index in 0..<counts.count {
            seen &+= counts[index]
            if seen >= rank { return min(max(Histogram.value(at: index), minimum), maximum) }
        }
        return maximum
    }

    /// `Histogram(count: 12, p50: 1200 ns, p99: 5000 ns, max: 5100 ns)`: not the 3,776 buckets.
    public var description: String {
        "Histogram(count: \(count), p50: \(percentile(0.5)) ns, p99: \(percentile(0.99)) ns, max: \(maximum) ns)"
    }

    public mutating func merge(_ other: Histogram) {
        guard other.count > 0 else { return }
        for index in 0..<counts.count { counts[index] &+= other.counts[index] }
        count &+= other.count
        maximum = max(maximum, other.maximum)
        minimum = min(minimum, other.minimum)
    }
}
