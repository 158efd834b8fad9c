import Foundation
import MyriadTestSupport
import Testing
import WebSocketCodec
@testable import Myriad

/// Deadlines driven by the timing wheel, over real sockets and the real clock, with short
/// intervals: ping 1 s, pong 1 s, tick 50 ms.
extension Integration {
@Suite struct KeepAliveTests {
    static func configure(_ config: inout Config) {
        config.pingIntervalMilliseconds = 1000
        config.pongTimeoutMilliseconds = 1000
        config.handshakeTimeoutMilliseconds = 1000
        config.timerTickMilliseconds = 50
    }

    /// Allowance for a loaded CI machine on top of a deadline; deadlines are never early.
    static let slackSeconds = 1.0

    @Test(arguments: allBackends)
    func clientsThatAnswerPingsStayConnected(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend, configure: Self.configure)
        let result = try ExternalClient.run(
            ExternalClient.python,
            [ExternalClient.clientsDirectory.appendingPathComponent("keepalive_client.py").path, String(server.port), "6"])
        #expect(result.status == 0, "\(result.output)")
        let stats = server.stats()
        // Six seconds at one ping per second of silence (plus the pong round trips).
        #expect(stats[.pingsSent] >= 5, "\(stats.fields)")
        #expect(stats[.pongsReceived] >= 5, "\(stats.fields)")
        #expect(stats.closes(.pongTimeout) == 0)
    }

    /// The next ping is due one interval after the pong, even when the pong timeout is longer
    /// than the interval.
    @Test func pingsFollowTheIntervalWhenThePongTimeoutIsLonger() throws {
        let server = try TestServer(backend: .ioUring) { config in
            Self.configure(&config)
            config.pingIntervalMilliseconds = 500
            config.pongTimeoutMilliseconds = 3000
        }
        let result = try ExternalClient.run(
            ExternalClient.python,
            [ExternalClient.clientsDirectory.appendingPathComponent("keepalive_client.py").path, String(server.port), "4"])
        #expect(result.status == 0, "\(result.output)")
        // Four seconds at one ping per half second of silence: 7 or 8 (one per pong timeout would be 2).
        #expect(server.stats()[.pingsSent] >= 6, "\(server.stats().fields)")
    }

    @Test(arguments: allBackends)
    func clientThatStopsReadingIsClosedAfterIntervalPlusTimeout(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend, configure: Self.configure)
        let client = try RawClient(port: server.port)
        try client.upgrade()
        let silentSince = Date()
        // The client never reads again and never answers: ping after 1 s, close 1 s later.
        #expect(server.waitFor(seconds: 2 + 0.05 + Self.slackSeconds) { $0.closes(.pongTimeout) == 1 })
        let elapsed = Date().timeIntervalSince(silentSince)
        #expect(elapsed >= 2 - 0.1, "closed early, after \(elapsed) s")
        #expect(server.stats()[.pingsSent] == 1)
    }

    @Test(arguments: allBackends)
    func halfAHandshakeIsClosedAtTheHandshakeDeadline(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend, configure: Self.configure)
        let client = try RawClient(port: server.port)
        try client.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
        let started = Date()
        #expect(client.waitForClose(timeout: 1 + Self.slackSeconds + 0.05))
        let elapsed = Date().timeIntervalSince(started)
        #expect(elapsed >= 1 - 0.1, "closed early, after \(elapsed) s")
        #expect(server.waitFor { $0.closes(.handshakeTimeout) == 1 })
    }

    @Test(arguments: allBackends)
    func slowlorisTricklingBytesIsStillClosedAtTheDeadline(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend, configure: Self.configure)
        let client = try RawClient(port: server.port)
        let started = Date()
        var closed = false
        // One byte every 100 ms: activity does not extend the handshake deadline.
        for byte in Array(RawClient.upgradeRequest().utf8).prefix(30) {
            if (try? client.send([byte])) == nil { closed = true; break }
            usleep(100_000)
        }
        closed = closed || client.waitForClose(timeout: 1 + Self.slackSeconds)
        #expect(closed)
        #expect(Date().timeIntervalSince(started) < 1 + Self.slackSeconds + 0.5)
        #expect(server.waitFor { $0.closes(.handshakeTimeout) == 1 })
    }

    @Test(arguments: allBackends)
    func idleConnectionIsClosedWith1001(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend) { config in
            Self.configure(&config)
            config.pingIntervalMilliseconds = 0
            config.idleTimeoutMilliseconds = 1000
        }
        let client = try RawClient(port: server.port)
        try client.upgrade()
        try client.sendText("one message, then silence")
        #expect(try client.readMessage()?.opcode == .text)
        let close = try client.readMessage(timeout: 1 + Self.slackSeconds + 0.05)
        #expect(close?.opcode == .close && close?.closeCode == 1001)
        try client.sendClose(code: 1001)
        #expect(client.waitForClose(timeout: 5))
        #expect(server.waitFor { $0.closes(.idleTimeout) == 1 })
    }

    @Test(arguments: allBackends)
    func inboundTrafficPostponesPings(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend, configure: Self.configure)
        let client = try RawClient(port: server.port)
        try client.upgrade()
        // A message every 300 ms: never silent for a whole interval, so never pinged.
        for index in 0..<10 {
            try client.sendText("keep \(index)")
            #expect(try client.readMessage()?.opcode == .text)
            usleep(300_000)
        }
        #expect(server.stats()[.pingsSent] == 0)
        #expect(server.stats()[.open] == 1)
    }
}
}
