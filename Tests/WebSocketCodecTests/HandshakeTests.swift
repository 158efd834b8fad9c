import Testing
import Foundation
@testable import WebSocketCodec

/// The RFC 6455 section 1.3 request, with a few extra fields a browser would send.
let validRequest = """
    GET /chat?room=1 HTTP/1.1\r
    Host: server.example.com\r
    Upgrade: websocket\r
    Connection: Upgrade\r
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r
    Origin: http://example.com\r
    Sec-WebSocket-Protocol: chat, superchat\r
    Sec-WebSocket-Version: 13\r
    \r

    """

/// `validRequest` with the field line starting with `name` replaced (nil removes it).
func request(replacing name: String, with line: String?) -> String {
    var lines = validRequest.components(separatedBy: "\r\n")
    let index = lines.firstIndex { $0.lowercased().hasPrefix(name.lowercased() + ":") }!
    if let line { lines[index] = line } else { lines.remove(at: index) }
    return lines.joined(separator: "\r\n")
}

@Suite struct HandshakeParsingTests {
    @Test func acceptsRFCExampleAndComputesAcceptKey() throws {
        let outcome = parseHandshake(validRequest)
        #expect(outcome == .upgrade(
            target: "/chat?room=1", key: "dGhlIHNhbXBsZSBub25jZQ==",
            protocols: ["chat", "superchat"], headLength: validRequest.utf8.count))
        // RFC 6455 section 1.3: this key's accept value.
        var accept = [UInt8](repeating: 0, count: 28)
        bytes("dGhlIHNhbXBsZSBub25jZQ==").withUnsafeBytes { key in
            accept.withUnsafeMutableBytes { HandshakeResponse.writeAcceptValue(key: key, into: $0.baseAddress!) }
        }
        #expect(String(decoding: accept, as: UTF8.self) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test(arguments: [1, 2, 3, 5, 7, 64])
    func requestInPiecesParsesTheSame(pieceSize: Int) {
        #expect(parseHandshake(validRequest, pieceSize: pieceSize) == parseHandshake(validRequest))
    }

    @Test func everyTwoPieceSplitParsesTheSame() {
        let all = Array(validRequest.utf8)
        let whole = parseHandshake(validRequest)
        for cut in 1..<all.count {
            var parser = HandshakeParser()
            let first = all[..<cut].withUnsafeBytes { HandshakeOutcome(parser.parse($0)) }
            #expect(first == .needMore, "cut at \(cut)")
            let second = all.withUnsafeBytes { HandshakeOutcome(parser.parse($0)) }
            #expect(second == whole, "cut at \(cut)")
        }
    }

    @Test func bytesAfterTheHeadAreNotPartOfIt() {
        let frameBytes = "\u{81}\u{85}abcd"
        guard case .upgrade(_, _, _, let headLength) = parseHandshake(validRequest + frameBytes) else {
            Issue.record("expected an upgrade")
            return
        }
        #expect(headLength == validRequest.utf8.count)
    }

    @Test func fieldNamesAreCaseInsensitiveAndTokenListsAreLists() {
        let text = """
            GET / HTTP/1.1\r
            hOsT: a\r
            UPGRADE: WebSocket\r
            connection: keep-alive\r
            Connection: ,  Upgrade ,\r
            SEC-WEBSOCKET-KEY: dGhlIHNhbXBsZSBub25jZQ==\r
            sec-websocket-version:13\r
            Sec-WebSocket-Protocol: a\r
            Sec-WebSocket-Protocol: b ,c\r
            \r

            """
        #expect(parseHandshake(text) == .upgrade(
            target: "/", key: "dGhlIHNhbXBsZSBub25jZQ==", protocols: ["a", "b", "c"],
            headLength: text.utf8.count))
    }

    @Test func laterHTTPVersionsAreAccepted() {
        let text = validRequest.replacingOccurrences(of: "HTTP/1.1\r", with: "HTTP/1.9\r")
        guard case .upgrade = parseHandshake(text) else { Issue.record("HTTP/1.9 rejected"); return }
    }

    // MARK: Rejections, one rule each.

    @Test func rejectsNonGETMethod() {
        #expect(parseHandshake(validRequest.replacingOccurrences(of: "GET /chat", with: "POST /chat"))
            == .reject(.badRequest))
    }

    @Test func rejectsHTTP10Upgrade() {
        #expect(parseHandshake(validRequest.replacingOccurrences(of: "HTTP/1.1\r", with: "HTTP/1.0\r"))
            == .reject(.badRequest))
    }

    @Test func rejectsMissingHost() {
        #expect(parseHandshake(request(replacing: "Host", with: nil)) == .reject(.badRequest))
    }

    @Test func rejectsTwoHosts() {
        #expect(parseHandshake(request(replacing: "Host", with: "Host: a\r\nHost: b")) == .reject(.badRequest))
    }

    @Test func rejectsUpgradeThatIsNotWebSocket() {
        #expect(parseHandshake(request(replacing: "Upgrade", with: "Upgrade: h2c")) == .reject(.badRequest))
    }

    @Test func rejectsMissingUpgradeField() {
        #expect(parseHandshake(request(replacing: "Upgrade", with: nil)) == .reject(.badRequest))
    }

    @Test func rejectsConnectionWithoutUpgradeToken() {
        #expect(parseHandshake(request(replacing: "Connection", with: "Connection: keep-alive"))
            == .reject(.badRequest))
        #expect(parseHandshake(request(replacing: "Connection", with: "Connection: upgraded"))
            == .reject(.badRequest))
    }

    @Test func rejectsMissingVersion() {
        #expect(parseHandshake(request(replacing: "Sec-WebSocket-Version", with: nil)) == .reject(.badRequest))
    }

    @Test(arguments: ["8", "12", "14", "13, 8", ""])
    func rejectsOtherVersionsWith426(version: String) {
        let text = request(replacing: "Sec-WebSocket-Version", with: "Sec-WebSocket-Version: \(version)")
        #expect(parseHandshake(text) == .reject(.unsupportedVersion))
        let response = HandshakeRejection.unsupportedVersion.response.description
        #expect(response.hasPrefix("HTTP/1.1 426 "))
        #expect(response.contains("\r\nSec-WebSocket-Version: 13\r\n"))
    }

    @Test(arguments: [
        "dGhlIHNhbXBsZSBub25jZQ",  // no padding
        "dGhlIHNhbXBsZSBub25jZQ=",  // short padding
        "dGhlIHNhbXBsZSBub25jZ===",  // padding too early
        "dGhlIHNhbXBsZSBub25jZR==",  // non-canonical: low bits set
        "dGhlIHNhbXBsZSBub2*jZQ==",  // not base64
        "dGhlIHNhbXBsZSBub25jZSBzYW1wbGU=",  // decodes to 23 bytes
        "",
    ])
    func rejectsKeysThatAreNotSixteenBytes(key: String) {
        let text = request(replacing: "Sec-WebSocket-Key", with: "Sec-WebSocket-Key: \(key)")
        #expect(parseHandshake(text) == .reject(.badRequest))
    }

    @Test func rejectsMissingOrRepeatedKey() {
        #expect(parseHandshake(request(replacing: "Sec-WebSocket-Key", with: nil)) == .reject(.badRequest))
        let twice = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
        #expect(parseHandshake(request(replacing: "Sec-WebSocket-Key", with: twice)) == .reject(.badRequest))
    }

    @Test func rejectsHeadPastTheLimitWith431() {
        let padding = "X-Padding: " + String(repeating: "a", count: 9000) + "\r\n"
        let text = validRequest.replacingOccurrences(of: "Origin:", with: padding + "Origin:")
        #expect(parseHandshake(text) == .reject(.headerTooLarge))
        #expect(parseHandshake(text, pieceSize: 100) == .reject(.headerTooLarge))
        // A head that ends exactly at the limit is fine; one byte more is not.
        let size = validRequest.utf8.count
        #expect(parseHandshake(validRequest, maxHeadBytes: size) != .reject(.headerTooLarge))
        #expect(parseHandshake(validRequest, maxHeadBytes: size - 1) == .reject(.headerTooLarge))
        #expect(HandshakeRejection.headerTooLarge.response.description.hasPrefix("HTTP/1.1 431 "))
    }

    @Test(arguments: [
        "Host : server.example.com",  // whitespace before the colon
        " Host: server.example.com",  // obs-fold / leading whitespace
        "Host server.example.com",  // no colon
        "Ho(st: server.example.com",  // not a token
        "Host: server\u{01}example.com",  // control byte in the value
    ])
    func rejectsMalformedFieldLines(line: String) {
        #expect(parseHandshake(request(replacing: "Host", with: line)) == .reject(.badRequest))
    }

    @Test(arguments: [
        "GET /chat HTTP/1.1 extra", "GET  /chat HTTP/1.1", "GET /chat", "GET chat HTTP/1.1",
        "GET /chat HTTP/11", "GET /chat http/1.1", "G(T /chat HTTP/1.1", "",
    ])
    func rejectsMalformedRequestLines(line: String) {
        let text = validRequest.replacingOccurrences(of: "GET /chat?room=1 HTTP/1.1", with: line)
        #expect(parseHandshake(text) == .reject(.badRequest))
    }

    @Test func badRequestResponseIs400() {
        #expect(HandshakeRejection.badRequest.response.description.hasPrefix("HTTP/1.1 400 "))
    }

    // MARK: Plain HTTP

    @Test func recognisesHealthCheck() {
        #expect(parseHandshake("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
            == .plain(method: "GET", target: "/healthz", health: true, headLength: 34))
        #expect(parseHandshake("GET /healthz?verbose=1 HTTP/1.0\r\n\r\n")
            == .plain(method: "GET", target: "/healthz?verbose=1", health: true, headLength: 35))
        #expect(parseHandshake("GET /healthzz HTTP/1.1\r\n\r\n")
            == .plain(method: "GET", target: "/healthzz", health: false, headLength: 26))
        #expect(parseHandshake("POST /healthz HTTP/1.1\r\n\r\n")
            == .plain(method: "POST", target: "/healthz", health: false, headLength: 26))
        #expect(parseHandshake("GET / HTTP/1.1\r\n\r\n")
            == .plain(method: "GET", target: "/", health: false, headLength: 18))
    }

    // MARK: Responses

    @Test func switchingProtocolsResponseWithChosenSubprotocol() throws {
        let all = Array(validRequest.utf8)
        var parser = HandshakeParser()
        let text: String? = all.withUnsafeBytes { raw in
            guard case .upgrade(let request, _) = parser.parse(raw) else { return nil }
            // The chooser: the application's preference order is "superchat" first.
            let chosen = request.offeredSubprotocols.first { HTTPHead.equals($0, "superchat") }
            var out = [UInt8](repeating: 0, count: 256)
            let size = out.withUnsafeMutableBytes {
                HandshakeResponse.writeSwitchingProtocols(for: request, subprotocol: chosen, into: $0)
            }
            let tooSmall = out.withUnsafeMutableBytes {
                HandshakeResponse.writeSwitchingProtocols(
                    for: request, subprotocol: chosen, into: UnsafeMutableRawBufferPointer(rebasing: $0[..<50]))
            }
            #expect(tooSmall == nil)
            return size.map { String(decoding: out[..<$0], as: UTF8.self) }
        }
        #expect(text == """
            HTTP/1.1 101 Switching Protocols\r
            Upgrade: websocket\r
            Connection: Upgrade\r
            Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r
            Sec-WebSocket-Protocol: superchat\r
            \r

            """)
    }

    @Test func switchingProtocolsResponseWithoutSubprotocol() {
        let all = Array(validRequest.utf8)
        var parser = HandshakeParser()
        all.withUnsafeBytes { raw in
            guard case .upgrade(let request, _) = parser.parse(raw) else { Issue.record("no upgrade"); return }
            var out = [UInt8](repeating: 0, count: 256)
            let size = out.withUnsafeMutableBytes {
                HandshakeResponse.writeSwitchingProtocols(for: request, into: $0)
            }
            let text = String(decoding: out[..<size!], as: UTF8.self)
            #expect(!text.contains("Sec-WebSocket-Protocol"))
            #expect(text.hasSuffix("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"))
            #expect(size == HandshakeResponse.switchingProtocolsSize(subprotocolLength: 0))
        }
    }

    @Test func base64EncodingMatchesKnownVectors() {
        // RFC 4648 section 10.
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=",
                       "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors {
            var out = [UInt8](repeating: 0, count: 16)
            let count = Array(plain.utf8).withUnsafeBytes { input in
                out.withUnsafeMutableBytes { Base64.encode(input, into: $0.baseAddress!) }
            }
            #expect(String(decoding: out[..<count], as: UTF8.self) == encoded)
            #expect(count == Base64.encodedLength(plain.utf8.count))
        }
    }
}
