import Foundation
import Glibc
import MyriadTestSupport
import Synchronization
import Testing
import WebSocketCodec
@testable import Myriad

/// Connects `count` clients to `path` and upgrades them; throws when one is refused.
func connectClients(_ count: Int, port: UInt16, path: String = "/room") throws -> [RawClient] {
    var clients: [RawClient] = []
    for index in 0..<count {
        let client = try RawClient(port: port, source: "127.0.0.\(2 + index % 8)")
        try client.upgrade(path: path)
        clients.append(client)
    }
    return clients
}

/// IDs of open connections, as a handler saw them: what tests give the engine handle.
final class OpenConnections: Sendable {
    private let ids = Mutex<[ConnectionID]>([])
    func add(_ id: ConnectionID) { ids.withLock { $0.append(id) } }
    func remove(_ id: ConnectionID) { ids.withLock { $0.removeAll { $0 == id } } }
    var all: [ConnectionID] { ids.withLock { $0 } }

    func waitFor(count: Int, seconds: Double = 10) -> [ConnectionID] {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let now = all
            if now.count >= count { return now }
            usleep(5000)
        }
        return all
    }
}

/// Records the IDs of open connections; subscribes none; echoes "echo:" messages.
struct RecordingHandler: WebSocketHandler {
    typealias ConnectionState = Void
    let open: OpenConnections

    mutating func onOpen(_ connection: Connection) { open.add(connection.id) }
    mutating func onClose(_ connection: Connection, event: CloseEvent) { open.remove(connection.id) }
    mutating func onMessage(_ connection: Connection, kind: MessageKind, payload: UnsafeRawBufferPointer) {
        _ = connection.send(text: payload)
    }
}

extension Integration {
@Suite struct TopicsTests {
    /// The broadcast application with 3 workers: clients land on every worker (SO_REUSEPORT),
    /// and every message reaches every client of the path, the sender included, in order.
    @Test(arguments: allBackends)
    func aPublishReachesSubscribersOnEveryWorker(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend, workers: 3) { _ in BroadcastHandler() }
        defer { server.stop() }
        let clients = try connectClients(45, port: server.port)
        #expect(server.waitFor { $0[.subscriptions] == 45 })
        let perWorker = server.engine.workerStats().map { $0[.open] }
        #expect(perWorker.allSatisfy { $0 > 0 }, "every worker should hold some of the clients: \(perWorker)")
        for (index, client) in clients.enumerated() { try client.sendText("m\(index)") }
        for client in clients {
            var seen = Set<String>()
            for _ in 0..<clients.count {
                let message = try #require(try client.readMessage(timeout: 10))
                seen.insert(String(decoding: message.payload, as: UTF8.self))
            }
            #expect(seen == Set((0..<clients.count).map { "m\($0)" }))
        }
        let stats = server.stats()
        #expect(stats[.deliveries] == 45 * 45)
        #expect(stats[.publishes] == 45)
        #expect(stats[.publishesReceived] > 0, "some publishes crossed workers: \(stats.fields)")
        // Other paths are other topics.
        let other = try RawClient(port: server.port)
        try other.upgrade(path: "/elsewhere")
        try other.sendText("alone")
        #expect(try other.readMessage()?.payload == Array("alone".utf8))
        for client in clients { #expect(throws: ClientError.self) { try client.readMessage(timeout: 0.2) } }
    }

    /// Python websockets and Node ws clients against the broadcast app on 2 workers.
    @Test(arguments: allBackends)
    func realClientsSeeEveryBroadcastInOrder(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend, workers: 2) { _ in BroadcastHandler() }
        defer { server.stop() }
        let python = try ExternalClient.run(ExternalClient.python, [
            ExternalClient.clientsDirectory.appendingPathComponent("broadcast_check.py").path, String(server.port), "20", "5",
        ])
        #expect(python.status == 0, "\(python.output)")
        let node = try ExternalClient.run("/usr/bin/node", [
            ExternalClient.clientsDirectory.appendingPathComponent("broadcast_check.js").path, String(server.port), "20", "5",
        ], environment: ["NODE_PATH": "/usr/share/nodejs"])
        #expect(node.status == 0, "\(node.output)")
    }

