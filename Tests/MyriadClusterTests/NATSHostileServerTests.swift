import NATSTestSupport
import Foundation
import Glibc
import XCTest

@testable import MyriadCluster

/// Servers that lie, ramble or go silent (a scripted fake on loopback): the client drops the
/// connection and reconnects, never crashes, and holds bounded memory.
final class NATSHostileServerTests: XCTestCase {
    private func client(for fake: FakeNATSServer, configure: (inout NATSClientConfiguration) -> Void = { _ in }) throws -> NATSClient {
        let (client, _) = try makeClient(url: fake.url, name: "victim") {
            $0.stopFlushTimeoutMs = 200  // a fake may never answer the PING that confirms a flush
            configure(&$0)
        }
        return client
    }

    func testGarbageInsteadOfInfo() throws {
        for (greeting, reason) in [
            ("HTTP/1.1 400 Bad Request\r\n\r\n", "protocol violation by the server: unknown server operation \"HTTP/1.1 400 Bad Request\""),
            ("PING\r\n", "protocol violation by the server: the first operation is not INFO"),
        ] {
            let fake = try FakeNATSServer { connection in
                connection.send(greeting)
                _ = connection.waitForClose(seconds: 2)
            }
            let client = try client(for: fake)
            client.start()
            XCTAssertTrue(waitUntil(seconds: 5) { client.stats().protocolErrors >= 2 && fake.connections >= 2 })
            let stats = client.stats()
            XCTAssertEqual(stats.connects, 0)
            XCTAssertGreaterThanOrEqual(stats.connectFailures, 2)
            XCTAssertEqual(stats.lastError, reason)
            client.stop()
            fake.stop()
        }
    }

    func testOverlongLineDropsTheConnection() throws {
        let fake = try FakeNATSServer { connection in
            guard connection.handshake() else { return }
            // 4 MiB with no line end: the client must give up after its 16 KiB line limit.
            connection.send([UInt8](repeating: UInt8(ascii: "A"), count: 4 << 20))
            _ = connection.waitForClose(seconds: 2)
        }
        let client = try client(for: fake)
        client.start()
        defer { client.stop() }
        XCTAssertTrue(waitUntil(seconds: 5) { client.stats().connects >= 2 }, "reconnected after the drop")
        let stats = client.stats()
        XCTAssertGreaterThanOrEqual(stats.protocolErrors, 1)
        XCTAssertGreaterThanOrEqual(stats.disconnects, 1)
        XCTAssertEqual(stats.lastError, "protocol violation by the server: a server line is longer than 16384 bytes")
    }

    func testMessageOverTheServersOwnMaxPayload() throws {
        let fake = try FakeNATSServer { connection in
            guard connection.handshake(maxPayload: 1_024), connection.readLine() != nil else { return }  // the SUB
            connection.send("MSG s 1 5000\r\n")
            _ = connection.waitForClose(seconds: 2)
        }
        let client = try client(for: fake)
        client.subscribe("s")
        client.start()
        defer { client.stop() }
        XCTAssertTrue(waitUntil(seconds: 5) { client.stats().protocolErrors >= 2 })
        XCTAssertEqual(client.stats().lastError, "protocol violation by the server: MSG of 5000 bytes exceeds the server's max_payload of 1024 bytes")
        XCTAssertEqual(client.stats().received, 0)
    }

    func testHeadersThatWereNotNegotiated() throws {
        let fake = try FakeNATSServer { connection in
            guard connection.handshake() else { return }
            connection.send("HMSG s 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n")
            _ = connection.waitForClose(seconds: 2)
        }
        let client = try client(for: fake)
        client.start()
        defer { client.stop() }
        XCTAssertTrue(waitUntil(seconds: 5) { client.stats().protocolErrors >= 1 && client.stats().connects >= 2 })
    }

    func testFatalServerErrorDropsAndReconnects() throws {
        let fake = try FakeNATSServer { connection in
            guard connection.handshake() else { return }
            connection.send("-ERR 'Unknown Protocol Operation'\r\n")
            _ = connection.waitForClose(seconds: 2)
        }
        let client = try client(for: fake)
        client.start()
        defer { client.stop() }
        XCTAssertTrue(waitUntil(seconds: 5) { client.stats().connects >= 2 })
        let stats = client.stats()
        XCTAssertGreaterThanOrEqual(stats.serverErrors, 1)
        XCTAssertEqual(stats.protocolErrors, 0)
        XCTAssertEqual(stats.lastError, "server error: Unknown Protocol Operation")
    }

    /// The protocol documents these two as leaving the connection open: so does the client.
    func testPermissionViolationKeepsTheConnection() throws {
        let answered = Inbox()
        let fake = try FakeNATSServer { connection in
            guard connection.handshake() else { return }
            connection.send("-ERR 'Permissions Violation for Subscription to \"s\"'\r\nPING\r\n")
            if let reply = connection.readLine() { Array(reply.utf8).withUnsafeBytes { answered.handler("reply", $0) } }
            _ = connection.waitForClose(seconds: 3)
        }
        let client = try client(for: fake)
        client.start()
        defer { client.stop() }
        XCTAssertTrue(waitUntil(seconds: 5) { answered.count == 1 })
        XCTAssertEqual(answered.all.first?.payload, Array("PONG\r\n".utf8), "still alive and answering")
        let stats = client.stats()
        XCTAssertEqual(stats.connects, 1)
        XCTAssertEqual(stats.disconnects, 0)
        XCTAssertEqual(stats.serverErrors, 1)
        XCTAssertEqual(stats.lastError, "server error: Permissions Violation for Subscription to \"s\"")
    }

