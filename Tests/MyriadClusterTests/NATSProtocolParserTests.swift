import XCTest

@testable import MyriadCluster

/// The server-to-client parser: every operation, every split point, every way to be wrong.
final class NATSProtocolParserTests: XCTestCase {
    /// An owned copy of what the parser handed out.
    enum Op: Equatable {
        case info(String)
        case message(subject: String, sid: UInt64, reply: String?, payload: [UInt8])
        case skipped(sid: UInt64, bytes: Int)
        case ping, pong, ok
        case err(String)
    }

    private func makeParser(maxLine: Int = 256, maxPayload: Int = 1024, buffered: Int = 1024) -> NATSProtocolParser {
        var parser = NATSProtocolParser(maxLineBytes: maxLine, maxBufferedPayloadBytes: buffered)
        parser.serverMaxPayloadBytes = maxPayload
        return parser
    }

    /// Feeds `input` in chunks of the given sizes (cycled), collecting operations.
    private func parse(_ input: [UInt8], chunks: [Int] = [Int.max], parser: inout NATSProtocolParser) throws -> [Op] {
        var ops: [Op] = []
        var offset = 0
        var chunkIndex = 0
        while offset < input.count {
            let size = min(chunks[chunkIndex % chunks.count], input.count - offset)
            chunkIndex += 1
            let chunk = Array(input[offset..<(offset + size)])
            try chunk.withUnsafeBytes { bytes in
                var used = 0
                while used < bytes.count {
                    used += try parser.consume(UnsafeRawBufferPointer(rebasing: bytes[used...])) { op in
                        ops.append(Self.copy(op))
                        return true
                    }
                }
            }
            offset += size
        }
        return ops
    }

    private func parse(_ text: String, chunks: [Int] = [Int.max]) throws -> [Op] {
        var parser = makeParser()
        return try parse(Array(text.utf8), chunks: chunks, parser: &parser)
    }

    static func copy(_ op: NATSServerOperation) -> Op {
        switch op {
        case .info(let json): .info(String(decoding: json, as: UTF8.self))
        case .message(let subject, let sid, let reply, let payload):
            .message(
                subject: String(decoding: subject, as: UTF8.self), sid: sid,
                reply: reply.map { String(decoding: $0, as: UTF8.self) }, payload: Array(payload))
        case .skippedMessage(let sid, let bytes): .skipped(sid: sid, bytes: bytes)
        case .ping: .ping
        case .pong: .pong
        case .ok: .ok
        case .err(let message): .err(String(decoding: message, as: UTF8.self))
        }
    }

    let stream =
        "INFO {\"max_payload\":1024}\r\nPING\r\nMSG a.b 1 5\r\nhello\r\nMSG x 22 reply.to 3\r\n\r\n\n\r\n"
        + "+OK\r\npong\r\nMSG e 3 0\r\n\r\n-ERR 'Permissions Violation for Subscription to \"x\"'\r\nmsg  tab\t9  2\r\nok\r\n"

    var expected: [Op] {
        [
            .info("{\"max_payload\":1024}"), .ping, .message(subject: "a.b", sid: 1, reply: nil, payload: Array("hello".utf8)),
            .message(subject: "x", sid: 22, reply: "reply.to", payload: [0x0D, 0x0A, 0x0A]), .ok, .pong,
            .message(subject: "e", sid: 3, reply: nil, payload: []),
            .err("'Permissions Violation for Subscription to \"x\"'"),
            .message(subject: "tab", sid: 9, reply: nil, payload: Array("ok".utf8)),
        ]
    }

    func testEveryOperation() throws {
        XCTAssertEqual(try parse(stream), expected)
    }

    func testEverySplitPointGivesTheSameOperations() throws {
        let bytes = Array(stream.utf8)
        for split in 1..<bytes.count {
            var parser = makeParser()
            XCTAssertEqual(try parse(bytes, chunks: [split, bytes.count], parser: &parser), expected, "split at \(split)")
        }
        for size in [1, 2, 3, 7] {
            var parser = makeParser()
            XCTAssertEqual(try parse(bytes, chunks: [size], parser: &parser), expected, "chunks of \(size)")
        }
    }

    func testPauseResumesAfterTheOperation() throws {
        var parser = makeParser()
        let bytes = Array("PING\r\nPONG\r\nMSG a 1 1\r\nx\r\n".utf8)
        var ops: [Op] = []
        try bytes.withUnsafeBytes { input in
            var used = 0
            while used < input.count {
                used += try parser.consume(UnsafeRawBufferPointer(rebasing: input[used...])) { op in
                    ops.append(Self.copy(op))
                    return false  // pause after every operation
                }
            }
        }
        XCTAssertEqual(ops, [.ping, .pong, .message(subject: "a", sid: 1, reply: nil, payload: [UInt8(ascii: "x")])])
    }

