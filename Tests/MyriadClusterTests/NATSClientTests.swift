import NATSTestSupport
import Foundation
import Glibc
import XCTest

@testable import MyriadCluster

/// The client against a real nats-server (started here on free loopback ports, stopped by
/// PID): delivery, no-echo, interest seen by the server, limits, credentials, outages.
final class NATSClientTests: XCTestCase {
    func testRoundTripBetweenTwoClients() throws {
        let server = try NATSServerProcess()
        let (subscriber, inbox) = try makeClient(url: server.url, name: "sub")
        let (publisher, _) = try makeClient(url: server.url, name: "pub")
        defer {
            subscriber.stop()
            publisher.stop()
        }
        XCTAssertEqual(subscriber.subscribe("myriad.room"), .subscribed)
        subscriber.start()
        publisher.start()
        XCTAssertTrue(subscriber.waitUntilConnected(timeoutMs: 5_000))
        XCTAssertTrue(publisher.waitUntilConnected(timeoutMs: 5_000))
        XCTAssertTrue(try waitUntil(seconds: 5) { try server.subscriptions(ofClientNamed: "sub") == ["myriad.room"] })

        let payloads: [[UInt8]] = [[], Array("hello".utf8), [0x0D, 0x0A, 0x00, 0xFF], Array("PUB x 1\r\n".utf8), [UInt8](repeating: 7, count: 70_000)]
            + (0..<95).map { Array("message \($0)".utf8) }
        for payload in payloads {
            XCTAssertEqual(publisher.publish(subject: "myriad.room", payload: payload), .queued)
        }
        XCTAssertTrue(waitUntil(seconds: 5) { inbox.count == payloads.count }, "got \(inbox.count)")
        XCTAssertEqual(inbox.payloads(on: "myriad.room"), payloads, "in order, byte for byte")

        let sent = publisher.stats()
        XCTAssertEqual(sent.published, 100)
        XCTAssertEqual(sent.publishedPayloadBytes, UInt64(payloads.map(\.count).reduce(0, +)))
        XCTAssertEqual(sent.bufferedMessages, 0)
        XCTAssertEqual(sent.connects, 1)
        XCTAssertEqual(sent.serverMaxPayloadBytes, 1_048_576)
        let got = subscriber.stats()
        XCTAssertEqual(got.received, 100)
        XCTAssertEqual(got.subscriptions, 1)
        XCTAssertEqual(got.protocolErrors + got.serverErrors + got.droppedBufferFull + got.lostInFlight, 0)
    }

    func testNoEchoAClientNeverReceivesItsOwnPublishes() throws {
        let server = try NATSServerProcess()
        let (a, inboxA) = try makeClient(url: server.url, name: "a")
        let (b, inboxB) = try makeClient(url: server.url, name: "b")
        defer {
            a.stop()
            b.stop()
        }
        a.subscribe("topic")
        b.subscribe("topic")
        a.start()
        b.start()
        XCTAssertTrue(try waitUntil(seconds: 5) {
            try server.subscriptions(ofClientNamed: "a") == ["topic"] && server.subscriptions(ofClientNamed: "b") == ["topic"]
        })
        for index in 0..<10 { a.publish(subject: "topic", payload: Array("from a \(index)".utf8)) }
        XCTAssertTrue(waitUntil(seconds: 5) { inboxB.count == 10 })
        // b publishes after it got a's ten: an echo of a's ten would have been queued to a
        // when the server routed them, so before this message on a's connection.
        b.publish(subject: "topic", payload: Array("from b".utf8))
        XCTAssertTrue(waitUntil(seconds: 5) { inboxA.count == 1 })
        usleep(200_000)
        XCTAssertEqual(inboxA.all.map(\.payload), [Array("from b".utf8)], "a got only b's message, none of its own")
        XCTAssertEqual(inboxB.count, 10, "b got a's ten, none of its own")
    }

