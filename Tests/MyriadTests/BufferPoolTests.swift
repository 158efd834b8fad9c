import Testing
@testable import Myriad

@Suite struct BufferPoolTests {
    @Test func sizeClassBoundaries() {
        // 128 MiB: the largest message (64 MiB) plus its frame header fits one buffer.
        #expect(BufferPool.largestSize == 128 << 20)
        #expect(BufferPool.sizeClass(for: 0) == 0)
        #expect(BufferPool.sizeClass(for: 1) == 0)
        #expect(BufferPool.sizeClass(for: 256) == 0)
        #expect(BufferPool.sizeClass(for: 257) == 1)
        #expect(BufferPool.sizeClass(for: 512) == 1)
        #expect(BufferPool.sizeClass(for: 513) == 2)
        for shift in 8...27 {
            let size = 1 << shift
            let sizeClass = UInt8(shift - 8)
            #expect(BufferPool.size(ofClass: sizeClass) == size)
            #expect(BufferPool.sizeClass(for: size) == sizeClass)
            #expect(BufferPool.sizeClass(for: size - 1) == (shift == 8 ? 0 : sizeClass))
            #expect(BufferPool.sizeClass(for: size + 1) == (shift == 27 ? nil : sizeClass + 1))
        }
        #expect(BufferPool.sizeClass(for: (128 << 20) + 1) == nil)
        #expect(BufferPool.sizeClass(for: Int.max) == nil)
        #expect(BufferPool.sizeClass(for: 128 << 20) == UInt8(BufferPool.classCount - 1))
    }

    @Test func acquireGivesTheSmallestClass() throws {
        let pool = BufferPool()
        var small = try #require(pool.acquire(minimumBytes: 0))
        #expect(small.capacity == 256 && small.count == 0 && small.isAllocated)
        var odd = try #require(pool.acquire(minimumBytes: 1000))
        #expect(odd.capacity == 1024)
        var largest = try #require(pool.acquire(minimumBytes: 128 << 20))
        #expect(largest.capacity == 128 << 20)
        #expect(pool.acquire(minimumBytes: (128 << 20) + 1) == nil)
        #expect(pool.lastFailure == .tooLarge)
        #expect(pool.outstandingCount == 3)
        pool.release(&small)
        pool.release(&odd)
        pool.release(&largest)
        #expect(!small.isAllocated && small.capacity == 0)
    }

    @Test func appendGrowsAndKeepsContents() throws {
        let pool = BufferPool()
        var buffer = PooledBuffer()
        var expected: [UInt8] = []
        var random = SeededRandom(seed: 3)
        while expected.count < 200_000 {
            let chunk = (0..<Int(random.below(5000))).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            let appended = chunk.withUnsafeBytes { pool.append($0, to: &buffer) }
            #expect(appended)
            expected += chunk
            #expect(Int(buffer.count) == expected.count)
            // Always the smallest class that holds it, and only one buffer held.
            #expect(buffer.capacity == BufferPool.size(ofClass: BufferPool.sizeClass(for: expected.count)!))
            #expect(pool.outstandingCount == 1)
            #expect(pool.outstandingBytes == buffer.capacity)
            #expect(Array(buffer.bytes) == expected)
        }
        pool.release(&buffer)
        #expect(pool.outstandingCount == 0 && pool.outstandingBytes == 0)
    }

    /// An empty frame makes one empty chunk, so a fragmented message that starts with an
    /// empty fragment appends zero bytes to a connection's empty `inbound` handle.
    @Test func emptyAppendToAnEmptyHandle() throws {
        let pool = BufferPool()
        var message = PooledBuffer()
        #expect(pool.append(UnsafeRawBufferPointer(start: nil, count: 0), to: &message))
        #expect(message.count == 0)
        let empty: [UInt8] = []
        #expect(empty.withUnsafeBytes { pool.append($0, to: &message) })
        let hello = Array("hello".utf8)
        #expect(hello.withUnsafeBytes { pool.append($0, to: &message) })
        #expect(Array(message.bytes) == hello)
        var other = PooledBuffer()
        #expect(pool.reserve(0, in: &other) != nil)
        pool.release(&message)
        pool.release(&other)
        #expect(pool.outstandingCount == 0 && pool.outstandingBytes == 0)
    }

