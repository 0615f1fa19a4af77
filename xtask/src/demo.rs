//! `cargo xtask demo`: the README's first command. Builds `fcgi`, starts a throw-away php-fpm
//! (installing it when missing and allowed, like `test`) or, failing that, the in-tree test
//! responder, and runs `fcgi get`, `probe`, `dump`, `ping` (and `status` on php-fpm) against
//! it, showing each command line and its output.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::backends::copy_dir;
use crate::php_fpm::{self, PhpFpm};
use crate::process::{self, Group, Signal};
use crate::workspace;

/// The commands shown: what each shows, and its arguments.
const STEPS: [(&str, &[&str]); 5] = [
    ("one request, body on stdout (the document root is the current directory)", &["get", "/hello.php"]),
    ("what the server says about itself (FCGI_GET_VALUES)", &["probe"]),
    ("every record of a request, both ways", &["dump", "/hello.php?name=demo"]),
    ("php-fpm's ping page as a health check", &["ping"]),
    ("php-fpm's status page with a threshold", &["status", "--min-idle", "1"]),
];

/// The backend the demo talks to.
enum Backend {
    PhpFpm(PhpFpm),
    Responder { _group: Group, address: String },
}

/// Runs the demo; fails if a command that should succeed did not.
pub fn run() -> Result<ExitCode> {
    process::run_ok("cargo build", workspace::cargo().args(["build", "--quiet", "-p", "fcgi-cli"]))?;
    let dir = tempfile::Builder::new().prefix("fcgi-demo-").tempdir().context("creating a temp dir")?;
    let base = dir.path().canonicalize().context("resolving the temp dir")?;
    let docroot = base.join("docroot");
    copy_dir(&workspace::root().join("tests").join("php"), &docroot)?;

    let backend = match php_fpm::find_or_install().and_then(|binary| PhpFpm::start(&binary, &base)) {
        Ok(php_fpm) => Backend::PhpFpm(php_fpm),
        Err(err) => {
            eprintln!("xtask: php-fpm is not available ({err:#}); using the in-tree test responder instead");
            start_responder(&base)?
        }
    };
    let (flag, target, description) = match &backend {
        Backend::PhpFpm(php_fpm) => ("--socket", php_fpm.socket.display().to_string(), "php-fpm"),
        Backend::Responder { address, .. } => ("--connect", address.clone(), "the in-tree test responder"),
    };
    println!("xtask: {description} is listening on {target}; the document root is {}\n", docroot.display());
    let steps = if matches!(backend, Backend::PhpFpm(_)) { &STEPS[..] } else { &STEPS[..4] };
    let mut failed = Vec::new();
    for (what, args) in steps {
        println!("# {what}\n$ cd {} && fcgi {} {flag} {target}", docroot.display(), args.join(" "));
        let output = Command::new(fcgi_binary())
            .args(*args)
            .args([flag, &target])
            .current_dir(&docroot)
            .output()
            .with_context(|| format!("running {}", fcgi_binary().display()))?;
        for stream in [&output.stdout, &output.stderr] {
            let text = String::from_utf8_lossy(stream);
            if !text.is_empty() {
                println!("{}", text.trim_end_matches('\n'));
            }
        }
        println!("(exit code {})\n", output.status.code().map_or("none".to_string(), |c| c.to_string()));
        if !output.status.success() {
            failed.push(args[0]);
        }
        process::bail_if_interrupted()?;
    }
    drop(backend);
    ensure!(failed.is_empty(), "demo command(s) failed: {}", failed.join(", "));
    println!("xtask: demo done; see docs/CLI.md for every command and option");
    Ok(ExitCode::SUCCESS)
}

fn fcgi_binary() -> PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace::root().join("target"), PathBuf::from);
    target.join("debug").join("fcgi")
}

/// Builds and starts the responder, which writes its address into a file once it listens.
fn start_responder(base: &Path) -> Result<Backend> {
    let example = ["-p", "fcgi-tests", "--example", "demo_responder"];
    process::run_ok(
        "cargo build demo_responder",
        workspace::cargo().args(["build", "--quiet"]).args(example),
    )?;
    let file = base.join("responder-address");
    let mut cmd = workspace::cargo();
    cmd.args(["run", "--quiet"]).args(example).arg("--").arg(&file);
    let group = Group::spawn("the demo responder", &mut cmd, Signal::Term)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match std::fs::read_to_string(&file) {
            Ok(address) if !address.is_empty() => return Ok(Backend::Responder { _group: group, address }),
            _ if Instant::now() > deadline => bail!("the demo responder did not start within 30 s"),
            _ => process::sleep(Duration::from_millis(50))?,
        }
    }
}
