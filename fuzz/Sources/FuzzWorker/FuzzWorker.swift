// Fuzzes the whole worker through the deterministic simulation: the input is the stream of
// choices the simulated kernel and peers make (how bytes are cut, which completions come
// when, which peers are hostile and how), so libFuzzer steers the worker into orderings a
// seeded run may not reach. Invariants: those the simulation checks at every step (in-flight
// counts balance, no slot released with work owed to it, one onClose per open, echoes and
// topic deliveries in order, close codes, deadlines within one tick), and no crash.
@_spi(Simulation) import Myriad

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let script = start.map { Array(UnsafeRawBufferPointer(start: $0, count: count)) } ?? []
    let report = Simulation.run(script: script)
    if let failure = report.failure {
        fatalError("simulation invariant broken: \(failure)\n\(report)")
    }
    return 0
}
