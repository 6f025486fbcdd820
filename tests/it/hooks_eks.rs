//! Release hooks on EKS against the fake Kubernetes API server (its Job controller, the
//! run-to-completion kubelet, pods/log): `Platform::run_hook` / `stop_hook` of the `Eks`
//! platform with the shop's rendered `order` service.

use std::time::Duration;

use deployer::events::{Event, Recorder};
use deployer::model::{Hook, HookStage, Reason};
use deployer::platform::Platform;
use deployer::platform::eks::Eks;
use deployer::release::{Release, ServiceRelease};
use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::ListParams;
use tokio::time::Instant;

use crate::eks::{NS, shop_release};
use crate::support::fake_k8s::FakeK8s;

async fn setup() -> (FakeK8s, Eks, Recorder) {
    let fake = FakeK8s::start(0.2);
    fake.namespace(NS).await;
    let eks = Eks::new(fake.client().await, NS, "shop", "dev");
    (fake, eks, Recorder::default())
}

/// Release `dev.<sequence>` of the shop's `order` service at `version` (a marker in its image).
async fn release(sequence: u64, version: &str, marker: Option<&str>) -> Release {
    let markers: Vec<(&str, &str)> = marker.map(|m| ("order", m)).into_iter().collect();
    let services = shop_release(version, &markers).await;
    let (image, objects) = services["order"].clone();
    let mut r = Release::pending("shop", "dev", sequence);
    r.services.insert("order".into(), ServiceRelease::new(image, objects, None));
    r
}

fn hook(script: &str, timeout: Duration) -> Hook {
    Hook {
        service: "order".into(),
        name: "migrate".into(),
        stage: HookStage::PreDeploy,
        command: vec!["sh".into(), "-c".into(), script.into()],
        timeout,
    }
}

async fn job(fake: &FakeK8s, name: &str) -> Option<Job> {
    let api: Api<Job> = Api::namespaced(fake.client().await, NS);
    api.get_opt(name).await.unwrap()
}

async fn hook_jobs(fake: &FakeK8s) -> Vec<String> {
    let api: Api<Job> = Api::namespaced(fake.client().await, NS);
    let list = api.list(&ListParams::default().labels("deployer.dev/hook=migrate")).await.unwrap();
    let mut names: Vec<String> = list
        .items
        .into_iter()
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .filter_map(|j| j.metadata.name)
        .collect();
    names.sort();
    names
}

fn messages(rec: &Recorder) -> Vec<String> {
    rec.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Service { message, .. } => Some(message),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_hook_that_exits_0_completes_a_job_built_from_the_services_pod_template() {
    let (fake, eks, rec) = setup().await;
    let rel = release(1, "1", None).await;
    let h = hook("echo migrating; sleep 1; echo done", Duration::from_mins(1));
    let outcome = eks.run_hook(&rel, &h, &rec).await.unwrap();
    assert_eq!(outcome, None);
    let job = job(&fake, "order-migrate-1").await.expect("the hook's Job");
    let conditions = job.status.as_ref().unwrap().conditions.clone().unwrap();
    assert!(conditions.iter().any(|c| c.type_ == "Complete" && c.status == "True"), "{conditions:?}");
    let labels = job.metadata.labels.clone().unwrap();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "deployer");
    assert_eq!(labels["deployer.dev/hook"], "migrate");
    assert_eq!(labels["deployer.dev/release"], "dev.1");
    assert_eq!(labels["deployer.dev/service"], "order");
    let spec = job.spec.unwrap();
    assert_eq!((spec.backoff_limit, spec.active_deadline_seconds), (Some(0), Some(60)));
    assert!(spec.ttl_seconds_after_finished.is_some());
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.containers.len(), 1);
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some(rel.services["order"].image.as_str()));
    assert_eq!(c.command.clone().unwrap()[0], "sh");
    assert!(c.readiness_probe.is_none() && c.args.is_none());
    // The service's configuration stays (its generated ConfigMap, created for the hook).
    assert!(c.env_from.is_some());
    // The order Service selects app.kubernetes.io/name: the hook pod must not get its traffic.
    let pod_labels = spec.template.metadata.unwrap().labels.unwrap();
    assert!(!pod_labels.contains_key("app.kubernetes.io/name"), "{pod_labels:?}");
    let config = c.env_from.as_ref().unwrap()[0].config_map_ref.as_ref().unwrap().name.clone();
    let configmaps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(fake.client().await, NS);
    assert!(configmaps.get_opt(&config).await.unwrap().is_some(), "{config} created for the hook");
    let said = messages(&rec);
    assert!(said.iter().any(|m| m == "hook migrate: Job order-migrate-1 created"), "{said:?}");
    assert!(
        said.iter().any(|m| m.starts_with("hook migrate: Job order-migrate-1 completed in ")),
        "{said:?}"
    );
}

