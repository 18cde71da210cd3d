/// The version of this build: the toolkit's version and the git commit it was built from
/// (recorded by the BuildInfo plugin; nil when the build had no git repository).
public enum BuildInfo {
    public static let version = "0.1.0"
    public static let commit: String? = buildCommit

    /// `dsv2 0.1.0 (commit 1a2b3c4d5e6f)`, or `(commit unknown)`.
    public static var description: String {
        "dsv2 \(version) (commit \(commit ?? "unknown: built without a git checkout"))"
    }
}
