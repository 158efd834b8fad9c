import Myriad
import Synchronization

/// The counters a client thread publishes for the coordinator (and the progress line).
enum LoadCounter: Int, CaseIterable {
    /// Connections started (socket created).
    case attempts
    /// Upgrades completed.
    case handshakes
    /// Upgraded and not yet closing (a gauge).
    case open
    /// Connecting or handshaking (a gauge: what `--concurrency` bounds).
    case establishing
    /// Slots in use, in any state (a gauge).
    case live
    case failConnect
    case failHandshake
    case failRead
    case failUnexpectedClose
    case failClose
    case unexpectedCloses
    case cleanCloses
    case pingsSent
    case pongsReceived
    case serverPingsAnswered
    /// echo: messages sent; fanout: messages the publisher published.
    case messagesSent
    /// echo: echoes received; fanout: data messages received (duplicates included).
    case messagesReceived
    /// fanout: messages received that a connection had not received before (its first
    /// copy of that sequence, late ones included).
    case delivered
    /// fanout: a connection received the sequence it received last, again.
    case duplicated
    /// fanout: a connection received a sequence lower than the one it received last.
    case outOfOrder
    case verifyOK
    case verifyFailed
    /// Nanoseconds from the run's start to this thread's latest handshake (a maximum).
    case lastHandshakeNanoseconds
    /// 1 once every connection of the ramp is resolved (churn: every cycle is done).
    case rampDone
    /// 1 once every verify message came back or timed out.
    case verifyDone
    /// 1 once every connection is closed.
    case closeDone
    /// fanout, the publisher's thread only: 1 once the publishing is over (every message
    /// sent and the duration passed, or the publisher is gone). Summed, not an all-flag.
    case publishDone
    /// fanout: 1 once every open connection of the thread has the last published message
    /// (nothing more is coming: TCP delivers in order).
    case drainDone
    /// Receives that ended with -ENOBUFS (parked and re-armed: nothing lost).
    case enobufs
    /// Times the kernel held completions back because the CQ was full.
    case cqOverflows
    /// Blocking waits of the thread (each may sleep in ring 0): its wake-ups, at most.
    case waits
    /// Data messages nobody asked for (hold mode: the server sent one).
    case unexpectedMessages
    /// Frames not sent because the connection's send queue was full (e.g. pongs for a burst
    /// of server pings while a send was stuck).
    case droppedFrames
    /// Pool buffers lent out right now (a gauge): send queues and gathering buffers.
    case buffersInUse
    /// --deflate both: data messages sent compressed.
    case messagesCompressed
    /// --deflate: compressed data messages received and inflated.
    case messagesInflated

    /// Published last, with release ordering: seeing one means seeing the counters behind it.
    static let flags: [LoadCounter] = [.rampDone, .verifyDone, .closeDone, .publishDone, .drainDone]

    static func failureCounter(_ kind: FailureKind) -> LoadCounter {
        switch kind {
        case .connect: return .failConnect
        case .handshake: return .failHandshake
        case .read: return .failRead
        case .unexpectedClose: return .failUnexpectedClose
        case .close: return .failClose
        }
    }
}

/// Counter values, summed over threads or for one thread.
struct CounterValues {
    var values = [Int](repeating: 0, count: LoadCounter.allCases.count)

    subscript(_ counter: LoadCounter) -> Int {
        get { values[counter.rawValue] }
        set { values[counter.rawValue] = newValue }
    }
}

/// What a client thread and the coordinator share: published counters, the failure table,
/// start-up status, and the thread's histograms once it has exited.
final class ThreadShared: @unchecked Sendable {
    private let slots: UnsafeMutablePointer<Atomic<Int>>
    let failures = Mutex(FailureCounts())
    /// 0 starting, 1 running, 2 failed to start, 3 exited.
    let status = Atomic<Int>(0)
    let startError = Mutex<String?>(nil)
    let histograms = Mutex<(roundTrip: Histogram, latency: Histogram)?>(nil)
    /// fanout: the thread's per-port and per-message results, once it has exited.
    let fanout = Mutex<FanoutThreadResult?>(nil)

    init() {
        slots = .allocate(capacity: LoadCounter.allCases.count)
        for index in 0..<LoadCounter.allCases.count { (slots + index).initialize(to: Atomic(0)) }
    }

    deinit {
        slots.deinitialize(count: LoadCounter.allCases.count)
        slots.deallocate()
    }

    /// Publishes the thread's counters (client thread only). The done flags are stored last
    /// with release ordering, so a coordinator that sees a flag sees the counters behind it.
    func publish(_ values: CounterValues) {
        for counter in LoadCounter.allCases where !LoadCounter.flags.contains(counter) {
            slots[counter.rawValue].store(values[counter], ordering: .relaxed)
        }
        for counter in LoadCounter.flags {
            slots[counter.rawValue].store(values[counter], ordering: .releasing)
        }
    }

    func snapshot() -> CounterValues {
        var result = CounterValues()
        for counter in LoadCounter.allCases {
            result[counter] = slots[counter.rawValue].load(ordering: .acquiring)
        }
        return result
    }
}

/// The run's phase, set by the coordinator and read by every client thread once per loop.
final class RunControl: Sendable {
    let phase = Atomic<Int>(LoadPhase.ramp.rawValue)
    let startNanoseconds: Int64
    /// Threads that have not yet started every connection of their ramp.
    let rampingThreads: Atomic<Int>
    /// `--concurrency`: connections establishing at once, over all threads.
    let totalConcurrency: Int
    /// fanout: 1 + the last sequence published (set by the publisher; final once its
    /// thread reports `publishDone`, which the drain waits for).
    let sequenceEnd = Atomic<Int>(0)

    init(startNanoseconds: Int64, threads: Int, concurrency: Int) {
        self.startNanoseconds = startNanoseconds
        rampingThreads = Atomic(threads)
        totalConcurrency = concurrency
    }

    var current: LoadPhase { LoadPhase(rawValue: phase.load(ordering: .acquiring)) ?? .stop }

    func set(_ newPhase: LoadPhase) { phase.store(newPhase.rawValue, ordering: .releasing) }
}
