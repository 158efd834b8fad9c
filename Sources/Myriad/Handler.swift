import WebSocketCodec

/// What an application implements to serve WebSocket connections.
///
/// Each worker thread owns one handler instance (made by the factory given to `Engine`) and
/// calls it only from that thread, so a handler needs no locks. Calls are specialised for the
/// concrete type: no existential, no dynamic dispatch per message. Callbacks must not block:
/// they run on the event loop. To act from elsewhere (another thread, async code, another
/// worker's connection) use `EngineHandle`.
///
/// Borrowed bytes (the upgrade request, `payload`, `reason`) are valid only during the call;
/// copy what must outlive it.
public protocol WebSocketHandler {
    /// What the application keeps per connection: set when the upgrade is accepted, read and
    /// changed in callbacks through `connection.state`, and dropped exactly once, after
    /// `onClose`. `Void` (the default) costs no memory per connection. Declare it with
    /// `typealias ConnectionState = ...` (Swift cannot infer it through `Connection`).
    associatedtype ConnectionState = Void

    /// Decides an upgrade request before the 101 is sent: accept (with the connection's
    /// initial state, a subprotocol, extra response headers), refuse with an HTTP status, or
    /// `.pending` to decide later from any thread with `EngineHandle.completeUpgrade(_:_:)`
    /// and `ticket` (MYRIAD_HANDSHAKE_TIMEOUT still applies). Default (for `Void` state):
    /// accept.
    mutating func upgrade(_ request: UpgradeRequestHead, ticket: UpgradeTicket) -> UpgradeDecision<ConnectionState>

    /// The upgrade completed; `connection` can send from now on.
    mutating func onOpen(_ connection: WebSocketConnection<ConnectionState>)

    /// A whole message (fragments reassembled, text already validated as UTF-8).
    mutating func onMessage(_ connection: WebSocketConnection<ConnectionState>, kind: MessageKind, payload: UnsafeRawBufferPointer)

    /// The connection stopped being open: no more messages will arrive and sends fail. Called
    /// once for every connection that was opened; its state is dropped right after.
    mutating func onClose(_ connection: WebSocketConnection<ConnectionState>, event: CloseEvent)
}

extension WebSocketHandler {
    /// The connection handle this handler's callbacks get.
    public typealias Connection = WebSocketConnection<ConnectionState>

    public mutating func onOpen(_ connection: WebSocketConnection<ConnectionState>) {}
    public mutating func onClose(_ connection: WebSocketConnection<ConnectionState>, event: CloseEvent) {}
}

extension WebSocketHandler where ConnectionState == Void {
    public mutating func upgrade(_ request: UpgradeRequestHead, ticket: UpgradeTicket) -> UpgradeDecision<Void> {
        .accept()
    }
}

/// Text or binary.
public enum MessageKind: Sendable {
    case text
    case binary

    var opcode: Opcode { self == .text ? .text : .binary }
}

/// How a connection ended, as `onClose` reports it.
public struct CloseEvent {
    /// The peer's close code if it closed first, ours if we did, 1006 when the connection
    /// ended without a close frame.
    public var code: CloseCode
    /// The close reason that came with `code` (empty when there was none).
    public var reason: UnsafeRawBufferPointer
    /// Why the engine counts this close.
    public var cause: CloseReason
}

/// What became of a send.
public enum SendResult: Sendable, Equatable {
    /// Queued; it leaves with the worker's next flush.
    case queued
    /// Handed to the worker that owns the connection (another worker): its outcome is
    /// counted there (`forwarded_to_closed` when the connection is gone by then).
    case forwarded
    /// The connection is gone or closing: nothing was queued.
    case closed
    /// The connection's queue would pass MYRIAD_MAX_QUEUED_BYTES: it is being closed as a
    /// slow consumer and nothing was queued.
    case slowConsumer
    /// The worker's MYRIAD_BUFFER_BUDGET is used up: the connection is being closed with
    /// 1013 (try again later) and nothing was queued.
    case memoryBudget
    /// The owning worker's mailbox is full (MYRIAD_MAILBOX_CAPACITY): nothing was sent.
    case queueFull
}

/// A handle to one connection, given to the handler's callbacks: cheap to copy and to store
/// (an ID and two pointers). Use it only on the worker thread that delivered it; elsewhere use
/// `EngineHandle` with `id`. After the connection closes every call returns `.closed`.
public struct WebSocketConnection<State> {
    public let id: ConnectionID
    unowned(unsafe) let core: WorkerCore
    /// The worker's table of per-connection states, indexed by slot.
    let states: UnsafeMutablePointer<State>

