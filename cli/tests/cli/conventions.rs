//! The conventions every subcommand follows: exit codes, one-line errors on
//! stderr, help and version.

use assert_cmd::Command;

fn hisn() -> Command {
    Command::cargo_bin("hisn").unwrap()
}

#[test]
fn version_prints_the_package_version_and_exits_0() {
    let out = hisn().arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim(), format!("hisn {}", env!("CARGO_PKG_VERSION")));
    assert!(out.stderr.is_empty());
}

#[test]
fn help_lists_every_group_and_the_exit_codes() {
    let out = hisn().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    for group in [
        "webhook", "keys", "vault", "password", "apikey", "audit", "guard",
    ] {
        assert!(
            stdout.lines().any(|l| l.trim_start().starts_with(group)),
            "help does not list `{group}`:\n{stdout}"
        );
    }
    assert!(stdout.contains("0 ok, 1 verification failed or denied, 2 usage or input error"));
}

#[test]
fn unknown_subcommand_is_a_one_line_usage_error_with_exit_2() {
    let out = hisn().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr.lines().count(),
        1,
        "stderr must be one line: {stderr:?}"
    );
    assert!(stderr.starts_with("hisn: "), "{stderr:?}");
    assert!(stderr.contains("frobnicate"), "{stderr:?}");
}

#[test]
fn unknown_flag_is_a_one_line_usage_error_with_exit_2() {
    let out = hisn().args(["--no-such-flag"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr.lines().count(),
        1,
        "stderr must be one line: {stderr:?}"
    );
    assert!(stderr.contains("--no-such-flag"), "{stderr:?}");
}

#[test]
fn no_subcommand_shows_help_on_stderr_and_exits_2() {
    let out = hisn().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("Usage: hisn")
    );
}

#[test]
fn every_group_has_help() {
    for group in [
        "webhook", "keys", "vault", "password", "apikey", "audit", "guard",
    ] {
        let out = hisn().args([group, "--help"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "`hisn {group} --help`");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.contains(&format!("Usage: hisn {group}")), "{stdout}");
    }
}

#[test]
fn a_reader_that_went_away_is_not_an_error() {
    // `hisn ... | head`: the read end is closed before the command starts.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("hisn"))
        .args(["keys", "generate-master"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
