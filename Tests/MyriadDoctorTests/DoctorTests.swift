import Foundation
import Testing
import Myriad
@testable import MyriadDoctor

@Suite struct HostFactsParsingTests {
    static let status = """
        Name:\tcat
        Umask:\t0022
        State:\tR (running)
        CapInh:\t0000000000000000
        CapPrm:\t000001fffeffffff
        CapEff:\t000001fffeffffff
        CapBnd:\t000001fffeffffff
        CapAmb:\t0000000000000000
        NoNewPrivs:\t0

        """

    @Test func capSysResourceIsBit24OfCapEff() {
        #expect(HostFacts.effectiveCapabilities(inStatus: Self.status) == 0x1fffeffffff)
        #expect(!HostFacts.hasCapability(HostFacts.capabilitySysResource, inStatus: Self.status))
        #expect(HostFacts.hasCapability(21, inStatus: Self.status), "CAP_SYS_ADMIN is there")
        let full = Self.status.replacingOccurrences(of: "CapEff:\t000001fffeffffff", with: "CapEff:\t000001ffffffffff")
        #expect(HostFacts.hasCapability(24, inStatus: full))
        #expect(!HostFacts.hasCapability(24, inStatus: "Name:\tx\n"))
    }

    @Test func meminfoIsReadInBytes() {
        let text = """
            MemTotal:       24684084 kB
            MemFree:        22663028 kB
            MemAvailable:   24113496 kB
            Buffers:           12345 kB

            """
        let memory = ProcText.parseMeminfo(text)
        #expect(memory.totalBytes == 24_684_084 * 1024)
        #expect(memory.availableBytes == 24_113_496 * 1024)
        #expect(ProcText.parseMeminfo("MemTotal: 1 kB\n").availableBytes == nil)
    }

    @Test func sysctlValues() {
        #expect(ProcText.parseInteger("4096\n") == 4096)
        #expect(ProcText.parseInteger("") == nil)
        #expect(ProcText.parseInteger("1 2") == nil)
        #expect(HostFacts.parsePortRange("32768\t60999\n") == 32768...60999)
        #expect(HostFacts.parsePortRange("60999\t32768") == nil)
        #expect(HostFacts.parseTCPMemory("287898\t383867\t575796\n")
                == .init(minimum: 287_898, pressure: 383_867, maximum: 575_796))
        #expect(HostFacts.parseTCPMemory("1 2") == nil)
        #expect(ProcText.parseIntegers("641\t0\t2466170\n").first == 641)
    }

    @Test func liveReadingMatchesGetrlimit() {
        let facts = HostFacts.read()
        #expect(facts.fileLimit == FileLimit.current())
        #expect(facts.memoryTotalBytes ?? 0 > 0)
        #expect(facts.kernelVersion != nil)
        #expect(facts.pageSizeBytes > 0)
    }
}

/// The development machine (docs/architecture.md, "The machines"): hard fd limit 20000, root
/// without CAP_SYS_RESOURCE, 2 cores, 24 GiB, kernel 6.18 with io_uring, untuned sysctls.
private func devMachine() -> HostFacts {
    var facts = HostFacts()
    facts.fileLimit = FileLimit(soft: 20000, hard: 20000)
    facts.canRaiseHardLimit = false
    facts.nrOpen = 1_048_576
    facts.fileMax = 2_466_170
    facts.filesOpen = 641
    facts.localPortRange = 32768...60999
    facts.somaxconn = 4096
    facts.tcpMaxSynBacklog = 2048
    facts.tcpSyncookies = 1
    facts.netdevMaxBacklog = 1000
    facts.tcpMemPages = .init(minimum: 287_898, pressure: 383_867, maximum: 575_796)
    facts.pageSizeBytes = 4096
    facts.conntrackMax = 262_144
    facts.conntrackCount = 0
    facts.memoryAvailableBytes = 24_113_496 * 1024
    facts.memoryTotalBytes = 24_684_084 * 1024
    facts.kernelRelease = "6.18.44-fc-v669"
    facts.ioUringDisabled = 0
    facts.ioUring = .available(multishotReceive: true, deferTaskrun: true)
    facts.onlineCores = 2
    return facts
}

private func check(_ id: String, _ doctor: Doctor) throws -> DoctorCheck {
    try #require(doctor.checks().first { $0.id == id }, "no row \(id)")
}

