import Myriad

/// `myriad doctor`: what N connections need from this host, compared with what it has.
///
/// Pure calculation over `HostFacts` (read separately, or built by hand in tests): every
/// check becomes one `DoctorCheck` row with a status, the measured value, the needed value
/// and the exact fix, pointing at kernel-tuning/ where a setting fixes it. `myriad serve`
/// runs the same checks against its configured maximum (`startupWarnings`).
public struct Doctor: Sendable {
    public var facts: HostFacts
    /// Connections to hold (server) or to open (client).
    public var connections: Int
    public var role: DoctorRole
    /// Worker threads to check; nil: `myriad serve`'s default, one per core. Each runs as many
    /// io_uring rings as its share of the connections needs.
    public var workers: Int?
    /// The engine settings that size the rings, their memory and the listen backlog
    /// (MYRIAD_BACKEND, MYRIAD_BACKLOG, MYRIAD_BUFFER_*, MYRIAD_RING_ENTRIES, MYRIAD_CQ_ENTRIES,
    /// MYRIAD_FIXED_FILES_PER_RING).
    public var config: Config
    /// User-space bytes per connection: the engine's real slab slot.
    public var connectionBytes: Int

    public init(facts: HostFacts, connections: Int, role: DoctorRole = .server, workers: Int? = nil,
                config: Config = Config(), connectionBytes: Int = connectionSlotBytes) {
        self.facts = facts
        self.connections = max(1, connections)
        self.role = role
        self.workers = workers
        self.config = config
        self.connectionBytes = connectionBytes
    }
}

/// Which side of the connections this host is.
public enum DoctorRole: String, Sendable, CaseIterable {
    /// Runs `myriad serve`: holds N connections.
    case server
    /// Opens N connections (a load host). On the dev machines this is also the loopback
    /// host, which holds both ends: the kernel counts 2N sockets.
    case client
}

/// ok / warn / fail. Only `fail` makes `myriad doctor` exit non-zero.
public enum DoctorStatus: String, Sendable, Comparable, CaseIterable {
    case ok, warn, fail

    public static func < (lhs: DoctorStatus, rhs: DoctorStatus) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// One row of the doctor's report.
public struct DoctorCheck: Sendable, Equatable {
    /// Stable key for scripts ("nofile", "fixed_files", "memory", ...).
    public var id: String
    /// What is checked, for people.
    public var name: String
    public var status: DoctorStatus
    public var measured: String
    public var needed: String
    /// The command or setting that fixes it ("" when nothing needs fixing).
    public var fix: String

    public init(id: String, name: String, status: DoctorStatus, measured: String, needed: String, fix: String) {
        self.id = id
        self.name = name
        self.status = status
        self.measured = measured
        self.needed = needed
        self.fix = fix
    }
}

/// How the engine spreads N connections over its worker threads and their io_uring rings
/// (`CapacityPlan.uring`, as `Engine.start` computes it): worker shares differ by at most one,
/// each share is spread over as few rings as hold it, and a worker's tables differ by at most
/// one entry.
public struct RingLayout: Sendable, Equatable, CustomStringConvertible {
    /// The most rings one worker may run (a connection's handle has 11 bits for its ring).
    public static var maximumRingsPerWorker: Int { CapacityPlan.maxRingsPerWorker }

    public var workers: Int
    /// The fewest and the most rings a worker runs.
    public var ringsPerWorker: ClosedRange<Int>
    /// The smallest and the largest ring's fixed-file table.
    public var fixedFilesPerRing: ClosedRange<Int>
    /// Rings over all workers.
    public var rings: Int
    /// Connections the tables hold together.
    public var connections: Int

    init(_ plan: CapacityPlan) {
        let counts = plan.ringCounts
        let tables = plan.ringsPerWorker.flatMap { $0 }
        workers = plan.perWorker.count
        ringsPerWorker = counts.min()!...counts.max()!
        fixedFilesPerRing = tables.min()!...tables.max()!
        rings = tables.count
        connections = plan.total
    }

    /// "2 workers x 25 rings x 20000 fixed files = 1000000"; a range where they differ
    /// ("25-26 rings x 19231-20000 fixed files").
    public var description: String {
        func span(_ range: ClosedRange<Int>) -> String {
            range.lowerBound == range.upperBound ? "\(range.lowerBound)" : "\(range.lowerBound)-\(range.upperBound)"
        }
        let rings = ringsPerWorker.upperBound == 1 ? "ring" : "rings"
        let files = fixedFilesPerRing.upperBound == 1 ? "fixed file" : "fixed files"
        return "\(counted(workers, "worker")) x \(span(ringsPerWorker)) \(rings) x \(span(fixedFilesPerRing)) \(files) = \(connections)"
    }
}

/// The per-connection and per-ring costs the memory estimate uses. The kernel figures were
/// measured on the dev machines' kernel 6.18 (docs/architecture.md, "Kernel memory per idle
/// connection"); the rest follow from the engine's own layout.
public enum ConnectionCost {
    /// Kernel memory of one idle, established TCP socket (socket, sock, file, dentry and
    /// inode slab objects): measured 3.6-4.9 KB; the upper end is used. No socket buffer
    /// is held while idle.
    public static let kernelSocketBytes = 4_900
    /// An armed multishot receive (io_uring request and its async data), per connection.
    public static let multishotReceiveBytes = 840
    /// An epoll registration (epitem and wait-queue entry), per connection.
    public static let epollRegistrationBytes = 270
    /// One slot of a ring's registered fixed-file table (a pointer per slot; the table is
    /// allocated for every slot at registration).
    public static let fixedFileSlotBytes = 8
    /// One submission queue entry (64 B) plus its index in the SQ array (4 B).
    public static let submissionEntryBytes = 68
    public static let completionEntryBytes = 16
    /// One descriptor in a provided buffer ring.
    public static let bufferDescriptorBytes = 16
}

extension Doctor {
    /// Ordinary fds a Myriad process keeps besides connections (stdio, logs, and per
    /// worker a listener, an epoll fd, an eventfd, and a margin): the engine's epoll reserve.
    /// With io_uring every ring is one more fd on top of it (`ringFileDescriptors`).
    public static func processReserve(workers: Int) -> Int { CapacityPlan.epollReserve(workers: workers) }

