//! EKS against the fake Kubernetes API server (real API semantics, controllers and the pod
//! behaviour contract): rolling deploys, fail-fast detection, automatic rollback to the last
//! known-good release, manual rollback, prune, and the deploy lock.

use std::collections::BTreeMap;
use std::time::Duration;

use deployer::engine::{self, Ended, EngineError, Planned, Settings, Strategy};
use deployer::events::{Event, Recorder};
use deployer::model::Reason;
use deployer::platform::eks::Eks;
use deployer::platform::{Platform, PlatformError};
use deployer::release::{Release, ReleaseStatus, ServiceRelease};
use deployer::render::ImagePin;
use deployer::render::kustomize::{Kustomize, MANAGED_BY};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::Value;

use crate::support;
use crate::support::fake_k8s::FakeK8s;

pub const NS: &str = "shop-dev";
const SERVICES: [&str; 4] = ["user", "order", "payment", "notification"];

fn digest(tag: &str) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(tag.as_bytes())))
}

/// Renders the shop's dev overlays with every service pinned to `version`; `markers` puts a
/// behaviour marker (crashloop, imagepull, …) into a service's image reference.
pub async fn shop_release(version: &str, markers: &[(&str, &str)]) -> BTreeMap<String, (String, Vec<Value>)> {
    let kz = Kustomize::locate(Some(&support::kubectl())).unwrap();
    let mut out = BTreeMap::new();
    for svc in SERVICES {
        let marker = markers.iter().find(|(s, _)| *s == svc).map(|(_, m)| *m);
        let repo = match marker {
            Some(m) => format!("registry.local/{m}/shop/{svc}"),
            None => format!("registry.local/shop/{svc}"),
        };
        let pin = ImagePin {
            name: format!("shop/{svc}"),
            new_name: repo,
            digest: Some(digest(&format!("{svc}-{version}"))),
        };
        let overlay = support::root().join(format!("examples/shop/services/{svc}/k8s/overlays/dev"));
        let objects =
            kz.render(&overlay, std::slice::from_ref(&pin), &[MANAGED_BY], svc, "dev").await.unwrap();
        out.insert(svc.to_owned(), (pin.reference(), objects));
    }
    out
}

/// A release as the engine takes it, with the settings of the run.
#[derive(Clone)]
pub struct DeployRequest {
    pub services: BTreeMap<String, (String, Vec<Value>)>,
    pub depends_on: BTreeMap<String, Vec<String>>,
    pub settings: Settings,
}

pub fn request(services: BTreeMap<String, (String, Vec<Value>)>) -> DeployRequest {
    DeployRequest {
        services,
        depends_on: BTreeMap::new(),
        settings: Settings {
            product: "shop".into(),
            environment: "dev".into(),
            holder: "test-run".into(),
            actor: Some("tester".into()),
            confirmation: None,
            git_sha: Some("0123456789abcdef".into()),
            lock_wait: Duration::from_secs(30),
            rollout_timeout: Duration::from_mins(1),
            bake: Duration::from_secs(1),
            strategy: Strategy::Rolling,
            gates: engine::gates::Gates::none(),
            force_conflicts: false,
            cancel: engine::cancel::Cancel::default(),
            hooks: Vec::new(),
            ready_within: std::collections::BTreeMap::new(),
        },
    }
}

async fn deploy(eks: &Eks, req: &DeployRequest, rec: &Recorder) -> Result<Ended, EngineError> {
    let planned = Planned {
        services: req
            .services
            .iter()
            .map(|(s, (image, objs))| (s.clone(), ServiceRelease::new(image.clone(), objs.clone(), None)))
            .collect(),
        depends_on: req.depends_on.clone(),
    };
    engine::deploy(eks, &req.settings, planned, rec).await
}

async fn rollback(eks: &Eks, to: Option<&str>, rec: &Recorder) -> Result<Release, EngineError> {
    match engine::rollback(eks, &request(BTreeMap::new()).settings, to, rec).await? {
        Ended::Succeeded(r) => Ok(r),
        other => panic!("{other:?}"),
    }
}

async fn live_images(client: &kube::Client) -> BTreeMap<String, String> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), NS);
    SERVICES
        .iter()
        .map(|svc| (*svc, api.clone()))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|(svc, api)| async move {
            let d = api.get(svc).await.unwrap();
            let image = d.spec.unwrap().template.spec.unwrap().containers[0].image.clone().unwrap();
            (svc.to_owned(), image)
        })
        .collect::<futures::stream::FuturesOrdered<_>>()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

