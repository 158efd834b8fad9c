import CLibURing
import Glibc

/// One io_uring instance: a thin owner of liburing's `struct io_uring`.
///
/// The ring lives at a fixed address (io_uring keeps pointers into it), so it is allocated
/// once and held by pointer; the wrapper is `~Copyable` so exactly one owner tears it down.
/// With `IORING_SETUP_SINGLE_ISSUER` only the thread that created the ring may submit to
/// it: create it on the worker thread that will use it.
package struct Ring: ~Copyable {
    package let pointer: UnsafeMutablePointer<io_uring>
    /// `IORING_FEAT_*` bits the kernel reported.
    package let features: UInt32
    /// The setup flags the ring was actually created with.
    package let flags: UInt32
    package let submissionEntries: UInt32
    package let completionEntries: UInt32
    /// SQEs prepared while the SQ was full and the kernel would not take what it held (a
    /// submit that failed: -EBUSY, -ENOMEM, -EBADFD, ...). They wait here, in order, and go
    /// to the kernel ahead of anything newer (`flushSpill`); a ring never stops the engine
    /// for want of an SQE.
    private let spill: UnsafeMutablePointer<(entries: UnsafeMutablePointer<io_uring_sqe>?, count: Int, capacity: Int, total: Int)>

    /// Creates a ring with `entries` SQEs and `completionEntries` CQEs (>= entries).
    package init(entries: UInt32, completionEntries: UInt32, flags: UInt32) throws(SystemError) {
        precondition(completionEntries >= entries, "the kernel requires cq_entries >= sq_entries")
        let ring = UnsafeMutablePointer<io_uring>.allocate(capacity: 1)
        var params = io_uring_params()
        params.flags = flags | UInt32(IORING_SETUP_CQSIZE)
        params.cq_entries = completionEntries
        let result = io_uring_queue_init_params(entries, ring, &params)
        guard result == 0 else {
            ring.deallocate()
            throw SystemError("io_uring_setup", errno: -result)
        }
        pointer = ring
        features = params.features
        self.flags = params.flags
        submissionEntries = params.sq_entries
        self.completionEntries = params.cq_entries
        spill = .allocate(capacity: 1)
        spill.initialize(to: (nil, 0, 0, 0))
    }

    deinit {
        io_uring_queue_exit(pointer)
        pointer.deallocate()
        spill.pointee.entries?.deallocate()
        spill.deallocate()
    }

    package var fileDescriptor: Int32 { pointer.pointee.ring_fd }

    /// A free SQE: in the SQ, submitting what is queued first if the SQ is full, or in the
    /// spill queue when the kernel will not take the SQ's entries (then every later SQE is
    /// spilled too, so the order of submissions is kept). The caller fills it completely
    /// (every `io_uring_prep_*` does) before asking for the next one.
    @inline(__always)
    package func nextSubmission() -> UnsafeMutablePointer<io_uring_sqe> {
        if spill.pointee.count == 0 {
            if let sqe = io_uring_get_sqe(pointer) { return sqe }
            // SQ full: hand what we have to the kernel. With NODROP the kernel keeps
            // completions it cannot post, so this cannot lose any.
            _ = io_uring_submit(pointer)
            if let sqe = io_uring_get_sqe(pointer) { return sqe }
        }
        return spillSubmission()
    }

    private func spillSubmission() -> UnsafeMutablePointer<io_uring_sqe> {
        if spill.pointee.count == spill.pointee.capacity {
            let capacity = max(64, spill.pointee.capacity * 2)
            let grown = UnsafeMutablePointer<io_uring_sqe>.allocate(capacity: capacity)
            if let old = spill.pointee.entries {
                grown.moveInitialize(from: old, count: spill.pointee.count)
                old.deallocate()
            }
            spill.pointee.entries = grown
            spill.pointee.capacity = capacity
        }
        let sqe = spill.pointee.entries! + spill.pointee.count
        sqe.initialize(to: io_uring_sqe())
        spill.pointee.count += 1
        spill.pointee.total += 1
        return sqe
    }

    /// SQEs waiting in the spill queue.
    package var spilledCount: Int { spill.pointee.count }
    /// SQEs that ever had to wait in the spill queue.
    package var spilledTotal: Int { spill.pointee.total }

    /// Moves spilled SQEs into the SQ, in order, submitting whenever it fills; stops (keeping
    /// the rest) when the kernel still will not take them. Returns whether the spill is empty.
    @discardableResult
    package func flushSpill() -> Bool {
        var moved = 0
        let count = spill.pointee.count
        guard count > 0, let entries = spill.pointee.entries else { return true }
        while moved < count {
            guard let sqe = io_uring_get_sqe(pointer) else {
                _ = io_uring_submit(pointer)
                if io_uring_sq_space_left(pointer) == 0 { break }
                continue
            }
            sqe.pointee = entries[moved]
            moved += 1
        }
        if moved > 0 {
            (entries).moveInitialize(from: entries + moved, count: count - moved)
            spill.pointee.count = count - moved
        }
        return spill.pointee.count == 0
    }

    /// SQEs prepared but not yet submitted.
    package var pendingSubmissions: UInt32 { io_uring_sq_ready(pointer) }

    /// Submits queued SQEs and waits for at least `waitCount` completions or the timeout
    /// (nil: no timeout; 0 with `waitCount` 0: do not wait). Returns the kernel's result:
    /// submitted count, or -errno (-ETIME on timeout, -EINTR on a signal).
    @inline(__always)
    package func submitAndWait(waitCount: UInt32, timeoutNanoseconds: Int64?) -> Int32 {
        if let timeoutNanoseconds {
            var timeout = __kernel_timespec(
                tv_sec: timeoutNanoseconds / 1_000_000_000, tv_nsec: timeoutNanoseconds % 1_000_000_000)
            var cqe: UnsafeMutablePointer<io_uring_cqe>? = nil
            return io_uring_submit_and_wait_timeout(pointer, &cqe, waitCount, &timeout, nil)
        }
        return io_uring_submit_and_wait(pointer, waitCount)
    }

    /// Completions ready to be read.
    @inline(__always)
    package var readyCompletions: UInt32 { myriad_cq_ready(pointer) }

    /// Whether the kernel is holding completions it could not post (CQ overflowed).
    package var hasOverflow: Bool { myriad_cq_has_overflow(pointer) != 0 }

    /// Calls `body` with each ready completion, then marks them seen. `body` may prepare
    /// and submit SQEs; completions posted meanwhile are left for the next call.
    @inline(__always)
    package func forEachCompletion(_ body: (UInt64, Int32, UInt32) -> Void) -> Int {
        let count = readyCompletions
        guard count > 0 else { return 0 }
        let cq = pointer.pointee.cq
        let head = cq.khead.pointee
        let mask = cq.ring_mask
        for index in 0..<count {
            let cqe = cq.cqes + Int((head &+ index) & mask)
            body(cqe.pointee.user_data, cqe.pointee.res, cqe.pointee.flags)
        }
        io_uring_cq_advance(pointer, count)
        return Int(count)
    }
}

