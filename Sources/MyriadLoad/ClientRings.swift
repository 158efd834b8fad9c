import CLibURing
import Glibc
import Myriad

/// One io_uring ring of a client thread: the ring, its sparse fixed-file table (`tableSize`
/// entries, for the thread's slots `firstSlot ..< firstSlot + tableSize`, at index slot -
/// firstSlot), and its provided buffer ring (group 0; a buffer ring belongs to one ring).
final class ClientRing {
    let index: Int
    let ring: Ring
    let buffers: BufferRing
    let firstSlot: UInt32
    let tableSize: UInt32

    init(index: Int, flags: UInt32, firstSlot: UInt32, tableSize: UInt32, buffers layout: ClientRings.BufferLayout)
        throws(LoadError)
    {
        self.index = index
        self.firstSlot = firstSlot
        self.tableSize = tableSize
        do {
            ring = try Ring(entries: ClientRings.submissionEntries, completionEntries: ClientRings.completionEntries, flags: flags)
        } catch {
            throw LoadError("ring \(index): \(error)")
        }
        let registered = io_uring_register_files_sparse(ring.pointer, tableSize)
        guard registered == 0 else {
            throw LoadError("ring \(index): io_uring_register_files_sparse(\(tableSize)): \(errnoName(-registered))"
                + (registered == -EMFILE ? " (a fixed-file table may not exceed RLIMIT_NOFILE)" : ""))
        }
        // A registered ring fd saves a file lookup per enter; optional (5.18+, at most 16 per
        // thread: the rings beyond that are entered by their ordinary fd).
        _ = io_uring_register_ring_fd(ring.pointer)
        do {
            buffers = try BufferRing(ring: ring, groupID: 0, count: layout.count, sizeBytes: layout.sizeBytes)
        } catch {
            throw LoadError("ring \(index): \(error)")
        }
    }

    deinit { buffers.unregister(ring: ring) }

    /// Whether entering this ring would hand over something: completions in its CQ, deferred
    /// task work the kernel runs only when the ring is entered (IORING_SQ_TASKRUN, shown by
    /// TASKRUN_FLAG), or completions held back by a CQ overflow.
    @inline(__always)
    var hasWork: Bool { ring.readyCompletions > 0 || myriad_taskrun_pending(ring.pointer) != 0 || ring.hasOverflow }
}

/// The io_uring rings of one client thread, and how the thread waits on all of them: the one
/// place in `myriad load` that knows there are rings (the connection logic in `ClientWorker`
/// sees slots, SQEs and completions). Kept apart so that issue 19 can merge it with the
/// engine's `URingBackend`, which waits on several rings the same way.
///
/// **Why several.** A ring's fixed-file table holds at most RLIMIT_NOFILE direct descriptors
/// (20,000 on the dev machines), so a thread whose share is larger runs ceil(share / table)
/// rings; the thread count follows the cores (`LoadPlan`), not the fd limit. The thread's slots
/// are cut into consecutive runs of `span`: slot s lives in ring s / span at index s % span.
///
/// **Waiting.** The thread sleeps in ring 0 only, with a read of the thread's eventfd armed
/// there. Every other ring has that eventfd registered (`io_uring_register_eventfd`): with
/// DEFER_TASKRUN the kernel signals it when it queues the first deferred task work for the
/// ring (and, without DEFER_TASKRUN, when it posts a completion), which completes ring 0's read
/// and wakes the thread. The thread then enters only the rings whose IORING_SQ_TASKRUN flag
/// (TASKRUN_FLAG) or CQ says they have work. While the thread enters a ring itself, that ring's
/// eventfd is switched off (`IORING_CQ_EVENTFD_DISABLED`): the completions that enter posts are
/// reaped at once, and signalling them would only wake the thread again, for nothing. Before
/// every sleep the thread looks at every ring with the eventfds on again, so work queued while a
/// ring's eventfd was off is not slept through. One ring: no eventfd, the ring is the wait.
final class ClientRings {
    /// Receive buffers of each ring: `count` buffers of `sizeBytes`.
    struct BufferLayout {
        var count: UInt32
        var sizeBytes: UInt32
    }

    static let submissionEntries: UInt32 = 2048
    static let completionEntries: UInt32 = 16384
    /// The tag of ring 0's read of the wake eventfd; never a connection's (no operation 0xFF).
    static let wakeTag = UInt64.max