use futures::StreamExt as _;

async fn setup() -> (FakeK8s, Eks, Recorder) {
    let fake = FakeK8s::start(0.2);
    fake.namespace(NS).await;
    let eks = Eks::new(fake.client().await, NS, "shop", "dev");
    (fake, eks, Recorder::default())
}

fn images_of(services: &BTreeMap<String, (String, Vec<Value>)>) -> BTreeMap<String, String> {
    services.iter().map(|(s, (img, _))| (s.clone(), img.clone())).collect()
}

#[tokio::test]
async fn healthy_rolling_deploy_of_the_shop() {
    let (fake, eks, rec) = setup().await;
    let v1 = shop_release("1", &[]).await;
    let outcome = deploy(&eks, &request(v1.clone()), &rec).await.unwrap();
    let Ended::Succeeded(release) = outcome else { panic!("{outcome:?}") };
    assert_eq!(release.id, "dev.1");
    assert_eq!(live_images(&fake.client().await).await, images_of(&v1));
    let history = Platform::history(&eks).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].status, ReleaseStatus::Succeeded);
    assert_eq!(history[0].services["user"].image, v1["user"].0);
    // The lock is released after the deploy.
    let leases: Api<Lease> = Api::namespaced(fake.client().await, NS);
    assert!(leases.get_opt("deployer-shop-dev").await.unwrap().is_none());
    assert!(
        rec.events()
            .iter()
            .any(|e| matches!(e, Event::Service { message, .. } if message == "Deployment/user: healthy"))
    );
}

/// Deploys v1 (healthy), then v2 with `markers`; returns the outcome and v1.
async fn fail_after_good(
    markers: &[(&str, &str)],
    timeout: Duration,
) -> (FakeK8s, Eks, Ended, BTreeMap<String, (String, Vec<Value>)>) {
    let (fake, eks, rec) = setup().await;
    let v1 = shop_release("1", &[]).await;
    assert!(matches!(deploy(&eks, &request(v1.clone()), &rec).await.unwrap(), Ended::Succeeded(_)));
    let mut req = request(shop_release("2", markers).await);
    req.settings.rollout_timeout = timeout;
    let outcome = deploy(&eks, &req, &rec).await.unwrap();
    (fake, eks, outcome, v1)
}

async fn assert_rolled_back_to_v1(
    fake: &FakeK8s,
    eks: &Eks,
    outcome: &Ended,
    v1: &BTreeMap<String, (String, Vec<Value>)>,
    reason: Reason,
) {
    let Ended::RolledBack { release, to, failure } = outcome else { panic!("{outcome:?}") };
    assert_eq!(to, "dev.1");
    assert_eq!(failure.service.as_deref(), Some("user"));
    assert_eq!(failure.reason, reason, "{failure}");
    assert_eq!(release.status, ReleaseStatus::RolledBack);
    // Every service of the release, not just the failing one, is back on v1.
    assert_eq!(live_images(&fake.client().await).await, images_of(v1));
    let history = Platform::history(eks).await.unwrap();
    let statuses: Vec<_> = history.iter().map(|r| (r.id.as_str(), r.status)).collect();
    assert_eq!(statuses, [("dev.1", ReleaseStatus::Succeeded), ("dev.2", ReleaseStatus::RolledBack)]);
    assert_eq!(history[1].rolled_back_to.as_deref(), Some("dev.1"));
}

#[tokio::test]
async fn crashloop_is_detected_and_every_service_returns_to_the_previous_release() {
    let (fake, eks, outcome, v1) = fail_after_good(&[("user", "crashloop")], Duration::from_mins(2)).await;
    assert_rolled_back_to_v1(&fake, &eks, &outcome, &v1, Reason::CrashLoop).await;
    let Ended::RolledBack { failure, .. } = &outcome else { unreachable!() };
    assert!(failure.subject.contains("container user"), "{failure}");
    assert!(failure.subject.contains("pod user-"), "{failure}");
    assert!(failure.restart_count.is_some_and(|n| n >= 1));
}

