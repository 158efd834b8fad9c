@_spi(Benchmarks) import Myriad
import WebSocketCodec

/// Where a client connection is in its life. A slot goes back to `.free` when released.
///
///     free -> connecting -> handshaking -> open -> closing -> closed -> free
///                  \______________\__________\________\_____^   (errors skip ahead)
enum ClientState: UInt8 {
    case free
    /// IORING_OP_CONNECT in flight (connect deadline armed).
    case connecting
    /// Upgrade request sent; waiting for the 101 (handshake deadline armed).
    case handshaking
    /// Upgraded: frames flow both ways.
    case open
    /// A close frame was sent (ours, or our answer to the server's); waiting for the server's
    /// close frame and then its TCP close (close deadline armed).
    case closing
    /// close_direct submitted; waiting for the slot's last completions.
    case closed
}

struct ClientFlags: OptionSet {
    var rawValue: UInt16
    // Bits 0-2 were the I/O flags, now `ConnectionIO` (shared with the server role).
    static let closeSent = ClientFlags(rawValue: 1 << 3)
    static let closeReceived = ClientFlags(rawValue: 1 << 4)
    /// We started the close (not an answer to the server's).
    static let closeInitiated = ClientFlags(rawValue: 1 << 5)
    /// Our ping is waiting for its pong.
    static let pingOutstanding = ClientFlags(rawValue: 1 << 6)
    /// The verify message is waiting for its echo.
    static let verifyPending = ClientFlags(rawValue: 1 << 7)
    /// Counted in `open` (upgraded and not yet closed).
    static let counted = ClientFlags(rawValue: 1 << 8)
    /// Counted in `establishing` (connecting or handshaking).
    static let establishing = ClientFlags(rawValue: 1 << 9)
    /// The connect deadline passed and the connect was cancelled.
    static let timedOut = ClientFlags(rawValue: 1 << 10)
    /// A failure was already counted for this connection (count one per connection).
    static let failed = ClientFlags(rawValue: 1 << 11)
    /// fanout: this connection publishes (its frames use the pool's large chunks).
    static let publisher = ClientFlags(rawValue: 1 << 12)
    /// --deflate: `inbound` gathers a compressed message that came in pieces.
    static let gatheringCompressed = ClientFlags(rawValue: 1 << 13)
}

/// One client connection: a plain struct in a per-thread slab (the engine's `Slab`, as the
/// server's slots), indexed by slot, which also names its ring and index in the ring's
/// fixed-file table. No class, no array, no closure per connection; send and assembly memory
/// comes from the thread's `BufferPool` (the engine's) only while in use.
struct ClientConnection: SendQueueSlot {
    // Fields in decreasing alignment, so the slot packs into 144 bytes with the wheel's node.
    /// Server frames are decoded in place in the receive buffers.
    var decoder = FrameDecoder()
    /// The 16 random bytes behind our Sec-WebSocket-Key (kept to check the accept value).
    /// Needed only until the upgrade completes; after it (`opened`, which zeroes them) the
    /// same 16 bytes hold fanout's `prefixHigh` and `sequenceEnd`. (The response parser keeps
    /// no state here: a head in pieces resumes from the gathered length, `parseResponse`.)
    var nonceLow: UInt64 = 0
    var nonceHigh: UInt64 = 0
    /// The first 8 payload bytes of the data message being received (echo, fanout: its send
    /// time; verify: its token).
    var prefix: UInt64 = 0
    /// Moved on by the slab at every release; its low 32 bits tag every operation (`UserData`).
    var generation: UInt64 = 0
    /// A response head, a control frame or (--deflate) a compressed message that arrived in
    /// pieces (from the thread's `BufferPool`, only while it is being gathered).
    var inbound = PooledBuffer()
    var flags = ClientFlags()
    /// echo: messages sent and not yet echoed, and messages owed (to send when room allows).
    var outstanding: UInt16 = 0
    var owed: UInt16 = 0
    /// The slab's free list while the slot is free.
    var listNext: UInt32 = 0
    /// The send queue (the engine's `SendQueues`, as in the server's slot): its first
    /// segment, in flight while `io.flags` has `.sendInFlight`, or `SendSegment.none`.
    var sendHead: UInt32 = SendSegment.none
    /// Payload bytes of the data message being received so far (saturating).
    var messageLength: UInt32 = 0
    /// The connection's one timing-wheel entry (the engine's wheel, as in the server's slot):
    /// its connect, handshake or close deadline, whichever its state has.
    var timer = TimerNode()
    var state = ClientState.free
    /// What is in flight (connect, receive, send, cancels, close) and the rules for it: the
    /// engine's `ConnectionIO`, as in the server's slot.
    var io = ConnectionIO()
    var prefixCount: UInt8 = 0
}

extension ClientConnection: TimedSlot {
    static let timerOffset = MemoryLayout<ClientConnection>.offset(of: \ClientConnection.timer)!
}

extension ClientConnection {
    /// fanout, once open: payload bytes 8-15 of the data message being received (its
    /// sequence number). Stored in `nonceLow`.
    var prefixHigh: UInt64 {
        @inline(__always) get { nonceLow }
        @inline(__always) set { nonceLow = newValue }
    }

    /// fanout, once open: 1 + the highest sequence received (0: none yet). Stored in
    /// `nonceHigh`.
    var sequenceEnd: UInt32 {
        @inline(__always) get { UInt32(truncatingIfNeeded: nonceHigh) }
        @inline(__always) set { nonceHigh = UInt64(newValue) }
    }
}

extension ClientConnection {
    /// The close handshake's two facts, kept in `flags` (`closeSent`, `closeReceived`) and
    /// moved only by the engine's `CloseHandshake` transitions, as in the server's slot.
    var closeHandshake: CloseHandshake {
        @inline(__always) get { CloseHandshake(sent: flags.contains(.closeSent), received: flags.contains(.closeReceived)) }
        @inline(__always) set {
            flags.remove([.closeSent, .closeReceived])
            if newValue.sent { flags.insert(.closeSent) }
            if newValue.received { flags.insert(.closeReceived) }
        }
    }
}

extension ClientConnection {
    var isFree: Bool { state == .free }
    mutating func markFree() { state = .free }

    func assertReleasable(_ slot: UInt32) {
        assert(timer.next == TimerNode.unlinked, "client slot \(slot) released with a deadline set")
        assert(state == .closed && !io.flags.contains(.starved), "client slot \(slot) released before its socket closed")
        assert(sendHead == SendSegment.none && !inbound.isAllocated, "client slot \(slot) released holding buffers")
    }
}