private func status(_ id: String, _ facts: HostFacts, connections: Int, role: DoctorRole = .server,
                    workers: Int? = nil, config: Config = Config()) throws -> DoctorStatus {
    try check(id, Doctor(facts: facts, connections: connections, role: role, workers: workers, config: config,
                         connectionBytes: 200)).status
}

@Suite struct DoctorCalculationTests {
    @Test func perProcessFdLimitFailsAboveTheHardLimitAndNamesTheIOURingRoute() throws {
        let facts = devMachine()
        let capacity = 20000 - Doctor.processReserve(workers: 2)
        #expect(Doctor(facts: facts, connections: 1).fileDescriptorCapacity == capacity)
        #expect(try status("nofile", facts, connections: capacity) == .ok)
        #expect(try status("nofile", facts, connections: capacity + 1) == .fail)

        let row = try check("nofile", Doctor(facts: facts, connections: 1_000_000))
        #expect(row.measured.contains("hard 20000"))
        #expect(row.measured.contains("no CAP_SYS_RESOURCE"))
        #expect(row.fix.contains("cannot raise its hard limit"))
        #expect(row.fix.contains("kernel-tuning/systemd/myriad.service"))
        #expect(row.fix.contains("workers x fixed-file slots = 50 x 20000 = 1000000 >= 1000000"), "\(row.fix)")
        #expect(row.fix.contains("MYRIAD_WORKERS=50"))

        var privileged = facts
        privileged.canRaiseHardLimit = true
        let raise = try check("nofile", Doctor(facts: privileged, connections: 1_100_000))
        #expect(raise.measured.contains("CAP_SYS_RESOURCE") && !raise.measured.contains("no CAP"))
        #expect(raise.fix.contains("ulimit -Hn 1100072"))
        #expect(raise.fix.contains("fs.nr_open"), "1100072 is above nr_open 1048576")

        var noURing = facts
        noURing.ioUring = .unavailable(reason: "io_uring_setup failed with EPERM")
        let ceiling = try check("nofile", Doctor(facts: noURing, connections: 30000))
        #expect(ceiling.status == .fail)
        #expect(ceiling.fix.contains("this limit is the ceiling"))
        #expect(!ceiling.fix.contains("fixed-file slots"))
    }

    @Test func workersNeededIsCeilOfConnectionsOverFixedFilesPerRing() throws {
        let facts = devMachine()
        #expect(Doctor(facts: facts, connections: 1_000_000).workersNeeded == 50)
        #expect(Doctor(facts: facts, connections: 1_000_001).workersNeeded == 51)
        #expect(Doctor(facts: facts, connections: 1).workersNeeded == 1)
        var huge = facts
        huge.fileLimit = FileLimit(soft: 4_000_000, hard: 4_000_000)
        #expect(Doctor(facts: huge, connections: 1).fixedFilesPerRing == maximumFixedFilesPerRing)
    }

    @Test func fixedFileRowFlipsAtWorkersTimesSlots() throws {
        let facts = devMachine()
        // Workers given: capacity W x 20000.
        #expect(try status("fixed_files", facts, connections: 60000, workers: 3) == .ok)
        #expect(try status("fixed_files", facts, connections: 60001, workers: 3) == .fail)
        let short = try check("fixed_files", Doctor(facts: facts, connections: 60001, workers: 3))
        #expect(short.fix.contains("--workers 4"))
        // Not given: myriad serve's default (one worker per core) is enough, else a warning.
        #expect(try status("fixed_files", facts, connections: 40000) == .ok)
        #expect(try status("fixed_files", facts, connections: 40001) == .warn)
        #expect(try check("fixed_files", Doctor(facts: facts, connections: 1_000_000)).fix.contains("--workers 50"))
        // More workers than MYRIAD_WORKERS allows.
        var tiny = facts
        tiny.fileLimit = FileLimit(soft: 1024, hard: 1024)
        #expect(try status("fixed_files", tiny, connections: 1024 * 1024) == .warn)
        #expect(try status("fixed_files", tiny, connections: 1024 * 1024 + 1) == .fail)
        // Without io_uring the row does not apply.
        var noURing = facts
        noURing.ioUring = .unavailable(reason: "x")
        #expect(try status("fixed_files", noURing, connections: 10) == .warn)
        var epoll = Config()
        epoll.backend = .epoll
        #expect(try check("fixed_files", Doctor(facts: facts, connections: 10, config: epoll)).measured.contains("MYRIAD_BACKEND=epoll"))
    }

