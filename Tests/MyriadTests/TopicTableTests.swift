import Testing
@testable import Myriad

/// The topic table against a model (a dictionary of sets), under random subscribes,
/// unsubscribes and connection removals, with every invariant checked as it goes.
@Suite struct TopicTableTests {
    @Test(arguments: [1, 2, 3] as [UInt64])
    func matchesAModelUnderRandomOperations(seed: UInt64) throws {
        let table = try TopicTable(subscriptionCapacity: 4096)
        var random = SeededRandom(seed: seed)
        let connections = 64
        var heads = [UInt32](repeating: Subscription.none, count: connections)
        var model: [String: [Int]] = [:]  // topic -> subscribers in subscription order
        let names = (0..<24).map { "topic-\($0)-" + String(repeating: "x", count: $0) }
        for step in 0..<20_000 {
            let connection = Int(random.below(UInt64(connections)))
            let name = names[Int(random.below(UInt64(names.count)))]
            switch random.below(10) {
            case 0..<5:
                let outcome = table.subscribe(slot: UInt32(connection), head: &heads[connection], to: name)
                if model[name, default: []].contains(connection) {
                    #expect(outcome == .alreadySubscribed)
                } else {
                    #expect(outcome == .subscribed(firstOnWorker: model[name] == nil))
                    model[name, default: []].append(connection)
                }
            case 5..<9:
                let (removed, last) = table.unsubscribe(head: &heads[connection], from: name)
                let had = model[name]?.contains(connection) ?? false
                #expect(removed == had)
                if had {
                    model[name]!.removeAll { $0 == connection }
                    #expect(last == model[name]!.isEmpty)
                    if model[name]!.isEmpty { model[name] = nil }
                }
            default:
                var emptied: [String] = []
                table.removeAll(head: &heads[connection]) { emptied.append($0) }
                #expect(heads[connection] == Subscription.none)
                var expectedEmptied: [String] = []
                for (topic, subscribers) in model where subscribers.contains(connection) {
                    model[topic]!.removeAll { $0 == connection }
                    if model[topic]!.isEmpty {
                        model[topic] = nil
                        expectedEmptied.append(topic)
                    }
                }
                #expect(Set(emptied) == Set(expectedEmptied))
            }
            if step % 97 == 0 {
                #expect(table.checkInvariants(connectionHeads: heads), "step \(step)")
                for (topic, subscribers) in model {
                    var seen: [Int] = []
                    table.forEachSubscriber(ofTopic: table.index(of: topic)!) { seen.append(Int($0)) }
                    #expect(seen == subscribers, "\(topic) at step \(step)")
                }
                #expect(table.topicCount == model.count)
                #expect(table.subscriptionCount == model.values.reduce(0) { $0 + $1.count })
            }
        }
    }

    @Test func theArenaLimitIsReportedNotCrossed() throws {
        let table = try TopicTable(subscriptionCapacity: 3)
        var head = Subscription.none
        for index in 0..<3 { #expect(table.subscribe(slot: 0, head: &head, to: "t\(index)") == .subscribed(firstOnWorker: true)) }
        #expect(table.subscribe(slot: 0, head: &head, to: "t3") == .limitReached)
        #expect(table.topicCount == 3)
        _ = table.unsubscribe(head: &head, from: "t1")
        #expect(table.subscribe(slot: 0, head: &head, to: "t3") == .subscribed(firstOnWorker: true))
    }

    /// At most 32 bytes per subscription (issue 13), in the arena itself.
    @Test func aSubscriptionIsAtMost32Bytes() {
        #expect(MemoryLayout<Subscription>.stride <= 32)
    }
}
