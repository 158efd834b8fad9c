import Foundation
import Glibc
import MyriadTestSupport
import Testing
@testable import Myriad
@testable import MyriadLoad

extension EndToEndTests {
    /// `myriad load --deflate` against the engine with permessage-deflate on: what the
    /// compression benchmarks (bench/compression/) stand on. Both ends count what they
    /// compressed and inflated, and the counts must meet.
    @Suite struct DeflateTests {
        func options(_ mode: LoadMode, port: UInt16, _ configure: (inout LoadOptions) -> Void) -> LoadOptions {
            var options = LoadOptions()
            options.mode = mode
            options.port = port
            options.timeLimitMilliseconds = 60_000
            configure(&options)
            return options
        }

        /// echo with both sides compressing 1 KiB JSON messages, on both backends: every
        /// message the load compressed was inflated by the server, and every echo the load
        /// counted came compressed and was inflated (each is above the 256 B threshold).
        @Test(arguments: [BackendChoice.ioUring, .epoll])
        func echoCompressesBothWays(backend: BackendChoice) throws {
            let server = try TestServer(backend: backend, workers: 2) { $0.compression = .shared }
            defer { server.stop() }
            let summary = try LoadGenerator.run(options(.echo, port: server.port) {
                $0.connections = 100
                $0.durationMilliseconds = 1000
                $0.depth = 4
                $0.messageSizeBytes = 1024
                $0.deflate = .both
                $0.payload = .json
            })
            #expect(summary.succeeded, Comment(rawValue: summary.json))
            #expect(summary.messagesReceived > 400)
            #expect(summary.messagesCompressed == summary.messagesSent)
            #expect(summary.messagesInflated >= summary.messagesReceived)
            #expect(summary.failures.total == 0)
            #expect(server.waitFor { $0[.open] == 0 })
            let stats = server.stats()
            #expect(stats[.deflateAgreed] == 100, "\(stats.fields)")
            #expect(stats[.messagesInflated] == summary.messagesCompressed, "\(stats.fields)")
            #expect(stats[.messagesCompressed] >= summary.messagesInflated, "\(stats.fields)")
            // JSON compresses: the server sent fewer payload bytes than it echoed.
            #expect(stats[.bytesOut] < stats[.messagesOut] * 1024, "\(stats.fields)")
        }

        /// The dedicated mode keeps context for what it sends (11-bit windows): the load keeps
        /// a decompressor for each connection, which a shared one could not replace (a message
        /// may refer back to the connection's earlier ones), and compresses within the 11-bit
        /// window the server allowed it.
        @Test func echoAgainstTheDedicatedMode() throws {
            let server = try TestServer { $0.compression = .dedicated }
            defer { server.stop() }
            let summary = try LoadGenerator.run(options(.echo, port: server.port) {
                $0.connections = 40
                $0.durationMilliseconds = 1000
                $0.depth = 2
                $0.messageSizeBytes = 1024
                $0.deflate = .both
                $0.payload = .json
            })
            #expect(summary.succeeded, Comment(rawValue: summary.json))
            #expect(summary.failures.total == 0)
            #expect(summary.messagesReceived > 100)
            #expect(summary.messagesInflated >= summary.messagesReceived)
            #expect(server.waitFor { $0[.open] == 0 })
            let stats = server.stats()
            #expect(stats[.deflateAgreed] == 40, "\(stats.fields)")
            #expect(stats[.messagesInflated] == summary.messagesCompressed, "\(stats.fields)")
        }

