import Foundation
import MyriadTestSupport
import Testing
import WebSocketCodec
@testable import Myriad

/// Issue 15: per-worker memory follows the live load. After a burst of large messages the
/// worker gives its pool buffers back within seconds, even with nothing else to wake it (the
/// next keep-alive is far away), and the side table is empty again.
extension Integration {
@Suite struct MemoryTrimTests {
    @Test(arguments: allBackends)
    func aBurstsMemoryIsGivenBack(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend, workers: 1) { config in
            config.pingIntervalMilliseconds = 600_000  // no keep-alive wakes the worker meanwhile
        }
        defer { server.stop() }
        // Twenty connections each hold the first 64 KiB of a message at once (a 64 KiB pool
        // buffer each), then finish it: reassembled into 128 KiB buffers, echoed from 128 KiB
        // send buffers, and every buffer is free again: some 5 MiB the worker no longer needs.
        let fragment = [UInt8](repeating: 7, count: 64 << 10)
        var clients: [RawClient] = []
        for _ in 0..<20 {
            let client = try RawClient(port: server.port)
            try client.upgrade()
            try client.sendFrame(.binary, fragment, fin: false)
            clients.append(client)
        }
        #expect(server.waitFor { $0[.reassemblyBytes] >= 20 * (64 << 10) }, "\(server.stats().fields)")
        for client in clients { try client.sendFrame(.continuation, [8], fin: true) }
        for client in clients { #expect(try client.readMessage(timeout: 10)?.payload.count == fragment.count + 1) }
        // Unused for a second, they go back; the classes up to 4 KiB keep two each (under 16 KiB).
        // The receive buffers the burst wrote go back too, but for the initial 64 (io_uring; an
        // idle worker wakes for it: nothing else would wake it); epoll has its one read buffer.
        #expect(server.waitFor(seconds: 20) {
            $0[.memoryReturnedBytes] >= 20 * (128 << 10) && $0[.poolFreeBytes] < 16 << 10
                && $0[.receiveBufferBytes] <= 64 * 4096
                && $0[.sideTableBytes] == 0 && $0[.sideEntries] == 0
        }, "\(server.stats().fields)")
        try assertStillEchoing(server)
    }
}
}
