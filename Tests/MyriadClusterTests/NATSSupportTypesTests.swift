import XCTest

@testable import MyriadCluster

/// The INFO reader, the CONNECT/PUB writer, the URL parser and the backoff.
final class NATSSupportTypesTests: XCTestCase {
    // MARK: INFO and JSON

    func testRealServerInfo() throws {
        let json = #"{"server_id":"NDZ","server_name":"n1","version":"2.9.10","proto":1,"go":"go1.19","host":"127.0.0.1","port":4222,"headers":true,"max_payload":1048576,"client_id":5,"client_ip":"127.0.0.1","connect_urls":["a:1","b:2"],"nested":{"x":[1,-2.5e3,true,null,"\u00e9\ud83d\ude00\n"]}} "#
        let info = try Array(json.utf8).withUnsafeBytes { try NATSServerInfo.parse($0) }
        XCTAssertEqual(info.maxPayloadBytes, 1_048_576)
        XCTAssertEqual(info.proto, 1)
        XCTAssertEqual(info.version, "2.9.10")
        XCTAssertFalse(info.tlsRequired)
        XCTAssertEqual(try NATSJSONParser.parse(json)["nested"]?["x"], .array([.number("1"), .number("-2.5e3"), .bool(true), .null, .string("é😀\n")]))
    }

    func testInfoWithoutUsableMaxPayloadIsRefused() {
        for json in [#"{"proto":1}"#, #"{"max_payload":0}"#, #"{"max_payload":-5}"#, #"{"max_payload":"1"}"#, #"{"max_payload":1.5}"#, "[1]", "{", #"{"a":1}x"#] {
            XCTAssertThrowsError(try Array(json.utf8).withUnsafeBytes { try NATSServerInfo.parse($0) }, json)
        }
    }

    func testJSONStrictness() {
        for bad in ["", "tru", "01", "1.", "-", "\"a", "\"\\x\"", "\"\\ud800\"", "\"\u{01}\"", "{\"a\" 1}", "{\"a\":1,}", "[1,]", "{\"a\":1,\"a\":2}", "{1:2}"] {
            XCTAssertThrowsError(try NATSJSONParser.parse(bad), bad)
        }
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        XCTAssertThrowsError(try NATSJSONParser.parse(deep), "nesting is bounded")
        var invalidUTF8: [UInt8] = Array("\"".utf8) + [0xC3, 0x28] + Array("\"".utf8)
        XCTAssertThrowsError(try invalidUTF8.withUnsafeMutableBytes { try NATSJSONParser.parse(UnsafeRawBufferPointer($0)) })
    }

    func testConnectLine() throws {
        var out: [UInt8] = []
        NATSProtocolWriter.appendConnect(
            .init(name: "node \"1\"", user: "al\\ice", password: "p\u{01}w", token: nil, clientVersion: "0.1.0"), to: &out)
        let line = String(decoding: out, as: UTF8.self)
        XCTAssertTrue(line.hasPrefix("CONNECT {") && line.hasSuffix("}\r\n"))
        // (As Characters "\r\n" is one: drop bytes.)
        let json = try NATSJSONParser.parse(String(decoding: out.dropFirst("CONNECT ".utf8.count).dropLast(2), as: UTF8.self))
        XCTAssertEqual(json["echo"], .bool(false))
        XCTAssertEqual(json["verbose"], .bool(false))
        XCTAssertEqual(json["pedantic"], .bool(false))
        XCTAssertEqual(json["headers"], .bool(false))
        XCTAssertEqual(json["protocol"], .number("1"))
        XCTAssertEqual(json["lang"], .string("swift"))
        XCTAssertEqual(json["name"], .string("node \"1\""))
        XCTAssertEqual(json["user"], .string("al\\ice"))
        XCTAssertEqual(json["pass"], .string("p\u{01}w"))
        XCTAssertNil(json["auth_token"])
    }

