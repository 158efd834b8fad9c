/// Where the client's connection is.
public enum NATSConnectionState: String, Sendable, Equatable {
    /// `start()` not called yet: publishes are buffered, subscriptions remembered.
    case notStarted
    /// TCP connect, INFO, CONNECT and the first PONG under way.
    case connecting
    /// Handshake complete, interest registered, publishes flowing.
    case connected
    /// Lost or failed; the next attempt comes after a backoff delay.
    case waitingToReconnect
    case stopped
}

/// The client's counters at one moment. Counters only grow; the `buffered*` and `state`
/// fields are gauges. NATS core delivers at most once: every message the client accepted
/// but did not hand to the socket is in exactly one of the `dropped*` / `lostInFlight`
/// counters, so losses are visible, never silent.
public struct NATSClientStats: Sendable, Equatable {
    public var state: NATSConnectionState = .notStarted
    public var isConnected: Bool { state == .connected }

    /// Handshakes completed (the first one included).
    public var connects: UInt64 = 0
    /// Handshakes completed after the first: recoveries from an outage.
    public var reconnects: UInt64 = 0
    /// Attempts that did not reach a completed handshake (refused, timed out, bad
    /// credentials, TLS required, ...).
    public var connectFailures: UInt64 = 0
    /// Completed connections that ended (server gone, ping timeout, protocol error, -ERR).
    public var disconnects: UInt64 = 0

    /// Publishes written whole to the socket, and their payload bytes.
    public var published: UInt64 = 0
    public var publishedPayloadBytes: UInt64 = 0
    /// Publishes accepted and not yet written (gauge), and the bytes of their PUB frames.
    public var bufferedMessages: Int = 0
    public var bufferedBytes: Int = 0

    /// Messages delivered to the handler, and their payload bytes.
    public var received: UInt64 = 0
    public var receivedPayloadBytes: UInt64 = 0
    /// MSGs larger than `maxPayloadBytes` (within the server's limit): read through, not delivered.
    public var receivedOverLimitSkipped: UInt64 = 0
    /// MSGs for a subscription already removed (in flight when UNSUB left): not delivered.
    public var receivedAfterUnsubscribe: UInt64 = 0

    /// Publishes that did not fit the outbound buffer while disconnected.
    public var droppedWhileDisconnected: UInt64 = 0
    /// Publishes that did not fit the outbound buffer while connected (the server or the
    /// socket slower than the publishers).
    public var droppedBufferFull: UInt64 = 0
    /// Publishes in the batch being written when a connection broke: some may have reached
    /// the server, none is resent.
    public var lostInFlight: UInt64 = 0
    /// Publishes still buffered when `stop()` gave up waiting for the socket.
    public var droppedAtStop: UInt64 = 0
    /// Publishes over the smaller of `maxPayloadBytes` and the server's `max_payload`
    /// (refused at once, or dropped from the buffer when a new server said less).
    public var refusedOverMaxPayload: UInt64 = 0
    /// Publishes or subscriptions to a subject this client will not send.
    public var refusedInvalidSubject: UInt64 = 0

    /// -ERR lines from the server (fatal or not).
    public var serverErrors: UInt64 = 0
    /// Server input that broke the protocol (malformed, too long, unexpected): each one
    /// dropped the connection.
    public var protocolErrors: UInt64 = 0
    /// Connections given up because our PINGs went unanswered.
    public var pingTimeouts: UInt64 = 0
    /// Server PINGs answered with PONG.
    public var serverPingsAnswered: UInt64 = 0

    /// Subjects subscribed now (what every reconnect re-registers).
    public var subscriptions: Int = 0
    /// The server's `max_payload` from its last INFO, nil before the first.
    public var serverMaxPayloadBytes: Int?
    /// The last failure, in words (credentials refused, connection refused, ...).
    public var lastError: String?

    public init() {}
}

/// What became of one publish. Returned at once: nothing waits for the network.
public enum NATSPublishResult: Sendable, Equatable {
    /// Connected: in the outbound buffer, on its way.
    case queued
    /// Not connected: held (within `outboundBufferLimitBytes`) for the next connection.
    case bufferedWhileDisconnected
    /// Counted in `droppedBufferFull`.
    case droppedBufferFull
    /// Counted in `droppedWhileDisconnected`.
    case droppedWhileDisconnected
    /// Counted in `refusedOverMaxPayload`: the payload exceeds `limitBytes`.
    case refusedOverMaxPayload(limitBytes: Int)
    /// Counted in `refusedInvalidSubject`.
    case refusedInvalidSubject
    /// `stop()` was called.
    case refusedStopped

    /// Whether the message may still reach the server.
    public var isAccepted: Bool { self == .queued || self == .bufferedWhileDisconnected }
}

public enum NATSSubscribeResult: Sendable, Equatable {
    case subscribed
    /// Already subscribed: nothing changed (subscriptions are per subject, not counted).
    case alreadySubscribed
    case refusedInvalidSubject
    case refusedStopped
}

public enum NATSUnsubscribeResult: Sendable, Equatable {
    case unsubscribed
    case notSubscribed
}
