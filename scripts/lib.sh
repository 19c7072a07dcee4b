# Sourced by the other scripts: finds the repository and the dnslb binary.
# Builds the release binary once (cargo does nothing when it is up to date).

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

dnslb_bin() {
    cargo build --release --quiet --manifest-path "$root/Cargo.toml" >&2
    echo "${CARGO_TARGET_DIR:-$root/target}/release/dnslb"
}
