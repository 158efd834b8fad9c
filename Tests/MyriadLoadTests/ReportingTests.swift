import Foundation
import Glibc
import Testing
@testable import MyriadLoad

@Suite struct FailureAccountingTests {
    @Test func errnoNamesAreSymbolic() {
        #expect(errnoName(ECONNREFUSED) == "ECONNREFUSED")
        #expect(errnoName(ECONNRESET) == "ECONNRESET")
        #expect(errnoName(EADDRNOTAVAIL) == "EADDRNOTAVAIL")
        #expect(errnoName(ETIMEDOUT) == "ETIMEDOUT")
        #expect(errnoName(EPIPE) == "EPIPE")
        #expect(errnoName(EMFILE) == "EMFILE")
        #expect(errnoName(EPROTO) == "EPROTO")
        #expect(errnoName(ENETDOWN) == "ENETDOWN")
        #expect(errnoName(4095) == "errno_4095")
    }

    @Test func countsByKindAndReasonAndMerges() {
        var first = FailureCounts()
        first.record(.connect, errno: ECONNREFUSED)
        first.record(.connect, errno: ECONNREFUSED)
        first.record(.connect, errno: EADDRNOTAVAIL)
        first.record(.handshake, reason: "HTTP_503")
        var second = FailureCounts()
        second.record(.connect, errno: ECONNREFUSED, count: 3)
        second.record(.unexpectedClose, reason: "CLOSE_1001")
        second.record(.read, errno: ECONNRESET)
        let merged = first + second
        #expect(merged.count(.connect, "ECONNREFUSED") == 5)
        #expect(merged.count(.connect, "EADDRNOTAVAIL") == 1)
        #expect(merged.total(.connect) == 6)
        #expect(merged.total(.handshake) == 1)
        #expect(merged.total(.read) == 1)
        #expect(merged.total(.unexpectedClose) == 1)
        #expect(merged.total(.close) == 0)
        #expect(merged.total == 9)
        #expect(FailureCounts().total == 0)
    }

    @Test func kindsHaveTheirJSONNamesInOrder() {
        #expect(FailureKind.allCases.map(\.rawValue) == ["connect", "handshake", "read", "unexpected_close", "close"])
        #expect(FailureKind.connect < .close)
    }
}

@Suite struct HistogramTests {
    @Test func percentilesAreWithinTheBucketPrecision() {
        var histogram = Histogram()
        for value in 1...100_000 { histogram.record(UInt64(value) * 1000) }  // 1 us ... 100 ms
        #expect(histogram.count == 100_000)
        #expect(histogram.maximum == 100_000_000)
        for (fraction, exact) in [(0.5, 50_000_000.0), (0.99, 99_000_000.0), (0.001, 100_000.0)] {
            let reported = Double(histogram.percentile(fraction))
            #expect(abs(reported - exact) / exact < 1.0 / 64, "p\(fraction): \(reported) vs \(exact)")
        }
        #expect(histogram.percentile(1.0) == 100_000_000)
        #expect(Histogram().percentile(0.5) == 0)
    }

    @Test func smallValuesAreExactAndBucketsAreContiguous() {
        for value: UInt64 in [0, 1, 127, 128, 129, 255, 256, 1 << 40, .max] {
            let index = Histogram.index(of: value)
            #expect(index < Histogram.bucketCount)
            if value < 128 { #expect(Histogram.value(at: index) == value) }
        }
        var previous = 0
        for value in stride(from: UInt64(0), to: 1 << 20, by: 7) {
            let index = Histogram.index(of: value)
            #expect(index >= previous)
            previous = index
        }
    }

    @Test func mergeAddsCountsAndKeepsExtremes() {
        var a = Histogram()
        var b = Histogram()
        a.record(10)
        b.record(1_000_000)
        b.record(5)
        a.merge(b)
        #expect(a.count == 3)
        #expect(a.maximum == 1_000_000)
        #expect(a.minimum == 5)
        #expect(a.percentile(0.5) == 10)
    }
}

@Suite struct SummaryTests {
    func sample() -> LoadSummary {
        var summary = LoadSummary(mode: .hold, server: "127.0.0.1:8080")
        summary.target = 25000
        summary.connected = 25000
        summary.peak = 25000
        summary.durationSeconds = 12.3456
        summary.rampSeconds = 4
        summary.holdSeconds = 2
        summary.threads = 2
        summary.rings = 4
        summary.sources = "127.0.0.2-127.0.0.3"
        summary.handshakes = 25000
        summary.cleanCloses = 25000
        summary.serverPingsAnswered = 7
        summary.roundTrip.record(1_500_000)
        summary.verifyOK = 25000
        summary.verifyFailed = 0
        summary.clientRSSBytes = 64 << 20
        summary.clientStateBytesPerConnection = 144
        return summary
    }

