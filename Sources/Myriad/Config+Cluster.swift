/// The MYRIAD_CLUSTER_* knobs: topics shared between nodes through a NATS server (issue 17).
///
/// The engine itself does not speak NATS (`MyriadClusterBridge` does), so these are checked
/// here for their shape, every rule that needs no NATS parser: the scheme, the host and port,
/// the subject prefix's tokens, which credentials go together, the buffer against the largest
/// message. The bridge parses the URL strictly again at start-up (percent-encoding included)
/// and reports a failure the same way, as a `ConfigError` naming the variable. A password or
/// token is never echoed in an error.
public struct ClusterSettings: Sendable, Equatable {
    /// `nats://[user:password@ | token@]host[:port]`; nil: clustering is off.
    public var url: String? = nil
    /// Literal NATS tokens, each followed by `.`: topics become `prefix + escaped topic`.
    public var subjectPrefix = ClusterSettings.defaultSubjectPrefix
    /// Credentials outside the URL (they replace any in the URL): a token, or a user and password.
    public var token: String? = nil
    public var user: String? = nil
    public var password: String? = nil
    /// Bytes of publishes held for the NATS server, connected or not.
    public var bufferBytes = 8 << 20

    public static let defaultSubjectPrefix = "myriad."
    /// The longest prefix: NATS subjects here are at most 4,000 bytes, and 1,000 stay for the topic.
    public static let maxSubjectPrefixBytes = 3000
    /// What a buffer needs beyond the largest message: the one-byte kind header, the longest
    /// subject (4,000 bytes) and the PUB line around them.
    public static let bufferOverheadBytes = 4096

    public init() {}

    public var isEnabled: Bool { url != nil }

    /// `url` with any credentials replaced by `***` (for logs and errors).
    public static func redacted(_ url: String) -> String {
        let schemeLength = "nats://".count
        guard url.count > schemeLength, let at = url.lastIndex(of: "@") else { return url }
        return String(url.prefix(schemeLength)) + "***" + String(url[url.index(after: at)...])
    }
}

extension Config {
    static let clusterKnobs: [Knob] = [
        Knob(variable: "MYRIAD_CLUSTER_URL", flag: "cluster-url", defaultValue: "(off)",
             range: "nats://[user:password@ | token@]host[:port] (port 4222 by default), or empty (off)",
             help: "Turns clustering on: topics are shared with every node connected to this NATS server (one broker subscription per topic per node). Credentials may be in the URL (percent-encoded) or in MYRIAD_CLUSTER_TOKEN / MYRIAD_CLUSTER_USER and MYRIAD_CLUSTER_PASSWORD.") { config, value throws(ConfigError) in
            if value.isEmpty {
                config.cluster.url = nil
                return
            }
            if let reason = ClusterSettings.urlShapeProblem(value) {
                throw ConfigError(variable: "MYRIAD_CLUSTER_URL", value: ClusterSettings.redacted(value), expected: reason)
            }
            config.cluster.url = value
        },
        Knob(variable: "MYRIAD_CLUSTER_PREFIX", flag: "cluster-prefix", defaultValue: ClusterSettings.defaultSubjectPrefix,
             range: "literal NATS tokens (printable ASCII, no * or > token) ending with '.', at most 3000 bytes",
             help: "Subject prefix of the cluster's topics on the NATS server: a topic is prefix + the topic with '.', '*', '>', '%', whitespace and non-ASCII bytes escaped as %XX. Nodes that share topics use the same prefix.") { config, value throws(ConfigError) in
            guard ClusterSettings.isValidSubjectPrefix(value) else {
                throw ConfigError(variable: "MYRIAD_CLUSTER_PREFIX", value: value,
                                  expected: "literal NATS tokens ending with '.', e.g. myriad. or acme.chat. (printable ASCII, no empty, * or > token, at most \(ClusterSettings.maxSubjectPrefixBytes) bytes)")
            }
            config.cluster.subjectPrefix = value
        },
        Knob(variable: "MYRIAD_CLUSTER_TOKEN", flag: "cluster-token", defaultValue: "(none)",
             range: "a token (not with a user and password)",
             help: "NATS token authentication (CONNECT auth_token), instead of one in the URL. Prefer the variable to the flag: flags show in ps.") { config, value throws(ConfigError) in
            guard !value.isEmpty else { throw ConfigError(variable: "MYRIAD_CLUSTER_TOKEN", value: "", expected: "a non-empty token") }
            config.cluster.token = value
        },
        Knob(variable: "MYRIAD_CLUSTER_USER", flag: "cluster-user", defaultValue: "(none)",
             range: "a user name (with MYRIAD_CLUSTER_PASSWORD)",
             help: "NATS user for user-and-password authentication, instead of one in the URL.") { config, value throws(ConfigError) in
            guard !value.isEmpty else { throw ConfigError(variable: "MYRIAD_CLUSTER_USER", value: "", expected: "a non-empty user name") }
            config.cluster.user = value
        },
        Knob(variable: "MYRIAD_CLUSTER_PASSWORD", flag: "cluster-password", defaultValue: "(none)",
             range: "a password (with MYRIAD_CLUSTER_USER)",
             help: "NATS password for MYRIAD_CLUSTER_USER. Prefer the variable to the flag: flags show in ps.") { config, value throws(ConfigError) in
            config.cluster.password = value
        },
        Knob(variable: "MYRIAD_CLUSTER_BUFFER", flag: "cluster-buffer", defaultValue: "8 MiB",
             range: "64 KiB-1 GiB, >= max message size + 4 KiB",
             help: "Bytes of publishes held for the NATS server, connected or not: while the broker is away, publishes to other nodes wait here, and what does not fit is dropped and counted (cluster_dropped_disconnected).") { config, value throws(ConfigError) in
            config.cluster.bufferBytes = try size("MYRIAD_CLUSTER_BUFFER", value, (64 << 10)...(1 << 30))
        },
    ]

