//! One scenario suite, written once, run against both platforms through the one engine: EKS on
//! the fake Kubernetes API server, ECS on moto with its ECS controller (and DynamoDB for the
//! lock). Each scenario asserts the same outcome, the same failure reason words, the same exit
//! code and the same final state on both.

use std::collections::BTreeMap;
use std::time::Duration;

use deployer::engine::{self, Ended, EngineError, Planned, Settings};
use deployer::events::{Event, HookStatus, Phase, Recorder};
use deployer::model::{Hook, HookStage, Reason};
use deployer::platform::{Platform, PlatformError};
use deployer::release::{Release, ReleaseStatus, ServiceRelease};

use crate::support::ecs_env::{self, EcsEnv, Options};
use crate::support::fake_k8s::FakeK8s;

/// A platform under test, with what a scenario needs to drive and inspect it.
enum Bed {
    Eks {
        _fake: Box<FakeK8s>,
        eks: Box<deployer::platform::eks::Eks>,
        client: kube::Client,
        /// CloudWatch for `health.alarms` (moto).
        moto: Box<crate::support::moto::Moto>,
    },
    Ecs {
        env: Box<EcsEnv>,
        ecs: Box<deployer::platform::ecs::EcsPlatform>,
    },
}

impl Bed {
    async fn eks() -> Self {
        let fake = FakeK8s::start(0.2);
        fake.namespace(crate::eks::NS).await;
        let client = fake.client().await;
        let eks = deployer::platform::eks::Eks::new(client.clone(), crate::eks::NS, "shop", "dev");
        Self::Eks {
            _fake: Box::new(fake),
            eks: Box::new(eks),
            client,
            moto: Box::new(crate::support::moto::Moto::start()),
        }
    }

    async fn ecs() -> Self {
        Box::pin(Self::ecs_with(Options::default())).await
    }

    /// ECS with `user` as a deployer-driven blue/green pair (the environment says
    /// `strategy: blue-green`; production on a named listener rule, a preview rule beside it).
    async fn ecs_blue_green() -> Self {
        Box::pin(Self::ecs_with(Options { colours: Some("user"), ..Options::default() })).await
    }

    async fn ecs_with(opts: Options) -> Self {
        let env = EcsEnv::start(opts).await;
        let ecs = deployer::platform::ecs::EcsPlatform::new(&env.sdk, &env.config, &env.env).unwrap();
        Self::Ecs { env: Box::new(env), ecs: Box::new(ecs) }
    }

    fn settings(&self) -> Settings {
        let mut s = match self {
            Self::Eks { .. } => crate::eks::request(BTreeMap::new()).settings,
            Self::Ecs { env, .. } => {
                deployer::pipeline::settings_for(&env.config, &env.env, Some(&env.sdk), Some("tester"))
            }
        };
        s.rollout_timeout = Duration::from_mins(2);
        s.bake = Duration::from_secs(1);
        s.lock_wait = Duration::from_mins(1);
        s
    }

    /// The shop at version `n`, `marker` (crashloop, imagepull, …) on the `user` service.
    async fn release(&self, n: u8, marker: Option<&str>) -> Planned {
        match self {
            Self::Eks { .. } => {
                let markers: Vec<(&str, &str)> = marker.map(|m| ("user", m)).into_iter().collect();
                let services = crate::eks::shop_release(&n.to_string(), &markers)
                    .await
                    .into_iter()
                    .map(|(s, (image, objs))| (s, ServiceRelease::new(image, objs, None)))
                    .collect();
                Planned { services, depends_on: BTreeMap::new() }
            }
            Self::Ecs { env, .. } => {
                let mut images = ecs_env::images(n);
                images.insert("user".into(), ecs_env::image("user", marker, n));
                let mut inputs = deployer::plan::Inputs {
                    images: images.clone(),
                    services: images.keys().cloned().collect(),
                    ..Default::default()
                };
                inputs.pinned = images
                    .keys()
                    .filter_map(|s| Some((s.clone(), deployer::plan::prebuilt_digest(&inputs, s)?)))
                    .collect();
                let mut p =
                    deployer::pipeline::planned(&env.config, &env.env, &inputs, &|_| None).await.unwrap();
                p.depends_on.clear();
                p
            }
        }
    }

