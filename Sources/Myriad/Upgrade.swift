import Glibc
import WebSocketCodec

/// The upgrade request as the handler's `upgrade` hook sees it, before the 101: views into
/// the request's bytes (valid during the call only), with `String` conveniences that copy.
public struct UpgradeRequestHead {
    let request: UpgradeRequest
    /// The client's address, when the backend knows it (epoll always; io_uring on kernels
    /// with socket getsockopt commands, 6.7+).
    public let peerAddress: PeerAddress?

    /// Always `GET`: RFC 6455 upgrades are GET requests (anything else was refused with 400).
    public var method: String { "GET" }

    /// The request target as sent: path and query, e.g. `/chat?room=1`.
    public var targetBytes: UnsafeRawBufferPointer { request.target }
    public var target: String { String(decoding: request.target, as: UTF8.self) }

    /// The target before `?`.
    public var pathBytes: UnsafeRawBufferPointer {
        guard let mark = request.target.firstIndex(of: UInt8(ascii: "?")) else { return request.target }
        return UnsafeRawBufferPointer(rebasing: request.target[..<mark])
    }
    public var path: String { String(decoding: pathBytes, as: UTF8.self) }

    /// The target after `?` (nil without one).
    public var queryBytes: UnsafeRawBufferPointer? {
        guard let mark = request.target.firstIndex(of: UInt8(ascii: "?")) else { return nil }
        return UnsafeRawBufferPointer(rebasing: request.target[(mark + 1)...])
    }
    public var query: String? { queryBytes.map { String(decoding: $0, as: UTF8.self) } }

    /// The first value of query parameter `name`, percent-decoded (`+` is a space, as in
    /// HTML forms); nil when absent.
    public func queryParameter(_ name: String) -> String? {
        guard let query = queryBytes else { return nil }
        for pair in query.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let key = pair.prefix { $0 != UInt8(ascii: "=") }
            guard UpgradeRequestHead.percentDecoded(key) == name else { continue }
            let value = pair.count > key.count ? pair[(pair.startIndex + key.count + 1)...] : pair[pair.endIndex...]
            return UpgradeRequestHead.percentDecoded(value)
        }
        return nil
    }

    /// The first value of header `name` (case-insensitive), trimmed.
    public func header(_ name: String) -> String? {
        for field in request.fields where Self.equalsIgnoringCase(field.name, name) {
            return String(decoding: field.value, as: UTF8.self)
        }
        return nil
    }

    /// Every value of header `name` (case-insensitive), in order: repeated lines included.
    public func headers(_ name: String) -> [String] {
        request.fields.filter { Self.equalsIgnoringCase($0.name, name) }.map { String(decoding: $0.value, as: UTF8.self) }
    }

    /// Every header line as (name, value) views, in order.
    public var headerFields: HeaderFields { request.fields }

    /// The value of cookie `name` from the `Cookie` header(s), or nil.
    public func cookie(_ name: String) -> String? {
        for value in headers("cookie") {
            for pair in value.split(separator: ";") {
                let trimmed = pair.drop { $0 == " " }
                guard let equals = trimmed.firstIndex(of: "=") else { continue }
                if trimmed[..<equals] == name { return String(trimmed[trimmed.index(after: equals)...]) }
            }
        }
        return nil
    }

    /// The `Origin` header: what a browser says the page that opened the socket came from.
    /// Check it against an allow-list to stop cross-site WebSocket hijacking.
    public var origin: String? { header("origin") }

    /// The subprotocols the client offers, in its order of preference.
    public var offeredSubprotocols: [String] {
        request.offeredSubprotocols.map { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether the client offers subprotocol `name` (compared exactly, as RFC 6455 asks).
    public func offersSubprotocol(_ name: String) -> Bool {
        request.offeredSubprotocols.contains { $0.elementsEqual(name.utf8) }
    }

    /// ASCII case-insensitive equality of a header name with `name`.
    static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ name: String) -> Bool {
        guard bytes.count == name.utf8.count else { return false }
        func lower(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte }
        for (byte, other) in zip(bytes, name.utf8) where lower(byte) != lower(other) { return false }
        return true
    }

    static func percentDecoded<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        func hex(_ byte: UInt8) -> UInt8? {
            switch byte {
            case 0x30...0x39: return byte - 0x30
            case 0x41...0x46: return byte - 0x41 + 10
            case 0x61...0x66: return byte - 0x61 + 10
            default: return nil
            }
        }
        while index != bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "+") {
                out.append(0x20)
            } else if byte == UInt8(ascii: "%"), let first = bytes.index(index, offsetBy: 1, limitedBy: bytes.endIndex),
                      first != bytes.endIndex, let second = bytes.index(first, offsetBy: 1, limitedBy: bytes.endIndex),
                      second != bytes.endIndex, let high = hex(bytes[first]), let low = hex(bytes[second]) {
                out.append(high << 4 | low)
                index = second
            } else {
                out.append(byte)
            }
            index = bytes.index(after: index)
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// An IPv4 peer: address and port.
public struct PeerAddress: Sendable, Hashable, CustomStringConvertible {
    /// The address in host byte order (127.0.0.1 is 0x7F000001).
    public var ipv4: UInt32
    public var port: UInt16

