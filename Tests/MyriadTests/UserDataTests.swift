import Testing
@_spi(Benchmarks) @testable import Myriad

@Suite struct UserDataTests {
    static let operations: [Operation] = [.accept, .receive, .send, .close, .cancel, .wake, .closeOrphan, .shutdown, .cancelSend, .peerName, .message, .messageFailed, .acceptCancel, .connect, .cancelConnect]

    @Test func roundTripsAcrossTheWholeRanges() {
        let slots: [UInt32] = [0, 1, 255, 256, 0xFFFF, 0x1_0000, 0x7F_FFFF, 0x80_0000, UserData.maxSlot - 1, UserData.maxSlot]
        let generations: [UInt64] = [0, 1, 255, 256, 0xFFFF, 0x1_0000, 1 << 23, 1 << 24, 0xFFFF_FFFF, 1 << 32, UInt64.max]
        for operation in Self.operations {
            for slot in slots {
                for generation in generations {
                    let tag = UserData(operation, slot: slot, generation: generation)
                    #expect(tag.operation == operation)
                    #expect(tag.slot == slot)
                    #expect(tag.generation == UInt32(truncatingIfNeeded: generation))
                    #expect(tag.matches(generation: generation))
                    #expect(!tag.matches(generation: generation &+ 1))
                    #expect(UserData(rawValue: tag.rawValue) == tag)
                }
            }
        }
        var random = SeededRandom(seed: 7)
        for _ in 0..<10_000 {
            let operation = Self.operations[Int(random.below(UInt64(Self.operations.count)))]
            let slot = UInt32(truncatingIfNeeded: random.next()) & UserData.maxSlot
            let generation = random.next()
            let tag = UserData(operation, slot: slot, generation: generation)
            guard tag.operation == operation, tag.slot == slot, tag.matches(generation: generation) else {
                Issue.record("\(operation) slot \(slot) generation \(generation) -> \(tag.rawValue)")
                return
            }
        }
    }

    @Test func layoutIsOperationSlotGeneration() {
        #expect(UserData(.send, slot: 0x34_5678, generation: 0xAB_CDEF).rawValue == 0x00ABCDEF_345678_03)
        // Only the generation's low 32 bits travel in the tag.
        #expect(UserData(.send, slot: 0x34_5678, generation: 0x1_00AB_CDEF).rawValue == 0x00ABCDEF_345678_03)
        #expect(UserData(.shutdown, slot: UserData.maxSlot, generation: UInt64.max).rawValue == UInt64.max & ~0xFF | 8)
        #expect(UserData.slotBits == 24)
        #expect(UserData.maxSlot == (1 << 24) - 1)
    }

    @Test func unknownOperationBytesGiveNil() {
        let known = Set(Self.operations.map(\.rawValue))
        #expect(known == Set(1...15))
        for byte in 0...255 as ClosedRange<UInt64> {
            let tag = UserData(rawValue: 0xABCDEF12_345678_00 | byte)
            if known.contains(UInt8(byte)) {
                #expect(tag.operation?.rawValue == UInt8(byte))
            } else {
                #expect(tag.operation == nil, "byte \(byte)")
            }
            // The other fields still decode, so a foreign tag can be logged.
            #expect(tag.slot == 0x34_5678 && tag.generation == 0xABCD_EF12)
        }
    }
}
