import Logging
import Myriad
import MyriadCluster
import Synchronization

/// Topics across nodes over NATS: the engine's `ClusterLink`, one `NATSClient` per node.
///
/// - **One broker subscription per topic per node.** The engine reports when the node gains
///   its first subscriber of a topic on any worker and loses its last; the bridge then
///   subscribes or unsubscribes the topic's subject (`ClusterSubject`). Reports from two
///   workers may arrive in either order, so each one is settled against the engine's registry
///   (`nodeHasSubscribers`) under the bridge's lock: the last report processed sees the final
///   state. The client re-sends every subscription after a reconnect.
/// - **Every publish made on the node is exported once**, from the publisher's thread: the
///   subject, one kind byte (`ClusterWireFormat`) and the message, appended to the client's
///   bounded outbound buffer (no system call, no wait, nothing per subscriber).
/// - **Messages from other nodes** arrive on the client's thread and enter the engine like
///   `EngineHandle.publish` (encoded once for the node, shared by reference by every
///   subscriber on every worker) through `publishFromCluster`, which never exports them again.
///   CONNECT says `echo: false`, so a node never receives its own publishes back.
///
/// NATS core is at-most-once: every message that does not make it is counted (here and in
/// `NATSClientStats`), none is retried.
public final class ClusterBridge: ClusterLink {
    public let configuration: ClusterBridgeConfiguration
    private let client: NATSClient
    private let engine: EngineHandle
    private let counters: ClusterBridgeCounters
    private let logger: Logger
    /// Serialises interest changes: a report is applied against the registry's state at the
    /// time it is applied, never against the (possibly stale) flag it carried.
    private let interestLock = Mutex(())

    public init(configuration: ClusterBridgeConfiguration, engine: EngineHandle, logger: Logger) throws(NATSClientConfiguration.ConfigurationError) {
        self.configuration = configuration
        self.engine = engine
        self.logger = logger
        let counters = ClusterBridgeCounters()
        self.counters = counters
        let importer = ClusterImporter(engine: engine, subjects: configuration.subjects, counters: counters, logger: logger)
        client = try NATSClient(configuration: configuration.nats, logger: logger) { subject, payload in
            importer.receive(subject: subject, payload: payload)
        }
    }

    /// Connects (in the background: the client keeps retrying with backoff). Subscriptions
    /// and publishes made before are kept for the first connection.
    public func start() {
        logger.info(
            "cluster: on",
            metadata: [
                "url": "\(configuration.nats.redactedURL)", "prefix": "\(configuration.subjects.prefix)",
                "credentials": "\(configuration.credentialsDescription)",
                "buffer_bytes": "\(configuration.nats.outboundBufferLimitBytes)", "name": "\(configuration.nats.name)",
            ])
        client.start()
    }

    /// Sends what is buffered (up to the client's stop timeout) and disconnects. After the
    /// engine has stopped, so that its last publishes and unsubscribes go out.
    public func stop() { client.stop() }

    public func waitUntilConnected(timeoutMs: Int) -> Bool { client.waitUntilConnected(timeoutMs: timeoutMs) }

    /// The subjects the node is subscribed to on the broker now.
    public var subscribedSubjects: Set<String> { client.subscribedSubjects }

    public func stats() -> ClusterBridgeStats { counters.snapshot(client: client.stats()) }

    // MARK: - ClusterLink

    public func exportPublish(topic: String, kind: MessageKind, payload: UnsafeRawBufferPointer) {
        guard let subject = configuration.subjects.subject(forTopic: topic) else {
            counters.exportUnmappable.add(1, ordering: .relaxed)
            return
        }
        var tag = ClusterWireFormat.tag(for: kind)
        let result = withUnsafeBytes(of: &tag) { client.publish(subject: subject, head: $0, payload: payload) }
        if result.isAccepted {
            counters.exported.add(1, ordering: .relaxed)
        } else {
            counters.exportDropped.add(1, ordering: .relaxed)
        }
    }

    public func nodeInterestChanged(topic: String, interested: Bool) {
        guard let subject = configuration.subjects.subject(forTopic: topic) else {
            if interested {
                counters.interestUnmappable.add(1, ordering: .relaxed)
                logger.warning(
                    "cluster: a topic too long for a NATS subject stays on this node",
                    metadata: ["topic_bytes": "\(topic.utf8.count)", "limit_bytes": "\(configuration.subjects.maxTopicBytesAlwaysMapped)"])
            }
            return
        }
        interestLock.withLock { _ in
            if engine.nodeHasSubscribers(topic) {
                if client.subscribe(subject) == .subscribed { counters.subscribes.add(1, ordering: .relaxed) }
            } else {
                if client.unsubscribe(subject) == .unsubscribed { counters.unsubscribes.add(1, ordering: .relaxed) }
            }
        }
    }
}

/// The client thread's side: a message from another node into this node's fan-out.
final class ClusterImporter: Sendable {
    let engine: EngineHandle
    let subjects: ClusterSubject
    let counters: ClusterBridgeCounters
    let logger: Logger

    init(engine: EngineHandle, subjects: ClusterSubject, counters: ClusterBridgeCounters, logger: Logger) {
        self.engine = engine
        self.subjects = subjects
        self.counters = counters
        self.logger = logger
    }

