import NATSTestSupport
import MyriadTestSupport
import Foundation
import WebSocketCodec
import Glibc

/// A real `myriad serve --app broadcast` child with clustering on, on a free port of
/// 127.0.0.1, printing a stats line every 100 ms (which the tests read the cluster counters
/// from). Stopped by PID: SIGTERM, then SIGKILL if it does not exit in time.
final class ClusterNode {
    let process = Process()
    let port: UInt16
    let outputURL: URL
    let name: String

    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var myriadBinary: String {
        ProcessInfo.processInfo.environment["TEST_MYRIAD_BINARY"]
            ?? packageRoot.appendingPathComponent(".build/debug/myriad").path
    }

    init(clusterURL: String, environment: [String: String] = [:], name: String) throws {
        self.name = name
        port = freeLoopbackPort()
        process.executableURL = URL(fileURLWithPath: Self.myriadBinary)
        process.arguments = ["serve"]
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("MYRIAD_") }
        env["MYRIAD_HOST"] = "127.0.0.1"
        env["MYRIAD_PORT"] = String(port)
        env["MYRIAD_WORKERS"] = "2"
        env["MYRIAD_APP"] = "broadcast"
        env["MYRIAD_STATS_INTERVAL"] = "100ms"
        env["MYRIAD_SHUTDOWN_TIMEOUT"] = "2s"
        env["MYRIAD_CLUSTER_URL"] = clusterURL
        for (key, value) in environment { env[key] = value }
        process.environment = env
        outputURL = FileManager.default.temporaryDirectory.appendingPathComponent("myriad-cluster-\(name)-\(port).log")
        FileManager.default.createFile(atPath: outputURL.path, contents: nil)
        let handle = try FileHandle(forWritingTo: outputURL)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if !process.isRunning { throw ClientError("myriad serve (\(name)) exited at start: \(output)") }
            if canConnect(port: port) { return }
            usleep(20_000)
        }
        throw ClientError("myriad serve (\(name)) did not start: \(output)")
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var output: String { (try? String(contentsOf: outputURL, encoding: .utf8)) ?? "" }

    /// CONNECT's name: `myriad/<host>:<port>/<pid>`.
    var natsNameSuffix: String { ":\(port)/\(pid)" }

    /// The last stats line's `key=value` fields (the cluster's among them).
    func lastStats() -> [String: String] {
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("stats ") }) else { return [:] }
        var fields: [String: String] = [:]
        for part in line.split(separator: " ") {
            guard let equals = part.firstIndex(of: "=") else { continue }
            fields[String(part[..<equals])] = String(part[part.index(after: equals)...])
        }
        return fields
    }

    /// Open connections per worker, from the last stats line's `[a/b]`.
    func openPerWorker() -> [Int] {
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("stats ") }),
            let part = line.split(separator: " ").first(where: { $0.hasPrefix("[") })
        else { return [] }
        return part.dropFirst().dropLast().split(separator: "/").compactMap { Int($0) }
    }

    /// A numeric field of the last stats line (0 when absent: rare counters show when not zero).
    func stat(_ key: String) -> Int { Int(lastStats()[key] ?? "0") ?? -1 }

    /// Waits for a stats line printed after now that satisfies `condition`.
    @discardableResult
    func waitForStats(seconds: Double = 10, _ condition: ([String: String]) -> Bool) -> Bool {
        waitUntil(seconds: seconds) { condition(lastStats()) }
    }

    /// SIGTERM and wait (bounded); the exit status, or nil when it had to be killed.
    func stop(seconds: Double = 10) -> Int32? {
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: outputURL)
    }
}

extension NATSServerProcess {
    /// The subjects the connection whose name ends with `suffix` is subscribed to (/connz).
    func subscriptions(ofClientNameEndingWith suffix: String) throws -> [String]? {
        let connz = try monitor("/connz?subs=1")
        let connections = connz["connections"] as? [[String: Any]] ?? []
        guard let connection = connections.first(where: { ($0["name"] as? String)?.hasSuffix(suffix) == true }) else { return nil }
        return (connection["subscriptions_list"] as? [String] ?? []).sorted()
    }

    func subscriptions(of node: ClusterNode) throws -> [String]? { try subscriptions(ofClientNameEndingWith: node.natsNameSuffix) }
}

/// A broadcast client: connected and upgraded on `path` of `node` (subscribed once the
/// upgrade is done: the server subscribes in onOpen).
func subscriber(_ node: ClusterNode, path: String) throws -> RawClient {
    let client = try RawClient(port: node.port)
    try client.upgrade(path: path)
    return client
}

extension RawClient {
    /// Every data message that arrives until nothing comes for `quiet` seconds (or `limit`).
    func drain(quiet: Double = 0.3, limit: Int = 100_000) throws -> [(opcode: Opcode, payload: [UInt8])] {
        var messages: [(opcode: Opcode, payload: [UInt8])] = []
        while messages.count < limit {
            do {
                guard let message = try readMessage(timeout: quiet) else { break }
                if message.opcode == .text || message.opcode == .binary { messages.append((message.opcode, message.payload)) }
            } catch let error as ClientError where error.description.hasPrefix("timed out") {
                break
            }
        }
        return messages
    }

    /// Exactly `count` data messages (each within `timeout`), then nothing more for `quiet`
    /// (0: do not wait; `expectNothingMore` checks many clients with one pause).
    func receiveExactly(_ count: Int, timeout: Double = 10, quiet: Double = 0.3) throws -> [(opcode: Opcode, payload: [UInt8])] {
        var messages: [(opcode: Opcode, payload: [UInt8])] = []
        while messages.count < count {
            guard let message = try readMessage(timeout: timeout) else { throw ClientError("closed after \(messages.count) of \(count)") }
            if message.opcode == .text || message.opcode == .binary { messages.append((message.opcode, message.payload)) }
        }
        if quiet > 0 {
            let extra = try drain(quiet: quiet)
            if !extra.isEmpty { throw ClientError("\(extra.count) message(s) more than the \(count) expected") }
        }
        return messages
    }
}

/// After one pause of `quiet` seconds, the clients that received more data messages, and how many.
func extraMessages(_ clients: [RawClient], quiet: Double = 0.3) throws -> [Int: Int] {
    usleep(UInt32(quiet * 1_000_000))
    var extra: [Int: Int] = [:]
    for (index, client) in clients.enumerated() {
        let count = try client.drain(quiet: 0.02).count
        if count > 0 { extra[index] = count }
    }
    return extra
}
