/// The subject rules this client enforces before anything reaches the wire.
///
/// nats-server (not pedantic) accepts almost any bytes in a subject and only splits on `.`;
/// a token that is exactly `*` or `>` is a wildcard. This client is stricter so that what it
/// sends can never be misread: printable ASCII only (0x21...0x7E), no empty token, wildcards
/// only where the caller asked for them (subscribe), and a length that always fits the
/// server's default control line.
public enum NATSSubject {
    /// The longest subject this client sends, in bytes. nats-server's default
    /// `max_control_line` is 4096 bytes and applies to the arguments of PUB
    /// (`subject SP size`) and SUB (`subject SP sid`); 4000 leaves room for a 20-digit sid or
    /// size and the separators.
    public static let maxBytes = 4000

    /// A subject a client may publish to: literal tokens only.
    public static func isValidLiteral(_ subject: some Collection<UInt8>) -> Bool {
        check(subject, allowWildcards: false)
    }

    /// A subject a client may subscribe to: `*` as a whole token anywhere, `>` as the last token.
    public static func isValidFilter(_ subject: some Collection<UInt8>) -> Bool {
        check(subject, allowWildcards: true)
    }

    static func isValidLiteral(_ subject: String) -> Bool { isValidLiteral(subject.utf8) }
    static func isValidFilter(_ subject: String) -> Bool { isValidFilter(subject.utf8) }

    private static func check(_ subject: some Collection<UInt8>, allowWildcards: Bool) -> Bool {
        var count = 0
        var tokenLength = 0
        var tokenFirstByte: UInt8 = 0
        var previousTokenWasFullWildcard = false
        // Judges the token that just ended (at a `.` or at the end of the subject).
        func tokenIsAcceptable() -> Bool {
            if tokenLength == 0 { return false }
            if previousTokenWasFullWildcard { return false }  // `>` must be the last token
            if tokenLength == 1 && (tokenFirstByte == UInt8(ascii: "*") || tokenFirstByte == UInt8(ascii: ">")) {
                return allowWildcards
            }
            return true
        }
        for byte in subject {
            count += 1
            if count > maxBytes { return false }
            if byte == UInt8(ascii: ".") {
                guard tokenIsAcceptable() else { return false }
                previousTokenWasFullWildcard = tokenLength == 1 && tokenFirstByte == UInt8(ascii: ">")
                tokenLength = 0
                continue
            }
            guard byte >= 0x21 && byte <= 0x7E else { return false }
            if tokenLength == 0 { tokenFirstByte = byte }
            tokenLength += 1
        }
        return tokenIsAcceptable()  // also rejects the empty subject and a trailing `.`
    }
}