    @Test func growthPastTheLargestClassFailsAndLeavesTheBufferAlone() throws {
        let pool = BufferPool()
        var buffer = PooledBuffer()
        let bytes: [UInt8] = [1, 2, 3, 4, 5]
        #expect(bytes.withUnsafeBytes { pool.append($0, to: &buffer) })
        let base = buffer.base
        #expect(pool.reserve((128 << 20) - 4, in: &buffer) == nil)
        #expect(buffer.base == base && buffer.count == 5 && buffer.capacity == 256)
        #expect(Array(buffer.bytes) == bytes)
        #expect(pool.outstandingCount == 1 && pool.outstandingBytes == 256)
        // Exactly the largest class still fits.
        let destination = try #require(pool.reserve((128 << 20) - 5, in: &buffer))
        #expect(destination == buffer.base! + 5)
        #expect(buffer.capacity == 128 << 20 && Array(buffer.bytes) == bytes)
        #expect(pool.outstandingCount == 1 && pool.outstandingBytes == 128 << 20)
        pool.release(&buffer)
    }

    @Test func steadyStateAllocatesNothing() throws {
        let pool = BufferPool()
        let sizes = [100, 256, 300, 1000, 4096, 5000, 70_000, 1 << 20]
        let chunk = [UInt8](repeating: 0x5A, count: 1500)
        func cycle() {
            // A few buffers held at once, as a handful of connections would.
            var held = sizes.map { pool.acquire(minimumBytes: $0)! }
            // A fragmented message reassembled chunk by chunk, growing through several classes.
            var message = PooledBuffer()
            for _ in 0..<40 { _ = chunk.withUnsafeBytes { pool.append($0, to: &message) } }
            pool.release(&message)
            for index in held.indices { pool.release(&held[index]) }
        }
        cycle()
        let warm = pool.mallocCount
        #expect(warm > 0)
        for _ in 0..<1000 { cycle() }
        #expect(pool.mallocCount == warm)
        #expect(pool.outstandingCount == 0 && pool.outstandingBytes == 0)
    }

    @Test func outstandingAccounting() throws {
        let pool = BufferPool()
        var a = try #require(pool.acquire(minimumBytes: 300))
        var b = try #require(pool.acquire(minimumBytes: 10))
        #expect(pool.outstandingCount == 2 && pool.outstandingBytes == 512 + 256)
        pool.release(&a)
        #expect(pool.outstandingCount == 1 && pool.outstandingBytes == 256)
        pool.release(&a)  // empty handle: no-op
        #expect(pool.outstandingCount == 1 && pool.outstandingBytes == 256)
        // Growing swaps the buffer: still one outstanding, of the new size.
        let bytes = [UInt8](repeating: 1, count: 3000)
        #expect(bytes.withUnsafeBytes { pool.append($0, to: &b) })
        #expect(pool.outstandingCount == 1 && pool.outstandingBytes == 4096)
        pool.release(&b)
        #expect(pool.outstandingCount == 0 && pool.outstandingBytes == 0)
    }

    @Test func retentionCapFreesTheExcess() throws {
        // 1 KiB per class: four 256 B buffers kept, and never fewer than two of any class.
        let pool = BufferPool(retainedBytesPerClass: 1024)
        for (size, count, kept) in [(256, 10, 4), (512, 5, 2), (4096, 5, 2), (1 << 20, 3, 2)] {
            let before = pool.mallocCount
            var buffers = (0..<count).map { _ in pool.acquire(minimumBytes: size)! }
            #expect(pool.mallocCount == before + count)
            for index in buffers.indices { pool.release(&buffers[index]) }
            buffers = (0..<count).map { _ in pool.acquire(minimumBytes: size)! }
            #expect(pool.mallocCount == before + 2 * count - kept, "size \(size)")
            for index in buffers.indices { pool.release(&buffers[index]) }
        }
        #expect(pool.outstandingCount == 0)
    }

