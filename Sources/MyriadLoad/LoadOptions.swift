import Glibc
import Myriad

/// What a load run does once connections are up.
public enum LoadMode: String, CaseIterable, Sendable {
    /// Connect N, hold them for the duration answering the server's pings, close cleanly.
    case hold
    /// `hold`, and every connection also sends a ping every `pingInterval`; pong round trips
    /// are measured.
    case ping
    /// C connections each keep `depth` messages of `size` bytes in flight for the duration;
    /// messages per second and round-trip latency are measured.
    case echo
    /// Connect, upgrade and close cleanly, at `rate` per second for the duration.
    case churn
    /// N subscribers of one path (`myriad serve --app broadcast`); once the ramp is done one
    /// of them, the publisher, sends a message every `publishInterval` for the duration;
    /// every connection, the publisher included, must receive every message once and in
    /// order. Loss, duplicates, order and publish-to-receive latency are measured.
    case fanout
}

/// permessage-deflate (RFC 7692) on the load's connections: the browsers' offer
/// (`permessage-deflate; client_max_window_bits`), then whatever the server answers. A client
/// thread compresses each message on its own and, where the server resets after every message
/// too (Myriad's shared mode), inflates with one decompressor for all its connections
/// (`ClientDeflate`); a server that keeps context gets a decompressor per connection.
public enum LoadDeflate: String, CaseIterable, Sendable {
    /// No offer (the default).
    case off
    /// Offer it, and fail a handshake whose response does not agree: the server may compress
    /// what it sends (the client inflates it); the client's own messages go uncompressed.
    case receive
    /// `receive`, and the client compresses every data message it sends too (echo's messages,
    /// fanout's publishes; control frames and the verify message stay plain).
    case both
}

/// What a data message carries after its header (echo's 8-byte send time, fanout's 16 bytes).
public enum LoadPayload: String, CaseIterable, Sendable {
    /// One repeated byte: cheap to write, and compressing it says nothing.
    case filler
    /// A JSON array of feed records (`PayloadBodies`): text with the shape and entropy of a
    /// market or notification feed, 16 variants per thread sent in turn, for measuring
    /// compression.
    case json
}

