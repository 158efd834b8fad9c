import Foundation
import MyriadTestSupport
import Glibc
import Testing
import WebSocketCodec
@testable import Myriad

extension Integration {
@Suite struct FaultTests {
    /// A full server refuses new connections quickly (io_uring: the accept fails with ENFILE
    /// and the kernel drops that connection; epoll: accepted and closed at once), counts the
    /// refusals, and accepts again as soon as a slot frees up.
    @Test(arguments: allBackends)
    func fullServerRefusesThenAcceptsAgain(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend, workers: 1) { $0.maxConnections = 20 }
        var clients: [RawClient] = []
        for _ in 0..<20 {
            let client = try RawClient(port: server.port)
            try client.upgrade()
            clients.append(client)
        }
        #expect(server.waitFor { $0[.open] == 20 })
        // Five more: each is refused (closed by the server) rather than left hanging.
        for _ in 0..<5 {
            let extra = try RawClient(port: server.port)
            try? extra.send(RawClient.upgradeRequest())
            #expect(extra.waitForClose(timeout: 5), "a refused connection must be closed, not left waiting")
        }
        #expect(server.waitFor { $0[.acceptENFILE] + $0[.acceptRejectedFull] >= 5 }, "\(server.stats().fields)")
        // Free two slots: the accept comes back.
        try clients[0].sendClose()
        try clients[1].sendClose()
        #expect(server.waitFor { $0[.open] == 18 })
        for _ in 0..<2 {
            let again = try RawClient(port: server.port)
            try again.upgrade()
            try again.sendText("back")
            #expect(try again.readMessage()?.payload == Array("back".utf8))
            clients.append(again)
        }
        #expect(server.stats()[.open] == 20)
    }

    /// A completion queue of 8 entries under a burst of 500 clients: the kernel holds what
    /// does not fit (IORING_FEAT_NODROP), multishot receives it ended are re-armed, and no
    /// message is lost or reordered.
    @Test(arguments: [false, true])
    func completionQueueOverflowLosesNothing(withoutDeferTaskrun: Bool) throws {
        let server = try TestServer(backend: .ioUring, workers: 1) { config in
            config.ringEntries = 8
            config.completionEntries = 8
            if withoutDeferTaskrun { config.disabledURingFeatures = [.deferTaskrun] }
        }
        var clients: [RawClient] = []
        for _ in 0..<500 {
            let client = try RawClient(port: server.port)
            try client.upgrade()
            clients.append(client)
        }
        // Whether the CQ overflows depends on how far the worker falls behind the burst, so
        // burst again (at most 5 rounds) until it has; every round must lose nothing.
        let bursts = clients.indices.map { index in (0..<4).flatMap { RawClient.frame(.text, Array("c\(index) m\($0)".utf8)) } }
        var rounds = 0
        repeat {
            rounds += 1
            for (index, client) in clients.enumerated() { try client.send(bursts[index]) }
            for (index, client) in clients.enumerated() {
                for message in 0..<4 {
                    #expect(try client.readMessage(timeout: 20)?.payload == Array("c\(index) m\(message)".utf8))
                }
            }
        } while server.stats()[.cqOverflows] == 0 && rounds < 5
        let stats = server.stats()
        #expect(stats[.cqOverflows] > 0, "the CQ never overflowed in \(rounds) bursts: the test proved nothing (\(stats.fields))")
        #expect(stats[.messagesIn] == 2000 * rounds && stats[.messagesOut] == 2000 * rounds)
    }

    /// With multishot receive turned off (the 5.19 path), every receive is re-armed.
    @Test func singleShotReceiveFallbackEchoes() throws {
        let server = try TestServer(backend: .ioUring) { $0.disabledURingFeatures = [.multishotReceive, .deferTaskrun] }
        let result = try ExternalClient.pythonEcho(port: server.port)
        #expect(result.status == 0, "\(result.output)")
    }
}
}
