import DSV2Core
import DSV2Formats
import DSV2Kernels

/// The feed-forward blocks: the dense MLP of the first layers and DeepSeekMoE (paper section
/// 2.2; docs/NUMERICS.md items 8-12). Every MLP is down(silu(gate(x)) · up(x)).
///
/// MoE schedule (three parallel phases per layer, docs/KERNELS.md "split work per phase"):
///   1. router (fp32) + shared experts' gate and up, on the block input quantized once;
///   2. routing in fp32 by `ExpertRouter` (the reference routes with it too), then every
///      selected expert's gate and up;
///   3. silu(gate)·up quantized per expert, then every down product (routed and shared).
/// A decode step runs each selected expert as a mat-vec; a prefill gathers the tokens routed to
/// each expert and runs one mat-mat per expert and matrix (weights read once per batch).
extension QuantizedEngine {
    func denseMLP(_ mlp: EngineMLP, ws: EngineWorkspace) {
        let tokens = ws.tokens, width = mlp.intermediate
        ws.hiddenInput.load(ws.normed.pointer)
        phase(ws) { products in
            products.append(MatrixProduct(matrix: mlp.gateProj, input: ws.hiddenInput, tokens: .all, output: ws.denseGate.pointer))  // [tokens, intermediate]
            products.append(MatrixProduct(matrix: mlp.upProj, input: ws.hiddenInput, tokens: .all, output: ws.denseUp.pointer))      // [tokens, intermediate]
        }
        let input = ws.denseInput!
        let gate = ws.denseGate.pointer, up = ws.denseUp.pointer
        parallelFor(tokens, bytes: tokens * width * 16) { range in
            for t in range {
                // In place over the gate rows: silu(gate)·up, then quantized for down_proj.
                EngineMath.gatedActivation(gate: gate + t * width, up: up + t * width, count: width, into: gate + t * width)
                input.loadToken(t, from: gate + t * width)
            }
        }
        phase(ws) { $0.append(MatrixProduct(matrix: mlp.downProj, input: input, tokens: .all, output: ws.blockOutput.pointer)) }  // [tokens, hidden]
    }

