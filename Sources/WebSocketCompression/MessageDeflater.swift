import CZlib
import WebSocketCodec

/// Compresses WebSocket messages for permessage-deflate (RFC 7692 section 7.2.1): raw DEFLATE
/// (no zlib header), each message ended by a sync flush whose trailing `00 00 FF FF` is removed.
///
/// One deflater is one zlib stream. Without context takeover it is reset after every message,
/// so one deflater serves any number of connections one message at a time (a worker's shared
/// stream) and a message's compressed bytes are the same whoever receives them; with context
/// takeover it belongs to one connection and later messages refer back to earlier ones.
///
/// The compressed bytes go to a caller-supplied `CompressionOutput`; the deflater allocates
/// nothing after `init` (zlib's state is allocated once, there).
public struct MessageDeflater: ~Copyable {
    /// zlib settings for a deflate stream.
    public struct Configuration: Sendable, Equatable {
        /// The LZ77 window, in bits (8...15): at most the agreed `server_max_window_bits`.
        public var windowBits: Int
        /// zlib's memLevel (1...9): the hash table and pending buffer grow with it.
        public var memoryLevel: Int
        /// zlib's level (0...9), or -1 for its default (6).
        public var level: Int

        public init(windowBits: Int = 15, memoryLevel: Int = 8, level: Int = -1) {
            precondition((8...15).contains(windowBits), "window bits must be 8...15")
            precondition((1...9).contains(memoryLevel), "memLevel must be 1...9")
            precondition((-1...9).contains(level), "level must be -1...9")
            self.windowBits = windowBits
            self.memoryLevel = memoryLevel
            self.level = level
        }

        /// The window zlib is asked for. zlib's raw deflate refuses 8 bits (since 1.2.9), so 8
        /// becomes 9. That is safe for a peer that sized its inflater to 8 bits: zlib never
        /// emits a distance beyond its window minus 262 bytes (MAX_DIST, w_size -
        /// MIN_LOOKAHEAD), which for a 512-byte window is 250, inside the peer's 256. (An
        /// 8-bit zlib window would make that bound negative: the "256-byte window bug" zlib
        /// refuses it for.) The tests inflate 8-bit output with an 8-bit window byte by byte.
        public var zlibWindowBits: Int { max(windowBits, 9) }

        /// A worker's shared stream: zlib's defaults (its memory is paid once per worker).
        public static let shared = Configuration()
        /// A dedicated connection's stream: issue 16's bound, an 11-bit window and memLevel 4.
        public static let dedicated = Configuration(windowBits: 11, memoryLevel: 4)
    }

    /// `00 00 FF FF`: the LEN and NLEN of the empty stored block a sync flush ends with.
    static let flushTail: UInt32 = 0xFFFF_0000  // the four bytes loaded little-endian
    /// A message with no bytes compresses to one byte (RFC 7692 section 7.2.3.6).
    static let emptyMessage: UInt8 = 0x00
    /// Room kept past zlib's bound for the flush marker (zlib asks for more than 6 bytes).
    static let flushSlackBytes = 16

    let stream: UnsafeMutablePointer<z_stream>
    public let configuration: Configuration
    /// Whether messages may refer back to earlier ones; false resets after every message.
    public let contextTakeover: Bool
    /// Keeps the meter alive as long as zlib may call it.
    let meter: ZlibMemoryMeter?
    /// Input bytes of the message being compressed (pieces so far).
    public private(set) var messageInputBytes = 0
    /// Output bytes of the message being compressed, before the tail is removed.
    var messageOutputBytes = 0
    /// The last four bytes written for this message, little-endian, oldest first.
    var lastFourBytes: UInt32 = 0

