import XCTest
import DSV2Analysis

final class AnalysisThresholdTests: XCTestCase {
    func testParsesTheDocumentedForms() throws {
        let list = try Threshold.parseList("hidden.*:cos<0.999, logits:kl>0.01,router.[12]:jaccard<=0.9,*:maxabs>=1e-3")
        XCTAssertEqual(list, [
            Threshold(pattern: "hidden.*", metric: .cos, op: .less, value: 0.999),
            Threshold(pattern: "logits", metric: .kl, op: .greater, value: 0.01),
            Threshold(pattern: "router.[12]", metric: .jaccard, op: .lessOrEqual, value: 0.9),
            Threshold(pattern: "*", metric: .maxabs, op: .greaterOrEqual, value: 0.001),
        ])
        XCTAssertEqual(list[0].description, "hidden.*:cos<0.999")
        // Commas inside [...] belong to the glob.
        XCTAssertEqual(try Threshold.parseList("hidden.[1,2]:rrms>0.5").map(\.pattern), ["hidden.[1,2]"])
        for metric in ComparisonMetric.allCases {
            XCTAssertEqual(try Threshold.parse("x:\(metric.rawValue)>1").metric, metric)
        }
    }

    func testOperatorsAndGlobs() throws {
        let t = try Threshold.parse("hidden.*:cos<0.999")
        XCTAssertTrue(t.matches("hidden.3"))
        XCTAssertFalse(t.matches("attn.3"))
        XCTAssertTrue(t.isBroken(by: 0.998))
        XCTAssertFalse(t.isBroken(by: 0.999))
        XCTAssertTrue(try Threshold.parse("x:cos<=0.999").isBroken(by: 0.999))
        XCTAssertFalse(try Threshold.parse("x:kl>0.01").isBroken(by: 0.01))
        XCTAssertTrue(try Threshold.parse("x:kl>=0.01").isBroken(by: 0.01))
    }

    func testErrorsNameTheItemAndTheProblem() {
        func reason(_ spec: String) -> String {
            do { _ = try Threshold.parseList(spec); return "parsed" } catch let e as ThresholdParseError {
                return e.description
            } catch { return "\(error)" }
        }
        XCTAssertEqual(reason("hidden.*cos<0.9"), "bad threshold 'hidden.*cos<0.9': expected glob:metric<op>value, e.g. hidden.*:cos<0.999")
        XCTAssertTrue(reason("hidden.*:cosine<0.9").contains("unknown metric 'cosine'"), reason("hidden.*:cosine<0.9"))
        XCTAssertTrue(reason("hidden.*:cos=0.9").contains("missing comparison operator"))
        XCTAssertTrue(reason("hidden.*:cos<").contains("missing value after '<'"))
        XCTAssertTrue(reason("hidden.*:cos<abc").contains("'abc' is not a finite number"))
        XCTAssertTrue(reason("hidden.*:cos<nan").contains("not a finite number"))
        XCTAssertTrue(reason(":cos<1").contains("missing tensor glob"))
        XCTAssertTrue(reason("a:cos<1,,b:cos<1").contains("empty condition"))
        XCTAssertTrue(reason("a:<1").contains("missing metric name"))
    }
}
