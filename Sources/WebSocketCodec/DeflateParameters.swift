/// What a permessage-deflate negotiation agreed, per direction (RFC 7692 section 7.1): the
/// settings the compression layer builds its zlib streams from.
///
/// "Server" and "client" are the RFC's words: for Myriad, a server, the server side is what it
/// compresses (deflate) and the client side is what it inflates.
public struct DeflateParameters: Sendable, Equatable {
    /// The server resets its compressor after every message, so nothing it sends refers to an
    /// earlier message and its deflate state need not outlive a message.
    public var serverNoContextTakeover: Bool
    /// The client resets its compressor after every message, so the server's inflate state
    /// need not outlive a message either.
    public var clientNoContextTakeover: Bool
    /// Largest LZ77 window the server may compress with, in bits (8...15): the deflater's
    /// window must not exceed it (the peer may have sized its inflater to it).
    public var serverMaxWindowBits: UInt8
    /// Largest LZ77 window the client may compress with, in bits (8...15): the inflater's
    /// window must be at least this large (15 when the response did not limit it).
    public var clientMaxWindowBits: UInt8

    public init(
        serverNoContextTakeover: Bool, clientNoContextTakeover: Bool,
        serverMaxWindowBits: UInt8 = 15, clientMaxWindowBits: UInt8 = 15
    ) {
        precondition(PerMessageDeflateOffer.windowBitsRange.contains(serverMaxWindowBits))
        precondition(PerMessageDeflateOffer.windowBitsRange.contains(clientMaxWindowBits))
        self.serverNoContextTakeover = serverNoContextTakeover
        self.clientNoContextTakeover = clientNoContextTakeover
        self.serverMaxWindowBits = serverMaxWindowBits
        self.clientMaxWindowBits = clientMaxWindowBits
    }

    /// Whether the server must keep a deflate stream for this connection between messages
    /// (context takeover); otherwise a worker's shared stream, reset per message, serves it.
    public var needsConnectionDeflater: Bool { !serverNoContextTakeover }
    /// Whether the server must keep an inflate stream for this connection between messages.
    public var needsConnectionInflater: Bool { !clientNoContextTakeover }
}