    /// Connections "arriving at once" are capped here: 65535 is the largest accept queue
    /// worth asking for (kernel-tuning sets somaxconn and tcp_max_syn_backlog to it).
    public static let largestAcceptQueue = 65_535
    /// Packets per CPU a loopback burst may need queued (kernel-tuning's netdev_max_backlog).
    public static let largestInputQueue = 16_384
    /// The most workers MYRIAD_WORKERS accepts.
    static let maximumWorkers = 1024

    /// Whether the engine would use io_uring: MYRIAD_BACKEND is not epoll and the probe passed.
    public var usesIOURing: Bool { config.backend != .epoll && facts.ioUring.isAvailable }

    /// The most entries a ring's fixed-file table may have here: RLIMIT_NOFILE (checked when
    /// the table is registered; the engine raises its soft limit to the hard one first), at
    /// most 2^20. Direct descriptors are not process fds, so no reserve is taken from this.
    public var fixedFileLimit: Int { max(1, min(facts.fileLimit.hard, maximumFixedFilesPerRing)) }

    /// The largest table a ring gets: on a server MYRIAD_FIXED_FILES_PER_RING (a serve knob),
    /// else the limit.
    public var fixedFilesPerRing: Int {
        role == .server ? config.fixedFilesPerRing ?? fixedFileLimit : fixedFileLimit
    }

    /// The fewest rings that hold N: ceil(N / fixed files per ring). A load generator's layout
    /// (myriad load runs one ring per thread); the engine's is `ringLayout`.
    public var ringsNeeded: Int { ceilDivide(connections, fixedFilesPerRing) }

    /// The worker threads the checks assume: those given, else `myriad serve`'s default, one
    /// per core (never more than N: every worker needs a connection).
    public var plannedWorkers: Int { workers ?? max(1, min(facts.onlineCores, connections)) }

    /// How the engine would spread N over `plannedWorkers` with io_uring, or why it would
    /// refuse to start: a MYRIAD_FIXED_FILES_PER_RING above `fixedFileLimit`, more than
    /// `RingLayout.maximumRingsPerWorker` rings per worker, fewer connections than workers, or
    /// more rings than the process may open (each ring is an fd: `ringFileDescriptors`).
    public var ringLayout: Result<RingLayout, EngineError> {
        switch enginePlan {
        case .failure(let refusal):
            return .failure(refusal)
        case .success(let plan):
            let layout = RingLayout(plan)
            let descriptors = ringFileDescriptors(rings: layout.rings)
            guard descriptors <= facts.fileLimit.hard else {
                return .failure(EngineError("\(layout.rings) rings are \(layout.rings) io_uring fds, and with the engine's own "
                                            + "\(descriptors - layout.rings) that is more than RLIMIT_NOFILE (\(facts.fileLimit.hard)) allows"))
            }
            return .success(layout)
        }
    }

    /// `CapacityPlan.uring` for N on `plannedWorkers` (the arithmetic `Engine.start` uses),
    /// after the engine's own check of MYRIAD_FIXED_FILES_PER_RING against the fd limit.
    var enginePlan: Result<CapacityPlan, EngineError> {
        if role == .server, fixedFilesPerRing > fixedFileLimit {
            return .failure(EngineError("MYRIAD_FIXED_FILES_PER_RING=\(fixedFilesPerRing) is more than a ring's table may hold here "
                                        + "(RLIMIT_NOFILE \(fixedFileLimit))"))
        }
        do {
            return .success(try CapacityPlan.uring(workers: plannedWorkers, fixedFilesPerRing: fixedFilesPerRing,
                                                   maxConnections: connections))
        } catch {
            return .failure(error)
        }
    }

    /// Process fds the engine needs with `rings` io_uring rings: every ring is an fd (the
    /// io_uring instance) besides its direct descriptors, on top of the engine's reserve
    /// (stdio, listeners, eventfds, a margin).
    public func ringFileDescriptors(rings: Int) -> Int { Doctor.ringFileDescriptors(rings: rings, workers: plannedWorkers) }

    static func ringFileDescriptors(rings: Int, workers: Int) -> Int { rings + processReserve(workers: workers) }

