import Foundation
import Testing
import WebSocketCodec
@testable import WebSocketCompression

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
/// The project's venv (`make deps`), where Python websockets is installed.
let venvPython = repositoryRoot.appendingPathComponent(".venv/bin/python").path

/// Runs Tests/clients/deflate_websockets.py with `arguments`, `input` on stdin; its stdout.
func runWebsockets(_ arguments: [String], input: Data = Data()) throws -> Data {
    let inputFile = FileManager.default.temporaryDirectory.appendingPathComponent("myriad-ws-\(UUID().uuidString)")
    try input.write(to: inputFile)
    defer { try? FileManager.default.removeItem(at: inputFile) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: venvPython)
    process.arguments = [repositoryRoot.appendingPathComponent("Tests/clients/deflate_websockets.py").path] + arguments
    process.standardInput = try FileHandle(forReadingFrom: inputFile)
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw InteropError.pythonFailed(process.terminationStatus) }
    return output
}

/// Negotiates `offer` (a Sec-WebSocket-Extensions value) the way the engine will, from a parsed
/// upgrade request.
func negotiate(offer: String, policy: PerMessageDeflatePolicy) -> PerMessageDeflateAgreement? {
    let request = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        + "Sec-WebSocket-Extensions: \(offer)\r\n\r\n"
    return Array(request.utf8).withUnsafeBytes { raw in
        var parser = HandshakeParser()
        guard case .upgrade(let upgrade, _) = parser.parse(raw) else { preconditionFailure("bad request") }
        return PerMessageDeflateNegotiator.negotiate(upgrade.offeredExtensions, policy: policy)
    }
}

extension [UInt8] {
    var hexString: String { map { String(format: "%02x", $0) }.joined() }
}

struct WebsocketsSession: Decodable {
    var decoded: [String]
    var client_payloads: [String]
}

/// Python websockets as the client, sans I/O: its default offer, negotiated by us under each
/// policy; websockets must accept our response and both sides must read what the other
/// compressed, with the streams the engine would use for the agreed parameters.
@Suite(.enabled(if: FileManager.default.fileExists(atPath: venvPython), "needs .venv (make deps)"))
struct WebsocketsInteropTests {
    @Test(arguments: [PerMessageDeflatePolicy.shared, .dedicated()])
    func websocketsAcceptsOurAnswerAndReadsOurMessages(policy: PerMessageDeflatePolicy) throws {
        let offer = String(decoding: try runWebsockets(["offer"]), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(offer == "permessage-deflate; client_max_window_bits")
        let agreement = try #require(negotiate(offer: offer, policy: policy))
        let parameters = agreement.parameters
        let response = agreement.withResponseValue { String(decoding: $0, as: UTF8.self) }

        // Server to client: the worker's shared deflater, or the connection's own.
        let messages = (0..<20).map { jsonMessage(size: [10, 200, 1024, 5000][$0 % 4], seed: UInt64($0)) }
        var serverPayloads: [[UInt8]] = []
        if parameters.needsConnectionDeflater {
            var deflater = unwrapped(MessageDeflater(connection: parameters))
            serverPayloads = messages.map { compress($0, with: &deflater) }
        } else {
            var streams = unwrapped(SharedCompressionStreams(maxMessageSizeBytes: 1 << 20))
            serverPayloads = messages.map { message in
                var output = RecordingOutput()
                precondition(message.withUnsafeBytes {
                    streams.compress($0, windowBits: parameters.serverMaxWindowBits, into: &output)
                })
                return output.array
            }
        }
        let session = try JSONSerialization.data(withJSONObject: [
            "response": response,
            "server_payloads": serverPayloads.map(\.hexString),
            "server_text": true,
            "client_messages": messages.map(\.hexString),
        ])
        let result = try JSONDecoder().decode(WebsocketsSession.self, from: runWebsockets(["session"], input: session))
        #expect(result.decoded == messages.map(\.hexString), "\(response)")

        // Client to server: the shared inflater, or the connection's own.
        var inflater = parameters.needsConnectionInflater
            ? unwrapped(MessageInflater(connection: parameters, maxMessageSizeBytes: 1 << 20))
            : unwrapped(MessageInflater(windowBits: 15, contextTakeover: false, maxMessageSizeBytes: 1 << 20))
        for (index, payload) in result.client_payloads.enumerated() {
            let (outcome, inflated) = inflate(hex(payload), with: &inflater, pieceSize: index % 2 == 0 ? 3 : .max)
            #expect(outcome == .messageEnd)
            #expect(inflated == messages[index], "\(response): client message \(index)")
        }
    }
}
