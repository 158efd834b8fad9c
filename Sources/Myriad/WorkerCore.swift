import Glibc
import WebSocketCodec

/// The part of a worker that connection handles reach: the slab, the timing wheel, the
/// buffer pool, the send queues, the topics, the counters, the mailbox and the list of
/// connections with work to flush.
///
/// It never performs I/O itself. Sends are queued on the connection and the connection is
/// linked into the flush list; closes change the connection's state. The worker's event loop
/// turns both into backend operations once per batch, so every send and ping due in one batch
/// (every delivery of one publish among them) leaves with one submit.
final class WorkerCore {
    let index: Int
    let settings: WorkerSettings
    let slab: ConnectionSlab
    let wheel: TimingWheel<SlabTimerStore<ConnectionSlot>>
    let pool: BufferPool
    let segments: SendSegmentPool
    /// The send queues over `segments` and `pool` (the code the client role shares).
    let queues: SendQueues
    let topics: TopicTable
    let counters = WorkerCounters()
    /// The engine-wide state: every worker's mailbox, the topic registry.
    let shared: EngineShared
    /// permessage-deflate, unless MYRIAD_COMPRESSION is off.
    let compression: WorkerCompression?
    var mailbox: Mailbox { shared.mailboxes[index] }
    /// The clock and the flush list, by pointer: read on every event, so kept out of class
    /// stored `var`s (each access to one is a dynamic exclusivity check).
    private let state: UnsafeMutablePointer<(nowTick: UInt64, flushHead: UInt32, flushTail: UInt32)>

    /// The current wheel tick (set once per loop iteration from the monotonic clock).
    var nowTick: UInt64 {
        @inline(__always) get { state.pointee.nowTick }
        @inline(__always) set { state.pointee.nowTick = newValue }
    }

    /// The thread that made the core: the worker's own, the only one that may touch it
    /// (other threads reach it through its mailbox).
    let ownerThread = pthread_self()

    init(index: Int, settings: WorkerSettings, capacity: UInt32, shared: EngineShared) throws(SystemError) {
        self.index = index
        self.settings = settings
        self.shared = shared
        slab = try ConnectionSlab(capacity: capacity)
        wheel = TimingWheel(store: SlabTimerStore(slots: slab.slots), capacity: capacity, startTick: 0)
        pool = BufferPool(budgetBytes: settings.bufferBudgetBytes)
        segments = SendSegmentPool()
        queues = SendQueues(segments: segments, pool: pool)
        topics = try TopicTable(subscriptionCapacity: UInt32(min(shared.maxSubscriptions, Int(Subscription.none - 1))))
        state = .allocate(capacity: 1)
        state.initialize(to: (0, ConnectionSlot.noSlot, ConnectionSlot.noSlot))
        if settings.compression == .off {
            compression = nil
        } else {
            guard let made = WorkerCompression(
                mode: settings.compression, thresholdBytes: settings.compressionThresholdBytes,
                dedicatedBudgetBytes: settings.compressionDedicatedBudgetBytes,
                maxMessageSizeBytes: settings.maxMessageSizeBytes, perRecipient: settings.compressionPerRecipient)
            else { throw SystemError("zlib: the worker's shared streams", errno: ENOMEM) }
            compression = made
        }
    }

    deinit { state.deallocate() }

    /// Debug builds stop when a worker's state is touched from another thread (a handle kept
    /// past its callback and used elsewhere, or a worker method called from outside its loop).
    @inline(__always)
    func assertOnOwnThread() {
        assert(pthread_equal(ownerThread, pthread_self()) != 0, "worker \(index) touched from another thread")
    }

    /// `nowTick` as stored in connections (wrapping 32-bit ticks).
    @inline(__always)
    var now32: UInt32 { UInt32(truncatingIfNeeded: nowTick) }

