import WebSocketCodec

/// Where a connection is in its life. Transitions only move down this list (a slot goes
/// back to `.free` when released):
///
///     free -> handshaking -> open -> closing -> draining -> closed -> free
///                  \___________\________\______^   (any state may skip ahead)
enum SlotState: UInt8 {
    /// In the slab's free list.
    case free
    /// Accepted; waiting for a complete upgrade request (handshake deadline armed).
    case handshaking
    /// Upgraded; frames flow both ways.
    case open
    /// We sent a close frame and wait for the peer's (close deadline armed); data is ignored.
    case closing
    /// Nothing more to read: the queued bytes (a close reply, an HTTP response) are being
    /// sent, then the socket is closed.
    case draining
    /// The socket close is submitted; waiting for the slot's last completions.
    case closed
}

/// Per-connection facts that are not a state of their own.
struct ConnectionFlags: OptionSet {
    var rawValue: UInt16
    // Bits 0, 1, 3 and 8 were the I/O flags, now `ConnectionIO` (shared with the client role).
    /// Linked into the worker's flush list (pending bytes, no send in flight yet).
    static let inFlushList = ConnectionFlags(rawValue: 1 << 2)
    static let closeFrameSent = ConnectionFlags(rawValue: 1 << 4)
    static let closeFrameReceived = ConnectionFlags(rawValue: 1 << 5)
    static let pingOutstanding = ConnectionFlags(rawValue: 1 << 6)
    /// `onOpen` was delivered, so `onClose` is owed.
    static let handlerOpened = ConnectionFlags(rawValue: 1 << 7)
    /// Close the socket at the next flush without a close handshake (queued bytes dropped).
    static let abortRequested = ConnectionFlags(rawValue: 1 << 9)
    /// The handler's per-connection state is initialised in the worker's state table.
    static let stateInitialized = ConnectionFlags(rawValue: 1 << 10)
    /// The upgrade hook answered `.pending`: the decision comes later through the mailbox.
    static let upgradePending = ConnectionFlags(rawValue: 1 << 11)
    /// The kernel is still writing the peer's address into the side entry.
    static let peerAddressPending = ConnectionFlags(rawValue: 1 << 12)
    /// permessage-deflate was agreed: data messages may be compressed either way.
    static let deflate = ConnectionFlags(rawValue: 1 << 13)
    /// The connection has its own zlib streams (dedicated mode, within the budget).
    static let dedicatedDeflate = ConnectionFlags(rawValue: 1 << 14)
}

extension ConnectionSlot {
    /// The close handshake's two facts, kept in `flags` (`closeFrameSent`, `closeFrameReceived`)
    /// and moved only by `CloseHandshake`'s transitions.
    var closeHandshake: CloseHandshake {
        @inline(__always) get {
            CloseHandshake(sent: flags.contains(.closeFrameSent), received: flags.contains(.closeFrameReceived))
        }
        @inline(__always) set {
            flags.remove([.closeFrameSent, .closeFrameReceived])
            if newValue.sent { flags.insert(.closeFrameSent) }
            if newValue.received { flags.insert(.closeFrameReceived) }
        }
    }
}

/// Why a connection ended: each has a counter in the stats line.
public enum CloseReason: UInt8, CaseIterable, Sendable {
    case none = 0
    /// A close handshake completed (either side started it).
    case normal
    /// The peer closed TCP without a close frame (1006).
    case peerEOF
    /// A socket error: ECONNRESET, EPIPE, ETIMEDOUT.
    case socketError
    /// 1002: the peer broke the framing rules.
    case protocolError
    /// 1007: text or a close reason that is not UTF-8.
    case invalidUTF8
    /// 1009: a message over MYRIAD_MAX_MESSAGE_SIZE.
    case messageTooBig
    /// The upgrade request was refused (400, 426, 431).
    case handshakeRejected
    /// No complete upgrade request by MYRIAD_HANDSHAKE_TIMEOUT.
    case handshakeTimeout
    /// A plain HTTP request (health check or 404) was answered.
    case http
    /// No pong (or any frame) within MYRIAD_PONG_TIMEOUT of a ping.
    case pongTimeout
    /// No application message either way for MYRIAD_IDLE_TIMEOUT (1001).
    case idleTimeout
    /// More than MYRIAD_MAX_QUEUED_BYTES waiting to be sent.
    case slowConsumer
    /// We sent a close frame and the peer never answered it.
    case closeTimeout
    /// The application called `close`.
    case application
    /// The server is shutting down (1001).
    case shutdown
    /// The pool could not provide memory for a message or a send queue (1011).
    case outOfMemory
    /// The worker's MYRIAD_BUFFER_BUDGET could not lend what the connection asked for (1013).
    case memoryBudget
    /// The handler's upgrade hook refused the connection with an HTTP status.
    case upgradeRefused

