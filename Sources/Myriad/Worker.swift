import CLibURing
import Glibc
import Logging
import Synchronization
import WebSocketCodec

/// What the engine and a worker thread share: the stop request, the published stats, the
/// waker, and whether the worker started.
final class WorkerControl: Sendable {
    let index: Int
    let board = StatsBoard()
    let waker: WorkerWaker
    let stopRequested = Atomic<Bool>(false)
    let phase = Atomic<WorkerPhase>(.starting)
    let failure = Mutex<String?>(nil)

    init(index: Int, waker: WorkerWaker) {
        self.index = index
        self.waker = waker
    }
}

/// Where a worker thread is in its life; `Engine.start` waits until none is `.starting`.
enum WorkerPhase: Int, AtomicRepresentable {
    case starting
    case running
    case failedToStart
    case exited
}

/// One worker thread's event loop: one backend (ring or epoll set), one listener, one slab,
/// one timing wheel, one handler instance.
///
/// Each iteration reads the clock once, fires due timers, flushes queued sends and closes
/// (all with one submit), re-arms receives parked for lack of buffers, publishes counters,
/// then waits for completions until the next timer event.
final class Worker<Backend: IOBackend, Handler: WebSocketHandler>: CompletionSink {
    let core: WorkerCore
    let backend: Backend
    /// The application's handler, by pointer: called per message, so kept out of a class
    /// stored `var` (a dynamic exclusivity check per call). Callbacks never nest: `onClose`
    /// for closes a callback caused is delivered later, from the flush.
    let handlerStorage: UnsafeMutablePointer<Handler>
    let control: WorkerControl
    let logger: Logger
    private let startNanoseconds: Int64
    /// Connections whose receive ended with -ENOBUFS, re-armed at the end of the batch.
    private var starved = StarvedReceives()
    /// Accept failures since the last successful accept (logged once per burst).
    private var acceptFailures = 0
    var acceptRearmTick: UInt64?
    /// The next memory trim (`Worker+Memory.swift`), once a second.
    var nextTrimTick: UInt64 = 0
    var trimIntervalTicks: UInt64 { max(1, UInt64(1_000_000_000 / core.settings.tickNanoseconds)) }
    /// Set by `beginShutdown` (`Worker+Close.swift`).
    var shuttingDown = false
    var shutdownDeadline: UInt64 = 0
    var forcedCloseDone = false
    /// Set before each wait: the clock reading is older than the completions that follow.
    private var clockStale = false
    private var lastKernelErrorLogNanoseconds: Int64 = .min / 2
    private var kernelErrorsLogged = 0
    /// The handler's per-connection states.
    let states: StateTable<Handler.ConnectionState>
    /// What busy connections need besides their slot (`Worker+Side.swift`).
    let sides: ConnectionSideTable
    /// The decoder of every connection whose own is at rest (`Worker+Side.swift`).
    let scratchDecoder: UnsafeMutablePointer<FrameDecoder>
    var scratchDecoderBusy = false
    /// Commands taken from the mailbox, being applied (kept to reuse its capacity).
    var mailboxCommands: [MailboxCommand] = []

    init(core: WorkerCore, backend: Backend, handler: Handler, control: WorkerControl, logger: Logger) throws(SystemError) {
        self.core = core
        self.backend = backend
        handlerStorage = .allocate(capacity: 1)
        handlerStorage.initialize(to: handler)
        self.control = control
        self.logger = logger
        states = try StateTable(capacity: core.slab.capacity)
        sides = try ConnectionSideTable(capacity: core.slab.capacity)
        scratchDecoder = .allocate(capacity: 1)
        scratchDecoder.initialize(to: FrameDecoder())
        startNanoseconds = backend.clockNanoseconds
        mailboxCommands.reserveCapacity(1024)
    }

    deinit {
        handlerStorage.deinitialize(count: 1)
        handlerStorage.deallocate()
        scratchDecoder.deinitialize(count: 1)
        scratchDecoder.deallocate()
    }

    @inline(__always)
    var slab: UnsafeMutablePointer<ConnectionSlot> { core.slab.slots }

    @inline(__always)
    func tag(_ operation: Operation, _ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>) -> UserData {
        UserData(operation, slot: slot, generation: connection.pointee.generation)
    }

