import CLibURing
import Glibc

/// The epoll backend: ordinary non-blocking file descriptors, level-triggered readiness, one
/// receive buffer shared by every connection of the worker. It produces the same completions
/// as `URingBackend`, so the connection logic above it is identical: it is both the baseline
/// the io_uring backend is measured against and the fallback where io_uring is unavailable.
///
/// Level-triggered, because one `read` per readiness event is then enough (edge-triggered
/// needs a read until EAGAIN, one extra system call per event) and a listener or socket with
/// work left is simply reported again. Writes go out at once with `send(MSG_DONTWAIT)`; only
/// when the socket buffer is full does the connection wait for EPOLLOUT. The engine keeps at
/// most one send in flight per connection in one contiguous buffer, so a single `send` is
/// what `writev` would do here.
///
/// Its ceiling is the process fd limit: every connection is a descriptor.
///
/// epoll_ctl can fail (ENOMEM, ENOSPC from `fs.epoll.max_user_watches`): each failure is
/// counted and reported to the worker's log, and costs at most the one connection it was
/// about (a send that cannot wait for EPOLLOUT fails with EIO); the listener is watched again
/// a tick later.
final class EpollBackend: IOBackend {
    static var name: String { "epoll" }
    var multishotReceive: Bool { true }

    let epoll: Int32
    let listener: Int32
    let waker: Waker
    private var listenerRegistered = false
    private var listenerOpen = true
    private let readBuffer: UnsafeMutableRawBufferPointer
    private let events: UnsafeMutablePointer<epoll_event>
    private let eventCapacity: Int32 = 512
    /// Per descriptor, the tag of its receive (0: not registered): 8 bytes, the one thing
    /// every idle connection needs. Indexed by fd, in an anonymous mapping that starts at
    /// 1,024 entries and doubles with `mremap` (no copy, nothing touched) to hold the highest
    /// descriptor seen. Only the pages of descriptors actually used become resident, so a
    /// worker's memory follows its connections, not the table's capacity nor RLIMIT_NOFILE
    /// (which may be 2^30 under LimitNOFILE=infinity).
    private var descriptors: UnsafeMutablePointer<UInt64>
    private var descriptorCapacity: Int
    /// Sends waiting for EPOLLOUT, by descriptor: only sockets whose buffer is full have one,
    /// so they stay out of the per-descriptor table (which was 32 B per descriptor with them).
    private var waitingSends: [Int32: WaitingSend] = [:]
    /// Completions produced outside the kernel (sends that finished at once, closes,
    /// cancels), delivered at the start of the next poll so callbacks never nest.
    private var ready: [ReadyCompletion] = []
    private(set) var waitCount = 0
    private(set) var syscallCount = 0
    private(set) var kernelErrorCount = 0
    private(set) var lastKernelError: String?
    var overflowCount: Int { 0 }
    var droppedCompletionCount: Int { 0 }
    var spilledSubmissionCount: Int { 0 }
    var ringCount: Int { 0 }
    var receiveBufferBytes: Int { readBuffer.count }
    /// One read buffer serves every connection: nothing to give back.
    func trimMemory(pageBytes: Int) -> Int { 0 }
    var holdsMemoryToTrim: Bool { false }

    static let initialDescriptorCapacity = 1024

    private struct WaitingSend {
        var tag: UserData
        var bytes: UnsafeRawBufferPointer
    }

    private enum ReadyCompletion {
        case sent(UserData, Int32)
        case receiveEnded(UserData, Int32)
        case done(UserData, Int32)
    }

