/// How a server is willing to run permessage-deflate: what it costs per connection.
///
/// zlib at its defaults holds about 256 KiB to deflate and 40 KiB to inflate; kept per
/// connection, a million connections cannot afford it. The two policies trade compression
/// ratio for that memory differently.
public struct PerMessageDeflatePolicy: Sendable, Equatable {
    public enum Mode: Sendable, Equatable {
        /// No context takeover in either direction: the server always answers
        /// `server_no_context_takeover; client_no_context_takeover` (RFC 7692 sections 7.1.1.1
        /// and 7.1.1.2 let it name both whether or not the client offered them), so every
        /// message is compressed and inflated on its own by one stream per worker and nothing
        /// is kept per connection. Every subscriber then receives the same compressed bytes
        /// for a message, so a broadcast compresses once.
        case shared
        /// Context takeover where the client allows it, with windows of at most
        /// `maxWindowBits` so a connection's streams stay small. A direction whose window
        /// cannot be bounded (the client did not offer `client_max_window_bits`) or whose
        /// context the client refuses (`server_no_context_takeover`) falls back to the shared
        /// scheme for that direction.
        case dedicated
    }

    public var mode: Mode
    /// Dedicated mode: the largest LZ77 window, in bits, kept per connection in each
    /// direction (8...15). 11 bits is a 2 KiB window: with memLevel 4, zlib holds 22,336 B
    /// for a deflate stream and 9,208 B for an inflate stream, 31,544 B a connection
    /// (measured with WebSocketCompression's ZlibMemoryMeter), against 308,024 B at zlib's
    /// defaults.
    public var maxWindowBits: UInt8

    public init(mode: Mode, maxWindowBits: UInt8 = PerMessageDeflatePolicy.defaultDedicatedWindowBits) {
        precondition(PerMessageDeflateOffer.windowBitsRange.contains(maxWindowBits), "window bits must be 8...15")
        self.mode = mode
        self.maxWindowBits = maxWindowBits
    }

    /// The dedicated mode's default per-connection window: 11 bits (issue 16's bound).
    public static let defaultDedicatedWindowBits: UInt8 = 11

    public static let shared = PerMessageDeflatePolicy(mode: .shared)

    public static func dedicated(maxWindowBits: UInt8 = defaultDedicatedWindowBits) -> PerMessageDeflatePolicy {
        PerMessageDeflatePolicy(mode: .dedicated, maxWindowBits: maxWindowBits)
    }
}
