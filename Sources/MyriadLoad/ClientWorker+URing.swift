import CLibURing
import Glibc
@_spi(Benchmarks) import Myriad
import WebSocketCodec

/// The client role on the kernel: `myriad load`'s threads run `ClientWorker` over the engine's
/// io_uring backend with no listener (as many rings as the thread's share needs, each with a
/// sparse fixed-file table of up to RLIMIT_NOFILE entries and a provided buffer ring).
extension ClientWorker where Backend == URingBackend {
    static var submissionEntries: UInt32 { 2048 }
    static var completionEntries: UInt32 { 16384 }

    /// Creates the rings and tables on the calling thread (SINGLE_ISSUER binds the rings to
    /// it), then the worker over them.
    static func make(
        assignment: ThreadAssignment, options: LoadOptions, shared: ThreadShared, control: RunControl
    ) throws(LoadError) -> ClientWorker<URingBackend> {
        let buffers = receiveBuffers(options)
        let capabilities: URingCapabilities
        switch URingBackend.probe(disabled: options.disabledRingFeatures) {
        case .success(let found): capabilities = found
        case .failure(let unavailable): throw LoadError("thread \(assignment.index): io_uring: \(unavailable)")
        }
        var ringConfig = Config()
        ringConfig.ringEntries = submissionEntries
        ringConfig.completionEntries = completionEntries
        ringConfig.bufferCount = buffers.count
        ringConfig.bufferSizeBytes = buffers.sizeBytes
        let wakeDescriptor = eventfd(0, Int32(EFD_CLOEXEC) | Int32(EFD_NONBLOCK))
        guard wakeDescriptor >= 0 else { throw LoadError("thread \(assignment.index): eventfd: \(errnoName(errno))") }
        let backend: URingBackend
        do throws(SystemError) {
            // Every receive buffer posted from the start (the modes that receive, receive on
            // every connection at once).
            backend = try URingBackend(config: ringConfig, capabilities: capabilities, listener: -1,
                                       waker: Waker(fileDescriptor: wakeDescriptor),
                                       fixedFilesPerRing: assignment.ringTables.map { UInt32($0) },
                                       initiallyPostedBuffers: nil)
        } catch {
            close(wakeDescriptor)
            let hint = error.errno == EMFILE ? " (a fixed-file table may not exceed RLIMIT_NOFILE)" : ""
            throw LoadError("thread \(assignment.index): \(error)\(hint)")
        }
        do throws(LoadError) {
            return try ClientWorker(assignment: assignment, options: options, shared: shared, control: control,
                                    backend: backend, span: UInt32(assignment.ringTables[0]),
                                    wakeDescriptor: wakeDescriptor, random: RandomPool())
        } catch {
            close(wakeDescriptor)
            throw error
        }
    }

    /// The receive buffers a ring provides, by mode.
    static func receiveBuffers(_ options: LoadOptions) -> (sizeBytes: UInt32, count: UInt32) {
        let frameSize = FrameEncoder.frameSize(payloadLength: options.messageSizeBytes, masked: true)
        switch options.mode {
        case .echo:
            var size: UInt32 = 4096
            while size < UInt32(min(frameSize, 65536)) { size <<= 1 }
            var count: UInt32 = 1024
            while count > 64 && Int(count) * Int(size) > 16 << 20 { count >>= 1 }
            return (size, count)
        case .fanout:
            // Every connection of the thread receives each message at about the same time: a
            // buffer per delivery, thousands at once. 4,096 buffers big enough for a small
            // message's frame (at most 8 MiB a thread); a burst beyond parks receives
            // (-ENOBUFS, re-armed: nothing lost).
            var size: UInt32 = 512
            while size < UInt32(min(frameSize, 16384)) { size <<= 1 }
            var count: UInt32 = 4096
            while count > 512 && Int(count) * Int(size) > 8 << 20 { count >>= 1 }
            return (size, count)
        default:
            // Idle connections receive a few bytes now and then; a burst beyond 512 buffers
            // between two reaps parks receives (-ENOBUFS) until buffers return. Every buffer
            // ends up resident (the kernel cycles through them), so this is 1 MiB a ring.
            return (2048, 512)
        }
    }
}