    func testSubscriptionsAreIdempotentAndVisibleInTheServer() throws {
        let server = try NATSServerProcess()
        // The server's own (system account) subscriptions, before the client has any.
        let baseline = try XCTUnwrap(try server.monitor("/subsz")["num_subscriptions"] as? Int)
        let (client, _) = try makeClient(url: server.url, name: "interest")
        defer { client.stop() }
        // Before start: remembered, registered on connect.
        XCTAssertEqual(client.subscribe("x.1"), .subscribed)
        XCTAssertEqual(client.subscribe("x.1"), .alreadySubscribed)
        XCTAssertEqual(client.subscribe("x.*"), .subscribed)
        XCTAssertEqual(client.subscribe("a..b"), .refusedInvalidSubject)
        XCTAssertEqual(client.subscribe("a b"), .refusedInvalidSubject)
        client.start()
        XCTAssertTrue(try waitUntil(seconds: 5) { try server.subscriptions(ofClientNamed: "interest") == ["x.*", "x.1"] })

        XCTAssertEqual(client.subscribe("x.2"), .subscribed)
        XCTAssertEqual(client.subscribe("x.2"), .alreadySubscribed)
        XCTAssertTrue(try waitUntil(seconds: 5) { try server.subscriptions(ofClientNamed: "interest") == ["x.*", "x.1", "x.2"] })

        XCTAssertEqual(client.unsubscribe("x.1"), .unsubscribed)
        XCTAssertEqual(client.unsubscribe("x.1"), .notSubscribed)
        XCTAssertTrue(try waitUntil(seconds: 5) { try server.subscriptions(ofClientNamed: "interest") == ["x.*", "x.2"] })
        XCTAssertEqual(client.unsubscribe("x.*"), .unsubscribed)
        XCTAssertEqual(client.unsubscribe("x.2"), .unsubscribed)
        XCTAssertTrue(try waitUntil(seconds: 5) { try server.subscriptions(ofClientNamed: "interest") == [] })
        XCTAssertEqual(client.subscribedSubjects, [])
        XCTAssertEqual(try server.monitor("/subsz")["num_subscriptions"] as? Int, baseline)
        XCTAssertEqual(client.stats().refusedInvalidSubject, 2)
    }

    func testPublishesOverMaxPayloadAreRefusedAndCounted() throws {
        let server = try NATSServerProcess(configuration: "max_payload: 1024\n")
        let (publisher, _) = try makeClient(url: server.url, name: "pub")
        let (subscriber, inbox) = try makeClient(url: server.url, name: "sub")
        defer {
            publisher.stop()
            subscriber.stop()
        }
        // Before the first INFO the client assumes its own limit (1 MiB) and buffers...
        XCTAssertEqual(publisher.publish(subject: "big", payload: [UInt8](repeating: 1, count: 2_000)), .bufferedWhileDisconnected)
        XCTAssertEqual(publisher.publish(subject: "big", payload: Array("small".utf8)), .bufferedWhileDisconnected)
        subscriber.subscribe("big")
        subscriber.start()
        XCTAssertTrue(try waitUntil(seconds: 5) { try server.subscriptions(ofClientNamed: "sub") == ["big"] })
        // ...and drops what this server's INFO says it would refuse, keeping the connection.
        publisher.start()
        XCTAssertTrue(waitUntil(seconds: 5) { inbox.count == 1 })
        XCTAssertEqual(inbox.payloads(on: "big"), [Array("small".utf8)])
        XCTAssertEqual(publisher.stats().refusedOverMaxPayload, 1)

        XCTAssertEqual(publisher.publish(subject: "big", payload: [UInt8](repeating: 2, count: 1_024)), .queued)
        XCTAssertEqual(publisher.publish(subject: "big", payload: [UInt8](repeating: 3, count: 1_025)), .refusedOverMaxPayload(limitBytes: 1_024))
        XCTAssertTrue(waitUntil(seconds: 5) { inbox.count == 2 })
        XCTAssertEqual(inbox.all.last?.payload.count, 1_024)
        let stats = publisher.stats()
        XCTAssertEqual(stats.refusedOverMaxPayload, 2)
        XCTAssertEqual(stats.serverMaxPayloadBytes, 1_024)
        XCTAssertEqual(stats.connects, 1)
        XCTAssertEqual(stats.disconnects, 0)
        XCTAssertEqual(stats.serverErrors, 0, "nothing over the limit ever reached the server")
    }

    func testUserAndPassword() throws {
        let server = try NATSServerProcess(arguments: ["--user", "alice", "--pass", "s3cret"])
        try assertCredentialsRefused(url: "nats://alice:wrong@127.0.0.1:\(server.port)")
        try assertCredentialsRefused(url: server.url)
        let (fromURL, inbox) = try makeClient(url: "nats://alice:s3cret@127.0.0.1:\(server.port)", name: "url")
        let (explicit, _) = try makeClient(url: server.url, name: "fields") {
            $0.user = "alice"
            $0.password = "s3cret"
        }
        defer {
            fromURL.stop()
            explicit.stop()
        }
        try assertRoundTrip(from: explicit, to: fromURL, inbox: inbox, server: server)
    }

