/// What an SQE asked for, carried back in its CQE.
@_spi(Benchmarks)
public enum Operation: UInt8, Sendable {
    case accept = 1
    case receive = 2
    case send = 3
    case close = 4
    case cancel = 5
    /// The worker's wake-up eventfd read (shutdown and cross-thread nudges).
    case wake = 6
    /// Closing a descriptor that never became a connection (accepted while the slab was full).
    case closeOrphan = 7
    case shutdown = 8
    /// Cancelling a connection's send (`cancel` is for its receive).
    case cancelSend = 9
    /// The kernel writing a connection's peer address (SO_PEERNAME command).
    case peerName = 10
    /// A wake-up from another worker's ring (IORING_OP_MSG_RING).
    case message = 11
    /// A message this ring sent that could not be posted (its slot names the target worker).
    case messageFailed = 12
    /// Cancelling the multishot accept (moving it to another ring, or stopping).
    case acceptCancel = 13
    /// A client connection's connect (the load generator's role).
    case connect = 14
    /// Cancelling a client connection's connect (its deadline passed).
    case cancelConnect = 15
}

/// The 64-bit tag of an SQE and its CQE: operation, slab slot, and the low 32 bits of the
/// slot's generation.
///
/// Layout: bits 0-7 operation, 8-31 slot (24 bits: a worker holds at most 2^24 connections),
/// 32-63 generation (its low 32 bits). The generation itself is 64 bits and never wraps (see
/// `ConnectionID`); the tag carries only its low half, which is enough because the engine
/// releases a slot only when none of its operations is in flight, so a completion can never
/// outlive 2^32 reuses of its slot. A completion whose generation differs from its slot's is
/// a bug, and the worker stops on it.
@_spi(Benchmarks)
public struct UserData: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt64

    public static let slotBits = 24
    /// The largest slot a tag can carry: 2^24 - 1.
    public static let maxSlot: UInt32 = (1 << 24) - 1

    @inlinable
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    @inlinable
    public init(_ operation: Operation, slot: UInt32, generation: UInt64) {
        assert(slot <= UserData.maxSlot)
        rawValue = UInt64(operation.rawValue) | UInt64(slot) << 8 | (generation & 0xFFFF_FFFF) << 32
    }

    /// nil for a tag the engine never made (a corrupted or foreign CQE).
    @inlinable
    public var operation: Operation? { Operation(rawValue: UInt8(truncatingIfNeeded: rawValue)) }

    @inlinable
    public var slot: UInt32 { UInt32(truncatingIfNeeded: rawValue >> 8) & UserData.maxSlot }

    /// The low 32 bits of the generation the operation was submitted under.
    @inlinable
    public var generation: UInt32 { UInt32(truncatingIfNeeded: rawValue >> 32) }

    /// Whether this tag was made for a slot whose generation is now `generation`.
    @inlinable
    public func matches(generation: UInt64) -> Bool { self.generation == UInt32(truncatingIfNeeded: generation) }
}
