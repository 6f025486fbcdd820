//! `deployer render`: exactly what `deploy` applies. On EKS the objects equal kustomize's own
//! rendering of the same overlays with the same pins, object by object (deployer's labels
//! aside), on the kustomize conformance set; on ECS each task definition is byte for byte the
//! `RegisterTaskDefinition` request `deploy` sends (recorded by moto).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use deployer::render::kustomize::{MANAGED_BY, images_of, parse_objects};
use serde_json::Value;

use crate::support::{self, copy_tree, ecs_env};

const REGISTRY: &str = "111111111111.dkr.ecr.eu-west-1.amazonaws.com";
const DIGEST_WEB: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const DIGEST_WORKER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// The services of a conformance product: both render the case's overlay, each pinning its own
/// image (as two services sharing an overlay would).
const SERVICES: [(&str, &str, &str); 2] =
    [("web", "app/web", DIGEST_WEB), ("worker", "app/worker", DIGEST_WORKER)];

/// A product around one conformance case: `deployer.yaml`, `environments/test.yaml` (EKS) and
/// the case's files under `case/`.
fn conformance_product(case: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&case.join("case"), &dir.path().join("case"));
    let overlay = if dir.path().join("case/overlay").is_dir() { "case/overlay" } else { "case" };
    let mut yaml = String::from(
        "product: conformance\nregistry: { account_id: \"111111111111\", region: eu-west-1 }\nservices:\n",
    );
    for (name, repository, _) in SERVICES {
        let _ = writeln!(yaml, "  - {{ name: {name}, repository: {repository}, kustomize: {overlay} }}");
    }
    std::fs::write(dir.path().join("deployer.yaml"), yaml).unwrap();
    std::fs::create_dir_all(dir.path().join("environments")).unwrap();
    std::fs::write(
        dir.path().join("environments/test.yaml"),
        "account_id: \"222222222222\"\nregion: eu-west-1\ntarget:\n  eks: { cluster: c, namespace: conformance }\n",
    )
    .unwrap();
    dir
}

/// How the peer applies the pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    /// `kustomize edit set image` in the overlay itself: the pin joins the overlay's own
    /// `images:`.
    InOverlay,
    /// A kustomization of its own that takes the overlay as its resource and pins it (how a
    /// release pipeline pins an environment without editing it; deployer's way too).
    OnTop,
}

/// The peer: plain `kubectl kustomize` with the pin `NAME → REGISTRY/NAME@DIGEST` applied the
/// `peer` way, on a copy of the case.
fn plain_kustomize(case: &Path, repository: &str, digest: &str, peer: Peer) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&case.join("case"), &dir.path().join("case"));
    let overlay = if dir.path().join("case/overlay").is_dir() {
        dir.path().join("case/overlay")
    } else {
        dir.path().join("case")
    };
    let entry = serde_json::json!({ "name": repository, "newName": format!("{REGISTRY}/{repository}"), "digest": digest });
    let root = match peer {
        Peer::InOverlay => {
            let file = overlay.join("kustomization.yaml");
            let mut k: Value = serde_saphyr::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            match k.get_mut("images").and_then(Value::as_array_mut) {
                Some(images) => images.push(entry),
                None => k["images"] = Value::Array(vec![entry]),
            }
            // JSON is YAML: kustomize reads it as written.
            std::fs::write(&file, serde_json::to_string_pretty(&k).unwrap()).unwrap();
            overlay
        }
        Peer::OnTop => {
            let top = dir.path().join("pinned");
            std::fs::create_dir_all(&top).unwrap();
            let rel = if overlay.ends_with("overlay") { "../case/overlay" } else { "../case" };
            let k = serde_json::json!({ "resources": [rel], "images": [entry] });
            std::fs::write(top.join("kustomization.yaml"), serde_json::to_string_pretty(&k).unwrap())
                .unwrap();
            top
        }
    };
    let out = std::process::Command::new(support::kubectl()).arg("kustomize").arg(&root).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    parse_objects(&String::from_utf8_lossy(&out.stdout)).unwrap()
}

