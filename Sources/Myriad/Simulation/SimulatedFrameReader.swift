import WebSocketCodec

/// The scripted peers' reading side of the codec, for either end: decodes what the worker
/// under test sent into whole control frames and whole data messages (gathered across pieces
/// and fragments), and removes what it decoded. `SimulatedPeer` reads a server's frames with
/// it, the load generator's `SimulatedServer` a client's.
package struct SimulatedFrameReader {
    package enum Item {
        case control(Opcode, [UInt8])
        case message(Opcode, [UInt8])
        /// The worker's frames broke the protocol: the close code a peer would fail with.
        case failure(CloseCode)
    }

    private let configuration: FrameDecoderConfiguration
    private var decoder = FrameDecoder()
    private var message: [UInt8] = []
    private var messageOpcode = Opcode.binary
    private var control: [UInt8] = []

    /// Reads frames as `role` reads them (a client's must come unmasked, a server's masked).
    package init(role: Role, maxMessageSizeBytes: UInt64) {
        configuration = FrameDecoderConfiguration(role: role, maxMessageSizeBytes: maxMessageSizeBytes)
    }

    /// Decodes `bytes` from the front, handing each whole item to `handle` until it returns
    /// false (a close frame, a failure: the reader stops), and removes what it decoded.
    package mutating func read(_ bytes: inout [UInt8], _ handle: (Item) -> Bool) {
        guard !bytes.isEmpty else { return }
        var offset = 0
        var items: [Item] = []
        bytes.withUnsafeMutableBytes { buffer in
            loop: while true {
                switch decoder.next(buffer, offset: &offset, configuration: configuration) {
                case .needMore:
                    break loop
                case .failure(let code):
                    items.append(.failure(code))
                    break loop
                case .chunk(let chunk):
                    if chunk.opcode.isControl {
                        if chunk.isFrameStart { control.removeAll() }
                        control += chunk.bytes
                        guard chunk.isFrameEnd else { continue }
                        items.append(.control(chunk.opcode, control))
                        if chunk.opcode == .close { break loop }
                    } else {
                        if chunk.isMessageStart { message.removeAll(); messageOpcode = chunk.opcode }
                        message += chunk.bytes
                        if chunk.isMessageEnd { items.append(.message(messageOpcode, message)) }
                    }
                }
            }
        }
        bytes.removeFirst(offset)
        for item in items where !handle(item) { return }
    }
}
