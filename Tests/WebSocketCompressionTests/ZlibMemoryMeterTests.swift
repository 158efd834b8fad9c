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
}
