import Foundation
import MyriadTestSupport
import Testing
import WebSocketCodec
@testable import Myriad

/// Issue 15: an idle open connection is its slot and nothing else; what a busy connection needs
/// (the upgrade, a decoder stopped mid-frame, a message or control frame in pieces) lives in a
/// side entry that is given back when the connection is idle again. `side_entries` counts them.
extension Integration {
@Suite struct SideTableTests {
    @Test(arguments: allBackends)
    func onlyBusyConnectionsHoldASideEntry(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend, workers: 1)
        defer { server.stop() }
        var idle: [RawClient] = []
        for _ in 0..<40 {
            let client = try RawClient(port: server.port)
            try client.upgrade()
            idle.append(client)
        }
        #expect(server.waitFor { $0[.open] == 40 && $0[.sideEntries] == 0 }, "\(server.stats().fields)")

        // Three connections stop mid-frame: in a header, in a payload, inside a fragmented
        // message; a fourth is in the middle of a ping's payload.
        let inHeader = idle[0], inPayload = idle[1], inMessage = idle[2], inPing = idle[3]
        let text = RawClient.frame(.text, Array("split across receives".utf8))
        try inHeader.send(Array(text[..<1]))
        try inPayload.send(Array(text[..<9]))
        try inMessage.sendFrame(.binary, [1, 2, 3], fin: false)
        let ping = RawClient.frame(.ping, Array("ping!".utf8))
        try inPing.send(Array(ping[..<8]))
        #expect(server.waitFor { $0[.sideEntries] == 4 }, "\(server.stats().fields)")

        // The rest arrives: every message is whole, and every entry is given back.
        try inHeader.send(Array(text[1..<4]))
        try inHeader.send(Array(text[4...]))
        try inPayload.send(Array(text[9...]))
        try inMessage.sendFrame(.continuation, [4, 5], fin: true)
        try inPing.send(Array(ping[8...]))
        #expect(try inHeader.readMessage()?.payload == Array("split across receives".utf8))
        #expect(try inPayload.readMessage()?.payload == Array("split across receives".utf8))
        #expect(try inMessage.readMessage()?.payload == [1, 2, 3, 4, 5])
        let pong = try #require(try inPing.readMessage())
        #expect(pong.opcode == .pong && pong.payload == Array("ping!".utf8))
        #expect(server.waitFor { $0[.sideEntries] == 0 }, "\(server.stats().fields)")

        // A fragmented message whose frames all come in one receive needs an entry only
        // during that receive.
        try idle[5].send(RawClient.frame(.text, Array("in ".utf8), fin: false) + RawClient.frame(.continuation, Array("one".utf8)))
        #expect(try idle[5].readMessage()?.payload == Array("in one".utf8))
        #expect(server.waitFor { $0[.sideEntries] == 0 }, "\(server.stats().fields)")

        // A connection closed while its entry is held gives it back too.
        try idle[4].sendFrame(.text, Array("never finished".utf8), fin: false)
        #expect(server.waitFor { $0[.sideEntries] == 1 }, "\(server.stats().fields)")
        idle[4].reset()
        #expect(server.waitFor { $0[.sideEntries] == 0 && $0[.open] == 39 }, "\(server.stats().fields)")
        // A handshaking connection holds one until its 101.
        let handshaking = try RawClient(port: server.port)
        let request = Array(RawClient.upgradeRequest().utf8)
        try handshaking.send(Array(request[..<20]))
        #expect(server.waitFor { $0[.sideEntries] == 1 }, "\(server.stats().fields)")
        try handshaking.send(Array(request[20...]))
        #expect(try handshaking.readHead(timeout: 5).hasPrefix("HTTP/1.1 101 "))
        #expect(server.waitFor { $0[.sideEntries] == 0 && $0[.open] == 40 }, "\(server.stats().fields)")
        try assertStillEchoing(server)
    }
}
}
