//! Rendering with the real kustomize: deployer's wrapper must mean exactly what the user's overlay
//! means, with our images pinned to digests.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use deployer::render::ImagePin;
use deployer::render::kustomize::{Kustomize, MANAGED_BY, RenderJob, images_of, parse_objects};
use serde_json::Value;

use crate::support;

const REGISTRY: &str = "111111111111.dkr.ecr.eu-west-1.amazonaws.com";
const DIGEST_WEB: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const DIGEST_WORKER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn kustomize() -> Kustomize {
    Kustomize::locate(Some(&support::kubectl())).unwrap()
}

fn pins() -> Vec<ImagePin> {
    [("app/web", DIGEST_WEB), ("app/worker", DIGEST_WORKER)]
        .iter()
        .map(|(n, d)| ImagePin {
            name: (*n).into(),
            new_name: format!("{REGISTRY}/{n}"),
            digest: Some((*d).into()),
        })
        .collect()
}

fn expectation_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| {
            t.lines()
                .map(str::trim_end)
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .map(|l| {
                    l.replace("REGISTRY", REGISTRY)
                        .replace("DIGEST_WEB", DIGEST_WEB)
                        .replace("DIGEST_WORKER", DIGEST_WORKER)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn overlay_of(case: &Path) -> PathBuf {
    let o = case.join("case/overlay");
    if o.is_dir() { o } else { case.join("case") }
}

/// `grep -E` semantics: the pattern matches some line of `text`.
fn grep(pattern: &str, text: &str) -> bool {
    let re = regex::Regex::new(&format!("(?m){pattern}")).unwrap();
    re.is_match(text)
}

#[tokio::test]
async fn conformance_overlays_render_with_digests_pinned() {
    let kz = kustomize();
    let base = support::root().join("tests/fixtures/kustomize");
    let mut cases: Vec<PathBuf> =
        std::fs::read_dir(&base).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    assert!(cases.len() >= 10, "the conformance set needs ≥ 10 overlays");
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy();
        let labels = [MANAGED_BY];
        let text = kz.render_text(&overlay_of(case), &pins(), &labels, &name, "test").await.unwrap();
        let objects = parse_objects(&text).unwrap();
        let mut images: Vec<String> = objects.iter().flat_map(images_of).collect();
        images.sort();
        images.dedup();
        let mut expected = expectation_lines(&case.join("expected-images.txt"));
        expected.sort();
        assert_eq!(images, expected, "{name}: images after pinning");
        for pattern in expectation_lines(&case.join("expected-patterns.txt")) {
            assert!(grep(&pattern, &text), "{name}: expected /{pattern}/ in\n{text}");
        }
        for pattern in expectation_lines(&case.join("forbidden-patterns.txt")) {
            assert!(!grep(&pattern, &text), "{name}: forbidden /{pattern}/ in\n{text}");
        }
        // deployer's label lands on every top-level object, never on selectors or templates.
        for obj in &objects {
            assert_eq!(obj["metadata"]["labels"][MANAGED_BY.0], MANAGED_BY.1, "{name}: {obj}");
            if let Some(sel) = obj.pointer("/spec/selector/matchLabels") {
                assert!(sel.get(MANAGED_BY.0).is_none(), "{name}: label leaked into a selector");
            }
            if let Some(tpl) = obj.pointer("/spec/template/metadata/labels") {
                assert!(tpl.get(MANAGED_BY.0).is_none(), "{name}: label leaked into a pod template");
            }
        }
    }
}

#[tokio::test]
async fn broken_overlays_report_kustomizes_message_with_service_and_env() {
    let kz = kustomize();
    let base = support::root().join("tests/fixtures/kustomize-broken");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&base).unwrap().map(|e| e.unwrap().path()).collect();
    cases.sort();
    assert!(cases.len() >= 3);
    for case in cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let err = kz.render(&overlay_of(&case), &pins(), &[MANAGED_BY], "web", "prod").await.unwrap_err();
        let text = err.to_string();
        let expected = std::fs::read_to_string(case.join("expected-error.txt")).unwrap();
        assert!(text.starts_with("kustomize failed for service `web` in environment `prod`: "), "{text}");
        assert!(text.contains(expected.trim()), "{name}: `{}` not in {text}", expected.trim());
    }
}

