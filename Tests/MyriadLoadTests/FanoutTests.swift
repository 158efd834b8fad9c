import Foundation
import Glibc
import MyriadTestSupport
import Testing
@testable import Myriad
@testable import MyriadLoad

/// `myriad load fanout` without a server: options, the round-robin over ports, the summary,
/// the exit rule, the progress line, /proc parsing.
@Suite struct FanoutReportingTests {
    func fanoutOptions(_ configure: (inout LoadOptions) -> Void = { _ in }) -> LoadOptions {
        var options = LoadOptions()
        options.mode = .fanout
        options.connections = 1000
        options.durationMilliseconds = 2000
        options.publishIntervalMilliseconds = 100
        configure(&options)
        return options
    }

    @Test func validatesFanoutOptions() {
        func invalid(_ configure: (inout LoadOptions) -> Void) -> Bool {
            do {
                try fanoutOptions(configure).validate()
                return false
            } catch {
                return true
            }
        }
        #expect(!invalid { _ in })
        #expect(invalid { $0.messageSizeBytes = 15 })  // the send time and the sequence need 16
        #expect(!invalid { $0.messageSizeBytes = 16 })
        #expect(invalid { $0.publishIntervalMilliseconds = 0 })
        #expect(invalid { $0.durationMilliseconds = 0 })
        #expect(invalid { $0.durationMilliseconds = 200_000; $0.publishIntervalMilliseconds = 1 })  // 200,000 messages
        #expect(invalid { $0.drainMilliseconds = -1 })
        #expect(invalid { $0.ports = [] })
        #expect(invalid { $0.ports = [8080, 0] })
        #expect(invalid { $0.ports = [8080, 8081, 8080] })
        #expect(invalid { $0.serverPID = 0 })
        #expect(!invalid { $0.serverPID = getpid() })
        #expect(fanoutOptions().plannedPublishes == 20)
        #expect(fanoutOptions { $0.durationMilliseconds = 10_000; $0.publishIntervalMilliseconds = 200 }.plannedPublishes == 50)
        #expect(fanoutOptions { $0.durationMilliseconds = 50 }.plannedPublishes == 1)
        // The drain is part of the default time limit.
        #expect(fanoutOptions().defaultTimeLimitMilliseconds == 2000 + 120_000 + 1000 + 10_000)
    }

    @Test func parsesPortLists() {
        #expect(parsePorts("8080") == [8080])
        #expect(parsePorts("8080,8081, 9000") == [8080, 8081, 9000])
        #expect(parsePorts("") == nil)
        #expect(parsePorts("8080,") == nil)
        #expect(parsePorts("0") == nil)
        #expect(parsePorts("65536") == nil)
        #expect(parsePorts("http") == nil)
        var options = LoadOptions()
        options.ports = [8080, 8081]
        #expect(options.port == 8080)
        #expect(options.serverDescription == "127.0.0.1:8080,8081")
        options.port = 9000
        #expect(options.ports == [9000])
    }

    /// Every thread's slots, numbered slot x threads + thread, cover 0..<N once each, so the
    /// round-robin gives each port its share (`connectionsPerPort`), and the publisher (slot 0
    /// of thread 0) is on the first port.
    @Test(arguments: [(1000, 1, 2), (1001, 3, 2), (100_000, 5, 3), (7, 4, 5)])
    func connectionsGoRoundRobinOverThePorts(connections: Int, threads: Int, ports: Int) {
        var options = LoadOptions()
        options.connections = connections
        options.ports = (0..<ports).map { UInt16(9000 + $0) }
        var counts = [Int](repeating: 0, count: ports)
        for (thread, slots) in LoadPlan.split(connections, threads).enumerated() {
            for slot in 0..<slots {
                counts[LoadOptions.portIndex(slot: slot, thread: thread, threadCount: threads, portCount: ports)] += 1
            }
        }
        #expect(counts == options.connectionsPerPort())
        #expect(counts.reduce(0, +) == connections)
        #expect(LoadOptions.portIndex(slot: 0, thread: 0, threadCount: threads, portCount: ports) == 0)
    }

