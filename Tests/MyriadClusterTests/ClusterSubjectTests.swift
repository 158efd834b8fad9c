import XCTest

@testable import MyriadCluster

/// Any topic name is exactly one literal subject token under the prefix, and comes back
/// unchanged; nothing else decodes.
final class ClusterSubjectTests: XCTestCase {
    let mapping = try! ClusterSubject()

    func testReadableNamesStayReadable() {
        XCTAssertEqual(mapping.subject(forTopic: "room:42"), "myriad.room:42")
        XCTAssertEqual(mapping.subject(forTopic: "chat_general-1"), "myriad.chat_general-1")
        XCTAssertEqual(mapping.subject(forTopic: "a.b"), "myriad.a%2Eb")
        XCTAssertEqual(mapping.subject(forTopic: "*"), "myriad.%2A")
        XCTAssertEqual(mapping.subject(forTopic: ">"), "myriad.%3E")
        XCTAssertEqual(mapping.subject(forTopic: "a b\tc"), "myriad.a%20b%09c")
        XCTAssertEqual(mapping.subject(forTopic: "100%"), "myriad.100%25")
        XCTAssertEqual(mapping.subject(forTopic: "é"), "myriad.%C3%A9")
        XCTAssertEqual(mapping.subject(forTopic: ""), "myriad.%")
    }

    func testWildcardHeavyNamesAreOneLiteralToken() {
        let names = ["*", ">", "*.>", "a.*.b", ">.>.>", "...", ".", "*>", "> *", "foo.>", "$SYS.>", "%", "%2A", "%%", "myriad.>"]
        for name in names {
            let subject = mapping.subject(forTopic: name)!
            assertOneLiteralToken(subject, for: Array(name.utf8))
            XCTAssertEqual(mapping.topic(fromSubject: subject), Array(name.utf8), name)
        }
    }

    func testRandomBytesRoundTrip() {
        var generator = SeededGenerator(seed: 17)
        for _ in 0..<3_000 {
            let length = Int.random(in: 0...64, using: &generator)
            let topic = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let subject = mapping.subject(forTopic: topic)!
            assertOneLiteralToken(subject, for: topic)
            XCTAssertEqual(mapping.topic(fromSubject: subject), topic)
        }
    }

    /// Names drawn from the characters that matter most: separators, wildcards, the escape.
    func testAdversarialAlphabetRoundTripAndInjective() {
        var generator = SeededGenerator(seed: 99)
        let alphabet: [UInt8] = Array(".*>% \t\r\n%2Aa".utf8) + [0, 0x7F, 0xFF]
        var seen: [String: [UInt8]] = [:]
        for _ in 0..<5_000 {
            let length = Int.random(in: 0...12, using: &generator)
            let topic = (0..<length).map { _ in alphabet.randomElement(using: &generator)! }
            let subject = mapping.subject(forTopic: topic)!
            assertOneLiteralToken(subject, for: topic)
            XCTAssertEqual(mapping.topic(fromSubject: subject), topic)
            if let earlier = seen[subject] { XCTAssertEqual(earlier, topic, "two topics share \(subject)") }
            seen[subject] = topic
        }
    }

    func testLongNamesWithinTheSubjectLimit() {
        let worstCase = [UInt8](repeating: UInt8(ascii: "."), count: mapping.maxTopicBytesAlwaysMapped)
        let subject = mapping.subject(forTopic: worstCase)!
        XCTAssertLessThanOrEqual(subject.utf8.count, NATSSubject.maxBytes)
        XCTAssertEqual(mapping.topic(fromSubject: subject), worstCase)

        let plainLongest = [UInt8](repeating: UInt8(ascii: "x"), count: mapping.maxTokenBytes)
        let plainSubject = mapping.subject(forTopic: plainLongest)!
        XCTAssertEqual(plainSubject.utf8.count, NATSSubject.maxBytes)
        XCTAssertEqual(mapping.topic(fromSubject: plainSubject), plainLongest)

        XCTAssertNil(mapping.subject(forTopic: plainLongest + [UInt8(ascii: "x")]), "one byte over the limit")
        XCTAssertNil(mapping.subject(forTopic: worstCase + [UInt8(ascii: ".")]), "one escape over the limit")
    }

    func testOnlyCanonicalSubjectsDecode() {
        XCTAssertNil(mapping.topic(fromSubject: "myriad."), "no token")
        XCTAssertNil(mapping.topic(fromSubject: "other.room"), "another prefix")
        XCTAssertNil(mapping.topic(fromSubject: "myriad.a.b"), "two tokens")
        XCTAssertNil(mapping.topic(fromSubject: "myriad.*"), "a wildcard")
        XCTAssertNil(mapping.topic(fromSubject: "myriad.>"), "a wildcard")
        XCTAssertNil(mapping.topic(fromSubject: "myriad.%2a"), "lower-case hex")
        XCTAssertNil(mapping.topic(fromSubject: "myriad.%41"), "an escaped byte that needs none")
        XCTAssertNil(mapping.topic(fromSubject: "myriad.%2"), "a truncated escape")
        XCTAssertNil(mapping.topic(fromSubject: "myriad.%%"), "a bare escape")
        XCTAssertNil(mapping.topic(fromSubject: "myriad.a b"), "whitespace")
        XCTAssertEqual(mapping.topic(fromSubject: "myriad.%"), [])
        XCTAssertEqual(mapping.topic(fromSubject: "myriad.%2E"), Array(".".utf8))
    }

    func testPrefixes() throws {
        XCTAssertEqual(try ClusterSubject(prefix: "acme.chat.").subject(forTopic: "x"), "acme.chat.x")
        XCTAssertThrowsError(try ClusterSubject(prefix: "")) { XCTAssertEqual($0 as? ClusterSubject.PrefixError, .empty) }
        XCTAssertThrowsError(try ClusterSubject(prefix: "myriad"))
        XCTAssertThrowsError(try ClusterSubject(prefix: "."))
        XCTAssertThrowsError(try ClusterSubject(prefix: "a..b."))
        XCTAssertThrowsError(try ClusterSubject(prefix: "a.*."))
        XCTAssertThrowsError(try ClusterSubject(prefix: ">."))
        XCTAssertThrowsError(try ClusterSubject(prefix: "a b."))
        XCTAssertThrowsError(try ClusterSubject(prefix: String(repeating: "a", count: ClusterSubject.maxPrefixBytes) + "."))
    }

    private func assertOneLiteralToken(_ subject: String, for topic: [UInt8], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(subject.hasPrefix(mapping.prefix), file: file, line: line)
        let token = subject.utf8.dropFirst(mapping.prefix.utf8.count)
        XCTAssertFalse(token.isEmpty, file: file, line: line)
        XCTAssertFalse(token.contains(UInt8(ascii: ".")), "\(topic) gave more than one token: \(subject)", file: file, line: line)
        XCTAssertTrue(NATSSubject.isValidLiteral(subject), "\(subject) is not a literal subject", file: file, line: line)
    }
}

/// A small deterministic generator (SplitMix64) so property tests reproduce.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
