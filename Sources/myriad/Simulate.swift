import ArgumentParser
import Glibc
@_spi(Simulation) import Myriad

/// `myriad simulate`: the deterministic simulation of a worker (`Sources/Myriad/Simulation`),
/// seed after seed, for a number of seeds or a CPU-time budget. A failing seed prints its
/// report and replays exactly with `--seed`.
struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the engine's deterministic simulation (a development tool): the real worker over a scripted kernel and scripted peers.",
        discussion: "Exit status: 0 when every run kept every invariant, 1 when one broke (its seed is printed), 64 on a bad option.")

    @Option(help: "Replay this one seed, printing its report.")
    var seed: UInt64?

    @Option(help: "The first seed of a sweep.")
    var firstSeed: UInt64 = 1

    @Option(help: "Seeds to run (a sweep stops at this count or at --cpu-seconds, whichever comes first).")
    var seeds: Int = 1000

    @Option(help: "CPU seconds to spend at most (0: no limit).")
    var cpuSeconds: Double = 0

    @Option(help: "Peers per run.")
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
            let report = Simulation.run(seed: seed, peers: peers, virtualSeconds: virtualSeconds)
            print(report)
            if report.failure != nil { throw ExitCode(1) }
            return
        }
        let started = cpuTime()
        var runs = 0
        var steps = 0
        var completions = 0
        var echoes = 0
        var current = firstSeed
        while runs < seeds && (cpuSeconds == 0 || cpuTime() - started < cpuSeconds) {
            let report = Simulation.run(seed: current, peers: peers, virtualSeconds: virtualSeconds)
            if report.failure != nil {
                print(report)
                print("replay: myriad simulate --seed \(current) --peers \(peers) --virtual-seconds \(virtualSeconds)")
                throw ExitCode(1)
            }
            runs += 1
            steps += report.steps
            completions += report.completions
            echoes += report.echoesChecked
            current += 1
        }
        let spent = cpuTime() - started
        print("simulate: \(runs) seeds (\(firstSeed)-\(current - 1)) clean: \(steps) steps, \(completions) completions, "
              + "\(echoes) echoes checked, \(Double(Int(spent * 10)) / 10) CPU s")
    }

    private func cpuTime() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}
