import WebSocketCodec

/// The knobs a worker uses on its hot path, converted once to its own units (ticks, bytes).
struct WorkerSettings {
    let tickNanoseconds: Int64
    let handshakeTicks: UInt32
    /// 0: pings off.
    let pingTicks: UInt32
    let pongTicks: UInt32
    /// 0: idle timeout off.
    let idleTicks: UInt32
    let closeTicks: UInt32
    let shutdownTicks: UInt32
    let maxQueuedBytes: Int
    let maxHeaderBytes: Int
    /// MYRIAD_BUFFER_BUDGET for this worker's pool.
    let bufferBudgetBytes: Int
    let decoder: FrameDecoderConfiguration
    let compression: CompressionMode
    let compressionThresholdBytes: Int
    let compressionDedicatedBudgetBytes: Int
    let compressionPerRecipient: Bool
    let maxMessageSizeBytes: Int

    init(_ config: Config, memoryBytes: Int = memoryLimitBytes()) {
        let tick = config.timerTickMilliseconds
        func ticks(_ milliseconds: Int) -> UInt32 {
            milliseconds == 0 ? 0 : UInt32(max(1, (milliseconds + tick - 1) / tick))
        }
        tickNanoseconds = Int64(tick) * 1_000_000
        handshakeTicks = ticks(config.handshakeTimeoutMilliseconds)
        pingTicks = ticks(config.pingIntervalMilliseconds)
        pongTicks = ticks(config.pongTimeoutMilliseconds)
        idleTicks = ticks(config.idleTimeoutMilliseconds)
        closeTicks = ticks(config.closeTimeoutMilliseconds)
        shutdownTicks = ticks(config.shutdownTimeoutMilliseconds)
        maxQueuedBytes = config.maxQueuedBytes
        maxHeaderBytes = config.maxHeaderBytes
        bufferBudgetBytes = config.bufferBudgetPerWorker(memoryBytes: memoryBytes)
        compression = config.compression
        compressionThresholdBytes = config.compressionThresholdBytes
        compressionDedicatedBudgetBytes = config.compressionDedicatedBudgetBytes
        compressionPerRecipient = config.compressionPerRecipient
        maxMessageSizeBytes = config.maxMessageSizeBytes
        decoder = FrameDecoderConfiguration(role: .server, maxMessageSizeBytes: UInt64(config.maxMessageSizeBytes))
    }
}
