import Foundation
import Logging
import MyriadService
import MyriadTestSupport
import ServiceLifecycle
import Testing
@testable import Myriad

/// Another service of the group, standing in for an HTTP server: runs until the group shuts
/// down gracefully.
struct NeighbourService: Service {
    func run() async throws {
        try? await gracefulShutdown()
    }
}

extension Integration {
@Suite struct ServiceTests {
    /// The engine in a ServiceGroup beside another service: it serves while the group runs,
    /// and a graceful shutdown of the group closes every connection with 1001 and ends both.
    @Test(arguments: allBackends)
    func theEngineRunsAndStopsInAServiceGroup(backend: BackendChoice) async throws {
        var config = Config()
        config.host = "127.0.0.1"
        config.port = 0
        config.workers = 2
        config.backend = backend
        config.logLevel = .warning
        let logger = Logger(label: "service-test")
        let engine = Engine(config: config, logger: logger) { _ in BroadcastHandler() }
        let group = ServiceGroup(services: [WebSocketService(engine: engine), NeighbourService()],
                                 gracefulShutdownSignals: [], logger: logger)
        let running = Task { try await group.run() }
        for _ in 0..<500 where engine.port == 0 { try await Task.sleep(for: .milliseconds(10)) }
        let clients = try connectClients(10, port: engine.port, path: "/svc")
        #expect(engine.handle.publish(to: "/svc", text: "from the group") == .enqueued)
        for client in clients { #expect(try client.readMessage()?.payload == Array("from the group".utf8)) }
        await group.triggerGracefulShutdown()
        for client in clients {
            let close = try client.readMessage(timeout: 5)
            #expect(close?.opcode == .close && close?.closeCode == 1001)
            try? client.sendClose(code: 1001)
        }
        try await running.value
        #expect(engine.handle.publish(to: "/svc", text: "after") == .engineStopped)
        #expect(engine.stats().closes(.shutdown) == 10)
    }
}
}
