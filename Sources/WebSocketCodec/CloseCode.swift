/// A close status code (RFC 6455 section 7.4).
///
/// Three sets matter and differ: codes an endpoint may *send*, codes that are *valid on
/// receipt* in a close frame, and codes that exist only as local status and must *never
/// appear on the wire* (1005, 1006, 1015).
public struct CloseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16

    @inlinable
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let normalClosure = CloseCode(rawValue: 1000)
    public static let goingAway = CloseCode(rawValue: 1001)
    public static let protocolError = CloseCode(rawValue: 1002)
    public static let unsupportedData = CloseCode(rawValue: 1003)
    /// Local status only: the close frame carried no code.
    public static let noStatusReceived = CloseCode(rawValue: 1005)
    /// Local status only: the connection ended without a close frame.
    public static let abnormalClosure = CloseCode(rawValue: 1006)
    public static let invalidPayload = CloseCode(rawValue: 1007)
    public static let policyViolation = CloseCode(rawValue: 1008)
    public static let messageTooBig = CloseCode(rawValue: 1009)
    /// Client only: the server did not negotiate an extension the client required.
    public static let mandatoryExtension = CloseCode(rawValue: 1010)
    public static let internalError = CloseCode(rawValue: 1011)
    /// IANA registry: the server is restarting.
    public static let serviceRestart = CloseCode(rawValue: 1012)
    /// IANA registry: a temporary condition (the server is overloaded); reconnect later.
    public static let tryAgainLater = CloseCode(rawValue: 1013)
    /// IANA registry: a gateway or proxy got an invalid response upstream.
    public static let badGateway = CloseCode(rawValue: 1014)
    /// Local status only: the TLS handshake failed.
    public static let tlsHandshakeFailure = CloseCode(rawValue: 1015)

    /// Whether a close frame received from the peer may carry this code.
    ///
    /// 1000-1003 and 1007-1011 are defined by RFC 6455 for the wire, 1012-1014 were added to
    /// IANA's registry since (browsers and most servers send 1013), 3000-3999 are registered
    /// with IANA and 4000-4999 are private use. Everything else (0-999, 1004-1006, 1015-2999,
    /// 5000+) is a protocol error on receipt.
    @inlinable
    public var isValidOnReceipt: Bool {
        switch rawValue {
        case 1000...1003, 1007...1014, 3000...4999: return true
        default: return false
        }
    }

    /// Whether this endpoint may put the code in a close frame it sends. 1010 is defined
    /// for clients only; a server never sends it.
    @inlinable
    public func maySend(as role: Role) -> Bool {
        if rawValue == 1010 { return role == .client }
        return isValidOnReceipt
    }

    /// Codes that describe a local condition and must never be sent (section 7.4.1).
    @inlinable
    public var isLocalOnly: Bool {
        rawValue == 1005 || rawValue == 1006 || rawValue == 1015
    }

    public var description: String { String(rawValue) }
}
