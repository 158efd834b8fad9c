import Foundation
import Glibc
import Metrics
import MetricsTestKit
import MyriadMetrics
import MyriadTestSupport
import Prometheus
import Testing
import WebSocketCodec
@testable import Myriad
import NATSTestSupport

/// Issue 18: the metrics catalog, the histograms, the exposition and its listener, the
/// swift-metrics exporter. The end-to-end checks (prometheus_client's parser, a real
/// Prometheus) are in `MetricsIntegrationTests` below.
@Suite struct MetricsTests {
    @Test func everyCounterHasAMetricOfTheRightKind() {
        let descriptions = MetricsCatalog.descriptions()
        #expect(Set(descriptions.map(\.name)).count == descriptions.count, "a metric name is used twice")
        for counter in StatCounter.allCases where counter != .closesBase {
            let found = descriptions.filter { $0.statsNames.contains(counter.name) }
            #expect(found.count == 1, "\(counter.name) should map to one metric")
            guard let metric = found.first else { continue }
            #expect(metric.kind == (counter.isGauge ? .gauge : .counter), "\(counter.name) -> \(metric.name) \(metric.kind)")
            #expect(metric.name.hasSuffix("_total") == (metric.kind == .counter), "\(metric.name): counters, and only they, end in _total")
            if counter.isGauge { #expect(metric.labels == ["worker"]) }
        }
        for metric in descriptions {
            #expect(metric.name.hasPrefix("myriad_") || metric.name.hasPrefix("process_"))
            #expect(metric.name.range(of: "^[a-z_]+$", options: .regularExpression) != nil)
            #expect(!metric.help.isEmpty)
        }
    }

    @Test func everyMetricIsInTheReadmeTable() throws {
        let readme = try String(contentsOf: ExternalClient.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let table = try #require(readme.components(separatedBy: "<!-- metrics table: begin -->").dropFirst().first?
            .components(separatedBy: "<!-- metrics table: end -->").first)
        var listed: [String: String] = [:]
        for line in table.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            listed[cells[0].trimmingCharacters(in: CharacterSet(charactersIn: "`"))] = cells[1]
        }
        let descriptions = MetricsCatalog.descriptions()
        for metric in descriptions {
            #expect(listed[metric.name] == metric.kind.rawValue, "README.md lists \(metric.name) as \(listed[metric.name] ?? "nothing")")
        }
        #expect(Set(listed.keys) == Set(descriptions.map(\.name)), "README.md's metrics table lists metrics that do not exist")
    }

    @Test func bucketsAreLessOrEqual() {
        #expect(LatencyHistogram.bucketLabels.count == LatencyHistogram.bucketCount)
        #expect(LatencyHistogram.bucket(nanoseconds: 0) == 0)
        #expect(LatencyHistogram.bucket(nanoseconds: 100_000) == 0)  // exactly 0.0001 s: le
        #expect(LatencyHistogram.bucket(nanoseconds: 100_001) == 1)
        #expect(LatencyHistogram.bucket(nanoseconds: 1_000_000) == 3)
        #expect(LatencyHistogram.bucket(nanoseconds: 10_000_000_000) == 15)
        #expect(LatencyHistogram.bucket(nanoseconds: 10_000_000_001) == 16)  // +Inf
        #expect(LatencyHistogram.bucket(nanoseconds: .max) == 16)
    }

    @Test func histogramsTravelWithTheCounters() {
        let counters = WorkerCounters()
        counters.add(.messagesIn, 3)
        counters.record(.handshake, nanoseconds: 50_000)
        counters.record(.handshake, nanoseconds: 2_000_000)
        counters.record(.handshake, nanoseconds: -5)  // a clock read out of order counts as 0
        counters.record(.pingRoundTrip, nanoseconds: 60_000_000_000)
        let board = StatsBoard()
        board.publish(counters)
        let snapshot = board.snapshot()
        #expect(snapshot[.messagesIn] == 3)
        let handshake = snapshot.histogram(.handshake)
        #expect(handshake.count == 3 && handshake.sumNanoseconds == 2_050_000)
        #expect(handshake.bucketCounts[0] == 2 && handshake.bucketCounts[4] == 1)  // 2 ms: le 0.0025
        #expect(handshake.cumulativeCounts == [2, 2, 2, 2] + Array(repeating: 3, count: 13))
        let ping = snapshot.histogram(.pingRoundTrip)
        #expect(ping.count == 1 && ping.bucketCounts.last == 1 && ping.sumSeconds == 60)
        // Two workers' histograms add up.
        #expect((snapshot + snapshot).histogram(.handshake).count == 6)
    }

