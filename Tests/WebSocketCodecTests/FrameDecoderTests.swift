import Testing
@testable import WebSocketCodec

@Suite struct RFCExampleFrameTests {
    // RFC 6455 section 5.7, byte for byte.
    @Test func singleFrameUnmaskedText() {
        var client = Assembler(role: .client)
        client.feed([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f])
        #expect(client.messages == [DecodedMessage(opcode: .text, payload: bytes("Hello"))])
    }

    @Test func singleFrameMaskedText() {
        var server = Assembler(role: .server)
        server.feed([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58])
        #expect(server.messages == [DecodedMessage(opcode: .text, payload: bytes("Hello"))])
    }

    @Test func fragmentedUnmaskedText() {
        var client = Assembler(role: .client)
        client.feed([0x01, 0x03, 0x48, 0x65, 0x6c])
        #expect(client.messages.isEmpty)
        #expect(client.decoder.isInsideFragmentedMessage)
        client.feed([0x80, 0x02, 0x6c, 0x6f])
        #expect(client.messages == [DecodedMessage(opcode: .text, payload: bytes("Hello"))])
    }

    @Test func unmaskedPingAndMaskedPong() {
        var client = Assembler(role: .client)
        client.feed([0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f])
        #expect(client.messages == [DecodedMessage(opcode: .ping, payload: bytes("Hello"))])
        var server = Assembler(role: .server)
        server.feed([0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58])
        #expect(server.messages == [DecodedMessage(opcode: .pong, payload: bytes("Hello"))])
    }

    @Test func binaryWith16And64BitLengths() {
        let small = (0..<256).map { UInt8($0 & 0xFF) }
        var client = Assembler(role: .client)
        client.feed([0x82, 0x7E, 0x01, 0x00] + small)
        let large = (0..<65536).map { UInt8($0 % 251) }
        client.feed([0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00] + large)
        #expect(client.messages == [
            DecodedMessage(opcode: .binary, payload: small), DecodedMessage(opcode: .binary, payload: large),
        ])
    }

    @Test func controlFrameBetweenFragments() {
        var server = Assembler()
        server.feed(frame(1, fin: false, payload: bytes("Hel")) + frame(9, payload: bytes("p"))
            + frame(0, payload: bytes("lo")))
        #expect(server.messages == [
            DecodedMessage(opcode: .ping, payload: bytes("p")), DecodedMessage(opcode: .text, payload: bytes("Hello")),
        ])
    }

    @Test func emptyFramesAndCloseCodes() {
        var server = Assembler()
        server.feed(frame(1, payload: []) + frame(2, fin: false, payload: []) + frame(0, payload: [])
            + frame(8, payload: []) )
        #expect(server.messages == [
            DecodedMessage(opcode: .text, payload: []), DecodedMessage(opcode: .binary, payload: []),
            DecodedMessage(opcode: .close, payload: [], closeCode: 1005),
        ])
        var withCode = Assembler()
        withCode.feed(frame(8, payload: [0x03, 0xE8] + bytes("bye")))
        #expect(withCode.messages == [DecodedMessage(opcode: .close, payload: [0x03, 0xE8] + bytes("bye"), closeCode: 1000)])
    }

    @Test func wholeFrameInOneBufferIsOneChunkInPlace() {
        var payload = bytes("in place")
        var stream = frame(2, payload: payload)
        stream.withUnsafeMutableBytes { buffer in
            var decoder = FrameDecoder()
            var offset = 0
            let configuration = FrameDecoderConfiguration(role: .server, maxMessageSizeBytes: 1024)
            guard case .chunk(let chunk) = decoder.next(buffer, offset: &offset, configuration: configuration) else {
                Issue.record("expected a chunk")
                return
            }
            #expect(chunk.isMessageStart && chunk.isMessageEnd)
            // The payload is unmasked where it lies: right after the 6-byte header.
            #expect(chunk.bytes.baseAddress == buffer.baseAddress! + 6)
            #expect(Array(chunk.bytes) == payload)
            #expect(offset == buffer.count)
            #expect(decoder.isAtFrameBoundary)
        }
        payload.removeAll()
    }
}

@Suite struct FrameRejectionTests {
    func failure(_ stream: [UInt8], role: Role = .server, max: UInt64 = 1 << 20) -> CloseCode? {
        var assembler = Assembler(role: role, maxMessageSizeBytes: max)
        assembler.feed(stream)
        return assembler.failure
    }

    @Test(arguments: [1, 2, 4, 7] as [UInt8])
    func rsvBitsWithoutExtension(rsv: UInt8) {
        #expect(failure(frame(1, rsv: rsv, payload: bytes("x"))) == .protocolError)
    }