    /// Whether the engine starts with N on `workers` threads, rings of up to `files` fixed
    /// files and an fd limit of `fdLimit`: the plan exists and its rings' fds fit.
    func engineStarts(workers: Int, files: Int, fdLimit: Int) -> Bool {
        guard files <= min(fdLimit, maximumFixedFilesPerRing),
              let plan = try? CapacityPlan.uring(workers: workers, fixedFilesPerRing: files, maxConnections: connections)
        else { return false }
        return Doctor.ringFileDescriptors(rings: plan.ringCounts.reduce(0, +), workers: workers) <= fdLimit
    }

    /// The io_uring rings the memory estimate counts: the engine's plan on a server, else
    /// (a load host, or a plan the engine refuses) the fewest that hold N.
    var plannedRings: Int {
        if role == .server, case .success(let plan) = enginePlan { return plan.ringCounts.reduce(0, +) }
        return ringsNeeded
    }

    /// Connections one process can hold as ordinary fds (the epoll backend, plain sockets):
    /// the hard limit (the engine raises its soft limit to it) less the process's own fds.
    public var fileDescriptorCapacity: Int {
        max(0, facts.fileLimit.hard - Doctor.processReserve(workers: workers ?? facts.onlineCores))
    }

    /// Kernel sockets on this host: 2N on a client (loopback) host, which holds both ends.
    public var socketsOnHost: Int { role == .client ? 2 * connections : connections }

    /// Bytes the connections are expected to take when idle, by part.
    public struct MemoryEstimate: Sendable, Equatable {
        /// Kernel sockets plus each connection's armed receive (or epoll registration).
        public var kernelBytes: Int
        /// Slab slots (the engine's per-connection struct).
        public var userBytes: Int
        /// Per worker besides its rings: the epoll backend's receive buffer (0 with io_uring,
        /// where every such buffer belongs to a ring).
        public var workerBytes: Int
        /// io_uring rings, every one with its own SQ and CQ, provided buffer ring (descriptors
        /// and buffers) and fixed-file table. 0 with epoll.
        public var ringBytes: Int = 0
        /// How many rings `ringBytes` counts.
        public var rings: Int = 0
        public var totalBytes: Int { kernelBytes + userBytes + workerBytes + ringBytes }
    }

    /// N x (kernel socket + armed receive + slab slot) + rings x (SQ + CQ + buffer ring) + the
    /// fixed-file tables (N slots in all: the engine sizes each table to its share), or with
    /// epoll a receive buffer per worker. On a client (loopback) host the kernel part is
    /// doubled: both ends are sockets with a receive armed; the load generator's own
    /// user-space state is not counted.
    public var memoryEstimate: MemoryEstimate {
        let receiveArm = usesIOURing ? ConnectionCost.multishotReceiveBytes : ConnectionCost.epollRegistrationBytes
        let kernel = socketsOnHost * (ConnectionCost.kernelSocketBytes + receiveArm)
        let user = connections * connectionBytes
        guard usesIOURing else {
            return MemoryEstimate(kernelBytes: kernel, userBytes: user,
                                  workerBytes: plannedWorkers * Int(config.bufferSizeBytes))
        }
        // What RingUnit allocates for each ring (the buffers are counted in full, though they
        // are MAP_NORESERVE and only those a burst touches become resident).
        let buffers = Int(config.bufferCount) * (Int(config.bufferSizeBytes) + ConnectionCost.bufferDescriptorBytes)
        let completions = Int(config.completionEntries ?? config.ringEntries * 4)
        let perRing = buffers + Int(config.ringEntries) * ConnectionCost.submissionEntryBytes
            + completions * ConnectionCost.completionEntryBytes
        let rings = plannedRings
        let tables = connections * ConnectionCost.fixedFileSlotBytes
        return MemoryEstimate(kernelBytes: kernel, userBytes: user, workerBytes: 0,
                              ringBytes: rings * perRing + tables, rings: rings)
    }

    /// Connections one listener may see arrive at once: every client of a worker
    /// reconnecting together (after a restart or a network blip), capped at 65535.
    public var acceptBurst: Int { min(Doctor.largestAcceptQueue, ceilDivide(connections, plannedWorkers)) }

    /// Every check, in report order. Server hosts get the listen-queue checks, client hosts
    /// the port-range check.
    public func checks() -> [DoctorCheck] {
        var rows = [kernelCheck(), ioUringCheck(), fileLimitCheck(), fixedFilesCheck(), nrOpenCheck(),
                    fileMaxCheck(), memoryCheck(), tcpMemoryCheck()]
        if role == .server { rows += [somaxconnCheck(), synBacklogCheck()] }
        rows.append(netdevBacklogCheck())
        if role == .client { rows.append(portRangeCheck()) }
        rows.append(conntrackCheck())
        return rows
    }

    // MARK: - Checks

    func kernelCheck() -> DoctorCheck {
        let name = "kernel version"
        let needed = ">= 5.19 (6.1+ best)"
        guard let release = facts.kernelRelease, let version = facts.kernelVersion else {
            return DoctorCheck(id: "kernel", name: name, status: .warn, measured: "unknown", needed: needed,
                               fix: "could not read uname: the io_uring row says what works")
        }
        if (version.major, version.minor) >= (6, 1) {
            return DoctorCheck(id: "kernel", name: name, status: .ok, measured: release, needed: needed, fix: "")
        }
        let fix = (version.major, version.minor) < (5, 19)
            ? "kernel >= 5.19 for multishot accept and buffer rings (6.1+ recommended); until then the epoll backend serves, capped by the fd limit"
            : "kernel >= 6.1: before 6.0 receives are single-shot (re-armed after each completion), before 6.1 there is no DEFER_TASKRUN"
        return DoctorCheck(id: "kernel", name: name, status: .warn, measured: release, needed: needed, fix: fix)
    }

