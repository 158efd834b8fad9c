import CLibURing
import Glibc

/// Fixed-size chunks of memory for sends and for reassembling what arrives in pieces, lent
/// to connections only while in use (an idle connection holds none). Chunks are allocated in
/// blocks of 256 and never returned to the system; a free list recycles them.
///
/// Large chunks (`largeChunkSize`, allocated one at a time) serve the one connection whose
/// frames outgrow a chunk: fanout's publisher, whose messages may be up to 16 MiB. Their
/// indices start at `largeBase`.
final class ChunkPool {
    static let none = UInt32.max
    static let blockShift = 8
    static let blockSize = 1 << blockShift
    /// Indices from here up name large chunks.
    static let largeBase: UInt32 = 0x8000_0000

    let chunkSize: Int
    let largeChunkSize: Int
    private var blocks: [UnsafeMutableRawPointer] = []
    private var free: [UInt32] = []
    private var large: [UnsafeMutableRawPointer] = []
    private var freeLarge: [UInt32] = []
    private(set) var outstanding = 0

    init(chunkSize: Int, largeChunkSize: Int = 0) {
        precondition(chunkSize >= 256)
        self.chunkSize = chunkSize
        self.largeChunkSize = max(chunkSize, largeChunkSize)
    }

    deinit {
        for block in blocks { block.deallocate() }
        for chunk in large { chunk.deallocate() }
    }

    /// A chunk's index, or nil when memory is exhausted.
    func acquire() -> UInt32? {
        if free.isEmpty {
            let first = blocks.count << ChunkPool.blockShift
            guard first + ChunkPool.blockSize <= Int(ChunkPool.largeBase) else { return nil }
            blocks.append(.allocate(byteCount: chunkSize << ChunkPool.blockShift, alignment: 16))
            for index in stride(from: first + ChunkPool.blockSize - 1, through: first, by: -1) {
                free.append(UInt32(index))
            }
        }
        outstanding += 1
        return free.removeLast()
    }

    /// A large chunk's index (`largeChunkSize` bytes).
    func acquireLarge() -> UInt32? {
        if freeLarge.isEmpty {
            guard large.count < 1024 else { return nil }
            large.append(.allocate(byteCount: largeChunkSize, alignment: 16))
            freeLarge.append(ChunkPool.largeBase + UInt32(large.count - 1))
        }
        outstanding += 1
        return freeLarge.removeLast()
    }

    func release(_ chunk: inout UInt32) {
        guard chunk != ChunkPool.none else { return }
        if chunk >= ChunkPool.largeBase {
            freeLarge.append(chunk)
        } else {
            free.append(chunk)
        }
        outstanding -= 1
        chunk = ChunkPool.none
    }

    @inline(__always)
    func base(_ chunk: UInt32) -> UnsafeMutableRawPointer {
        if chunk >= ChunkPool.largeBase { return large[Int(chunk - ChunkPool.largeBase)] }
        return blocks[Int(chunk) >> ChunkPool.blockShift] + (Int(chunk) & (ChunkPool.blockSize - 1)) * chunkSize
    }

    /// Bytes chunk `chunk` holds.
    @inline(__always)
    func capacity(of chunk: UInt32) -> Int { chunk >= ChunkPool.largeBase ? largeChunkSize : chunkSize }

    var allocatedBytes: Int { blocks.count * chunkSize * ChunkPool.blockSize + large.count * largeChunkSize }
}

/// Deadlines of one kind in the order they were set. Every deadline of a kind is "now plus
/// the same timeout", so they expire in insertion order and a FIFO replaces a timer
/// structure: pushing and expiring are O(1), with no per-connection memory. An entry whose
/// connection has moved on (another state or generation) is simply dropped when it expires.
struct DeadlineQueue {
    struct Entry {
        var slot: UInt32
        var generation: UInt64
        var deadline: Int64
    }

    private var entries: [Entry] = []
    private var head = 0

    var isEmpty: Bool { head == entries.count }
    var count: Int { entries.count - head }

    mutating func push(slot: UInt32, generation: UInt64, deadline: Int64) {
        entries.append(Entry(slot: slot, generation: generation, deadline: deadline))
    }

    var nextDeadline: Int64? { isEmpty ? nil : entries[head].deadline }

    /// The oldest entry if it is due at `now`.
    mutating func popExpired(now: Int64) -> Entry? {
        guard head < entries.count, entries[head].deadline <= now else { return nil }
        let entry = entries[head]
        head += 1
        if head == entries.count {
            entries.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 4096 && head * 2 >= entries.count {
            entries.removeFirst(head)
            head = 0
        }
        return entry
    }
}

/// Random bytes from getrandom(2), fetched 4 KiB at a time: handshake nonces (16 bytes per
/// connection) and frame mask keys (4 bytes per frame) without a system call each.
struct RandomPool: ~Copyable {
    private let buffer: UnsafeMutableRawPointer
    private let size = 4096
    private var used: Int

    init() {
        buffer = .allocate(byteCount: 4096, alignment: 16)
        used = 4096
    }

    deinit { buffer.deallocate() }

    private mutating func refill() {
        var filled = 0
        while filled < size {
            let result = myriad_getrandom(buffer + filled, UInt(size - filled))
            if result > 0 {
                filled += result
            } else if myriad_errno() != EINTR {
                // getrandom cannot fail once the pool is initialised; keep going, not crash.
                fatalError("getrandom failed: \(errnoName(myriad_errno()))")
            }
        }
        used = 0
    }

    mutating func next64() -> UInt64 {
        if used + 8 > size { refill() }
        let value = buffer.loadUnaligned(fromByteOffset: used, as: UInt64.self)
        used += 8
        return value
    }

    mutating func next32() -> UInt32 {
        if used + 4 > size { refill() }
        let value = buffer.loadUnaligned(fromByteOffset: used, as: UInt32.self)
        used += 4
        return value
    }
}
