import WebSocketCodec

/// A control frame (ping, pong, close) as the decoder hands it over, and what it asks of the
/// connection, for either role. The decoder has already checked the framing (FIN set, at most
/// 125 bytes, a close payload's code and UTF-8 reason) and unmasked it; a control frame may
/// still come in pieces when it straddles two receives, and may come between the fragments of
/// a data message. What each role then does (queue a masked or unmasked frame, move a
/// keep-alive deadline, count a round trip, notify a handler) is the role's; which of those
/// things to do is decided here, once.
package enum ControlFrame {
    /// A piece of a split control frame gathered.
    package enum Gathered {
        /// The frame is whole: its payload, in a pooled buffer the caller releases (empty,
        /// unallocated, for a frame with no payload).
        case whole(PooledBuffer)
        /// More pieces to come.
        case partial
        /// The pool could not hold 125 bytes: the connection cannot go on.
        case outOfMemory
    }

    /// Adds `chunk`'s bytes to `buffer` (the role's gathering buffer, empty at the frame's
    /// start) and hands the payload over at the frame's end. Frames in one piece never come
    /// here: they are read where they lie.
    package static func gather(_ chunk: FrameChunk, into buffer: inout PooledBuffer, pool: BufferPool) -> Gathered {
        assert(chunk.opcode.isControl && !(chunk.isFrameStart && chunk.isFrameEnd), "only split control frames are gathered")
        assert(!chunk.isFrameStart || !buffer.isAllocated, "a control frame starts with an empty gathering buffer")
        guard pool.append(UnsafeRawBufferPointer(chunk.bytes), to: &buffer) else { return .outOfMemory }
        guard chunk.isFrameEnd else { return .partial }
        let whole = buffer
        buffer = PooledBuffer()
        return .whole(whole)
    }

    /// What a whole control frame asks of the connection.
    package enum Action: Equatable, Sendable {
        /// Answer the ping: a pong with the same payload (section 5.5.3).
        case answerPing
        /// A ping after our close frame: no answer (section 5.5.1).
        case ignorePing
        /// A pong: the role's keep-alive or round-trip bookkeeping (an unsolicited pong is
        /// allowed, section 5.5.3, and must not count as an answer).
        case pong
        /// A close frame: the close handshake's step (`CloseHandshake`).
        case close(CloseHandshake.Step)
    }

    /// The action for a whole control frame of `opcode` (a close frame's code in `closeCode`),
    /// moving `handshake` on for a close frame.
    @inline(__always)
    package static func action(_ opcode: Opcode, closeCode: CloseCode, handshake: inout CloseHandshake) -> Action {
        switch opcode {
        case .ping: return handshake.answersPings ? .answerPing : .ignorePing
        case .pong: return .pong
        case .close: return .close(handshake.receive(code: closeCode))
        case .text, .binary, .continuation: preconditionFailure("\(opcode) is not a control frame")
        }
    }
}
