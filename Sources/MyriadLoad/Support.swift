import CLibURing
import Glibc

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
