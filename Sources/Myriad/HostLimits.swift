import Glibc

/// The host limits that size the engine's tables.
public struct FileLimit: Sendable, Equatable {
    public var soft: Int
    public var hard: Int

    public init(soft: Int, hard: Int) {
        self.soft = soft
        self.hard = hard
    }

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
    var limit = ProcText.parseMeminfo(ProcText.readProcFile("/proc/meminfo") ?? "").totalBytes ?? (1 << 30)
    if let text = ProcText.readProcFile("/sys/fs/cgroup/memory.max"), let cgroup = ProcText.parseInteger(text) {
        limit = min(limit, cgroup)
    }
    return limit
}

/// The io_uring probe `Engine.start` runs (`URingBackend.probe`), for code outside the engine
/// that must see what it would see: the doctor (`HostFacts.read`) in MyriadDoctor.
package func probeIOURing(disabled: Set<URingFeature>) -> Result<URingCapabilities, URingUnavailable> {
    URingBackend.probe(disabled: disabled)
}

/// Reading and parsing the text of /proc and /sys files: the engine's `memoryLimitBytes` and
/// the doctor's `HostFacts` both read the host through these. They take text so they can be
/// tested without the files.
package enum ProcText {
    /// The whole text of a /proc file (they report size 0, so read until EOF), or nil.
    package static func readProcFile(_ path: String, limitBytes: Int = 1 << 20) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < limitBytes {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            bytes.append(contentsOf: chunk[..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// MemAvailable and MemTotal (bytes) from a /proc/meminfo text (which counts in kB = KiB).
    package static func parseMeminfo(_ text: String) -> (availableBytes: Int?, totalBytes: Int?) {
        var available: Int?
        var total: Int?
        for line in text.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, let value = Int(fields[1]) else { continue }
            let multiplier = fields.count >= 3 && fields[2] == "kB" ? 1024 : 1
            switch fields[0] {
            case "MemAvailable:": available = value * multiplier
            case "MemTotal:": total = value * multiplier
            default: break
            }
        }
        return (available, total)
    }

    /// A single integer sysctl value ("4096\n"); nil for anything else (cgroup's "max").
    package static func parseInteger(_ text: String) -> Int? {
        let values = parseIntegers(text)
        return values.count == 1 ? values[0] : nil
    }

    /// The integers of a multi-value sysctl ("287898\t383867\t575796\n").
    package static func parseIntegers(_ text: String) -> [Int] {
        text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { Int($0) }
    }
}
