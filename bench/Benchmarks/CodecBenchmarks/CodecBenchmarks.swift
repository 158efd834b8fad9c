// Frame decoding: Myriad's in-place FrameDecoder against SwiftNIO's WebSocketFrameDecoder,
// same frames, same run. Each iteration decodes one buffer holding `framesPerBuffer` masked
// binary frames (binary: NIO does not validate UTF-8, so neither side does here) and reads
// every payload unmasked, which is what a server must do with each frame.
import Benchmark
import NIOCore
import NIOEmbedded
import NIOWebSocket
import WebSocketCodec

/// Frames per decoded buffer: enough that per-buffer overhead does not dominate small frames.
func framesPerBuffer(payloadBytes: Int) -> Int { max(4, (256 * 1024) / (payloadBytes + 14)) }

/// `count` masked binary frames of `payloadBytes` each, back to back, as a client sends them.
func maskedFrames(payloadBytes: Int, count: Int) -> [UInt8] {
    let payload = (0..<payloadBytes).map { UInt8(truncatingIfNeeded: $0 &* 31) }
    let frameSize = FrameEncoder.frameSize(payloadLength: payloadBytes, masked: true)
    var stream = [UInt8](repeating: 0, count: frameSize * count)
    stream.withUnsafeMutableBytes { out in
        payload.withUnsafeBytes { input in
            for index in 0..<count {
                FrameEncoder.writeFrame(
                    into: out.baseAddress! + index * frameSize, opcode: .binary, payload: input,
                    maskKey: 0x3D21_FA37 &+ UInt32(index))
            }
        }
    }
    return stream
}

/// Counts frames at the end of the pipeline, unmasking each payload like a server handler.
final class CountingHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WebSocketFrame
    var frames = 0
    var bytes = 0
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let payload = frame.unmaskedData
        frames += 1
        bytes &+= payload.readableBytes
    }
}

let sizes = [16, 125, 4096, 65536]

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, .mallocCountTotal, .instructions],
        timeUnits: .microseconds,
        maxDuration: .seconds(2),
        maxIterations: 100_000
    )

    // The harness's own allocations per iteration, to subtract from the malloc counts below.
    Benchmark("Baseline (empty iteration)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(0) }
    }

    for size in sizes {
        let count = framesPerBuffer(payloadBytes: size)

        Benchmark("Myriad decode \(size) B x\(count)") { benchmark in
            var stream = maskedFrames(payloadBytes: size, count: count)
            let configuration = FrameDecoderConfiguration(role: .server, maxMessageSizeBytes: 1 << 20)
            var decoder = FrameDecoder()
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                var frames = 0
                var checksum = 0
                stream.withUnsafeMutableBytes { buffer in
                    var offset = 0
                    while case .chunk(let chunk) = decoder.next(buffer, offset: &offset, configuration: configuration) {
                        frames &+= 1
                        checksum &+= chunk.bytes.count
                    }
                }
                precondition(frames == count)
                blackHole(checksum)
            }
        }

        Benchmark("NIO decode \(size) B x\(count)") { benchmark in
            let channel = EmbeddedChannel()
            let counter = CountingHandler()
            try channel.pipeline.syncOperations.addHandler(
                ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 20)))
            try channel.pipeline.syncOperations.addHandler(counter)
            let stream = maskedFrames(payloadBytes: size, count: count)
            let buffer = channel.allocator.buffer(bytes: stream)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                let before = counter.frames
                try channel.writeInbound(buffer)
                precondition(counter.frames - before == count)
            }
            blackHole(counter.bytes)
        }
    }
}
