// Fuzzes HandshakeParser: any bytes, fed whole and in two pieces (the cut chosen by the first
// input byte), must parse to the same outcome without crashing or reading past the input;
// a completed head lies within the input; an accepted upgrade yields a well-formed 101.
// An upgrade's Sec-WebSocket-Extensions go through the permessage-deflate negotiation under
// both policies: offers and parameters lie within the head, an agreement is within RFC 7692's
// ranges and its response value parses back as one valid offer with what it says.
import WebSocketCodec

struct Outcome: Equatable {
    var kind: Int
    var headLength: Int
    var key: [UInt8]
    var target: [UInt8]
}

func summarize(_ step: HandshakeStep) -> Outcome {
    switch step {
    case .needMore: return Outcome(kind: 0, headLength: 0, key: [], target: [])
    case .upgrade(let request, let headLength):
        return Outcome(kind: 1, headLength: headLength, key: Array(request.key), target: Array(request.target))
    case .plainRequest(let request, let headLength):
        return Outcome(kind: 2, headLength: headLength, key: [], target: Array(request.target))
    case .reject(let rejection):
        switch rejection {
        case .badRequest: return Outcome(kind: 3, headLength: 0, key: [], target: [])
        case .unsupportedVersion: return Outcome(kind: 4, headLength: 0, key: [], target: [])
        case .headerTooLarge: return Outcome(kind: 5, headLength: 0, key: [], target: [])
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHandshake(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let cut = Int(data[0]) % size
    // An exact-size heap copy, so AddressSanitizer catches any read past the end.
    let input = UnsafeMutableRawBufferPointer.allocate(byteCount: size - 1, alignment: 1)
    defer { input.deallocate() }
    if size > 1 { input.copyMemory(from: UnsafeRawBufferPointer(start: data + 1, count: size - 1)) }
    let bytes = UnsafeRawBufferPointer(input)
    let limit = 512

    var whole = HandshakeParser()
    let wholeStep = whole.parse(bytes, maxHeadBytes: limit)
    let wholeOutcome = summarize(wholeStep)

    var split = HandshakeParser()
    var splitOutcome = summarize(split.parse(UnsafeRawBufferPointer(rebasing: bytes[..<min(cut, bytes.count)]), maxHeadBytes: limit))
    if splitOutcome.kind == 0 { splitOutcome = summarize(split.parse(bytes, maxHeadBytes: limit)) }
    precondition(splitOutcome == wholeOutcome, "a split changed the outcome")

    switch wholeStep {
    case .upgrade(let request, let headLength):
        precondition(headLength <= bytes.count && headLength <= limit)
        precondition(request.key.count == 24)
        var response = [UInt8](repeating: 0, count: 1024)
        let written = response.withUnsafeMutableBytes {
            HandshakeResponse.writeSwitchingProtocols(for: request, subprotocol: request.offeredSubprotocols.first { _ in true }, into: $0)
        }
        precondition(written != nil || request.offeredSubprotocols.contains { $0.count > 800 })
        for field in request.fields { precondition(field.name.count > 0) }
        negotiate(request)
    case .plainRequest(_, let headLength):
        precondition(headLength <= bytes.count && headLength <= limit)
    case .needMore:
        precondition(bytes.count < limit)
    case .reject:
        break
    }
    return 0
}

/// Negotiates permessage-deflate for `request` under both policies and checks the result.
func negotiate(_ request: UpgradeRequest) {
    for offer in request.offeredExtensions {
        for parameter in offer.parameters {
            precondition(parameter.name.count > 0)
            if let value = parameter.rawValue { precondition(value.count > 0) }
        }
    }
    for policy in [PerMessageDeflatePolicy.shared, .dedicated()] {
        guard let agreement = PerMessageDeflateNegotiator.negotiate(request.offeredExtensions, policy: policy) else { continue }
        let parameters = agreement.parameters
        precondition(PerMessageDeflateOffer.windowBitsRange.contains(parameters.serverMaxWindowBits))
        precondition(PerMessageDeflateOffer.windowBitsRange.contains(parameters.clientMaxWindowBits))
        if policy.mode == .shared {
            precondition(parameters.serverNoContextTakeover && parameters.clientNoContextTakeover)
        } else {
            precondition(parameters.serverNoContextTakeover || parameters.serverMaxWindowBits <= policy.maxWindowBits)
            precondition(parameters.clientNoContextTakeover || parameters.clientMaxWindowBits <= policy.maxWindowBits)
        }
        let length = agreement.responseValueLength
        precondition(length <= PerMessageDeflateAgreement.maxResponseValueBytes)
        agreement.withResponseValue { value in
            precondition(value.count == length)
            // The response is itself a valid permessage-deflate element naming what was agreed.
            let text = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                + "Sec-WebSocket-Extensions: \(String(decoding: value, as: UTF8.self))\r\n\r\n"
            let head = Array(text.utf8)
            head.withUnsafeBytes { raw in
                var parser = HandshakeParser()
                guard case .upgrade(let echoed, _) = parser.parse(raw) else { preconditionFailure("response unparsable") }
                var offers = echoed.offeredExtensions.makeIterator()
                guard let offer = offers.next(), offers.next() == nil, offer.hasName("permessage-deflate"),
                      case .success(let parsed) = PerMessageDeflateOffer.parse(offer)
                else { preconditionFailure("response is not one valid element") }
                precondition(parsed.serverNoContextTakeover == parameters.serverNoContextTakeover)
                precondition(parsed.clientNoContextTakeover == parameters.clientNoContextTakeover)
                precondition(parsed.serverMaxWindowBits == (agreement.respondsServerMaxWindowBits ? parameters.serverMaxWindowBits : nil))
                precondition(parsed.clientMaxWindowBits == (agreement.respondsClientMaxWindowBits ? parameters.clientMaxWindowBits : nil))
            }
        }
    }
}