    func mixtureOfExperts(_ moe: EngineMoE, layer l: Int, ws: EngineWorkspace, tracer: ForwardTracer?) {
        let c = config, tokens = ws.tokens, hidden = c.hiddenSize, topK = c.expertsPerToken
        let experts = c.routedExpertCount, width = c.moeIntermediateSize
        let sharedWidth = moe.sharedExperts?.intermediate ?? 0

        // Phase 1: router scores [tokens, experts] and the shared experts' gate/up [tokens, sharedWidth].
        ws.hiddenInput.load(ws.normed.pointer)
        phase(ws) { products in
            products.append(MatrixProduct(matrix: moe.router, input: ws.hiddenInput, tokens: .all, output: ws.routerScores.pointer))
            if let shared = moe.sharedExperts {
                products.append(MatrixProduct(matrix: shared.gateProj, input: ws.hiddenInput, tokens: .all, output: ws.sharedGate.pointer))
                products.append(MatrixProduct(matrix: shared.upProj, input: ws.hiddenInput, tokens: .all, output: ws.sharedUp.pointer))
            }
        }
        ws.router.route(logits: ws.routerScores.pointer, tokens: tokens, indices: ws.routeIndices, weights: ws.routeWeights.pointer)
        if let tracer {
            let slots = tokens * topK
            if tracer.wants(TraceName.routerIndices(l)) {
                tracer.record(TraceName.routerIndices(l),
                              TracedTensor(shape: [tokens, topK], int32s: Array(UnsafeBufferPointer(start: ws.routeIndices, count: slots))))
            }
            trace(tracer, TraceName.routerWeights(l), ws.routeWeights.pointer, [tokens, topK])
        }

        let gateOut = ws.expertGate.pointer, upOut = ws.expertUp.pointer, downOut = ws.expertDown.pointer
        if tokens == 1 {
            // Decode: slot k's expert reads the shared quantized input; its rows are row k.
            let input = ws.expertInputDecode!
            for slot in 0..<topK { ws.expertRowOfSlot[slot] = Int32(slot) }
            phase(ws) { products in   // Phase 2: every selected expert's gate and up, [topK, width] each.
                for slot in 0..<topK {
                    let expert = moe.experts[Int(ws.routeIndices[slot])]
                    products.append(MatrixProduct(matrix: expert.gateProj, input: ws.hiddenInput, tokens: .one(0), output: gateOut + slot * width))
                    products.append(MatrixProduct(matrix: expert.upProj, input: ws.hiddenInput, tokens: .one(0), output: upOut + slot * width))
                }
            }
            activate(ws: ws, shared: moe.sharedExperts != nil, slots: topK, width: width, sharedWidth: sharedWidth) { slot in (input, slot) }
            phase(ws) { products in   // Phase 3: the down products, [topK, hidden] and [1, hidden].
                for slot in 0..<topK {
                    let expert = moe.experts[Int(ws.routeIndices[slot])]
                    products.append(MatrixProduct(matrix: expert.downProj, input: input, tokens: .one(slot), output: downOut + slot * hidden))
                }
                if let shared = moe.sharedExperts {
                    products.append(MatrixProduct(matrix: shared.downProj, input: ws.sharedInput!, tokens: .one(0), output: ws.sharedDown.pointer))
                }
            }
        } else {
            // Prefill: rows grouped by expert (ascending), each group one mat-mat batch.
            let slots = tokens * topK
            var counts = [Int](repeating: 0, count: experts)
            for s in 0..<slots { counts[Int(ws.routeIndices[s])] += 1 }
            var starts = [Int](repeating: 0, count: experts + 1)
            for e in 0..<experts { starts[e + 1] = starts[e] + counts[e] }
            var filled = [Int](repeating: 0, count: experts)
            var gathered: [PreparedActivations?] = Array(repeating: nil, count: experts)
            var activated: [PreparedActivations?] = Array(repeating: nil, count: experts)
            for e in 0..<experts where counts[e] > 0 {
                gathered[e] = PreparedActivations(columns: hidden, tokens: counts[e])
                activated[e] = PreparedActivations(columns: width, tokens: counts[e])
            }
            for s in 0..<slots {
                let e = Int(ws.routeIndices[s]), row = starts[e] + filled[e]
                gathered[e]!.copyToken(filled[e], from: ws.hiddenInput, token: s / topK)
                ws.expertRowOfSlot[s] = Int32(row)
                filled[e] += 1
            }
            phase(ws) { products in   // Phase 2: per expert, gate and up over its tokens.
                for e in 0..<experts where counts[e] > 0 {
                    let expert = moe.experts[e]
                    products.append(MatrixProduct(matrix: expert.gateProj, input: gathered[e]!, tokens: .all, output: gateOut + starts[e] * width))
                    products.append(MatrixProduct(matrix: expert.upProj, input: gathered[e]!, tokens: .all, output: upOut + starts[e] * width))
                }
            }
            // Row r belongs to the expert e with starts[e] ≤ r < starts[e + 1].
            var expertOfRow = [Int](repeating: 0, count: slots)
            for e in 0..<experts { for r in starts[e] ..< starts[e + 1] { expertOfRow[r] = e } }
            activate(ws: ws, shared: moe.sharedExperts != nil, slots: slots, width: width, sharedWidth: sharedWidth) { row in
                let e = expertOfRow[row]
                return (activated[e]!, row - starts[e])
            }
            phase(ws) { products in   // Phase 3: the down products.
                for e in 0..<experts where counts[e] > 0 {
                    products.append(MatrixProduct(matrix: moe.experts[e].downProj, input: activated[e]!, tokens: .all,
                                                  output: downOut + starts[e] * hidden))
                }
                if let shared = moe.sharedExperts {
                    products.append(MatrixProduct(matrix: shared.downProj, input: ws.sharedInput!, tokens: .all, output: ws.sharedDown.pointer))
                }
            }
        }

        // y_t = Σ_k w_k · expert_k(x_t) (slot order, as the reference) + shared(x_t), docs/NUMERICS.md item 11.
        let y = ws.blockOutput.pointer
        for t in 0..<tokens {
            let out = y + t * hidden
            out.update(repeating: 0, count: hidden)
            for slot in 0..<topK {
                let s = t * topK + slot
                let row = downOut + Int(ws.expertRowOfSlot[s]) * hidden, weight = ws.routeWeights.pointer[s]
                for i in 0..<hidden { out[i] += row[i] * weight }
            }
            if moe.sharedExperts != nil { EngineMath.add(ws.sharedDown.pointer + t * hidden, into: out, count: hidden) }
        }
    }

    /// silu(gate)·up for every routed row (in place over the gate rows) and every token's shared
    /// row, each quantized into its down product's input; rows spread over the pool.
    private func activate(ws: EngineWorkspace, shared: Bool, slots: Int, width: Int, sharedWidth: Int,
                          destination: (Int) -> (PreparedActivations, Int)) {
        let tokens = ws.tokens
        let gate = ws.expertGate.pointer, up = ws.expertUp.pointer
        let sharedGate = ws.sharedGate.pointer, sharedUp = ws.sharedUp.pointer, sharedInput = ws.sharedInput
        let items = slots + (shared ? tokens : 0)
        withoutActuallyEscaping(destination) { destination in
            // ≈ 16 bytes touched per activated value (silu, quantization planes).
            parallelFor(items, bytes: slots * width * 16 + (shared ? tokens * sharedWidth * 16 : 0)) { range in
                for item in range {
                    if item < slots {
                        let row = gate + item * width
                        EngineMath.gatedActivation(gate: row, up: up + item * width, count: width, into: row)
                        let (input, token) = destination(item)
                        input.loadToken(token, from: row)
                    } else {
                        let t = item - slots, row = sharedGate + t * sharedWidth
                        EngineMath.gatedActivation(gate: row, up: sharedUp + t * sharedWidth, count: sharedWidth, into: row)
                        sharedInput!.loadToken(t, from: row)
                    }
                }
            }
        }
    }
}
