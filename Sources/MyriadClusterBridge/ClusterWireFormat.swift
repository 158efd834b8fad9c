import Myriad
import WebSocketCodec

/// How a message travels between nodes. NATS payloads are bytes, so the message's kind goes
/// first: one byte, the WebSocket opcode (0x01 text, 0x02 binary), then the message as the
/// publisher gave it. The subject (`ClusterSubject`) names the topic; one subject per topic,
/// so a node needs one subscription per topic whatever the kinds of its messages.
///
/// Anything else that publishes to the prefix (a backend with a NATS client) can reach the
/// WebSocket subscribers the same way: `\x01` + UTF-8 text, or `\x02` + bytes. What is not in
/// this format (no byte, another tag, text that is not UTF-8) is dropped and counted on the
/// receiving node (`cluster_import_malformed`): it must not reach a browser as a broken frame.
public enum ClusterWireFormat {
    public static let textTag: UInt8 = 0x01
    public static let binaryTag: UInt8 = 0x02

    @inline(__always)
    public static func tag(for kind: MessageKind) -> UInt8 { kind == .text ? textTag : binaryTag }

    /// The kind and the message of a cluster payload, or nil when it is not one (text is
    /// validated as UTF-8: every node trusts the others' bytes no more than a client's).
    public static func decode(_ payload: UnsafeRawBufferPointer) -> (kind: MessageKind, message: UnsafeRawBufferPointer)? {
        guard let first = payload.first else { return nil }
        let message = UnsafeRawBufferPointer(rebasing: payload[1...])
        switch first {
        case textTag:
            var validator = UTF8Validator()
            guard validator.validate(message), validator.isComplete else { return nil }
            return (.text, message)
        case binaryTag:
            return (.binary, message)
        default:
            return nil
        }
    }
}