    /// CloudWatch (moto) with the alarm `ALARM` created, in state OK.
    async fn alarm(&self) -> aws_sdk_cloudwatch::Client {
        let cw = match self {
            Self::Eks { moto, .. } => aws_sdk_cloudwatch::Client::new(&moto.sdk_config().await),
            Self::Ecs { env, .. } => env.cw.clone(),
        };
        ecs_env::create_alarm(&cw, ALARM).await;
        set_alarm(&cw, "OK").await;
        cw
    }

    async fn deploy(&self, settings: &Settings, planned: Planned) -> Result<Ended, EngineError> {
        let rec = Recorder::default();
        match self {
            Self::Eks { eks, .. } => engine::deploy(eks.as_ref(), settings, planned, &rec).await,
            Self::Ecs { ecs, .. } => engine::deploy(ecs.as_ref(), settings, planned, &rec).await,
        }
    }

    /// A deploy and the events it emitted.
    async fn deploy_recorded(
        &self,
        settings: &Settings,
        planned: Planned,
    ) -> (Result<Ended, EngineError>, Vec<Event>) {
        let rec = Recorder::default();
        let ended = match self {
            Self::Eks { eks, .. } => engine::deploy(eks.as_ref(), settings, planned, &rec).await,
            Self::Ecs { ecs, .. } => engine::deploy(ecs.as_ref(), settings, planned, &rec).await,
        };
        (ended, rec.events())
    }

    async fn rollback(&self, to: Option<&str>) -> Result<Ended, EngineError> {
        let rec = Recorder::default();
        let settings = self.settings();
        match self {
            Self::Eks { eks, .. } => engine::rollback(eks.as_ref(), &settings, to, &rec).await,
            Self::Ecs { ecs, .. } => engine::rollback(ecs.as_ref(), &settings, to, &rec).await,
        }
    }

    async fn history(&self) -> Vec<Release> {
        match self {
            Self::Eks { eks, .. } => eks.history().await.unwrap(),
            Self::Ecs { ecs, .. } => ecs.history().await.unwrap(),
        }
    }

    async fn hold_lock(&self, holder: &str) -> deployer::platform::Lock {
        match self {
            Self::Eks { eks, .. } => eks.lock(holder, Duration::from_secs(5)).await.unwrap(),
            Self::Ecs { ecs, .. } => ecs.lock(holder, Duration::from_secs(5)).await.unwrap(),
        }
    }

    /// Makes the recorded release `id` point `user` at a crash-looping version (say a secret
    /// it reads was deleted since): restoring it cannot become healthy. Written through the
    /// platform's own `record`, as deployer writes records.
    async fn break_record(&self, id: &str) {
        let mut rel = self.history().await.into_iter().find(|r| r.id == id).unwrap();
        let broken = self.release(7, Some("crashloop")).await.services.remove("user").unwrap();
        let user = rel.services.get_mut("user").unwrap();
        user.image.clone_from(&broken.image);
        match self {
            Self::Eks { eks, .. } => {
                user.manifests = broken.manifests;
                eks.record(&rel).await.unwrap();
            }
            Self::Ecs { env, ecs } => {
                let arn = env.register_plain("user", &broken.image).await;
                user.revision = Some(arn.rsplit('/').next().unwrap().to_owned());
                ecs.record(&rel).await.unwrap();
            }
        }
    }

    /// The image digest every service runs now (the platform's own answer, not the records'):
    /// for a blue-green service, the colour production traffic reaches.
    async fn running(&self) -> BTreeMap<String, String> {
        let digest = |image: &str| image.rsplit_once('@').map_or(image, |(_, d)| d).to_owned();
        match self {
            Self::Eks { client, .. } => {
                let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
                    kube::Api::namespaced(client.clone(), crate::eks::NS);
                let mut out = BTreeMap::new();
                for s in ecs_env::SERVICES {
                    let name = match live_colour_eks(client, s).await {
                        Some(colour) => format!("{s}-{colour}"),
                        None => (*s).to_owned(),
                    };
                    let d = api.get(&name).await.unwrap();
                    let image = d.spec.unwrap().template.spec.unwrap().containers[0].image.clone().unwrap();
                    out.insert(s.to_owned(), digest(&image));
                }
                out
            }
            Self::Ecs { env, .. } => {
                let mut out = BTreeMap::new();
                for s in ecs_env::SERVICES {
                    let name = match live_colour_ecs(env, s).await {
                        Some(colour) => format!("shop-{s}-{colour}"),
                        None => format!("shop-{s}"),
                    };
                    let td = env.service(&name).await.task_definition().unwrap().to_owned();
                    let d = env.ecs.describe_task_definition().task_definition(td).send().await.unwrap();
                    let image =
                        d.task_definition().unwrap().container_definitions()[0].image().unwrap().to_owned();
                    out.insert(s.to_owned(), digest(&image));
                }
                out
            }
        }
    }
}

