import Testing
@testable import WebSocketCodec

@Suite struct UTF8ValidatorTests {
    func isValid(_ bytes: [UInt8]) -> Bool {
        var validator = UTF8Validator()
        return bytes.withUnsafeBytes { validator.validate($0) } && validator.isComplete
    }

    @Test func acceptsValidText() {
        for text in ["", "hello", "κόσμε", "€", "𐍈", "\u{10FFFF}", "\u{FFFF}", "\u{E000}", "\u{7F}\u{80}\u{7FF}\u{800}"] {
            #expect(isValid(Array(text.utf8)), "\(text)")
        }
    }

    @Test(arguments: [
        [0xC0, 0x80], [0xC1, 0xBF],  // overlong 2-byte
        [0xE0, 0x80, 0x80], [0xE0, 0x9F, 0xBF],  // overlong 3-byte
        [0xF0, 0x80, 0x80, 0x80], [0xF0, 0x8F, 0xBF, 0xBF],  // overlong 4-byte
        [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF], [0xED, 0xAD, 0xBF, 0xED, 0xB0, 0x80],  // surrogates
        [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xF7, 0xBF, 0xBF, 0xBF], [0xFF], [0xFE],  // > U+10FFFF
        [0x80], [0xBF], [0x61, 0x80],  // stray continuation
        [0xC2, 0x41], [0xE2, 0x82, 0x41],  // missing continuation
    ] as [[UInt8]])
    func rejectsInvalidSequences(sequence: [UInt8]) {
        #expect(!isValid(sequence))
        #expect(!isValid([0x61, 0x62] + sequence + [0x63]))
    }

    @Test(arguments: [[0xC2], [0xE2, 0x82], [0xF0, 0x9F], [0xF0, 0x9F, 0x98]] as [[UInt8]])
    func truncatedSequenceAtEndIsIncomplete(sequence: [UInt8]) {
        var validator = UTF8Validator()
        #expect(sequence.withUnsafeBytes { validator.validate($0) })
        #expect(!validator.isComplete)
    }

    @Test func sequencesSplitAtEveryByteBoundary() {
        let text = Array("a€𐍈κz\u{10FFFF}".utf8)
        for cut in 0...text.count {
            for cut2 in cut...text.count {
                var validator = UTF8Validator()
                let parts = [text[..<cut], text[cut..<cut2], text[cut2...]]
                for part in parts {
                    #expect(Array(part).withUnsafeBytes { validator.validate($0) })
                }
                #expect(validator.isComplete)
            }
        }
    }

    @Test func failsAtTheFirstImpossibleByte() {
        // "a" + E0 then 80: the E0 could still be valid, the 80 cannot.
        var validator = UTF8Validator()
        #expect([UInt8]([0x61, 0xE0]).withUnsafeBytes { validator.validate($0) })
        #expect(![UInt8]([0x80]).withUnsafeBytes { validator.validate($0) })
        // F4 90: no code point above U+10FFFF can start this way; fails on the 90.
        var high = UTF8Validator()
        #expect([UInt8]([0xF4]).withUnsafeBytes { high.validate($0) })
        #expect(![UInt8]([0x90]).withUnsafeBytes { high.validate($0) })
    }

    @Test func agreesWithStandardLibraryOnRandomBytes() {
        var random = SeededRandom(seed: 6455)
        // Bias toward bytes that form (in)valid sequences rather than pure noise.
        let interesting: [UInt8] = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                                    0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...12, using: &random)
            let sample = (0..<length).map { _ in interesting.randomElement(using: &random)! }
            let expected = String(validating: sample, as: UTF8.self) != nil
            #expect(isValid(sample) == expected, "\(sample)")
        }
    }

    @Test func longASCIIRunsUseTheFastPathCorrectly() {
        var text = [UInt8](repeating: 0x61, count: 100)
        #expect(isValid(text))
        text[77] = 0xFF
        #expect(!isValid(text))
        text[77] = 0xC3
        text[78] = 0xA9
        #expect(isValid(text))
    }
}

