import Synchronization

/// Which workers of this process have subscribers of a topic: what lets a publish reach only
/// the workers that need it, and what the node as a whole is interested in (the cluster
/// bridge subscribes to a topic on the broker while any worker has a subscriber).
///
/// A worker reports its own transitions only (its first subscriber of a topic, its last one
/// leaving), so the registry is touched on subscription changes, not per message; a publish
/// reads it once (a shard lock and a hash lookup).
///
/// A subscription asked for from another thread is first counted as pending for its worker
/// (`beginRemoteSubscribe`), before it is posted: until the worker has applied it, every
/// publish also goes to that worker. So "subscribe, then publish" from one thread reaches the
/// new subscriber, whatever the timing.
final class TopicRegistry: @unchecked Sendable {
    let workerCount: Int
    private static let shardCount = 64
    /// Per topic: with up to 64 workers, a bit per worker with subscribers; with more, the
    /// number of such workers (every publish then goes to every worker).
    private final class Shard: Sendable {
        let table = Mutex<[String: UInt64]>([:])
    }
    private final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }
    private let shards: [Shard]
    private let pendingSubscribes: [Counter]
    /// Called with a topic when the node gains its first subscriber of it (true) or loses the
    /// last (false); off the hot path, outside the registry's locks.
    private let interestObserver: Mutex<(@Sendable (String, Bool) -> Void)?> = Mutex(nil)

    var usesMasks: Bool { workerCount <= 64 }

    init(workerCount: Int) {
        precondition(workerCount > 0)
        self.workerCount = workerCount
        shards = (0..<Self.shardCount).map { _ in Shard() }
        pendingSubscribes = (0..<workerCount).map { _ in Counter() }
    }

    func setInterestObserver(_ observer: (@Sendable (String, Bool) -> Void)?) {
        interestObserver.withLock { $0 = observer }
    }

    @inline(__always)
    private func shard(_ topic: String) -> Int {
        var hasher = Hasher()
        hasher.combine(topic)
        return Int(UInt(bitPattern: hasher.finalize()) % UInt(Self.shardCount))
    }

    /// Worker `worker` gained its first subscriber of `topic` (true) or lost its last (false).
    func workerInterest(_ topic: String, worker: Int, interested: Bool) {
        let nodeChange: Bool? = shards[shard(topic)].table.withLock { table in
            let before = table[topic] ?? 0
            var after = before
            if usesMasks {
                let bit = UInt64(1) << UInt64(worker)
                after = interested ? before | bit : before & ~bit
            } else {
                after = interested ? before + 1 : before - 1
            }
            if after == 0 { table[topic] = nil } else { table[topic] = after }
            if before == 0 && after != 0 { return true }
            if before != 0 && after == 0 { return false }
            return nil
        }
        if let nodeChange, let observer = interestObserver.withLock({ $0 }) { observer(topic, nodeChange) }
    }

    /// Whether any worker of this node has a subscriber of `topic`.
    func nodeInterested(in topic: String) -> Bool {
        shards[shard(topic)].table.withLock { $0[topic] != nil }
    }

    /// Every topic the node has subscribers of (for the cluster bridge after a reconnect).
    func interestedTopics() -> [String] {
        shards.flatMap { shard in shard.table.withLock { Array($0.keys) } }
    }

    /// The workers a publish to `topic` must reach (besides `excluding`, the publisher's own
    /// worker, which delivers locally): those with subscribers, and those with a subscribe
    /// still on its way.
    func targets(_ topic: String, excluding: Int?) -> WorkerSet {
        var set: WorkerSet
        if usesMasks {
            set = WorkerSet(mask: shards[shard(topic)].table.withLock { $0[topic] ?? 0 })
            for worker in 0..<workerCount where pendingSubscribes[worker].value.load(ordering: .acquiring) > 0 {
                set.insert(worker)
            }
        } else {
            set = WorkerSet.all(workerCount)
        }
        if let excluding { set.remove(excluding) }
        return set
    }

    /// Counts a subscribe posted to `worker`'s mailbox as pending (before it is posted).
    func beginRemoteSubscribe(worker: Int) {
        pendingSubscribes[worker].value.add(1, ordering: .sequentiallyConsistent)
    }

    /// The subscribe was applied (after `workerInterest`) or never posted.
    func endRemoteSubscribe(worker: Int) {
        pendingSubscribes[worker].value.subtract(1, ordering: .releasing)
    }
}

/// A set of worker indices: a bit mask up to 64 workers, an explicit "all" beyond.
struct WorkerSet: Sequence {
    private(set) var mask: UInt64
    private var allCount: Int

    init(mask: UInt64) {
        self.mask = mask
        allCount = 0
    }

    static func all(_ count: Int) -> WorkerSet {
        var set = WorkerSet(mask: count >= 64 ? .max : (UInt64(1) << UInt64(count)) &- 1)
        if count > 64 { set.allCount = count }
        return set
    }

    var isEmpty: Bool { mask == 0 && allCount == 0 }

    mutating func insert(_ worker: Int) {
        if allCount == 0 { mask |= UInt64(1) << UInt64(worker) }
    }

    /// Removing from an "all" set of more than 64 is recorded as an exclusion.
    mutating func remove(_ worker: Int) {
        if allCount == 0 {
            mask &= ~(UInt64(1) << UInt64(worker))
        } else {
            excluded = worker
        }
    }

    private var excluded: Int = -1

    struct Iterator: IteratorProtocol {
        var set: WorkerSet
        var position = 0
        mutating func next() -> Int? {
            if set.allCount > 0 {
                while position < set.allCount {
                    defer { position += 1 }
                    if position != set.excluded { return position }
                }
                return nil
            }
            guard set.mask != 0 else { return nil }
            let worker = set.mask.trailingZeroBitCount
            set.mask &= set.mask - 1
            return worker
        }
    }

    func makeIterator() -> Iterator { Iterator(set: self) }
}