/// A rejected option, said so that the user knows what to change.
public struct LoadError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Everything a load run is told. `myriad load` fills it from flags; tests fill it directly.
public struct LoadOptions: Sendable {
    /// In --path, replaced by each connection's number.
    public static let connectionNumberPlaceholder = "{i}"
    public var mode: LoadMode = .hold
    /// The server: an IPv4 address (or `localhost`).
    public var host = "127.0.0.1"
    /// The server's ports (one server or several nodes): connections go round-robin over
    /// them (see `portIndex(slot:thread:threadCount:)`); fanout's publisher is on the first.
    public var ports: [UInt16] = [8080]
    /// The request target of the upgrade request.
    /// The request target; `{i}` in it becomes each connection's number (8 digits).
    public var path = "/"
    /// Connections to open and hold (hold, ping, echo). Churn ignores it: there the number of
    /// connections open at once is bounded by `concurrency`.
    public var connections = 1000
    /// hold/ping: how long to hold after the ramp; echo: how long to measure after the ramp;
    /// churn: how long to keep cycling (together with `rate` it sets the number of cycles).
    public var durationMilliseconds = 30_000
    /// New connections started per second over all threads; 0: as fast as `concurrency` allows.
    public var rate = 0
    /// Connections being established (connect + upgrade) at once, over all threads.
    public var concurrency = 1024
    /// Hard cap on the whole run; nil: `defaultTimeLimitMilliseconds`.
    public var timeLimitMilliseconds: Int?
    /// Client source addresses (host byte order); nil: automatic (see `SourceAddresses`).
    public var sources: [UInt32]?
    /// Client threads, each with as many io_uring rings as its share of the connections needs;
    /// nil: one per online core (never more than the connections).
    public var threads: Int?
    /// Largest fixed-file table of one client ring; nil: RLIMIT_NOFILE (the most a table may
    /// hold). Smaller tables mean more rings per thread (tests force several this way).
    /// `myriad load` takes it from `MYRIAD_LOAD_FIXED_FILES_PER_RING`.
    public var fixedFilesPerRing: Int?
    /// io_uring features the client must not use even where the kernel has them, to test the
    /// fallbacks (only `.deferTaskrun` applies to the client).
    var disabledRingFeatures: Set<URingFeature> = []
    /// ping mode: interval between two pings on one connection.
    public var pingIntervalMilliseconds = 25_000
    /// echo mode: payload bytes per message (at least 8: a send timestamp rides in it);
    /// fanout: at least 16 (the send time and the sequence number).
    public var messageSizeBytes = 32
    /// echo mode: messages in flight per connection.
    public var depth = 1
    /// hold/ping: after the hold every connection sends one message and must get it back.
    public var verifyEcho = false
    /// permessage-deflate: off, or offered (and required) with the client compressing too or not.
    public var deflate = LoadDeflate.off
    /// echo and fanout: what the payload carries after its header.
    public var payload = LoadPayload.filler
    public var connectTimeoutMilliseconds = 10_000
    public var handshakeTimeoutMilliseconds = 10_000
    /// Time for the server to answer our close frame (and to close TCP after it).
    public var closeTimeoutMilliseconds = 10_000
    /// fanout: time between two publishes.
    public var publishIntervalMilliseconds = 1000
    /// fanout: how long to wait after the last publish for deliveries still under way.
    public var drainMilliseconds = 10_000
    /// fanout: the server's process, whose CPU time (/proc/PID/stat) over the publishing
    /// window and the drain is divided by the deliveries, and whose VmRSS is reported.
    public var serverPID: Int32?

    public init() {}

    /// The environment variable `myriad load` reads `fixedFilesPerRing` from.
    public static let fixedFilesVariable = "MYRIAD_LOAD_FIXED_FILES_PER_RING"

    /// `fixedFilesPerRing` from `MYRIAD_LOAD_FIXED_FILES_PER_RING` when it is set and the
    /// option is not: how `myriad load` (which has no flag for it) is told.
    public mutating func readFixedFilesPerRingFromEnvironment() throws(LoadError) {
        guard fixedFilesPerRing == nil, let raw = getenv(LoadOptions.fixedFilesVariable) else { return }
        let text = String(cString: raw)
        guard let value = Int(Substring(text).trimmingASCIISpaces) else {
            throw LoadError("\(LoadOptions.fixedFilesVariable)=\(text): expected a number of fixed files per ring, "
                + "1...\(maximumFixedFilesPerRing)")
        }
        fixedFilesPerRing = value
    }

    /// The first (or only) port. Setting it makes it the only one.
    public var port: UInt16 {
        get { ports.first ?? 8080 }
        set { ports = [newValue] }
    }

    /// Where the connection on `slot` of thread `thread` goes: its global index (slot x
    /// threads + thread, which numbers a run's connections 0..<N since threads take equal
    /// shares, larger first) modulo the ports. Slot 0 of thread 0, fanout's publisher, goes
    /// to the first port.
    @inline(__always)
    public static func portIndex(slot: Int, thread: Int, threadCount: Int, portCount: Int) -> Int {
        portCount == 1 ? 0 : (slot &* threadCount &+ thread) % portCount
    }

    /// Connections the round-robin sends to each port, out of `connections`.
    public func connectionsPerPort() -> [Int] {
        LoadPlan.split(connections, ports.count)
    }

    /// `host:port`, or `host:port1,port2,...` for several ports.
    public var serverDescription: String {
        "\(host):" + ports.map(String.init).joined(separator: ",")
    }

    /// The longest list `--port` may name.
    public static let maximumPorts = 64
    /// fanout: the most messages one run may publish (each client thread keeps 8 bytes per
    /// message for its publish-to-last-delivery times).
    public static let maximumPublishes = 100_000

