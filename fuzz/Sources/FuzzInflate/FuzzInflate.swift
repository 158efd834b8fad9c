// Fuzzes the inflate path: frames through FrameDecoder (client role, permessage-deflate agreed)
// and compressed messages through MessageInflater, fed whole and in pieces. Two kinds of input,
// chosen by the first byte:
//   - raw: the rest is a frame stream as it arrives, compressed payloads as they are;
//   - built: the rest describes messages, which MessageDeflater compresses (window, level and
//     takeover from the input), optionally damaged (a byte flipped, a tail cut), framed with
//     RSV1 and fragmented. Undamaged, each must come back exactly, or fail as it must: 1009
//     past the limit, 1007 for text that is not UTF-8.
// Invariants for both: no crash, no read or write outside buffers (AddressSanitizer), the
// inflated message never larger than the limit and the output never asked to grow past it,
// every compressed message ends in a message or a close code (1002, 1007 or 1009, never an
// output failure), text messages are valid UTF-8, and pieces decode exactly like the whole
// (below a 15-bit window, up to a stream that refers back further than its window: zlib's
// leniency there depends on how the bytes arrive, see `divergesOnlyByTooFarBack`).
import Glibc
import WebSocketCodec
import WebSocketCompression

let limit = 4096

struct Outcome: Equatable {
    var messages: [[UInt8]] = []
    var opcodes: [UInt8] = []
    var compressed: [Bool] = []
    var failure: UInt16 = 0
}

/// The inflater's output, checking that it is never asked to grow past the limit.
struct CheckedOutput: ~Copyable, CompressionOutput {
    var buffer = GrowableBuffer()

    mutating func freeSpace(minimumBytes: Int) -> UnsafeMutableRawBufferPointer? {
        precondition(buffer.count + minimumBytes <= limit, "asked to grow past the limit")
        return buffer.freeSpace(minimumBytes: minimumBytes)
    }
    mutating func didWrite(_ count: Int) {
        buffer.didWrite(count)
        precondition(buffer.count <= limit, "inflated past the limit")
    }
    mutating func discardLast(_ count: Int) { buffer.discardLast(count) }
}

func decode(_ stream: UnsafeRawBufferPointer, pieces: [Int], takeover: Bool, windowBits: Int) -> Outcome {
    let configuration = FrameDecoderConfiguration(role: .client, maxMessageSizeBytes: UInt64(limit))
    var decoder = FrameDecoder()
    decoder.acceptsCompressedMessages = true
    guard var inflater = MessageInflater(windowBits: windowBits, contextTakeover: takeover, maxMessageSizeBytes: limit)
    else { preconditionFailure("zlib could not allocate") }
    var output = CheckedOutput()
    var result = Outcome()
    var plain: [UInt8] = []
    var position = 0
    var pieceIndex = 0
    while position < stream.count && result.failure == 0 {
        let length = min(stream.count - position, max(1, pieces.isEmpty ? stream.count : pieces[pieceIndex % pieces.count]))
        pieceIndex += 1
        // Each piece in its own exact-size buffer, as receives arrive.
        let piece = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 1)
        defer { piece.deallocate() }
        piece.copyMemory(from: UnsafeRawBufferPointer(rebasing: stream[position..<(position + length)]))
        position += length
        var offset = 0
        loop: while true {
            switch decoder.next(piece, offset: &offset, configuration: configuration) {
            case .needMore:
                break loop
            case .failure(let code):
                precondition(code == .protocolError || code == .invalidPayload || code == .messageTooBig,
                             "decoder failure \(code)")
                result.failure = code.rawValue
                break loop
            case .chunk(let chunk):
                guard !chunk.opcode.isControl else { continue }
                if chunk.isCompressed {
                    let step = inflater.inflate(
                        UnsafeRawBufferPointer(chunk.bytes), isMessageEnd: chunk.isMessageEnd,
                        isText: chunk.opcode == .text, into: &output)
                    precondition(output.buffer.count <= limit)
                    switch step {
                    case .needMore:
                        precondition(!chunk.isMessageEnd, "a message's last piece must end it")
                    case .messageEnd:
                        precondition(chunk.isMessageEnd, "ended before its last piece")
                        finish(Array(output.buffer.bytes), chunk.opcode, compressed: true, into: &result)
                        output.buffer.removeAll()
                    case .failure(let code):
                        precondition(code == .invalidPayload || code == .messageTooBig, "inflate failure \(code)")
                        precondition(inflater.messageBytes == 0, "a failure resets the stream")
                        result.failure = code.rawValue
                        break loop
                    case .outputUnavailable:
                        preconditionFailure("the output never refuses within the limit")
                    }
                } else {
                    if chunk.isMessageStart { plain = [] }
                    plain += chunk.bytes
                    if chunk.isMessageEnd { finish(plain, chunk.opcode, compressed: false, into: &result) }
                }
            }
        }
    }
    return result
}

