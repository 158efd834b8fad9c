import CLibURing
import Foundation
import Glibc
import MyriadTestSupport
import Testing
@_spi(Benchmarks) @testable import Myriad
@testable import MyriadLoad

/// The engine's `URingBackend` in the client role, on its own: no listener, sockets installed at
/// chosen indices, one thread, several rings, the thread asleep in ring 0.
@Suite struct ClientBackendTests {
    /// Records what the backend delivers; a client's sink gets no accept.
    final class Recorder: CompletionSink {
        var events: [(op: String, slot: UInt32, result: Int32, bytes: String)] = []
        func accepted(handle: Int32) { events.append(("accepted", 0, handle, "")) }
        func acceptEnded(result: Int32, retryNow: Bool) { events.append(("acceptEnded", 0, result, "")) }
        func received(_ tag: UserData, bytes: UnsafeMutableRawBufferPointer, more: Bool) {
            events.append(("received", tag.slot, Int32(bytes.count), String(decoding: bytes, as: UTF8.self)))
        }
        func receiveEnded(_ tag: UserData, result: Int32) { events.append(("receiveEnded", tag.slot, result, "")) }
        func sent(_ tag: UserData, result: Int32) { events.append(("sent", tag.slot, result, "")) }
        func operationDone(_ tag: UserData, result: Int32) { events.append(("done", tag.slot, result, "")) }
        func woken() {}
        func peerAddressDone(_ tag: UserData, result: Int32) { events.append(("peerAddress", tag.slot, result, "")) }
        func connected(_ tag: UserData, result: Int32) { events.append(("connected", tag.slot, result, "")) }
    }

    static func backend(rings: [UInt32], disabled: Set<URingFeature> = []) throws -> (URingBackend, Int32) {
        let capabilities = try URingBackend.probe(disabled: disabled).get()
        var config = Config()
        config.bufferCount = 8
        config.bufferSizeBytes = 256
        config.ringEntries = 64
        let wake = eventfd(0, Int32(EFD_CLOEXEC) | Int32(EFD_NONBLOCK))
        let backend = try URingBackend(config: config, capabilities: capabilities, listener: -1,
                                       waker: Waker(fileDescriptor: wake), fixedFilesPerRing: rings, initiallyPostedBuffers: nil)
        return (backend, wake)
    }

    /// A completion on ring 2, caused by another thread while this one sleeps in ring 0 with a
    /// 5 s timeout, wakes it at once (the eventfd ring 2 signals), and arrives in the sink.
    /// With DEFER_TASKRUN (the kernel queues the work for ring 2 and signals) and without it
    /// (the kernel posts the completion and signals).
    @Test(arguments: [false, true])
    func anotherRingsCompletionWakesTheThread(withoutDeferTaskrun: Bool) throws {
        let (backend, wake) = try Self.backend(rings: [4, 4, 3], disabled: withoutDeferTaskrun ? [.deferTaskrun] : [])
        defer { close(wake) }
        #expect(backend.ringCount == 3)
        #expect(backend.units[2].defersTaskWork == !withoutDeferTaskrun)
        var pair: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        defer { close(pair[1]) }
        let handle = RingHandle.make(ring: 2, index: 1)
        #expect(backend.install(pair[0], handle: handle) == 1)
        #expect(backend.units[2].occupied == 1)
        close(pair[0])
        backend.armReceive(handle: handle, tag: UserData(.receive, slot: 9, generation: 0))

        // Nothing to receive yet: the thread sleeps the whole timeout and gets nothing.
        let sink = Recorder()
        var started = monotonicNanoseconds()
        backend.poll(timeoutNanoseconds: 100_000_000, sink: sink)
        #expect(sink.events.isEmpty)
        #expect(monotonicNanoseconds() - started >= 90_000_000)
        let waitsBefore = backend.waitCount

        // Another thread writes in 200 ms: ring 2's receive completes and wakes this one.
        let peer = pair[1]
        let writer = Thread {
            usleep(200_000)
            _ = write(peer, "hello", 5)
        }
        writer.start()
        started = monotonicNanoseconds()
        while sink.events.isEmpty && monotonicNanoseconds() - started < 5_000_000_000 {
            backend.poll(timeoutNanoseconds: 5_000_000_000, sink: sink)
        }
        let elapsed = monotonicNanoseconds() - started
        #expect(sink.events.count == 1)
        #expect(sink.events.first?.op == "received" && sink.events.first?.slot == 9 && sink.events.first?.bytes == "hello")
        #expect(elapsed < 2_000_000_000, "woke after \(elapsed / 1_000_000) ms: the other ring's work did not wake the thread")
        // A few waits, not a spin: the eventfd read is re-armed and drained.
        #expect(backend.waitCount - waitsBefore <= 4, "\(backend.waitCount - waitsBefore) waits")
        // Idle again: the next polls sleep their timeout (the wake read does not stay ready).
        started = monotonicNanoseconds()
        for _ in 0..<3 { backend.poll(timeoutNanoseconds: 50_000_000, sink: sink) }
        #expect(sink.events.count == 1)
        #expect(monotonicNanoseconds() - started >= 100_000_000, "polls returned early: a wake-up that stays ready")
    }

    /// Connect on a fixed file: a socket installed at a chosen index connects to a listener on
    /// 127.0.0.1 (`connected` with 0), sends, and its close frees the table entry; a connect to a
    /// closed port reports -ECONNREFUSED.
    @Test func connectsSendsAndCloses() throws {
        let (backend, wake) = try Self.backend(rings: [16])
        defer { close(wake) }
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        #expect(listen(listener, 4) == 0)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }

        let sink = Recorder()
        func pollUntil(_ count: Int) {
            let started = monotonicNanoseconds()
            while sink.events.count < count && monotonicNanoseconds() - started < 5_000_000_000 {
                backend.poll(timeoutNanoseconds: 100_000_000, sink: sink)
            }
        }
        let handle = RingHandle.make(ring: 0, index: 3)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #expect(backend.install(fd, handle: handle) == 1)
        close(fd)
        backend.connect(handle: handle, to: &address, tag: UserData(.connect, slot: 3, generation: 1))
        pollUntil(1)
        #expect(sink.events.map(\.op) == ["connected"] && sink.events.first?.result == 0 && sink.events.first?.slot == 3)
        let accepted = accept(listener, nil, nil)
        #expect(accepted >= 0)
        defer { close(accepted) }
        let message = Array("ping".utf8)
        message.withUnsafeBytes { backend.send(handle: handle, bytes: $0, tag: UserData(.send, slot: 3, generation: 1)) }
        pollUntil(2)
        #expect(sink.events.last?.op == "sent" && sink.events.last?.result == 4)
        var received = [UInt8](repeating: 0, count: 8)
        #expect(read(accepted, &received, 8) == 4)
        backend.close(handle: handle, tag: UserData(.close, slot: 3, generation: 1))
        pollUntil(3)
        #expect(sink.events.last?.op == "done" && sink.events.last?.result == 0)
        #expect(backend.units[0].occupied == 0)

        // Nothing listens on the port once the listener is closed: refused.
        close(listener)
        let refusedFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #expect(backend.install(refusedFD, handle: handle) == 1)
        close(refusedFD)
        backend.connect(handle: handle, to: &address, tag: UserData(.connect, slot: 3, generation: 2))
        pollUntil(4)
        #expect(sink.events.last?.op == "connected" && sink.events.last?.result == -ECONNREFUSED)
        #expect(!sink.events.contains { $0.op == "accepted" || $0.op == "acceptEnded" })
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