    @Test func ioUringRowFailsOnlyWhenTheEpollFallbackCannotHoldN() throws {
        var facts = devMachine()
        #expect(try status("io_uring", facts, connections: 1_000_000) == .ok)
        facts.ioUring = .available(multishotReceive: false, deferTaskrun: true)
        #expect(try status("io_uring", facts, connections: 10) == .warn)
        facts.ioUring = .unavailable(reason: "io_uring_setup failed with EPERM (kernel.io_uring_disabled = 2)")
        facts.ioUringDisabled = 2
        let capacity = Doctor(facts: facts, connections: 1).fileDescriptorCapacity
        #expect(try status("io_uring", facts, connections: capacity) == .warn)
        #expect(try status("io_uring", facts, connections: capacity + 1) == .fail)
        let row = try check("io_uring", Doctor(facts: facts, connections: capacity + 1))
        #expect(row.measured.contains("io_uring_disabled = 2"))
        #expect(row.fix.contains("kernel.io_uring_disabled=0"))
        #expect(row.fix.contains("falls back to epoll, which holds at most \(capacity)"))
        facts.ioUringDisabled = 0
        facts.ioUring = .unavailable(reason: "io_uring_setup failed with EPERM (blocked by a seccomp profile)")
        #expect(try check("io_uring", Doctor(facts: facts, connections: 10)).fix.contains("seccomp"))
    }

    @Test func kernelRowWarnsBelow6_1() throws {
        var facts = devMachine()
        #expect(try status("kernel", facts, connections: 1) == .ok)
        facts.kernelRelease = "6.1.0-18-amd64"
        #expect(try status("kernel", facts, connections: 1) == .ok)
        facts.kernelRelease = "6.0.9"
        #expect(try status("kernel", facts, connections: 1) == .warn)
        facts.kernelRelease = "5.15.0"
        #expect(try check("kernel", Doctor(facts: facts, connections: 1)).fix.contains("5.19"))
        facts.kernelRelease = nil
        #expect(try status("kernel", facts, connections: 1) == .warn)
    }

    @Test func nrOpenMattersOnlyForRaisingTheFdLimit() throws {
        var facts = devMachine()
        #expect(try status("nr_open", facts, connections: 10000) == .ok)
        let reserve = Doctor.processReserve(workers: 2)
        #expect(try status("nr_open", facts, connections: 1_048_576 - reserve) == .ok)
        #expect(try status("nr_open", facts, connections: 1_048_576 - reserve + 1) == .warn)
        facts.nrOpen = nil
        #expect(try status("nr_open", facts, connections: 10) == .warn)
    }

    @Test func fileMaxCountsBothEndsOnAClientHost() throws {
        var facts = devMachine()
        facts.filesOpen = 1000
        let reserve = Doctor.processReserve(workers: 2)
        facts.fileMax = 1000 + 10000 + reserve
        #expect(try status("file_max", facts, connections: 10000) == .ok)
        #expect(try status("file_max", facts, connections: 10001) == .fail)
        #expect(try status("file_max", facts, connections: 5000, role: .client) == .ok)
        #expect(try status("file_max", facts, connections: 5001, role: .client) == .fail)
        facts.fileMax = 100
        #expect(try check("file_max", Doctor(facts: facts, connections: 10)).fix.contains("sysctl -w fs.file-max=4194304"))
    }

    @Test func memoryEstimateUsesTheDocumentedConstants() throws {
        let facts = devMachine()
        let config = Config()
        let doctor = Doctor(facts: facts, connections: 1_000_000, config: config, connectionBytes: 200)
        let estimate = doctor.memoryEstimate
        #expect(estimate.kernelBytes == 1_000_000 * (4900 + 840))
        #expect(estimate.userBytes == 1_000_000 * 200)
        let perWorker = 1024 * (4096 + 16) + 4096 * 68 + 16384 * 16 + 20000 * 8
        #expect(estimate.workerBytes == 50 * perWorker)
        // Client (loopback) host: both ends are kernel sockets.
        let client = Doctor(facts: facts, connections: 1_000_000, role: .client, config: config, connectionBytes: 200)
        #expect(client.memoryEstimate.kernelBytes == 2 * estimate.kernelBytes)
        // epoll: a registration instead of an armed receive.
        var epoll = config
        epoll.backend = .epoll
        let epollDoctor = Doctor(facts: facts, connections: 1000, config: epoll, connectionBytes: 200)
        #expect(epollDoctor.memoryEstimate.kernelBytes == 1000 * (4900 + 270))
        #expect(Doctor(facts: facts, connections: 1).connectionBytes == connectionSlotBytes)
    }

