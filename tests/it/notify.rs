//! Reporting as GitHub and Slack see it: the exact requests the notifiers send to local fake
//! GitHub and Slack servers (wiremock) for a successful deploy, a failed deploy that rolled back,
//! and a notifier outage; plus snapshots of what people read (PR comment, job summary, Slack).
//!
//! The deploy executor is built elsewhere: these tests drive the notifiers with the event
//! sequence the pipeline emits (see docs/events.md).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use deployer::config::Config;
use deployer::events::{
    Event, Finding, HealthFailure, IgnoredFinding, Outcome, Phase, PhaseTiming, Recorder, ScanSummary, Sink,
    Verdict,
};
use deployer::report::markdown::{self, Links};
use deployer::report::notify::{self, Setup, slack};
use deployer::report::state::RunState;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support;

const SHA: &str = "9f2c4e1a7b3d5f60812a4c6e8b0d2f4a6c8e0b1d";
const WEB: &str = "sha256:3b1f0c9e8d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c";
const WORKER: &str = "sha256:a7c3e9f1b5d2c8e4a6f0b2d4c6e8a0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4";
const WORKER_OLD: &str = "sha256:5e8d2b7a1c9f3e6d0b4a8c2e7f1d5b9a3c6e0f4d8b2a7c1e5f9d3b6a0c4e8f2d";
const ECR: &str = "333333333333.dkr.ecr.eu-west-1.amazonaws.com/shop";

fn phase(events: &mut Vec<Event>, p: Phase, elapsed_ms: u64, ok: bool, inner: Vec<Event>) {
    events.push(Event::PhaseStarted { phase: p });
    events.extend(inner);
    events.push(Event::PhaseFinished { phase: p, ok, elapsed_ms });
}

fn scan(service: &str, digest: &str, high: u32, ignored: Vec<IgnoredFinding>) -> Event {
    Event::ScanSummary(Box::new(ScanSummary {
        service: service.into(),
        digest: digest.into(),
        counts: BTreeMap::from([("HIGH".into(), high), ("MEDIUM".into(), 3), ("LOW".into(), 7)]),
        passed: true,
        blocking: vec![],
        ignored,
        expired_ignores: vec![],
        note: None,
    }))
}

/// The first half of every deploy: config → plan → build/push → scan → render.
fn until_apply() -> Vec<Event> {
    let mut e = vec![Event::Started {
        command: "deploy".into(),
        product: Some("shop".into()),
        environment: Some("prod".into()),
    }];
    phase(&mut e, Phase::Config, 40, true, vec![]);
    phase(&mut e, Phase::Observe, 1_200, true, vec![]);
    phase(&mut e, Phase::Plan, 15, true, vec![]);
    e.push(Event::ReleaseStarted {
        release_id: "shop-prod-20261123-0712-9f2c4e1".into(),
        product: "shop".into(),
        environment: "prod".into(),
        git_sha: SHA.into(),
        services: vec!["web".into(), "worker".into()],
        strategy: Some("blue-green".into()),
    });
    phase(&mut e, Phase::Build, 48_300, true, vec![]);
    phase(
        &mut e,
        Phase::Push,
        6_100,
        true,
        vec![
            Event::ImagePushed {
                service: "web".into(),
                repository: format!("{ECR}/web"),
                digest: WEB.into(),
            },
            Event::ImagePushed {
                service: "worker".into(),
                repository: format!("{ECR}/worker"),
                digest: WORKER.into(),
            },
        ],
    );
    phase(
        &mut e,
        Phase::Scan,
        21_700,
        true,
        vec![
            scan("web", WEB, 0, vec![]),
            scan(
                "worker",
                WORKER,
                1,
                vec![IgnoredFinding {
                    id: "CVE-2026-1234".into(),
                    reason: "not reachable: the worker never parses untrusted XML".into(),
                    expires: "2026-12-31".into(),
                }],
            ),
        ],
    );
    phase(&mut e, Phase::Render, 900, true, vec![]);
    phase(&mut e, Phase::Lock, 300, true, vec![]);
    e
}

fn progress(service: &str, ready: u32) -> Event {
    Event::ServiceProgress {
        service: service.into(),
        phase: Phase::Apply,
        ready: Some(ready),
        desired: Some(3),
        message: format!("{ready}/3 replicas of the green ReplicaSet ready"),
    }
}

fn success_events() -> Vec<Event> {
    let mut e = until_apply();
    phase(
        &mut e,
        Phase::Apply,
        62_000,
        true,
        vec![progress("web", 1), progress("web", 3), progress("worker", 3)],
    );
    phase(
        &mut e,
        Phase::Health,
        45_000,
        true,
        vec![
            Event::HealthVerdict { service: "web".into(), verdict: Verdict::Healthy },
            Event::HealthVerdict { service: "worker".into(), verdict: Verdict::Healthy },
        ],
    );
    phase(&mut e, Phase::Bake, 300_000, true, vec![]);
    phase(&mut e, Phase::Record, 400, true, vec![]);
    e.push(Event::ReleaseFinished {
        release_id: "shop-prod-20261123-0712-9f2c4e1".into(),
        outcome: Outcome::Succeeded,
        environment_url: Some("https://shop.example.com".into()),
        timings: vec![],
    });
    e.push(Event::Finished { result: "success", exit_code: 0, problems: vec![] });
    e
}

