@_spi(Benchmarks) import Myriad

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

/// How a run is split: threads (one per online core by default), the rings of each thread (as
/// many as its share needs, each with a fixed-file table of at most RLIMIT_NOFILE entries), the
/// connections and connect concurrency of each thread, and the source addresses.
public struct LoadPlan: Sendable, Equatable {
    /// Threads a run may use.
    public static let maximumThreads = 256
    /// Rings one load process may run, over all its threads (each ring is a process fd and
    /// about 1.5 MiB of rings and receive buffers; 256 rings of 20,000 hold 5,120,000).
    public static let maximumRings = 256

    public var sources: [UInt32]
    public var portsPerAddress: Int
    public var threads: Int
    /// Largest fixed-file table a ring may register: RLIMIT_NOFILE (after raising the soft
    /// limit to the hard one), at most the kernel's 1,048,576, or `LoadOptions.fixedFilesPerRing`.
    public var fixedFilesPerRing: Int
    /// Connection slots of each thread (the sum of its rings' tables).
    public var slotsPerThread: [Int]
    /// Each thread's rings, by fixed-file table size: ceil(slots / fixedFilesPerRing) rings, the
    /// first ones all the same size (a slot's ring is slot / that size), the last one smaller
    /// when the share does not divide.
    public var ringTablesPerThread: [[Int]]
    /// Connections (or churn cycles) each thread establishes.
    public var targetPerThread: [Int]
    /// Connections each thread establishes at once at most.
    public var concurrencyPerThread: [Int]
    /// Connects per second each thread starts (0: unlimited).
    public var ratePerThread: Double
    /// Things that will probably go wrong, for the user to see before they do.
    public var warnings: [String]

    /// Rings over all threads.
    public var rings: Int { ringTablesPerThread.reduce(0) { $0 + $1.count } }

    /// The plan for `options` on a host with `cores` online cores, an fd limit of `fileLimit`
    /// (RLIMIT_NOFILE: each ring's table holds at most that) and the ephemeral `ports`.
    public static func make(options: LoadOptions, ports: PortRange, fileLimit: Int, cores: Int) throws(LoadError) -> LoadPlan {
        let simultaneous = options.simultaneousConnections
        var perRing = max(1, min(fileLimit, maximumFixedFilesPerRing))
        if let asked = options.fixedFilesPerRing {
            guard asked <= perRing else {
                throw LoadError("\(LoadOptions.fixedFilesVariable)=\(asked) is more than a ring's fixed-file table may hold "
                    + "here: RLIMIT_NOFILE = \(perRing)")
            }
            perRing = asked
        }
        let threads = max(1, min(options.threads ?? cores, simultaneous))
        let slots = split(simultaneous, threads)
        let tables = slots.map { share in ringTables(share, perRing: perRing) }
        let rings = tables.reduce(0) { $0 + $1.count }
        guard rings <= maximumRings else {
            throw LoadError("\(simultaneous) connections need \(rings) rings of at most \(perRing) fixed files, more than the "
                + "\(maximumRings) one load process runs: raise the fd limit or use several processes")
        }
        guard slots[0] <= Int(UserData.maxSlot) else {
            throw LoadError("\(slots[0]) connections on one thread: at most \(UserData.maxSlot) (the completion tag's 24 bits); use more --threads")
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
            slotsPerThread: slots, ringTablesPerThread: tables, targetPerThread: split(options.target, threads),
            concurrencyPerThread: split(max(options.concurrency, threads), threads),
            ratePerThread: Double(options.rate) / Double(threads), warnings: warnings)
    }

    /// A thread's `share` of slots cut into ceil(share / perRing) rings: all of ceil(share /
    /// rings) slots but the last, which holds the rest (at least one slot: (rings - 1) x that
    /// size < share because it is at most `perRing`).
    public static func ringTables(_ share: Int, perRing: Int) -> [Int] {
        let count = max(1, (share + perRing - 1) / perRing)
        let size = max(1, (share + count - 1) / count)
        return (0..<count).map { $0 < count - 1 ? size : max(1, share - size * (count - 1)) }
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
