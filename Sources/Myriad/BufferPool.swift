import Glibc

/// A buffer borrowed from a worker's `BufferPool`: partial handshakes, fragmented messages
/// being reassembled, control payloads split across receives, and send queues. Sixteen
/// bytes in a `ConnectionSlot`; all zero when the connection holds nothing.
package struct PooledBuffer {
    package var base: UnsafeMutableRawPointer? = nil
    /// Bytes in use, from `base`.
    package var count: UInt32 = 0
    package var sizeClass: UInt8 = 0
    /// Which part of the worker's memory budget the buffer counts against.
    package var budget: PoolBudget = .exempt

    package init() {}

    init(base: UnsafeMutableRawPointer?, count: UInt32, sizeClass: UInt8, budget: PoolBudget) {
        self.base = base
        self.count = count
        self.sizeClass = sizeClass
        self.budget = budget
    }

    package var isAllocated: Bool { base != nil }
    package var capacity: Int { base == nil ? 0 : BufferPool.size(ofClass: sizeClass) }
    package var bytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base, count: Int(count))
    }
}

/// What a buffer is for, as the worker's memory budget (MYRIAD_BUFFER_BUDGET) sees it.
package enum PoolBudget: UInt8 {
    /// Bytes a peer sends us that we hold: partial upgrade requests and messages being
    /// reassembled. Limited to half the budget, so peers that hold unfinished messages cannot
    /// starve the sends.
    case inbound
    /// Data frames queued for sending.
    case outbound
    /// Small, bounded per connection, and needed to end a connection properly: pongs, close
    /// frames, HTTP responses, control payloads split across receives. Never refused.
    case exempt
}

/// Why the pool returned nothing.
package enum PoolFailure: Equatable {
    case none
    /// The request is larger than the largest size class.
    case tooLarge
    /// The worker's MYRIAD_BUFFER_BUDGET (or its inbound half) would be exceeded.
    case overBudget
    /// malloc failed.
    case outOfMemory
}

