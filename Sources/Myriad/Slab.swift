import Glibc

/// Names one connection for the life of the process: the worker that owns it, its slab slot
/// and the slot's generation at the time.
///
/// The generation is 64 bits and moves on every time the slot is released, so it never wraps
/// in practice (2^64 reuses of one slot): an ID kept after its connection closed stays dead
/// even when the slot has served millions of connections since. IDs are plain values, `Sendable`
/// and `Hashable`: store them, send them to other threads, use them as dictionary keys.
public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
    /// The worker thread that owns the connection (`WorkerContext.workerIndex`).
    public var worker: UInt16
    public var slot: UInt32
    public var generation: UInt64

    public init(worker: UInt16 = 0, slot: UInt32, generation: UInt64) {
        self.worker = worker
        self.slot = slot
        self.generation = generation
    }

    /// `worker.slot.generation`, e.g. `1.4711.3`.
    public var description: String { "\(worker).\(slot).\(generation)" }
}

/// What a slab keeps in each slot: a plain struct (no references: the slab never
/// deinitializes its slots) with a generation and a link. The server's `ConnectionSlot` and the
/// load generator's `ClientConnection` are the two.
package protocol SlabSlot {
    /// A fresh slot; `Slab.allocate` keeps the generation across it.
    init()
    /// Moves on every time the slot is released (64 bits: never wraps), so every ID and
    /// in-flight tag of an older connection is recognisably stale.
    var generation: UInt64 { get set }
    /// In a free slot, the free list (`Slab.noSlot` ends it); in a used one, the owner's to use.
    var listNext: UInt32 { get set }
    /// Whether the slot is in the free list.
    var isFree: Bool { get }
    /// Makes `isFree` true (the state the owner reads as free).
    mutating func markFree()
    /// Operations submitted for the slot whose final completion has not arrived: a slot is
    /// released only at zero.
    var operationsInFlight: Int { get }
    /// Asserts what else the owner requires of a slot before it is released (debug builds).
    func assertReleasable(_ slot: UInt32)
}

/// A thread's fixed-capacity arena of slots: the server worker's `ConnectionSlot`s and the load
/// generator's `ClientConnection`s, the same code for both roles.
///
/// The arena is reserved up front with one `MAP_NORESERVE` mapping of `capacity` slots and
/// never moves, so slots can be addressed by pointer. Pages become resident only when a slot
/// is first used: allocation prefers recently freed slots (LIFO free list threaded through
/// `listNext`) and otherwise takes the next never-used slot, so RSS follows the peak number
/// of connections, not the capacity.
///
/// Invariants: `occupied + free-list length + (capacity - highWater) == capacity`; a slot
/// is in the free list iff it `isFree`; generations only grow (64 bits: never wrap); a slot is
/// released only with nothing in flight.
package struct Slab<Slot: SlabSlot>: ~Copyable {
    package let slots: UnsafeMutablePointer<Slot>
    package let capacity: UInt32
    @usableFromInline let mappedBytes: Int
    /// The free-list head, the high-water mark and the occupancy, held by pointer so that
    /// every method is non-mutating: the slab is a `let` in its worker, with no exclusivity
    /// check per access.
    @usableFromInline let counts: UnsafeMutablePointer<(freeHead: UInt32, highWater: UInt32, occupied: UInt32)>

    /// Ends the free list.
    package static var noSlot: UInt32 { UInt32.max }

    /// Slots below this have been used at least once.
    @inlinable package var highWater: UInt32 { counts.pointee.highWater }
    @inlinable package var occupied: UInt32 { counts.pointee.occupied }

    package init(capacity: UInt32) throws(SystemError) {
        precondition(capacity > 0 && capacity - 1 <= UserData.maxSlot, "a slab holds at most 2^24 slots (UserData carries 24 bits)")
        precondition(_isPOD(Slot.self), "slab slots must be plain values: the slab never deinitializes them")
        let bytes = Int(capacity) * MemoryLayout<Slot>.stride
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        mappedBytes = (bytes + page - 1) / page * page
        guard let memory = mmap(nil, mappedBytes, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0), memory != MAP_FAILED else {
            throw SystemError("mmap(slab of \(capacity) connections)", errno: errno)
        }
        slots = memory.bindMemory(to: Slot.self, capacity: Int(capacity))
        self.capacity = capacity
        counts = .allocate(capacity: 1)
        counts.initialize(to: (Self.noSlot, 0, 0))
    }

    deinit {
        // Slots are plain values (checked at init): nothing to deinitialize.
        munmap(UnsafeMutableRawPointer(slots), mappedBytes)
        counts.deallocate()
    }

    @inlinable package var isFull: Bool { occupied == capacity }

    @inlinable @inline(__always)
    package subscript(slot: UInt32) -> UnsafeMutablePointer<Slot> {
        precondition(slot < highWater, "slot \(slot) was never allocated")
        return slots + Int(slot)
    }

    /// The slot a completion tagged `tag` is for, in either role. Its generation must match the
    /// tag's: a slot is released only once nothing is in flight for it, so a mismatch (or a
    /// slot never used) is a bug, and stops.
    @inlinable @inline(__always)
    package func slot(completing tag: UserData, _ what: StaticString) -> UnsafeMutablePointer<Slot> {
        let connection = self[tag.slot]
        precondition(tag.matches(generation: connection.pointee.generation), "\(what) for a released slot")
        return connection
    }

    /// Takes a free slot and resets it (keeping its generation), or nil when full.
    @inlinable
    package func allocate() -> UInt32? {
        let slot: UInt32
        if counts.pointee.freeHead != Self.noSlot {
            slot = counts.pointee.freeHead
            let connection = slots + Int(slot)
            assert(connection.pointee.isFree)
            counts.pointee.freeHead = connection.pointee.listNext
            let generation = connection.pointee.generation
            connection.pointee = Slot()
            connection.pointee.generation = generation
        } else if counts.pointee.highWater < capacity {
            slot = counts.pointee.highWater
            counts.pointee.highWater += 1
            (slots + Int(slot)).initialize(to: Slot())
        } else {
            return nil
        }
        counts.pointee.occupied += 1
        return slot
    }

    /// Returns `slot` to the free list and moves its generation on, so every ID and
    /// in-flight tag of the old connection is recognisably stale.
    @inlinable
    package func release(_ slot: UInt32) {
        let connection = self[slot]
        precondition(!connection.pointee.isFree, "double release of slot \(slot)")
        precondition(connection.pointee.operationsInFlight == 0, "slot \(slot) released with operations in flight")
        connection.pointee.assertReleasable(slot)
        connection.pointee.generation &+= 1
        connection.pointee.markFree()
        connection.pointee.listNext = counts.pointee.freeHead
        counts.pointee.freeHead = slot
        counts.pointee.occupied -= 1
    }
}