    func ioUringCheck() -> DoctorCheck {
        let name = "io_uring"
        let needed = "setup, fixed files, buffer rings, multishot accept+recv"
        let setting = facts.ioUringDisabled.map { "io_uring_disabled=\($0)" } ?? "no io_uring_disabled key"
        switch facts.ioUring {
        case .available(let multishotReceive, let deferTaskrun):
            var missing: [String] = []
            if !multishotReceive { missing.append("multishot recv") }
            if !deferTaskrun { missing.append("DEFER_TASKRUN") }
            if missing.isEmpty {
                return DoctorCheck(id: "io_uring", name: name, status: .ok,
                                   measured: "works (\(setting))", needed: needed, fix: "")
            }
            return DoctorCheck(id: "io_uring", name: name, status: .warn,
                               measured: "works without \(missing.joined(separator: ", ")) (\(setting))", needed: needed,
                               fix: "the engine uses its fallbacks (single-shot receives, COOP_TASKRUN); kernel >= 6.1, "
                                   + "and leave MYRIAD_URING_DISABLE unset, for the full set")
        case .unavailable(let reason):
            var fixes: [String] = []
            if let disabled = facts.ioUringDisabled, disabled != 0 {
                fixes.append("sysctl -w kernel.io_uring_disabled=0 (kernel-tuning/sysctl.d/99-myriad.conf), or keep 1 and put the service user in kernel.io_uring_group")
            } else if reason.contains("EPERM") {
                fixes.append("seccomp blocks it (Docker's default profile does): allow io_uring_setup, io_uring_enter and io_uring_register (kernel-tuning/README.md, Containers)")
            } else if reason.contains("ENOSYS") || reason.contains("older than") {
                fixes.append("a kernel >= 5.19 built with io_uring (6.1+ recommended)")
            } else {
                fixes.append("see kernel-tuning/README.md (EPERM / ENOSYS from io_uring_setup)")
            }
            let fits = connections <= fileDescriptorCapacity
            fixes.append("meanwhile MYRIAD_BACKEND=auto falls back to epoll, which holds at most \(fileDescriptorCapacity) connections here (the fd limit)"
                         + (fits ? ": enough for \(connections)" : ""))
            return DoctorCheck(id: "io_uring", name: name, status: fits ? .warn : .fail,
                               measured: "unavailable: \(reason)", needed: needed, fix: fixes.joined(separator: "; "))
        }
    }

    func fileLimitCheck() -> DoctorCheck {
        let limit = facts.fileLimit
        let name = "per-process fd limit (RLIMIT_NOFILE)"
        var measured = "soft \(limit.soft), hard \(limit.hard), "
            + (facts.canRaiseHardLimit ? "CAP_SYS_RESOURCE" : "no CAP_SYS_RESOURCE")
        if limit.soft < limit.hard && role == .server { measured += " (soft raised to hard at start)" }
        let reserve = Doctor.processReserve(workers: workers ?? facts.onlineCores)
        let target = connections + reserve
        let needed = "\(target) fds in one process (epoll, plain sockets)"
        guard connections > fileDescriptorCapacity else {
            return DoctorCheck(id: "nofile", name: name, status: .ok, measured: measured, needed: needed, fix: "")
        }
        var fix: String
        if facts.canRaiseHardLimit {
            fix = "raise the hard limit to \(target): LimitNOFILE=\(target) (kernel-tuning/systemd/myriad.service) or ulimit -Hn \(target)"
        } else {
            fix = "this process cannot raise its hard limit (no CAP_SYS_RESOURCE, root included): start it with LimitNOFILE=\(target) "
                + "(kernel-tuning/systemd/myriad.service) or nofile \(target) in kernel-tuning/limits.d/myriad.conf (next login)"
        }
        if let nrOpen = facts.nrOpen, target > nrOpen {
            fix += ", after raising fs.nr_open above it (kernel-tuning/sysctl.d/99-myriad.conf)"
        }
        if usesIOURing {
            let direct = "with io_uring, where each connection is a direct descriptor in a ring's fixed-file table, not a process fd"
            switch (role, ringLayout) {
            case (.server, .success(let layout)):
                fix += ". Or without it: Myriad still gets there \(direct): workers x rings per worker x fixed files per ring = "
                    + "\(layout) (myriad serve --max-connections \(connections), MYRIAD_MAX_CONNECTIONS=\(connections))"
            case (.server, .failure):
                fix += ". io_uring, where connections are direct descriptors in rings' fixed-file tables, cannot hold "
                    + "\(connections) here either: see the io_uring fixed files row"
            case (.client, _):
                fix += ". Or without it: a load generator gets there \(direct): rings x fixed files per ring = "
                    + "\(counted(ringsNeeded, "ring")) x \(fixedFilesPerRing) = \(ringsNeeded * fixedFilesPerRing) >= \(connections) "
                    + "(myriad load runs a thread per ring), or \(ceilDivide(connections, max(1, fileDescriptorCapacity))) processes"
            }
        } else {
            fix += ". io_uring is not usable here (see the io_uring row), so this limit is the ceiling"
        }
        return DoctorCheck(id: "nofile", name: name, status: .fail, measured: measured, needed: needed, fix: fix)
    }