    @Test(arguments: [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] as [UInt8])
    func reservedOpcodes(opcode: UInt8) {
        #expect(failure(frame(opcode, payload: [])) == .protocolError)
    }

    @Test(arguments: [8, 9, 0xA] as [UInt8])
    func fragmentedControlFrame(opcode: UInt8) {
        #expect(failure(frame(opcode, fin: false, payload: [])) == .protocolError)
    }

    @Test(arguments: [8, 9, 0xA] as [UInt8])
    func controlFrameOver125Bytes(opcode: UInt8) {
        let payload = [0x03, 0xE8] + [UInt8](repeating: 0x61, count: 124)
        #expect(failure(frame(opcode, payload: payload)) == .protocolError)
        #expect(failure(frame(opcode, payload: Array(payload.prefix(125)))) == nil)
    }

    @Test func unmaskedFrameToServer() {
        #expect(failure(frame(1, payload: bytes("x"), mask: nil), role: .server) == .protocolError)
    }

    @Test func maskedFrameToClient() {
        #expect(failure(frame(1, payload: bytes("x")), role: .client) == .protocolError)
        #expect(failure(frame(1, payload: bytes("x"), mask: nil), role: .client) == nil)
    }

    @Test func sixtyFourBitLengthWithTopBit() {
        let header: [UInt8] = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]
        #expect(failure(header, max: .max) == .protocolError)
    }

    @Test func continuationWithoutStart() {
        #expect(failure(frame(0, payload: bytes("x"))) == .protocolError)
        #expect(failure(frame(1, payload: bytes("a")) + frame(0, payload: bytes("x"))) == .protocolError)
    }

    @Test(arguments: [1, 2] as [UInt8])
    func newDataFrameInsideFragmentedMessage(opcode: UInt8) {
        #expect(failure(frame(2, fin: false, payload: bytes("a")) + frame(opcode, payload: bytes("b")))
            == .protocolError)
    }

    @Test func messageOverTheMaximum() {
        #expect(failure(frame(2, payload: [UInt8](repeating: 1, count: 101)), max: 100) == .messageTooBig)
        #expect(failure(frame(2, payload: [UInt8](repeating: 1, count: 100)), max: 100) == nil)
        // Across fragments, and before the payload arrives: the header alone is enough.
        let fragments = frame(2, fin: false, payload: [UInt8](repeating: 1, count: 60))
            + Array(frame(0, payload: [UInt8](repeating: 1, count: 41)).prefix(6))
        #expect(failure(fragments, max: 100) == .messageTooBig)
        // Control frames do not count toward a data message.
        #expect(failure(frame(2, fin: false, payload: [UInt8](repeating: 1, count: 100))
            + frame(9, payload: [1, 2, 3]) + frame(0, payload: []), max: 100) == nil)
    }

    @Test func invalidUTF8InText() {
        #expect(failure(frame(1, payload: [0x61, 0xFF])) == .invalidPayload)
        // Fails fast: the first frame of a message, before its end arrives.
        var assembler = Assembler()
        assembler.feed(Array(frame(1, fin: false, payload: [0x61, 0xC0, 0x80, 0x62, 0x63]).prefix(8)))
        #expect(assembler.failure == .invalidPayload)
        // Binary messages are not checked.
        #expect(failure(frame(2, payload: [0xFF, 0xFE])) == nil)
    }

    @Test func textEndingMidSequence() {
        #expect(failure(frame(1, payload: [0x61, 0xE2, 0x82])) == .invalidPayload)
        #expect(failure(frame(1, fin: false, payload: [0xE2, 0x82]) + frame(0, payload: [0xAC])) == nil)
    }

    @Test func closePayloadOfOneByte() {
        #expect(failure(frame(8, payload: [0x03])) == .protocolError)
    }

    @Test(arguments: [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] as [UInt16])
    func closeCodesNotAllowedOnTheWire(code: UInt16) {
        #expect(failure(frame(8, payload: [UInt8(code >> 8), UInt8(code & 0xFF)])) == .protocolError)
    }

    @Test(arguments: [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999] as [UInt16])
    func closeCodesAllowedOnTheWire(code: UInt16) {
        var assembler = Assembler()
        assembler.feed(frame(8, payload: [UInt8(code >> 8), UInt8(code & 0xFF)]))
        #expect(assembler.failure == nil)
        #expect(assembler.messages.last?.closeCode == code)
    }

    @Test func closeReasonThatIsNotUTF8() {
        #expect(failure(frame(8, payload: [0x03, 0xE8, 0xCE, 0xBA, 0xE1, 0xBD])) == .invalidPayload)
        #expect(failure(frame(8, payload: [0x03, 0xE8, 0xED, 0xA0, 0x80])) == .invalidPayload)
        #expect(failure(frame(8, payload: [0x03, 0xE8, 0xCE, 0xBA])) == nil)
    }

    @Test func failureIsSticky() {
        var assembler = Assembler()
        assembler.feed(frame(3, payload: []))
        #expect(assembler.failure == .protocolError)
        assembler.failure = nil
        assembler.feed(frame(1, payload: bytes("ok")))
        #expect(assembler.failure == .protocolError)
        #expect(assembler.messages.isEmpty)
    }
}

