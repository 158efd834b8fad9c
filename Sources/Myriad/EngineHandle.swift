import Synchronization
import WebSocketCodec

/// What every worker and every `EngineHandle` share: the workers' mailboxes, the topic
/// registry, process-wide limits and the handle's own counters.
final class EngineShared: Sendable {
    let mailboxes: [Mailbox]
    let registry: TopicRegistry
    /// MYRIAD_MAX_SUBSCRIPTIONS, for the whole process.
    let maxSubscriptions: Int
    let subscriptionCount = Atomic<Int>(0)
    let running = Atomic<Bool>(false)
    /// Handle calls refused because the target mailbox was full, and calls made while the
    /// engine was not running.
    let handleQueueFull = Atomic<Int>(0)
    let handleStopped = Atomic<Int>(0)
    /// Clustering (`Engine.attachCluster`): nil when off. Set before the workers start and
    /// never after, so they read it without a lock.
    nonisolated(unsafe) var cluster: (any ClusterLink)?

    init(mailboxes: [Mailbox], maxSubscriptions: Int) {
        self.mailboxes = mailboxes
        registry = TopicRegistry(workerCount: mailboxes.count)
        self.maxSubscriptions = maxSubscriptions
    }

    var workerCount: Int { mailboxes.count }

    /// Takes one subscription from the process-wide allowance; false when it is used up.
    func takeSubscription() -> Bool {
        if subscriptionCount.add(1, ordering: .relaxed).newValue > maxSubscriptions {
            subscriptionCount.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func returnSubscriptions(_ count: Int) {
        if count > 0 { subscriptionCount.subtract(count, ordering: .relaxed) }
    }

    /// Posts `frame` for `topic` to every worker in `targets`, all or none: room is reserved
    /// in each mailbox first. Returns the worker that had no room, or nil.
    func postPublish(_ topic: String, _ publication: Publication, excluding: ConnectionID?, to targets: WorkerSet) -> Int? {
        let command = MailboxCommand.publish(topic, publication, excluding: excluding)
        let bytes = command.byteCost
        var reserved: [Int] = []
        for worker in targets {
            guard mailboxes[worker].reserve(bytes: bytes) else {
                for done in reserved { mailboxes[done].cancelReservation(bytes: bytes) }
                return worker
            }
            reserved.append(worker)
        }
        for worker in reserved { mailboxes[worker].commit(command, bytes: bytes) }
        return nil
    }
}

/// What became of a request made through `EngineHandle`.
public enum HandleResult: Sendable, Equatable {
    /// Posted to the worker that owns the connection (or to every worker with subscribers);
    /// it acts on it in its next loop iteration, and counts what happened.
    case enqueued
    /// The worker's mailbox is full (MYRIAD_MAILBOX_CAPACITY): nothing was posted. Retry
    /// later or shed the work; the refusal is counted.
    case queueFull
    /// The engine is not running (not started, or shut down).
    case engineStopped
    /// The ID names a worker this engine does not have.
    case noSuchWorker
}

/// A handle to the engine for any thread and for async code: send to and close any
/// connection by ID, subscribe and unsubscribe connections to topics, publish, and complete
/// deferred upgrades. `Sendable`, cheap to copy.
///
/// Every call copies what it needs (the message is encoded once into a shared frame) and
/// posts it to the owning worker's bounded mailbox, waking it; the result says whether it
/// was posted, never whether the connection still existed by then (the worker counts that).
/// Calls from one thread reach each worker in the order they were made, so one publisher's
/// messages arrive in order, and a subscribe made before a publish is applied before it.
public struct EngineHandle: Sendable {
    let shared: EngineShared

    /// Worker threads the engine runs.
    public var workerCount: Int { shared.workerCount }

    private func post(_ command: MailboxCommand, worker: UInt16) -> HandleResult {
        guard shared.running.load(ordering: .acquiring) else {
            shared.handleStopped.add(1, ordering: .relaxed)
            return .engineStopped
        }
        guard Int(worker) < shared.workerCount else { return .noSuchWorker }
        if shared.mailboxes[Int(worker)].post(command) { return .enqueued }
        shared.handleQueueFull.add(1, ordering: .relaxed)
        return .queueFull
    }

    @discardableResult
    public func send(to id: ConnectionID, text: String) -> HandleResult {
        var text = text
        return text.withUTF8 { send(to: id, opcode: .text, payload: UnsafeRawBufferPointer($0)) }
    }

    @discardableResult
    public func send(to id: ConnectionID, text: UnsafeRawBufferPointer) -> HandleResult {
        send(to: id, opcode: .text, payload: text)
    }

    @discardableResult
    public func send(to id: ConnectionID, binary: UnsafeRawBufferPointer) -> HandleResult {
        send(to: id, opcode: .binary, payload: binary)
    }

    @discardableResult
    public func send(to id: ConnectionID, binary: [UInt8]) -> HandleResult {
        binary.withUnsafeBytes { send(to: id, opcode: .binary, payload: $0) }
    }

    func send(to id: ConnectionID, opcode: Opcode, payload: UnsafeRawBufferPointer) -> HandleResult {
        post(.send(id, SharedFrame.encode(opcode: opcode, payload: payload)), worker: id.worker)
    }

    /// Starts the close handshake with `id` (code and reason as `WebSocketConnection.close`).
    @discardableResult
    public func close(_ id: ConnectionID, code: CloseCode = .normalClosure, reason: String = "") -> HandleResult {
        precondition(code.maySend(as: .server), "close code \(code) may not be sent by a server")
        return post(.close(id, code, reason), worker: id.worker)
    }

    /// Subscribes `id` to `topic`. A publish made after this call returns `.enqueued`, from
    /// any thread, reaches the connection (if it is still open when its worker applies it).
    @discardableResult
    public func subscribe(_ id: ConnectionID, to topic: String) -> HandleResult {
        guard Int(id.worker) < shared.workerCount else { return .noSuchWorker }
        shared.registry.beginRemoteSubscribe(worker: Int(id.worker))
        let result = post(.subscribe(id, topic), worker: id.worker)
        if result != .enqueued { shared.registry.endRemoteSubscribe(worker: Int(id.worker)) }
        return result
    }

    @discardableResult
    public func unsubscribe(_ id: ConnectionID, from topic: String) -> HandleResult {
        post(.unsubscribe(id, topic), worker: id.worker)
    }

    /// Publishes to every subscriber of `topic`, on every worker, encoded once (and, with
    /// clustering on, exported once to the other nodes). `excluding`: a connection that must
    /// not get it.
    @discardableResult
    public func publish(to topic: String, text: String, excluding: ConnectionID? = nil) -> HandleResult {
        var text = text
        return text.withUTF8 { publish(to: topic, opcode: .text, payload: UnsafeRawBufferPointer($0), excluding: excluding) }
    }

    @discardableResult
    public func publish(to topic: String, text: UnsafeRawBufferPointer, excluding: ConnectionID? = nil) -> HandleResult {
        publish(to: topic, opcode: .text, payload: text, excluding: excluding)
    }

    @discardableResult
    public func publish(to topic: String, binary: UnsafeRawBufferPointer, excluding: ConnectionID? = nil) -> HandleResult {
        publish(to: topic, opcode: .binary, payload: binary, excluding: excluding)
    }

    /// `export`: false for a message that came from the cluster (never sent back to it).
    func publish(to topic: String, opcode: Opcode, payload: UnsafeRawBufferPointer, excluding: ConnectionID?,
                 export: Bool = true) -> HandleResult {
        guard shared.running.load(ordering: .acquiring) else {
            shared.handleStopped.add(1, ordering: .relaxed)
            return .engineStopped
        }
        let targets = shared.registry.targets(topic, excluding: nil)
        if !targets.isEmpty {  // else nobody on this node listens: nothing to post
            let publication = Publication(opcode: opcode, payload: payload)
            if shared.postPublish(topic, publication, excluding: excluding, to: targets) != nil {
                shared.handleQueueFull.add(1, ordering: .relaxed)
                return .queueFull
            }
        }
        if export, let cluster = shared.cluster {
            cluster.exportPublish(topic: topic, kind: opcode == .text ? .text : .binary, payload: payload)
        }
        return .enqueued
    }

    /// Completes an upgrade the handler answered `.pending` for. `State` must be the handler's
    /// `ConnectionState`. If the client left, or the handshake timed out, meanwhile, the
    /// decision is dropped (counted as `upgrades_stale`) and its state with it.
    @discardableResult
    public func completeUpgrade<State: Sendable>(_ ticket: UpgradeTicket, _ decision: UpgradeDecision<State>) -> HandleResult {
        post(.upgrade(ticket.connection, AnyUpgradeDecision(decision)), worker: ticket.connection.worker)
    }

    /// Async conveniences: the same calls, retrying while the target mailbox is full, for up
    /// to `patience` (then `.queueFull`).
    public func publish(to topic: String, text: String, excluding: ConnectionID? = nil,
                        waitingUpTo patience: Duration) async -> HandleResult {
        await retrying(patience) { publish(to: topic, text: text, excluding: excluding) }
    }

    public func send(to id: ConnectionID, text: String, waitingUpTo patience: Duration) async -> HandleResult {
        await retrying(patience) { send(to: id, text: text) }
    }

    private func retrying(_ patience: Duration, _ attempt: () -> HandleResult) async -> HandleResult {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: patience)
        var result = attempt()
        while result == .queueFull && clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(1))
            result = attempt()
        }
        return result
    }
}
