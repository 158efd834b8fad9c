import WebSocketCodec
import WebSocketCompression

/// A client thread's permessage-deflate (`--deflate`): one compressor and one decompressor
/// for all of the thread's connections, reset after every message, which the offer's
/// `server_no_context_takeover` and `client_no_context_takeover` allow (the server's shared
/// mode does the same per worker). No zlib state is kept per connection. Owned by one
/// `ClientWorker`; each call handles one whole message.
final class ClientDeflate {
    private var streams: SharedCompressionStreams
    /// The last message `compress` wrote, until the next call.
    private var compressed = GrowableBuffer(capacity: 4096)
    /// The last message `inflate` wrote, until the next call; it never grows past the largest
    /// message the run expects (the inflater fails a longer one with 1009 first).
    private var inflated: GrowableBuffer
    /// The gathering buffer a compressed message that came in pieces may fill, at most: its
    /// inflated size is bounded by `maxMessageBytes`, and DEFLATE adds at most 5 bytes per
    /// 16 KiB stored block to data it cannot compress (plus the block headers).
    let maxCompressedBytes: Int

    /// What `inflate` made of a message.
    enum Inflated {
        case message(UnsafeRawBufferPointer)
        /// The server sent something the thread cannot accept: the reason to fail it with.
        case failure(String)
    }

    /// nil when zlib cannot allocate the streams.
    init?(maxMessageBytes: Int) {
        guard let streams = SharedCompressionStreams(maxMessageSizeBytes: maxMessageBytes) else { return nil }
        self.streams = streams
        inflated = GrowableBuffer(capacity: min(maxMessageBytes, 64 << 10), maxCapacity: maxMessageBytes)
        maxCompressedBytes = maxMessageBytes + maxMessageBytes / 1024 + 1024
    }

    /// Compresses a whole message (its frame gets RSV1); nil when zlib or memory failed.
    /// No `client_max_window_bits` was offered, so the window is zlib's largest.
    func compress(_ message: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        compressed.removeAll()
        guard streams.compress(message, windowBits: 15, into: &compressed) else { return nil }
        return compressed.bytes
    }

    /// Inflates the payload of a whole compressed message.
    func inflate(_ payload: UnsafeRawBufferPointer, isText: Bool) -> Inflated {
        inflated.removeAll()
        switch streams.inflate(payload, isMessageEnd: true, isText: isText, into: &inflated) {
        case .messageEnd: return .message(inflated.bytes)
        case .failure(let code): return .failure("INFLATE_\(code.rawValue)")
        case .outputUnavailable: return .failure("INFLATE_NO_MEMORY")
        case .needMore: preconditionFailure("inflate was given a whole message")
        }
    }
}
