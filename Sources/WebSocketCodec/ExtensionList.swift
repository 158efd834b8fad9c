/// The extensions a client offers in `Sec-WebSocket-Extensions` (RFC 6455 section 9.1), in
/// its order of preference, over borrowed bytes.
///
/// ```
/// extension-list = 1#extension
/// extension      = extension-token *( ";" extension-param )
/// extension-param = token [ "=" (token | quoted-string) ]
/// ```
///
/// Every field named `Sec-WebSocket-Extensions` is part of one list (RFC 9110 section 5.3), and
/// each comma-separated element is one offer; the same extension may be offered several times
/// with different parameters (RFC 7692 section 5). Commas inside quoted strings do not split.
/// An element that breaks the grammar is still reported, with `isWellFormed == false`, so a
/// negotiator declines that one offer and goes on with the next: a bad offer is not a reason
/// to refuse the handshake. Nothing is copied or allocated.
public struct ExtensionList: Sequence {
    let fields: HeaderFields

    public init(fields: HeaderFields) { self.fields = fields }

    public struct Iterator: IteratorProtocol {
        var fields: HeaderFields.Iterator
        var value = UnsafeRawBufferPointer(start: nil, count: 0)
        var position = 0

        public mutating func next() -> ExtensionOffer? {
            while true {
                while position < value.count {
                    let end = ExtensionSyntax.elementEnd(value, from: position)
                    let element = HTTPHead.trimmed(UnsafeRawBufferPointer(rebasing: value[position..<end]))
                    position = end + 1
                    if element.count > 0 { return ExtensionOffer(element: element) }
                }
                guard let field = fields.next() else { return nil }
                if HTTPHead.equalsLowercase(field.name, "sec-websocket-extensions") {
                    value = field.value
                    position = 0
                }
            }
        }
    }

    public func makeIterator() -> Iterator { Iterator(fields: fields.makeIterator()) }
}

/// One element of an extension list: a name and its parameters, as written.
public struct ExtensionOffer {
    /// The extension's name (a token); empty when the element does not start with one.
    public let name: UnsafeRawBufferPointer
    /// The element after the name: `*( OWS ";" OWS param ) OWS`.
    let parameterBytes: UnsafeRawBufferPointer
    /// Whether the whole element follows the grammar. The parameters of a malformed element
    /// are the well-formed ones before the first defect; negotiators decline such an offer.
    public let isWellFormed: Bool

    init(element: UnsafeRawBufferPointer) {
        let nameEnd = ExtensionSyntax.tokenEnd(element, from: 0)
        name = UnsafeRawBufferPointer(rebasing: element[..<nameEnd])
        parameterBytes = UnsafeRawBufferPointer(rebasing: element[nameEnd...])
        var wellFormed = nameEnd > 0
        if wellFormed {
            var position = 0
            while position < parameterBytes.count {
                guard ExtensionSyntax.parameter(parameterBytes, from: &position) != nil else {
                    wellFormed = false
                    break
                }
            }
        }
        isWellFormed = wellFormed
    }

    /// Whether the name is `literal` (extension names are compared exactly: they are registered
    /// lowercase tokens, RFC 6455 section 11.4).
    public func hasName(_ literal: StaticString) -> Bool { HTTPHead.equals(name, literal) }

    /// The parameters in order (those before the first defect, for a malformed element).
    public var parameters: ExtensionParameters { ExtensionParameters(bytes: parameterBytes) }
}

/// The parameters of one extension offer.
public struct ExtensionParameters: Sequence {
    let bytes: UnsafeRawBufferPointer

    public struct Iterator: IteratorProtocol {
        let bytes: UnsafeRawBufferPointer
        var position = 0

        public mutating func next() -> ExtensionParameter? {
            guard position < bytes.count else { return nil }
            guard let parameter = ExtensionSyntax.parameter(bytes, from: &position) else {
                position = bytes.count
                return nil
            }
            return parameter
        }
    }

    public func makeIterator() -> Iterator { Iterator(bytes: bytes) }
}

/// `name` or `name=value`, the value a token or a quoted string.
public struct ExtensionParameter {
    public let name: UnsafeRawBufferPointer
    /// The value as written (a quoted string keeps its quotes and escapes); nil without `=`.
    public let rawValue: UnsafeRawBufferPointer?

    public func hasName(_ literal: StaticString) -> Bool { HTTPHead.equals(name, literal) }