fn failure_events() -> Vec<Event> {
    let mut e = until_apply();
    phase(&mut e, Phase::Apply, 58_000, true, vec![progress("web", 3), progress("worker", 0)]);
    phase(
        &mut e,
        Phase::Health,
        180_000,
        false,
        vec![
            Event::HealthVerdict { service: "web".into(), verdict: Verdict::Healthy },
            Event::HealthVerdict {
                service: "worker".into(),
                verdict: Verdict::Failed(Box::new(HealthFailure {
                    workload: "Deployment/worker-green".into(),
                    pod: Some("worker-green-7d9f8c6b5-x2kqp".into()),
                    container: Some("worker".into()),
                    reason: "CrashLoopBackOff".into(),
                    restart_count: Some(5),
                    message: Some("exit code 1: panicked at src/main.rs:42:10: QUEUE_URL is not set".into()),
                    logs: Vec::new(),
                })),
            },
        ],
    );
    let restored =
        BTreeMap::from([("web".to_owned(), WEB.to_owned()), ("worker".to_owned(), WORKER_OLD.to_owned())]);
    phase(
        &mut e,
        Phase::Rollback,
        21_000,
        true,
        vec![
            Event::RollbackStarted {
                to_release: Some("shop-prod-20261120-1630-41d0e2a".into()),
                reason: "worker is unhealthy: CrashLoopBackOff".into(),
                digests: restored.clone(),
            },
            Event::RollbackFinished {
                to_release: Some("shop-prod-20261120-1630-41d0e2a".into()),
                ok: true,
                digests: restored,
                message: None,
            },
        ],
    );
    e.push(Event::ReleaseFinished {
        release_id: "shop-prod-20261123-0712-9f2c4e1".into(),
        outcome: Outcome::FailedRolledBack,
        environment_url: None,
        timings: vec![],
    });
    e.push(Event::Finished {
        result: "rolled-back",
        exit_code: 5,
        problems: deployer::Error::RolledBack {
            message:
                "worker was unhealthy (CrashLoopBackOff); rolled back to shop-prod-20261120-1630-41d0e2a"
                    .into(),
            hint: "see `kubectl logs deploy/worker-green -c worker --previous`; fix and deploy again".into(),
        }
        .problems(),
    });
    e
}

fn links() -> Links {
    Links {
        log_url: Some("https://github.com/acme/shop/actions/runs/4242".into()),
        commit_base: Some("https://github.com/acme/shop/commit/".into()),
    }
}

/// The CI environment a pull-request run of the shop's prod deploy sees.
fn ci_vars(dir: &Path, github: &str, slack: &str) -> BTreeMap<String, String> {
    let event = dir.join("event.json");
    std::fs::write(&event, r#"{"number": 7, "pull_request": {"number": 7, "head": {"sha": "9f2c4e1a"}}}"#)
        .unwrap();
    BTreeMap::from(
        [
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_API_URL", github),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "acme/shop"),
            ("GITHUB_RUN_ID", "4242"),
            ("GITHUB_EVENT_NAME", "pull_request"),
            ("GITHUB_EVENT_PATH", event.to_str().unwrap()),
            ("SLACK_BOT_TOKEN", "xoxb-test-token"),
            ("SLACK_API_URL", slack),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
}

/// The shop example's prod environment (approval-gated → a production deployment; Slack bot).
fn setup(vars: &BTreeMap<String, String>) -> Setup {
    let config = Config::load(&support::root().join("examples/shop/deployer.yaml")).unwrap();
    let env = config.environment("prod").unwrap();
    let var = |k: &str| vars.get(k).cloned();
    let mut s = Setup::from_env(&env, &var, Some("ghs_test_token"));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    s.options.backoff = Duration::from_millis(10);
    s
}

/// "Runs the deploy": emits every event into the sink the way the pipeline does, and reports
/// the deploy's own result. Notifiers must not be able to change it.
fn deploy(events: &[Event], sink: &dyn Sink) -> Result<(), String> {
    for e in events {
        sink.emit(e);
    }
    match events.last() {
        Some(Event::Finished { exit_code: 0, .. }) => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

fn warnings(rec: &Recorder) -> Vec<String> {
    rec.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Warning { message } => Some(message),
            _ => None,
        })
        .collect()
}

async fn github_server() -> MockServer {
    let gh = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/shop/deployments"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"id": 101, "environment": "production"})),
        )
        .mount(&gh)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/repos/acme/shop/deployments/\d+/statuses$"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .mount(&gh)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/shop/deployments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": 101}, {"id": 100}, {"id": 99}])))
        .mount(&gh)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/shop/deployments/100/statuses"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"state": "success"}])))
        .mount(&gh)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/shop/issues/7/comments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": 11, "body": "LGTM", "user": {"login": "octocat"}},
            {"id": 12, "body": "<!-- deployer:dev -->\n### ✅ shop deployed to dev", "user": {"login": "github-actions[bot]"}}
        ])))
        .mount(&gh)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/shop/issues/7/comments"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 555, "body": "…"})))
        .mount(&gh)
        .await;
    Mock::given(method("PATCH"))
        .and(path_regex(r"^/repos/acme/shop/issues/comments/\d+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 555})))
        .mount(&gh)
        .await;
    gh
}

async fn slack_server() -> MockServer {
    let sl = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat.postMessage"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": true, "channel": "C0SHOPPROD", "ts": "1763881920.000100"})),
        )
        .mount(&sl)
        .await;
    Mock::given(method("POST"))
        .and(path("/chat.update"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": true, "channel": "C0SHOPPROD", "ts": "1763881920.000100"})),
        )
        .mount(&sl)
        .await;
    sl
}

