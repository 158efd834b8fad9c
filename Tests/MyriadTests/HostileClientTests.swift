import Foundation
import MyriadTestSupport
import Glibc
import Testing
import WebSocketCodec
@testable import Myriad

/// Sends `count` messages on a fresh connection and checks each echo: the server still serves.
func assertStillEchoing(_ server: TestServer<some WebSocketHandler>, count: Int = 3) throws {
    let client = try RawClient(port: server.port)
    try client.upgrade()
    for index in 0..<count {
        try client.sendText("still here \(index)")
        let echo = try client.readMessage()
        #expect(echo?.payload == Array("still here \(index)".utf8), "the server stopped echoing")
    }
    try client.sendClose()
    _ = try client.readMessage()
}

/// A handler that answers "flood" with `floodBytes` of binary data, and echoes the rest.
struct FloodHandler: WebSocketHandler {
    static let chunk = [UInt8](repeating: 0x5A, count: 64 * 1024)
    let floodBytes: Int

    mutating func onMessage(_ connection: Connection, kind: MessageKind, payload: UnsafeRawBufferPointer) {
        guard kind == .text, payload.elementsEqual("flood".utf8) else {
            _ = kind == .text ? connection.send(text: payload) : connection.send(binary: payload)
            return
        }
        var sent = 0
        while sent < floodBytes {
            let result = Self.chunk.withUnsafeBytes { connection.send(binary: $0) }
            if result != .queued { return }
            sent += Self.chunk.count
        }
    }
}

/// Every hostile client leaves the server up, other connections echoing, and the close
/// counted under its reason.
extension Integration {
@Suite struct HostileClientTests {
    @Test(arguments: allBackends)
    func garbageInsteadOfAHandshake(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend)
        let client = try RawClient(port: server.port)
        try client.send((0..<300).map { _ in UInt8.random(in: 0...255) } + [13, 10, 13, 10])
        #expect(String(decoding: try client.readToEnd(timeout: 5), as: UTF8.self).hasPrefix("HTTP/1.1 400 "))
        let binary = try RawClient(port: server.port)
        try binary.send(RawClient.frame(.text, Array("no handshake at all".utf8)) + [13, 10, 13, 10])
        #expect(String(decoding: try binary.readToEnd(timeout: 5), as: UTF8.self).hasPrefix("HTTP/1.1 400 "))
        try assertStillEchoing(server)
        #expect(server.waitFor { $0.closes(.handshakeRejected) == 2 })
    }

    @Test(arguments: allBackends)
    func headerSectionPastTheLimit(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend) { $0.maxHeaderBytes = 2048 }
        let client = try RawClient(port: server.port)
        let padding = "X-Padding: " + String(repeating: "p", count: 4000) + "\r\n"
        try? client.send(RawClient.upgradeRequest(extra: padding))
        #expect(String(decoding: try client.readToEnd(timeout: 5), as: UTF8.self).hasPrefix("HTTP/1.1 431 "))
        // Endless headers without the blank line: refused once the limit is reached.
        let endless = try RawClient(port: server.port)
        try endless.send("GET / HTTP/1.1\r\n")
        for _ in 0..<100 {
            if (try? endless.send("X-More: " + String(repeating: "m", count: 50) + "\r\n")) == nil { break }
        }
        #expect(String(decoding: try endless.readToEnd(timeout: 5), as: UTF8.self).hasPrefix("HTTP/1.1 431 "))
        try assertStillEchoing(server)
        #expect(server.waitFor { $0.closes(.handshakeRejected) == 2 })
        #expect(server.stats()[.pooledBytes] < 64 * 1024)
    }

    @Test(arguments: allBackends)
    func unmaskedFramesAndOversizedMessages(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend) { $0.maxMessageSizeBytes = 64 * 1024 }
        let unmasked = try RawClient(port: server.port)
        try unmasked.upgrade()
        try unmasked.send(RawClient.frame(.binary, [1, 2, 3], masked: false))
        #expect(try unmasked.readMessage()?.closeCode == 1002)
        // Announced past the limit in fragments: refused from the headers, before the data.
        let oversized = try RawClient(port: server.port)
        try oversized.upgrade()
        try oversized.send(RawClient.frame(.binary, [UInt8](repeating: 1, count: 40 * 1024), fin: false))
        try oversized.send(Array(RawClient.frame(.binary, [UInt8](repeating: 1, count: 40 * 1024), fin: true).prefix(14)).map { $0 } .enumerated().map { $0.offset == 0 ? 0x80 : $0.element })
        #expect(try oversized.readMessage()?.closeCode == 1009)
        try assertStillEchoing(server)
        #expect(server.waitFor { $0.closes(.protocolError) == 1 && $0.closes(.messageTooBig) == 1 })
    }

    @Test(arguments: allBackends)
    func clientThatNeverReadsIsClosedAsSlowConsumer(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend, configure: { $0.maxQueuedBytes = 1 << 20 }) { _ in
            FloodHandler(floodBytes: 64 << 20)
        }
        let client = try RawClient(port: server.port)
        try client.upgrade()
        try client.sendText("flood")
        // 64 MiB asked for, 1 MiB allowed in the queue, nobody reading: closed, memory bounded.
        #expect(server.waitFor { $0.closes(.slowConsumer) == 1 })
        #expect(server.waitFor { $0[.pooledBytes] < (2 << 20) && $0[.open] == 0 })
        try assertStillEchoing(server)
    }

    @Test(arguments: allBackends)
    func resetStormOfTenThousandConnections(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend)
        // In this process the epoll server's sockets share the 20,000 fd limit with the
        // clients' own; io_uring's live in the ring's fixed-file table.
        let count = backend == .epoll ? 9_000 : 10_000
        var clients: [RawClient] = []
        for index in 0..<count {
            let client = try RawClient(port: server.port, source: "127.0.0.\(2 + index % 4)")
            try client.send(RawClient.upgradeRequest())
            clients.append(client)
        }
        for client in clients { _ = try client.readHead(timeout: 10) }
        #expect(server.waitFor { $0[.open] == count && $0[.handshakes] == count })
        for client in clients { client.reset() }  // RST, all at once
        clients.removeAll()
        #expect(server.waitFor(seconds: 30) { $0[.open] == 0 })
        let stats = server.stats()
        #expect(stats.closes(.socketError) + stats.closes(.peerEOF) == count, "\(stats.fields)")
        try assertStillEchoing(server)
    }

    @Test(arguments: allBackends)
    func halfClosedAndFrozenPeers(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend) { config in
            config.pingIntervalMilliseconds = 500
            config.pongTimeoutMilliseconds = 500
        }
        // Half-close: the peer's FIN (it may still read) ends the WebSocket.
        let halfClosed = try RawClient(port: server.port)
        try halfClosed.upgrade()
        shutdown(halfClosed.fd, Int32(SHUT_WR))
        // Frozen: the TCP stack still ACKs, the application never answers a ping.
        let frozen = try RawClient(port: server.port)
        try frozen.upgrade()
        #expect(server.waitFor { $0.closes(.peerEOF) == 1 })
        #expect(server.waitFor(seconds: 5) { $0.closes(.pongTimeout) == 1 && $0[.open] == 0 })
        try assertStillEchoing(server)
    }
}
}