    /// Rules between the cluster knobs, and against the largest message.
    func validateCluster() throws(ConfigError) {
        let cluster = self.cluster
        let credentials: [(String, String?)] = [
            ("MYRIAD_CLUSTER_TOKEN", cluster.token), ("MYRIAD_CLUSTER_USER", cluster.user),
            ("MYRIAD_CLUSTER_PASSWORD", cluster.password),
        ]
        guard cluster.url != nil else {
            if let (variable, _) = credentials.first(where: { $0.1 != nil }) {
                throw ConfigError(variable: variable, value: "***",
                                  expected: "MYRIAD_CLUSTER_URL set too: clustering is off without it")
            }
            return
        }
        if cluster.token != nil && (cluster.user != nil || cluster.password != nil) {
            throw ConfigError(variable: "MYRIAD_CLUSTER_TOKEN", value: "***",
                              expected: "a token or a user and password (MYRIAD_CLUSTER_USER, MYRIAD_CLUSTER_PASSWORD), not both")
        }
        if cluster.user != nil && cluster.password == nil {
            throw ConfigError(variable: "MYRIAD_CLUSTER_PASSWORD", value: "", expected: "a password: MYRIAD_CLUSTER_USER is set")
        }
        if cluster.password != nil && cluster.user == nil {
            throw ConfigError(variable: "MYRIAD_CLUSTER_USER", value: "", expected: "a user: MYRIAD_CLUSTER_PASSWORD is set")
        }
        let needed = maxMessageSizeBytes + ClusterSettings.bufferOverheadBytes
        if cluster.bufferBytes < needed {
            throw ConfigError(variable: "MYRIAD_CLUSTER_BUFFER", value: formatBytes(cluster.bufferBytes),
                              expected: "at least MYRIAD_MAX_MESSAGE_SIZE + 4 KiB (\(needed) B): one largest message with its subject must fit")
        }
    }
}

extension ClusterSettings {
    /// Why `url` cannot be a NATS URL, judged by its shape (nil: it may be one).
    static func urlShapeProblem(_ url: String) -> String? {
        let expected = "nats://[user:password@ | token@]host[:port]"
        guard url.lowercased().hasPrefix("nats://") else {
            return "a URL starting with nats:// (TLS is not supported): \(expected)"
        }
        guard url.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7F }) else {
            return "\(expected), without spaces or control characters"
        }
        var rest = Substring(url.dropFirst("nats://".count))
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        if rest.contains(where: { $0 == "/" || $0 == "?" || $0 == "#" }) {
            return "\(expected): a path, query or fragment has no meaning here"
        }
        if let at = rest.lastIndex(of: "@") {
            if rest[..<at].isEmpty { return "\(expected): empty credentials before @" }
            rest = rest[rest.index(after: at)...]
        }
        var host = rest
        var port: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return "\(expected): an unclosed [ in the host" }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.first == ":" else { return "\(expected): junk after ]" }
                port = after.dropFirst()
            }
        } else if let colon = rest.firstIndex(of: ":") {
            host = rest[..<colon]
            port = rest[rest.index(after: colon)...]
        }
        if host.isEmpty { return "\(expected): no host" }
        if let port {
            guard port.count <= 5, let number = Int(port), (1...65535).contains(number) else {
                return "\(expected): the port must be 1-65535"
            }
        }
        return nil
    }

    /// The rules `MyriadCluster.ClusterSubject` enforces on a prefix.
    static func isValidSubjectPrefix(_ prefix: String) -> Bool {
        let bytes = Array(prefix.utf8)
        guard bytes.count >= 2, bytes.count <= maxSubjectPrefixBytes, bytes.last == UInt8(ascii: ".") else { return false }
        for token in bytes.dropLast().split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            guard !token.isEmpty, token.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) else { return false }
            if token.count == 1 && (token.first == UInt8(ascii: "*") || token.first == UInt8(ascii: ">")) { return false }
        }
        return true
    }
}