    /// fanout: messages the run publishes, one every interval over the duration (at least one).
    public var plannedPublishes: Int {
        max(1, durationMilliseconds / max(1, publishIntervalMilliseconds))
    }

    /// Cycles a churn run makes: rate x duration.
    public var churnCycles: Int { max(1, Int((Double(rate) * Double(durationMilliseconds) / 1000).rounded())) }

    /// Connections the run must establish: `connections`, or the churn cycles.
    public var target: Int { mode == .churn ? churnCycles : connections }

    /// Connections open at once at most: what the slabs and fixed-file tables are sized for.
    public var simultaneousConnections: Int {
        mode == .churn ? max(1, min(concurrency, churnCycles)) : connections
    }

    /// Default for `--time-limit`: the duration, plus 2 minutes, plus 1 s per 2,000
    /// connections (or the churn cycles' own length at the given rate); fanout adds the drain.
    public var defaultTimeLimitMilliseconds: Int {
        let perConnections = (simultaneousConnections + 1999) / 2000 * 1000
        return durationMilliseconds + 120_000 + perConnections + (mode == .fanout ? drainMilliseconds : 0)
    }

    public var effectiveTimeLimitMilliseconds: Int { timeLimitMilliseconds ?? defaultTimeLimitMilliseconds }

    /// Checks every option on its own and against the others.
    public func validate() throws(LoadError) {
        guard (1...16_000_000).contains(connections) else {
            throw LoadError("--connections \(connections): expected 1...16000000")
        }
        guard durationMilliseconds >= 0 else { throw LoadError("--duration must not be negative") }
        guard rate >= 0 else { throw LoadError("--rate \(rate): expected 0 (unlimited) or more") }
        guard concurrency >= 1 else { throw LoadError("--concurrency \(concurrency): expected at least 1") }
        if mode == .churn {
            guard rate > 0 else { throw LoadError("churn needs --rate (cycles per second)") }
            guard durationMilliseconds > 0 else { throw LoadError("churn needs a --duration above 0") }
        }
        if let timeLimitMilliseconds, timeLimitMilliseconds <= 0 {
            throw LoadError("--time-limit must be above 0")
        }
        if let threads, !(1...LoadPlan.maximumThreads).contains(threads) {
            throw LoadError("--threads \(threads): expected 1...\(LoadPlan.maximumThreads)")
        }
        if let sources, sources.isEmpty { throw LoadError("--source names no address") }
        if let fixedFilesPerRing, !(1...maximumFixedFilesPerRing).contains(fixedFilesPerRing) {
            throw LoadError("\(LoadOptions.fixedFilesVariable)=\(fixedFilesPerRing): expected 1...\(maximumFixedFilesPerRing)")
        }
        guard pingIntervalMilliseconds >= 1 else { throw LoadError("--ping-interval must be above 0") }
        if mode == .echo {
            guard messageSizeBytes >= 8 && messageSizeBytes <= 16 << 20 else {
                throw LoadError("--size \(messageSizeBytes): expected 8 B...16 MiB (the first 8 bytes carry the send time)")
            }
            guard (1...1024).contains(depth) else { throw LoadError("--depth \(depth): expected 1...1024") }
        }
        if mode == .fanout {
            guard messageSizeBytes >= 16 && messageSizeBytes <= 16 << 20 else {
                throw LoadError("--size \(messageSizeBytes): expected 16 B...16 MiB (the first 16 bytes carry the send time and the sequence)")
            }
            guard publishIntervalMilliseconds >= 1 else { throw LoadError("--publish-interval must be above 0") }
            guard durationMilliseconds > 0 else { throw LoadError("fanout needs a --duration above 0") }
            guard plannedPublishes <= LoadOptions.maximumPublishes else {
                throw LoadError("--duration / --publish-interval = \(plannedPublishes) messages: at most \(LoadOptions.maximumPublishes) a run")
            }
            guard drainMilliseconds >= 0 && drainMilliseconds <= 600_000 else {
                throw LoadError("--drain \(drainMilliseconds) ms: expected 0...10m")
            }
        }
        if let serverPID {
            guard serverPID > 0, ServerProcess.sample(pid: serverPID) != nil else {
                throw LoadError("--server-pid \(serverPID): cannot read /proc/\(serverPID)/stat (no such process?)")
            }
        }
        guard !ports.isEmpty, ports.count <= LoadOptions.maximumPorts else {
            throw LoadError("--port: expected 1...\(LoadOptions.maximumPorts) ports")
        }
        guard !ports.contains(0) else { throw LoadError("--port 0: expected 1...65535") }
        guard Set(ports).count == ports.count else { throw LoadError("--port names a port twice") }
        if verifyEcho && mode != .hold && mode != .ping {
            throw LoadError("--verify-echo applies to hold and ping")
        }
        if payload != .filler && mode != .echo && mode != .fanout {
            throw LoadError("--payload \(payload.rawValue) applies to echo and fanout")
        }
        if deflate == .both && mode != .echo && mode != .fanout {
            throw LoadError("--deflate both applies to echo and fanout (the modes that send data messages); use receive")
        }
        for (name, value) in [("--connect-timeout", connectTimeoutMilliseconds),
                              ("--handshake-timeout", handshakeTimeoutMilliseconds),
                              ("--close-timeout", closeTimeoutMilliseconds)] where value <= 0 {
            throw LoadError("\(name) must be above 0")
        }
        guard path.hasPrefix("/"), !path.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }),
              path.ranges(of: Self.connectionNumberPlaceholder).count <= 1 else {
            throw LoadError("--path \(path): expected an origin-form target such as / or /chat?room=1 (at most one {i})")
        }
        _ = try destinationAddress()
    }

    /// The server's address in host byte order.
    public func destinationAddress() throws(LoadError) -> UInt32 {
        let name = host == "localhost" ? "127.0.0.1" : host
        guard let address = parseIPv4(name) else {
            throw LoadError("--host \(host): expected an IPv4 address such as 127.0.0.1")
        }
        return address
    }
}

