/// Chooses the permessage-deflate offer to accept and the response (RFC 7692 section 7.1).
///
/// Offers are tried in the client's order of preference (RFC 7692 section 5); the first one
/// that is valid is accepted, since every valid configuration can be served: windows of 8-15
/// bits on either side, either takeover setting. Invalid offers (`PerMessageDeflateOffer.Defect`)
/// are declined and skipped. Without an acceptable offer the result is nil: the handshake
/// goes on without the extension. Pure: no zlib, no allocation.
public enum PerMessageDeflateNegotiator {
    /// The agreement for the first acceptable `permessage-deflate` offer in `offers`, or nil.
    public static func negotiate(_ offers: ExtensionList, policy: PerMessageDeflatePolicy) -> PerMessageDeflateAgreement? {
        for offer in offers where offer.hasName("permessage-deflate") {
            if case .success(let parsed) = PerMessageDeflateOffer.parse(offer) {
                return accept(parsed, policy: policy)
            }
        }
        return nil
    }

    /// The response to a valid offer under `policy`.
    ///
    /// - Shared: both no-context-takeover parameters, always. `server_max_window_bits` is
    ///   echoed when offered (accepting it requires naming it with the same or a smaller
    ///   value; the worker then compresses with that window); `client_max_window_bits` is not
    ///   named (the worker's inflater has the full 15-bit window, which reads any client).
    /// - Dedicated, server direction: context takeover unless the client asked for
    ///   `server_no_context_takeover`, with `server_max_window_bits` = the smaller of the
    ///   offer's value (15 if none) and the policy's bound, always named (section 7.1.2.1
    ///   allows it unasked). Under `server_no_context_takeover` the direction is served like
    ///   the shared mode.
    /// - Dedicated, client direction: takeover only when the offer named
    ///   `client_max_window_bits`, which is then answered with the smaller of its value (15
    ///   if none) and the bound (a server may name it only when offered, section 7.1.2.2, so
    ///   without it the client's window cannot be bounded). Otherwise, or when the client
    ///   offered `client_no_context_takeover`, the response names `client_no_context_takeover`
    ///   and the worker's shared inflater serves the direction.
    public static func accept(_ offer: PerMessageDeflateOffer, policy: PerMessageDeflatePolicy) -> PerMessageDeflateAgreement {
        switch policy.mode {
        case .shared:
            return PerMessageDeflateAgreement(
                parameters: DeflateParameters(
                    serverNoContextTakeover: true, clientNoContextTakeover: true,
                    serverMaxWindowBits: offer.serverMaxWindowBits ?? 15, clientMaxWindowBits: 15),
                respondsServerMaxWindowBits: offer.serverMaxWindowBits != nil,
                respondsClientMaxWindowBits: false)
        case .dedicated:
            let bound = policy.maxWindowBits
            var respondsServerBits = true
            let serverBits: UInt8
            if offer.serverNoContextTakeover {
                serverBits = offer.serverMaxWindowBits ?? 15
                respondsServerBits = offer.serverMaxWindowBits != nil
            } else {
                serverBits = min(offer.serverMaxWindowBits ?? 15, bound)
            }
            let clientTakeover = offer.offersClientMaxWindowBits && !offer.clientNoContextTakeover
            let clientBits = clientTakeover ? min(offer.clientMaxWindowBits ?? 15, bound) : 15
            return PerMessageDeflateAgreement(
                parameters: DeflateParameters(
                    serverNoContextTakeover: offer.serverNoContextTakeover,
                    clientNoContextTakeover: !clientTakeover,
                    serverMaxWindowBits: serverBits, clientMaxWindowBits: clientBits),
                respondsServerMaxWindowBits: respondsServerBits,
                respondsClientMaxWindowBits: clientTakeover)
        }
    }
}
