import ArgumentParser
import Glibc
import Logging

@main
struct MyriadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "myriad",
        abstract: "A WebSocket connection engine for Linux on io_uring.",
        subcommands: [Serve.self, Load.self, DoctorCommand.self, Simulate.self]
    )
}

/// The process environment as a dictionary.
func currentEnvironment() -> [String: String] {
    var result: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
        let text = String(cString: entry)
        if let equals = text.firstIndex(of: "=") {
            result[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        pointer += 1
    }
    return result
}

/// Logs to stderr at `level`.
func makeLogger(level: Logger.Level) -> Logger {
    var logger = Logger(label: "myriad") { label in StreamLogHandler.standardError(label: label) }
    logger.logLevel = level
    return logger
}

enum FileHandle {
    /// Writes `text` to stderr (no Foundation in the CLI).
    static func standardErrorWrite(_ text: String) {
        var text = text
        text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }
}
