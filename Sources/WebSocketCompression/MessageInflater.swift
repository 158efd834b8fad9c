import CZlib
import WebSocketCodec

/// Inflates permessage-deflate messages (RFC 7692 section 7.2.2) as their frames arrive, with
/// a hard bound on each message's inflated size.
///
/// Feed a compressed message's payload in pieces (the chunks `FrameDecoder` reports with
/// `isCompressed`), the last one with `isMessageEnd`; the inflater appends `00 00 FF FF` at the
/// end as the RFC says and writes the inflated bytes to a caller-supplied `CompressionOutput`.
///
/// - The inflated size never passes `maxMessageSizeBytes`: zlib is never given more output
///   space than the message's remaining allowance, and when the allowance is used up one
///   more byte is asked for into a one-byte probe on the stack. If zlib can produce it, the
///   message is too big: 1009, with nothing beyond the limit written to (or allocated by)
///   the output. A 1 GiB bomb costs the time to inflate the limit, no more.
/// - Text is validated as UTF-8 as it is inflated (the frame decoder cannot: it sees DEFLATE).
/// - Corrupt DEFLATE data, or a message that does not end on a block boundary after the tail,
///   fails with 1007. RFC 7692 names no code for a message that does not decompress; it
///   only says to fail the connection, and RFC 6455 section 7.4.1 defines 1007 for "data
///   within a message that was not consistent with the type of the message", which is what
///   a payload that does not decode under its negotiated encoding is. The framing itself was
///   valid, so 1002 (protocol error) would misplace the fault; RFC 7692's own protocol
///   errors (RSV1 on a continuation or control frame) are 1002, in `FrameDecoder`. Node's
///   ws closes with 1007 here too.
///
/// A peer that compresses with a larger window than it agreed to breaks RFC 7692 section
/// 7.1.2.2; zlib rejects its references beyond the inflater's window ("too far back", 1007)
/// unless the bytes referred to were inflated in the same zlib call, so such a message may be
/// refused or accepted depending on how its frames arrive. Either is safe: memory stays that
/// of the agreed window. With a 15-bit window (the shared inflater) it never happens: DEFLATE
/// cannot refer further than 32 KiB.
///
/// Without context takeover the stream is reset after every message, so one inflater per
/// worker serves every connection, provided a message is fed without another message's
/// pieces in between (the engine inflates a fragmented message's pieces once it is whole,
/// or keeps a dedicated inflater for the connection). With context takeover the inflater
/// belongs to one connection. After a failure the stream is reset either way.
public struct MessageInflater: ~Copyable {
    /// What a call did.
    public enum Result: Equatable, Sendable {
        /// The piece was inflated; the message goes on.
        case needMore
        /// The message ended and is whole in the output.
        case messageEnd
        /// The message cannot be accepted: close with this code (1007 corrupt or not UTF-8,
        /// 1009 too big). The stream has been reset.
        case failure(CloseCode)
        /// The output could not give space (memory budget or allocation failure). The
        /// stream has been reset; the caller picks the close code (1013 or 1011).
        case outputUnavailable
    }

    /// RFC 7692 section 7.2.2: appended to a message's payload before inflating.
    static let tail: (UInt8, UInt8, UInt8, UInt8) = (0x00, 0x00, 0xFF, 0xFF)
    /// Smallest output space asked for at a time; the requests then grow with the message
    /// (the bytes inflated so far), up to its remaining allowance.
    public static let minimumOutputStepBytes = 4096

    let stream: UnsafeMutablePointer<z_stream>
    /// The largest window the peer may compress with, in bits (8...15).
    public let windowBits: Int
    public let contextTakeover: Bool
    /// Largest inflated message accepted, in bytes.
    public let maxMessageSizeBytes: Int
    let meter: ZlibMemoryMeter?
    /// Bytes inflated for the current message.
    public private(set) var messageBytes = 0
    /// Compressed bytes fed for the current message.
    public private(set) var messageInputBytes = 0
    var utf8 = UTF8Validator()
    /// The last zlib call ended a DEFLATE stream (a block with BFINAL set) and the stream was
    /// reset after it: the position is a block boundary though zlib's flags cannot say so.
    var atStreamStart = true