    /// The engine's io_uring layout for N: workers x rings per worker x fixed files per ring.
    /// Fails only when the engine would refuse it: a MYRIAD_FIXED_FILES_PER_RING above what
    /// a table may hold, or more than `RingLayout.maximumRingsPerWorker` rings per worker.
    func fixedFilesCheck() -> DoctorCheck {
        let name = "io_uring fixed files (rings)"
        let limit = fixedFileLimit
        let perRing = fixedFilesPerRing
        let maxRings = RingLayout.maximumRingsPerWorker
        var measured = "\(limit) per ring (RLIMIT_NOFILE)"
        if role == .server, let asked = config.fixedFilesPerRing {
            measured = "MYRIAD_FIXED_FILES_PER_RING=\(asked); at most \(limit) per ring (RLIMIT_NOFILE)"
        }
        func limitFix(_ limit: Int) -> String { "LimitNOFILE=\(limit), kernel-tuning/systemd/myriad.service" }
        guard usesIOURing else {
            let why = config.backend == .epoll ? "MYRIAD_BACKEND=epoll" : "io_uring unavailable (see the io_uring row)"
            return DoctorCheck(id: "fixed_files", name: name, status: .warn, measured: "n/a: \(why)",
                               needed: "\(connections) direct descriptors, at most \(limit) per ring",
                               fix: "the epoll backend holds at most the fd limit (see the per-process fd limit row)")
        }
        if role == .server, let asked = config.fixedFilesPerRing, asked > limit {
            var fix = "MYRIAD_FIXED_FILES_PER_RING=\(limit) or less, or unset it (then a ring's table is the fd limit): "
                + "the engine refuses to start with a table larger than RLIMIT_NOFILE"
            if asked <= maximumFixedFilesPerRing { fix += "; or raise RLIMIT_NOFILE to \(asked) (\(limitFix(asked)))" }
            return DoctorCheck(id: "fixed_files", name: name, status: .fail, measured: measured,
                               needed: "MYRIAD_FIXED_FILES_PER_RING <= \(limit)", fix: fix)
        }
        if role == .client {
            return DoctorCheck(id: "fixed_files", name: name, status: .ok, measured: measured,
                               needed: "\(counted(ringsNeeded, "ring")) x \(perRing) fixed files >= \(connections) (a thread per ring in myriad load)",
                               fix: "")
        }
        let workers = plannedWorkers
        let hard = facts.fileLimit.hard
        let needed: String
        switch enginePlan {
        case .success(let plan):
            let layout = RingLayout(plan)
            let descriptors = ringFileDescriptors(rings: layout.rings)
            guard descriptors > hard else {
                return DoctorCheck(id: "fixed_files", name: name, status: .ok, measured: measured,
                                   needed: "\(layout) (at most \(maxRings) rings per worker)", fix: "")
            }
            // Each ring is a process fd too (its io_uring instance).
            needed = "\(layout), and \(descriptors) fds: one per ring + \(descriptors - layout.rings) for the engine"
        case .failure(let refusal):
            guard connections >= workers else {
                return DoctorCheck(id: "fixed_files", name: name, status: .fail, measured: measured,
                                   needed: "at least one connection per worker", fix: "\(refusal): --workers \(connections) or fewer")
            }
            // The engine fits N exactly when ceil(N / workers) <= rings x files, i.e. when
            // N <= workers x rings x files.
            needed = "\(counted(workers, "worker")) x at most \(maxRings) rings x \(perRing) fixed files = "
                + "\(workers * maxRings * perRing) < \(connections)"
        }
        // What would make it start, each found with the engine's own plan.
        var fixes: [String] = []
        if let asked = config.fixedFilesPerRing,
           let files = smallest(from: asked + 1, to: limit, where: { engineStarts(workers: workers, files: $0, fdLimit: hard) }) {
            fixes.append("MYRIAD_FIXED_FILES_PER_RING=\(files) or more (or unset it)")
        }
        if fixes.isEmpty,  // (else the knob alone is enough)
           let raised = smallest(from: hard + 1, to: maximumFixedFilesPerRing,
                                 where: { engineStarts(workers: workers, files: $0, fdLimit: $0) }) {
            fixes.append("raise RLIMIT_NOFILE to \(raised) (\(limitFix(raised))): larger tables, fewer rings"
                         + (config.fixedFilesPerRing != nil ? ", with MYRIAD_FIXED_FILES_PER_RING unset" : ""))
        }
        let moreWorkers = ceilDivide(connections, maxRings * perRing)
        if moreWorkers > workers, moreWorkers <= Doctor.maximumWorkers,
           engineStarts(workers: moreWorkers, files: perRing, fdLimit: hard) {
            fixes.append("myriad serve --workers \(moreWorkers) (MYRIAD_WORKERS=\(moreWorkers)) at \(perRing) fixed files per ring")
        }
        if fixes.isEmpty { fixes.append("fewer connections per process (several processes or hosts)") }
        return DoctorCheck(id: "fixed_files", name: name, status: .fail, measured: measured, needed: needed,
                           fix: fixes.joined(separator: ", or ") + "; as it is, myriad serve fails to start")
    }

