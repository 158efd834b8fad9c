import Foundation
import Glibc
import MyriadTestSupport
import Testing
import WebSocketCodec
import WebSocketCompression
@testable import Myriad

/// Compresses `payload` as a client would for a no-context-takeover agreement (RFC 7692).
func clientDeflate(_ payload: [UInt8]) -> [UInt8] {
    var deflater = MessageDeflater(configuration: .shared, contextTakeover: false)!
    var output = GrowableBuffer()
    precondition(payload.withUnsafeBytes { deflater.compress($0, isMessageEnd: true, into: &output) })
    return Array(output.bytes)
}

/// Inflates a compressed server message.
func clientInflate(_ payload: [UInt8], limit: Int = 64 << 20) -> [UInt8]? {
    var inflater = MessageInflater(windowBits: 15, contextTakeover: false, maxMessageSizeBytes: limit)!
    var output = GrowableBuffer()
    let result = payload.withUnsafeBytes { inflater.inflate($0, isMessageEnd: true, isText: false, into: &output) }
    return result == .messageEnd ? Array(output.bytes) : nil
}

extension RawClient {
    /// Sends a compressed message (RSV1 on its first frame).
    func sendCompressed(_ opcode: Opcode, _ payload: [UInt8]) throws {
        try send(RawClient.frame(opcode, clientDeflate(payload), rsv: 4))
    }
}

extension Integration {
@Suite struct CompressionTests {
    static let deflateOffer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"

    /// Python websockets offers permessage-deflate by default: the shared mode answers with
    /// no context takeover either way, and every message comes back intact.
    @Test(arguments: allBackends, [CompressionMode.shared, .dedicated])
    func pythonWebsocketsNegotiatesAndEchoes(backend: BackendChoice, mode: CompressionMode) throws {
        let server = try TestServer(backend: backend) { $0.compression = mode }
        defer { server.stop() }
        let expected = mode == .shared ? "server_no_context_takeover; client_no_context_takeover" : "client_max_window_bits=11"
        let result = try ExternalClient.run(ExternalClient.python, [
            ExternalClient.clientsDirectory.appendingPathComponent("deflate_check.py").path, String(server.port), expected,
        ])
        #expect(result.status == 0, "\(result.output)")
        let stats = server.stats()
        #expect(stats[.deflateAgreed] == 1 && stats[.messagesInflated] > 0 && stats[.messagesCompressed] > 0, "\(stats.fields)")
    }

    @Test(arguments: allBackends)
    func nodeWsNegotiatesAndEchoes(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend) { $0.compression = .shared }
        defer { server.stop() }
        let result = try ExternalClient.run("/usr/bin/node", [
            ExternalClient.clientsDirectory.appendingPathComponent("deflate_check.js").path, String(server.port),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ], environment: ["NODE_PATH": "/usr/share/nodejs"])
        #expect(result.status == 0, "\(result.output)")
    }

