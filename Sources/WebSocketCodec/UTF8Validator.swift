/// Incremental UTF-8 validation (RFC 3629), resumable at any byte boundary.
///
/// Text messages arrive in fragments and fragments arrive in pieces, so a code point may be
/// split anywhere. The validator keeps the whole in-progress sequence in 32 bits and reports
/// failure at the first byte that makes the input impossible to complete as valid UTF-8
/// ("fail fast", as Autobahn cases 6.4.x require), not at the end of the message.
///
/// Rejected: overlong forms (C0, C1, E0 80-9F, F0 80-8F), UTF-16 surrogates (ED A0-BF),
/// code points above U+10FFFF (F4 90+, F5-FF), stray continuation bytes.
public struct UTF8Validator: Sendable, Equatable {
    /// Packed state: bits 0-7 the lowest allowed next byte, 8-15 the highest, 16-23 the
    /// continuation bytes still needed. Zero means "between code points".
    @usableFromInline
    var state: UInt32 = 0

    @inlinable
    public init() {}

    /// True when the bytes seen so far end on a code point boundary, i.e. a message may end here.
    @inlinable
    public var isComplete: Bool { state == 0 }

    /// Feeds `bytes`; returns false as soon as they cannot be part of valid UTF-8. After a
    /// failure the validator's state is unspecified and the stream must be rejected.
    @inlinable
    public mutating func validate(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let count = bytes.count
        var index = 0
        var state = self.state
        while index < count {
            if state == 0 {
                // ASCII fast path: eight bytes per step while no sequence is open.
                while index &+ 8 <= count {
                    let word = base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                    if word & 0x8080_8080_8080_8080 != 0 { break }
                    index &+= 8
                }
                if index == count { break }
                let byte = base.load(fromByteOffset: index, as: UInt8.self)
                index &+= 1
                if byte < 0x80 { continue }
                state = UTF8Validator.stateAfterLead(byte)
                if state == UTF8Validator.invalid { self.state = state; return false }
            } else {
                let byte = base.load(fromByteOffset: index, as: UInt8.self)
                index &+= 1
                let lower = UInt8(truncatingIfNeeded: state)
                let upper = UInt8(truncatingIfNeeded: state >> 8)
                guard byte >= lower && byte <= upper else {
                    self.state = UTF8Validator.invalid
                    return false
                }
                let remaining = (state >> 16) &- 1
                state = remaining == 0 ? 0 : (remaining << 16) | 0xBF00 | 0x80
            }
        }
        self.state = state
        return true
    }

    @usableFromInline
    static let invalid: UInt32 = 0xFF_0000

    /// The state after a non-ASCII lead byte: how many continuation bytes follow and the
    /// range the first of them must fall in (RFC 3629 section 4).
    @inlinable
    static func stateAfterLead(_ byte: UInt8) -> UInt32 {
        @inline(__always) func make(_ needed: UInt32, _ lower: UInt32, _ upper: UInt32) -> UInt32 {
            (needed << 16) | (upper << 8) | lower
        }
        switch byte {
        case 0xC2...0xDF: return make(1, 0x80, 0xBF)
        case 0xE0: return make(2, 0xA0, 0xBF)
        case 0xE1...0xEC, 0xEE...0xEF: return make(2, 0x80, 0xBF)
        case 0xED: return make(2, 0x80, 0x9F)
        case 0xF0: return make(3, 0x90, 0xBF)
        case 0xF1...0xF3: return make(3, 0x80, 0xBF)
        case 0xF4: return make(3, 0x80, 0x8F)
        default: return invalid
        }
    }
}