/// Where pinning in the overlay itself means something else than pinning its output, and
/// what differs (tests/fixtures/kustomize/README.md): the overlay's `replacements:` run after
/// its own `images:` but before deployer's, so a copy of the image into a plain string field
/// is pinned only by the in-overlay peer.
const IN_OVERLAY_DIFFERS: [(&str, &str); 1] =
    [("06-replacements", "/spec/template/spec/containers/0/env/1/value")];

/// Removes what deployer adds on purpose (its labels), so the rest must be identical.
fn strip_deployer_labels(mut obj: Value) -> Value {
    if let Some(labels) = obj.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.retain(|k, _| k != MANAGED_BY.0 && !k.starts_with("deployer.dev/"));
        if labels.is_empty() {
            obj["metadata"].as_object_mut().unwrap().remove("labels");
        }
    }
    obj
}

fn cases() -> Vec<PathBuf> {
    let base = support::root().join("tests/fixtures/kustomize");
    let mut cases: Vec<PathBuf> =
        std::fs::read_dir(&base).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    assert!(cases.len() >= 10, "the conformance set needs ≥ 10 overlays");
    cases
}

fn pins_args() -> Vec<String> {
    SERVICES
        .iter()
        .flat_map(|(name, repository, digest)| {
            ["--image".to_owned(), format!("{name}={REGISTRY}/{repository}@{digest}")]
        })
        .collect()
}

#[test]
fn render_equals_plain_kustomize_with_the_same_pins_on_the_conformance_set() {
    let home = tempfile::tempdir().unwrap();
    for case in cases() {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let product = conformance_product(&case);
        let out_dir = product.path().join("rendered");
        let out = support::deployer(home.path())
            .arg("--config")
            .arg(product.path().join("deployer.yaml"))
            .args(["render", "--env", "test", "--show-secrets", "-o"])
            .arg(&out_dir)
            .args(pins_args())
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout.is_empty(), "{name}: with -o nothing goes to stdout");
        for (service, repository, digest) in SERVICES {
            let ours =
                parse_objects(&std::fs::read_to_string(out_dir.join(format!("{service}.yaml"))).unwrap())
                    .unwrap();
            assert!(!ours.is_empty(), "{name}/{service}: nothing rendered");
            let ours: Vec<Value> = ours.into_iter().map(strip_deployer_labels).collect();
            // The same pins on top of the overlay: identical, object by object.
            let on_top = plain_kustomize(&case, repository, digest, Peer::OnTop);
            assert_eq!(ours, on_top, "{name}/{service}: render ≠ kustomize with the pins on top");
            // The pins in the overlay (`kustomize edit set image`): identical but for the
            // documented differences.
            let in_overlay = plain_kustomize(&case, repository, digest, Peer::InOverlay);
            assert_eq!(ours.len(), in_overlay.len(), "{name}/{service}: object count");
            for (mut a, b) in ours.iter().cloned().zip(in_overlay) {
                for (c, pointer) in IN_OVERLAY_DIFFERS {
                    if c == name
                        && a != b
                        && let (Some(x), Some(y)) = (a.pointer(pointer).cloned(), b.pointer(pointer))
                    {
                        assert_ne!(&x, y, "{name}/{service}: the documented difference is gone");
                        *a.pointer_mut(pointer).unwrap() = y.clone();
                    }
                }
                assert_eq!(a, b, "{name}/{service}: render ≠ kustomize with the pins in the overlay");
            }
        }
    }
}

