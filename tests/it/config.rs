//! Configuration as users meet it: every broken fixture gives exit code 2 and a message naming
//! file:line and the fix; the reference environments validate; the JSON Schema is current.

use std::path::Path;

use crate::support;

/// Runs the case's `args` in its directory and returns "exit N" plus stderr.
fn run_case(dir: &Path) -> (Option<i32>, String) {
    let home = tempfile::tempdir().unwrap();
    let args = std::fs::read_to_string(dir.join("args")).unwrap();
    let out = support::deployer(home.path()).current_dir(dir).args(args.split_whitespace()).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn broken_configurations_are_reported_with_position_and_fix() {
    let base = support::root().join("tests/fixtures/bad-config");
    let mut cases: Vec<_> = std::fs::read_dir(&base).unwrap().map(|e| e.unwrap().path()).collect();
    cases.sort();
    assert!(cases.len() >= 15, "need at least 15 broken configurations, found {}", cases.len());
    for case in cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let (code, stderr) = run_case(&case);
        assert_eq!(code, Some(2), "{name}: {stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        assert!(first.starts_with("error: "), "{name}: {stderr}");
        assert!(first.contains(".yaml") || first.contains("environments"), "{name} names no file: {stderr}");
        assert!(stderr.contains("\n  hint: "), "{name} has no hint: {stderr}");
        insta::assert_snapshot!(format!("bad-config-{name}"), stderr);
    }
}

#[test]
fn positions_point_at_the_offending_line() {
    // Independent of the snapshots: the reported line really holds the bad key.
    let case = support::root().join("tests/fixtures/bad-config/02-unknown-key-environment");
    let (_, stderr) = run_case(&case);
    let pos = stderr.split_whitespace().nth(1).unwrap().trim_end_matches(':');
    let mut parts = pos.rsplitn(3, ':');
    let (_col, line, file) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let text = std::fs::read_to_string(case.join(file)).unwrap();
    let line: usize = line.parse().unwrap();
    assert!(text.lines().nth(line - 1).unwrap().contains("bake_tme"), "{stderr}");
}

#[test]
fn the_example_product_validates() {
    let home = tempfile::tempdir().unwrap();
    let config = support::root().join("examples/shop/deployer.yaml");
    let out = support::deployer(home.path()).arg("--config").arg(&config).arg("validate").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok: product `shop` (4 services) and 4 environment(s) [dev, ecs-dev, ecs-prod, prod] are valid\n"
    );
}

#[test]
fn the_reference_environments_validate_against_the_example() {
    // environments/ at the top of the repository is the configuration reference users copy.
    let tmp = tempfile::tempdir().unwrap();
    let product = tmp.path().join("shop");
    support::copy_tree(&support::root().join("examples/shop"), &product);
    std::fs::remove_dir_all(product.join("environments")).unwrap();
    support::copy_tree(&support::root().join("environments"), &product.join("environments"));
    let out = support::deployer(tmp.path())
        .arg("--config")
        .arg(product.join("deployer.yaml"))
        .arg("validate")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("[dev, prod]"));
}

#[test]
fn committed_json_schemas_are_current() {
    let dir = support::root().join("schema");
    for (file, fresh) in [
        ("deployer.schema.json", deployer::config::schema::product_schema()),
        ("environment.schema.json", deployer::config::schema::environment_schema()),
    ] {
        let committed = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        assert!(
            committed == fresh,
            "schema/{file} is stale: run `cargo run -- --config examples/shop/deployer.yaml validate --write-schema schema`"
        );
    }
}

#[test]
fn example_files_conform_to_the_schema() {
    // An independent validator (check-jsonschema) reads the committed schema: what editors see.
    let root = support::root();
    let check = support::venv_bin("check-jsonschema");
    let cases = [
        ("schema/deployer.schema.json", vec!["examples/shop/deployer.yaml"]),
        (
            "schema/environment.schema.json",
            vec![
                "examples/shop/environments/dev.yaml",
                "examples/shop/environments/prod.yaml",
                "examples/shop/environments/ecs-dev.yaml",
                "examples/shop/environments/ecs-prod.yaml",
                "environments/dev.yaml",
                "environments/prod.yaml",
            ],
        ),
    ];
    for (schema, files) in cases {
        let out = std::process::Command::new(&check)
            .current_dir(&root)
            .arg("--schemafile")
            .arg(schema)
            .args(&files)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{schema}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // And the schema is not vacuous: a typo'd key fails it.
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(&bad, "account_id: \"222222222222\"\nregion: eu-west-1\ntarget: {eks: {cluster: c, namespace: n}}\nhelth: {}\n").unwrap();
    let out = std::process::Command::new(&check)
        .arg("--schemafile")
        .arg(root.join("schema/environment.schema.json"))
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the schema accepted an unknown key");
}

/// `validate` reports an expired scan-ignore entry as a warning (exit 0: the configuration is
/// valid, but the findings it covered count again) next to the errors it finds.
#[test]
fn validate_warns_about_expired_scan_ignores_and_still_reports_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let product = tmp.path().join("shop");
    support::copy_tree(&support::root().join("examples/shop"), &product);
    let dev = product.join("environments/dev.yaml");
    let text = std::fs::read_to_string(&dev).unwrap();
    std::fs::write(
        &dev,
        format!(
            "{text}\nscan:\n  ignore:\n    - {{ id: CVE-2024-0001, reason: not reachable, expires: 2024-01-31 }}\n    - {{ id: CVE-2099-0002, reason: fix pending, expires: 2099-12-31 }}\n"
        ),
    )
    .unwrap();
    let run = || {
        support::deployer(tmp.path())
            .arg("--config")
            .arg(product.join("deployer.yaml"))
            .arg("validate")
            .output()
            .unwrap()
    };
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: ") && stderr.contains("scan ignore of CVE-2024-0001 expired on 2024-01-31"),
        "{stderr}"
    );
    assert!(!stderr.contains("CVE-2099-0002"), "an ignore still in force is no warning: {stderr}");
    // With an error beside it: exit 2, and the warning is still said.
    let bad = product.join("environments/prod.yaml");
    let text = std::fs::read_to_string(&bad).unwrap();
    std::fs::write(&bad, format!("{text}\ntimeouts: {{ rollout: 1y }}\n")).unwrap();
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid duration `1y`"), "{stderr}");
    assert!(stderr.contains("scan ignore of CVE-2024-0001 expired"), "{stderr}");
}
