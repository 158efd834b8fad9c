/// Maps a Myriad topic name (any bytes) to exactly one NATS subject, and back.
///
/// The subject is `prefix + token`, where the token is the topic with every byte that could
/// change the subject's meaning escaped as `%XX` (two upper-case hex digits): `.` (which would
/// split it into more tokens), `*` and `>` (wildcards), `%` (the escape itself), and every byte
/// outside printable ASCII 0x21...0x7E (whitespace ends a subject on the wire; control bytes
/// and UTF-8 are not tokens this client sends). Other printable bytes stay as they are, so
/// `room:42` is `myriad.room:42` in the server's monitoring pages. The empty topic, which
/// would otherwise be an empty token, is the token `%` alone, which no other topic produces.
///
/// The encoding is canonical: `topic(fromSubject:)` accepts only what `subject(forTopic:)`
/// produces (no lower-case hex, no escaped byte that needed none), so a topic has exactly one
/// subject and a subject at most one topic; two nodes can never disagree on a topic's subject.
public struct ClusterSubject: Sendable, Hashable {
    public static let defaultPrefix = "myriad."

    /// Literal tokens, each followed by `.` (e.g. `myriad.` or `acme.chat.`).
    public let prefix: String
    private let prefixBytes: [UInt8]

    public enum PrefixError: Error, Equatable, CustomStringConvertible {
        case empty
        case mustEndWithDot(String)
        case notLiteralSubject(String)
        case tooLong(String, limitBytes: Int)

        public var description: String {
            switch self {
            case .empty: "the cluster subject prefix is empty (the default is \"\(ClusterSubject.defaultPrefix)\")"
            case .mustEndWithDot(let p): "the cluster subject prefix \"\(p)\" must end with \".\""
            case .notLiteralSubject(let p):
                "the cluster subject prefix \"\(p)\" must be literal NATS tokens (printable ASCII, no whitespace, no * or > token, no empty token)"
            case .tooLong(let p, let limit): "the cluster subject prefix \"\(p)\" is longer than \(limit) bytes"
            }
        }
    }

    /// The longest prefix accepted: leaves at least 1000 bytes of the subject for the topic.
    public static let maxPrefixBytes = NATSSubject.maxBytes - 1000

    public init(prefix: String = ClusterSubject.defaultPrefix) throws(PrefixError) {
        let bytes = Array(prefix.utf8)
        guard !bytes.isEmpty else { throw .empty }
        guard bytes.last == UInt8(ascii: ".") else { throw .mustEndWithDot(prefix) }
        guard bytes.count <= Self.maxPrefixBytes else { throw .tooLong(prefix, limitBytes: Self.maxPrefixBytes) }
        guard NATSSubject.isValidLiteral(bytes.dropLast()) else { throw .notLiteralSubject(prefix) }
        self.prefix = prefix
        self.prefixBytes = bytes
    }

    /// The longest encoded token: what the subject limit leaves after the prefix.
    public var maxTokenBytes: Int { NATSSubject.maxBytes - prefixBytes.count }

    /// Every topic up to this many bytes has a subject, whatever its bytes (each may need 3).
    public var maxTopicBytesAlwaysMapped: Int { maxTokenBytes / 3 }

    /// The subject for `topic`, or nil when its encoding would exceed `NATSSubject.maxBytes`
    /// (only possible beyond `maxTopicBytesAlwaysMapped` bytes).
    public func subject(forTopic topic: some Collection<UInt8>) -> String? {
        var out = prefixBytes
        if topic.isEmpty {
            out.append(Self.escape)
        } else {
            out.reserveCapacity(prefixBytes.count + topic.count)
            for byte in topic {
                if Self.needsEscape(byte) {
                    out.append(Self.escape)
                    out.append(Self.hexDigits[Int(byte >> 4)])
                    out.append(Self.hexDigits[Int(byte & 0x0F)])
                } else {
                    out.append(byte)
                }
                if out.count > NATSSubject.maxBytes { return nil }
            }
        }
        assert(NATSSubject.isValidLiteral(out), "an encoded topic must be a literal subject")
        return String(decoding: out, as: UTF8.self)
    }

    public func subject(forTopic topic: String) -> String? { subject(forTopic: topic.utf8) }

    /// The topic whose subject this is, or nil when `subject` is not under this prefix, is
    /// more than one token after it, or is not exactly what `subject(forTopic:)` produces.
    public func topic(fromSubject subject: some Collection<UInt8>) -> [UInt8]? {
        guard subject.count > prefixBytes.count, subject.count <= NATSSubject.maxBytes,
            subject.starts(with: prefixBytes)
        else { return nil }
        let token = subject.dropFirst(prefixBytes.count)
        if token.count == 1 && token.first == Self.escape { return [] }
        var topic: [UInt8] = []
        topic.reserveCapacity(token.count)
        var index = token.startIndex
        while index != token.endIndex {
            let byte = token[index]
            token.formIndex(after: &index)
            if byte == Self.escape {
                guard index != token.endIndex, let high = Self.hexValue(token[index]) else { return nil }
                token.formIndex(after: &index)
                guard index != token.endIndex, let low = Self.hexValue(token[index]) else { return nil }
                token.formIndex(after: &index)
                let decoded = high << 4 | low
                guard Self.needsEscape(decoded) else { return nil }  // not canonical
                topic.append(decoded)
            } else {
                guard !Self.needsEscape(byte) else { return nil }  // `.`, wildcard, space, ...
                topic.append(byte)
            }
        }
        return topic
    }

    public func topic(fromSubject subject: String) -> [UInt8]? { topic(fromSubject: subject.utf8) }

    // MARK: - The escape

    private static let escape = UInt8(ascii: "%")
    private static let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    /// Bytes that cannot stand for themselves inside one literal token.
    @inline(__always)
    static func needsEscape(_ byte: UInt8) -> Bool {
        byte < 0x21 || byte > 0x7E || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "*")
            || byte == UInt8(ascii: ">") || byte == escape
    }

    /// Upper-case hex only: lower case would give a second spelling of the same topic.
    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