// MARK: - Parsing helpers shared by the CLI and the tests

/// An IPv4 dotted quad in host byte order, or nil.
public func parseIPv4(_ text: String) -> UInt32? {
    var address = in_addr()
    guard inet_pton(AF_INET, text, &address) == 1 else { return nil }
    return UInt32(bigEndian: address.s_addr)
}

/// `a.b.c.d` for an address in host byte order.
public func formatIPv4(_ address: UInt32) -> String {
    "\(address >> 24).\((address >> 16) & 0xFF).\((address >> 8) & 0xFF).\(address & 0xFF)"
}

/// Ports from `8080` or a comma list `8080,8081`; nil when one is not a port 1...65535.
public func parsePorts(_ text: String) -> [UInt16]? {
    var result: [UInt16] = []
    for part in text.split(separator: ",", omittingEmptySubsequences: false) {
        guard let port = UInt16(part.trimmingASCIISpaces), port > 0 else { return nil }
        result.append(port)
    }
    return result.isEmpty ? nil : result
}

/// Milliseconds from `250ms`, `10s`, `1.5s`, `2m`, `1h`, or a bare number of seconds.
public func parseDuration(_ text: String) -> Int? {
    let units: [(String, Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
    var digits = Substring(text)
    var multiplier = 1000.0
    for (suffix, factor) in units where text.hasSuffix(suffix) {
        digits = text.dropLast(suffix.count)
        multiplier = factor
        break
    }
    guard let number = Double(digits), number.isFinite, number >= 0 else { return nil }
    let milliseconds = (number * multiplier).rounded()
    guard milliseconds <= Double(Int32.max) else { return nil }
    return Int(milliseconds)
}