    /// Publishes from a thread that is not a worker, and from async code, reach subscribers of
    /// every worker, in the order each publisher made them.
    @Test(arguments: allBackends)
    func publishesFromAForeignThreadAndFromAsyncCode(backend: BackendChoice) async throws {
        let server = try TestServer(backend: backend, workers: 2) { _ in BroadcastHandler() }
        defer { server.stop() }
        let clients = try connectClients(10, port: server.port, path: "/news")
        #expect(server.waitFor { $0[.subscriptions] == 10 })
        let handle = server.engine.handle
        let thread = Thread {
            for index in 0..<100 { _ = handle.publish(to: "/news", text: "thread \(index)") }
        }
        thread.start()
        while !thread.isFinished { usleep(1000) }
        for index in 0..<100 {
            let result = await handle.publish(to: "/news", text: "async \(index)", waitingUpTo: .seconds(5))
            #expect(result == .enqueued)
        }
        for client in clients {
            var thread = 0, async = 0
            for _ in 0..<200 {
                let text = String(decoding: try #require(try client.readMessage(timeout: 10)).payload, as: UTF8.self)
                if text.hasPrefix("thread ") {
                    #expect(text == "thread \(thread)")
                    thread += 1
                } else {
                    #expect(text == "async \(async)")
                    async += 1
                }
            }
            #expect(thread == 100 && async == 100)
        }
    }

    /// A subscribe made through the handle is applied before a publish made after it by the
    /// same thread, on whichever worker the connection lives.
    @Test(arguments: allBackends)
    func aHandleSubscribeIsInPlaceForTheNextPublish(backend: BackendChoice) throws {
        let open = OpenConnections()
        let server = try TestServer(backend: backend, workers: 3) { _ in RecordingHandler(open: open) }
        defer { server.stop() }
        let clients = try connectClients(12, port: server.port)
        let ids = open.waitFor(count: 12)
        #expect(ids.count == 12)
        let handle = server.engine.handle
        for (round, id) in ids.enumerated() {
            #expect(handle.subscribe(id, to: "round") == .enqueued)
            #expect(handle.publish(to: "round", text: "after \(round)") == .enqueued)
        }
        // Client k subscribed in round r(k) and must see exactly the publishes from r(k) on.
        for client in clients {
            var first: Int?
            var got: [Int] = []
            while let message = try? client.readMessage(timeout: 0.5) {
                let round = Int(String(decoding: message.payload, as: UTF8.self).dropFirst(6))!
                if first == nil { first = round }
                got.append(round)
            }
            let start = try #require(first, "a subscriber got nothing")
            #expect(got == Array(start..<12))
        }
        #expect(Set(clients.indices).count == 12)
    }

    /// `excluding` keeps a publish from its sender.
    @Test func excludingTheSender() throws {
        struct Chat: WebSocketHandler {
            typealias ConnectionState = Void
            mutating func onOpen(_ connection: Connection) { connection.subscribe(to: "chat") }
            mutating func onMessage(_ connection: Connection, kind: MessageKind, payload: UnsafeRawBufferPointer) {
                connection.context.publish(to: "chat", text: payload, excluding: connection.id)
            }
        }
        let server = try TestServer(workers: 2) { _ in Chat() }
        defer { server.stop() }
        let clients = try connectClients(6, port: server.port)
        #expect(server.waitFor { $0[.subscriptions] == 6 })
        try clients[0].sendText("hello others")
        for client in clients.dropFirst() { #expect(try client.readMessage()?.payload == Array("hello others".utf8)) }
        #expect(throws: ClientError.self) { try clients[0].readMessage(timeout: 0.3) }
    }

    /// A subscriber that stops reading is closed as a slow consumer when its queue passes
    /// MYRIAD_MAX_QUEUED_BYTES, and the others still get every message, in order.
    @Test(arguments: allBackends)
    func aSlowSubscriberIsClosedAndTheOthersGetEverything(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend, workers: 2) { config in
            config.maxQueuedBytes = 64 << 10
        } handler: { _ in BroadcastHandler() }
        defer { server.stop() }
        let slow = try RawClient(port: server.port, receiveBufferBytes: 4096)
        try slow.upgrade(path: "/feed")
        let readers = try connectClients(4, port: server.port, path: "/feed")
        #expect(server.waitFor { $0[.subscriptions] == 5 })
        // 3,000 x 4 KiB: far more than the kernel buffers of the slow subscriber's socket.
        let count = 3000
        let received = ReaderCounts(readers.count)
        let threads = readers.enumerated().map { reader, client in
            let box = UncheckedBox(client)
            let thread = Thread {
                while received.value(reader) < count, let message = try? box.value.readMessage(timeout: 20) {
                    guard message.payload.starts(with: Array("\(received.value(reader)) ".utf8)) else { return }
                    received.increment(reader)
                }
            }
            thread.start()
            return thread
        }
        let payload = String(repeating: "p", count: 4000)
        let handle = server.engine.handle
        for index in 0..<count {
            // Paced to the readers (at most 8 messages, 32 KiB, ahead of the slowest), so only
            // the subscriber that reads nothing falls behind.
            while received.all.min()! < index - 8 { usleep(200) }
            while handle.publish(to: "/feed", text: "\(index) \(payload)") == .queueFull { usleep(500) }
        }
        for thread in threads { while !thread.isFinished { usleep(5000) } }
        #expect(received.all == [count, count, count, count])
        #expect(server.waitFor { $0.closes(.slowConsumer) == 1 }, "\(server.stats().fields)")
        #expect(server.waitFor { $0[.subscriptions] == 4 })
    }

    /// Subscribers that vanish (RST) while publishes stream: the server stays up, their
    /// subscriptions go with them, everyone else gets everything.
    @Test(arguments: allBackends)
    func subscribersClosingMidPublish(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend, workers: 2) { _ in BroadcastHandler() }
        defer { server.stop() }
        var clients = try connectClients(20, port: server.port, path: "/churn")
        #expect(server.waitFor { $0[.subscriptions] == 20 })
        let handle = server.engine.handle
        let leaving = Array(clients[10...])
        clients.removeLast(10)
        for index in 0..<200 {
            while handle.publish(to: "/churn", text: "n\(index)") == .queueFull { usleep(1000) }
            if index % 20 == 10 { leaving[index / 20].reset() }
        }
        for client in clients {
            for index in 0..<200 { #expect(try client.readMessage(timeout: 10)?.payload == Array("n\(index)".utf8)) }
        }
        #expect(server.waitFor { $0[.subscriptions] == 10 && $0[.open] == 10 }, "\(server.stats().fields)")
        try assertStillEchoingBroadcast(server)
    }

    /// An ID kept after its connection closed stays dead when its slot serves a new
    /// connection: a send to it reaches nobody and is counted.
    @Test(arguments: allBackends)
    func aKeptIDStaysDeadAfterItsSlotIsReused(backend: BackendChoice) throws {
        let open = OpenConnections()
        let server = try TestServer(backend: backend, workers: 1) { _ in RecordingHandler(open: open) }
        defer { server.stop() }
        let first = try RawClient(port: server.port)
        try first.upgrade()
        let kept = try #require(open.waitFor(count: 1).first)
        try first.sendClose()
        #expect(first.waitForClose(timeout: 5))
        #expect(server.waitFor { $0[.open] == 0 })
        let second = try RawClient(port: server.port)
        try second.upgrade()
        let now = try #require(open.waitFor(count: 1).first)
        #expect(now.slot == kept.slot, "the slab reuses the most recently freed slot")
        #expect(now.generation > kept.generation)
        let handle = server.engine.handle
        #expect(handle.send(to: kept, text: "for the old one") == .enqueued)
        #expect(server.waitFor { $0[.forwardedToClosed] == 1 })
        #expect(handle.send(to: now, text: "for the new one") == .enqueued)
        #expect(try second.readMessage()?.payload == Array("for the new one".utf8))
        #expect(throws: ClientError.self) { try second.readMessage(timeout: 0.3) }
    }

    /// A full mailbox is reported to the caller and counted; nothing is dropped silently.
    @Test func aFullMailboxIsReportedNotDropped() throws {
        struct Blocking: WebSocketHandler {
            typealias ConnectionState = Void
            mutating func onMessage(_ connection: Connection, kind: MessageKind, payload: UnsafeRawBufferPointer) {
                if payload.elementsEqual("block".utf8) { usleep(300_000) }  // holds the worker
                _ = connection.send(text: payload)
            }
        }
        let server = try TestServer(workers: 1) { $0.mailboxCapacity = 16 } handler: { _ in Blocking() }
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.upgrade()
        let id = ConnectionID(worker: 0, slot: 0, generation: 0)
        try client.sendText("block")
        usleep(50_000)
        var enqueued = 0, full = 0
        for index in 0..<100 {
            switch server.engine.handle.send(to: id, text: "m\(index)") {
            case .enqueued: enqueued += 1
            case .queueFull: full += 1
            default: Issue.record("unexpected result")
            }
        }
        #expect(enqueued == 16 && full == 84)
        #expect(try client.readMessage()?.payload == Array("block".utf8))
        for index in 0..<16 { #expect(try client.readMessage()?.payload == Array("m\(index)".utf8)) }
        #expect(server.waitFor { $0[.mailboxRefused] == 84 })
        #expect(server.engine.shared.handleQueueFull.load(ordering: .relaxed) == 84)
    }
}
}

/// Per-reader message counts, shared with reader threads.
final class ReaderCounts: Sendable {
    private let counts: Mutex<[Int]>
    init(_ readers: Int) { counts = Mutex([Int](repeating: 0, count: readers)) }
    func value(_ reader: Int) -> Int { counts.withLock { $0[reader] } }
    func increment(_ reader: Int) { counts.withLock { $0[reader] += 1 } }
    var all: [Int] { counts.withLock { $0 } }
}

/// Hands a non-Sendable test object to one other thread, which alone uses it from then on.
final class UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// The broadcast server still serves a fresh path.
func assertStillEchoingBroadcast(_ server: TestServer<BroadcastHandler>) throws {
    let client = try RawClient(port: server.port)
    try client.upgrade(path: "/check-\(UInt32.random(in: 0...UInt32.max))")
    try client.sendText("still here")
    #expect(try client.readMessage()?.payload == Array("still here".utf8))
}
