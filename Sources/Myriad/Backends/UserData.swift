/// What an SQE asked for, carried back in its CQE.
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
}

/// The 64-bit tag of an SQE and its CQE: operation, slab slot, and the slot's generation.
///
/// Layout: bits 0-7 operation, 8-39 slot, 40-63 generation (24 bits). A completion whose
/// generation differs from its slot's current one belongs to a connection that is gone
/// and is dropped. The generation wraps after 16,777,216 reuses of one slot; a completion
/// would have to be outstanding across all of them to be mistaken, which the engine rules
/// out by releasing a slot only when none of its operations is in flight.
public struct UserData: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt64

    public static let generationBits = 24
    public static let generationMask: UInt32 = (1 << 24) - 1

    @inlinable
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    @inlinable
    public init(_ operation: Operation, slot: UInt32, generation: UInt32) {
        assert(generation <= UserData.generationMask)
        rawValue = UInt64(operation.rawValue) | UInt64(slot) << 8 | UInt64(generation) << 40
    }

    /// nil for a tag the engine never made (a corrupted or foreign CQE).
    @inlinable
    public var operation: Operation? { Operation(rawValue: UInt8(truncatingIfNeeded: rawValue)) }

    @inlinable
    public var slot: UInt32 { UInt32(truncatingIfNeeded: rawValue >> 8) }

    @inlinable
    public var generation: UInt32 { UInt32(truncatingIfNeeded: rawValue >> 40) }
}