    /// The smallest value in `lower...upper` for which `holds` is true, when it stays true for
    /// every larger one (a binary search), or nil.
    func smallest(from lower: Int, to upper: Int, where holds: (Int) -> Bool) -> Int? {
        guard lower <= upper, holds(upper) else { return nil }
        var low = lower
        var high = upper
        while low < high {
            let middle = (low + high) / 2
            if holds(middle) { high = middle } else { low = middle + 1 }
        }
        return low
    }

    func nrOpenCheck() -> DoctorCheck {
        let name = "fs.nr_open"
        let target = connections + Doctor.processReserve(workers: workers ?? facts.onlineCores)
        guard let nrOpen = facts.nrOpen else {
            return DoctorCheck(id: "nr_open", name: name, status: .warn, measured: "unreadable", needed: "\(target)",
                               fix: "cat /proc/sys/fs/nr_open")
        }
        guard connections > fileDescriptorCapacity else {
            return DoctorCheck(id: "nr_open", name: name, status: .ok, measured: "\(nrOpen)",
                               needed: ">= the fd limit (\(facts.fileLimit.hard))", fix: "")
        }
        let needed = "\(target) to raise RLIMIT_NOFILE that far"
        guard nrOpen >= target else {
            return DoctorCheck(id: "nr_open", name: name, status: .warn, measured: "\(nrOpen)", needed: needed,
                               fix: "only for the raise-the-fd-limit route (io_uring rings do not need it): "
                                   + "sysctl -w fs.nr_open=\(max(2_097_152, target)) (kernel-tuning/sysctl.d/99-myriad.conf) before raising LimitNOFILE")
        }
        return DoctorCheck(id: "nr_open", name: name, status: .ok, measured: "\(nrOpen)", needed: needed, fix: "")
    }

    func fileMaxCheck() -> DoctorCheck {
        let name = "fs.file-max (system-wide files)"
        let open = facts.filesOpen ?? 0
        let target = open + socketsOnHost + Doctor.processReserve(workers: plannedWorkers)
        let what = role == .client ? "\(socketsOnHost) sockets (both ends)" : "\(socketsOnHost) sockets"
        let needed = "\(target): \(what) + \(open) open now"
        guard let fileMax = facts.fileMax else {
            return DoctorCheck(id: "file_max", name: name, status: .warn, measured: "unreadable", needed: needed,
                               fix: "cat /proc/sys/fs/file-max")
        }
        let measured = "\(fileMax)"
        guard fileMax >= target else {
            return DoctorCheck(id: "file_max", name: name, status: .fail, measured: measured, needed: needed,
                               fix: "sysctl -w fs.file-max=\(max(4_194_304, target)) (kernel-tuning/sysctl.d/99-myriad.conf); "
                                   + "io_uring direct descriptors count too (ENFILE at accept otherwise)")
        }
        return DoctorCheck(id: "file_max", name: name, status: .ok, measured: measured, needed: needed, fix: "")
    }

    func memoryCheck() -> DoctorCheck {
        let name = "memory for idle connections"
        let estimate = memoryEstimate
        let kernelPerConnection = estimate.kernelBytes / connections
        var needed = "\(approximateBytes(estimate.totalBytes)): \(connections) x (\(kernelPerConnection) B kernel + "
            + "\(connectionBytes) B slab)"
        if estimate.rings > 0 {
            needed += " + \(counted(estimate.rings, "ring")) x \(approximateBytes(estimate.ringBytes / estimate.rings))"
        } else {
            needed += " + \(counted(plannedWorkers, "worker")) x \(approximateBytes(estimate.workerBytes / max(1, plannedWorkers)))"
        }
        guard let available = facts.memoryAvailableBytes else {
            return DoctorCheck(id: "memory", name: name, status: .warn, measured: "unreadable", needed: needed,
                               fix: "grep MemAvailable /proc/meminfo")
        }
        var measured = "\(approximateBytes(available)) available"
        if let total = facts.memoryTotalBytes { measured += " of \(approximateBytes(total))" }
        let basis = "per connection: \(ConnectionCost.kernelSocketBytes) B kernel socket + "
            + "\(usesIOURing ? "\(ConnectionCost.multishotReceiveBytes) B armed multishot recv" : "\(ConnectionCost.epollRegistrationBytes) B epoll registration")"
            + (role == .client ? ", both ends" : "") + " + \(connectionBytes) B slab slot"
        if estimate.totalBytes > available {
            return DoctorCheck(id: "memory", name: name, status: .fail, measured: measured, needed: needed,
                               fix: "more RAM, or fewer connections per host (\(basis)); "
                                   + (usesIOURing ? "MYRIAD_BUFFER_COUNT or MYRIAD_RING_ENTRIES shrink each ring, a higher fd limit means fewer rings"
                                                  : "fewer workers or MYRIAD_BUFFER_SIZE shrink the per-worker part"))
        }
        if estimate.totalBytes * 10 > available * 8 {
            return DoctorCheck(id: "memory", name: name, status: .warn, measured: measured, needed: needed,
                               fix: "over 80% of what is available, and bursts queue socket buffers on top (see tcp_mem): more RAM or fewer connections (\(basis))")
        }
        return DoctorCheck(id: "memory", name: name, status: .ok, measured: measured, needed: needed, fix: "")
    }

