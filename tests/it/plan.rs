//! `deployer plan` on the bundled example, offline: human, JSON and Markdown forms snapshotted.

use crate::support;

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn plan(env: &str, extra: &[&str]) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    support::deployer(home.path())
        .current_dir(support::root().join("examples/shop"))
        .env("GITHUB_SHA", SHA)
        // Pin the builder so the snapshot does not depend on what this machine has.
        .env("DEPLOYER_BUILDER", "buildah")
        .args(["plan", "--env", env])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn plan_human() {
    support::system_bin("buildah");
    for env in ["dev", "prod", "ecs-dev"] {
        let out = plan(env, &[]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        insta::assert_snapshot!(format!("plan-{env}-human"), String::from_utf8_lossy(&out.stdout));
    }
}

#[test]
fn plan_json() {
    support::system_bin("buildah");
    for env in ["dev", "prod"] {
        let out = plan(env, &["--output", "json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let events: Vec<serde_json::Value> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(events.iter().all(|e| e["v"] == 1 && e["ts"].is_string()));
        assert_eq!(events.first().unwrap()["event"], "started");
        assert_eq!(events.last().unwrap()["event"], "finished");
        assert_eq!(events.last().unwrap()["exit_code"], 0);
        let planned = events.iter().find(|e| e["event"] == "planned").expect("a planned event");
        insta::assert_json_snapshot!(format!("plan-{env}-json"), planned["plan"]);
    }
}

#[test]
fn plan_markdown() {
    support::system_bin("buildah");
    for env in ["dev", "prod"] {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("plan.md");
        let out = plan(env, &["--markdown", md.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        insta::assert_snapshot!(format!("plan-{env}-markdown"), std::fs::read_to_string(&md).unwrap());
    }
}

#[test]
fn plan_pins_prebuilt_images_and_filters_services() {
    let out = plan(
        "dev",
        &[
            "--service",
            "user",
            "--image",
            "user=111111111111.dkr.ecr.eu-west-1.amazonaws.com/shop/user:1.4.2",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("build:  prebuilt 111111111111.dkr.ecr.eu-west-1.amazonaws.com/shop/user:1.4.2"),
        "{text}"
    );
    assert!(!text.contains("service order"), "{text}");
}

/// The plan is still shown (what could not be rendered, and why), but the command fails: the
/// deploy it announces would be refused (issue 15), so a pull request's plan job must not pass.
#[test]
fn plan_without_kustomize_shows_why_and_exits_2() {
    let home = tempfile::tempdir().unwrap();
    let out = support::deployer(home.path())
        .current_dir(support::root().join("examples/shop"))
        .env("PATH", "/nonexistent")
        .env_remove("DEPLOYER_KUSTOMIZE")
        .args(["plan", "--env", "dev"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("render: FAILED: kustomize not found: neither `kustomize` nor `kubectl` is on PATH"),
        "{text}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("kustomize not found").count(), 1, "said once, not per service: {stderr}");
    assert!(stderr.contains("hint: install kustomize or kubectl"), "{stderr}");
}

#[test]
fn plan_renders_what_plain_kustomize_renders() {
    // The objects listed are exactly those `kubectl kustomize` renders from the same overlay.
    let out = plan("prod", &["--output", "json"]);
    let events: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let planned = events.iter().find(|e| e["event"] == "planned").unwrap();
    for svc in planned["plan"]["services"].as_array().unwrap() {
        let name = svc["name"].as_str().unwrap();
        let overlay = support::root().join(format!("examples/shop/services/{name}/k8s/overlays/prod"));
        let plain =
            std::process::Command::new(support::kubectl()).arg("kustomize").arg(&overlay).output().unwrap();
        assert!(plain.status.success());
        let docs: Vec<serde_json::Value> =
            serde_saphyr::from_str_multiple(&String::from_utf8_lossy(&plain.stdout)).unwrap();
        let expected: Vec<(String, String)> = docs
            .iter()
            .map(|d| {
                (d["kind"].as_str().unwrap().to_owned(), d["metadata"]["name"].as_str().unwrap().to_owned())
            })
            .collect();
        let got: Vec<(String, String)> = svc["render"]["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o["kind"].as_str().unwrap().to_owned(), o["name"].as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(got, expected, "{name}");
    }
}
