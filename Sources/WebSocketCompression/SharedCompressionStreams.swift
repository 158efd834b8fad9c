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
    public private(set) var inflater: MessageInflater
    let meter: ZlibMemoryMeter?
    let maxMessageSizeBytes: Int
    /// A message went through the streams since the last `releaseIfIdle`.
    var usedSinceCheck = false
    /// `releaseIfIdle` calls in a row that found no use.
    var idleChecks: UInt8 = 0
    /// The streams hold nothing but a fresh inflater (released, or never used).
    var released = true

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
        self.maxMessageSizeBytes = maxMessageSizeBytes
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
        usedSinceCheck = true
        released = false
        return (deflaters + slot).pointee.compress(message, isMessageEnd: true, into: &output)
    }

    /// Inflates a compressed message's payload (see `MessageInflater.inflate`). Feed one
    /// message at a time: another connection's message must not come between its pieces.
    public mutating func inflate<Output: CompressionOutput & ~Copyable>(
        _ input: UnsafeRawBufferPointer, isMessageEnd: Bool, isText: Bool, into output: inout Output
    ) -> MessageInflater.Result {
        usedSinceCheck = true
        released = false
        return inflater.inflate(input, isMessageEnd: isMessageEnd, isText: isText, into: &output)
    }

    /// Called once a second by the owner's memory trim: once `idleChecks` calls in a row find
    /// that no message went through, frees the deflaters (268 KB each at zlib's defaults) and
    /// swaps the inflater for a fresh one, dropping its 32 KiB window (allocated again at its
    /// first output). They are made again on first use, for about 1 µs and one allocation
    /// (bench/README.md), so a worker that stops compressing keeps no zlib memory, and one that
    /// compresses now and then re-makes its streams at most once per quiet spell. Returns
    /// whether it released anything.
    /// Whether `releaseIfIdle` would free something once the streams stay unused.
    public var holdsStreams: Bool { !released }

    public mutating func releaseIfIdle(idleChecks required: UInt8 = 2) -> Bool {
        if usedSinceCheck {
            usedSinceCheck = false
            idleChecks = 0
            return false
        }
        if idleChecks < required { idleChecks += 1 }
        guard idleChecks >= required, !released else { return false }
        for slot in 0..<Self.deflaterSlots where created & (1 << slot) != 0 {
            (deflaters + slot).deinitialize(count: 1)
        }
        created = 0
        if let fresh = MessageInflater(windowBits: 15, contextTakeover: false, maxMessageSizeBytes: maxMessageSizeBytes,
                                       meter: meter) {
            inflater = fresh
        }
        released = true
        return true
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
