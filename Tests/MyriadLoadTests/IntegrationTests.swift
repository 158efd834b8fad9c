import Foundation
import MyriadTestSupport
import Glibc
import Logging
import Testing
@testable import Myriad
@testable import MyriadLoad
import NATSTestSupport

/// The `myriad` binary `make test` builds before running the tests.
enum LoadBinary {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var path: String {
        ProcessInfo.processInfo.environment["TEST_MYRIAD_BINARY"] ?? packageRoot.appendingPathComponent(".build/debug/myriad").path
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var json: [String: Any]?
        var seconds: Double
    }

    /// Runs `myriad load <arguments> --json <file>`, killed (by its PID) after `timeout` seconds;
    /// sent SIGTERM after `terminateAfter` seconds when given.
    /// `environment` is added to this process's, whose MYRIAD_ variables are left out.
    static func run(_ arguments: [String], timeout: Double = 60, terminateAfter: Double? = nil,
                    environment: [String: String] = [:]) throws -> Result {
        let directory = FileManager.default.temporaryDirectory
        let tag = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let jsonURL = directory.appendingPathComponent("myriad-load-\(tag).json")
        let outURL = directory.appendingPathComponent("myriad-load-\(tag).out")
        let errURL = directory.appendingPathComponent("myriad-load-\(tag).err")
        defer { for url in [jsonURL, outURL, errURL] { try? FileManager.default.removeItem(at: url) } }
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["load"] + arguments + ["--json", jsonURL.path]
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("MYRIAD_") }
            .merging(environment) { $1 }
        let outHandle = try FileHandle(forWritingTo: outURL)
        let errHandle = try FileHandle(forWritingTo: errURL)
        process.standardOutput = outHandle
        process.standardError = errHandle
        let started = Date()
        try process.run()
        let deadline = started.addingTimeInterval(timeout)
        var terminated = false
        while process.isRunning && Date() < deadline {
            if let terminateAfter, !terminated, Date().timeIntervalSince(started) >= terminateAfter {
                kill(process.processIdentifier, SIGTERM)
                terminated = true
            }
            usleep(20_000)
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        try? outHandle.close()
        try? errHandle.close()
        let stdout = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        let json = (try? Data(contentsOf: jsonURL)).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
        return Result(status: process.terminationStatus, stdout: stdout,
                      stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "", json: json,
                      seconds: Date().timeIntervalSince(started))
    }
}


/// A listening socket on 127.0.0.1 that answers nothing by itself.
func listeningSocket(backlog: Int32) -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    listen(fd, backlog)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return (fd, UInt16(bigEndian: address.sin_port))
}

/// Answers each of `count` connections with `response` once its request head is in, then
/// closes it (a plain HTTP server that refuses the upgrade).
func answerConnections(listener: Int32, count: Int, response: String) -> Thread {
    let thread = Thread {
        for _ in 0..<count {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return }
            var head: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 1024)
            while !head.suffix(4).elementsEqual([13, 10, 13, 10]) {
                let n = buffer.withUnsafeMutableBytes { read(client, $0.baseAddress, 1024) }
                if n <= 0 { break }
                head += buffer[..<n]
            }
            var bytes = Array(response.utf8)
            _ = bytes.withUnsafeMutableBytes { write(client, $0.baseAddress, $0.count) }
            close(client)
        }
    }
    thread.start()
    return thread
}

extension Dictionary where Key == String, Value == Any {
    func int(_ key: String) -> Int? { self[key] as? Int }
    func object(_ key: String) -> [String: Any]? { self[key] as? [String: Any] }
}

/// Everything that runs real connections, one test at a time: each owns the machine's two
/// cores while it runs (`.serialized` applies to the nested suites too).
@Suite(.serialized) struct EndToEndTests {}

extension EndToEndTests {
    /// The real `myriad load` binary against the real engine.
    @Suite struct BinaryTests {
        /// 25,000 connections (more than one process could hold with ordinary descriptors here:
        /// the hard fd limit is 20,000) held, every one echoing at the end, all closed cleanly.
        @Test(.timeLimit(.minutes(2)))
        func holdsTwentyFiveThousandConnectionsThatAllEcho() throws {
            let server = try TestServer(workers: 2)
            defer { server.stop() }
            let result = try LoadBinary.run([
                "hold", "--port", String(server.port), "--connections", "25000", "--duration", "2s",
                "--verify-echo", "--time-limit", "55s",
            ], timeout: 60)
            let json = try #require(result.json, "no JSON summary; stderr: \(result.stderr)")
            #expect(result.status == 0, "stderr: \(result.stderr)\nstdout: \(result.stdout)")
            #expect(json["mode"] as? String == "hold")
            #expect(json.int("target") == 25000)
            #expect(json.int("connected") == 25000)
            #expect(json.int("peak") == 25000)
            #expect(json.int("handshakes") == 25000)
            #expect(json.int("failures_total") == 0, "\(json["failures"] ?? "")")
            #expect(json.int("unexpected_closes") == 0)
            #expect(json.int("clean_closes") == 25000)
            #expect(json.int("threads") == 2)
            #expect(json.object("verify_echo")?.int("ok") == 25000)
            #expect(json.object("verify_echo")?.int("failed") == 0)
            #expect(json["ok"] as? Bool == true)
            #expect(json["time_limit_reached"] as? Bool == false)
            // The summary on stdout is the same document.
            #expect(result.stdout.hasPrefix("{\"mode\":\"hold\""))
            // The server saw the same: 25,000 upgrades, 25,000 echoed messages, 25,000 normal closes.
            #expect(server.waitFor(seconds: 10) { $0[.open] == 0 && $0.closes(.normal) == 25000 })
            let stats = server.stats()
            #expect(stats[.handshakes] == 25000)
            #expect(stats[.messagesIn] == 25000)
            #expect(stats[.messagesOut] == 25000)
            #expect(stats.totalCloses == 25000)
            let ramp = json["ramp_s"] as? Double ?? 0
            let rss = json["client_rss_mib"] as? Double ?? 0
            print("25,000 connections: ramp \(ramp) s, whole run \(json["duration_s"] ?? 0) s, client RSS \(rss) MiB, "
                + "\(json.int("client_state_bytes_per_connection") ?? 0) B of state per connection")
        }

