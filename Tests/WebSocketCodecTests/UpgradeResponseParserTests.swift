import Foundation
import Testing
@testable import WebSocketCodec

/// RFC 6455 section 1.3: the sample key and the server's answer to it.
let sampleKey = "dGhlIHNhbXBsZSBub25jZQ=="
let validResponse = """
    HTTP/1.1 101 Switching Protocols\r
    Upgrade: websocket\r
    Connection: Upgrade\r
    Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r
    \r

    """

/// Runs the response parser over `response` fed in pieces of `pieceSize` bytes.
func parseResponse(
    _ response: String, key: String = sampleKey, pieceSize: Int = .max, maxHeadBytes: Int = 8192,
    offeredDeflate: Bool = false, resuming: Bool = false
) -> UpgradeResponseStep {
    let all = Array(response.utf8)
    let keyBytes = Array(key.utf8)
    var parser = UpgradeResponseParser()
    var end = 0
    repeat {
        // `resuming`: a fresh parser per piece, told how far the last one searched (as the
        // load generator does, keeping the bytes but not the parser).
        if resuming { parser = UpgradeResponseParser(resumingAfter: end) }
        end = min(all.count, end + max(1, min(pieceSize, all.count)))
        let step = all[..<end].withUnsafeBytes { raw in
            keyBytes.withUnsafeBytes { parser.parse(raw, key: $0, maxHeadBytes: maxHeadBytes, offeredDeflate: offeredDeflate) }
        }
        if step != .needMore { return step }
    } while end < all.count
    return .needMore
}

/// `validResponse` with the field line starting with `name` replaced (nil removes it).
func response(replacing name: String, with line: String?) -> String {
    var lines = validResponse.components(separatedBy: "\r\n")
    let index = lines.firstIndex { $0.lowercased().hasPrefix(name.lowercased() + ":") }!
    if let line { lines[index] = line } else { lines.remove(at: index) }
    return lines.joined(separator: "\r\n")
}

@Suite struct UpgradeResponseParserTests {
    // MARK: The permessage-deflate offer (RFC 7692) and the server's answer to it.

    /// `validResponse` with `fields` (CRLF-terminated lines) before its blank line.
    static func withFields(_ fields: String) -> String {
        // "\r\n" is one Character: dropping one drops the blank line.
        String(validResponse.dropLast(1)) + fields + "\r\n"
    }

    @Test func theDeflateOfferIsWrittenBeforeTheKey() {
        let key = Array(sampleKey.utf8)
        var request = [UInt8](repeating: 0, count: 512)
        let size = Array("/".utf8).withUnsafeBytes { target in
            Array("h:1".utf8).withUnsafeBytes { host in
                key.withUnsafeBytes { k in
                    request.withUnsafeMutableBytes {
                        ClientHandshake.writeRequest(target: target, host: host, key: k, offersDeflate: true, into: $0)
                    }
                }
            }
        }!
        #expect(size == ClientHandshake.requestSize(targetLength: 1, hostLength: 3, offersDeflate: true))
        let text = String(decoding: request[..<size], as: UTF8.self)
        #expect(text.contains("\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            + "Sec-WebSocket-Key: \(sampleKey)\r\n\r\n"))
        let offset = ClientHandshake.keyOffset(targetLength: 1, hostLength: 3, offersDeflate: true)
        #expect(Array(request[offset..<(offset + 24)]) == key)
        // The server's parser sees the offer.
        #expect(parseHandshake(text) == .upgrade(target: "/", key: sampleKey, protocols: [], headLength: size))
    }

