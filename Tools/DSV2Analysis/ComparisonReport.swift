import Foundation
import DSV2Core

/// The result of `dsv2 compare`: every tensor the two sides share, in forward-pass order, with its
/// metrics, the thresholds it breaks, the tensors only one side has, and the first failure.
/// Its JSON form (`--json`) is documented in docs/COMPARE.md; keep the two in step.
public struct ComparisonReport: Codable, Equatable {
    /// Identifies the JSON layout; bump `version` on incompatible changes.
    public var schema = "dsv2.compare"
    public var version = 1
    public var baseline: String
    public var candidate: String
    /// The thresholds checked, as written (`hidden.*:cos<0.999`).
    public var thresholds: [String]
    /// Tensors present on both sides, in forward-pass order. `router.N.indices`/`.weights` pairs
    /// appear as one entry `router.N`.
    public var tensors: [Entry]
    public var onlyInBaseline: [String]
    public var onlyInCandidate: [String]
    /// Thresholds that matched no tensor having their metric (checked nothing).
    public var unusedThresholds: [String]
    /// Every broken threshold and every shape/type mismatch, in forward-pass order.
    public var failures: [Failure]
    /// `failures.first`: where a deviation starts.
    public var firstFailure: Failure?
    /// No failures.
    public var passed: Bool

    public struct Entry: Codable, Equatable {
        public enum Kind: String, Codable { case tensor, logits, router }
        public var name: String
        public var kind: Kind
        /// Baseline shape.
        public var shape: [Int]
        /// Set only when the candidate's shape or element type differs (then `metrics` is empty).
        public var candidateShape: [Int]?
        public var mismatch: String?
        /// Keys are `ComparisonMetric` raw values: every entry has maxabs/rrms/cos (routers: of
        /// their weights, when both sides have them); logits add kl, klmax, top1, top5; routers
        /// have jaccard, identical instead of rrms/cos.
        public var metrics: [String: Double]
        /// The thresholds this tensor breaks, as written.
        public var broken: [String]
        /// Number of thresholds that were checked against this tensor.
        public var checked: Int

        public func metric(_ m: ComparisonMetric) -> Double? { metrics[m.rawValue] }
    }

    public struct Failure: Codable, Equatable, CustomStringConvertible {
        public var tensor: String
        /// The threshold as written, or nil for a shape/type mismatch.
        public var threshold: String?
        public var metric: String?
        public var value: Double?
        public var op: String?
        public var limit: Double?
        /// Human-readable: `hidden.3 cos 0.9812 < 0.999`.
        public var message: String
        public var description: String { message }
    }

    /// Compares every common tensor of `candidate` against `baseline` and checks `thresholds`.
    public init(baseline: TensorSet, candidate: TensorSet, thresholds: [Threshold] = []) {
        self.baseline = baseline.label
        self.candidate = candidate.label
        self.thresholds = thresholds.map(\.description)
        let a = baseline.tensors, b = candidate.tensors
        onlyInBaseline = TraceOrder.sorted(a.keys.filter { b[$0] == nil })
        onlyInCandidate = TraceOrder.sorted(b.keys.filter { a[$0] == nil })

        var entries: [Entry] = []
        var used = Set<Int>()
        var failures: [Failure] = []
        let common = TraceOrder.sorted(a.keys.filter { b[$0] != nil })
        for name in common {
            var entry: Entry
            var aliases = [name]
            if let layer = TraceOrder.routerLayer(name), a[TraceName.routerIndices(layer)] != nil,
               b[TraceName.routerIndices(layer)] != nil {
                guard name == TraceName.routerIndices(layer) else { continue }  // weights fold into the indices entry
                entry = Self.compareRouter(layer: layer, a: a, b: b)
                aliases = [entry.name, TraceName.routerIndices(layer), TraceName.routerWeights(layer)]
            } else {
                entry = Self.compare(name: name, a[name]!, b[name]!)
            }
            if let mismatch = entry.mismatch {
                failures.append(Failure(tensor: entry.name, threshold: nil, metric: nil, value: nil, op: nil, limit: nil,
                                        message: "\(entry.name) \(mismatch)"))
            }
            for (i, t) in thresholds.enumerated() where aliases.contains(where: t.matches) {
                guard let value = entry.metric(t.metric) else { continue }
                used.insert(i)
                entry.checked += 1
                if t.isBroken(by: value) {
                    entry.broken.append(t.description)
                    failures.append(Failure(tensor: entry.name, threshold: t.description, metric: t.metric.rawValue,
                                            value: value, op: t.op.rawValue, limit: t.value,
                                            message: "\(entry.name) \(t.metric.rawValue) \(Self.format(value)) \(t.op.rawValue) \(Threshold.format(t.value))"))
                }
            }
            entries.append(entry)
        }
        tensors = entries
        unusedThresholds = thresholds.indices.filter { !used.contains($0) }.map { thresholds[$0].description }
        self.failures = failures
        firstFailure = failures.first
        passed = failures.isEmpty
    }

