//! `cargo xtask dist`: the release `fcgi` executable as we ship it, and the one the benchmarks
//! measure.
//!
//! `fcgi` is often a one-shot process (a health check every few seconds), so on Linux with glibc
//! the build is tuned for start-up:
//!
//! - **Static** (`-C target-feature=+crt-static`). A dynamically linked Rust executable spends a
//!   third of a millisecond in the dynamic loader before `main` (libc, libm and libgcc_s to map,
//!   relocate and bind): measured with `perf stat -r 300 fcgi --version`, 1.11 ms dynamic against
//!   0.79 ms static. glibc's resolver works in a static executable for the `files` and `dns`
//!   sources of /etc/nsswitch.conf (built into libc since glibc 2.34); any other NSS module
//!   (mdns, myhostname, ...) is loaded at run time and needs the glibc version the executable was
//!   linked with.
//! - **At a fixed address** (`-C relocation-model=static`, [`Linking::Fixed`]), as Go links its
//!   executables. A static PIE applies ~3,800 relocations at every start, which writes (and so
//!   copies) all 14 pages of its relocated read-only data: measured in interleaved runs against
//!   `cgi-fcgi`, a one-shot `fcgi get` takes ~0.05 ms (6%) longer as a PIE. What a fixed
//!   address gives up is ASLR for fcgi's own code and static data (the stack, the heap and every
//!   other mapping stay randomised); fcgi's only unsafe code is its entry point. `--pie`
//!   ([`Linking::Pie`]) builds a static PIE instead, with packed relative relocations
//!   (`-z pack-relative-relocs`, glibc ≥ 2.36: 1 KiB of relocations instead of 92 KiB).
//! - **Start-up functions first** (lld's `--symbol-ordering-file`, when valgrind is installed):
//!   the functions a one-shot request runs ([`profile`]) are spread over the whole 2.4 MiB of code,
//!   and the kernel maps code 64 KiB at a time on first touch, so a one-shot `fcgi get` took 35
//!   such faults. Laid out together they fit in 11. The order comes from a callgrind profile of the
//!   build itself (symbol names change with every code change), kept next to the executable; the
//!   executable is linked again only when the profile finds functions the order lacks.
//!
//! The flags reach the final `fcgi` link only, through `cargo rustc`: in RUSTFLAGS they would
//! also apply to proc-macro crates, which cannot be built as static executables. Elsewhere
//! (macOS, musl, ...) this is a plain `cargo build --release`.

mod profile;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};

use crate::bench::measure;
use crate::process;

/// File name prefix of the start-up order, kept in the release directory beside the executable:
/// `fcgi-startup-<hash>.order`.
/// The hash of the content is in the name so that a new order is a new rustc argument, which
/// makes cargo link again (it does not look inside files named by link arguments).
const ORDER_PREFIX: &str = "fcgi-startup-";
const ORDER_SUFFIX: &str = ".order";

/// Where the static executable is linked (Linux with glibc; elsewhere the platform default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linking {
    /// At a fixed address: no relocations to apply at start.
    Fixed,
    /// Position-independent (a static PIE): ASLR for fcgi's own code.
    Pie,
}

/// The release `fcgi` that [`build`] made.
pub struct Built {
    /// The executable.
    pub path: PathBuf,
    /// How it was built, for reports: the cargo command and what was or was not applied.
    pub how: String,
}