    /// Creates the zlib stream (zlib allocates its window later, on the first output); nil
    /// when zlib cannot allocate its state. `windowBits` is at least the agreed
    /// `client_max_window_bits` (15 reads any peer).
    public init?(windowBits: Int = 15, contextTakeover: Bool, maxMessageSizeBytes: Int, meter: ZlibMemoryMeter? = nil) {
        precondition((8...15).contains(windowBits), "window bits must be 8...15")
        precondition(maxMessageSizeBytes > 0)
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        ZlibMemoryMeter.install(meter, on: stream)
        guard czlib_inflateInit2(stream, -Int32(windowBits)) == Z_OK else {
            stream.deallocate()
            return nil
        }
        self.windowBits = windowBits
        self.contextTakeover = contextTakeover
        self.maxMessageSizeBytes = maxMessageSizeBytes
        self.meter = meter
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
    }

    /// A connection's own inflater for what its handshake agreed: context takeover and a
    /// window of the agreed `client_max_window_bits`. Only for a connection whose parameters
    /// need one.
    public init?(connection parameters: DeflateParameters, maxMessageSizeBytes: Int, meter: ZlibMemoryMeter? = nil) {
        precondition(parameters.needsConnectionInflater, "no context takeover: use the worker's shared inflater")
        self.init(windowBits: Int(parameters.clientMaxWindowBits), contextTakeover: true,
                  maxMessageSizeBytes: maxMessageSizeBytes, meter: meter)
    }

    /// Inflates `input`, the next piece of a compressed message's payload, appending the
    /// inflated bytes to `output`. `isMessageEnd` marks the last piece (it may be empty);
    /// `isText` asks for UTF-8 validation of the inflated bytes (pass the same for every
    /// piece of a message).
    public mutating func inflate<Output: CompressionOutput & ~Copyable>(
        _ input: UnsafeRawBufferPointer, isMessageEnd: Bool, isText: Bool, into output: inout Output
    ) -> Result {
        messageInputBytes += input.count
        if let failure = run(input, isText: isText, into: &output) { return fail(failure) }
        guard isMessageEnd else { return .needMore }
        if messageInputBytes == 0 {
            // No payload at all: not what a compressor writes for an empty message (0x00,
            // section 7.2.3.6), but unambiguous, and some clients send it. The tail alone
            // would leave the stream inside a stored block's header: leave the stream alone.
            finishMessage()
            return .messageEnd
        }
        let failure: Result? = withUnsafeBytes(of: Self.tail) { tail in
            if let failure = run(tail, isText: isText, into: &output) { return failure }
            // The tail completes an empty stored block: a well-formed message now stands
            // between blocks. Anything else is a truncated or corrupt message.
            let betweenBlocks = atStreamStart || stream.pointee.data_type & 128 != 0
            guard stream.pointee.avail_in == 0, betweenBlocks else { return .failure(.invalidPayload) }
            if isText && !utf8.isComplete { return .failure(.invalidPayload) }
            return nil
        }
        if let failure { return fail(failure) }
        finishMessage()
        return .messageEnd
    }

    /// Drops the message in progress (its connection closed, or failed elsewhere).
    public mutating func reset() {
        let status = inflateReset(stream)
        assert(status == Z_OK)
        messageBytes = 0
        messageInputBytes = 0
        utf8 = UTF8Validator()
        atStreamStart = true
    }

    /// Feeds `input` to zlib until it is all taken and all output is written. Returns nil on
    /// success, else what to report.
    mutating func run<Output: CompressionOutput & ~Copyable>(
        _ input: UnsafeRawBufferPointer, isText: Bool, into output: inout Output
    ) -> Result? {
        guard input.count > 0 else { return nil }
        var remaining = input
        while !remaining.isEmpty {
            // zlib's counters are 32 bits: at most 1 GiB per call.
            let piece = UnsafeRawBufferPointer(rebasing: remaining[..<min(remaining.count, 1 << 30)])
            remaining = UnsafeRawBufferPointer(rebasing: remaining[piece.count...])
            stream.pointee.next_in = UnsafeMutablePointer(mutating: piece.baseAddress!.assumingMemoryBound(to: Bytef.self))
            stream.pointee.avail_in = uInt(piece.count)
            if let failure = drain(isText: isText, into: &output) { return failure }
        }
        return nil
    }