    /// Fanout's per-connection state shares the handshake nonce's bytes: every mode keeps
    /// its 144-byte slot (on the engine's slab, with the engine's send queue and I/O state).
    @Test func theClientSlotStays144Bytes() {
        #expect(MemoryLayout<ClientConnection>.stride == 144)
        var connection = ClientConnection()
        connection.nonceLow = 0x1122_3344_5566_7788
        connection.nonceHigh = .max
        connection.nonceLow = 0
        connection.nonceHigh = 0
        connection.sequenceEnd = 7
        connection.prefixHigh = 42
        #expect(connection.sequenceEnd == 7)
        #expect(connection.prefixHigh == 42)
    }

    func sample() -> LoadSummary {
        var summary = LoadSummary(mode: .fanout, server: "127.0.0.1:8080,8081")
        summary.target = 1000
        summary.connected = 1000
        summary.peak = 1000
        summary.handshakes = 1000
        summary.cleanCloses = 1000
        summary.messagesSent = 20
        summary.messagesReceived = 20000
        summary.latency.record(2_000_000)
        var fanout = FanoutSummary()
        fanout.publishIntervalMilliseconds = 100
        fanout.messageSizeBytes = 32
        fanout.subscribers = 1000
        fanout.plannedPublishes = 20
        fanout.published = 20
        fanout.delivered = 20000
        fanout.publishSeconds = 2
        fanout.drainSeconds = 0.02
        fanout.deliveredWhilePublishing = 19000
        fanout.publishToLastDelivery.record(3_000_000)
        var first = FanoutNode(port: 8080)
        first.subscribers = 500
        first.connected = 500
        first.expected = 10000
        first.delivered = 10000
        first.latency.record(1_000_000)
        var second = FanoutNode(port: 8081)
        second.subscribers = 500
        second.connected = 500
        second.expected = 10000
        second.delivered = 10000
        second.latency.record(4_000_000)
        second.latency.record(4_000_000)
        fanout.nodes = [first, second]
        var server = ServerUsage(pid: 1234)
        server.cpuNanoseconds = 160_000_000
        server.residentBytes = 20 << 20
        fanout.server = server
        summary.fanout = fanout
        summary.clientStateBytesPerConnection = 144
        return summary
    }