    @Test func memoryRowFlipsAtAvailableAndAt80Percent() throws {
        var facts = devMachine()
        let total = Doctor(facts: facts, connections: 100_000, connectionBytes: 200).memoryEstimate.totalBytes
        facts.memoryAvailableBytes = total - 1
        #expect(try status("memory", facts, connections: 100_000) == .fail)
        facts.memoryAvailableBytes = total
        #expect(try status("memory", facts, connections: 100_000) == .warn)
        facts.memoryAvailableBytes = (total * 10 + 7) / 8
        #expect(try status("memory", facts, connections: 100_000) == .ok)
        facts.memoryAvailableBytes = (total * 10 + 7) / 8 - 1
        #expect(try status("memory", facts, connections: 100_000) == .warn)
    }

    @Test func tcpMemWarnsBelowOnePagePerSocket() throws {
        var facts = devMachine()
        facts.tcpMemPages = .init(minimum: 1, pressure: 2, maximum: 100_000)
        #expect(try status("tcp_mem", facts, connections: 100_000) == .ok)
        #expect(try status("tcp_mem", facts, connections: 100_001) == .warn)
        #expect(try status("tcp_mem", facts, connections: 50_000, role: .client) == .ok)
        #expect(try status("tcp_mem", facts, connections: 50_001, role: .client) == .warn)
        let row = try check("tcp_mem", Doctor(facts: devMachine(), connections: 1_000_000))
        #expect(row.status == .warn, "575796 pages < 1000000")
        #expect(row.fix.contains("kernel-tuning/sysctl.d/99-myriad.conf"))
    }

    @Test func acceptQueueRowsCompareTheBurstPerListener() throws {
        var facts = devMachine()
        facts.somaxconn = 65535
        var config = Config()
        config.listenBacklog = 5000
        // 10000 over 2 workers: 5000 per listener.
        #expect(try status("somaxconn", facts, connections: 10000, workers: 2, config: config) == .ok)
        #expect(try status("somaxconn", facts, connections: 10001, workers: 2, config: config) == .warn)
        let backlogShort = try check("somaxconn", Doctor(facts: facts, connections: 10001, workers: 2, config: config))
        #expect(backlogShort.fix.contains("MYRIAD_BACKLOG=5001") && !backlogShort.fix.contains("sysctl"))
        facts.somaxconn = 4096
        let both = try check("somaxconn", Doctor(facts: facts, connections: 10001, workers: 2, config: config))
        #expect(both.fix.contains("net.core.somaxconn=65535") && both.measured.contains("queue 4096"))
        // The burst is capped at the largest queue worth asking for.
        #expect(Doctor(facts: facts, connections: 10_000_000, workers: 1).acceptBurst == 65535)

        // SYN backlog: only with syncookies off, dropping at 3/4.
        facts.tcpMaxSynBacklog = 4000
        #expect(try status("tcp_max_syn_backlog", facts, connections: 1_000_000, workers: 1) == .ok)
        facts.tcpSyncookies = 0
        #expect(try status("tcp_max_syn_backlog", facts, connections: 6000, workers: 2) == .ok)
        #expect(try status("tcp_max_syn_backlog", facts, connections: 6001, workers: 2) == .warn)
    }

    @Test func netdevBacklogNeedsOnePacketPerConnectionPerCPU() throws {
        var facts = devMachine()
        facts.netdevMaxBacklog = 5000
        #expect(try status("netdev_max_backlog", facts, connections: 10000) == .ok)
        #expect(try status("netdev_max_backlog", facts, connections: 10001) == .warn)
        facts.netdevMaxBacklog = 16384
        #expect(try status("netdev_max_backlog", facts, connections: 10_000_000) == .ok)
    }

    @Test func clientPortsNeedMoreSourceAddressesPastTheRange() throws {
        let facts = devMachine()
        let ports = 60999 - 32768 + 1
        #expect(try status("ip_local_port_range", facts, connections: ports, role: .client) == .ok)
        #expect(try status("ip_local_port_range", facts, connections: ports + 1, role: .client) == .warn)
        let row = try check("ip_local_port_range", Doctor(facts: facts, connections: 1_000_000, role: .client))
        #expect(row.needed.hasPrefix("36 source addresses"))
        #expect(row.fix.contains("127.0.0.2-127.0.0.37"))
        #expect(row.fix.contains("cuts that to 19"))
    }