    /// The absolute tick `ticks` after the 32-bit stamp `stamp` (which is at most 2^31
    /// ticks in the past or future).
    @inline(__always)
    func absoluteTick(_ stamp: UInt32, plus ticks: UInt32) -> UInt64 {
        let offset = Int64(Int32(bitPattern: stamp &- now32)) + Int64(ticks)
        return UInt64(max(Int64(nowTick) + offset, Int64(nowTick)))
    }

    /// The ID of the connection in `slot` now.
    @inline(__always)
    func id(of slot: UInt32) -> ConnectionID {
        ConnectionID(worker: UInt16(truncatingIfNeeded: index), slot: slot, generation: slab[slot].pointee.generation)
    }

    /// The connection `id` names, if it is this worker's and still in its slot.
    @inline(__always)
    func live(_ id: ConnectionID) -> UnsafeMutablePointer<ConnectionSlot>? {
        guard Int(id.worker) == index else { return nil }
        return slab.live(id)
    }

    // MARK: - Flush list

    /// Links `slot` into the flush list (once).
    @inline(__always)
    func markForFlush(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>) {
        guard !connection.pointee.flags.contains(.inFlushList) else { return }
        connection.pointee.flags.insert(.inFlushList)
        connection.pointee.listNext = ConnectionSlot.noSlot
        if state.pointee.flushTail == ConnectionSlot.noSlot {
            state.pointee.flushHead = slot
        } else {
            slab[state.pointee.flushTail].pointee.listNext = slot
        }
        state.pointee.flushTail = slot
    }

    /// Unlinks and returns the first connection of the flush list.
    @inline(__always)
    func popFlush() -> UInt32? {
        let slot = state.pointee.flushHead
        guard slot != ConnectionSlot.noSlot else { return nil }
        let connection = slab[slot]
        state.pointee.flushHead = connection.pointee.listNext
        if state.pointee.flushHead == ConnectionSlot.noSlot { state.pointee.flushTail = ConnectionSlot.noSlot }
        connection.pointee.listNext = ConnectionSlot.noSlot
        connection.pointee.flags.remove(.inFlushList)
        return slot
    }

    // MARK: - Sending to an ID

    /// Queues a message for `id`: at once if it is this worker's, through its worker's
    /// mailbox otherwise.
    func send(to id: ConnectionID, opcode: Opcode, payload: UnsafeRawBufferPointer) -> SendResult {
        assertOnOwnThread()
        guard Int(id.worker) == index else {
            guard Int(id.worker) < shared.workerCount else { return .closed }
            let frame = SharedFrame.encode(opcode: opcode, payload: payload)
            guard shared.mailboxes[Int(id.worker)].post(.send(id, frame)) else {
                counters.add(.forwardsRefused)
                return .queueFull
            }
            counters.add(.forwarded)
            return .forwarded
        }
        guard let connection = slab.live(id), connection.pointee.state == .open else { return .closed }
        let result = queueMessage(id.slot, connection, opcode: opcode, payload: payload)
        if result == .queued {
            connection.pointee.lastMessageTick = now32
            counters.add(.messagesOut)
        }
        return result
    }

    /// Queues a data message, compressed when the connection agreed permessage-deflate and the
    /// message is at least MYRIAD_COMPRESSION_THRESHOLD (sent plain when compressing fails).
    @inline(__always)
    func queueMessage(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, opcode: Opcode,
                      payload: UnsafeRawBufferPointer) -> SendResult {
        if connection.pointee.flags.contains(.deflate), let compression, payload.count >= compression.thresholdBytes,
           compression.compress(payload, slot: slot, windowBits: connection.pointee.deflateWindowBits,
                                ownStreams: connection.pointee.flags.contains(.dedicatedDeflate)) {
            counters.add(.messagesCompressed)
            return queueFrame(slot, connection, opcode: opcode, payload: compression.scratch.bytes, compressed: true)
        }
        return queueFrame(slot, connection, opcode: opcode, payload: payload)
    }
}
