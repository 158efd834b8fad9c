import Glibc
import Testing
import WebSocketCodec
@_spi(Benchmarks) @testable import Myriad

/// `CloseHandshake` and `ControlFrame`: the rules above the codec that the server's worker and
/// the load generator's client share (each role then queues its own frames).
@Suite struct CloseHandshakeTests {
    /// The peer starts: its close frame is answered once, echoing its code (an empty close
    /// frame when it carried none), and nothing more comes of a second one.
    @Test func aCloseFromThePeerIsAnsweredOnceWithItsCode() {
        var handshake = CloseHandshake()
        #expect(handshake.answersPings)
        let result1 = handshake.receive(code: .goingAway)
        #expect(result1 == .answer(code: .goingAway))
        #expect(handshake == CloseHandshake(sent: true, received: true))
        #expect(!handshake.answersPings)
        let result2 = handshake.start()
        #expect(!result2)
        let result3 = handshake.receive(code: .normalClosure)
        #expect(result3 == .ignored)

        var empty = CloseHandshake()
        let result4 = empty.receive(code: .noStatusReceived)
        #expect(result4 == .answer(code: nil))
    }

    /// We start: our close frame is queued once; the peer's close frame completes the
    /// handshake; pings after ours go unanswered.
    @Test func ourCloseIsSentOnceAndThePeersCompletesIt() {
        var handshake = CloseHandshake()
        let result5 = handshake.start()
        #expect(result5)
        let result6 = handshake.start()
        #expect(!result6)
        #expect(!handshake.answersPings)
        let result7 = ControlFrame.action(.ping, closeCode: .noStatusReceived, handshake: &handshake)
        #expect(result7 == .ignorePing)
        #expect(handshake.reportedCode(exchanged: .normalClosure) == .normalClosure)
        let result8 = ControlFrame.action(.close, closeCode: .normalClosure, handshake: &handshake)
        #expect(result8 == .close(.completed))
        let result9 = handshake.receive(code: .normalClosure)
        #expect(result9 == .ignored)
    }

    /// No close frame either way: the end is reported as 1006 whatever code was recorded.
    @Test func anEndWithoutACloseFrameIsAbnormal() {
        var handshake = CloseHandshake()
        #expect(handshake.reportedCode(exchanged: .protocolError) == .abnormalClosure)
        let result10 = ControlFrame.action(.ping, closeCode: .noStatusReceived, handshake: &handshake)
        #expect(result10 == .answerPing)
        let result11 = ControlFrame.action(.pong, closeCode: .noStatusReceived, handshake: &handshake)
        #expect(result11 == .pong)
        #expect(handshake == CloseHandshake())
    }

    /// A control frame split at every point, as either role reads it (masked from a client,
    /// unmasked from a server, between two fragments of a data message): gathered into the
    /// same payload, and the gathering buffer goes back to the pool.
    @Test(arguments: [Role.server, .client])
    func aSplitControlFrameIsGatheredWhole(role: Role) throws {
        let pool = BufferPool()
        let payload = (0..<125).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        let masked = role == .server  // what a server reads comes from a client
        var frames: [UInt8] = []
        frames += encode(.text, [0x61, 0x62], fin: false, masked: masked)
        frames += encode(.ping, payload, fin: true, masked: masked)
        frames += encode(.continuation, [0x63], fin: true, masked: masked)
        let configuration = FrameDecoderConfiguration(role: role, maxMessageSizeBytes: 1 << 20)
        for split in 1..<frames.count {
            var decoder = FrameDecoder()
            var gathering = PooledBuffer()
            var gathered: [[UInt8]] = []
            var data: [UInt8] = []
            for piece in [Array(frames[..<split]), Array(frames[split...])] {
                var bytes = piece
                try bytes.withUnsafeMutableBytes { buffer in
                    var offset = 0
                    decoding: while true {
                        switch decoder.next(buffer, offset: &offset, configuration: configuration) {
                        case .needMore: break decoding
                        case .failure(let code): throw TestFailure("split at \(split): \(code)")
                        case .chunk(let chunk):
                            if !chunk.opcode.isControl {
                                data += chunk.bytes
                                continue
                            }
                            if chunk.isFrameStart && chunk.isFrameEnd {
                                gathered.append(Array(chunk.bytes))
                                continue
                            }
                            switch ControlFrame.gather(chunk, into: &gathering, pool: pool) {
                            case .partial: break
                            case .outOfMemory: throw TestFailure("out of memory")
                            case .whole(var whole):
                                gathered.append(Array(UnsafeRawBufferPointer(whole.bytes)))
                                pool.release(&whole)
                            }
                        }
                    }
                }
            }
            #expect(gathered == [payload], "split at \(split)")
            #expect(data == [0x61, 0x62, 0x63], "split at \(split)")
            #expect(!gathering.isAllocated && pool.outstandingCount == 0, "split at \(split)")
        }
    }

    private func encode(_ opcode: Opcode, _ payload: [UInt8], fin: Bool, masked: Bool) -> [UInt8] {
        var frame = [UInt8](repeating: 0, count: FrameEncoder.frameSize(payloadLength: payload.count, masked: masked))
        frame.withUnsafeMutableBytes { destination in
            payload.withUnsafeBytes { source in
                let header = FrameEncoder.writeHeader(into: destination.baseAddress!, opcode: opcode, fin: fin,
                                                      payloadLength: payload.count, maskKey: masked ? 0x1234_5678 : nil)
                let body = UnsafeMutableRawBufferPointer(rebasing: destination[header...])
                body.copyMemory(from: source)
                if masked { Masking.apply(key: 0x1234_5678, keyOffset: 0, to: body) }
            }
        }
        return frame
    }
}

private struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