    @inline(__always)
    func handle(_ slot: UInt32) -> WebSocketConnection<Handler.ConnectionState> {
        WebSocketConnection(id: core.id(of: slot), core: core, states: states.base)
    }

    // MARK: - Loop

    func run() {
        core.assertOnOwnThread()
        armAccept()
        while true {
            updateClock()
            // Right after the poll, before timers and the flush queue anything: the rings'
            // completion queues were just emptied and nothing waits to be submitted, which is
            // when a ring's posted receive buffers may be given back (`URingBackend.trimMemory`).
            // Later in the pass, at a million connections, a ring almost always had a ping queued.
            trimMemoryIfDue()
            while let slot = core.wheel.nextExpired(upTo: core.nowTick) { timerFired(slot) }
            if !shuttingDown && control.stopRequested.load(ordering: .relaxed) { beginShutdown() }
            if shuttingDown && shutdownStep() { break }
            if let tick = acceptRearmTick, core.nowTick >= tick {
                acceptRearmTick = nil
                armAccept()
            }
            drainMailbox()
            flush()
            rearmStarved()
            publish()
            clockStale = true
            // Sleep only when nothing was posted since the drain (else look and come back).
            let maySleep = core.mailbox.prepareToSleep()
            backend.poll(timeoutNanoseconds: maySleep ? waitNanoseconds() : 0, sink: self)
            core.mailbox.awake()
        }
        backend.submit()
        drainMailbox()
        publish()
    }

    private func updateClock() {
        let elapsed = backend.clockNanoseconds - startNanoseconds
        core.nowTick = UInt64(elapsed / core.settings.tickNanoseconds)
    }

    /// Re-reads the clock for the first completion after a wait. The loop reads it before it
    /// sleeps, and an idle worker sleeps until its next timer, which may be much later (or
    /// never): a deadline set from the old reading could already be past when it is set.
    /// Seen with `myriad load` after 12 s of idle: the first connections accepted got
    /// handshake deadlines in the past and were closed as handshake_timeout; a close frame
    /// after an idle spell would likewise get a close deadline that fires before the reply
    /// is flushed.
    @inline(__always)
    func refreshClockIfStale() {
        if clockStale {
            clockStale = false
            updateClock()
        }
    }

    /// How long the loop may sleep: until the wheel's next event, a delayed accept re-arm,
    /// or the shutdown deadline; nil for no timeout.
    private func waitNanoseconds() -> Int64? {
        var next = core.wheel.nextEventTick()
        if let tick = acceptRearmTick { next = min(next ?? tick, tick) }
        if holdsMemoryToTrim { next = min(next ?? nextTrimTick, nextTrimTick) }
        if shuttingDown { next = min(next ?? shutdownDeadline, shutdownDeadline, core.nowTick + 1) }
        guard let next else { return nil }
        let target = Int64(next) * core.settings.tickNanoseconds
        let elapsed = backend.clockNanoseconds - startNanoseconds
        return max(0, target - elapsed)
    }

    func publish() {
        core.counters.set(.open, Int(core.slab.occupied))
        core.counters.set(.pooledBytes, core.pool.outstandingBytes)
        core.sampleBufferGauges()
        core.counters.set(.waits, backend.waitCount)
        core.counters.set(.otherSyscalls, backend.syscallCount)
        core.counters.set(.cqOverflows, backend.overflowCount)
        core.counters.set(.cqDropped, backend.droppedCompletionCount)
        core.counters.set(.sqSpills, backend.spilledSubmissionCount)
        core.counters.set(.rings, backend.ringCount)
        core.counters.set(.sideEntries, sides.inUse)
        core.counters.set(.dedicatedDeflate, core.compression?.dedicatedCount ?? 0)
        core.counters.set(.topics, core.topics.topicCount)
        core.counters.set(.subscriptions, core.topics.subscriptionCount)
        core.counters.set(.mailboxRefused, core.mailbox.refused.load(ordering: .relaxed))
        core.counters.set(.kernelErrors, backend.kernelErrorCount)
        if backend.kernelErrorCount != kernelErrorsLogged { reportKernelErrors() }
        control.board.publish(core.counters)
    }

