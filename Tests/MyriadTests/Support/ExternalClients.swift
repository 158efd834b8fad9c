import Foundation

/// Third-party clients run as child processes against a test server.
enum ExternalClient {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The venv `make test` creates with `websockets` from PyPI (or TEST_PYTHON).
    static var python: String {
        ProcessInfo.processInfo.environment["TEST_PYTHON"]
            ?? packageRoot.appendingPathComponent(".venv/bin/python").path
    }

    static var clientsDirectory: URL { packageRoot.appendingPathComponent("Tests/clients") }

    /// The `myriad` binary built next to the tests.
    static var myriadBinary: String {
        ProcessInfo.processInfo.environment["TEST_MYRIAD_BINARY"]
            ?? packageRoot.appendingPathComponent(".build/debug/myriad").path
    }

    struct Result {
        var status: Int32
        var output: String
    }

    /// Runs `executable` with `arguments`, killing it after `timeout` seconds.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                    timeout: Double = 60) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let outputURL = FileManager.default.temporaryDirectory
            .appendingPathComponent("myriad-client-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log")
        FileManager.default.createFile(atPath: outputURL.path, contents: nil)
        let outputHandle = try FileHandle(forWritingTo: outputURL)
        defer { try? FileManager.default.removeItem(at: outputURL) }
        process.standardOutput = outputHandle
        process.standardError = outputHandle
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            process.terminate()
        }
        process.waitUntilExit()
        try? outputHandle.close()
        let output = (try? Data(contentsOf: outputURL)) ?? Data()
        return Result(status: process.terminationStatus, output: String(decoding: output, as: UTF8.self))
    }

    /// The seccomp launcher (Tests/clients/syscall_fault.c), compiled once: runs a command
    /// with chosen system calls failing.
    static let syscallFault: String = {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("myriad-syscall-fault-\(getpid())").path
        let source = clientsDirectory.appendingPathComponent("syscall_fault.c").path
        let result = try? run("/usr/bin/cc", ["-O2", "-o", output, source])
        precondition(result?.status == 0, "cannot build the seccomp launcher: \(result?.output ?? "")")
        return output
    }()

    static func pythonEcho(port: UInt16) throws -> Result {
        try run(python, [clientsDirectory.appendingPathComponent("echo_check.py").path, String(port)])
    }

    static func nodeEcho(port: UInt16) throws -> Result {
        try run("/usr/bin/node", [clientsDirectory.appendingPathComponent("echo_check.js").path, String(port)],
                environment: ["NODE_PATH": "/usr/share/nodejs"])
    }
}
