import Glibc

/// The fanout message: a binary payload of `--size` bytes whose first 16 carry the
/// publisher's send time (CLOCK_MONOTONIC nanoseconds, little-endian; publisher and
/// subscribers share the machine's clock) and the message's sequence number (0, 1, 2, ...,
/// little-endian); the rest is filler.
public enum FanoutMessage {
    /// Bytes of the payload the client reads: send time and sequence.
    public static let headerBytes = 16
    /// What fills the payload after the first 16 bytes.
    public static let filler: UInt8 = 0x66
}

/// What one client thread learned in a fanout run, handed to the coordinator when it exits.
struct FanoutThreadResult {
    /// Deliveries (first copies) by port index.
    var deliveredPerPort: [Int]
    /// Upgrades completed by port index.
    var connectedPerPort: [Int]
    /// By sequence: the longest publish-to-receive time of the thread's deliveries of that
    /// message (0: none), in nanoseconds.
    var slowest: [UInt64]
    /// By port index: publish-to-receive times of the deliveries on that node.
    var latencyPerPort: [Histogram]
}

/// One server node of a fanout run (one `--port`).
public struct FanoutNode: Sendable, Equatable {
    public var port: UInt16
    /// Connections the round-robin sent to this port.
    public var subscribers = 0
    /// Of them, upgraded.
    public var connected = 0
    /// published x subscribers.
    public var expected = 0
    public var delivered = 0
    /// Publish-to-receive time of every delivery to this node's connections (the publisher is
    /// on the first node: with a cluster, the others' include the trip through the broker).
    public var latency = Histogram()

    public init(port: UInt16) { self.port = port }

    public var lost: Int { max(0, expected - delivered) }
}

/// The server's CPU time over the publishing window and the drain, and its memory at the end
/// of the drain (`--server-pid`).
public struct ServerUsage: Sendable, Equatable {
    public var pid: Int32
    /// utime + stime of every thread of the process (clock-tick resolution, 10 ms here).
    public var cpuNanoseconds: Int64 = 0
    /// VmRSS at the end of the drain.
    public var residentBytes = 0

    public init(pid: Int32) { self.pid = pid }
}

/// Everything fanout adds to the summary.
public struct FanoutSummary: Sendable, Equatable {
    /// The server's address (the nodes differ by port).
    public var host = "127.0.0.1"
    public var publishIntervalMilliseconds = 0
    public var messageSizeBytes = 0
    /// N: every connection is a subscriber (the publisher too).
    public var subscribers = 0
    public var plannedPublishes = 0
    public var published = 0
    /// First copies received, over every connection.
    public var delivered = 0
    public var duplicated = 0
    public var outOfOrder = 0
    /// From the first publish to the end of the publishing (the duration), and the drain.
    public var publishSeconds = 0.0
    public var drainSeconds = 0.0
    /// Deliveries received during the publishing window.
    public var deliveredWhilePublishing = 0
    /// Per message: the last delivery's time minus the send time, over every connection.
    public var publishToLastDelivery = Histogram()
    public var nodes: [FanoutNode] = []
    public var server: ServerUsage?

    public init() {}

    /// published x subscribers: every connection, the publisher included, gets every message.
    public var expected: Int { published * subscribers }
    public var lost: Int { max(0, expected - delivered) }
    public var deliveriesPerSecond: Double {
        publishSeconds > 0 ? Double(deliveredWhilePublishing) / publishSeconds : 0
    }
    /// Server CPU microseconds per delivery (nil without `--server-pid` or deliveries).
    public var serverMicrosecondsPerDelivery: Double? {
        guard let server, delivered > 0 else { return nil }
        return Double(server.cpuNanoseconds) / 1000 / Double(delivered)
    }

    /// Every message published as planned, every one delivered exactly once to every
    /// connection, in order.
    public var complete: Bool {
        published > 0 && published == plannedPublishes && delivered == expected && duplicated == 0 && outOfOrder == 0
    }
}

/// A process's CPU time and resident memory, read from /proc.
public enum ServerProcess {
    /// utime + stime (in nanoseconds) and VmRSS (bytes) of `pid`; nil when it cannot be read.
    public static func sample(pid: Int32) -> (cpuNanoseconds: Int64, residentBytes: Int)? {
        guard let stat = readProcFile("/proc/\(pid)/stat"), let cpu = cpuNanoseconds(statLine: stat) else { return nil }
        let resident = readProcFile("/proc/\(pid)/status").flatMap { statusKilobytes($0, field: "VmRSS:") } ?? 0
        return (cpu, resident * 1024)
    }

    /// utime + stime from a /proc/PID/stat line: fields 14 and 15, counted after the command
    /// name's closing parenthesis (the name may hold spaces and parentheses).
    static func cpuNanoseconds(statLine: String) -> Int64? {
        guard let close = statLine.utf8.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = statLine[statLine.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); utime is field 14, stime field 15.
        guard fields.count > 12, let user = Int64(fields[11]), let system = Int64(fields[12]) else { return nil }
        let ticks = Int64(max(1, sysconf(Int32(_SC_CLK_TCK))))
        return (user + system) * 1_000_000_000 / ticks
    }

    /// A `kB` field of /proc/PID/status (`VmRSS:`, `VmHWM:`).
    static func statusKilobytes(_ status: String, field: String) -> Int? {
        for line in status.split(separator: "\n") where line.hasPrefix(field) {
            return Int(line.dropFirst(field.count).filter { $0.isNumber })
        }
        return nil
    }
}

/// The text of a small /proc file (read whole, up to 64 KiB).
func readProcFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 65536)
    var length = 0
    while length < buffer.count {
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + length, $0.count - length) }
        if count < 0 && errno == EINTR { continue }
        if count <= 0 { break }
        length += count
    }
    guard length > 0 else { return nil }
    return String(decoding: buffer[..<length], as: UTF8.self)
}