    /// Inflates what `stream` holds as input into `output`, within the allowance.
    mutating func drain<Output: CompressionOutput & ~Copyable>(
        isText: Bool, into output: inout Output
    ) -> Result? {
        while true {
            let allowance = maxMessageSizeBytes - messageBytes
            assert(allowance >= 0)
            if allowance == 0 {
                // The limit is reached: can zlib produce one more byte? Ask into a probe.
                var probe: UInt8 = 0
                let (status, produced) = withUnsafeMutableBytes(of: &probe) { probeBuffer in
                    step(into: probeBuffer)
                }
                if produced > 0 { return .failure(.messageTooBig) }
                if let failure = check(status) { return failure }
                // Nothing more came out: either all input is taken, or zlib needs more.
                if stream.pointee.avail_in == 0 || status == Z_BUF_ERROR { return nil }
                continue
            }
            let wanted = min(allowance, max(Self.minimumOutputStepBytes, messageBytes))
            guard let space = output.freeSpace(minimumBytes: wanted) else { return .outputUnavailable }
            // Never more than the allowance, however much space the output gave.
            let usable = UnsafeMutableRawBufferPointer(rebasing: space[..<min(space.count, allowance, Int(UInt32.max))])
            let availableBefore = stream.pointee.avail_in
            let (status, produced) = step(into: usable)
            if produced > 0 {
                let inflated = UnsafeRawBufferPointer(rebasing: usable[..<produced])
                if isText && !utf8.validate(inflated) { return .failure(.invalidPayload) }
                output.didWrite(produced)
                messageBytes += produced
            }
            if let failure = check(status) { return failure }
            if stream.pointee.avail_out > 0 {
                // zlib had room left: it has taken all input it can (or hit a stream end,
                // after which the rest is fed to the reset stream).
                if stream.pointee.avail_in == 0 { return nil }
                if status != Z_STREAM_END && produced == 0 && stream.pointee.avail_in == availableBefore {
                    return nil  // no progress possible (cannot happen with input and room)
                }
            }
        }
    }

    /// One zlib call into `space`: its status and the bytes it wrote. A stream end (a block
    /// with BFINAL set, RFC 7692 section 7.2.3.4) resets the stream so any following bytes
    /// start a new one.
    @inline(__always)
    mutating func step(into space: UnsafeMutableRawBufferPointer) -> (Int32, Int) {
        stream.pointee.next_out = space.baseAddress!.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = uInt(space.count)
        let status = CZlib.inflate(stream, Z_SYNC_FLUSH)
        let produced = space.count - Int(stream.pointee.avail_out)
        atStreamStart = false
        if status == Z_STREAM_END {
            let resetStatus = inflateReset(stream)
            assert(resetStatus == Z_OK)
            atStreamStart = true
        }
        return (status, produced)
    }

    /// Maps a zlib status to a failure, or nil when inflating may go on.
    @inline(__always)
    func check(_ status: Int32) -> Result? {
        switch status {
        case Z_OK, Z_BUF_ERROR, Z_STREAM_END: return nil
        case Z_DATA_ERROR: return .failure(.invalidPayload)
        case Z_MEM_ERROR: return .outputUnavailable  // zlib could not allocate its window
        default: return .failure(.internalError)  // Z_NEED_DICT, Z_STREAM_ERROR: not for raw streams
        }
    }

    mutating func finishMessage() {
        if contextTakeover {
            messageBytes = 0
            messageInputBytes = 0
            utf8 = UTF8Validator()
        } else {
            reset()
        }
    }

    mutating func fail(_ result: Result) -> Result {
        reset()
        return result
    }
}
