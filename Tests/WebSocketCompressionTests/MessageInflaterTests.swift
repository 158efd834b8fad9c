import CZlib
import Foundation
import Testing
import WebSocketCodec
@testable import WebSocketCompression

@Suite struct MessageInflaterTests {
    @Test(arguments: [
        ("f2 48 cd c9 c9 07 00", "7.2.3.1"),
        ("00 05 00 fa ff 48 65 6c 6c 6f 00", "7.2.3.3, a block with no compression"),
        ("f3 48 cd c9 c9 07 00 00", "7.2.3.4, a block with BFINAL set"),
        ("f2 48 05 00 00 00 ff ff ca c9 c9 07 00", "7.2.3.5, two blocks"),
        ("f2 48 cd c9 c9 07 00 00 00 ff ff 00", "7.2.3.6, a flushed fragment then an empty one"),
    ])
    func rfcExamplesInflateToHello(payload: String, section: String) throws {
        for takeover in [false, true] {
            for pieceSize in [1, 2, 3, 100] {
                var inflater = unwrapped(MessageInflater(contextTakeover: takeover, maxMessageSizeBytes: 1000))
                let (result, inflated) = inflate(hex(payload), with: &inflater, pieceSize: pieceSize, isText: true)
                #expect(result == .messageEnd, "\(section)")
                #expect(inflated == bytes("Hello"), "\(section), piece size \(pieceSize)")
                // And the stream is ready for the next message.
                let (again, second) = inflate(hex("f2 48 cd c9 c9 07 00"), with: &inflater)
                #expect(again == .messageEnd)
                #expect(second == bytes("Hello"), "\(section): the next message")
            }
        }
    }

    @Test func rfcSharedWindowExample() throws {
        // 7.2.3.2: the second message refers to the first; needs context takeover.
        var inflater = unwrapped(MessageInflater(contextTakeover: true, maxMessageSizeBytes: 1000))
        #expect(inflate(hex("f2 48 cd c9 c9 07 00"), with: &inflater).1 == bytes("Hello"))
        #expect(inflate(hex("f2 00 11 00 00"), with: &inflater).1 == bytes("Hello"))
        // Without takeover the reference points before the start: corrupt.
        var fresh = unwrapped(MessageInflater(contextTakeover: false, maxMessageSizeBytes: 1000))
        #expect(inflate(hex("f2 48 cd c9 c9 07 00"), with: &fresh).0 == .messageEnd)
        #expect(inflate(hex("f2 00 11 00 00"), with: &fresh).0 == .failure(.invalidPayload))
    }

    @Test func emptyPayloadIsAnEmptyMessage() throws {
        var inflater = unwrapped(MessageInflater(contextTakeover: true, maxMessageSizeBytes: 10))
        #expect(inflate(hex("00"), with: &inflater) == (.messageEnd, []))
        #expect(inflate([], with: &inflater) == (.messageEnd, []))
        #expect(inflate(hex("f2 48 cd c9 c9 07 00"), with: &inflater).1 == bytes("Hello"))
    }

