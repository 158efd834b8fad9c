import Foundation
import MyriadTestSupport
import Glibc
import Testing
import WebSocketCodec
@testable import Myriad

extension Integration {
@Suite struct BufferRingTests {
    /// A buffer ring of 8 tiny buffers and 1,000 clients sending at once: receives run dry
    /// (-ENOBUFS), are parked and re-armed, and every message still arrives intact and in
    /// order.
    @Test(arguments: allBackends)
    func exhaustedBufferRingLosesAndReordersNothing(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend) { config in
            config.bufferCount = 8
            config.bufferSizeBytes = 256
        }
        let clientCount = 1000
        let messagesPerClient = 3
        var clients: [RawClient] = []
        for _ in 0..<clientCount {
            let client = try RawClient(port: server.port)
            try client.upgrade()
            clients.append(client)
        }
        func message(_ client: Int, _ index: Int) -> [UInt8] {
            // 700 bytes: each message spans several 256-byte receive buffers.
            Array("client \(client) message \(index) ".utf8) + [UInt8](repeating: UInt8(65 + (client + index) % 26), count: 700)
        }
        // Everything at once: each client's three frames in one segment, all clients back to back.
        for (index, client) in clients.enumerated() {
            let frames = (0..<messagesPerClient).flatMap { RawClient.frame(.binary, message(index, $0)) }
            try client.send(frames)
        }
        var intact = 0
        for (index, client) in clients.enumerated() {
            for messageIndex in 0..<messagesPerClient {
                let echoed = try client.readMessage(timeout: 30)
                if echoed?.opcode == .binary && echoed?.payload == message(index, messageIndex) { intact += 1 }
            }
        }
        #expect(intact == clientCount * messagesPerClient)
        if backend == .ioUring {
            #expect(server.stats()[.enobufsRearms] > 0, "the ring never ran dry: the test proved nothing")
        }
    }

    /// Accepted connections live in the ring's fixed-file table, not in the process fd table.
    @Test func acceptedConnectionsAreDirectDescriptors() throws {
        let server = try TestServer(backend: .ioUring)
        let before = openDescriptorCount()
        var clients: [RawClient] = []
        for _ in 0..<200 {
            let client = try RawClient(port: server.port)
            try client.upgrade()
            clients.append(client)
        }
        #expect(server.waitFor { $0[.open] == 200 })
        // Only the clients' own 200 sockets appear; the server's 200 do not.
        #expect(openDescriptorCount() - before == 200)
    }

    func openDescriptorCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
    }
}
}
