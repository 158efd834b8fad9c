import Testing
import WebSocketCodec
@testable import WebSocketCompression

/// What zlib really allocates per stream, counted by `ZlibMemoryMeter` (its requests, before
/// malloc's own rounding). The figures are printed for bench/README.md and bounded here.
@Suite struct ZlibMemoryMeterTests {
    /// Live bytes of a deflater + inflater pair after one message each way (the inflater's
    /// window is allocated on its first output), and allocation count.
    func pair(_ configuration: MessageDeflater.Configuration, inflateBits: Int) -> (deflate: Int, inflate: Int, allocations: Int) {
        let deflateMeter = ZlibMemoryMeter()
        let inflateMeter = ZlibMemoryMeter()
        var deflater = unwrapped(MessageDeflater(configuration: configuration, contextTakeover: true, meter: deflateMeter))
        var inflater = unwrapped(MessageInflater(
            windowBits: inflateBits, contextTakeover: true, maxMessageSizeBytes: 1 << 20, meter: inflateMeter))
        let message = jsonMessage(size: 4096, seed: 1)
        for _ in 0..<3 {
            let (result, inflated) = inflate(compress(message, with: &deflater), with: &inflater)
            #expect(result == .messageEnd && inflated == message)
        }
        // Messages allocate nothing more.
        let allocations = deflateMeter.allocations + inflateMeter.allocations
        _ = inflate(compress(message, with: &deflater), with: &inflater)
        #expect(deflateMeter.allocations + inflateMeter.allocations == allocations)
        return (deflateMeter.liveBytes, inflateMeter.liveBytes, allocations)
    }

    @Test func dedicatedPairAtElevenBitsAndMemLevelFour() {
        let (deflate, inflate, allocations) = pair(.dedicated, inflateBits: 11)
        print("zlib heap, dedicated pair (window 11, memLevel 4): deflate \(deflate) B + inflate \(inflate) B = \(deflate + inflate) B in \(allocations) allocations")
        #expect(deflate + inflate < 40 << 10)
    }

    @Test func defaultsForComparison() {
        let (deflate, inflate, allocations) = pair(.shared, inflateBits: 15)
        print("zlib heap, defaults (window 15, memLevel 8): deflate \(deflate) B + inflate \(inflate) B = \(deflate + inflate) B in \(allocations) allocations")
        #expect(deflate + inflate > 256 << 10)
    }

    @Test func everythingIsFreed() {
        let meter = ZlibMemoryMeter()
        do {
            var streams = unwrapped(SharedCompressionStreams(maxMessageSizeBytes: 1 << 20, meter: meter))
            var output = RecordingOutput()
            #expect(bytes("Hello").withUnsafeBytes { streams.compress($0, windowBits: 12, into: &output) })
            #expect(meter.liveBytes > 0)
        }
        #expect(meter.liveBytes == 0)
        #expect(meter.allocations == meter.frees)
    }

    /// A worker's shared streams give zlib's memory back after two quiet checks (its memory
    /// trim, once a second), make their streams again on the next message, and compress that
    /// message to the same bytes as before.
    @Test func idleSharedStreamsGiveTheirMemoryBack() {
        let meter = ZlibMemoryMeter()
        var streams = unwrapped(SharedCompressionStreams(maxMessageSizeBytes: 1 << 20, meter: meter))
        let message = jsonMessage(size: 2048, seed: 3)
        var first = RecordingOutput()
        let compressed = message.withUnsafeBytes { streams.compress($0, windowBits: 15, into: &first) }
        #expect(compressed)
        var inflated = RecordingOutput()
        let result = first.array.withUnsafeBytes { streams.inflate($0, isMessageEnd: true, isText: false, into: &inflated) }
        #expect(result == .messageEnd)
        let busy = meter.liveBytes
        let holdsWhenBusy = streams.holdsStreams
        #expect(busy > 256 << 10 && holdsWhenBusy)
        // Used since the last check, then one quiet check: nothing yet.
        var released = [streams.releaseIfIdle(), streams.releaseIfIdle()]
        #expect(released == [false, false] && meter.liveBytes == busy)
        // The second quiet check releases; later ones find nothing more to free.
        released = [streams.releaseIfIdle(), streams.releaseIfIdle()]
        let holdsWhenReleased = streams.holdsStreams
        #expect(released == [true, false])
        #expect(meter.liveBytes < 16 << 10 && !holdsWhenReleased)
        // The next message makes the deflater again and compresses to the same bytes.
        var again = RecordingOutput()
        let compressedAgain = message.withUnsafeBytes { streams.compress($0, windowBits: 15, into: &again) }
        let holdsAgain = streams.holdsStreams
        #expect(compressedAgain && again.array == first.array)
        #expect(holdsAgain && meter.liveBytes > 256 << 10)
    }
}