    func testSilentServerIsDetectedByOurPings() throws {
        let fake = try FakeNATSServer { connection in
            guard connection.handshake() else { return }
            _ = connection.waitForClose(seconds: 3)  // reads our PINGs, never answers
        }
        let client = try client(for: fake) {
            $0.pingIntervalMs = 100
            $0.maxPingsOutstanding = 2
        }
        client.start()
        defer { client.stop() }
        XCTAssertTrue(waitUntil(seconds: 5) { client.stats().pingTimeouts >= 1 && fake.connections >= 2 })
        XCTAssertEqual(client.stats().lastError, "no PONG to 2 PINGs (every 100 ms)")
    }

    func testHandshakeThatNeverCompletes() throws {
        let fake = try FakeNATSServer { connection in
            connection.send("INFO {\"max_payload\":1024,\"proto\":1}\r\n")
            _ = connection.waitForClose(seconds: 3)  // never answers CONNECT's PING
        }
        let client = try client(for: fake) { $0.connectTimeoutMs = 200 }
        client.start()
        defer { client.stop() }
        XCTAssertTrue(waitUntil(seconds: 5) { client.stats().connectFailures >= 2 })
        XCTAssertEqual(client.stats().lastError, "handshake: no completed handshake within 200 ms")
        XCTAssertEqual(client.stats().connects, 0)
    }

    func testServersThatRequireTLSOrAreTooOld() throws {
        for (info, reason) in [
            ("{\"max_payload\":1024,\"proto\":1,\"tls_required\":true}", "handshake: the server requires TLS, which this client does not speak"),
            ("{\"max_payload\":1024,\"proto\":0}", "handshake: the server's protocol 0 cannot honour echo:false (no-echo needs 1)"),
            ("{\"proto\":1}", "protocol violation by the server: INFO has no valid \"max_payload\""),
        ] {
            let fake = try FakeNATSServer { connection in
                connection.send("INFO \(info)\r\n")
                _ = connection.waitForClose(seconds: 2)
            }
            let client = try client(for: fake)
            client.start()
            XCTAssertTrue(waitUntil(seconds: 5) { client.stats().connectFailures >= 1 })
            XCTAssertEqual(client.stats().lastError, reason)
            client.stop()
            fake.stop()
        }
    }

    /// A MSG within the server's limit but over the client's own: read through, not held.
    func testHugeMessageIsSkippedWithBoundedMemory() throws {
        let huge = [UInt8](repeating: 0x5A, count: 32 << 20)
        let fake = try FakeNATSServer { connection in
            guard connection.handshake(maxPayload: 64 << 20), connection.readLine() != nil else { return }  // the SUB
            connection.send(Array("MSG s 1 \(huge.count)\r\n".utf8))
            connection.send(huge)
            connection.send("\r\nMSG s 1 2\r\nok\r\n")
            _ = connection.waitForClose(seconds: 3)
        }
        let (client, inbox) = try makeClient(url: fake.url, name: "victim") {
            $0.maxPayloadBytes = 64 << 10
            $0.outboundBufferLimitBytes = 1 << 20
        }
        client.subscribe("s")
        let before = residentBytes()
        client.start()
        defer { client.stop() }
        XCTAssertTrue(waitUntil(seconds: 10) { inbox.count == 1 })
        let grown = residentBytes() - before
        XCTAssertEqual(inbox.all.first?.payload, Array("ok".utf8))
        let stats = client.stats()
        XCTAssertEqual(stats.receivedOverLimitSkipped, 1)
        XCTAssertEqual(stats.connects, 1)
        XCTAssertEqual(stats.disconnects, 0)
        XCTAssertLessThan(grown, 8 << 20, "a 32 MiB message passed through without being held (RSS grew \(grown) bytes)")
    }

    /// Random bytes after the handshake, connection after connection; then a well-behaved
    /// server: the client survives all of it and still delivers.
    func testRandomGarbageNeverCrashesTheClient() throws {
        let rounds = 25
        let fake = try FakeNATSServer { connection in
            guard connection.handshake(maxPayload: 4_096), connection.readLine() != nil else { return }  // the SUB
            if connection.index <= rounds {
                var generator = SeededGenerator(seed: UInt64(connection.index))
                let alphabet = Array("MSG s 1 PING PONG -ERR +OK INFO {} 0123456789\r\n".utf8)
                let garbage: [UInt8] = (0..<Int.random(in: 1...20_000, using: &generator)).map { _ in
                    connection.index % 2 == 0 ? UInt8.random(in: 0...255, using: &generator) : alphabet.randomElement(using: &generator)!
                }
                connection.send(garbage)
                _ = connection.waitForClose(seconds: 0.2)
            } else {
                connection.send("MSG s 1 5\r\nfinal\r\n")
                _ = connection.waitForClose(seconds: 3)
            }
        }
        let (client, inbox) = try makeClient(url: fake.url, name: "victim") {
            $0.reconnectInitialDelayMs = 1
            $0.reconnectMaxDelayMs = 20
        }
        client.subscribe("s")
        client.start()
        defer { client.stop() }
        XCTAssertTrue(waitUntil(seconds: 20) { inbox.all.contains { $0.payload == Array("final".utf8) } }, "connections: \(fake.connections)")
        XCTAssertGreaterThan(fake.connections, rounds)
        XCTAssertGreaterThanOrEqual(client.stats().connects, UInt64(rounds))
    }
}

/// This process's resident set (VmRSS), in bytes.
func residentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
    else { return 0 }
    return (Int(line.split(separator: " ")[1]) ?? 0) * 1024
}