    /// The state the upgrade set. The connection must be alive (it always is inside a
    /// callback about it, `onClose` included); reading it after that traps.
    public var state: State {
        get {
            precondition(hasState, "connection \(id) has no state: it closed")
            return states[Int(id.slot)]
        }
        nonmutating _modify {
            precondition(hasState, "connection \(id) has no state: it closed")
            yield &states[Int(id.slot)]
        }
    }

    /// Whether the connection still has its state (from the accepted upgrade until just
    /// after `onClose`).
    public var hasState: Bool {
        guard let connection = core.live(id) else { return false }
        return connection.pointee.flags.contains(.stateInitialized)
    }

    /// Whether messages can be sent to it.
    public var isOpen: Bool { core.live(id)?.pointee.state == .open }

    /// Bytes queued to it and not yet taken by the kernel: watch this to slow down before
    /// MYRIAD_MAX_QUEUED_BYTES closes it as a slow consumer. 0 when it is gone.
    public var queuedBytes: Int { core.live(id).map { Int(core.queuedBytes($0)) } ?? 0 }

    /// Sends a text message; `text` must be valid UTF-8.
    @discardableResult
    public func send(text: UnsafeRawBufferPointer) -> SendResult {
        core.send(to: id, opcode: .text, payload: text)
    }

    @discardableResult
    public func send(text: String) -> SendResult {
        var text = text
        return text.withUTF8 { core.send(to: id, opcode: .text, payload: UnsafeRawBufferPointer($0)) }
    }

    @discardableResult
    public func send(binary: UnsafeRawBufferPointer) -> SendResult {
        core.send(to: id, opcode: .binary, payload: binary)
    }

    /// Starts the close handshake (our close frame, then wait for the peer's).
    public func close(code: CloseCode = .normalClosure, reason: String = "") {
        var reason = reason
        reason.withUTF8 { core.close(id, code: code, reason: UnsafeRawBufferPointer($0), cause: .application) }
    }

    /// Subscribes the connection to `topic` (idempotent). Its subscriptions end with it.
    @discardableResult
    public func subscribe(to topic: String) -> SubscribeResult { core.subscribe(id, to: topic) }

    /// Ends the connection's subscription to `topic`; false when it had none.
    @discardableResult
    public func unsubscribe(from topic: String) -> Bool { core.unsubscribe(id, from: topic) }

    /// The worker that owns this connection: other connections, topics, the engine handle.
    public var context: WorkerContext<State> { WorkerContext(core: core, states: states) }
}

/// What `subscribe` did.
public enum SubscribeResult: Sendable, Equatable {
    case subscribed
    case alreadySubscribed
    /// The connection is gone or closing.
    case closed
    /// MYRIAD_MAX_SUBSCRIPTIONS is reached (counted).
    case limitReached
}

/// What became of a publish.
public enum PublishResult: Sendable, Equatable {
    /// Delivered to the subscribers of the calling worker (if any) and posted to every other
    /// worker with subscribers (or with a subscribe on its way).
    case published
    /// A worker that has subscribers could not take it (its mailbox is full): nobody got it.
    case queueFull(worker: Int)
    /// The engine is not running.
    case engineStopped
}

/// The calling worker, for what a callback does beyond its own connection: reach other
/// connections (on any worker), publish to topics, get the engine handle.
public struct WorkerContext<State> {
    unowned(unsafe) let core: WorkerCore
    let states: UnsafeMutablePointer<State>

    public var workerIndex: Int { core.index }

    /// A handle to connection `id` of this worker, which may since have closed (then every
    /// call on it returns `.closed`). For an ID of another worker, use `send(to:)` or the
    /// engine handle.
    public func connection(_ id: ConnectionID) -> WebSocketConnection<State> {
        WebSocketConnection(id: id, core: core, states: states)
    }

    /// Sends to any connection: queued at once on this worker, forwarded to its own worker
    /// otherwise.
    @discardableResult
    public func send(to id: ConnectionID, text: String) -> SendResult {
        var text = text
        return text.withUTF8 { core.send(to: id, opcode: .text, payload: UnsafeRawBufferPointer($0)) }
    }

    @discardableResult
    public func send(to id: ConnectionID, binary: UnsafeRawBufferPointer) -> SendResult {
        core.send(to: id, opcode: .binary, payload: binary)
    }