/// `METHOD /path?query key=value …` for the body fields that matter.
fn line(r: &Request, keys: &[&str]) -> String {
    let mut s = format!("{} {}", r.method, r.url.path());
    if let Some(q) = r.url.query() {
        s.push('?');
        s.push_str(q);
    }
    let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    for k in keys {
        if let Some(v) = body.pointer(k) {
            let _ = write!(s, " {k}={v}");
        }
    }
    s
}

fn assert_github_headers(r: &Request) {
    let h = |n: &str| r.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(h("accept"), "application/vnd.github+json", "{}", r.url);
    assert_eq!(h("x-github-api-version"), "2022-11-28");
    assert_eq!(h("authorization"), "Bearer ghs_test_token");
    assert!(h("user-agent").starts_with("deployer/"), "{}", h("user-agent"));
}

const DEPLOY_KEYS: &[&str] = &[
    "/ref",
    "/environment",
    "/auto_merge",
    "/required_contexts",
    "/production_environment",
    "/transient_environment",
    "/payload/release_id",
    "/state",
    "/environment_url",
    "/log_url",
];

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap()
}

fn deployment_lines(reqs: &[Request]) -> Vec<String> {
    reqs.iter().filter(|r| r.url.path().contains("/deployments")).map(|r| line(r, DEPLOY_KEYS)).collect()
}

fn comment_requests(reqs: &[Request]) -> Vec<&Request> {
    reqs.iter().filter(|r| r.url.path().contains("/issues/")).collect()
}

/// A bot's message: posted once, then `chat.update`d with each of these texts.
fn slack_expected(texts: &[&str]) -> Vec<String> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let t = serde_json::to_string(t).unwrap();
            if i == 0 {
                format!(r#"POST /chat.postMessage /channel="C0SHOPPROD" /text={t}"#)
            } else {
                format!(r#"POST /chat.update /channel="C0SHOPPROD" /ts="1763881920.000100" /text={t}"#)
            }
        })
        .collect()
}

fn slack_lines(reqs: &[Request]) -> Vec<String> {
    reqs.iter().map(|r| line(r, &["/channel", "/ts", "/thread_ts", "/text"])).collect()
}

