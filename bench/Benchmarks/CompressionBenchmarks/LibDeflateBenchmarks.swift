// libdeflate against zlib on whole 1 KiB messages, the shared mode's case (no context kept,
// each message compressed and inflated on its own). libdeflate works on whole buffers only:
// it cannot keep context between messages (no dedicated mode) nor inflate a message as its
// frames arrive, and its output ends in a block with BFINAL set, which RFC 7692 section
// 7.2.3.4 allows (followed by one 0x00 byte so that the receiver's 00 00 FF FF tail forms
// an empty stored block, as uWebSockets does). To inflate a sync-flushed payload it needs the
// stream terminated: the payload, the 00 00 FF FF tail and an empty final stored block
// (01 00 00 FF FF), copied together (uWebSockets writes them past the payload in place).
import Benchmark
import CLibDeflate

func libdeflateBenchmarks(sharedPayloads: [[UInt8]]) {
    Benchmark("libdeflate compress 1 KiB JSON x64, level 6 (one-shot, BFINAL + 00)") { benchmark in
        let compressor = libdeflate_alloc_compressor(6)!
        defer { libdeflate_free_compressor(compressor) }
        var output = [UInt8](repeating: 0, count: 4096)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            var total = 0
            for message in messages {
                total += output.withUnsafeMutableBytes { out in
                    message.withUnsafeBytes { input in
                        let written = libdeflate_deflate_compress(compressor, input.baseAddress, input.count, out.baseAddress, out.count - 1)
                        precondition(written > 0)
                        out[written] = 0
                        return written + 1
                    }
                }
            }
            blackHole(total)
        }
    }

    Benchmark("libdeflate decompress 1 KiB JSON x64 (zlib's payloads + tail + final stored block)") { benchmark in
        let decompressor = libdeflate_alloc_decompressor()!
        defer { libdeflate_free_decompressor(decompressor) }
        let terminated = sharedPayloads.map { $0 + [0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff] }
        var output = [UInt8](repeating: 0, count: 8192)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for payload in terminated {
                let inflated = output.withUnsafeMutableBytes { out in
                    payload.withUnsafeBytes { input in
                        var actual = 0
                        let result = libdeflate_deflate_decompress(
                            decompressor, input.baseAddress, input.count, out.baseAddress, out.count, &actual)
                        precondition(result == LIBDEFLATE_SUCCESS)
                        return actual
                    }
                }
                precondition(inflated == messageBytes)
            }
        }
    }
}

/// libdeflate's compressed size for the messages, for the bytes-on-the-wire line.
func libdeflateBytes() -> Int {
    let compressor = libdeflate_alloc_compressor(6)!
    defer { libdeflate_free_compressor(compressor) }
    var output = [UInt8](repeating: 0, count: 4096)
    return messages.reduce(0) { total, message in
        total + output.withUnsafeMutableBytes { out in
            message.withUnsafeBytes { libdeflate_deflate_compress(compressor, $0.baseAddress, $0.count, out.baseAddress, out.count) + 1 }
        }
    }
}
