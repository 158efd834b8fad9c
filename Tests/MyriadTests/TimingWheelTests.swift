import Testing
@_spi(Benchmarks) @testable import Myriad

/// Deterministic generator (SplitMix64) so the random tests replay exactly from their seed.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in 0 ..< bound (bound > 0).
    mutating func below(_ bound: UInt64) -> UInt64 { next(upperBound: bound) }
    mutating func chance(_ percent: UInt64) -> Bool { below(100) < percent }
}

/// The tiny node store the wheel threads its lists through: a plain array of nodes.
struct NodeArrayStore: TimerNodeStore {
    let nodes: UnsafeMutablePointer<TimerNode>
    func node(_ index: UInt32) -> UnsafeMutablePointer<TimerNode> { nodes + Int(index) }
}

/// A wheel over `capacity` entries that owns its node array.
struct TestWheel: ~Copyable {
    let nodes: UnsafeMutablePointer<TimerNode>
    var wheel: TimingWheel<NodeArrayStore>

    init(capacity: UInt32, startTick: UInt64 = 0) {
        nodes = .allocate(capacity: Int(capacity))
        nodes.initialize(repeating: TimerNode(), count: Int(capacity))
        wheel = TimingWheel(store: NodeArrayStore(nodes: nodes), capacity: capacity, startTick: startTick)
    }

    deinit {
        // The wheel's own deinit touches only its sentinels, never the store.
        nodes.deallocate()
    }

    /// Everything due by `tick`, as (entry, tick it came out at), driven like the worker does:
    /// sleep until `nextEventTick` (never past `tick`), then take what is due.
    mutating func drain(upTo tick: UInt64) -> [(entry: UInt32, at: UInt64)] {
        var fired: [(entry: UInt32, at: UInt64)] = []
        while true {
            let stop = min(wheel.nextEventTick() ?? tick, tick)
            while let entry = wheel.nextExpired(upTo: max(stop, wheel.currentTick)) {
                fired.append((entry, wheel.currentTick))
            }
            if wheel.currentTick >= tick { return fired }
        }
    }

    /// Everything due by `tick` in one jump (`nextExpired` skips the idle stretches itself).
    mutating func jump(to tick: UInt64) -> [(entry: UInt32, at: UInt64)] {
        var fired: [(entry: UInt32, at: UInt64)] = []
        while let entry = wheel.nextExpired(upTo: tick) { fired.append((entry, wheel.currentTick)) }
        return fired
    }
}

// MARK: - Reference model

/// Entry -> deadline, plus the same pairs kept sorted by (deadline, entry) so the earliest
/// deadline is at hand: the "simple sorted array" the wheel is checked against.
struct ReferenceModel {
    var deadlines: [UInt32: UInt64] = [:]
    var sorted: [(deadline: UInt64, entry: UInt32)] = []

    var count: Int { deadlines.count }
    var earliest: UInt64? { sorted.first?.deadline }

    func lowerBound(_ key: (UInt64, UInt32)) -> Int {
        var low = 0, high = sorted.count
        while low < high {
            let mid = (low + high) / 2
            if (sorted[mid].deadline, sorted[mid].entry) < key { low = mid + 1 } else { high = mid }
        }
        return low
    }

    mutating func schedule(_ entry: UInt32, at deadline: UInt64) {
        remove(entry)
        deadlines[entry] = deadline
        sorted.insert((deadline, entry), at: lowerBound((deadline, entry)))
    }

    @discardableResult
    mutating func remove(_ entry: UInt32) -> UInt64? {
        guard let deadline = deadlines.removeValue(forKey: entry) else { return nil }
        let index = lowerBound((deadline, entry))
        precondition(sorted[index].entry == entry)
        sorted.remove(at: index)
        return deadline
    }

    /// Entries with deadline <= tick.
    func due(by tick: UInt64) -> ArraySlice<(deadline: UInt64, entry: UInt32)> {
        sorted[..<lowerBound((tick, UInt32.max))]
    }
}

// MARK: - Model-based random test

