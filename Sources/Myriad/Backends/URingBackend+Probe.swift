import CLibURing
import Glibc

// MARK: - Probe

/// Why io_uring cannot serve here.
package struct URingUnavailable: Error, CustomStringConvertible {
    package var reason: String
    package var description: String { reason }
}

extension URingBackend {
    /// Finds out, by trying, what io_uring offers on this kernel: ring creation with the
    /// preferred flags, the opcodes the engine uses, buffer rings, fixed files, multishot
    /// accept into the fixed-file table and multishot receive. Takes well under a millisecond.
    package static func probe(disabled: Set<URingFeature>) -> Result<URingCapabilities, URingUnavailable> {
        let kernel = KernelVersion.current
        let wanted: [UInt32] = disabled.contains(.deferTaskrun)
            ? [UInt32(IORING_SETUP_COOP_TASKRUN) | UInt32(IORING_SETUP_TASKRUN_FLAG), 0]
            : [UInt32(IORING_SETUP_SINGLE_ISSUER) | UInt32(IORING_SETUP_DEFER_TASKRUN) | UInt32(IORING_SETUP_COOP_TASKRUN),
               UInt32(IORING_SETUP_COOP_TASKRUN) | UInt32(IORING_SETUP_TASKRUN_FLAG), 0]
        var ring: Ring?
        var lastError: SystemError?
        for flags in wanted {
            do {
                ring = try Ring(entries: 8, completionEntries: 16, flags: flags)
                break
            } catch {
                lastError = error
                if error.errno != EINVAL { break }
            }
        }
        guard let ring = ring.take() else {
            let errno = lastError?.errno ?? 0
            var reason = "io_uring_setup failed with \(SystemError.name(of: errno))"
            if let disabledSetting = readSysctl("kernel/io_uring_disabled"), disabledSetting != "0" {
                reason += " (kernel.io_uring_disabled = \(disabledSetting))"
            } else if errno == EPERM {
                reason += " (blocked by a seccomp profile, as in Docker's default, or by policy)"
            } else if errno == ENOSYS {
                reason += " (kernel \(kernel.map(String.init(describing:)) ?? "of unknown version") built without io_uring)"
            }
            return .failure(URingUnavailable(reason: reason))
        }
        if let kernel, kernel < KernelVersion(major: 5, minor: 19) {
            return .failure(URingUnavailable(reason: "kernel \(kernel) is older than 5.19 (multishot accept, buffer rings)"))
        }
        let required: [(UInt32, String)] = [
            (UInt32(IORING_OP_ACCEPT.rawValue), "ACCEPT"), (UInt32(IORING_OP_RECV.rawValue), "RECV"),
            (UInt32(IORING_OP_SEND.rawValue), "SEND"), (UInt32(IORING_OP_CLOSE.rawValue), "CLOSE"),
            (UInt32(IORING_OP_ASYNC_CANCEL.rawValue), "ASYNC_CANCEL"), (UInt32(IORING_OP_READ.rawValue), "READ"),
        ]
        if let probe = io_uring_get_probe_ring(ring.pointer) {
            defer { io_uring_free_probe(probe) }
            for (opcode, name) in required where io_uring_opcode_supported(probe, Int32(opcode)) == 0 {
                return .failure(URingUnavailable(reason: "io_uring lacks opcode \(name)"))
            }
        }
        let files = io_uring_register_files_sparse(ring.pointer, 4)
        guard files == 0 else {
            return .failure(URingUnavailable(reason: "sparse fixed-file table failed: \(SystemError.name(of: -files))"))
        }
        do {
            let buffers = try BufferRing(ring: ring, groupID: 7, count: 4, sizeBytes: 64)
            defer { buffers.unregister(ring: ring) }
            var messageRing = false
            if let probe = io_uring_get_probe_ring(ring.pointer) {
                messageRing = io_uring_opcode_supported(probe, Int32(IORING_OP_MSG_RING.rawValue)) != 0
                io_uring_free_probe(probe)
            }
            switch probeMultishot(ring: ring, bufferGroup: 7, disabled: disabled) {
            case .failure(let failure):
                return .failure(failure)
            case .success(let found):
                return .success(URingCapabilities(setupFlags: ring.flags & ~UInt32(IORING_SETUP_CQSIZE),
                                                  multishotReceive: found.multishotReceive, features: ring.features,
                                                  messageRing: messageRing && !disabled.contains(.messageRing),
                                                  peerName: found.peerName && !disabled.contains(.peerName)))
            }
        } catch {
            return .failure(URingUnavailable(reason: "provided buffer rings unavailable: \(error)"))
        }
    }

