import Logging
import Myriad
import ServiceLifecycle

/// The engine as a `Service` of swift-service-lifecycle: run it in a `ServiceGroup` beside an
/// HTTP server (Hummingbird, Vapor) and both start together and stop gracefully together.
///
/// `run()` starts the engine and returns once it has stopped. A graceful shutdown of the group
/// (SIGTERM, or `triggerGracefulShutdown()`) makes the engine stop accepting, close every
/// connection with 1001 and wait for the replies up to MYRIAD_SHUTDOWN_TIMEOUT; cancelling the
/// task does the same. Keep `engine.handle` to reach connections from the other services.
public struct WebSocketService<Handler: WebSocketHandler>: Service {
    public let engine: Engine<Handler>

    public init(engine: Engine<Handler>) {
        self.engine = engine
    }

    public func run() async throws {
        try engine.start()
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await engine.waitUntilStopped()
            } onGracefulShutdown: {
                engine.shutdown()
            }
        } onCancel: {
            engine.shutdown()
        }
    }
}
