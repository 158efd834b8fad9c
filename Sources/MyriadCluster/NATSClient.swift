import Glibc
import Logging

/// A small, strict NATS core client for sharing topics between Myriad nodes.
///
/// One client per node. It runs its own thread (blocking-free socket + poll(2), Glibc only):
/// callers on any thread publish, subscribe and unsubscribe without waiting for the network,
/// and messages arrive on the client's thread through `onMessage`.
///
/// - CONNECT says `verbose: false, pedantic: false, echo: false, headers: false, protocol: 1`:
///   no +OK per operation, and the server never sends the node its own publishes (no-echo),
///   so a node's local subscribers get a local publish once, from the local fan-out.
/// - Subscriptions are per subject and idempotent; the client keeps the set and re-sends it
///   after every reconnect, in the same step that marks the connection usable.
/// - Reconnects after 100 ms doubling to 5 s (defaults), each delay jittered to [d/2, d].
/// - Publishes wait in one outbound buffer of `outboundBufferLimitBytes`, connected or not;
///   what does not fit is dropped and counted. NATS core is at-most-once: a batch being
///   written when the connection breaks is lost and counted (`lostInFlight`), never resent.
/// - The server's input is parsed strictly with bounded memory (`NATSProtocolParser`): a
///   malformed or over-long line, an oversized MSG, a fatal -ERR, or PINGs left unanswered
///   drop the connection, which then reconnects.
public final class NATSClient: Sendable {
    /// Called on the client's thread for each message of a subscribed subject. The payload is
    /// borrowed: valid during the call only. Must not block for long (it holds up the
    /// connection); may call `publish`/`subscribe`/`unsubscribe`, and `stop()` (which then
    /// returns without waiting for the thread).
    public typealias MessageHandler = @Sendable (_ subject: String, _ payload: UnsafeRawBufferPointer) -> Void

    public let configuration: NATSClientConfiguration
    private let core: NATSClientCore
    private let logger: Logger
    private let onMessage: MessageHandler
    private let thread = NATSLocked<ThreadState>(.notStarted)

    private enum ThreadState {
        case notStarted
        case running(pthread_t)
        case stopped
    }

    public init(
        configuration: NATSClientConfiguration,
        logger: Logger = Logger(label: "myriad.cluster.nats"),
        onMessage: @escaping MessageHandler
    ) throws(NATSClientConfiguration.ConfigurationError) {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        self.onMessage = onMessage
        self.core = NATSClientCore(configuration: configuration)
    }

    /// Starts the client's thread, which connects and keeps reconnecting until `stop()`.
    /// Publishes and subscriptions made before are kept for the first connection.
    public func start() {
        thread.withLock { state in
            guard case .notStarted = state else { return }
            core.state.withLock { $0.setState(.connecting) }
            let loop = NATSConnectionLoop(core: core, logger: logger, onMessage: onMessage)
            let context = Unmanaged.passRetained(loop).toOpaque()
            var handle = pthread_t()
            let status = pthread_create(&handle, nil, { raw in
                let loop = Unmanaged<NATSConnectionLoop>.fromOpaque(raw!).takeRetainedValue()
                loop.run()
                return nil
            }, context)
            precondition(status == 0, "pthread_create failed: \(status)")
            state = .running(handle)
        }
    }

    /// Queues one message for `subject` (a literal subject: no wildcards, see `NATSSubject`).
    /// Returns at once; the result says whether it may still reach the server.
    @discardableResult
    public func publish(subject: String, payload: UnsafeRawBufferPointer) -> NATSPublishResult {
        guard NATSSubject.isValidLiteral(subject) else {
            core.state.withLock { $0.stats.refusedInvalidSubject += 1 }
            return .refusedInvalidSubject
        }
        let (result, wake) = core.state.withLock { $0.publish(subject: subject.utf8, payload: payload) }
        if wake { core.wake.signal() }
        return result
    }

