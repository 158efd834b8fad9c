// Fuzzes the load generator's client worker through its deterministic simulation: the input
// is the stream of choices the simulated kernel and the scripted servers make (how bytes are
// cut, which completions come when, which servers misbehave and how), so libFuzzer steers the
// client into orderings a seeded run may not reach. Invariants: those the simulation checks
// at every step (in-flight counts balance, no slot released with work owed to it, a deadline
// exactly while the state has one, none overdue), each server's outcome counted once under
// its kind and reason, deadlines within a tick, and no crash.
@_spi(Simulation) import MyriadLoad

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let script = start.map { Array(UnsafeRawBufferPointer(start: $0, count: count)) } ?? []
    let report = ClientSimulation.run(script: script)
    if let failure = report.failure {
        fatalError("client simulation invariant broken: \(failure)\n\(report)")
    }
    return 0
}
