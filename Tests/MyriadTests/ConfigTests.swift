import Testing
@testable import Myriad

@Suite struct ConfigTests {
    func load(_ environment: [String: String], overrides: [String: String] = [:]) -> Result<Config, ConfigError> {
        do throws(ConfigError) {
            return .success(try Config.load(environment: environment, overrides: overrides))
        } catch {
            return .failure(error)
        }
    }

    func accepted(_ environment: [String: String], overrides: [String: String] = [:],
                  sourceLocation: SourceLocation = #_sourceLocation) -> Config? {
        switch load(environment, overrides: overrides) {
        case .success(let config): return config
        case .failure(let error):
            Issue.record("rejected \(environment) \(overrides): \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    /// The error for `value` of `variable`, checked to name the variable, the value and
    /// `range` (the accepted range, as the message words it).
    @discardableResult
    func rejected(_ variable: String, _ value: String, range: String, with others: [String: String] = [:],
                  shown: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) -> ConfigError? {
        var environment = others
        environment[variable] = value
        switch load(environment) {
        case .success:
            Issue.record("accepted \(variable)=\(value)", sourceLocation: sourceLocation)
            return nil
        case .failure(let error):
            #expect(error.variable == variable, sourceLocation: sourceLocation)
            let shown = shown ?? value.trimmingSpaces
            #expect(error.value == shown, sourceLocation: sourceLocation)
            let text = error.description
            #expect(text.contains(variable) && text.contains("\"\(shown)\"") && text.contains(range),
                    "\(text) should name \(range)", sourceLocation: sourceLocation)
            return error
        }
    }

    @Test func noEnvironmentGivesTheDefaults() throws {
        let config = try #require(accepted(["PATH": "/usr/bin", "HOME": "/root", "MYRIADX": "1", "myriad_port": "1"]))
        let defaults = Config()
        #expect(config.host == "0.0.0.0" && config.port == 8080)
        #expect(config.workers == Config.onlineCores && config.maxConnections == nil)
        #expect(config.backend == .auto)
        #expect(config.ringEntries == 4096 && config.completionEntries == nil)
        #expect(config.bufferSizeBytes == 4096 && config.bufferCount == 1024)
        #expect(config.maxMessageSizeBytes == 1 << 20 && config.maxQueuedBytes == 4 << 20)
        #expect(config.maxHeaderBytes == 8192 && config.listenBacklog == 4096)
        #expect(config.timerTickMilliseconds == 50)
        #expect(config.handshakeTimeoutMilliseconds == 10_000)
        #expect(config.pingIntervalMilliseconds == 25_000)
        #expect(config.pongTimeoutMilliseconds == 10_000)
        #expect(config.idleTimeoutMilliseconds == 0)
        #expect(config.closeTimeoutMilliseconds == 5_000)
        #expect(config.shutdownTimeoutMilliseconds == 10_000)
        #expect(config.statsIntervalMilliseconds == 0)
        #expect(config.logLevel == defaults.logLevel && config.disabledURingFeatures.isEmpty)
    }

    @Test func documentedDefaultsParseToTheDefaults() throws {
        // Each knob's documented default, written out as a user would.
        let config = try #require(accepted([
            "MYRIAD_HOST": "0.0.0.0", "MYRIAD_PORT": "8080", "MYRIAD_BACKEND": "auto",
            "MYRIAD_RING_ENTRIES": "4096", "MYRIAD_CQ_ENTRIES": "16384", "MYRIAD_BUFFER_SIZE": "4096",
            "MYRIAD_BUFFER_COUNT": "1024", "MYRIAD_MAX_MESSAGE_SIZE": "1 MiB", "MYRIAD_MAX_QUEUED_BYTES": "4 MiB",
            "MYRIAD_MAX_HEADER_SIZE": "8 KiB", "MYRIAD_BACKLOG": "4096", "MYRIAD_TIMER_TICK": "50ms",
            "MYRIAD_HANDSHAKE_TIMEOUT": "10s", "MYRIAD_PING_INTERVAL": "25s", "MYRIAD_PONG_TIMEOUT": "10s",
            "MYRIAD_IDLE_TIMEOUT": "0", "MYRIAD_CLOSE_TIMEOUT": "5s", "MYRIAD_SHUTDOWN_TIMEOUT": "10s",
            "MYRIAD_STATS_INTERVAL": "0", "MYRIAD_LOG_LEVEL": "info", "MYRIAD_URING_DISABLE": "",
        ]))
        #expect(config.port == 8080 && config.ringEntries == 4096 && config.completionEntries == 16384)
        #expect(config.maxMessageSizeBytes == 1 << 20 && config.maxQueuedBytes == 4 << 20 && config.maxHeaderBytes == 8192)
        #expect(config.timerTickMilliseconds == 50 && config.handshakeTimeoutMilliseconds == 10_000)
        #expect(config.pingIntervalMilliseconds == 25_000 && config.pongTimeoutMilliseconds == 10_000)
        #expect(config.idleTimeoutMilliseconds == 0 && config.closeTimeoutMilliseconds == 5_000)
        #expect(config.shutdownTimeoutMilliseconds == 10_000 && config.statsIntervalMilliseconds == 0)
        #expect(config.disabledURingFeatures.isEmpty)
    }

    @Test func knobTableIsConsistent() {
        let variables = Config.knobs.map(\.variable)
        #expect(Set(variables).count == variables.count)
        #expect(Set(Config.knobs.map(\.flag)).count == variables.count)
        for knob in Config.knobs {
            #expect(knob.variable.hasPrefix("MYRIAD_") && knob.variable == knob.variable.uppercased())
            // The flag is the variable's name in kebab case.
            let kebab = String(knob.variable.dropFirst("MYRIAD_".count).lowercased().map { $0 == "_" ? "-" : $0 })
            #expect(knob.flag == kebab, "\(knob.variable) -> --\(knob.flag)")
            #expect(!knob.defaultValue.isEmpty && !knob.range.isEmpty && !knob.help.isEmpty)
        }
    }

    // MARK: - Each knob's range

    @Test func integerKnobs() {
        #expect(accepted(["MYRIAD_HOST": "127.0.0.1"])?.host == "127.0.0.1")
        for value in ["localhost", "::1", "256.0.0.1", "", "1.2.3"] {
            rejected("MYRIAD_HOST", value, range: "an IPv4 address")
        }
        #expect(accepted(["MYRIAD_PORT": "0"])?.port == 0)
        #expect(accepted(["MYRIAD_PORT": "65535"])?.port == 65535)
        #expect(accepted(["MYRIAD_PORT": " 8081\t"])?.port == 8081)
        for value in ["65536", "-1", "http", "80.5", "", "8080x", "99999999999999999999"] {
            rejected("MYRIAD_PORT", value, range: "0...65535")
        }
        #expect(accepted(["MYRIAD_WORKERS": "1"])?.workers == 1)
        #expect(accepted(["MYRIAD_WORKERS": "1024"])?.workers == 1024)
        for value in ["0", "1025", "two", "-4"] { rejected("MYRIAD_WORKERS", value, range: "1...1024") }
        #expect(accepted(["MYRIAD_MAX_CONNECTIONS": "1", "MYRIAD_WORKERS": "1"])?.maxConnections == 1)
        #expect(accepted(["MYRIAD_MAX_CONNECTIONS": "16777216"])?.maxConnections == 16_777_216)
        for value in ["0", "16777217", "1M"] { rejected("MYRIAD_MAX_CONNECTIONS", value, range: "1...16777216") }
        #expect(accepted(["MYRIAD_BACKLOG": "1"])?.listenBacklog == 1)
        #expect(accepted(["MYRIAD_BACKLOG": "1048576"])?.listenBacklog == 1_048_576)
        for value in ["0", "1048577"] { rejected("MYRIAD_BACKLOG", value, range: "1...1048576") }
    }

    @Test func choiceKnobs() {
        for choice in BackendChoice.allCases {
            #expect(accepted(["MYRIAD_BACKEND": choice.rawValue])?.backend == choice)
        }
        for value in ["uring", "EPOLL", "", "io-uring"] { rejected("MYRIAD_BACKEND", value, range: "auto, io_uring, epoll") }
        #expect(accepted(["MYRIAD_LOG_LEVEL": "debug"])?.logLevel.rawValue == "debug")
        #expect(accepted(["MYRIAD_LOG_LEVEL": "WARNING"])?.logLevel.rawValue == "warning")
        for value in ["verbose", "", "warn"] {
            rejected("MYRIAD_LOG_LEVEL", value, range: "trace, debug, info, notice, warning, error, critical")
        }
        #expect(accepted(["MYRIAD_URING_DISABLE": "defer_taskrun"])?.disabledURingFeatures == [.deferTaskrun])
        #expect(accepted(["MYRIAD_URING_DISABLE": "defer_taskrun, multishot_recv"])?.disabledURingFeatures
                == [.deferTaskrun, .multishotReceive])
        #expect(accepted(["MYRIAD_URING_DISABLE": ""])?.disabledURingFeatures == [])
        for value in ["sqpoll", "defer_taskrun,sqpoll", "DEFER_TASKRUN"] {
            rejected("MYRIAD_URING_DISABLE", value, range: "defer_taskrun, multishot_recv")
        }
    }

    @Test func powerOfTwoKnobs() {
        for value in [8, 16, 4096, 32768] as [UInt32] {
            #expect(accepted(["MYRIAD_RING_ENTRIES": "\(value)"])?.ringEntries == value)
        }
        for value in ["4", "65536", "100", "4K", "0", "-8"] {
            rejected("MYRIAD_RING_ENTRIES", value, range: "a power of two in 8...32768")
        }
        for value in [4096, 8192, 131_072] as [UInt32] {
            #expect(accepted(["MYRIAD_CQ_ENTRIES": "\(value)"])?.completionEntries == value)
        }
        for value in ["262144", "5000", "4"] { rejected("MYRIAD_CQ_ENTRIES", value, range: "a power of two in 8...131072") }
        for value in [1, 2, 1024, 32768] as [UInt32] {
            #expect(accepted(["MYRIAD_BUFFER_COUNT": "\(value)"])?.bufferCount == value)
        }
        for value in ["0", "3", "65536", "1K"] { rejected("MYRIAD_BUFFER_COUNT", value, range: "a power of two in 1...32768") }
    }

    @Test func sizeKnobs() {
        for (value, bytes) in [("256", 256), ("4096", 4096), ("4K", 4096), ("4KiB", 4096), ("4 K", 4096), ("4096B", 4096),
                               ("1M", 1 << 20), ("1MiB", 1 << 20)] {
            #expect(accepted(["MYRIAD_BUFFER_SIZE": value])?.bufferSizeBytes == UInt32(bytes), "\(value)")
        }
        for value in ["255", "2M", "1.5K", "K", "", "-1K", "1GiB", "99999999999999999G", "4 KB"] {
            rejected("MYRIAD_BUFFER_SIZE", value, range: "256 B...1 MiB")
        }
        #expect(accepted(["MYRIAD_MAX_MESSAGE_SIZE": "1"])?.maxMessageSizeBytes == 1)
        #expect(accepted(["MYRIAD_MAX_MESSAGE_SIZE": "64MiB"])?.maxMessageSizeBytes == 64 << 20)
        for value in ["0", "1G", "65M"] { rejected("MYRIAD_MAX_MESSAGE_SIZE", value, range: "1 B...64 MiB") }
        #expect(accepted(["MYRIAD_MAX_QUEUED_BYTES": "1K"])?.maxQueuedBytes == 1024)
        #expect(accepted(["MYRIAD_MAX_QUEUED_BYTES": "64M"])?.maxQueuedBytes == 64 << 20)
        for value in ["1023", "65M"] { rejected("MYRIAD_MAX_QUEUED_BYTES", value, range: "1 KiB...64 MiB") }
        #expect(accepted(["MYRIAD_MAX_HEADER_SIZE": "256"])?.maxHeaderBytes == 256)
        #expect(accepted(["MYRIAD_MAX_HEADER_SIZE": "64K"])?.maxHeaderBytes == 65536)
        for value in ["255", "65537"] { rejected("MYRIAD_MAX_HEADER_SIZE", value, range: "256 B...64 KiB") }
    }

    @Test func durationForms() {
        for (value, milliseconds) in [("500ms", 500), ("10s", 10_000), ("1.5s", 1500), ("2m", 120_000), ("10", 10_000),
                                      ("1.5", 1500), ("0.25s", 250), ("1h", 3_600_000), ("1.005s", 1005),
                                      ("16.1s", 16_100), ("2.01s", 2010), ("0.5m", 30_000)] {
            #expect(accepted(["MYRIAD_HANDSHAKE_TIMEOUT": value])?.handshakeTimeoutMilliseconds == milliseconds, "\(value)")
        }
        // Every duration a user could write with up to three decimals of seconds.
        for thousandths in 10...100_000 {
            let value = "\(thousandths / 1000).\(String(1000 + thousandths % 1000).dropFirst())s"
            guard (try? Config.duration("MYRIAD_HANDSHAKE_TIMEOUT", value, 10...3_600_000)) == thousandths else {
                Issue.record("MYRIAD_HANDSHAKE_TIMEOUT=\(value) is not \(thousandths) ms")
                break
            }
        }
        for value in ["10 s", "s", "ten", "1.0005s", "-1s", "inf", "nan", "5ms", "2h", "3600001ms", "1e400"] {
            rejected("MYRIAD_HANDSHAKE_TIMEOUT", value, range: "10ms...1h")
        }
    }

    @Test func durationKnobs() {
        #expect(accepted(["MYRIAD_TIMER_TICK": "1ms"])?.timerTickMilliseconds == 1)
        #expect(accepted(["MYRIAD_TIMER_TICK": "1"])?.timerTickMilliseconds == 1000)
        #expect(accepted(["MYRIAD_TIMER_TICK": "0.01s"])?.timerTickMilliseconds == 10)
        for value in ["0", "0ms", "1001ms", "2s", "1.5ms", "fast"] { rejected("MYRIAD_TIMER_TICK", value, range: "1ms...1s") }

        #expect(accepted(["MYRIAD_PING_INTERVAL": "0"])?.pingIntervalMilliseconds == 0)
        #expect(accepted(["MYRIAD_PING_INTERVAL": "0s"])?.pingIntervalMilliseconds == 0)
        #expect(accepted(["MYRIAD_PING_INTERVAL": "100ms"])?.pingIntervalMilliseconds == 100)
        #expect(accepted(["MYRIAD_PING_INTERVAL": "1d"])?.pingIntervalMilliseconds == 86_400_000)
        for value in ["50ms", "25h", "2d", "0.0001ms", "1e308d"] { rejected("MYRIAD_PING_INTERVAL", value, range: "0 or a duration in 100ms...1d") }

        #expect(accepted(["MYRIAD_PONG_TIMEOUT": "100ms"])?.pongTimeoutMilliseconds == 100)
        #expect(accepted(["MYRIAD_PONG_TIMEOUT": "1h"])?.pongTimeoutMilliseconds == 3_600_000)
        for value in ["0", "99ms", "61m"] { rejected("MYRIAD_PONG_TIMEOUT", value, range: "100ms...1h") }

        #expect(accepted(["MYRIAD_IDLE_TIMEOUT": "0"])?.idleTimeoutMilliseconds == 0)
        #expect(accepted(["MYRIAD_IDLE_TIMEOUT": "1s"])?.idleTimeoutMilliseconds == 1000)
        #expect(accepted(["MYRIAD_IDLE_TIMEOUT": "30d"])?.idleTimeoutMilliseconds == 2_592_000_000)
        for value in ["999ms", "31d"] { rejected("MYRIAD_IDLE_TIMEOUT", value, range: "0 or a duration in 1s...30d") }

        #expect(accepted(["MYRIAD_CLOSE_TIMEOUT": "10ms"])?.closeTimeoutMilliseconds == 10)
        for value in ["9ms", "0", "2h"] { rejected("MYRIAD_CLOSE_TIMEOUT", value, range: "10ms...1h") }

        #expect(accepted(["MYRIAD_SHUTDOWN_TIMEOUT": "0"])?.shutdownTimeoutMilliseconds == 0)
        #expect(accepted(["MYRIAD_SHUTDOWN_TIMEOUT": "1h"])?.shutdownTimeoutMilliseconds == 3_600_000)
        for value in ["61m", "-1"] { rejected("MYRIAD_SHUTDOWN_TIMEOUT", value, range: "0ms...1h") }

        #expect(accepted(["MYRIAD_STATS_INTERVAL": "0"])?.statsIntervalMilliseconds == 0)
        #expect(accepted(["MYRIAD_STATS_INTERVAL": "100ms"])?.statsIntervalMilliseconds == 100)
        for value in ["10ms", "2h"] { rejected("MYRIAD_STATS_INTERVAL", value, range: "0 or a duration in 100ms...1h") }
    }

    // MARK: - Across knobs

    @Test func unknownVariablesAreRejected() {
        for name in ["MYRIAD_PORTT", "MYRIAD_", "MYRIAD_PING_INTERVALS", "MYRIAD_port"] {
            guard case .failure(let error) = load([name: "1"]) else {
                Issue.record("\(name) accepted")
                continue
            }
            #expect(error.variable == name)
            #expect(error.description.contains(name))
        }
    }

    @Test func overridesWinOverTheEnvironment() {
        let environment = ["MYRIAD_PORT": "9000", "MYRIAD_PING_INTERVAL": "5s", "MYRIAD_WORKERS": "3"]
        let config = accepted(environment, overrides: ["MYRIAD_PORT": "9001", "MYRIAD_PING_INTERVAL": "0"])
        #expect(config?.port == 9001)
        #expect(config?.pingIntervalMilliseconds == 0)
        #expect(config?.workers == 3)
        // An override alone, and a bad override rejected as itself.
        #expect(accepted([:], overrides: ["MYRIAD_TIMER_TICK": "10ms"])?.timerTickMilliseconds == 10)
        guard case .failure(let error) = load(environment, overrides: ["MYRIAD_PORT": "x"]) else {
            Issue.record("bad override accepted")
            return
        }
        #expect(error.variable == "MYRIAD_PORT" && error.value == "x")
    }

    @Test func crossKnobRules() {
        // The completion queue is at least the submission queue, whichever way it is set.
        #expect(accepted(["MYRIAD_RING_ENTRIES": "1024", "MYRIAD_CQ_ENTRIES": "1024"])?.completionEntries == 1024)
        let cq = rejected("MYRIAD_CQ_ENTRIES", "2048", range: "at least MYRIAD_RING_ENTRIES (4096)")
        #expect(cq?.value == "2048")
        rejected("MYRIAD_CQ_ENTRIES", "4096", range: "at least MYRIAD_RING_ENTRIES (8192)",
                 with: ["MYRIAD_RING_ENTRIES": "8192"])
        // Every worker needs at least one connection slot.
        #expect(accepted(["MYRIAD_MAX_CONNECTIONS": "4", "MYRIAD_WORKERS": "4"])?.maxConnections == 4)
        rejected("MYRIAD_MAX_CONNECTIONS", "3", range: "at least MYRIAD_WORKERS (4)", with: ["MYRIAD_WORKERS": "4"])
        // A tick longer than the handshake timeout could not time it.
        #expect(accepted(["MYRIAD_TIMER_TICK": "1s", "MYRIAD_HANDSHAKE_TIMEOUT": "1s"]) != nil)
        rejected("MYRIAD_TIMER_TICK", "1s", range: "at most MYRIAD_HANDSHAKE_TIMEOUT (500ms)",
                 with: ["MYRIAD_HANDSHAKE_TIMEOUT": "500ms"], shown: "1000ms")
    }

}
