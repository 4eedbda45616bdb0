#![forbid(unsafe_code)]

//! Build script of the `repowire` binary, on Linux with glibc:
//!
//! - Link with packed relative relocations (`-z pack-relative-relocs`,
//!   DT_RELR; GNU ld 2.38+, LLD, glibc 2.36+). The position-independent
//!   binary keeps its address randomisation, but its 1 MB table of
//!   relocations shrinks to about 25 KB, which the loader no longer reads in
//!   at every start: the daemon's idle RSS is 1.4 MiB smaller
//!   (docs/benchmarks.md, "Idle memory"). A linker without the option
//!   ignores it with a warning.
//! - In release builds on x86-64, lay out first the functions a daemon runs
//!   while it starts and idles, then those it runs for common requests
//!   (`src/link-order.txt`, written by `benches/link-order.sh` from a
//!   callgrind run). Code pages are mapped in 64 KB at a time as they are
//!   first touched, so code the daemon runs scattered over an 11 MB text
//!   section kept most of it resident; grouped, it takes a few pages
//!   (docs/benchmarks.md, "Idle memory: link order"). Only LLD takes the
//!   list (`--symbol-ordering-file`); Rust links with it by default on this
//!   target since 1.90. A name the list has and the build has not (the code
//!   moved on since the list was written) is skipped silently; the build
//!   is the same code in another order, so a stale list costs memory, never
//!   correctness. `REPOWIRE_LINK_ORDER=0` turns it off, as does any
//!   RUSTFLAGS choice of another linker.

fn main() {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    println!("cargo:rerun-if-changed=src/build.rs");
    println!("cargo:rerun-if-changed=src/link-order.txt");
    println!("cargo:rerun-if-env-changed=REPOWIRE_LINK_ORDER");
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");

    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    let other_linker = ["linker", "fuse-ld", "link-self-contained"]
        .iter()
        .any(|k| flags.contains(k))
        || std::env::vars().any(|(k, _)| k.starts_with("CARGO_TARGET_") && k.ends_with("_LINKER"));
    let order = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("src/link-order.txt");
    if var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && var("PROFILE") == "release"
        && var("REPOWIRE_LINK_ORDER") != "0"
        && !other_linker
        && order.is_file()
    {
        // Two arguments, so no comma in the path can split it.
        println!("cargo:rustc-link-arg-bins=-Xlinker");
        println!(
            "cargo:rustc-link-arg-bins=--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}
