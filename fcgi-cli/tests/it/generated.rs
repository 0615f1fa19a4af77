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
    assert!(stderr(&output).contains("Usage: fcgi [OPTIONS] <COMMAND>"), "{}", stderr(&output));
}

#[test]
fn manpage_dir_writes_a_page_per_command() {
    let dir = temp_dir();
    let out = dir.path().join("man1");
    let output = run(fcgi().args(["manpage", "--dir"]).arg(&out));
    assert_code(&output, 0);
    assert_eq!((stdout(&output).as_str(), stderr(&output).as_str()), ("", ""));
    let mut files: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    let commands = [
        "bench",
        "completions",
        "dump",
        "exporter",
        "get",
        "manpage",
        "ping",
        "post",
        "probe",
        "request",
        "serve",
        "status",
    ];
    let mut expected: Vec<String> = commands.iter().map(|c| format!("fcgi-{c}.1")).collect();
    expected.push("fcgi.1".into());
    expected.sort();
    assert_eq!(files, expected);
    let get = std::fs::read_to_string(out.join("fcgi-get.1")).unwrap().replace("\\-", "-");
    assert!(get.contains(".TH fcgi-get 1"), "{get}");
    for option in ["--write-out", "--retry", "--max-filesize", "--socket", "--docroot", "--user-agent"] {
        assert!(get.contains(option), "fcgi-get.1 has {option}");
    }
    assert!(get.contains(".SH \"EXIT STATUS\"") && get.contains("\\fB63\\fR"), "{get}");
    // The same fcgi.1 as `fcgi manpage` prints.
    let top = std::fs::read(out.join("fcgi.1")).unwrap();
    assert_eq!(top, run(fcgi().arg("manpage")).stdout);
    // A directory that cannot be made: exit 23, one line.
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let line = assert_error(&run(fcgi().args(["manpage", "--dir"]).arg(file.join("man1"))), 23);
    assert!(line.contains("cannot write"), "{line}");
}
