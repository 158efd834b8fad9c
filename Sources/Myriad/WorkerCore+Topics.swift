import WebSocketCodec

/// Topics on a worker: subscriptions of its own connections, publishes delivered to them, and
/// publishes handed to the other workers that have subscribers (`TopicRegistry`).
extension WorkerCore {
    func subscribe(_ id: ConnectionID, to topic: String) -> SubscribeResult {
        assertOnOwnThread()
        guard let connection = live(id), connection.pointee.state == .open else { return .closed }
        return subscribe(id.slot, connection, to: topic)
    }

    func subscribe(_ slot: UInt32, _ connection: UnsafeMutablePointer<ConnectionSlot>, to topic: String) -> SubscribeResult {
        guard shared.takeSubscription() else {
            counters.add(.subscriptionsRefused)
            return .limitReached
        }
        switch topics.subscribe(slot: slot, head: &connection.pointee.subscriptions, to: topic) {
        case .subscribed(let firstOnWorker):
            if firstOnWorker { shared.registry.workerInterest(topic, worker: index, interested: true) }
            counters.add(.subscribes)
            return .subscribed
        case .alreadySubscribed:
            shared.returnSubscriptions(1)
            return .alreadySubscribed
        case .limitReached:
            shared.returnSubscriptions(1)
            counters.add(.subscriptionsRefused)
            return .limitReached
        }
    }

    func unsubscribe(_ id: ConnectionID, from topic: String) -> Bool {
        assertOnOwnThread()
        guard let connection = live(id) else { return false }
        let (removed, lastOnWorker) = topics.unsubscribe(head: &connection.pointee.subscriptions, from: topic)
        guard removed else { return false }
        shared.returnSubscriptions(1)
        counters.add(.unsubscribes)
        if lastOnWorker { shared.registry.workerInterest(topic, worker: index, interested: false) }
        return true
    }

    /// Ends every subscription of a closing connection: time proportional to its own.
    func removeAllSubscriptions(_ connection: UnsafeMutablePointer<ConnectionSlot>) {
        guard connection.pointee.subscriptions != Subscription.none else { return }
        let before = topics.subscriptionCount
        topics.removeAll(head: &connection.pointee.subscriptions) { emptied in
            shared.registry.workerInterest(emptied, worker: index, interested: false)
        }
        let removed = before - topics.subscriptionCount
        shared.returnSubscriptions(removed)
        counters.add(.unsubscribes, removed)
    }

    /// Publishes from a callback on this worker: the frame is encoded once; other workers
    /// with subscribers get it through their mailboxes (all of them or none), this worker's
    /// subscribers at once.
    func publish(to topic: String, opcode: Opcode, payload: UnsafeRawBufferPointer, excluding: ConnectionID?) -> PublishResult {
        assertOnOwnThread()
        let local = topics.index(of: topic)
        let remote = shared.workerCount > 1 ? shared.registry.targets(topic, excluding: index) : WorkerSet(mask: 0)
        counters.add(.publishes)
        if local == nil && remote.isEmpty { return .published }
        let publication = Publication(opcode: opcode, payload: payload)
        if !remote.isEmpty, let full = shared.postPublish(topic, publication, excluding: excluding, to: remote) {
            counters.add(.publishesRefused)
            return .queueFull(worker: full)
        }
        if let local { deliver(publication, toTopic: local, excluding: excluding) }
        return .published
    }

    /// Queues the publication to every open subscriber of topic `topicIndex` but `excluding`:
    /// the plain frame by reference, or, to subscribers that agreed permessage-deflate (when
    /// the message reaches MYRIAD_COMPRESSION_THRESHOLD), the compressed frame, made once.
    func deliver(_ publication: Publication, toTopic topicIndex: UInt32, excluding: ConnectionID?) {
        var delivered = 0
        let now = now32
        let skipSlot = excluding.flatMap { Int($0.worker) == index ? $0.slot : nil } ?? ConnectionSlot.noSlot
        let compresses = compression.map { publication.payloadCount >= $0.thresholdBytes } ?? false
        // Frames for other window sizes than 15 bits, made for this delivery only.
        var otherWindow: (bits: UInt8, frame: SharedFrame?) = (0, nil)
        topics.forEachSubscriber(ofTopic: topicIndex) { slot in
            let connection = slab[slot]
            guard connection.pointee.state == .open else { return }
            if slot == skipSlot && connection.pointee.generation == excluding!.generation { return }
            var frame = publication.plain
            if compresses && connection.pointee.flags.contains(.deflate), let compression {
                let bits = connection.pointee.deflateWindowBits
                var made: SharedFrame?
                if bits == 15 {
                    made = publication.compressedFrame(windowBits: 15, using: compression)
                } else {
                    if otherWindow.bits != bits { otherWindow = (bits, publication.compressedFrame(windowBits: bits, using: compression)) }
                    made = otherWindow.frame
                }
                if let made {
                    frame = made
                    if connection.pointee.flags.contains(.dedicatedDeflate) { compression.forgetWindow(slot: slot) }
                    counters.add(.messagesCompressed)
                }
            }
            if queueShared(slot, connection, frame) == .queued {
                connection.pointee.lastMessageTick = now
                delivered += 1
            }
        }
        counters.add(.deliveries, delivered)
        counters.add(.messagesOut, delivered)
    }

    /// A publish that came through the mailbox (from another worker or thread).
    func deliverPosted(_ topic: String, _ publication: Publication, excluding: ConnectionID?) {
        counters.add(.publishesReceived)
        guard let local = topics.index(of: topic) else { return }
        deliver(publication, toTopic: local, excluding: excluding)
    }
}
