/// Limits a decoder enforces. Shared by every connection of a worker, so it is passed to
/// each call instead of being stored in the per-connection `FrameDecoder`.
public struct FrameDecoderConfiguration: Sendable {
    /// Which side we are: a server requires masked frames, a client rejects them.
    public var role: Role
    /// Largest data message (sum of its frames' payloads) accepted; beyond it: close 1009.
    public var maxMessageSizeBytes: UInt64
    /// Largest compressed message (permessage-deflate, RFC 7692) accepted, counted on the
    /// wire; beyond it: close 1009. The inflated size is bounded by `maxMessageSizeBytes`
    /// while inflating; this bound only keeps a stream of compressed bytes that inflate to
    /// little (empty blocks) from running on forever. See `compressedAllowance(for:)`.
    public var maxCompressedMessageSizeBytes: UInt64

    public init(role: Role, maxMessageSizeBytes: UInt64, maxCompressedMessageSizeBytes: UInt64? = nil) {
        precondition(maxMessageSizeBytes > 0, "maxMessageSizeBytes must be positive")
        self.role = role
        self.maxMessageSizeBytes = maxMessageSizeBytes
        self.maxCompressedMessageSizeBytes = maxCompressedMessageSizeBytes
            ?? FrameDecoderConfiguration.compressedAllowance(for: maxMessageSizeBytes)
    }

    /// How long a compressed message may be when its inflated form may be `maxMessageSizeBytes`:
    /// DEFLATE can expand incompressible data (stored blocks cost 5 bytes per at most 64 KiB;
    /// zlib's deflateBound allows about 4% for small memLevels) and every flushed fragment
    /// adds about 5 bytes, so the limit plus 1/16 plus 4 KiB (saturating).
    public static func compressedAllowance(for maxMessageSizeBytes: UInt64) -> UInt64 {
        let (sum, overflow) = maxMessageSizeBytes.addingReportingOverflow(maxMessageSizeBytes / 16 + 4096)
        return overflow ? UInt64.max : sum
    }
}

/// One piece of a frame's payload, unmasked in place in the caller's buffer.
///
/// A frame produces one chunk when it lies whole in the buffer, and several when it arrives
/// in pieces; an empty frame produces one empty chunk. `bytes` points into the buffer passed
/// to `FrameDecoder.next` and is valid only as long as that buffer.
public struct FrameChunk {
    /// The frame's own opcode; data frames report the message's opcode (text or binary)
    /// here even when the frame on the wire is a continuation.
    public var opcode: Opcode
    public var bytes: UnsafeMutableRawBufferPointer
    /// First chunk of its frame.
    public var isFrameStart: Bool
    /// Last chunk of its frame.
    public var isFrameEnd: Bool
    /// First chunk of a message: of the first frame of a data message, or of a control frame.
    public var isMessageStart: Bool
    /// Last chunk of a message: the end of a FIN data frame, or the end of a control frame.
    public var isMessageEnd: Bool
    /// Data chunks of a message whose first frame had RSV1 set under permessage-deflate
    /// (RFC 7692 section 6): the payload is compressed and must be inflated, and a text
    /// message's UTF-8 has not been validated (the inflating layer validates what it inflates).
    public var isCompressed: Bool
    /// For the last chunk of a close frame: the code it carried (1005 when it carried none).
    public var closeCode: CloseCode
}

/// The result of one `FrameDecoder.next` call.
public enum DecodeStep {
    /// A payload piece; call `next` again for more.
    case chunk(FrameChunk)
    /// Every byte of the buffer was consumed (partial headers are kept inside the decoder).
    case needMore
    /// The stream broke the protocol: close with this code and stop reading. Sticky.
    case failure(CloseCode)
}

