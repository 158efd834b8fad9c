/// What a complete request head turned out to be.
public enum HandshakeStep {
    /// The head is not complete yet: keep the bytes and call `parse` again with more.
    case needMore
    /// A valid WebSocket upgrade request. Answer with `HandshakeResponse.writeSwitchingProtocols`.
    /// Bytes after `headLength` already belong to the WebSocket stream.
    case upgrade(UpgradeRequest, headLength: Int)
    /// A well-formed HTTP request that does not ask for an upgrade (`GET /healthz`, say).
    case plainRequest(PlainRequest, headLength: Int)
    /// Answer with `rejection.response` and close.
    case reject(HandshakeRejection)
}

/// Why a handshake is refused; each maps to one HTTP response.
public enum HandshakeRejection: Sendable, Equatable {
    /// 400: malformed request line or field, or an upgrade request missing what RFC 6455
    /// section 4.2.1 requires (GET, HTTP/1.1+, Host, Upgrade, Connection, a 16-byte key).
    case badRequest
    /// 426 with `Sec-WebSocket-Version: 13`: a WebSocket version other than 13.
    case unsupportedVersion
    /// 431: the head did not end within the configured limit.
    case headerTooLarge

    /// The complete HTTP response to send before closing.
    public var response: StaticString {
        switch self {
        case .badRequest: return HandshakeResponse.badRequest
        case .unsupportedVersion: return HandshakeResponse.upgradeRequired
        case .headerTooLarge: return HandshakeResponse.headerFieldsTooLarge
        }
    }
}

/// A valid upgrade request, as views into the request head (valid while those bytes are).
public struct UpgradeRequest {
    /// The request target as sent, e.g. `/chat?room=1`.
    public var target: UnsafeRawBufferPointer
    /// The `Sec-WebSocket-Key` value (24 base64 characters, validated to decode to 16 bytes).
    public var key: UnsafeRawBufferPointer
    /// Every header field of the request.
    public var fields: HeaderFields
    /// The subprotocols the client offers, in its order of preference.
    public var offeredSubprotocols: TokenList {
        TokenList(fields: fields, lowercaseName: "sec-websocket-protocol")
    }
    /// The extensions the client offers (`Sec-WebSocket-Extensions`, every such field), in its
    /// order of preference; `PerMessageDeflateNegotiator.negotiate` picks from them.
    public var offeredExtensions: ExtensionList { ExtensionList(fields: fields) }
}

/// A well-formed request without an upgrade.
public struct PlainRequest {
    public var method: UnsafeRawBufferPointer
    public var target: UnsafeRawBufferPointer
    public var fields: HeaderFields

    /// `GET /healthz` (a query string is allowed): the engine answers it with 200.
    public var isHealthCheck: Bool {
        guard HTTPHead.equals(method, "GET") else { return false }
        let prefix = UnsafeRawBufferPointer(rebasing: target[..<min(target.count, 8)])
        guard HTTPHead.equals(prefix, "/healthz") else { return false }
        return target.count == 8 || target[8] == 0x3F  // "?"
    }

    public var isGet: Bool { HTTPHead.equals(method, "GET") }
}

/// Incremental parser for the HTTP/1.1 request that opens a WebSocket (RFC 6455 section 4.2.1).
///
/// The request head may arrive in any number of pieces. The caller keeps the bytes received
/// so far contiguous and calls `parse` with all of them after each piece; the parser keeps
/// only how far it has already searched for the blank line, so the total work is linear in
/// the head's size. Once the head is complete it is validated in one pass and described by
/// views into the caller's bytes. Nothing is allocated.
public struct HandshakeParser: Sendable {
    /// Default limit on the request head, request line and blank line included.
    public static let defaultMaxHeadBytes = 8192

    /// Bytes already searched for the end of the head.
    @usableFromInline var searched: Int = 0

    public init() {}

    /// Looks for the end of the head in `bytes` (all bytes received so far) and, once it is
    /// there, validates the request. At most `maxHeadBytes` bytes are examined: a head that
    /// has not ended by then is rejected with 431.
    public mutating func parse(
        _ bytes: UnsafeRawBufferPointer, maxHeadBytes: Int = HandshakeParser.defaultMaxHeadBytes
    ) -> HandshakeStep {
        precondition(maxHeadBytes >= 4)
        precondition(bytes.count >= searched, "bytes must include everything passed before")
        let limit = min(bytes.count, maxHeadBytes)
        // The blank line may straddle the previous piece: back up three bytes.
        var index = max(0, searched - 3)
        while index + 3 < limit {
            if bytes[index + 3] == HTTPHead.lf && bytes[index + 2] == HTTPHead.cr
                && bytes[index + 1] == HTTPHead.lf && bytes[index] == HTTPHead.cr
            {
                let headLength = index + 4
                searched = 0
                return HandshakeParser.validate(UnsafeRawBufferPointer(rebasing: bytes[..<headLength]))
            }
            index += 1
        }
        searched = limit
        return bytes.count >= maxHeadBytes ? .reject(.headerTooLarge) : .needMore
    }