#[tokio::test]
async fn successful_deploy_reports_to_github_and_slack() {
    let (gh, sl) = (github_server().await, slack_server().await);
    let dir = tempfile::tempdir().unwrap();
    let vars = ci_vars(dir.path(), &gh.uri(), &sl.uri());
    let rec = Arc::new(Recorder::default());
    let notifiers = notify::spawn(setup(&vars), rec.clone());
    assert_eq!(notifiers.len(), 3, "deployment, comment and slack notifiers");

    let result = deploy(&success_events(), &notifiers.sink());
    assert_eq!(result, Ok(()));
    assert!(notifiers.flush(Duration::from_secs(30)).await, "{:?}", warnings(&rec));
    assert_eq!(warnings(&rec), Vec::<String>::new());

    let reqs = requests(&gh).await;
    for r in &reqs {
        assert_github_headers(r);
    }
    // prod runs in the GitHub environment `production` (approval.github_environment): the
    // Deployment is named after it, so GitHub shows one environment with one history.
    assert_eq!(
        deployment_lines(&reqs),
        [
            format!(
                r#"POST /repos/acme/shop/deployments /ref="{SHA}" /environment="production" /auto_merge=false /required_contexts=[] /production_environment=true /transient_environment=false /payload/release_id="shop-prod-20261123-0712-9f2c4e1""#
            ),
            r#"POST /repos/acme/shop/deployments/101/statuses /state="queued" /log_url="https://github.com/acme/shop/actions/runs/4242""#.into(),
            r#"POST /repos/acme/shop/deployments/101/statuses /state="in_progress" /log_url="https://github.com/acme/shop/actions/runs/4242""#.into(),
            r#"POST /repos/acme/shop/deployments/101/statuses /state="success" /environment_url="https://shop.example.com" /log_url="https://github.com/acme/shop/actions/runs/4242""#.into(),
            "GET /repos/acme/shop/deployments?environment=production&per_page=10".into(),
            "GET /repos/acme/shop/deployments/100/statuses?per_page=1".into(),
            r#"POST /repos/acme/shop/deployments/100/statuses /state="inactive""#.into(),
        ]
    );

    // The dev environment's sticky comment is someone else's: prod gets its own.
    let comments = comment_requests(&reqs);
    assert_eq!(
        comments.iter().map(|r| line(r, &[])).collect::<Vec<_>>(),
        [
            "GET /repos/acme/shop/issues/7/comments?per_page=100",
            "POST /repos/acme/shop/issues/7/comments",
            "PATCH /repos/acme/shop/issues/comments/555",
            "PATCH /repos/acme/shop/issues/comments/555",
        ]
    );
    let bodies: Vec<String> = comments[1..]
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["body"].as_str().unwrap().to_owned())
        .collect();
    assert!(bodies.iter().all(|b| b.starts_with("<!-- deployer:prod -->\n")));
    assert!(bodies[0].contains("⏳ shop: preparing the deploy to prod"), "{}", bodies[0]);
    assert!(bodies[1].contains("🚀 shop: deploying to prod (apply)"), "{}", bodies[1]);
    assert!(bodies[2].contains("✅ shop deployed to prod"), "{}", bodies[2]);

    let sreqs = requests(&sl).await;
    for r in &sreqs {
        assert_eq!(r.headers.get("authorization").unwrap(), "Bearer xoxb-test-token");
        assert_eq!(r.headers.get("content-type").unwrap(), "application/json; charset=utf-8");
    }
    // One message, edited in place at every phase.
    assert_eq!(
        slack_lines(&sreqs),
        slack_expected(&[
            "⏳ shop: preparing the deploy to prod",
            "⏳ shop: preparing the deploy to prod (build)",
            "⏳ shop: preparing the deploy to prod (push)",
            "⏳ shop: preparing the deploy to prod (scan gate)",
            "⏳ shop: preparing the deploy to prod (render)",
            "⏳ shop: preparing the deploy to prod (lock)",
            "🚀 shop: deploying to prod (apply)",
            "🚀 shop: deploying to prod (health)",
            "🚀 shop: deploying to prod (bake)",
            "🚀 shop: deploying to prod (record)",
            "✅ shop deployed to prod",
        ])
    );
}

#[tokio::test]
async fn failed_deploy_with_rollback_reports_failure_and_details() {
    let (gh, sl) = (github_server().await, slack_server().await);
    let dir = tempfile::tempdir().unwrap();
    let vars = ci_vars(dir.path(), &gh.uri(), &sl.uri());
    let rec = Arc::new(Recorder::default());
    let notifiers = notify::spawn(setup(&vars), rec.clone());

    assert!(deploy(&failure_events(), &notifiers.sink()).is_err());
    assert!(notifiers.flush(Duration::from_secs(30)).await);
    assert_eq!(warnings(&rec), Vec::<String>::new());

    let reqs = requests(&gh).await;
    let states: Vec<String> = deployment_lines(&reqs)
        .iter()
        .skip(1)
        .map(|l| l.split(' ').nth(2).unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        states,
        [r#"/state="queued""#, r#"/state="in_progress""#, r#"/state="failure""#],
        "no inactive: prod still runs the previous one"
    );
    let comments = comment_requests(&reqs);
    assert_eq!(
        comments.iter().map(|r| r.method.to_string()).collect::<Vec<_>>(),
        ["GET", "POST", "PATCH", "PATCH", "PATCH", "PATCH"],
        "created; then in progress, rolling back, rolled back, and the final errors"
    );
    let last: Value = serde_json::from_slice(&comments[5].body).unwrap();
    let last = last["body"].as_str().unwrap();
    assert!(
        last.contains("CrashLoopBackOff") && last.contains("Rolled back") && last.contains("hint:"),
        "{last}"
    );

    let sreqs = requests(&sl).await;
    let mut expected = slack_expected(&[
        "⏳ shop: preparing the deploy to prod",
        "⏳ shop: preparing the deploy to prod (build)",
        "⏳ shop: preparing the deploy to prod (push)",
        "⏳ shop: preparing the deploy to prod (scan gate)",
        "⏳ shop: preparing the deploy to prod (render)",
        "⏳ shop: preparing the deploy to prod (lock)",
        "🚀 shop: deploying to prod (apply)",
        "🚀 shop: deploying to prod (health)",
        "↩️ shop: rolling prod back",
        "↩️ shop: deploy to prod failed and was rolled back to shop-prod-20261120-1630-41d0e2a",
    ]);
    expected.push(
        r#"POST /chat.postMessage /channel="C0SHOPPROD" /thread_ts="1763881920.000100" /text="Details: ↩️ shop: deploy to prod failed and was rolled back to shop-prod-20261120-1630-41d0e2a""#
            .to_owned(),
    );
    assert_eq!(slack_lines(&sreqs), expected, "edited in place, then the details in the thread");
}

#[tokio::test]
async fn notifier_outage_does_not_fail_or_hold_the_deploy() {
    // GitHub answers 500 to everything; Slack accepts the connection and never answers in time.
    let gh = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"message": "Server Error"})))
        .mount(&gh)
        .await;
    let sl = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ok": true})).set_delay(Duration::from_mins(10)),
        )
        .mount(&sl)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let vars = ci_vars(dir.path(), &gh.uri(), &sl.uri());
    let rec = Arc::new(Recorder::default());
    let mut s = setup(&vars);
    s.options.call_timeout = Duration::from_secs(1);
    let notifiers = notify::spawn(s, rec.clone());

    let result = deploy(&success_events(), &notifiers.sink());
    // The flush bound (not the 10 min Slack delay) decides when reporting gives up; a guard turns
    // a hang into a failure instead of a stuck test run.
    let flushed =
        tokio::time::timeout(Duration::from_mins(1), notifiers.flush(Duration::from_secs(10))).await;
    assert_eq!(result, Ok(()), "the deploy's result is its own");
    assert_eq!(flushed.ok(), Some(true), "every notifier gave up within its bounds");

    let w = warnings(&rec);
    assert!(w.iter().any(|m| m.starts_with("github deployment: create: HTTP 500: Server Error")), "{w:#?}");
    assert!(w.iter().any(|m| m.starts_with("github comment: ") && m.contains("HTTP 500")), "{w:#?}");
    assert!(w.iter().any(|m| m.starts_with("slack: no answer within 1 s")), "{w:#?}");
    assert!(w.iter().any(|m| m.contains("skipping progress updates")), "{w:#?}");
    // 5xx are retried (1 + 2 attempts per call), boundedly.
    let reqs = requests(&gh).await;
    let creates = reqs
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == "/repos/acme/shop/deployments")
        .count();
    assert!((3..=9).contains(&creates), "{creates}");
}