    func receive(subject: String, payload: UnsafeRawBufferPointer) {
        guard let topicBytes = subjects.topic(fromSubject: subject.utf8),
            let topic = String(validating: topicBytes, as: UTF8.self),
            let (kind, message) = ClusterWireFormat.decode(payload)
        else {
            if counters.importMalformed.add(1, ordering: .relaxed).newValue == 1 {
                logger.warning("cluster: a message not in Myriad's format was dropped (counted as cluster_import_malformed)",
                               metadata: ["subject": "\(subject.prefix(200))", "bytes": "\(payload.count)"])
            }
            return
        }
        switch engine.publishFromCluster(to: topic, kind: kind, payload: message) {
        case .enqueued: counters.imported.add(1, ordering: .relaxed)
        case .queueFull: counters.importQueueFull.add(1, ordering: .relaxed)
        case .engineStopped, .noSuchWorker: counters.importEngineStopped.add(1, ordering: .relaxed)
        }
    }
}

/// The bridge's own counters (the client keeps the connection's).
final class ClusterBridgeCounters: Sendable {
    let exported = Atomic<UInt64>(0)
    let exportDropped = Atomic<UInt64>(0)
    let exportUnmappable = Atomic<UInt64>(0)
    let interestUnmappable = Atomic<UInt64>(0)
    let subscribes = Atomic<UInt64>(0)
    let unsubscribes = Atomic<UInt64>(0)
    let imported = Atomic<UInt64>(0)
    let importQueueFull = Atomic<UInt64>(0)
    let importEngineStopped = Atomic<UInt64>(0)
    let importMalformed = Atomic<UInt64>(0)

    func snapshot(client: NATSClientStats) -> ClusterBridgeStats {
        var stats = ClusterBridgeStats(client: client)
        stats.exported = exported.load(ordering: .relaxed)
        stats.exportDropped = exportDropped.load(ordering: .relaxed)
        stats.exportUnmappable = exportUnmappable.load(ordering: .relaxed)
        stats.interestUnmappable = interestUnmappable.load(ordering: .relaxed)
        stats.subscribes = subscribes.load(ordering: .relaxed)
        stats.unsubscribes = unsubscribes.load(ordering: .relaxed)
        stats.imported = imported.load(ordering: .relaxed)
        stats.importQueueFull = importQueueFull.load(ordering: .relaxed)
        stats.importEngineStopped = importEngineStopped.load(ordering: .relaxed)
        stats.importMalformed = importMalformed.load(ordering: .relaxed)
        return stats
    }
}

/// The bridge's counters and its client's, at one moment.
public struct ClusterBridgeStats: Sendable, Equatable {
    /// The NATS connection: state, published/received, buffered, every drop, reconnects.
    public var client: NATSClientStats
    /// Publishes of this node the client accepted (queued, or buffered while disconnected),
    /// and those it did not (buffer full, over the server's max_payload, stopping): the
    /// client's counters say which.
    public var exported: UInt64 = 0
    public var exportDropped: UInt64 = 0
    /// Publishes and subscriptions to topics too long for a subject: they stay on this node.
    public var exportUnmappable: UInt64 = 0
    public var interestUnmappable: UInt64 = 0
    /// Broker subscriptions made and removed (one per topic the node gained or lost).
    public var subscribes: UInt64 = 0
    public var unsubscribes: UInt64 = 0
    /// Messages from other nodes handed to this node's workers; dropped because a worker's
    /// mailbox was full, because the engine had stopped, or because they were not in
    /// Myriad's format (`ClusterWireFormat`).
    public var imported: UInt64 = 0
    public var importQueueFull: UInt64 = 0
    public var importEngineStopped: UInt64 = 0
    public var importMalformed: UInt64 = 0

    public init(client: NATSClientStats) { self.client = client }

    /// `cluster=connected cluster_topics=3 cluster_published=...`: the main counters always,
    /// the rarer ones when not zero; appended to `myriad serve`'s stats line.
    public var fields: String {
        var out = "cluster=\(client.state.rawValue) cluster_topics=\(client.subscriptions)"
            + " cluster_published=\(client.published) cluster_received=\(client.received)"
            + " cluster_imported=\(imported) cluster_buffered=\(client.bufferedMessages)"
            + " cluster_dropped_disconnected=\(client.droppedWhileDisconnected)"
            + " cluster_dropped_buffer_full=\(client.droppedBufferFull) cluster_lost_in_flight=\(client.lostInFlight)"
            + " cluster_reconnects=\(client.reconnects)"
        let rare: [(String, UInt64)] = [
            ("cluster_connect_failures", client.connectFailures), ("cluster_disconnects", client.disconnects),
            ("cluster_dropped_at_stop", client.droppedAtStop), ("cluster_refused_over_max_payload", client.refusedOverMaxPayload),
            ("cluster_refused_invalid_subject", client.refusedInvalidSubject),
            ("cluster_received_after_unsubscribe", client.receivedAfterUnsubscribe),
            ("cluster_received_over_limit", client.receivedOverLimitSkipped),
            ("cluster_server_errors", client.serverErrors), ("cluster_protocol_errors", client.protocolErrors),
            ("cluster_ping_timeouts", client.pingTimeouts), ("cluster_export_dropped", exportDropped),
            ("cluster_export_unmappable", exportUnmappable),
            ("cluster_interest_unmappable", interestUnmappable), ("cluster_import_queue_full", importQueueFull),
            ("cluster_import_engine_stopped", importEngineStopped), ("cluster_import_malformed", importMalformed),
        ]
        for (name, value) in rare where value > 0 { out += " \(name)=\(value)" }
        return out
    }
}
