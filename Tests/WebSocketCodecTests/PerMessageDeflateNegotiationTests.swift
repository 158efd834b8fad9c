import Testing
@testable import WebSocketCodec

/// `validRequest` with `Sec-WebSocket-Extensions` lines added, parsed; calls `body` with the
/// upgrade request (its views live only as long as the call).
func withUpgradeRequest<R>(extensionLines: [String], _ body: (UpgradeRequest) -> R) -> R {
    var text = validRequest
    text.removeLast()  // the blank line's CRLF (one Character)
    for line in extensionLines { text += "Sec-WebSocket-Extensions: \(line)\r\n" }
    text += "\r\n"
    let all = Array(text.utf8)
    return all.withUnsafeBytes { raw in
        var parser = HandshakeParser()
        guard case .upgrade(let request, _) = parser.parse(raw) else {
            preconditionFailure("the request must parse: \(text)")
        }
        return body(request)
    }
}

/// The response value negotiated for `lines` under `policy`, or nil when every offer is declined.
func negotiatedResponse(_ lines: [String], _ policy: PerMessageDeflatePolicy) -> String? {
    withUpgradeRequest(extensionLines: lines) { request in
        PerMessageDeflateNegotiator.negotiate(request.offeredExtensions, policy: policy)?
            .withResponseValue { String(decoding: $0, as: UTF8.self) }
    }
}

func negotiatedParameters(_ lines: [String], _ policy: PerMessageDeflatePolicy) -> DeflateParameters? {
    withUpgradeRequest(extensionLines: lines) { request in
        PerMessageDeflateNegotiator.negotiate(request.offeredExtensions, policy: policy)?.parameters
    }
}

/// The outcome of parsing the first `permessage-deflate` offer of one header line.
func offerDefect(_ line: String) -> PerMessageDeflateOffer.Defect? {
    withUpgradeRequest(extensionLines: [line]) { request in
        for offer in request.offeredExtensions where offer.hasName("permessage-deflate") {
            if case .failure(let defect) = PerMessageDeflateOffer.parse(offer) { return defect }
            return nil
        }
        preconditionFailure("no permessage-deflate offer in \(line)")
    }
}

let both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

@Suite struct ExtensionListTests {
    @Test func elementsAcrossLinesInOrder() {
        let names: [String] = withUpgradeRequest(extensionLines: [
            "a; x=1, b", " , c;y=\"q,uoted\" ,", "d",
        ]) { request in
            request.offeredExtensions.map { String(decoding: $0.name, as: UTF8.self) }
        }
        #expect(names == ["a", "b", "c", "d"])
    }

