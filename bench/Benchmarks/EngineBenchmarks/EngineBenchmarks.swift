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

    // Each iteration: 10,000 random reschedules (cancel + schedule) among 1,000,000 live
    // timers: the worst case for the wheel's intrusive lists (every touched node is a cache
    // miss). The engine itself reschedules mostly entries that just fired.
    Benchmark("Wheel cancel+schedule x10000 @1M timers") { benchmark in
        let store = NodeArray(capacity: liveTimers)
        let wheel = TimingWheel(store: store, capacity: UInt32(liveTimers), startTick: 0)
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

    // A binary heap cannot cancel in O(log n) without an index; the usual trick is lazy
    // deletion: push the new deadline and skip the stale one when it surfaces. This measures
    // only the push (the heap grows by one per reschedule; the skip is paid at expiry).
    Benchmark("Heap lazy reschedule (push only) x10000 @1M timers") { benchmark in
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

    // The keep-alive cycle at 1,000,000 live timers, per iteration: advance time until 10,000
    // timers have expired, and re-arm each one 500 ticks later (25 s at the 50 ms tick), as a
    // ping re-arms its connection. Both structures always hold 1,000,000 timers.
    Benchmark("Wheel expire+rearm x10000 @1M timers") { benchmark in
        let store = NodeArray(capacity: liveTimers)
        let wheel = TimingWheel(store: store, capacity: UInt32(liveTimers), startTick: 0)
        for entry in 0..<liveTimers { wheel.schedule(UInt32(entry), at: 1 + UInt64(entry % 500)) }
        var tick: UInt64 = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            var expired = 0
            while expired < operationsPerIteration {
                tick += 1
                while expired < operationsPerIteration, let entry = wheel.nextExpired(upTo: tick) {
                    wheel.schedule(entry, at: tick + 500)
                    expired += 1
                }
            }
        }
        benchmark.stopMeasurement()
        blackHole(wheel.count)
    }

    Benchmark("Heap expire+rearm x10000 @1M timers") { benchmark in
        var heap = Heap<HeapEntry>()
        for entry in 0..<liveTimers { heap.insert(HeapEntry(deadline: 1 + UInt64(entry % 500), entry: UInt32(entry))) }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for _ in 0..<operationsPerIteration {
                let due = heap.popMin()!
                heap.insert(HeapEntry(deadline: due.deadline + 500, entry: due.entry))
            }
        }
        benchmark.stopMeasurement()
        blackHole(heap.count)
    }

    // Connection state: 10,000 connections opened and closed per iteration.
    Benchmark("Slab allocate+release x10000") { benchmark in
        let slab = try SlabBenchmark(capacity: 10_000)
        for _ in benchmark.scaledIterations { blackHole(slab.allocateAndRelease(10_000)) }
    }

    Benchmark("final class alloc+free x10000") { benchmark in
        let live = UnsafeMutablePointer<ConnectionObject?>.allocate(capacity: 10_000)
        live.initialize(repeating: nil, count: 10_000)
        for _ in benchmark.scaledIterations {
            var checksum = 0
            for index in 0..<10_000 {
                let object = ConnectionObject(handle: Int32(index))
                object.state = 2
                checksum &+= Int(object.generation)
                live[index] = object
            }
            for index in 0..<10_000 { live[index]!.state = 5; live[index] = nil }
            blackHole(checksum)
        }
        live.deinitialize(count: 10_000)
        live.deallocate()
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