    @Test(arguments: 8...15)
    func roundTripsAtEveryWindowSize(windowBits: Int) throws {
        for takeover in [false, true] {
            var deflater = unwrapped(MessageDeflater(
                configuration: .init(windowBits: windowBits, memoryLevel: windowBits >= 11 ? 8 : 4), contextTakeover: takeover))
            var inflater = unwrapped(MessageInflater(
                windowBits: windowBits, contextTakeover: takeover, maxMessageSizeBytes: 1 << 20))
            var random = SeededRandom(seed: UInt64(windowBits))
            for round in 0..<12 {
                let size = [0, 1, 5, 100, 1024, 4096, 70_000][round % 7]
                let message = round % 2 == 0
                    ? jsonMessage(size: size, seed: UInt64(round)) : randomBytes(size, seed: UInt64(round))
                let pieceSize = [1, 13, 1000, .max].randomElement(using: &random)!
                let payload = compress(message, with: &deflater, pieceSize: pieceSize)
                let feedSize = [1, 2, 7, 512, .max].randomElement(using: &random)!
                let (result, inflated) = inflate(payload, with: &inflater, pieceSize: feedSize, isText: round % 2 == 0)
                #expect(result == .messageEnd, "window \(windowBits), round \(round)")
                #expect(inflated == message, "window \(windowBits), takeover \(takeover), round \(round)")
                if round % 2 == 0 && size >= 1024 { #expect(payload.count < message.count / 2) }
            }
        }
    }

    @Test func messageOfExactlyTheLimitPassesOneMoreByteFails() throws {
        let message = jsonMessage(size: 3000, seed: 4)
        var deflater = unwrapped(MessageDeflater(contextTakeover: false))
        let payload = compress(message, with: &deflater)
        var exact = unwrapped(MessageInflater(contextTakeover: false, maxMessageSizeBytes: 3000))
        #expect(inflate(payload, with: &exact) == (.messageEnd, message))
        var short = unwrapped(MessageInflater(contextTakeover: false, maxMessageSizeBytes: 2999))
        for pieceSize in [1, 5, .max] {
            var output = RecordingOutput()
            #expect(inflate(payload, with: &short, pieceSize: pieceSize, output: &output) == .failure(.messageTooBig))
            #expect(output.buffer.count <= 2999)
            #expect(output.largestRequest <= 2999)
        }
        // After the failure the stream is reset and serves the next message.
        #expect(inflate(compress(bytes("Hello"), with: &deflater), with: &short) == (.messageEnd, bytes("Hello")))
    }

    @Test func decompressionBombIsStoppedAtTheLimit() throws {
        // 1 GiB of zeros compressed to about 1 MiB, with a 1 MiB limit.
        let limit = 1 << 20
        let compressed = zeroBomb()
        #expect(compressed.count < 2 << 20)
        #expect(compressed.count > limit / 2)
        // Inflated whole and in frame-sized pieces, into a buffer that could grow to 2 GiB.
        for pieceSize in [16 << 10, .max] {
            var inflater = unwrapped(MessageInflater(contextTakeover: false, maxMessageSizeBytes: limit))
            var output = RecordingOutput()
            let start = ContinuousClock.now
            let result = inflate(compressed, with: &inflater, pieceSize: pieceSize, output: &output)
            let elapsed = ContinuousClock.now - start
            #expect(result == .failure(.messageTooBig))
            #expect(output.buffer.count == limit)  // everything up to the limit, nothing past it
            #expect(output.buffer.capacity <= limit)  // and nothing allocated past it
            #expect(output.largestRequest <= limit)
            #expect(elapsed < .seconds(2), "the bomb cost only the inflation up to the limit")
            print("bomb: \(compressed.count) compressed bytes (1 GiB of zeros), limit \(limit): 1009 after \(elapsed), output \(output.buffer.count) B, capacity \(output.buffer.capacity) B")
        }
    }

    @Test func corruptStreamsFailWith1007() throws {
        var deflater = unwrapped(MessageDeflater(contextTakeover: false))
        let good = compress(jsonMessage(size: 2000, seed: 5), with: &deflater)
        let cases: [([UInt8], String)] = [
            (hex("ff ff ff"), "reserved block type 11"),
            (hex("07 00"), "reserved block type after a final bit"),
            (hex("00 05 00 00 00 48 65"), "stored block with LEN and NLEN disagreeing"),
            (hex("f2 00 11 00 00"), "a distance before the start of the window"),
            (Array(good.dropLast(20)), "a message cut short"),
            (Array(good.prefix(1)), "one byte of a message"),
            (hex("f2 48 cd c9 c9 07"), "ends inside the final empty block's header"),
            (hex("f3 48 cd c9 c9 07 00"), "ends after a final block with nothing to complete the tail"),
        ]
        for (payload, description) in cases {
            for pieceSize in [1, .max] {
                var inflater = unwrapped(MessageInflater(contextTakeover: false, maxMessageSizeBytes: 1 << 20))
                #expect(inflate(payload, with: &inflater, pieceSize: pieceSize).0 == .failure(.invalidPayload), "\(description)")
                // The stream was reset: the next message inflates.
                #expect(inflate(hex("f2 48 cd c9 c9 07 00"), with: &inflater) == (.messageEnd, bytes("Hello")), "\(description)")
            }
        }
    }

    @Test func inflatedTextIsValidatedAsUTF8() throws {
        var deflater = unwrapped(MessageDeflater(contextTakeover: false))
        var inflater = unwrapped(MessageInflater(contextTakeover: false, maxMessageSizeBytes: 1 << 20))
        let valid = Array("héllo wörld, ünïcode ✓ 𝄞".utf8)
        #expect(inflate(compress(valid, with: &deflater), with: &inflater, pieceSize: 1, isText: true) == (.messageEnd, valid))
        // An impossible byte fails as soon as it is inflated; a message ending mid-sequence
        // fails at its end; binary messages are not checked.
        let invalid: [[UInt8]] = [bytes("abc") + [0xff] + bytes("def"), bytes("abc") + [0xe2, 0x9c]]
        for message in invalid {
            let payload = compress(message, with: &deflater)
            #expect(inflate(payload, with: &inflater, isText: true).0 == .failure(.invalidPayload))
            #expect(inflate(payload, with: &inflater, isText: false) == (.messageEnd, message))
        }
    }

    @Test func outputThatCannotGrowIsReported() throws {
        var deflater = unwrapped(MessageDeflater(contextTakeover: false))
        let payload = compress(randomBytes(10_000, seed: 2), with: &deflater)
        var inflater = unwrapped(MessageInflater(contextTakeover: false, maxMessageSizeBytes: 1 << 20))
        var output = RecordingOutput(maxCapacity: 100)
        #expect(inflate(payload, with: &inflater, output: &output) == .outputUnavailable)
        #expect(inflate(hex("f2 48 cd c9 c9 07 00"), with: &inflater) == (.messageEnd, bytes("Hello")))
    }

    @Test func sharedStreamsServeEveryWindow() throws {
        var streams = unwrapped(SharedCompressionStreams(maxMessageSizeBytes: 1 << 20))
        let message = jsonMessage(size: 1024, seed: 7)
        for bits in UInt8(8)...15 {
            var output = RecordingOutput()
            #expect(message.withUnsafeBytes { streams.compress($0, windowBits: bits, into: &output) })
            var reader = unwrapped(MessageInflater(windowBits: Int(bits), contextTakeover: false, maxMessageSizeBytes: 1 << 20))
            #expect(inflate(output.array, with: &reader) == (.messageEnd, message), "window \(bits)")
            var inflated = RecordingOutput()
            let result = output.array.withUnsafeBytes {
                streams.inflate($0, isMessageEnd: true, isText: true, into: &inflated)
            }
            #expect(result == .messageEnd)
            #expect(inflated.array == message)
        }
        #expect(streams.created == 0b111_1111)  // 8 and 9 share zlib's 9-bit stream
        // The same message compresses to the same bytes every time: a broadcast compresses once.
        var first = RecordingOutput()
        var second = RecordingOutput()
        _ = message.withUnsafeBytes { streams.compress($0, windowBits: 15, into: &first) }
        _ = message.withUnsafeBytes { streams.compress($0, windowBits: 15, into: &second) }
        #expect(first.array == second.array)
    }
}
