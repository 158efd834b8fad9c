// permessage-deflate's CPU cost per message (issue 16): a 1 KiB JSON message compressed and
// inflated in the shared mode (one stream per worker, reset after every message) and the
// dedicated mode (a stream per connection with context takeover, window 11, memLevel 4), and
// what a reset costs against a fresh stream. Each iteration handles `messagesPerIteration`
// different messages (a feed's updates: same shape, different values), so per-message figures
// are the iteration's divided by 64. Buffers are reused: nothing is allocated per message
// (mallocs per iteration minus the empty iteration's 16 is what the 64 messages allocate).
import Benchmark
import WebSocketCodec
import WebSocketCompression

let messagesPerIteration = 64
let messageBytes = 1024

/// Deterministic generator (SplitMix64).
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A 1 KiB JSON message like a trading or chat feed sends: records of the same shape.
func jsonMessage(seed: UInt64) -> [UInt8] {
    var random = SeededRandom(state: seed)
    let users = ["alice", "bob", "carol", "dave", "eve", "mallory", "trent", "peggy"]
    let events = ["price", "update", "order", "filled", "cancelled", "joined", "message", "typing"]
    var text = "{\"type\":\"batch\",\"seq\":\(seed),\"items\":["
    var index = 0
    while text.utf8.count < messageBytes - 120 {
        if index > 0 { text += "," }
        text += "{\"id\":\(Int.random(in: 10000...99999, using: &random)),\"user\":\"\(users.randomElement(using: &random)!)\","
        text += "\"event\":\"\(events.randomElement(using: &random)!)\",\"value\":\(Int.random(in: 0...100000, using: &random)),"
        text += "\"ts\":\(1_700_000_000 + index * 37),\"ok\":\(Bool.random(using: &random))}"
        index += 1
    }
    text += "]}"
    while text.utf8.count < messageBytes { text += " " }
    return Array(text.utf8.prefix(messageBytes))
}

let messages = (0..<messagesPerIteration).map { jsonMessage(seed: UInt64($0)) }

/// Compresses every message with `deflater`, returning the payloads.
func compressAll(_ deflater: inout MessageDeflater) -> [[UInt8]] {
    var output = GrowableBuffer(capacity: 4096)
    return messages.map { message in
        output.removeAll()
        precondition(message.withUnsafeBytes { deflater.compress($0, into: &output) })
        return Array(output.bytes)
    }
}

/// zlib allocates an inflate window on a stream's first output, once: do that before measuring
/// (the benchmark closure runs once per iteration, so its setup is repeated too).
func warmUp(_ inflater: inout MessageInflater, _ payload: [UInt8], _ output: inout GrowableBuffer) {
    output.removeAll()
    let result = payload.withUnsafeBytes { inflater.inflate($0, isMessageEnd: true, isText: false, into: &output) }
    precondition(result == .messageEnd)
    inflater.reset()
}