@Suite struct FrameSplittingPropertyTests {
    /// A random stream of messages: text (valid UTF-8 including multi-byte), binary, pings,
    /// fragmented at random, with control frames between fragments.
    static func randomStream(_ random: inout SeededRandom, messageCount: Int) -> ([UInt8], [DecodedMessage]) {
        var stream: [UInt8] = []
        var expected: [DecodedMessage] = []
        let alphabet = Array("aé€𐍈z ".unicodeScalars).map { String($0) }
        for _ in 0..<messageCount {
            let kind = Int.random(in: 0..<5, using: &random)
            if kind == 4 {
                let payload = (0..<Int.random(in: 0...125, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                stream += frame(9, payload: payload, mask: (0..<4).map { _ in UInt8.random(in: 0...255, using: &random) })
                expected.append(DecodedMessage(opcode: .ping, payload: payload))
                continue
            }
            let isText = kind < 2
            let payload: [UInt8]
            let lengthClass = Int.random(in: 0..<10, using: &random)
            let length = lengthClass < 6 ? Int.random(in: 0...130, using: &random)
                : lengthClass < 9 ? Int.random(in: 126...3000, using: &random) : Int.random(in: 65536...70000, using: &random)
            if isText {
                var text = ""
                while text.utf8.count < length { text += alphabet.randomElement(using: &random)! }
                payload = Array(text.utf8)
            } else {
                payload = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            }
            // Cut into 1-4 fragments, possibly cutting multi-byte characters.
            let fragmentCount = Int.random(in: 1...4, using: &random)
            var cuts = (0..<(fragmentCount - 1)).map { _ in Int.random(in: 0...payload.count, using: &random) }.sorted()
            cuts.insert(0, at: 0)
            cuts.append(payload.count)
            for index in 0..<(cuts.count - 1) {
                let opcode: UInt8 = index == 0 ? (isText ? 1 : 2) : 0
                let piece = Array(payload[cuts[index]..<cuts[index + 1]])
                let mask = (0..<4).map { _ in UInt8.random(in: 0...255, using: &random) }
                stream += frame(opcode, fin: index == cuts.count - 2, payload: piece, mask: mask)
                if index < cuts.count - 2 && Bool.random(using: &random) {
                    stream += frame(10, payload: [1, 2, 3])
                    expected.append(DecodedMessage(opcode: .pong, payload: [1, 2, 3]))
                }
            }
            expected.append(DecodedMessage(opcode: isText ? .text : .binary, payload: payload))
        }
        return (stream, expected)
    }

    @Test(arguments: 0..<40 as Range<UInt64>)
    func anySplitDecodesToTheSameMessages(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let (stream, expected) = Self.randomStream(&random, messageCount: 12)
        var whole = Assembler()
        whole.feed(stream)
        #expect(whole.failure == nil)
        #expect(whole.messages == expected)
        // The same stream cut at random points, from single bytes to large pieces.
        for _ in 0..<4 {
            var split = Assembler()
            var position = 0
            while position < stream.count {
                let maxPiece = [1, 7, 200, 5000].randomElement(using: &random)!
                let end = min(stream.count, position + Int.random(in: 1...maxPiece, using: &random))
                split.feed(Array(stream[position..<end]))
                position = end
            }
            #expect(split.failure == nil)
            #expect(split.messages == expected)
        }
    }

    @Test func everyTwoPieceSplitOfASmallStream() {
        let stream = frame(1, fin: false, payload: bytes("h€")) + frame(9, payload: bytes("p"))
            + frame(0, payload: bytes("llo")) + frame(8, payload: [0x03, 0xE8, 0x6F, 0x6B])
        var whole = Assembler()
        whole.feed(stream)
        for cut in 0...stream.count {
            var split = Assembler()
            split.feed(Array(stream[..<cut]))
            split.feed(Array(stream[cut...]))
            #expect(split.messages == whole.messages, "cut at \(cut)")
            #expect(split.failure == nil)
        }
        var byteByByte = Assembler()
        for byte in stream { byteByByte.feed([byte]) }
        #expect(byteByByte.messages == whole.messages)
    }
}
