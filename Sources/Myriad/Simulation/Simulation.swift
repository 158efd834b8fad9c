import Glibc
import Logging
import WebSocketCodec

/// A deterministic simulation of one worker: the real `Worker` (its loop, codec, timing wheel,
/// send queues, close paths) over `SimulatedBackend`, with `SimulatedPeer`s at the far end of
/// its connections, every choice drawn from one seed. Modelled on TigerBeetle's simulator
/// (`src/testing/io.zig`, the VOPR): the world is scripted, the code under test is not.
///
/// At every poll, before anything moves, it checks the worker against the model:
/// - every slot's `inFlight` equals the final completions the model still owes it, and no
///   completion is owed to a free slot or to an older generation (a slot is never released
///   with work outstanding);
/// - the slab's count of occupied slots matches its slots' states;
/// - no wheel entry is due at or before the current tick (every deadline fired in its tick),
///   and when a wait ends, none is more than a tick overdue (the worker never oversleeps);
/// and as it goes: each connection the handler saw open gets exactly one `onClose`, echoes
/// arrive unchanged and in order, close codes are the ones the peer's behaviour calls for.
/// At the end: every accepted socket was closed by the worker, every `onClose` came, every
/// handshake timeout and pong timeout fired within one tick of its deadline.
///
/// A broken invariant stops the run with its seed; `myriad simulate --seed N` replays it
/// exactly. These are tests of the engine, never used by it: integration tests keep running on
/// real rings and sockets.
@_spi(Simulation)
public enum Simulation {
    /// What one run did.
    public struct Report: Sendable, CustomStringConvertible {
        public var seed: UInt64
        /// Polls of the worker's loop (the simulation's steps).
        public var steps = 0
        public var virtualMilliseconds: Int64 = 0
        public var peers = 0
        public var accepted = 0
        public var opened = 0
        public var echoesChecked = 0
        /// Topic deliveries the peers checked (in order per publisher).
        public var deliveriesChecked = 0
        public var completions = 0
        public var shortSends = 0
        public var noBufferEnds = 0
        public var acceptFailures = 0
        public var cancelsThatMissed = 0
        public var partialDeliveries = 0
        /// Peers that saw the close code their behaviour exists to provoke.
        public var provokedCodesSeen = 0
        /// Closes by cause, as the worker counted them.
        public var closes: [String: Int] = [:]
        /// The first broken invariant, nil when the run was clean.
        public var failure: String?

        public var description: String {
            let causes = closes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            return "seed \(seed): \(failure.map { "FAILED: \($0)" } ?? "ok") steps=\(steps) virtual_ms=\(virtualMilliseconds) "
                + "peers=\(peers) accepted=\(accepted) opened=\(opened) echoes=\(echoesChecked) deliveries=\(deliveriesChecked) completions=\(completions) "
                + "short_sends=\(shortSends) enobufs=\(noBufferEnds) accept_failures=\(acceptFailures) "
                + "cancels_missed=\(cancelsThatMissed) partial_cq=\(partialDeliveries) provoked_codes=\(provokedCodesSeen) [\(causes)]"
        }
    }

    /// A defect the simulated kernel can be told to have, to show that the checks catch it.
    public enum Fault: Sendable {
        /// A send's completion vanishes (the worker's in-flight count never comes down).
        case loseCompletion
        /// The clock runs past the worker's deadlines (a wait that oversleeps).
        case oversleep
    }

    /// Runs the simulation for `seed`; `breaking` makes the model misbehave on purpose.
    public static func run(seed: UInt64, peers: Int = 48, virtualSeconds: Int = 20, breaking fault: Fault? = nil) -> Report {
        var runner = SimulationRun(random: SimulationRandom(seed: seed), seed: seed, peerCount: peers, virtualSeconds: virtualSeconds)
        runner.fault = fault
        return runner.run()
    }

    /// Runs the simulation with every choice read from `script` first (a fuzzer's input).
    public static func run(script: [UInt8], peers: Int = 16, virtualSeconds: Int = 8) -> Report {
        var runner = SimulationRun(random: SimulationRandom(script: script), seed: 0, peerCount: peers, virtualSeconds: virtualSeconds)
        return runner.run()
    }

    /// The seed of the run in progress, for `installCrashReport` (a worker precondition stops
    /// the process, not the run).
    nonisolated(unsafe) package static var currentSeed: UInt64 = 0
    /// The role of the run in progress ("server", or "client" for the load generator's).
    nonisolated(unsafe) package static var currentRole: StaticString = "server"

    /// On a crash (a failed precondition traps), writes the seed being simulated to stderr so
    /// the run can be replayed: `myriad simulate --seed N`.
    public static func installCrashReport() {
        for signal in [SIGILL, SIGTRAP, SIGABRT, SIGSEGV, SIGBUS] {
            Glibc.signal(signal) { number in
                var text = "\nsimulation: crashed (signal \(number)) in seed \(Simulation.currentSeed); replay: myriad simulate --role \(Simulation.currentRole) --seed \(Simulation.currentSeed)\n"
                text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
                Glibc.signal(number, SIG_DFL)
                raise(number)
            }
        }
    }
}
