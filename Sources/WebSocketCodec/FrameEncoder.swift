/// Writes WebSocket frames (RFC 6455 section 5.2) into caller-provided memory.
///
/// The header is written separately from the payload so that a payload already sitting in
/// a send buffer is never copied: reserve `headerSize` bytes in front of it, or send the
/// header and payload as two iovecs. Server frames are unmasked; client frames are masked
/// with a caller-supplied key (the caller owns randomness: RFC 6455 section 10.3 wants it
/// unpredictable, which the codec cannot promise on its own).
public enum FrameEncoder {
    /// The largest header: 2 bytes, 8 bytes of extended length, 4 bytes of mask key.
    public static let maxHeaderSizeBytes = 14
    /// Largest payload of a control frame (section 5.5).
    public static let maxControlPayloadBytes = 125
    /// Largest close reason: a control payload minus the 2-byte code.
    public static let maxCloseReasonBytes = 123
    /// RSV1 in the first header byte.
    @usableFromInline static let rsv1: UInt8 = 0x40

    /// Size of the header for a payload of `payloadLength` bytes.
    @inlinable
    public static func headerSize(payloadLength: Int, masked: Bool) -> Int {
        precondition(payloadLength >= 0)
        let base = payloadLength < 126 ? 2 : (payloadLength <= 0xFFFF ? 4 : 10)
        return masked ? base + 4 : base
    }

    /// Writes a frame header at `destination` (which must have room for `headerSize` bytes)
    /// and returns its size. A non-nil `maskKey` sets the MASK bit; the key is the four mask
    /// bytes in wire order loaded little-endian, as `Masking.apply` takes it. `compressed`
    /// sets RSV1, permessage-deflate's "Per-Message Compressed" bit (RFC 7692 section 6): only
    /// on the first frame of a data message (text or binary, never a continuation or a
    /// control frame), and only on a connection that agreed the extension.
    @inlinable
    @discardableResult
    public static func writeHeader(
        into destination: UnsafeMutableRawPointer,
        opcode: Opcode, fin: Bool = true, compressed: Bool = false, payloadLength: Int, maskKey: UInt32? = nil
    ) -> Int {
        precondition(payloadLength >= 0)
        precondition(!opcode.isControl || (fin && payloadLength <= maxControlPayloadBytes),
                     "control frames are unfragmented and carry at most 125 bytes")
        precondition(!compressed || opcode == .text || opcode == .binary,
                     "RSV1 marks the first frame of a data message only")
        destination.storeBytes(of: (fin ? 0x80 : 0) | (compressed ? rsv1 : 0) | opcode.rawValue, as: UInt8.self)
        let maskBit: UInt8 = maskKey == nil ? 0 : 0x80
        var index: Int
        if payloadLength < 126 {
            destination.storeBytes(of: maskBit | UInt8(payloadLength), toByteOffset: 1, as: UInt8.self)
            index = 2
        } else if payloadLength <= 0xFFFF {
            destination.storeBytes(of: maskBit | 126, toByteOffset: 1, as: UInt8.self)
            destination.storeBytes(of: UInt16(payloadLength).bigEndian, toByteOffset: 2, as: UInt16.self)
            index = 4
        } else {
            destination.storeBytes(of: maskBit | 127, toByteOffset: 1, as: UInt8.self)
            destination.storeBytes(of: UInt64(payloadLength).bigEndian, toByteOffset: 2, as: UInt64.self)
            index = 10
        }
        if let maskKey {
            destination.storeBytes(of: maskKey.littleEndian, toByteOffset: index, as: UInt32.self)
            index += 4
        }
        return index
    }

    /// Size of a whole frame carrying `payloadLength` bytes.
    @inlinable
    public static func frameSize(payloadLength: Int, masked: Bool) -> Int {
        headerSize(payloadLength: payloadLength, masked: masked) + payloadLength
    }

    /// Writes a whole frame (header, then `payload` copied and masked when `maskKey` is set)
    /// into `destination`, which must hold `frameSize` bytes. Returns the bytes written.
    /// `compressed` sets RSV1 (see `writeHeader`).
    @inlinable
    @discardableResult
    public static func writeFrame(
        into destination: UnsafeMutableRawPointer,
        opcode: Opcode, fin: Bool = true, compressed: Bool = false, payload: UnsafeRawBufferPointer,
        maskKey: UInt32? = nil
    ) -> Int {
        let headerSize = writeHeader(
            into: destination, opcode: opcode, fin: fin, compressed: compressed,
            payloadLength: payload.count, maskKey: maskKey)
        if let base = payload.baseAddress, payload.count > 0 {
            (destination + headerSize).copyMemory(from: base, byteCount: payload.count)
            if let maskKey {
                Masking.apply(
                    key: maskKey, keyOffset: 0,
                    to: UnsafeMutableRawBufferPointer(start: destination + headerSize, count: payload.count))
            }
        }
        return headerSize + payload.count
    }

    /// How many bytes of `reason` a close frame carries: at most 123, cut back to a UTF-8
    /// code point boundary so a multi-byte character is never split.
    @inlinable
    public static func closeReasonLength(_ reason: UnsafeRawBufferPointer) -> Int {
        var length = min(reason.count, maxCloseReasonBytes)
        if length < reason.count {
            while length > 0 && reason[length] & 0xC0 == 0x80 { length -= 1 }
        }
        return length
    }

    /// Size of the close payload `writeClosePayload` writes for `code` and `reason` (0 for a
    /// code-less close): the code and the reason as `closeReasonLength` cuts it.
    @inlinable
    public static func closePayloadSize(code: CloseCode?, reason: UnsafeRawBufferPointer) -> Int {
        code == nil ? 0 : 2 + closeReasonLength(reason)
    }

    /// Writes a close frame's payload (code, then the reason cut as `closeReasonLength` says)
    /// and returns its size, which is `closePayloadSize(code:reason:)`. `code` must be sendable
    /// (not 1005/1006/1015).
    @inlinable
    @discardableResult
    public static func writeClosePayload(
        into destination: UnsafeMutableRawPointer, code: CloseCode, reason: UnsafeRawBufferPointer
    ) -> Int {
        precondition(!code.isLocalOnly, "close code \(code) must never be sent")
        destination.storeBytes(of: code.rawValue.bigEndian, as: UInt16.self)
        let length = closeReasonLength(reason)
        if length > 0, let base = reason.baseAddress {
            (destination + 2).copyMemory(from: base, byteCount: length)
        }
        return 2 + length
    }
}
