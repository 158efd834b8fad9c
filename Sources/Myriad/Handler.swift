import WebSocketCodec

/// What an application implements to serve WebSocket connections.
///
/// Each worker thread owns one handler instance (made by the factory given to `Engine`) and
/// calls it only from that thread, so a handler needs no locks. Calls are specialised for the
/// concrete type: no existential, no dynamic dispatch per message. Callbacks must not block:
/// they run on the event loop.
///
/// Borrowed bytes (`payload`, `reason`, the offered subprotocols) are valid only during the
/// call; copy what must outlive it.
public protocol WebSocketHandler {
    /// Picks one of the subprotocols the client offered (in its order of preference), or nil
    /// for none. The returned bytes must be one of `offered` or static. Default: none.
    mutating func chooseSubprotocol(offered: TokenList) -> UnsafeRawBufferPointer?

    /// The upgrade completed; `connection` can send from now on.
    mutating func onOpen(_ connection: WebSocketConnection)

    /// A whole message (fragments reassembled, text already validated as UTF-8).
    mutating func onMessage(_ connection: WebSocketConnection, kind: MessageKind, payload: UnsafeRawBufferPointer)

    /// The connection stopped being open: no more messages will arrive and sends fail. Called
    /// once for every connection that was opened.
    mutating func onClose(_ connection: WebSocketConnection, event: CloseEvent)
}

extension WebSocketHandler {
    public mutating func chooseSubprotocol(offered: TokenList) -> UnsafeRawBufferPointer? { nil }
    public mutating func onOpen(_ connection: WebSocketConnection) {}
    public mutating func onClose(_ connection: WebSocketConnection, event: CloseEvent) {}
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
    /// The connection is gone or closing: nothing was queued.
    case closed
    /// The connection's queue would pass MYRIAD_MAX_QUEUED_BYTES: it is being closed as a
    /// slow consumer and nothing was queued.
    case slowConsumer
    /// The worker's MYRIAD_BUFFER_BUDGET is used up: the connection is being closed with
    /// 1013 (try again later) and nothing was queued.
    case memoryBudget
}

/// A handle to one connection of the current worker: cheap to copy and store (it is an ID
/// and a pointer to the worker). Use it only on the worker thread that delivered it; after
/// the connection closes, every call returns `.closed`.
public struct WebSocketConnection {
    public let id: ConnectionID
    unowned(unsafe) let worker: WorkerCore

    /// Sends a text message; `text` must be valid UTF-8.
    @discardableResult
    public func send(text: UnsafeRawBufferPointer) -> SendResult {
        worker.send(to: id, opcode: .text, payload: text)
    }

    @discardableResult
    public func send(text: String) -> SendResult {
        var text = text
        return text.withUTF8 { worker.send(to: id, opcode: .text, payload: UnsafeRawBufferPointer($0)) }
    }

    @discardableResult
    public func send(binary: UnsafeRawBufferPointer) -> SendResult {
        worker.send(to: id, opcode: .binary, payload: binary)
    }

    /// Starts the close handshake (our close frame, then wait for the peer's).
    public func close(code: CloseCode = .normalClosure, reason: String = "") {
        var reason = reason
        reason.withUTF8 { worker.close(id, code: code, reason: UnsafeRawBufferPointer($0), cause: .application) }
    }

    /// The worker that owns this connection: send to other connections it holds.
    public var context: WorkerContext { WorkerContext(worker: worker) }
}

/// The calling worker, for reaching connections other than the one a callback is about
/// (chat rooms, broadcasts). Connections of other workers are not reachable here.
public struct WorkerContext {
    unowned(unsafe) let worker: WorkerCore

    public var workerIndex: Int { worker.index }

    /// A handle to `id`, which may since have closed (then every call on it returns `.closed`).
    public func connection(_ id: ConnectionID) -> WebSocketConnection {
        WebSocketConnection(id: id, worker: worker)
    }
}

/// The default application: every message goes back to its sender unchanged.
public struct EchoHandler: WebSocketHandler {
    public init() {}

    public mutating func onMessage(_ connection: WebSocketConnection, kind: MessageKind, payload: UnsafeRawBufferPointer) {
        let result = kind == .text ? connection.send(text: payload) : connection.send(binary: payload)
        _ = result
    }
}