/// Random schedule / cancel / reschedule / advance against the reference model, including
/// cancels and reschedules made while a tick's entries are being handed out.
struct ModelRun: ~Copyable {
    var subject: TestWheel
    var model = ReferenceModel()
    var random: SeededRandom
    let capacity: UInt32
    let seed: UInt64
    var operations = 0
    var expired = 0
    /// A class, so `check` need not be mutating and its messages may read the run's state.
    final class Verdict { var failed = false }
    let verdict = Verdict()
    var failed: Bool { verdict.failed }
    /// Set for the final drain: no more cancels or reschedules from expiry handling.
    var quiet = false

    init(seed: UInt64, startTick: UInt64, capacity: UInt32) {
        self.seed = seed
        self.capacity = capacity
        random = SeededRandom(seed: seed)
        subject = TestWheel(capacity: capacity, startTick: startTick)
    }

    var now: UInt64 { subject.wheel.currentTick }

    func check(_ condition: Bool, _ message: @autoclosure () -> String,
               sourceLocation: SourceLocation = #_sourceLocation) {
        guard !condition, !verdict.failed else { return }
        verdict.failed = true
        Issue.record("seed \(seed), operation \(operations), tick \(now): \(message())", sourceLocation: sourceLocation)
    }

    /// A deadline relative to now, biased to every level, the level boundaries, the horizon
    /// and beyond, the past, and ticks other entries already use.
    mutating func randomDeadline() -> UInt64 {
        let now = self.now
        switch random.below(16) {
        case 0: return now - min(now, random.below(100))
        case 1: return now
        case 2, 3, 4: return now + 1 + random.below(63)
        case 5, 6: return now + 64 + random.below(4096 - 64)
        case 7: return now + 4096 + random.below(262_144 - 4096)
        case 8: return now + 262_144 + random.below((1 << 24) - 262_144)
        case 9: return now + (1 << 24) + random.below(1 << 20)
        case 10: return now + (1 << 24) + random.below(1 << 27)
        case 11, 12:
            // A block start of some level, a tick either side of it.
            let shift = UInt64(6 * (1 + random.below(4)))
            let block = ((now >> shift) + 1 + random.below(3)) << shift
            return block + random.below(3) - 1
        case 13:
            // Exactly 64^k ticks ahead, a tick either side.
            let span: UInt64 = 1 << UInt64(6 * (1 + random.below(4)))
            return now + span + random.below(3) - 1
        default:
            // Share a tick with an entry already scheduled.
            guard !model.sorted.isEmpty else { return now + 1 + random.below(64) }
            let other = model.sorted[Int(random.below(UInt64(model.sorted.count)))].deadline
            return other + random.below(3) - min(other, 1)
        }
    }

    mutating func schedule(_ entry: UInt32, at deadline: UInt64) {
        operations += 1
        subject.wheel.schedule(entry, at: deadline)
        model.schedule(entry, at: deadline)
        check(subject.wheel.deadline(of: entry) == deadline, "deadline(of: \(entry)) after schedule at \(deadline)")
        checkInvariants()
    }

    mutating func cancel(_ entry: UInt32) {
        operations += 1
        subject.wheel.cancel(entry)
        model.remove(entry)
        check(!subject.wheel.isScheduled(entry), "entry \(entry) still scheduled after cancel")
        checkInvariants()
    }

    /// `count` matches, and `nextEventTick` is never later than the earliest deadline (or
    /// now, when something is due), never in the past, and nil only when nothing is scheduled.
    mutating func checkInvariants() {
        check(subject.wheel.count == model.count, "count \(subject.wheel.count), model \(model.count)")
        let next = subject.wheel.nextEventTick()
        guard let earliest = model.earliest else {
            check(next == nil, "nextEventTick \(String(describing: next)) with nothing scheduled")
            return
        }
        guard let next else { return check(false, "nextEventTick nil with \(model.count) scheduled") }
        check(next >= now, "nextEventTick \(next) before now")
        check(next <= max(earliest, now), "nextEventTick \(next) after the earliest deadline \(earliest)")
        check(next > now || earliest <= now, "nextEventTick says now but nothing is due")
    }

