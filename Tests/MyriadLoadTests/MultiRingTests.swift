import CLibURing
import Foundation
import Glibc
import MyriadTestSupport
import Testing
@testable import Myriad
@testable import MyriadLoad

/// `ClientRings` on its own: one thread, three rings, the thread asleep in ring 0.
@Suite struct ClientRingsTests {
    /// A completion on ring 2, caused by another thread while this one sleeps in ring 0 with a
    /// 5 s timeout, wakes it at once (the eventfd ring 2 signals), and comes back with ring 2.
    /// With DEFER_TASKRUN (the kernel queues the work for ring 2 and signals) and without it
    /// (the kernel posts the completion and signals).
    @Test(arguments: [false, true])
    func anotherRingsCompletionWakesTheThread(withoutDeferTaskrun: Bool) throws {
        let rings = try ClientRings(tableSizes: [4, 4, 3], buffers: .init(count: 8, sizeBytes: 256),
                                    disabled: withoutDeferTaskrun ? [.deferTaskrun] : [])
        #expect(rings.count == 3)
        #expect(rings.defersTaskWork == !withoutDeferTaskrun)
        #expect(rings.flags & UInt32(IORING_SETUP_TASKRUN_FLAG) != 0)
        var pair: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        defer { close(pair[1]) }
        let slot: UInt32 = 9
        #expect(rings.unit(of: slot).index == 2)
        #expect(rings.fileIndex(slot) == 1)
        #expect(rings.install(pair[0], slot: slot) == 1)
        close(pair[0])
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 8)
        defer { buffer.deallocate() }
        let sqe = rings.submission(for: slot)
        io_uring_prep_recv(sqe, rings.fileIndex(slot), buffer, 64, 0)
        io_uring_sqe_set_flags(sqe, MYRIAD_IOSQE_FIXED_FILE)
        io_uring_sqe_set_data64(sqe, 42)

        // Nothing to receive yet: the thread sleeps the whole timeout and gets nothing.
        var seen: [(ring: Int, tag: UInt64, result: Int32)] = []
        var started = monotonicNanoseconds()
        rings.poll(timeoutNanoseconds: 100_000_000) { unit, tag, result, _ in seen.append((unit.index, tag, result)) }
        #expect(seen.isEmpty)
        #expect(monotonicNanoseconds() - started >= 90_000_000)
        #expect(rings.waitCount == 1)

        // Another thread writes in 200 ms: ring 2's receive completes and wakes this one.
        let peer = pair[1]
        let writer = Thread {
            usleep(200_000)
            _ = write(peer, "hello", 5)
        }
        writer.start()
        started = monotonicNanoseconds()
        while seen.isEmpty && monotonicNanoseconds() - started < 5_000_000_000 {
            rings.poll(timeoutNanoseconds: 5_000_000_000) { unit, tag, result, _ in seen.append((unit.index, tag, result)) }
        }
        let elapsed = monotonicNanoseconds() - started
        #expect(seen.count == 1)
        #expect(seen.first?.ring == 2 && seen.first?.tag == 42 && seen.first?.result == 5)
        #expect(elapsed < 2_000_000_000, "woke after \(elapsed / 1_000_000) ms: the other ring's work did not wake the thread")
        #expect(String(decoding: UnsafeRawBufferPointer(start: buffer, count: 5), as: UTF8.self) == "hello")
        // A few waits, not a spin: the eventfd read is re-armed and drained.
        #expect(rings.waitCount <= 4, "\(rings.waitCount) waits")
        // Idle again: the next poll sleeps its timeout (the wake read does not stay ready).
        started = monotonicNanoseconds()
        for _ in 0..<3 {
            rings.poll(timeoutNanoseconds: 50_000_000) { unit, tag, result, _ in seen.append((unit.index, tag, result)) }
        }
        #expect(seen.count == 1)
        #expect(monotonicNanoseconds() - started >= 100_000_000, "polls returned early: a wake-up that stays ready")
    }

    /// One ring: no eventfd, and the ring is the wait.
    @Test func oneRingWaitsOnItself() throws {
        let rings = try ClientRings(tableSizes: [16], buffers: .init(count: 8, sizeBytes: 256))
        #expect(rings.count == 1)
        let sqe = rings.submission(for: 3)
        io_uring_prep_nop(sqe)
        io_uring_sqe_set_data64(sqe, 7)
        var tags: [UInt64] = []
        rings.poll(timeoutNanoseconds: 1_000_000_000) { _, tag, _, _ in tags.append(tag) }
        #expect(tags == [7])
    }
}

extension EndToEndTests {
    /// `myriad load` with several rings on one thread: `fixedFilesPerRing` (the
    /// MYRIAD_LOAD_FIXED_FILES_PER_RING of the binary) caps each ring's table, so 1,000
    /// connections on one thread run 5 rings of 200. Every mode, and the fallback without
    /// DEFER_TASKRUN.
    @Suite struct ClientMultiRingTests {
        func options(_ mode: LoadMode, port: UInt16, _ configure: (inout LoadOptions) -> Void = { _ in }) -> LoadOptions {
            var options = LoadOptions()
            options.mode = mode
            options.port = port
            options.threads = 1
            options.connections = 1000
            options.fixedFilesPerRing = 200
            options.timeLimitMilliseconds = 60_000
            configure(&options)
            return options
        }