/// Incremental, in-place WebSocket frame decoder (RFC 6455 section 5).
///
/// The decoder is the per-connection parsing state (64 bytes). A server need not keep one per
/// idle connection: between messages it is at rest (`isAtRest`), which a fresh decoder
/// reproduces. It never allocates and never copies a payload:
/// it walks the caller's buffer, unmasks payload bytes where they lie, and reports pieces of
/// payload as `FrameChunk`s. Only a frame header split across buffers (at most 14 bytes) is
/// copied, into the decoder itself. Reassembling fragmented messages is the caller's job;
/// everything RFC 6455 asks a receiver to reject is rejected here, with its close code:
///
/// - 1002: RSV bits, except RSV1 on the first frame of a data message once permessage-deflate
///   is agreed (`acceptsCompressedMessages`, RFC 7692 section 6), reserved opcodes, control frames that are
///   fragmented or longer than 125 bytes, unmasked client frames (server role) or masked
///   server frames (client role), a 64-bit length with the top bit set, a continuation with
///   no message open, a new data frame inside an open fragmented message, a close payload of
///   1 byte, a close code not valid on the wire.
/// - 1007: text that is not UTF-8 (detected at the first impossible byte, across fragments
///   and pieces), a text message ending mid-sequence, a close reason that is not UTF-8.
///   Compressed text is not validated here: its bytes on the wire are DEFLATE, and the layer
///   that inflates it validates the inflated text with its own `UTF8Validator`.
/// - 1009: a data message longer than `maxMessageSizeBytes` (a compressed one: longer than
///   `maxCompressedMessageSizeBytes` on the wire), detected from frame headers before the
///   payload arrives.
public struct FrameDecoder: Sendable {
    // Frame header bytes seen so far when a header straddles two buffers (<= 14 bytes).
    @usableFromInline var headerLow: UInt64 = 0
    @usableFromInline var headerHigh: UInt64 = 0
    @usableFromInline var headerCount: UInt8 = 0
    @usableFromInline var inPayload = false
    @usableFromInline var frameStartPending = false
    @usableFromInline var frameFin = false
    @usableFromInline var frameOpcode: UInt8 = 0
    @usableFromInline var frameMasked = false
    @usableFromInline var maskOffset: UInt8 = 0
    /// Opcode of the data message in progress (text or binary), 0 when none is open.
    @usableFromInline var messageOpcode: UInt8 = 0
    @usableFromInline var failedCode: UInt16 = 0
    /// Close code bytes collected so far (the first two payload bytes of a close frame).
    @usableFromInline var closeCodeValue: UInt16 = 0
    @usableFromInline var maskKey: UInt32 = 0
    @usableFromInline var payloadRemaining: UInt64 = 0
    /// Close frames only: payload bytes seen, to find where the 2-byte code ends.
    @usableFromInline var payloadSeen: UInt8 = 0
    // The two flags below sit in the padding after `payloadSeen`: the decoder stays 64 bytes.
    /// permessage-deflate was agreed for this connection: RSV1 may start a data message.
    @usableFromInline var compressionAgreed = false
    /// The open data message's first frame had RSV1 set.
    @usableFromInline var messageCompressed = false
    /// Bytes of the open data message so far, counted from frame headers.
    @usableFromInline var messageLength: UInt64 = 0
    @usableFromInline var textUTF8 = UTF8Validator()
    @usableFromInline var closeReasonUTF8 = UTF8Validator()

    public init() {}

    /// Whether RSV1 may mark a data message as compressed: set once the opening handshake
    /// agreed permessage-deflate (RFC 7692), before the first frame is decoded. Off, any RSV
    /// bit fails the connection with 1002 (RFC 6455 section 5.2).
    public var acceptsCompressedMessages: Bool {
        get { compressionAgreed }
        set { compressionAgreed = newValue }
    }

    /// True between the first and the last frame of a fragmented data message.
    public var isInsideFragmentedMessage: Bool { messageOpcode != 0 }

    /// True when the decoder stopped between frames (no partial header or payload pending).
    public var isAtFrameBoundary: Bool { !inPayload && headerCount == 0 }

    /// True when the decoder holds nothing a fresh one lacks: between frames, no data message
    /// open, not failed. A fresh `FrameDecoder()` with the same `acceptsCompressedMessages`
    /// then decodes what follows exactly as this one would (every other field is reset at the
    /// next frame's header), so a server may keep only that one flag for an idle connection.
    public var isAtRest: Bool {
        !inPayload && headerCount == 0 && !frameStartPending && messageOpcode == 0 && failedCode == 0
    }

    /// Decodes from `buffer[offset...]`, advancing `offset` past what it consumed, and
    /// returns the next payload chunk, `.needMore` once the buffer is used up, or a failure.
    ///
    /// Postcondition: `offset <= buffer.count`; on `.needMore`, `offset == buffer.count`.
    public mutating func next(
        _ buffer: UnsafeMutableRawBufferPointer,
        offset: inout Int,
        configuration: FrameDecoderConfiguration
    ) -> DecodeStep {
        precondition(offset >= 0 && offset <= buffer.count, "offset outside the buffer")
        if failedCode != 0 { return .failure(CloseCode(rawValue: failedCode)) }
        if !inPayload {
            guard let length = readHeader(buffer, offset: &offset) else {
                assert(offset == buffer.count)
                return .needMore
            }
            if let code = startFrame(length: length, configuration: configuration) {
                failedCode = code.rawValue
                return .failure(code)
            }
        }
        let available = UInt64(buffer.count &- offset)
        let take = Int(min(payloadRemaining, available))
        if take == 0 && payloadRemaining > 0 { return .needMore }
        let piece = UnsafeMutableRawBufferPointer(
            rebasing: buffer[offset..<(offset &+ take)])
        offset &+= take
        if frameMasked {
            maskOffset = UInt8(Masking.apply(key: maskKey, keyOffset: Int(maskOffset), to: piece))
        }
        payloadRemaining &-= UInt64(take)
        if let code = inspectPayload(UnsafeRawBufferPointer(piece)) {
            failedCode = code.rawValue
            return .failure(code)
        }
        return .chunk(finishChunk(piece))
    }

