import Testing
@testable import Myriad

@Suite struct UserDataTests {
    static let operations: [Operation] = [.accept, .receive, .send, .close, .cancel, .wake, .closeOrphan, .shutdown]

    @Test func roundTripsAcrossTheWholeRanges() {
        let slots: [UInt32] = [0, 1, 255, 256, 0xFFFF, 0x1_0000, 0x7FFF_FFFF, 0x8000_0000, UInt32.max - 1, UInt32.max]
        let generations: [UInt32] = [0, 1, 255, 256, 0xFFFF, 0x1_0000, 1 << 23, UserData.generationMask - 1, UserData.generationMask]
        for operation in Self.operations {
            for slot in slots {
                for generation in generations {
                    let tag = UserData(operation, slot: slot, generation: generation)
                    #expect(tag.operation == operation)
                    #expect(tag.slot == slot)
                    #expect(tag.generation == generation)
                    #expect(UserData(rawValue: tag.rawValue) == tag)
                }
            }
        }
        var random = SeededRandom(seed: 7)
        for _ in 0..<10_000 {
            let operation = Self.operations[Int(random.below(UInt64(Self.operations.count)))]
            let slot = UInt32(truncatingIfNeeded: random.next())
            let generation = UInt32(truncatingIfNeeded: random.next()) & UserData.generationMask
            let tag = UserData(operation, slot: slot, generation: generation)
            guard tag.operation == operation, tag.slot == slot, tag.generation == generation else {
                Issue.record("\(operation) slot \(slot) generation \(generation) -> \(tag.rawValue)")
                return
            }
        }
    }

    @Test func layoutIsOperationSlotGeneration() {
        #expect(UserData(.send, slot: 0x1234_5678, generation: 0xAB_CDEF).rawValue == 0xABCDEF_12345678_03)
        #expect(UserData(.shutdown, slot: UInt32.max, generation: UserData.generationMask).rawValue == UInt64.max & ~0xFF | 8)
        #expect(UserData.generationBits == 24)
        #expect(UserData.generationMask == (1 << 24) - 1)
    }

    @Test func unknownOperationBytesGiveNil() {
        let known = Set(Self.operations.map(\.rawValue))
        #expect(known == Set(1...8))
        for byte in 0...255 as ClosedRange<UInt64> {
            let tag = UserData(rawValue: 0xABCDEF_12345678_00 | byte)
            if known.contains(UInt8(byte)) {
                #expect(tag.operation?.rawValue == UInt8(byte))
            } else {
                #expect(tag.operation == nil, "byte \(byte)")
            }
            // The other fields still decode, so a foreign tag can be logged.
            #expect(tag.slot == 0x1234_5678 && tag.generation == 0xAB_CDEF)
        }
    }
}