    func testPublishFramesAndTheirRemoval() {
        var buffer: [UInt8] = []
        let payloads: [[UInt8]] = [Array("hi".utf8), [UInt8](repeating: 0x0D, count: 300), [], Array("\r\nPUB x 1\r\n".utf8)]
        for payload in payloads {
            let before = buffer.count
            payload.withUnsafeBytes { NATSProtocolWriter.appendPublish(subject: "s.t".utf8, payload: $0, to: &buffer) }
            XCTAssertEqual(buffer.count - before, NATSProtocolWriter.publishFrameBytes(subjectBytes: 3, payloadBytes: payload.count))
        }
        XCTAssertEqual(Array(buffer.prefix(15)), Array("PUB s.t 2\r\nhi\r\n".utf8))
        let removed = NATSProtocolWriter.removePublishes(in: &buffer, payloadLargerThan: 10)
        XCTAssertEqual(removed.messages, 2)
        XCTAssertEqual(removed.payloadBytes, 300 + 11)
        XCTAssertEqual(buffer, Array("PUB s.t 2\r\nhi\r\nPUB s.t 0\r\n\r\n".utf8))
        var digits: [UInt8] = []
        for value: UInt64 in [0, 9, 10, 12345, UInt64.max] {
            digits.removeAll()
            NATSProtocolWriter.appendDecimal(value, to: &digits)
            XCTAssertEqual(String(decoding: digits, as: UTF8.self), String(value))
        }
    }

    // MARK: URL and configuration

    func testURLs() throws {
        var config = try NATSClientConfiguration(url: "nats://127.0.0.1:4333")
        XCTAssertEqual(config.host, "127.0.0.1")
        XCTAssertEqual(config.port, 4333)
        XCTAssertNil(config.user)
        XCTAssertNil(config.token)

        config = try NATSClientConfiguration(url: "NATS://alice:s%40cret:x@nats.example:4222/")
        XCTAssertEqual(config.user, "alice")
        XCTAssertEqual(config.password, "s@cret:x")
        XCTAssertEqual(config.host, "nats.example")

        config = try NATSClientConfiguration(url: "nats://T0K%2Fen@localhost")
        XCTAssertEqual(config.token, "T0K/en")
        XCTAssertEqual(config.port, 4222)

        config = try NATSClientConfiguration(url: "nats://[::1]:4223")
        XCTAssertEqual(config.host, "::1")
        XCTAssertEqual(config.port, 4223)
        XCTAssertEqual(config.redactedURL, "nats://[::1]:4223")

        for bad in ["127.0.0.1:4222", "tls://h:1", "nats://", "nats://h:0", "nats://h:65536", "nats://h:x", "nats://h/path", "nats://h?x=1",
                    "nats://@h", "nats://:pw@h", "nats://u:%zz@h", "nats://[::1", "nats://h:4222:5"] {
            XCTAssertThrowsError(try NATSClientConfiguration(url: bad), bad)
        }
    }

    func testURLErrorsDoNotEchoPasswords() {
        XCTAssertThrowsError(try NATSClientConfiguration(url: "nats://u:hunter2@h:99999")) {
            XCTAssertFalse("\($0)".contains("hunter2"))
        }
    }

    func testValidation() throws {
        var config = try NATSClientConfiguration(url: "nats://u:p@h")
        XCTAssertNoThrow(try config.validate())
        config.token = "t"
        XCTAssertThrowsError(try config.validate(), "token and user together")
        config = NATSClientConfiguration(host: "h")
        config.outboundBufferLimitBytes = config.maxPayloadBytes
        XCTAssertThrowsError(try config.validate(), "the buffer must hold one largest publish")
        config = NATSClientConfiguration(host: "h")
        config.reconnectMaxDelayMs = 10
        XCTAssertThrowsError(try config.validate())
    }

    // MARK: Backoff

    func testBackoffDoublesToItsCapWithJitter() {
        var backoff = NATSReconnectBackoff(initialDelayMs: 100, maxDelayMs: 5_000)
        var generator = SeededGenerator(seed: 1)
        let ceilings = [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000, 5_000]
        for ceiling in ceilings {
            XCTAssertEqual(backoff.ceilingMs, ceiling)
            let delay = backoff.nextDelayMs(using: &generator)
            XCTAssertGreaterThanOrEqual(delay, ceiling / 2)
            XCTAssertLessThanOrEqual(delay, ceiling)
        }
        for _ in 0..<1_000 { _ = backoff.nextDelayMs(using: &generator) }
        XCTAssertEqual(backoff.ceilingMs, 5_000, "no overflow after many attempts")
        backoff.reset()
        XCTAssertEqual(backoff.ceilingMs, 100)
        // Jitter: many draws at one ceiling are not all equal.
        let draws = Set((0..<50).map { _ in NATSReconnectBackoff(initialDelayMs: 1_000, maxDelayMs: 1_000) }.map { b -> Int in
            var copy = b
            return copy.nextDelayMs(using: &generator)
        })
        XCTAssertGreaterThan(draws.count, 10)
    }
}