    @Test func conntrackOnlyEverWarns() throws {
        var facts = devMachine()
        #expect(try status("conntrack", facts, connections: 262_144) == .ok)
        #expect(try status("conntrack", facts, connections: 262_145) == .warn)
        facts.conntrackCount = 100
        #expect(try status("conntrack", facts, connections: 262_044) == .ok)
        #expect(try status("conntrack", facts, connections: 262_044, role: .client) == .ok, "one entry per connection")
        #expect(try status("conntrack", facts, connections: 262_045) == .warn)
        #expect(try check("conntrack", Doctor(facts: facts, connections: 10_000_000)).fix.contains("loopback is not tracked"))
        facts.conntrackMax = nil
        facts.conntrackCount = nil
        #expect(try status("conntrack", facts, connections: 10_000_000) == .ok)
    }

    @Test func rolesPickTheirRows() {
        let server = Doctor(facts: devMachine(), connections: 10, role: .server).checks().map(\.id)
        let client = Doctor(facts: devMachine(), connections: 10, role: .client).checks().map(\.id)
        #expect(server.contains("somaxconn") && server.contains("tcp_max_syn_backlog") && !server.contains("ip_local_port_range"))
        #expect(client.contains("ip_local_port_range") && !client.contains("somaxconn"))
        #expect(Set(server).count == server.count)
    }

    @Test func devMachineVerdicts() {
        let million = Doctor(facts: devMachine(), connections: 1_000_000).report()
        #expect(!million.passed)
        #expect(million.checks.filter { $0.status == .fail }.map(\.id) == ["nofile"])
        #expect(million.summary.contains("50 workers x 20000 fixed-file slots = 1000000"))
        let tenThousand = Doctor(facts: devMachine(), connections: 10000).report()
        #expect(tenThousand.passed)
        #expect(tenThousand.summary.contains("PASS"))
        #expect(Doctor(facts: devMachine(), connections: 1_000_000, role: .client).report().passed == false)
    }
}

@Suite struct DoctorRenderingTests {
    @Test func jsonHasTheDocumentedKeysForEveryRow() throws {
        var facts = devMachine()
        facts.kernelRelease = "6.18 \"quoted\"\tand\\slashed\n"
        let report = Doctor(facts: facts, connections: 1_000_000).report()
        let parsed = try JSONSerialization.jsonObject(with: Data(report.json().utf8))
        let rows = try #require(parsed as? [[String: String]])
        #expect(rows.count == report.checks.count)
        for (row, check) in zip(rows, report.checks) {
            #expect(Set(row.keys) == Set(DoctorReport.jsonKeys))
            #expect(row["id"] == check.id && row["check"] == check.name && row["status"] == check.status.rawValue)
            #expect(row["measured"] == check.measured && row["needed"] == check.needed && row["fix"] == check.fix)
        }
        #expect(DoctorReport.jsonKeys == ["id", "check", "status", "measured", "needed", "fix"])
        #expect(rows.first { $0["id"] == "kernel" }?["measured"] == "6.18 \"quoted\"\tand\\slashed\n")
    }

    @Test func tableIsAlignedAndEndsWithTheSummary() {
        let report = Doctor(facts: devMachine(), connections: 1_000_000).report()
        let table = report.table()
        let lines = table.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0].hasPrefix("STATUS  CHECK"))
        let header = lines[0]
        for title in ["CHECK", "MEASURED", "NEEDED", "FIX"] {
            let column = header.distance(from: header.startIndex, to: header.range(of: title)!.lowerBound)
            for line in lines[1...report.checks.count] {
                // Every cell starts at its header's column, after at least two spaces.
                let before = line.prefix(column)
                #expect(before.hasSuffix("  "), "\(title) misaligned in: \(line)")
                #expect(line.dropFirst(column).first != " ", "\(title) misaligned in: \(line)")
            }
        }
        #expect(lines[1].hasPrefix("ok      kernel version"))
        #expect(table.contains("fail    per-process fd limit"))
        #expect(table.hasSuffix(report.summary + "\n"))
        #expect(report.summary.contains("1 fail"))
        #expect(report.summary.contains("FAIL: per-process fd limit (RLIMIT_NOFILE)"))
    }

    @Test func approximateBytesRoundsToOneDecimal() {
        #expect(approximateBytes(512) == "512 B")
        #expect(approximateBytes(6 << 30) == "6 GiB")
        #expect(approximateBytes(6_300_000_000) == "5.9 GiB")
        #expect(approximateBytes(5740) == "5.6 KiB")
    }
}