#[tokio::test]
async fn sticky_comment_found_on_page_two_is_patched() {
    let gh = MockServer::start().await;
    let page2 = format!("{}/repos/acme/shop/issues/7/comments?per_page=100&page=2", gh.uri());
    let page1: Vec<Value> = (1..=100).map(|i| json!({"id": i, "body": format!("comment {i}")})).collect();
    Mock::given(method("GET"))
        .and(path("/repos/acme/shop/issues/7/comments"))
        .and(query_param_is_missing("page"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", format!(r#"<{page2}>; rel="next", <{page2}>; rel="last""#).as_str())
                .set_body_json(json!(page1)),
        )
        .mount(&gh)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/shop/issues/7/comments"))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": 4242, "body": "<!-- deployer:prod -->\n### ✅ shop deployed to prod (an earlier push)"},
            {"id": 4243, "body": "thanks!"}
        ])))
        .mount(&gh)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/repos/acme/shop/issues/comments/4242"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 4242})))
        .mount(&gh)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let vars = ci_vars(dir.path(), &gh.uri(), "http://127.0.0.1:9");
    let mut s = setup(&vars);
    s.slack = None;
    if let Some(g) = s.github.as_mut() {
        g.deployments = false;
    }
    let rec = Arc::new(Recorder::default());
    let notifiers = notify::spawn(s, rec.clone());
    deploy(&success_events(), &notifiers.sink()).unwrap();
    assert!(notifiers.flush(Duration::from_secs(30)).await);
    assert_eq!(warnings(&rec), Vec::<String>::new());
    let reqs = requests(&gh).await;
    assert_eq!(
        reqs.iter().map(|r| line(r, &[])).collect::<Vec<_>>(),
        [
            "GET /repos/acme/shop/issues/7/comments?per_page=100",
            "GET /repos/acme/shop/issues/7/comments?per_page=100&page=2",
            "PATCH /repos/acme/shop/issues/comments/4242",
            "PATCH /repos/acme/shop/issues/comments/4242",
            "PATCH /repos/acme/shop/issues/comments/4242",
        ],
        "searched once, then the same comment is updated in place"
    );
}

#[tokio::test]
async fn merged_instead_of_deployed_202_is_one_warning_and_no_statuses() {
    let gh = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/shop/deployments"))
        .respond_with(
            ResponseTemplate::new(202)
                .set_body_json(json!({"message": "Auto-merged main into topic branch."})),
        )
        .mount(&gh)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let vars = ci_vars(dir.path(), &gh.uri(), "http://127.0.0.1:9");
    let mut s = setup(&vars);
    s.slack = None;
    if let Some(g) = s.github.as_mut() {
        g.pr_comment = false;
    }
    let rec = Arc::new(Recorder::default());
    let notifiers = notify::spawn(s, rec.clone());
    deploy(&success_events(), &notifiers.sink()).unwrap();
    assert!(notifiers.flush(Duration::from_secs(30)).await);
    let reqs = requests(&gh).await;
    assert_eq!(reqs.iter().map(|r| line(r, &[])).collect::<Vec<_>>(), ["POST /repos/acme/shop/deployments"]);
    let w = warnings(&rec);
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(w[0].contains("202: Auto-merged main into topic branch."), "{}", w[0]);
}

