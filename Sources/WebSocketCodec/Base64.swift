/// The two base64 operations the handshake needs (RFC 4648 section 4, standard alphabet):
/// checking that a `Sec-WebSocket-Key` is the encoding of 16 bytes, and encoding the 20-byte
/// SHA-1 digest of `Sec-WebSocket-Accept`. A general codec would be more than this needs.
enum Base64 {
    static let alphabet: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

    /// The 6-bit value of a base64 character, or nil.
    @inline(__always)
    static func value(of byte: UInt8) -> UInt8? {
        switch byte {
        case 0x41...0x5A: return byte - 0x41
        case 0x61...0x7A: return byte - 0x61 + 26
        case 0x30...0x39: return byte - 0x30 + 52
        case 0x2B: return 62
        case 0x2F: return 63
        default: return nil
        }
    }

    /// True for the canonical encoding of exactly 16 bytes: 22 characters, `==`, and zero
    /// bits in the unused low 4 bits of the last character (RFC 6455 section 4.1 item 7).
    static func isSixteenByteValue(_ text: UnsafeRawBufferPointer) -> Bool {
        guard text.count == 24, text[22] == 0x3D, text[23] == 0x3D else { return false }
        for index in 0..<22 {
            guard let value = value(of: text[index]) else { return false }
            if index == 21 && value & 0x0F != 0 { return false }
        }
        return true
    }

    /// Encodes `bytes` with padding into `destination`, which must hold `encodedLength` bytes.
    static func encode(_ bytes: UnsafeRawBufferPointer, into destination: UnsafeMutableRawPointer) -> Int {
        let table = alphabet.utf8Start
        var out = 0
        var index = 0
        while index + 3 <= bytes.count {
            let group = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            for shift in stride(from: 18, through: 0, by: -6) {
                destination.storeBytes(of: table[Int((group >> UInt32(shift)) & 0x3F)], toByteOffset: out, as: UInt8.self)
                out += 1
            }
            index += 3
        }
        let rest = bytes.count - index
        if rest > 0 {
            var group = UInt32(bytes[index]) << 16
            if rest == 2 { group |= UInt32(bytes[index + 1]) << 8 }
            for position in 0..<4 {
                let byte: UInt8
                if position <= rest {
                    byte = table[Int((group >> UInt32(18 - 6 * position)) & 0x3F)]
                } else {
                    byte = 0x3D
                }
                destination.storeBytes(of: byte, toByteOffset: out, as: UInt8.self)
                out += 1
            }
        }
        return out
    }

    static func encodedLength(_ count: Int) -> Int { (count + 2) / 3 * 4 }
}