#[tokio::test]
async fn a_service_waits_for_its_dependency_and_is_never_applied_when_it_fails() {
    let (fake, eks, rec) = setup().await;
    let v1 = shop_release("1", &[]).await;
    assert!(matches!(deploy(&eks, &request(v1.clone()), &rec).await.unwrap(), Ended::Succeeded(_)));
    let deployments: Api<Deployment> = Api::namespaced(fake.client().await, NS);
    let generation = |d: Deployment| d.metadata.generation.unwrap();
    let order_before = generation(deployments.get("order").await.unwrap());

    // order depends on user; user crash-loops in the first wave.
    let mut req = request(shop_release("2", &[("user", "crashloop")]).await);
    req.depends_on.insert("order".into(), vec!["user".into()]);
    let rec2 = Recorder::default();
    let outcome = deploy(&eks, &req, &rec2).await.unwrap();
    assert_rolled_back_to_v1(&fake, &eks, &outcome, &v1, Reason::CrashLoop).await;
    // order never saw release 2: its spec was not touched at all (an apply and a rollback
    // would have moved its generation twice).
    assert_eq!(generation(deployments.get("order").await.unwrap()), order_before);
    let waves: Vec<String> = rec2
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::Service { message, .. } if message.starts_with("wave ") => Some(message.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(waves, ["wave 1/2: notification, payment, user"]);

    // Healthy: both waves roll out, in order.
    let rec3 = Recorder::default();
    let mut req = request(shop_release("3", &[]).await);
    req.depends_on.insert("order".into(), vec!["user".into()]);
    assert!(matches!(deploy(&eks, &req, &rec3).await.unwrap(), Ended::Succeeded(_)));
    let messages: Vec<String> = rec3
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::Service { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect();
    let at = |m: &str| messages.iter().position(|x| x == m).unwrap_or_else(|| panic!("{m}: {messages:#?}"));
    assert!(at("Deployment/user: healthy") < at("wave 2/2: order"), "{messages:#?}");
    assert!(at("wave 2/2: order") < at("Deployment/order: healthy"), "{messages:#?}");
    assert_eq!(generation(deployments.get("order").await.unwrap()), order_before + 1);
}

#[tokio::test]
async fn a_release_of_one_service_leaves_the_others_running() {
    let (fake, eks, rec) = setup().await;
    let v1 = shop_release("1", &[]).await;
    assert!(matches!(deploy(&eks, &request(v1.clone()), &rec).await.unwrap(), Ended::Succeeded(_)));
    // `deploy --service user`: only user is in the request.
    let mut v2 = shop_release("2", &[]).await;
    v2.retain(|s, _| s == "user");
    let outcome = deploy(&eks, &request(v2.clone()), &rec).await.unwrap();
    let Ended::Succeeded(release) = outcome else { panic!("{outcome:?}") };
    let mut expected = images_of(&v1);
    expected.insert("user".into(), v2["user"].0.clone());
    // Nothing pruned: every service still runs, the others on release 1.
    assert_eq!(live_images(&fake.client().await).await, expected);
    assert_eq!(
        release.services.iter().map(|(s, r)| (s.clone(), r.image.clone())).collect::<BTreeMap<_, _>>(),
        expected
    );
    // The next full release's rollback target is that whole picture.
    let outcome =
        deploy(&eks, &request(shop_release("3", &[("order", "crashloop")]).await), &rec).await.unwrap();
    assert!(matches!(&outcome, Ended::RolledBack { to, .. } if to == "dev.2"), "{outcome:?}");
    assert_eq!(live_images(&fake.client().await).await, expected);
}

#[tokio::test]
async fn image_pull_failure_rolls_back() {
    let (fake, eks, outcome, v1) = fail_after_good(&[("user", "imagepull")], Duration::from_mins(2)).await;
    assert_rolled_back_to_v1(&fake, &eks, &outcome, &v1, Reason::ImagePull).await;
}

#[tokio::test]
async fn never_ready_pods_time_out_and_roll_back() {
    let (fake, eks, outcome, v1) = fail_after_good(&[("user", "notready")], Duration::from_secs(8)).await;
    assert_rolled_back_to_v1(&fake, &eks, &outcome, &v1, Reason::Deadline).await;
}

/// Sets every Deployment's `progressDeadlineSeconds` (recording 12 used 20).
fn with_progress_deadline(
    mut services: BTreeMap<String, (String, Vec<Value>)>,
    seconds: u32,
) -> BTreeMap<String, (String, Vec<Value>)> {
    for (_, objects) in services.values_mut() {
        for o in objects.iter_mut().filter(|o| o["kind"] == "Deployment") {
            o["spec"]["progressDeadlineSeconds"] = seconds.into();
        }
    }
    services
}

#[tokio::test]
async fn a_progress_deadline_failure_rolls_back_through_the_stale_deadline_condition() {
    // Recording 12 on the fake: pods that never get ready, a 20 s (x 0.2) progress deadline,
    // then the rollback re-uses release 1's ReplicaSet and the controller's first status of the
    // new generation still says ProgressDeadlineExceeded (here held for 1 s, as a throttled
    // controller-manager does). The rollback succeeded: rolled back, not "rollback failed".
    let fake = FakeK8s::start_with(0.2, &["--stale-status-hold", "5"]);
    fake.namespace(NS).await;
    let eks = Eks::new(fake.client().await, NS, "shop", "dev");
    let rec = Recorder::default();
    let v1 = with_progress_deadline(shop_release("1", &[]).await, 20);
    assert!(matches!(deploy(&eks, &request(v1.clone()), &rec).await.unwrap(), Ended::Succeeded(_)));
    let v2 = with_progress_deadline(shop_release("2", &[("user", "notready")]).await, 20);
    let outcome = deploy(&eks, &request(v2), &rec).await.unwrap();
    assert_rolled_back_to_v1(&fake, &eks, &outcome, &v1, Reason::Deadline).await;
    let Ended::RolledBack { failure, .. } = &outcome else { unreachable!() };
    assert!(
        failure.detail.starts_with("ReplicaSet \"user-")
            && failure.detail.contains("\" has timed out progressing."),
        "{failure}"
    );
    // deployer saw the stale status during the rollback and waited for the next one.
    assert!(
        rec.events().iter().any(|e| matches!(e, Event::Service { message, .. }
            if message.starts_with("Deployment/user: ") && message.contains("an earlier rollout's ProgressDeadlineExceeded"))),
        "{:#?}",
        rec.events()
    );
    assert!(rec.events().iter().any(|e| matches!(e, Event::RollbackFinished { ok: true, .. })));
}

#[tokio::test]
async fn slow_starting_pods_succeed() {
    let (fake, eks, rec) = setup().await;
    let v1 = shop_release("1", &[("user", "slowstart")]).await;
    let outcome = deploy(&eks, &request(v1.clone()), &rec).await.unwrap();
    assert!(matches!(outcome, Ended::Succeeded(_)), "{outcome:?}");
    assert_eq!(live_images(&fake.client().await).await, images_of(&v1));
}

#[tokio::test]
async fn manual_rollback_to_an_older_release() {
    let (fake, eks, rec) = setup().await;
    let v1 = shop_release("1", &[]).await;
    let v2 = shop_release("2", &[]).await;
    deploy(&eks, &request(v1.clone()), &rec).await.unwrap();
    deploy(&eks, &request(v2.clone()), &rec).await.unwrap();
    assert_eq!(live_images(&fake.client().await).await, images_of(&v2));
    // Default target: the last known-good before the current one.
    let back = rollback(&eks, None, &rec).await.unwrap();
    assert_eq!(back.rolled_back_to.as_deref(), Some("dev.1"));
    assert_eq!(live_images(&fake.client().await).await, images_of(&v1));
    // The release rolled back from is no longer known-good: neither the default target (nothing
    // older than dev.1) nor a `--to` target; a rollback never goes forward.
    assert!(matches!(rollback(&eks, None, &rec).await, Err(EngineError::NothingToRollBackTo)));
    assert!(matches!(
        rollback(&eks, Some("dev.2"), &rec).await,
        Err(EngineError::UnsafeTarget(_, "rolled-back", _))
    ));
    assert_eq!(live_images(&fake.client().await).await, images_of(&v1));
    assert!(matches!(rollback(&eks, Some("dev.99"), &rec).await, Err(EngineError::UnknownRelease(..))));
}

#[tokio::test]
async fn prune_removes_what_left_the_overlay_and_nothing_else() {
    let (fake, eks, rec) = setup().await;
    let v1 = shop_release("1", &[]).await;
    deploy(&eks, &request(v1), &rec).await.unwrap();
    let mut v2 = shop_release("2", &[]).await;
    // payment's ServiceAccount leaves the overlay (and its Deployment stops using it).
    let payment = &mut v2.get_mut("payment").unwrap().1;
    payment.retain(|o| o["kind"] != "ServiceAccount");
    for o in payment.iter_mut().filter(|o| o["kind"] == "Deployment") {
        o["spec"]["template"]["spec"].as_object_mut().unwrap().remove("serviceAccountName");
    }
    assert!(matches!(deploy(&eks, &request(v2), &rec).await.unwrap(), Ended::Succeeded(_)));
    let client = fake.client().await;
    let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), NS);
    assert!(sa.get_opt("payment").await.unwrap().is_none(), "the removed ServiceAccount was not pruned");
    let svc: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), NS);
    for s in SERVICES {
        assert!(svc.get_opt(s).await.unwrap().is_some(), "Service {s} was pruned");
    }
    assert!(rec.events().iter().any(|e| matches!(e, Event::Service { message, .. } if message == "pruned ServiceAccount/payment (shop-dev)")));
}

