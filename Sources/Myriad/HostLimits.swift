import Glibc

/// The host limits that size the engine's tables.
public struct FileLimit: Sendable, Equatable {
    public var soft: Int
    public var hard: Int

    /// RLIMIT_NOFILE of this process.
    public static func current() -> FileLimit {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return FileLimit(soft: Int(clamping: limit.rlim_cur), hard: Int(clamping: limit.rlim_max))
    }

    /// Raises the soft limit to the hard one (allowed without privilege) and returns the result.
    @discardableResult
    public static func raiseSoftToHard() -> FileLimit {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return current()
    }
}

/// The io_uring fixed-file table of one ring is limited by RLIMIT_NOFILE (at registration
/// time) and by the kernel's own cap.
public let maximumFixedFilesPerRing = 1_048_576

/// Resident set size of this process in bytes (/proc/self/statm).
public func residentBytes() -> Int {
    let fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return 0 }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 128)
    let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 128) }
    guard count > 0 else { return 0 }
    let fields = String(decoding: buffer[..<count], as: UTF8.self).split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// Bytes of memory this process may use: MemTotal, or the cgroup v2 limit (`memory.max`)
/// when that is lower, as in a container.
public func memoryLimitBytes() -> Int {
    var limit = HostFacts.parseMeminfo(HostFacts.readProcFile("/proc/meminfo") ?? "").totalBytes ?? (1 << 30)
    if let text = HostFacts.readProcFile("/sys/fs/cgroup/memory.max"), let cgroup = HostFacts.parseInteger(text) {
        limit = min(limit, cgroup)
    }
    return limit
}
