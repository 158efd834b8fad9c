import Testing
@_spi(Benchmarks) @testable import Myriad

@Suite struct SlabTests {
    struct SlabFull: Error {}

    /// Issue 15's budget: an idle open connection is its slot, at most 96 bytes. What only a
    /// busy connection needs (the upgrade parser, a decoder mid-frame, partial messages) lives
    /// in the side table, and the send queue in segments: none of it may move back in. The
    /// issue allows 96 B; the slot is 64 B, one cache line (the send queue's tail and byte
    /// count live in its first segment, the timer's deadline is 32 bits, the starved list is
    /// the worker's), and this holds it there: a field added costs every idle connection, so
    /// it must be a decision, not an accident.
    @Test func theSlotStaysWithinItsBudget() {
        #expect(MemoryLayout<ConnectionSlot>.stride <= 64, "ConnectionSlot is \(MemoryLayout<ConnectionSlot>.stride) B")
        #expect(connectionSlotBytes == MemoryLayout<ConnectionSlot>.stride)
    }

    /// Allocates a slot and marks it in use, as the worker does on accept.
    func open(_ slab: inout ConnectionSlab) throws -> ConnectionID {
        guard let slot = slab.allocate() else { throw SlabFull() }
        slab[slot].pointee.state = .handshaking
        return ConnectionID(slot: slot, generation: slab[slot].pointee.generation)
    }