    @Test func parametersAsWritten() {
        let parameters: [String] = withUpgradeRequest(extensionLines: [
            "permessage-deflate ;a; b = 9 ;c=\"1\\0\";d=tok",
        ]) { request in
            var result: [String] = []
            for offer in request.offeredExtensions {
                #expect(offer.isWellFormed)
                for parameter in offer.parameters {
                    let name = String(decoding: parameter.name, as: UTF8.self)
                    let value = parameter.rawValue.map { String(decoding: $0, as: UTF8.self) }
                    result.append(value.map { "\(name)=\($0)" } ?? name)
                    if name == "c" { #expect(parameter.decimalValue(maxDigits: 2) == 10) }
                    if name == "b" { #expect(parameter.decimalValue(maxDigits: 2) == 9) }
                    if name == "d" { #expect(parameter.decimalValue(maxDigits: 2) == nil) }
                }
            }
            return result
        }
        #expect(parameters == ["a", "b=9", "c=\"1\\0\"", "d=tok"])
    }

    @Test(arguments: [
        "permessage-deflate;", "permessage-deflate; ;a", "permessage-deflate a", "permessage-deflate; a=",
        "permessage-deflate; a=\"unterminated", "permessage-deflate; a=b c", "permessage-deflate; =1",
        "permessage-deflate; a==1", "permessage-deflate; a=\"x\"y",
    ])
    func malformedElements(line: String) {
        let wellFormed: [Bool] = withUpgradeRequest(extensionLines: [line]) { request in
            request.offeredExtensions.map(\.isWellFormed)
        }
        #expect(wellFormed.first == false, "\(line)")
        #expect(offerDefect(line) == .malformed)
    }

    @Test func noHeaderNoOffers() {
        let count = withUpgradeRequest(extensionLines: []) { request in
            request.offeredExtensions.reduce(0) { count, _ in count + 1 }
        }
        #expect(count == 0)
    }
}

@Suite struct PerMessageDeflateOfferTests {
    @Test(arguments: [
        // Unknown parameters (RFC 7692 section 7: "not defined for use in an offer").
        ("permessage-deflate; foo", PerMessageDeflateOffer.Defect.unknownParameter),
        ("permessage-deflate; client_max_window_bit=10", .unknownParameter),
        ("permessage-deflate; Server_No_Context_Takeover", .unknownParameter),
        // Duplicates.
        ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", .duplicateParameter),
        ("permessage-deflate; client_no_context_takeover; client_no_context_takeover", .duplicateParameter),
        ("permessage-deflate; server_max_window_bits=10; server_max_window_bits=10", .duplicateParameter),
        ("permessage-deflate; client_max_window_bits; client_max_window_bits=10", .duplicateParameter),
        // Values where none belongs, none where one is needed, bad window sizes.
        ("permessage-deflate; server_no_context_takeover=1", .invalidValue),
        ("permessage-deflate; client_no_context_takeover=\"\"", .invalidValue),
        ("permessage-deflate; server_max_window_bits", .invalidValue),
        ("permessage-deflate; server_max_window_bits=7", .invalidValue),
        ("permessage-deflate; server_max_window_bits=16", .invalidValue),
        ("permessage-deflate; server_max_window_bits=08", .invalidValue),
        ("permessage-deflate; server_max_window_bits=010", .invalidValue),
        ("permessage-deflate; server_max_window_bits=+9", .invalidValue),
        ("permessage-deflate; server_max_window_bits=1a", .invalidValue),
        ("permessage-deflate; server_max_window_bits=\"\"", .invalidValue),
        ("permessage-deflate; server_max_window_bits=\" 9\"", .invalidValue),
        ("permessage-deflate; client_max_window_bits=0", .invalidValue),
        ("permessage-deflate; client_max_window_bits=100", .invalidValue),
        ("permessage-deflate; client_max_window_bits=16", .invalidValue),
    ])
    func declinedOffers(line: String, defect: PerMessageDeflateOffer.Defect) {
        #expect(offerDefect(line) == defect, "\(line)")
        #expect(negotiatedResponse([line], .shared) == nil)
        #expect(negotiatedResponse([line], .dedicated()) == nil)
    }

    @Test func everyParameterParses() {
        let parsed: PerMessageDeflateOffer? = withUpgradeRequest(extensionLines: [
            "permessage-deflate; client_max_window_bits=\"9\"; server_max_window_bits=8; "
                + "client_no_context_takeover; server_no_context_takeover",
        ]) { request in
            var iterator = request.offeredExtensions.makeIterator()
            return try? PerMessageDeflateOffer.parse(iterator.next()!).get()
        }
        var expected = PerMessageDeflateOffer()
        expected.serverNoContextTakeover = true
        expected.clientNoContextTakeover = true
        expected.serverMaxWindowBits = 8
        expected.offersClientMaxWindowBits = true
        expected.clientMaxWindowBits = 9
        #expect(parsed == expected)
    }

    @Test(arguments: 8...15)
    func everyWindowSize(bits: Int) {
        #expect(offerDefect("permessage-deflate; server_max_window_bits=\(bits); client_max_window_bits=\(bits)") == nil)
    }
}

@Suite struct PerMessageDeflateNegotiationTests {
    @Test(arguments: [
        // Browsers' and clients' usual offers.
        ("permessage-deflate; client_max_window_bits", both),  // Chromium, Node ws, Python websockets
        ("permessage-deflate", both),  // Firefox
        (both, both),
        ("permessage-deflate; server_no_context_takeover", both),
        ("permessage-deflate; client_max_window_bits=10", both),
        // The offer's server window is honoured and named.
        ("permessage-deflate; server_max_window_bits=10", both + "; server_max_window_bits=10"),
        ("permessage-deflate; server_max_window_bits=8; client_max_window_bits=8", both + "; server_max_window_bits=8"),
        ("permessage-deflate; server_max_window_bits=\"12\"", both + "; server_max_window_bits=12"),
        ("permessage-deflate;server_max_window_bits = 15 ; client_no_context_takeover", both + "; server_max_window_bits=15"),
    ])
    func sharedPolicy(offer: String, response: String) {
        #expect(negotiatedResponse([offer], .shared) == response)
        let parameters = negotiatedParameters([offer], .shared)
        #expect(parameters?.serverNoContextTakeover == true)
        #expect(parameters?.clientNoContextTakeover == true)
        #expect(parameters?.clientMaxWindowBits == 15)
        #expect(parameters?.needsConnectionDeflater == false)
        #expect(parameters?.needsConnectionInflater == false)
    }

    @Test func sharedPolicyServerWindow() {
        #expect(negotiatedParameters(["permessage-deflate; server_max_window_bits=9"], .shared)?.serverMaxWindowBits == 9)
        #expect(negotiatedParameters(["permessage-deflate"], .shared)?.serverMaxWindowBits == 15)
    }

    @Test(arguments: [
        // No client_max_window_bits: the client's window cannot be bounded, so its direction
        // gets client_no_context_takeover; the server's window is bounded and named.
        ("permessage-deflate", "permessage-deflate; client_no_context_takeover; server_max_window_bits=11",
         DeflateParameters(serverNoContextTakeover: false, clientNoContextTakeover: true, serverMaxWindowBits: 11, clientMaxWindowBits: 15)),
        ("permessage-deflate; client_max_window_bits", "permessage-deflate; server_max_window_bits=11; client_max_window_bits=11",
         DeflateParameters(serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 11, clientMaxWindowBits: 11)),
        ("permessage-deflate; client_max_window_bits=9", "permessage-deflate; server_max_window_bits=11; client_max_window_bits=9",
         DeflateParameters(serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 11, clientMaxWindowBits: 9)),
        ("permessage-deflate; server_max_window_bits=13; client_max_window_bits=14",
         "permessage-deflate; server_max_window_bits=11; client_max_window_bits=11",
         DeflateParameters(serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 11, clientMaxWindowBits: 11)),
        ("permessage-deflate; server_max_window_bits=8; client_max_window_bits",
         "permessage-deflate; server_max_window_bits=8; client_max_window_bits=11",
         DeflateParameters(serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 8, clientMaxWindowBits: 11)),
        // The client refuses our context: that direction is served like the shared mode.
        ("permessage-deflate; server_no_context_takeover; client_max_window_bits",
         "permessage-deflate; server_no_context_takeover; client_max_window_bits=11",
         DeflateParameters(serverNoContextTakeover: true, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 11)),
        ("permessage-deflate; server_no_context_takeover; server_max_window_bits=12",
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12",
         DeflateParameters(serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 12, clientMaxWindowBits: 15)),
        // The client keeps no context of its own: no reason to keep one for it.
        ("permessage-deflate; client_no_context_takeover; client_max_window_bits=10",
         "permessage-deflate; client_no_context_takeover; server_max_window_bits=11",
         DeflateParameters(serverNoContextTakeover: false, clientNoContextTakeover: true, serverMaxWindowBits: 11, clientMaxWindowBits: 15)),
    ])
    func dedicatedPolicy(offer: String, response: String, parameters: DeflateParameters) {
        #expect(negotiatedResponse([offer], .dedicated()) == response)
        #expect(negotiatedParameters([offer], .dedicated()) == parameters)
    }

    @Test func dedicatedWindowBoundIsAPolicyKnob() {
        #expect(negotiatedResponse(["permessage-deflate; client_max_window_bits"], .dedicated(maxWindowBits: 15))
            == "permessage-deflate; server_max_window_bits=15; client_max_window_bits=15")
        #expect(negotiatedResponse(["permessage-deflate; client_max_window_bits"], .dedicated(maxWindowBits: 9))
            == "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9")
    }

    @Test func firstAcceptableOfferWins() {
        // Autobahn 13.7-style: several offers in one line, the first one invalid.
        #expect(negotiatedResponse([
            "permessage-deflate; server_max_window_bits=7, permessage-deflate; server_max_window_bits=9, permessage-deflate",
        ], .shared) == both + "; server_max_window_bits=9")
        #expect(negotiatedResponse([
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=8, permessage-deflate",
        ], .dedicated()) == "permessage-deflate; client_no_context_takeover; server_max_window_bits=8")
    }

    @Test func offersAcrossSeveralHeaderLines() {
        #expect(negotiatedResponse([
            "x-webkit-deflate-frame",
            "permessage-deflate; foo, permessage-deflate; server_max_window_bits=99",
            "permessage-deflate; server_max_window_bits=12",
            "permessage-deflate",
        ], .shared) == both + "; server_max_window_bits=12")
    }

    @Test func otherExtensionsAreIgnored() {
        #expect(negotiatedResponse(["x-webkit-deflate-frame", "foo; bar=\"a, permessage-deflate\""], .shared) == nil)
        #expect(negotiatedResponse(["Permessage-Deflate"], .shared) == nil)
        #expect(negotiatedResponse(["foo; bar=\"a,b\", permessage-deflate"], .shared) == both)
        #expect(negotiatedResponse([], .shared) == nil)
    }

    @Test func responseValueFitsItsBound() {
        let agreement = PerMessageDeflateAgreement(
            parameters: DeflateParameters(serverNoContextTakeover: true, clientNoContextTakeover: true,
                                          serverMaxWindowBits: 15, clientMaxWindowBits: 15),
            respondsServerMaxWindowBits: true, respondsClientMaxWindowBits: true)
        #expect(agreement.responseValueLength == PerMessageDeflateAgreement.maxResponseValueBytes)
        #expect(agreement.withResponseValue { String(decoding: $0, as: UTF8.self) }
            == both + "; server_max_window_bits=15; client_max_window_bits=15")
    }

    @Test func switchingProtocolsNamesTheExtension() {
        let response: String = withUpgradeRequest(extensionLines: ["permessage-deflate; client_max_window_bits"]) { request in
            let agreement = PerMessageDeflateNegotiator.negotiate(request.offeredExtensions, policy: .shared)!
            return agreement.withResponseValue { value in
                let size = HandshakeResponse.switchingProtocolsSize(subprotocolLength: 4, extensionsLength: value.count)
                var out = [UInt8](repeating: 0, count: size)
                let written = out.withUnsafeMutableBytes { destination in
                    "chat".utf8.withContiguousStorageIfAvailable { chat in
                        HandshakeResponse.writeSwitchingProtocols(
                            for: request, subprotocol: UnsafeRawBufferPointer(chat), extensions: value, into: destination)
                    }!
                }
                #expect(written == size)
                return String(decoding: out, as: UTF8.self)
            }
        }
        #expect(response == """
            HTTP/1.1 101 Switching Protocols\r
            Upgrade: websocket\r
            Connection: Upgrade\r
            Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r
            Sec-WebSocket-Protocol: chat\r
            Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r
            \r

            """)
        // The same through the deferred-upgrade path: the header line as an extra header.
        let deferred: String = withUpgradeRequest(extensionLines: ["permessage-deflate; client_max_window_bits"]) { request in
            let agreement = PerMessageDeflateNegotiator.negotiate(request.offeredExtensions, policy: .shared)!
            var line = [UInt8](repeating: 0, count: agreement.headerLineLength)
            #expect(line.withUnsafeMutableBytes { agreement.writeHeaderLine(into: $0) } == line.count)
            var accept = [UInt8](repeating: 0, count: HandshakeResponse.acceptValueLength)
            accept.withUnsafeMutableBytes { HandshakeResponse.writeAcceptValue(key: request.key, into: $0.baseAddress!) }
            let size = HandshakeResponse.switchingProtocolsSize(subprotocolLength: 4, extraHeaderBytes: line.count)
            var out = [UInt8](repeating: 0, count: size)
            let written = out.withUnsafeMutableBytes { destination in
                accept.withUnsafeBytes { acceptValue in
                    line.withUnsafeBytes { extra in
                        Array("chat".utf8).withUnsafeBytes { chat in
                            HandshakeResponse.writeSwitchingProtocols(
                                acceptValue: acceptValue, subprotocol: chat, extraHeaders: extra, into: destination)
                        }
                    }
                }
            }
            #expect(written == size)
            return String(decoding: out, as: UTF8.self)
        }
        #expect(deferred == response)
        // Without extensions the response is what it always was.
        #expect(HandshakeResponse.switchingProtocolsSize(subprotocolLength: 0)
            == HandshakeResponse.switchingProtocolsSize(subprotocolLength: 0, extensionsLength: 0))
    }
}
