import Testing
@testable import WebSocketCodec

/// `FrameDecoder.isAtRest` is what lets the server keep no decoder in an idle connection's
/// slot: whenever it says so, a fresh decoder (with the same `acceptsCompressedMessages`)
/// must decode the rest of the stream exactly as the old one would.
@Suite struct DecoderRestTests {
    /// A stream with every kind of frame: whole and fragmented text and binary, an interleaved
    /// ping, a 16-bit length, a close with a reason.
    static let stream: [UInt8] = frame(1, payload: bytes("hello"))
        + frame(2, fin: false, payload: [1, 2, 3]) + frame(9, payload: bytes("ping"))
        + frame(0, fin: false, payload: [4]) + frame(0, payload: [5, 6])
        + frame(2, payload: (0..<300).map { UInt8($0 % 251) })
        + frame(1, fin: false, payload: bytes("ab")) + frame(0, payload: bytes("cd"))
        + frame(10, payload: []) + frame(8, payload: [0x03, 0xE8] + bytes("bye"))

    @Test(arguments: [1, 2, 3, 5, 7, 13, 64, 1000])
    func aFreshDecoderAtRestDecodesTheSame(pieceSize: Int) {
        var reference = Assembler()
        var swapped = Assembler()
        var swaps = 0
        var start = 0
        while start < Self.stream.count {
            let piece = Array(Self.stream[start..<min(start + pieceSize, Self.stream.count)])
            reference.feed(piece)
            swapped.feed(piece)
            if swapped.decoder.isAtRest {
                swapped.decoder = FrameDecoder()  // what the server does for an idle connection
                swaps += 1
            }
            start += pieceSize
        }
        #expect(reference.failure == nil && swapped.failure == nil)
        #expect(swapped.messages == reference.messages)
        #expect(reference.messages.count == 7)
        #expect(swaps > 0)
    }

    @Test func notAtRestWithAnythingPending() {
        let whole = frame(2, payload: [1, 2, 3, 4])
        var decoder = Assembler()
        #expect(decoder.decoder.isAtRest)
        decoder.feed(Array(whole[..<1]))  // half a header
        #expect(!decoder.decoder.isAtRest)
        decoder.feed(Array(whole[1..<8]))  // the header and part of the payload
        #expect(!decoder.decoder.isAtRest)
        decoder.feed(Array(whole[8...]))
        #expect(decoder.decoder.isAtRest)
        decoder.feed(frame(1, fin: false, payload: bytes("open")))  // a fragmented message open
        #expect(decoder.decoder.isInsideFragmentedMessage && !decoder.decoder.isAtRest)
        decoder.feed(frame(0, payload: bytes("ed")))
        #expect(decoder.decoder.isAtRest)
        decoder.feed(frame(0, payload: bytes("stray")))  // a continuation with none open: 1002
        #expect(decoder.failure == .protocolError)
        #expect(!decoder.decoder.isAtRest)
    }

    /// With permessage-deflate agreed, the flag is the one thing a fresh decoder must be given.
    @Test func theCompressionFlagIsAllItKeeps() {
        var decoder = Assembler(acceptsCompressedMessages: true)
        decoder.feed(frame(1, rsv: 4, payload: [0x01, 0x02]))
        #expect(decoder.failure == nil && decoder.decoder.isAtRest)
        var fresh = FrameDecoder()
        fresh.acceptsCompressedMessages = true
        decoder.decoder = fresh
        decoder.feed(frame(2, rsv: 4, payload: [0x03]))
        #expect(decoder.failure == nil && decoder.messages.count == 2)
        decoder.decoder = FrameDecoder()  // without the flag, RSV1 is a protocol error
        decoder.feed(frame(2, rsv: 4, payload: [0x03]))
        #expect(decoder.failure == .protocolError)
    }
}
