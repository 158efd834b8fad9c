import CLibURing
import Glibc
import Testing
@_spi(Benchmarks) @testable import Myriad

@Suite struct EpollBackendTests {
    /// Issue 12, defect 4: the epoll backend's per-descriptor tables were allocated and
    /// initialised for RLIMIT_NOFILE entries per worker at start-up (32 MiB per worker at
    /// 1,048,576; death at start under LimitNOFILE=infinity). They now start at 1,024 entries
    /// and grow with the highest descriptor actually seen. Since issue 15 an entry is 8 B (the
    /// receive tag; a send waiting for EPOLLOUT lives apart) and the table grows by `mremap`,
    /// so only the pages of descriptors in use are resident.
    @Test func theDescriptorTableFollowsTheDescriptorsNotTheLimit() throws {
        let listener = try Listener.open(host: "127.0.0.1", port: 0, backlog: 4)
        let eventFD = eventfd(0, Int32(EFD_CLOEXEC) | Int32(EFD_NONBLOCK))
        defer { close(eventFD) }
        let backend = try EpollBackend(config: Config(), listener: listener, waker: Waker(fileDescriptor: eventFD))
        #expect(backend.descriptorTableCapacity == EpollBackend.initialDescriptorCapacity)
        #expect(backend.descriptorTableCapacity < FileLimit.current().soft)
        // A socket at a high descriptor number grows the table to hold it, and only that far.
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let high: Int32 = 5000
        #expect(dup2(socketFD, high) == high)
        close(socketFD)
        defer { close(high) }
        backend.armReceive(handle: high, tag: UserData(.receive, slot: 1, generation: 1))
        #expect(backend.descriptorTableCapacity == 8192)
    }
}
