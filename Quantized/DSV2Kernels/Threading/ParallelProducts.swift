import DSV2Formats
/// One matrix product of a parallel phase: `matrix` times the `tokens` of `input` into `output`.
public struct MatrixProduct: @unchecked Sendable {
    /// Which tokens of the input a product multiplies.
    public enum Tokens: Sendable, Equatable {
        /// y = W·x[token] (mat-vec): `output` is [matrix.rows].
        case one(Int)
        /// Y = X·Wᵀ over every token (mat-mat): `output` is [input.tokens, matrix.rows].
        case all
    }

    public var matrix: QuantizedMatrix
    public var input: PreparedActivations
    public var tokens: Tokens
    public var output: UnsafeMutablePointer<Float>

    public init(matrix: QuantizedMatrix, input: PreparedActivations, tokens: Tokens,
                output: UnsafeMutablePointer<Float>) {
        self.matrix = matrix
        self.input = input
        self.tokens = tokens
        self.output = output
    }

    /// The number of tokens multiplied.
    public var tokenCount: Int {
        switch tokens {
        case .one: return 1
        case .all: return input.tokens
        }
    }

    /// Output rows `rows` (default: all) on the calling thread.
    public func compute(rows: Range<Int>? = nil) {
        switch tokens {
        case let .one(token): Kernels.matvec(matrix, input, token: token, into: output, rows: rows)
        case .all: Kernels.matmul(matrix, input, into: output, rows: rows)
        }
    }
}

extension WorkerPool {
    /// Threaded `Kernels.matvec`: output rows split into contiguous ranges, one per thread.
    public func matvec(_ w: QuantizedMatrix, _ x: PreparedActivations, token: Int = 0,
                       into y: UnsafeMutablePointer<Float>) {
        run([MatrixProduct(matrix: w, input: x, tokens: .one(token), output: y)])
    }

    /// Threaded `Kernels.matmul` (Y [x.tokens, w.rows]).
    public func matmul(_ w: QuantizedMatrix, _ x: PreparedActivations, into y: UnsafeMutablePointer<Float>) {
        run([MatrixProduct(matrix: w, input: x, tokens: .all, output: y)])
    }

    /// Runs a whole phase of products (e.g. the gate and up projections of every selected
    /// expert of a layer) as one parallel region: the rows of all products are laid end to
    /// end, weighted by the weight bytes they stream, and cut into `threadCount` contiguous
    /// shares. One synchronisation per phase instead of one per matrix.
    public func run(_ products: [MatrixProduct]) {
        guard !products.isEmpty else { return }
        // Cost of one row of each product: weight bytes × tokens (+1 so tiny rows still count).
        let rowCosts = products.map { p in
            (p.matrix.rowStride + (p.matrix.type.isQuantized ? p.matrix.blocksPerRow * 2 : 0) + 1) * p.tokenCount
        }
        var total = 0
        for (p, c) in zip(products, rowCosts) { total += p.matrix.rows * c }
        let n = threadCount
        let work: (Int) -> Void = { participant in
            let begin = participant * total / n, end = (participant + 1) * total / n
            var offset = 0
            for (p, cost) in zip(products, rowCosts) {
                let size = p.matrix.rows * cost
                defer { offset += size }
                // Rows whose start lies in [begin, end): every row is owned by exactly one share.
                let first = max(0, (begin - offset + cost - 1) / cost)
                let last = min(p.matrix.rows, max(0, (end - offset + cost - 1) / cost))
                if first >= last { continue }
                p.compute(rows: first..<last)
            }
        }
        if n == 1 { work(0) } else { run(work) }
    }
}
