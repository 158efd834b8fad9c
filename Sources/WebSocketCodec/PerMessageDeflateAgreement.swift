/// An accepted permessage-deflate offer: the agreed parameters and the response that says so.
public struct PerMessageDeflateAgreement: Sendable, Equatable {
    /// What both sides will do; the compression layer builds its streams from it.
    public var parameters: DeflateParameters
    /// Whether the response names `server_max_window_bits` (required when the offer named it,
    /// RFC 7692 section 7.1.2.1; allowed otherwise).
    public var respondsServerMaxWindowBits: Bool
    /// Whether the response names `client_max_window_bits` (allowed only when the offer named
    /// it, section 7.1.2.2).
    public var respondsClientMaxWindowBits: Bool

    public init(parameters: DeflateParameters, respondsServerMaxWindowBits: Bool, respondsClientMaxWindowBits: Bool) {
        self.parameters = parameters
        self.respondsServerMaxWindowBits = respondsServerMaxWindowBits
        self.respondsClientMaxWindowBits = respondsClientMaxWindowBits
    }

    static let name: StaticString = "permessage-deflate"
    static let serverNoContextTakeover: StaticString = "; server_no_context_takeover"
    static let clientNoContextTakeover: StaticString = "; client_no_context_takeover"
    static let serverMaxWindowBits: StaticString = "; server_max_window_bits="
    static let clientMaxWindowBits: StaticString = "; client_max_window_bits="

    /// The longest response value: every parameter, two-digit windows (128 bytes).
    public static let maxResponseValueBytes = name.utf8CodeUnitCount
        + serverNoContextTakeover.utf8CodeUnitCount + clientNoContextTakeover.utf8CodeUnitCount
        + serverMaxWindowBits.utf8CodeUnitCount + 2 + clientMaxWindowBits.utf8CodeUnitCount + 2

    /// Size of the `Sec-WebSocket-Extensions` value `writeResponseValue` writes.
    public var responseValueLength: Int {
        var length = Self.name.utf8CodeUnitCount
        if parameters.serverNoContextTakeover { length += Self.serverNoContextTakeover.utf8CodeUnitCount }
        if parameters.clientNoContextTakeover { length += Self.clientNoContextTakeover.utf8CodeUnitCount }
        if respondsServerMaxWindowBits {
            length += Self.serverMaxWindowBits.utf8CodeUnitCount + (parameters.serverMaxWindowBits >= 10 ? 2 : 1)
        }
        if respondsClientMaxWindowBits {
            length += Self.clientMaxWindowBits.utf8CodeUnitCount + (parameters.clientMaxWindowBits >= 10 ? 2 : 1)
        }
        return length
    }

    /// Writes the response's `Sec-WebSocket-Extensions` value, e.g. `permessage-deflate;
    /// server_no_context_takeover; client_no_context_takeover`, into `destination` (at least
    /// `responseValueLength` bytes) and returns its size.
    @discardableResult
    public func writeResponseValue(into destination: UnsafeMutableRawBufferPointer) -> Int {
        let size = responseValueLength
        precondition(destination.count >= size, "destination too small for the response value")
        var offset = 0
        func append(_ text: StaticString) {
            destination.baseAddress!.advanced(by: offset)
                .copyMemory(from: text.utf8Start, byteCount: text.utf8CodeUnitCount)
            offset += text.utf8CodeUnitCount
        }
        func append(bits: UInt8) {
            if bits >= 10 {
                destination[offset] = 0x31
                offset += 1
            }
            destination[offset] = 0x30 + bits % 10
            offset += 1
        }
        append(Self.name)
        if parameters.serverNoContextTakeover { append(Self.serverNoContextTakeover) }
        if parameters.clientNoContextTakeover { append(Self.clientNoContextTakeover) }
        if respondsServerMaxWindowBits {
            append(Self.serverMaxWindowBits)
            append(bits: parameters.serverMaxWindowBits)
        }
        if respondsClientMaxWindowBits {
            append(Self.clientMaxWindowBits)
            append(bits: parameters.clientMaxWindowBits)
        }
        assert(offset == size)
        return size
    }

    static let headerName: StaticString = "Sec-WebSocket-Extensions: "

    /// Size of the whole header line `writeHeaderLine` writes.
    public var headerLineLength: Int { Self.headerName.utf8CodeUnitCount + responseValueLength + 2 }

    /// Writes `Sec-WebSocket-Extensions: <value>\r\n` into `destination` (at least
    /// `headerLineLength` bytes) and returns its size: the form
    /// `HandshakeResponse.writeSwitchingProtocols(acceptValue:subprotocol:extraHeaders:into:)`
    /// takes, for an upgrade answered after its request's bytes are gone (the agreement is a
    /// few bytes: keep it from the request, write the line at the answer).
    @discardableResult
    public func writeHeaderLine(into destination: UnsafeMutableRawBufferPointer) -> Int {
        let size = headerLineLength
        precondition(destination.count >= size, "destination too small for the header line")
        let nameLength = Self.headerName.utf8CodeUnitCount
        destination.baseAddress!.copyMemory(from: Self.headerName.utf8Start, byteCount: nameLength)
        let valueLength = writeResponseValue(into: UnsafeMutableRawBufferPointer(rebasing: destination[nameLength...]))
        destination[nameLength + valueLength] = 0x0D
        destination[nameLength + valueLength + 1] = 0x0A
        assert(nameLength + valueLength + 2 == size)
        return size
    }

    /// Calls `body` with the response value, written on the stack (nothing is allocated);
    /// hand it to `HandshakeResponse.writeSwitchingProtocols(for:subprotocol:extensions:into:)`.
    public func withResponseValue<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeTemporaryAllocation(byteCount: Self.maxResponseValueBytes, alignment: 1) { buffer in
            let size = writeResponseValue(into: buffer)
            return try body(UnsafeRawBufferPointer(rebasing: buffer[..<size]))
        }
    }
}