    @Test(arguments: [
        ("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n",
         DeflateParameters(serverNoContextTakeover: true, clientNoContextTakeover: true)),
        ("Sec-WebSocket-Extensions: permessage-deflate;client_no_context_takeover;server_no_context_takeover\r\n",
         DeflateParameters(serverNoContextTakeover: true, clientNoContextTakeover: true)),
        ("Sec-WebSocket-Extensions: permessage-deflate\r\n",
         DeflateParameters(serverNoContextTakeover: false, clientNoContextTakeover: false)),
        // Myriad's dedicated mode answering a browser-like offer.
        ("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=11; client_max_window_bits=11\r\n",
         DeflateParameters(serverNoContextTakeover: false, clientNoContextTakeover: false,
                           serverMaxWindowBits: 11, clientMaxWindowBits: 11)),
        ("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; server_max_window_bits=\"10\"\r\n",
         DeflateParameters(serverNoContextTakeover: true, clientNoContextTakeover: false, serverMaxWindowBits: 10)),
    ])
    func anAnswerToTheDeflateOfferIsAccepted(fields: String, agreed: DeflateParameters) {
        let response = Self.withFields(fields)
        #expect(parseResponse(response, offeredDeflate: true) == .accepted(headLength: response.utf8.count, deflate: agreed))
        // In pieces too.
        #expect(parseResponse(response, pieceSize: 7, offeredDeflate: true) == .accepted(headLength: response.utf8.count, deflate: agreed))
        // Without an offer, any extension fails the handshake.
        #expect(parseResponse(response) == .failed(.unexpectedExtension))
    }

