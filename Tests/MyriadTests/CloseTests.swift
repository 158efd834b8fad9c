import Foundation
import Glibc
import MyriadTestSupport
import Testing
import WebSocketCodec
@testable import Myriad

/// Closes on "close-long" with a 125-byte reason whose last character is a 3-byte "€",
/// on "close-quiet" with a short one, and echoes the rest.
struct ClosingHandler: WebSocketHandler {
    static let longReason = String(repeating: "a", count: 122) + "€"

    mutating func onMessage(_ connection: Connection, kind: MessageKind, payload: UnsafeRawBufferPointer) {
        if payload.elementsEqual("close-long".utf8) {
            connection.close(code: .policyViolation, reason: Self.longReason)
        } else if payload.elementsEqual("close-quiet".utf8) {
            connection.close(code: .normalClosure, reason: "bye")
        } else {
            _ = connection.send(text: payload)
        }
    }
}

extension Integration {
@Suite struct CloseTests {
    /// Issue 12, defect 2: the close frame's length came from the reason's length capped at
    /// 123, while the reason written was cut back to a character boundary (122 bytes here),
    /// so the frame claimed one byte it did not write and a stale pool byte went on the wire.
    @Test(arguments: allBackends)
    func aLongCloseReasonIsCutAndTheFrameCarriesExactlyIt(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend) { _ in ClosingHandler() }
        defer { server.stop() }
        // Dirty the pool first: a 124-byte echo leaves bytes in a 256-byte class buffer.
        let client = try RawClient(port: server.port)
        try client.upgrade()
        let filler = String(repeating: "Z", count: 124)
        try client.sendText(filler)
        #expect(try client.readMessage()?.payload == Array(filler.utf8))
        try client.sendText("close-long")
        let close = try #require(try client.readMessage())
        #expect(close.opcode == .close)
        #expect(close.closeCode == 1008)
        let expected: [UInt8] = [0x03, 0xF0] + Array(repeating: UInt8(ascii: "a"), count: 122)
        #expect(close.payload == expected, "payload \(close.payload.count) bytes: \(close.payload.suffix(4))")
        try client.sendClose(code: 1008)
        #expect(client.waitForClose(timeout: 5))
    }

    @Test func closeReasonLengthMatchesWhatIsWritten() {
        let reasons: [[UInt8]] = [
            [], Array("bye".utf8), Array(ClosingHandler.longReason.utf8),
            Array(String(repeating: "é", count: 70).utf8),  // 140 bytes of 2-byte characters
            Array(String(repeating: "😀", count: 40).utf8),  // 4-byte characters
            [UInt8](repeating: 0x61, count: 123), [UInt8](repeating: 0x61, count: 124),
        ]
        for reason in reasons {
            var out = [UInt8](repeating: 0, count: 200)
            let (size, written) = reason.withUnsafeBytes { bytes in
                out.withUnsafeMutableBytes { destination in
                    (FrameEncoder.closePayloadSize(code: .normalClosure, reason: bytes),
                     FrameEncoder.writeClosePayload(into: destination.baseAddress!, code: .normalClosure, reason: bytes))
                }
            }
            #expect(size == written, "reason of \(reason.count) bytes")
            #expect(written <= 125)
            #expect(String(validating: out[2..<written], as: UTF8.self) != nil, "cut inside a character")
        }
    }

    /// Issue 12, defect 7: a close the peer never answers ends at MYRIAD_CLOSE_TIMEOUT and is
    /// counted as close_timeout (it used to be counted under what started the close).
    @Test(arguments: allBackends)
    func anUnansweredCloseIsCountedAsCloseTimeout(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend, workers: 1, configure: { $0.closeTimeoutMilliseconds = 300 }) { _ in
            ClosingHandler()
        }
        defer { server.stop() }
        let silent = try RawClient(port: server.port)
        try silent.upgrade()
        try silent.sendText("close-quiet")
        #expect(try silent.readMessage()?.opcode == .close)
        // No reply: the server closes the socket when the close timeout passes.
        #expect(silent.waitForClose(timeout: 5))
        #expect(server.waitFor { $0.closes(.closeTimeout) == 1 }, "\(server.stats().fields)")
        #expect(server.stats().closes(.application) == 0)
        // One that answers is an ordinary close.
        let polite = try RawClient(port: server.port)
        try polite.upgrade()
        try polite.sendText("close-quiet")
        #expect(try polite.readMessage()?.opcode == .close)
        try polite.sendClose()
        #expect(polite.waitForClose(timeout: 5))
        #expect(server.waitFor { $0.closes(.application) == 1 }, "\(server.stats().fields)")
    }

    /// Issue 12, defect 8: MYRIAD_MAX_QUEUED_BYTES bounds the backlog, not a message: a
    /// message larger than the limit is echoed on a connection with nothing waiting.
    @Test(arguments: allBackends)
    func aMessageLargerThanTheQueueLimitIsStillEchoed(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend, workers: 1) { $0.maxQueuedBytes = 64 << 10 }
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.upgrade()
        let big = [UInt8]((0..<(256 << 10)).map { UInt8(truncatingIfNeeded: $0) })
        try client.sendFrame(.binary, big)
        #expect(try client.readMessage(timeout: 10)?.payload == big)
        #expect(server.stats().closes(.slowConsumer) == 0)
    }
}
}
