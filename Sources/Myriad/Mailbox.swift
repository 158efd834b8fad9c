import CLibURing
import Glibc
import Synchronization
import WebSocketCodec

/// A request for a worker from another thread (or another worker): what `EngineHandle` and
/// cross-worker sends and publishes post to the worker that owns the connection or the
/// subscribers.
enum MailboxCommand: @unchecked Sendable {
    case send(ConnectionID, SharedFrame)
    case close(ConnectionID, CloseCode, String)
    case subscribe(ConnectionID, String)
    case unsubscribe(ConnectionID, String)
    case publish(String, Publication, excluding: ConnectionID?)
    /// A deferred upgrade's decision (`UpgradeDecision<State>`, boxed: the handle is not
    /// generic over the handler).
    case upgrade(ConnectionID, AnyUpgradeDecision)

    /// What the command counts against the mailbox's byte bound: its frame, or a nominal 64
    /// bytes (the enum and a small string).
    var byteCost: Int {
        switch self {
        case .send(_, let frame): return frame.byteCount + 64
        case .publish(_, let publication, _): return publication.byteCount + 64
        case .close(_, _, let reason): return 64 + reason.utf8.count
        case .subscribe(_, let topic), .unsubscribe(_, let topic): return 64 + topic.utf8.count
        case .upgrade: return 256
        }
    }
}

/// How a worker is woken from another thread: the worker, not a particular ring. An eventfd
/// the worker always watches (read by its ring, or in its epoll set), and, with io_uring, the
/// fd of the ring the worker waits on: a worker that wakes another posts IORING_OP_MSG_RING
/// from its own ring instead of a system call (it leaves with that worker's next submit).
final class WorkerWaker: Sendable {
    let eventFileDescriptor: Int32
    /// The ring the worker waits on, -1 until it exists (or with epoll).
    let ringFileDescriptor = Atomic<Int32>(-1)
    let workerIndex: Int

    init(eventFileDescriptor: Int32, workerIndex: Int) {
        self.eventFileDescriptor = eventFileDescriptor
        self.workerIndex = workerIndex
    }

    /// Wakes the worker: by a message from the calling worker's ring when the caller is an
    /// io_uring worker and the target waits on a ring, else through the eventfd.
    func wake() {
        let ring = ringFileDescriptor.load(ordering: .relaxed)
        if ring >= 0, let sender = CurrentRingMessenger.current, sender.message(ringFileDescriptor: ring, targetWorker: workerIndex) {
            return
        }
        wakeThroughEventFD()
    }

    func wakeThroughEventFD() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(eventFileDescriptor, $0.baseAddress, 8) }
    }
}

/// What lets the current thread wake another worker with a ring message: set by each
/// io_uring worker thread for itself (a pthread key: Swift has no thread-local storage).
protocol RingMessenger: AnyObject {
    /// Queues an IORING_OP_MSG_RING to the ring `ringFileDescriptor`; false when it cannot.
    func message(ringFileDescriptor: Int32, targetWorker: Int) -> Bool
}

enum CurrentRingMessenger {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0)
        return key
    }()

    static var current: RingMessenger? {
        guard let raw = pthread_getspecific(key) else { return nil }
        return Unmanaged<AnyObject>.fromOpaque(raw).takeUnretainedValue() as? RingMessenger
    }

    /// Sets (or clears, with nil) the calling thread's messenger; the caller keeps it alive.
    static func set(_ messenger: RingMessenger?) {
        pthread_setspecific(key, messenger.map { Unmanaged.passUnretained($0 as AnyObject).toOpaque() })
    }
}

/// One worker's inbox: a bounded queue of `MailboxCommand`s from other threads.
///
/// Bounded in commands and in bytes: a post that does not fit is refused and the caller is
/// told so (`HandleResult.queueFull`); nothing is dropped silently and nothing grows without
/// bound. A publish to several workers reserves room in each first and posts only when all
/// have it, so it reaches all of them or none.
///
/// Waking: before it sleeps the worker sets `sleeping` and then looks at `pending`; a poster
/// raises `pending` and then takes `sleeping` back. Both are sequentially consistent, so one
/// of them sees the other: the worker does not sleep on work, or the poster wakes it (once per
/// sleep, whoever gets `sleeping` first).
final class Mailbox: @unchecked Sendable {
    let capacityCommands: Int
    let capacityBytes: Int
    let waker: WorkerWaker
    private struct Queue {
        var commands: [MailboxCommand] = []
        var bytes = 0
        var reservedCommands = 0
        var reservedBytes = 0
    }
    private let queue = Mutex(Queue())
    private let pending = Atomic<Int>(0)
    private let sleeping = Atomic<Bool>(false)
    /// Posts refused because the mailbox was full (read by the worker's stats).
    let refused = Atomic<Int>(0)

    init(capacityCommands: Int, capacityBytes: Int, waker: WorkerWaker) {
        self.capacityCommands = capacityCommands
        self.capacityBytes = capacityBytes
        self.waker = waker
    }

    /// Reserves room for one command of `bytes`; false (counted) when it does not fit.
    func reserve(bytes: Int) -> Bool {
        let reserved = queue.withLock { queue -> Bool in
            guard queue.commands.count + queue.reservedCommands < capacityCommands,
                  queue.bytes + queue.reservedBytes + bytes <= capacityBytes else { return false }
            queue.reservedCommands += 1
            queue.reservedBytes += bytes
            return true
        }
        if !reserved { refused.add(1, ordering: .relaxed) }
        return reserved
    }

    func cancelReservation(bytes: Int) {
        queue.withLock { queue in
            queue.reservedCommands -= 1
            queue.reservedBytes -= bytes
        }
    }

    /// Posts a command into room reserved for it, and wakes the worker if it sleeps.
    func commit(_ command: MailboxCommand, bytes: Int) {
        queue.withLock { queue in
            queue.reservedCommands -= 1
            queue.reservedBytes -= bytes
            queue.commands.append(command)
            queue.bytes += bytes
        }
        pending.add(1, ordering: .sequentiallyConsistent)
        if sleeping.exchange(false, ordering: .sequentiallyConsistent) { waker.wake() }
    }

    /// Reserves and commits; false when the mailbox is full.
    func post(_ command: MailboxCommand) -> Bool {
        let bytes = command.byteCost
        guard reserve(bytes: bytes) else { return false }
        commit(command, bytes: bytes)
        return true
    }

    /// Worker only: takes every posted command, in order, swapping in `spare` (an empty array
    /// with capacity, so draining allocates nothing in steady state).
    func drain(into spare: inout [MailboxCommand]) {
        guard pending.load(ordering: .relaxed) > 0 else { return }
        assert(spare.isEmpty)
        queue.withLock { queue in
            swap(&queue.commands, &spare)
            queue.bytes = 0
        }
        pending.subtract(spare.count, ordering: .relaxed)
    }

    /// Worker only, before a wait: true when it may sleep (nothing posted since the last
    /// drain). After the wait, `awake()`.
    func prepareToSleep() -> Bool {
        sleeping.store(true, ordering: .sequentiallyConsistent)
        if pending.load(ordering: .sequentiallyConsistent) > 0 {
            sleeping.store(false, ordering: .relaxed)
            return false
        }
        return true
    }

    func awake() { sleeping.store(false, ordering: .relaxed) }

    /// Commands posted and not yet drained.
    var pendingCount: Int { pending.load(ordering: .relaxed) }
}
