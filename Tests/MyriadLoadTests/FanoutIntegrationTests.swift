import Foundation
import Glibc
import MyriadTestSupport
import Testing
@testable import Myriad
@testable import MyriadLoad

extension EndToEndTests {
    /// `myriad load fanout` against the engine's broadcast application (`BroadcastHandler`:
    /// every connection subscribes to its path; every message it sends is published there,
    /// to the sender too).
    @Suite struct FanoutTests {
        func fanoutOptions(ports: [UInt16], _ configure: (inout LoadOptions) -> Void = { _ in }) -> LoadOptions {
            var options = LoadOptions()
            options.mode = .fanout
            options.ports = ports
            options.path = "/room"
            options.connections = 1000
            options.publishIntervalMilliseconds = 100
            options.durationMilliseconds = 2000
            options.timeLimitMilliseconds = 60_000
            configure(&options)
            return options
        }

        /// A topic per connection (`--path /t/{i}`): 2,000 topics of one subscriber each, and
        /// every connection's verify message comes back through its own topic only.
        @Test func aTopicPerConnection() throws {
            let server = try TestServer(workers: 2) { _ in BroadcastHandler() }
            defer { server.stop() }
            var options = LoadOptions()
            options.mode = .hold
            options.ports = [server.port]
            options.path = "/t/{i}"
            options.connections = 2000
            options.durationMilliseconds = 500
            options.verifyEcho = true
            options.timeLimitMilliseconds = 60_000
            let summary = try LoadGenerator.run(options)
            #expect(summary.succeeded, Comment(rawValue: summary.json))
            #expect(summary.verifyOK == 2000)
            #expect(summary.unexpectedMessages == 0)
            let stats = server.stats()
            #expect(stats[.deliveries] == 2000 && stats[.subscribes] == 2000, "\(stats.fields)")
        }

        /// 1,000 subscribers on two workers, a message every 100 ms for 2 s: all 20 messages
        /// reach all 1,000 connections (the publisher too), once and in order, and the
        /// server's own count of deliveries agrees.
        @Test(arguments: [BackendChoice.ioUring, .epoll])
        func everyMessageReachesEverySubscriber(backend: BackendChoice) throws {
            let server = try TestServer(backend: backend, workers: 2) { _ in BroadcastHandler() }
            defer { server.stop() }
            let summary = try LoadGenerator.run(fanoutOptions(ports: [server.port]) { $0.serverPID = getpid() })
            let fanout = try #require(summary.fanout)
            #expect(summary.succeeded, Comment(rawValue: summary.json))
            #expect(summary.connected == 1000)
            #expect(fanout.plannedPublishes == 20)
            #expect(fanout.published == 20)
            #expect(fanout.expected == 20_000)
            #expect(fanout.delivered == 20_000)
            #expect(fanout.lost == 0)
            #expect(fanout.duplicated == 0)
            #expect(fanout.outOfOrder == 0)
            #expect(summary.unexpectedMessages == 0)
            #expect(summary.latency.count == 20_000)
            #expect(summary.latency.maximum > 0)
            #expect(fanout.publishToLastDelivery.count == 20)
            #expect(fanout.publishToLastDelivery.maximum >= summary.latency.percentile(0.5))
            #expect(fanout.publishSeconds >= 1.9)
            #expect(fanout.deliveriesPerSecond > 0)
            #expect(fanout.nodes.count == 1)
            let node = try #require(fanout.nodes.first)
            #expect(node.port == server.port)
            #expect([node.subscribers, node.connected, node.expected, node.delivered] as [Int] == [1000, 1000, 20_000, 20_000])
            // --server-pid names this process here (server and client together): the sample is taken.
            #expect(fanout.server.map { $0.cpuNanoseconds > 0 && $0.residentBytes > 0 } == true)
            #expect(summary.clientStateBytesPerConnection == 144)
            #expect(server.waitFor { $0[.open] == 0 })
            let stats = server.stats()
            #expect(stats[.publishes] == 20)
            #expect(stats[.deliveries] == 20_000)
        }

