// Fuzzes FrameDecoder: any byte stream, fed whole and in pieces (sizes from the first input
// bytes), in both roles. Invariants: no crash, no read past the buffer (AddressSanitizer on an
// exact-size copy), `offset` only moves forward and stays within the buffer, `.needMore` only
// at the end of the buffer, failures are sticky, carry a close code the RFC allows a receiver
// to send, and the pieces decode to the same messages and the same failure as the whole.
import WebSocketCodec

struct Result: Equatable {
    var messages: [[UInt8]] = []
    var opcodes: [UInt8] = []
    var failure: UInt16 = 0
}

func decode(_ stream: UnsafeRawBufferPointer, pieces: [Int], role: Role) -> Result {
    let configuration = FrameDecoderConfiguration(role: role, maxMessageSizeBytes: 4096)
    var decoder = FrameDecoder()
    var result = Result()
    var message: [UInt8] = []
    var control: [UInt8] = []
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
            let before = offset
            switch decoder.next(piece, offset: &offset, configuration: configuration) {
            case .needMore:
                precondition(offset == piece.count, "needMore before the end of the buffer")
                break loop
            case .failure(let code):
                precondition(code.maySend(as: .server) && !code.isLocalOnly, "failure code \(code) may not be sent")
                if case .failure(let again) = decoder.next(piece, offset: &offset, configuration: configuration) {
                    precondition(again == code, "failure not sticky")
                } else {
                    preconditionFailure("failure not sticky")
                }
                result.failure = code.rawValue
                break loop
            case .chunk(let chunk):
                precondition(offset >= before && offset <= piece.count, "offset out of range")
                precondition(offset > before || chunk.bytes.isEmpty, "no progress")
                if let base = chunk.bytes.baseAddress, chunk.bytes.count > 0 {
                    precondition(base >= piece.baseAddress! && base + chunk.bytes.count <= piece.baseAddress! + piece.count)
                }
                if chunk.opcode.isControl {
                    if chunk.isFrameStart { control = [] }
                    control += chunk.bytes
                    precondition(control.count <= 125)
                    if chunk.isMessageEnd {
                        result.messages.append(control)
                        result.opcodes.append(chunk.opcode.rawValue)
                    }
                } else {
                    if chunk.isMessageStart { message = [] }
                    message += chunk.bytes
                    precondition(message.count <= 4096)
                    if chunk.isMessageEnd {
                        if chunk.opcode == .text { precondition(String(validating: message, as: UTF8.self) != nil) }
                        result.messages.append(message)
                        result.opcodes.append(chunk.opcode.rawValue)
                    }
                }
            }
        }
    }
    return result
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrames(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 2 else { return 0 }
    let pieces = [Int(data[0] % 17) + 1, Int(data[1]) + 1, 3]
    let stream = UnsafeRawBufferPointer(start: data + 2, count: size - 2)
    for role in [Role.server, .client] {
        let whole = decode(stream, pieces: [], role: role)
        let split = decode(stream, pieces: pieces, role: role)
        precondition(whole == split, "pieces decoded differently from the whole stream")
    }
    // The UTF-8 validator agrees with the standard library on the raw input.
    var validator = UTF8Validator()
    let valid = validator.validate(stream) && validator.isComplete
    precondition(valid == (String(validating: Array(stream), as: UTF8.self) != nil))
    return 0
}
