/// What callers' threads and the client's own thread share, always behind one mutex
/// (`NATSClientCore.state`, a `NATSLocked`): the outbound buffer, the set of subscribed subjects, the counters.
///
/// Callers only append and return; the client's thread takes whole batches. Publishes go to
/// `pending` (PUB frames, counted against `outboundBufferLimitBytes` together with the batch
/// the client's thread is writing); SUB/UNSUB lines go to `control`, and only while connected:
/// after a reconnect the subscriptions are re-sent from `sidBySubject`, never from old lines.
struct NATSClientSharedState {
    var stats = NATSClientStats()
    var stopRequested = false

    /// PUB frames accepted, not yet taken by the client's thread.
    private(set) var pending: [UInt8] = []
    private(set) var pendingMessages = 0
    private(set) var pendingPayloadBytes = 0
    private(set) var pendingLargestPayloadBytes = 0
    /// Bytes of the batch the client's thread holds and is writing.
    private(set) var inFlightBytes = 0
    private(set) var inFlightMessages = 0
    /// SUB/UNSUB lines for the current connection, not yet taken.
    private(set) var control: [UInt8] = []
    /// Set by whoever appends while connected and the client's thread may be asleep; cleared
    /// when it takes a batch. One wake-up per batch, not per publish.
    private var wakeRequested = false

    private(set) var sidBySubject: [String: UInt64] = [:]
    private var subjectBySid: [UInt64: String] = [:]
    private var nextSid: UInt64 = 1

    let outboundBufferLimitBytes: Int
    let configuredMaxPayloadBytes: Int
    /// The smaller of the configuration's and the server's last `max_payload`.
    private(set) var effectiveMaxPayloadBytes: Int

    init(outboundBufferLimitBytes: Int, maxPayloadBytes: Int) {
        self.outboundBufferLimitBytes = outboundBufferLimitBytes
        self.configuredMaxPayloadBytes = maxPayloadBytes
        self.effectiveMaxPayloadBytes = maxPayloadBytes
    }

    var isConnected: Bool { stats.state == .connected }

    // MARK: - Callers' side

    /// Appends one PUB frame if it may go. Returns the result and whether to wake the
    /// client's thread. The subject must already be a valid literal subject.
    mutating func publish(subject: String.UTF8View, payload: UnsafeRawBufferPointer) -> (NATSPublishResult, wake: Bool) {
        publish(subject: subject, head: UnsafeRawBufferPointer(start: nil, count: 0), payload: payload)
    }

    /// The same, for a payload in two parts: `head` then `payload`.
    mutating func publish(
        subject: String.UTF8View, head: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer
    ) -> (NATSPublishResult, wake: Bool) {
        if stopRequested { return (.refusedStopped, false) }
        let payloadBytes = head.count + payload.count
        if payloadBytes > effectiveMaxPayloadBytes {
            stats.refusedOverMaxPayload += 1
            return (.refusedOverMaxPayload(limitBytes: effectiveMaxPayloadBytes), false)
        }
        let frameBytes = NATSProtocolWriter.publishFrameBytes(subjectBytes: subject.count, payloadBytes: payloadBytes)
        if pending.count + inFlightBytes + frameBytes > outboundBufferLimitBytes {
            if isConnected {
                stats.droppedBufferFull += 1
                return (.droppedBufferFull, false)
            }
            stats.droppedWhileDisconnected += 1
            return (.droppedWhileDisconnected, false)
        }
        let before = pending.count
        NATSProtocolWriter.appendPublish(subject: subject, head: head, payload: payload, to: &pending)
        assert(pending.count - before == frameBytes, "the frame size check matches what was written")
        pendingMessages += 1
        pendingPayloadBytes += payloadBytes
        pendingLargestPayloadBytes = max(pendingLargestPayloadBytes, payloadBytes)
        guard isConnected else { return (.bufferedWhileDisconnected, false) }
        return (.queued, requestWake())
    }

    mutating func subscribe(_ subject: String) -> (NATSSubscribeResult, wake: Bool) {
        if stopRequested { return (.refusedStopped, false) }
        if sidBySubject[subject] != nil { return (.alreadySubscribed, false) }
        let sid = nextSid
        nextSid += 1
        sidBySubject[subject] = sid
        subjectBySid[sid] = subject
        stats.subscriptions = sidBySubject.count
        guard isConnected else { return (.subscribed, false) }
        NATSProtocolWriter.appendSubscribe(subject: subject.utf8, sid: sid, to: &control)
        return (.subscribed, requestWake())
    }

    mutating func unsubscribe(_ subject: String) -> (NATSUnsubscribeResult, wake: Bool) {
        guard let sid = sidBySubject.removeValue(forKey: subject) else { return (.notSubscribed, false) }
        subjectBySid[sid] = nil
        stats.subscriptions = sidBySubject.count
        guard isConnected && !stopRequested else { return (.unsubscribed, false) }
        NATSProtocolWriter.appendUnsubscribe(sid: sid, to: &control)
        return (.unsubscribed, requestWake())
    }

