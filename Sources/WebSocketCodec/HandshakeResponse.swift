import Crypto

/// The HTTP responses of the opening handshake, written into caller-provided memory.
public enum HandshakeResponse {
    /// RFC 6455 section 1.3: appended to the client's key before hashing.
    static let websocketGUID: StaticString = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    public static let badRequest: StaticString =
        "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    public static let upgradeRequired: StaticString =
        "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    public static let headerFieldsTooLarge: StaticString =
        "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    public static let notFound: StaticString =
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    public static let healthy: StaticString =
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
    public static let serviceUnavailable: StaticString =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

    static let switchingPrefix: StaticString =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
    static let protocolField: StaticString = "\r\nSec-WebSocket-Protocol: "
    static let extensionsField: StaticString = "\r\nSec-WebSocket-Extensions: "
    static let end: StaticString = "\r\n\r\n"

    /// Length of the `Sec-WebSocket-Accept` value: base64 of a 20-byte SHA-1 digest.
    public static let acceptValueLength = 28

    /// Size of the 101 response for a given chosen subprotocol length and accepted extensions
    /// value length (0: none).
    public static func switchingProtocolsSize(subprotocolLength: Int, extensionsLength: Int = 0) -> Int {
        switchingPrefix.utf8CodeUnitCount + acceptValueLength
            + (subprotocolLength > 0 ? protocolField.utf8CodeUnitCount + subprotocolLength : 0)
            + (extensionsLength > 0 ? extensionsField.utf8CodeUnitCount + extensionsLength : 0)
            + end.utf8CodeUnitCount
    }

    /// Writes `Sec-WebSocket-Accept` for `key` (SHA-1 of key + GUID, base64) into
    /// `destination`, which must hold 28 bytes.
    public static func writeAcceptValue(key: UnsafeRawBufferPointer, into destination: UnsafeMutableRawPointer) {
        var sha1 = Insecure.SHA1()
        sha1.update(bufferPointer: key)
        sha1.update(bufferPointer: UnsafeRawBufferPointer(
            start: websocketGUID.utf8Start, count: websocketGUID.utf8CodeUnitCount))
        let digest = sha1.finalize()
        let written = digest.withUnsafeBytes { Base64.encode($0, into: destination) }
        assert(written == acceptValueLength)
    }

    /// Writes the `101 Switching Protocols` response accepting `request`, naming `subprotocol`
    /// when one was chosen (it must be one of `request.offeredSubprotocols`) and the accepted
    /// `extensions` when there are any (a `Sec-WebSocket-Extensions` value, such as
    /// `PerMessageDeflateAgreement.withResponseValue` gives). Returns the response's size, or
    /// nil when `destination` is too small for it.
    public static func writeSwitchingProtocols(
        for request: UpgradeRequest,
        subprotocol: UnsafeRawBufferPointer? = nil,
        extensions: UnsafeRawBufferPointer? = nil,
        into destination: UnsafeMutableRawBufferPointer
    ) -> Int? {
        let protocolLength = subprotocol?.count ?? 0
        let extensionsLength = extensions?.count ?? 0
        let size = switchingProtocolsSize(subprotocolLength: protocolLength, extensionsLength: extensionsLength)
        guard let base = destination.baseAddress, destination.count >= size else { return nil }
        var offset = 0
        func append(_ text: StaticString) {
            (base + offset).copyMemory(from: text.utf8Start, byteCount: text.utf8CodeUnitCount)
            offset += text.utf8CodeUnitCount
        }
        append(switchingPrefix)
        writeAcceptValue(key: request.key, into: base + offset)
        offset += acceptValueLength
        if let subprotocol, let protocolBase = subprotocol.baseAddress, protocolLength > 0 {
            append(protocolField)
            (base + offset).copyMemory(from: protocolBase, byteCount: protocolLength)
            offset += protocolLength
        }
        if let extensions, let extensionsBase = extensions.baseAddress, extensionsLength > 0 {
            append(extensionsField)
            (base + offset).copyMemory(from: extensionsBase, byteCount: extensionsLength)
            offset += extensionsLength
        }
        append(end)
        assert(offset == size)
        return size
    }
}
