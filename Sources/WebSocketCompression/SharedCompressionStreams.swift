import WebSocketCodec

/// One worker's zlib streams for every direction agreed without context takeover: all of the
/// shared mode, and the dedicated mode's directions that fell back to it. Nothing is kept per
/// connection; each message is compressed or inflated on its own and the stream reset.
///
/// - One inflater with a 15-bit window, which reads whatever window a client compresses with.
/// - One deflater per window size actually agreed (a client may ask for
///   `server_max_window_bits` 8-15; zlib uses 9 for 8, so at most seven), created on first
///   use. Most clients never ask, so a worker normally holds one.
///
/// A broadcast compresses a message once per window size in use among its recipients (once,
/// normally) and sends the same bytes to each. Owned by its worker thread.
public struct SharedCompressionStreams: ~Copyable {
    /// Deflaters indexed by zlib window bits minus 9 (9...15).
    let deflaters: UnsafeMutablePointer<MessageDeflater>
    var created: UInt8 = 0
    public let deflateConfiguration: MessageDeflater.Configuration
    public var inflater: MessageInflater
    let meter: ZlibMemoryMeter?

    static let deflaterSlots = 7

    /// nil when zlib cannot allocate the inflater. `deflateConfiguration`'s window is
    /// replaced by each message's agreed window; its memLevel and level apply to all.
    public init?(
        maxMessageSizeBytes: Int, deflateConfiguration: MessageDeflater.Configuration = .shared,
        meter: ZlibMemoryMeter? = nil
    ) {
        guard let inflater = MessageInflater(
            windowBits: 15, contextTakeover: false, maxMessageSizeBytes: maxMessageSizeBytes, meter: meter)
        else { return nil }
        self.inflater = inflater
        self.deflateConfiguration = deflateConfiguration
        self.meter = meter
        deflaters = .allocate(capacity: Self.deflaterSlots)
    }

    deinit {
        for slot in 0..<Self.deflaterSlots where created & (1 << slot) != 0 {
            (deflaters + slot).deinitialize(count: 1)
        }
        deflaters.deallocate()
    }

    /// Compresses one whole message for a connection whose agreed `server_max_window_bits`
    /// is `windowBits`, appending the payload (RSV1 to be set on its frame) to `output`.
    /// False when zlib cannot allocate the stream or `output` cannot grow.
    public mutating func compress<Output: CompressionOutput & ~Copyable>(
        _ message: UnsafeRawBufferPointer, windowBits: UInt8, into output: inout Output
    ) -> Bool {
        guard let slot = deflaterSlot(windowBits: windowBits) else { return false }
        return (deflaters + slot).pointee.compress(message, isMessageEnd: true, into: &output)
    }

    /// Inflates a compressed message's payload (see `MessageInflater.inflate`). Feed one
    /// message at a time: another connection's message must not come between its pieces.
    public mutating func inflate<Output: CompressionOutput & ~Copyable>(
        _ input: UnsafeRawBufferPointer, isMessageEnd: Bool, isText: Bool, into output: inout Output
    ) -> MessageInflater.Result {
        inflater.inflate(input, isMessageEnd: isMessageEnd, isText: isText, into: &output)
    }

    /// The deflater for `windowBits`, created if needed; nil when zlib cannot allocate it.
    mutating func deflaterSlot(windowBits: UInt8) -> Int? {
        var configuration = deflateConfiguration
        configuration.windowBits = Int(windowBits)
        let slot = configuration.zlibWindowBits - 9
        assert(slot >= 0 && slot < Self.deflaterSlots)
        if created & (1 << slot) == 0 {
            guard let deflater = MessageDeflater(configuration: configuration, contextTakeover: false, meter: meter)
            else { return nil }
            (deflaters + slot).initialize(to: deflater)
            created |= 1 << slot
        }
        return slot
    }
}
