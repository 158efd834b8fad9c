/// Low-level pieces of an HTTP/1.1 request head (RFC 9112), over borrowed bytes.
///
/// Everything here works on an `UnsafeRawBufferPointer` that holds a complete head and
/// returns sub-ranges of it: nothing is copied or allocated.
enum HTTPHead {
    static let cr: UInt8 = 0x0D
    static let lf: UInt8 = 0x0A
    static let space: UInt8 = 0x20
    static let tab: UInt8 = 0x09
    static let colon: UInt8 = 0x3A
    static let comma: UInt8 = 0x2C

    /// tchar (RFC 9110 section 5.6.2): the characters of methods and field names.
    @inline(__always)
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true  // DIGIT, ALPHA
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E:
            return true  // ! # $ % & ' * + - . ^ _ ` | ~
        default: return false
        }
    }

    /// field-vchar / SP / HTAB / obs-text: what a field value may contain.
    @inline(__always)
    static func isFieldValueByte(_ byte: UInt8) -> Bool {
        byte == tab || byte >= 0x20 && byte != 0x7F
    }

    @inline(__always)
    static func lowercased(_ byte: UInt8) -> UInt8 {
        byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
    }

    /// ASCII case-insensitive comparison with a lowercase literal.
    static func equalsLowercase(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        guard bytes.count == literal.utf8CodeUnitCount else { return false }
        let expected = literal.utf8Start
        for index in 0..<bytes.count where lowercased(bytes[index]) != expected[index] {
            return false
        }
        return true
    }

    static func equals(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        guard bytes.count == literal.utf8CodeUnitCount else { return false }
        let expected = literal.utf8Start
        for index in 0..<bytes.count where bytes[index] != expected[index] { return false }
        return true
    }

    /// `bytes` without leading and trailing spaces and tabs (OWS).
    static func trimmed(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var start = 0
        var end = bytes.count
        while start < end && (bytes[start] == space || bytes[start] == tab) { start += 1 }
        while end > start && (bytes[end - 1] == space || bytes[end - 1] == tab) { end -= 1 }
        return UnsafeRawBufferPointer(rebasing: bytes[start..<end])
    }

    /// Index of the first CRLF at or after `from`, or nil.
    static func findCRLF(_ bytes: UnsafeRawBufferPointer, from: Int) -> Int? {
        var index = from
        while index + 1 < bytes.count {
            if bytes[index] == cr && bytes[index + 1] == lf { return index }
            index += 1
        }
        return nil
    }

    /// Calls `body` with each field (trimmed name and value) of a complete head's field
    /// section, in order; returns false, having stopped, at the first malformed line.
    @inline(__always)
    static func forEachField(
        in fieldBytes: UnsafeRawBufferPointer,
        _ body: (_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) -> Void
    ) -> Bool {
        var position = 0
        while let end = findCRLF(fieldBytes, from: position), end > position {
            let line = UnsafeRawBufferPointer(rebasing: fieldBytes[position..<end])
            position = end + 2
            guard let (name, value) = splitField(line) else { return false }
            body(name, value)
        }
        // The first empty line is the head's end (that is how the head was found).
        assert(position == fieldBytes.count - 2, "a validated head ends with the blank line")
        return true
    }

    /// Splits one header line (without its CRLF) into a trimmed name and value, or nil if the
    /// line is malformed: empty or non-token name, whitespace before the colon (RFC 9112
    /// section 5.1 requires rejecting it), no colon, control bytes in the value, or an
    /// obs-fold continuation line.
    static func splitField(_ line: UnsafeRawBufferPointer) -> (name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)? {
        var colonIndex = 0
        while colonIndex < line.count && isTokenByte(line[colonIndex]) { colonIndex += 1 }
        guard colonIndex > 0, colonIndex < line.count, line[colonIndex] == colon else { return nil }
        let value = UnsafeRawBufferPointer(rebasing: line[(colonIndex + 1)...])
        for byte in value where !isFieldValueByte(byte) { return nil }
        return (UnsafeRawBufferPointer(rebasing: line[..<colonIndex]), trimmed(value))
    }
}

/// The header fields of a request head, in order, as (name, value) pairs with values trimmed.
/// Lines that are not well-formed fields are skipped (the parser has rejected them already).
public struct HeaderFields: Sequence {
    /// The bytes from the first header line up to and including the blank line's CRLF.
    let fieldBytes: UnsafeRawBufferPointer

    public struct Iterator: IteratorProtocol {
        let bytes: UnsafeRawBufferPointer
        var position = 0

        public mutating func next() -> (name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)? {
            while let end = HTTPHead.findCRLF(bytes, from: position), end > position {
                let line = UnsafeRawBufferPointer(rebasing: bytes[position..<end])
                position = end + 2
                if let field = HTTPHead.splitField(line) { return field }
            }
            return nil
        }
    }

    public func makeIterator() -> Iterator { Iterator(bytes: fieldBytes) }

    /// The value of the first field named `lowercaseName` (compared case-insensitively).
    public func first(_ lowercaseName: StaticString) -> UnsafeRawBufferPointer? {
        for field in self where HTTPHead.equalsLowercase(field.name, lowercaseName) {
            return field.value
        }
        return nil
    }
}

/// The comma-separated tokens of every field with a given name, in order, trimmed, empty
/// elements skipped (RFC 9110 section 5.6.1: `Connection: keep-alive, Upgrade`, and the
/// same field repeated on several lines, are one list).
public struct TokenList: Sequence {
    let fields: HeaderFields
    let lowercaseName: StaticString

    public struct Iterator: IteratorProtocol {
        var fields: HeaderFields.Iterator
        let lowercaseName: StaticString
        var value = UnsafeRawBufferPointer(start: nil, count: 0)
        var position = 0

        public mutating func next() -> UnsafeRawBufferPointer? {
            while true {
                while position < value.count {
                    var end = position
                    while end < value.count && value[end] != HTTPHead.comma { end += 1 }
                    let token = HTTPHead.trimmed(UnsafeRawBufferPointer(rebasing: value[position..<end]))
                    position = end + 1
                    if token.count > 0 { return token }
                }
                guard let field = fields.next() else { return nil }
                if HTTPHead.equalsLowercase(field.name, lowercaseName) {
                    value = field.value
                    position = 0
                }
            }
        }
    }

    public func makeIterator() -> Iterator {
        Iterator(fields: fields.makeIterator(), lowercaseName: lowercaseName)
    }

    /// Whether the list holds `lowercaseToken`, compared case-insensitively.
    public func contains(_ lowercaseToken: StaticString) -> Bool {
        for token in self where HTTPHead.equalsLowercase(token, lowercaseToken) { return true }
        return false
    }
}
