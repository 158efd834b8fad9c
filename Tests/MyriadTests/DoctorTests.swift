import Foundation
import Testing
@testable import Myriad

@Suite struct HostFactsParsingTests {
    static let status = """
        Name:\tcat
        Umask:\t0022
        State:\tR (running)
        CapInh:\t0000000000000000
        CapPrm:\t000001fffeffffff
        CapEff:\t000001fffeffffff
        CapBnd:\t000001fffeffffff
        CapAmb:\t0000000000000000
        NoNewPrivs:\t0

        """

    @Test func capSysResourceIsBit24OfCapEff() {
        #expect(HostFacts.effectiveCapabilities(inStatus: Self.status) == 0x1fffeffffff)
        #expect(!HostFacts.hasCapability(HostFacts.capabilitySysResource, inStatus: Self.status))
        #expect(HostFacts.hasCapability(21, inStatus: Self.status), "CAP_SYS_ADMIN is there")
        let full = Self.status.replacingOccurrences(of: "CapEff:\t000001fffeffffff", with: "CapEff:\t000001ffffffffff")
        #expect(HostFacts.hasCapability(24, inStatus: full))
        #expect(!HostFacts.hasCapability(24, inStatus: "Name:\tx\n"))
    }

    @Test func meminfoIsReadInBytes() {
        let text = """
            MemTotal:       24684084 kB
            MemFree:        22663028 kB
            MemAvailable:   24113496 kB
            Buffers:           12345 kB

            """
        let memory = HostFacts.parseMeminfo(text)
        #expect(memory.totalBytes == 24_684_084 * 1024)
        #expect(memory.availableBytes == 24_113_496 * 1024)
        #expect(HostFacts.parseMeminfo("MemTotal: 1 kB\n").availableBytes == nil)
    }

    @Test func sysctlValues() {
        #expect(HostFacts.parseInteger("4096\n") == 4096)
        #expect(HostFacts.parseInteger("") == nil)
        #expect(HostFacts.parseInteger("1 2") == nil)
        #expect(HostFacts.parsePortRange("32768\t60999\n") == 32768...60999)
        #expect(HostFacts.parsePortRange("60999\t32768") == nil)
        #expect(HostFacts.parseTCPMemory("287898\t383867\t575796\n")
                == .init(minimum: 287_898, pressure: 383_867, maximum: 575_796))
        #expect(HostFacts.parseTCPMemory("1 2") == nil)
        #expect(HostFacts.parseIntegers("641\t0\t2466170\n").first == 641)
    }

    @Test func liveReadingMatchesGetrlimit() {
        let facts = HostFacts.read()
        #expect(facts.fileLimit == FileLimit.current())
        #expect(facts.memoryTotalBytes ?? 0 > 0)
        #expect(facts.kernelVersion != nil)
        #expect(facts.pageSizeBytes > 0)
    }
}
