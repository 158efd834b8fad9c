/// Where the server is, how to authenticate, and every limit of the client, with units in
/// the names. Built from a `nats://` URL; explicit fields set afterwards win over the URL's.
public struct NATSClientConfiguration: Sendable, Equatable {
    public var host: String
    public var port: UInt16
    /// User and password (CONNECT's `user`/`pass`), or a token (`auth_token`), or neither.
    public var user: String?
    public var password: String?
    public var token: String?
    /// CONNECT's `name`: shows in the server's /connz, so a node can be told apart.
    public var name: String = "myriad"

    /// How often the client sends its own PING when connected.
    public var pingIntervalMs: Int = 20_000
    /// PINGs without a PONG after which the connection counts as dead.
    public var maxPingsOutstanding: Int = 2
    /// Reconnect delays: the first, doubling to the most, each jittered to [d/2, d].
    public var reconnectInitialDelayMs: Int = 100
    public var reconnectMaxDelayMs: Int = 5_000
    /// TCP connect, INFO, and the CONNECT + PING -> PONG round trip, together.
    public var connectTimeoutMs: Int = 2_000
    /// Bytes of PUB frames held for the server, connected or not (the disconnected buffer).
    /// A publish that does not fit is dropped and counted.
    public var outboundBufferLimitBytes: Int = 8 << 20
    /// The largest payload this client sends or holds: publishes above the smaller of this
    /// and the server's `max_payload` are refused; received messages above it (but within
    /// the server's limit) are read through and counted, not delivered.
    public var maxPayloadBytes: Int = 1 << 20
    /// The longest server control line accepted (INFO is the longest), CRLF excluded.
    public var maxServerLineBytes: Int = 16 << 10
    /// One read from the socket, at most.
    public var readBufferBytes: Int = 64 << 10
    /// How long `stop()` waits for pending publishes to reach the socket.
    public var stopFlushTimeoutMs: Int = 1_000

    public static let defaultPort: UInt16 = 4222

    public init(host: String, port: UInt16 = NATSClientConfiguration.defaultPort) {
        self.host = host
        self.port = port
    }