#[tokio::test]
async fn a_live_lock_is_respected_and_a_stale_one_taken_over() {
    let (fake, eks, rec) = setup().await;
    let leases: Api<Lease> = Api::namespaced(fake.client().await, NS);
    let now = k8s_openapi::jiff::Timestamp::now();
    let lease = |holder: &str, renewed: k8s_openapi::jiff::Timestamp| -> Lease {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "deployer-shop-dev"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                     "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(renewed)}
        }))
        .unwrap()
    };
    leases.create(&kube::api::PostParams::default(), &lease("other-run", now)).await.unwrap();
    let mut req = request(shop_release("1", &[]).await);
    req.settings.lock_wait = Duration::from_secs(1);
    assert!(
        matches!(deploy(&eks, &req, &rec).await, Err(EngineError::Platform(PlatformError::LockHeld { holder, .. })) if holder == "other-run")
    );

    leases.delete("deployer-shop-dev", &kube::api::DeleteParams::default()).await.unwrap();
    let stale = now.checked_sub(k8s_openapi::jiff::SignedDuration::from_mins(2)).unwrap();
    leases.create(&kube::api::PostParams::default(), &lease("dead-run", stale)).await.unwrap();
    let outcome = deploy(&eks, &req, &rec).await.unwrap();
    assert!(matches!(outcome, Ended::Succeeded(_)));
    assert!(rec.events().iter().any(|e| matches!(e, Event::Warning { message } if message.contains("took over the deploy lock from `dead-run`"))));
}

