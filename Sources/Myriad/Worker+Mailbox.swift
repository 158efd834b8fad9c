import WebSocketCodec

/// What other threads and workers ask of this worker, applied once per loop iteration, in the
/// order posted: sends and closes by ID, subscriptions, publishes, deferred upgrade decisions.
extension Worker {
    func drainMailbox() {
        core.assertOnOwnThread()
        core.mailbox.drain(into: &mailboxCommands)
        guard !mailboxCommands.isEmpty else { return }
        refreshClockIfStale()
        core.counters.add(.mailboxCommands, mailboxCommands.count)
        for command in mailboxCommands { apply(command) }
        mailboxCommands.removeAll(keepingCapacity: true)
    }

    private func apply(_ command: MailboxCommand) {
        switch command {
        case .send(let id, let frame):
            guard let connection = core.live(id), connection.pointee.state == .open else {
                core.counters.add(.forwardedToClosed)
                return
            }
            if core.queueShared(id.slot, connection, frame) == .queued {
                connection.pointee.lastMessageTick = core.now32
                core.counters.add(.messagesOut)
            }
        case .close(let id, let code, var reason):
            reason.withUTF8 { core.close(id, code: code, reason: UnsafeRawBufferPointer($0), cause: .application) }
        case .subscribe(let id, let topic):
            // After the subscription is in the registry, the publish that follows the caller's
            // subscribe can rely on it: only then stop counting it as pending.
            if let connection = core.live(id), connection.pointee.state == .open {
                _ = core.subscribe(id.slot, connection, to: topic)
            } else {
                core.counters.add(.forwardedToClosed)
            }
            core.shared.registry.endRemoteSubscribe(worker: core.index)
        case .unsubscribe(let id, let topic):
            _ = core.unsubscribe(id, from: topic)
        case .publish(let topic, let publication, let excluding):
            core.deliverPosted(topic, publication, excluding: excluding)
        case .upgrade(let id, let decision):
            applyDeferredUpgrade(id, decision)
        }
    }
}