    // MARK: - Header

    /// Collects a whole frame header, from the buffer directly when it lies there whole,
    /// otherwise through the 14-byte accumulator. Returns the header's declared payload
    /// length once the header is complete; nil (having consumed everything) if it is not.
    @inline(__always)
    mutating func readHeader(_ buffer: UnsafeMutableRawBufferPointer, offset: inout Int) -> UInt64? {
        let available = buffer.count &- offset
        if headerCount == 0, available >= 2, let base = buffer.baseAddress {
            let b1 = base.load(fromByteOffset: offset &+ 1, as: UInt8.self)
            let needed = FrameDecoder.headerLength(secondByte: b1)
            if available >= needed {
                let header = UnsafeRawBufferPointer(start: base + offset, count: needed)
                offset &+= needed
                return parseHeader(header)
            }
        }
        // Slow path: the header straddles buffers.
        while offset < buffer.count {
            let byte = buffer[offset]
            offset &+= 1
            storeHeaderByte(byte, at: Int(headerCount))
            headerCount &+= 1
            if headerCount >= 2 {
                let needed = FrameDecoder.headerLength(secondByte: headerByte(at: 1))
                if Int(headerCount) == needed {
                    headerCount = 0
                    return withUnsafeBytes(of: (headerLow, headerHigh)) { raw in
                        parseHeader(UnsafeRawBufferPointer(rebasing: raw[0..<needed]))
                    }
                }
            }
        }
        return nil
    }

    /// Header size from the second byte: 2, plus 2 or 8 extended length bytes, plus 4 mask bytes.
    @inline(__always)
    static func headerLength(secondByte: UInt8) -> Int {
        var length = 2
        switch secondByte & 0x7F {
        case 126: length &+= 2
        case 127: length &+= 8
        default: break
        }
        if secondByte & 0x80 != 0 { length &+= 4 }
        return length
    }

    @inline(__always)
    mutating func storeHeaderByte(_ byte: UInt8, at index: Int) {
        assert(index < 16)
        if index < 8 {
            headerLow |= UInt64(byte) << UInt64(index &* 8)
        } else {
            headerHigh |= UInt64(byte) << UInt64((index &- 8) &* 8)
        }
    }

    @inline(__always)
    func headerByte(at index: Int) -> UInt8 {
        index < 8
            ? UInt8(truncatingIfNeeded: headerLow >> UInt64(index &* 8))
            : UInt8(truncatingIfNeeded: headerHigh >> UInt64((index &- 8) &* 8))
    }

    /// Records the fields of a complete header and returns its declared payload length.
    @inline(__always)
    mutating func parseHeader(_ header: UnsafeRawBufferPointer) -> UInt64 {
        headerLow = 0
        headerHigh = 0
        let b0 = header[0]
        let b1 = header[1]
        var index = 2
        var length = UInt64(b1 & 0x7F)
        if length == 126 {
            length = UInt64(header[2]) << 8 | UInt64(header[3])
            index = 4
        } else if length == 127 {
            length = 0
            for i in 2..<10 { length = length << 8 | UInt64(header[i]) }
            index = 10
        }
        frameMasked = b1 & 0x80 != 0
        if frameMasked {
            maskKey = header.loadUnaligned(fromByteOffset: index, as: UInt32.self).littleEndian
        }
        frameFin = b0 & 0x80 != 0
        frameOpcode = b0 & 0x0F
        // RSV bits are kept in frameOpcode's high nibble for startFrame to check and clear.
        frameOpcode |= b0 & 0x70
        return length
    }