    /// Takes everything due by `tick` from the wheel, checking each entry against the model
    /// and sometimes cancelling or rescheduling entries while the tick is being handed out.
    mutating func take(upTo tick: UInt64) {
        var againDue = 0
        while !failed {
            let before = now
            guard let entry = subject.wheel.nextExpired(upTo: tick) else {
                check(now == max(before, tick), "nextExpired ended at \(now), asked for \(tick)")
                if let earliest = model.earliest {
                    check(earliest > now, "entry \(model.sorted[0].entry) due at \(earliest) was not handed out by \(now)")
                }
                checkInvariants()
                return
            }
            expired += 1
            guard let deadline = model.deadlines[entry] else {
                return check(false, "entry \(entry) handed out but not scheduled")
            }
            check(deadline <= now, "entry \(entry) due at \(deadline) handed out early")
            check(now <= max(before, tick), "time moved to \(now) past \(tick)")
            check(!subject.wheel.isScheduled(entry), "entry \(entry) still scheduled after hand-out")
            if now > before {
                // Time moved: nothing may have been left behind in the ticks it passed.
                check(deadline == now, "entry \(entry) due at \(deadline) handed out late, at \(now)")
                check(model.earliest == now, "entry due at \(model.earliest!) skipped on the way to \(now)")
            }
            model.remove(entry)
            check(subject.wheel.count == model.count, "count \(subject.wheel.count), model \(model.count) during expiry")

            // What a worker might do while handling the expiry.
            if quiet { continue }
            let roll = random.below(100)
            if roll < 15 {
                schedule(entry, at: now + 1 + random.below(random.chance(50) ? 64 : 1 << 20))
            } else if roll < 18 && againDue < 8 {
                againDue += 1  // due again at once: must come out again within this tick
                schedule(entry, at: now - min(now, random.below(3)))
            } else if roll < 30 {
                let dueNow = model.due(by: now)
                if let other = dueNow.randomElement(using: &random) {
                    cancel(other.entry)  // due this tick, not handed out yet: must never be
                }
            } else if roll < 40 {
                let dueNow = model.due(by: now)
                if let other = dueNow.randomElement(using: &random) {
                    schedule(other.entry, at: now + 1 + random.below(300))
                }
            } else if roll < 45 {
                schedule(UInt32(random.below(UInt64(capacity))), at: randomDeadline())
            }
        }
    }

    /// Moves time to `target`, either in one call or the way the event loop does (sleeping
    /// until each `nextEventTick`); both must hand out exactly the same things.
    mutating func advance(to target: UInt64) {
        operations += 1
        if random.chance(50) {
            take(upTo: target)
            return
        }
        var steps = 0
        while !failed {
            let next = subject.wheel.nextEventTick() ?? target
            check(next >= now, "nextEventTick \(next) in the past")
            take(upTo: min(max(next, now), target))
            if now >= target { return }
            steps += 1
            check(steps < 1_000_000, "no progress towards \(target)")
        }
    }

    mutating func randomTarget() -> UInt64 {
        let now = self.now
        switch random.below(12) {
        case 0: return now
        case 1, 2: return now + 1 + random.below(8)
        case 3, 4: return now + 1 + random.below(100)
        case 5: return now + random.below(5000)
        case 6:
            guard let earliest = model.earliest else { return now + 1 }
            return max(now, earliest + random.below(3) - min(earliest, 1))
        case 7:
            guard let some = model.sorted.randomElement(using: &random) else { return now + 64 }
            return max(now, some.deadline)
        case 8:
            let shift = UInt64(6 * (1 + random.below(4)))
            return max(now, ((now >> shift) + 1) << shift + random.below(3) - 1)
        case 9: return now + random.below(1 << 20)
        case 10: return now + random.below(1 << 26)
        default: return now + random.below(400)
        }
    }

    mutating func run(operations target: Int) {
        while operations < target && !failed {
            let roll = random.below(100)
            let entry = UInt32(random.below(UInt64(capacity)))
            if roll < 42 {
                schedule(entry, at: randomDeadline())  // also reschedules and double schedules
            } else if roll < 55 {
                cancel(entry)  // may be unscheduled: a no-op
            } else {
                advance(to: randomTarget())
            }
        }
        // Finally everything left must come out, each exactly on its tick.
        quiet = true
        if let last = model.sorted.last?.deadline, !failed { advance(to: last) }
        check(model.count == 0 && subject.wheel.count == 0, "\(model.count) entries left at the end")
    }
}

