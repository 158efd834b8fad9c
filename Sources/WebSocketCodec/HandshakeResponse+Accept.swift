/// The `101 Switching Protocols` response written from a precomputed `Sec-WebSocket-Accept`
/// value, with extra header lines: for upgrades the application decides later (the request's
/// bytes are gone by then, its accept value is kept) or answers with its own headers.
extension HandshakeResponse {
    static let lineEnd: StaticString = "\r\n"

    /// Size of the response for a subprotocol of `subprotocolLength` bytes (0: none) and
    /// `extraHeaderBytes` of header lines, each already formatted as `Name: value\r\n`.
    public static func switchingProtocolsSize(subprotocolLength: Int, extraHeaderBytes: Int) -> Int {
        switchingProtocolsSize(subprotocolLength: subprotocolLength) + extraHeaderBytes
    }

    /// Writes the response: the prefix, `acceptValue` (28 bytes), the subprotocol line when
    /// `subprotocol` is not empty, `extraHeaders` (complete lines), the blank line. Returns the
    /// size, or nil when `destination` is too small.
    public static func writeSwitchingProtocols(
        acceptValue: UnsafeRawBufferPointer, subprotocol: UnsafeRawBufferPointer,
        extraHeaders: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer
    ) -> Int? {
        precondition(acceptValue.count == acceptValueLength)
        let size = switchingProtocolsSize(subprotocolLength: subprotocol.count, extraHeaderBytes: extraHeaders.count)
        guard let base = destination.baseAddress, destination.count >= size else { return nil }
        var offset = 0
        func append(_ bytes: UnsafeRawBufferPointer) {
            guard let source = bytes.baseAddress, bytes.count > 0 else { return }
            (base + offset).copyMemory(from: source, byteCount: bytes.count)
            offset += bytes.count
        }
        func append(_ text: StaticString) {
            append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
        }
        append(switchingPrefix)
        append(acceptValue)
        if subprotocol.count > 0 {
            append(protocolField)
            append(subprotocol)
        }
        append(lineEnd)
        append(extraHeaders)
        append(lineEnd)
        assert(offset == size)
        return size
    }
}
