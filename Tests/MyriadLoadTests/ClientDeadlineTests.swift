import Foundation
import Glibc
import Testing
import WebSocketCodec
@testable import MyriadLoad

/// A WebSocket server written for these tests against plain sockets: it upgrades `count`
/// connections, then answers each client close frame as `closeAnswer` says and never closes
/// TCP itself (the client must). Ends when every client closed, or after `limitSeconds`.
private func upgradingServer(listener: Int32, count: Int, answersClose: Bool, limitSeconds: Double = 20) -> Thread {
    let thread = Thread {
        var clients: [Int32] = []
        let started = Date()
        for _ in 0..<count {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { break }
            clients.append(client)
            var head: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 2048)
            while !head.suffix(4).elementsEqual([13, 10, 13, 10]) {
                let n = buffer.withUnsafeMutableBytes { read(client, $0.baseAddress, 2048) }
                if n <= 0 { break }
                head += buffer[..<n]
            }
            let text = String(decoding: head, as: UTF8.self)
            guard let line = text.split(separator: "\r\n").first(where: { $0.lowercased().hasPrefix("sec-websocket-key:") })
            else { continue }
            let key = Array(line.dropFirst("sec-websocket-key:".count).trimmingCharacters(in: .whitespaces).utf8)
            var accept = [UInt8](repeating: 0, count: 28)
            key.withUnsafeBytes { k in accept.withUnsafeMutableBytes { HandshakeResponse.writeAcceptValue(key: k, into: $0.baseAddress!) } }
            var response = Array("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ".utf8)
            response += accept + Array("\r\n\r\n".utf8)
            _ = response.withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
        }
        // Read until each client closes TCP; answer its close frame (opcode 0x8) if asked to.
        var open = Set(clients)
        while !open.isEmpty && Date().timeIntervalSince(started) < limitSeconds {
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            guard poll(&fds, nfds_t(fds.count), 50) > 0 else { continue }
            for entry in fds where entry.revents != 0 {
                var buffer = [UInt8](repeating: 0, count: 256)
                let n = buffer.withUnsafeMutableBytes { read(entry.fd, $0.baseAddress, 256) }
                if n <= 0 {
                    open.remove(entry.fd)
                    continue
                }
                if answersClose && buffer[0] & 0x0F == 0x8 {
                    let close: [UInt8] = [0x88, 0x02, 0x03, 0xE8]  // 1000, unmasked
                    _ = close.withUnsafeBytes { write(entry.fd, $0.baseAddress, $0.count) }
                }
            }
        }
        for client in clients { close(client) }
    }
    thread.start()
    return thread
}

extension EndToEndTests {
    /// The client's close deadline, on the engine's timing wheel since the load generator
    /// shares the server's deadline structure: a server that never answers the close frame
    /// is a close failure (ETIMEDOUT) per connection; one that answers but keeps TCP open is
    /// closed by the client at the deadline, cleanly. Either way the run ends and nothing is
    /// held.
    @Suite struct ClientDeadlineTests {
        func options(port: UInt16) -> LoadOptions {
            var options = LoadOptions()
            options.mode = .hold
            options.port = port
            options.connections = 20
            options.durationMilliseconds = 200
            options.closeTimeoutMilliseconds = 300
            options.timeLimitMilliseconds = 20_000
            return options
        }

        @Test func anUnansweredCloseFailsAtTheCloseDeadline() throws {
            let (listener, port) = listeningSocket(backlog: 64)
            defer { close(listener) }
            let server = upgradingServer(listener: listener, count: 20, answersClose: false)
            let summary = try LoadGenerator.run(options(port: port))
            #expect(summary.peak == 20)
            #expect(summary.failures.count(.close, "ETIMEDOUT") == 20, Comment(rawValue: summary.json))
            #expect(summary.failures.total == 20)
            #expect(summary.cleanCloses == 0)
            while server.isExecuting { usleep(10_000) }
        }

        @Test func anAnsweredCloseWhoseTCPStaysOpenEndsCleanlyAtTheDeadline() throws {
            let (listener, port) = listeningSocket(backlog: 64)
            defer { close(listener) }
            let server = upgradingServer(listener: listener, count: 20, answersClose: true)
            let summary = try LoadGenerator.run(options(port: port))
            #expect(summary.peak == 20)
            #expect(summary.failures.total == 0, Comment(rawValue: summary.json))
            #expect(summary.cleanCloses == 20)
            #expect(summary.succeeded)
            while server.isExecuting { usleep(10_000) }
        }
    }
}
