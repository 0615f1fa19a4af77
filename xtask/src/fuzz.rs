//! `cargo xtask fuzz [TARGET] [--time SECS] [-- LIBFUZZER_ARGS...]`: run a cargo-fuzz (libFuzzer)
//! target of `fcgi-proto/fuzz/` for a while, on the stable toolchain.
//!
//! cargo-fuzz's default AddressSanitizer needs `-Zsanitizer`, which only nightly accepts; with
//! `--sanitizer none` it passes only stable flags (sancov passes, `--cfg fuzzing`), so libFuzzer's
//! coverage-guided loop works as is. Rust code without `unsafe` gains little from ASan: a panic
//! (overflow included, hence `--debug-assertions`) is what the targets find. The command run, from
//! `fcgi-proto/fuzz/`, is `cargo fuzz run --release --debug-assertions --sanitizer none TARGET --
//! -max_total_time=SECS -timeout=10`, without `CARGO_TARGET_DIR` so fuzz builds (other RUSTFLAGS)
//! stay in `fcgi-proto/fuzz/target/`. cargo-fuzz is installed (`--locked`) when missing.
//!
//! The corpus grows in `fuzz/corpus/TARGET/`, findings land in `fuzz/artifacts/TARGET/` (both
//! git-ignored); on a finding we print the input's path and the command reproducing it, and exit 1.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};

use anyhow::{Context, Result, ensure};

use crate::{process, workspace};

/// The fuzz project directory, relative to the repository root.
const FUZZ_DIR: &str = "fcgi-proto/fuzz";

/// Flags making cargo-fuzz work on stable (see the module docs).
const BUILD_FLAGS: [&str; 4] = ["--release", "--debug-assertions", "--sanitizer", "none"];

/// Runs `target` for `seconds`; exit code 1 on a finding.
pub fn run(target: &str, seconds: u64, extra: &[String]) -> Result<ExitCode> {
    let fuzz_dir = workspace::root().join(FUZZ_DIR);
    let targets = list_targets(&fuzz_dir)?;
    let known = targets.iter().any(|t| t == target);
    ensure!(
        known,
        "unknown fuzz target {target:?}; targets in {FUZZ_DIR}/fuzz_targets: {}",
        targets.join(", ")
    );
    ensure!(seconds > 0, "--time must be at least 1 second");
    ensure_cargo_fuzz()?;

    let artifacts = fuzz_dir.join("artifacts").join(target);
    let before = list_files(&artifacts);
    let mut args: Vec<String> =
        ["fuzz", "run"].iter().chain(&BUILD_FLAGS).map(|arg| arg.to_string()).collect();
    args.extend([target.to_owned(), "--".into(), format!("-max_total_time={seconds}"), "-timeout=10".into()]);
    // libFuzzer's default of 4,096 bytes would never build a record near the 65,535-byte
    // content limit; 70,000 covers one with its header and 255 bytes of padding.
    if !extra.iter().any(|arg| arg.starts_with("-max_len=")) {
        args.push("-max_len=70000".into());
    }
    args.extend(extra.iter().cloned());
    println!(
        "xtask: fuzzing {target} for {seconds} s: (cd {FUZZ_DIR} && {})",
        workspace::display("cargo", &args)
    );
    let mut cmd = workspace::cargo();
    cmd.current_dir(&fuzz_dir).args(&args).env_remove("CARGO_TARGET_DIR");
    let status = process::run("cargo fuzz", &mut cmd)?;
    if status.success() {
        println!("xtask: no finding for {target} in {seconds} s");
        return Ok(ExitCode::SUCCESS);
    }

    let found: Vec<PathBuf> = list_files(&artifacts).difference(&before).cloned().collect();
    if found.is_empty() {
        let status = process::describe(status);
        eprintln!("xtask: cargo fuzz failed ({status}) without saving an input: see its output above");
    }
    for input in &found {
        let flags = BUILD_FLAGS.join(" ");
        eprintln!("xtask: finding saved to {}", input.display());
        eprintln!(
            "xtask: reproduce with: (cd {FUZZ_DIR} && cargo fuzz run {flags} {target} {})",
            input.display()
        );
    }
    Ok(ExitCode::FAILURE)
}

/// Target names: the `fuzz_targets/*.rs` file stems.
fn list_targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let dir = fuzz_dir.join("fuzz_targets");
    let entries = fs::read_dir(&dir).with_context(|| format!("listing fuzz targets in {}", dir.display()))?;
    let sources =
        entries.flatten().map(|entry| entry.path()).filter(|path| path.extension() == Some("rs".as_ref()));
    let mut targets: Vec<String> =
        sources.filter_map(|path| Some(path.file_stem()?.to_str()?.to_owned())).collect();
    targets.sort();
    Ok(targets)
}

/// Files directly in `dir` (empty if it does not exist).
fn list_files(dir: &Path) -> BTreeSet<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default()
}

/// Installs cargo-fuzz unless `cargo fuzz --version` already works.
fn ensure_cargo_fuzz() -> Result<()> {
    let mut version = workspace::cargo();
    version.args(["fuzz", "--version"]).stdout(Stdio::null()).stderr(Stdio::null());
    if version.status().is_ok_and(|status| status.success()) {
        return Ok(());
    }
    println!("xtask: cargo-fuzz not found, running cargo install cargo-fuzz --locked");
    let mut install = workspace::cargo();
    install.args(["install", "cargo-fuzz", "--locked"]).env_remove("CARGO_TARGET_DIR");
    process::run_ok("cargo install cargo-fuzz", &mut install)
}
