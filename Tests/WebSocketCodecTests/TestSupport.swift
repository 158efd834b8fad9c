import WebSocketCodec

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

/// A message as the assembler reports it.
struct DecodedMessage: Equatable, CustomStringConvertible {
    var opcode: Opcode
    var payload: [UInt8]
    var closeCode: UInt16? = nil
    /// Reported compressed (RSV1 on its first frame, permessage-deflate).
    var compressed = false
    var description: String {
        "\(opcode)(\(payload.count) bytes\(closeCode.map { ", code \($0)" } ?? "")\(compressed ? ", compressed" : ""))"
    }
}

/// Feeds chunks through a `FrameDecoder` and reassembles messages, the way the engine does.
struct Assembler {
    var decoder = FrameDecoder()
    var configuration: FrameDecoderConfiguration
    var messages: [DecodedMessage] = []
    var partialData: [UInt8] = []
    var partialControl: [UInt8] = []
    var partialCompressed = false
    var failure: CloseCode?
    /// Largest number of payload chunks any single frame produced.
    var chunkCount = 0

    init(role: Role = .server, maxMessageSizeBytes: UInt64 = 1 << 24, acceptsCompressedMessages: Bool = false) {
        configuration = FrameDecoderConfiguration(role: role, maxMessageSizeBytes: maxMessageSizeBytes)
        decoder.acceptsCompressedMessages = acceptsCompressedMessages
    }

    /// Feeds one piece of the stream; returns false once the stream failed.
    @discardableResult
    mutating func feed(_ bytes: [UInt8]) -> Bool {
        var copy = bytes
        return copy.withUnsafeMutableBytes { buffer in
            var offset = 0
            while true {
                let before = offset
                switch decoder.next(buffer, offset: &offset, configuration: configuration) {
                case .needMore:
                    precondition(offset == buffer.count)
                    return true
                case .failure(let code):
                    failure = code
                    return false
                case .chunk(let chunk):
                    precondition(offset >= before && offset <= buffer.count)
                    chunkCount += 1
                    if chunk.opcode.isControl {
                        if chunk.isFrameStart { partialControl = [] }
                        partialControl += chunk.bytes
                        if chunk.isMessageEnd {
                            messages.append(DecodedMessage(
                                opcode: chunk.opcode, payload: partialControl,
                                closeCode: chunk.opcode == .close ? chunk.closeCode.rawValue : nil))
                        }
                    } else {
                        if chunk.isMessageStart {
                            partialData = []
                            partialCompressed = chunk.isCompressed
                        }
                        precondition(chunk.isCompressed == partialCompressed, "every chunk of a message agrees")
                        partialData += chunk.bytes
                        if chunk.isMessageEnd {
                            messages.append(DecodedMessage(
                                opcode: chunk.opcode, payload: partialData, compressed: partialCompressed))
                        }
                    }
                }
            }
        }
    }
}

/// Builds frames for tests, masked (client to server) unless `mask` is nil.
func frame(
    _ opcode: UInt8, fin: Bool = true, rsv: UInt8 = 0, payload: [UInt8],
    mask: [UInt8]? = [0x37, 0xFA, 0x21, 0x3D], lengthOverride: UInt64? = nil
) -> [UInt8] {
    var bytes: [UInt8] = [(fin ? 0x80 : 0) | (rsv << 4) | opcode]
    let maskBit: UInt8 = mask == nil ? 0 : 0x80
    let length = lengthOverride ?? UInt64(payload.count)
    if length < 126 {
        bytes.append(maskBit | UInt8(length))
    } else if length <= 0xFFFF {
        bytes.append(maskBit | 126)
        bytes += [UInt8(length >> 8), UInt8(length & 0xFF)]
    } else {
        bytes.append(maskBit | 127)
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8((length >> UInt64(shift)) & 0xFF)) }
    }
    if let mask {
        bytes += mask
        bytes += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
    } else {
        bytes += payload
    }
    return bytes
}

func bytes(_ string: String) -> [UInt8] { Array(string.utf8) }

/// Runs the handshake parser over `request` fed in the given pieces.
func parseHandshake(_ request: String, pieceSize: Int = .max, maxHeadBytes: Int = 8192) -> HandshakeOutcome {
    let all = Array(request.utf8)
    var parser = HandshakeParser()
    var end = 0
    repeat {
        end = min(all.count, end + max(1, min(pieceSize, all.count)))
        let outcome: HandshakeOutcome = all[..<end].withUnsafeBytes { raw in
            HandshakeOutcome(parser.parse(raw, maxHeadBytes: maxHeadBytes))
        }
        if outcome != .needMore { return outcome }
    } while end < all.count
    return .needMore
}

/// A copyable summary of a `HandshakeStep` (whose views die with the bytes).
enum HandshakeOutcome: Equatable {
    case needMore
    case upgrade(target: String, key: String, protocols: [String], headLength: Int)
    case plain(method: String, target: String, health: Bool, headLength: Int)
    case reject(HandshakeRejection)

    init(_ step: HandshakeStep) {
        switch step {
        case .needMore: self = .needMore
        case .upgrade(let request, let headLength):
            self = .upgrade(
                target: String(decoding: request.target, as: UTF8.self),
                key: String(decoding: request.key, as: UTF8.self),
                protocols: request.offeredSubprotocols.map { String(decoding: $0, as: UTF8.self) },
                headLength: headLength)
        case .plainRequest(let request, let headLength):
            self = .plain(
                method: String(decoding: request.method, as: UTF8.self),
                target: String(decoding: request.target, as: UTF8.self),
                health: request.isHealthCheck, headLength: headLength)
        case .reject(let rejection): self = .reject(rejection)
        }
    }
}