func finish(_ message: [UInt8], _ opcode: Opcode, compressed: Bool, into result: inout Outcome) {
    precondition(message.count <= limit)
    if opcode == .text { precondition(String(validating: message, as: UTF8.self) != nil, "text is not UTF-8") }
    result.messages.append(message)
    result.opcodes.append(opcode.rawValue)
    result.compressed.append(compressed)
}

/// Reads the input front to back; zeros once it runs out.
struct Reader {
    let data: UnsafeRawBufferPointer
    var position = 0
    var isAtEnd: Bool { position >= data.count }
    mutating func byte() -> UInt8 {
        defer { position += 1 }
        return position < data.count ? data[position] : 0
    }
    mutating func bytes(_ count: Int) -> [UInt8] {
        let end = min(data.count, position + count)
        defer { position = end }
        return position < end ? Array(data[position..<end]) : []
    }
}

/// The "built" input: settings, then messages (a length, a repeat count, an opcode and the
/// bytes), compressed and framed. Returns the frame stream and, when nothing was damaged,
/// what decoding it must give.
func build(_ reader: inout Reader, takeover: Bool, windowBits: Int) -> ([UInt8], Outcome?) {
    let level = [1, 6, 9, 0][Int(reader.byte() & 3)]
    let memoryLevel = Int(reader.byte() % 9) + 1
    let damage = reader.byte()
    let damageAt = Int(reader.byte()) << 8 | Int(reader.byte())
    let fragment = Int(reader.byte()) + 1
    guard var deflater = MessageDeflater(
        configuration: .init(windowBits: windowBits, memoryLevel: memoryLevel, level: level), contextTakeover: takeover)
    else { preconditionFailure("zlib could not allocate") }
    var stream: [UInt8] = []
    var expected = Outcome()
    var damaged = false
    var messageIndex = 0
    while !reader.isAtEnd && messageIndex < 8 {
        let length = Int(reader.byte())
        let repeats = Int(reader.byte() & 63) + 1
        let isText = reader.byte() & 1 == 0
        let unit = reader.bytes(length)
        var message: [UInt8] = []
        for _ in 0..<repeats { message += unit }
        var output = GrowableBuffer()
        let compressedOK = message.withUnsafeBytes { deflater.compress($0, into: &output) }
        precondition(compressedOK)
        var payload = Array(output.bytes)
        // Damage one message at most: flip bits in a byte, or cut the tail off.
        if damage != 0 && !damaged && messageIndex == damageAt % 8 && !payload.isEmpty {
            damaged = true
            if damage & 0x80 == 0 {
                payload[damageAt % payload.count] ^= damage
            } else {
                payload.removeLast(min(payload.count, Int(damage & 0x7F)))
            }
        }
        let opcode: Opcode = isText ? .text : .binary
        var start = 0
        repeat {
            let end = min(payload.count, start + fragment)
            let part = Array(payload[start..<end])
            var frame = [UInt8](repeating: 0, count: FrameEncoder.frameSize(payloadLength: part.count, masked: false))
            frame.withUnsafeMutableBytes { raw in
                part.withUnsafeBytes {
                    _ = FrameEncoder.writeFrame(
                        into: raw.baseAddress!, opcode: start == 0 ? opcode : .continuation, fin: end == payload.count,
                        compressed: start == 0, payload: $0)
                }
            }
            stream += frame
            start = end
        } while start < payload.count
        if expected.failure == 0 {
            // The inflater validates text as it comes out, so an impossible byte within the
            // limit fails first; past the limit the size does; a sequence cut by the end last.
            var validator = UTF8Validator()
            let prefixValid = message.prefix(limit).withUnsafeBytes { validator.validate($0) }
            if isText && !prefixValid {
                expected.failure = CloseCode.invalidPayload.rawValue
            } else if message.count > limit {
                expected.failure = CloseCode.messageTooBig.rawValue
            } else if isText && String(validating: message, as: UTF8.self) == nil {
                expected.failure = CloseCode.invalidPayload.rawValue
            } else {
                expected.messages.append(message)
                expected.opcodes.append(opcode.rawValue)
                expected.compressed.append(true)
            }
        }
        messageIndex += 1
    }
    return (stream, damaged ? nil : expected)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzInflate(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 3 else { return 0 }
    var reader = Reader(data: UnsafeRawBufferPointer(start: data, count: size))
    let mode = reader.byte()
    let takeover = mode & 2 != 0
    let windowBits = Int(mode >> 2 & 7) + 8
    let pieces = [Int(reader.byte() % 17) + 1, Int(reader.byte()) + 1, 3]
    var stream: [UInt8]
    var expected: Outcome?
    if mode & 1 == 0 {
        stream = reader.bytes(size)
    } else {
        // The built messages are read with an inflater of the deflater's window (zlib uses 9
        // bits for 8: its output reads with 8, which this exercises too).
        (stream, expected) = build(&reader, takeover: takeover, windowBits: windowBits)
    }
    stream.withUnsafeBytes { raw in
        let whole = decode(raw, pieces: [], takeover: takeover, windowBits: windowBits)
        let split = decode(raw, pieces: pieces, takeover: takeover, windowBits: windowBits)
        if whole != split && !(windowBits < 15 && divergesOnlyByTooFarBack(whole, split)) {
            describe(["whole": whole, "pieces": split])
            preconditionFailure("pieces decoded differently from the whole stream")
        }
        if let expected, whole != expected {
            describe(["expected": expected, "decoded": whole])
            preconditionFailure("an undamaged stream did not round-trip")
        }
    }
    return 0
}

/// zlib serves a reference beyond the inflater's window when the bytes are in the same call's
/// output, so a stream that breaks its agreed window (only a damaged or hostile one) may be
/// refused (1007) when it arrives in pieces and accepted whole, or the reverse. Allowed below
/// 15 bits, and only that: the same messages up to the refusal, which is 1007.
func divergesOnlyByTooFarBack(_ a: Outcome, _ b: Outcome) -> Bool {
    // The one refused earlier: fewer messages, a failure of 1007.
    let (refused, other) = a.messages.count < b.messages.count ? (a, b) : (b, a)
    guard refused.failure == CloseCode.invalidPayload.rawValue,
          refused.messages.count < other.messages.count || other.failure != 0
    else { return false }
    return Array(other.messages.prefix(refused.messages.count)) == refused.messages
        && Array(other.opcodes.prefix(refused.opcodes.count)) == refused.opcodes
}

/// Says how outcomes differ, on stderr (stdout is lost when the precondition stops the process).
func describe(_ outcomes: KeyValuePairs<String, Outcome>) {
    for (name, outcome) in outcomes {
        let line = "\(name): messages \(outcome.messages.map(\.count)) opcodes \(outcome.opcodes) "
            + "compressed \(outcome.compressed) failure \(outcome.failure)\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    }
}
