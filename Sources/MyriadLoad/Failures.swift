import Glibc
import Myriad

/// Where in a connection's life a failure happened.
public enum FailureKind: String, CaseIterable, Sendable, Comparable {
    /// Before the TCP connection was up: socket(), bind() (e.g. `EADDRNOTAVAIL`: the source
    /// address ran out of ports), installing the fixed file, connect() (`ECONNREFUSED`, or
    /// `ETIMEDOUT` when the connect timeout passed).
    case connect
    /// Between connect and a valid 101: socket errors, `EOF`, `ETIMEDOUT` (handshake timeout),
    /// and a bad response (`HTTP_503`, `BAD_ACCEPT`, `MALFORMED_RESPONSE`, ...).
    case handshake
    /// An open connection's socket failed (receive or send: `ECONNRESET`, `EPIPE`, ...) or the
    /// server broke the protocol (`PROTOCOL_1002`, ...). Each is also an unexpected close.
    case read
    /// An open connection ended by the server while we still held it: its close frame
    /// (`CLOSE_1001`, ...) or TCP closed without one (`EOF`).
    case unexpectedClose = "unexpected_close"
    /// Our own close handshake went wrong: the server never answered our close frame
    /// (`ETIMEDOUT`), closed TCP without answering it (`EOF`), or the socket failed meanwhile.
    case close

    public static func < (lhs: FailureKind, rhs: FailureKind) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// Failures counted by kind and by reason (an errno name such as `ECONNREFUSED`, or a
/// protocol reason such as `HTTP_503`).
public struct FailureCounts: Sendable, Equatable {
    public private(set) var counts: [FailureKind: [String: Int]] = [:]

    public init() {}

    public mutating func record(_ kind: FailureKind, reason: String, count: Int = 1) {
        counts[kind, default: [:]][reason, default: 0] += count
    }

    /// Records a failed system call or io_uring operation by its (positive) errno.
    public mutating func record(_ kind: FailureKind, errno: Int32, count: Int = 1) {
        record(kind, reason: errnoName(errno), count: count)
    }

    public func count(_ kind: FailureKind, _ reason: String) -> Int { counts[kind]?[reason] ?? 0 }

    public func total(_ kind: FailureKind) -> Int { counts[kind]?.values.reduce(0, +) ?? 0 }

    public var total: Int { FailureKind.allCases.reduce(0) { $0 + total($1) } }

    public mutating func merge(_ other: FailureCounts) {
        for (kind, reasons) in other.counts {
            for (reason, count) in reasons { record(kind, reason: reason, count: count) }
        }
    }

    public static func + (lhs: FailureCounts, rhs: FailureCounts) -> FailureCounts {
        var result = lhs
        result.merge(rhs)
        return result
    }
}

/// The symbolic name of an errno value (`ECONNRESET`); `errno_N` for one without a name here.
public func errnoName(_ value: Int32) -> String {
    switch value {
    case EPROTO: return "EPROTO"
    case ENETDOWN: return "ENETDOWN"
    case EHOSTDOWN: return "EHOSTDOWN"
    case ESHUTDOWN: return "ESHUTDOWN"
    case EMSGSIZE: return "EMSGSIZE"
    case ENOPROTOOPT: return "ENOPROTOOPT"
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT"
    case EAFNOSUPPORT: return "EAFNOSUPPORT"
    case EISCONN: return "EISCONN"
    case ENXIO: return "ENXIO"
    case EIO: return "EIO"
    default:
        let name = SystemError.name(of: value)
        return name.hasPrefix("errno ") ? "errno_\(value)" : name
    }
}
