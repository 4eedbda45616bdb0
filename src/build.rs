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
//!   while it starts and idles, then those it runs for common requests, the
//!   code every request runs first (`src/link-order.txt`, written by
//!   `benches/link-order.sh` from a callgrind run). Code pages are mapped in
//!   64 KB at a time as they are first touched, so code the daemon runs
//!   scattered over an 11 MB text section kept most of it resident; grouped,
//!   it takes a few pages (docs/benchmarks.md, "Idle memory: link order").
//!   And a request that finds the daemon idle, as an agent's nearly always
//!   does, starts with cold caches: the fewer code pages it touches, the
//!   less it costs (docs/benchmarks.md, "Cold requests"). Only LLD takes the
//!   list (`--symbol-ordering-file`): Rust links with its bundled LLD by
//!   default on this target since 1.90, and the list is passed only when
//!   the toolchain has it and no other linker is configured (cargo's
//!   `linker`, RUSTFLAGS). A name the list has and the build has not (the
//!   code moved on since the list was written) is skipped silently; the
//!   build is the same code in another order, so a stale list costs memory,
//!   never correctness. `REPOWIRE_LINK_ORDER=0` turns it off.

fn main() {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    println!("cargo:rerun-if-changed=src/build.rs");
    println!("cargo:rerun-if-changed=src/link-order.txt");
    println!("cargo:rerun-if-env-changed=REPOWIRE_LINK_ORDER");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");

    // Only with Rust's own LLD: the default linker of this target since
    // Rust 1.90 when the toolchain ships it (rustup's do), and only when no
    // linker is configured (`RUSTC_LINKER`: cargo's config or environment)
    // and RUSTFLAGS choose none. GNU ld and gold stop at the option.
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    let other_linker = ["linker", "fuse-ld", "link-self-contained"]
        .iter()
        .any(|k| flags.contains(k))
        || std::env::var_os("RUSTC_LINKER").is_some();
    let target = var("TARGET");
    let order = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("src/link-order.txt");
    if target == "x86_64-unknown-linux-gnu"
        && var("PROFILE") == "release"
        && var("REPOWIRE_LINK_ORDER") != "0"
        && !other_linker
        && order.is_file()
        && bundled_lld(&target)
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

/// Whether the toolchain ships its own LLD for `target` (rustup's do).
fn bundled_lld(target: &str) -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Some(out) = std::process::Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
    else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    std::path::Path::new(&sysroot)
        .join("lib/rustlib")
        .join(target)
        .join("bin/gcc-ld/ld.lld")
        .is_file()
}
