//! The command line as users meet it: help texts with examples and the exit-code table
//! (snapshotted), shell completions and the man page, and exit codes.

use crate::support;

const SUBCOMMANDS: [&str; 10] = [
    "deploy",
    "plan",
    "render",
    "rollback",
    "status",
    "history",
    "promote",
    "validate",
    "completions",
    "man",
];

fn help(args: &[&str]) -> String {
    let home = tempfile::tempdir().unwrap();
    let out = support::deployer(home.path()).args(args).env("COLUMNS", "100").output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn top_level_help() {
    let text = help(&["--help"]);
    // The exit codes scripts branch on, and where to start.
    for row in [
        "0  success",
        "4  the scan gate refused an image",
        "7  the environment's lock is held by a live deploy",
    ] {
        assert!(text.contains(row), "{text}");
    }
    assert!(text.contains("docs/getting-started.md"), "{text}");
    insta::assert_snapshot!("help", text);
}

#[test]
fn every_subcommand_has_help_with_examples() {
    for sub in SUBCOMMANDS {
        let text = help(&[sub, "--help"]);
        assert!(text.contains("\nExamples:\n  deployer "), "{sub}: {text}");
        insta::assert_snapshot!(format!("help-{sub}"), text);
    }
}

#[test]
fn completions_for_each_shell_know_every_command() {
    let home = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = support::deployer(home.path()).args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stderr.is_empty(), "{shell}: completions print nothing else");
        let script = String::from_utf8(out.stdout).unwrap();
        // fish spells long options `-l role-arn`.
        for word in SUBCOMMANDS.iter().chain(&["role-arn", "env", "markdown"]) {
            assert!(script.contains(word), "{shell} completions lack `{word}`");
        }
    }
    // The bash script loads and registers the completion for `deployer`.
    let out = support::deployer(home.path()).args(["completions", "bash"]).output().unwrap();
    let file = home.path().join("deployer.bash");
    std::fs::write(&file, &out.stdout).unwrap();
    let loaded = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source '{}' && complete -p deployer", file.display()))
        .output()
        .unwrap();
    assert!(loaded.status.success(), "{}", String::from_utf8_lossy(&loaded.stderr));
    assert!(String::from_utf8_lossy(&loaded.stdout).contains("deployer"));
    // An unknown shell is a usage error.
    support::deployer(home.path()).args(["completions", "tcsh"]).assert().code(2);
}

#[test]
fn man_page_is_roff_with_the_commands_and_exit_codes() {
    let home = tempfile::tempdir().unwrap();
    let out = support::deployer(home.path()).arg("man").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH deployer 1"), "{page}");
    assert!(page.contains(".SH NAME") && page.contains(".SH SYNOPSIS"), "{page}");
    for sub in SUBCOMMANDS {
        assert!(page.contains(&format!("deployer\\-{sub}")), "man page lacks `{sub}`");
    }
    // Examples and exit codes in their own sections, not reflowed.
    assert!(page.contains(".SH \"EXAMPLES\"\n.nf\n  deployer \\-\\-config"), "{page}");
    assert!(page.contains(".SH \"EXIT STATUS\"\n.nf\n  0  success\n"), "{page}");
    assert!(page.contains("  6  the rollback failed: manual action needed\n"), "{page}");
}

#[test]
fn version_matches_the_crate() {
    assert_eq!(help(&["--version"]).trim(), format!("deployer {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn usage_errors_exit_2() {
    let home = tempfile::tempdir().unwrap();
    support::deployer(home.path()).args(["deploy", "--no-such-flag"]).assert().code(2);
    support::deployer(home.path()).arg("nosuchcommand").assert().code(2);
}

#[test]
fn commands_that_need_aws_exit_3_without_credentials() {
    let home = tempfile::tempdir().unwrap();
    let config = support::root().join("examples/shop/deployer.yaml");
    for args in [
        vec!["deploy", "--env", "dev"],
        vec!["rollback", "--env", "dev"],
        vec!["status", "--env", "dev"],
        vec!["history", "--env", "dev"],
        vec!["promote", "--from", "dev", "--to", "prod"],
    ] {
        let out = support::deployer(home.path()).arg("--config").arg(&config).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("error: no AWS credentials found"), "{stderr}");
        assert!(
            stderr.contains("hint: in GitHub Actions give the job `permissions: id-token: write`"),
            "{stderr}"
        );
    }
}

#[test]
fn github_output_is_chosen_in_actions_and_writes_the_result_output() {
    let home = tempfile::tempdir().unwrap();
    let output = home.path().join("github_output");
    let config = support::root().join("tests/fixtures/bad-config/01-unknown-key-product/deployer.yaml");
    let out = support::deployer(home.path())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &output)
        .arg("--config")
        .arg(&config)
        .arg("validate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let file = config.display().to_string().replace(':', "%3A").replace(',', "%2C");
    assert!(
        stdout.contains(&format!(
            "::error file={file},line=5,col=1,title=deployer::unknown key `servces`%0Ahint: did you mean `services`?"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("::group::config"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "result=config-error\n");
}
