import Myriad

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`), from which connect()
/// picks a client port per source address.
public struct PortRange: Sendable, Equatable {
    public var low: Int
    public var high: Int

    public init(low: Int, high: Int) {
        self.low = low
        self.high = high
    }

    public var count: Int { max(0, high - low + 1) }

    /// Ports one source address can use: about 90% of the range, leaving room for ports still
    /// in TIME_WAIT and for other programs. Above it, expect EADDRNOTAVAIL.
    public var usablePerAddress: Int { max(1, count * 9 / 10) }

    /// Ports the automatic plan puts on one source address: a third of the range. connect()'s
    /// port search (`__inet_hash_connect`) tries even ports first (odd ones are left for
    /// bind()) and slows sharply once they run out: measured here, 25,000 connections on one
    /// address (88% of 28,232 ports) took 16.9 s to ramp, on two (44%) 4.6 s; a million on 37
    /// addresses (half of 10000-65535 each, so nearly every even port) spent 23 of its 74 s
    /// ramp on the last 5%. Addresses in 127.0.0.0/8 cost nothing.
    public var plannedPerAddress: Int { max(1, count / 3) }

    /// Parses the sysctl's text, two numbers separated by whitespace (`32768\t60999`).
    public static func parse(_ text: String) -> PortRange? {
        let numbers = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { Int($0) }
        guard numbers.count == 2, numbers[0] >= 1, numbers[0] <= numbers[1], numbers[1] <= 65535 else { return nil }
        return PortRange(low: numbers[0], high: numbers[1])
    }

    /// This host's range; Linux's default (32768-60999) when it cannot be read.
    public static func current() -> PortRange {
        readSysctl("net/ipv4/ip_local_port_range").flatMap(parse) ?? PortRange(low: 32768, high: 60999)
    }
}

/// Client source addresses: one address gives at most one connection per ephemeral port to
/// a given server address and port, so N connections need N / ports-per-address addresses.
/// Every address in 127.0.0.0/8 is local on Linux, so loopback runs need no configuration.
public enum SourceAddresses {
    /// Where automatic addresses start (127.0.0.1 is usually the server's own).
    public static let automaticStart: UInt32 = 0x7F00_0002
    /// The longest list `--source` may name.
    public static let maximumCount = 65536

    /// Parses `127.0.0.2-127.0.0.40`, `127.0.0.2`, or a comma-separated list of either.
    /// Ranges are inclusive.
    public static func parse(_ text: String) throws(LoadError) -> [UInt32] {
        var result: [UInt32] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let piece = part.trimmingASCIISpaces
            let bounds = piece.split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count == 1 || bounds.count == 2,
                  let first = parseIPv4(String(bounds[0].trimmingASCIISpaces)),
                  let last = bounds.count == 2 ? parseIPv4(String(bounds[1].trimmingASCIISpaces)) : first
            else {
                throw LoadError("--source \(text): \"\(piece)\" is not an IPv4 address or a range a.b.c.d-e.f.g.h")
            }
            guard first <= last else { throw LoadError("--source \(text): range \(piece) runs backwards") }
            guard Int(last - first) + 1 + result.count <= maximumCount else {
                throw LoadError("--source \(text): more than \(maximumCount) addresses")
            }
            for address in first...last { result.append(address) }
        }
        return result
    }

    /// `count` addresses from `start` upwards, skipping those ending in .0 and .255.
    public static func automatic(count: Int, start: UInt32 = automaticStart) -> [UInt32] {
        var result: [UInt32] = []
        result.reserveCapacity(count)
        var address = start
        while result.count < count {
            let last = address & 0xFF
            if last != 0 && last != 255 { result.append(address) }
            address &+= 1
        }
        return result
    }

    /// Addresses the automatic plan uses for `connections`: `ports.plannedPerAddress` each
    /// (at least one).
    public static func neededCount(connections: Int, ports: PortRange) -> Int {
        max(1, (connections + ports.plannedPerAddress - 1) / ports.plannedPerAddress)
    }

    /// The text form of a list: `127.0.0.2-127.0.0.5` for a run, comma-separated otherwise.
    public static func describe(_ addresses: [UInt32]) -> String {
        var parts: [String] = []
        var index = 0
        while index < addresses.count {
            var end = index
            while end + 1 < addresses.count && addresses[end + 1] == addresses[end] &+ 1 { end += 1 }
            parts.append(end == index ? formatIPv4(addresses[index])
                                      : formatIPv4(addresses[index]) + "-" + formatIPv4(addresses[end]))
            index = end + 1
        }
        return parts.joined(separator: ",")
    }
}

/// How a run is split: threads (each with one ring and a fixed-file table), the connections
/// and connect concurrency of each, and the source addresses.
public struct LoadPlan: Sendable, Equatable {
    /// Threads (rings) a run may use.
    public static let maximumThreads = 256

    public var sources: [UInt32]
    public var portsPerAddress: Int
    public var threads: Int
    /// Largest fixed-file table a ring may register: RLIMIT_NOFILE (after raising the soft
    /// limit to the hard one), at most the kernel's 1,048,576.
    public var fixedFilesPerRing: Int
    /// Connection slots of each thread (= its fixed-file table size).
    public var slotsPerThread: [Int]
    /// Connections (or churn cycles) each thread establishes.
    public var targetPerThread: [Int]
    /// Connections each thread establishes at once at most.
    public var concurrencyPerThread: [Int]
    /// Connects per second each thread starts (0: unlimited).
    public var ratePerThread: Double
    /// Things that will probably go wrong, for the user to see before they do.
    public var warnings: [String]

    public static func make(options: LoadOptions, ports: PortRange, fileLimit: Int) throws(LoadError) -> LoadPlan {
        let simultaneous = options.simultaneousConnections
        let perRing = max(1, min(fileLimit, maximumFixedFilesPerRing))
        let needed = (simultaneous + perRing - 1) / perRing
        let threads: Int
        if let requested = options.threads {
            guard requested >= needed else {
                throw LoadError("--threads \(requested) cannot hold \(simultaneous) connections: each ring's fixed-file table "
                    + "is limited to RLIMIT_NOFILE = \(perRing); use at least \(needed) threads (or leave --threads out)")
            }
            threads = min(requested, simultaneous)
        } else {
            threads = needed
        }
        guard threads <= maximumThreads else {
            throw LoadError("\(simultaneous) connections need \(threads) rings of \(perRing) fixed files, "
                + "more than the \(maximumThreads) threads one load process runs: raise the fd limit or use several processes")
        }
        let sources = options.sources
            ?? SourceAddresses.automatic(count: SourceAddresses.neededCount(connections: simultaneous, ports: ports))
        var warnings: [String] = []
        let capacity = sources.count * ports.usablePerAddress
        if simultaneous > capacity {
            warnings.append("\(simultaneous) connections over \(sources.count) source address(es) at about "
                + "\(ports.usablePerAddress) ports each (net.ipv4.ip_local_port_range \(ports.low)-\(ports.high)): "
                + "expect EADDRNOTAVAIL; give --source more addresses or widen the port range")
        }
        return LoadPlan(
            sources: sources, portsPerAddress: ports.usablePerAddress, threads: threads, fixedFilesPerRing: perRing,
            slotsPerThread: split(simultaneous, threads), targetPerThread: split(options.target, threads),
            concurrencyPerThread: split(max(options.concurrency, threads), threads),
            ratePerThread: Double(options.rate) / Double(threads), warnings: warnings)
    }

    /// `total` split over `parts` as evenly as integers allow, larger shares first.
    public static func split(_ total: Int, _ parts: Int) -> [Int] {
        (0..<parts).map { total / parts + ($0 < total % parts ? 1 : 0) }
    }
}

extension Substring {
    var trimmingASCIISpaces: Substring {
        var view = self
        while let first = view.first, first == " " || first == "\t" { view = view.dropFirst() }
        while let last = view.last, last == " " || last == "\t" { view = view.dropLast() }
        return view
    }
}