/// The real `myriad doctor` on this machine, which these tests assume is a development machine
/// (docs/architecture.md, "The machines": hard fd limit 20000, root without CAP_SYS_RESOURCE). The binary must be built first (`swift build`, as
/// `make test` does before `swift test`).
@Suite struct DoctorCommandTests {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var binary: String {
        ProcessInfo.processInfo.environment["TEST_MYRIAD_BINARY"] ?? packageRoot.appendingPathComponent(".build/debug/myriad").path
    }

    static func doctor(_ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw DoctorBinaryMissing(path: binary)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["doctor"] + arguments
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("MYRIAD_") }
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let printed = output.fileHandleForReading.readDataToEndOfFile()
        let complained = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: printed, as: UTF8.self), String(decoding: complained, as: UTF8.self))
    }

    struct DoctorBinaryMissing: Error, CustomStringConvertible {
        var path: String
        var description: String { "\(path) is missing: build it first (swift build)" }
    }

    @Test func aMillionFailsOnTheFdLimitAndNamesTheWayAround() throws {
        let result = try Self.doctor(["--connections", "1000000", "--json"])
        #expect(result.status == 1, "\(result.output)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [[String: String]])
        let nofile = try #require(rows.first { $0["id"] == "nofile" })
        #expect(nofile["status"] == "fail")
        #expect(nofile["check"] == "per-process fd limit (RLIMIT_NOFILE)")
        #expect(nofile["measured"]?.contains("hard 20000") == true, "\(nofile)")
        #expect(nofile["measured"]?.contains("no CAP_SYS_RESOURCE") == true, "\(nofile)")
        #expect(nofile["fix"]?.contains("workers x fixed-file slots = 50 x 20000") == true, "\(nofile)")
        let fixedFiles = try #require(rows.first { $0["id"] == "fixed_files" })
        #expect(fixedFiles["status"] != "fail", "io_uring holds a million here: \(fixedFiles)")
        #expect(rows.first { $0["id"] == "io_uring" }?["status"] == "ok")
    }

    @Test func tenThousandPasses() throws {
        let result = try Self.doctor(["--connections", "10000"])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("PASS"))
    }

    @Test func badRoleIsAUsageError() throws {
        let result = try Self.doctor(["--role", "both"])
        #expect(result.status == 64, "\(result.output)")
        #expect(result.errors.contains("--role must be server or client"))
    }
}

@Suite struct DoctorStartupWarningTests {
    @Test func serveWarnsForEachShortfallOfItsBackend() {
        var config = Config()
        config.workers = 2
        config.maxConnections = 1_000_000
        let warnings = Doctor.startupWarnings(config: config, facts: devMachine())
        #expect(warnings.contains { $0.contains("io_uring fixed-file slots (workers) fail for 1000000 connections") && $0.contains("--workers 50") })
        #expect(!warnings.contains { $0.contains("per-process fd limit") }, "io_uring: connections are not process fds")
        #expect(!warnings.contains { $0.contains("backend:") }, "the engine's own backend line stays the only one")
        #expect(warnings.contains { $0.contains("conntrack") })

        config.backend = .epoll
        config.maxConnections = 30000
        let epoll = Doctor.startupWarnings(config: config, facts: devMachine())
        #expect(epoll.contains { $0.contains("per-process fd limit (RLIMIT_NOFILE) fail") })
        #expect(!epoll.contains { $0.contains("fixed-file") })
    }

    @Test func unsetMaximumIsWhatTheLimitsAllow() {
        var config = Config()
        config.workers = 2
        var tuned = devMachine()
        tuned.somaxconn = 65535
        tuned.netdevMaxBacklog = 16384
        tuned.tcpMemPages = .init(minimum: 1, pressure: 2, maximum: 40000)
        config.listenBacklog = 20000
        // 2 workers x 20000 = 40000 connections: everything fits.
        #expect(Doctor.startupWarnings(config: config, facts: tuned) == [])
        tuned.tcpMemPages = .init(minimum: 1, pressure: 2, maximum: 39999)
        #expect(Doctor.startupWarnings(config: config, facts: tuned).count == 1)
    }
}
