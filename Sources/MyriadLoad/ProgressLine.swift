/// The phases of a run, in order (a run may skip some).
public enum LoadPhase: Int, Sendable, CaseIterable {
    /// Connecting (churn: cycling).
    case ramp = 0
    /// Holding (echo: measuring).
    case hold = 1
    /// fanout: the publisher sends a message every interval for the duration.
    case publish = 2
    /// fanout: waiting (at most `--drain`) for the deliveries still under way.
    case drain = 3
    /// --verify-echo: one message per connection, waiting for each to come back.
    case verify = 4
    /// Closing every connection with a close handshake.
    case close = 5
    /// Stopping now (done, or the time limit).
    case stop = 6

    public var name: String {
        switch self {
        case .ramp: return "ramp"
        case .hold: return "hold"
        case .publish: return "publish"
        case .drain: return "drain"
        case .verify: return "verify"
        case .close: return "close"
        case .stop: return "stop"
        }
    }
}

/// What the live progress line shows.
public struct ProgressSnapshot: Sendable, Equatable {
    public var mode: LoadMode
    public var phase: LoadPhase
    public var open: Int
    public var target: Int
    /// Handshakes completed so far (churn: cycles).
    public var handshakes: Int
    /// Handshakes per second over the last interval.
    public var ratePerSecond: Double
    /// Failures so far, by kind.
    public var failures: [FailureKind: Int]
    public var elapsedSeconds: Double
    /// fanout: messages published so far, of the planned number.
    public var published: Int
    public var plannedPublishes: Int
    /// fanout: deliveries so far, of published x connections.
    public var delivered: Int
    public var expected: Int

    public init(mode: LoadMode, phase: LoadPhase, open: Int, target: Int, handshakes: Int,
                ratePerSecond: Double, failures: [FailureKind: Int], elapsedSeconds: Double,
                published: Int = 0, plannedPublishes: Int = 0, delivered: Int = 0, expected: Int = 0) {
        self.mode = mode
        self.phase = phase
        self.open = open
        self.target = target
        self.handshakes = handshakes
        self.ratePerSecond = ratePerSecond
        self.failures = failures
        self.elapsedSeconds = elapsedSeconds
        self.published = published
        self.plannedPublishes = plannedPublishes
        self.delivered = delivered
        self.expected = expected
    }
}

/// Renders the live progress line (stderr, on a terminal, redrawn at most 4 times a second).
public enum ProgressLine {
    /// Minimum time between two redraws.
    public static let intervalNanoseconds: Int64 = 250_000_000

    /// One line, no newline: `hold ramp 12,500/25,000 open  8,123/s  failures connect=0
    /// handshake=0 read=0 unexpected_close=0 close=0  3.2s`. Churn shows cycles done instead
    /// of connections open; fanout, once its ramp is over, shows the publishing instead of
    /// the handshake rate: `published 12/50  delivered 228,000/228,000`.
    public static func render(_ snapshot: ProgressSnapshot) -> String {
        let counted = snapshot.mode == .churn
            ? "\(grouped(snapshot.handshakes))/\(grouped(snapshot.target)) cycles, \(grouped(snapshot.open)) open"
            : "\(grouped(snapshot.open))/\(grouped(snapshot.target)) open"
        let failures = FailureKind.allCases.map { "\($0.rawValue)=\(grouped(snapshot.failures[$0] ?? 0))" }
            .joined(separator: " ")
        let activity = snapshot.mode == .fanout && snapshot.phase != .ramp
            ? "published \(grouped(snapshot.published))/\(grouped(snapshot.plannedPublishes))"
                + "  delivered \(grouped(snapshot.delivered))/\(grouped(snapshot.expected))"
            : grouped(Int(snapshot.ratePerSecond.rounded())) + "/s"
        let elapsed = String(Int(snapshot.elapsedSeconds)) + "." + String(Int(snapshot.elapsedSeconds * 10) % 10) + "s"
        return "\(snapshot.mode.rawValue) \(snapshot.phase.name) \(counted)  \(activity)  failures \(failures)  \(elapsed)"
    }

    /// The line for a terminal: carriage return, the line, erase to the end of the line.
    public static func redraw(_ snapshot: ProgressSnapshot) -> String {
        "\r" + render(snapshot) + "\u{1B}[K"
    }

    /// `1234567` as `1,234,567`.
    public static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var result = ""
        for (index, character) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { result.append(",") }
            result.append(character)
        }
        return (value < 0 ? "-" : "") + result
    }
}