    public init(ipv4: UInt32, port: UInt16) {
        self.ipv4 = ipv4
        self.port = port
    }

    init?(_ address: sockaddr_in) {
        guard address.sin_family == sa_family_t(AF_INET) else { return nil }
        ipv4 = UInt32(bigEndian: address.sin_addr.s_addr)
        port = UInt16(bigEndian: address.sin_port)
    }

    /// `a.b.c.d`
    public var host: String { "\(ipv4 >> 24).\(ipv4 >> 16 & 0xFF).\(ipv4 >> 8 & 0xFF).\(ipv4 & 0xFF)" }
    public var description: String { "\(host):\(port)" }
}

/// Names a connection whose upgrade is being decided: give it to whatever decides
/// (`EngineHandle.completeUpgrade`). It is the connection's ID once accepted.
public struct UpgradeTicket: Hashable, Sendable, CustomStringConvertible {
    public let connection: ConnectionID
    public var description: String { "upgrade \(connection)" }
}

/// The HTTP statuses an upgrade may be refused with.
public enum UpgradeRefusal: UInt16, Sendable, CaseIterable {
    case badRequest = 400
    case unauthorized = 401
    case forbidden = 403
    case notFound = 404
    case tooManyRequests = 429
    case serviceUnavailable = 503

    var reasonPhrase: String {
        switch self {
        case .badRequest: return "Bad Request"
        case .unauthorized: return "Unauthorized"
        case .forbidden: return "Forbidden"
        case .notFound: return "Not Found"
        case .tooManyRequests: return "Too Many Requests"
        case .serviceUnavailable: return "Service Unavailable"
        }
    }
}

/// The handler's answer to an upgrade request.
public struct UpgradeDecision<State> {
    enum Verdict {
        case accept(State, subprotocol: String?, headers: [(name: String, value: String)])
        case refuse(UpgradeRefusal, body: String)
        case pending
    }
    let verdict: Verdict

    /// Accept: send the 101 (naming `subprotocol`, which should be one the client offered,
    /// and `headers`, extra response lines), then open the connection with `state`.
    /// Header names must be tokens and values must not contain CR or LF; lines that break
    /// that rule are left out (counted as `bad_upgrade_headers`).
    public static func accept(_ state: State, subprotocol: String? = nil, headers: [(name: String, value: String)] = []) -> Self {
        Self(verdict: .accept(state, subprotocol: subprotocol, headers: headers))
    }

    /// Refuse with `status` and a short plain-text `body` (at most 1 KiB is sent), then close.
    public static func refuse(_ status: UpgradeRefusal, body: String = "") -> Self {
        Self(verdict: .refuse(status, body: body))
    }

    /// Decide later, from any thread: `EngineHandle.completeUpgrade(ticket, decision)`.
    public static var pending: Self { Self(verdict: .pending) }
}

extension UpgradeDecision where State == Void {
    public static func accept(subprotocol: String? = nil, headers: [(name: String, value: String)] = []) -> Self {
        Self(verdict: .accept((), subprotocol: subprotocol, headers: headers))
    }
}

extension UpgradeDecision: @unchecked Sendable where State: Sendable {}

/// A decision travelling to its worker through the mailbox; the worker casts it back to its
/// handler's `UpgradeDecision<ConnectionState>`.
final class AnyUpgradeDecision: @unchecked Sendable {
    let value: Any
    init(_ value: Any) { self.value = value }
}