    let units: [ClientRing]
    /// Slots per ring (the last ring may hold fewer).
    let span: UInt32
    /// The setup flags every ring was created with.
    let flags: UInt32
    /// Blocking waits in ring 0 (each may sleep), and every other io_uring_enter.
    private(set) var waitCount = 0
    private(set) var enterCount = 0
    /// Times a ring's CQ had overflowed (the kernel kept what it could not post).
    private(set) var overflowCount = 0
    /// The thread's eventfd (several rings), else -1.
    private let wakeDescriptor: Int32
    private let wakeBuffer: UnsafeMutablePointer<UInt64>

    /// The rings for table sizes `tableSizes` (every one but the last the same size), created
    /// on the calling thread (SINGLE_ISSUER binds them to it). Flags, most wanted first:
    /// SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN, then COOP_TASKRUN, then none; each with
    /// TASKRUN_FLAG where the kernel allows it (it needs one of the other two).
    init(tableSizes: [Int], buffers: BufferLayout, disabled: Set<URingFeature> = []) throws(LoadError) {
        precondition(!tableSizes.isEmpty && tableSizes.allSatisfy { $0 > 0 })
        precondition(tableSizes.dropLast().allSatisfy { $0 == tableSizes[0] } && tableSizes.last! <= tableSizes[0])
        span = UInt32(tableSizes[0])
        var flagSets: [UInt32] = [
            UInt32(IORING_SETUP_COOP_TASKRUN) | UInt32(IORING_SETUP_TASKRUN_FLAG), 0,
        ]
        if !disabled.contains(.deferTaskrun) {
            flagSets.insert(UInt32(IORING_SETUP_SINGLE_ISSUER) | UInt32(IORING_SETUP_DEFER_TASKRUN)
                                | UInt32(IORING_SETUP_COOP_TASKRUN) | UInt32(IORING_SETUP_TASKRUN_FLAG), at: 0)
        }
        // Found on a small ring first: then every ring is created once, with what this kernel takes.
        var chosen: UInt32?
        var lastError = SystemError("io_uring_setup", errno: EINVAL)
        for flags in flagSets {
            do {
                _ = try Ring(entries: 8, completionEntries: 16, flags: flags)
                chosen = flags
                break
            } catch {
                lastError = error
                // Only a refused flag (EINVAL) is worth another try with fewer.
                if error.errno != EINVAL { break }
            }
        }
        guard let chosen else { throw LoadError("\(lastError)") }
        let first = try ClientRing(index: 0, flags: chosen, firstSlot: 0, tableSize: UInt32(tableSizes[0]), buffers: buffers)
        flags = chosen
        var units = [first]
        var firstSlot = UInt32(tableSizes[0])
        for (index, size) in tableSizes.enumerated().dropFirst() {
            units.append(try ClientRing(index: index, flags: chosen, firstSlot: firstSlot, tableSize: UInt32(size), buffers: buffers))
            firstSlot += UInt32(size)
        }
        self.units = units
        wakeBuffer = .allocate(capacity: 1)
        guard units.count > 1 else {
            wakeDescriptor = -1
            return
        }
        wakeDescriptor = eventfd(0, Int32(EFD_CLOEXEC) | Int32(EFD_NONBLOCK))
        guard wakeDescriptor >= 0 else {
            wakeBuffer.deallocate()
            throw LoadError("eventfd: \(errnoName(errno))")
        }
        for unit in units.dropFirst() {
            let registered = io_uring_register_eventfd(unit.ring.pointer, wakeDescriptor)
            guard registered == 0 else {
                close(wakeDescriptor)
                wakeBuffer.deallocate()
                throw LoadError("ring \(unit.index): io_uring_register_eventfd: \(errnoName(-registered))")
            }
        }
        armWake()
    }

    deinit {
        wakeBuffer.deallocate()
        if wakeDescriptor >= 0 { close(wakeDescriptor) }
    }

    var count: Int { units.count }

    /// Whether the rings defer task work to the thread's enters (DEFER_TASKRUN).
    var defersTaskWork: Bool { flags & UInt32(IORING_SETUP_DEFER_TASKRUN) != 0 }

    // MARK: - Slots

    /// The ring of `slot`.
    @inline(__always)
    func unit(of slot: UInt32) -> ClientRing { units[Int(slot / span)] }