/// The colour a blue-green Service's selector points at (None: not blue-green).
async fn live_colour_eks(client: &kube::Client, service: &str) -> Option<String> {
    let api: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::namespaced(client.clone(), crate::eks::NS);
    let svc = api.get_opt(service).await.unwrap()?;
    svc.spec?.selector?.get("deployer.dev/color").cloned()
}

/// The colour production traffic reaches for `service`'s pair (None: not a pair).
async fn live_colour_ecs(env: &EcsEnv, service: &str) -> Option<&'static str> {
    use deployer::platform::ecs::bluegreen;
    let c = env.colours.as_ref().filter(|c| c.service == service)?;
    let sw = bluegreen::TrafficSwitch { listener_arn: env.listener.clone(), rule_arn: c.production.clone() };
    let forward = bluegreen::serving(&env.elb, &sw).await.unwrap();
    Some(if bluegreen::live_group(&forward) == Some(c.blue.as_str()) { "blue" } else { "green" })
}

/// The digest every service of version `n` runs with (both beds pin `…@sha256:` of `n`).
async fn digests(bed: &Bed, n: u8) -> BTreeMap<String, String> {
    bed.release(n, None)
        .await
        .services
        .into_iter()
        .map(|(s, r)| (s, r.image.rsplit_once('@').map(|(_, d)| d.to_owned()).unwrap()))
        .collect()
}

fn exit(e: EngineError) -> u8 {
    deployer::Error::from(e).exit_code().code()
}

fn ended_exit(e: Ended) -> u8 {
    Result::<Release, deployer::Error>::from(e).err().map_or(0, |e| e.exit_code().code())
}

async fn healthy_deploy_is_recorded_and_runs(bed: Bed) {
    let ended = bed.deploy(&bed.settings(), bed.release(1, None).await).await.unwrap();
    let Ended::Succeeded(rel) = &ended else { panic!("{ended:?}") };
    assert_eq!(rel.id.rsplit_once('.').unwrap().1, "1");
    assert_eq!(ended_exit(ended), 0);
    assert_eq!(bed.running().await, digests(&bed, 1).await);
    let h = bed.history().await;
    assert_eq!(h.iter().map(|r| r.status).collect::<Vec<_>>(), [ReleaseStatus::Succeeded]);
}

/// Version 1 healthy, version 2 with `marker` on `user`: rolled back (exit 5) for `reason`,
/// every service on version 1 again, recorded `rolled-back` → release 1.
async fn a_failure_rolls_every_service_back(bed: Bed, marker: &str, reason: Reason) {
    assert!(matches!(
        bed.deploy(&bed.settings(), bed.release(1, None).await).await.unwrap(),
        Ended::Succeeded(_)
    ));
    let ended = bed.deploy(&bed.settings(), bed.release(2, Some(marker)).await).await.unwrap();
    let Ended::RolledBack { release, to, failure } = &ended else { panic!("{ended:?}") };
    assert_eq!(failure.service.as_deref(), Some("user"), "{failure}");
    assert_eq!(failure.reason, reason, "{failure}");
    assert_eq!(to, &bed.history().await[0].id);
    assert_eq!(release.status, ReleaseStatus::RolledBack);
    assert_eq!(ended_exit(ended.clone()), 5);
    assert_eq!(bed.running().await, digests(&bed, 1).await);
    let h = bed.history().await;
    assert_eq!(
        h.iter().map(|r| r.status).collect::<Vec<_>>(),
        [ReleaseStatus::Succeeded, ReleaseStatus::RolledBack]
    );
    assert_eq!(h[1].rolled_back_to.as_ref(), Some(&h[0].id));
}