@Suite struct TimingWheelModelTests {
    static let runs: [(seed: UInt64, startTick: UInt64)] = [
        (1, 0),
        (2, 1),
        (3, 63),
        (4, 4095),
        (5, (1 << 24) - 70),
        (6, (1 << 36) + 987_654_321),
        (7, (1 << 44) - 1),
        (8, 123_456_789_012),
    ]
    static let operationsPerRun = 15_000

    @Test func randomOperationsAgreeWithReferenceModel() {
        var total = 0
        var expired = 0
        for (seed, startTick) in Self.runs {
            var run = ModelRun(seed: seed, startTick: startTick, capacity: 300)
            run.run(operations: Self.operationsPerRun)
            total += run.operations
            expired += run.expired
            if run.failed { break }
        }
        #expect(total >= 100_000, "only \(total) random operations")
        #expect(expired > 10_000, "only \(expired) expiries")
    }
}

// MARK: - Targeted cases

@Suite struct TimingWheelTests {
    /// Each entry scheduled at `deadlines[i]` (entry i) comes out exactly at its tick, by
    /// both ways of driving the wheel.
    func expectExact(start: UInt64, deadlines: [UInt64], sourceLocation: SourceLocation = #_sourceLocation) {
        for useJump in [false, true] {
            var subject = TestWheel(capacity: UInt32(deadlines.count), startTick: start)
            for (entry, deadline) in deadlines.enumerated() {
                subject.wheel.schedule(UInt32(entry), at: deadline)
            }
            let last = deadlines.max()!
            // Nothing comes out a tick before its deadline.
            var fired: [(entry: UInt32, at: UInt64)] = []
            for (entry, deadline) in deadlines.enumerated().sorted(by: { $0.element < $1.element }) where deadline > start {
                let early = useJump ? subject.jump(to: deadline - 1) : subject.drain(upTo: deadline - 1)
                #expect(early.allSatisfy { deadlines[Int($0.entry)] <= deadline - 1 },
                        "entry \(entry) at \(deadline) from \(start)", sourceLocation: sourceLocation)
                fired += early
            }
            fired += useJump ? subject.jump(to: last) : subject.drain(upTo: last)
            #expect(fired.count == deadlines.count, "start \(start)", sourceLocation: sourceLocation)
            for (entry, at) in fired {
                #expect(at == max(start, deadlines[Int(entry)]),
                        "entry \(entry) due at \(deadlines[Int(entry)]) came out at \(at) (start \(start), jump \(useJump))",
                        sourceLocation: sourceLocation)
            }
            #expect(subject.wheel.count == 0)
            #expect(subject.wheel.nextEventTick() == nil)
        }
    }

    @Test(arguments: [1, 64, 4096, 262_144, 1 << 24] as [UInt64])
    func wrapsAroundEveryLevel(boundary: UInt64) {
        // Deadlines around the level's span and around several of its block starts, from
        // starts that are aligned, just before a boundary, and far out.
        for start in [0, 1, 37, boundary - 1, boundary, 3 * boundary - 2, (1 << 40) + 5, (1 << 40) - 3] as [UInt64] {
            var deadlines: [UInt64] = []
            for multiple in [1, 2, 63, 64, 65, 130] as [UInt64] {
                for offset in [-1, 0, 1] as [Int64] {
                    let ahead = UInt64(Int64(boundary * multiple) + offset)
                    deadlines.append(start + ahead)
                    // The block start `multiple` blocks on, and either side.
                    let aligned = ((start / boundary) + multiple) * boundary
                    deadlines.append(UInt64(Int64(aligned) + offset))
                }
            }
            // Nodes keep 32-bit deadlines: the wheel takes deadlines up to 2^31 - 1 ticks ahead.
            expectExact(start: start, deadlines: deadlines.filter { $0 <= start + TimingWheel<NodeArrayStore>.maxAheadTicks })
        }
    }

    @Test func jumpsStraightToLargeTicks() {
        var subject = TestWheel(capacity: 8, startTick: 10)
        let deadlines: [UInt64] = [11, 70, 5000, 300_000, 20_000_000, 1 << 28, (1 << 30) + 1, 10 + (1 << 31) - 1]
        for (entry, deadline) in deadlines.enumerated() { subject.wheel.schedule(UInt32(entry), at: deadline) }
        let fired = subject.jump(to: 1 << 40)
        #expect(fired.map(\.entry) == Array(0..<8))
        #expect(fired.map(\.at) == deadlines)
        #expect(subject.wheel.currentTick == 1 << 40)
        #expect(subject.wheel.count == 0)
    }

    /// Past `maxAheadTicks` a deadline is brought in: the entry fires then, and its owner
    /// schedules it again (32-bit deadlines in the nodes).
    @Test func aDeadlineBeyondTheReachFiresAtTheReach() {
        var subject = TestWheel(capacity: 2, startTick: 1000)
        let reach = 1000 + TimingWheel<NodeArrayStore>.maxAheadTicks
        subject.wheel.schedule(0, at: 1 << 40)
        subject.wheel.schedule(1, at: reach)
        #expect(subject.wheel.deadline(of: 0) == reach)
        let fired = subject.jump(to: 1 << 41)
        #expect(fired.map(\.at) == [reach, reach])
    }

    @Test func farDeadlinesBeyondTheHorizonFireOnTheirTick() {
        let horizon = TimingWheel<NodeArrayStore>.horizonTicks
        #expect(horizon == 1 << 24)
        let extras: [UInt64] = [0, 1, 63, 64, 4095, 4096, 262_143, 262_144, horizon - 1, horizon, 5 * horizon + 7]
        for start in [0, 12_345, horizon - 1, (1 << 42) + 99] as [UInt64] {
            expectExact(start: start, deadlines: extras.map { start + horizon + $0 })
            expectExact(start: start, deadlines: extras.map { start + horizon - 1 + $0 })
        }
        // Alone, a far entry is not handed out a tick early, and the wheel's wake-ups on the
        // way (cascades) never go past it.
        var subject = TestWheel(capacity: 1, startTick: 500)
        let deadline: UInt64 = 500 + 3 * horizon + 12_345
        subject.wheel.schedule(0, at: deadline)
        var wakeUps = 0
        while subject.wheel.currentTick < deadline - 1 {
            let next = subject.wheel.nextEventTick()!
            #expect(next <= deadline)
            guard next < deadline else { break }
            #expect(subject.wheel.nextExpired(upTo: next) == nil)
            wakeUps += 1
        }
        #expect(wakeUps < 200)
        #expect(subject.wheel.nextExpired(upTo: deadline - 1) == nil)
        #expect(subject.wheel.deadline(of: 0) == deadline)
        #expect(subject.wheel.nextExpired(upTo: deadline) == 0)
        #expect(subject.wheel.currentTick == deadline)
    }

    @Test func deadlinesAtOrBeforeNowAreDueAtOnce() {
        var subject = TestWheel(capacity: 4, startTick: 1000)
        subject.wheel.schedule(0, at: 1000)
        subject.wheel.schedule(1, at: 999)
        subject.wheel.schedule(2, at: 0)
        subject.wheel.schedule(3, at: 1001)
        #expect(subject.wheel.count == 4)
        #expect(subject.wheel.nextEventTick() == 1000)
        // Due ones come out without time moving, even when asked about the past.
        #expect(Set(subject.jump(to: 1000).map(\.entry)) == [0, 1, 2])
        #expect(subject.wheel.currentTick == 1000)
        #expect(subject.wheel.nextEventTick() == 1001)
        subject.wheel.schedule(2, at: 5)
        #expect(subject.wheel.nextExpired(upTo: 10) == 2)
        #expect(subject.wheel.currentTick == 1000)
        #expect(subject.jump(to: 1001).map(\.entry) == [3])
    }

    @Test func cancelOfAnEntryDuringItsOwnTicksExpiry() {
        for order in [false, true] {
            var subject = TestWheel(capacity: 3, startTick: 0)
            subject.wheel.schedule(0, at: 100)
            subject.wheel.schedule(1, at: 100)
            subject.wheel.schedule(2, at: 101)
            let first = subject.wheel.nextExpired(upTo: 200)
            #expect(first == 0 || first == 1)
            #expect(subject.wheel.currentTick == 100)
            let second: UInt32 = first == 0 ? 1 : 0
            let stillDue = subject.wheel.isScheduled(second)
            #expect(stillDue)
            subject.wheel.cancel(second)
            if order { subject.wheel.cancel(second) }  // twice: still a no-op
            #expect(subject.wheel.count == 1)
            let cancelled = !subject.wheel.isScheduled(second)
            #expect(cancelled)
            let rest = subject.jump(to: 200)
            #expect(rest.map(\.entry) == [2])
            #expect(rest.map(\.at) == [101])
        }
    }

    @Test func rescheduleFromInsideExpiryHandling() {
        var subject = TestWheel(capacity: 4, startTick: 0)
        for entry in 0..<3 as Range<UInt32> { subject.wheel.schedule(entry, at: 10) }
        subject.wheel.schedule(3, at: 12)
        let first = subject.wheel.nextExpired(upTo: 100)!
        #expect(subject.wheel.currentTick == 10)
        // The entry just handed out, for later; another one due now, for later too.
        subject.wheel.schedule(first, at: 20)
        let others = (0..<3 as Range<UInt32>).filter { $0 != first }
        subject.wheel.schedule(others[0], at: 15)
        #expect(subject.wheel.count == 4)
        #expect(subject.wheel.nextExpired(upTo: 100) == others[1])
        // The handed-out entry rescheduled for now comes straight back in the same tick.
        subject.wheel.schedule(others[1], at: 10)
        #expect(subject.wheel.nextExpired(upTo: 100) == others[1])
        #expect(subject.wheel.currentTick == 10)
        let rest = subject.jump(to: 100)
        #expect(rest.map(\.entry) == [3, others[0], first])
        #expect(rest.map(\.at) == [12, 15, 20])
        #expect(subject.wheel.count == 0)
    }

    @Test func schedulingTwiceKeepsTheLaterSchedule() {
        for (firstDeadline, secondDeadline) in [(100, 50), (50, 100), (100, 100), (1 << 30, 70), (70, 1 << 30), (5, 0)] as [(UInt64, UInt64)] {
            var subject = TestWheel(capacity: 2, startTick: 1)
            subject.wheel.schedule(0, at: firstDeadline)
            subject.wheel.schedule(1, at: 64)
            subject.wheel.schedule(0, at: secondDeadline)
            #expect(subject.wheel.count == 2)
            #expect(subject.wheel.deadline(of: 0) == secondDeadline)
            let fired = subject.drain(upTo: 1 << 31)
            #expect(fired.filter { $0.entry == 0 }.map(\.at) == [max(1, secondDeadline)],
                    "\(firstDeadline) then \(secondDeadline)")
            #expect(fired.filter { $0.entry == 1 }.map(\.at) == [64])
        }
    }

    @Test func emptyWheel() {
        var subject = TestWheel(capacity: 2, startTick: 7)
        #expect(subject.wheel.nextEventTick() == nil)
        #expect(subject.wheel.nextExpired(upTo: 1 << 30) == nil)
        #expect(subject.wheel.currentTick == 1 << 30)
        // Time never goes back.
        #expect(subject.wheel.nextExpired(upTo: 5) == nil)
        #expect(subject.wheel.currentTick == 1 << 30)
        subject.wheel.cancel(1)
        #expect(subject.wheel.count == 0)
        #expect(subject.wheel.deadline(of: 1) == nil)
        // Schedule then cancel leaves nothing behind, at any level.
        for ahead in [1, 64, 4096, 262_144, 1 << 24, 1 << 30] as [UInt64] {
            subject.wheel.schedule(0, at: subject.wheel.currentTick + ahead)
            subject.wheel.cancel(0)
        }
        #expect(subject.wheel.nextEventTick() == nil)
        #expect(subject.jump(to: 1 << 40).isEmpty)
    }
}