@Suite struct MaskingTests {
    @Test func wordAtATimeMatchesBytewiseForAllLengthsAndOffsets() {
        var random = SeededRandom(seed: 5)
        let keyBytes: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
        let key = UInt32(keyBytes[0]) | UInt32(keyBytes[1]) << 8 | UInt32(keyBytes[2]) << 16 | UInt32(keyBytes[3]) << 24
        for length in 0..<80 {
            for offset in 0..<4 {
                let original = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
                let expected = original.enumerated().map { $0.element ^ keyBytes[($0.offset + offset) % 4] }
                var data = original
                let next = data.withUnsafeMutableBytes { Masking.apply(key: key, keyOffset: offset, to: $0) }
                #expect(data == expected)
                #expect(next == (offset + length) % 4)
            }
        }
    }
}

@Suite struct FrameEncoderTests {
    @Test(arguments: [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)])
    func headerSizesAtLengthBoundaries(length: Int, expected: Int) {
        #expect(FrameEncoder.headerSize(payloadLength: length, masked: false) == expected)
        #expect(FrameEncoder.headerSize(payloadLength: length, masked: true) == expected + 4)
    }

    @Test(arguments: [0, 1, 125, 126, 65535, 65536, 100_000])
    func encodedFramesDecode(length: Int) {
        let payload = (0..<length).map { UInt8($0 % 256) }
        for (maskKey, role) in [(nil, Role.client), (UInt32(0xDEADBEEF), Role.server)] as [(UInt32?, Role)] {
            var out = [UInt8](repeating: 0, count: FrameEncoder.frameSize(payloadLength: length, masked: maskKey != nil))
            let written = out.withUnsafeMutableBytes { destination in
                payload.withUnsafeBytes {
                    FrameEncoder.writeFrame(into: destination.baseAddress!, opcode: .binary, payload: $0, maskKey: maskKey)
                }
            }
            #expect(written == out.count)
            var assembler = Assembler(role: role)
            assembler.feed(out)
            #expect(assembler.messages == [DecodedMessage(opcode: .binary, payload: payload)])
        }
    }

    @Test func rfcExampleMaskedHello() {
        // RFC 6455 section 5.7: mask key 37 fa 21 3d.
        let key = UInt32(0x3D21_FA37)
        var out = [UInt8](repeating: 0, count: 11)
        _ = out.withUnsafeMutableBytes { destination in
            bytes("Hello").withUnsafeBytes {
                FrameEncoder.writeFrame(into: destination.baseAddress!, opcode: .text, payload: $0, maskKey: key)
            }
        }
        #expect(out == [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58])
    }

    @Test func closePayloadCutsTheReasonOnACharacterBoundary() {
        let reason = Array(String(repeating: "a", count: 122).utf8) + Array("€".utf8)  // 125 bytes
        var out = [UInt8](repeating: 0, count: 125)
        let size = out.withUnsafeMutableBytes { destination in
            reason.withUnsafeBytes {
                FrameEncoder.writeClosePayload(into: destination.baseAddress!, code: .goingAway, reason: $0)
            }
        }
        #expect(size == 124)  // 2 + 122: the euro sign did not fit whole
        #expect(out[0] == 0x03 && out[1] == 0xE9)
        var assembler = Assembler(role: .client)
        var frameBytes = [UInt8](repeating: 0, count: 2 + size)
        _ = frameBytes.withUnsafeMutableBytes { destination in
            out[..<size].withUnsafeBytes {
                FrameEncoder.writeFrame(into: destination.baseAddress!, opcode: .close, payload: $0)
            }
        }
        assembler.feed(frameBytes)
        #expect(assembler.failure == nil)
        #expect(assembler.messages.first?.closeCode == 1001)
    }
}

@Suite struct CloseCodeTests {
    /// RFC 6455 section 7.4 plus IANA's registry, which added 1012-1014 after the RFC.
    @Test func setsMatchTheRFCAndTheRegistry() {
        for raw in UInt16(0)...UInt16(6000) {
            let code = CloseCode(rawValue: raw)
            let definedOnWire = (1000...1003).contains(raw) || (1007...1014).contains(raw) || (3000...4999).contains(raw)
            #expect(code.isValidOnReceipt == definedOnWire)
            #expect(code.maySend(as: .client) == definedOnWire)
            #expect(code.maySend(as: .server) == (definedOnWire && raw != 1010))
            #expect(code.isLocalOnly == [1005, 1006, 1015].contains(raw))
            if code.isLocalOnly { #expect(!code.isValidOnReceipt) }
        }
    }
}
