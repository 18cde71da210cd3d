extension QuantizedEngine {
    /// Runs `forward` (a forward pass, called with no check pending), then the pending weight
    /// check, and returns the result only if the check passes. The check stays pending after a
    /// failure of either, so no later call returns results from weights that were not checked.
    func withWeightCheck<Result>(_ forward: () throws -> Result) throws -> Result {
        guard let check = pendingWeightCheck else { return try forward() }
        pendingWeightCheck = nil
        do {
            let result = try forward()
            try check()
            return result
        } catch {
            pendingWeightCheck = check
            throw error
        }
    }
}