func sharedDeflater() -> MessageDeflater { MessageDeflater(configuration: .shared, contextTakeover: false)! }
func dedicatedDeflater() -> MessageDeflater { MessageDeflater(configuration: .dedicated, contextTakeover: true)! }

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        // Wall clock: one thread, CPU-bound, no I/O, so it is the CPU time (the CPU-time
        // metrics here tick in 10 ms, too coarse for an iteration).
        metrics: [.wallClock, .mallocCountTotal, .throughput],
        timeUnits: .microseconds,
        maxDuration: .seconds(3),
        maxIterations: 100_000
    )

    // Bytes on the wire against off, once: payload sizes (the frame header is 2 or 4 bytes
    // either way).
    var shared = sharedDeflater()
    var dedicated = dedicatedDeflater()
    let sharedPayloads = compressAll(&shared)
    let dedicatedPayloads = compressAll(&dedicated)
    let plainBytes = messages.reduce(0) { $0 + $1.count }
    let sharedBytes = sharedPayloads.reduce(0) { $0 + $1.count }
    let dedicatedBytes = dedicatedPayloads.reduce(0) { $0 + $1.count }
    var fast = MessageDeflater(configuration: .init(level: 1), contextTakeover: false)!
    let fastBytes = compressAll(&fast).reduce(0) { $0 + $1.count }
    print("bytes out / in, \(messagesPerIteration) x \(messageBytes) B JSON: off \(plainBytes), "
        + "shared \(sharedBytes) (\(sharedBytes * 1000 / plainBytes) per mille), "
        + "dedicated \(dedicatedBytes) (\(dedicatedBytes * 1000 / plainBytes) per mille), "
        + "shared level 1 \(fastBytes) (\(fastBytes * 1000 / plainBytes) per mille), "
        + "libdeflate level 6 \(libdeflateBytes()) (\(libdeflateBytes() * 1000 / plainBytes) per mille)")

    Benchmark("Baseline (empty iteration)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(0) }
    }

    Benchmark("Compress 1 KiB JSON x64, shared (window 15, memLevel 8, reset per message)") { benchmark in
        var deflater = sharedDeflater()
        var output = GrowableBuffer(capacity: 4096)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for message in messages {
                output.removeAll()
                let ok = message.withUnsafeBytes { deflater.compress($0, into: &output) }
                precondition(ok)
            }
            blackHole(output.count)
        }
    }

    Benchmark("Compress 1 KiB JSON x64, dedicated (window 11, memLevel 4, context takeover)") { benchmark in
        var deflater = dedicatedDeflater()
        var output = GrowableBuffer(capacity: 4096)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for message in messages {
                output.removeAll()
                let ok = message.withUnsafeBytes { deflater.compress($0, into: &output) }
                precondition(ok)
            }
            blackHole(output.count)
        }
    }

    Benchmark("Compress 1 KiB JSON x64, shared at level 1 (zlib's fastest)") { benchmark in
        var deflater = MessageDeflater(configuration: .init(level: 1), contextTakeover: false)!
        var output = GrowableBuffer(capacity: 4096)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for message in messages {
                output.removeAll()
                let ok = message.withUnsafeBytes { deflater.compress($0, into: &output) }
                precondition(ok)
            }
            blackHole(output.count)
        }
    }

    Benchmark("Inflate 1 KiB JSON x64, shared (window 15, reset per message, UTF-8 checked)") { benchmark in
        var inflater = MessageInflater(windowBits: 15, contextTakeover: false, maxMessageSizeBytes: 1 << 20)!
        var output = GrowableBuffer(capacity: 8192)
        warmUp(&inflater, sharedPayloads[0], &output)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for payload in sharedPayloads {
                output.removeAll()
                let result = payload.withUnsafeBytes { inflater.inflate($0, isMessageEnd: true, isText: true, into: &output) }
                precondition(result == .messageEnd && output.count == messageBytes)
            }
        }
    }

    Benchmark("Inflate 1 KiB JSON x64, dedicated (window 11, context takeover, UTF-8 checked)") { benchmark in
        var inflater = MessageInflater(windowBits: 11, contextTakeover: true, maxMessageSizeBytes: 1 << 20)!
        var output = GrowableBuffer(capacity: 8192)
        warmUp(&inflater, dedicatedPayloads[0], &output)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            // The payloads refer back to each other from the first: start the stream over.
            inflater.reset()
            for payload in dedicatedPayloads {
                output.removeAll()
                let result = payload.withUnsafeBytes { inflater.inflate($0, isMessageEnd: true, isText: true, into: &output) }
                precondition(result == .messageEnd && output.count == messageBytes)
            }
        }
    }

    libdeflateBenchmarks(sharedPayloads: sharedPayloads)

    Benchmark("UTF-8 validation of 1 KiB JSON x64 (what off pays)") { benchmark in
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for message in messages {
                var validator = UTF8Validator()
                let valid = message.withUnsafeBytes { validator.validate($0) }
                precondition(valid)
            }
        }
    }

    // Reset against a fresh stream: what the shared mode pays per message to forget the last
    // one, and what creating a stream per message would cost instead.
    Benchmark("deflateReset x64 (window 15, memLevel 8)") { benchmark in
        var deflater = sharedDeflater()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for _ in 0..<messagesPerIteration { deflater.reset() }
        }
    }

    Benchmark("deflateInit2 + deflateEnd x64 (window 15, memLevel 8)") { benchmark in
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for _ in 0..<messagesPerIteration {
                let deflater = sharedDeflater()
                blackHole(deflater.messageInputBytes)
            }
        }
    }

    Benchmark("inflateReset x64 (window 15)") { benchmark in
        var inflater = MessageInflater(windowBits: 15, contextTakeover: false, maxMessageSizeBytes: 1 << 20)!
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for _ in 0..<messagesPerIteration { inflater.reset() }
        }
    }

    Benchmark("inflateInit2 + first output + inflateEnd x64 (window 15)") { benchmark in
        // zlib allocates the inflate window on the first output: a fresh stream per message
        // pays for it every time, so inflate "Hello" (RFC 7692's example) in each.
        let hello: [UInt8] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
        var output = GrowableBuffer(capacity: 64)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for _ in 0..<messagesPerIteration {
                var inflater = MessageInflater(windowBits: 15, contextTakeover: false, maxMessageSizeBytes: 1 << 20)!
                output.removeAll()
                _ = hello.withUnsafeBytes { inflater.inflate($0, isMessageEnd: true, isText: false, into: &output) }
            }
        }
    }

    Benchmark("inflateReset + first output x64 (window 15)") { benchmark in
        let hello: [UInt8] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
        var output = GrowableBuffer(capacity: 64)
        var inflater = MessageInflater(windowBits: 15, contextTakeover: false, maxMessageSizeBytes: 1 << 20)!
        warmUp(&inflater, hello, &output)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for _ in 0..<messagesPerIteration {
                output.removeAll()
                _ = hello.withUnsafeBytes { inflater.inflate($0, isMessageEnd: true, isText: false, into: &output) }
            }
        }
    }
}
