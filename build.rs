//! Link options that shrink the release binaries, applied only when the
//! target links with rust-lld (both musl targets, locally and under `cross`:
//! see .cargo/config.toml and Cross.toml) and the profile is release (which
//! aborts on panic). Their effect, measured, is in BENCHMARKS.md ("The
//! binary and idle RSS"); any other linker gets none of them.
//!
//! - the unwind tables are discarded (link/discard-unwind-tables.ld): with
//!   `panic = "abort"` nothing unwinds; a panic still prints its message;
//! - `--icf=all` folds identical functions;
//! - `--pack-dyn-relocs=relr` packs the static PIE's relative relocations.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link/discard-unwind-tables.ld");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let lld = std::env::var("RUSTC_LINKER").is_ok_and(|l| l.ends_with("rust-lld"));
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    if !(lld && release) {
        return;
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    for arg in [
        "--no-eh-frame-hdr".to_string(),
        format!("-T{dir}/link/discard-unwind-tables.ld"),
        "--icf=all".to_string(),
        "--pack-dyn-relocs=relr".to_string(),
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
