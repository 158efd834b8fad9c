import WebSocketCodec
import WebSocketCompression

/// A client thread's permessage-deflate (`--deflate`). The thread compresses every message on
/// its own (no context takeover, which a client may always choose) with one compressor per
/// window size, and inflates with one decompressor reset after every message wherever the
/// server said it resets too (`server_no_context_takeover`, which Myriad's shared mode always
/// answers): then nothing is kept per connection, as in the server's shared mode. A server
/// that keeps context for what it sends (Myriad's dedicated mode) needs a decompressor of the
/// connection's own, made when its first compressed message arrives and dropped with the
/// connection. Owned by one `ClientWorker`; each call handles one whole message.
final class ClientDeflate {
    private var streams: SharedCompressionStreams
    /// Connections whose agreement needs more than the thread's streams: a window bound for
    /// what the client sends, or a server that keeps context (then their own inflater).
    private var connections: [UInt32: ConnectionStreams] = [:]
    let maxMessageBytes: Int

    final class ConnectionStreams {
        let parameters: DeflateParameters
        var inflater: MessageInflater?

        init(parameters: DeflateParameters) { self.parameters = parameters }
    }
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
        self.maxMessageBytes = maxMessageBytes
        inflated = GrowableBuffer(capacity: min(maxMessageBytes, 64 << 10), maxCapacity: maxMessageBytes)
        maxCompressedBytes = maxMessageBytes + maxMessageBytes / 1024 + 1024
    }

    /// A connection agreed to `parameters`: remember what it needs beyond the thread's streams.
    func open(slot: UInt32, _ parameters: DeflateParameters) {
        let needsOwn = !parameters.serverNoContextTakeover || parameters.clientMaxWindowBits < 15
        connections[slot] = needsOwn ? ConnectionStreams(parameters: parameters) : nil
    }

    /// The connection on `slot` is gone.
    func close(slot: UInt32) {
        if !connections.isEmpty { connections[slot] = nil }
    }

    /// Connections holding streams of their own now.
    var connectionsWithOwnStreams: Int { connections.count }

    /// Compresses a whole message for the connection on `slot` (its frame gets RSV1), within
    /// the window the server allowed it; nil when zlib or memory failed.
    func compress(_ message: UnsafeRawBufferPointer, slot: UInt32) -> UnsafeRawBufferPointer? {
        compressed.removeAll()
        let windowBits = connections[slot]?.parameters.clientMaxWindowBits ?? 15
        guard streams.compress(message, windowBits: windowBits, into: &compressed) else { return nil }
        return compressed.bytes
    }

    /// Inflates the payload of a whole compressed message that came on `slot`.
    func inflate(_ payload: UnsafeRawBufferPointer, isText: Bool, slot: UInt32) -> Inflated {
        inflated.removeAll()
        if let own = connections[slot], !own.parameters.serverNoContextTakeover {
            if own.inflater == nil {
                own.inflater = MessageInflater(windowBits: Int(own.parameters.serverMaxWindowBits), contextTakeover: true,
                                               maxMessageSizeBytes: maxMessageBytes)
                if own.inflater == nil { return .failure("INFLATE_NO_MEMORY") }
            }
            return result(own.inflater!.inflate(payload, isMessageEnd: true, isText: isText, into: &inflated))
        }
        return result(streams.inflate(payload, isMessageEnd: true, isText: isText, into: &inflated))
    }

    private func result(_ step: MessageInflater.Result) -> Inflated {
        switch step {
        case .messageEnd: return .message(inflated.bytes)
        case .failure(let code): return .failure("INFLATE_\(code.rawValue)")
        case .outputUnavailable: return .failure("INFLATE_NO_MEMORY")
        case .needMore: preconditionFailure("inflate was given a whole message")
        }
    }
}
