/// The wheel's intrusive links for one entry, stored inside the entry's owner (a
/// `ConnectionSlot` in the slab) so that timers cost no allocation and no memory of their own.
@_spi(Benchmarks)
public struct TimerNode: Sendable {
    /// Index of the next node in the slot's circular list; `TimerNode.unlinked` when the
    /// entry is not scheduled.
    public var next: UInt32 = TimerNode.unlinked
    public var prev: UInt32 = TimerNode.unlinked
    /// The deadline's low 32 bits (ticks): the wheel rebuilds the absolute tick from its own
    /// `currentTick`, which is never 2^31 ticks (3.4 years at 50 ms) from a scheduled deadline
    /// (`TimingWheel.maxAheadTicks`). 4 bytes of every connection's slot saved.
    public var deadline: UInt32 = 0

    public static let unlinked = UInt32.max

    public init() {}
}

/// Where the wheel finds the node of entry `index` (0 ..< capacity).
@_spi(Benchmarks)
public protocol TimerNodeStore {
    func node(_ index: UInt32) -> UnsafeMutablePointer<TimerNode>
}

/// A hierarchical timing wheel (Varghese & Lauck, scheme 6) with O(1) schedule, cancel and
/// reschedule, and batched expiry.
///
/// Four levels of 64 slots: level L holds entries due in [64^L, 64^(L+1)) ticks and is
/// cascaded into the levels below when time reaches the entry's 64^L-aligned block, so the
/// top level spans 2^24 ticks (46.6 hours at a 10 ms tick, 9.7 days at 50 ms). A deadline
/// further out is parked at the top level's horizon and re-inserted at every cascade until
/// it is within reach: it fires exactly on its tick, never early.
///
/// Slots are circular doubly linked lists threaded through the entries' `TimerNode`s, with
/// one sentinel node per slot owned by the wheel (indices >= capacity), so unlinking needs no
/// knowledge of which slot an entry is in. A 64-bit occupancy mask per level finds the next
/// non-empty slot with one count-trailing-zeros, so idle stretches are skipped in O(1) and
/// `nextEventTick` tells the event loop how long it may sleep.
///
/// Time only moves forward, by `nextExpired(upTo:)`; the wheel never reads a clock, so tests
/// drive it by hand.
///
/// Its methods are `@inlinable` so that a wheel over another module's slot (the load
/// generator's client slab) is specialised there like the server's is here; unspecialised,
/// every node access was a generic call through the store's witness table.
///
/// A class, one per worker, rather than a `~Copyable` struct: Swift 6.3 does not run the
/// `deinit` of a generic noncopyable struct destroyed from another file in a non-WMO (debug)
/// build, which leaked every wheel under AddressSanitizer.
@_spi(Benchmarks)
public final class TimingWheel<Store: TimerNodeStore> {
    @inlinable public static var levelCount: Int { 4 }
    @inlinable public static var slotBits: Int { 6 }
    @inlinable public static var slotCount: Int { 1 << slotBits }
    /// Ticks the wheel covers without re-parking: 64^4.
    @inlinable public static var horizonTicks: UInt64 { 1 << UInt64(slotBits * levelCount) }
    /// The furthest a deadline may lie ahead (a later one is brought in to this): nodes keep
    /// 32-bit deadlines, read relative to `currentTick`.
    @inlinable public static var maxAheadTicks: UInt64 { (1 << 31) - 1 }

    @usableFromInline let store: Store
    @usableFromInline let capacity: UInt32
    /// 4 x 64 slot sentinels, then the sentinel of the list of entries due now.
    @usableFromInline let sentinels: UnsafeMutablePointer<TimerNode>
    @usableFromInline let occupancy: UnsafeMutablePointer<UInt64>
    /// `currentTick` and `count`, held by pointer: a class's stored `var` costs a dynamic
    /// exclusivity check per access, and these are touched on every operation.
    @usableFromInline let state: UnsafeMutablePointer<(currentTick: UInt64, count: Int)>

    /// Every tick <= `currentTick` has been processed.
    @inlinable public var currentTick: UInt64 {
        get { state.pointee.currentTick }
        set { state.pointee.currentTick = newValue }
    }

    /// Entries scheduled, including due ones not yet handed out.
    @inlinable public var count: Int {
        get { state.pointee.count }
        set { state.pointee.count = newValue }
    }