    @Test func pingRoundTripsAreTimedFromTheirTick() {
        let counters = WorkerCounters()
        counters.pingQueued(tick: 7)
        counters.pingQueued(tick: 7)  // the same tick: the first stamp stays
        let stamp = counters.pingClock[7].nanoseconds
        #expect(stamp > 0)
        counters.pongAnswered(pingSentTick: 7)
        counters.pongAnswered(pingSentTick: 8)  // no ping queued in tick 8: not a sample
        // A tick 4096 later takes the same entry; the old tick's pongs are no longer timed.
        counters.pingQueued(tick: 7 + UInt32(PingClockEntry.count))
        counters.pongAnswered(pingSentTick: 7)
        let board = StatsBoard()
        board.publish(counters)
        let histogram = board.snapshot().histogram(.pingRoundTrip)
        #expect(histogram.count == 1)
        #expect(histogram.sumNanoseconds >= 0 && histogram.sumNanoseconds < 1_000_000_000)
    }

    @Test func theTextFormat() {
        var snapshot = StatsSnapshot()
        snapshot.values[StatCounter.accepts.rawValue] = 5
        snapshot.values[StatCounter.open.rawValue] = 2
        snapshot.values[StatCounter.closesBase.rawValue + Int(CloseReason.pongTimeout.rawValue)] = 1
        snapshot.values[LatencyHistogram.handshake.base + 2] = 4
        snapshot.values[LatencyHistogram.handshake.base + LatencyHistogram.bucketCount] = 1_500_000
        let text = PrometheusText.render(MetricsCatalog.read(workers: [snapshot, StatsSnapshot()],
                                                             engine: EngineFacts(backend: "io_uring", capacityPerWorker: [10, 10]),
                                                             includeProcess: false))
        #expect(text.contains("# TYPE myriad_accepts_total counter\nmyriad_accepts_total 5\n"))
        #expect(text.contains("myriad_connections_open{worker=\"0\"} 2\nmyriad_connections_open{worker=\"1\"} 0\n"))
        #expect(text.contains("myriad_closes_total{cause=\"pong_timeout\"} 1\n"))
        #expect(!text.contains("cause=\"none\""))
        #expect(text.contains("# TYPE myriad_handshake_duration_seconds histogram\n"))
        #expect(text.contains("myriad_handshake_duration_seconds_bucket{le=\"0.00025\"} 0\nmyriad_handshake_duration_seconds_bucket{le=\"0.0005\"} 4\n"))
        #expect(text.contains("myriad_handshake_duration_seconds_bucket{le=\"+Inf\"} 4\nmyriad_handshake_duration_seconds_sum 0.0015\nmyriad_handshake_duration_seconds_count 4\n"))
        #expect(text.contains("myriad_info{backend=\"io_uring\"} 1\n"))
        #expect(!text.contains("process_"))
        #expect(text.hasSuffix("\n"))
        #expect(PrometheusText.escapeLabelValue("a\"b\\c\nd") == "a\\\"b\\\\c\\nd")
        #expect(PrometheusText.escapeHelp("a\\b\nc\"") == "a\\\\b\\nc\"")
    }

    @Test func processFiguresAreRead() {
        let process = ProcessFacts.read()
        #expect(process.residentBytes > 1 << 20 && process.virtualBytes >= process.residentBytes)
        #expect(process.threads >= 1 && process.openFiles >= 3 && process.maxFiles >= process.openFiles)
        #expect(process.cpuSeconds > 0)
        #expect(abs(process.startTimeSeconds - Date().timeIntervalSince1970) < 24 * 3600)
    }

    // MARK: - The listener's HTTP

    func route(_ head: String) -> MetricsServer.Routed { MetricsServer.route(Array(head.utf8)[...]) }

