import XCTest

@testable import MyriadCluster

final class NATSSubjectTests: XCTestCase {
    func testLiteralSubjects() {
        for valid in ["a", "a.b", "myriad.room:42", "a*b", "a>", ">a", "$SYS.x", "x.%2E"] {
            XCTAssertTrue(NATSSubject.isValidLiteral(valid), valid)
        }
        for invalid in ["", ".", "a.", ".a", "a..b", "*", "a.*", ">", "a.>", "a b", "a\tb", "a\r\n", "é", "a.\u{7F}"] {
            XCTAssertFalse(NATSSubject.isValidLiteral(invalid), invalid)
        }
        XCTAssertTrue(NATSSubject.isValidLiteral(String(repeating: "a", count: NATSSubject.maxBytes)))
        XCTAssertFalse(NATSSubject.isValidLiteral(String(repeating: "a", count: NATSSubject.maxBytes + 1)))
    }

    func testFilters() {
        for valid in ["a", "*", ">", "a.*", "a.>", "*.*.>", "a.*.b", ">a.b"] {
            XCTAssertTrue(NATSSubject.isValidFilter(valid), valid)
        }
        for invalid in ["", "a.>.b", ">.a", "a..*", "a. b", "a.*."] {
            XCTAssertFalse(NATSSubject.isValidFilter(invalid), invalid)
        }
    }
}