#[tokio::test]
async fn rate_limited_beyond_the_bound_is_not_waited_for() {
    let gh = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/shop/deployments"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("retry-after", "3600")
                .set_body_json(json!({"message": "API rate limit exceeded"})),
        )
        .mount(&gh)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let vars = ci_vars(dir.path(), &gh.uri(), "http://127.0.0.1:9");
    let mut s = setup(&vars);
    s.slack = None;
    if let Some(g) = s.github.as_mut() {
        g.pr_comment = false;
    }
    let rec = Arc::new(Recorder::default());
    let notifiers = notify::spawn(s, rec.clone());
    deploy(&success_events(), &notifiers.sink()).unwrap();
    assert!(notifiers.flush(Duration::from_secs(30)).await);
    let w = warnings(&rec);
    assert!(w[0].contains("rate limited for 3600 s"), "{w:#?}");
    // Once per stage until it degrades, then the final attempt: never a retry loop.
    assert_eq!(requests(&gh).await.len(), 3);
}

#[tokio::test]
async fn slack_webhook_posts_start_and_end_and_reports_plain_text_errors() {
    let sl = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/T0/B0/x"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .up_to_n_times(1)
        .mount(&sl)
        .await;
    Mock::given(method("POST"))
        .and(path("/services/T0/B0/x"))
        .respond_with(ResponseTemplate::new(410).set_body_string("channel_is_archived"))
        .mount(&sl)
        .await;
    let setup = Setup {
        slack: Some(slack::Target {
            kind: slack::Kind::Webhook { url: format!("{}/services/T0/B0/x", sl.uri()) },
            links: links(),
        }),
        ..Setup::default()
    };
    let rec = Arc::new(Recorder::default());
    let notifiers = notify::spawn(setup, rec.clone());
    deploy(&success_events(), &notifiers.sink()).unwrap();
    assert!(notifiers.flush(Duration::from_secs(30)).await);
    let reqs = requests(&sl).await;
    assert_eq!(
        slack_lines(&reqs),
        [
            r#"POST /services/T0/B0/x /text="⏳ shop: preparing the deploy to prod""#,
            r#"POST /services/T0/B0/x /text="✅ shop deployed to prod""#,
            r#"POST /services/T0/B0/x /text="✅ shop deployed to prod""#,
        ],
        "start, end, and the end retried once at finish"
    );
    let w = warnings(&rec);
    assert!(w.iter().all(|m| m.contains("HTTP 410: channel_is_archived") && m.contains("hint:")), "{w:#?}");
}

#[test]
fn job_summary_and_outputs_from_the_github_renderer() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, output) = (dir.path().join("summary.md"), dir.path().join("output"));
    let sink = deployer::report::github::Github::new(
        Box::new(std::io::sink()),
        Some(summary.clone()),
        Some(output.clone()),
    )
    .with_links(links());
    deploy(&success_events(), &sink).unwrap();
    insta::assert_snapshot!("job-summary-success", std::fs::read_to_string(&summary).unwrap());
    let out = std::fs::read_to_string(&output).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "result=success",
            "release-id=shop-prod-20261123-0712-9f2c4e1",
            &format!(r#"digests={{"web":"{WEB}","worker":"{WORKER}"}}"#),
            "rolled-back=false",
            "environment-url=https://shop.example.com",
        ]
    );

    let (summary, output) = (dir.path().join("summary2.md"), dir.path().join("output2"));
    let sink = deployer::report::github::Github::new(
        Box::new(std::io::sink()),
        Some(summary.clone()),
        Some(output.clone()),
    )
    .with_links(links());
    deploy(&failure_events(), &sink).unwrap_err();
    insta::assert_snapshot!("job-summary-failure", std::fs::read_to_string(&summary).unwrap());
    let out = std::fs::read_to_string(&output).unwrap();
    assert!(out.contains("result=rolled-back\n") && out.contains("rolled-back=true\n"), "{out}");
}

#[test]
fn what_people_read() {
    let ok = RunState::from_events(&success_events());
    let bad = RunState::from_events(&failure_events());
    insta::assert_snapshot!("pr-comment-success", markdown::pr_comment(&ok, &links()));
    insta::assert_snapshot!("pr-comment-failure", markdown::pr_comment(&bad, &links()));
    insta::assert_json_snapshot!("slack-success", slack::message(&ok, &links()));
    insta::assert_json_snapshot!("slack-failure", slack::message(&bad, &links()));
    insta::assert_json_snapshot!("slack-failure-thread", slack::failure_reply(&bad, &links()));
    assert!(slack::failure_reply(&ok, &links()).is_none());
}