    /// A parser made to resume after the bytes an earlier one searched reads a head in pieces
    /// of every size as one parser does, so the caller need keep only the gathered bytes.
    @Test func aResumedParserReadsAHeadInPiecesAsOneParserDoes() {
        let response = Self.withFields("Sec-WebSocket-Extensions: permessage-deflate\r\n")
        let whole = parseResponse(response, offeredDeflate: true)
        #expect(whole == .accepted(headLength: response.utf8.count, deflate: DeflateParameters(serverNoContextTakeover: false, clientNoContextTakeover: false)))
        for pieceSize in 1...response.utf8.count {
            #expect(parseResponse(response, pieceSize: pieceSize, offeredDeflate: true, resuming: true) == whole, "pieces of \(pieceSize)")
        }
        let bad = response.replacingOccurrences(of: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", with: "s3pPLMBiTxaQ9kYGzzhZRbK+xOp=")
        #expect(parseResponse(bad, pieceSize: 3, offeredDeflate: true, resuming: true) == parseResponse(bad, offeredDeflate: true))
    }

    @Test func declinedOfferRunsUncompressed() {
        #expect(parseResponse(validResponse, offeredDeflate: true) == .accepted(headLength: validResponse.utf8.count, deflate: nil))
    }

    @Test(arguments: [
        // client_max_window_bits without a value (a response must name one, section 7.1.2.2).
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
        // Another extension, a second element, a second field.
        "Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n",
        "Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate\r\n",
        "Sec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Extensions: permessage-deflate\r\n",
        // Unknown, repeated or badly valued parameters.
        "Sec-WebSocket-Extensions: permessage-deflate; x=1\r\n",
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; server_no_context_takeover\r\n",
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover=1\r\n",
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=16\r\n",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=7\r\n",
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits\r\n",
        "Sec-WebSocket-Extensions: permessage-deflate; ; server_no_context_takeover\r\n",
    ])
    func aBadAnswerToTheDeflateOfferFails(fields: String) {
        #expect(parseResponse(Self.withFields(fields), offeredDeflate: true) == .failed(.badExtension))
    }

    @Test func acceptsTheRFCExample() {
        #expect(parseResponse(validResponse) == .accepted(headLength: validResponse.utf8.count))
    }

    @Test(arguments: [1, 2, 3, 7, 50])
    func responseInPiecesParsesTheSame(pieceSize: Int) {
        #expect(parseResponse(validResponse, pieceSize: pieceSize) == .accepted(headLength: validResponse.utf8.count))
    }

    @Test func everyTwoPieceSplitParsesTheSame() {
        let all = Array(validResponse.utf8)
        let key = Array(sampleKey.utf8)
        for cut in 1..<all.count {
            var parser = UpgradeResponseParser()
            let first = all[..<cut].withUnsafeBytes { raw in key.withUnsafeBytes { parser.parse(raw, key: $0) } }
            #expect(first == .needMore, "cut at \(cut)")
            let second = all.withUnsafeBytes { raw in key.withUnsafeBytes { parser.parse(raw, key: $0) } }
            #expect(second == .accepted(headLength: all.count), "cut at \(cut)")
        }
    }

    @Test func framesAfterTheHeadAreNotPartOfIt() {
        let text = validResponse + "\u{89}\u{0}"  // a ping right behind the response
        #expect(parseResponse(text) == .accepted(headLength: validResponse.utf8.count))
    }

    @Test func namesAndTokensAreCaseInsensitiveAndListsAreLists() {
        let text = """
            HTTP/1.1 101 \r
            date: Thu, 01 Jan 2026 00:00:00 GMT\r
            UPGRADE: WebSocket\r
            connection: keep-alive, UPGRADE\r
            sec-websocket-accept:s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r
            \r

            """
        #expect(parseResponse(text) == .accepted(headLength: text.utf8.count))
        // No reason phrase at all, and a later HTTP/1 minor version.
        let bare = validResponse.replacingOccurrences(of: "HTTP/1.1 101 Switching Protocols", with: "HTTP/1.2 101")
        #expect(parseResponse(bare) == .accepted(headLength: bare.utf8.count))
    }

    @Test func theServersOwnResponseIsAccepted() {
        // Round trip: HandshakeResponse writes what UpgradeResponseParser accepts.
        var nonce = [UInt8](repeating: 0, count: 16)
        for index in nonce.indices { nonce[index] = UInt8(truncatingIfNeeded: index &* 37 &+ 11) }
        var key = [UInt8](repeating: 0, count: 24)
        nonce.withUnsafeBytes { n in key.withUnsafeMutableBytes { ClientHandshake.writeKey(nonce: n, into: $0.baseAddress!) } }
        let keyText = String(decoding: key, as: UTF8.self)
        var request = [UInt8](repeating: 0, count: 256)
        let size = Array("/chat".utf8).withUnsafeBytes { target in
            Array("127.0.0.1:8080".utf8).withUnsafeBytes { host in
                key.withUnsafeBytes { k in
                    request.withUnsafeMutableBytes { ClientHandshake.writeRequest(target: target, host: host, key: k, into: $0) }
                }
            }
        }!
        #expect(size == ClientHandshake.requestSize(targetLength: 5, hostLength: 14))
        let requestText = String(decoding: request[..<size], as: UTF8.self)
        #expect(requestText == """
            GET /chat HTTP/1.1\r
            Host: 127.0.0.1:8080\r
            Upgrade: websocket\r
            Connection: Upgrade\r
            Sec-WebSocket-Version: 13\r
            Sec-WebSocket-Key: \(keyText)\r
            \r

            """)
        let offset = ClientHandshake.keyOffset(targetLength: 5, hostLength: 14)
        #expect(Array(request[offset..<(offset + 24)]) == key)
        // The server's parser accepts the request; its response passes the client's parser.
        #expect(parseHandshake(requestText) == .upgrade(target: "/chat", key: keyText, protocols: [], headLength: size))
        var reply = [UInt8](repeating: 0, count: 256)
        let replySize: Int? = request[..<size].withUnsafeBytes { raw in
            var parser = HandshakeParser()
            guard case .upgrade(let upgrade, _) = parser.parse(raw) else { return nil }
            return reply.withUnsafeMutableBytes { HandshakeResponse.writeSwitchingProtocols(for: upgrade, into: $0) }
        }
        let replyText = String(decoding: reply[..<replySize!], as: UTF8.self)
        #expect(parseResponse(replyText, key: keyText) == .accepted(headLength: replySize!))
        // ...and not for another key.
        #expect(parseResponse(replyText, key: sampleKey) == .failed(.acceptMismatch))
    }

    // MARK: Failures, one rule each.

    @Test(arguments: [(200, "OK"), (400, "Bad Request"), (426, "Upgrade Required"), (503, "Service Unavailable")])
    func otherStatusesFailWithTheirCode(code: Int, reason: String) {
        let text = "HTTP/1.1 \(code) \(reason)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        #expect(parseResponse(text) == .failed(.status(code)))
        #expect(UpgradeResponseFailure.status(code).name == "HTTP_\(code)")
    }

    @Test(arguments: [
        "HTTP/1.0 101 Switching Protocols",  // HTTP/1.0 cannot upgrade
        "HTTP/2 101 Switching Protocols",
        "http/1.1 101 Switching Protocols",
        "HTTP/1.1 1O1 Switching Protocols",
        "HTTP/1.1 101Switching",
        "HTTP/1.1  101 Switching Protocols",
        "HTTP/1.1 10 Switching Protocols",
        "HTTP/1.1 099 Weird",
        "HTTP/1.1 101 Switching\u{01}Protocols",
        "",
    ])
    func malformedStatusLinesFail(line: String) {
        let text = validResponse.replacingOccurrences(of: "HTTP/1.1 101 Switching Protocols", with: line)
        #expect(parseResponse(text) == .failed(.malformed))
    }

    @Test(arguments: [
        "Upgrade : websocket",  // whitespace before the colon
        " Upgrade: websocket",  // obs-fold
        "Upgrade websocket",  // no colon
        "Up(grade: websocket",  // not a token
        "Upgrade: web\u{01}socket",  // control byte
        "Upgrade: websocket\nX-Bare: lf",  // a bare LF inside the head
    ])
    func malformedFieldLinesFail(line: String) {
        #expect(parseResponse(response(replacing: "Upgrade", with: line)) == .failed(.malformed))
    }

    @Test func missingOrWrongUpgradeFails() {
        #expect(parseResponse(response(replacing: "Upgrade", with: nil)) == .failed(.missingUpgrade))
        #expect(parseResponse(response(replacing: "Upgrade", with: "Upgrade: h2c")) == .failed(.missingUpgrade))
    }

    @Test func missingConnectionUpgradeFails() {
        #expect(parseResponse(response(replacing: "Connection", with: nil)) == .failed(.missingConnectionUpgrade))
        #expect(parseResponse(response(replacing: "Connection", with: "Connection: keep-alive"))
            == .failed(.missingConnectionUpgrade))
    }

    @Test func missingWrongOrRepeatedAcceptFails() {
        #expect(parseResponse(response(replacing: "Sec-WebSocket-Accept", with: nil)) == .failed(.missingAccept))
        #expect(parseResponse(response(replacing: "Sec-WebSocket-Accept", with: "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOO="))
            == .failed(.acceptMismatch))
        #expect(parseResponse(response(replacing: "Sec-WebSocket-Accept", with: "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo"))
            == .failed(.acceptMismatch))
        let twice = "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        #expect(parseResponse(response(replacing: "Sec-WebSocket-Accept", with: twice)) == .failed(.acceptMismatch))
        #expect(parseResponse(validResponse, key: "AAAAAAAAAAAAAAAAAAAAAA==") == .failed(.acceptMismatch))
    }

    @Test func extensionsAndSubprotocolsWeDidNotOfferFail() {
        let withExtension = validResponse.replacingOccurrences(
            of: "\r\n\r\n", with: "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
        #expect(parseResponse(withExtension) == .failed(.unexpectedExtension))
        let withProtocol = validResponse.replacingOccurrences(of: "\r\n\r\n", with: "\r\nSec-WebSocket-Protocol: chat\r\n\r\n")
        #expect(parseResponse(withProtocol) == .failed(.unexpectedSubprotocol))
    }

    @Test func headPastTheLimitFails() {
        let padding = "X-Padding: " + String(repeating: "a", count: 9000) + "\r\n"
        let text = validResponse.replacingOccurrences(of: "Upgrade:", with: padding + "Upgrade:")
        #expect(parseResponse(text) == .failed(.headTooLarge))
        #expect(parseResponse(text, pieceSize: 100) == .failed(.headTooLarge))
        let size = validResponse.utf8.count
        #expect(parseResponse(validResponse, maxHeadBytes: size) == .accepted(headLength: size))
        #expect(parseResponse(validResponse, maxHeadBytes: size - 1) == .failed(.headTooLarge))
    }

    @Test func failureNamesAreStable() {
        let names = [UpgradeResponseFailure.malformed, .headTooLarge, .missingUpgrade, .missingConnectionUpgrade,
                     .missingAccept, .acceptMismatch, .unexpectedExtension, .unexpectedSubprotocol].map(\.name)
        #expect(names == ["MALFORMED_RESPONSE", "RESPONSE_TOO_LARGE", "NO_UPGRADE", "NO_CONNECTION_UPGRADE",
                          "NO_ACCEPT", "BAD_ACCEPT", "UNEXPECTED_EXTENSION", "UNEXPECTED_SUBPROTOCOL"])
    }
}
