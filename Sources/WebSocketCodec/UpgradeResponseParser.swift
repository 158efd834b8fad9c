/// The client side of the opening handshake (RFC 6455 section 4.1): writing the upgrade
/// request, and checking the server's response to it.
///
/// Like the server side, everything works over caller-provided or borrowed bytes: nothing is
/// allocated and nothing is copied.
public enum ClientHandshake {
    /// Length of a `Sec-WebSocket-Key` value: base64 of 16 random bytes.
    public static let keyLength = 24

    /// Writes the base64 `Sec-WebSocket-Key` of 16 `nonce` bytes (which the caller draws from a
    /// strong random source, section 4.1 item 7) into `destination` (24 bytes).
    public static func writeKey(nonce: UnsafeRawBufferPointer, into destination: UnsafeMutableRawPointer) {
        precondition(nonce.count == 16, "a Sec-WebSocket-Key encodes exactly 16 bytes")
        let written = Base64.encode(nonce, into: destination)
        assert(written == keyLength)
    }

    static let requestMiddle: StaticString = " HTTP/1.1\r\nHost: "
    static let requestFields: StaticString =
        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    /// The one extension offer a client of this package makes, the browsers' own:
    /// permessage-deflate with `client_max_window_bits` (RFC 7692 section 7.1.2.2), which lets
    /// the server bound the client's window. Context takeover is left to the server: a server
    /// that answers with both no-context-takeover parameters (a shared mode) lets the client
    /// keep one compressor and one decompressor per thread; one that keeps context for what it
    /// sends needs the client to keep a decompressor for that connection.
    static let deflateOfferField: StaticString =
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    static let keyField: StaticString = "Sec-WebSocket-Key: "
    static let requestEnd: StaticString = "\r\n\r\n"

    /// Size of the upgrade request for a target and host of the given lengths.
    public static func requestSize(targetLength: Int, hostLength: Int, offersDeflate: Bool = false) -> Int {
        3 + 1 + targetLength + requestMiddle.utf8CodeUnitCount + hostLength + requestFields.utf8CodeUnitCount
            + (offersDeflate ? deflateOfferField.utf8CodeUnitCount : 0) + keyField.utf8CodeUnitCount
            + keyLength + requestEnd.utf8CodeUnitCount
    }

    /// Offset of the key inside a request written by `writeRequest` (the key is last, so a
    /// request template can be copied and only its key rewritten).
    public static func keyOffset(targetLength: Int, hostLength: Int, offersDeflate: Bool = false) -> Int {
        requestSize(targetLength: targetLength, hostLength: hostLength, offersDeflate: offersDeflate)
            - keyLength - requestEnd.utf8CodeUnitCount
    }

    /// Writes `GET target HTTP/1.1` with Host, Upgrade, Connection, Sec-WebSocket-Version 13,
    /// with `offersDeflate` the permessage-deflate offer above, and `key` (24 bytes, from
    /// `writeKey`). No subprotocol is offered. Returns the size, or nil when `destination` is
    /// too small. `target` must be origin-form (`/...`) and `host` a valid Host value
    /// (`127.0.0.1:8080`); neither is checked here.
    public static func writeRequest(
        target: UnsafeRawBufferPointer, host: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer,
        offersDeflate: Bool = false, into destination: UnsafeMutableRawBufferPointer
    ) -> Int? {
        precondition(key.count == keyLength, "key must be the 24-byte base64 value")
        let size = requestSize(targetLength: target.count, hostLength: host.count, offersDeflate: offersDeflate)
        guard let base = destination.baseAddress, destination.count >= size else { return nil }
        var offset = 0
        func append(_ bytes: UnsafeRawBufferPointer) {
            if let source = bytes.baseAddress, bytes.count > 0 {
                (base + offset).copyMemory(from: source, byteCount: bytes.count)
            }
            offset += bytes.count
        }
        func append(_ text: StaticString) {
            append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
        }
        append("GET ")
        append(target)
        append(requestMiddle)
        append(host)
        append(requestFields)
        if offersDeflate { append(deflateOfferField) }
        append(keyField)
        append(key)
        append(requestEnd)
        assert(offset == size)
        return size
    }
}

/// Why a server's answer to the upgrade request is not an accepted WebSocket handshake.
public enum UpgradeResponseFailure: Sendable, Equatable {
    /// Not an HTTP/1.1 response head: a bad status line, or a malformed field line.
    case malformed
    /// The head did not end within the limit.
    case headTooLarge
    /// A well-formed response with a status other than 101 (section 4.1: the handshake failed).
    case status(Int)
    /// No `Upgrade` field naming `websocket`.
    case missingUpgrade
    /// No `Connection` field with the `upgrade` token.
    case missingConnectionUpgrade
    /// No `Sec-WebSocket-Accept` field.
    case missingAccept
    /// `Sec-WebSocket-Accept` is not the hash of our key (or appears more than once).
    case acceptMismatch
    /// `Sec-WebSocket-Extensions` in the response, though the request offered none.
    case unexpectedExtension
    /// A `Sec-WebSocket-Extensions` response our permessage-deflate offer does not allow
    /// (RFC 7692 section 7.1: another extension, a second element, a malformed or unknown
    /// parameter, or `client_max_window_bits` without a value): the client must fail the
    /// connection.
    case badExtension
    /// `Sec-WebSocket-Protocol` in the response, though the request offered none.
    case unexpectedSubprotocol

