import Foundation
import MyriadTestSupport
import Testing
import WebSocketCodec
@testable import Myriad

/// The README's handler example, verbatim, compiled and exercised: its API must stay true.
struct ChatRoom: WebSocketHandler {
    typealias ConnectionState = Void
    var members: Set<ConnectionID> = []

    mutating func upgrade(_ request: UpgradeRequestHead, ticket: UpgradeTicket) -> UpgradeDecision<Void> {
        .accept(subprotocol: request.offersSubprotocol("chat.v1") ? "chat.v1" : nil)
    }

    mutating func onOpen(_ connection: Connection) {
        members.insert(connection.id)
    }

    mutating func onMessage(_ connection: Connection, kind: MessageKind, payload: UnsafeRawBufferPointer) {
        guard kind == .text else { return connection.close(code: .unsupportedData, reason: "text only") }
        for member in members {
            // .queued, .closed (gone meanwhile) or .slowConsumer (its queue passed the limit)
            _ = connection.context.connection(member).send(text: payload)
        }
    }

    mutating func onClose(_ connection: Connection, event: CloseEvent) {
        members.remove(connection.id)
    }
}

extension Integration {
@Suite struct ReadmeTests {
    @Test func chatRoomExampleBroadcastsAndNegotiates() throws {
        let server = try TestServer(backend: .ioUring, workers: 1) { _ in ChatRoom() }
        var clients: [RawClient] = []
        for _ in 0..<3 {
            let client = try RawClient(port: server.port)
            let head = try client.upgrade(extra: "Sec-WebSocket-Protocol: other, chat.v1\r\n")
            #expect(head.contains("\r\nSec-WebSocket-Protocol: chat.v1\r\n"))
            clients.append(client)
        }
        try clients[0].sendText("hello room")
        for client in clients {
            #expect(try client.readMessage()?.payload == Array("hello room".utf8))
        }
        try clients[1].sendFrame(.binary, [1, 2, 3])
        let refusal = try clients[1].readMessage()
        #expect(refusal?.opcode == .close && refusal?.closeCode == 1003)
        try clients[1].sendClose(code: 1003)
        #expect(clients[1].waitForClose(timeout: 5))
        try clients[2].sendText("two left")
        #expect(try clients[0].readMessage()?.payload == Array("two left".utf8))
        #expect(try clients[2].readMessage()?.payload == Array("two left".utf8))
        #expect(server.waitFor { $0.closes(.application) == 1 })
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
