/// What the worker records for the metrics beyond its plain counters, each called from one
/// line of the loop: the handshake time when the 101 is queued, and the buffer gauges when
/// the counters are published. Ping round trips are recorded by `WorkerCounters` itself.
extension Worker {
    /// The 101 is queued: accept-to-101 time from the side entry's stamp.
    @inline(__always)
    func recordHandshakeTime(_ connection: UnsafeMutablePointer<ConnectionSlot>) {
        guard let entry = existingSide(connection), entry.pointee.acceptedNanoseconds != 0 else { return }
        let accepted = entry.pointee.acceptedNanoseconds
        core.counters.record(.handshake, nanoseconds: monotonicNanoseconds() - accepted)
    }
}

extension WorkerCore {
    /// The pool's bytes by budget, for `publish` (the pool keeps them as it lends).
    @inline(__always)
    func sampleBufferGauges() {
        counters.set(.queuedBytes, pool.budgetedBytes.outbound)
        counters.set(.reassemblyBytes, pool.budgetedBytes.inbound)
    }
}
