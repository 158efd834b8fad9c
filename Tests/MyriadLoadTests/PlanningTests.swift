import Testing
@testable import MyriadLoad

@Suite struct SourceAddressTests {
    @Test func parsesSingleAddressesRangesAndLists() throws {
        #expect(try SourceAddresses.parse("127.0.0.2") == [0x7F00_0002])
        #expect(try SourceAddresses.parse("127.0.0.2-127.0.0.4") == [0x7F00_0002, 0x7F00_0003, 0x7F00_0004])
        #expect(try SourceAddresses.parse("127.0.0.2-127.0.0.40").count == 39)
        #expect(try SourceAddresses.parse("127.0.0.9, 127.0.1.1 - 127.0.1.2") == [0x7F00_0009, 0x7F00_0101, 0x7F00_0102])
        // A range may cross an octet boundary.
        #expect(try SourceAddresses.parse("127.0.0.254-127.0.1.1").map(formatIPv4)
            == ["127.0.0.254", "127.0.0.255", "127.0.1.0", "127.0.1.1"])
    }

    @Test(arguments: ["", "127.0.0", "127.0.0.2-", "127.0.0.5-127.0.0.2", "localhost", "127.0.0.2-127.0.0.3-127.0.0.4",
                      "::1", "127.0.0.2,,127.0.0.3", "10.0.0.0-10.2.0.0"])
    func rejectsWhatIsNotAnAddressList(text: String) {
        #expect(throws: LoadError.self) { try SourceAddresses.parse(text) }
    }

    @Test func automaticAddressesStartAt127_0_0_2AndSkipNetworkAndBroadcastOctets() {
        let addresses = SourceAddresses.automatic(count: 256)
        #expect(addresses.first.map(formatIPv4) == "127.0.0.2")
        #expect(formatIPv4(addresses[252]) == "127.0.0.254")
        #expect(formatIPv4(addresses[253]) == "127.0.1.1")  // .255 and .0 skipped
        #expect(addresses.count == 256)
        #expect(!addresses.contains { $0 & 0xFF == 0 || $0 & 0xFF == 255 })
        #expect(Set(addresses).count == 256)
    }

    @Test func describesRunsAsRanges() {
        #expect(SourceAddresses.describe(SourceAddresses.automatic(count: 3)) == "127.0.0.2-127.0.0.4")
        #expect(SourceAddresses.describe([0x7F00_0002, 0x7F00_0009, 0x7F00_000A]) == "127.0.0.2,127.0.0.9-127.0.0.10")
        #expect(SourceAddresses.describe([0x7F00_0002]) == "127.0.0.2")
    }

    @Test func portRangeParsesTheSysctl() {
        #expect(PortRange.parse("32768\t60999\n") == PortRange(low: 32768, high: 60999))
        #expect(PortRange.parse("1024 65535") == PortRange(low: 1024, high: 65535))
        #expect(PortRange.parse("60999 32768") == nil)
        #expect(PortRange.parse("32768") == nil)
        #expect(PortRange.parse("0 65535") == nil)
        let range = PortRange(low: 32768, high: 60999)
        #expect(range.count == 28232)
        #expect(range.usablePerAddress == 25408)  // ~90%: the capacity, above which EADDRNOTAVAIL is expected
        #expect(range.plannedPerAddress == 9410)  // a third: what the automatic plan puts on one address
        let current = PortRange.current()
        #expect(current.count > 0)
    }

    @Test func automaticCountComesFromThePortRange() {
        let linuxDefault = PortRange(low: 32768, high: 60999)
        #expect(SourceAddresses.neededCount(connections: 1, ports: linuxDefault) == 1)
        #expect(SourceAddresses.neededCount(connections: 9410, ports: linuxDefault) == 1)
        #expect(SourceAddresses.neededCount(connections: 9411, ports: linuxDefault) == 2)
        #expect(SourceAddresses.neededCount(connections: 25000, ports: linuxDefault) == 3)
        #expect(SourceAddresses.neededCount(connections: 1_000_000, ports: linuxDefault) == 107)
        let widened = PortRange(low: 1024, high: 65535)
        #expect(SourceAddresses.neededCount(connections: 1_000_000, ports: widened) == 47)
    }
}

@Suite struct LoadPlanTests {
    let ports = PortRange(low: 32768, high: 60999)

    func options(_ connections: Int, mode: LoadMode = .hold, configure: (inout LoadOptions) -> Void = { _ in }) -> LoadOptions {
        var options = LoadOptions()
        options.mode = mode
        options.connections = connections
        configure(&options)
        return options
    }