    func testToken() throws {
        let server = try NATSServerProcess(arguments: ["--auth", "T0ken-1"])
        try assertCredentialsRefused(url: "nats://wrong@127.0.0.1:\(server.port)")
        let (fromURL, inbox) = try makeClient(url: "nats://T0ken-1@127.0.0.1:\(server.port)", name: "url")
        let (explicit, _) = try makeClient(url: server.url, name: "fields") { $0.token = "T0ken-1" }
        defer {
            fromURL.stop()
            explicit.stop()
        }
        try assertRoundTrip(from: explicit, to: fromURL, inbox: inbox, server: server)
    }

    /// The client keeps trying (with backoff) but never connects, and says why.
    private func assertCredentialsRefused(url: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (client, _) = try makeClient(url: url, name: "refused")
        client.start()
        defer { client.stop() }
        XCTAssertTrue(waitUntil(seconds: 5) { client.stats().connectFailures >= 2 }, file: file, line: line)
        let stats = client.stats()
        XCTAssertFalse(stats.isConnected, file: file, line: line)
        XCTAssertEqual(stats.connects, 0, file: file, line: line)
        XCTAssertGreaterThanOrEqual(stats.serverErrors, 2, file: file, line: line)
        XCTAssertEqual(stats.lastError, "server error: Authorization Violation", file: file, line: line)
    }

    private func assertRoundTrip(from publisher: NATSClient, to subscriber: NATSClient, inbox: Inbox, server: NATSServerProcess) throws {
        subscriber.subscribe("secret.room")
        subscriber.start()
        publisher.start()
        XCTAssertTrue(publisher.waitUntilConnected(timeoutMs: 5_000))
        XCTAssertTrue(try waitUntil(seconds: 5) { try server.subscriptions(ofClientNamed: "url") == ["secret.room"] })
        publisher.publish(subject: "secret.room", payload: Array("ok".utf8))
        XCTAssertTrue(waitUntil(seconds: 5) { inbox.count == 1 })
        XCTAssertEqual(subscriber.stats().connectFailures, 0)
    }

    /// Stop nats-server mid-run and start it again on the same port: both clients reconnect
    /// with backoff, re-register every subject, deliver again; the outage's publishes are
    /// buffered up to the cap, the rest dropped and counted.
    func testServerRestartMidRun() throws {
        let server = try NATSServerProcess()
        let subjects = ["r.1", "r.2", "r.3"]
        let (subscriber, inbox) = try makeClient(url: server.url, name: "sub")
        let (publisher, _) = try makeClient(url: server.url, name: "pub") {
            $0.maxPayloadBytes = 1_024
            $0.outboundBufferLimitBytes = 8_192
        }
        defer {
            subscriber.stop()
            publisher.stop()
        }
        for subject in subjects { subscriber.subscribe(subject) }
        subscriber.start()
        publisher.start()
        XCTAssertTrue(publisher.waitUntilConnected(timeoutMs: 5_000))
        XCTAssertTrue(try waitUntil(seconds: 5) { try server.subscriptions(ofClientNamed: "sub") == subjects })
        for subject in subjects { publisher.publish(subject: subject, payload: Array("before".utf8)) }
        XCTAssertTrue(waitUntil(seconds: 5) { inbox.count == 3 })

        server.stop()
        XCTAssertTrue(waitUntil(seconds: 5) { !subscriber.stats().isConnected && !publisher.stats().isConnected })

        // 100-byte payloads: frames of "PUB r.1 100\r\n" + 100 + CRLF = 115 bytes; 8192 holds 71.
        let payload = [UInt8](repeating: 0x61, count: 100)
        let results = (0..<200).map { _ in publisher.publish(subject: "r.1", payload: payload) }
        let buffered = results.filter { $0 == .bufferedWhileDisconnected }.count
        XCTAssertEqual(buffered, 8_192 / 115)
        XCTAssertEqual(results.filter { $0 == .droppedWhileDisconnected }.count, 200 - buffered)
        var stats = publisher.stats()
        XCTAssertEqual(stats.droppedWhileDisconnected, UInt64(200 - buffered))
        XCTAssertEqual(stats.bufferedMessages, buffered)
        XCTAssertLessThanOrEqual(stats.bufferedBytes, 8_192)

        usleep(800_000)  // retries fail meanwhile, with growing delays
        try server.start()
        XCTAssertTrue(subscriber.waitUntilConnected(timeoutMs: 5_000))
        XCTAssertTrue(publisher.waitUntilConnected(timeoutMs: 5_000))
        XCTAssertTrue(try waitUntil(seconds: 5) { try server.subscriptions(ofClientNamed: "sub") == subjects }, "every subject re-registered")

        for client in [subscriber, publisher] {
            stats = client.stats()
            XCTAssertEqual(stats.connects, 2)
            XCTAssertEqual(stats.reconnects, 1)
            XCTAssertEqual(stats.disconnects, 1)
            // 800 ms down with 50 ms doubling to 400 ms (jittered): a handful of attempts, not a storm.
            XCTAssertGreaterThanOrEqual(stats.connectFailures, 2)
            XCTAssertLessThanOrEqual(stats.connectFailures, 20)
        }
        // The buffered publishes reached the server (whether the subscriber was back in time
        // to get them is at-most-once luck; the server's own count is not).
        XCTAssertTrue(try waitUntil(seconds: 5) { try server.messagesIn() == buffered })
        XCTAssertTrue(waitUntil(seconds: 5) { publisher.stats().published == UInt64(3 + buffered) })
        XCTAssertEqual(publisher.stats().bufferedMessages, 0)

        let before = inbox.count
        for subject in subjects { publisher.publish(subject: subject, payload: Array("after".utf8)) }
        XCTAssertTrue(waitUntil(seconds: 5) { inbox.all.filter { $0.payload == Array("after".utf8) }.count == 3 })
        XCTAssertEqual(Set(inbox.all.dropFirst(before).filter { $0.payload == Array("after".utf8) }.map(\.subject)), Set(subjects))
        XCTAssertEqual(publisher.stats().lostInFlight, 0)
    }