        /// Two separate servers (nodes without a cluster between them): the connections go
        /// round-robin over both ports and the publisher is on the first, so only the first
        /// node's subscribers receive anything. The tool says exactly that, per node, and
        /// exits 1 for the second node's losses.
        @Test func deliveriesAreCountedPerNode() throws {
            let first = try TestServer(workers: 1) { _ in BroadcastHandler() }
            defer { first.stop() }
            let second = try TestServer(workers: 1) { _ in BroadcastHandler() }
            defer { second.stop() }
            let result = try LoadBinary.run([
                "fanout", "--port", "\(first.port),\(second.port)", "--path", "/room", "--connections", "401",
                "--publish-interval", "100ms", "--duration", "1s", "--drain", "1s", "--time-limit", "40s",
            ], timeout: 50)
            #expect(result.status == 1, "stderr: \(result.stderr)")
            let json = try #require(result.json, "no JSON summary; stderr: \(result.stderr)")
            #expect(json["server"] as? String == "127.0.0.1:\(first.port),\(second.port)")
            #expect(json.int("connected") == 401)
            let fanout = try #require(json.object("fanout"))
            #expect(fanout.int("published") == 10)
            #expect(fanout.int("expected") == 4010)
            #expect(fanout.int("delivered") == 2010)
            #expect(fanout.int("lost") == 2000)
            #expect(fanout.int("duplicated") == 0)
            #expect(fanout.int("out_of_order") == 0)
            let nodes = try #require(fanout["nodes"] as? [String: [String: Int]])
            #expect(nodes["127.0.0.1:\(first.port)"]
                == ["subscribers": 201, "connected": 201, "expected": 2010, "delivered": 2010, "lost": 0])
            #expect(nodes["127.0.0.1:\(second.port)"]
                == ["subscribers": 200, "connected": 200, "expected": 2000, "delivered": 0, "lost": 2000])
            // Latency per node: every delivery of the first, none of the second.
            let latency = try #require(fanout["node_latency_ms"] as? [String: [String: Any]])
            #expect(latency["127.0.0.1:\(first.port)"]?["samples"] as? Int == 2010)
            #expect(latency["127.0.0.1:\(second.port)"]?["samples"] as? Int == 0)
            #expect(json["ok"] as? Bool == false)
            // The drain gave up after --drain: the second node's subscribers never caught up.
            #expect((fanout["drain_s"] as? Double ?? 0) >= 0.9)
            #expect(first.stats()[.deliveries] == 2010)
            #expect(second.stats()[.deliveries] == 0)
        }

        /// A server that drops subscribers mid-run: a 1 KiB MYRIAD_MAX_QUEUED_BYTES and 256 KiB
        /// messages published every 10 ms, more than loopback moves to 200 subscribers, so
        /// the server closes the ones that fall behind as slow consumers. The tool reports
        /// the losses and exits 1.
        @Test func aSubscriberDroppedMidRunIsReportedAsLoss() throws {
            let server = try TestServer(workers: 2, configure: { $0.maxQueuedBytes = 1024 }) { _ in BroadcastHandler() }
            defer { server.stop() }
            let result = try LoadBinary.run([
                "fanout", "--port", String(server.port), "--connections", "200", "--size", "262144",
                "--publish-interval", "10ms", "--duration", "2s", "--drain", "2s", "--time-limit", "40s",
            ], timeout: 50)
            #expect(result.status == 1, "stderr: \(result.stderr)")
            let json = try #require(result.json, "no JSON summary; stderr: \(result.stderr)")
            let fanout = try #require(json.object("fanout"))
            let lost = fanout.int("lost") ?? 0
            #expect(lost > 0, "\(fanout)")
            #expect((fanout.int("delivered") ?? 0) + lost == fanout.int("expected"))
            #expect((json.int("unexpected_closes") ?? 0) > 0)
            #expect(json["ok"] as? Bool == false)
            #expect(server.stats().closes(.slowConsumer) > 0)
            print("slow consumers: \(server.stats().closes(.slowConsumer)) closed, \(lost) deliveries lost of "
                + "\(fanout.int("expected") ?? 0), published \(fanout.int("published") ?? 0)")
        }

        /// 100,000 subscribers of one topic on one server with six workers (each io_uring
        /// worker holds at most RLIMIT_NOFILE connections in its fixed-file table; the load
        /// process too, one ring per 20,000): a message a second for 5 s, every one delivered
        /// to every subscriber. About 15 s here (debug build: ramp 7 s, publish-to-last-delivery
        /// 0.75 s).
        @Test(.timeLimit(.minutes(2)))
        func oneHundredThousandSubscribersOfOneTopic() throws {
            let server = try TestServer(workers: 6) { _ in BroadcastHandler() }
            defer { server.stop() }
            let result = try LoadBinary.run([
                "fanout", "--port", String(server.port), "--path", "/everyone", "--connections", "100000",
                "--publish-interval", "1s", "--duration", "5s", "--time-limit", "100s",
            ], timeout: 110)
            let json = try #require(result.json, "no JSON summary; stderr: \(result.stderr)")
            #expect(result.status == 0, "stderr: \(result.stderr)\nstdout: \(result.stdout)")
            let fanout = try #require(json.object("fanout"))
            #expect(json.int("connected") == 100_000)
            #expect(fanout.int("published") == 5)
            #expect(fanout.int("expected") == 500_000)
            #expect(fanout.int("delivered") == 500_000)
            #expect(fanout.int("lost") == 0)
            #expect(fanout.int("duplicated") == 0)
            #expect(fanout.int("out_of_order") == 0)
            #expect(server.stats()[.deliveries] == 500_000)
            let last = fanout.object("publish_to_last_delivery_ms") ?? [:]
            print("100,000 subscribers: ramp \(json["ramp_s"] ?? 0) s, whole run \(json["duration_s"] ?? 0) s "
                + "(test \(Int(result.seconds)) s), publish-to-last-delivery p50 \(last["p50"] ?? 0) ms max \(last["max"] ?? 0) ms, "
                + "latency \(json["latency_ms"] ?? ""), client RSS \(json["client_rss_mib"] ?? 0) MiB")
        }
    }
}
