//! The command line as users meet it: help texts (snapshotted) and exit codes.

use crate::support;

const SUBCOMMANDS: [&str; 7] = ["deploy", "plan", "rollback", "status", "history", "promote", "validate"];

fn help(args: &[&str]) -> String {
    let home = tempfile::tempdir().unwrap();
    let out = support::deployer(home.path()).args(args).env("COLUMNS", "100").output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn top_level_help() {
    insta::assert_snapshot!("help", help(&["--help"]));
}

#[test]
fn every_subcommand_has_help() {
    for sub in SUBCOMMANDS {
        insta::assert_snapshot!(format!("help-{sub}"), help(&[sub, "--help"]));
    }
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
