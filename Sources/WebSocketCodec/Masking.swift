/// XOR masking of payload bytes (RFC 6455 section 5.3), in place and a word at a time.
///
/// Payloads arrive in pieces, so masking must resume mid-key: `keyOffset` is the position
/// (0-3) in the 4-byte key of the first byte of `bytes`, and the return value is the offset
/// for the next piece.
public enum Masking {
    /// Applies `key` (the four key bytes in wire order, loaded little-endian) to `bytes`.
    @inlinable
    @discardableResult
    public static func apply(
        key: UInt32, keyOffset: Int, to bytes: UnsafeMutableRawBufferPointer
    ) -> Int {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return keyOffset }
        let count = bytes.count
        // Rotate the key so that byte 0 of the rotated key applies to bytes[0].
        let shift = UInt32(truncatingIfNeeded: (keyOffset & 3) * 8)
        let rotated = shift == 0 ? key : (key >> shift) | (key << (32 &- shift))
        let wide = UInt64(rotated) | (UInt64(rotated) << 32)
        var index = 0
        while index &+ 32 <= count {
            let p = base + index
            p.storeBytes(of: p.loadUnaligned(as: UInt64.self) ^ wide, as: UInt64.self)
            (p + 8).storeBytes(of: (p + 8).loadUnaligned(as: UInt64.self) ^ wide, as: UInt64.self)
            (p + 16).storeBytes(of: (p + 16).loadUnaligned(as: UInt64.self) ^ wide, as: UInt64.self)
            (p + 24).storeBytes(of: (p + 24).loadUnaligned(as: UInt64.self) ^ wide, as: UInt64.self)
            index &+= 32
        }
        while index &+ 8 <= count {
            let p = base + index
            p.storeBytes(of: p.loadUnaligned(as: UInt64.self) ^ wide, as: UInt64.self)
            index &+= 8
        }
        var keyByte = rotated
        while index < count {
            let p = base + index
            p.storeBytes(of: p.load(as: UInt8.self) ^ UInt8(truncatingIfNeeded: keyByte), as: UInt8.self)
            keyByte = (keyByte >> 8) | (keyByte << 24)
            index &+= 1
        }
        return (keyOffset &+ count) & 3
    }
}