    func parse(_ json: String) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
    }

    @Test func jsonHasTheDocumentedSchema() throws {
        var summary = sample()
        summary.failures.record(.connect, errno: ECONNREFUSED, count: 2)
        summary.failures.record(.handshake, reason: "HTTP_503")
        let object = try parse(summary.json)
        #expect(object["mode"] as? String == "hold")
        #expect(object["server"] as? String == "127.0.0.1:8080")
        #expect(object["target"] as? Int == 25000)
        #expect(object["connected"] as? Int == 25000)
        #expect(object["peak"] as? Int == 25000)
        #expect(object["duration_s"] as? Double == 12.346)
        #expect(object["handshake_rate_per_s"] as? Double == 6250)
        #expect(object["threads"] as? Int == 2)
        #expect(object["rings"] as? Int == 4)
        #expect(object["sources"] as? String == "127.0.0.2-127.0.0.3")
        let failures = try #require(object["failures"] as? [String: [String: Int]])
        #expect(Set(failures.keys) == ["connect", "handshake", "read", "unexpected_close", "close"])
        #expect(failures["connect"] == ["ECONNREFUSED": 2])
        #expect(failures["handshake"] == ["HTTP_503": 1])
        #expect(failures["read"] == [:])
        #expect(object["failures_total"] as? Int == 3)
        #expect(object["unexpected_closes"] as? Int == 0)
        #expect(object["server_pings_answered"] as? Int == 7)
        let rtt = try #require(object["rtt_ms"] as? [String: Any])
        #expect(rtt["p50"] as? Double == 1.5)
        #expect(rtt["max"] as? Double == 1.5)
        #expect(rtt["samples"] as? Int == 1)
        #expect(object["latency_ms"] is [String: Any])
        #expect(object["messages_per_s"] as? Double == 0)
        #expect(object["verify_echo"] as? [String: Int] == ["ok": 25000, "failed": 0])
        #expect(object["diagnostics"] as? [String: Int]
            == ["enobufs_rearms": 0, "cq_overflows": 0, "waits": 0, "dropped_frames": 0, "unexpected_messages": 0,
                "messages_compressed": 0, "messages_inflated": 0])
        #expect(object["client_rss_mib"] as? Double == 64)
        #expect(object["client_state_bytes_per_connection"] as? Int == 144)
        #expect(object["time_limit_reached"] as? Bool == false)
        #expect(object["interrupted"] as? Bool == false)
        // hold succeeds on connections: the target was reached and none was lost.
        #expect(object["ok"] as? Bool == true)
        #expect(object["error"] == nil)
    }

    @Test func keysComeInTheDocumentedOrder() {
        let json = sample().json
        let keys = ["\"mode\"", "\"server\"", "\"target\"", "\"connected\"", "\"peak\"", "\"duration_s\"", "\"ramp_s\"",
                    "\"hold_s\"", "\"threads\"", "\"rings\"", "\"sources\"", "\"failures\"", "\"failures_total\"", "\"handshakes\"",
                    "\"handshake_rate_per_s\"", "\"unexpected_closes\"", "\"clean_closes\"", "\"pings_sent\"",
                    "\"pongs_received\"", "\"server_pings_answered\"", "\"rtt_ms\"", "\"messages_sent\"",
                    "\"messages_received\"", "\"messages_per_s\"", "\"latency_ms\"", "\"verify_echo\"", "\"diagnostics\"",
                    "\"client_rss_mib\"", "\"client_state_bytes_per_connection\"", "\"time_limit_reached\"",
                    "\"interrupted\"", "\"ok\""]
        var position = json.startIndex
        for key in keys {
            guard let found = json.range(of: key, range: position..<json.endIndex) else {
                Issue.record("\(key) missing or out of order in \(json)")
                return
            }
            position = found.upperBound
        }
        #expect(!json.contains("\n"))
    }

    @Test func verifyEchoAppearsOnlyWhenUsedAndErrorsOnlyWhenSet() throws {
        var summary = sample()
        summary.verifyOK = nil
        summary.verifyFailed = nil
        #expect(try parse(summary.json)["verify_echo"] == nil)
        summary.error = "io_uring_setup: \"EPERM\"\n"
        let object = try parse(summary.json)
        #expect(object["error"] as? String == "io_uring_setup: \"EPERM\"\n")
        #expect(object["ok"] as? Bool == false)
    }

    @Test func exitStatusRules() {
        #expect(sample().succeeded)
        var short = sample()
        short.connected = 24999
        #expect(!short.succeeded)
        var lost = sample()
        lost.unexpectedCloses = 1
        #expect(!lost.succeeded)
        var verify = sample()
        verify.verifyFailed = 1
        #expect(!verify.succeeded)
        var limited = sample()
        limited.timeLimitReached = true
        #expect(!limited.succeeded)
        var interrupted = sample()
        interrupted.interrupted = true
        #expect(!interrupted.succeeded)
        var ping = sample()
        ping.mode = .ping
        ping.pingsSent = 10
        ping.pongsReceived = 9
        #expect(!ping.succeeded)
        ping.pongsReceived = 10
        #expect(ping.succeeded)
        var churn = sample()
        churn.mode = .churn
        churn.verifyOK = nil
        churn.verifyFailed = nil
        churn.failures.record(.close, errno: ETIMEDOUT)
        #expect(!churn.succeeded)
        var echo = sample()
        echo.mode = .echo
        echo.verifyOK = nil
        echo.verifyFailed = nil
        #expect(!echo.succeeded)  // no message came back
        echo.messagesReceived = 1
        #expect(echo.succeeded)
    }

    @Test func numbersAndStringsAreWrittenAsJSON() {
        #expect(JSONWriter.decimal(0) == "0.000")
        #expect(JSONWriter.decimal(1.0006) == "1.001")
        #expect(JSONWriter.decimal(-2.5) == "-2.500")
        #expect(JSONWriter.decimal(12345.6789) == "12345.679")
        #expect(JSONWriter.decimal(.nan) == "null")
        #expect(JSONWriter.decimal(.infinity) == "null")
        #expect(JSONWriter.quoted("a\"b\\c\n\u{01}é") == "\"a\\\"b\\\\c\\n\\u0001é\"")
    }
}

