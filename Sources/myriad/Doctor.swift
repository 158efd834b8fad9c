import ArgumentParser
import Glibc
import Myriad
import MyriadDoctor

/// `myriad doctor`: reads this host's limits and says, row by row, whether N connections fit
/// and what fixes each shortfall. The logic lives in MyriadDoctor (`HostFacts`, `Doctor`).
struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check this host's limits against N connections; print each check with its fix.",
        discussion: "Exit status: 0 when no check fails, 1 when one does, 64 on a bad option or MYRIAD_* value. Reads the same "
            + "MYRIAD_* variables as serve (workers, backend, backlog, buffers, fixed files per ring). Run it the way serve runs "
            + "(same user, same service limits): the fd limit it reports is its own.")

    @Option(help: "Connections to check for (default: MYRIAD_MAX_CONNECTIONS, else 1000000).")
    var connections: Int?

    @Option(help: "server: this host runs myriad serve. client: it opens the connections (a loopback host holds both ends).")
    var role: String = "server"

    @Option(help: "Worker threads to check (default: MYRIAD_WORKERS, else one per core, as serve); each runs as many io_uring rings as its share of N needs.")
    var workers: String?

    @Flag(help: "Print the rows as a JSON array of objects (id, check, status, measured, needed, fix).")
    var json = false

    func run() throws {
        guard let role = DoctorRole(rawValue: role) else {
            throw ValidationError("--role must be server or client")
        }
        let environment = currentEnvironment()
        let config: Config
        do {
            config = try Config.load(environment: environment, overrides: workers.map { ["MYRIAD_WORKERS": $0] } ?? [:])
        } catch {
            throw ValidationError(error.description)
        }
        let connections = self.connections ?? config.maxConnections ?? 1_000_000
        guard connections >= 1 else { throw ValidationError("--connections must be at least 1") }
        let workersGiven = workers != nil || environment["MYRIAD_WORKERS"] != nil
        let facts = HostFacts.read(disabledURingFeatures: config.disabledURingFeatures)
        let doctor = Doctor(facts: facts, connections: connections, role: role,
                            workers: workersGiven ? config.workers : nil, config: config)
        let report = doctor.report()
        print(json ? report.json() : report.table(), terminator: "")
        if !report.passed { throw ExitCode(1) }
    }
}
