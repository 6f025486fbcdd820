//! docs/getting-started.md, part B, as a person runs it: the shell block that takes the example
//! product to a first deploy against the local stand-ins (moto, the fake cluster) is extracted
//! from the guide and run with bash. Only two things differ from a person's run: the test's own
//! deployer binary replaces `cargo build`, the test bed is already set up, and moto gets a free
//! port instead of the guide's fixed one.

use std::process::Command;

use crate::support;

/// The first ```sh block after `heading`.
fn block_after(markdown: &str, heading: &str) -> String {
    let rest = &markdown[markdown.find(heading).unwrap_or_else(|| panic!("no `{heading}`"))..];
    let start = rest.find("```sh\n").unwrap() + "```sh\n".len();
    rest[start..start + rest[start..].find("\n```").unwrap()].to_owned()
}

#[test]
fn the_local_path_of_the_guide_reaches_a_first_deploy() {
    support::venv_bin("python");
    let guide = std::fs::read_to_string(support::root().join("docs/getting-started.md")).unwrap();
    let block = block_after(&guide, "## Part B");
    assert!(block.contains("bash .ci/setup") && block.contains("cargo build"), "{block}");
    assert!(block.contains("--port 5055") && block.contains("127.0.0.1:5055"), "{block}");
    let port = support::free_port().to_string();
    let body: String = block
        .lines()
        .filter(|l| !l.starts_with("bash .ci/setup") && !l.starts_with("cargo build"))
        .map(|l| l.replace("5055", &port) + "\n")
        .collect();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_deployer")).parent().unwrap().to_owned();
    let script = format!(
        "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\nexport PATH=\"{}:$PATH\"\n{body}",
        bin_dir.display()
    );
    let home = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .args(["600", "bash", "-c", &script])
        .current_dir(support::root())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("HOME", home.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Plan for shop → dev"), "{stdout}");
    // `status` after the deploy: every service recorded and in sync with the cluster.
    let status: Vec<&str> = stdout.lines().filter(|l| l.contains("in sync")).collect();
    assert_eq!(status.len(), 4, "{stdout}");
    // `history`: the first release, succeeded.
    assert!(stdout.lines().any(|l| l.starts_with("dev.1") && l.contains("succeeded")), "{stdout}");
}