    @Test func onlyAWellFormedGetOfMetricsIsServed() {
        #expect(route("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").status == 200)
        #expect(route("GET /metrics?name[]=up HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n").status == 200)
        #expect(route("GET /metrics HTTP/1.0\r\n\r\n").status == 200)
        #expect(route("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").status == 200)
        #expect(route("GET / HTTP/1.1\r\nHost: x\r\n\r\n").status == 404)
        #expect(route("GET /metricsx HTTP/1.1\r\nHost: x\r\n\r\n").status == 404)
        #expect(route("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").status == 404)
        let post = route("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        #expect(post.status == 405 && post.extraHeaders == "Allow: GET\r\n")
        #expect(route("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n").status == 405)
        #expect(route("GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n").status == 505)
        for bad in [
            "GET /metrics HTTP/1.1\r\n\r\n",  // no Host
            "GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET /metrics HTTP/1.1\nHost: x\r\n\r\n",  // a bare LF
            "GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            "get /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /metrics\r\nHost: x\r\n\r\n",
            "GET /metrics FTP/1.1\r\nHost: x\r\n\r\n",
            "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n",
            "GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /metrics HTTP/1.1\r\nHost x\r\n\r\n",
            "GET /metrics HTTP/1.1\r\nBad Name: x\r\nHost: x\r\n\r\n",
            "GET /metrics HTTP/1.1\r\nHost: \u{7F}\r\n\r\n",
            "GET /métrics HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            #expect(route(bad).status == 400, "\(bad.debugDescription)")
        }
        let response = String(decoding: MetricsServer.response(status: 404, body: "no\n"), as: UTF8.self)
        #expect(response == "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\nConnection: close\r\n\r\nno\n")
    }
}

extension Integration {
@Suite struct MetricsIntegrationTests {
    /// GET over a new connection; the whole response (the server closes after it).
    func get(_ port: UInt16, _ request: String) throws -> String {
        let client = try RawClient(port: port)
        try client.send(request)
        return String(decoding: try client.readToEnd(timeout: 5), as: UTF8.self)
    }

    @Test(arguments: allBackends)
    func theListenerServesTheBoards(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend, configure: { $0.metricsPort = 0 })
        let port = try #require(server.engine.metricsPort)
        #expect(port != 0 && port != server.port)
        let client = try RawClient(port: server.port)
        _ = try client.upgrade()
        try client.sendText("hello")
        #expect(try client.readMessage()?.payload == Array("hello".utf8))
        #expect(server.waitFor { $0[.messagesIn] == 1 && $0.histogram(.handshake).count == 1 })
        let response = try get(port, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        #expect(response.hasPrefix("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: "))
        let body = try #require(response.components(separatedBy: "\r\n\r\n").dropFirst().first)
        #expect(response.contains("Content-Length: \(body.utf8.count)\r\n"))
        #expect(body.contains("myriad_messages_received_total 1\n"))
        #expect(body.contains("myriad_handshakes_total 1\n"))
        #expect(body.contains("myriad_handshake_duration_seconds_count 1\n"))
        #expect(body.contains("myriad_info{backend=\"\(backend == .epoll ? "epoll" : "io_uring")\"} 1\n"))
        #expect(body.contains("myriad_connection_capacity{worker=\"1\"} "))

        #expect(try get(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        #expect(try get(port, "DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n").contains("405 Method Not Allowed\r\n"))
        #expect(try get(port, "\u{1}\u{2}garbage\r\n\r\n").hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        let huge = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Fill: " + String(repeating: "a", count: 9000) + "\r\n\r\n"
        #expect(try get(port, huge).hasPrefix("HTTP/1.1 431 "))

        // A client that sends nothing is dropped at the deadline, and the listener carries on.
        let stalled = try RawClient(port: port)
        let started = Date()
        #expect(stalled.waitForClose(timeout: 6))
        #expect(Date().timeIntervalSince(started) > 2.5)
        #expect(try get(port, "GET /metrics HTTP/1.0\r\n\r\n").hasPrefix("HTTP/1.1 200 OK\r\n"))

        server.stop()
        #expect(throws: ClientError.self) { try RawClient(port: port) }  // closed with the engine
    }

