//! `cargo xtask demo`: the README's first command. Builds `fcgi`, starts a throw-away php-fpm
//! (installing it when missing and allowed, like `test`) or, failing that, the in-tree test
//! responder, and runs `fcgi get`, `probe`, `dump`, `ping` (and `status` on php-fpm) against
//! it, showing each command line and its output.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::backends::copy_dir;
use crate::php_fpm::{self, PhpFpm};
use crate::process::{self, Group, Signal};
use crate::workspace;

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
    copy_dir(&workspace::root().join("tests").join("php"), &docroot).context("copying the demo scripts")?;

    let backend = match php_fpm::find_or_install().and_then(|binary| PhpFpm::start(&binary, &base)) {
        Ok(php_fpm) => Backend::PhpFpm(php_fpm),
        Err(err) => {
            eprintln!("xtask: php-fpm is not available ({err:#}); using the in-tree test responder instead");
            start_responder(&base)?
        }
    };
    let (target, description) = match &backend {
        Backend::PhpFpm(php_fpm) => (php_fpm.socket.display().to_string(), "php-fpm"),
        Backend::Responder { address, .. } => (address.clone(), "the in-tree test responder"),
    };
    let flag = if matches!(backend, Backend::PhpFpm(_)) { "--socket" } else { "--connect" };
    println!("xtask: {description} is listening on {target}; the document root is {}\n", docroot.display());

    let mut steps: Vec<(&str, Vec<String>)> = vec![
        (
            "one request, body on stdout (the document root is the current directory)",
            vec!["get".into(), "/hello.php".into()],
        ),
        ("what the server says about itself (FCGI_GET_VALUES)", vec!["probe".into()]),
        ("every record of a request, both ways", vec!["dump".into(), "/hello.php?name=demo".into()]),
        ("php-fpm's ping page as a health check", vec!["ping".into()]),
    ];
    if matches!(backend, Backend::PhpFpm(_)) {
        steps.push((
            "php-fpm's status page with a threshold",
            vec!["status".into(), "--min-idle".into(), "1".into()],
        ));
    }
    let fcgi = fcgi_binary();
    let mut failed = Vec::new();
    for (what, mut args) in steps {
        args.push(flag.into());
        args.push(target.clone());
        println!("# {what}");
        println!("$ cd {} && fcgi {}", docroot.display(), args.join(" "));
        let output = Command::new(&fcgi)
            .args(&args)
            .current_dir(&docroot)
            .output()
            .with_context(|| format!("running {}", fcgi.display()))?;
        for stream in [&output.stdout, &output.stderr] {
            let text = String::from_utf8_lossy(stream);
            if !text.is_empty() {
                println!("{}", text.trim_end_matches('\n'));
            }
        }
        let status = output.status;
        println!("(exit code {})\n", status.code().map_or("none".to_string(), |c| c.to_string()));
        if !status.success() {
            failed.push(args[0].clone());
        }
        process::bail_if_interrupted()?;
    }
    drop(backend);
    if !failed.is_empty() {
        bail!("demo command(s) failed: {}", failed.join(", "));
    }
    println!("xtask: demo done; see docs/CLI.md for every command and option");
    Ok(ExitCode::SUCCESS)
}

fn fcgi_binary() -> PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace::root().join("target"), PathBuf::from);
    target.join("debug").join("fcgi")
}

fn start_responder(base: &Path) -> Result<Backend> {
    let example = ["build", "--quiet", "-p", "fcgi-tests", "--example", "demo_responder"];
    process::run_ok("cargo build demo_responder", workspace::cargo().args(example))?;
    let file = base.join("responder-address");
    let mut cmd = workspace::cargo();
    cmd.args(["run", "--quiet", "-p", "fcgi-tests", "--example", "demo_responder", "--"]).arg(&file);
    let group = Group::spawn("the demo responder", &mut cmd, Signal::Term)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(address) = std::fs::read_to_string(&file) {
            if !address.is_empty() {
                return Ok(Backend::Responder { _group: group, address });
            }
        }
        if Instant::now() > deadline {
            bail!("the demo responder did not start within 30 s");
        }
        process::sleep(Duration::from_millis(50))?;
    }
}