async fn manual_rollback_goes_back_and_an_unknown_target_is_refused_before_the_lock(bed: Bed) {
    for n in [1, 2] {
        assert!(matches!(
            bed.deploy(&bed.settings(), bed.release(n, None).await).await.unwrap(),
            Ended::Succeeded(_)
        ));
    }
    // Another run holds the lock: a typo is still refused at once (exit 2), not made to wait.
    let held = bed.hold_lock("another-run").await;
    let err = bed.rollback(Some("dev.99")).await.unwrap_err();
    assert!(matches!(err, EngineError::UnknownRelease(..)), "{err:?}");
    assert_eq!(exit(err), 2);
    held.release().await;
    let ended = bed.rollback(None).await.unwrap();
    let Ended::Succeeded(rel) = &ended else { panic!("{ended:?}") };
    let h = bed.history().await;
    assert_eq!(rel.rolled_back_to.as_ref(), Some(&h[0].id), "back to release 1");
    assert_eq!(bed.running().await, digests(&bed, 1).await);
    assert_eq!(h.len(), 3);
}

async fn a_held_lock_exits_7_naming_the_holder(bed: Bed) {
    let held = bed.hold_lock("another-run").await;
    let mut settings = bed.settings();
    settings.lock_wait = Duration::from_secs(1);
    let err = bed.deploy(&settings, bed.release(1, None).await).await.unwrap_err();
    assert!(
        matches!(&err, EngineError::Platform(PlatformError::LockHeld { holder, .. }) if holder == "another-run"),
        "{err:?}"
    );
    assert_eq!(exit(err), 7);
    assert!(bed.history().await.is_empty(), "nothing recorded while the lock was held");
    held.release().await;
}

async fn two_deploys_started_together_never_interleave(bed: Bed) {
    let (a, b) = (bed.release(1, None).await, bed.release(2, None).await);
    let (mut sa, mut sb) = (bed.settings(), bed.settings());
    sa.holder = "run-a".into();
    sb.holder = "run-b".into();
    let (ra, rb) = tokio::join!(bed.deploy(&sa, a), bed.deploy(&sb, b));
    let (Ended::Succeeded(ra), Ended::Succeeded(rb)) = (ra.unwrap(), rb.unwrap()) else {
        panic!("both should run, one after the other")
    };
    // One ran after the other: distinct sequence numbers, and the later one runs.
    assert_ne!(ra.sequence, rb.sequence);
    let last = if ra.sequence > rb.sequence { 1 } else { 2 };
    assert_eq!(bed.running().await, digests(&bed, last).await);
    let h = bed.history().await;
    assert_eq!(h.iter().map(|r| r.status).collect::<Vec<_>>(), [ReleaseStatus::Succeeded; 2]);
}

const ALARM: &str = "shop-5xx";

async fn set_alarm(cw: &aws_sdk_cloudwatch::Client, state: &str) {
    cw.set_alarm_state()
        .alarm_name(ALARM)
        .state_value(aws_sdk_cloudwatch::types::StateValue::from(state))
        .state_reason(format!("5xx: {state}"))
        .send()
        .await
        .unwrap();
}

