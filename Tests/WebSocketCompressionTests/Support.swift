import CZlib
import WebSocketCodec
@testable import WebSocketCompression

/// Deterministic generator (SplitMix64) so property tests replay exactly from their seed.
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
}

func bytes(_ string: String) -> [UInt8] { Array(string.utf8) }

func hex(_ text: String) -> [UInt8] {
    let digits = Array(text.filter { !$0.isWhitespace })
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
}

/// A JSON-like message of about `size` bytes: the kind of payload a chat or a feed sends.
func jsonMessage(size: Int, seed: UInt64) -> [UInt8] {
    var random = SeededRandom(seed: seed)
    let names = ["alice", "bob", "carol", "dave", "eve", "mallory", "trent"]
    let words = ["price", "update", "order", "filled", "cancelled", "room", "message", "typing", "online"]
    var text = "{\"type\":\"batch\",\"items\":["
    var index = 0
    while text.utf8.count < size - 2 {
        if index > 0 { text += "," }
        text += "{\"id\":\(Int.random(in: 1...99999, using: &random)),\"user\":\"\(names.randomElement(using: &random)!)\","
        text += "\"event\":\"\(words.randomElement(using: &random)!)\",\"value\":\(Double(Int.random(in: 0...100000, using: &random)) / 100),"
        text += "\"ts\":\(1_700_000_000 + index * 37),\"ok\":\(Bool.random(using: &random))}"
        index += 1
    }
    text += "]}"
    return Array(text.utf8.prefix(max(size, 2)))
}

func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var random = SeededRandom(seed: seed)
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
}

/// A `CompressionOutput` over a growable buffer that records how far it was asked to grow.
struct RecordingOutput: ~Copyable, CompressionOutput {
    var buffer: GrowableBuffer
    var largestRequest = 0

    init(maxCapacity: Int = .max) { buffer = GrowableBuffer(maxCapacity: maxCapacity) }

    var array: [UInt8] { Array(buffer.bytes) }

    mutating func freeSpace(minimumBytes: Int) -> UnsafeMutableRawBufferPointer? {
        largestRequest = max(largestRequest, buffer.count + minimumBytes)
        return buffer.freeSpace(minimumBytes: minimumBytes)
    }
    mutating func didWrite(_ count: Int) { buffer.didWrite(count) }
    mutating func discardLast(_ count: Int) { buffer.discardLast(count) }
}

/// Compresses `message` (in pieces of `pieceSize` bytes) and returns the payload.
func compress(_ message: [UInt8], with deflater: inout MessageDeflater, pieceSize: Int = .max) -> [UInt8] {
    var output = RecordingOutput()
    message.withUnsafeBytes { raw in
        var start = 0
        repeat {
            let end = min(raw.count, start + max(1, min(pieceSize, raw.count)))
            let ok = deflater.compress(
                UnsafeRawBufferPointer(rebasing: raw[start..<end]), isMessageEnd: end == raw.count, into: &output)
            precondition(ok)
            start = end
        } while start < raw.count
    }
    return output.array
}

/// Inflates `payload` fed in pieces of `pieceSize` bytes; returns the inflated bytes and the
/// last result.
func inflate(
    _ payload: [UInt8], with inflater: inout MessageInflater, pieceSize: Int = .max, isText: Bool = false,
    output: inout RecordingOutput
) -> MessageInflater.Result {
    payload.withUnsafeBytes { raw in
        var start = 0
        while true {
            let end = min(raw.count, start + max(1, min(pieceSize, raw.count)))
            let result = inflater.inflate(
                UnsafeRawBufferPointer(rebasing: raw[start..<end]), isMessageEnd: end == raw.count,
                isText: isText, into: &output)
            start = end
            if end == raw.count || result != .needMore { return result }
        }
    }
}

func inflate(_ payload: [UInt8], with inflater: inout MessageInflater, pieceSize: Int = .max, isText: Bool = false)
    -> (MessageInflater.Result, [UInt8])
{
    var output = RecordingOutput()
    let result = inflate(payload, with: &inflater, pieceSize: pieceSize, isText: isText, output: &output)
    return (result, output.array)
}

/// `#require` for noncopyable values (the macro takes copyable ones only).
func unwrapped<T: ~Copyable>(_ value: consuming T?, _ what: String = "zlib stream") -> T {
    switch consume value {
    case .some(let unwrapped): return unwrapped
    case .none: preconditionFailure("\(what) could not be created")
    }
}

/// 1 GiB of zeros as one permessage-deflate payload (tail removed), compressed straight with
/// zlib's run-length strategy, which packs a 258-byte run into about two bits: about 1 MiB.
func zeroBomb(gibibytes: Int = 1) -> [UInt8] {
    var stream = z_stream()
    precondition(czlib_deflateInit2(&stream, 6, -15, 8, Z_RLE) == Z_OK)
    defer { deflateEnd(&stream) }
    let zeros = [UInt8](repeating: 0, count: 1 << 20)
    var output = [UInt8](repeating: 0, count: 1 << 20)
    var payload: [UInt8] = []
    let pieces = gibibytes << 10
    for index in 0..<pieces {
        zeros.withUnsafeBytes { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress!.assumingMemoryBound(to: Bytef.self))
            stream.avail_in = uInt(input.count)
            repeat {
                output.withUnsafeMutableBytes { out in
                    stream.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
                    stream.avail_out = uInt(out.count)
                    let status = deflate(&stream, index == pieces - 1 ? Z_SYNC_FLUSH : Z_NO_FLUSH)
                    precondition(status == Z_OK || status == Z_BUF_ERROR)
                    payload += out[..<(out.count - Int(stream.avail_out))]
                }
            } while stream.avail_out == 0
        }
    }
    precondition(payload.suffix(4) == [0, 0, 0xff, 0xff])
    return Array(payload.dropLast(4))
}