    /// A short upper-case name for counters and logs: `HTTP_503`, `BAD_ACCEPT`, ...
    public var name: String {
        switch self {
        case .malformed: return "MALFORMED_RESPONSE"
        case .headTooLarge: return "RESPONSE_TOO_LARGE"
        case .status(let code): return "HTTP_\(code)"
        case .missingUpgrade: return "NO_UPGRADE"
        case .missingConnectionUpgrade: return "NO_CONNECTION_UPGRADE"
        case .missingAccept: return "NO_ACCEPT"
        case .acceptMismatch: return "BAD_ACCEPT"
        case .unexpectedExtension: return "UNEXPECTED_EXTENSION"
        case .badExtension: return "BAD_EXTENSION"
        case .unexpectedSubprotocol: return "UNEXPECTED_SUBPROTOCOL"
        }
    }
}

/// What the bytes received so far say about the upgrade.
public enum UpgradeResponseStep: Equatable {
    /// The head is not complete yet: keep the bytes and call `parse` again with more.
    case needMore
    /// A valid `101 Switching Protocols` for our key. Bytes after `headLength` already belong
    /// to the WebSocket stream (a server may send frames right after its response). `deflate`:
    /// what the server agreed to when it accepted our permessage-deflate offer (only when one
    /// was made), nil when it did not.
    case accepted(headLength: Int, deflate: DeflateParameters? = nil)
    /// The handshake failed; close the connection.
    case failed(UpgradeResponseFailure)
}

/// Incremental, strict parser for the server's response to a WebSocket upgrade request
/// (RFC 6455 section 4.1, "the client MUST validate the server's response").
///
/// The caller keeps the bytes received so far contiguous and calls `parse` with all of them
/// after each piece; the parser remembers how far it searched for the blank line, so the
/// total work is linear in the head's size. A complete head is accepted only when:
///
/// - the status line is `HTTP/1.x 101` (x >= 1) with an optional reason phrase;
/// - every field line is well-formed (a token name, a colon with no whitespace before it,
///   no control bytes in the value, no obs-fold), and lines end with CRLF;
/// - `Upgrade` holds the token `websocket` and `Connection` the token `upgrade` (case-insensitive);
/// - exactly one `Sec-WebSocket-Accept` equals base64(SHA-1(key + GUID)) for our key;
/// - there is no `Sec-WebSocket-Protocol` (the request made by `ClientHandshake.writeRequest`
///   offers none), and no `Sec-WebSocket-Extensions` unless the request offered
///   permessage-deflate; then at most one field with exactly one `permessage-deflate` element
///   that answers the offer (`validateDeflateResponse`).
///
/// A well-formed response with another status fails with `.status(code)`, whatever its
/// fields. Nothing is allocated.
public struct UpgradeResponseParser: Sendable {
    /// Default limit on the response head.
    public static let defaultMaxHeadBytes = 8192

    @usableFromInline var searched: Int = 0

    public init() {}

    /// A parser that resumes where one stopped that was given `searchedBytes` bytes and asked
    /// for more: how far it searched is all the state a parser has, so a caller that keeps
    /// the bytes (and so their count) need not keep the parser too.
    public init(resumingAfter searchedBytes: Int) {
        precondition(searchedBytes >= 0)
        searched = searchedBytes
    }

    /// Looks for the end of the head in `bytes` (everything received so far) and, once found,
    /// validates the response against `key` (the 24-byte `Sec-WebSocket-Key` we sent).
    public mutating func parse(
        _ bytes: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer,
        maxHeadBytes: Int = UpgradeResponseParser.defaultMaxHeadBytes, offeredDeflate: Bool = false
    ) -> UpgradeResponseStep {
        precondition(maxHeadBytes >= 4)
        precondition(bytes.count >= searched, "bytes must include everything passed before")
        let limit = min(bytes.count, maxHeadBytes)
        var index = max(0, searched - 3)
        while index + 3 < limit {
            if bytes[index + 3] == HTTPHead.lf && bytes[index + 2] == HTTPHead.cr
                && bytes[index + 1] == HTTPHead.lf && bytes[index] == HTTPHead.cr
            {
                searched = 0
                let head = UnsafeRawBufferPointer(rebasing: bytes[..<(index + 4)])
                return UpgradeResponseParser.validate(head, key: key, offeredDeflate: offeredDeflate)
            }
            index += 1
        }
        searched = limit
        return bytes.count >= maxHeadBytes ? .failed(.headTooLarge) : .needMore
    }