    /// `slot`'s index in its ring's fixed-file table.
    @inline(__always)
    func fileIndex(_ slot: UInt32) -> Int32 { Int32(bitPattern: slot % span) }

    /// A free SQE on `slot`'s ring (see `Ring.nextSubmission`).
    @inline(__always)
    func submission(for slot: UInt32) -> UnsafeMutablePointer<io_uring_sqe> { unit(of: slot).ring.nextSubmission() }

    /// Installs `descriptor` into `slot`'s entry of its ring's table (the caller closes its
    /// own copy). Returns 1, or -errno.
    func install(_ descriptor: Int32, slot: UInt32) -> Int32 {
        var descriptor = descriptor
        return io_uring_register_files_update(unit(of: slot).ring.pointer, UInt32(fileIndex(slot)), &descriptor, 1)
    }

    // MARK: - Waiting

    private func armWake() {
        let sqe = units[0].ring.nextSubmission()
        io_uring_prep_read(sqe, wakeDescriptor, wakeBuffer, 8, 0)
        io_uring_sqe_set_data64(sqe, ClientRings.wakeTag)
    }

    /// Submits what every ring has queued, sleeps in ring 0 up to `timeoutNanoseconds` unless
    /// a ring already has work (or the timeout is 0), and hands every completion to `body`
    /// with the ring it came from.
    @inline(__always)
    func poll(timeoutNanoseconds: Int64, _ body: (ClientRing, UInt64, Int32, UInt32) -> Void) {
        let zero = units[0]
        let spillEmpty = zero.ring.flushSpill()
        var busy = timeoutNanoseconds <= 0 || zero.ring.readyCompletions > 0 || !spillEmpty
        if units.count > 1 {
            // The other rings first: submit what they have queued and run their work.
            for index in 1..<units.count {
                let unit = units[index]
                let spillEmpty = unit.ring.flushSpill()
                if unit.ring.pendingSubmissions > 0 || !spillEmpty || unit.hasWork { enter(unit, body) }
            }
            // With every eventfd on again: work that arrived meanwhile means no sleep.
            if !busy {
                for index in 1..<units.count where units[index].hasWork || units[index].ring.spilledCount > 0 {
                    busy = true
                    break
                }
            }
        }
        if busy {
            // Submit and run deferred completions without sleeping (with DEFER_TASKRUN a
            // completion only appears when we enter the kernel asking for events).
            _ = io_uring_submit_and_get_events(zero.ring.pointer)
            enterCount += 1
        } else {
            let result = zero.ring.submitAndWait(waitCount: 1, timeoutNanoseconds: timeoutNanoseconds)
            waitCount += 1
            if result < 0 && result != -ETIME && result != -EINTR && result != -EBUSY && result != -EAGAIN {
                // Not expected with a valid ring; not fatal, and no busy spin either.
                usleep(1000)
            }
        }
        reap(zero, body)
        // Whatever woke the thread may have been another ring's work (the eventfd).
        if units.count > 1 {
            for index in 1..<units.count where units[index].hasWork { enter(units[index], body) }
        }
    }

    /// Submits a ring's queue and runs its deferred work without waiting, then reaps it; the
    /// ring's eventfd is off meanwhile (the thread is awake and takes what this posts).
    @inline(__always)
    private func enter(_ unit: ClientRing, _ body: (ClientRing, UInt64, Int32, UInt32) -> Void) {
        _ = io_uring_cq_eventfd_toggle(unit.ring.pointer, false)
        _ = io_uring_submit_and_get_events(unit.ring.pointer)
        enterCount += 1
        reap(unit, body)
        _ = io_uring_cq_eventfd_toggle(unit.ring.pointer, true)
    }

    @inline(__always)
    private func reap(_ unit: ClientRing, _ body: (ClientRing, UInt64, Int32, UInt32) -> Void) {
        while true {
            if unit.ring.hasOverflow {
                // The kernel holds completions the CQ had no room for; an enter with
                // GETEVENTS moves them in as space allows.
                overflowCount += 1
                enterCount += 1
                _ = io_uring_get_events(unit.ring.pointer)
            }
            var woken = false
            let handled = unit.ring.forEachCompletion { userData, result, flags in
                if userData == ClientRings.wakeTag {
                    woken = true
                } else {
                    body(unit, userData, result, flags)
                }
            }
            if woken { armWake() }
            if handled == 0 { break }
        }
    }
}