#[tokio::test]
async fn a_run_killed_mid_deploy_is_taken_over_and_the_next_run_converges() {
    let (fake, eks, rec) = setup().await;
    deploy(&eks, &request(shop_release("1", &[]).await), &rec).await.unwrap();
    // A second run stops mid-watch (its task is dropped: no unlock, no final record).
    let slow = request(shop_release("2", &[("user", "slowstart")]).await);
    let killed = tokio::time::timeout(Duration::from_secs(2), deploy(&eks, &slow, &rec)).await;
    assert!(killed.is_err(), "the deploy should still have been running");
    let leases: Api<Lease> = Api::namespaced(fake.client().await, NS);
    assert!(leases.get_opt("deployer-shop-dev").await.unwrap().is_some(), "the killed run left its lease");
    // The next run waits for the lease to go stale, takes it over, and converges.
    let mut next = request(shop_release("3", &[]).await);
    next.settings.holder = "next-run".into();
    let outcome = deploy(&eks, &next, &rec).await.unwrap();
    let Ended::Succeeded(release) = outcome else { panic!("{outcome:?}") };
    assert_eq!(release.id, "dev.3");
    assert_eq!(live_images(&fake.client().await).await, images_of(&next.services));
    let statuses: Vec<_> = Platform::history(&eks).await.unwrap().iter().map(|r| r.status).collect();
    // The next run found the killed run's record still pending and said what it is.
    assert_eq!(statuses, [ReleaseStatus::Succeeded, ReleaseStatus::Interrupted, ReleaseStatus::Succeeded]);
}

async fn service_colors(client: &kube::Client) -> Vec<String> {
    let api: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), NS);
    let mut out = Vec::new();
    for s in SERVICES {
        let svc = api.get(s).await.unwrap();
        out.push(svc.spec.unwrap().selector.unwrap().get("deployer.dev/color").cloned().unwrap_or_default());
    }
    out
}

