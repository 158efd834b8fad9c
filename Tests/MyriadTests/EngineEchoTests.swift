import Foundation
import MyriadTestSupport
import Testing
import WebSocketCodec
@testable import Myriad

/// The engine serving real clients over real sockets, on both backends.
extension Integration {
@Suite struct EngineEchoTests {
    @Test(arguments: allBackends)
    func pythonWebsocketsClientEchoes(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend)
        let result = try ExternalClient.pythonEcho(port: server.port)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("failures: 0"), "\(result.output)")
        #expect(server.waitFor { $0.closes(.normal) == 1 && $0[.open] == 0 })
        #expect(server.stats()[.handshakes] == 1)
    }

    @Test(arguments: allBackends)
    func nodeWsClientEchoes(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend)
        let result = try ExternalClient.nodeEcho(port: server.port)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("failures: 0"), "\(result.output)")
        #expect(server.waitFor { $0.closes(.normal) == 1 && $0[.open] == 0 })
    }

    @Test(arguments: allBackends)
    func healthCheckAndPlainHTTP(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend)
        let health = try RawClient(port: server.port)
        try health.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        let healthResponse = String(decoding: try health.readToEnd(timeout: 5), as: UTF8.self)
        #expect(healthResponse.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(healthResponse.hasSuffix("\r\n\r\nok\n"))

        let missing = try RawClient(port: server.port)
        try missing.send("GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(String(decoding: try missing.readToEnd(timeout: 5), as: UTF8.self).hasPrefix("HTTP/1.1 404 "))

        let post = try RawClient(port: server.port)
        try post.send("POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        #expect(String(decoding: try post.readToEnd(timeout: 5), as: UTF8.self).hasPrefix("HTTP/1.1 400 "))

        let oldVersion = try RawClient(port: server.port)
        try oldVersion.send(RawClient.upgradeRequest().replacingOccurrences(of: "Version: 13", with: "Version: 8"))
        let refused = String(decoding: try oldVersion.readToEnd(timeout: 5), as: UTF8.self)
        #expect(refused.hasPrefix("HTTP/1.1 426 ") && refused.contains("Sec-WebSocket-Version: 13"))

        #expect(server.waitFor { $0.closes(.http) == 3 && $0.closes(.handshakeRejected) == 1 && $0[.open] == 0 })
    }

    @Test(arguments: allBackends)
    func handshakeInPiecesAndFramesInTheSameSegment(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend)
        let client = try RawClient(port: server.port)
        let request = Array(RawClient.upgradeRequest().utf8)
        // The request dribbles in, and its last piece carries the first frame too.
        for index in 0..<(request.count - 1) {
            try client.send([request[index]])
            if index % 16 == 0 { usleep(1000) }
        }
        try client.send([request.last!] + RawClient.frame(.text, Array("first".utf8)))
        #expect(try client.readHead(timeout: 5).hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        let echoed = try client.readMessage()
        #expect(echoed?.opcode == .text && echoed?.payload == Array("first".utf8))
    }

    @Test(arguments: allBackends)
    func pingGetsPongAndCloseIsEchoed(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend)
        let client = try RawClient(port: server.port)
        try client.upgrade()
        try client.sendFrame(.ping, Array("tick".utf8))
        let pong = try client.readMessage()
        #expect(pong?.opcode == .pong && pong?.payload == Array("tick".utf8))
        try client.sendClose(code: 4321, reason: "bye")
        let close = try client.readMessage()
        #expect(close?.opcode == .close && close?.closeCode == 4321)
        #expect(client.waitForClose(timeout: 5))
        #expect(server.waitFor { $0.closes(.normal) == 1 })
    }

    @Test(arguments: allBackends)
    func protocolViolationsGetTheirCloseCodes(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend) { $0.maxMessageSizeBytes = 1000 }
        let cases: [([UInt8], UInt16, CloseReason)] = [
            (RawClient.frame(.text, Array("x".utf8), masked: false), 1002, .protocolError),
            (RawClient.frame(.text, [0xC0, 0x80]), 1007, .invalidUTF8),
            (RawClient.frame(.binary, [UInt8](repeating: 7, count: 1001)), 1009, .messageTooBig),
            (RawClient.frame(.text, Array("x".utf8), rsv: 4), 1002, .protocolError),
        ]
        for (bytes, code, _) in cases {
            let client = try RawClient(port: server.port)
            try client.upgrade()
            try client.send(bytes)
            let close = try client.readMessage()
            #expect(close?.opcode == .close && close?.closeCode == code, "expected close \(code)")
            #expect(client.waitForClose(timeout: 5), "server must close the socket after failing the connection")
        }
        #expect(server.waitFor { $0.closes(.protocolError) == 2 && $0.closes(.invalidUTF8) == 1 && $0.closes(.messageTooBig) == 1 })
    }
}
}
