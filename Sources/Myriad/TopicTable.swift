import Glibc

/// One connection's subscription to one topic: a link in the topic's list of subscribers and
/// in the connection's list of topics, so a publish walks only the topic's subscribers and a
/// close removes only the connection's own subscriptions. 24 bytes.
struct Subscription {
    var topic: UInt32 = Subscription.none
    /// The subscribing connection's slab slot.
    var slot: UInt32 = Subscription.none
    var nextInTopic: UInt32 = Subscription.none
    var previousInTopic: UInt32 = Subscription.none
    /// In a free subscription, the next free one.
    var nextOfConnection: UInt32 = Subscription.none
    var previousOfConnection: UInt32 = Subscription.none

    static let none = UInt32.max
}

/// A topic with at least one subscriber on this worker.
struct TopicRecord {
    var name: String
    var firstSubscriber: UInt32 = Subscription.none
    var subscriberCount: UInt32 = 0
}

/// What `TopicTable.subscribe` did.
enum SubscribeOutcome: Equatable {
    /// Subscribed; `firstOnWorker` when the topic had no subscriber on this worker before.
    case subscribed(firstOnWorker: Bool)
    /// The connection was already subscribed: nothing changed.
    case alreadySubscribed
    /// MYRIAD_MAX_SUBSCRIPTIONS (this worker's share of the arena) is used up.
    case limitReached
}

/// A worker's topics and subscriptions (uWebSockets' TopicTree, flattened: a hash table of
/// names and two intrusive lists per subscription).
///
/// Subscriptions live in one arena reserved up front with `MAP_NORESERVE` (pages become
/// resident as the high-water mark grows, as the slab's do), reused most recently freed first.
/// Topics live in a second arena indexed by a `[String: UInt32]`; a topic is removed when its
/// last subscriber leaves, so the table holds only topics someone on this worker listens to.
///
/// Invariants: a subscription is in its topic's list and its connection's list, or in the free
/// list; a topic's `subscriberCount` is the length of its list and is never 0 while the topic
/// is in `indexByName`.
final class TopicTable {
    let subscriptionCapacity: UInt32
    private let subscriptions: UnsafeMutablePointer<Subscription>
    private let subscriptionBytes: Int
    private var subscriptionHighWater: UInt32 = 0
    private var freeSubscription = Subscription.none
    private(set) var subscriptionCount = 0

    private var topics: [TopicRecord] = []
    private var freeTopics: [UInt32] = []
    private var indexByName: [String: UInt32] = [:]

    /// Topics with at least one subscriber here.
    var topicCount: Int { indexByName.count }

    init(subscriptionCapacity: UInt32) throws(SystemError) {
        precondition(subscriptionCapacity > 0 && subscriptionCapacity < Subscription.none)
        self.subscriptionCapacity = subscriptionCapacity
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        subscriptionBytes = (Int(subscriptionCapacity) * MemoryLayout<Subscription>.stride + page - 1) / page * page
        guard let memory = mmap(nil, subscriptionBytes, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0), memory != MAP_FAILED else {
            throw SystemError("mmap(\(subscriptionCapacity) subscriptions)", errno: errno)
        }
        subscriptions = memory.bindMemory(to: Subscription.self, capacity: Int(subscriptionCapacity))
    }

    deinit { munmap(UnsafeMutableRawPointer(subscriptions), subscriptionBytes) }

    @inline(__always)
    private func subscription(_ index: UInt32) -> UnsafeMutablePointer<Subscription> {
        assert(index < subscriptionHighWater)
        return subscriptions + Int(index)
    }

    /// The topic's index, or nil when nobody on this worker is subscribed to it.
    @inline(__always)
    func index(of name: String) -> UInt32? { indexByName[name] }

    func name(ofTopic index: UInt32) -> String { topics[Int(index)].name }

    func subscriberCount(of name: String) -> Int {
        guard let index = indexByName[name] else { return 0 }
        return Int(topics[Int(index)].subscriberCount)
    }

    /// Calls `body` with the slot of every subscriber of topic `index`, in subscription order.
    /// `body` must not subscribe or unsubscribe anyone.
    @inline(__always)
    func forEachSubscriber(ofTopic index: UInt32, _ body: (UInt32) -> Void) {
        var next = topics[Int(index)].firstSubscriber
        while next != Subscription.none {
            let entry = subscription(next)
            next = entry.pointee.nextInTopic
            body(entry.pointee.slot)
        }
    }

    /// Subscribes the connection in `slot` (whose list head is `head`) to `name`.
    func subscribe(slot: UInt32, head: inout UInt32, to name: String) -> SubscribeOutcome {
        // Already subscribed? The connection's own list is short; walk it.
        if let topic = indexByName[name] {
            var next = head
            while next != Subscription.none {
                if subscription(next).pointee.topic == topic { return .alreadySubscribed }
                next = subscription(next).pointee.nextOfConnection
            }
        }
        guard let entry = allocateSubscription() else { return .limitReached }
        let first: Bool
        let topic: UInt32
        if let existing = indexByName[name] {
            topic = existing
            first = false
        } else {
            topic = allocateTopic(name)
            first = true
        }
        // Append to the topic's list (publish order follows subscription order).
        let record = topics[Int(topic)].firstSubscriber
        let node = subscription(entry)
        node.pointee = Subscription(topic: topic, slot: slot)
        if record == Subscription.none {
            topics[Int(topic)].firstSubscriber = entry
            node.pointee.previousInTopic = entry  // the first node's `previous` is the tail
        } else {
            let tail = subscription(record).pointee.previousInTopic
            subscription(tail).pointee.nextInTopic = entry
            node.pointee.previousInTopic = tail
            subscription(record).pointee.previousInTopic = entry
        }
        topics[Int(topic)].subscriberCount += 1
        // Push onto the connection's list.
        node.pointee.nextOfConnection = head
        if head != Subscription.none { subscription(head).pointee.previousOfConnection = entry }
        head = entry
        subscriptionCount += 1
        return .subscribed(firstOnWorker: first)
    }

