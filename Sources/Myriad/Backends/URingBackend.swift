import CLibURing
import Glibc
import Logging

/// The io_uring backend: one ring per worker, a multishot accept straight into the ring's
/// fixed-file table (so connections never occupy the process fd table), multishot receives
/// that pick buffers from the worker's provided buffer ring, and sends, cancels and closes
/// on fixed files.
///
/// Completion handling follows the rules measured on these machines (docs/architecture.md): every
/// CQE without `IORING_CQE_F_MORE` ends its request and the worker re-arms or closes;
/// `-ENOBUFS` ends a receive because the buffer ring is empty, which is backpressure; CQ
/// overflow is survived because the kernel keeps what it cannot post (`IORING_FEAT_NODROP`)
/// and flushes it on the next enter.
final class URingBackend: IOBackend, RingMessenger {
    static var name: String { "io_uring" }

    let ring: Ring
    let buffers: BufferRing
    let listener: Int32
    let multishotReceive: Bool
    let waker: Waker
    let capabilities: URingCapabilities
    private(set) var waitCount = 0
    private(set) var syscallCount = 0
    private(set) var overflowCount = 0
    private(set) var kernelErrorCount = 0
    private(set) var lastKernelError: String?
    /// Completions the kernel reported dropped (`-EBADR`: it could not even keep them in its
    /// overflow list, under memory pressure).
    private(set) var droppedCompletionCount = 0
    /// Wakes worker N through its eventfd when a ring message to it failed.
    var messageFallback: ((Int) -> Void)?
    var spilledSubmissionCount: Int { ring.spilledTotal }
    private let wakeBuffer: UnsafeMutablePointer<UInt64>
    private var listenerOpen = true

    static let bufferGroup: UInt16 = 0
    /// Receive buffers posted at start; doubled whenever a burst empties the ring.
    static let initiallyPostedBuffers: UInt32 = 64

    /// Creates the ring on the calling thread (the worker's: SINGLE_ISSUER binds it there).
    init(config: Config, capabilities: URingCapabilities, listener: Int32, waker: Waker, fixedFiles: UInt32) throws(SystemError) {
        let completionEntries = config.completionEntries ?? config.ringEntries * 4
        ring = try Ring(entries: config.ringEntries, completionEntries: completionEntries, flags: capabilities.setupFlags)
        let registered = io_uring_register_files_sparse(ring.pointer, fixedFiles)
        guard registered == 0 else {
            throw SystemError("io_uring_register_files_sparse(\(fixedFiles))", errno: -registered)
        }
        // A registered ring fd saves a file lookup per enter; optional (5.18+).
        _ = io_uring_register_ring_fd(ring.pointer)
        buffers = try BufferRing(ring: ring, groupID: Self.bufferGroup, count: config.bufferCount,
                                 sizeBytes: config.bufferSizeBytes, initiallyPosted: Self.initiallyPostedBuffers)
        self.waker = waker
        wakeBuffer = .allocate(capacity: 1)
        self.listener = listener
        multishotReceive = capabilities.multishotReceive
        self.capabilities = capabilities
        armWake()
    }

    deinit {
        buffers.unregister(ring: ring)
        if listenerOpen { Glibc.close(listener) }
        wakeBuffer.deallocate()
    }

    func armAccept() -> Bool {
        guard listenerOpen else { return true }
        let sqe = ring.nextSubmission()
        io_uring_prep_multishot_accept_direct(sqe, listener, nil, nil, 0)
        io_uring_sqe_set_data64(sqe, UserData(.accept, slot: 0, generation: 0).rawValue)
        return true
    }

    func stopAccepting() {
        guard listenerOpen else { return }
        let sqe = ring.nextSubmission()
        io_uring_prep_cancel64(sqe, UserData(.accept, slot: 0, generation: 0).rawValue, 0)
        io_uring_sqe_set_data64(sqe, UserData(.closeOrphan, slot: 0, generation: 0).rawValue)
        _ = io_uring_submit(ring.pointer)
        syscallCount += 1
        // Pending connections in the backlog are reset when the listener goes.
        Glibc.close(listener)
        listenerOpen = false
    }

    @inline(__always)
    func armReceive(handle: Int32, tag: UserData) {
        let sqe = ring.nextSubmission()
        if multishotReceive {
            io_uring_prep_recv_multishot(sqe, handle, nil, 0, 0)
        } else {
            io_uring_prep_recv(sqe, handle, nil, 0, 0)
        }
        io_uring_sqe_set_flags(sqe, MYRIAD_IOSQE_FIXED_FILE | MYRIAD_IOSQE_BUFFER_SELECT)
        sqe.pointee.buf_group = Self.bufferGroup
        io_uring_sqe_set_data64(sqe, tag.rawValue)
    }