#[tokio::test]
async fn a_hook_that_exits_3_fails_with_its_exit_code_and_log_tail() {
    let (_fake, eks, rec) = setup().await;
    let rel = release(2, "1", None).await;
    let h = hook(
        "echo applying 0042_add_orders\necho 'error: relation \"orders\" already exists'\nexit 3",
        Duration::from_mins(1),
    );
    let failure = eks.run_hook(&rel, &h, &rec).await.unwrap().expect("a failure");
    assert_eq!(failure.reason, Reason::HookFailed);
    assert_eq!(failure.service.as_deref(), Some("order"));
    assert!(failure.detail.contains("exit 3"), "{failure:?}");
    assert!(failure.subject.starts_with("Job/order-migrate-2 pod order-migrate-2-"), "{failure:?}");
    assert_eq!(
        failure.logs,
        vec!["applying 0042_add_orders".to_owned(), "error: relation \"orders\" already exists".to_owned()]
    );
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_fails_well_before_the_timeout() {
    let (_fake, eks, rec) = setup().await;
    let rel = release(1, "1", Some("imagepull")).await;
    let start = Instant::now();
    let failure = eks.run_hook(&rel, &hook("echo never", Duration::from_mins(1)), &rec).await.unwrap();
    let failure = failure.expect("a failure");
    assert_eq!(failure.reason, Reason::ImagePull, "{failure:?}");
    assert!(start.elapsed() < Duration::from_secs(30), "{:?}", start.elapsed());
}

#[tokio::test]
async fn a_crashing_image_fails_the_hook() {
    let (_fake, eks, rec) = setup().await;
    let rel = release(1, "1", Some("crashloop")).await;
    let start = Instant::now();
    let failure = eks.run_hook(&rel, &hook("echo hi", Duration::from_mins(1)), &rec).await.unwrap();
    let failure = failure.expect("a failure");
    assert_eq!(failure.reason, Reason::HookFailed, "{failure:?}");
    assert!(failure.detail.contains("exit 1"), "{failure:?}");
    assert!(start.elapsed() < Duration::from_secs(30), "{:?}", start.elapsed());
}

#[tokio::test]
async fn a_hook_that_outlives_its_timeout_fails_with_the_deadline() {
    let (fake, eks, rec) = setup().await;
    let rel = release(1, "1", None).await;
    // activeDeadlineSeconds 5, which the fake's controller scales by 0.2.
    let failure = eks.run_hook(&rel, &hook("echo started; sleep 600", Duration::from_secs(5)), &rec).await;
    let failure = failure.unwrap().expect("a failure");
    assert_eq!(failure.reason, Reason::Deadline, "{failure:?}");
    assert!(failure.detail.contains("DeadlineExceeded"), "{failure:?}");
    let job = job(&fake, "order-migrate-1").await.unwrap();
    let failed = job.status.unwrap().conditions.unwrap();
    assert!(failed.iter().any(|c| c.type_ == "Failed" && c.reason.as_deref() == Some("DeadlineExceeded")));
}

#[tokio::test]
async fn every_release_runs_a_new_job_and_only_the_last_three_remain() {
    let (fake, eks, rec) = setup().await;
    let h = hook("echo ok", Duration::from_mins(1));
    for sequence in 1..=5 {
        // A new image every release: a patch of the earlier Job would be refused (immutable).
        let rel = release(sequence, &sequence.to_string(), None).await;
        assert_eq!(eks.run_hook(&rel, &h, &rec).await.unwrap(), None, "release {sequence}");
    }
    assert_eq!(hook_jobs(&fake).await, ["order-migrate-3", "order-migrate-4", "order-migrate-5"]);
    // The same release again (a re-run id) replaces its Job instead of failing on AlreadyExists.
    let rel = release(5, "5", None).await;
    assert_eq!(eks.run_hook(&rel, &h, &rec).await.unwrap(), None);
    assert_eq!(hook_jobs(&fake).await.len(), 3);
}

#[tokio::test]
async fn stop_deletes_the_running_hook_job() {
    let (fake, eks, rec) = setup().await;
    let rel = release(1, "1", None).await;
    let h = hook("sleep 600", Duration::from_mins(10));
    let start = Instant::now();
    let stopper = async {
        while job(&fake, "order-migrate-1").await.is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eks.stop_hook(&rel, &h).await.unwrap();
        // Stopping twice (or a Job already gone) is fine.
        eks.stop_hook(&rel, &h).await.unwrap();
    };
    let (outcome, ()) = tokio::join!(eks.run_hook(&rel, &h, &rec), stopper);
    let failure = outcome.unwrap().expect("a stopped hook is not a success");
    assert_eq!(failure.reason, Reason::HookFailed);
    assert!(start.elapsed() < Duration::from_mins(1));
    assert!(job(&fake, "order-migrate-1").await.is_none());
}

#[tokio::test]
async fn an_oom_killed_hook_fails_as_out_of_memory() {
    let (_fake, eks, rec) = setup().await;
    let rel = release(1, "1", Some("oomkill")).await;
    let failure = eks.run_hook(&rel, &hook("echo hi", Duration::from_mins(1)), &rec).await.unwrap();
    let failure = failure.expect("a failure");
    assert_eq!(failure.reason, Reason::OutOfMemory, "{failure:?}");
    assert!(failure.detail.contains("exit 137 (OOMKilled)"), "{failure:?}");
}

#[tokio::test]
async fn a_blue_green_release_runs_its_hook_with_the_colour_being_deployed() {
    let (fake, eks, rec) = setup().await;
    let mut rel = release(1, "1", None).await;
    eks.prepare(&mut rel, None, true, &rec).await.unwrap();
    let outcome = eks.run_hook(&rel, &hook("echo ok", Duration::from_mins(1)), &rec).await.unwrap();
    assert_eq!(outcome, None);
    let job = job(&fake, "order-migrate-1").await.unwrap();
    let labels = job.spec.unwrap().template.metadata.unwrap().labels.unwrap();
    // Neither the Service's selector nor the colour: no traffic, and no colour's pods.
    assert!(!labels.contains_key("deployer.dev/color"), "{labels:?}");
    assert!(!labels.contains_key("app.kubernetes.io/name"), "{labels:?}");
}
