import Testing
@testable import Myriad

/// Both backends, for tests that must hold for each.
let allBackends: [BackendChoice] = [.ioUring, .epoll]

/// Every test that runs servers and real sockets is nested in this suite, so they run one at
/// a time: several of them hold 10,000 sockets (the process limit is 20,000), and keep-alive
/// deadlines should not compete with another test's load for the CPU.
@Suite(.serialized) struct Integration {}