/// What the kernel's io_uring offers, found by trying it (not by version numbers alone).
package struct URingCapabilities: Sendable, CustomStringConvertible {
    /// Setup flags to use: SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN when available.
    package var setupFlags: UInt32
    package var deferTaskrun: Bool { setupFlags & UInt32(IORING_SETUP_DEFER_TASKRUN) != 0 }
    /// Multishot recv (6.0+); without it each receive is re-armed after its completion.
    package var multishotReceive: Bool
    package var features: UInt32
    /// IORING_OP_MSG_RING (5.18+): one worker wakes another without a system call.
    package var messageRing: Bool = false
    /// The socket getsockopt command (6.7+): the peer address of a direct descriptor.
    package var peerName: Bool = false

    package var description: String {
        var parts: [String] = []
        if setupFlags & UInt32(IORING_SETUP_SINGLE_ISSUER) != 0 { parts.append("SINGLE_ISSUER") }
        if deferTaskrun { parts.append("DEFER_TASKRUN") }
        if setupFlags & UInt32(IORING_SETUP_COOP_TASKRUN) != 0 { parts.append("COOP_TASKRUN") }
        if setupFlags & UInt32(IORING_SETUP_TASKRUN_FLAG) != 0 { parts.append("TASKRUN_FLAG") }
        let flags = parts.isEmpty ? "none" : parts.joined(separator: "|")
        return "setup=\(flags) recv=\(multishotReceive ? "multishot" : "single-shot (re-armed)") "
            + "nodrop=\(features & UInt32(IORING_FEAT_NODROP) != 0) msg_ring=\(messageRing) peer_address=\(peerName)"
    }
}
