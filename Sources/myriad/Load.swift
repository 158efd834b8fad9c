import ArgumentParser
import Glibc
import MyriadLoad

extension LoadMode: ExpressibleByArgument {}
extension LoadDeflate: ExpressibleByArgument {}
extension LoadPayload: ExpressibleByArgument {}

/// `myriad load <mode>`: the load generator. Parses flags, runs `LoadGenerator`, prints a
/// progress line on a terminal and the JSON summary (see `LoadSummary`) on stdout.
struct Load: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open many WebSocket connections against a server and report what happened.",
        discussion: """
            Modes: hold (connect N, hold them answering pings, close), ping (hold, and ping every \
            connection every --ping-interval, measuring round trips), echo (--depth messages of \
            --size bytes in flight per connection, measuring messages/s and latency), churn \
            (connect, upgrade, close at --rate per second for --duration), fanout (N subscribers \
            of --path on a `myriad serve --app broadcast` server; once all are open, one of them \
            publishes a --size message every --publish-interval for --duration, and every \
            connection must receive every message once and in order: reports loss, duplicates, \
            order, publish-to-receive latency, and with --server-pid the server's CPU per delivery).
            Prints a JSON summary on stdout (schema in the README, "myriad load"); exit status 0 \
            only when the target was reached and no connection was lost (fanout: and every message \
            reached every connection exactly once, in order), 1 otherwise, 2 when the \
            run could not start (64 for a bad flag). Durations take ms/s/m/h (bare numbers are seconds).
            """)

    @Argument(help: "What to do once connected.") var mode: LoadMode
    @Option(help: "Server address (IPv4).") var host = "127.0.0.1"
    @Option(help: "Server port, or a comma list (several nodes): connections go round-robin over them, fanout's publisher on the first.")
    var port = "8080"
    @Option(help: "Request target of the upgrade request.") var path = "/"
    @Option(help: "Connections to open and hold (hold, ping, echo).") var connections = 1000
    @Option(help: "Hold / measure / cycle for this long after the ramp.") var duration = "30s"
    @Option(help: "New connections per second (0: as fast as --concurrency allows); churn: cycles per second.")
    var rate = 0
    @Option(help: "Connects and handshakes in flight at once.") var concurrency = 1024
    @Option(help: "Hard cap on the whole run (default: duration + 2m + 1s per 2,000 connections).")
    var timeLimit: String?
    @Option(help: "Source addresses, e.g. 127.0.0.2-127.0.0.40 (default: as many from 127.0.0.2 as the connections need).")
    var source: String?
    @Option(help: "Client threads, one io_uring ring each (default: one per RLIMIT_NOFILE connections).")
    var threads: Int?
    @Option(help: "Also write the JSON summary to this file.") var json: String?
    @Option(help: "ping: interval between two pings on a connection.") var pingInterval = "25s"
    @Option(help: "echo: message payload bytes (>= 8); fanout: (>= 16).") var size = 32
    @Option(help: "echo: messages in flight per connection.") var depth = 1
    @Flag(help: "hold/ping: after the hold, every connection sends one message and must get it back.")
    var verifyEcho = false
    @Option(help: "permessage-deflate: off, receive (offer it as browsers do and require the server's agreement; the server may compress what it sends), both (receive, and compress every data message sent too).")
    var deflate = LoadDeflate.off
    @Option(help: "echo/fanout: what a message carries after its header: filler (one repeated byte) or json (feed records, for measuring compression).")
    var payload = LoadPayload.filler
    @Option(help: "Time for a TCP connect.") var connectTimeout = "10s"
    @Option(help: "Time from connect to a valid 101 response.") var handshakeTimeout = "10s"
    @Option(help: "Time for the server to answer our close frame.") var closeTimeout = "10s"
    @Option(help: "fanout: time between two publishes.") var publishInterval = "1s"
    @Option(help: "fanout: longest wait after the publishing for deliveries still under way.") var drain = "10s"
    @Option(help: "fanout: the server's PID, to report its CPU time per delivery and its RSS.") var serverPid: Int32?

    func options() throws -> LoadOptions {
        var options = LoadOptions()
        options.mode = mode
        options.host = host
        guard let ports = parsePorts(port) else {
            throw ValidationError("--port \(port): expected a port 1...65535 or a comma list such as 8080,8081")
        }
        options.ports = ports
        options.path = path
        options.connections = connections
        options.durationMilliseconds = try milliseconds(duration, "--duration")
        options.rate = rate
        options.concurrency = concurrency
        options.timeLimitMilliseconds = try timeLimit.map { try milliseconds($0, "--time-limit") }
        if let source {
            do { options.sources = try SourceAddresses.parse(source) } catch { throw ValidationError(error.description) }
        }
        options.threads = threads
        options.pingIntervalMilliseconds = try milliseconds(pingInterval, "--ping-interval")
        options.messageSizeBytes = size
        options.depth = depth
        options.verifyEcho = verifyEcho
        options.deflate = deflate
        options.payload = payload
        options.connectTimeoutMilliseconds = try milliseconds(connectTimeout, "--connect-timeout")
        options.handshakeTimeoutMilliseconds = try milliseconds(handshakeTimeout, "--handshake-timeout")
        options.closeTimeoutMilliseconds = try milliseconds(closeTimeout, "--close-timeout")
        options.publishIntervalMilliseconds = try milliseconds(publishInterval, "--publish-interval")
        options.drainMilliseconds = try milliseconds(drain, "--drain")
        options.serverPID = serverPid
        do { try options.validate() } catch { throw ValidationError(error.description) }
        return options
    }

    func run() throws {
        let options = try options()
        signal(SIGPIPE, SIG_IGN)
        let terminal = isatty(STDERR_FILENO) == 1
        var drawn = false
        let summary: LoadSummary
        do {
            summary = try LoadGenerator.run(
                options,
                progress: terminal ? { snapshot in
                    writeStandardError(ProgressLine.redraw(snapshot))
                    drawn = true
                } : nil,
                log: { writeStandardError($0 + "\n") },
                stopOnSignals: true)
        } catch {
            var failed = LoadSummary(mode: options.mode, server: options.serverDescription)
            failed.target = options.target
            failed.error = error.description
            writeStandardError("error: \(error)\n")
            emit(failed)
            throw ExitCode(2)
        }
        if drawn { writeStandardError("\n") }
        emit(summary)
        if !summary.succeeded { throw ExitCode(1) }
    }

    private func emit(_ summary: LoadSummary) {
        let text = summary.json + "\n"
        print(text, terminator: "")
        fflush(nil)
        if let json {
            let fd = open(json, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            if fd >= 0 {
                var bytes = Array(text.utf8)
                var written = 0
                while written < bytes.count {
                    let result = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
                    if result <= 0 { break }
                    written += result
                }
                close(fd)
            } else {
                writeStandardError("error: cannot write \(json): \(String(cString: strerror(errno)))\n")
            }
        }
    }
}

private func milliseconds(_ text: String, _ flag: String) throws -> Int {
    guard let value = parseDuration(text) else {
        throw ValidationError("\(flag) \(text): expected a duration such as 500ms, 10s, 2m")
    }
    return value
}

private func writeStandardError(_ text: String) {
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
}