    func testStrictness() {
        let cases: [(String, NATSProtocolError)] = [
            ("PING\n", .lineNotEndedByCRLF),
            ("HELLO\r\n", .unknownOperation(snippet: "HELLO")),
            ("PING x\r\n", .malformed(operation: "PING", reason: "unexpected arguments")),
            ("+OK x\r\n", .malformed(operation: "+OK", reason: "unexpected arguments")),
            ("INFO\r\n", .malformed(operation: "INFO", reason: "no JSON")),
            ("MSG a 1\r\n", .malformed(operation: "MSG", reason: "expected 3 or 4 arguments, got 2")),
            ("MSG a 1 b c 2\r\n", .malformed(operation: "MSG", reason: "too many arguments")),
            ("MSG a x 2\r\nhi\r\n", .malformed(operation: "MSG", reason: "invalid sid")),
            ("MSG a 1 -2\r\n", .malformed(operation: "MSG", reason: "invalid size")),
            ("MSG a 1 99999999999\r\n", .malformed(operation: "MSG", reason: "invalid size")),
            ("MSG a 99999999999999999999 1\r\nx\r\n", .malformed(operation: "MSG", reason: "invalid sid")),
            ("MSG a 1 1025\r\n", .payloadTooLarge(bytes: 1025, limitBytes: 1024)),
            ("MSG a 1 2\r\nhiX\n", .payloadNotEndedByCRLF),
            ("MSG a 1 2\r\nhi\rX", .payloadNotEndedByCRLF),
            ("HMSG a 1 2 4\r\n", .headersNotNegotiated),
            ("\r\n", .unknownOperation(snippet: "")),
            (String(repeating: "A", count: 300), .lineTooLong(limitBytes: 256)),
            (String(repeating: "A", count: 257) + "\r\n", .lineTooLong(limitBytes: 256)),
        ]
        for (input, error) in cases {
            for chunk in [Int.max, 1, 5] {
                var parser = makeParser()
                XCTAssertThrowsError(try parse(Array(input.utf8), chunks: [chunk], parser: &parser), input) {
                    XCTAssertEqual($0 as? NATSProtocolError, error, "\(input.debugDescription) in chunks of \(chunk)")
                }
            }
        }
    }

    func testLongestLineAccepted() throws {
        let subject = String(repeating: "s", count: 256 - "MSG  1 0".count)
        var parser = makeParser()
        XCTAssertEqual(
            try parse(Array("MSG \(subject) 1 0\r\n\r\n".utf8), chunks: [100], parser: &parser),
            [.message(subject: subject, sid: 1, reply: nil, payload: [])])
    }

    func testBeforeInfoNoPayloadIsAllowed() {
        var parser = NATSProtocolParser(maxLineBytes: 256, maxBufferedPayloadBytes: 1024)
        XCTAssertThrowsError(try parse(Array("MSG a 1 1\r\nx\r\n".utf8), parser: &parser)) {
            XCTAssertEqual($0 as? NATSProtocolError, .payloadTooLarge(bytes: 1, limitBytes: 0))
        }
    }

    func testMessagesOverTheBufferLimitAreSkippedWithoutBeingHeld() throws {
        var parser = makeParser(maxPayload: 1 << 20, buffered: 16)
        let big = [UInt8](repeating: 0x42, count: 100_000)
        let input = Array("MSG big 7 100000\r\n".utf8) + big + Array("\r\nMSG small 8 2\r\nok\r\n".utf8)
        let ops = try parse(input, chunks: [4096], parser: &parser)
        XCTAssertEqual(ops, [.skipped(sid: 7, bytes: 100_000), .message(subject: "small", sid: 8, reply: nil, payload: Array("ok".utf8))])
        XCTAssertLessThan(parser.retainedBytes, 2_000, "a skipped payload is never buffered")
    }

    func testMemoryStaysBoundedUnderRandomInput() {
        var generator = SeededGenerator(seed: 4242)
        let alphabet = Array("MSG PING PONG INFO +OK -ERR 0123456789 \r\n\r\n{}\"".utf8)
        for round in 0..<500 {
            var parser = makeParser(maxLine: 128, maxPayload: 512, buffered: 512)
            let length = Int.random(in: 1...4_000, using: &generator)
            let input: [UInt8] =
                round % 2 == 0
                ? (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
                : (0..<length).map { _ in alphabet.randomElement(using: &generator)! }
            let chunk = Int.random(in: 1...600, using: &generator)
            _ = try? parse(input, chunks: [chunk], parser: &parser)
            // A partial line (doubled by array growth at most), subject and reply copies, one payload.
            XCTAssertLessThanOrEqual(parser.retainedBytes, 4 * (128 + 1) + 512 + 256, "round \(round)")
        }
    }

    func testResetForgetsPartialState() throws {
        var parser = makeParser()
        _ = try parse(Array("MSG a 1 10\r\nhalf".utf8), parser: &parser)
        parser.reset()
        parser.serverMaxPayloadBytes = 1024
        XCTAssertEqual(try parse(Array("PING\r\n".utf8), parser: &parser), [.ping])
    }
}