#[test]
fn the_stream_is_the_files_in_apply_order_and_secrets_are_redacted_unless_asked() {
    let home = tempfile::tempdir().unwrap();
    let case = support::root().join("tests/fixtures/kustomize/03-secret-generator");
    let product = conformance_product(&case);
    let render = |extra: &[&str]| {
        let out = support::deployer(home.path())
            .arg("--config")
            .arg(product.path().join("deployer.yaml"))
            .args(["render", "--env", "test"])
            .args(pins_args())
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        parse_objects(&String::from_utf8_lossy(&out.stdout)).unwrap()
    };
    let shown = render(&["--show-secrets"]);
    let redacted = render(&[]);
    // web's objects, then worker's: the stream is the two files one after the other.
    let plain_web = plain_kustomize(&case, "app/web", DIGEST_WEB, Peer::OnTop);
    assert_eq!(shown.len(), 2 * plain_web.len());
    let secrets: Vec<_> = shown.iter().zip(&redacted).filter(|(s, _)| s["kind"] == "Secret").collect();
    assert!(!secrets.is_empty(), "the case renders a Secret");
    for (s, r) in secrets {
        let data = s["data"].as_object().expect("the Secret has data");
        assert!(data.values().all(|v| v.as_str().is_some_and(|v| !v.is_empty() && v != "<redacted>")));
        let hidden = r["data"].as_object().unwrap();
        assert_eq!(hidden.keys().collect::<Vec<_>>(), data.keys().collect::<Vec<_>>(), "keys stay visible");
        assert!(hidden.values().all(|v| v == "<redacted>"), "{hidden:?}");
        // Everything else of the Secret (its hashed name, labels) is as rendered.
        let mut a = s.clone();
        let mut b = r.clone();
        a.as_object_mut().unwrap().remove("data");
        b.as_object_mut().unwrap().remove("data");
        assert_eq!(a, b);
    }
    // Other kinds are untouched.
    let others = |v: &[Value]| v.iter().filter(|o| o["kind"] != "Secret").cloned().collect::<Vec<_>>();
    assert_eq!(others(&shown), others(&redacted));
}

