import Foundation
import Glibc
import MyriadTestSupport
import Synchronization
import Testing
import WebSocketCodec
@testable import Myriad

/// What an upgrade hook saw, copied out of the request.
struct SeenRequest: Sendable {
    var path: String
    var target: String
    var room: String?
    var missing: String?
    var encoded: String?
    var custom: [String]
    var cookie: String?
    var origin: String?
    var subprotocols: [String]
    var peer: PeerAddress?
}

/// Upgrades decided by the request: `/refuse` 401 with a body, `/later` pending (tickets
/// collected for the test), `/headers` accepted with extra headers; the rest accepted, the
/// chosen subprotocol being the first offered.
struct DecidingHandler: WebSocketHandler {
    typealias ConnectionState = String
    let log: UpgradeLog

    mutating func upgrade(_ request: UpgradeRequestHead, ticket: UpgradeTicket) -> UpgradeDecision<String> {
        log.seen.withLock {
            $0.append(SeenRequest(path: request.path, target: request.target, room: request.queryParameter("room"),
                                  missing: request.queryParameter("nope"), encoded: request.queryParameter("q"),
                                  custom: request.headers("x-custom"), cookie: request.cookie("session"),
                                  origin: request.origin, subprotocols: request.offeredSubprotocols, peer: request.peerAddress))
        }
        switch request.path {
        case "/refuse": return .refuse(.unauthorized, body: "token please")
        case "/later":
            log.tickets.withLock { $0.append(ticket) }
            return .pending
        case "/headers": return .accept("with headers", headers: [("X-Room", "lobby"), ("Bad Name", "x"), ("X-Inject", "a\r\nb")])
        default: return .accept("state for \(request.path)", subprotocol: request.offeredSubprotocols.first)
        }
    }

    mutating func onMessage(_ connection: Connection, kind: MessageKind, payload: UnsafeRawBufferPointer) {
        // Answers with the state the upgrade set (and changes it: state is mutable per connection).
        connection.send(text: connection.state)
        connection.state += "!"
    }
}

/// Counts per-connection states made and dropped.
final class StateCounter: Sendable {
    let made = Atomic<Int>(0)
    let dropped = Atomic<Int>(0)
}

final class TrackedState: @unchecked Sendable {
    let counter: StateCounter
    var messages = 0
    init(_ counter: StateCounter) {
        self.counter = counter
        counter.made.add(1, ordering: .relaxed)
    }
    deinit { counter.dropped.add(1, ordering: .relaxed) }
}

struct TrackingHandler: WebSocketHandler {
    typealias ConnectionState = TrackedState
    let counter: StateCounter
    let log: UpgradeLog

    mutating func upgrade(_ request: UpgradeRequestHead, ticket: UpgradeTicket) -> UpgradeDecision<TrackedState> {
        if request.path == "/later" {
            log.tickets.withLock { $0.append(ticket) }
            return .pending
        }
        return request.path == "/refuse" ? .refuse(.forbidden) : .accept(TrackedState(counter))
    }

    mutating func onMessage(_ connection: Connection, kind: MessageKind, payload: UnsafeRawBufferPointer) {
        connection.state.messages += 1
        if payload.elementsEqual("close".utf8) { connection.close() } else { connection.send(text: "\(connection.state.messages)") }
    }
}

extension Integration {
@Suite struct UpgradeTests {
    static func makeServer(_ backend: BackendChoice, configure: (inout Config) -> Void = { _ in })
        throws -> (TestServer<DecidingHandler>, UpgradeLog)
    {
        let log = UpgradeLog()
        let server = try TestServer(backend: backend, workers: 2, configure: configure) { _ in DecidingHandler(log: log) }
        return (server, log)
    }