/// The server worker's slab.
typealias ConnectionSlab = Slab<ConnectionSlot>

extension Slab where Slot == ConnectionSlot {
    /// A connection whose ID matches (slot in use, same generation), or nil if it is gone.
    @inline(__always)
    func live(_ id: ConnectionID) -> UnsafeMutablePointer<ConnectionSlot>? {
        guard id.slot < highWater else { return nil }
        let connection = slots + Int(id.slot)
        guard connection.pointee.generation == id.generation, connection.pointee.state != .free else { return nil }
        return connection
    }
}

extension ConnectionSlot: SendQueueSlot {
    var isFree: Bool { state == .free }
    mutating func markFree() { state = .free }

    func assertReleasable(_ slot: UInt32) {
        assert(side == ConnectionSide.none && sendHead == SendSegment.none && subscriptions == Subscription.none,
               "slot \(slot) released while holding a side entry, queued bytes or subscriptions")
        assert(!flags.contains(.stateInitialized), "slot \(slot) released with its state still set")
    }
}

/// A slab slot that carries its connection's one timing-wheel entry: both roles' connection
/// structs (the server's `ConnectionSlot`, the load generator's `ClientConnection`).
package protocol TimedSlot {
    /// Where the slot's `TimerNode` lies: `MemoryLayout<Self>.offset(of: \.timer)!`.
    static var timerOffset: Int { get }
}

/// Lets the timing wheel reach the `TimerNode` inside each slab slot, for either role.
package struct SlabTimerStore<Slot: TimedSlot>: TimerNodeStore {
    @usableFromInline let slots: UnsafeMutablePointer<Slot>

    package init(slots: UnsafeMutablePointer<Slot>) { self.slots = slots }

    // Inlinable, as the wheel's methods are: the load generator's wheel is specialised in its
    // own module, where an opaque generic call per node would cost every deadline.
    @inlinable @inline(__always)
    package func node(_ index: UInt32) -> UnsafeMutablePointer<TimerNode> {
        (UnsafeMutableRawPointer(slots + Int(index)) + Slot.timerOffset)
            .assumingMemoryBound(to: TimerNode.self)
    }
}

extension ConnectionSlot: TimedSlot {
    static let timerOffset = MemoryLayout<ConnectionSlot>.offset(of: \ConnectionSlot.timer)!
}

/// Bytes of user-space memory one connection occupies while idle: its slab slot.
public let connectionSlotBytes = MemoryLayout<ConnectionSlot>.stride
