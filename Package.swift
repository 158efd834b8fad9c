// swift-tools-version:6.0
// Myriad: a WebSocket connection engine for Linux on io_uring.
import PackageDescription

let package = Package(
    name: "Myriad",
    products: [
        .library(name: "WebSocketCodec", targets: ["WebSocketCodec"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", "3.0.0"..<"5.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibURing",
            pkgConfig: "liburing",
            providers: [.apt(["liburing-dev"])]
        ),
        .target(
            name: "WebSocketCodec",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")]
        ),
        .testTarget(
            name: "WebSocketCodecTests",
            dependencies: ["WebSocketCodec"]
        ),
    ]
)