    @Test func jsonCarriesTheFanoutObject() throws {
        let text = sample().json
        let object = try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["mode"] as? String == "fanout")
        #expect(object["server"] as? String == "127.0.0.1:8080,8081")
        let fanout = try #require(object["fanout"] as? [String: Any])
        #expect(fanout["publish_interval_ms"] as? Int == 100)
        #expect(fanout["size"] as? Int == 32)
        #expect(fanout["subscribers"] as? Int == 1000)
        #expect(fanout["publishes_planned"] as? Int == 20)
        #expect(fanout["published"] as? Int == 20)
        #expect(fanout["expected"] as? Int == 20000)
        #expect(fanout["delivered"] as? Int == 20000)
        #expect(fanout["lost"] as? Int == 0)
        #expect(fanout["duplicated"] as? Int == 0)
        #expect(fanout["out_of_order"] as? Int == 0)
        #expect(fanout["publish_s"] as? Double == 2)
        #expect(fanout["drain_s"] as? Double == 0.02)
        #expect(fanout["deliveries_per_s"] as? Double == 9500)
        let last = try #require(fanout["publish_to_last_delivery_ms"] as? [String: Any])
        #expect(last["p50"] as? Double == 3)
        #expect(last["samples"] as? Int == 1)
        let nodes = try #require(fanout["nodes"] as? [String: [String: Int]])
        #expect(nodes["127.0.0.1:8080"] == ["subscribers": 500, "connected": 500, "expected": 10000, "delivered": 10000, "lost": 0])
        #expect(nodes["127.0.0.1:8081"]?["lost"] == 0)
        let nodeLatency = try #require(fanout["node_latency_ms"] as? [String: [String: Any]])
        #expect(nodeLatency["127.0.0.1:8080"]?["p50"] as? Double == 1 && nodeLatency["127.0.0.1:8080"]?["samples"] as? Int == 1)
        #expect(nodeLatency["127.0.0.1:8081"]?["p99"] as? Double == 4 && nodeLatency["127.0.0.1:8081"]?["samples"] as? Int == 2)
        let server = try #require(fanout["server"] as? [String: Any])
        #expect(server["pid"] as? Int == 1234)
        #expect(server["cpu_s"] as? Double == 0.16)
        #expect(server["cpu_us_per_delivery"] as? Double == 8)
        #expect(server["rss_mib"] as? Double == 20)
        #expect(object["ok"] as? Bool == true)
        // In the documented place: after latency_ms, before diagnostics; nodes in port order.
        let order = ["\"latency_ms\"", "\"fanout\"", "\"publish_interval_ms\"", "\"publishes_planned\"", "\"lost\"",
                     "\"duplicated\"", "\"out_of_order\"", "\"publish_to_last_delivery_ms\"", "\"nodes\"",
                     "\"127.0.0.1:8080\"", "\"127.0.0.1:8081\"", "\"node_latency_ms\"", "\"127.0.0.1:8080\"",
                     "\"127.0.0.1:8081\"", "\"server\"", "\"diagnostics\"", "\"ok\""]
        var position = text.startIndex
        for key in order {
            guard let found = text.range(of: key, range: position..<text.endIndex) else {
                Issue.record("\(key) missing or out of order in \(text)")
                return
            }
            position = found.upperBound
        }
        // Other modes have no fanout object.
        var hold = sample()
        hold.mode = .hold
        hold.fanout = nil
        #expect(!hold.json.contains("fanout"))
        var noServer = sample()
        noServer.fanout?.server = nil
        #expect(!noServer.json.contains("\"pid\""))
    }

    @Test func exitsZeroOnlyWhenEveryMessageReachedEveryConnectionOnceInOrder() {
        #expect(sample().succeeded)
        var lost = sample()
        lost.fanout?.delivered = 19999
        lost.fanout?.nodes[1].delivered = 9999
        #expect(lost.fanout?.lost == 1)
        #expect(lost.fanout?.nodes[1].lost == 1)
        #expect(!lost.succeeded)
        var duplicated = sample()
        duplicated.fanout?.duplicated = 1
        #expect(!duplicated.succeeded)
        var reordered = sample()
        reordered.fanout?.outOfOrder = 1
        #expect(!reordered.succeeded)
        var short = sample()
        short.fanout?.published = 19  // a message skipped: the publisher's queue was full
        short.fanout?.delivered = 19000
        #expect(short.fanout?.lost == 0)
        #expect(!short.succeeded)
        var nothing = sample()
        nothing.fanout?.published = 0
        nothing.fanout?.plannedPublishes = 0
        nothing.fanout?.delivered = 0
        #expect(!nothing.succeeded)
        var ramp = sample()
        ramp.connected = 999
        #expect(!ramp.succeeded)
        var missing = sample()
        missing.fanout = nil
        #expect(!missing.succeeded)
    }

    @Test func theProgressLineShowsPublishing() {
        let snapshot = ProgressSnapshot(
            mode: .fanout, phase: .publish, open: 19000, target: 19000, handshakes: 19000, ratePerSecond: 0,
            failures: [:], elapsedSeconds: 7.25, published: 12, plannedPublishes: 50, delivered: 228_000, expected: 228_000)
        #expect(ProgressLine.render(snapshot)
            == "fanout publish 19,000/19,000 open  published 12/50  delivered 228,000/228,000  "
            + "failures connect=0 handshake=0 read=0 unexpected_close=0 close=0  7.2s")
        var drain = snapshot
        drain.phase = .drain
        #expect(ProgressLine.render(drain).hasPrefix("fanout drain "))
        // During the ramp: the handshake rate, as in the other modes.
        var ramp = snapshot
        ramp.phase = .ramp
        ramp.open = 500
        ramp.ratePerSecond = 8123.4
        #expect(ProgressLine.render(ramp).hasPrefix("fanout ramp 500/19,000 open  8,123/s  failures"))
    }

    @Test func readsCPUTimeAndMemoryFromProc() throws {
        // utime 1500 and stime 500 ticks; the name holds a space and a parenthesis.
        let line = "4242 (my (server) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1500 500 0 0 20 0 3 0 100 1000 200"
        let ticks = Int64(sysconf(Int32(_SC_CLK_TCK)))
        #expect(ServerProcess.cpuNanoseconds(statLine: line) == 2000 * 1_000_000_000 / ticks)
        #expect(ServerProcess.cpuNanoseconds(statLine: "garbage") == nil)
        #expect(ServerProcess.statusKilobytes("Name:\tx\nVmRSS:\t   2048 kB\n", field: "VmRSS:") == 2048)
        let mine = try #require(ServerProcess.sample(pid: getpid()))
        #expect(mine.residentBytes > 1 << 20)
        #expect(mine.cpuNanoseconds >= 0)
        #expect(ServerProcess.sample(pid: Int32.max) == nil)
    }
}
