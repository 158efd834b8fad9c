import Foundation
import Glibc
import MyriadTestSupport
import Testing
import WebSocketCodec
@testable import Myriad

/// A worker thread with several rings (issue 14): tables of 16 fixed files make a worker that
/// holds 100 connections run 7 rings, all served by its one thread.
extension Integration {
@Suite struct MultiRingTests {
    static func configure(_ config: inout Config) {
        config.maxConnections = 100
        config.fixedFilesPerRing = 16
    }

    /// Accept (moving between rings as each fills), receive and send on every ring; a full
    /// worker refuses; a freed slot in any ring takes the next connection.
    @Test(arguments: [[], [URingFeature.deferTaskrun], [URingFeature.deferTaskrun, .multishotReceive], [.messageRing, .peerName]])
    func oneThreadServesEveryRing(disabled: [URingFeature]) throws {
        let server = try TestServer(backend: .ioUring, workers: 1) { config in
            Self.configure(&config)
            config.disabledURingFeatures = Set(disabled)
        }
        defer { server.stop() }
        #expect(server.waitFor { $0[.rings] == 7 })
        var clients = try connectClients(100, port: server.port)
        for (index, client) in clients.enumerated() { try client.sendText("ring check \(index)") }
        for (index, client) in clients.enumerated() {
            #expect(try client.readMessage()?.payload == Array("ring check \(index)".utf8))
        }
        let stats = server.stats()
        #expect(stats[.open] == 100 && stats[.acceptMoves] >= 6, "\(stats.fields)")
        // Full: the next one is refused, not left hanging.
        let extra = try RawClient(port: server.port)
        try? extra.send(RawClient.upgradeRequest())
        #expect(extra.waitForClose(timeout: 5))
        // Free slots on several rings; new connections take them and work.
        for index in stride(from: 0, to: 100, by: 10) { try clients[index].sendClose() }
        #expect(server.waitFor { $0[.open] == 90 })
        clients = clients.enumerated().filter { $0.offset % 10 != 0 }.map(\.element)
        for index in 0..<10 {
            let client = try RawClient(port: server.port)
            try client.upgrade()
            try client.sendText("again \(index)")
            #expect(try client.readMessage()?.payload == Array("again \(index)".utf8))
            clients.append(client)
        }
        #expect(server.stats()[.open] == 100)
    }

    /// Timers fire for connections of every ring: silent clients are pinged, then closed as
    /// pong_timeout, all 100 of them.
    @Test func deadlinesFireOnEveryRing() throws {
        let server = try TestServer(backend: .ioUring, workers: 1) { config in
            Self.configure(&config)
            config.timerTickMilliseconds = 10
            config.pingIntervalMilliseconds = 200
            config.pongTimeoutMilliseconds = 200
        }
        defer { server.stop() }
        let clients = try connectClients(100, port: server.port)
        #expect(server.waitFor(seconds: 10) { $0.closes(.pongTimeout) == 100 }, "\(server.stats().fields)")
        #expect(server.stats()[.pingsSent] >= 100)
        for client in clients { #expect(client.waitForClose(timeout: 2)) }
    }

    /// Shutdown closes every connection of every ring with 1001.
    @Test func shutdownReachesEveryRing() throws {
        let server = try TestServer(backend: .ioUring, workers: 1) { Self.configure(&$0) }
        let clients = try connectClients(100, port: server.port)
        #expect(server.waitFor { $0[.open] == 100 })
        server.engine.shutdown()
        var goingAway = 0
        for client in clients {
            if let close = try client.readMessage(timeout: 5), close.closeCode == 1001 {
                goingAway += 1
                try? client.sendClose(code: 1001)
            }
        }
        server.stop()
        #expect(goingAway == 100)
        #expect(server.stats().closes(.shutdown) == 100)
    }

    /// Publishes between workers that each run several rings: the ring messages go to the
    /// worker's waiting ring, deliveries leave on whichever ring each subscriber is on.
    @Test func topicsAcrossWorkersWithSeveralRingsEach() throws {
        let server = try TestServer(backend: .ioUring, workers: 2) { config in
            // Room to spare: SO_REUSEPORT spreads connections by hash, not evenly.
            config.maxConnections = 200
            config.fixedFilesPerRing = 16
        } handler: { _ in BroadcastHandler() }
        defer { server.stop() }
        let clients = try connectClients(120, port: server.port, path: "/rings")
        #expect(server.waitFor { $0[.subscriptions] == 120 })
        #expect(server.engine.workerStats().map { $0[.rings] } == [7, 7])
        for index in 0..<3 { try clients[index * 37].sendText("from \(index)") }
        for client in clients {
            var seen = Set<String>()
            for _ in 0..<3 { seen.insert(String(decoding: try #require(try client.readMessage(timeout: 5)).payload, as: UTF8.self)) }
            #expect(seen == ["from 0", "from 1", "from 2"])
        }
    }
}
}