#[test]
fn the_bundled_example_renders_offline_with_pending_pins_shown() {
    let home = tempfile::tempdir().unwrap();
    let config = support::root().join("examples/shop/deployer.yaml");
    let out = support::deployer(home.path())
        .arg("--config")
        .arg(&config)
        .args(["render", "--env", "dev"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let objects = parse_objects(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let ours: Vec<String> = objects.iter().flat_map(images_of).filter(|i| i.contains("/shop/")).collect();
    assert!(!ours.is_empty());
    for image in &ours {
        assert!(image.starts_with(&format!("{REGISTRY}/shop/")), "{image}");
        assert!(image.ends_with("@<digest after push>"), "{image}");
    }
    for svc in ["user", "order", "payment", "notification"] {
        assert!(stderr.contains(&format!("`{svc}` is not built yet")), "{stderr}");
    }

    // A given digest is rendered as given; a tag is refused (render contacts no registry).
    let digest = format!("sha256:{}", "ab".repeat(32));
    let out = support::deployer(home.path())
        .arg("--config")
        .arg(&config)
        .args(["render", "--env", "prod", "--service", "user", "--image"])
        .arg(format!("user=shop/user@{digest}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let objects = parse_objects(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let images: Vec<String> = objects.iter().flat_map(images_of).filter(|i| i.contains("/shop/")).collect();
    assert!(!images.is_empty());
    assert!(images.iter().all(|i| *i == format!("{REGISTRY}/shop/user@{digest}")), "{images:?}");
    assert!(objects.iter().all(|o| o["metadata"]["labels"]["deployer.dev/service"] == "user"));

    let out = support::deployer(home.path())
        .arg("--config")
        .arg(&config)
        .args(["render", "--env", "dev", "--image", "user=shop/user:1.4.2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("names a tag") && stderr.contains("@sha256:"), "{stderr}");
    assert!(out.stdout.is_empty());
}

/// The request bodies of every `RegisterTaskDefinition` moto received, by family.
fn registered_bodies(moto: &support::moto::Moto) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for r in moto.recording() {
        let target = r["headers"]
            .as_object()
            .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case("x-amz-target")))
            .and_then(|(_, v)| v.as_str())
            .unwrap_or_default();
        if !target.ends_with(".RegisterTaskDefinition") {
            continue;
        }
        let body = r["body"].as_str().unwrap_or_default();
        let bytes = if r["body_encoded"] == true {
            base64::engine::general_purpose::STANDARD.decode(body).unwrap()
        } else {
            body.as_bytes().to_vec()
        };
        let family = serde_json::from_slice::<Value>(&bytes).unwrap()["family"].as_str().unwrap().to_owned();
        out.insert(family, bytes);
    }
    out
}

#[tokio::test]
async fn ecs_task_definitions_render_byte_identical_to_what_deploy_registers() {
    let env = ecs_env::EcsEnv::start(ecs_env::Options::default()).await;
    let images = ecs_env::images(2);
    env.moto.control("/moto-api/recorder/start-recording", &serde_json::json!({}));
    let p = deployer::platform::ecs::EcsPlatform::new(&env.sdk, &env.config, &env.env).unwrap();
    let report = crate::ecs::deploy(&env, &p, &images).await.unwrap();
    assert!(matches!(report.ended, deployer::engine::Ended::Succeeded(_)));
    let registered = registered_bodies(&env.moto);
    assert_eq!(registered.len(), images.len(), "deploy registers one new revision per service");

    let home = tempfile::tempdir().unwrap();
    let out_dir = home.path().join("rendered");
    let mut cmd = support::deployer(home.path());
    cmd.arg("--config").arg(env.product_dir().join("deployer.yaml")).args(["render", "--env", "test"]);
    for (svc, image) in &images {
        cmd.arg("--image").arg(format!("{svc}={image}"));
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stream = String::from_utf8(out.stdout).unwrap();
    // One task definition a line, each followed by its service's hooks (`RunTask` overrides).
    let (hooks, lines): (Vec<&str>, Vec<&str>) =
        stream.lines().partition(|l| serde_json::from_str::<Value>(l).unwrap().get("hook").is_some());
    assert_eq!(lines.len(), images.len(), "one task definition a line");
    let hook: Value = serde_json::from_str(hooks.first().expect("the example's order migration")).unwrap();
    assert_eq!(hook["hook"]["service"], "order", "{hook}");
    assert_eq!(hook["runTask"]["taskDefinition"], "shop-order-test", "{hook}");
    assert_eq!(
        hook["runTask"]["overrides"]["containerOverrides"][0]["command"],
        serde_json::json!(["/srv/order/migrate", "up"]),
        "{hook}"
    );
    for line in lines {
        let family = serde_json::from_str::<Value>(line).unwrap()["family"].as_str().unwrap().to_owned();
        assert_eq!(
            line.as_bytes(),
            registered[&family].as_slice(),
            "{family}: render differs from the RegisterTaskDefinition request"
        );
    }
    // The same bytes in `--out-dir`, one file per service (with a final newline).
    let mut cmd = support::deployer(home.path());
    cmd.arg("--config")
        .arg(env.product_dir().join("deployer.yaml"))
        .args(["render", "--env", "test", "-o"])
        .arg(&out_dir);
    for (svc, image) in &images {
        cmd.arg("--image").arg(format!("{svc}={image}"));
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out_dir.join("order.hooks.jsonl").is_file(), "the hooks in their own file");
    for svc in images.keys() {
        let text = std::fs::read(out_dir.join(format!("{svc}.json"))).unwrap();
        let family = format!("shop-{svc}-test");
        assert_eq!(text.strip_suffix(b"\n").unwrap(), registered[&family].as_slice(), "{svc}");
    }
    // And what ECS now runs is that definition (nothing added or dropped on the way).
    for svc in images.keys() {
        let live = deployer::platform::ecs::taskdef::describe(
            &env.ecs,
            env.service(&format!("shop-{svc}")).await.task_definition().unwrap(),
        )
        .await
        .unwrap();
        let rendered: Value = serde_json::from_slice(&registered[&format!("shop-{svc}-test")]).unwrap();
        assert!(deployer::platform::ecs::taskdef::same(&rendered, &live), "{svc}");
    }
}