    @Test func threadsFollowTheCoresAndRingsTheFixedFileLimit() throws {
        let small = try LoadPlan.make(options: options(200), ports: ports, fileLimit: 20000, cores: 2)
        #expect(small.threads == 2)
        #expect(small.slotsPerThread == [100, 100])
        #expect(small.ringTablesPerThread == [[100], [100]])
        #expect(small.sources.map(formatIPv4) == ["127.0.0.2"])
        let test = try LoadPlan.make(options: options(25000), ports: ports, fileLimit: 20000, cores: 2)
        #expect(test.threads == 2)
        #expect(test.slotsPerThread == [12500, 12500])
        #expect(test.targetPerThread == [12500, 12500])
        #expect(test.rings == 2)
        #expect(test.sources.count == 3)
        #expect(test.warnings.isEmpty)
        // A million on 2 cores: 2 threads of 500,000, each with 25 rings of 20,000.
        let million = try LoadPlan.make(options: options(1_000_000), ports: ports, fileLimit: 20000, cores: 2)
        #expect(million.threads == 2)
        #expect(million.slotsPerThread == [500_000, 500_000])
        #expect(million.ringTablesPerThread == [[Int](repeating: 20000, count: 25), [Int](repeating: 20000, count: 25)])
        #expect(million.rings == 50)
        #expect(million.sources.count == 107)
        #expect(million.concurrencyPerThread.reduce(0, +) == 1024)
        // One core: one thread, every ring on it.
        let single = try LoadPlan.make(options: options(1_000_000), ports: ports, fileLimit: 20000, cores: 1)
        #expect(single.threads == 1)
        #expect(single.ringTablesPerThread == [[Int](repeating: 20000, count: 50)])
        // Never more threads than connections.
        let tiny = try LoadPlan.make(options: options(3), ports: ports, fileLimit: 20000, cores: 8)
        #expect(tiny.threads == 3)
        #expect(tiny.ringTablesPerThread == [[1], [1], [1]])
    }

    @Test func anUnevenSplitGivesTheRemainderToTheFirstThreads() {
        #expect(LoadPlan.split(10, 3) == [4, 3, 3])
        #expect(LoadPlan.split(2, 4) == [1, 1, 0, 0])
        #expect(LoadPlan.split(1024, 50).reduce(0, +) == 1024)
    }

    /// A share is cut into as few rings as hold it, all the same size but the last (a slot's
    /// ring is slot / that size), none over the per-ring limit, none empty.
    @Test(arguments: [(1, 1), (7, 2), (10, 3), (1000, 200), (1001, 200), (21, 5), (500_000, 20000), (499_999, 20000),
                      (20001, 20000), (5, 1), (19999, 20000)])
    func ringTablesCoverTheShare(share: Int, perRing: Int) {
        let tables = LoadPlan.ringTables(share, perRing: perRing)
        #expect(tables.reduce(0, +) == share)
        #expect(tables.count == (share + perRing - 1) / perRing)
        #expect(tables.allSatisfy { $0 >= 1 && $0 <= perRing })
        #expect(tables.dropLast().allSatisfy { $0 == tables[0] })
        #expect(tables.last! <= tables[0])
        // Every slot maps into its ring's table.
        for slot in [0, share / 2, share - 1] {
            let ring = slot / tables[0]
            #expect(ring < tables.count && slot - ring * tables[0] < tables[ring], "slot \(slot)")
        }
    }

    @Test func explicitThreadsTakeAsManyRingsAsTheyNeed() throws {
        // One thread holds more than the fd limit: two rings.
        let one = try LoadPlan.make(options: options(25000) { $0.threads = 1 }, ports: ports, fileLimit: 20000, cores: 2)
        #expect(one.threads == 1)
        #expect(one.ringTablesPerThread == [[12500, 12500]])
        let more = try LoadPlan.make(options: options(25000) { $0.threads = 4 }, ports: ports, fileLimit: 20000, cores: 2)
        #expect(more.threads == 4)
        #expect(more.slotsPerThread == [6250, 6250, 6250, 6250])
        #expect(more.rings == 4)
        // Never more threads than connections.
        let tiny = try LoadPlan.make(options: options(3) { $0.threads = 8 }, ports: ports, fileLimit: 20000, cores: 2)
        #expect(tiny.threads == 3)
    }