        /// Nothing listening: every connect fails with ECONNREFUSED, counted, and the run ends
        /// with a non-zero status and a summary, not a crash.
        @Test func countsRefusedConnectsAndExitsNonZero() throws {
            let port = freeLoopbackPort()
            let result = try LoadBinary.run(["hold", "--port", String(port), "--connections", "300", "--duration", "1s"],
                                            timeout: 30)
            #expect(result.status == 1, "stderr: \(result.stderr)")
            let json = try #require(result.json, "no JSON summary; stderr: \(result.stderr)")
            #expect(json.int("connected") == 0)
            #expect(json.int("target") == 300)
            let failures = try #require(json["failures"] as? [String: [String: Int]])
            #expect(failures["connect"] == ["ECONNREFUSED": 300])
            #expect(failures["handshake"] == [:])
            #expect(json.int("failures_total") == 300)
            #expect(json["ok"] as? Bool == false)
            #expect(result.seconds < 20)
        }

        /// SIGTERM in the middle of a hold: the run stops at once and still prints its
        /// summary, marked interrupted, with a non-zero status.
        @Test func aSignalEndsTheRunWithASummary() throws {
            let server = try TestServer()
            defer { server.stop() }
            let result = try LoadBinary.run(
                ["hold", "--port", String(server.port), "--connections", "500", "--duration", "60s"],
                timeout: 30, terminateAfter: 2)
            #expect(result.status == 1, "stderr: \(result.stderr)")
            let json = try #require(result.json, "no JSON summary; stderr: \(result.stderr)")
            #expect(json["interrupted"] as? Bool == true)
            #expect(json.int("connected") == 500)
            #expect(json["ok"] as? Bool == false)
            #expect(result.seconds < 15)
        }

        /// A bad flag is a usage error (exit 64 from the argument parser), with no summary.
        @Test func rejectsBadFlagsBeforeConnecting() throws {
            let result = try LoadBinary.run(["churn", "--port", "1", "--connections", "10"], timeout: 30)
            #expect(result.status != 0)
            #expect(result.stderr.contains("churn needs --rate"))
        }
    }
}

extension EndToEndTests {
    /// The library in this process, one run per mode, small and short.
    @Suite struct ModeTests {
        func options(_ mode: LoadMode, port: UInt16, _ configure: (inout LoadOptions) -> Void = { _ in }) -> LoadOptions {
            var options = LoadOptions()
            options.mode = mode
            options.port = port
            options.timeLimitMilliseconds = 30_000
            configure(&options)
            return options
        }

        @Test func pingModeMeasuresRoundTripsAndEveryPingIsAnswered() throws {
            let server = try TestServer()
            defer { server.stop() }
            let summary = try LoadGenerator.run(options(.ping, port: server.port) {
                $0.connections = 500
                $0.durationMilliseconds = 1500
                $0.pingIntervalMilliseconds = 300
            })
            #expect(summary.succeeded, Comment(rawValue: summary.json))
            #expect(summary.connected == 500)
            #expect(summary.pingsSent >= 500)
            #expect(summary.pongsReceived == summary.pingsSent)
            #expect(summary.roundTrip.count == UInt64(summary.pongsReceived))
            #expect(summary.roundTrip.maximum > 0)
            #expect(server.waitFor { $0[.open] == 0 })
        }

        @Test func serverPingsAreAnsweredSoNothingTimesOut() throws {
            let server = try TestServer {
                $0.pingIntervalMilliseconds = 200
                $0.pongTimeoutMilliseconds = 500
            }
            defer { server.stop() }
            let summary = try LoadGenerator.run(options(.hold, port: server.port) {
                $0.connections = 300
                $0.durationMilliseconds = 1500
            })
            #expect(summary.succeeded, Comment(rawValue: summary.json))
            #expect(summary.serverPingsAnswered >= 300)
            #expect(server.waitFor { $0[.open] == 0 && $0[.pongsReceived] == summary.serverPingsAnswered })
            #expect(server.stats().closes(.pongTimeout) == 0)
        }

