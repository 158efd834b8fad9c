/// One `permessage-deflate` offer from a client, validated as RFC 7692 section 7 requires.
///
/// Parsing checks the offer alone; whether the server accepts it, and with which response, is
/// `PerMessageDeflateNegotiator`'s job.
public struct PerMessageDeflateOffer: Sendable, Equatable {
    /// Why an offer must be declined (RFC 7692 section 7: "A server MUST decline an extension
    /// negotiation offer for this extension if ..."). Declining an offer is not failing the
    /// handshake: the server tries the next offer, and without one the connection simply runs
    /// uncompressed.
    public enum Defect: Error, Sendable, Equatable {
        /// The element breaks the extension-list grammar (RFC 6455 section 9.1).
        case malformed
        /// A parameter RFC 7692 does not define for an offer.
        case unknownParameter
        /// "multiple extension parameters with the same name".
        case duplicateParameter
        /// A value on a parameter that takes none, none on one that needs one, or a window
        /// size that is not a decimal 8-15 without leading zeros.
        case invalidValue
    }

    /// Smallest and largest LZ77 window sizes, in bits, a negotiation may name (section 7.1.2).
    public static let windowBitsRange: ClosedRange<UInt8> = 8...15

    /// `server_no_context_takeover`: the client asks the server to reset its compressor after
    /// every message (section 7.1.1.1).
    public var serverNoContextTakeover = false
    /// `client_no_context_takeover`: the client says it will reset its own compressor after
    /// every message (section 7.1.1.2, a hint).
    public var clientNoContextTakeover = false
    /// `server_max_window_bits=N`: the largest window the server may compress with (7.1.2.1).
    public var serverMaxWindowBits: UInt8?
    /// `client_max_window_bits`: the client accepts a limit on its own window in the response
    /// (7.1.2.2); its value, when present, is the largest the client will use anyway.
    public var offersClientMaxWindowBits = false
    public var clientMaxWindowBits: UInt8?

    public init() {}

    /// Validates `offer`, which must be named `permessage-deflate`.
    public static func parse(_ offer: ExtensionOffer) -> Result<PerMessageDeflateOffer, Defect> {
        precondition(offer.hasName("permessage-deflate"), "not a permessage-deflate offer")
        guard offer.isWellFormed else { return .failure(.malformed) }
        var result = PerMessageDeflateOffer()
        for parameter in offer.parameters {
            if parameter.hasName("server_no_context_takeover") {
                if result.serverNoContextTakeover { return .failure(.duplicateParameter) }
                if parameter.rawValue != nil { return .failure(.invalidValue) }
                result.serverNoContextTakeover = true
            } else if parameter.hasName("client_no_context_takeover") {
                if result.clientNoContextTakeover { return .failure(.duplicateParameter) }
                if parameter.rawValue != nil { return .failure(.invalidValue) }
                result.clientNoContextTakeover = true
            } else if parameter.hasName("server_max_window_bits") {
                if result.serverMaxWindowBits != nil { return .failure(.duplicateParameter) }
                guard let bits = windowBits(parameter) else { return .failure(.invalidValue) }
                result.serverMaxWindowBits = bits
            } else if parameter.hasName("client_max_window_bits") {
                if result.offersClientMaxWindowBits { return .failure(.duplicateParameter) }
                result.offersClientMaxWindowBits = true
                if parameter.rawValue != nil {
                    guard let bits = windowBits(parameter) else { return .failure(.invalidValue) }
                    result.clientMaxWindowBits = bits
                }
            } else {
                return .failure(.unknownParameter)
            }
        }
        return .success(result)
    }

    /// A window-size value: "a decimal integer value without leading zeroes between 8 to 15,
    /// inclusive" (section 7.1.2.1); nil for anything else, including a missing value.
    static func windowBits(_ parameter: ExtensionParameter) -> UInt8? {
        guard let value = parameter.decimalValue(maxDigits: 2), value <= 15 else { return nil }
        let bits = UInt8(value)
        return windowBitsRange.contains(bits) ? bits : nil
    }
}
