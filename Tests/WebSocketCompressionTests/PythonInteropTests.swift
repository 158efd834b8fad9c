import Foundation
import Testing
import WebSocketCodec
@testable import WebSocketCompression

/// Runs Tests/clients/deflate_interop.py (CPython's zlib, as Python websockets uses it) over
/// `messages` and returns its output records.
func runPython(_ mode: String, windowBits: Int, takeover: Bool, _ messages: [[UInt8]]) throws -> [[UInt8]] {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let script = root.appendingPathComponent("Tests/clients/deflate_interop.py")
    var input = Data()
    for message in messages {
        withUnsafeBytes(of: UInt32(message.count).bigEndian) { input.append(contentsOf: $0) }
        input.append(contentsOf: message)
    }
    let inputFile = FileManager.default.temporaryDirectory.appendingPathComponent("myriad-deflate-\(UUID().uuidString)")
    try input.write(to: inputFile)
    defer { try? FileManager.default.removeItem(at: inputFile) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", script.path, mode, String(windowBits), takeover ? "1" : "0"]
    process.standardInput = try FileHandle(forReadingFrom: inputFile)
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = [UInt8](pipe.fileHandleForReading.readDataToEndOfFile())
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw InteropError.pythonFailed(process.terminationStatus) }
    var records: [[UInt8]] = []
    var position = 0
    while position + 4 <= output.count {
        let length = output[position..<position + 4].reduce(0) { $0 << 8 | Int($1) }
        records.append(Array(output[(position + 4)..<(position + 4 + length)]))
        position += 4 + length
    }
    return records
}

enum InteropError: Error { case pythonFailed(Int32) }

/// Messages for the interop runs: JSON-like and random, empty to 64 KiB, with repeats across
/// messages so context takeover has something to refer to.
func interopMessages() -> [[UInt8]] {
    var messages: [[UInt8]] = [[], bytes("Hello"), bytes("Hello")]
    for (index, size) in [1, 100, 1024, 4096, 65_536, 1024, 300].enumerated() {
        messages.append(jsonMessage(size: size, seed: UInt64(index)))
        messages.append(randomBytes(size / 4, seed: UInt64(index)))
    }
    messages.append(jsonMessage(size: 1024, seed: 2))
    return messages
}

@Suite struct PythonInteropTests {
    @Test(arguments: 9...15)
    func weInflateWhatPythonCompresses(windowBits: Int) throws {
        let messages = interopMessages()
        for takeover in [false, true] {
            let payloads = try runPython("deflate", windowBits: windowBits, takeover: takeover, messages)
            #expect(payloads.count == messages.count)
            var inflater = unwrapped(MessageInflater(
                windowBits: windowBits, contextTakeover: takeover, maxMessageSizeBytes: 1 << 20))
            for (index, payload) in payloads.enumerated() {
                let (result, inflated) = inflate(payload, with: &inflater, pieceSize: index % 3 == 0 ? 1 : .max)
                #expect(result == .messageEnd)
                #expect(inflated == messages[index], "window \(windowBits), takeover \(takeover), message \(index)")
            }
        }
    }

    @Test(arguments: 8...15)
    func pythonInflatesWhatWeCompress(windowBits: Int) throws {
        // Window 8 checks the claim that zlib's 9-bit output reads with an 8-bit window.
        let messages = interopMessages()
        for takeover in [false, true] {
            var deflater = unwrapped(MessageDeflater(
                configuration: .init(windowBits: windowBits, memoryLevel: 4), contextTakeover: takeover))
            let payloads = messages.enumerated().map { compress($1, with: &deflater, pieceSize: $0 % 2 == 0 ? 333 : .max) }
            let inflated = try runPython("inflate", windowBits: windowBits, takeover: takeover, payloads)
            #expect(inflated == messages, "window \(windowBits), takeover \(takeover)")
        }
    }
}