    /// Validates a complete head (ending in CRLF CRLF).
    static func validate(_ head: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer, offeredDeflate: Bool) -> UpgradeResponseStep {
        guard let lineEnd = HTTPHead.findCRLF(head, from: 0),
              let status = statusCode(UnsafeRawBufferPointer(rebasing: head[..<lineEnd]))
        else { return .failed(.malformed) }
        let fieldBytes = UnsafeRawBufferPointer(rebasing: head[(lineEnd + 2)...])
        var acceptCount = 0
        var accept = UnsafeRawBufferPointer(start: nil, count: 0)
        var extensionFields = 0
        var sawProtocol = false
        let wellFormed = HTTPHead.forEachField(in: fieldBytes) { name, value in
            switch name.count {
            case 20 where HTTPHead.equalsLowercase(name, "sec-websocket-accept"):
                acceptCount += 1
                accept = value
            case 24 where HTTPHead.equalsLowercase(name, "sec-websocket-extensions"):
                extensionFields += 1
            case 22 where HTTPHead.equalsLowercase(name, "sec-websocket-protocol"):
                sawProtocol = true
            default:
                break
            }
        }
        guard wellFormed else { return .failed(.malformed) }
        guard status == 101 else { return .failed(.status(status)) }
        let fields = HeaderFields(fieldBytes: fieldBytes)
        guard TokenList(fields: fields, lowercaseName: "upgrade").contains("websocket") else {
            return .failed(.missingUpgrade)
        }
        guard TokenList(fields: fields, lowercaseName: "connection").contains("upgrade") else {
            return .failed(.missingConnectionUpgrade)
        }
        guard acceptCount > 0 else { return .failed(.missingAccept) }
        guard acceptCount == 1, accept.count == HandshakeResponse.acceptValueLength,
              key.count == ClientHandshake.keyLength
        else { return .failed(.acceptMismatch) }
        let matches = withUnsafeTemporaryAllocation(byteCount: HandshakeResponse.acceptValueLength, alignment: 1) {
            expected -> Bool in
            HandshakeResponse.writeAcceptValue(key: key, into: expected.baseAddress!)
            return HTTPHead.equalBytes(UnsafeRawBufferPointer(expected), accept)
        }
        guard matches else { return .failed(.acceptMismatch) }
        if sawProtocol { return .failed(.unexpectedSubprotocol) }
        guard extensionFields > 0 else { return .accepted(headLength: head.count) }
        guard offeredDeflate else { return .failed(.unexpectedExtension) }
        guard extensionFields == 1, let agreed = deflateAgreement(ExtensionList(fields: fields)) else {
            return .failed(.badExtension)
        }
        return .accepted(headLength: head.count, deflate: agreed)
    }

    /// What a response to our offer (permessage-deflate; client_max_window_bits) agreed, or
    /// nil when it is not a valid answer: exactly one element, that extension, well formed (the
    /// offer grammar: each parameter once, window sizes 8-15), and `client_max_window_bits`
    /// only with a value (section 7.1.2.2). The four parameters are otherwise the server's
    /// to choose; a window it does not name is 15 bits.
    static func deflateAgreement(_ list: ExtensionList) -> DeflateParameters? {
        var elements = 0
        var agreed: DeflateParameters?
        for element in list {
            elements += 1
            guard element.hasName("permessage-deflate"),
                  case .success(let response) = PerMessageDeflateOffer.parse(element),
                  !response.offersClientMaxWindowBits || response.clientMaxWindowBits != nil
            else { return nil }
            agreed = DeflateParameters(
                serverNoContextTakeover: response.serverNoContextTakeover,
                clientNoContextTakeover: response.clientNoContextTakeover,
                serverMaxWindowBits: response.serverMaxWindowBits ?? 15,
                clientMaxWindowBits: response.clientMaxWindowBits ?? 15)
        }
        return elements == 1 ? agreed : nil
    }

    /// The status code of `HTTP/1.x SP 3DIGIT [SP reason-phrase]` (x >= 1), or nil.
    static func statusCode(_ line: UnsafeRawBufferPointer) -> Int? {
        guard line.count >= 12,
              HTTPHead.equals(UnsafeRawBufferPointer(rebasing: line[..<7]), "HTTP/1."),
              line[7] >= 0x31, line[7] <= 0x39, line[8] == HTTPHead.space
        else { return nil }
        var code = 0
        for index in 9..<12 {
            let byte = line[index]
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            code = code * 10 + Int(byte - 0x30)
        }
        guard code >= 100 else { return nil }
        if line.count == 12 { return code }
        guard line[12] == HTTPHead.space else { return nil }
        // reason-phrase: HTAB / SP / VCHAR / obs-text.
        for byte in line[13...] where !HTTPHead.isFieldValueByte(byte) { return nil }
        return code
    }
}

extension HTTPHead {
    static func equalBytes(_ lhs: UnsafeRawBufferPointer, _ rhs: UnsafeRawBufferPointer) -> Bool {
        guard lhs.count == rhs.count else { return false }
        for index in 0..<lhs.count where lhs[index] != rhs[index] { return false }
        return true
    }
}
