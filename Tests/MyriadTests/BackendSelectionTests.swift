import Foundation
import MyriadTestSupport
import Glibc
import Testing
@testable import Myriad
import NATSTestSupport

/// MYRIAD_BACKEND=auto falls back to epoll, with the reason, where io_uring cannot be used;
/// MYRIAD_BACKEND=io_uring refuses to start there. "There" is a child process whose seccomp
/// filter makes io_uring_setup fail with EPERM, as Docker's default profile does.
extension Integration {
@Suite struct BackendSelectionTests {
    static var launcher: String { ExternalClient.syscallFault }

    @Test func probeSucceedsOnThisKernel() throws {
        guard case .success(let capabilities) = URingBackend.probe(disabled: []) else {
            Issue.record("io_uring unavailable on the test machine")
            return
        }
        #expect(capabilities.multishotReceive)
        #expect(capabilities.deferTaskrun)
        guard case .success(let fallback) = URingBackend.probe(disabled: [.multishotReceive, .deferTaskrun]) else {
            Issue.record("probe with features disabled failed")
            return
        }
        #expect(!fallback.multishotReceive && !fallback.deferTaskrun)
    }

    @Test func autoFallsBackToEpollWithTheReason() throws {
        let port = freeLoopbackPort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.launcher)
        process.arguments = ["io_uring_setup:EPERM", "--", ExternalClient.myriadBinary, "serve"]
        process.environment = ["MYRIAD_BACKEND": "auto", "MYRIAD_HOST": "127.0.0.1", "MYRIAD_PORT": String(port),
                               "MYRIAD_WORKERS": "1", "PATH": "/usr/bin:/bin"]
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("myriad-fallback-\(port).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        defer {
            if process.isRunning { kill(process.processIdentifier, SIGTERM); process.waitUntilExit() }
            try? FileManager.default.removeItem(at: log)
        }
        var client: RawClient?
        for _ in 0..<100 where client == nil {
            client = try? RawClient(port: port)
            if client == nil { usleep(50_000) }
        }
        let connected = try #require(client)
        try connected.upgrade()
        try connected.sendText("served by the fallback")
        #expect(try connected.readMessage()?.payload == Array("served by the fallback".utf8))
        let output = try String(contentsOf: log, encoding: .utf8)
        #expect(output.contains("backend: epoll, because io_uring cannot be used here: io_uring_setup failed with EPERM"), "\(output)")
        #expect(output.split(separator: "\n").filter { $0.contains("backend:") }.count == 1, "one log line gives the reason")
    }

    @Test func forcedIOUringExitsWithTheReason() throws {
        let result = try ExternalClient.run(
            Self.launcher, ["io_uring_setup:EPERM", "--", ExternalClient.myriadBinary, "serve"],
            environment: ["MYRIAD_BACKEND": "io_uring", "MYRIAD_HOST": "127.0.0.1", "MYRIAD_PORT": "0"], timeout: 20)
        #expect(result.status != 0)
        #expect(result.output.contains("MYRIAD_BACKEND=io_uring, but io_uring cannot be used here: io_uring_setup failed with EPERM"),
                "\(result.output)")
    }
}
}