    /// Validates a complete head (ending in CRLF CRLF).
    static func validate(_ head: UnsafeRawBufferPointer) -> HandshakeStep {
        guard let lineEnd = HTTPHead.findCRLF(head, from: 0),
              let line = RequestLine(UnsafeRawBufferPointer(rebasing: head[..<lineEnd]))
        else { return .reject(.badRequest) }
        let fieldBytes = UnsafeRawBufferPointer(rebasing: head[(lineEnd + 2)...])
        let fields = HeaderFields(fieldBytes: fieldBytes)

        // One pass over the fields: every line must be well-formed; note what the
        // handshake needs.
        var hostCount = 0
        var sawUpgrade = false
        var key: UnsafeRawBufferPointer?
        var keyCount = 0
        var versionCount = 0
        var versionIs13 = true
        let wellFormed = HTTPHead.forEachField(in: fieldBytes) { name, value in
            switch name.count {
            case 4 where HTTPHead.equalsLowercase(name, "host"):
                hostCount += 1
            case 7 where HTTPHead.equalsLowercase(name, "upgrade"):
                sawUpgrade = true
            case 17 where HTTPHead.equalsLowercase(name, "sec-websocket-key"):
                keyCount += 1
                key = value
            case 21 where HTTPHead.equalsLowercase(name, "sec-websocket-version"):
                versionCount += 1
                if !HTTPHead.equals(value, "13") { versionIs13 = false }
            default:
                break
            }
        }
        guard wellFormed else { return .reject(.badRequest) }

        let isUpgradeAttempt = sawUpgrade || keyCount > 0 || versionCount > 0
        guard isUpgradeAttempt else {
            return .plainRequest(
                PlainRequest(method: line.method, target: line.target, fields: fields),
                headLength: head.count)
        }
        guard HTTPHead.equals(line.method, "GET"), line.isAtLeastHTTP11 else { return .reject(.badRequest) }
        guard hostCount == 1 else { return .reject(.badRequest) }
        guard TokenList(fields: fields, lowercaseName: "upgrade").contains("websocket"),
              TokenList(fields: fields, lowercaseName: "connection").contains("upgrade")
        else { return .reject(.badRequest) }
        guard versionCount > 0 else { return .reject(.badRequest) }
        guard versionIs13 else { return .reject(.unsupportedVersion) }
        guard keyCount == 1, let key, Base64.isSixteenByteValue(key) else { return .reject(.badRequest) }
        return .upgrade(
            UpgradeRequest(target: line.target, key: key, fields: fields), headLength: head.count)
    }
}

/// `method SP request-target SP HTTP-version` (RFC 9112 section 3).
struct RequestLine {
    var method: UnsafeRawBufferPointer
    var target: UnsafeRawBufferPointer
    var major: UInt8
    var minor: UInt8

    var isAtLeastHTTP11: Bool { major > 1 || (major == 1 && minor >= 1) }

    init?(_ line: UnsafeRawBufferPointer) {
        var index = 0
        while index < line.count && HTTPHead.isTokenByte(line[index]) { index += 1 }
        guard index > 0, index < line.count, line[index] == HTTPHead.space else { return nil }
        method = UnsafeRawBufferPointer(rebasing: line[..<index])
        let targetStart = index + 1
        index = targetStart
        while index < line.count && line[index] > 0x20 && line[index] != 0x7F { index += 1 }
        guard index > targetStart, index < line.count, line[index] == HTTPHead.space else { return nil }
        target = UnsafeRawBufferPointer(rebasing: line[targetStart..<index])
        // origin-form ("/path?query") or asterisk-form; absolute-form is for proxies.
        guard target[0] == 0x2F || (target.count == 1 && target[0] == 0x2A) else { return nil }
        let version = UnsafeRawBufferPointer(rebasing: line[(index + 1)...])
        guard version.count == 8,
              HTTPHead.equals(UnsafeRawBufferPointer(rebasing: version[..<5]), "HTTP/"),
              version[5] >= 0x30, version[5] <= 0x39, version[6] == 0x2E,
              version[7] >= 0x30, version[7] <= 0x39
        else { return nil }
        major = version[5] - 0x30
        minor = version[7] - 0x30
    }
}
