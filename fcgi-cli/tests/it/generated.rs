//! Generated output: shell completions, the man page, --help and --version.

use crate::common::*;

#[test]
fn completions_for_each_shell() {
    for (shell, marker) in [("bash", "complete"), ("zsh", "#compdef fcgi"), ("fish", "complete -c fcgi")] {
        let output = run(fcgi().args(["completions", shell]));
        assert_code(&output, 0);
        assert_eq!(stderr(&output), "");
        let text = stdout(&output);
        assert!(text.len() > 1000, "{shell}: {} bytes", text.len());
        assert!(text.contains("fcgi") && text.contains(marker), "{shell}: {text}");
        // Flags of every subcommand, though they are built only when their subcommand runs.
        for word in ["probe", "max-time", "socket", "min-idle", "data-binary", "multiplex"] {
            assert!(text.contains(word), "{shell} completes {word}");
        }
    }
}

#[test]
fn manpage_is_roff() {
    let output = run(fcgi().arg("manpage"));
    assert_code(&output, 0);
    let text = stdout(&output);
    assert!(text.starts_with('.'), "roff requests: {}", &text[..text.len().min(200)]);
    assert!(
        text.lines().any(|l| l.starts_with(".TH fcgi 1")),
        "a .TH header: {}",
        &text[..text.len().min(300)]
    );
    assert!(text.contains(".SH NAME\nfcgi \\- curl for FastCGI"), "{}", &text[..text.len().min(400)]);
    assert!(text.contains("FCGI_ADDRESS"), "the environment section");
}

#[test]
fn help_and_version() {
    let output = run(fcgi().arg("--version"));
    assert_code(&output, 0);
    assert!(stdout(&output).starts_with("fcgi "), "{}", stdout(&output));
    for command in ["get", "post", "request", "probe", "dump", "ping", "status", "completions", "manpage"] {
        let output = run(fcgi().args([command, "--help"]));
        assert_code(&output, 0);
        assert!(stdout(&output).contains("Usage: fcgi "), "{command}");
    }
    // `fcgi` alone shows the help on stderr and exits 2.
    let output = run(&mut fcgi());
    assert_code(&output, 2);
    assert!(stderr(&output).contains("Usage: fcgi <COMMAND>"), "{}", stderr(&output));
}
