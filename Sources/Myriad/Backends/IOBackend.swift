import Glibc

/// Where a backend delivers completions: a worker's connection logic. The same calls
/// come from io_uring CQEs and from epoll readiness, so the logic above is identical.
///
/// Both roles sink into it: the engine's server `Worker` (accepts) and the load generator's
/// `ClientWorker` (connects). Each role traps on the other role's callbacks.
package protocol CompletionSink: AnyObject {
    /// A new connection: a fixed-file index (io_uring) or a file descriptor (epoll).
    func accepted(handle: Int32)
    /// The accept stopped: a failure (-errno), or a successful last shot. The worker
    /// re-arms it unless it is shutting down: at once when `retryNow` (the failure consumed
    /// the connection it was about, so retrying cannot spin), otherwise a tick later.
    func acceptEnded(result: Int32, retryNow: Bool)
    /// Bytes for the connection tagged `tag`, valid only during the call. `more` is false
    /// when this was the receive's last completion (re-arm or close).
    func received(_ tag: UserData, bytes: UnsafeMutableRawBufferPointer, more: Bool)
    /// A receive ended without data: 0 at EOF, -errno (-ENOBUFS when receive buffers ran
    /// out, -ECANCELED after a cancel).
    func receiveEnded(_ tag: UserData, result: Int32)
    /// A send completed: bytes sent (possibly fewer than asked) or -errno.
    func sent(_ tag: UserData, result: Int32)
    /// A close or a cancel completed.
    func operationDone(_ tag: UserData, result: Int32)
    /// Another thread asked the worker to look at its shared state (shutdown, its mailbox).
    func woken()
    /// The peer address requested with `requestPeerAddress` was written (result > 0) or not.
    func peerAddressDone(_ tag: UserData, result: Int32)
    /// A connect (client role, `URingBackend.connect`) completed: 0 or -errno.
    func connected(_ tag: UserData, result: Int32)
}

/// What `IOBackend.requestPeerAddress` did.
package enum PeerAddressRequest {
    /// Written already.
    case known
    /// The kernel will write it; `peerAddressDone` follows.
    case requested
    /// This backend or kernel cannot tell.
    case unavailable
}

/// The operations a worker needs from the kernel, one implementation per mechanism.
///
/// A worker is generic over its backend, so every call below is specialised and direct.
/// Methods only queue work; `poll` submits it, waits, and delivers completions. Every
/// operation tagged with a `UserData` produces exactly one final completion carrying that tag.
package protocol IOBackend: AnyObject {
    /// Name for logs: "io_uring" or "epoll".
    static var name: String { get }
    /// False when receives are single-shot and re-armed after every completion.
    var multishotReceive: Bool { get }
    /// Starts accepting (again); false when the kernel refused (the worker retries later).
    func armAccept() -> Bool
    func stopAccepting()
    func armReceive(handle: Int32, tag: UserData)
    func send(handle: Int32, bytes: UnsafeRawBufferPointer, tag: UserData)
    /// Cancels the operation tagged `target` (a receive or a send) on `handle`; the target
    /// then completes with -ECANCELED (or its own result if it finished first). The cancel
    /// itself completes with 0, or -ENOENT when the target was already gone.
    func cancel(_ target: UserData, handle: Int32, tag: UserData)
    func close(handle: Int32, tag: UserData)
    /// Closes a connection that never got a slot (accepted while full or shutting down).
    func closeUnowned(handle: Int32)
    /// Has the peer's IPv4 address written to `address` (which must stay valid until
    /// `peerAddressDone` when the answer is `.requested`).
    func requestPeerAddress(handle: Int32, into address: UnsafeMutablePointer<sockaddr_in>, tag: UserData) -> PeerAddressRequest
    /// The client role: opens a TCP socket bound to `source` (an IPv4 address, host order;
    /// the port is picked at connect time, per destination) and puts it where `handle` says,
    /// replacing nothing (the handle's previous socket was closed). 0, or -errno.
    func openClientSocket(handle: Int32, source: UInt32) -> Int32
    /// The client role: connects the socket at `handle` to `address` (valid until the
    /// completion); `CompletionSink.connected` follows, and a cancel may end it.
    func connect(handle: Int32, to address: UnsafePointer<sockaddr_in>, tag: UserData)
    /// Submits what is queued, waits up to `timeoutNanoseconds` (nil: until something
    /// happens) and delivers every available completion to `sink`.
    func poll<Sink: CompletionSink>(timeoutNanoseconds: Int64?, sink: Sink)
    /// Submits what is queued without waiting.
    func submit()
    /// Blocking waits so far (io_uring_enter or epoll_wait).
    var waitCount: Int { get }
    /// Other system calls so far (epoll: accept4, read, send, epoll_ctl, close; io_uring:
    /// extra enters to flush a full SQ or an overflowed CQ).
    var syscallCount: Int { get }
    /// Times the kernel reported a CQ overflow (io_uring only).
    var overflowCount: Int { get }
    /// Calls into the kernel's I/O interface that failed unexpectedly and were survived
    /// (io_uring_enter errors, epoll_ctl failures), and the latest one, for the log.
    var kernelErrorCount: Int { get }
    var lastKernelError: String? { get }
    /// Completions the kernel reported lost (io_uring's -EBADR).
    var droppedCompletionCount: Int { get }
    /// SQEs that had to wait in user space because the kernel would not take the full SQ.
    var spilledSubmissionCount: Int { get }
    /// Rings (io_uring) the worker runs; 0 for epoll.
    var ringCount: Int { get }
    /// Receive memory written since it was last given back (io_uring: the buffer rings'
    /// written buffers; epoll: its one read buffer).
    var receiveBufferBytes: Int { get }
    /// Gives back receive memory a burst left behind (`BufferRing.trim`); called once a second
    /// outside completion handling. Returns the bytes given back.
    func trimMemory(pageBytes: Int) -> Int
    /// Whether `trimMemory` would give something back later without traffic.
    var holdsMemoryToTrim: Bool { get }
    /// The worker's clock, in nanoseconds: CLOCK_MONOTONIC for the kernel's backends, a
    /// virtual clock for the simulation's (`Simulation/SimulatedBackend.swift`), so every
    /// deadline the worker sets follows the backend's time.
    var clockNanoseconds: Int64 { get }
}

extension IOBackend {
    @inline(__always)
    package var clockNanoseconds: Int64 { monotonicNanoseconds() }
}

/// Wakes a sleeping worker from another thread (an eventfd the worker reads).
package struct Waker: Sendable {
    package let fileDescriptor: Int32

    package init(fileDescriptor: Int32) { self.fileDescriptor = fileDescriptor }

    package func wake() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(fileDescriptor, $0.baseAddress, 8) }
    }
}