    /// The value's decimal integer, when it is one written as RFC 7692 section 7.1.2 asks: at
    /// most `maxDigits` digits, no sign, no leading zero. Quoted values are unquoted first
    /// (RFC 6455 section 9.1: a quoted value must unescape to a token). Nil otherwise.
    public func decimalValue(maxDigits: Int) -> Int? {
        guard let rawValue, rawValue.count > 0 else { return nil }
        var result = 0
        var digits = 0
        var escaped = false
        let quoted = rawValue[0] == ExtensionSyntax.quote
        let range = quoted ? 1..<(rawValue.count - 1) : 0..<rawValue.count
        for index in range {
            let byte = rawValue[index]
            if quoted && !escaped && byte == ExtensionSyntax.backslash {
                escaped = true
                continue
            }
            escaped = false
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            if digits == 0 && byte == 0x30 && index + 1 < range.upperBound { return nil }  // leading zero
            digits += 1
            if digits > maxDigits { return nil }
            result = result * 10 + Int(byte - 0x30)
        }
        return digits > 0 ? result : nil
    }
}

/// The lexical rules of `Sec-WebSocket-Extensions` (RFC 6455 section 9.1 with RFC 9110's token,
/// quoted-string and optional whitespace around the separators).
enum ExtensionSyntax {
    static let quote: UInt8 = 0x22
    static let backslash: UInt8 = 0x5C
    static let semicolon: UInt8 = 0x3B
    static let equals: UInt8 = 0x3D

    /// Index of the comma ending the element that starts at `from` (or `bytes.count`), skipping
    /// commas inside quoted strings. An unterminated quote runs to the end of the value.
    static func elementEnd(_ bytes: UnsafeRawBufferPointer, from: Int) -> Int {
        var index = from
        var inQuotes = false
        while index < bytes.count {
            let byte = bytes[index]
            if inQuotes {
                if byte == backslash {
                    index += 1
                } else if byte == quote {
                    inQuotes = false
                }
            } else if byte == quote {
                inQuotes = true
            } else if byte == HTTPHead.comma {
                return index
            }
            index += 1
        }
        return bytes.count
    }

    static func tokenEnd(_ bytes: UnsafeRawBufferPointer, from: Int) -> Int {
        var index = from
        while index < bytes.count && HTTPHead.isTokenByte(bytes[index]) { index += 1 }
        return index
    }

    static func skipWhitespace(_ bytes: UnsafeRawBufferPointer, from: Int) -> Int {
        var index = from
        while index < bytes.count && (bytes[index] == HTTPHead.space || bytes[index] == HTTPHead.tab) { index += 1 }
        return index
    }

    /// End of the quoted string starting at `from` (just past its closing quote), or nil when
    /// it is not one (RFC 9110 section 5.6.4: qdtext and quoted-pairs, no control bytes).
    static func quotedStringEnd(_ bytes: UnsafeRawBufferPointer, from: Int) -> Int? {
        guard from < bytes.count, bytes[from] == quote else { return nil }
        var index = from + 1
        while index < bytes.count {
            let byte = bytes[index]
            if byte == quote { return index + 1 }
            if byte == backslash {
                index += 1
                guard index < bytes.count, HTTPHead.isFieldValueByte(bytes[index]) else { return nil }
            } else if !HTTPHead.isFieldValueByte(byte) {
                return nil
            }
            index += 1
        }
        return nil
    }

    /// Parses `OWS ";" OWS token [ OWS "=" OWS (token | quoted-string) ] OWS` at `position` and
    /// advances past it; nil (position unspecified) when the bytes there break the grammar.
    static func parameter(_ bytes: UnsafeRawBufferPointer, from position: inout Int) -> ExtensionParameter? {
        var index = skipWhitespace(bytes, from: position)
        guard index < bytes.count, bytes[index] == semicolon else { return nil }
        index = skipWhitespace(bytes, from: index + 1)
        let nameStart = index
        index = tokenEnd(bytes, from: index)
        guard index > nameStart else { return nil }
        let name = UnsafeRawBufferPointer(rebasing: bytes[nameStart..<index])
        var rawValue: UnsafeRawBufferPointer?
        index = skipWhitespace(bytes, from: index)
        if index < bytes.count && bytes[index] == equals {
            index = skipWhitespace(bytes, from: index + 1)
            let valueStart = index
            if let end = quotedStringEnd(bytes, from: index) {
                index = end
            } else {
                index = tokenEnd(bytes, from: index)
                guard index > valueStart else { return nil }
            }
            rawValue = UnsafeRawBufferPointer(rebasing: bytes[valueStart..<index])
            index = skipWhitespace(bytes, from: index)
        }
        guard index == bytes.count || bytes[index] == semicolon else { return nil }
        position = index
        return ExtensionParameter(name: name, rawValue: rawValue)
    }
}
