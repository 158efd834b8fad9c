import Foundation
import MyriadTestSupport
import Testing
import WebSocketCodec
@testable import Myriad

extension Integration {
@Suite struct ReadmeTests {
    /// The README holds ReadmeExample.swift's example verbatim.
    @Test func theReadmeExampleIsTheCompiledOne() throws {
        let readme = try String(contentsOf: ExternalClient.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let source = try String(contentsOf: ExternalClient.packageRoot.appendingPathComponent("Tests/MyriadTests/ReadmeExample.swift"),
                                encoding: .utf8)
        let begin = try #require(source.range(of: "// README:begin\n"))
        let end = try #require(source.range(of: "// README:end"))
        let example = String(source[begin.upperBound..<end.lowerBound])
        #expect(readme.contains("```swift\n" + example + "```"), "README.md's library example differs from ReadmeExample.swift")
    }

    /// The example runs: rooms across workers, the Origin check, a notification by user.
    @Test(arguments: allBackends)
    func theChatExampleWorks(backend: BackendChoice) throws {
        var config = Config()
        config.host = "127.0.0.1"
        config.port = 0
        config.workers = 2
        config.backend = backend
        config.logLevel = .warning
        let directory = UserDirectory()
        let engine = try startChat(config: config, directory: directory)
        defer { engine.shutdown(); engine.wait() }
        let origin = "Origin: https://chat.example\r\n"
        var lobby: [RawClient] = []
        for user in ["ann", "bob", "cid", "dee", "eve", "fay"] {
            let client = try RawClient(port: engine.port)
            let head = try client.upgrade(path: "/rooms/lobby?user=\(user)", extra: origin + "Sec-WebSocket-Protocol: chat.v1\r\n")
            #expect(head.contains("\r\nSec-WebSocket-Protocol: chat.v1\r\n"))
            lobby.append(client)
        }
        // SO_REUSEPORT spreads by a hash of the client's port, so seven clients land on one worker
        // about once in sixty runs: add lobby members (bounded) until both workers hold one.
        var extra = 0
        while !engine.workerStats().allSatisfy({ $0[.open] > 0 }) && extra < 48 {
            let client = try RawClient(port: engine.port)
            try client.upgrade(path: "/rooms/lobby?user=extra\(extra)", extra: origin)
            lobby.append(client)
            extra += 1
        }
        let elsewhere = try RawClient(port: engine.port)
        try elsewhere.upgrade(path: "/rooms/kitchen?user=gus", extra: origin)
        #expect(engine.workerStats().allSatisfy { $0[.open] > 0 }, "the clients should span both workers")
        try lobby[0].sendText("hello lobby")
        for client in lobby { #expect(try client.readMessage()?.payload == Array("hello lobby".utf8)) }
        #expect(throws: ClientError.self) { try elsewhere.readMessage(timeout: 0.3) }
        // Another site's page is refused; so is a request without a user.
        let evil = try RawClient(port: engine.port)
        try evil.send(RawClient.upgradeRequest(path: "/rooms/lobby?user=mal", extra: "Origin: https://evil.example\r\n"))
        #expect(String(decoding: try evil.readToEnd(timeout: 5), as: UTF8.self).hasPrefix("HTTP/1.1 403 "))
        let anonymous = try RawClient(port: engine.port)
        try anonymous.send(RawClient.upgradeRequest(path: "/rooms/lobby", extra: origin))
        #expect(String(decoding: try anonymous.readToEnd(timeout: 5), as: UTF8.self).hasPrefix("HTTP/1.1 400 "))
        // A notification for one user, from this (non-worker) thread.
        #expect(notify("gus", "you have mail", engine: engine, directory: directory))
        #expect(try elsewhere.readMessage()?.payload == Array("you have mail".utf8))
        #expect(!notify("nobody", "?", engine: engine, directory: directory))
        try lobby[1].sendFrame(.binary, [1, 2, 3])
        #expect(try lobby[1].readMessage()?.closeCode == 1003)
    }

    @Test func readmeListsEveryKnob() throws {
        let readme = try String(contentsOf: ExternalClient.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        for knob in Config.knobs {
            #expect(readme.contains("`\(knob.variable)`"), "README.md does not document \(knob.variable)")
            #expect(readme.contains("`--\(knob.flag)`"), "README.md does not document --\(knob.flag)")
        }
        for reason in CloseReason.allCases where reason != .none {
            #expect(readme.contains("`\(reason.name)`"), "README.md does not list the close reason \(reason.name)")
        }
    }
}
}