    /// MYRIAD_BUFFER_BUDGET: inbound and outbound buffers together stay within the budget,
    /// inbound within half of it; exempt buffers are never refused; growth counts only the
    /// difference; releases give the budget back.
    @Test func theBudgetBoundsWhatPeersControl() throws {
        let pool = BufferPool(budgetBytes: 4096)
        var first = try #require(pool.acquire(minimumBytes: 1024, budget: .inbound))
        var second = try #require(pool.acquire(minimumBytes: 1024, budget: .inbound))
        #expect(pool.acquire(minimumBytes: 1, budget: .inbound) == nil, "inbound is capped at half")
        #expect(pool.lastFailure == .overBudget)
        var out = try #require(pool.acquire(minimumBytes: 2048, budget: .outbound))
        #expect(pool.acquire(minimumBytes: 1, budget: .outbound) == nil, "the whole budget is used")
        var control = try #require(pool.acquire(minimumBytes: 100_000, budget: .exempt))
        #expect(pool.budgetedBytes.inbound == 2048 && pool.budgetedBytes.outbound == 2048)
        pool.release(&out)
        // Growing a 1 KiB inbound buffer to 2 KiB needs 1 KiB more than it has: over the half.
        #expect(pool.reserve(2048, in: &first, budget: .inbound) == nil)
        pool.release(&second)
        let grown = pool.reserve(1500, in: &first, budget: .inbound)
        #expect(grown != nil && first.capacity == 2048 && first.budget == .inbound)
        #expect(pool.budgetedBytes.inbound == 2048)
        pool.release(&first)
        pool.release(&control)
        #expect(pool.budgetedBytes.inbound == 0 && pool.budgetedBytes.outbound == 0 && pool.outstandingBytes == 0)
    }

    /// Issue 15: free buffers that sat unused for a whole interval go back to malloc; a class
    /// in steady use keeps what it uses.
    @Test func trimGivesBackWhatSatUnused() throws {
        let pool = BufferPool()
        var burst: [PooledBuffer] = []
        for _ in 0..<100 { burst.append(try #require(pool.acquire(minimumBytes: 1024))) }
        for index in burst.indices { pool.release(&burst[index]) }
        #expect(pool.freeBytes == 100 * 1024)
        #expect(pool.trim() == 0)  // the burst was in this interval
        #expect(pool.trim() == 98 * 1024)  // unused for a whole interval: all but two
        #expect(pool.freeBytes == 2 * 1024)
        // Steady use of ten: kept across trims.
        for _ in 0..<3 {
            var steady: [PooledBuffer] = []
            for _ in 0..<10 { steady.append(try #require(pool.acquire(minimumBytes: 1024))) }
            for index in steady.indices { pool.release(&steady[index]) }
            #expect(pool.trim() == 0)
        }
        #expect(pool.freeBytes == 10 * 1024)
        #expect(pool.trim() == 8 * 1024)
        // Larger classes keep none: a burst of 64 KiB messages goes back whole.
        var large: [PooledBuffer] = []
        for _ in 0..<5 { large.append(try #require(pool.acquire(minimumBytes: 64 << 10))) }
        for index in large.indices { pool.release(&large[index]) }
        #expect(pool.trim() == 0)
        #expect(pool.trim() == 5 * (64 << 10))
        #expect(pool.freeBytes == 2 * 1024 && !pool.holdsMoreThanItKeeps)
        #expect(pool.outstandingCount == 0)
    }
}

/// Issue 15: the send segment arena grows by doubling under a burst and goes back to its
/// initial size once no segment is in use (the worker's trim).
@Suite struct SendSegmentPoolTests {
    @Test func aGrownArenaShrinksOnlyWhenEmpty() {
        let pool = SendSegmentPool(initialCapacity: 4)
        var taken = (0..<40).map { _ in pool.allocate() }
        #expect(pool.capacity == 64 && pool.inUse == 40)
        #expect(!pool.canShrink && pool.shrinkIfEmpty() == 0)  // segments in use: indices held
        for index in taken { pool.free(index) }
        taken.removeAll()
        #expect(pool.canShrink)
        #expect(pool.shrinkIfEmpty() == 60 * MemoryLayout<SendSegment>.stride)
        #expect(pool.capacity == 4 && !pool.canShrink)
        // Still a working arena: four from the initial capacity, the fifth grows it again.
        taken = (0..<5).map { _ in pool.allocate() }
        #expect(Set(taken).count == 5 && pool.capacity == 8)
        for index in taken { pool.free(index) }
    }
}
