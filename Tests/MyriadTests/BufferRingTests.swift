import Foundation
import MyriadTestSupport
import Glibc
import Testing
import WebSocketCodec
@testable import Myriad

extension Integration {
@Suite struct BufferRingTests {
    /// A buffer ring of 8 tiny buffers and 1,000 clients sending at once: receives run dry
    /// (-ENOBUFS), are parked and re-armed, and every message still arrives intact and in
    /// order.
    @Test(arguments: allBackends)
    func exhaustedBufferRingLosesAndReordersNothing(backend: BackendChoice) throws {
        let server = try TestServer(backend: backend) { config in
            config.bufferCount = 8
            config.bufferSizeBytes = 256
        }
        let clientCount = 1000
        let messagesPerClient = 3
        var clients: [RawClient] = []
        for _ in 0..<clientCount {
            let client = try RawClient(port: server.port)
            try client.upgrade()
            clients.append(client)
        }
        func message(_ client: Int, _ index: Int) -> [UInt8] {
            // 700 bytes: each message spans several 256-byte receive buffers.
            Array("client \(client) message \(index) ".utf8) + [UInt8](repeating: UInt8(65 + (client + index) % 26), count: 700)
        }
        // Everything at once: each client's three frames in one segment, all clients back to back.
        for (index, client) in clients.enumerated() {
            let frames = (0..<messagesPerClient).flatMap { RawClient.frame(.binary, message(index, $0)) }
            try client.send(frames)
        }
        var intact = 0
        for (index, client) in clients.enumerated() {
            for messageIndex in 0..<messagesPerClient {
                let echoed = try client.readMessage(timeout: 30)
                if echoed?.opcode == .binary && echoed?.payload == message(index, messageIndex) { intact += 1 }
            }
        }
        #expect(intact == clientCount * messagesPerClient)
        if backend == .ioUring {
            #expect(server.stats()[.enobufsRearms] > 0, "the ring never ran dry: the test proved nothing")
        }
    }

    /// Accepted connections live in the ring's fixed-file table, not in the process fd table.
    ///
    /// Counts only the server side of these connections (established TCP sockets whose local
    /// port is the server's), so suites running beside this one, which open and close their own
    /// descriptors, cannot disturb it.
    @Test func acceptedConnectionsAreDirectDescriptors() throws {
        let server = try TestServer(backend: .ioUring)
        var clients: [RawClient] = []
        for _ in 0..<200 {
            let client = try RawClient(port: server.port)
            try client.upgrade()
            clients.append(client)
        }
        #expect(server.waitFor { $0[.open] == 200 })
        let serverSide = establishedSocketInodes(localPort: server.port)
        #expect(serverSide.count == 200, "the kernel should hold the server's 200 accepted sockets")
        let inProcessTable = socketInodesInDescriptorTable().intersection(serverSide)
        #expect(inProcessTable.count == 0, "\(inProcessTable.count) accepted sockets have a process fd")
        withExtendedLifetime(clients) {}
    }

    /// Inodes of established IPv4 sockets bound locally to `localPort` (from /proc/net/tcp).
    func establishedSocketInodes(localPort: UInt16) -> Set<String> {
        // /proc files report size 0 and a one-shot read stops at a page: the engine's own
        // reader reads to the end (about 150 B per socket; other suites may hold thousands).
        guard let table = ProcText.readProcFile("/proc/net/tcp", limitBytes: 64 << 20) else { return [] }
        var inodes: Set<String> = []
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            guard fields.count > 9, fields[3] == "01" else { continue }  // 01 = ESTABLISHED
            let local = fields[1].split(separator: ":")
            guard local.count == 2, UInt16(local[1], radix: 16) == localPort else { continue }
            inodes.insert(String(fields[9]))
        }
        return inodes
    }

    /// Inodes of every socket this process holds as an ordinary descriptor.
    func socketInodesInDescriptorTable() -> Set<String> {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        var inodes: Set<String> = []
        for entry in entries {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(entry)"),
                  target.hasPrefix("socket:[") else { continue }
            inodes.insert(String(target.dropFirst("socket:[".count).dropLast()))
        }
        return inodes
    }
}
}