/// `health.alarms` gate the bake on both platforms: the alarm goes to ALARM once version 2
/// runs (i.e. during the bake): rolled back for "alarm", exit 5, version 1 everywhere.
async fn an_alarm_during_the_bake_rolls_back(bed: Bed) {
    let cw = bed.alarm().await;
    let mut settings = bed.settings();
    settings.gates.alarms = vec![ALARM.to_owned()];
    settings.gates.cloudwatch = Some(cw.clone());
    assert!(matches!(bed.deploy(&settings, bed.release(1, None).await).await.unwrap(), Ended::Succeeded(_)));
    settings.bake = Duration::from_mins(1);
    let v2 = digests(&bed, 2).await;
    let bed = std::sync::Arc::new(bed);
    let trigger = {
        let (bed, cw) = (bed.clone(), cw.clone());
        tokio::spawn(async move {
            while bed.running().await.get("user") != v2.get("user") {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            set_alarm(&cw, "ALARM").await;
        })
    };
    let ended = bed.deploy(&settings, bed.release(2, None).await).await.unwrap();
    trigger.await.unwrap();
    let Ended::RolledBack { failure, .. } = &ended else { panic!("{ended:?}") };
    assert_eq!(failure.reason, Reason::Alarm, "{failure}");
    assert!(failure.to_string().contains(ALARM), "{failure}");
    assert_eq!(ended_exit(ended.clone()), 5);
    assert_eq!(bed.running().await, digests(&bed, 1).await);
}

/// An HTTP check that keeps failing during the bake rolls back, after the same tolerance on
/// both platforms (two misses in a row are tolerated, the third fails).
async fn a_failing_http_check_during_the_bake_rolls_back(bed: Bed) {
    assert!(matches!(
        bed.deploy(&bed.settings(), bed.release(1, None).await).await.unwrap(),
        Ended::Succeeded(_)
    ));
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path("/healthz"))
        .respond_with(wiremock::ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let mut settings = bed.settings();
    settings.bake = Duration::from_mins(1);
    settings.gates.http_checks = vec![deployer::config::HttpCheck {
        url: format!("{}/healthz", server.uri()),
        expect_status: 200,
        timeout: None,
    }];
    let ended = bed.deploy(&settings, bed.release(2, None).await).await.unwrap();
    let Ended::RolledBack { failure, .. } = &ended else { panic!("{ended:?}") };
    assert_eq!(failure.reason, Reason::HttpCheck, "{failure}");
    assert!(failure.detail.contains("returned 503, expected 200 (3 times in a row)"), "{failure}");
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
    assert_eq!(bed.running().await, digests(&bed, 1).await);
}

/// Version 2's `user` never becomes ready: the rollout deadline ends it with the same reason
/// on both platforms ("deadline"), everything returns to version 1 (exit 5).
async fn never_ready_until_the_deadline_rolls_back(bed: Bed) {
    let mut settings = bed.settings();
    assert!(matches!(bed.deploy(&settings, bed.release(1, None).await).await.unwrap(), Ended::Succeeded(_)));
    settings.rollout_timeout = Duration::from_secs(8);
    let ended = bed.deploy(&settings, bed.release(2, Some("notready")).await).await.unwrap();
    let Ended::RolledBack { release, failure, .. } = &ended else { panic!("{ended:?}") };
    assert_eq!(failure.reason, Reason::Deadline, "{failure}");
    assert_eq!(failure.service.as_deref(), Some("user"), "{failure}");
    assert_eq!(release.status, ReleaseStatus::RolledBack);
    assert_eq!(ended_exit(ended.clone()), 5);
    assert_eq!(bed.running().await, digests(&bed, 1).await);
}

/// The release to return to no longer works: the rollback cannot become healthy, so the
/// release ends "rollback failed" (exit 6, manual action), recorded `failed`, on both.
async fn a_rollback_that_cannot_become_healthy_is_exit_6(bed: Bed) {
    let settings = bed.settings();
    let Ended::Succeeded(good) = bed.deploy(&settings, bed.release(1, None).await).await.unwrap() else {
        panic!("release 1 should succeed")
    };
    bed.break_record(&good.id).await;
    let ended = bed.deploy(&settings, bed.release(2, Some("imagepull")).await).await.unwrap();
    let Ended::RollbackFailed { release, failure, why } = &ended else { panic!("{ended:?}") };
    assert_eq!(failure.reason, Reason::ImagePull, "{failure}");
    assert!(why.contains("user"), "the rollback's failure names the service: {why}");
    assert_eq!(release.status, ReleaseStatus::Failed);
    assert_eq!(ended_exit(ended.clone()), 6);
    let h = bed.history().await;
    assert_eq!(
        h.iter().map(|r| r.status).collect::<Vec<_>>(),
        [ReleaseStatus::Succeeded, ReleaseStatus::Failed]
    );
}

/// Blue-green: the new colour runs healthy but a smoke check fails before the switch.
/// Production traffic never moves: the live colour still runs version 1, exit 5 "smoke check".
async fn a_failing_smoke_check_never_switches_traffic(bed: Bed) {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path("/smoke"))
        .respond_with(wiremock::ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let mut settings = bed.settings();
    settings.strategy =
        engine::Strategy::BlueGreen { scale_down_delay: Duration::ZERO, smoke_checks: Vec::new() };
    assert!(matches!(bed.deploy(&settings, bed.release(1, None).await).await.unwrap(), Ended::Succeeded(_)));
    let live_before = bed.running().await;
    assert_eq!(live_before, digests(&bed, 1).await);
    settings.strategy = engine::Strategy::BlueGreen {
        scale_down_delay: Duration::ZERO,
        smoke_checks: vec![deployer::config::HttpCheck {
            url: format!("{}/smoke", server.uri()),
            expect_status: 200,
            timeout: None,
        }],
    };
    let ended = bed.deploy(&settings, bed.release(2, None).await).await.unwrap();
    let Ended::RolledBack { failure, .. } = &ended else { panic!("{ended:?}") };
    assert_eq!(failure.reason, Reason::SmokeCheck, "{failure}");
    assert!(failure.detail.contains("500"), "{failure}");
    assert_eq!(ended_exit(ended.clone()), 5);
    assert!(!server.received_requests().await.unwrap().is_empty());
    assert_eq!(bed.running().await, live_before, "production still reaches version 1");
    let h = bed.history().await;
    assert_eq!(h.last().map(|r| r.status), Some(ReleaseStatus::RolledBack));
}

/// Blue-green with `user` in the first `depends_on` wave: the switch happens once every wave is
/// healthy, then an alarm goes to ALARM during the bake. Production goes back to the old
/// colour, which was kept at full size (never scaled down before the release finished).
async fn an_alarm_after_the_switch_sends_traffic_back(bed: Bed) {
    let cw = bed.alarm().await;
    let mut settings = bed.settings();
    settings.strategy =
        engine::Strategy::BlueGreen { scale_down_delay: Duration::ZERO, smoke_checks: Vec::new() };
    settings.gates.alarms = vec![ALARM.to_owned()];
    settings.gates.cloudwatch = Some(cw.clone());
    let early = |mut p: Planned| {
        p.depends_on = BTreeMap::from([("order".to_owned(), vec!["user".to_owned()])]);
        p
    };
    assert!(matches!(
        bed.deploy(&settings, early(bed.release(1, None).await)).await.unwrap(),
        Ended::Succeeded(_)
    ));
    let v1 = digests(&bed, 1).await;
    assert_eq!(bed.running().await, v1);
    settings.bake = Duration::from_mins(1);
    let v2 = digests(&bed, 2).await;
    let bed = std::sync::Arc::new(bed);
    let trigger = {
        let (bed, cw) = (bed.clone(), cw.clone());
        tokio::spawn(async move {
            // Production reaches version 2 only after the switch: the alarm fires in the bake.
            while bed.running().await.get("user") != v2.get("user") {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            set_alarm(&cw, "ALARM").await;
        })
    };
    let ended = bed.deploy(&settings, early(bed.release(2, None).await)).await.unwrap();
    trigger.await.unwrap();
    let Ended::RolledBack { failure, .. } = &ended else { panic!("{ended:?}") };
    assert_eq!(failure.reason, Reason::Alarm, "{failure}");
    assert_eq!(ended_exit(ended.clone()), 5);
    assert_eq!(bed.running().await, v1, "production is back on the old colour");
}

macro_rules! on_both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn eks() {
                ($body)(Bed::eks().await).await;
            }

            #[tokio::test]
            async fn ecs() {
                ($body)(Bed::ecs().await).await;
            }
        }
    };
}