    /// Queues one message whose payload is `head` followed by `payload` (e.g. a one-byte
    /// header before a caller's buffer), joined in the outbound buffer: no copy to join them.
    @discardableResult
    public func publish(subject: String, head: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer) -> NATSPublishResult {
        guard NATSSubject.isValidLiteral(subject) else {
            core.state.withLock { $0.stats.refusedInvalidSubject += 1 }
            return .refusedInvalidSubject
        }
        let (result, wake) = core.state.withLock { $0.publish(subject: subject.utf8, head: head, payload: payload) }
        if wake { core.wake.signal() }
        return result
    }

    @discardableResult
    public func publish(subject: String, payload: [UInt8]) -> NATSPublishResult {
        payload.withUnsafeBytes { publish(subject: subject, payload: $0) }
    }

    /// Registers interest in `subject` (wildcards allowed). Idempotent per subject; the
    /// interest survives reconnects until `unsubscribe`.
    @discardableResult
    public func subscribe(_ subject: String) -> NATSSubscribeResult {
        guard NATSSubject.isValidFilter(subject) else {
            core.state.withLock { $0.stats.refusedInvalidSubject += 1 }
            return .refusedInvalidSubject
        }
        let (result, wake) = core.state.withLock { $0.subscribe(subject) }
        if wake { core.wake.signal() }
        return result
    }

    /// Removes the interest in `subject`. Messages already on their way for it are counted
    /// (`receivedAfterUnsubscribe`) and not delivered.
    @discardableResult
    public func unsubscribe(_ subject: String) -> NATSUnsubscribeResult {
        let (result, wake) = core.state.withLock { $0.unsubscribe(subject) }
        if wake { core.wake.signal() }
        return result
    }

    /// The subjects subscribed now.
    public var subscribedSubjects: Set<String> {
        core.state.withLock { Set($0.sidBySubject.keys) }
    }

    public func stats() -> NATSClientStats {
        core.state.withLock { $0.snapshot() }
    }

    /// Waits (polling every 5 ms) until connected or `timeoutMs` pass. For start-up and
    /// tests; never call it from `onMessage`.
    public func waitUntilConnected(timeoutMs: Int) -> Bool {
        let deadline = monotonicMilliseconds() + Int64(timeoutMs)
        while true {
            if core.state.withLock({ $0.isConnected }) { return true }
            if monotonicMilliseconds() >= deadline { return false }
            usleep(5_000)
        }
    }

    /// Stops the client: pending publishes get up to `stopFlushTimeoutMs` to reach the server
    /// (confirmed by a PING round trip), then the connection closes and the thread is joined.
    /// Idempotent. Called from `onMessage`, it returns at once and the thread ends by itself.
    public func stop() {
        core.state.withLock { $0.stopRequested = true }
        core.wake.signal()
        let running: pthread_t? = thread.withLock { state in
            switch state {
            case .notStarted:
                state = .stopped
                core.state.withLock { $0.stopped() }
                return nil
            case .running(let handle):
                state = .stopped
                return handle
            case .stopped:
                return nil
            }
        }
        guard let running else { return }
        if pthread_equal(running, pthread_self()) != 0 {
            pthread_detach(running)
        } else {
            pthread_join(running, nil)
        }
    }

    deinit { stop() }
}

/// What the public client and its thread share: the configuration, the mutex-protected
/// state, and the wake-up signal. Owned by both, so the thread can outlive nothing it needs.
final class NATSClientCore: Sendable {
    let configuration: NATSClientConfiguration
    let state: NATSLocked<NATSClientSharedState>
    let wake = NATSWakeSignal()

    init(configuration: NATSClientConfiguration) {
        self.configuration = configuration
        self.state = NATSLocked(
            NATSClientSharedState(
                outboundBufferLimitBytes: configuration.outboundBufferLimitBytes,
                maxPayloadBytes: configuration.maxPayloadBytes))
    }
}
