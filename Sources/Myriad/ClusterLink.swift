import WebSocketCodec

/// Where a node's topics meet other nodes' (issue 17): what the engine calls when clustering
/// is on. The engine knows nothing of the broker; `MyriadClusterBridge` implements this over
/// NATS, and `Engine.attachCluster(_:)` installs it before the engine starts.
///
/// The engine calls it in two places, both outside its locks:
/// - `exportPublish` once for every publish made on this node (from a worker callback or from
///   `EngineHandle`), after the publish was accepted locally (a publish refused with
///   `queueFull` is not exported either, so a caller that retries sends no duplicate to
///   other nodes). It runs on the publisher's thread (often a worker's event loop): it must
///   not block and must not do work per subscriber. Publishes that arrived from the cluster
///   (`EngineHandle.publishFromCluster`) are never exported again.
/// - `nodeInterestChanged` when the node gains its first subscriber of a topic on any worker
///   (true) or loses its last one (false); on the thread that made the change (a worker),
///   off the publish path. Two workers' changes may reach it in either order: the link
///   should read `EngineHandle.nodeHasSubscribers(_:)` under its own lock and act on that.
public protocol ClusterLink: AnyObject, Sendable {
    func exportPublish(topic: String, kind: MessageKind, payload: UnsafeRawBufferPointer)
    func nodeInterestChanged(topic: String, interested: Bool)
}

extension Engine {
    /// Connects this node's topics to other nodes through `link` (nil: clustering off, the
    /// default). Call before `start()`: the workers read it without a lock.
    public func attachCluster(_ link: (any ClusterLink)?) {
        precondition(!shared.running.load(ordering: .acquiring), "attachCluster must be called before start()")
        shared.cluster = link
        if let link {
            shared.registry.setInterestObserver { topic, interested in
                link.nodeInterestChanged(topic: topic, interested: interested)
            }
        } else {
            shared.registry.setInterestObserver(nil)
        }
    }
}

extension EngineHandle {
    /// Delivers a message that came from another node to this node's subscribers of `topic`,
    /// on every worker: encoded once, shared by reference, like `publish`, but never exported
    /// to the cluster again. `.enqueued` also when nobody here subscribes (nothing to do).
    @discardableResult
    public func publishFromCluster(to topic: String, kind: MessageKind, payload: UnsafeRawBufferPointer) -> HandleResult {
        publish(to: topic, opcode: kind.opcode, payload: payload, excluding: nil, export: false)
    }

    /// Whether any worker of this node has a subscriber of `topic` now (the registry's view,
    /// which `ClusterLink.nodeInterestChanged` reports the changes of).
    public func nodeHasSubscribers(_ topic: String) -> Bool { shared.registry.nodeInterested(in: topic) }

    /// Every topic this node has subscribers of now.
    public func topicsWithSubscribers() -> [String] { shared.registry.interestedTopics() }
}

extension WorkerCore {
    /// A publish from a worker callback (`WorkerContext.publish`): the local fan-out, then,
    /// when clustering is on and the publish was accepted, one export (one nil check when off).
    @inline(__always)
    func publishAndExport(to topic: String, opcode: Opcode, payload: UnsafeRawBufferPointer, excluding: ConnectionID?) -> PublishResult {
        let result = publish(to: topic, opcode: opcode, payload: payload, excluding: excluding)
        if let cluster = shared.cluster, result == .published {
            cluster.exportPublish(topic: topic, kind: opcode == .text ? .text : .binary, payload: payload)
        }
        return result
    }
}