#[test]
fn refused_by_the_scan_gate_says_what_blocked() {
    let mut e = until_apply();
    e.truncate(e.iter().position(|x| matches!(x, Event::PhaseStarted { phase: Phase::Scan })).unwrap());
    phase(
        &mut e,
        Phase::Scan,
        20_000,
        false,
        vec![Event::ScanSummary(Box::new(ScanSummary {
            service: "web".into(),
            digest: WEB.into(),
            counts: BTreeMap::from([("CRITICAL".into(), 1), ("HIGH".into(), 2)]),
            passed: false,
            blocking: vec![Finding {
                id: "CVE-2026-0001".into(),
                severity: "CRITICAL".into(),
                package: Some("openssl 3.0.2".into()),
                fixed_in: Some("3.0.15".into()),
            }],
            ignored: vec![],
            expired_ignores: vec![IgnoredFinding {
                id: "CVE-2025-9999".into(),
                reason: "waiting for upstream".into(),
                expires: "2026-11-01".into(),
            }],
            note: None,
        }))],
    );
    e.push(Event::ReleaseFinished {
        release_id: "shop-prod-20261123-0712-9f2c4e1".into(),
        outcome: Outcome::RefusedByGate,
        environment_url: None,
        timings: vec![PhaseTiming { phase: Phase::Scan, start_ms: 0, elapsed_ms: 20_000, ok: false }],
    });
    let s = RunState::from_events(&e);
    insta::assert_snapshot!("pr-comment-refused", markdown::pr_comment(&s, &links()));
}

#[test]
fn events_serialise_as_documented() {
    let lines: Vec<Value> = failure_events()
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .filter(|v| !matches!(v["event"].as_str(), Some("phase-started" | "phase-finished")))
        .collect();
    insta::assert_json_snapshot!("events-failure", lines);
    // Every event name in the stream is documented.
    let doc = std::fs::read_to_string(support::root().join("docs/events.md")).unwrap();
    for v in &lines {
        let name = v["event"].as_str().unwrap();
        assert!(doc.contains(&format!("`{name}`")), "docs/events.md misses `{name}`");
    }
}

#[tokio::test]
async fn conflict_409_is_reported_once_then_quiet() {
    let gh = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/shop/deployments"))
        .respond_with(
            ResponseTemplate::new(409)
                .set_body_json(json!({"message": "Conflict: Commit status checks failed for main."})),
        )
        .mount(&gh)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let vars = ci_vars(dir.path(), &gh.uri(), "http://127.0.0.1:9");
    let mut s = setup(&vars);
    s.slack = None;
    if let Some(g) = s.github.as_mut() {
        g.pr_comment = false;
    }
    let rec = Arc::new(Recorder::default());
    let notifiers = notify::spawn(s, rec.clone());
    deploy(&success_events(), &notifiers.sink()).unwrap();
    assert!(notifiers.flush(Duration::from_secs(30)).await);
    assert_eq!(requests(&gh).await.len(), 1, "a refused deployment is not retried at every stage");
    let w = warnings(&rec);
    assert_eq!(
        w,
        ["github deployment: create: HTTP 409: Conflict: Commit status checks failed for main."],
        "{w:#?}"
    );
}

#[tokio::test]
async fn slack_429_is_retried_after_retry_after_and_api_errors_get_a_hint() {
    let sl = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat.postMessage"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .mount(&sl)
        .await;
    Mock::given(method("POST"))
        .and(path("/chat.postMessage"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": true, "channel": "C0SHOPPROD", "ts": "1.2"})),
        )
        .mount(&sl)
        .await;
    Mock::given(method("POST"))
        .and(path("/chat.update"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "not_in_channel"})),
        )
        .mount(&sl)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let vars = ci_vars(dir.path(), "http://127.0.0.1:9", &sl.uri());
    let mut s = setup(&vars);
    s.github = None;
    let rec = Arc::new(Recorder::default());
    let notifiers = notify::spawn(s, rec.clone());
    deploy(&success_events(), &notifiers.sink()).unwrap();
    assert!(notifiers.flush(Duration::from_secs(30)).await);
    let lines: Vec<String> = requests(&sl).await.iter().map(|r| line(r, &["/ts"])).collect();
    assert_eq!(
        lines,
        [
            "POST /chat.postMessage",
            "POST /chat.postMessage",
            r#"POST /chat.update /ts="1.2""#,
            r#"POST /chat.update /ts="1.2""#,
            r#"POST /chat.update /ts="1.2""#,
        ],
        "429 retried once; then in progress and done fail, degrade, and the final update is tried once more"
    );
    let w = warnings(&rec);
    assert!(
        w[0].starts_with("slack chat.update: slack answered `not_in_channel` (hint: invite the bot"),
        "{w:#?}"
    );
}