@Suite struct ProgressLineTests {
    let snapshot = ProgressSnapshot(
        mode: .hold, phase: .ramp, open: 12500, target: 25000, handshakes: 12500, ratePerSecond: 8123.4,
        failures: [.connect: 3, .unexpectedClose: 1], elapsedSeconds: 3.25)

    @Test func rendersConnectedTargetRateFailuresAndElapsed() {
        #expect(ProgressLine.render(snapshot)
            == "hold ramp 12,500/25,000 open  8,123/s  failures connect=3 handshake=0 read=0 unexpected_close=1 close=0  3.2s")
    }

    @Test func churnShowsCyclesAndTheRedrawErasesTheOldLine() {
        var churn = snapshot
        churn.mode = .churn
        churn.open = 40
        churn.handshakes = 1500
        churn.target = 3000
        churn.elapsedSeconds = 61.99
        #expect(ProgressLine.render(churn)
            == "churn ramp 1,500/3,000 cycles, 40 open  8,123/s  failures connect=3 handshake=0 read=0 unexpected_close=1 close=0  61.9s")
        let redraw = ProgressLine.redraw(snapshot)
        #expect(redraw.hasPrefix("\r"))
        #expect(redraw.hasSuffix("\u{1B}[K"))
        #expect(!redraw.contains("\n"))
    }

    @Test func groupsThousands() {
        #expect(ProgressLine.grouped(0) == "0")
        #expect(ProgressLine.grouped(999) == "999")
        #expect(ProgressLine.grouped(1000) == "1,000")
        #expect(ProgressLine.grouped(1_000_000) == "1,000,000")
        #expect(ProgressLine.grouped(-12345) == "-12,345")
    }

    @Test func redrawsAtMostFourTimesASecond() {
        #expect(ProgressLine.intervalNanoseconds >= 250_000_000)
    }
}