on_both!(healthy_deploy, healthy_deploy_is_recorded_and_runs);
on_both!(crash_loop, |bed| a_failure_rolls_every_service_back(bed, "crashloop", Reason::CrashLoop));
on_both!(image_pull, |bed| a_failure_rolls_every_service_back(bed, "imagepull", Reason::ImagePull));
on_both!(manual_rollback, manual_rollback_goes_back_and_an_unknown_target_is_refused_before_the_lock);
on_both!(held_lock, a_held_lock_exits_7_naming_the_holder);
on_both!(concurrent_deploys, two_deploys_started_together_never_interleave);
on_both!(alarm_in_the_bake, an_alarm_during_the_bake_rolls_back);
on_both!(http_check_in_the_bake, a_failing_http_check_during_the_bake_rolls_back);
on_both!(never_ready, never_ready_until_the_deadline_rolls_back);
on_both!(failed_rollback, a_rollback_that_cannot_become_healthy_is_exit_6);

/// Blue-green runs on its own beds: EKS colours every service; on ECS `user` is a pair.
mod smoke_check_in_blue_green {
    use super::*;

    #[tokio::test]
    async fn eks() {
        a_failing_smoke_check_never_switches_traffic(Bed::eks().await).await;
    }

    #[tokio::test]
    async fn ecs() {
        a_failing_smoke_check_never_switches_traffic(Box::pin(Bed::ecs_blue_green()).await).await;
    }
}

mod alarm_after_the_blue_green_switch {
    use super::*;

    #[tokio::test]
    async fn eks() {
        an_alarm_after_the_switch_sends_traffic_back(Bed::eks().await).await;
    }

