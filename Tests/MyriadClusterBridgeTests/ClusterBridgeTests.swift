import NATSTestSupport
import MyriadTestSupport
import Foundation
import Glibc
import Logging
import Myriad
import MyriadCluster
import MyriadClusterBridge
import Testing
import WebSocketCodec

/// Each connection subscribes to the topic named by its `topic` query parameter
/// (percent-decoded, so any bytes: spaces, tabs, NATS wildcards) and publishes what it sends there.
struct QueryTopicHandler: WebSocketHandler {
    typealias ConnectionState = String

    mutating func upgrade(_ request: UpgradeRequestHead, ticket: UpgradeTicket) -> UpgradeDecision<String> {
        .accept(request.queryParameter("topic") ?? request.path)
    }

    mutating func onOpen(_ connection: Connection) { connection.subscribe(to: connection.state) }

    mutating func onMessage(_ connection: Connection, kind: MessageKind, payload: UnsafeRawBufferPointer) {
        _ = kind == .text
            ? connection.context.publish(to: connection.state, text: payload)
            : connection.context.publish(to: connection.state, binary: payload)
    }
}

/// A node in this process: an engine on a free port with a bridge to `natsURL`.
final class InProcessNode: Sendable {
    let engine: Engine<QueryTopicHandler>
    let bridge: ClusterBridge

    init(natsURL: String, name: String) throws {
        var config = Config()
        config.host = "127.0.0.1"
        config.port = 0
        config.workers = 2
        config.logLevel = .warning
        config.cluster.url = natsURL
        try config.validate()
        var logger = Logger(label: "cluster-test-\(name)") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .warning
        engine = Engine(config: config, logger: logger) { _ in QueryTopicHandler() }
        let configuration = try #require(try ClusterBridgeConfiguration.from(config, name: name))
        bridge = try ClusterBridge(configuration: configuration, engine: engine.handle, logger: logger)
        engine.attachCluster(bridge)
        try engine.start()
        bridge.start()
        #expect(bridge.waitUntilConnected(timeoutMs: 5_000))
    }

    var port: UInt16 { engine.port }

    func client(topic: String) throws -> RawClient {
        let client = try RawClient(port: port)
        try client.upgrade(path: "/?topic=" + Self.percentEncoded(topic))
        return client
    }

    static func percentEncoded(_ text: String) -> String {
        text.utf8.map { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                ? String(UnicodeScalar(byte)) : String(format: "%%%02X", byte)
        }.joined()
    }

    func stop() {
        engine.shutdown()
        engine.wait()
        bridge.stop()
    }

    deinit { stop() }
}

