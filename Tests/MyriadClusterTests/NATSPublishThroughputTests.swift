import NATSTestSupport
import Foundation
import Glibc
import Synchronization
import XCTest

@testable import MyriadCluster

/// Publishing flat out to a local nats-server: nothing is lost while the server is up (its
/// in_msgs equals what the client wrote), and a figure for later. Runs 0.5 s by default;
/// MYRIAD_NATS_PUBLISH_SECONDS sets another duration (the 5 s data point in the report).
final class NATSPublishThroughputTests: XCTestCase {
    func testPublishingFlatOutLosesNothing() throws {
        let seconds = Double(ProcessInfo.processInfo.environment["MYRIAD_NATS_PUBLISH_SECONDS"] ?? "") ?? 0.5
        let server = try NATSServerProcess()
        let (client, _) = try makeClient(url: server.url, name: "bench")
        client.start()
        XCTAssertTrue(client.waitUntilConnected(timeoutMs: 5_000))
        let payload = [UInt8](repeating: 0x78, count: 32)

        let cpuBefore = processCPUMicroseconds()
        let start = Date()
        var accepted = 0
        var backedOff = 0
        payload.withUnsafeBytes { bytes in
            while Date().timeIntervalSince(start) < seconds {
                for _ in 0..<256 {
                    // Back-pressure: a full buffer means the socket is behind; retry, do not drop.
                    while client.publish(subject: "bench.publish", payload: bytes) == .droppedBufferFull {
                        backedOff += 1
                        sched_yield()
                    }
                    accepted += 1
                }
            }
        }
        // Everything reaches the server without stop()'s flush: no publish may wait for a
        // timer (the PING interval is 20 s) because its wake-up was lost.
        XCTAssertTrue(try waitUntil(seconds: 3) { try server.messagesIn() == accepted }, "in_msgs \((try? server.messagesIn()) ?? -1) of \(accepted)")
        let elapsed = Date().timeIntervalSince(start)
        let cpu = processCPUMicroseconds() - cpuBefore
        client.stop()

        let stats = client.stats()
        XCTAssertEqual(stats.published, UInt64(accepted))
        XCTAssertEqual(stats.droppedAtStop + stats.lostInFlight + stats.droppedWhileDisconnected, 0)
        let rate = Double(accepted) / elapsed
        print(
            "NATS publish, 32 B payloads, \(String(format: "%.1f", elapsed)) s: \(accepted) messages, "
                + "\(Int(rate)) msg/s, \(String(format: "%.2f", Double(cpu) / Double(accepted))) CPU-us per publish "
                + "(client process, both threads), \(backedOff) full-buffer retries")
    }
}

extension NATSPublishThroughputTests {
    /// Batches bigger than the socket buffer are written in parts (EAGAIN, POLLOUT) while
    /// publishers keep appending: when a batch completes, what came meanwhile must go at once,
    /// not at the next timer (a lost wake-up once left it waiting for the 20 s PING).
    func testWhatArrivesDuringALongWriteIsNotLeftWaiting() throws {
        let server = try NATSServerProcess(configuration: "max_payload: 4194304\n")
        let (client, _) = try makeClient(url: server.url, name: "bulk") {
            $0.maxPayloadBytes = 1 << 20
            $0.outboundBufferLimitBytes = 8 << 20
        }
        defer { client.stop() }
        client.start()
        XCTAssertTrue(client.waitUntilConnected(timeoutMs: 5_000))
        let payload = [UInt8](repeating: 0x62, count: 256 << 10)
        var refusals = 0
        for round in 0..<5 {
            var sent = 0
            for _ in 0..<48 {  // 12 MiB per round: more than the buffer and the socket hold
                while client.publish(subject: "bulk", payload: payload) == .droppedBufferFull {
                    refusals += 1
                    usleep(200)
                }
                sent += 1
            }
            let expected = (round + 1) * sent
            XCTAssertTrue(try waitUntil(seconds: 3) { try server.messagesIn() == expected }, "round \(round): in_msgs \((try? server.messagesIn()) ?? -1) of \(expected)")
        }
        XCTAssertEqual(client.stats().droppedBufferFull, UInt64(refusals), "every refusal for a full buffer is counted")
    }
}

extension NATSPublishThroughputTests {
    /// A node that publishes without pause must still read: MSGs from other nodes and the
    /// server's PINGs may not wait until its publishers rest.
    func testAFloodingPublisherStillReceives() throws {
        let server = try NATSServerProcess()
        let (flooder, inbox) = try makeClient(url: server.url, name: "flooder")
        let (other, _) = try makeClient(url: server.url, name: "other")
        defer {
            flooder.stop()
            other.stop()
        }
        flooder.subscribe("inbound")
        flooder.start()
        other.start()
        XCTAssertTrue(other.waitUntilConnected(timeoutMs: 5_000))
        XCTAssertTrue(try waitUntil(seconds: 5) { try server.subscriptions(ofClientNamed: "flooder") == ["inbound"] })

        let flooding = Atomic<Bool>(true)
        let floodEnded = DispatchSemaphore(value: 0)
        Thread {
            let payload = [UInt8](repeating: 0x66, count: 32)
            let deadline = Date().addingTimeInterval(10)
            payload.withUnsafeBytes { bytes in
                while flooding.load(ordering: .relaxed) && Date() < deadline {
                    flooder.publish(subject: "flood", payload: bytes)
                }
            }
            floodEnded.signal()
        }.start()
        usleep(100_000)
        for index in 0..<10 {
            other.publish(subject: "inbound", payload: Array("\(index)".utf8))
            usleep(20_000)
        }
        let receivedDuringFlood = waitUntil(seconds: 3) { inbox.count == 10 }
        flooding.store(false, ordering: .relaxed)
        floodEnded.wait()
        XCTAssertTrue(receivedDuringFlood, "received \(inbox.count) of 10 while flooding")
        XCTAssertGreaterThan(flooder.stats().published, 100, "the flood was real (few under TSan)")
    }
}

/// utime + stime of this process from /proc/self/stat, in microseconds.
func processCPUMicroseconds() -> Int {
    guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return 0 }
    // After "pid (comm) ", field 3 is state; utime and stime are fields 14 and 15.
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    let ticks = (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
    return ticks * 1_000_000 / sysconf(Int32(_SC_CLK_TCK))
}