        /// Connect, upgrade, hold answering the server's pings, echo one message each and close
        /// cleanly, on every ring of the thread.
        @Test(arguments: [false, true])
        func holdAndVerifyOnFiveRingsOfOneThread(withoutDeferTaskrun: Bool) throws {
            let server = try TestServer {
                $0.pingIntervalMilliseconds = 300
                $0.pongTimeoutMilliseconds = 1000
            }
            defer { server.stop() }
            let summary = try LoadGenerator.run(options(.hold, port: server.port) {
                $0.durationMilliseconds = 1500
                $0.verifyEcho = true
                if withoutDeferTaskrun { $0.disabledRingFeatures = [.deferTaskrun] }
            })
            #expect(summary.succeeded, Comment(rawValue: summary.json))
            #expect(summary.threads == 1)
            #expect(summary.rings == 5)
            #expect(summary.connected == 1000)
            #expect(summary.verifyOK == 1000)
            #expect(summary.cleanCloses == 1000)
            #expect(summary.serverPingsAnswered >= 1000)
            #expect(summary.failures.total == 0)
            #expect(server.waitFor { $0[.open] == 0 && $0.closes(.normal) == 1000 })
            #expect(server.stats().closes(.pongTimeout) == 0)
            // The thread slept between events instead of spinning: at most a wait per 50 ms
            // loop timeout plus one per burst, far from a busy loop's hundreds of thousands.
            #expect(summary.waits > 10 && summary.waits < 20_000, "\(summary.waits) waits")
        }

        @Test func pingOnFiveRings() throws {
            let server = try TestServer()
            defer { server.stop() }
            let summary = try LoadGenerator.run(options(.ping, port: server.port) {
                $0.durationMilliseconds = 1500
                $0.pingIntervalMilliseconds = 300
            })
            #expect(summary.succeeded, Comment(rawValue: summary.json))
            #expect(summary.rings == 5)
            #expect(summary.pingsSent >= 1000)
            #expect(summary.pongsReceived == summary.pingsSent)
            #expect(summary.roundTrip.count == UInt64(summary.pongsReceived))
        }

        @Test func echoOnFiveRings() throws {
            let server = try TestServer()
            defer { server.stop() }
            let summary = try LoadGenerator.run(options(.echo, port: server.port) {
                $0.connections = 50
                $0.fixedFilesPerRing = 10
                $0.durationMilliseconds = 1000
                $0.depth = 4
                $0.messageSizeBytes = 300
            })
            #expect(summary.succeeded, Comment(rawValue: summary.json))
            #expect(summary.rings == 5)
            #expect(summary.messagesPerSecond > 0)
            #expect(summary.latency.count > 0)
            #expect(summary.failures.total == 0)
        }

        /// Churn reuses slots (so fixed-file entries) of every ring, over and over.
        @Test func churnOnFourRings() throws {
            let server = try TestServer()
            defer { server.stop() }
            let summary = try LoadGenerator.run(options(.churn, port: server.port) {
                $0.rate = 400
                $0.durationMilliseconds = 1000
                $0.concurrency = 32
                $0.fixedFilesPerRing = 8
            })
            #expect(summary.succeeded, Comment(rawValue: summary.json))
            #expect(summary.rings == 4)
            #expect(summary.connected == 400)
            #expect(summary.cleanCloses == 400)
            #expect(server.waitFor { $0.closes(.normal) == 400 && $0[.open] == 0 })
        }

        @Test func fanoutOnFiveRings() throws {
            let server = try TestServer(workers: 2) { _ in BroadcastHandler() }
            defer { server.stop() }
            let summary = try LoadGenerator.run(options(.fanout, port: server.port) {
                $0.path = "/room"
                $0.publishIntervalMilliseconds = 100
                $0.durationMilliseconds = 1000
            })
            let fanout = try #require(summary.fanout)
            #expect(summary.succeeded, Comment(rawValue: summary.json))
            #expect(summary.rings == 5)
            #expect(fanout.published == 10)
            #expect(fanout.delivered == 10_000)
            #expect(fanout.lost == 0 && fanout.duplicated == 0 && fanout.outOfOrder == 0)
        }

        /// The binary takes the cap from MYRIAD_LOAD_FIXED_FILES_PER_RING and reports the rings.
        @Test func theBinaryReadsTheCapFromTheEnvironment() throws {
            let server = try TestServer()
            defer { server.stop() }
            let result = try LoadBinary.run([
                "hold", "--port", String(server.port), "--connections", "1000", "--threads", "1", "--duration", "1s",
                "--verify-echo", "--time-limit", "40s",
            ], timeout: 50, environment: [LoadOptions.fixedFilesVariable: "200"])
            let json = try #require(result.json, "no JSON summary; stderr: \(result.stderr)")
            #expect(result.status == 0, "stderr: \(result.stderr)\nstdout: \(result.stdout)")
            #expect(json.int("threads") == 1)
            #expect(json.int("rings") == 5)
            #expect(json.object("verify_echo")?.int("ok") == 1000)
            let refused = try LoadBinary.run(["hold", "--port", String(server.port), "--connections", "10"], timeout: 30,
                                             environment: [LoadOptions.fixedFilesVariable: "many"])
            #expect(refused.status == 2, "stderr: \(refused.stderr)")
            #expect(refused.stderr.contains(LoadOptions.fixedFilesVariable))
        }
    }
}