        @Test func echoModeMeasuresMessagesAndLatency() throws {
            let server = try TestServer()
            defer { server.stop() }
            let summary = try LoadGenerator.run(options(.echo, port: server.port) {
                $0.connections = 50
                $0.durationMilliseconds = 1000
                $0.depth = 4
                $0.messageSizeBytes = 300  // frames with a 16-bit length
            })
            #expect(summary.succeeded, Comment(rawValue: summary.json))
            #expect(summary.messagesPerSecond > 0)
            #expect(summary.latency.count > 0)
            #expect(summary.latency.percentile(0.5) > 0)
            #expect(summary.messagesReceived <= summary.messagesSent)
            #expect(summary.failures.total == 0)
            #expect(server.waitFor { $0[.open] == 0 })
        }

        @Test func churnConnectsUpgradesAndClosesCleanlyAtTheRate() throws {
            let server = try TestServer()
            defer { server.stop() }
            let summary = try LoadGenerator.run(options(.churn, port: server.port) {
                $0.rate = 400
                $0.durationMilliseconds = 1000
                $0.concurrency = 32
            })
            #expect(summary.succeeded, Comment(rawValue: summary.json))
            #expect(summary.target == 400)
            #expect(summary.connected == 400)
            #expect(summary.cleanCloses == 400)
            #expect(summary.rampSeconds >= 0.9)  // the rate holds it back
            #expect(server.waitFor { $0.closes(.normal) == 400 && $0[.open] == 0 })
        }

        /// A server that answers the upgrade with 503: each connection is a handshake
        /// failure named by its status, and nothing is held.
        @Test func refusedUpgradesAreHandshakeFailuresByStatus() throws {
            let (listener, port) = listeningSocket(backlog: 64)
            defer { close(listener) }
            let server = answerConnections(
                listener: listener, count: 40,
                response: "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            let summary = try LoadGenerator.run(options(.hold, port: port) {
                $0.connections = 40
                $0.durationMilliseconds = 100
            })
            #expect(!summary.succeeded)
            #expect(summary.connected == 0)
            #expect(summary.failures.count(.handshake, "HTTP_503") == 40)
            #expect(summary.failures.total == 40)
            while server.isExecuting { usleep(10_000) }
        }

        /// A listener that never accepts, with its accept queue full: the kernel drops the
        /// SYNs, so connects hang until the connect timeout (counted ETIMEDOUT); the few that
        /// got in never see a response and hit the handshake timeout. The run still ends.
        @Test func hangingConnectsAndHandshakesEndAtTheirTimeouts() throws {
            let (listener, port) = listeningSocket(backlog: 1)
            defer { close(listener) }
            let started = Date()
            let summary = try LoadGenerator.run(options(.hold, port: port) {
                $0.connections = 20
                $0.durationMilliseconds = 100
                $0.concurrency = 20
                $0.connectTimeoutMilliseconds = 500
                $0.handshakeTimeoutMilliseconds = 500
            })
            #expect(!summary.succeeded)
            #expect(summary.connected == 0)
            #expect(summary.failures.total == 20)
            #expect(summary.failures.count(.connect, "ETIMEDOUT") >= 10)
            #expect(summary.failures.count(.connect, "ETIMEDOUT") + summary.failures.count(.handshake, "ETIMEDOUT") == 20)
            #expect(Date().timeIntervalSince(started) < 10)
        }

        /// The server closing first (its shutdown sends 1001) is an unexpected close, counted
        /// by code, and the run reports failure.
        @Test func serverGoingAwayIsCountedAsUnexpectedCloses() throws {
            let server = try TestServer()
            let port = server.port
            let stopper = Thread {
                usleep(1_500_000)
                server.stop()
            }
            stopper.start()
            let summary = try LoadGenerator.run(options(.hold, port: port) {
                $0.connections = 200
                $0.durationMilliseconds = 4000
            })
            #expect(!summary.succeeded)
            #expect(summary.unexpectedCloses == 200)
            #expect(summary.failures.count(.unexpectedClose, "CLOSE_1001") == 200)
            #expect(summary.connected == 0)
            #expect(summary.peak == 200)
        }

        /// Regression: an engine worker idle for longer than its handshake timeout used its
        /// pre-sleep clock for the first connections it accepted, gave them deadlines already
        /// past, and closed them as handshake timeouts.
        @Test func anIdleServerAcceptsItsNextConnections() throws {
            let server = try TestServer { $0.handshakeTimeoutMilliseconds = 1000 }
            defer { server.stop() }
            usleep(1_500_000)
            let summary = try LoadGenerator.run(options(.hold, port: server.port) {
                $0.connections = 1000
                $0.durationMilliseconds = 100
            })
            #expect(summary.succeeded, Comment(rawValue: summary.json))
            #expect(server.stats().closes(.handshakeTimeout) == 0)
        }
    }
}
