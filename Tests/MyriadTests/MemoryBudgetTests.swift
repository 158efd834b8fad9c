import Foundation
import Glibc
import MyriadTestSupport
import Testing
import WebSocketCodec
@testable import Myriad

/// Issue 12, defect 3: memory that peers control is bounded per worker. Before, every
/// connection could hold MYRIAD_MAX_MESSAGE_SIZE of unfinished message with no cap per worker,
/// so a few thousand clients each sending the first fragment of a large message pinned
/// gigabytes indefinitely.
extension Integration {
@Suite struct MemoryBudgetTests {
    /// A 2 MiB budget: partial messages may hold 1 MiB. Clients that each park 200 KiB (a
    /// 256 KiB pool buffer) of an unfinished message fill that half after 4; the next is
    /// closed with 1013 and counted as memory_budget, and an ordinary client is still echoed
    /// (sends use the other half).
    @Test(arguments: allBackends)
    func hostileUnfinishedMessagesAreRefusedPastTheBudget(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend, workers: 1) { config in
            config.maxMessageSizeBytes = 1 << 20
            config.bufferBudgetBytes = 2 << 20
        }
        defer { server.stop() }
        var holders: [RawClient] = []
        for _ in 0..<4 {
            let client = try RawClient(port: server.port)
            try client.upgrade()
            try client.sendFrame(.binary, [UInt8](repeating: 1, count: 200 << 10), fin: false)
            holders.append(client)
        }
        #expect(server.waitFor { $0[.pooledBytes] >= 4 * (256 << 10) }, "\(server.stats().fields)")
        let fifth = try RawClient(port: server.port)
        try fifth.upgrade()
        try fifth.sendFrame(.binary, [UInt8](repeating: 1, count: 200 << 10), fin: false)
        let close = try #require(try fifth.readMessage(timeout: 5), "the fifth holder got nothing")
        #expect(close.opcode == .close && close.closeCode == 1013)
        #expect(server.waitFor { $0.closes(.memoryBudget) == 1 }, "\(server.stats().fields)")
        // The holders are untouched, and ordinary traffic still flows.
        try assertStillEchoing(server)
        for holder in holders {
            try holder.sendFrame(.continuation, [2], fin: true)
            let echo = try #require(try holder.readMessage(timeout: 5))
            #expect(echo.payload.count == (200 << 10) + 1)
        }
        #expect(server.waitFor { $0[.pooledBytes] == 0 }, "\(server.stats().fields)")
    }

    @Test func theBudgetKnobIsValidatedAgainstTheMessageSize() throws {
        var config = Config()
        config.maxMessageSizeBytes = 1 << 20
        config.bufferBudgetBytes = 1 << 20
        #expect(throws: ConfigError.self) { try config.validate() }
        config.bufferBudgetBytes = 2 << 20
        try config.validate()
        // The default is a quarter of memory over the workers, never below the minimum.
        config.bufferBudgetBytes = nil
        config.workers = 2
        #expect(config.bufferBudgetPerWorker(memoryBytes: 24 << 30) == 3 << 30)
        #expect(config.bufferBudgetPerWorker(memoryBytes: 1 << 20) == 2 << 20)
        let loaded = try Config.load(environment: ["MYRIAD_BUFFER_BUDGET": "64M"])
        #expect(loaded.bufferBudgetBytes == 64 << 20)
    }
}
}