    /// Publishes to every subscriber of `topic` on every worker: encoded once, shared by
    /// reference; this worker's subscribers get it in this batch's flush, other workers'
    /// through their mailboxes. `excluding`: a connection that must not get it (the sender).
    /// With clustering on (`Engine.attachCluster`), other nodes' subscribers get it too: an
    /// accepted publish is exported once (`ClusterLink.exportPublish`).
    @discardableResult
    public func publish(to topic: String, text: String, excluding: ConnectionID? = nil) -> PublishResult {
        var text = text
        return text.withUTF8 { core.publishAndExport(to: topic, opcode: .text, payload: UnsafeRawBufferPointer($0), excluding: excluding) }
    }

    @discardableResult
    public func publish(to topic: String, text: UnsafeRawBufferPointer, excluding: ConnectionID? = nil) -> PublishResult {
        core.publishAndExport(to: topic, opcode: .text, payload: text, excluding: excluding)
    }

    @discardableResult
    public func publish(to topic: String, binary: UnsafeRawBufferPointer, excluding: ConnectionID? = nil) -> PublishResult {
        core.publishAndExport(to: topic, opcode: .binary, payload: binary, excluding: excluding)
    }

    /// Subscribers of `topic` on this worker.
    public func localSubscriberCount(of topic: String) -> Int { core.topics.subscriberCount(of: topic) }

    /// The engine's handle, for work that leaves the callback (another thread, async code).
    public var engine: EngineHandle { EngineHandle(shared: core.shared) }
}

/// The default application: every message goes back to its sender unchanged.
public struct EchoHandler: WebSocketHandler {
    public typealias ConnectionState = Void
    public let origins: OriginPolicy

    public init(origins: OriginPolicy = .any) { self.origins = origins }

    public mutating func upgrade(_ request: UpgradeRequestHead, ticket: UpgradeTicket) -> UpgradeDecision<Void> {
        origins.allows(request) ? .accept() : .refuse(.forbidden, body: "origin not allowed")
    }

    public mutating func onMessage(_ connection: Connection, kind: MessageKind, payload: UnsafeRawBufferPointer) {
        _ = kind == .text ? connection.send(text: payload) : connection.send(binary: payload)
    }
}

/// The built-in demo and benchmark of topics (`myriad serve --app broadcast`), with exactly
/// these semantics, which independent tools rely on: every connection subscribes to the topic
/// named by its request path; every message a connection sends is published to that topic and
/// reaches every subscriber of that path, the sender included, on whichever worker it lives.
public struct BroadcastHandler: WebSocketHandler {
    /// The connection's topic: its request path.
    public typealias ConnectionState = String
    public let origins: OriginPolicy

    public init(origins: OriginPolicy = .any) { self.origins = origins }

    public mutating func upgrade(_ request: UpgradeRequestHead, ticket: UpgradeTicket) -> UpgradeDecision<String> {
        origins.allows(request) ? .accept(request.path) : .refuse(.forbidden, body: "origin not allowed")
    }

    public mutating func onOpen(_ connection: Connection) {
        connection.subscribe(to: connection.state)
    }

    public mutating func onMessage(_ connection: Connection, kind: MessageKind, payload: UnsafeRawBufferPointer) {
        let topic = connection.state
        if kind == .text {
            connection.context.publish(to: topic, text: payload)
        } else {
            connection.context.publish(to: topic, binary: payload)
        }
    }
}

/// The baseline the topics are measured against (`myriad serve --app naive-broadcast`): what
/// an application without topics writes. Each worker keeps its own connections per path and
/// sends every message to each of them with `send`, a copy per connection; connections of
/// other workers are not reached.
public struct NaiveBroadcastHandler: WebSocketHandler {
    public typealias ConnectionState = String
    private var members: [String: [ConnectionID]] = [:]

    public init() {}

    public mutating func upgrade(_ request: UpgradeRequestHead, ticket: UpgradeTicket) -> UpgradeDecision<String> {
        .accept(request.path)
    }

    public mutating func onOpen(_ connection: Connection) { members[connection.state, default: []].append(connection.id) }

    public mutating func onClose(_ connection: Connection, event: CloseEvent) {
        members[connection.state]?.removeAll { $0 == connection.id }
    }

    public mutating func onMessage(_ connection: Connection, kind: MessageKind, payload: UnsafeRawBufferPointer) {
        let context = connection.context
        for member in members[connection.state] ?? [] {
            let target = context.connection(member)
            _ = kind == .text ? target.send(text: payload) : target.send(binary: payload)
        }
    }
}