    @inlinable var expiringSentinel: UInt32 { capacity &+ UInt32(Self.levelCount * Self.slotCount) }

    public init(store: Store, capacity: UInt32, startTick: UInt64) {
        precondition(capacity < UInt32.max - 512, "capacity leaves no room for sentinel indices")
        self.store = store
        self.capacity = capacity
        state = .allocate(capacity: 1)
        state.initialize(to: (startTick, 0))
        let sentinelCount = Self.levelCount * Self.slotCount + 1
        sentinels = .allocate(capacity: sentinelCount)
        for offset in 0..<sentinelCount {
            let index = capacity &+ UInt32(offset)
            sentinels[offset] = TimerNode()
            sentinels[offset].next = index
            sentinels[offset].prev = index
        }
        occupancy = .allocate(capacity: Self.levelCount)
        occupancy.initialize(repeating: 0, count: Self.levelCount)
    }

    deinit {
        sentinels.deallocate()
        occupancy.deallocate()
        state.deallocate()
    }

    @inlinable @inline(__always)
    func node(_ index: UInt32) -> UnsafeMutablePointer<TimerNode> {
        index < capacity ? store.node(index) : sentinels + Int(index &- capacity)
    }

    @inlinable public func isScheduled(_ entry: UInt32) -> Bool {
        node(entry).pointee.next != TimerNode.unlinked
    }

    @inlinable public func deadline(of entry: UInt32) -> UInt64? {
        let n = node(entry).pointee
        return n.next == TimerNode.unlinked ? nil : absolute(n.deadline)
    }

    /// The absolute tick of a stored 32-bit deadline: the one within 2^31 ticks of `currentTick`.
    @inlinable @inline(__always)
    func absolute(_ stored: UInt32) -> UInt64 {
        let delta = Int64(Int32(bitPattern: stored &- UInt32(truncatingIfNeeded: currentTick)))
        return UInt64(bitPattern: Int64(bitPattern: currentTick) &+ delta)
    }

    /// Schedules `entry` to expire at `deadline` (absolute ticks), replacing any earlier
    /// schedule. A deadline at or before `currentTick` makes the entry due at once: the next
    /// `nextExpired` returns it. A deadline more than `maxAheadTicks` ahead is brought in to
    /// that (the entry fires then, early, and its owner schedules it again: the engine's
    /// keep-alive re-reads its stamps when an entry fires); one more than that behind, to now.
    @inlinable public func schedule(_ entry: UInt32, at deadline: UInt64) {
        precondition(entry < capacity, "timer entry out of range")
        if isScheduled(entry) { unlink(entry) } else { count &+= 1 }
        let bounded = deadline > currentTick ? min(deadline, currentTick &+ Self.maxAheadTicks)
            : max(deadline, currentTick &- min(currentTick, Self.maxAheadTicks))
        node(entry).pointee.deadline = UInt32(truncatingIfNeeded: bounded)
        insert(entry)
    }

    /// Removes `entry` from the wheel; a no-op when it is not scheduled. Safe on an entry that
    /// is due but not yet handed out (it will not be).
    @inlinable public func cancel(_ entry: UInt32) {
        precondition(entry < capacity, "timer entry out of range")
        guard isScheduled(entry) else { return }
        unlink(entry)
        count &-= 1
    }

    /// The next due entry with a deadline <= `tick`, advancing time as far as `tick` while
    /// looking for one; nil once everything due by `tick` has been handed out (and then
    /// `currentTick == tick`). Handing out unschedules the entry, so the caller may
    /// reschedule it, or cancel or reschedule any other entry, before asking for the next.
    @inlinable public func nextExpired(upTo tick: UInt64) -> UInt32? {
        while true {
            let expiring = expiringSentinel
            let first = node(expiring).pointee.next
            if first != expiring {
                unlink(first)
                count &-= 1
                return first
            }
            guard currentTick < tick else { return nil }
            guard let next = nextEventTick(), next <= tick else {
                currentTick = tick
                return nil
            }
            currentTick = next
            processTick(next)
        }
    }