/// A product around one broken fixture overlay, run through the CLI.
fn broken_product(case: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    support::copy_tree(
        &support::root().join("tests/fixtures/kustomize-broken").join(case).join("case"),
        &tmp.path().join("case"),
    );
    std::fs::write(
        tmp.path().join("deployer.yaml"),
        "product: demo\nregistry: { account_id: \"111111111111\", region: eu-west-1 }\nservices:\n  - { name: web, repository: app/web, kustomize: case/overlay }\n",
    )
    .unwrap();
    std::fs::create_dir(tmp.path().join("environments")).unwrap();
    std::fs::write(
        tmp.path().join("environments/prod.yaml"),
        "account_id: \"222222222222\"\nregion: eu-west-1\ntarget: { eks: { cluster: c, namespace: n } }\n",
    )
    .unwrap();
    tmp
}

#[test]
fn broken_overlays_exit_with_the_config_code() {
    for case in ["missing-base", "bad-patch-target", "yaml-error"] {
        let product = broken_product(case);
        let out = support::deployer(product.path())
            .current_dir(product.path())
            .args(["plan", "--env", "prod", "-q"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{case}");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let tmp = product.path().canonicalize().unwrap();
        let tmp_name = tmp.file_name().unwrap().to_string_lossy().into_owned();
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(&regex_escape(&tmp.display().to_string()), "[PRODUCT]");
        settings.add_filter(&regex_escape(&tmp_name), "[PRODUCT]");
        settings.bind(|| insta::assert_snapshot!(format!("broken-overlay-{case}"), stderr));
    }
}

fn regex_escape(s: &str) -> String {
    s.chars().fold(String::new(), |mut acc, c| {
        if "\\.+*?()|[]{}^$".contains(c) {
            acc.push('\\');
        }
        acc.push(c);
        acc
    })
}

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

#[tokio::test]
async fn shop_renders_equal_plain_kustomize_with_the_same_images() {
    let kz = kustomize();
    // The peer: the user's own overlay with `images:` added to it (what `kustomize edit set image`
    // would do), rendered by plain `kubectl kustomize` from a copy of the example.
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("shop");
    support::copy_tree(&support::root().join("examples/shop"), &copy);
    for env in ["dev", "prod"] {
        for svc in ["user", "order", "payment", "notification"] {
            let pin = ImagePin {
                name: format!("shop/{svc}"),
                new_name: format!("{REGISTRY}/shop/{svc}"),
                digest: Some(DIGEST_WEB.into()),
            };
            let overlay = support::root().join(format!("examples/shop/services/{svc}/k8s/overlays/{env}"));
            let labels = [MANAGED_BY, ("deployer.dev/environment", env), ("deployer.dev/service", svc)];
            let ours = kz.render(&overlay, std::slice::from_ref(&pin), &labels, svc, env).await.unwrap();

            let plain_overlay = copy.join(format!("services/{svc}/k8s/overlays/{env}"));
            let kfile = plain_overlay.join("kustomization.yaml");
            let mut text = std::fs::read_to_string(&kfile).unwrap();
            assert!(!text.contains("\nimages:"), "the example overlay already sets images");
            let _ = write!(
                text,
                "images:\n  - name: shop/{svc}\n    newName: {REGISTRY}/shop/{svc}\n    digest: {DIGEST_WEB}\n"
            );
            std::fs::write(&kfile, text).unwrap();
            let out = std::process::Command::new(support::kubectl())
                .arg("kustomize")
                .arg(&plain_overlay)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let plain = parse_objects(&String::from_utf8_lossy(&out.stdout)).unwrap();

            assert_eq!(ours.len(), plain.len(), "{svc}/{env}: object count");
            for (a, b) in ours.into_iter().zip(plain) {
                assert_eq!(strip_deployer_labels(a), b, "{svc}/{env}");
            }
        }
    }
}

fn shop_job(svc: &str, env: &str, service_label: &str) -> RenderJob {
    RenderJob {
        service: service_label.into(),
        overlay: support::root().join(format!("examples/shop/services/{svc}/k8s/overlays/{env}")),
        images: vec![ImagePin {
            name: format!("shop/{svc}"),
            new_name: format!("{REGISTRY}/shop/{svc}"),
            digest: Some(DIGEST_WEB.into()),
        }],
        labels: vec![
            (MANAGED_BY.0.into(), MANAGED_BY.1.into()),
            ("deployer.dev/environment".into(), env.into()),
            ("deployer.dev/service".into(), service_label.into()),
        ],
    }
}

/// What rendering each job on its own gives (the peer of the combined render).
async fn one_by_one(kz: &Kustomize, jobs: &[RenderJob], env: &str) -> Vec<Result<Vec<Value>, String>> {
    let mut out = Vec::new();
    for j in jobs {
        let labels: Vec<(&str, &str)> = j.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        out.push(kz.render(&j.overlay, &j.images, &labels, &j.service, env).await.map_err(|e| e.to_string()));
    }
    out
}

#[tokio::test]
async fn rendering_all_services_at_once_equals_rendering_each() {
    let kz = kustomize();
    for env in ["dev", "prod"] {
        // A label of its own, so no render of another test is reused: this one is about the
        // combined kustomize run.
        let jobs: Vec<RenderJob> = ["user", "order", "payment", "notification"]
            .iter()
            .map(|s| {
                let mut job = shop_job(s, env, s);
                job.labels.push(("deployer.dev/test".into(), "at-once".into()));
                job
            })
            .collect();
        let all: Vec<Result<Vec<Value>, String>> =
            kz.render_all(&jobs, env).await.into_iter().map(|r| r.map_err(|e| e.to_string())).collect();
        let each = one_by_one(&kz, &jobs, env).await;
        assert!(each.iter().all(Result::is_ok), "{each:?}");
        // Same objects, same order, same labels (the job label is gone).
        assert_eq!(all, each, "{env}");
    }
}

#[tokio::test]
async fn a_broken_overlay_among_many_is_reported_for_its_own_service_only() {
    let kz = kustomize();
    let base = support::root().join("tests/fixtures/kustomize-broken");
    for case in ["missing-base", "bad-patch-target", "yaml-error"] {
        let mut jobs = vec![shop_job("user", "prod", "user"), shop_job("order", "prod", "order")];
        jobs.insert(
            1,
            RenderJob {
                service: "web".into(),
                overlay: overlay_of(&base.join(case)),
                images: pins(),
                labels: vec![(MANAGED_BY.0.into(), MANAGED_BY.1.into())],
            },
        );
        let all: Vec<Result<Vec<Value>, String>> =
            kz.render_all(&jobs, "prod").await.into_iter().map(|r| r.map_err(|e| e.to_string())).collect();
        assert_eq!(all, one_by_one(&kz, &jobs, "prod").await, "{case}");
        assert!(all[0].is_ok() && all[2].is_ok(), "{case}: {all:?}");
        let err = all[1].as_ref().unwrap_err();
        assert!(err.starts_with("kustomize failed for service `web` in environment `prod`: "), "{err}");
    }
}

#[tokio::test]
async fn services_declaring_the_same_object_still_render_each_on_its_own() {
    // Kustomize refuses one build holding the same object twice; each service alone is fine.
    let kz = kustomize();
    let jobs = [shop_job("user", "dev", "user"), shop_job("user", "dev", "user-copy")];
    let all: Vec<Result<Vec<Value>, String>> =
        kz.render_all(&jobs, "dev").await.into_iter().map(|r| r.map_err(|e| e.to_string())).collect();
    assert!(all.iter().all(Result::is_ok), "{all:?}");
    assert_eq!(all, one_by_one(&kz, &jobs, "dev").await);
}

#[tokio::test]
async fn a_render_is_reused_only_while_the_files_it_read_are_unchanged() {
    let kz = kustomize();
    let tmp = tempfile::tempdir().unwrap();
    let shop = tmp.path().join("shop");
    support::copy_tree(&support::root().join("examples/shop"), &shop);
    let mut job = shop_job("user", "dev", "user");
    job.overlay = shop.join("services/user/k8s/overlays/dev");
    let render = |job: RenderJob| {
        let kz = kz.clone();
        async move { kz.render_all(std::slice::from_ref(&job), "dev").await.remove(0).unwrap() }
    };
    let find = |objs: &[Value], kind: &str| objs.iter().find(|o| o["kind"] == kind).cloned().unwrap();
    let first = render(job.clone()).await;
    assert_eq!(render(job.clone()).await, first);
    assert_eq!(find(&first, "ConfigMap")["data"]["LOG_LEVEL"], "debug");

    // The overlay's own file (same length, so only the modification time tells).
    let kfile = job.overlay.join("kustomization.yaml");
    let text = std::fs::read_to_string(&kfile).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&kfile, text.replace("LOG_LEVEL=debug", "LOG_LEVEL=trace")).unwrap();
    assert_eq!(find(&render(job.clone()).await, "ConfigMap")["data"]["LOG_LEVEL"], "trace");

    // A file of the base, two kustomizations away.
    let base = shop.join("services/user/k8s/base/deployment.yaml");
    let text = std::fs::read_to_string(&base).unwrap();
    std::fs::write(&base, text.replace("team-user", "team-other")).unwrap();
    let dep = find(&render(job.clone()).await, "Deployment");
    assert_eq!(dep["metadata"]["annotations"]["shop.example.com/owner"], "team-other");

    // Other pins are another render.
    job.images[0].digest = Some(DIGEST_WORKER.into());
    let dep = find(&render(job).await, "Deployment");
    assert!(images_of(&dep)[0].ends_with(DIGEST_WORKER), "{dep}");
}