    /// Logs kernel errors the backend survived: the first at once, then at most one line a
    /// second with how many came since.
    private func reportKernelErrors() {
        let now = monotonicNanoseconds()
        guard now - lastKernelErrorLogNanoseconds >= 1_000_000_000 else { return }
        let total = backend.kernelErrorCount
        lastKernelErrorLogNanoseconds = now
        logger.error("worker \(core.index): \(total - kernelErrorsLogged) kernel error(s) survived; latest: \(backend.lastKernelError ?? "unknown")")
        kernelErrorsLogged = total
    }

    // MARK: - Flushing

    /// Acts on every connection in the flush list: starts sends, delivers deferred
    /// `onClose`, closes sockets whose last bytes are out.
    func flush() {
        core.assertOnOwnThread()
        while let slot = core.popFlush() {
            let connection = core.slab[slot]
            if connection.pointee.state == .closed {
                releaseIfDone(slot)
                continue
            }
            if connection.pointee.flags.contains(.handlerOpened) && connection.pointee.state != .open {
                notifyClose(slot, code: CloseCode(rawValue: connection.pointee.closeCode), reason: .init(start: nil, count: 0))
            }
            if connection.pointee.flags.contains(.abortRequested) {
                closeSocket(slot, connection)
                continue
            }
            let sending = connection.pointee.io.flags.contains(.sendInFlight)
            if !sending && connection.pointee.sendHead != SendSegment.none {
                submitSend(slot, connection)
            } else if !sending && connection.pointee.state == .draining {
                closeSocket(slot, connection)
            }
        }
    }

    /// Sends what is left of the first segment of the connection's queue.
    @inline(__always)
    private func submitSend(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>) {
        backend.send(connection, handle: connection.pointee.handle, slot: slot, bytes: core.queues.headBytes(connection))
        core.counters.add(.sends)
    }

    func sent(_ tag: UserData, result: Int32) {
        core.assertOnOwnThread()
        let slot = tag.slot
        let connection = core.slab.slot(completing: tag, "send completion")
        connection.pointee.io.sendCompleted()
        if result < 0 {
            if result != -ECANCELED { abortNow(slot, connection, cause: .socketError) }
            // The socket is closed: closeSocket kept only this segment, for this completion.
            core.releaseQueue(connection, keepingHead: false)
            releaseIfDone(slot)
            return
        }
        if core.queues.sent(connection, byteCount: Int(result)) && connection.pointee.state != .closed {
            submitSend(slot, connection)  // a short send: the rest goes out next
            return
        }
        core.popHeadSegment(connection)
        if connection.pointee.state == .closed {
            core.releaseQueue(connection, keepingHead: false)
            releaseIfDone(slot)
        } else if connection.pointee.sendHead != SendSegment.none || connection.pointee.state == .draining {
            core.markForFlush(slot, connection)
        }
    }

    // MARK: - Accepting

    func accepted(handle: Int32) {
        core.assertOnOwnThread()
        refreshClockIfStale()
        core.counters.add(.accepts)
        if shuttingDown {
            backend.closeUnowned(handle: handle)
            return
        }
        guard let slot = core.slab.allocate() else {
            core.counters.add(.acceptRejectedFull)
            backend.closeUnowned(handle: handle)
            noteAcceptFailure("the slab is full (\(core.slab.capacity) connections)")
            return
        }
        if acceptFailures > 0 {
            logger.notice("worker \(core.index): accepting again after \(acceptFailures) refused connection(s)")
            acceptFailures = 0
        }
        let connection = core.slab[slot]
        connection.pointee.handle = handle
        connection.pointee.state = .handshaking
        connection.pointee.lastInboundTick = core.now32
        requestPeerAddress(slot, connection)
        armReceive(slot, connection)
        core.wheel.schedule(slot, at: core.nowTick + UInt64(core.settings.handshakeTicks))
    }

