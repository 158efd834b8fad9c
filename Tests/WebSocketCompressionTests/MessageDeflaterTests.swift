import CZlib
import Testing
import WebSocketCodec
@testable import WebSocketCompression

@Suite struct MessageDeflaterTests {
    @Test func rfcHelloExample() throws {
        // RFC 7692 section 7.2.3.1.
        var deflater = unwrapped(MessageDeflater(contextTakeover: false))
        #expect(compress(bytes("Hello"), with: &deflater) == hex("f2 48 cd c9 c9 07 00"))
        // Reset after the message: the same bytes again.
        #expect(compress(bytes("Hello"), with: &deflater) == hex("f2 48 cd c9 c9 07 00"))
    }

    @Test func rfcSharedWindowExample() throws {
        // RFC 7692 section 7.2.3.2: with context takeover the second "Hello" refers back.
        var deflater = unwrapped(MessageDeflater(contextTakeover: true))
        #expect(compress(bytes("Hello"), with: &deflater) == hex("f2 48 cd c9 c9 07 00"))
        #expect(compress(bytes("Hello"), with: &deflater) == hex("f2 00 11 00 00"))
    }

    @Test(arguments: [false, true])
    func emptyMessageIsOneByte(takeover: Bool) throws {
        // RFC 7692 section 7.2.3.6; also after a message, when zlib alone would write nothing.
        var deflater = unwrapped(MessageDeflater(contextTakeover: takeover))
        var inflater = unwrapped(MessageInflater(contextTakeover: takeover, maxMessageSizeBytes: 100))
        #expect(compress([], with: &deflater) == [0x00])
        #expect(inflate(compress(bytes("Hello"), with: &deflater), with: &inflater).1 == bytes("Hello"))
        #expect(compress([], with: &deflater) == [0x00])
        for message in [bytes("a"), [], bytes("Hello"), [], bytes("Hello")] {
            let (result, inflated) = inflate(compress(message, with: &deflater), with: &inflater)
            #expect(result == .messageEnd)
            #expect(inflated == message)
        }
    }

    @Test func piecesCompressLikeTheWhole() throws {
        let message = jsonMessage(size: 5000, seed: 3)
        var whole = unwrapped(MessageDeflater(contextTakeover: false))
        var pieces = unwrapped(MessageDeflater(contextTakeover: false))
        let expected = compress(message, with: &whole)
        for size in [1, 7, 100, 4096] {
            let payload = compress(message, with: &pieces, pieceSize: size)
            // zlib's output depends on how input arrives, not its meaning: check by inflating.
            var inflater = unwrapped(MessageInflater(contextTakeover: false, maxMessageSizeBytes: 1 << 20))
            #expect(inflate(payload, with: &inflater).1 == message, "piece size \(size)")
        }
        #expect(expected.count < message.count / 2)
    }

    @Test func outputThatCannotGrowAbandonsTheMessage() throws {
        var deflater = unwrapped(MessageDeflater(contextTakeover: true))
        var small = RecordingOutput(maxCapacity: 8)
        let message = randomBytes(1000, seed: 1)
        let ok = message.withUnsafeBytes { deflater.compress($0, into: &small) }
        #expect(!ok)
        #expect(deflater.messageInputBytes == 0)
        // The stream was reset: the next message stands alone and still inflates.
        var inflater = unwrapped(MessageInflater(contextTakeover: true, maxMessageSizeBytes: 1 << 20))
        #expect(inflate(compress(bytes("Hello"), with: &deflater), with: &inflater).1 == bytes("Hello"))
    }

    @Test func eightBitWindowIsServedWithNineAndReadsWithEight() throws {
        // zlib's raw deflate refuses 8 bits; 9 is used. Its matches never reach past 250
        // bytes, so an inflater with the 256-byte window the peer asked for reads it, even
        // byte by byte (where no reference can be served from the same call's output).
        let configuration = MessageDeflater.Configuration(windowBits: 8, memoryLevel: 7, level: 9)
        #expect(configuration.zlibWindowBits == 9)
        var deflater = unwrapped(MessageDeflater(configuration: configuration, contextTakeover: true))
        var inflater = unwrapped(MessageInflater(windowBits: 8, contextTakeover: true, maxMessageSizeBytes: 1 << 20))
        // Repeats at distances of 100-400 bytes, within and across messages.
        var random = SeededRandom(seed: 8)
        let unit = randomBytes(300, seed: 9)
        var messages: [[UInt8]] = []
        for round in 0..<50 {
            var message: [UInt8] = []
            for _ in 0..<Int.random(in: 1...20, using: &random) {
                message += unit[..<Int.random(in: 100...300, using: &random)]
                message += randomBytes(Int.random(in: 0...100, using: &random), seed: UInt64(round))
            }
            messages.append(message)
        }
        for (index, message) in messages.enumerated() {
            let (result, inflated) = inflate(compress(message, with: &deflater), with: &inflater, pieceSize: 1)
            #expect(result == .messageEnd)
            #expect(inflated == message, "message \(index)")
        }
    }

    @Test func configurationsAsTheIssueAsks() {
        #expect(MessageDeflater.Configuration.dedicated.windowBits == 11)
        #expect(MessageDeflater.Configuration.dedicated.memoryLevel == 4)
        #expect(MessageDeflater.Configuration.shared.windowBits == 15)
        let parameters = DeflateParameters(serverNoContextTakeover: false, clientNoContextTakeover: false,
                                           serverMaxWindowBits: 10, clientMaxWindowBits: 9)
        let deflater = unwrapped(MessageDeflater(connection: parameters))
        #expect(deflater.configuration.windowBits == 10)
        #expect(deflater.contextTakeover == true)
        let inflater = unwrapped(MessageInflater(connection: parameters, maxMessageSizeBytes: 100))
        #expect(inflater.windowBits == 9)
        #expect(inflater.contextTakeover == true)
    }
}
