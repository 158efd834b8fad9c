import Glibc
@_spi(Simulation) import Myriad
import WebSocketCodec

/// The deterministic simulation of the client role: the load generator's real `ClientWorker`
/// (its loop, connects, handshakes, frames, close handshakes, timing wheel, send queues) over
/// the engine's `SimulatedBackend` in client mode, with a `SimulatedServer` at the far end of
/// every connection, every choice drawn from one seed. The server role's simulation is
/// `Myriad.Simulation`; both run the same scripted kernel.
///
/// At every poll it checks the worker against the model: every slot's `inFlight` equals the
/// final completions the model owes it (none owed to a free slot or an older generation), the
/// slab's count matches its slots and the `live` counter, a slot has a wheel entry exactly
/// while its state has a deadline (connecting, handshaking, closing), no entry is overdue, and
/// when a wait ends none is more than a tick overdue. At the end: every socket closed, every
/// slot free, each server's outcome counted exactly once under the kind and reason it
/// provokes (and nothing else counted), every echo-like connection closed cleanly, and the
/// connect and handshake deadlines fired within a tick of when they were due.
@_spi(Simulation)
public enum ClientSimulation {
    public struct Report: Sendable, CustomStringConvertible {
        public var seed: UInt64
        public var steps = 0
        public var virtualMilliseconds: Int64 = 0
        public var mode = LoadMode.echo
        public var servers = 0
        public var handshakes = 0
        public var messagesReceived = 0
        public var pongsChecked = 0
        public var completions = 0
        public var shortSends = 0
        public var noBufferEnds = 0
        public var cancelsThatMissed = 0
        public var partialDeliveries = 0
        /// Connects the model refused, and connects cancelled at their deadline.
        public var connectsRefused = 0
        public var connectsCancelled = 0
        /// Failures the client counted, by kind.
        public var failures: [String: Int] = [:]
        public var failure: String?

        public var description: String {
            let kinds = failures.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            return "client seed \(seed): \(failure.map { "FAILED: \($0)" } ?? "ok") steps=\(steps) virtual_ms=\(virtualMilliseconds) "
                + "mode=\(mode) servers=\(servers) handshakes=\(handshakes) messages=\(messagesReceived) pongs=\(pongsChecked) "
                + "completions=\(completions) short_sends=\(shortSends) enobufs=\(noBufferEnds) cancels_missed=\(cancelsThatMissed) "
                + "partial_cq=\(partialDeliveries) refused=\(connectsRefused) connects_cancelled=\(connectsCancelled) [\(kinds)]"
        }
    }

    /// Runs the client role's simulation for `seed` with `servers` connections; `breaking`
    /// makes the simulated kernel misbehave on purpose (the same faults as the server's).
    public static func run(seed: UInt64, servers: Int = 48, breaking fault: Simulation.Fault? = nil) -> Report {
        var run = ClientSimulationRun(random: SimulationRandom(seed: seed), seed: seed, serverCount: servers)
        run.fault = fault
        return run.run()
    }

    /// Runs it with every choice read from `script` first (a fuzzer's input).
    public static func run(script: [UInt8], servers: Int = 16) -> Report {
        var run = ClientSimulationRun(random: SimulationRandom(script: script), seed: 0, serverCount: servers)
        return run.run()
    }
}
