// Microbenchmarks of the engine's parts, with malloc counts: the timing wheel against
// swift-collections' Heap at 1,000,000 live timers, the slab against a class per
// connection, buffer-ring recycling, and user_data tags.
import Benchmark
import HeapModule
@_spi(Benchmarks) import Myriad

/// Node storage for a standalone wheel: one TimerNode per entry, allocated once.
struct NodeArray: TimerNodeStore {
    let nodes: UnsafeMutablePointer<TimerNode>
    init(capacity: Int) {
        nodes = .allocate(capacity: capacity)
        nodes.initialize(repeating: TimerNode(), count: capacity)
    }
    func node(_ index: UInt32) -> UnsafeMutablePointer<TimerNode> { nodes + Int(index) }
}

/// A deterministic stream of deadlines spread like keep-alive deadlines: 0..<2^15 ticks ahead
/// (25 s at the 50 ms tick is 500 ticks; 2^15 covers idle timeouts too).
struct Deadlines {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return (state >> 33) & 0x7FFF
    }
}

struct HeapEntry: Comparable {
    var deadline: UInt64
    var entry: UInt32
    static func < (lhs: HeapEntry, rhs: HeapEntry) -> Bool { lhs.deadline < rhs.deadline }
}

let liveTimers = 1_000_000
let operationsPerIteration = 10_000

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .instructions],
        timeUnits: .microseconds,
        maxDuration: .seconds(3),
        maxIterations: 10_000
    )

    // Each iteration: 10,000 reschedules (cancel + schedule, what a keep-alive re-arm is)
    // against 1,000,000 live timers.
    Benchmark("Wheel reschedule x10000 @1M timers") { benchmark in
        let store = NodeArray(capacity: liveTimers)
        var wheel = TimingWheel(store: store, capacity: UInt32(liveTimers), startTick: 0)
        var deadlines = Deadlines()
        for entry in 0..<liveTimers { wheel.schedule(UInt32(entry), at: 1 + deadlines.next()) }
        var cursor = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for _ in 0..<operationsPerIteration {
                let entry = UInt32(cursor % liveTimers)
                wheel.cancel(entry)
                wheel.schedule(entry, at: 1 + deadlines.next())
                cursor &+= 7919
            }
        }
        benchmark.stopMeasurement()
        blackHole(wheel.count)
    }

    // The same through a binary heap. A heap cannot cancel in O(1); the usual trick (and
    // what the comparison is fair to) is lazy deletion: push the new deadline and leave the
    // stale one to be skipped when it surfaces, so the heap grows by one per reschedule.
    Benchmark("Heap reschedule x10000 @1M timers") { benchmark in
        var heap = Heap<HeapEntry>()
        var deadlines = Deadlines()
        for entry in 0..<liveTimers { heap.insert(HeapEntry(deadline: 1 + deadlines.next(), entry: UInt32(entry))) }
        var cursor = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for _ in 0..<operationsPerIteration {
                heap.insert(HeapEntry(deadline: 1 + deadlines.next(), entry: UInt32(cursor % liveTimers)))
                cursor &+= 7919
            }
        }
        benchmark.stopMeasurement()
        blackHole(heap.count)
    }

    // Expiry: 1,000,000 timers over 2^15 ticks, drained tick by tick (about 30 per tick).
    Benchmark("Wheel expire 1M timers") { benchmark in
        let store = NodeArray(capacity: liveTimers)
        var wheel = TimingWheel(store: store, capacity: UInt32(liveTimers), startTick: 0)
        var deadlines = Deadlines()
        for _ in benchmark.scaledIterations {
            benchmark.stopMeasurement()
            let start = wheel.currentTick
            for entry in 0..<liveTimers { wheel.schedule(UInt32(entry), at: start + 1 + deadlines.next()) }
            benchmark.startMeasurement()
            var expired = 0
            var tick = start
            while expired < liveTimers {
                tick += 1
                while wheel.nextExpired(upTo: tick) != nil { expired += 1 }
            }
            blackHole(expired)
        }
    }

    Benchmark("Heap expire 1M timers") { benchmark in
        var deadlines = Deadlines()
        for _ in benchmark.scaledIterations {
            benchmark.stopMeasurement()
            var heap = Heap<HeapEntry>()
            for entry in 0..<liveTimers { heap.insert(HeapEntry(deadline: 1 + deadlines.next(), entry: UInt32(entry))) }
            benchmark.startMeasurement()
            var expired = 0
            while heap.popMin() != nil { expired += 1 }
            blackHole(expired)
        }
    }

    // Connection state: 10,000 connections opened and closed per iteration.
    Benchmark("Slab allocate+release x10000") { benchmark in
        let slab = try SlabBenchmark(capacity: 10_000)
        for _ in benchmark.scaledIterations { blackHole(slab.allocateAndRelease(10_000)) }
    }

    Benchmark("final class alloc+free x10000") { benchmark in
        var live: [ConnectionObject] = []
        live.reserveCapacity(10_000)
        for _ in benchmark.scaledIterations {
            for index in 0..<10_000 { live.append(ConnectionObject(handle: Int32(index))) }
            blackHole(live.count)
            live.removeAll(keepingCapacity: true)
        }
    }

    Benchmark("BufferRing recycle x10000") { benchmark in
        let ring = try BufferRingBenchmark()
        for _ in benchmark.scaledIterations { ring.recycle(10_000) }
    }

    Benchmark("UserData encode+decode x10000") { benchmark in
        var checksum: UInt64 = 0
        for _ in benchmark.scaledIterations {
            for slot in 0..<UInt32(10_000) {
                let tag = UserData(.receive, slot: slot, generation: slot & UserData.generationMask)
                let decoded = UserData(rawValue: blackHoleIdentity(tag.rawValue))
                checksum &+= UInt64(decoded.slot) &+ UInt64(decoded.generation) &+ UInt64(decoded.operation?.rawValue ?? 0)
            }
        }
        blackHole(checksum)
    }
}

@inline(never)
func blackHoleIdentity<T>(_ value: T) -> T { value }