    private mutating func requestWake() -> Bool {
        if wakeRequested { return false }
        wakeRequested = true
        return true
    }

    func snapshot() -> NATSClientStats {
        var copy = stats
        copy.bufferedMessages = pendingMessages + inFlightMessages
        copy.bufferedBytes = pending.count + inFlightBytes
        return copy
    }

    // MARK: - The client's thread

    /// Whether a message for `sid` should be delivered (the subscription still exists);
    /// counts it either way.
    mutating func accountReceived(sid: UInt64, payloadBytes: Int) -> Bool {
        guard subjectBySid[sid] != nil else {
            stats.receivedAfterUnsubscribe += 1
            return false
        }
        stats.received += 1
        stats.receivedPayloadBytes += UInt64(payloadBytes)
        return true
    }

    /// Moves control lines and pending publishes to the end of `batch` (the client's
    /// thread's write buffer, empty or holding only its own PING/PONG lines). Returns the
    /// publishes taken and their payload bytes.
    mutating func takeOutbound(into batch: inout [UInt8]) -> (messages: Int, payloadBytes: Int) {
        assert(inFlightMessages == 0, "a batch is taken only after the previous one was written")
        wakeRequested = false
        if !control.isEmpty {
            batch.append(contentsOf: control)
            control.removeAll(keepingCapacity: true)
        }
        let messages = pendingMessages
        let payloadBytes = pendingPayloadBytes
        if !pending.isEmpty {
            if batch.isEmpty {
                swap(&batch, &pending)  // no copy; each keeps its capacity for the next round
            } else {
                batch.append(contentsOf: pending)
            }
            pending.removeAll(keepingCapacity: true)
        }
        inFlightBytes = batch.count
        inFlightMessages = messages
        pendingMessages = 0
        pendingPayloadBytes = 0
        pendingLargestPayloadBytes = 0
        return (messages, payloadBytes)
    }

    /// The batch taken last was written whole.
    mutating func batchWritten(messages: Int, payloadBytes: Int) {
        stats.published += UInt64(messages)
        stats.publishedPayloadBytes += UInt64(payloadBytes)
        inFlightBytes = 0
        inFlightMessages = 0
    }

    mutating func setState(_ state: NATSConnectionState) {
        stats.state = state
    }

    /// The handshake completed (PONG to CONNECT's PING): from now on publishes flow. Re-sends
    /// every subscription under its sid into `control`, in the same critical section that
    /// makes `isConnected` true, so a subscribe racing with the reconnect is sent exactly once.
    mutating func connectionEstablished(serverMaxPayloadBytes: Int) {
        stats.connects += 1
        if stats.connects > 1 { stats.reconnects += 1 }
        stats.state = .connected
        serverInfoChanged(maxPayloadBytes: serverMaxPayloadBytes)
        control.removeAll(keepingCapacity: true)
        for (subject, sid) in sidBySubject.sorted(by: { $0.value < $1.value }) {
            NATSProtocolWriter.appendSubscribe(subject: subject.utf8, sid: sid, to: &control)
        }
        wakeRequested = true  // the client's thread takes the batch itself right after
    }

    /// A (new) INFO: publishes buffered under a larger assumed limit that this server would
    /// refuse are dropped now and counted, instead of costing the connection.
    mutating func serverInfoChanged(maxPayloadBytes: Int) {
        stats.serverMaxPayloadBytes = maxPayloadBytes
        effectiveMaxPayloadBytes = min(configuredMaxPayloadBytes, maxPayloadBytes)
        if pendingLargestPayloadBytes > effectiveMaxPayloadBytes {
            let removed = NATSProtocolWriter.removePublishes(in: &pending, payloadLargerThan: effectiveMaxPayloadBytes)
            pendingMessages -= removed.messages
            pendingPayloadBytes -= removed.payloadBytes
            pendingLargestPayloadBytes = effectiveMaxPayloadBytes
            stats.refusedOverMaxPayload += UInt64(removed.messages)
        }
    }

    /// The connection (or the attempt) ended. The batch in flight is lost (at most once);
    /// what is still pending waits for the next connection.
    mutating func connectionLost(wasEstablished: Bool, reason: String, nextState: NATSConnectionState) {
        if wasEstablished {
            stats.disconnects += 1
        } else {
            stats.connectFailures += 1
        }
        stats.lostInFlight += UInt64(inFlightMessages)
        inFlightBytes = 0
        inFlightMessages = 0
        control.removeAll(keepingCapacity: true)
        wakeRequested = false
        stats.lastError = reason
        stats.state = nextState
    }

    /// After stop: nothing more will be sent.
    mutating func stopped() {
        stats.droppedAtStop += UInt64(pendingMessages + inFlightMessages)
        pending = []
        control = []
        pendingMessages = 0
        pendingPayloadBytes = 0
        pendingLargestPayloadBytes = 0
        inFlightBytes = 0
        inFlightMessages = 0
        stats.state = .stopped
    }
}