    /// Validates a header against the protocol and the message state; returns the close
    /// code on violation. On success the decoder is positioned at the payload's first byte.
    @inline(__always)
    mutating func startFrame(length: UInt64, configuration: FrameDecoderConfiguration) -> CloseCode? {
        let rsv = frameOpcode & 0x70
        frameOpcode &= 0x0F
        guard let opcode = Opcode(rawValue: frameOpcode) else { return .protocolError }
        // RSV1 is the "Per-Message Compressed" bit once permessage-deflate is agreed, and only
        // on a message's first frame: never on a continuation or a control frame (RFC 7692
        // section 6.1). RSV2 and RSV3 mean nothing here.
        if rsv != 0 {
            guard rsv == 0x40, compressionAgreed, opcode == .text || opcode == .binary else {
                return .protocolError
            }
        }
        switch configuration.role {
        case .server: if !frameMasked { return .protocolError }
        case .client: if frameMasked { return .protocolError }
        }
        if length & (1 << 63) != 0 { return .protocolError }
        if opcode.isControl {
            if !frameFin || length > 125 { return .protocolError }
            if opcode == .close {
                if length == 1 { return .protocolError }
                closeCodeValue = 0
                closeReasonUTF8 = UTF8Validator()
            }
        } else {
            switch opcode {
            case .continuation:
                if messageOpcode == 0 { return .protocolError }
            default:
                if messageOpcode != 0 { return .protocolError }
                messageOpcode = opcode.rawValue
                messageLength = 0
                messageCompressed = rsv != 0
                textUTF8 = UTF8Validator()
            }
            let limit = messageCompressed
                ? configuration.maxCompressedMessageSizeBytes : configuration.maxMessageSizeBytes
            if length > limit &- messageLength { return .messageTooBig }
            messageLength &+= length
        }
        inPayload = true
        frameStartPending = true
        payloadRemaining = length
        payloadSeen = 0
        maskOffset = 0
        return nil
    }

    // MARK: - Payload

    /// Checks what the RFC asks of payload content: UTF-8 in text and close reasons, and a
    /// close code that may appear on the wire.
    @inline(__always)
    mutating func inspectPayload(_ piece: UnsafeRawBufferPointer) -> CloseCode? {
        let isLast = payloadRemaining == 0
        switch frameOpcode {
        case Opcode.continuation.rawValue, Opcode.text.rawValue:
            guard messageOpcode == Opcode.text.rawValue && !messageCompressed else { break }
            if !textUTF8.validate(piece) { return .invalidPayload }
            if isLast && frameFin && !textUTF8.isComplete { return .invalidPayload }
        case Opcode.close.rawValue:
            var reasonStart = 0
            while payloadSeen < 2 && reasonStart < piece.count {
                closeCodeValue = closeCodeValue << 8 | UInt16(piece[reasonStart])
                payloadSeen &+= 1
                reasonStart &+= 1
            }
            if payloadSeen == 2 && reasonStart > 0
                && !CloseCode(rawValue: closeCodeValue).isValidOnReceipt
            {
                return .protocolError
            }
            let reason = UnsafeRawBufferPointer(rebasing: piece[reasonStart...])
            if !closeReasonUTF8.validate(reason) { return .invalidPayload }
            if isLast && !closeReasonUTF8.isComplete { return .invalidPayload }
        default:
            break
        }
        return nil
    }

    @inline(__always)
    mutating func finishChunk(_ piece: UnsafeMutableRawBufferPointer) -> FrameChunk {
        let isFrameEnd = payloadRemaining == 0
        let isControl = frameOpcode & 0x8 != 0
        let isFrameStart = frameStartPending
        frameStartPending = false
        let opcode: Opcode
        let isMessageStart: Bool
        let isMessageEnd: Bool
        var closeCode = CloseCode.noStatusReceived
        var isCompressed = false
        if isControl {
            opcode = Opcode(rawValue: frameOpcode)!
            isMessageStart = isFrameStart
            isMessageEnd = isFrameEnd
            if opcode == .close && isFrameEnd && closeCodeValue != 0 {
                closeCode = CloseCode(rawValue: closeCodeValue)
            }
        } else {
            opcode = Opcode(rawValue: messageOpcode)!
            isMessageStart = isFrameStart && frameOpcode != Opcode.continuation.rawValue
            isMessageEnd = isFrameEnd && frameFin
            isCompressed = messageCompressed
            if isMessageEnd { messageOpcode = 0 }
        }
        if isFrameEnd { inPayload = false }
        return FrameChunk(
            opcode: opcode, bytes: piece,
            isFrameStart: isFrameStart, isFrameEnd: isFrameEnd,
            isMessageStart: isMessageStart, isMessageEnd: isMessageEnd,
            isCompressed: isCompressed, closeCode: closeCode)
    }
}
