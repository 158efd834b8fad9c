import CLibURing
import Glibc

/// One io_uring instance of a worker and what belongs to it alone: its fixed-file table (at
/// most RLIMIT_NOFILE entries, so a worker that holds more connections has several rings),
/// its provided buffer ring, and how many of its table's slots are taken.
package final class RingUnit {
    let index: Int
    let ring: Ring
    let buffers: BufferRing
    /// Entries of the fixed-file table.
    let capacity: UInt32
    /// Direct descriptors in the table: accepted, and not yet closed.
    var occupied: UInt32 = 0
    /// The multishot accept is armed on this ring (a worker with one ring).
    var accepting = false
    /// Single-shot accepts in flight on this ring (a worker with several).
    var acceptsArmed = 0
    /// Set up with DEFER_TASKRUN: the kernel completes this ring's work (and writes into its
    /// provided buffers) only inside this thread's io_uring_enter.
    let defersTaskWork: Bool

    init(index: Int, config: Config, flags: UInt32, capacity: UInt32, bufferGroup: UInt16, initiallyPostedBuffers: UInt32?)
        throws(SystemError)
    {
        self.index = index
        self.capacity = capacity
        defersTaskWork = flags & UInt32(IORING_SETUP_DEFER_TASKRUN) != 0
        let completionEntries = config.completionEntries ?? config.ringEntries * 4
        ring = try Ring(entries: config.ringEntries, completionEntries: completionEntries, flags: flags)
        let registered = io_uring_register_files_sparse(ring.pointer, capacity)
        guard registered == 0 else {
            throw SystemError("io_uring_register_files_sparse(\(capacity))", errno: -registered)
        }
        // A registered ring fd saves a file lookup per enter; optional (5.18+).
        _ = io_uring_register_ring_fd(ring.pointer)
        buffers = try BufferRing(ring: ring, groupID: bufferGroup, count: config.bufferCount,
                                 sizeBytes: config.bufferSizeBytes, initiallyPosted: initiallyPostedBuffers)
    }

    deinit { buffers.unregister(ring: ring) }

    var free: UInt32 { capacity - min(capacity, occupied) }

    /// Whether the kernel has work for this ring that only entering it runs (deferred task
    /// work: IORING_SQ_TASKRUN, set with TASKRUN_FLAG), or completions are waiting.
    @inline(__always)
    var hasWork: Bool { ring.readyCompletions > 0 || myriad_taskrun_pending(ring.pointer) != 0 || ring.hasOverflow }
}

/// A connection's handle in the io_uring backend: its ring and its index in that ring's
/// fixed-file table, in one `Int32` so the worker can keep treating handles as opaque.
package enum RingHandle {
    /// Fixed-file indices are below 2^20 (the kernel's cap on a table), ring indices below 2^11.
    package static let indexBits: Int32 = 20
    package static let maxRings = 1 << 11

    @inline(__always)
    package static func make(ring: Int, index: Int32) -> Int32 {
        assert(ring < maxRings && index >= 0 && index < 1 << indexBits)
        return Int32(ring) << indexBits | index
    }

    @inline(__always)
    package static func ring(of handle: Int32) -> Int { Int(handle >> indexBits) }

    @inline(__always)
    package static func index(of handle: Int32) -> Int32 { handle & (1 << indexBits - 1) }
}