/// Builds the release `fcgi` as described in the module docs.
pub fn build(linking: Linking) -> Result<Built> {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        let args = ["build", "--release", "-p", "fcgi-cli", "--bin", "fcgi"];
        let path = build_with(&args)?;
        return Ok(Built { path, how: format!("cargo {}", args.join(" ")) });
    }
    let mut rustc_args = vec!["-C".to_owned(), "target-feature=+crt-static".to_owned()];
    let mut notes = Vec::new();
    match linking {
        Linking::Fixed => rustc_args.extend(["-C".to_owned(), "relocation-model=static".to_owned()]),
        Linking::Pie if glibc_has_relr() => {
            rustc_args.extend(["-C".to_owned(), "link-arg=-Wl,-z,pack-relative-relocs".to_owned()]);
        }
        Linking::Pie => notes.push("relocations not packed: glibc older than 2.36".to_owned()),
    }
    let plain = rustc_args.clone();

    let Some(valgrind) = process::find_program("valgrind") else {
        println!("xtask: dist: valgrind not found: start-up functions stay in the linker's order");
        println!("xtask: dist: (install it for a faster one-shot fcgi: apt-get install valgrind)");
        let path = build_static(&plain)?;
        notes.push("start-up functions not ordered: no valgrind".to_owned());
        return Ok(Built { path, how: describe(&plain, &notes) });
    };

    // Link with the order of the previous build, if any: when the code has not changed since,
    // cargo has nothing to do and the profile below finds nothing new.
    let dir = release_dir()?;
    let previous = previous_order(&dir)?;
    let mut path = match &previous {
        Some((file, _)) => match build_ordered(&plain, file)? {
            Some(path) => path,
            None => return unordered(&plain, notes),
        },
        None => build_static(&plain)?,
    };
    println!("xtask: dist: profiling a one-shot fcgi under callgrind ...");
    let hot = match profile::startup_functions(&path, &valgrind) {
        Ok(hot) => hot,
        Err(err) => {
            // The executable works either way; only its start-up is slower than it could be.
            println!(
                "xtask: dist: warning: no start-up profile, the function order is not refreshed: {err:#}"
            );
            notes.push(match &previous {
                Some(_) => "start-up functions in the order of an earlier profile".to_owned(),
                None => "start-up functions not ordered: profiling failed".to_owned(),
            });
            return Ok(Built { path, how: describe(&plain, &notes) });
        }
    };
    let known = previous.as_ref().map(|(_, functions)| functions.clone()).unwrap_or_default();
    let order_file = match previous {
        Some((file, _)) if hot.is_subset(&known) => file,
        _ => {
            let file = write_order(&dir, &hot)?;
            println!("xtask: dist: {} start-up functions, linking again with them first", hot.len());
            path = match build_ordered(&plain, &file)? {
                Some(path) => path,
                None => return unordered(&plain, notes),
            };
            file
        }
    };
    notes.push(format!(
        "the {} functions of a one-shot request linked first ({})",
        hot.len(),
        order_file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    Ok(Built { path, how: describe(&plain, &notes) })
}

/// Links with the functions of `order_file` first; `None` (after a warning) when the link fails,
/// as it does with a linker other than lld, which has no `--symbol-ordering-file`.
fn build_ordered(plain: &[String], order_file: &Path) -> Result<Option<PathBuf>> {
    let mut args = plain.to_vec();
    args.extend(ordering_args(order_file));
    match build_static(&args) {
        Ok(path) => Ok(Some(path)),
        Err(err) => {
            process::bail_if_interrupted()?;
            println!(
                "xtask: dist: warning: linking with the start-up order failed ({err:#}); \
                 linking without it (the order needs lld, Rust's default linker on Linux)"
            );
            Ok(None)
        }
    }
}

/// The build without a start-up order, after [`build_ordered`] failed.
fn unordered(plain: &[String], mut notes: Vec<String>) -> Result<Built> {
    let path = build_static(plain)?;
    notes.push("start-up functions not ordered: the linker refused the order".to_owned());
    Ok(Built { path, how: describe(plain, &notes) })
}

/// `cargo xtask dist [--pie]`: builds it and says where it is.
pub fn run(pie: bool) -> Result<ExitCode> {
    let built = build(if pie { Linking::Pie } else { Linking::Fixed })?;
    let size = fs::metadata(&built.path).with_context(|| format!("reading {}", built.path.display()))?.len();
    println!("xtask: dist: {} ({:.1} MiB)", built.path.display(), size as f64 / (1024.0 * 1024.0));
    println!("xtask: dist: built with {}", built.how);
    Ok(ExitCode::SUCCESS)
}

/// `cargo rustc --release -p fcgi-cli --bin fcgi -- RUSTC_ARGS`.
fn build_static(rustc_args: &[String]) -> Result<PathBuf> {
    let mut args = vec!["rustc", "--release", "-p", "fcgi-cli", "--bin", "fcgi", "--"];
    args.extend(rustc_args.iter().map(String::as_str));
    build_with(&args)
}

fn build_with(args: &[&str]) -> Result<PathBuf> {
    let mut built = measure::build_bins("fcgi-cli", args, &["fcgi"])?;
    built.remove("fcgi").context("build_bins returned no fcgi")
}

fn ordering_args(order_file: &Path) -> [String; 4] {
    [
        "-C".to_owned(),
        format!("link-arg=-Wl,--symbol-ordering-file={}", order_file.display()),
        // Names the profile saw that are not symbols of the link (glibc aliases): not an error.
        "-C".to_owned(),
        "link-arg=-Wl,--no-warn-symbol-ordering".to_owned(),
    ]
}

/// The report line: the command, then what it does and does not include.
fn describe(rustc_args: &[String], notes: &[String]) -> String {
    format!(
        "cargo xtask dist (cargo rustc --release -p fcgi-cli --bin fcgi -- {}; {})",
        rustc_args.join(" "),
        notes.join("; ")
    )
}

/// Whether this glibc applies packed relative relocations (DT_RELR) at start: 2.36 or later.
fn glibc_has_relr() -> bool {
    let Ok(output) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else { return false };
    let text = String::from_utf8_lossy(&output.stdout);
    // "glibc 2.36"
    let version = text.trim().strip_prefix("glibc ").unwrap_or("");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2, 36)
}

