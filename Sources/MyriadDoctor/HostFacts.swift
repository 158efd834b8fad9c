import Glibc
import Myriad

/// What this host and this process allow, as `myriad doctor` and `myriad serve` see it: the
/// reading layer under `Doctor`. `HostFacts.read()` fills it from getrlimit, /proc and one
/// io_uring probe; tests build it by hand (every field is a plain value, `nil` = the kernel
/// has no such setting or it could not be read). The parsers take the text of the /proc
/// files so they can be tested without the files.
public struct HostFacts: Sendable, Equatable {
    /// RLIMIT_NOFILE of this process (soft, hard).
    public var fileLimit = FileLimit(soft: 1024, hard: 1024)
    /// CAP_SYS_RESOURCE in the effective set: only then can a process raise its hard limit.
    public var canRaiseHardLimit = false
    /// fs.nr_open: the highest RLIMIT_NOFILE anyone can set.
    public var nrOpen: Int?
    /// fs.file-max: open files system-wide.
    public var fileMax: Int?
    /// First field of fs.file-nr: files open system-wide right now.
    public var filesOpen: Int?
    /// net.ipv4.ip_local_port_range.
    public var localPortRange: ClosedRange<Int>?
    public var somaxconn: Int?
    public var tcpMaxSynBacklog: Int?
    /// net.ipv4.tcp_syncookies (0 off, 1 when the SYN queue overflows, 2 always).
    public var tcpSyncookies: Int?
    public var netdevMaxBacklog: Int?
    /// net.ipv4.tcp_mem in pages.
    public var tcpMemPages: TCPMemory?
    public var pageSizeBytes = 4096
    /// net.netfilter.nf_conntrack_max and _count; nil while nf_conntrack is not loaded.
    public var conntrackMax: Int?
    public var conntrackCount: Int?
    /// /proc/meminfo.
    public var memoryAvailableBytes: Int?
    public var memoryTotalBytes: Int?
    /// uname release, e.g. "6.18.44".
    public var kernelRelease: String?
    /// kernel.io_uring_disabled (kernels from 6.6).
    public var ioUringDisabled: Int?
    /// What the start-up probe found: the same probe `myriad serve` runs.
    public var ioUring: IOURingAvailability = .unavailable(reason: "not probed")
    public var onlineCores = 1

    public init() {}

    /// net.ipv4.tcp_mem: pages of socket buffer memory for all of TCP.
    public struct TCPMemory: Sendable, Equatable {
        public var minimum: Int
        public var pressure: Int
        public var maximum: Int
        public init(minimum: Int, pressure: Int, maximum: Int) {
            self.minimum = minimum
            self.pressure = pressure
            self.maximum = maximum
        }
    }

    /// Whether io_uring works here with everything the engine needs.
    public enum IOURingAvailability: Sendable, Equatable {
        /// Ring creation, the opcodes, buffer rings, sparse fixed files and multishot accept
        /// into them work. `multishotReceive` (6.0) and `deferTaskrun` (6.1) may be missing:
        /// the engine then uses its fallbacks.
        case available(multishotReceive: Bool, deferTaskrun: Bool)
        case unavailable(reason: String)

        public var isAvailable: Bool {
            if case .available = self { return true }
            return false
        }
    }

    /// (major, minor) of `kernelRelease`.
    var kernelVersion: KernelVersion? { kernelRelease.flatMap(KernelVersion.parse) }
}

// MARK: - Reading the live host