fn blue_green(services: BTreeMap<String, (String, Vec<Value>)>, checks: &[&str]) -> DeployRequest {
    let mut r = request(services);
    r.settings.strategy = Strategy::BlueGreen { scale_down_delay: Duration::ZERO, smoke_checks: Vec::new() };
    // Long enough for the HTTP checks' tolerance (two misses in a row pass, the third fails).
    r.settings.bake = Duration::from_secs(5);
    r.settings.gates.http_checks = checks
        .iter()
        .map(|u| deployer::config::HttpCheck { url: (*u).to_owned(), expect_status: 200, timeout: None })
        .collect();
    r
}

#[tokio::test]
async fn blue_green_switch_and_instant_switch_back() {
    let (fake, eks, rec) = setup().await;
    let client = fake.client().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    // A health endpoint the bake checks; it starts healthy.
    let health = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path("/healthz"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .up_to_n_times(1000)
        .mount(&health)
        .await;
    let url = format!("{}/healthz", health.uri());

    // v1 → blue.
    let v1 = shop_release("1", &[]).await;
    assert!(matches!(deploy(&eks, &blue_green(v1, &[&url]), &rec).await.unwrap(), Ended::Succeeded(_)));
    assert_eq!(service_colors(&client).await, ["blue"; 4]);
    assert!(deployments.get_opt("user-blue").await.unwrap().is_some());
    // v2 → green; after the (zero) scale-down delay the blue colour is scaled to 0 and kept.
    let v2 = shop_release("2", &[]).await;
    assert!(matches!(
        deploy(&eks, &blue_green(v2.clone(), &[&url]), &rec).await.unwrap(),
        Ended::Succeeded(_)
    ));
    assert_eq!(service_colors(&client).await, ["green"; 4]);
    let blue = deployments.get("user-blue").await.expect("the previous colour is kept as an object");
    assert_eq!(blue.spec.and_then(|s| s.replicas), Some(0), "the previous colour is scaled to 0");
    assert!(rec.events().iter().any(|e| matches!(e, Event::Service { message, .. } if message == "blue-green: Deployment/user-blue scaled to 0 (kept for the next release)")));
    let green_uid = deployments.get("user-green").await.unwrap().metadata.uid;

    // v3 crash-loops: it never receives traffic (the switch happens only after the idle colour is healthy).
    let v3 = shop_release("3", &[("user", "crashloop")]).await;
    let outcome = deploy(&eks, &blue_green(v3, &[&url]), &rec).await.unwrap();
    assert!(matches!(&outcome, Ended::RolledBack { to, .. } if to == "dev.2"), "{outcome:?}");
    assert_eq!(service_colors(&client).await, ["green"; 4]);
    assert!(deployments.get_opt("user-blue").await.unwrap().is_none());

    // v4 is healthy but the bake check fails after the switch: traffic goes back to green, whose
    // pods were never touched (same Deployment object), in the time of a selector change.
    health.reset().await;
    wiremock::Mock::given(wiremock::matchers::path("/healthz"))
        .respond_with(wiremock::ResponseTemplate::new(503))
        .mount(&health)
        .await;
    let v4 = shop_release("4", &[]).await;
    let outcome = deploy(&eks, &blue_green(v4, &[&url]), &rec).await.unwrap();
    let Ended::RolledBack { to, failure, .. } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(to, "dev.2");
    assert_eq!(failure.reason, Reason::HttpCheck);
    assert!(failure.detail.contains("returned 503, expected 200"), "{failure}");
    assert!(rec.events().iter().any(|e| matches!(e, Event::Service { message, .. } if message == "blue-green: switched traffic to blue (from green)")));
    assert_eq!(service_colors(&client).await, ["green"; 4]);
    assert_eq!(deployments.get("user-green").await.unwrap().metadata.uid, green_uid);
    assert_eq!(live_images_of(&client, "green").await, images_of(&v2));
}

async fn live_images_of(client: &kube::Client, color: &str) -> BTreeMap<String, String> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let mut out = BTreeMap::new();
    for svc in SERVICES {
        let d = api.get(&format!("{svc}-{color}")).await.unwrap();
        out.insert(
            svc.to_owned(),
            d.spec.unwrap().template.spec.unwrap().containers[0].image.clone().unwrap(),
        );
    }
    out
}