    /// Accepts one loopback connection with a multishot accept into fixed slot memory, asks
    /// for its peer's address with the socket getsockopt command, and receives one byte on it
    /// with a multishot receive. Returns whether multishot receive and the peer address work.
    private static func probeMultishot(ring: borrowing Ring, bufferGroup: UInt16, disabled: Set<URingFeature>)
        -> Result<(multishotReceive: Bool, peerName: Bool), URingUnavailable>
    {
        let listener: Int32
        do { listener = try Listener.open(host: "127.0.0.1", port: 0, backlog: 4) } catch {
            return .failure(URingUnavailable(reason: "probe listener: \(error)"))
        }
        defer { Glibc.close(listener) }
        var sqe = ring.nextSubmission()
        io_uring_prep_multishot_accept_direct(sqe, listener, nil, nil, 0)
        io_uring_sqe_set_data64(sqe, 1)
        _ = io_uring_submit(ring.pointer)
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { Glibc.close(client) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = Listener.port(of: listener).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return .failure(URingUnavailable(reason: "probe connect failed: \(SystemError.name(of: errno))")) }
        guard let accept = waitOne(ring) else { return .failure(URingUnavailable(reason: "probe accept never completed")) }
        guard accept.result >= 0 else {
            return .failure(URingUnavailable(reason: "multishot accept into the fixed-file table failed: \(SystemError.name(of: -accept.result))"))
        }
        let slot = accept.result
        var peer = sockaddr_in()
        sqe = ring.nextSubmission()
        preparePeerName(sqe, handle: slot, into: &peer)
        io_uring_sqe_set_data64(sqe, 3)
        _ = io_uring_submit(ring.pointer)
        let peerName = waitOne(ring).map { $0.result == Int32(MemoryLayout<sockaddr_in>.size) } ?? false
            && peer.sin_family == sa_family_t(AF_INET)
        if disabled.contains(.multishotReceive) { return .success((false, peerName)) }
        sqe = ring.nextSubmission()
        io_uring_prep_recv_multishot(sqe, slot, nil, 0, 0)
        io_uring_sqe_set_flags(sqe, MYRIAD_IOSQE_FIXED_FILE | MYRIAD_IOSQE_BUFFER_SELECT)
        sqe.pointee.buf_group = bufferGroup
        io_uring_sqe_set_data64(sqe, 2)
        _ = io_uring_submit(ring.pointer)
        var byte: UInt8 = 0x2A
        _ = Glibc.send(client, &byte, 1, Int32(MSG_NOSIGNAL))
        guard let receive = waitOne(ring) else { return .failure(URingUnavailable(reason: "probe receive never completed")) }
        return .success((receive.result == 1 && receive.flags & UInt32(IORING_CQE_F_MORE) != 0, peerName))
    }

    private static func waitOne(_ ring: borrowing Ring) -> (result: Int32, flags: UInt32)? {
        for _ in 0..<100 {
            _ = ring.submitAndWait(waitCount: 1, timeoutNanoseconds: 10_000_000)
            var found: (Int32, UInt32)?
            _ = ring.forEachCompletion { _, result, flags in if found == nil { found = (result, flags) } }
            if let found { return found }
        }
        return nil
    }
}

/// The running kernel's version, from uname.
package struct KernelVersion: Comparable, CustomStringConvertible, Sendable {
    package var major: Int
    package var minor: Int

    package static var current: KernelVersion? {
        var name = utsname()
        guard uname(&name) == 0 else { return nil }
        let release = withUnsafeBytes(of: &name.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return parse(release)
    }

    package static func parse(_ release: String) -> KernelVersion? {
        let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard numbers.count == 2 else { return nil }
        return KernelVersion(major: numbers[0], minor: numbers[1])
    }

    package static func < (lhs: KernelVersion, rhs: KernelVersion) -> Bool {
        (lhs.major, lhs.minor) < (rhs.major, rhs.minor)
    }

    package var description: String { "\(major).\(minor)" }
}

/// The trimmed contents of /proc/sys/`path`, or nil.
package func readSysctl(_ path: String) -> String? {
    let fd = open("/proc/sys/" + path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { Glibc.close(fd) }
    var buffer = [UInt8](repeating: 0, count: 256)
    let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 256) }
    guard count > 0 else { return nil }
    return String(decoding: buffer[..<count], as: UTF8.self).trimmingCharacters(in: " \n\t")
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var view = Substring(self)
        while let first = view.first, set.contains(first) { view = view.dropFirst() }
        while let last = view.last, set.contains(last) { view = view.dropLast() }
        return String(view)
    }
}
