import DSV2Core
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Drops the pages of a tensor read from a memory-mapped file once it has been converted, so
/// the resident set stays bounded by the tensors in flight (mapped pages count in RSS until
/// the kernel reclaims them). Only file-backed read-only mappings are touched: their pages are
/// simply re-read from the file if needed again.
public enum PageRelease {
    public static func releaseIfMapped(_ tensor: StoredTensor) {
        guard tensor.owner is SafetensorsCheckpoint || tensor.owner is MappedFile else { return }
        release(tensor.bytes)
    }

    /// Drops the whole pages inside `bytes`, which must lie in a read-only file mapping.
    public static func release(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (Int(bitPattern: base) + page - 1) & ~(page - 1)
        let end = (Int(bitPattern: base) + bytes.count) & ~(page - 1)
        guard end > start else { return }
        madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_DONTNEED)
    }
}
