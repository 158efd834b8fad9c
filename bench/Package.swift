// swift-tools-version:6.1
// Myriad's benchmarks: a package of its own so `make test` never builds package-benchmark.
// Run with `make bench` (from the repository root); results and commands in README.md.
import PackageDescription

import struct Foundation.URL

/// SwiftPM names a path dependency after its directory, so the root package's identity is
/// whatever the clone's directory is called (`main`, `myriad`, ...).
let rootPackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "MyriadBenchmarks",
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
    ],
    targets: [
        .executableTarget(
            name: "CodecBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "WebSocketCodec", package: rootPackage),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            path: "Benchmarks/CodecBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
        // libdeflate (libdeflate-dev), compared with zlib in CompressionBenchmarks only.
        .systemLibrary(
            name: "CLibDeflate",
            path: "Benchmarks/CLibDeflate",
            pkgConfig: "libdeflate",
            providers: [.apt(["libdeflate-dev"])]
        ),
        .executableTarget(
            name: "CompressionBenchmarks",
            dependencies: [
                "CLibDeflate",
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "WebSocketCodec", package: rootPackage),
                .product(name: "WebSocketCompression", package: rootPackage),
            ],
            path: "Benchmarks/CompressionBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
        .executableTarget(
            name: "EngineBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "Myriad", package: rootPackage),
                .product(name: "HeapModule", package: "swift-collections"),
            ],
            path: "Benchmarks/EngineBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
    ]
)