    #[tokio::test]
    async fn ecs() {
        an_alarm_after_the_switch_sends_traffic_back(Box::pin(Bed::ecs_blue_green()).await).await;
    }
}

// ---- release hooks (issue 19): one engine phase, a Job on EKS, a RunTask on ECS ----

fn hook(service: &str, name: &str, stage: HookStage, script: &str) -> Hook {
    Hook {
        service: service.into(),
        name: name.into(),
        stage,
        command: vec!["sh".into(), "-c".into(), script.into()],
        timeout: Duration::from_mins(2),
    }
}

fn with_hooks(bed: &Bed, hooks: Vec<Hook>) -> Settings {
    Settings { hooks, ..bed.settings() }
}

/// The hook events of a run, as `(service, hook, status)`.
fn hook_events(events: &[Event]) -> Vec<(String, String, HookStatus)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Hook { service, hook, status, .. } => Some((service.clone(), hook.clone(), *status)),
            _ => None,
        })
        .collect()
}

fn first_phase(events: &[Event], phase: Phase) -> Option<usize> {
    events.iter().position(|e| matches!(e, Event::PhaseStarted { phase: p } if *p == phase))
}

/// A migration runs once per release, before anything is applied, and a second release with a
/// new image runs it again (a new Job / task: nothing immutable is patched).
async fn a_migration_runs_before_the_rollout_of_every_release(bed: Bed) {
    let settings = with_hooks(
        &bed,
        vec![hook(
            "order",
            "migrate",
            HookStage::PreDeploy,
            "echo applying migrations; echo schema is current",
        )],
    );
    for n in [1, 2] {
        let (ended, events) = bed.deploy_recorded(&settings, bed.release(n, None).await).await;
        assert!(matches!(ended.unwrap(), Ended::Succeeded(_)), "release {n}");
        assert_eq!(
            hook_events(&events),
            [
                ("order".into(), "migrate".into(), HookStatus::Running),
                ("order".into(), "migrate".into(), HookStatus::Succeeded)
            ]
        );
        let hooks_done = events
            .iter()
            .position(|e| matches!(e, Event::Hook { status: HookStatus::Succeeded, .. }))
            .unwrap();
        assert!(
            hooks_done < first_phase(&events, Phase::Apply).unwrap(),
            "the migration ends before the apply"
        );
        assert_eq!(bed.running().await, digests(&bed, n).await);
    }
}

/// A failing migration stops the release before anything is applied: exit 8, the failure says
/// which hook and how it ended, with its log lines; every service still runs release 1.
async fn a_failing_migration_stops_the_release_with_nothing_applied(bed: Bed) {
    assert!(matches!(
        bed.deploy(&bed.settings(), bed.release(1, None).await).await.unwrap(),
        Ended::Succeeded(_)
    ));
    let settings = with_hooks(
        &bed,
        vec![hook(
            "order",
            "migrate",
            HookStage::PreDeploy,
            "echo applying 0042_add_index; echo 'ERROR: relation \"orders\" does not exist'; exit 3",
        )],
    );
    let (ended, events) = bed.deploy_recorded(&settings, bed.release(2, None).await).await;
    let ended = ended.unwrap();
    let Ended::HookFailed { release, failure } = &ended else { panic!("{ended:?}") };
    assert_eq!(failure.reason, Reason::HookFailed, "{failure}");
    assert_eq!(failure.service.as_deref(), Some("order"));
    assert!(failure.subject.starts_with("pre-deploy hook `migrate`"), "{failure}");
    assert!(failure.detail.contains("exit 3"), "{failure}");
    assert!(
        failure.logs.iter().any(|l| l.contains("relation \"orders\" does not exist")),
        "{:?}",
        failure.logs
    );
    assert_eq!(ended_exit(ended.clone()), 8);
    assert_eq!(first_phase(&events, Phase::Apply), None, "nothing was applied");
    assert_eq!(bed.running().await, digests(&bed, 1).await);
    let h = bed.history().await;
    assert_eq!(release.status, ReleaseStatus::RolledBack);
    assert_eq!(h[1].rolled_back_to.as_ref(), Some(&h[0].id), "the environment stayed on release 1");
    // The next rollback goes back from release 1, not to it: nothing of release 2 runs.
    assert!(matches!(bed.rollback(None).await, Err(EngineError::NothingToRollBackTo)));
}

