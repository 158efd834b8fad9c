import Glibc

/// Wakes the client's thread from poll(2): a non-blocking pipe that callers write one byte
/// to and the thread drains. (Glibc's Swift module has no eventfd, and this target takes no
/// C shim.) Writes are coalesced by the shared state (one per batch), so a burst of
/// publishes costs one system call, not one each.
final class NATSWakeSignal: Sendable {
    /// Polled by the client's thread.
    let fd: Int32
    private let writeFD: Int32

    init() {
        var ends: [Int32] = [-1, -1]
        precondition(pipe(&ends) == 0, "pipe failed: \(String(cString: strerror(errno)))")
        for end in ends {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        fd = ends[0]
        writeFD = ends[1]
    }

    func signal() {
        var one: UInt8 = 1
        // EAGAIN means the pipe is full of wake-ups already: the thread will wake anyway.
        _ = write(writeFD, &one, 1)
    }

    /// Clears pending signals (called by the client's thread after poll said readable).
    func drain() {
        var sink = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        _ = withUnsafeMutableBytes(of: &sink) { read(fd, $0.baseAddress, $0.count) }
    }

    deinit {
        close(fd)
        close(writeFD)
    }
}