/// Per-worker pool of power-of-two buffers from 256 B to 128 MiB (the largest message, 64
/// MiB, plus its frame header).
///
/// Buffers come from malloc the first time a size is needed and go back to a free list
/// afterwards, so a steady state (the same message sizes over and over) allocates nothing.
/// Each size class keeps at most `retainedBytesPerClass` of free buffers (and at least
/// two); the rest return to malloc, so a burst of large messages does not pin memory.
///
/// Memory that peers control is bounded by `budgetBytes`: buffers lent for `.inbound` and
/// `.outbound` use together at most that many bytes (size-class bytes), `.inbound` at most
/// half of it. A request that would pass either limit is refused (`lastFailure` says why) and
/// the worker closes the connection that asked, with 1013.
package final class BufferPool {
    static let smallestShift = 8
    static let classCount = 20
    static var largestSize: Int { size(ofClass: UInt8(classCount - 1)) }

    @inline(__always)
    package static func size(ofClass sizeClass: UInt8) -> Int { 1 << (smallestShift + Int(sizeClass)) }

    /// The smallest class holding `bytes`, or nil beyond the largest.
    @inline(__always)
    static func sizeClass(for bytes: Int) -> UInt8? {
        guard bytes <= largestSize else { return nil }
        let needed = max(bytes, 1 << smallestShift)
        let shift = Int.bitWidth - (needed - 1).leadingZeroBitCount
        return UInt8(shift - smallestShift)
    }

    private let free: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutableRawPointer>>
    private let freeCounts: UnsafeMutablePointer<Int>
    private let freeLimits: UnsafeMutablePointer<Int>
    /// Per class: the fewest free buffers since the last `trim`, i.e. how many sat unused
    /// through the whole interval.
    private let lowWater: UnsafeMutablePointer<Int>
    /// Bytes of free buffers kept for reuse (a gauge for the stats line).
    private(set) var freeBytes = 0
    /// Buffers handed out and not yet returned, and their bytes.
    package private(set) var outstandingCount = 0
    package private(set) var outstandingBytes = 0
    /// Calls to malloc so far: flat in steady state.
    private(set) var mallocCount = 0
    /// Bytes lent out per budget (indexed by `PoolBudget.rawValue`).
    private(set) var budgetedBytes: (inbound: Int, outbound: Int) = (0, 0)
    /// The most `.inbound` and `.outbound` buffers may hold together (size-class bytes).
    let budgetBytes: Int
    /// Why the last `acquire`, `reserve` or `append` that failed did.
    package private(set) var lastFailure = PoolFailure.none

    package init(retainedBytesPerClass: Int = 8 << 20, budgetBytes: Int = .max) {
        self.budgetBytes = budgetBytes
        free = .allocate(capacity: Self.classCount)
        freeCounts = .allocate(capacity: Self.classCount)
        freeLimits = .allocate(capacity: Self.classCount)
        lowWater = .allocate(capacity: Self.classCount)
        lowWater.initialize(repeating: 0, count: Self.classCount)
        for sizeClass in 0..<Self.classCount {
            let limit = max(2, retainedBytesPerClass / Self.size(ofClass: UInt8(sizeClass)))
            freeLimits[sizeClass] = limit
            freeCounts[sizeClass] = 0
            free[sizeClass] = .allocate(capacity: limit)
        }
    }

    deinit {
        for sizeClass in 0..<Self.classCount {
            for index in 0..<freeCounts[sizeClass] { Glibc.free(free[sizeClass][index]) }
            free[sizeClass].deallocate()
        }
        free.deallocate()
        freeCounts.deallocate()
        freeLimits.deallocate()
        lowWater.deallocate()
    }

    /// An empty buffer of at least `minimumBytes`, or nil when that is more than the
    /// largest class, over the budget, or malloc fails (`lastFailure` says which).
    package func acquire(minimumBytes: Int, budget: PoolBudget = .exempt) -> PooledBuffer? {
        acquire(minimumBytes: minimumBytes, budget: budget, replacing: 0)
    }

    /// `acquire`, for a buffer that will replace one of `replacingBytes` in the same budget.
    private func acquire(minimumBytes: Int, budget: PoolBudget, replacing replacingBytes: Int) -> PooledBuffer? {
        guard let sizeClass = Self.sizeClass(for: minimumBytes) else {
            lastFailure = .tooLarge
            return nil
        }
        let index = Int(sizeClass)
        let size = Self.size(ofClass: sizeClass)
        if budget != .exempt {
            let growth = size - replacingBytes
            let total = budgetedBytes.inbound + budgetedBytes.outbound + growth
            let overInbound = budget == .inbound && budgetedBytes.inbound + growth > budgetBytes / 2
            if total > budgetBytes || overInbound {
                lastFailure = .overBudget
                return nil
            }
        }
        let base: UnsafeMutableRawPointer
        if freeCounts[index] > 0 {
            freeCounts[index] -= 1
            freeBytes -= size
            if freeCounts[index] < lowWater[index] { lowWater[index] = freeCounts[index] }
            base = free[index][freeCounts[index]]
        } else {
            guard let fresh = malloc(size) else {
                lastFailure = .outOfMemory
                return nil
            }
            mallocCount += 1
            base = fresh
        }
        outstandingCount += 1
        outstandingBytes += size
        switch budget {
        case .inbound: budgetedBytes.inbound += size
        case .outbound: budgetedBytes.outbound += size
        case .exempt: break
        }
        return PooledBuffer(base: base, count: 0, sizeClass: sizeClass, budget: budget)
    }

    /// Gives back to malloc the free buffers that sat unused since the last call (each class's
    /// low-water mark), keeping `keptPerClass` of each class up to 4 KiB (control frames,
    /// small messages: the common case) and none of the larger ones: called once a second by
    /// the worker, so a buffer outlives its last use by one to two seconds and a steady load
    /// keeps what it uses while a finished burst lets go of everything it took. Returns the
    /// bytes freed.
    package func trim() -> Int {
        var freed = 0
        for index in 0..<Self.classCount {
            let idle = min(lowWater[index], freeCounts[index] - Self.kept(ofClass: index))
            if idle > 0 {
                let size = Self.size(ofClass: UInt8(index))
                for _ in 0..<idle {
                    freeCounts[index] -= 1
                    Glibc.free(free[index][freeCounts[index]])
                }
                freeBytes -= idle * size
                freed += idle * size
            }
            lowWater[index] = freeCounts[index]
        }
        return freed
    }

    static let keptPerClass = 2
    static let largestKeptClass = 4  // 4 KiB

    @inline(__always)
    static func kept(ofClass index: Int) -> Int { index <= largestKeptClass ? keptPerClass : 0 }

    /// Whether a `trim` with nothing used meanwhile would free something: some class keeps
    /// more free buffers than it keeps across trims.
    var holdsMoreThanItKeeps: Bool {
        for index in 0..<Self.classCount where freeCounts[index] > Self.kept(ofClass: index) { return true }
        return false
    }

    /// Returns `buffer` to the pool and empties it. A no-op for an empty handle.
    package func release(_ buffer: inout PooledBuffer) {
        guard let base = buffer.base else { return }
        let index = Int(buffer.sizeClass)
        let size = Self.size(ofClass: buffer.sizeClass)
        outstandingCount -= 1
        outstandingBytes -= size
        switch buffer.budget {
        case .inbound: budgetedBytes.inbound -= size
        case .outbound: budgetedBytes.outbound -= size
        case .exempt: break
        }
        if freeCounts[index] < freeLimits[index] {
            free[index][freeCounts[index]] = base
            freeCounts[index] += 1
            freeBytes += size
        } else {
            Glibc.free(base)
        }
        buffer = PooledBuffer()
    }

    /// Appends `bytes` to `buffer`, acquiring or growing it as needed (contents are kept).
    /// Returns false, leaving `buffer` as it was, when the result would exceed the largest
    /// class, the budget, or memory. A buffer that grows takes the budget of the request that
    /// grew it.
    func append(_ bytes: UnsafeRawBufferPointer, to buffer: inout PooledBuffer, budget: PoolBudget = .exempt) -> Bool {
        if bytes.isEmpty { return true }
        guard let destination = reserve(bytes.count, in: &buffer, budget: budget) else { return false }
        if let source = bytes.baseAddress, bytes.count > 0 {
            destination.copyMemory(from: source, byteCount: bytes.count)
        }
        buffer.count += UInt32(bytes.count)
        return true
    }

    /// Makes room for `byteCount` more bytes after `buffer.count` and returns where they go
    /// (the caller writes them and adds to `count`), or nil as `append` fails.
    package func reserve(_ byteCount: Int, in buffer: inout PooledBuffer, budget: PoolBudget = .exempt) -> UnsafeMutableRawPointer? {
        let needed = Int(buffer.count) + byteCount
        // An empty handle needs a buffer even for zero bytes: the result points into it.
        if needed > buffer.capacity || buffer.base == nil {
            // The grown buffer counts against the budget of this request (an exempt close frame
            // appended to queued data never fails; data appended to a pong's buffer is budgeted).
            let replacing = buffer.budget == budget ? buffer.capacity : 0
            guard var bigger = acquire(minimumBytes: needed, budget: budget, replacing: replacing) else { return nil }
            if let old = buffer.base, buffer.count > 0 {
                bigger.base!.copyMemory(from: old, byteCount: Int(buffer.count))
            }
            bigger.count = buffer.count
            release(&buffer)
            buffer = bigger
        }
        return buffer.base! + Int(buffer.count)
    }
}