/// The release directory, where `fcgi` and its start-up order live (from `cargo metadata`,
/// so `CARGO_TARGET_DIR` and configured target dirs are found).
fn release_dir() -> Result<PathBuf> {
    let output = crate::workspace::cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        anyhow::bail!("cargo metadata failed ({})", process::describe(output.status));
    }
    let text = String::from_utf8(output.stdout).context("cargo metadata printed non-UTF-8")?;
    let metadata = measure::json::parse(&text).context("cargo metadata printed bad JSON")?;
    let target = metadata
        .get("target_directory")
        .and_then(measure::json::Value::as_str)
        .context("cargo metadata has no target_directory")?;
    Ok(Path::new(target).join("release"))
}

/// The order file of the last build and the functions in it, if there is one.
fn previous_order(dir: &Path) -> Result<Option<(PathBuf, BTreeSet<String>)>> {
    let Some(path) = order_files(dir)?.into_iter().next() else { return Ok(None) };
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some((path, text.lines().map(str::to_owned).collect())))
}

/// Writes `functions` as the order file in `dir`, removing older ones; returns its path.
fn write_order(dir: &Path, functions: &BTreeSet<String>) -> Result<PathBuf> {
    use std::hash::{Hash, Hasher};
    let mut text = String::new();
    for function in functions {
        text.push_str(function);
        text.push('\n');
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    let path = dir.join(format!("{ORDER_PREFIX}{:016x}{ORDER_SUFFIX}", hasher.finish()));
    for old in order_files(dir)? {
        fs::remove_file(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    // Written aside and renamed: an interrupted dist leaves no truncated order behind.
    let partial = path.with_extension("order.partial");
    fs::write(&partial, text).with_context(|| format!("writing {}", partial.display()))?;
    fs::rename(&partial, &path).with_context(|| format!("renaming {}", partial.display()))?;
    Ok(path)
}

/// The order files in `dir` (none when `dir` does not exist yet: nothing was built).
fn order_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let Ok(entries) = fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.with_context(|| format!("listing {}", dir.display()))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with(ORDER_PREFIX) && name.ends_with(ORDER_SUFFIX) {
            files.push(path);
        }
    }
    Ok(files)
}
