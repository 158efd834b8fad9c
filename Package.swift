// swift-tools-version:6.0
// Myriad: a WebSocket connection engine for Linux on io_uring.
import PackageDescription

let package = Package(
    name: "Myriad",
    products: [
        .library(name: "WebSocketCodec", targets: ["WebSocketCodec"]),
        .library(name: "WebSocketCompression", targets: ["WebSocketCompression"]),
        .library(name: "Myriad", targets: ["Myriad"]),
        .library(name: "MyriadLoad", targets: ["MyriadLoad"]),
        .library(name: "MyriadService", targets: ["MyriadService"]),
        .library(name: "MyriadDoctor", targets: ["MyriadDoctor"]),
        .library(name: "MyriadCluster", targets: ["MyriadCluster"]),
        .library(name: "MyriadMetrics", targets: ["MyriadMetrics"]),
        .library(name: "MyriadClusterBridge", targets: ["MyriadClusterBridge"]),
        .executable(name: "myriad", targets: ["myriad"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        // Tests only: the exporter checked against a real swift-metrics Prometheus backend.
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibURing",
            pkgConfig: "liburing",
            providers: [.apt(["liburing-dev"])]
        ),
        // System zlib (zlib1g-dev) for permessage-deflate: no DEFLATE is written here.
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(
            name: "WebSocketCodec",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")]
        ),
        // permessage-deflate's compression half (RFC 7692 section 7.2) over zlib; the
        // negotiation and the frame rules live in WebSocketCodec, which needs no zlib.
        .target(
            name: "WebSocketCompression",
            dependencies: ["CZlib", "WebSocketCodec"]
        ),
        .target(
            name: "Myriad",
            dependencies: [
                "CLibURing", "WebSocketCodec", "WebSocketCompression",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The engine as a swift-service-lifecycle Service (kept apart so the engine itself does
        // not depend on it).
        .target(
            name: "MyriadService",
            dependencies: ["Myriad", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                           .product(name: "Logging", package: "swift-log")]
        ),
        // `myriad doctor` and serve's start-up warnings: what N connections need from this host
        // against what it has (kept apart: the engine itself never needs it).
        .target(
            name: "MyriadDoctor",
            dependencies: ["Myriad"]
        ),
        .target(
            name: "MyriadLoad",
            dependencies: ["Myriad", "WebSocketCodec", "WebSocketCompression", "CLibURing"]
        ),
        // Topics across nodes (issue 17): a small strict NATS client and the topic-to-subject
        // mapping. Off the engine's hot path; depends on nothing of the engine.
        .target(
            name: "MyriadCluster",
            dependencies: [.product(name: "Logging", package: "swift-log")]
        ),
        // The engine's metrics through swift-metrics (issue 18), exported periodically from the
        // counter boards; `/metrics` itself is in the engine and needs none of this.
        .target(
            name: "MyriadMetrics",
            dependencies: [
                "Myriad",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The engine's `ClusterLink` over the NATS client: one broker subscription per topic
        // per node, publishes exported once, messages from other nodes fanned out locally.
        .target(
            name: "MyriadClusterBridge",
            dependencies: ["Myriad", "MyriadCluster", "WebSocketCodec", .product(name: "Logging", package: "swift-log")]
        ),
        .executableTarget(
            name: "myriad",
            dependencies: [
                "Myriad",
                "MyriadClusterBridge",
                "MyriadDoctor",
                "MyriadLoad",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // A real nats-server on free ports for the NATS client's and the bridge's tests (no
        // engine: the client's tests must not see the engine's types), and the loopback
        // helpers (free port, connect) every test target shares.
        .target(
            name: "NATSTestSupport",
            path: "Tests/NATSSupport"
        ),
        // What the engine's, the load generator's and the bridge's tests share: an in-process
        // server and a byte-exact client.
        .target(
            name: "MyriadTestSupport",
            dependencies: ["Myriad", "NATSTestSupport", "WebSocketCodec", .product(name: "Logging", package: "swift-log")],
            path: "Tests/Support"
        ),
        .testTarget(
            name: "WebSocketCodecTests",
            dependencies: ["WebSocketCodec"]
        ),
        .testTarget(
            name: "WebSocketCompressionTests",
            dependencies: ["WebSocketCompression", "WebSocketCodec", "CZlib"]
        ),
        .testTarget(
            name: "MyriadTests",
            dependencies: [
                "Myriad", "MyriadService", "MyriadTestSupport", "NATSTestSupport", "WebSocketCodec",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // The metrics: MyriadMetrics against swift-metrics' test backend and a real
                // swift-prometheus registry.
                "MyriadMetrics",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // Against a real nats-server (installed by scripts/ensure-deps.sh) and fake hostile servers.
        .testTarget(
            name: "MyriadClusterTests",
            dependencies: ["MyriadCluster", "NATSTestSupport", .product(name: "Logging", package: "swift-log")]
        ),
        // Two real `myriad serve` nodes and a real nats-server (started by the tests), and the
        // bridge in process.
        .testTarget(
            name: "MyriadClusterBridgeTests",
            dependencies: [
                "MyriadClusterBridge", "Myriad", "MyriadCluster", "MyriadTestSupport", "NATSTestSupport", "WebSocketCodec",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "MyriadDoctorTests",
            dependencies: ["MyriadDoctor", "Myriad"]
        ),
        .testTarget(
            name: "MyriadLoadTests",
            dependencies: [
                "MyriadLoad", "Myriad", "MyriadTestSupport", "NATSTestSupport", "WebSocketCodec",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