    func testServerPingsAreAnswered() throws {
        let server = try NATSServerProcess(configuration: "ping_interval: \"100ms\"\nping_max: 2\n")
        let (client, _) = try makeClient(url: server.url, name: "pinged") { $0.pingIntervalMs = 60_000 }
        defer { client.stop() }
        client.start()
        XCTAssertTrue(client.waitUntilConnected(timeoutMs: 5_000))
        // An unanswered client would be closed after 2 missed PINGs (~300 ms); this one stays.
        XCTAssertTrue(waitUntil(seconds: 5) { client.stats().serverPingsAnswered >= 5 })
        let stats = client.stats()
        XCTAssertEqual(stats.connects, 1)
        XCTAssertEqual(stats.disconnects, 0)
        XCTAssertTrue(stats.isConnected)
    }

    func testStopFlushesWhatIsPending() throws {
        let server = try NATSServerProcess()
        let (subscriber, inbox) = try makeClient(url: server.url, name: "sub")
        let (publisher, _) = try makeClient(url: server.url, name: "pub")
        defer { subscriber.stop() }
        subscriber.subscribe("flush")
        subscriber.start()
        publisher.start()
        XCTAssertTrue(publisher.waitUntilConnected(timeoutMs: 5_000))
        XCTAssertTrue(try waitUntil(seconds: 5) { try server.subscriptions(ofClientNamed: "sub") == ["flush"] })
        for index in 0..<5_000 { publisher.publish(subject: "flush", payload: Array("m\(index)".utf8)) }
        let stopStarted = Date()
        publisher.stop()
        // Written, confirmed by a PING round trip, closed: well before the 1 s flush limit.
        XCTAssertLessThan(Date().timeIntervalSince(stopStarted), 0.5)
        let stats = publisher.stats()
        XCTAssertEqual(stats.state, .stopped)
        XCTAssertEqual(stats.published, 5_000)
        XCTAssertEqual(stats.droppedAtStop, 0)
        XCTAssertEqual(publisher.publish(subject: "flush", payload: []), .refusedStopped)
        XCTAssertTrue(waitUntil(seconds: 5) { inbox.count == 5_000 })
        publisher.stop()  // idempotent
    }

    func testPublishersOnManyThreads() throws {
        let server = try NATSServerProcess()
        let (subscriber, inbox) = try makeClient(url: server.url, name: "sub")
        let (publisher, _) = try makeClient(url: server.url, name: "pub")
        defer {
            subscriber.stop()
            publisher.stop()
        }
        subscriber.subscribe("many.>")
        subscriber.start()
        publisher.start()
        XCTAssertTrue(publisher.waitUntilConnected(timeoutMs: 5_000))
        XCTAssertTrue(try waitUntil(seconds: 5) { try server.subscriptions(ofClientNamed: "sub") == ["many.>"] })
        let threads = 4
        let perThread = 2_000
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for index in 0..<perThread {
                let result = publisher.publish(subject: "many.\(thread)", payload: Array("\(index)".utf8))
                XCTAssertEqual(result, .queued)
            }
        }
        XCTAssertTrue(waitUntil(seconds: 10) { inbox.count == threads * perThread }, "got \(inbox.count)")
        for thread in 0..<threads {
            XCTAssertEqual(inbox.payloads(on: "many.\(thread)"), (0..<perThread).map { Array("\($0)".utf8) }, "per-publisher order kept")
        }
    }
}