    @Test func aTakenPortStopsStartUpNamingTheVariable() throws {
        let first = try TestServer(configure: { $0.metricsPort = 0 })
        let port = try #require(first.engine.metricsPort)
        var config = Config()
        config.host = "127.0.0.1"
        config.port = 0
        config.workers = 1
        config.logLevel = .critical
        config.metricsPort = port
        let second = Engine(config: config, logger: .init(label: "second")) { _ in EchoHandler() }
        do {
            try second.start()
            Issue.record("a second metrics listener on \(port) started")
            second.shutdown()
            second.wait()
        } catch {
            #expect(error.description.hasPrefix("MYRIAD_METRICS_PORT=\(port): cannot serve metrics on 127.0.0.1:\(port): "))
            #expect(error.description.contains("EADDRINUSE"), "\(error.description)")
        }
        // The first is unharmed; once it stops, the port is free again.
        #expect(try get(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").hasPrefix("HTTP/1.1 200 OK\r\n"))
        first.stop()
        let third = Engine(config: config, logger: .init(label: "third")) { _ in EchoHandler() }
        try third.start()
        #expect(third.metricsPort == port)
        third.shutdown()
        third.wait()
    }

    @Test func offUnlessSet() throws {
        let server = try TestServer()
        #expect(server.engine.metricsPort == nil)
        let serve = try ServerProcess(environment: [:])
        serve.signal(SIGTERM)
        #expect(serve.waitForExit(seconds: 15) == 0)
        #expect(!serve.output.contains("metrics on"), "\(serve.output)")
    }

    /// `myriad serve`'s /metrics, parsed by prometheus_client (Tests/clients/metrics_check.py):
    /// every metric of the README's table is there with its type, and an echo with a ping
    /// round trip, a client that never answers a ping, and a health check move them the right way.
    @Test(arguments: allBackends)
    func serveExposesWhatTheReadmeLists(backend: BackendChoice) throws {
        let metricsPort = freeLoopbackPort()
        let serve = try ServerProcess(environment: [
            "MYRIAD_BACKEND": backend.rawValue, "MYRIAD_WORKERS": "2", "MYRIAD_METRICS_PORT": String(metricsPort),
            "MYRIAD_PING_INTERVAL": "300ms", "MYRIAD_PONG_TIMEOUT": "300ms",
        ])
        let result = try ExternalClient.run(ExternalClient.python, [
            ExternalClient.clientsDirectory.appendingPathComponent("metrics_check.py").path,
            String(serve.port), String(metricsPort), ExternalClient.packageRoot.appendingPathComponent("README.md").path,
        ])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("failures: 0"), "\(result.output)")
        serve.signal(SIGTERM)
        #expect(serve.waitForExit(seconds: 15) == 0)
    }

    /// A second `myriad serve` on a taken metrics port exits 1 naming the variable.
    @Test func serveRefusesATakenMetricsPort() throws {
        let metricsPort = freeLoopbackPort()
        let first = try ServerProcess(environment: ["MYRIAD_METRICS_PORT": String(metricsPort), "MYRIAD_WORKERS": "1"])
        let second = try ExternalClient.run(ExternalClient.myriadBinary, ["serve"], environment: [
            "MYRIAD_HOST": "127.0.0.1", "MYRIAD_PORT": String(freeLoopbackPort()), "MYRIAD_WORKERS": "1",
            "MYRIAD_METRICS_PORT": String(metricsPort),
        ], timeout: 20)
        #expect(second.status == 1, "\(second.output)")
        #expect(second.output.contains("MYRIAD_METRICS_PORT=\(metricsPort): cannot serve metrics on 127.0.0.1:\(metricsPort)"), "\(second.output)")
        first.signal(SIGTERM)
        #expect(first.waitForExit(seconds: 15) == 0)
    }

    /// A real Prometheus (Debian's) scrapes `myriad serve`: `up == 1` through its HTTP API and
    /// a Myriad series stored (scripts/prometheus.py --check; it stops both by PID).
    @Test func aRealPrometheusScrapesServe() throws {
        let result = try ExternalClient.run("/usr/bin/env", [
            "python3", ExternalClient.packageRoot.appendingPathComponent("scripts/prometheus.py").path,
            "--check", "--binary", ExternalClient.myriadBinary,
        ], timeout: 120)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("up == 1"), "\(result.output)")
    }

    // MARK: - swift-metrics

    /// Drives one echo and one ping round trip through `server`.
    func traffic(_ server: TestServer<EchoHandler>, messages: Int) throws {
        let client = try RawClient(port: server.port)
        _ = try client.upgrade()
        for index in 0..<messages {
            try client.sendText("m\(index)")
            while let message = try client.readMessage(), message.opcode != .text {}  // pings may come first
        }
        try client.sendClose()
        _ = client.waitForClose(timeout: 5)
    }

