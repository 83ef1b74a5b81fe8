//! Links the binaries with packed relative relocations (`DT_RELR`, binutils 2.38+,
//! glibc 2.36+) on Linux/glibc: a position-independent binary then carries a few
//! KiB of relocations instead of about 1 MiB that the loader reads at every
//! start, which kept that much of the API's resident memory busy for nothing.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
