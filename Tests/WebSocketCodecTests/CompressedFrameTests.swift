import Testing
@testable import WebSocketCodec

/// RSV1 under permessage-deflate (RFC 7692 section 6.1) as the frame decoder applies it.
@Suite struct CompressedFrameTests {
    /// RFC 7692 section 7.2.3.1: "Hello" compressed, as its payload.
    let hello: [UInt8] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]

    @Test func decoderStaysSixtyFourBytes() {
        // The decoder lives in every connection's slab slot: the two flags went into padding.
        #expect(MemoryLayout<FrameDecoder>.size == 64)
        #expect(MemoryLayout<FrameDecoder>.stride == 64)
    }

    @Test func rsv1OnFirstFrameIsReportedWhenAgreed() {
        var server = Assembler(acceptsCompressedMessages: true)
        server.feed(frame(1, rsv: 4, payload: hello))
        #expect(server.failure == nil)
        #expect(server.messages == [DecodedMessage(opcode: .text, payload: hello, compressed: true)])
    }

    @Test func rsv1IsRefusedWithoutAgreement() {
        var server = Assembler()
        server.feed(frame(1, rsv: 4, payload: hello))
        #expect(server.failure == .protocolError)
    }

    @Test func compressedTextIsNotValidatedAsUTF8() {
        // DEFLATE bytes are rarely UTF-8; the inflating layer validates the inflated text.
        var server = Assembler(acceptsCompressedMessages: true)
        server.feed(frame(1, rsv: 4, payload: [0xff, 0xfe, 0xc0]))
        #expect(server.failure == nil)
        #expect(server.messages.count == 1)
        // Uncompressed text on the same connection still is.
        server.feed(frame(1, payload: [0xff]))
        #expect(server.failure == .invalidPayload)
    }

    @Test func plainMessagesStillPassWhenAgreed() {
        var server = Assembler(acceptsCompressedMessages: true)
        server.feed(frame(2, payload: [1, 2, 3]) + frame(1, rsv: 4, payload: hello) + frame(1, payload: bytes("hi")))
        #expect(server.messages == [
            DecodedMessage(opcode: .binary, payload: [1, 2, 3]),
            DecodedMessage(opcode: .text, payload: hello, compressed: true),
            DecodedMessage(opcode: .text, payload: bytes("hi")),
        ])
    }

    @Test func fragmentedCompressedMessageReportsEveryChunkCompressed() {
        var server = Assembler(acceptsCompressedMessages: true)
        // RFC 7692 section 7.2.3.6-like: the first frame carries RSV1, continuations do not,
        // and a control frame may come between them.
        let stream = frame(1, fin: false, rsv: 4, payload: Array(hello[..<3]))
            + frame(9, payload: bytes("p"))
            + frame(0, fin: false, payload: Array(hello[3...]))
            + frame(0, payload: [0x00])
        for size in [1, 2, 5, stream.count] {
            var assembler = Assembler(acceptsCompressedMessages: true)
            var start = 0
            while start < stream.count {
                assembler.feed(Array(stream[start..<min(stream.count, start + size)]))
                start += size
            }
            #expect(assembler.failure == nil)
            #expect(assembler.messages == [
                DecodedMessage(opcode: .ping, payload: bytes("p")),
                DecodedMessage(opcode: .text, payload: hello + [0x00], compressed: true),
            ], "piece size \(size)")
        }
        server.feed(stream)
        #expect(server.messages.last?.compressed == true)
    }

    @Test func rsv1OnContinuationFails() {
        var server = Assembler(acceptsCompressedMessages: true)
        server.feed(frame(1, fin: false, rsv: 4, payload: hello) + frame(0, rsv: 4, payload: [0x00]))
        #expect(server.failure == .protocolError)
        // Also when the message's first frame was not compressed.
        var other = Assembler(acceptsCompressedMessages: true)
        other.feed(frame(2, fin: false, payload: [1]) + frame(0, rsv: 4, payload: [2]))
        #expect(other.failure == .protocolError)
    }

    @Test(arguments: [8, 9, 0xA] as [UInt8])
    func rsv1OnControlFrameFails(opcode: UInt8) {
        var server = Assembler(acceptsCompressedMessages: true)
        server.feed(frame(opcode, rsv: 4, payload: []))
        #expect(server.failure == .protocolError)
    }

    @Test(arguments: [1, 2, 3, 5, 6, 7] as [UInt8])
    func otherReservedBitsFailEvenWhenAgreed(rsv: UInt8) {
        var server = Assembler(acceptsCompressedMessages: true)
        server.feed(frame(2, rsv: rsv, payload: [1]))
        #expect(server.failure == .protocolError)
    }

    @Test func compressedMessagesAreBoundedByTheCompressedAllowance() {
        let configuration = FrameDecoderConfiguration(role: .server, maxMessageSizeBytes: 1000)
        #expect(configuration.maxCompressedMessageSizeBytes == 1000 + 62 + 4096)
        #expect(FrameDecoderConfiguration.compressedAllowance(for: .max) == .max)
        // A compressed message may be a little longer than the inflated limit on the wire...
        var server = Assembler(maxMessageSizeBytes: 1000, acceptsCompressedMessages: true)
        server.feed(frame(2, rsv: 4, payload: [UInt8](repeating: 0, count: 1100)))
        #expect(server.failure == nil)
        // ...a plain one may not, and neither may a compressed one past the allowance.
        server.feed(frame(2, payload: [UInt8](repeating: 0, count: 1001)))
        #expect(server.failure == .messageTooBig)
        var big = Assembler(maxMessageSizeBytes: 1000, acceptsCompressedMessages: true)
        big.feed(frame(2, fin: false, rsv: 4, payload: [UInt8](repeating: 0, count: 5000))
                 + frame(0, payload: [UInt8](repeating: 0, count: 200)))
        #expect(big.failure == .messageTooBig)
    }

    @Test func encoderSetsRSV1() {
        var header = [UInt8](repeating: 0, count: 14)
        let size = header.withUnsafeMutableBytes {
            FrameEncoder.writeHeader(into: $0.baseAddress!, opcode: .text, compressed: true, payloadLength: 7)
        }
        #expect(Array(header[..<size]) == [0xc1, 0x07])
        // The RFC 7692 section 7.2.3.1 frame, decoded by a client that agreed the extension.
        var frameBytes = [UInt8](repeating: 0, count: FrameEncoder.frameSize(payloadLength: hello.count, masked: false))
        frameBytes.withUnsafeMutableBytes { raw in
            hello.withUnsafeBytes { _ = FrameEncoder.writeFrame(into: raw.baseAddress!, opcode: .text, compressed: true, payload: $0) }
        }
        #expect(frameBytes == [0xc1, 0x07] + hello)
        var client = Assembler(role: .client, acceptsCompressedMessages: true)
        client.feed(frameBytes)
        #expect(client.messages == [DecodedMessage(opcode: .text, payload: hello, compressed: true)])
        // A non-final first frame keeps FIN clear and RSV1 set.
        let fragmentSize = header.withUnsafeMutableBytes {
            FrameEncoder.writeHeader(into: $0.baseAddress!, opcode: .binary, fin: false, compressed: true, payloadLength: 3)
        }
        #expect(Array(header[..<fragmentSize]) == [0x42, 0x03])
    }
}