    @Test func theExporterFeedsASwiftMetricsBackend() throws {
        let server = try TestServer(configure: { $0.pingIntervalMilliseconds = 100 })
        let backend = TestMetrics()
        let exporter = MetricsExporter(source: server.engine, interval: .seconds(1), factory: backend)
        try traffic(server, messages: 3)
        // A ping round trip: a client that stays silent past the interval and answers.
        let pinged = try RawClient(port: server.port)
        _ = try pinged.upgrade()
        let ping = try #require(try pinged.readMessage(timeout: 5))
        #expect(ping.opcode == .ping)
        try pinged.sendFrame(.pong, ping.payload)
        #expect(server.waitFor { $0.closes(.normal) == 1 && $0[.pongsReceived] >= 1 && $0.histogram(.pingRoundTrip).count >= 1 })
        exporter.export()
        let stats = server.stats()
        #expect(try backend.expectCounter("myriad_messages_received_total").totalValue == 3)
        #expect(try backend.expectCounter("myriad_handshakes_total").totalValue == 2)
        #expect(try backend.expectCounter("myriad_closes_total", [("cause", "normal")]).totalValue == 1)
        #expect(try backend.expectCounter("myriad_closes_total", [("cause", "pong_timeout")]).totalValue == 0)
        #expect(try backend.expectCounter("myriad_accept_refusals_total", [("reason", "accept_enfile")]).totalValue == 0)
        let open = try (0..<2).map { try backend.expectGauge("myriad_connections_open", [("worker", String($0))]).lastValue ?? -1 }
        #expect(open.reduce(0, +) == 1)
        #expect(try backend.expectCounter("myriad_handshake_duration_seconds_count").totalValue == 2)
        #expect(try backend.expectCounter("myriad_handshake_duration_seconds_bucket", [("le", "+Inf")]).totalValue == 2)
        #expect(try backend.expectCounter("myriad_ping_round_trip_seconds_count").totalValue == Int64(stats.histogram(.pingRoundTrip).count))
        #expect(backend.counters(label: "process_cpu_seconds_total").isEmpty, "process metrics are off by default")
        // The next export adds only what happened since.
        try traffic(server, messages: 2)
        #expect(server.waitFor { $0.closes(.normal) == 2 })
        exporter.export()
        exporter.export()
        let received = try backend.expectCounter("myriad_messages_received_total")
        #expect(received.totalValue == 5)
        #expect(received.values == [3, 2], "increments: \(received.values)")
        #expect(try backend.expectCounter("myriad_closes_total", [("cause", "normal")]).totalValue == 2)
        pinged.close()
    }

    @Test func theExporterRunsUntilCancelled() async throws {
        let server = try TestServer()
        let backend = TestMetrics()
        let exporter = MetricsExporter(source: server.engine, interval: .milliseconds(50), includeProcess: true, factory: backend)
        let task = Task { await exporter.run() }
        try traffic(server, messages: 4)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, (try? backend.expectCounter("myriad_messages_received_total").totalValue) != 4 {
            try await Task.sleep(for: .milliseconds(20))
        }
        task.cancel()
        await task.value
        #expect(try backend.expectCounter("myriad_messages_received_total").totalValue == 4)
        #expect((try backend.expectGauge("process_resident_memory_bytes").lastValue ?? 0) > Double(1 << 20))
    }

    /// Through a real swift-prometheus registry, as a library user would bootstrap it.
    @Test func theExporterFeedsSwiftPrometheus() throws {
        let server = try TestServer()
        let registry = PrometheusCollectorRegistry()
        let exporter = MetricsExporter(source: server.engine, factory: PrometheusMetricsFactory(registry: registry))
        try traffic(server, messages: 2)
        #expect(server.waitFor { $0.closes(.normal) == 1 })
        exporter.export()
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        let text = String(decoding: buffer, as: UTF8.self)
        #expect(text.contains("myriad_messages_received_total 2\n"), "\(text.prefix(2000))")
        #expect(text.contains("myriad_closes_total{cause=\"normal\"} 1\n"))
        #expect(text.contains("myriad_handshake_duration_seconds_bucket{le=\"+Inf\"} 1\n"))
        #expect(text.contains("myriad_handshake_duration_seconds_count 1\n"))
        #expect(text.contains("myriad_connections_open{worker=\"0\"} "))
    }
}
}