extension HostFacts {
    /// Reads this process's limits and the host's settings, and probes io_uring (well under
    /// a millisecond; it opens one loopback connection). `disabled` are the io_uring features
    /// turned off by MYRIAD_URING_DISABLE, so the probe matches what `serve` would do.
    public static func read(disabledURingFeatures disabled: Set<URingFeature> = []) -> HostFacts {
        var facts = HostFacts()
        facts.fileLimit = FileLimit.current()
        if let status = ProcText.readProcFile("/proc/self/status") {
            facts.canRaiseHardLimit = hasCapability(capabilitySysResource, inStatus: status)
        }
        facts.nrOpen = readSysctl("fs/nr_open").flatMap(ProcText.parseInteger)
        facts.fileMax = readSysctl("fs/file-max").flatMap(ProcText.parseInteger)
        facts.filesOpen = readSysctl("fs/file-nr").flatMap { ProcText.parseIntegers($0).first }
        facts.localPortRange = readSysctl("net/ipv4/ip_local_port_range").flatMap(parsePortRange)
        facts.somaxconn = readSysctl("net/core/somaxconn").flatMap(ProcText.parseInteger)
        facts.tcpMaxSynBacklog = readSysctl("net/ipv4/tcp_max_syn_backlog").flatMap(ProcText.parseInteger)
        facts.tcpSyncookies = readSysctl("net/ipv4/tcp_syncookies").flatMap(ProcText.parseInteger)
        facts.netdevMaxBacklog = readSysctl("net/core/netdev_max_backlog").flatMap(ProcText.parseInteger)
        facts.tcpMemPages = readSysctl("net/ipv4/tcp_mem").flatMap(parseTCPMemory)
        facts.pageSizeBytes = Int(sysconf(Int32(_SC_PAGESIZE)))
        facts.conntrackMax = readSysctl("net/netfilter/nf_conntrack_max").flatMap(ProcText.parseInteger)
        facts.conntrackCount = readSysctl("net/netfilter/nf_conntrack_count").flatMap(ProcText.parseInteger)
        if let meminfo = ProcText.readProcFile("/proc/meminfo") {
            let memory = ProcText.parseMeminfo(meminfo)
            facts.memoryAvailableBytes = memory.availableBytes
            facts.memoryTotalBytes = memory.totalBytes
        }
        facts.kernelRelease = currentKernelRelease()
        facts.ioUringDisabled = readSysctl("kernel/io_uring_disabled").flatMap(ProcText.parseInteger)
        switch probeIOURing(disabled: disabled) {
        case .success(let capabilities):
            facts.ioUring = .available(multishotReceive: capabilities.multishotReceive,
                                       deferTaskrun: capabilities.deferTaskrun)
        case .failure(let unavailable):
            facts.ioUring = .unavailable(reason: unavailable.reason)
        }
        facts.onlineCores = Config.onlineCores
        return facts
    }

    static func currentKernelRelease() -> String? {
        var name = utsname()
        guard uname(&name) == 0 else { return nil }
        return withUnsafeBytes(of: &name.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

// MARK: - Parsers (text in, values out)

extension HostFacts {
    /// CAP_SYS_RESOURCE is capability number 24 (linux/capability.h).
    public static let capabilitySysResource = 24

    /// Whether capability `number` is in the `CapEff:` line (hex bit mask) of a
    /// /proc/PID/status text.
    public static func hasCapability(_ number: Int, inStatus status: String) -> Bool {
        guard let mask = effectiveCapabilities(inStatus: status) else { return false }
        return mask & (UInt64(1) << UInt64(number)) != 0
    }

    /// The `CapEff:` mask of a /proc/PID/status text.
    public static func effectiveCapabilities(inStatus status: String) -> UInt64? {
        for line in status.split(separator: "\n") where line.hasPrefix("CapEff:") {
            let hex = line.dropFirst("CapEff:".count).filter { $0 != " " && $0 != "\t" }
            return UInt64(hex, radix: 16)
        }
        return nil
    }

    /// net.ipv4.ip_local_port_range ("32768\t60999").
    public static func parsePortRange(_ text: String) -> ClosedRange<Int>? {
        let values = ProcText.parseIntegers(text)
        guard values.count == 2, values[0] <= values[1] else { return nil }
        return values[0]...values[1]
    }

    /// net.ipv4.tcp_mem ("min pressure max", pages).
    public static func parseTCPMemory(_ text: String) -> TCPMemory? {
        let values = ProcText.parseIntegers(text)
        guard values.count == 3 else { return nil }
        return TCPMemory(minimum: values[0], pressure: values[1], maximum: values[2])
    }
}
