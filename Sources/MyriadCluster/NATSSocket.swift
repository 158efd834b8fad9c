import Glibc

/// The few socket calls the client's thread makes: resolve, non-blocking connect, send,
/// receive, close. Plain Glibc, no Foundation: the client's I/O path allocates nothing here.
enum NATSSocket {
    /// One resolved address, copied out of getaddrinfo's list.
    struct Address {
        var storage = sockaddr_storage()
        var length: socklen_t = 0
        var family: Int32 = 0
    }

    /// Every TCP address of `host:port` (getaddrinfo; numeric hosts need no DNS).
    static func resolve(host: String, port: UInt16) -> Result<[Address], NATSSocketError> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_protocol = Int32(IPPROTO_TCP)
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            let reason = status == 0 ? "no address" : String(cString: gai_strerror(status))
            return .failure(NATSSocketError(operation: "resolve \(host)", reason: reason))
        }
        defer { freeaddrinfo(list) }
        var addresses: [Address] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            if let sockaddrPointer = entry.pointee.ai_addr, Int(entry.pointee.ai_addrlen) <= MemoryLayout<sockaddr_storage>.size {
                var address = Address()
                address.length = entry.pointee.ai_addrlen
                address.family = entry.pointee.ai_family
                withUnsafeMutableBytes(of: &address.storage) { destination in
                    destination.copyMemory(from: UnsafeRawBufferPointer(start: sockaddrPointer, count: Int(entry.pointee.ai_addrlen)))
                }
                addresses.append(address)
            }
            cursor = entry.pointee.ai_next
        }
        return addresses.isEmpty ? .failure(NATSSocketError(operation: "resolve \(host)", reason: "no address")) : .success(addresses)
    }

    /// A non-blocking TCP socket with TCP_NODELAY (the client batches its own writes), and
    /// its connect started. Returns the descriptor and whether the connect is still running.
    static func startConnect(_ address: Address) -> Result<(fd: Int32, inProgress: Bool), NATSSocketError> {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(.errno("socket")) }
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var storage = address.storage
        let status = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, address.length) }
        }
        if status == 0 { return .success((fd, false)) }
        if errno == EINPROGRESS { return .success((fd, true)) }
        let failure = NATSSocketError.errno("connect")
        close(fd)
        return .failure(failure)
    }

    /// After POLLOUT on a connecting socket: nil when connected, else why not.
    static func connectResult(_ fd: Int32) -> NATSSocketError? {
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 else { return .errno("getsockopt") }
        return error == 0 ? nil : NATSSocketError(operation: "connect", reason: String(cString: strerror(error)))
    }

    enum IOResult {
        case bytes(Int)
        case wouldBlock
        case closed
        case failed(NATSSocketError)
    }

    static func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> IOResult {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return .bytes(0) }
        while true {
            let sent = Glibc.send(fd, base, bytes.count, Int32(MSG_NOSIGNAL))
            if sent >= 0 { return .bytes(sent) }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: return .failed(.errno("send"))
            }
        }
    }

    static func receive(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        while true {
            let received = recv(fd, buffer.baseAddress, buffer.count, 0)
            if received > 0 { return .bytes(received) }
            if received == 0 { return .closed }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: return .failed(.errno("recv"))
            }
        }
    }
}

struct NATSSocketError: Error, Equatable, CustomStringConvertible {
    let operation: String
    let reason: String

    static func errno(_ operation: String) -> NATSSocketError {
        NATSSocketError(operation: operation, reason: String(cString: strerror(Glibc.errno)))
    }

    var description: String { "\(operation): \(reason)" }
}

/// Milliseconds on the monotonic clock: deadlines that wall-clock changes cannot move.
func monotonicMilliseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000 + Int64(now.tv_nsec) / 1_000_000
}