    /// The hook sees the path, the query, repeated headers, cookies, Origin, subprotocols and
    /// the peer's address; the state it sets is what callbacks read and change.
    @Test(arguments: allBackends)
    func theHookSeesTheWholeRequest(backend: BackendChoice) throws {
        let (server, log) = try Self.makeServer(backend)
        defer { server.stop() }
        let client = try RawClient(port: server.port, source: "127.0.0.5")
        let head = try client.upgrade(path: "/chat?room=lobby&q=a%20b+c%21", extra:
            "X-Custom: one\r\nx-custom: two\r\nCookie: theme=dark; session=abc123\r\nOrigin: https://chat.example\r\n"
            + "Sec-WebSocket-Protocol: chat.v2, chat.v1\r\n")
        #expect(head.contains("\r\nSec-WebSocket-Protocol: chat.v2\r\n"))
        let request = try #require(log.seen.withLock { $0.first })
        #expect(request.path == "/chat" && request.target == "/chat?room=lobby&q=a%20b+c%21")
        #expect(request.room == "lobby" && request.missing == nil && request.encoded == "a b c!")
        #expect(request.custom == ["one", "two"])
        #expect(request.cookie == "abc123")
        #expect(request.origin == "https://chat.example")
        #expect(request.subprotocols == ["chat.v2", "chat.v1"])
        let peer = try #require(request.peer, "no peer address (\(backend))")
        #expect(peer.host == "127.0.0.5")
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(client.fd, $0, &length) } }
        #expect(peer.port == UInt16(bigEndian: local.sin_port))
        try client.sendText("a")
        #expect(try client.readMessage()?.payload == Array("state for /chat".utf8))
        try client.sendText("b")
        #expect(try client.readMessage()?.payload == Array("state for /chat!".utf8))
    }

    @Test(arguments: allBackends)
    func refusedWithAStatusAndABody(backend: BackendChoice) throws {
        let (server, _) = try Self.makeServer(backend)
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.send(RawClient.upgradeRequest(path: "/refuse"))
        let response = String(decoding: try client.readToEnd(timeout: 5), as: UTF8.self)
        #expect(response.hasPrefix("HTTP/1.1 401 Unauthorized\r\n"), "\(response)")
        #expect(response.contains("Content-Length: 12\r\n") && response.hasSuffix("\r\n\r\ntoken please"))
        #expect(server.waitFor { $0.closes(.upgradeRefused) == 1 })
    }

    /// Extra response headers are sent; names that are not tokens and values with CR or LF
    /// (header injection) are left out and counted.
    @Test func extraResponseHeadersAreCheckedAndSent() throws {
        let (server, _) = try Self.makeServer(.ioUring)
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        let head = try client.upgrade(path: "/headers")
        #expect(head.contains("\r\nX-Room: lobby\r\n"))
        #expect(!head.contains("Bad Name") && !head.contains("X-Inject"))
        #expect(server.waitFor { $0[.badUpgradeHeaders] == 2 })
    }

    /// Decisions made later from another thread: accepted (with bytes the client sent early
    /// kept for after), refused, never made (the handshake timeout closes it), and made after
    /// the client left (dropped, counted).
    @Test(arguments: allBackends)
    func deferredUpgrades(backend: BackendChoice) throws {
        let (server, log) = try Self.makeServer(backend) { $0.handshakeTimeoutMilliseconds = 1500 }
        defer { server.stop() }
        func pendingClient() throws -> (RawClient, UpgradeTicket) {
            let before = log.tickets.withLock { $0.count }
            let client = try RawClient(port: server.port)
            try client.send(RawClient.upgradeRequest(path: "/later"))
            for _ in 0..<500 where log.tickets.withLock({ $0.count }) == before { usleep(2000) }
            return (client, try #require(log.tickets.withLock { $0.count > before ? $0.last : nil }))
        }
        let handle = server.engine.handle
        // Accepted, with a frame the client sent before the 101 (kept, then delivered).
        let (accepted, acceptTicket) = try pendingClient()
        try accepted.sendText("early")
        usleep(50_000)
        #expect(handle.completeUpgrade(acceptTicket, UpgradeDecision<String>.accept("decided later")) == .enqueued)
        #expect(try accepted.readHead(timeout: 5).hasPrefix("HTTP/1.1 101 "))
        #expect(try accepted.readMessage()?.payload == Array("decided later".utf8))
        // Refused.
        let (refused, refuseTicket) = try pendingClient()
        #expect(handle.completeUpgrade(refuseTicket, UpgradeDecision<String>.refuse(.tooManyRequests, body: "later")) == .enqueued)
        #expect(String(decoding: try refused.readToEnd(timeout: 5), as: UTF8.self).hasPrefix("HTTP/1.1 429 Too Many Requests"))
        // Never decided: closed at the handshake timeout; a decision after that is stale.
        let (forgotten, forgottenTicket) = try pendingClient()
        #expect(forgotten.waitForClose(timeout: 5))
        #expect(server.waitFor { $0.closes(.handshakeTimeout) == 1 })
        #expect(handle.completeUpgrade(forgottenTicket, UpgradeDecision<String>.accept("too late")) == .enqueued)
        #expect(server.waitFor { $0[.upgradesStale] == 1 })
        // The client leaves while the decision is pending.
        let (leaving, leavingTicket) = try pendingClient()
        leaving.close()
        #expect(server.waitFor { $0.closes(.peerEOF) >= 1 })
        #expect(handle.completeUpgrade(leavingTicket, UpgradeDecision<String>.accept("gone")) == .enqueued)
        #expect(server.waitFor { $0[.upgradesStale] == 2 })
        #expect(server.stats()[.upgradesPending] == 4)
    }

    /// `myriad serve`'s Origin allow-list: other origins get 403, listed ones and clients that
    /// send no Origin (not browsers) are served.
    @Test(arguments: ["echo", "broadcast"])
    func anOriginOutsideTheAllowListIsRefused(app: String) throws {
        let server = try ServerProcess(environment: [
            "MYRIAD_APP": app, "MYRIAD_ALLOWED_ORIGINS": "https://good.example, https://also.example:8443",
        ])
        let evil = try RawClient(port: server.port)
        try evil.send(RawClient.upgradeRequest(path: "/x", extra: "Origin: https://evil.example\r\n"))
        #expect(String(decoding: try evil.readToEnd(timeout: 5), as: UTF8.self).hasPrefix("HTTP/1.1 403 Forbidden"))
        for origin in ["https://good.example", "https://also.example:8443", nil] as [String?] {
            let client = try RawClient(port: server.port)
            try client.upgrade(path: "/x", extra: origin.map { "Origin: \($0)\r\n" } ?? "")
            try client.sendText("hi")
            #expect(try client.readMessage()?.payload == Array("hi".utf8))
        }
    }

    /// Every state made is dropped exactly once: after onClose for opened connections, with
    /// the decision for upgrades that never opened.
    @Test(arguments: allBackends)
    func stateIsDroppedExactlyOnce(backend: BackendChoice) throws {
        let counter = StateCounter()
        let log = UpgradeLog()
        let server = try TestServer(backend: backend, workers: 2) { _ in TrackingHandler(counter: counter, log: log) }
        defer { server.stop() }
        var clients = try connectClients(30, port: server.port, path: "/x")
        for client in clients { try client.sendText("count") }
        for client in clients { #expect(try client.readMessage()?.payload == Array("1".utf8)) }
        #expect(counter.made.load(ordering: .relaxed) == 30 && counter.dropped.load(ordering: .relaxed) == 0)
        // Ten close cleanly, ten ask the server to close, ten vanish.
        for client in clients[0..<10] { try client.sendClose() }
        for client in clients[10..<20] { try client.sendText("close") }
        for client in clients[20..<30] { client.reset() }
        for client in clients[0..<20] {
            while let message = try? client.readMessage(timeout: 2), message.opcode != .close {}
            try? client.sendClose()
        }
        #expect(server.waitFor { $0[.open] == 0 }, "\(server.stats().fields)")
        #expect(counter.dropped.load(ordering: .relaxed) == 30)
        // A state in a decision that comes too late is dropped with it, once.
        let late = try RawClient(port: server.port)
        try late.send(RawClient.upgradeRequest(path: "/later"))
        for _ in 0..<500 where log.tickets.withLock({ $0.isEmpty }) { usleep(2000) }
        let ticket = try #require(log.tickets.withLock { $0.first })
        late.close()
        #expect(server.waitFor { $0[.open] == 0 })
        #expect(server.engine.handle.completeUpgrade(ticket, UpgradeDecision<TrackedState>.accept(TrackedState(counter))) == .enqueued)
        #expect(server.waitFor { $0[.upgradesStale] == 1 })
        #expect(counter.made.load(ordering: .relaxed) == 31)
        for _ in 0..<100 where counter.dropped.load(ordering: .relaxed) < 31 { usleep(10_000) }
        #expect(counter.dropped.load(ordering: .relaxed) == 31)
        clients.removeAll()
    }
}
}

/// What upgrade hooks saw and the tickets of pending upgrades, shared with the test.
final class UpgradeLog: Sendable {
    let seen = Mutex<[SeenRequest]>([])
    let tickets = Mutex<[UpgradeTicket]>([])
}