    static func compare(name: String, _ x: TracedTensor, _ y: TracedTensor) -> Entry {
        let isLogits = (name == TraceName.logits || name.hasSuffix("_logits")) && x.shape.count == 2
        var entry = Entry(name: name, kind: isLogits ? .logits : .tensor, shape: x.shape, candidateShape: nil,
                          mismatch: nil, metrics: [:], broken: [], checked: 0)
        if x.shape != y.shape || x.elementTypeName != y.elementTypeName {
            entry.candidateShape = y.shape
            entry.mismatch = x.shape != y.shape
                ? "shape \(x.shape) (baseline) vs \(y.shape) (candidate)"
                : "element type \(x.elementTypeName) (baseline) vs \(y.elementTypeName) (candidate)"
            return entry
        }
        let fa = x.floatValues, fb = y.floatValues
        let m = TensorMetrics(baseline: fa, candidate: fb)
        entry.metrics = [ComparisonMetric.maxabs.rawValue: m.maxAbs, ComparisonMetric.rrms.rawValue: m.relativeRMS,
                         ComparisonMetric.cos.rawValue: m.cosine]
        if isLogits, x.shape[1] > 0 {
            let l = LogitMetrics(baseline: fa, candidate: fb, vocab: x.shape[1])
            entry.metrics[ComparisonMetric.kl.rawValue] = l.klMean
            entry.metrics[ComparisonMetric.klmax.rawValue] = l.klMax
            entry.metrics[ComparisonMetric.top1.rawValue] = l.top1Agreement
            entry.metrics[ComparisonMetric.top5.rawValue] = l.top5Overlap
        }
        return entry
    }

    static func compareRouter(layer: Int, a: [String: TracedTensor], b: [String: TracedTensor]) -> Entry {
        let name = "router.\(layer)"
        let xa = a[TraceName.routerIndices(layer)]!, xb = b[TraceName.routerIndices(layer)]!
        var entry = Entry(name: name, kind: .router, shape: xa.shape, candidateShape: nil, mismatch: nil,
                          metrics: [:], broken: [], checked: 0)
        guard xa.shape == xb.shape, xa.shape.count == 2, xa.shape[1] > 0,
              let ia = xa.int32s, let ib = xb.int32s else {
            entry.candidateShape = xb.shape
            entry.mismatch = xa.shape != xb.shape ? "shape \(xa.shape) (baseline) vs \(xb.shape) (candidate)"
                                                  : "router indices must be 2-D Int32 [tokens, top-k]"
            return entry
        }
        var wa = a[TraceName.routerWeights(layer)]?.floats, wb = b[TraceName.routerWeights(layer)]?.floats
        if wa?.count != ia.count || wb?.count != ib.count { wa = nil; wb = nil }
        let r = RouterMetrics(baselineIndices: ia, candidateIndices: ib, topK: xa.shape[1],
                              baselineWeights: wa, candidateWeights: wb)
        entry.metrics[ComparisonMetric.jaccard.rawValue] = r.meanJaccard
        entry.metrics[ComparisonMetric.identical.rawValue] = r.identicalFraction
        if let w = r.weightsMaxAbs { entry.metrics[ComparisonMetric.maxabs.rawValue] = w }
        return entry
    }

    /// Enough digits to see why a value is on the wrong side of a limit.
    static func format(_ v: Double) -> String {
        if v.isNaN { return "nan" }
        if v.isInfinite { return v > 0 ? "inf" : "-inf" }
        return String(format: "%.8g", v)
    }
}

extension ComparisonReport {
    /// The JSON of docs/COMPARE.md: snake_case and sorted keys, non-finite numbers as the strings
    /// "nan", "inf", "-inf".
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try encoder.encode(self)
    }

    public static func decode(json: Data) throws -> ComparisonReport {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try decoder.decode(ComparisonReport.self, from: json)
    }
}