    /// Creates the zlib stream; nil when zlib cannot allocate its state. `meter` counts the
    /// memory zlib allocates for this stream.
    public init?(configuration: Configuration = .shared, contextTakeover: Bool, meter: ZlibMemoryMeter? = nil) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        ZlibMemoryMeter.install(meter, on: stream)
        let status = czlib_deflateInit2(
            stream, Int32(configuration.level), -Int32(configuration.zlibWindowBits),
            Int32(configuration.memoryLevel), Z_DEFAULT_STRATEGY)
        guard status == Z_OK else {
            stream.deallocate()
            return nil
        }
        self.configuration = configuration
        self.contextTakeover = contextTakeover
        self.meter = meter
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
    }

    /// A connection's own deflater for what its handshake agreed: context takeover, the
    /// agreed `server_max_window_bits`, memLevel and level from `base` (issue 16's dedicated
    /// bound by default). Only for a connection whose parameters need one.
    public init?(connection parameters: DeflateParameters, base: Configuration = .dedicated, meter: ZlibMemoryMeter? = nil) {
        precondition(parameters.needsConnectionDeflater, "no context takeover: use the worker's shared deflater")
        var configuration = base
        configuration.windowBits = min(base.windowBits, Int(parameters.serverMaxWindowBits))
        self.init(configuration: configuration, contextTakeover: true, meter: meter)
    }

    /// Compresses `input`, the next piece of the current message, and appends what zlib
    /// produces to `output`. The last piece (`isMessageEnd`, the usual case being a whole
    /// message in one call) ends the message: a sync flush, its `00 00 FF FF` removed from
    /// `output`, and a reset unless the stream keeps context.
    ///
    /// Returns false when `output` could not give space: the message is abandoned (the stream
    /// is reset, which a peer keeping context cannot notice: later messages just cannot refer
    /// to earlier ones) and the caller should send it uncompressed or fail.
    public mutating func compress<Output: CompressionOutput & ~Copyable>(
        _ input: UnsafeRawBufferPointer, isMessageEnd: Bool = true, into output: inout Output
    ) -> Bool {
        if isMessageEnd && messageInputBytes == 0 && input.count == 0 {
            // zlib refuses a flush with nothing new since the last one (Z_BUF_ERROR) and would
            // write nothing, but an empty message must still be one empty block's first byte.
            guard let space = output.freeSpace(minimumBytes: 1) else { return abandon() }
            space[0] = Self.emptyMessage
            output.didWrite(1)
            finishMessage()
            return true
        }
        messageInputBytes += input.count
        var remaining = input
        repeat {
            // zlib's counters are 32 bits: feed at most 1 GiB per call.
            let piece = UnsafeRawBufferPointer(rebasing: remaining[..<min(remaining.count, 1 << 30)])
            remaining = UnsafeRawBufferPointer(rebasing: remaining[piece.count...])
            let flush = isMessageEnd && remaining.isEmpty ? Z_SYNC_FLUSH : Z_NO_FLUSH
            guard deflate(piece, flush: flush, into: &output) else { return abandon() }
        } while !remaining.isEmpty
        if isMessageEnd {
            // RFC 7692 section 7.2.1: remove the 4 octets 00 00 FF FF the flush ended with.
            precondition(messageOutputBytes >= 5 && lastFourBytes == Self.flushTail,
                         "a sync flush ends with an empty stored block")
            output.discardLast(4)
            finishMessage()
        }
        return true
    }

    /// Drops the message in progress (a connection closed mid-message); the next message
    /// starts on an empty window.
    public mutating func reset() {
        let status = deflateReset(stream)
        assert(status == Z_OK)
        messageInputBytes = 0
        messageOutputBytes = 0
        lastFourBytes = 0
    }

    /// Runs zlib over `input` until it has taken all of it and, for a flush, written all of
    /// its output. False when the output cannot grow.
    mutating func deflate<Output: CompressionOutput & ~Copyable>(
        _ input: UnsafeRawBufferPointer, flush: Int32, into output: inout Output
    ) -> Bool {
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(input.count)
        // One reservation normally holds everything: zlib's bound for this input, plus the
        // flush marker.
        var wanted = Int(deflateBound(stream, uLong(input.count))) + Self.flushSlackBytes
        while true {
            guard let space = output.freeSpace(minimumBytes: wanted) else { return false }
            let usable = min(space.count, Int(UInt32.max))
            stream.pointee.next_out = space.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_out = uInt(usable)
            let status = CZlib.deflate(stream, flush)
            // Z_BUF_ERROR: nothing to do (no input, nothing pending); not an error.
            precondition(status == Z_OK || status == Z_BUF_ERROR, "deflate failed: \(status)")
            let written = usable - Int(stream.pointee.avail_out)
            if written > 0 {
                record(UnsafeRawBufferPointer(rebasing: space[..<written]))
                output.didWrite(written)
            }
            // Space left over means zlib has taken all input and written all it had.
            if stream.pointee.avail_out > 0 {
                assert(stream.pointee.avail_in == 0)
                return true
            }
            wanted = Self.flushSlackBytes * 64
        }
    }

    /// Keeps the last four output bytes, which may straddle reservations, to check the tail.
    @inline(__always)
    mutating func record(_ written: UnsafeRawBufferPointer) {
        messageOutputBytes += written.count
        let start = max(0, written.count - 4)
        for index in start..<written.count {
            lastFourBytes = lastFourBytes >> 8 | UInt32(written[index]) << 24
        }
    }

    mutating func finishMessage() {
        if contextTakeover {
            messageInputBytes = 0
            messageOutputBytes = 0
            lastFourBytes = 0
        } else {
            reset()
        }
    }

    mutating func abandon() -> Bool {
        reset()
        return false
    }
}