    /// `fixedFilesPerRing` (MYRIAD_LOAD_FIXED_FILES_PER_RING) caps a table below the fd limit:
    /// 1,000 connections on one thread at 200 a ring are 5 rings; it may not exceed the limit.
    @Test func fixedFilesPerRingForcesSeveralRingsOnAThread() throws {
        let five = try LoadPlan.make(options: options(1000) { $0.threads = 1; $0.fixedFilesPerRing = 200 },
                                     ports: ports, fileLimit: 20000, cores: 2)
        #expect(five.threads == 1)
        #expect(five.fixedFilesPerRing == 200)
        #expect(five.ringTablesPerThread == [[200, 200, 200, 200, 200]])
        let uneven = try LoadPlan.make(options: options(1001) { $0.fixedFilesPerRing = 200 },
                                       ports: ports, fileLimit: 20000, cores: 2)
        #expect(uneven.slotsPerThread == [501, 500])
        #expect(uneven.ringTablesPerThread == [[167, 167, 167], [167, 167, 166]])
        #expect(throws: LoadError.self) {
            try LoadPlan.make(options: options(1000) { $0.fixedFilesPerRing = 20001 }, ports: ports, fileLimit: 20000, cores: 2)
        }
    }

    @Test func tooManyRingsIsAnError() {
        // 16,000,000 at 20,000 a ring: 800 rings, over the 256 one process runs.
        #expect(throws: LoadError.self) {
            try LoadPlan.make(options: options(16_000_000), ports: ports, fileLimit: 20000, cores: 2)
        }
    }

    @Test func tooFewSourceAddressesWarns() throws {
        let plan = try LoadPlan.make(options: options(60000) { $0.sources = [0x7F00_0002, 0x7F00_0003] },
                                     ports: ports, fileLimit: 20000, cores: 2)
        #expect(plan.warnings.count == 1)
        #expect(plan.warnings[0].contains("EADDRNOTAVAIL"))
    }

    @Test func churnIsSizedByConcurrencyAndCyclesByRate() throws {
        let churn = options(1_000_000, mode: .churn) {
            $0.rate = 500
            $0.durationMilliseconds = 3000
            $0.concurrency = 64
        }
        #expect(churn.target == 1500)
        #expect(churn.simultaneousConnections == 64)
        let plan = try LoadPlan.make(options: churn, ports: ports, fileLimit: 20000, cores: 1)
        #expect(plan.threads == 1)
        #expect(plan.slotsPerThread == [64])
        #expect(plan.targetPerThread == [1500])
        #expect(plan.ratePerThread == 500)
    }
}

@Suite struct LoadOptionsTests {
    @Test func parsesDurations() {
        #expect(parseDuration("250ms") == 250)
        #expect(parseDuration("10s") == 10_000)
        #expect(parseDuration("1.5s") == 1500)
        #expect(parseDuration("2m") == 120_000)
        #expect(parseDuration("1h") == 3_600_000)
        #expect(parseDuration("30") == 30_000)
        #expect(parseDuration("0") == 0)
        #expect(parseDuration("-1s") == nil)
        #expect(parseDuration("ten") == nil)
        #expect(parseDuration("") == nil)
    }

    @Test func validatesEachRule() {
        func invalid(_ configure: (inout LoadOptions) -> Void) -> Bool {
            var options = LoadOptions()
            configure(&options)
            do { try options.validate() } catch { return true }
            return false
        }
        #expect(!invalid { _ in })
        #expect(invalid { $0.connections = 0 })
        #expect(invalid { $0.concurrency = 0 })
        #expect(invalid { $0.rate = -1 })
        #expect(invalid { $0.mode = .churn })  // churn needs a rate
        #expect(!invalid { $0.mode = .churn; $0.rate = 100 })
        #expect(invalid { $0.mode = .echo; $0.messageSizeBytes = 7 })
        #expect(invalid { $0.mode = .echo; $0.depth = 0 })
        #expect(invalid { $0.mode = .echo; $0.verifyEcho = true })
        #expect(!invalid { $0.mode = .ping; $0.verifyEcho = true })
        #expect(invalid { $0.host = "example.com" })
        #expect(!invalid { $0.host = "localhost" })
        #expect(invalid { $0.path = "chat" })
        #expect(invalid { $0.path = "/a b" })
        #expect(invalid { $0.timeLimitMilliseconds = 0 })
        #expect(invalid { $0.threads = 0 })
        #expect(invalid { $0.fixedFilesPerRing = 0 })
        #expect(!invalid { $0.fixedFilesPerRing = 16 })
        #expect(invalid { $0.sources = [] })
        #expect(invalid { $0.closeTimeoutMilliseconds = 0 })
    }

    @Test func everyModeHasATimeLimit() {
        var options = LoadOptions()
        options.connections = 1_000_000
        options.durationMilliseconds = 120_000
        #expect(options.effectiveTimeLimitMilliseconds == 120_000 + 120_000 + 500_000)
        options.timeLimitMilliseconds = 5000
        #expect(options.effectiveTimeLimitMilliseconds == 5000)
    }
}
