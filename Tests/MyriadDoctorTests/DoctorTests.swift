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
        // The way around: the engine's own layout, two threads (one per core) of 25 rings each.
        #expect(row.fix.contains("workers x rings per worker x fixed files per ring = 2 workers x 25 rings x 20000 fixed files = 1000000"),
                "\(row.fix)")
        #expect(row.fix.contains("MYRIAD_MAX_CONNECTIONS=1000000"))
        #expect(!row.fix.contains("MYRIAD_WORKERS") && !row.fix.contains("--workers"), "threads follow the cores: \(row.fix)")
        // A load host: myriad load runs a thread per ring.
        let client = try check("nofile", Doctor(facts: facts, connections: 1_000_000, role: .client))
        #expect(client.fix.contains("rings x fixed files per ring = 50 rings x 20000 = 1000000 >= 1000000"), "\(client.fix)")

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
        #expect(!ceiling.fix.contains("rings"))
    }

    @Test func ringsNeededIsCeilOfConnectionsOverFixedFilesPerRing() throws {
        let facts = devMachine()
        #expect(Doctor(facts: facts, connections: 1_000_000).ringsNeeded == 50)
        #expect(Doctor(facts: facts, connections: 1_000_001).ringsNeeded == 51)
        #expect(Doctor(facts: facts, connections: 1).ringsNeeded == 1)
        var huge = facts
        huge.fileLimit = FileLimit(soft: 4_000_000, hard: 4_000_000)
        #expect(Doctor(facts: huge, connections: 1).fixedFilesPerRing == maximumFixedFilesPerRing)
        #expect(Doctor(facts: huge, connections: 1).fixedFileLimit == maximumFixedFilesPerRing)
    }

    /// The thread count follows the cores (serve's default), not the connections.
    @Test func plannedWorkersAreTheCoresUnlessGiven() {
        let facts = devMachine()
        #expect(Doctor(facts: facts, connections: 1_000_000).plannedWorkers == 2)
        #expect(Doctor(facts: facts, connections: 10_000_000).plannedWorkers == 2)
        #expect(Doctor(facts: facts, connections: 1_000_000, workers: 7).plannedWorkers == 7)
        #expect(Doctor(facts: facts, connections: 1).plannedWorkers == 1, "every worker needs a connection")
    }

    /// Issue 14: a million on this machine's default two threads is 25 rings of 20,000 fixed
    /// files each, and passes without asking for more workers.
    @Test func aMillionOnTwoWorkersIsTwentyFiveRingsEach() throws {
        let doctor = Doctor(facts: devMachine(), connections: 1_000_000)
        let layout = try doctor.ringLayout.get()
        #expect(layout.workers == 2 && layout.ringsPerWorker == 25...25 && layout.fixedFilesPerRing == 20000...20000)
        #expect(layout.rings == 50 && layout.connections == 1_000_000)
        #expect(layout.description == "2 workers x 25 rings x 20000 fixed files = 1000000")
        let row = try check("fixed_files", doctor)
        #expect(row.status == .ok)
        #expect(row.measured == "20000 per ring (RLIMIT_NOFILE)")
        #expect(row.needed == "2 workers x 25 rings x 20000 fixed files = 1000000 (at most \(RingLayout.maximumRingsPerWorker) rings per worker)")
        #expect(row.fix.isEmpty)
        let everything = doctor.checks().map { $0.measured + $0.needed + $0.fix }.joined()
        #expect(!everything.contains("MYRIAD_WORKERS") && !everything.contains("--workers"), "nobody is told to add threads")
    }

    @Test func layoutFollowsTheEnginesPlan() throws {
        let facts = devMachine()
        // Below one ring per worker, each worker's table is sized to its share.
        #expect(try Doctor(facts: facts, connections: 10000).ringLayout.get().description
                == "2 workers x 1 ring x 5000 fixed files = 10000")
        // Uneven: shares differ by one, rings and tables by what the split needs.
        #expect(try Doctor(facts: facts, connections: 60001, workers: 3).ringLayout.get().description
                == "3 workers x 1-2 rings x 10000-20000 fixed files = 60001")
        #expect(try Doctor(facts: facts, connections: 1_000_001).ringLayout.get().description
                == "2 workers x 25-26 rings x 19230-20000 fixed files = 1000001")
        // The same numbers as the engine's CapacityPlan, whatever the split.
        for (connections, workers) in [(1, 1), (40001, 2), (999_999, 3), (16_777_216, 1024)] {
            let plan = try CapacityPlan.uring(workers: workers, fixedFilesPerRing: 20000, maxConnections: connections)
            let layout = try Doctor(facts: facts, connections: connections, workers: workers).ringLayout.get()
            #expect(layout.rings == plan.ringCounts.reduce(0, +) && layout.connections == plan.total)
            #expect(layout.ringsPerWorker == plan.ringCounts.min()!...plan.ringCounts.max()!)
        }
        // What used to warn (more than one ring's worth per default worker) is now fine.
        #expect(try status("fixed_files", facts, connections: 40001) == .ok)
        #expect(try status("fixed_files", facts, connections: 60001, workers: 3) == .ok)
        // Without io_uring the row does not apply.
        var noURing = facts
        noURing.ioUring = .unavailable(reason: "x")
        #expect(try status("fixed_files", noURing, connections: 10) == .warn)
        var epoll = Config()
        epoll.backend = .epoll
        #expect(try check("fixed_files", Doctor(facts: facts, connections: 10, config: epoll)).measured.contains("MYRIAD_BACKEND=epoll"))
        // Fewer connections than the workers asked for: the engine refuses.
        let tooFew = try check("fixed_files", Doctor(facts: facts, connections: 3, workers: 4))
        #expect(tooFew.status == .fail && tooFew.fix.contains("--workers 3 or fewer"))
    }

    /// A worker runs at most `RingLayout.maximumRingsPerWorker` rings; past that, and only
    /// then, the row fails, exactly where the engine's CapacityPlan refuses.
    @Test func moreRingsPerWorkerThanTheEngineRunsFails() throws {
        let maxRings = RingLayout.maximumRingsPerWorker
        #expect(maxRings == CapacityPlan.maxRingsPerWorker)
        let facts = devMachine()
        let capacity = 2 * maxRings * 20000  // 81,920,000 on two workers
        #expect(try status("fixed_files", facts, connections: capacity) == .ok)
        #expect(try Doctor(facts: facts, connections: capacity).ringLayout.get().ringsPerWorker == maxRings...maxRings)
        #expect(try status("fixed_files", facts, connections: capacity + 1) == .fail)
        #expect(throws: EngineError.self) {
            try CapacityPlan.uring(workers: 2, fixedFilesPerRing: 20000, maxConnections: capacity + 1)
        }
        let doctor = Doctor(facts: facts, connections: capacity + 1)
        let row = try check("fixed_files", doctor)
        #expect(row.needed == "2 workers x at most \(maxRings) rings x 20000 fixed files = \(capacity) < \(capacity + 1)")
        #expect(row.fix.contains("raise RLIMIT_NOFILE to 20001 (LimitNOFILE=20001"), "\(row.fix)")
        #expect(row.fix.contains("--workers 3 (MYRIAD_WORKERS=3)"), "\(row.fix)")
        #expect(row.fix.hasSuffix("myriad serve fails to start"))
        // The suggestions are the smallest that fit.
        #expect(throws: Never.self) { try CapacityPlan.uring(workers: 2, fixedFilesPerRing: 20001, maxConnections: capacity + 1) }
        #expect(throws: Never.self) { try CapacityPlan.uring(workers: 3, fixedFilesPerRing: 20000, maxConnections: capacity + 1) }
        // The fd limit row no longer claims the io_uring way around, and the summary says so.
        let nofile = try check("nofile", doctor)
        #expect(nofile.fix.contains("cannot hold \(capacity + 1) here either") && !nofile.fix.contains("Myriad still gets there"))
        #expect(doctor.report().summary.contains("io_uring route does not fit"))
        // One worker: 2048 x 20000.
        #expect(try status("fixed_files", facts, connections: maxRings * 20000, workers: 1) == .ok)
        #expect(try status("fixed_files", facts, connections: maxRings * 20000 + 1, workers: 1) == .fail)
    }

    /// Every ring is also a process fd (its io_uring instance): with a small fd limit the rings
    /// run out of fds before they run out of slots. Measured here with `ulimit -n 256`:
    /// `myriad serve` with 1 worker and MYRIAD_MAX_CONNECTIONS=76800 (300 rings) stops with
    /// "io_uring_setup: EMFILE"; with `ulimit -n 314` (245 rings) it starts.
    @Test func eachRingIsAProcessFd() throws {
        var facts = devMachine()
        facts.fileLimit = FileLimit(soft: 256, hard: 256)
        let reserve = Doctor.processReserve(workers: 1)  // 68
        // 157 rings of 254-255: 157 + 68 <= 256.
        #expect(try status("fixed_files", facts, connections: 40000, workers: 1) == .ok)
        let doctor = Doctor(facts: facts, connections: 76800, workers: 1)
        #expect(doctor.ringFileDescriptors(rings: 300) == 300 + reserve)
        let row = try check("fixed_files", doctor)
        #expect(row.status == .fail)
        #expect(row.needed == "1 worker x 300 rings x 256 fixed files = 76800, and 368 fds: one per ring + 68 for the engine")
        // 314: 245 rings of at most 314, and 245 + 68 = 313 fds; 313 would need 246 + 68.
        #expect(row.fix.contains("raise RLIMIT_NOFILE to 314 (LimitNOFILE=314"), "\(row.fix)")
        #expect(!row.fix.contains("--workers"), "more threads do not make fewer rings")
        #expect(throws: EngineError.self) { try doctor.ringLayout.get() }
        facts.fileLimit = FileLimit(soft: 314, hard: 314)
        #expect(try status("fixed_files", facts, connections: 76800, workers: 1) == .ok)
        facts.fileLimit = FileLimit(soft: 313, hard: 313)
        #expect(try status("fixed_files", facts, connections: 76800, workers: 1) == .fail)
    }

    /// MYRIAD_FIXED_FILES_PER_RING caps each table below the fd limit (more rings), and may not
    /// exceed it.
    @Test func fixedFilesPerRingKnobSizesTheRings() throws {
        let facts = devMachine()
        var config = Config()
        config.fixedFilesPerRing = 10000
        let doctor = Doctor(facts: facts, connections: 1_000_000, config: config, connectionBytes: 200)
        #expect(doctor.fixedFilesPerRing == 10000 && doctor.fixedFileLimit == 20000)
        let row = try check("fixed_files", doctor)
        #expect(row.status == .ok)
        #expect(row.measured == "MYRIAD_FIXED_FILES_PER_RING=10000; at most 20000 per ring (RLIMIT_NOFILE)")
        #expect(row.needed.hasPrefix("2 workers x 50 rings x 10000 fixed files = 1000000"))
        #expect(doctor.memoryEstimate.rings == 100)
        #expect(try check("nofile", doctor).fix.contains("= 2 workers x 50 rings x 10000 fixed files = 1000000"))

        // Above the fd limit: the engine refuses to register such a table.
        config.fixedFilesPerRing = 20001
        let above = Doctor(facts: facts, connections: 1_000_000, config: config)
        let refused = try check("fixed_files", above)
        #expect(refused.status == .fail)
        #expect(refused.needed == "MYRIAD_FIXED_FILES_PER_RING <= 20000")
        #expect(refused.fix.contains("MYRIAD_FIXED_FILES_PER_RING=20000 or less") && refused.fix.contains("LimitNOFILE=20001"))
        #expect(throws: EngineError.self) { try above.ringLayout.get() }
        #expect(!(try check("nofile", above)).fix.contains("Myriad still gets there"))
        #expect(try status("fixed_files", facts, connections: 10, config: config) == .fail, "whatever N")

        // So small that a worker would need more rings than it may run.
        config.fixedFilesPerRing = 100
        let tiny = try check("fixed_files", Doctor(facts: facts, connections: 1_000_000, config: config))
        #expect(tiny.status == .fail)
        #expect(tiny.fix.contains("MYRIAD_FIXED_FILES_PER_RING=245 or more"), "\(tiny.fix)")  // 2 x 2048 x 245 >= 1000000
        #expect(tiny.fix.contains("--workers 5"), "\(tiny.fix)")  // 5 x 2048 x 100 >= 1000000

        // A serve knob: a load host's rings ignore it.
        #expect(try status("fixed_files", facts, connections: 1_000_000, role: .client, config: config) == .ok)
        #expect(Doctor(facts: facts, connections: 1_000_000, role: .client, config: config).fixedFilesPerRing == 20000)
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
        // Every ring has its own SQ (4096 x 68 B), CQ (16384 x 16 B) and buffer ring (1024 x
        // (4096 + 16) B); the 50 tables together hold the million slots of 8 B.
        let perRing = 1024 * (4096 + 16) + 4096 * 68 + 16384 * 16
        #expect(estimate.rings == 50)
        #expect(estimate.ringBytes == 50 * perRing + 1_000_000 * 8)
        #expect(estimate.workerBytes == 0)
        #expect(estimate.totalBytes == estimate.kernelBytes + estimate.userBytes + estimate.ringBytes)
        let row = try check("memory", doctor)
        #expect(row.needed.hasSuffix("+ 50 rings x \(approximateBytes(estimate.ringBytes / 50))"), "\(row.needed)")
        // 10000 on two workers: two rings, tables of 5000.
        let small = Doctor(facts: facts, connections: 10000, config: config, connectionBytes: 200).memoryEstimate
        #expect(small.rings == 2 && small.ringBytes == 2 * perRing + 10000 * 8)
        // Client (loopback) host: both ends are kernel sockets.
        let client = Doctor(facts: facts, connections: 1_000_000, role: .client, config: config, connectionBytes: 200)
        #expect(client.memoryEstimate.kernelBytes == 2 * estimate.kernelBytes)
        // epoll: a registration instead of an armed receive.
        var epoll = config
        epoll.backend = .epoll
        let epollDoctor = Doctor(facts: facts, connections: 1000, config: epoll, connectionBytes: 200)
        #expect(epollDoctor.memoryEstimate.kernelBytes == 1000 * (4900 + 270))
        #expect(epollDoctor.memoryEstimate.workerBytes == 2 * 4096 && epollDoctor.memoryEstimate.rings == 0)
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
        #expect(million.summary.contains("io_uring route = 2 workers x 25 rings x 20000 fixed files = 1000000 (per-process fd limit 20000)"))
        #expect(million.checks.first { $0.id == "fixed_files" }?.status == .ok)
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

/// The real `myriad doctor` binary, run on whatever host runs the tests. What the tests
/// assume about that host is stated as a precondition (`.enabled(if:)`) and read the way the
/// doctor reads it, never asserted: a host with another fd limit or core count skips or
/// adapts. The binary must be built first (`swift build`, as `make test` does before
/// `swift test`).
@Suite struct DoctorCommandTests {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var binary: String {
        ProcessInfo.processInfo.environment["TEST_MYRIAD_BINARY"] ?? packageRoot.appendingPathComponent(".build/debug/myriad").path
    }

    /// This host as the doctor sees it (the binary inherits this process's limits).
    static let host = HostFacts.read()

    /// The ring table size on this host, as the engine and the doctor take it.
    static var hostFixedFileLimit: Int { max(1, min(host.fileLimit.hard, maximumFixedFilesPerRing)) }

    /// The engine's layout for `connections` on serve's default workers (one per core), or
    /// nil when it does not fit.
    static func hostLayout(_ connections: Int, workers: Int = Config.onlineCores) -> RingLayout? {
        (try? CapacityPlan.uring(workers: workers, fixedFilesPerRing: hostFixedFileLimit, maxConnections: connections))
            .map(RingLayout.init)
    }

    /// The premise of the million test: io_uring works here, one process's fd limit cannot
    /// hold a million (so the fd limit row fails), and the engine's rings can.
    static var aMillionNeedsRingsHere: Bool {
        host.ioUring.isAvailable
            && 1_000_000 > host.fileLimit.hard - Doctor.processReserve(workers: Config.onlineCores)
            && hostLayout(1_000_000) != nil
    }

    static func doctor(_ arguments: [String], environment extra: [String: String] = [:]) throws
        -> (status: Int32, output: String, errors: String)
    {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw DoctorBinaryMissing(path: binary)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["doctor"] + arguments
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("MYRIAD_") }
            .merging(extra) { $1 }
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

    static func rows(_ output: String) throws -> [[String: String]] {
        try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: String]])
    }

    struct DoctorBinaryMissing: Error, CustomStringConvertible {
        var path: String
        var description: String { "\(path) is missing: build it first (swift build)" }
    }

    @Test(.enabled(if: aMillionNeedsRingsHere,
                   "needs a host where io_uring works, the hard fd limit is below a million and the engine's rings hold one (the dev machines: hard limit 20000, 2 cores)"))
    func aMillionFailsOnTheFdLimitAndNamesTheWayAround() throws {
        let result = try Self.doctor(["--connections", "1000000", "--json"])
        #expect(result.status == 1, "\(result.output)")
        let rows = try Self.rows(result.output)
        let nofile = try #require(rows.first { $0["id"] == "nofile" })
        #expect(nofile["status"] == "fail")
        #expect(nofile["check"] == "per-process fd limit (RLIMIT_NOFILE)")
        let limit = Self.host.fileLimit
        #expect(nofile["measured"]?.hasPrefix("soft \(limit.soft), hard \(limit.hard), ") == true, "\(nofile)")
        let capability = Self.host.canRaiseHardLimit ? ", CAP_SYS_RESOURCE" : ", no CAP_SYS_RESOURCE"
        #expect(nofile["measured"]?.contains(capability) == true, "\(nofile)")
        // The way around is the engine's own plan for this host: one worker per core, as many
        // rings as each one's share needs (on the dev machines 2 x 25 x 20000).
        let layout = try #require(Self.hostLayout(1_000_000))
        #expect(nofile["fix"]?.contains("workers x rings per worker x fixed files per ring = \(layout)") == true, "\(nofile)")
        #expect(nofile["fix"]?.contains("MYRIAD_WORKERS") == false, "\(nofile)")
        let fixedFiles = try #require(rows.first { $0["id"] == "fixed_files" })
        #expect(fixedFiles["status"] == "ok", "io_uring holds a million here: \(fixedFiles)")
        #expect(fixedFiles["needed"]?.hasPrefix("\(layout) (at most") == true, "\(fixedFiles)")
        #expect(rows.first { $0["id"] == "io_uring" }?["status"] != "fail")
    }

    /// `--workers` sets the threads; each still runs as many rings as its share needs.
    @Test(.enabled(if: host.ioUring.isAvailable, "needs io_uring on this host"))
    func workersOptionSetsTheThreads() throws {
        let connections = 3 * Self.hostFixedFileLimit + 1
        let result = try Self.doctor(["--connections", "\(connections)", "--workers", "3", "--json"])
        let fixedFiles = try #require(try Self.rows(result.output).first { $0["id"] == "fixed_files" })
        let layout = try #require(Self.hostLayout(connections, workers: 3))
        #expect(layout.workers == 3 && layout.ringsPerWorker == 1...2)
        #expect(fixedFiles["status"] == "ok" && fixedFiles["needed"]?.hasPrefix("\(layout) (") == true, "\(fixedFiles)")
    }

    @Test(.enabled(if: host.ioUring.isAvailable && hostFixedFileLimit < maximumFixedFilesPerRing,
                   "needs io_uring on this host and an fd limit below the kernel's cap on a table"))
    func fixedFilesPerRingAboveTheFdLimitFails() throws {
        let above = Self.hostFixedFileLimit + 1
        let result = try Self.doctor(["--connections", "10000", "--json"],
                                     environment: ["MYRIAD_FIXED_FILES_PER_RING": "\(above)"])
        #expect(result.status == 1, "\(result.output)")
        let fixedFiles = try #require(try Self.rows(result.output).first { $0["id"] == "fixed_files" })
        #expect(fixedFiles["status"] == "fail")
        #expect(fixedFiles["measured"]?.hasPrefix("MYRIAD_FIXED_FILES_PER_RING=\(above);") == true, "\(fixedFiles)")
    }

    @Test(.enabled(if: Doctor(facts: host, connections: 10000).report().passed,
                   "needs a host that holds 10,000 connections by the doctor's own reckoning (the dev machines do)"))
    func tenThousandPasses() throws {
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
        // 2 workers x 25 rings x 20000: nothing to say about rings or threads.
        #expect(!warnings.contains { $0.contains("fixed files") || $0.contains("MYRIAD_WORKERS") || $0.contains("--workers") },
                "\(warnings)")
        #expect(!warnings.contains { $0.contains("per-process fd limit") }, "io_uring: connections are not process fds")
        #expect(!warnings.contains { $0.contains("backend:") }, "the engine's own backend line stays the only one")
        #expect(warnings.contains { $0.contains("conntrack") })

        // What the engine will refuse is said before it does.
        config.fixedFilesPerRing = 100
        let tooManyRings = Doctor.startupWarnings(config: config, facts: devMachine())
        #expect(tooManyRings.contains {
            $0.contains("io_uring fixed files (rings) fail for 1000000 connections") && $0.contains("at most \(RingLayout.maximumRingsPerWorker) rings")
        }, "\(tooManyRings)")
        config.fixedFilesPerRing = 20001
        #expect(Doctor.startupWarnings(config: config, facts: devMachine()).contains {
            $0.contains("io_uring fixed files (rings) fail") && $0.contains("MYRIAD_FIXED_FILES_PER_RING=20000 or less")
        })
        config.fixedFilesPerRing = nil

        config.backend = .epoll
        config.maxConnections = 30000
        let epoll = Doctor.startupWarnings(config: config, facts: devMachine())
        #expect(epoll.contains { $0.contains("per-process fd limit (RLIMIT_NOFILE) fail") })
        #expect(!epoll.contains { $0.contains("fixed files") })
    }

    @Test func unsetMaximumIsWhatTheLimitsAllow() {
        var config = Config()
        config.workers = 2
        var tuned = devMachine()
        tuned.somaxconn = 65535
        tuned.netdevMaxBacklog = 16384
        tuned.tcpMemPages = .init(minimum: 1, pressure: 2, maximum: 40000)
        config.listenBacklog = 20000
        // 2 workers x 1 ring x 20000 = 40000 connections: everything fits.
        #expect(Doctor.startupWarnings(config: config, facts: tuned) == [])
        tuned.tcpMemPages = .init(minimum: 1, pressure: 2, maximum: 39999)
        #expect(Doctor.startupWarnings(config: config, facts: tuned).count == 1)
        // MYRIAD_FIXED_FILES_PER_RING sizes the default: 2 x 1 ring x 10000.
        config.fixedFilesPerRing = 10000
        tuned.tcpMemPages = .init(minimum: 1, pressure: 2, maximum: 20000)
        #expect(Doctor.startupWarnings(config: config, facts: tuned) == [])
        tuned.tcpMemPages = .init(minimum: 1, pressure: 2, maximum: 19999)
        #expect(Doctor.startupWarnings(config: config, facts: tuned).count == 1)
    }
}