    func acceptEnded(result: Int32, retryNow: Bool) {
        core.assertOnOwnThread()
        if result < 0 {
            switch -result {
            case ENFILE: core.counters.add(.acceptENFILE)
            case EMFILE: core.counters.add(.acceptEMFILE)
            case ENOMEM, ENOBUFS: core.counters.add(.acceptENOMEM)
            case ECANCELED: break
            default: core.counters.add(.acceptOther)
            }
            if -result != ECANCELED {
                let why = -result == ENFILE
                    ? "ENFILE: the fixed-file table is full (\(core.slab.occupied) connections)"
                    : SystemError("accept", errno: -result).description
                noteAcceptFailure(why)
            }
        }
        guard !shuttingDown else { return }
        if retryNow {
            armAccept()
        } else {
            acceptRearmTick = core.nowTick + 1
        }
    }

    /// Arms the accept; when the backend cannot (epoll_ctl refused the listener), tries again
    /// a tick later. The failure is counted and logged by the backend's error report.
    private func armAccept() {
        if !backend.armAccept() { acceptRearmTick = core.nowTick + 1 }
    }

    private func noteAcceptFailure(_ why: String) {
        if acceptFailures == 0 {
            logger.warning("worker \(core.index): refusing new connections: \(why)")
        }
        acceptFailures += 1
    }

    // MARK: - Receiving

    @inline(__always)
    func armReceive(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>) {
        backend.armReceive(connection, handle: connection.pointee.handle, slot: slot)
    }

    @inline(__always)
    func wantsToRead(_ connection: UnsafeMutablePointer<ConnectionSlot>) -> Bool {
        switch connection.pointee.state {
        case .handshaking, .open, .closing: return true
        default: return false
        }
    }

    func received(_ tag: UserData, bytes: UnsafeMutableRawBufferPointer, more: Bool) {
        core.assertOnOwnThread()
        refreshClockIfStale()
        let slot = tag.slot
        let connection = core.slab.slot(completing: tag, "receive completion")
        connection.pointee.io.received(more: more)
        core.counters.add(.bytesIn, bytes.count)
        switch connection.pointee.state {
        case .handshaking:
            connection.pointee.lastInboundTick = core.now32
            handshakeBytes(slot, connection, bytes)
        case .open, .closing:
            connection.pointee.lastInboundTick = core.now32
            frameBytes(slot, connection, bytes)
        default:
            break
        }
        if !more {
            if connection.pointee.io.needsReceive(wantsToRead: wantsToRead(connection)) {
                if backend.multishotReceive { core.counters.add(.receiveRearms) }
                armReceive(slot, connection)
            }
            releaseIfDone(slot)
        }
    }

    func receiveEnded(_ tag: UserData, result: Int32) {
        core.assertOnOwnThread()
        refreshClockIfStale()
        let slot = tag.slot
        let connection = core.slab.slot(completing: tag, "receive completion")
        switch connection.pointee.io.receiveEnded(result: result, wantsToRead: wantsToRead(connection)) {
        case .outOfBuffers(let park):
            // Backpressure, not EOF: re-armed once buffers are back (at the end of this batch).
            core.counters.add(.enobufsRearms)
            if park { starved.park(slot) }
        case .cancelled:
            break
        case .endOfFile:
            switch connection.pointee.state {
            case .handshaking, .open: abortNow(slot, connection, cause: .peerEOF)
            case .closing: abortNow(slot, connection, cause: connection.pointee.closeReason)
            default: break  // draining: the reply still goes out, then the socket closes
            }
        case .failed:
            if connection.pointee.state.rawValue < SlotState.draining.rawValue {
                abortNow(slot, connection, cause: .socketError)
            }
        }
        releaseIfDone(slot)
    }

    private func rearmStarved() {
        starved.rearm(in: core.slab.slots) { slot, connection in
            if connection.pointee.io.needsReceive(wantsToRead: wantsToRead(connection)) {
                armReceive(slot, connection)
            } else {
                releaseIfDone(slot)
            }
        }
    }

    func woken() { core.assertOnOwnThread() }

    /// The server role never connects (the load generator's `ClientWorker` is the client role).
    func connected(_ tag: UserData, result: Int32) {
        preconditionFailure("a server worker got a connect completion (\(tag.rawValue))")
    }

}

/// CLOCK_MONOTONIC in nanoseconds (vDSO: no system call).
@inline(__always)
package func monotonicNanoseconds() -> Int64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
}
