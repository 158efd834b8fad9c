import Foundation
import MyriadTestSupport
import Glibc
import Testing
import WebSocketCodec
@testable import Myriad

extension Integration {
@Suite struct ShutdownTests {
    /// SIGTERM or SIGINT: stop accepting, close 1001 to every connection, wait for the
    /// replies, exit 0 with a final stats line. Every connected client receives the 1001:
    /// ten thousand for SIGTERM, one thousand for SIGINT (the same path, so a cheaper run),
    /// on each backend.
    @Test(arguments: ["io_uring", "epoll"], [Int32(SIGTERM), Int32(SIGINT)])
    func signalClosesEveryConnectionWith1001(backend: String, signal: Int32) throws {
        let server = try ServerProcess(environment: ["MYRIAD_BACKEND": backend, "MYRIAD_WORKERS": "2"])
        let count = signal == SIGTERM ? 10_000 : 1_000
        var clients: [RawClient] = []
        for index in 0..<count {
            let client = try RawClient(port: server.port, source: "127.0.0.\(2 + index % 4)")
            try client.send(RawClient.upgradeRequest())
            clients.append(client)
        }
        for client in clients { #expect(try client.readHead(timeout: 10).hasPrefix("HTTP/1.1 101 ")) }
        server.signal(signal)
        var goingAway = 0
        for client in clients {
            if let close = try client.readMessage(timeout: 10), close.opcode == .close, close.closeCode == 1001 {
                goingAway += 1
                try? client.sendClose(code: 1001)
            }
        }
        #expect(goingAway == count)
        let status = server.waitForExit(seconds: 15)
        #expect(status == 0, "exit status \(String(describing: status)): \(server.output.suffix(2000))")
        let output = server.output
        #expect(output.contains("final stats"), "\(output.suffix(2000))")
        #expect(output.contains("shutdown:\(count)"), "\(output.suffix(2000))")
    }

    /// Peers that never answer the 1001 are closed when MYRIAD_SHUTDOWN_TIMEOUT passes.
    @Test func unansweredClosesEndAtTheShutdownTimeout() throws {
        let server = try ServerProcess(environment: ["MYRIAD_SHUTDOWN_TIMEOUT": "1s", "MYRIAD_CLOSE_TIMEOUT": "30s"])
        let silent = try RawClient(port: server.port)
        try silent.upgrade()
        let started = Date()
        server.signal(SIGTERM)
        let status = server.waitForExit(seconds: 10)
        #expect(status == 0)
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(silent.waitForClose(timeout: 2))
    }
}
}