    /// The earliest tick after `currentTick` at which something happens (an expiry or a
    /// cascade), or nil when nothing is scheduled. Entries already due make it `currentTick`.
    @inlinable public func nextEventTick() -> UInt64? {
        let expiring = expiringSentinel
        if node(expiring).pointee.next != expiring { return currentTick }
        var best: UInt64?
        for level in 0..<Self.levelCount {
            let mask = occupancy[level]
            guard mask != 0 else { continue }
            let shift = UInt64(level * Self.slotBits)
            let position = currentTick >> shift
            let start = (position &+ 1) & UInt64(Self.slotCount - 1)
            let rotated = start == 0 ? mask : (mask >> start) | (mask << (64 &- start))
            let distance = UInt64(rotated.trailingZeroBitCount)
            let candidate = (position &+ 1 &+ distance) << shift
            if best == nil || candidate < best! { best = candidate }
        }
        return best
    }

    // MARK: - Lists

    @inlinable @inline(__always)
    func insert(_ entry: UInt32) {
        let deadline = absolute(node(entry).pointee.deadline)
        guard deadline > currentTick else {
            append(entry, to: expiringSentinel)
            return
        }
        var delta = deadline &- currentTick
        var effective = deadline
        if delta >= Self.horizonTicks {
            // Beyond the top level: park at the horizon, re-insert at each cascade.
            delta = Self.horizonTicks &- 1
            effective = currentTick &+ delta
        }
        let level = (63 &- delta.leadingZeroBitCount) / Self.slotBits
        assert(level < Self.levelCount)
        let slot = Int(effective >> UInt64(level * Self.slotBits)) & (Self.slotCount - 1)
        occupancy[level] |= 1 << UInt64(slot)
        append(entry, to: capacity &+ UInt32(level * Self.slotCount + slot))
    }

    @inlinable @inline(__always)
    func append(_ entry: UInt32, to sentinel: UInt32) {
        let head = node(sentinel)
        let last = head.pointee.prev
        let entryNode = node(entry)
        entryNode.pointee.next = sentinel
        entryNode.pointee.prev = last
        node(last).pointee.next = entry
        head.pointee.prev = entry
    }

    @inlinable @inline(__always)
    func unlink(_ entry: UInt32) {
        let entryNode = node(entry)
        let next = entryNode.pointee.next
        let prev = entryNode.pointee.prev
        assert(next != TimerNode.unlinked && prev != TimerNode.unlinked)
        node(prev).pointee.next = next
        node(next).pointee.prev = prev
        entryNode.pointee.next = TimerNode.unlinked
        entryNode.pointee.prev = TimerNode.unlinked
        // A list that became empty leaves only its sentinel, linked to itself.
        if next == prev && next >= capacity {
            clearOccupancy(sentinel: next)
        }
    }

    @inlinable @inline(__always)
    func clearOccupancy(sentinel: UInt32) {
        let offset = Int(sentinel &- capacity)
        guard offset < Self.levelCount * Self.slotCount else { return }  // the due list
        occupancy[offset / Self.slotCount] &= ~(1 << UInt64(offset % Self.slotCount))
    }

    /// Cascades every level whose block starts at `tick` (top level first, so entries can
    /// fall more than one level), then makes level 0's slot for `tick` due.
    @inlinable func processTick(_ tick: UInt64) {
        for level in stride(from: Self.levelCount - 1, through: 1, by: -1) {
            let shift = UInt64(level * Self.slotBits)
            guard tick & ((1 << shift) - 1) == 0 else { continue }
            let slot = Int(tick >> shift) & (Self.slotCount - 1)
            guard occupancy[level] & (1 << UInt64(slot)) != 0 else { continue }
            let sentinel = capacity &+ UInt32(level * Self.slotCount + slot)
            while true {
                let entry = node(sentinel).pointee.next
                if entry == sentinel { break }
                unlink(entry)
                insert(entry)
            }
        }
        let slot = Int(tick) & (Self.slotCount - 1)
        guard occupancy[0] & (1 << UInt64(slot)) != 0 else { return }
        let sentinel = capacity &+ UInt32(slot)
        while true {
            let entry = node(sentinel).pointee.next
            if entry == sentinel { break }
            assert(node(entry).pointee.deadline == UInt32(truncatingIfNeeded: tick), "level-0 entry in the wrong slot")
            unlink(entry)
            append(entry, to: expiringSentinel)
        }
    }
}
