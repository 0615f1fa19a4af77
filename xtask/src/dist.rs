//! `cargo xtask dist`: the `fcgi` executable as shipped, and the one the benchmarks measure:
//! `cargo build --profile dist -p fcgi-cli --bin fcgi` (the release profile, stripped), whose path
//! is the last line of standard output.
//!
//! On Linux with glibc the build names the host target and passes `-C target-feature=+crt-static`
//! for it, which links a static PIE: no dynamic loader to run at start, and ASLR kept. With an
//! explicit `--target`, cargo applies the target's rustflags to the target's artifacts only, so
//! build scripts and proc macros are built and loaded as usual. glibc's resolver still works in a
//! static executable for the `files` and `dns` sources of /etc/nsswitch.conf (built into libc since
//! glibc 2.34); other NSS modules are loaded at run time and need the glibc it was linked with.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::bench::measure;

/// The rustflags of the target named for the static build.
const STATIC_RUSTFLAGS: &str = "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS";

/// The `fcgi` that [`build`] made.
pub struct Built {
    /// The executable.
    pub path: PathBuf,
    /// The command that built it, for reports.
    pub how: String,
}

/// Builds the shipped `fcgi`.
pub fn build() -> Result<Built> {
    let static_pie = cfg!(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"));
    let (target, env): (&str, &[_]) = match static_pie {
        true => {
            (" --target x86_64-unknown-linux-gnu", &[(STATIC_RUSTFLAGS, "-C target-feature=+crt-static")])
        }
        false => ("", &[]),
    };
    let args = format!("build --profile dist -p fcgi-cli --bin fcgi{target}");
    let path = measure::build_bins("fcgi-cli", &args, env, &["fcgi"])?.remove("fcgi").context("no fcgi")?;
    let flags = env.iter().map(|(k, v)| format!("{k}='{v}' ")).collect::<String>();
    Ok(Built { path, how: format!("cargo xtask dist = {flags}cargo {args}") })
}

/// `cargo xtask dist`: builds it and prints its path last.
pub fn run() -> Result<ExitCode> {
    let built = build()?;
    println!("xtask: dist: built with {}", built.how);
    println!("{}", built.path.display());
    Ok(ExitCode::SUCCESS)
}
