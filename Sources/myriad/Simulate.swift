import ArgumentParser
import Glibc
@_spi(Simulation) import Myriad
@_spi(Simulation) import MyriadLoad

/// Which end of a connection the simulation runs: the engine's worker, or the load
/// generator's client worker.
enum SimulatedRole: String, ExpressibleByArgument, CaseIterable {
    case server, client
}

/// `myriad simulate`: the deterministic simulation of a worker, seed after seed, for a number
/// of seeds or a CPU-time budget: the engine's (`--role server`, `Sources/Myriad/Simulation`)
/// or the load generator's client worker (`--role client`, `Sources/MyriadLoad/Simulation`).
/// A failing seed prints its report and replays exactly with `--seed`.
struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the engine's deterministic simulation (a development tool): the real worker over a scripted kernel and scripted peers.",
        discussion: "Exit status: 0 when every run kept every invariant, 1 when one broke (its seed is printed), 64 on a bad option.")

    @Option(help: "The worker to simulate: server (the engine's) or client (the load generator's).")
    var role: SimulatedRole = .server

    @Option(help: "Replay this one seed, printing its report.")
    var seed: UInt64?

    @Option(help: "The first seed of a sweep.")
    var firstSeed: UInt64 = 1

    @Option(help: "Seeds to run (a sweep stops at this count or at --cpu-seconds, whichever comes first).")
    var seeds: Int = 1000

    @Option(help: "CPU seconds to spend at most (0: no limit).")
    var cpuSeconds: Double = 0

    @Option(help: "Peers per run (scripted clients of the server; scripted servers of the client).")
    var peers: Int = 48

    @Option(help: "Virtual seconds per run.")
    var virtualSeconds: Int = 20

    func run() throws {
        guard peers >= 1, peers <= 10_000 else { throw ValidationError("--peers must be 1-10000") }
        guard virtualSeconds >= 1, virtualSeconds <= 3600 else { throw ValidationError("--virtual-seconds must be 1-3600") }
        guard seeds >= 1 else { throw ValidationError("--seeds must be at least 1") }
        guard cpuSeconds >= 0 else { throw ValidationError("--cpu-seconds must be at least 0") }
        Simulation.installCrashReport()
        if let seed {
            let (text, failed, _) = simulate(seed)
            print(text)
            if failed { throw ExitCode(1) }
            return
        }
        let started = cpuTime()
        var runs = 0
        var steps = 0
        var completions = 0
        var echoes = 0
        var current = firstSeed
        while runs < seeds && (cpuSeconds == 0 || cpuTime() - started < cpuSeconds) {
            let (text, failed, counts) = simulate(current)
            if failed {
                print(text)
                print("replay: myriad simulate --role \(role.rawValue) --seed \(current) --peers \(peers) --virtual-seconds \(virtualSeconds)")
                throw ExitCode(1)
            }
            runs += 1
            steps += counts.steps
            completions += counts.completions
            echoes += counts.echoes
            current += 1
        }
        let spent = cpuTime() - started
        print("simulate \(role.rawValue): \(runs) seeds (\(firstSeed)-\(current - 1)) clean: \(steps) steps, \(completions) completions, "
              + "\(echoes) \(role == .server ? "echoes checked" : "echoes received"), \(Double(Int(spent * 10)) / 10) CPU s")
    }

    /// One run of the chosen role: its report, whether it failed, and its counts.
    private func simulate(_ seed: UInt64) -> (String, Bool, (steps: Int, completions: Int, echoes: Int)) {
        switch role {
        case .server:
            let report = Simulation.run(seed: seed, peers: peers, virtualSeconds: virtualSeconds)
            return (report.description, report.failure != nil, (report.steps, report.completions, report.echoesChecked))
        case .client:
            // A client run lasts as long as its servers' scripts take (--virtual-seconds does not apply).
            let report = ClientSimulation.run(seed: seed, servers: peers)
            return (report.description, report.failure != nil, (report.steps, report.completions, report.messagesReceived))
        }
    }

    private func cpuTime() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}