        /// `receive`: the load sends plain messages and inflates the server's compressed
        /// echoes; messages under the server's threshold come back plain.
        @Test func receiveInflatesWhatTheServerCompressed() throws {
            let server = try TestServer { $0.compression = .shared }
            defer { server.stop() }
            let summary = try LoadGenerator.run(options(.echo, port: server.port) {
                $0.connections = 20
                $0.durationMilliseconds = 500
                $0.messageSizeBytes = 2048
                $0.deflate = .receive
                $0.payload = .json
            })
            #expect(summary.succeeded, Comment(rawValue: summary.json))
            #expect(summary.messagesCompressed == 0)
            #expect(summary.messagesInflated >= summary.messagesReceived && summary.messagesReceived > 0)
            #expect(server.waitFor { $0[.open] == 0 })
            #expect(server.stats()[.messagesInflated] == 0)

            let small = try LoadGenerator.run(options(.echo, port: server.port) {
                $0.connections = 20
                $0.durationMilliseconds = 500
                $0.messageSizeBytes = 100  // under MYRIAD_COMPRESSION_THRESHOLD (256 B)
                $0.deflate = .receive
            })
            #expect(small.succeeded, Comment(rawValue: small.json))
            #expect(small.messagesReceived > 0 && small.messagesInflated == 0)
        }

        /// A server that does not answer the offer: with --deflate every handshake fails,
        /// named, instead of measuring plain connections as compressed ones.
        @Test func aDeclinedOfferFailsTheHandshake() throws {
            let server = try TestServer()  // MYRIAD_COMPRESSION=off
            defer { server.stop() }
            let summary = try LoadGenerator.run(options(.hold, port: server.port) {
                $0.connections = 30
                $0.durationMilliseconds = 200
                $0.deflate = .receive
            })
            #expect(!summary.succeeded)
            #expect(summary.connected == 0)
            #expect(summary.failures.counts[.handshake]?["DEFLATE_DECLINED"] == 30, Comment(rawValue: summary.json))
        }

        /// fanout with every subscriber agreed: each publish reaches all 500 once and in
        /// order, compressed; the server compressed it for every recipient it counts, and the
        /// subscribers inflated every delivery.
        @Test(arguments: [false, true])
        func fanoutDeliversCompressedPublishes(perRecipient: Bool) throws {
            let server = try TestServer(workers: 2, configure: {
                $0.compression = .shared
                $0.compressionPerRecipient = perRecipient
            }) { _ in BroadcastHandler() }
            defer { server.stop() }
            var options = LoadOptions()
            options.mode = .fanout
            options.ports = [server.port]
            options.path = "/room"
            options.connections = 500
            options.publishIntervalMilliseconds = 100
            options.durationMilliseconds = 1000
            options.messageSizeBytes = 4096
            options.payload = .json
            options.deflate = .both
            options.timeLimitMilliseconds = 60_000
            let summary = try LoadGenerator.run(options)
            let fanout = try #require(summary.fanout)
            #expect(summary.succeeded, Comment(rawValue: summary.json))
            #expect(fanout.delivered == fanout.expected && fanout.expected == 500 * fanout.published)
            #expect(summary.messagesInflated == fanout.delivered)
            #expect(summary.messagesCompressed == fanout.published)
            #expect(server.waitFor { $0[.open] == 0 })
            let stats = server.stats()
            #expect(stats[.messagesInflated] == fanout.published, "\(stats.fields)")
            #expect(stats[.messagesCompressed] == fanout.delivered, "\(stats.fields)")
        }

        @Test func payloadBodiesAreValidJSONOfTheirLength() throws {
            for length in [2, 100, 1016, 4080] {
                let bodies = PayloadBodies(.json, length: length, filler: 0, seed: 7)
                #expect(bodies.count == PayloadBodies.jsonVariants)
                var distinct = Set<Data>()
                for variant in 0..<bodies.count {
                    let bytes = Data(bodies.bytes[(variant * length)..<((variant + 1) * length)])
                    #expect(bytes.count == length)
                    #expect((try? JSONSerialization.jsonObject(with: bytes)) is [Any], "length \(length)")
                    distinct.insert(bytes)
                }
                #expect(length < 1000 || distinct.count == bodies.count)
            }
            // Reproducible for a seed.
            let one = PayloadBodies(.json, length: 1000, filler: 0, seed: 3)
            let two = PayloadBodies(.json, length: 1000, filler: 0, seed: 3)
            #expect(Data(one.bytes) == Data(two.bytes))
        }
    }
}
