import Hummingbird
import Logging
import Myriad
import MyriadService
import ServiceLifecycle

/// Hummingbird and Myriad in one ServiceGroup: an HTTP route publishes to WebSocket
/// subscribers, and SIGTERM stops both gracefully (the WebSocket clients get 1001).
///
///   HummingbirdPublish HTTP_PORT WS_PORT
///   curl -X POST --data 'hello' http://127.0.0.1:HTTP_PORT/publish/news   -> every client of ws://127.0.0.1:WS_PORT/news
@main
struct HummingbirdPublish {
    static func main() async throws {
        let arguments = CommandLine.arguments
        guard arguments.count == 3, let httpPort = Int(arguments[1]), let wsPort = UInt16(arguments[2]) else {
            print("usage: HummingbirdPublish HTTP_PORT WS_PORT")
            return
        }
        var logger = Logger(label: "hummingbird-publish")
        logger.logLevel = .info

        // Myriad: every connection subscribes to the topic its path names (`/news`).
        var config = try Config.load(environment: [:])
        config.host = "127.0.0.1"
        config.port = wsPort
        let engine = Engine(config: config, logger: logger) { _ in BroadcastHandler() }
        let myriad = engine.handle

        // Hummingbird: POST /publish/{topic} publishes the body, encoded once, to every
        // subscriber of `/{topic}` on every worker.
        let router = Router()
        router.post("/publish/:topic") { request, context -> Response in
            let topic = try context.parameters.require("topic")
            let body = try await request.body.collect(upTo: 1 << 20)
            let result = body.withUnsafeReadableBytes { myriad.publish(to: "/" + topic, text: $0) }
            switch result {
            case .enqueued: return Response(status: .accepted)
            case .queueFull: return Response(status: .serviceUnavailable)
            default: return Response(status: .internalServerError)
            }
        }
        let http = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: httpPort)),
                               logger: logger)
        let group = ServiceGroup(services: [http, WebSocketService(engine: engine)],
                                 gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }
}