    @inline(__always)
    func send(handle: Int32, bytes: UnsafeRawBufferPointer, tag: UserData) {
        let sqe = ring.nextSubmission()
        io_uring_prep_send(sqe, handle, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
        io_uring_sqe_set_flags(sqe, MYRIAD_IOSQE_FIXED_FILE)
        io_uring_sqe_set_data64(sqe, tag.rawValue)
    }

    func cancel(_ target: UserData, handle: Int32, tag: UserData) {
        let sqe = ring.nextSubmission()
        io_uring_prep_cancel64(sqe, target.rawValue, 0)
        io_uring_sqe_set_data64(sqe, tag.rawValue)
    }

    func close(handle: Int32, tag: UserData) {
        let sqe = ring.nextSubmission()
        io_uring_prep_close_direct(sqe, UInt32(handle))
        io_uring_sqe_set_data64(sqe, tag.rawValue)
    }

    func closeUnowned(handle: Int32) {
        close(handle: handle, tag: UserData(.closeOrphan, slot: 0, generation: 0))
    }

    /// SO_PEERNAME through a socket command on the direct descriptor (IORING_OP_URING_CMD,
    /// SOCKET_URING_OP_GETSOCKOPT, kernel 6.7+): a direct descriptor has no getpeername, and a
    /// multishot accept writes every peer's address into the same buffer.
    func requestPeerAddress(handle: Int32, into address: UnsafeMutablePointer<sockaddr_in>, tag: UserData) -> PeerAddressRequest {
        guard capabilities.peerName else { return .unavailable }
        let sqe = ring.nextSubmission()
        Self.preparePeerName(sqe, handle: handle, into: address)
        io_uring_sqe_set_data64(sqe, tag.rawValue)
        return .requested
    }

    /// Fills `sqe` with the socket getsockopt command for SO_PEERNAME. liburing 2.3 and this
    /// system's uapi headers predate the command's fields, so they are written by offset:
    /// cmd_op at 8, level and optname at 16 and 20, optlen at 44, optval at 48.
    static func preparePeerName(_ sqe: UnsafeMutablePointer<io_uring_sqe>, handle: Int32, into address: UnsafeMutablePointer<sockaddr_in>) {
        sqe.initialize(to: io_uring_sqe())
        sqe.pointee.opcode = UInt8(IORING_OP_URING_CMD.rawValue)
        sqe.pointee.fd = handle
        sqe.pointee.flags = UInt8(MYRIAD_IOSQE_FIXED_FILE)
        let raw = UnsafeMutableRawPointer(sqe)
        raw.storeBytes(of: UInt32(2), toByteOffset: 8, as: UInt32.self)  // SOCKET_URING_OP_GETSOCKOPT
        raw.storeBytes(of: UInt32(SOL_SOCKET), toByteOffset: 16, as: UInt32.self)
        raw.storeBytes(of: UInt32(SO_PEERNAME), toByteOffset: 20, as: UInt32.self)
        raw.storeBytes(of: UInt32(MemoryLayout<sockaddr_in>.size), toByteOffset: 44, as: UInt32.self)
        raw.storeBytes(of: UInt64(UInt(bitPattern: address)), toByteOffset: 48, as: UInt64.self)
    }

    /// Wakes another worker from this ring: a message to its ring, posted with this worker's
    /// next submit (no system call of its own). Only a failure produces a CQE here
    /// (CQE_SKIP_SUCCESS); then the target is woken through its eventfd.
    func message(ringFileDescriptor: Int32, targetWorker: Int) -> Bool {
        guard capabilities.messageRing else { return false }
        let sqe = ring.nextSubmission()
        io_uring_prep_msg_ring(sqe, ringFileDescriptor, 0, UserData(.message, slot: 0, generation: 0).rawValue, 0)
        io_uring_sqe_set_flags(sqe, MYRIAD_IOSQE_CQE_SKIP_SUCCESS)
        io_uring_sqe_set_data64(sqe, UserData(.messageFailed, slot: UInt32(targetWorker), generation: 0).rawValue)
        return true
    }

    private func armWake() {
        let sqe = ring.nextSubmission()
        io_uring_prep_read(sqe, waker.fileDescriptor, wakeBuffer, 8, 0)
        io_uring_sqe_set_data64(sqe, UserData(.wake, slot: 0, generation: 0).rawValue)
    }

    func submit() {
        if ring.pendingSubmissions > 0 { _ = io_uring_submit(ring.pointer) }
    }

    func poll<Sink: CompletionSink>(timeoutNanoseconds: Int64?, sink: Sink) {
        let spillEmpty = ring.flushSpill()
        let wanted: UInt32 = ring.readyCompletions > 0 || !spillEmpty ? 0 : 1
        let result = ring.submitAndWait(waitCount: wanted, timeoutNanoseconds: wanted == 0 ? 0 : timeoutNanoseconds)
        waitCount += 1
        if result < 0 { enterFailed(errno: -result) }
        while true {
            if ring.hasOverflow {
                // The kernel holds completions the CQ had no room for; an enter with
                // GETEVENTS moves them in as space allows.
                overflowCount += 1
                syscallCount += 1
                _ = io_uring_get_events(ring.pointer)
            }
            let handled = ring.forEachCompletion { userData, result, flags in
                dispatch(UserData(rawValue: userData), result: result, flags: flags, sink: sink)
            }
            if handled == 0 { break }
        }
        buffers.topUp()
    }

    /// An `io_uring_enter` that failed. Timeouts, signals and a busy kernel are part of
    /// waiting; anything else is counted and logged by the worker, and the loop goes on (a
    /// transient condition must not take a million connections down with the process).
    private func enterFailed(errno: Int32) {
        switch errno {
        case ETIME, EINTR, EBUSY, EAGAIN:
            return
        case EBADR:
            // Completions were lost. The operations they ended are recovered where the worker
            // can tell (a cancel that finds nothing to cancel; see `Worker.operationDone`);
            // every connection keeps its deadlines, so none waits forever.
            droppedCompletionCount += 1
            noteKernelError("io_uring_enter: EBADR: the kernel dropped completions (memory pressure)")
        default:
            noteKernelError("io_uring_enter: \(SystemError.name(of: errno))")
            // A condition that persists must not turn the loop into a busy spin.
            usleep(1000)
        }
    }

    private func noteKernelError(_ description: String) {
        kernelErrorCount += 1
        lastKernelError = description
    }

    @inline(__always)
    private func dispatch<Sink: CompletionSink>(_ tag: UserData, result: Int32, flags: UInt32, sink: Sink) {
        let more = flags & UInt32(IORING_CQE_F_MORE) != 0
        switch tag.operation {
        case .receive:
            if flags & UInt32(IORING_CQE_F_BUFFER) != 0 { buffers.consumed() }
            if result > 0 {
                precondition(flags & UInt32(IORING_CQE_F_BUFFER) != 0, "receive without a provided buffer")
                let bufferID = UInt16(truncatingIfNeeded: flags >> 16)
                sink.received(tag, bytes: buffers.bytes(of: bufferID, count: result), more: more)
                buffers.release(bufferID)
            } else {
                if flags & UInt32(IORING_CQE_F_BUFFER) != 0 {
                    buffers.release(UInt16(truncatingIfNeeded: flags >> 16))
                }
                if result == -ENOBUFS { buffers.grow() }
                sink.receiveEnded(tag, result: result)
            }
        case .send:
            sink.sent(tag, result: result)
        case .accept:
            if result >= 0 { sink.accepted(handle: result) }
            // ENFILE: the kernel took the connection and dropped it for want of a fixed-file
            // slot, so re-arming at once refuses each further one quickly.
            if !more { sink.acceptEnded(result: min(result, 0), retryNow: result >= 0 || result == -ENFILE) }
        case .close, .cancel, .cancelSend, .shutdown:
            sink.operationDone(tag, result: result)
        case .wake:
            sink.woken()
            armWake()
        case .message:
            sink.woken()
        case .messageFailed:
            // The target ring could not take the message (its CQ overflowed): wake it the
            // other way. The failure is counted; the wake-up is not lost.
            noteKernelError("io_uring MSG_RING to worker \(tag.slot): \(SystemError.name(of: -result))")
            if let fallback = messageFallback { fallback(Int(tag.slot)) }
        case .peerName:
            sink.peerAddressDone(tag, result: result)
        case .closeOrphan:
            break
        case nil:
            assertionFailure("completion with an unknown tag \(tag.rawValue)")
        }
    }
}

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
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
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