/// A hook whose image cannot run fails at once, not at its timeout.
async fn a_hook_that_cannot_run_fails_fast(bed: Bed, marker: &str, reasons: &[Reason]) {
    let settings = with_hooks(&bed, vec![hook("user", "migrate", HookStage::PreDeploy, "echo never")]);
    let started = std::time::Instant::now();
    let ended = bed.deploy(&settings, bed.release(1, Some(marker)).await).await.unwrap();
    let Ended::HookFailed { failure, .. } = &ended else { panic!("{ended:?}") };
    assert!(reasons.contains(&failure.reason), "{failure}");
    assert!(started.elapsed() < Duration::from_mins(1), "failed after {:?}, not fast", started.elapsed());
    assert_eq!(ended_exit(ended.clone()), 8);
}

/// A failing post-deploy hook (tests against the new version) rolls the release back.
async fn a_failing_post_deploy_hook_rolls_back(bed: Bed) {
    assert!(matches!(
        bed.deploy(&bed.settings(), bed.release(1, None).await).await.unwrap(),
        Ended::Succeeded(_)
    ));
    let settings = with_hooks(
        &bed,
        vec![hook("user", "smoke", HookStage::PostDeploy, "echo 'GET /health: 500'; exit 1")],
    );
    let ended = bed.deploy(&settings, bed.release(2, None).await).await.unwrap();
    let Ended::RolledBack { failure, .. } = &ended else { panic!("{ended:?}") };
    assert_eq!(failure.reason, Reason::HookFailed, "{failure}");
    assert!(failure.subject.starts_with("post-deploy hook `smoke`"), "{failure}");
    assert_eq!(ended_exit(ended.clone()), 5);
    assert_eq!(bed.running().await, digests(&bed, 1).await);
}

on_both!(migration_hook, a_migration_runs_before_the_rollout_of_every_release);
on_both!(failing_migration_hook, a_failing_migration_stops_the_release_with_nothing_applied);
on_both!(crash_looping_hook, |bed| a_hook_that_cannot_run_fails_fast(
    bed,
    "crashloop",
    &[Reason::HookFailed, Reason::CrashLoop]
));
on_both!(image_pull_hook, |bed| a_hook_that_cannot_run_fails_fast(bed, "imagepull", &[Reason::ImagePull]));
on_both!(failing_post_deploy_hook, a_failing_post_deploy_hook_rolls_back);

// ---- ready_within (issue 16): a never-ready pod or task fails at its service's bound ----

/// A pod/task that runs but never becomes Ready fails once its service's `ready_within` has
/// passed — long before the rollout deadline — with the readiness probe's or health check's
/// words; a slow starter that is Ready within its bound is never failed.
async fn never_ready_fails_at_its_bound_and_a_slow_start_within_it_succeeds(bed: Bed) {
    let mut settings = bed.settings();
    settings.rollout_timeout = Duration::from_mins(2);
    assert!(matches!(bed.deploy(&settings, bed.release(1, None).await).await.unwrap(), Ended::Succeeded(_)));
    settings.ready_within = [("user".to_owned(), Duration::from_secs(3))].into_iter().collect();
    let started = std::time::Instant::now();
    let ended = bed.deploy(&settings, bed.release(2, Some("notready")).await).await.unwrap();
    let took = started.elapsed();
    let Ended::RolledBack { failure, .. } = &ended else { panic!("{ended:?}") };
    assert_eq!(failure.reason, Reason::Deadline, "{failure}");
    assert_eq!(failure.service.as_deref(), Some("user"), "{failure}");
    let text = failure.to_string();
    assert!(text.contains("ready_within: 3s"), "{text}");
    // The platform's own words for why it is not ready.
    assert!(
        text.contains("Readiness probe failed")
            || text.contains("UNHEALTHY")
            || text.contains("FailedHealthChecks"),
        "{text}"
    );
    assert!(took < Duration::from_mins(1), "failed after {took:?}: not at its 3 s bound");
    assert_eq!(bed.running().await, digests(&bed, 1).await);
    // Warm-up within the bound (slowstart is Ready after 4 s at the beds' time scale).
    settings.ready_within = [("user".to_owned(), Duration::from_secs(20))].into_iter().collect();
    let ended = bed.deploy(&settings, bed.release(3, Some("slowstart")).await).await.unwrap();
    assert!(matches!(ended, Ended::Succeeded(_)), "{ended:?}");
}

on_both!(ready_within, never_ready_fails_at_its_bound_and_a_slow_start_within_it_succeeds);