@Suite(.serialized)
struct ClusterBridgeTests {
    @Test func whitespaceControlAndNonASCIITopicsAreOneTopicEach() throws {
        let nats = try NATSServerProcess()
        let a = try InProcessNode(natsURL: nats.url, name: "a")
        let b = try InProcessNode(natsURL: nats.url, name: "b")
        let topics = ["room 1\t*.>%x é", "room 1", "room 1\t*", "room%201", ""]
        var clients: [String: [RawClient]] = [:]
        for topic in topics { clients[topic] = [try a.client(topic: topic), try b.client(topic: topic)] }
        let subjects = topics.map { try! ClusterSubject().subject(forTopic: $0)! }
        #expect(subjects.contains("myriad.room%201%09%2A%2E%3E%25x%20%C3%A9"))
        #expect(try waitUntil(seconds: 10) { a.bridge.subscribedSubjects == Set(subjects) && b.bridge.subscribedSubjects == Set(subjects) })
        #expect(try waitUntil(seconds: 10) {
            try nats.subscriptions(ofClientNamed: "a") == subjects.sorted() && nats.subscriptions(ofClientNamed: "b") == subjects.sorted()
        })
        for (index, topic) in topics.enumerated() { try clients[topic]![index % 2].sendText("to [\(topic)]") }
        for topic in topics {
            for client in clients[topic]! {
                #expect(try client.receiveExactly(1, quiet: 0).map { String(decoding: $0.payload, as: UTF8.self) } == ["to [\(topic)]"])
            }
        }
        #expect(try extraMessages(topics.flatMap { clients[$0]! }) == [:])
    }

    @Test func handlePublishesAreExportedAndImportsAreNotExportedAgain() throws {
        let nats = try NATSServerProcess()
        let a = try InProcessNode(natsURL: nats.url, name: "a")
        let b = try InProcessNode(natsURL: nats.url, name: "b")
        let onA = try a.client(topic: "news")
        let onB = try b.client(topic: "news")
        #expect(waitUntil(seconds: 10) { a.bridge.subscribedSubjects == ["myriad.news"] && b.bridge.subscribedSubjects == ["myriad.news"] })
        // A bridge that has sent its SUB is not yet a subscriber: nats-server orders nothing
        // across connections, so a PUB from node a may overtake node b's SUB (NATS core is
        // at-most-once). Publish only once the server itself lists both interests.
        #expect(try waitUntil(seconds: 10) {
            try nats.subscriptions(ofClientNamed: "a") == ["myriad.news"] && nats.subscriptions(ofClientNamed: "b") == ["myriad.news"]
        })
        // From a thread that is not a worker: the handle.
        #expect(a.engine.handle.publish(to: "news", text: "from a's handle") == .enqueued)
        #expect(([1, 2, 3] as [UInt8]).withUnsafeBytes { b.engine.handle.publish(to: "news", binary: $0) } == .enqueued)
        for client in [onA, onB] {
            let got = try client.receiveExactly(2, quiet: 0)
            #expect(got.contains { $0.opcode == .text && $0.payload == Array("from a's handle".utf8) })
            #expect(got.contains { $0.opcode == .binary && $0.payload == [1, 2, 3] })
        }
        // A publish to a topic nobody on this node listens to is still exported (another node may).
        let remoteOnly = try b.client(topic: "only-on-b")
        #expect(waitUntil(seconds: 10) { b.bridge.subscribedSubjects.contains("myriad.only-on-b") })
        #expect(try waitUntil(seconds: 10) { try nats.subscriptions(ofClientNamed: "b")?.contains("myriad.only-on-b") == true })
        #expect(a.engine.handle.publish(to: "only-on-b", text: "across") == .enqueued)
        #expect(try remoteOnly.receiveExactly(1, quiet: 0).map(\.payload) == [Array("across".utf8)])
        #expect(try extraMessages([onA, onB, remoteOnly]) == [:])

        // Each node exported its own publishes once, and none of what it imported.
        #expect(waitUntil(seconds: 5) { a.bridge.stats().client.published == 2 && b.bridge.stats().client.published == 1 })
        let statsA = a.bridge.stats()
        let statsB = b.bridge.stats()
        #expect(statsA.exported == 2 && statsA.imported == 1 && statsA.client.received == 1)
        #expect(statsB.exported == 1 && statsB.imported == 2 && statsB.client.received == 2)
        #expect(try nats.messagesIn() == 3)
    }

    @Test func messagesFromOtherNATSClientsInTheFormatReachSubscribersAndOthersAreCounted() throws {
        let nats = try NATSServerProcess()
        let a = try InProcessNode(natsURL: nats.url, name: "a")
        let client = try a.client(topic: "alerts")
        #expect(waitUntil(seconds: 10) { a.bridge.subscribedSubjects == ["myriad.alerts"] })
        #expect(try waitUntil(seconds: 10) { try nats.subscriptions(ofClientNamed: "a") == ["myriad.alerts"] })
        var configuration = try NATSClientConfiguration(url: nats.url)
        configuration.name = "backend"
        let backend = try NATSClient(configuration: configuration) { _, _ in }
        backend.start()
        defer { backend.stop() }
        #expect(backend.waitUntilConnected(timeoutMs: 5_000))
        backend.publish(subject: "myriad.alerts", payload: [0x01] + Array("text from a backend".utf8))
        backend.publish(subject: "myriad.alerts", payload: [0x02, 0xFF, 0x00])
        backend.publish(subject: "myriad.alerts", payload: [0x01, 0xFF])  // not UTF-8
        backend.publish(subject: "myriad.alerts", payload: [0x07] + Array("?".utf8))  // no such kind
        backend.publish(subject: "myriad.alerts", payload: [])  // no kind byte
        let got = try client.receiveExactly(2)
        #expect(got.map(\.opcode) == [.text, .binary])
        #expect(got.map(\.payload) == [Array("text from a backend".utf8), [0xFF, 0x00]])
        #expect(waitUntil(seconds: 5) { a.bridge.stats().importMalformed == 3 })
        #expect(a.bridge.stats().imported == 2)
    }

    @Test func interestSettlesToTheRegistryWhateverOrderWorkersReportIn() throws {
        let nats = try NATSServerProcess()
        let a = try InProcessNode(natsURL: nats.url, name: "a")
        // Two threads open and close connections to one topic as fast as they can: each open
        // may be the node's first subscriber and each close its last, on either worker.
        let rounds = 150
        let failures = NSLock()
        nonisolated(unsafe) var errors: [String] = []
        let done = DispatchGroup()
        for _ in 0..<2 {
            done.enter()
            Thread.detachNewThread {
                for _ in 0..<rounds {
                    do {
                        let client = try a.client(topic: "churn")
                        client.close()
                    } catch {
                        failures.withLock { errors.append("\(error)") }
                    }
                }
                done.leave()
            }
        }
        #expect(done.wait(timeout: .now() + 60) == .success)
        #expect(failures.withLock { errors }.isEmpty)
        // Everyone left: no interest, on the node and on the server.
        #expect(waitUntil(seconds: 10) { !a.engine.handle.nodeHasSubscribers("churn") && a.bridge.subscribedSubjects.isEmpty })
        #expect(try waitUntil(seconds: 10) { try nats.subscriptions(ofClientNamed: "a") == [] })
        // One stays: interest, once.
        let stays = try a.client(topic: "churn")
        #expect(waitUntil(seconds: 10) { a.bridge.subscribedSubjects == ["myriad.churn"] })
        #expect(try waitUntil(seconds: 10) { try nats.subscriptions(ofClientNamed: "a") == ["myriad.churn"] })
        stays.close()
    }

    @Test func theWireFormat() {
        for (payload, expected) in [([UInt8]([0x01]) + Array("é".utf8), MessageKind.text), ([0x02, 0xC3], .binary), ([0x01], .text), ([0x02], .binary)] {
            payload.withUnsafeBytes { raw in
                let decoded = ClusterWireFormat.decode(raw)
                #expect(decoded?.kind == expected)
                #expect(decoded.map { Array($0.message) } == Array(payload.dropFirst()))
            }
        }
        for bad in [[], [0x00], [0x03, 0x41], [0x01, 0xC3], [0x01, 0xED, 0xA0, 0x80], [0x09]] as [[UInt8]] {
            bad.withUnsafeBytes { #expect(ClusterWireFormat.decode($0) == nil, "\(bad)") }
        }
        #expect(ClusterWireFormat.tag(for: .text) == 0x01 && ClusterWireFormat.tag(for: .binary) == 0x02)
    }
}