    /// Removes the connection's subscription to `name`; returns whether there was one, and
    /// whether it was the topic's last on this worker.
    func unsubscribe(head: inout UInt32, from name: String) -> (removed: Bool, lastOnWorker: Bool) {
        guard let topic = indexByName[name] else { return (false, false) }
        var next = head
        while next != Subscription.none {
            if subscription(next).pointee.topic == topic {
                return (true, remove(next, head: &head))
            }
            next = subscription(next).pointee.nextOfConnection
        }
        return (false, false)
    }

    /// Removes every subscription of a connection (at its close): time proportional to its
    /// own subscriptions. `topicEmptied` is called with each topic that lost its last
    /// subscriber on this worker.
    func removeAll(head: inout UInt32, topicEmptied: (String) -> Void) {
        while head != Subscription.none {
            let entry = head
            let topic = subscription(entry).pointee.topic
            let name = topics[Int(topic)].subscriberCount == 1 ? topics[Int(topic)].name : nil
            if remove(entry, head: &head), let name { topicEmptied(name) }
        }
    }

    /// Unlinks subscription `entry` from both lists and frees it; true when its topic had no
    /// other subscriber here (the topic is then removed).
    private func remove(_ entry: UInt32, head: inout UInt32) -> Bool {
        let node = subscription(entry).pointee
        let topic = node.topic
        // Topic list: `previousInTopic` of the first node is the tail.
        let first = topics[Int(topic)].firstSubscriber
        if entry == first {
            topics[Int(topic)].firstSubscriber = node.nextInTopic
            if node.nextInTopic != Subscription.none {
                subscription(node.nextInTopic).pointee.previousInTopic = node.previousInTopic
            }
        } else {
            subscription(node.previousInTopic).pointee.nextInTopic = node.nextInTopic
            let successor = node.nextInTopic == Subscription.none ? first : node.nextInTopic
            subscription(successor).pointee.previousInTopic = node.previousInTopic
        }
        topics[Int(topic)].subscriberCount -= 1
        // ConnectionSlot list.
        if node.previousOfConnection != Subscription.none {
            subscription(node.previousOfConnection).pointee.nextOfConnection = node.nextOfConnection
        } else {
            assert(head == entry)
            head = node.nextOfConnection
        }
        if node.nextOfConnection != Subscription.none {
            subscription(node.nextOfConnection).pointee.previousOfConnection = node.previousOfConnection
        }
        freeSubscriptionEntry(entry)
        subscriptionCount -= 1
        if topics[Int(topic)].subscriberCount == 0 {
            freeTopic(topic)
            return true
        }
        return false
    }

    private func allocateSubscription() -> UInt32? {
        if freeSubscription != Subscription.none {
            let entry = freeSubscription
            freeSubscription = subscription(entry).pointee.nextOfConnection
            return entry
        }
        guard subscriptionHighWater < subscriptionCapacity else { return nil }
        let entry = subscriptionHighWater
        subscriptionHighWater += 1
        (subscriptions + Int(entry)).initialize(to: Subscription())
        return entry
    }

    private func freeSubscriptionEntry(_ entry: UInt32) {
        subscription(entry).pointee = Subscription(nextOfConnection: freeSubscription)
        freeSubscription = entry
    }

    private func allocateTopic(_ name: String) -> UInt32 {
        let topic: UInt32
        if let reused = freeTopics.popLast() {
            topic = reused
            topics[Int(topic)] = TopicRecord(name: name)
        } else {
            topic = UInt32(topics.count)
            topics.append(TopicRecord(name: name))
        }
        indexByName[name] = topic
        return topic
    }

    private func freeTopic(_ topic: UInt32) {
        indexByName[topics[Int(topic)].name] = nil
        topics[Int(topic)] = TopicRecord(name: "")
        freeTopics.append(topic)
    }

    /// Checks every invariant (tests, debug): counts match the lists, links are consistent.
    func checkInvariants(connectionHeads: [UInt32]) -> Bool {
        var total = 0
        for (name, topic) in indexByName {
            let record = topics[Int(topic)]
            guard record.name == name, record.subscriberCount > 0 else { return false }
            var count: UInt32 = 0
            var next = record.firstSubscriber
            var previous = Subscription.none
            while next != Subscription.none {
                let node = subscription(next).pointee
                guard node.topic == topic else { return false }
                if previous != Subscription.none && node.previousInTopic != previous { return false }
                previous = next
                next = node.nextInTopic
                count += 1
            }
            guard count == record.subscriberCount, subscription(record.firstSubscriber).pointee.previousInTopic == previous
            else { return false }
            total += Int(count)
        }
        var fromConnections = 0
        for head in connectionHeads {
            var next = head
            while next != Subscription.none {
                fromConnections += 1
                next = subscription(next).pointee.nextOfConnection
            }
        }
        return total == subscriptionCount && fromConnections == subscriptionCount
    }
}