#[test]
fn missing_secrets_turn_a_notifier_off_with_a_reason() {
    let config = Config::load(&support::root().join("examples/shop/deployer.yaml")).unwrap();
    let env = config.environment("prod").unwrap();
    let var = |k: &str| match k {
        "GITHUB_ACTIONS" => Some("true".to_owned()),
        "GITHUB_REPOSITORY" => Some("acme/shop".to_owned()),
        _ => None,
    };
    let s = Setup::from_env(&env, &var, None);
    assert!(s.is_empty());
    assert_eq!(
        s.warnings,
        [
            "github reporting is off: no GitHub token: pass the `github-token` input (GITHUB_TOKEN is not in the environment by default)",
            "slack reporting is off: `SLACK_BOT_TOKEN` (notifications.slack.token_env) is not set; pass the bot token as a secret",
        ]
    );
}

#[tokio::test]
async fn an_unreachable_webhook_is_a_warning_without_the_secret_url() {
    // Port 9 (discard) is closed on the test machine: the connection is refused.
    let mut setup = Setup {
        slack: Some(slack::Target {
            kind: slack::Kind::Webhook { url: "http://127.0.0.1:9/services/T0/B0/s3cr3t".into() },
            links: links(),
        }),
        ..Setup::default()
    };
    setup.options.backoff = Duration::from_millis(10);
    let rec = Arc::new(Recorder::default());
    let notifiers = notify::spawn(setup, rec.clone());
    deploy(&success_events(), &notifiers.sink()).unwrap();
    assert!(notifiers.flush(Duration::from_secs(30)).await);
    let w = warnings(&rec);
    assert!(!w.is_empty());
    assert!(w[0].starts_with("slack webhook: cannot reach 127.0.0.1: "), "{w:#?}");
    assert!(w.iter().all(|m| !m.contains("s3cr3t")), "{w:#?}");
}

#[test]
fn the_log_of_a_failed_deploy_in_a_terminal_and_in_actions() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| -> Box<dyn std::io::Write + Send> {
        Box::new(std::fs::File::create(dir.path().join(name)).unwrap())
    };
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let human = deployer::report::Human::new(file("out"), file("err"), 0, false);
    deploy(&failure_events(), &human).unwrap_err();
    drop(human);
    insta::assert_snapshot!(
        "human-failure",
        format!("--- stdout\n{}--- stderr\n{}", read("out"), read("err"))
    );
    let gh = deployer::report::github::Github::new(file("gh"), None, None);
    deploy(&failure_events(), &gh).unwrap_err();
    drop(gh);
    insta::assert_snapshot!("actions-log-failure", read("gh"));
}

#[tokio::test]
async fn a_deleted_sticky_comment_is_written_anew() {
    let gh = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/shop/issues/7/comments"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([{"id": 77, "body": "<!-- deployer:prod -->\nold"}])),
        )
        .mount(&gh)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/repos/acme/shop/issues/comments/77"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
        .mount(&gh)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/shop/issues/7/comments"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 88})))
        .mount(&gh)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/repos/acme/shop/issues/comments/88"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 88})))
        .mount(&gh)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let vars = ci_vars(dir.path(), &gh.uri(), "http://127.0.0.1:9");
    let mut s = setup(&vars);
    s.slack = None;
    if let Some(g) = s.github.as_mut() {
        g.deployments = false;
    }
    let rec = Arc::new(Recorder::default());
    let notifiers = notify::spawn(s, rec.clone());
    deploy(&success_events(), &notifiers.sink()).unwrap();
    assert!(notifiers.flush(Duration::from_secs(30)).await);
    assert_eq!(warnings(&rec), Vec::<String>::new());
    assert_eq!(
        requests(&gh).await.iter().map(|r| line(r, &[])).collect::<Vec<_>>(),
        [
            "GET /repos/acme/shop/issues/7/comments?per_page=100",
            "PATCH /repos/acme/shop/issues/comments/77",
            "POST /repos/acme/shop/issues/7/comments",
            "PATCH /repos/acme/shop/issues/comments/88",
            "PATCH /repos/acme/shop/issues/comments/88",
        ]
    );
}

#[test]
fn json_lines_carry_version_time_and_kebab_case_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let sink = deployer::report::JsonLines::new(Box::new(std::fs::File::create(&path).unwrap()));
    deploy(&failure_events(), &sink).unwrap_err();
    drop(sink);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), failure_events().len());
    for l in &lines {
        assert_eq!(l["v"], json!(deployer::events::SCHEMA_VERSION));
        assert!(
            time::OffsetDateTime::parse(
                l["ts"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339
            )
            .is_ok()
        );
    }
    let names: Vec<&str> =
        lines.iter().map(|l| l["event"].as_str().unwrap()).filter(|n| !n.starts_with("phase-")).collect();
    assert_eq!(
        names,
        [
            "started",
            "release-started",
            "image-pushed",
            "image-pushed",
            "scan-summary",
            "scan-summary",
            "service-progress",
            "service-progress",
            "health-verdict",
            "health-verdict",
            "rollback-started",
            "rollback-finished",
            "release-finished",
            "finished",
        ]
    );
    let verdict = &lines.iter().find(|l| l["event"] == "health-verdict" && l["service"] == "worker").unwrap()
        ["verdict"];
    assert_eq!(verdict["status"], "failed");
    assert_eq!(verdict["restart_count"], 5);
}