    init(config: Config, listener: Int32, waker: Waker) throws(SystemError) {
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw SystemError("epoll_create1", errno: errno) }
        self.listener = listener
        self.waker = waker
        readBuffer = .allocate(byteCount: Int(config.bufferSizeBytes), alignment: 64)
        events = .allocate(capacity: Int(eventCapacity))
        descriptorCapacity = Self.initialDescriptorCapacity
        guard let table = mmap(nil, descriptorCapacity * MemoryLayout<UInt64>.stride, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0), table != MAP_FAILED else {
            throw SystemError("mmap(epoll descriptor table)", errno: errno)
        }
        // Fresh anonymous pages read as zero: every entry starts unregistered.
        descriptors = table.bindMemory(to: UInt64.self, capacity: descriptorCapacity)
        ready.reserveCapacity(4096)
        waitingSends.reserveCapacity(256)
        try control(EPOLL_CTL_ADD, waker.fileDescriptor, events: EPOLLIN.rawValue)
    }

    deinit {
        Glibc.close(epoll)
        if listenerOpen { Glibc.close(listener) }
        readBuffer.deallocate()
        events.deallocate()
        munmap(descriptors, descriptorCapacity * MemoryLayout<UInt64>.stride)
    }

    /// The receive tag of `fd`, growing the table to hold it. Nil only if the table cannot
    /// grow (address space exhausted): the caller fails that one operation.
    @inline(__always)
    private func receiveTag(_ fd: Int32) -> UnsafeMutablePointer<UInt64>? {
        precondition(fd >= 0)
        if Int(fd) >= descriptorCapacity && !grow(toHold: Int(fd)) { return nil }
        return descriptors + Int(fd)
    }

    /// The receive tag of `fd` if the table already holds it (readiness for a descriptor
    /// past the table was never registered here).
    @inline(__always)
    private func existingReceiveTag(_ fd: Int32) -> UnsafeMutablePointer<UInt64>? {
        Int(fd) < descriptorCapacity ? descriptors + Int(fd) : nil
    }

    private func grow(toHold fd: Int) -> Bool {
        var capacity = descriptorCapacity
        while capacity <= fd { capacity *= 2 }
        let stride = MemoryLayout<UInt64>.stride
        // The kernel moves the page tables; the new tail is fresh zero pages, untouched.
        guard let grown = myriad_mremap_grow(descriptors, UInt(descriptorCapacity * stride), UInt(capacity * stride)),
              grown != MAP_FAILED
        else {
            kernelErrorCount += 1
            lastKernelError = "mremap(epoll descriptor table to \(capacity) entries): \(SystemError.name(of: errno))"
            return false
        }
        descriptors = grown.bindMemory(to: UInt64.self, capacity: capacity)
        descriptorCapacity = capacity
        return true
    }

    /// Entries the table holds now (it grows with the highest descriptor seen).
    var descriptorTableCapacity: Int { descriptorCapacity }

    private func control(_ operation: Int32, _ fd: Int32, events mask: UInt32) throws(SystemError) {
        var event = epoll_event()
        event.events = mask
        event.data.u64 = UInt64(UInt32(bitPattern: fd))
        syscallCount += 1
        guard epoll_ctl(epoll, operation, fd, &event) == 0 else { throw SystemError("epoll_ctl", errno: errno) }
    }

    /// epoll_ctl for an operation whose failure the engine survives: counted and reported
    /// (the worker logs it); returns whether it worked.
    @discardableResult
    private func controlOrNote(_ operation: Int32, _ fd: Int32, events mask: UInt32, _ what: String) -> Bool {
        do {
            try control(operation, fd, events: mask)
            return true
        } catch {
            kernelErrorCount += 1
            lastKernelError = "epoll_ctl(\(what)) on fd \(fd): \(SystemError.name(of: error.errno))"
            return false
        }
    }

    func armAccept() -> Bool {
        guard listenerOpen, !listenerRegistered else { return true }
        // ENOSPC (fs.epoll.max_user_watches) or ENOMEM: the worker tries again a tick later.
        listenerRegistered = controlOrNote(EPOLL_CTL_ADD, listener, events: EPOLLIN.rawValue, "add the listener")
        return listenerRegistered
    }

    func stopAccepting() {
        guard listenerOpen else { return }
        Glibc.close(listener)  // also leaves the epoll set
        syscallCount += 1
        listenerOpen = false
        listenerRegistered = false
    }

    func armReceive(handle: Int32, tag: UserData) {
        guard let receive = receiveTag(handle) else {
            ready.append(.receiveEnded(tag, -ENOMEM))
            return
        }
        let wasRegistered = receive.pointee != 0
        receive.pointee = tag.rawValue
        if !wasRegistered {
            do throws(SystemError) {
                try control(EPOLL_CTL_ADD, handle, events: EPOLLIN.rawValue | EPOLLRDHUP.rawValue)
            } catch {
                receive.pointee = 0
                ready.append(.receiveEnded(tag, -error.errno))
            }
        }
    }

    func send(handle: Int32, bytes: UnsafeRawBufferPointer, tag: UserData) {
        syscallCount += 1
        let written = Glibc.send(handle, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
        if written >= 0 {
            ready.append(.sent(tag, Int32(written)))
        } else if errno == EAGAIN {
            // Wait for EPOLLOUT; if epoll will not watch for it, the send fails (and the
            // connection with it) instead of waiting forever.
            guard controlOrNote(EPOLL_CTL_MOD, handle, events: EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLOUT.rawValue,
                                "wait for EPOLLOUT")
            else {
                ready.append(.sent(tag, -EIO))
                return
            }
            assert(waitingSends[handle] == nil, "one send in flight per connection")
            waitingSends[handle] = WaitingSend(tag: tag, bytes: bytes)
        } else {
            ready.append(.sent(tag, -errno))
        }
    }

    func cancel(_ target: UserData, handle: Int32, tag: UserData) {
        var found = false
        switch target.operation {
        case .receive:
            if let receive = existingReceiveTag(handle), receive.pointee == target.rawValue {
                found = true
                receive.pointee = 0
                // The close that follows removes it from the set anyway.
                controlOrNote(EPOLL_CTL_DEL, handle, events: 0, "remove a cancelled receive")
                ready.append(.receiveEnded(target, -ECANCELED))
            }
        case .send:
            if let waiting = waitingSends[handle], waiting.tag == target {
                found = true
                waitingSends[handle] = nil
                ready.append(.sent(target, -ECANCELED))
            }
        default:
            break
        }
        ready.append(.done(tag, found ? 0 : -ENOENT))
    }

    func close(handle: Int32, tag: UserData) {
        closeDescriptor(handle)
        ready.append(.done(tag, 0))
    }

    func closeUnowned(handle: Int32) {
        closeDescriptor(handle)
    }

    // The client role runs on io_uring (and in the simulation) only: a load generator on epoll
    // would measure a second client, not the engine.
    func openClientSocket(handle: Int32, source: UInt32) -> Int32 { -EOPNOTSUPP }
    func connect(handle: Int32, to address: UnsafePointer<sockaddr_in>, tag: UserData) {
        preconditionFailure("the epoll backend has no client role")
    }

    func requestPeerAddress(handle: Int32, into address: UnsafeMutablePointer<sockaddr_in>, tag: UserData) -> PeerAddressRequest {
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        syscallCount += 1
        let result = address.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(handle, $0, &length) }
        return result == 0 ? .known : .unavailable
    }

    private func closeDescriptor(_ fd: Int32) {
        existingReceiveTag(fd)?.pointee = 0
        // The engine cancels a waiting send before it closes; drop one left anyway, since
        // the descriptor number will be reused.
        waitingSends[fd] = nil
        syscallCount += 1
        Glibc.close(fd)  // leaves the epoll set with it
    }

    func submit() {}

    func poll<Sink: CompletionSink>(timeoutNanoseconds: Int64?, sink: Sink) {
        // Completions delivered here may have given the worker work (a flush, a close):
        // then look at the kernel without sleeping, and let the loop run.
        let deliveredEarly = deliverReady(sink)
        let timeout: Int32
        if deliveredEarly || !ready.isEmpty {
            timeout = 0
        } else if let timeoutNanoseconds {
            timeout = Int32(clamping: (timeoutNanoseconds + 999_999) / 1_000_000)
        } else {
            timeout = -1
        }
        let count = epoll_wait(epoll, events, eventCapacity, timeout)
        waitCount += 1
        guard count > 0 else { return }
        for index in 0..<Int(count) {
            let fd = Int32(truncatingIfNeeded: events[index].data.u64)
            let mask = events[index].events
            if fd == listener && listenerOpen {
                acceptReady(sink)
            } else if fd == waker.fileDescriptor {
                var value: UInt64 = 0
                _ = read(fd, &value, 8)
                sink.woken()
            } else {
                if mask & EPOLLOUT.rawValue != 0 { writeReady(fd) }
                if mask & (EPOLLIN.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue | EPOLLRDHUP.rawValue) != 0 {
                    readReady(fd, sink)
                }
            }
        }
        deliverReady(sink)
    }

    @discardableResult
    private func deliverReady<Sink: CompletionSink>(_ sink: Sink) -> Bool {
        guard !ready.isEmpty else { return false }
        var index = 0
        // Delivering may queue more (a close after an error); drain until empty.
        while index < ready.count {
            switch ready[index] {
            case .sent(let tag, let result): sink.sent(tag, result: result)
            case .receiveEnded(let tag, let result): sink.receiveEnded(tag, result: result)
            case .done(let tag, let result): sink.operationDone(tag, result: result)
            }
            index += 1
        }
        ready.removeAll(keepingCapacity: true)
        return true
    }

    private func acceptReady<Sink: CompletionSink>(_ sink: Sink) {
        // Bounded per wake-up so one busy listener cannot starve the connections.
        for _ in 0..<256 {
            syscallCount += 1
            let fd = myriad_accept4(listener, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
            if fd >= 0 {
                sink.accepted(handle: fd)
                continue
            }
            let error = errno
            if error == EAGAIN || error == EINTR || error == ECONNABORTED { return }
            // EMFILE, ENFILE, ENOMEM, ENOBUFS: the connection stays in the backlog and the
            // listener stays readable. Stop watching it so the loop does not spin; the
            // worker re-arms a tick later.
            if controlOrNote(EPOLL_CTL_DEL, listener, events: 0, "pause the listener") {
                listenerRegistered = false
            }
            sink.acceptEnded(result: -error, retryNow: false)
            return
        }
    }

    private func readReady<Sink: CompletionSink>(_ fd: Int32, _ sink: Sink) {
        guard let receive = existingReceiveTag(fd) else { return }
        let tagValue = receive.pointee
        guard tagValue != 0 else { return }
        let tag = UserData(rawValue: tagValue)
        syscallCount += 1
        let count = read(fd, readBuffer.baseAddress, readBuffer.count)
        if count > 0 {
            sink.received(tag, bytes: UnsafeMutableRawBufferPointer(rebasing: readBuffer[..<count]), more: true)
            return
        }
        if count < 0 && (errno == EAGAIN || errno == EINTR) { return }
        let result: Int32 = count == 0 ? 0 : -errno
        receive.pointee = 0
        // Until the worker closes the descriptor, a failed removal only means more readiness
        // reports for a receive that is over, which are ignored (its tag is 0).
        controlOrNote(EPOLL_CTL_DEL, fd, events: 0, "remove an ended receive")
        sink.receiveEnded(tag, result: result)
    }

    private func writeReady(_ fd: Int32) {
        guard let pending = waitingSends[fd] else { return }
        syscallCount += 1
        let written = Glibc.send(fd, pending.bytes.baseAddress, pending.bytes.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
        if written < 0 && errno == EAGAIN { return }
        let result = written >= 0 ? Int32(written) : -errno
        waitingSends[fd] = nil
        controlOrNote(EPOLL_CTL_MOD, fd, events: EPOLLIN.rawValue | EPOLLRDHUP.rawValue, "stop waiting for EPOLLOUT")
        ready.append(.sent(pending.tag, result))
    }
}