    func tcpMemoryCheck() -> DoctorCheck {
        let name = "net.ipv4.tcp_mem (pages)"
        // Idle sockets hold no buffer pages; a burst that leaves one small frame queued on
        // every socket is charged at least one page per socket (both ends on loopback).
        let pages = socketsOnHost
        let needed = "\(pages) (\(approximateBytes(pages * facts.pageSizeBytes))) for 1 page per socket in a burst"
        guard let memory = facts.tcpMemPages else {
            return DoctorCheck(id: "tcp_mem", name: name, status: .warn, measured: "unreadable", needed: needed,
                               fix: "cat /proc/sys/net/ipv4/tcp_mem")
        }
        let measured = "max \(memory.maximum) (\(approximateBytes(memory.maximum * facts.pageSizeBytes))); idle uses 0"
        guard memory.maximum >= pages else {
            return DoctorCheck(id: "tcp_mem", name: name, status: .warn, measured: measured, needed: needed,
                               fix: "sysctl -w net.ipv4.tcp_mem='\(pages / 2) \(pages / 4 * 3) \(pages)' (or kernel-tuning/sysctl.d/99-myriad.conf, "
                                   + "sized for 24 GiB); at max, sends stall and closes reset (TCP: out of memory)")
        }
        return DoctorCheck(id: "tcp_mem", name: name, status: .ok, measured: measured, needed: needed, fix: "")
    }

    func somaxconnCheck() -> DoctorCheck {
        let name = "net.core.somaxconn (accept queue)"
        let burst = acceptBurst
        let backlog = config.listenBacklog
        let needed = "\(burst) per listener (N/workers at once)"
        guard let somaxconn = facts.somaxconn else {
            return DoctorCheck(id: "somaxconn", name: name, status: .warn, measured: "unreadable", needed: needed,
                               fix: "cat /proc/sys/net/core/somaxconn")
        }
        let queue = min(somaxconn, backlog)
        let measured = "\(somaxconn); MYRIAD_BACKLOG \(backlog) -> queue \(queue)"
        guard queue >= burst else {
            var fixes: [String] = []
            if backlog < burst { fixes.append("MYRIAD_BACKLOG=\(burst) (myriad serve --backlog \(burst))") }
            if somaxconn < burst {
                fixes.append("sysctl -w net.core.somaxconn=\(Doctor.largestAcceptQueue) (kernel-tuning/sysctl.d/99-myriad.conf)")
            }
            return DoctorCheck(id: "somaxconn", name: name, status: .warn, measured: measured, needed: needed,
                               fix: fixes.joined(separator: " and ") + ", then restart myriad; "
                                   + "else a reconnect storm overflows the queue (connects take 1 s / 3 s, ECONNRESET)")
        }
        return DoctorCheck(id: "somaxconn", name: name, status: .ok, measured: measured, needed: needed, fix: "")
    }

    func synBacklogCheck() -> DoctorCheck {
        let name = "net.ipv4.tcp_max_syn_backlog"
        let burst = acceptBurst
        guard let synBacklog = facts.tcpMaxSynBacklog else {
            return DoctorCheck(id: "tcp_max_syn_backlog", name: name, status: .warn, measured: "unreadable",
                               needed: "\(burst)", fix: "cat /proc/sys/net/ipv4/tcp_max_syn_backlog")
        }
        let cookies = facts.tcpSyncookies ?? 1
        let measured = "\(synBacklog) (tcp_syncookies=\(cookies))"
        if cookies != 0 {
            return DoctorCheck(id: "tcp_max_syn_backlog", name: name, status: .ok, measured: measured,
                               needed: "\(burst) only with tcp_syncookies=0", fix: "")
        }
        guard synBacklog * 3 / 4 >= burst else {
            return DoctorCheck(id: "tcp_max_syn_backlog", name: name, status: .warn, measured: measured,
                               needed: "\(burst * 4 / 3) (SYNs drop at 3/4 of it)",
                               fix: "sysctl -w net.ipv4.tcp_max_syn_backlog=\(Doctor.largestAcceptQueue) (kernel-tuning/sysctl.d/99-myriad.conf), or tcp_syncookies=1")
        }
        return DoctorCheck(id: "tcp_max_syn_backlog", name: name, status: .ok, measured: measured,
                           needed: "\(burst * 4 / 3) (SYNs drop at 3/4 of it)", fix: "")
    }

    func netdevBacklogCheck() -> DoctorCheck {
        let name = "net.core.netdev_max_backlog"
        // A broadcast or a reconnect storm puts at least one packet per connection through
        // the input queue of the CPU that sends it (loopback and veth; real NICs only with RPS).
        let needed = min(Doctor.largestInputQueue, ceilDivide(connections, max(1, facts.onlineCores)))
        let neededText = "\(needed) packets per CPU in a loopback burst"
        guard let backlog = facts.netdevMaxBacklog else {
            return DoctorCheck(id: "netdev_max_backlog", name: name, status: .warn, measured: "unreadable",
                               needed: neededText, fix: "cat /proc/sys/net/core/netdev_max_backlog")
        }
        guard backlog >= needed else {
            return DoctorCheck(id: "netdev_max_backlog", name: name, status: .warn, measured: "\(backlog)", needed: neededText,
                               fix: "sysctl -w net.core.netdev_max_backlog=\(Doctor.largestInputQueue) (kernel-tuning/sysctl.d/99-myriad.conf); "
                                   + "drops show in column 2 of /proc/net/softnet_stat (loopback, veth, RPS)")
        }
        return DoctorCheck(id: "netdev_max_backlog", name: name, status: .ok, measured: "\(backlog)", needed: neededText, fix: "")
    }