    /// `nats://[user:password@ | token@]host[:port][/]`; user, password and token may be
    /// percent-encoded. `host` may be a name, an IPv4 address or `[IPv6]`.
    public init(url: String) throws(ConfigurationError) {
        let bytes = Array(url.utf8)
        let scheme = Array("nats://".utf8)
        guard bytes.count >= scheme.count,
            zip(bytes.prefix(scheme.count), scheme).allSatisfy({ Self.lowercased($0) == $1 })
        else {
            throw .invalidURL(url, reason: "it must start with nats:// (TLS is not supported)")
        }
        var rest = bytes[scheme.count...]
        if let end = rest.firstIndex(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) {
            guard rest[end...].elementsEqual("/".utf8) else {
                throw .invalidURL(url, reason: "a path, query or fragment has no meaning here")
            }
            rest = rest[..<end]
        }
        var user: String?
        var password: String?
        var token: String?
        if let at = rest.lastIndex(of: UInt8(ascii: "@")) {
            let userinfo = rest[..<at]
            rest = rest[(at + 1)...]
            if let colon = userinfo.firstIndex(of: UInt8(ascii: ":")) {
                guard let decodedUser = Self.percentDecoded(userinfo[..<colon]), !decodedUser.isEmpty,
                    let decodedPassword = Self.percentDecoded(userinfo[(colon + 1)...])
                else { throw .invalidURL(url, reason: "invalid user or password") }
                user = decodedUser
                password = decodedPassword
            } else {
                guard let decoded = Self.percentDecoded(userinfo), !decoded.isEmpty else {
                    throw .invalidURL(url, reason: "invalid token")
                }
                token = decoded
            }
        }
        var host: Substring
        var portText: ArraySlice<UInt8>?
        if rest.first == UInt8(ascii: "[") {
            guard let close = rest.firstIndex(of: UInt8(ascii: "]")) else { throw .invalidURL(url, reason: "unclosed [") }
            host = Substring(String(decoding: rest[(rest.startIndex + 1)..<close], as: UTF8.self))
            let after = rest[(close + 1)...]
            if !after.isEmpty {
                guard after.first == UInt8(ascii: ":") else { throw .invalidURL(url, reason: "junk after ]") }
                portText = after.dropFirst()
            }
        } else if let colon = rest.firstIndex(of: UInt8(ascii: ":")) {
            host = Substring(String(decoding: rest[..<colon], as: UTF8.self))
            portText = rest[(colon + 1)...]
        } else {
            host = Substring(String(decoding: rest, as: UTF8.self))
        }
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "@" }) else {
            throw .invalidURL(url, reason: "no host")
        }
        var port = Self.defaultPort
        if let portText {
            guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let value = Int(String(decoding: portText, as: UTF8.self)), value >= 1, value <= 65535
            else { throw .invalidURL(url, reason: "invalid port") }
            port = UInt16(value)
        }
        self.init(host: String(host), port: port)
        self.user = user
        self.password = password
        self.token = token
    }

    public enum ConfigurationError: Error, Equatable, CustomStringConvertible {
        case invalidURL(String, reason: String)
        case invalid(String)

        public var description: String {
            switch self {
            // The URL may hold a password: say where it failed, never echo it.
            case .invalidURL(_, let reason): "invalid NATS URL: \(reason)"
            case .invalid(let reason): "invalid NATS client configuration: \(reason)"
            }
        }
    }

    /// Checks every limit against the others and the protocol.
    public func validate() throws(ConfigurationError) {
        if host.isEmpty { throw .invalid("host is empty") }
        if port == 0 { throw .invalid("port is 0") }
        if token != nil && (user != nil || password != nil) {
            throw .invalid("give a token or a user and password, not both")
        }
        if (user == nil) != (password == nil) { throw .invalid("a user needs a password and a password a user") }
        if pingIntervalMs < 10 { throw .invalid("pingIntervalMs must be at least 10") }
        if maxPingsOutstanding < 1 { throw .invalid("maxPingsOutstanding must be at least 1") }
        if reconnectInitialDelayMs < 1 || reconnectMaxDelayMs < reconnectInitialDelayMs {
            throw .invalid("need 1 <= reconnectInitialDelayMs <= reconnectMaxDelayMs")
        }
        if connectTimeoutMs < 10 { throw .invalid("connectTimeoutMs must be at least 10") }
        if maxPayloadBytes < 0 || maxPayloadBytes > Int(Int32.max) { throw .invalid("maxPayloadBytes out of range") }
        if outboundBufferLimitBytes < maxPayloadBytes + NATSSubject.maxBytes + 32 {
            throw .invalid("outboundBufferLimitBytes must hold at least one largest publish (maxPayloadBytes + a subject)")
        }
        if maxServerLineBytes < NATSSubject.maxBytes + 64 {
            throw .invalid("maxServerLineBytes must hold a MSG line with the longest subject (\(NATSSubject.maxBytes + 64))")
        }
        if readBufferBytes < 512 { throw .invalid("readBufferBytes must be at least 512") }
        if stopFlushTimeoutMs < 0 { throw .invalid("stopFlushTimeoutMs must not be negative") }
    }

    /// `nats://host:port` without credentials, for logs.
    public var redactedURL: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "nats://\(shownHost):\(port)"
    }

    private static func lowercased(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 0x20 : byte
    }

    /// `%XX` decoded; the result must be UTF-8.
    private static func percentDecoded(_ bytes: ArraySlice<UInt8>) -> String? {
        var out: [UInt8] = []
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.endIndex, let high = hex(bytes[index + 1]), let low = hex(bytes[index + 2])
                else { return nil }
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(byte)
                index += 1
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
