/// A WebSocket frame opcode (RFC 6455 section 5.2).
///
/// Only the six opcodes the RFC defines exist as values; the reserved ones
/// (3-7, 11-15) are rejected by `FrameDecoder` with close code 1002 before a
/// frame reaches anything that switches over this type.
public enum Opcode: UInt8, Sendable {
    case continuation = 0x0
    case text = 0x1
    case binary = 0x2
    case close = 0x8
    case ping = 0x9
    case pong = 0xA

    /// Control frames (close, ping, pong) may not be fragmented and carry at most 125 bytes.
    @inlinable
    public var isControl: Bool { rawValue & 0x8 != 0 }
}

/// Which end of the connection this codec speaks for. The server requires masked frames from
/// the client and never masks its own; the client does the opposite (RFC 6455 section 5.1).
public enum Role: Sendable {
    case server
    case client
}
