import CLibURing
import Glibc
import Logging

/// The io_uring backend: one or more rings per worker thread, a multishot accept straight into
/// a ring's fixed-file table (so connections never occupy the process fd table), multishot
/// receives that pick buffers from each ring's provided buffer ring, and sends, cancels and
/// closes on fixed files.
///
/// **Several rings, one thread.** A ring's fixed-file table holds at most RLIMIT_NOFILE
/// entries, so a worker that holds more connections than that has several rings
/// (`CapacityPlan`), all used by its one thread. The thread sleeps in ring 0 only. Every other
/// ring has the worker's wake eventfd registered (`io_uring_register_eventfd`): with
/// DEFER_TASKRUN the kernel signals it when it queues work for that ring, which completes
/// ring 0's read of the eventfd and wakes the thread; the thread then enters only the rings
/// whose IORING_SQ_TASKRUN flag (TASKRUN_FLAG) or completion queue says they have work. The
/// same eventfd carries wake-ups from other threads, and ring 0's fd takes ring messages from
/// other workers: a worker is woken as a whole, whichever ring its work is on.
///
/// **Accepting.** One listener per worker. With one ring, a multishot accept straight into its
/// table. With several, single-shot accepts, at most `acceptsInFlight` at a time, each armed on
/// the ring with the most free slots not already promised to an accept in flight: a multishot
/// accept drains the whole backlog in one go when it runs (measured: it went past a 64-slot
/// margin and the kernel dropped the connections it could not install, ENFILE), so only
/// accepts counted against free slots can guarantee that no connection is accepted into a full
/// table while another ring has room. The worker sees one continuous accept either way.
///
/// Completion handling follows the rules measured on these machines (docs/architecture.md):
/// every CQE without `IORING_CQE_F_MORE` ends its request and the worker re-arms or closes;
/// `-ENOBUFS` ends a receive because the buffer ring is empty, which is backpressure; CQ
/// overflow is survived because the kernel keeps what it cannot post (`IORING_FEAT_NODROP`)
/// and flushes it on the next enter.
///
/// **Both roles.** The load generator's client threads (`MyriadLoad.ClientWorker`) run on this
/// backend too, with no listener: they `install` each socket they connect into a ring's table at
/// an index they choose and `connect` it, and everything after that (receives from the buffer
/// ring, sends, cancels, closes, the wait over several rings, CQ overflow, kernel errors) is the
/// code the server runs.
package final class URingBackend: IOBackend, RingMessenger {
    package static var name: String { "io_uring" }

    /// The worker's rings; ring 0 is where the thread waits.
    package let units: [RingUnit]
    /// The ring the thread waits on (and the one other workers message).
    var waitRing: RingUnit { units[0] }
    let listener: Int32
    package let multishotReceive: Bool
    let waker: Waker
    let capabilities: URingCapabilities
    package private(set) var waitCount = 0
    package private(set) var syscallCount = 0
    package private(set) var overflowCount = 0
    package private(set) var kernelErrorCount = 0
    package private(set) var lastKernelError: String?
    /// Completions the kernel reported dropped (`-EBADR`: it could not even keep them in its
    /// overflow list, under memory pressure).
    package private(set) var droppedCompletionCount = 0
    /// Wakes worker N through its eventfd when a ring message to it failed.
    var messageFallback: ((Int) -> Void)?
    package var spilledSubmissionCount: Int { units.reduce(0) { $0 + $1.ring.spilledTotal } }
    package var ringCount: Int { units.count }
    package var receiveBufferBytes: Int { units.reduce(0) { $0 + $1.buffers.writtenBytes } }

    package var holdsMemoryToTrim: Bool { units.contains { $0.buffers.holdsMemoryToTrim(postedToo: $0.defersTaskWork) } }

    package func trimMemory(pageBytes: Int) -> Int {
        var returned = 0
        for unit in units {
            // Posted buffers only while the ring is quiescent: a buffer the kernel has filled
            // but whose completion is still in the CQ (or its overflow list), or one a queued
            // SQE could fill inline at the next submit, looks "posted" to the bookkeeping.
            let quiescent = unit.ring.readyCompletions == 0 && !unit.ring.hasOverflow
                && unit.ring.pendingSubmissions == 0 && unit.ring.spilledCount == 0
            let trimmed = unit.buffers.trim(pageBytes: pageBytes, postedToo: unit.defersTaskWork && quiescent)
            returned += trimmed.returnedBytes
        }
        return returned
    }
    private let wakeBuffer: UnsafeMutablePointer<UInt64>
    private var listenerOpen: Bool

    static let bufferGroup: UInt16 = 0
    /// Receive buffers posted at start; doubled whenever a burst empties the ring.
    static let initiallyPostedBuffers: UInt32 = 64

    /// Creates the rings on the calling thread (the worker's: SINGLE_ISSUER binds them there),
    /// one per entry of `fixedFilesPerRing`. `listener` is -1 for a client (nothing to accept);
    /// `initiallyPostedBuffers` nil posts every receive buffer at once (`BufferRing`).
    package init(config: Config, capabilities: URingCapabilities, listener: Int32, waker: Waker, fixedFilesPerRing: [UInt32],
                 initiallyPostedBuffers: UInt32? = URingBackend.initiallyPostedBuffers)
        throws(SystemError)
    {
        precondition(!fixedFilesPerRing.isEmpty && fixedFilesPerRing.count <= RingHandle.maxRings)
        // TASKRUN_FLAG lets the worker see, without a system call, which ring has deferred work.
        let flags = capabilities.setupFlags | UInt32(IORING_SETUP_TASKRUN_FLAG)
        var units: [RingUnit] = []
        for (index, capacity) in fixedFilesPerRing.enumerated() {
            let unit = try RingUnit(index: index, config: config, flags: flags, capacity: capacity,
                                    bufferGroup: Self.bufferGroup, initiallyPostedBuffers: initiallyPostedBuffers)
            if index > 0 {
                let registered = io_uring_register_eventfd(unit.ring.pointer, waker.fileDescriptor)
                guard registered == 0 else { throw SystemError("io_uring_register_eventfd", errno: -registered) }
            }
            units.append(unit)
        }
        self.units = units
        self.waker = waker
        wakeBuffer = .allocate(capacity: 1)
        self.listener = listener
        listenerOpen = listener >= 0
        multishotReceive = capabilities.multishotReceive
        self.capabilities = capabilities
        armWake()
    }

    deinit {
        if listenerOpen { Glibc.close(listener) }
        wakeBuffer.deallocate()
    }

    @inline(__always)
    private func unit(_ handle: Int32) -> RingUnit { units[RingHandle.ring(of: handle)] }

    // MARK: - Accepting

    /// Single-shot accepts kept in flight when the worker has several rings.
    static let acceptsInFlight = 32

    /// Whether accepts are single-shot (several rings) rather than one multishot accept.
    var singleShotAccepts: Bool { units.count > 1 }

    package func armAccept() -> Bool {
        guard listenerOpen else { return true }
        if singleShotAccepts {
            topUpAccepts()
        } else if !units[0].accepting {
            let sqe = units[0].ring.nextSubmission()
            io_uring_prep_multishot_accept_direct(sqe, listener, nil, nil, 0)
            io_uring_sqe_set_data64(sqe, UserData(.accept, slot: 0, generation: 0).rawValue)
            units[0].accepting = true
        }
        return true
    }

    /// Arms single-shot accepts until `acceptsInFlight` are in flight, each on the ring with the
    /// most free slots not yet promised to one. When every ring is full, one accept is armed
    /// anyway: it fails with ENFILE (the kernel refuses that connection at once, as with one
    /// ring), rather than leaving connections to wait in the backlog.
    private func topUpAccepts() {
        var total = units.reduce(0) { $0 + $1.acceptsArmed }
        while total < Self.acceptsInFlight {
            let best = units.max { $0.free - min($0.free, UInt32($0.acceptsArmed)) < $1.free - min($1.free, UInt32($1.acceptsArmed)) }!
            let room = best.free - min(best.free, UInt32(best.acceptsArmed))
            if room == 0 && total > 0 { break }
            let sqe = best.ring.nextSubmission()
            // liburing 2.3 adds 1 to the index it is given, so IORING_FILE_INDEX_ALLOC - 1.
            io_uring_prep_accept_direct(sqe, listener, nil, nil, 0, UInt32(IORING_FILE_INDEX_ALLOC) - 1)
            io_uring_sqe_set_data64(sqe, UserData(.accept, slot: UInt32(best.index), generation: 0).rawValue)
            best.acceptsArmed += 1
            total += 1
            if room == 0 { break }
        }
    }

    package func stopAccepting() {
        guard listenerOpen else { return }
        for unit in units where unit.accepting || unit.acceptsArmed > 0 {
            let sqe = unit.ring.nextSubmission()
            io_uring_prep_cancel64(sqe, UserData(.accept, slot: UInt32(unit.index), generation: 0).rawValue,
                                   Int32(IORING_ASYNC_CANCEL_ALL))
            io_uring_sqe_set_data64(sqe, UserData(.acceptCancel, slot: 0, generation: 0).rawValue)
            _ = io_uring_submit(unit.ring.pointer)
            syscallCount += 1
            unit.accepting = false
        }
        // Pending connections in the backlog are reset when the listener goes.
        Glibc.close(listener)
        listenerOpen = false
    }

    // MARK: - Operations

    @inline(__always)
    package func armReceive(handle: Int32, tag: UserData) {
        let unit = unit(handle)
        let sqe = unit.ring.nextSubmission()
        if multishotReceive {
            io_uring_prep_recv_multishot(sqe, RingHandle.index(of: handle), nil, 0, 0)
        } else {
            io_uring_prep_recv(sqe, RingHandle.index(of: handle), nil, 0, 0)
        }
        io_uring_sqe_set_flags(sqe, MYRIAD_IOSQE_FIXED_FILE | MYRIAD_IOSQE_BUFFER_SELECT)
        sqe.pointee.buf_group = Self.bufferGroup
        io_uring_sqe_set_data64(sqe, tag.rawValue)
    }

    @inline(__always)
    package func send(handle: Int32, bytes: UnsafeRawBufferPointer, tag: UserData) {
        let sqe = unit(handle).ring.nextSubmission()
        io_uring_prep_send(sqe, RingHandle.index(of: handle), bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
        io_uring_sqe_set_flags(sqe, MYRIAD_IOSQE_FIXED_FILE)
        io_uring_sqe_set_data64(sqe, tag.rawValue)
    }

    package func cancel(_ target: UserData, handle: Int32, tag: UserData) {
        let sqe = unit(handle).ring.nextSubmission()
        io_uring_prep_cancel64(sqe, target.rawValue, 0)
        io_uring_sqe_set_data64(sqe, tag.rawValue)
    }

    package func close(handle: Int32, tag: UserData) {
        let sqe = unit(handle).ring.nextSubmission()
        io_uring_prep_close_direct(sqe, UInt32(RingHandle.index(of: handle)))
        io_uring_sqe_set_data64(sqe, tag.rawValue)
    }

    package func closeUnowned(handle: Int32) {
        close(handle: handle, tag: UserData(.closeOrphan, slot: 0, generation: 0))
    }

    // MARK: - Connecting (the client role)

    /// Installs `descriptor` at `handle`'s index of its ring's table (the caller closes its own
    /// copy at once, so the process fd table never holds the connection). Returns 1 or -errno.
    package func install(_ descriptor: Int32, handle: Int32) -> Int32 {
        let unit = unit(handle)
        var descriptor = descriptor
        let result = io_uring_register_files_update(unit.ring.pointer, UInt32(RingHandle.index(of: handle)), &descriptor, 1)
        if result == 1 { unit.occupied += 1 }
        return result
    }

    /// Linux's IP_BIND_ADDRESS_NO_PORT (not in Glibc's headers).
    static let ipBindAddressNoPort: Int32 = 24

    /// socket(), then bound to `source` with IP_BIND_ADDRESS_NO_PORT (without it bind() would
    /// pick the port, and a port would be spent per source address instead of per (source,
    /// destination) pair; kernels before 4.2 lack it: go on) and TCP_NODELAY, installed in
    /// the table at `handle`, and the ordinary descriptor closed at once: the process fd
    /// table never holds more than one.
    package func openClientSocket(handle: Int32, source: UInt32) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return -errno }
        var one: Int32 = 1
        let size = socklen_t(MemoryLayout<Int32>.size)
        _ = setsockopt(fd, Int32(IPPROTO_IP), URingBackend.ipBindAddressNoPort, &one, size)
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, size)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = source.bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            let saved = errno
            Glibc.close(fd)
            return -saved
        }
        let installed = install(fd, handle: handle)
        Glibc.close(fd)
        return installed == 1 ? 0 : installed < 0 ? installed : -EBADF
    }

    /// Connects the installed socket at `handle` to `address` (which must stay valid until the
    /// completion); `CompletionSink.connected` follows. A close (`close(handle:tag:)`) frees the
    /// table entry as for an accepted connection.
    package func connect(handle: Int32, to address: UnsafePointer<sockaddr_in>, tag: UserData) {
        let sqe = unit(handle).ring.nextSubmission()
        address.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            io_uring_prep_connect(sqe, RingHandle.index(of: handle), $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
        io_uring_sqe_set_flags(sqe, MYRIAD_IOSQE_FIXED_FILE)
        io_uring_sqe_set_data64(sqe, tag.rawValue)
    }

    /// SO_PEERNAME through a socket command on the direct descriptor (IORING_OP_URING_CMD,
    /// SOCKET_URING_OP_GETSOCKOPT, kernel 6.7+): a direct descriptor has no getpeername, and a
    /// multishot accept writes every peer's address into the same buffer.
    package func requestPeerAddress(handle: Int32, into address: UnsafeMutablePointer<sockaddr_in>, tag: UserData) -> PeerAddressRequest {
        guard capabilities.peerName else { return .unavailable }
        let sqe = unit(handle).ring.nextSubmission()
        Self.preparePeerName(sqe, handle: RingHandle.index(of: handle), into: address)
        io_uring_sqe_set_data64(sqe, tag.rawValue)
        return .requested
    }

    /// Fills `sqe` with the socket getsockopt command for SO_PEERNAME on fixed file `index`.
    /// liburing 2.3 and this system's uapi headers predate the command's fields, so they are
    /// written by offset: cmd_op at 8, level and optname at 16 and 20, optlen at 44, optval at 48.
    static func preparePeerName(_ sqe: UnsafeMutablePointer<io_uring_sqe>, handle index: Int32, into address: UnsafeMutablePointer<sockaddr_in>) {
        sqe.initialize(to: io_uring_sqe())
        sqe.pointee.opcode = UInt8(IORING_OP_URING_CMD.rawValue)
        sqe.pointee.fd = index
        sqe.pointee.flags = UInt8(MYRIAD_IOSQE_FIXED_FILE)
        let raw = UnsafeMutableRawPointer(sqe)
        raw.storeBytes(of: UInt32(2), toByteOffset: 8, as: UInt32.self)  // SOCKET_URING_OP_GETSOCKOPT
        raw.storeBytes(of: UInt32(SOL_SOCKET), toByteOffset: 16, as: UInt32.self)
        raw.storeBytes(of: UInt32(SO_PEERNAME), toByteOffset: 20, as: UInt32.self)
        raw.storeBytes(of: UInt32(MemoryLayout<sockaddr_in>.size), toByteOffset: 44, as: UInt32.self)
        raw.storeBytes(of: UInt64(UInt(bitPattern: address)), toByteOffset: 48, as: UInt64.self)
    }

    /// Wakes another worker from ring 0: a message to its wait ring, posted with this worker's
    /// next submit (no system call of its own). Only a failure produces a CQE here
    /// (CQE_SKIP_SUCCESS); then the target is woken through its eventfd.
    func message(ringFileDescriptor: Int32, targetWorker: Int) -> Bool {
        guard capabilities.messageRing else { return false }
        let sqe = waitRing.ring.nextSubmission()
        io_uring_prep_msg_ring(sqe, ringFileDescriptor, 0, UserData(.message, slot: 0, generation: 0).rawValue, 0)
        io_uring_sqe_set_flags(sqe, MYRIAD_IOSQE_CQE_SKIP_SUCCESS)
        io_uring_sqe_set_data64(sqe, UserData(.messageFailed, slot: UInt32(targetWorker), generation: 0).rawValue)
        return true
    }

    private func armWake() {
        let sqe = waitRing.ring.nextSubmission()
        io_uring_prep_read(sqe, waker.fileDescriptor, wakeBuffer, 8, 0)
        io_uring_sqe_set_data64(sqe, UserData(.wake, slot: 0, generation: 0).rawValue)
    }

    // MARK: - Waiting

    package func submit() {
        for unit in units where unit.ring.pendingSubmissions > 0 { _ = io_uring_submit(unit.ring.pointer) }
    }

    package func poll<Sink: CompletionSink>(timeoutNanoseconds: Int64?, sink: Sink) {
        // The other rings first: submit what is queued for them and run their deferred work
        // (one enter each, only for rings with something to do), and hand over what completed.
        var childWork = false
        for unit in units.dropFirst() {
            let spillEmpty = unit.ring.flushSpill()
            if unit.ring.pendingSubmissions > 0 || unit.hasWork || !spillEmpty {
                enter(unit, sink: sink)
            }
            if unit.hasWork || unit.ring.spilledCount > 0 { childWork = true }
        }
        let zero = units[0]
        let spillEmpty = zero.ring.flushSpill()
        if zero.ring.readyCompletions > 0 || !spillEmpty || childWork || timeoutNanoseconds == 0 {
            // Busy: no sleep. Ring 0 is still entered with GETEVENTS whenever it has something
            // queued or deferred work waiting: with DEFER_TASKRUN its completions (a receive on
            // one of its connections) exist only once an enter runs that work, and a plain
            // submit does not. Without this, a thread that other rings keep busy (a client
            // ramping a million connections) left ring 0's receives undelivered for tens of
            // seconds: 20,000 connections a thread missed the server's pings (`make scale`).
            if zero.ring.pendingSubmissions > 0 || myriad_taskrun_pending(zero.ring.pointer) != 0 || zero.ring.hasOverflow || !spillEmpty {
                let result = io_uring_submit_and_get_events(zero.ring.pointer)
                syscallCount += 1
                if result < 0 { enterFailed(errno: -result) }
            }
        } else {
            // The one enter that may sleep: counted as a wait (a busy pass is not one).
            let result = zero.ring.submitAndWait(waitCount: 1, timeoutNanoseconds: timeoutNanoseconds)
            waitCount += 1
            if result < 0 { enterFailed(errno: -result) }
        }
        reap(zero, sink: sink)
        // Whatever woke the thread may have been another ring's work (its eventfd).
        for unit in units.dropFirst() where unit.hasWork { enter(unit, sink: sink) }
    }

    /// Submits a ring's queue and runs its deferred work without waiting, then reaps it.
    ///
    /// The load generator's old ring code switched the ring's eventfd off around this (so the
    /// completions the enter posts would not signal the thread it already runs on); here that
    /// made the engine's multi-ring accept tests hang, for a reason not found, so neither role
    /// does it. The cost is at most one extra pass of the loop after such an enter.
    private func enter<Sink: CompletionSink>(_ unit: RingUnit, sink: Sink) {
        let result = io_uring_submit_and_get_events(unit.ring.pointer)
        syscallCount += 1
        if result < 0 { enterFailed(errno: -result) }
        reap(unit, sink: sink)
    }

    private func reap<Sink: CompletionSink>(_ unit: RingUnit, sink: Sink) {
        while true {
            if unit.ring.hasOverflow {
                // The kernel holds completions the CQ had no room for; an enter with
                // GETEVENTS moves them in as space allows.
                overflowCount += 1
                syscallCount += 1
                _ = io_uring_get_events(unit.ring.pointer)
            }
            let handled = unit.ring.forEachCompletion { userData, result, flags in
                dispatch(UserData(rawValue: userData), result: result, flags: flags, unit: unit, sink: sink)
            }
            if handled == 0 { break }
        }
        unit.buffers.topUp()
    }

    /// An `io_uring_enter` that failed. Timeouts, signals and a busy kernel are part of
    /// waiting; anything else is counted and logged by the worker, and the loop goes on (a
    /// transient condition must not take a million connections down with the process).
    private func enterFailed(errno: Int32) {
        switch errno {
        case ETIME, EINTR, EBUSY, EAGAIN:
            return
        case EBADR:
            // Completions were lost. The operations they ended are recovered where the worker
            // can tell (a cancel that finds nothing to cancel; see `Worker.operationDone`);
            // every connection keeps its deadlines, so none waits forever.
            droppedCompletionCount += 1
            noteKernelError("io_uring_enter: EBADR: the kernel dropped completions (memory pressure)")
        default:
            noteKernelError("io_uring_enter: \(SystemError.name(of: errno))")
            // A condition that persists must not turn the loop into a busy spin.
            usleep(1000)
        }
    }

    private func noteKernelError(_ description: String) {
        kernelErrorCount += 1
        lastKernelError = description
    }

    @inline(__always)
    private func dispatch<Sink: CompletionSink>(_ tag: UserData, result: Int32, flags: UInt32, unit: RingUnit, sink: Sink) {
        let more = flags & UInt32(IORING_CQE_F_MORE) != 0
        switch tag.operation {
        case .receive:
            if flags & UInt32(IORING_CQE_F_BUFFER) != 0 { unit.buffers.consumed() }
            if result > 0 {
                precondition(flags & UInt32(IORING_CQE_F_BUFFER) != 0, "receive without a provided buffer")
                let bufferID = UInt16(truncatingIfNeeded: flags >> 16)
                sink.received(tag, bytes: unit.buffers.bytes(of: bufferID, count: result), more: more)
                unit.buffers.release(bufferID)
            } else {
                if flags & UInt32(IORING_CQE_F_BUFFER) != 0 {
                    unit.buffers.release(UInt16(truncatingIfNeeded: flags >> 16))
                }
                if result == -ENOBUFS { unit.buffers.grow() }
                sink.receiveEnded(tag, result: result)
            }
        case .send:
            sink.sent(tag, result: result)
        case .accept:
            if result >= 0 {
                unit.occupied += 1
                sink.accepted(handle: RingHandle.make(ring: unit.index, index: result))
            }
            if singleShotAccepts {
                unit.acceptsArmed -= 1
                if result >= 0 {
                    if listenerOpen { topUpAccepts() }
                } else if result != -ECANCELED {
                    // ENFILE: every ring was full and the kernel refused the connection; the
                    // worker re-arms at once. Anything else: a tick later.
                    sink.acceptEnded(result: result, retryNow: result == -ENFILE)
                }
                return
            }
            guard !more else { return }
            unit.accepting = false
            // ENFILE: the kernel took the connection and dropped it for want of a fixed-file
            // slot, so re-arming at once refuses each further one quickly.
            sink.acceptEnded(result: min(result, 0), retryNow: result >= 0 || result == -ENFILE)
        case .close:
            unit.occupied -= 1
            if singleShotAccepts && listenerOpen { topUpAccepts() }
            sink.operationDone(tag, result: result)
        case .closeOrphan:
            unit.occupied -= 1
            if singleShotAccepts && listenerOpen { topUpAccepts() }
        case .cancel, .cancelSend, .cancelConnect, .shutdown:
            sink.operationDone(tag, result: result)
        case .wake:
            sink.woken()
            armWake()
        case .message:
            sink.woken()
        case .messageFailed:
            // The target ring could not take the message (its CQ overflowed): wake it the
            // other way. The failure is counted; the wake-up is not lost.
            noteKernelError("io_uring MSG_RING to worker \(tag.slot): \(SystemError.name(of: -result))")
            if let fallback = messageFallback { fallback(Int(tag.slot)) }
        case .peerName:
            sink.peerAddressDone(tag, result: result)
        case .acceptCancel:
            break
        case .connect:
            sink.connected(tag, result: result)
        case nil:
            assertionFailure("completion with an unknown tag \(tag.rawValue)")
        }
    }
}
