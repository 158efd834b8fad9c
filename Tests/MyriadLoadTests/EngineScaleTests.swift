import Foundation
import MyriadTestSupport
import Glibc
import Testing
@testable import Myriad
@testable import MyriadLoad

extension EndToEndTests {
    /// The engine's own scale properties (issue 3), driven by the real load generator.
    @Suite struct EngineScaleTests {
        /// One server process, 2 workers, 30,000 connections: more than its hard RLIMIT_NOFILE
        /// of 20,000, possible because each worker's ring holds its connections in a fixed-file
        /// table. Every one of them still echoes at the end of the hold.
        @Test(.timeLimit(.minutes(3)))
        func twoWorkersHoldThirtyThousandConnectionsPastTheFdLimit() throws {
            let limit = FileLimit.current()
            let server = try TestServer(workers: 2)
            defer { server.stop() }
            let result = try LoadBinary.run([
                "hold", "--port", String(server.port), "--connections", "30000", "--duration", "3s",
                "--verify-echo", "--time-limit", "100s",
            ], timeout: 110)
            let json = try #require(result.json, "no JSON summary; stderr: \(result.stderr)")
            #expect(result.status == 0, "stderr: \(result.stderr)\nstdout: \(result.stdout)")
            #expect(json.int("peak") == 30000)
            #expect(json.int("connected") == 30000)
            #expect(json.object("verify_echo")?.int("ok") == 30000)
            #expect(json.int("unexpected_closes") == 0)
            #expect(30000 > limit.hard, "the point is to exceed the fd limit (\(limit.hard))")
            #expect(server.waitFor(seconds: 15) { $0[.open] == 0 && $0.closes(.normal) == 30000 })
            let stats = server.stats()
            #expect(stats[.handshakes] == 30000)
            #expect(stats[.acceptENFILE] + stats[.acceptEMFILE] + stats[.acceptRejectedFull] == 0)
        }

        /// 100,000 connect/upgrade/close cycles in four rounds: after each, the slab is empty
        /// again, and the server's memory does not keep growing from round to round.
        @Test(.timeLimit(.minutes(4)))
        func churnLeavesNothingBehind() throws {
            let server = try TestServer(workers: 2)
            defer { server.stop() }
            var residentAfterRound: [Int] = []
            var cycles = 0
            for round in 0..<4 {
                let result = try LoadBinary.run([
                    "churn", "--port", String(server.port), "--rate", "5000", "--duration", "5s",
                    "--time-limit", "50s",
                ], timeout: 60)
                let json = try #require(result.json, "no JSON summary; stderr: \(result.stderr)")
                #expect(result.status == 0, "round \(round): \(result.stderr)\n\(result.stdout)")
                #expect(json.int("failures_total") == 0, "round \(round): \(json["failures"] ?? "")")
                cycles += json.int("connected") ?? 0
                #expect(server.waitFor(seconds: 15) { $0[.open] == 0 }, "round \(round): connections left in the slab")
                #expect(server.stats()[.pooledBytes] == 0, "round \(round): pooled buffers still lent out")
                residentAfterRound.append(residentBytes())
            }
            #expect(cycles >= 100_000, "only \(cycles) cycles")
            #expect(server.stats()[.handshakes] == cycles)
            // The first round grows the slab to its peak and warms the pools; later rounds reuse.
            let growth = residentAfterRound[3] - residentAfterRound[1]
            #expect(growth < 4 << 20, "RSS grew \(growth) bytes between rounds 2 and 4: \(residentAfterRound)")
            print("churn: \(cycles) cycles, RSS after each round (MiB): \(residentAfterRound.map { $0 >> 20 })")
        }
    }
}
