/// The simulation's only source of choices: every decision the simulated kernel and the
/// simulated peers make is drawn from here, so a seed (or a fuzzer's input) replays a run
/// exactly.
///
/// Seeded, it is SplitMix64 (Steele, Lea and Flood, 2014): small, fast, and every seed gives
/// a full-period stream. Driven by a fuzzer, it reads its words from the input first and
/// falls back to SplitMix64 seeded from the input's length once the input is used up, so a
/// short input still makes a complete run. The load generator draws its reproducible message
/// bodies from it too (`PayloadBodies`).
package struct SimulationRandom {
    private var state: UInt64
    private let script: [UInt8]
    private var scriptOffset = 0

    package init(seed: UInt64) {
        state = seed
        script = []
    }

    package init(script: [UInt8]) {
        self.script = script
        state = 0x9E37_79B9_7F4A_7C15 &* UInt64(script.count &+ 1)
    }

    package mutating func next() -> UInt64 {
        if scriptOffset < script.count {
            var word: UInt64 = 0
            for _ in 0..<8 where scriptOffset < script.count {
                word = word << 8 | UInt64(script[scriptOffset])
                scriptOffset += 1
            }
            return word
        }
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `0..<bound` (`bound` > 0).
    package mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0)
        return Int(next() % UInt64(bound))
    }

    /// A number in `range`.
    package mutating func inRange(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + below(range.count)
    }

    /// True with probability `percent` / 100.
    package mutating func chance(_ percent: Int) -> Bool { below(100) < percent }

    /// True with probability 1 / `odds`.
    package mutating func oneIn(_ odds: Int) -> Bool { below(odds) == 0 }
}