    /// The name used in stats lines and in the README.
    public var name: String {
        switch self {
        case .none: return "none"
        case .normal: return "normal"
        case .peerEOF: return "peer_eof"
        case .socketError: return "socket_error"
        case .protocolError: return "protocol_error"
        case .invalidUTF8: return "invalid_utf8"
        case .messageTooBig: return "message_too_big"
        case .handshakeRejected: return "handshake_rejected"
        case .handshakeTimeout: return "handshake_timeout"
        case .http: return "http"
        case .pongTimeout: return "pong_timeout"
        case .idleTimeout: return "idle_timeout"
        case .slowConsumer: return "slow_consumer"
        case .closeTimeout: return "close_timeout"
        case .application: return "application"
        case .shutdown: return "shutdown"
        case .outOfMemory: return "out_of_memory"
        case .memoryBudget: return "memory_budget"
        case .upgradeRefused: return "upgrade_refused"
        }
    }

    /// The reason a decoder failure maps to.
    init(failure code: CloseCode) {
        switch code {
        case .invalidPayload: self = .invalidUTF8
        case .messageTooBig: self = .messageTooBig
        default: self = .protocolError
        }
    }
}

/// Everything a worker knows about one connection: a plain struct in a slab slot.
///
/// No class, closure, existential or array: idle, a connection is this struct and nothing
/// else in user space (its receive memory is the worker's buffer ring, its decoder at rest is
/// one flag). A handshaking or busy connection has a side entry (`ConnectionSideTable`), and
/// queued bytes wait in send segments; `SlabTests` holds the stride to 64 bytes, one cache line.
struct ConnectionSlot {
    /// Bumped when the slot is released; part of the `ConnectionID`, and its low 32 bits tag
    /// every operation in flight (`UserData`).
    var generation: UInt64 = 0
    /// Fixed-file index (io_uring) or file descriptor (epoll).
    var handle: Int32 = -1
    var state: SlotState = .free
    var closeReason: CloseReason = .none
    var flags: ConnectionFlags = []
    /// Receive, send, close: what is in flight and the rules for it (`ConnectionIO.swift`,
    /// the same two bytes in the load generator's client slot).
    var io = ConnectionIO()
    /// The close code reported to `onClose` (1005 none received, 1006 abnormal).
    var closeCode: UInt16 = CloseCode.abnormalClosure.rawValue
    /// Link in the worker's flush list; in a free slot, the free list.
    var listNext: UInt32 = ConnectionSlot.noSlot
    /// With permessage-deflate: the window our compressed messages may use
    /// (`server_max_window_bits`). In what would otherwise be padding before the timer.
    var deflateWindowBits: UInt8 = 15
    /// The connection's single timing-wheel entry: handshake, ping, pong, idle or close deadline.
    var timer = TimerNode()
    /// Wheel ticks (wrapping): any bytes received; any application message either way;
    /// the outstanding ping.
    var lastInboundTick: UInt32 = 0
    var lastMessageTick: UInt32 = 0
    var pingSentTick: UInt32 = 0
    /// The send queue: segments in the worker's `SendSegmentPool`, oldest first (the head is
    /// the one in flight when `io.flags` has `.sendInFlight`). The head segment holds the queue's tail
    /// and its bytes not yet sent (`SendQueues.tail`, `queuedBytes`).
    var sendHead: UInt32 = SendSegment.none
    /// The first of the connection's topic subscriptions (`TopicTable`), or none.
    var subscriptions: UInt32 = Subscription.none
    /// Its entry in the worker's `ConnectionSideTable` while it is busy (handshaking, or in
    /// the middle of a message); none for an idle open connection.
    var side: UInt32 = ConnectionSide.none

    static let noSlot = UInt32.max

}
