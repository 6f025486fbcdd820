//! Dependencies earn their place: `.ci/unused_deps.py` (run by `.ci/run`) passes on this
//! repository and names a declared crate that no code uses.

use std::process::Command;

use crate::support;

fn check(manifest: &std::path::Path) -> std::process::Output {
    Command::new(support::venv_bin("python"))
        .arg(support::root().join(".ci/unused_deps.py"))
        .arg(manifest)
        .output()
        .unwrap()
}

#[test]
fn every_direct_dependency_is_used() {
    let out = check(&support::root().join("Cargo.toml"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn an_unused_dependency_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"x\"\n[dependencies]\nserde-json = \"1\"\noci-client = \"0.18\"\n\
         [dev-dependencies]\nwiremock = \"0.6\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("src/lib.rs"),
        "pub fn f() -> serde_json::Value { serde_json::Value::Null }\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("tests")).unwrap();
    std::fs::write(dir.path().join("tests/t.rs"), "use wiremock::MockServer;\n").unwrap();
    let out = check(&dir.path().join("Cargo.toml"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("unused direct dependencies"), "{stdout}");
    assert!(stdout.contains("oci_client ([dependencies])"), "{stdout}");
    assert!(!stdout.contains("serde_json"), "{stdout}");
    assert!(!stdout.contains("wiremock"), "{stdout}");
}