    /// A browser: Debian's headless Chromium, which offers permessage-deflate on every
    /// connection as every browser does, from a page on an http:// origin. The server agrees
    /// (shared mode: no context takeover either way), Chromium's compressed messages are
    /// inflated and the echoes it gets back compressed are whole (Tests/clients/chromium_check.py).
    @Test(arguments: allBackends)
    func chromiumNegotiatesAndEchoes(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend) { $0.compression = .shared }
        defer { server.stop() }
        let result = try ExternalClient.run("/usr/bin/python3", [
            ExternalClient.clientsDirectory.appendingPathComponent("chromium_check.py").path, String(server.port),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ], timeout: 120)
        #expect(result.status == 0, "\(result.output)")
        let stats = server.stats()
        #expect(stats[.deflateAgreed] == 1 && stats[.messagesInflated] > 0 && stats[.messagesCompressed] > 0, "\(stats.fields)")
    }

    /// Off (the default): the offer is not answered, and RSV1 stays a protocol error.
    @Test func offMeansNotAnswered() throws {
        let server = try TestServer(workers: 1)
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        let head = try client.upgrade(extra: Self.deflateOffer)
        #expect(!head.lowercased().contains("sec-websocket-extensions"))
        try client.sendCompressed(.text, Array("hello".utf8))
        #expect(try client.readMessage()?.closeCode == 1002)
    }

    /// An offer the server cannot accept (an unknown parameter, a bad window value) is
    /// declined without failing the upgrade; a later acceptable offer is taken.
    @Test func unsupportedOffersAreDeclined() throws {
        let server = try TestServer(workers: 1) { $0.compression = .shared }
        defer { server.stop() }
        for offer in ["permessage-deflate; no_such_parameter", "permessage-deflate; server_max_window_bits=99",
                      "permessage-deflate; client_max_window_bits; client_max_window_bits", "x-webkit-deflate-frame"] {
            let client = try RawClient(port: server.port)
            let head = try client.upgrade(extra: "Sec-WebSocket-Extensions: \(offer)\r\n")
            #expect(!head.lowercased().contains("sec-websocket-extensions"), "\(offer): \(head)")
            try client.sendText("plain")
            #expect(try client.readMessage()?.payload == Array("plain".utf8))
        }
        let client = try RawClient(port: server.port)
        let head = try client.upgrade(extra: "Sec-WebSocket-Extensions: permessage-deflate; bogus=1, permessage-deflate\r\n")
        #expect(head.contains("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"))
    }

    /// A decompression bomb: 64 MiB of zeros compressed to about 64 KiB, against a 1 MiB
    /// limit on the inflated size: 1009, and the worker's pool never holds more than the limit.
    @Test(arguments: allBackends)
    func aDecompressionBombGets1009(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend, workers: 1) { config in
            config.compression = .shared
            config.maxMessageSizeBytes = 1 << 20
        }
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.upgrade(extra: Self.deflateOffer)
        try client.sendCompressed(.binary, [UInt8](repeating: 0, count: 64 << 20))
        let close = try #require(try client.readMessage(timeout: 10))
        #expect(close.opcode == .close && close.closeCode == 1009)
        #expect(server.waitFor { $0.closes(.messageTooBig) == 1 })
        #expect(server.waitFor { $0[.pooledBytes] == 0 })
        try assertStillEchoing(server)
    }

    /// Corrupt compressed data is 1007; compressed text that inflates to invalid UTF-8 too.
    @Test func corruptDataAndBadTextAre1007() throws {
        let server = try TestServer(workers: 1) { $0.compression = .shared }
        defer { server.stop() }
        let corrupt = try RawClient(port: server.port)
        try corrupt.upgrade(extra: Self.deflateOffer)
        try corrupt.send(RawClient.frame(.binary, [0xFF, 0xFF, 0xFF, 0x00, 0x12], rsv: 4))
        #expect(try corrupt.readMessage()?.closeCode == 1007)
        let badText = try RawClient(port: server.port)
        try badText.upgrade(extra: Self.deflateOffer)
        try badText.sendCompressed(.text, [0x61, 0xC0, 0x80, 0x62])
        #expect(try badText.readMessage()?.closeCode == 1007)
    }

    /// Compressed messages over fragments, and control frames between them; the reply is
    /// compressed when it reaches the threshold and plain below it.
    @Test func fragmentsThresholdAndReplies() throws {
        let server = try TestServer(workers: 1) { config in
            config.compression = .shared
            config.compressionThresholdBytes = 100
        }
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.upgrade(extra: Self.deflateOffer)
        let text = Array(String(repeating: "abcdefgh", count: 500).utf8)
        let compressed = clientDeflate(text)
        let half = compressed.count / 2
        try client.send(RawClient.frame(.text, Array(compressed[..<half]), fin: false, rsv: 4))
        try client.sendFrame(.ping, Array("in between".utf8))
        try client.send(RawClient.frame(.continuation, Array(compressed[half...]), fin: true))
        #expect(try client.readMessage()?.opcode == .pong)
        let reply = try client.readRawFrame()
        #expect(reply.rsv1 && reply.opcode == .text)
        #expect(clientInflate(reply.payload) == text)
        try client.sendCompressed(.text, Array("short".utf8))
        let small = try client.readRawFrame()
        #expect(!small.rsv1 && small.payload == Array("short".utf8))
    }

    /// A topic with compressed and plain subscribers: each gets the message in its own form,
    /// the compressed frame made once (messages_compressed counts recipients).
    @Test(arguments: allBackends)
    func aTopicWithCompressedAndPlainSubscribers(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend, workers: 2) { $0.compression = .shared } handler: { _ in BroadcastHandler() }
        defer { server.stop() }
        var compressed: [RawClient] = []
        var plain: [RawClient] = []
        for index in 0..<20 {
            let client = try RawClient(port: server.port, source: "127.0.0.\(2 + index % 4)")
            if index % 2 == 0 {
                try client.upgrade(path: "/mixed", extra: Self.deflateOffer)
                compressed.append(client)
            } else {
                try client.upgrade(path: "/mixed")
                plain.append(client)
            }
        }
        #expect(server.waitFor { $0[.subscriptions] == 20 })
        let message = Array(String(repeating: "{\"price\": 101.25, \"symbol\": \"MYRD\"}", count: 30).utf8)
        try plain[0].sendText(String(decoding: message, as: UTF8.self))
        for client in compressed {
            let frame = try client.readRawFrame()
            #expect(frame.rsv1 && clientInflate(frame.payload) == message)
        }
        for client in plain {
            let frame = try client.readRawFrame()
            #expect(!frame.rsv1 && frame.payload == message)
        }
        #expect(server.waitFor { $0[.messagesCompressed] == 10 && $0[.deliveries] == 20 }, "\(server.stats().fields)")
    }

    /// Dedicated mode within its budget, shared past it: with room for one pair only, the
    /// first client keeps context (window 11) and the second gets the shared answer.
    @Test func dedicatedWithinTheBudgetSharedPastIt() throws {
        let server = try TestServer(workers: 1) { config in
            config.compression = .dedicated
            config.compressionDedicatedBudgetBytes = WorkerCompression.dedicatedPairBytes
        }
        defer { server.stop() }
        let first = try RawClient(port: server.port)
        let firstHead = try first.upgrade(extra: Self.deflateOffer)
        #expect(firstHead.contains("client_max_window_bits=11"), "\(firstHead)")
        #expect(!firstHead.contains("server_no_context_takeover"))
        let second = try RawClient(port: server.port)
        let secondHead = try second.upgrade(extra: Self.deflateOffer)
        #expect(secondHead.contains("server_no_context_takeover; client_no_context_takeover"), "\(secondHead)")
        #expect(server.waitFor { $0[.dedicatedDeflate] == 1 })
        try first.sendClose()
        #expect(server.waitFor { $0[.dedicatedDeflate] == 0 })
    }
}
}
