import Foundation
import Glibc
import MyriadTestSupport
import NATSTestSupport

/// The real `myriad serve` binary as a child process.
final class ServerProcess {
    let process = Process()
    let port: UInt16
    let outputURL: URL

    /// Starts `myriad serve` with `environment` (MYRIAD_* variables of the test process are
    /// dropped), under `launcher` when given (e.g. the seccomp launcher and its rules).
    init(environment: [String: String], launcher: [String] = []) throws {
        port = freeLoopbackPort()
        if let program = launcher.first {
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = Array(launcher.dropFirst()) + [ExternalClient.myriadBinary, "serve"]
        } else {
            process.executableURL = URL(fileURLWithPath: ExternalClient.myriadBinary)
            process.arguments = ["serve"]
        }
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("MYRIAD_") }
        env["MYRIAD_HOST"] = "127.0.0.1"
        env["MYRIAD_PORT"] = String(port)
        for (key, value) in environment { env[key] = value }
        process.environment = env
        outputURL = FileManager.default.temporaryDirectory.appendingPathComponent("myriad-serve-\(port).log")
        FileManager.default.createFile(atPath: outputURL.path, contents: nil)
        let handle = try FileHandle(forWritingTo: outputURL)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        // Ready when it accepts connections (bounded).
        for _ in 0..<100 {
            if (try? RawClient(port: port)) != nil { return }
            usleep(50_000)
        }
        throw ClientError("myriad serve did not start: \(output)")
    }

    var output: String { (try? String(contentsOf: outputURL, encoding: .utf8)) ?? "" }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits for exit (bounded); returns the exit status, or nil if it had to be killed.
    func waitForExit(seconds: Double) -> Int32? {
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
