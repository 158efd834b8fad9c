/// Reconnect delays: exponential from `initialDelayMs`, doubling up to `maxDelayMs`, each
/// drawn uniformly from [d/2, d]. The jitter keeps many nodes that lost the same broker from
/// reconnecting in lock step; the cap bounds how long a node stays away once it is back.
struct NATSReconnectBackoff {
    let initialDelayMs: Int
    let maxDelayMs: Int
    /// Failed attempts since the last successful connection.
    private(set) var attempt = 0

    init(initialDelayMs: Int, maxDelayMs: Int) {
        precondition(initialDelayMs >= 1 && maxDelayMs >= initialDelayMs, "need 1 <= initial <= max")
        self.initialDelayMs = initialDelayMs
        self.maxDelayMs = maxDelayMs
    }

    /// The ceiling of the next delay (before jitter).
    var ceilingMs: Int {
        var delay = initialDelayMs
        var doublings = attempt
        while doublings > 0 && delay < maxDelayMs {
            delay = min(maxDelayMs, delay * 2)
            doublings -= 1
        }
        return delay
    }

    mutating func nextDelayMs(using generator: inout some RandomNumberGenerator) -> Int {
        let ceiling = ceilingMs
        attempt += 1
        let delay = Int.random(in: (ceiling / 2)...ceiling, using: &generator)
        assert(delay >= initialDelayMs / 2 && delay <= maxDelayMs, "a delay stays within its bounds")
        return delay
    }

    /// After a connection that completed its handshake: the next outage starts small again.
    mutating func reset() { attempt = 0 }
}