    func portRangeCheck() -> DoctorCheck {
        let name = "client ports (ip_local_port_range)"
        guard let range = facts.localPortRange else {
            return DoctorCheck(id: "ip_local_port_range", name: name, status: .warn, measured: "unreadable",
                               needed: "\(connections) client ports", fix: "cat /proc/sys/net/ipv4/ip_local_port_range")
        }
        let ports = range.count
        let addresses = ceilDivide(connections, ports)
        let measured = "\(range.lowerBound)-\(range.upperBound): \(ports) ports per source address"
        let needed = "\(addresses) source address\(addresses == 1 ? "" : "es") for one server address:port"
        guard addresses > 1 else {
            return DoctorCheck(id: "ip_local_port_range", name: name, status: .ok, measured: measured, needed: needed, fix: "")
        }
        let widened = ceilDivide(connections, 65535 - 10000 + 1)
        var fix = "spread connections over \(addresses) source addresses, 127.0.0.2-127.0.0.\(addresses + 1) on loopback, "
            + "with IP_BIND_ADDRESS_NO_PORT (else EADDRNOTAVAIL at ~\(ports))"
        if range.count < 65535 - 10000 + 1 {
            fix += "; net.ipv4.ip_local_port_range='10000 65535' (kernel-tuning/sysctl.d/99-myriad.conf) cuts that to \(widened)"
        }
        return DoctorCheck(id: "ip_local_port_range", name: name, status: .warn, measured: measured, needed: needed, fix: fix)
    }

    func conntrackCheck() -> DoctorCheck {
        let name = "conntrack table"
        let needed = "\(connections) entries where tracked (NAT, ct rules)"
        guard let maximum = facts.conntrackMax else {
            return DoctorCheck(id: "conntrack", name: name, status: .ok, measured: "nf_conntrack not loaded",
                               needed: needed, fix: "")
        }
        let count = facts.conntrackCount ?? 0
        let measured = "max \(maximum), \(count) in use"
        guard maximum >= connections + count else {
            return DoctorCheck(id: "conntrack", name: name, status: .warn, measured: measured, needed: needed,
                               fix: "matters only if a NAT or ct state rule tracks these connections (loopback is not tracked; "
                                   + "production NAT hosts are, and drop SYNs when full): sysctl -w net.netfilter.nf_conntrack_max="
                                   + "\(max(2_097_152, 2 * connections)) (kernel-tuning/sysctl.d/99-myriad.conf) with nf_conntrack_buckets, or a notrack rule for the port")
        }
        return DoctorCheck(id: "conntrack", name: name, status: .ok, measured: measured, needed: needed, fix: "")
    }
}

// MARK: - myriad serve

extension Doctor {
    /// The doctor's shortfalls for `config` as `myriad serve` will run it: one line per check
    /// that is not ok, against MYRIAD_MAX_CONNECTIONS (or, unset, what the limits let the
    /// engine hold). Rows about the backend that will not be used are left out, and so are
    /// the kernel and io_uring rows: the engine's own probe logs what it chose and why.
    public static func startupWarnings(config: Config, facts: HostFacts? = nil) -> [String] {
        let facts = facts ?? HostFacts.read(disabledURingFeatures: config.disabledURingFeatures)
        var doctor = Doctor(facts: facts, connections: 1, role: .server, workers: config.workers, config: config)
        // Unset, the maximum is the engine's default plan: a full ring per worker (io_uring),
        // or what the fd limit leaves (epoll, once the soft limit is raised to the hard one).
        let defaultPlan = doctor.usesIOURing
            ? try? CapacityPlan.uring(workers: config.workers, fixedFilesPerRing: doctor.fixedFilesPerRing, maxConnections: nil)
            : try? CapacityPlan.epoll(workers: config.workers, softFileLimit: facts.fileLimit.hard, maxConnections: nil)
        doctor.connections = config.maxConnections ?? max(1, defaultPlan?.total ?? 1)
        var skipped: Set<String> = ["kernel", "io_uring"]
        skipped.formUnion(doctor.usesIOURing ? ["nofile", "nr_open"] : ["fixed_files"])
        return doctor.checks()
            .filter { $0.status != .ok && !skipped.contains($0.id) }
            .map { "doctor: \($0.name) \($0.status.rawValue) for \(doctor.connections) connections: \($0.measured), needs \($0.needed). Fix: \($0.fix)" }
    }
}

/// "1 worker", "2 workers".
func counted(_ count: Int, _ noun: String) -> String {
    "\(count) \(noun)\(count == 1 ? "" : "s")"
}

func ceilDivide(_ numerator: Int, _ denominator: Int) -> Int {
    (numerator + denominator - 1) / denominator
}

/// "6.2 GiB", "4.7 MiB", "5.9 KiB", "512 B".
func approximateBytes(_ bytes: Int) -> String {
    let units: [(String, Double)] = [("GiB", 1_073_741_824), ("MiB", 1_048_576), ("KiB", 1024)]
    for (name, size) in units where Double(bytes) >= size {
        let value = (Double(bytes) / size * 10).rounded() / 10
        return value == value.rounded() ? "\(Int(value)) \(name)" : "\(value) \(name)"
    }
    return "\(bytes) B"
}