    @Test func allocatesUntilFull() throws {
        var slab = try ConnectionSlab(capacity: 8)
        #expect(slab.occupied == 0 && slab.highWater == 0 && !slab.isFull)
        var ids: [ConnectionID] = []
        for _ in 0..<8 { ids.append(try open(&slab)) }
        // Never-used slots are taken in order, all at generation 0.
        #expect(ids == (0..<8).map { ConnectionID(slot: $0, generation: 0) })
        #expect(slab.isFull && slab.occupied == 8 && slab.highWater == 8)
        #expect(slab.allocate() == nil)
        #expect(slab.allocate() == nil)
        #expect(slab.occupied == 8)
        for id in ids { #expect(slab.live(id) == slab[id.slot]) }
    }

    @Test func releaseMovesTheGenerationOnAndMakesIDsStale() throws {
        var slab = try ConnectionSlab(capacity: 4)
        let first = try open(&slab)
        slab[first.slot].pointee.handle = 42
        slab[first.slot].pointee.timer.deadline = 99
        slab.release(first.slot)
        #expect(slab.live(first) == nil)
        #expect(slab.occupied == 0)
        #expect(slab[first.slot].pointee.generation == first.generation + 1)
        #expect(slab[first.slot].pointee.state == .free)

        // The slot comes back with the new generation and fresh fields; the old ID stays stale.
        let second = try open(&slab)
        #expect(second.slot == first.slot)
        #expect(second.generation == first.generation + 1)
        #expect(slab[second.slot].pointee.handle == -1)
        #expect(slab[second.slot].pointee.timer.deadline == 0)
        #expect(slab[second.slot].pointee.timer.next == TimerNode.unlinked)
        #expect(slab.live(first) == nil)
        #expect(slab.live(second) != nil)
        // Allocated but not yet in use is not live either.
        slab.release(second.slot)
        let allocated = slab.allocate()
        let slot = try #require(allocated)
        #expect(slab.live(ConnectionID(slot: slot, generation: slab[slot].pointee.generation)) == nil)
    }

    @Test func liveRejectsSlotsNeverUsed() throws {
        var slab = try ConnectionSlab(capacity: 4)
        #expect(slab.live(ConnectionID(slot: 0, generation: 0)) == nil)
        _ = try open(&slab)
        #expect(slab.live(ConnectionID(slot: 1, generation: 0)) == nil)
        #expect(slab.live(ConnectionID(slot: 3, generation: 0)) == nil)
        #expect(slab.live(ConnectionID(slot: UInt32.max - 1, generation: 0)) == nil)
        #expect(slab.live(ConnectionID(slot: 0, generation: 1)) == nil)
    }

    /// A kept ID must stay dead however often its slot is reused (issue 12, defect 6): the
    /// generation used to be 24 bits, so after 16,777,216 reuses of one slot an old ID named
    /// the slot's new connection again.
    @Test func aKeptIDStaysDeadPastTwoToTheTwentyFourReuses() throws {
        var slab = try ConnectionSlab(capacity: 1)
        let kept = try open(&slab)
        #expect(kept.generation == 0)
        // Fast-forward the slot to just before the old 24-bit wrap, then reuse it.
        slab.release(kept.slot)
        slab[kept.slot].pointee.generation = (1 << 24) - 1
        let before = try open(&slab)
        slab.release(before.slot)
        let after = try open(&slab)
        #expect(after.generation == 1 << 24)
        #expect(slab.live(kept) == nil, "the ID of the slot's first connection came back to life")
        #expect(slab.live(before) == nil)
        #expect(slab.live(after) != nil)
        // And past 32 bits, where the completion tag's half of the generation wraps.
        slab.release(after.slot)
        slab[kept.slot].pointee.generation = UInt64(UInt32.max)
        let wrappedTag = try open(&slab)
        slab.release(wrappedTag.slot)
        let beyond = try open(&slab)
        #expect(beyond.generation == 1 << 32)
        #expect(slab.live(kept) == nil)
        #expect(slab.live(ConnectionID(slot: kept.slot, generation: 0)) == nil)
    }

    @Test func freedSlotsAreReusedLastInFirstOut() throws {
        var slab = try ConnectionSlab(capacity: 16)
        var ids: [ConnectionID] = []
        for _ in 0..<10 { ids.append(try open(&slab)) }
        for slot in [3, 7, 1, 9] as [UInt32] { slab.release(slot) }
        #expect(slab.occupied == 6)
        // Most recently freed first, and the high-water mark stays put while the free list lasts.
        for expected in [9, 1, 7, 3] as [UInt32] {
            let id = try open(&slab)
            #expect(id.slot == expected)
            #expect(id.generation == 1)
            #expect(slab.highWater == 10)
        }
        // Free list empty: only now does a never-used slot get touched.
        let fresh = try open(&slab)
        #expect(fresh.slot == 10)
        #expect(slab.highWater == 11)
    }

    @Test func highWaterFollowsThePeakThroughChurn() throws {
        let capacity: UInt32 = 256
        var slab = try ConnectionSlab(capacity: capacity)
        var random = SeededRandom(seed: 42)
        var live: [ConnectionID] = []
        var peak = 0
        for _ in 0..<20_000 {
            // Drift the population up and down so the peak is reached and left several times.
            if live.isEmpty || (random.chance(55) && live.count < Int(capacity)) {
                let highWater = slab.highWater
                let id = try open(&slab)
                #expect(slab.live(id) != nil)
                live.append(id)
                peak = max(peak, live.count)
                // A never-used slot only when nothing freed was waiting.
                #expect(slab.highWater == highWater || Int(highWater) == live.count - 1)
            } else {
                let id = live.remove(at: Int(random.below(UInt64(live.count))))
                slab.release(id.slot)
                #expect(slab.live(id) == nil)
            }
            #expect(Int(slab.occupied) == live.count)
            #expect(Int(slab.highWater) == peak)
        }
        for id in live { slab.release(id.slot) }
        #expect(slab.occupied == 0)
        #expect(Int(slab.highWater) == peak)
        // Every slot is still reachable: the free list plus the untouched rest fill it up.
        for _ in 0..<capacity { #expect(slab.allocate() != nil) }
        #expect(slab.allocate() == nil)
        #expect(slab.highWater == capacity)
    }

    @Test func timerStoreReachesEachSlotsNode() throws {
        var slab = try ConnectionSlab(capacity: 4)
        for _ in 0..<4 { _ = try open(&slab) }
        let store = SlabTimerStore(slots: slab.slots)
        for slot in 0..<4 as Range<UInt32> {
            slab[slot].pointee.timer.deadline = 1000 + slot
            #expect(store.node(slot).pointee.deadline == 1000 + slot)
        }
    }
}
