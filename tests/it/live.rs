//! The live terminal view drawn into an in-memory terminal: the same events as a deploy that
//! fails and rolls back, through the real sink (indicatif bars, the ticker thread, the lines
//! printed above the bars). What stays on screen for good and what goes to stdout are exactly
//! what a person reads; the bars themselves are transient, so only their content is checked.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use deployer::events::{Event, HealthFailure, Outcome, Phase, Sink, Verdict};
use deployer::report::live::Live;
use indicatif::{ProgressDrawTarget, TermLike};

use crate::support;

/// A terminal that keeps every line and string drawn on it.
#[derive(Debug, Clone, Default)]
struct Screen(Arc<Mutex<String>>);

impl Screen {
    fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
    fn push(&self, s: &str) {
        self.0.lock().unwrap().push_str(s);
    }
}

impl TermLike for Screen {
    fn width(&self) -> u16 {
        120
    }
    fn move_cursor_up(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> io::Result<()> {
        self.push(s);
        self.push("\n");
        Ok(())
    }
    fn write_str(&self, s: &str) -> io::Result<()> {
        self.push(s);
        Ok(())
    }
    fn clear_line(&self) -> io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}

/// A writer the test reads back.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Buf {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn svc(service: &str, phase: Phase, message: &str) -> Event {
    Event::Service { service: service.into(), phase, message: message.into() }
}

fn failing_release() -> Vec<Event> {
    let to = Some("r-20261122-1700-0ff1ce0".to_owned());
    vec![
        Event::Started { command: "deploy".into(), product: None, environment: Some("dev".into()) },
        Event::PhaseStarted { phase: Phase::Identity },
        svc("", Phase::Identity, "acting as arn:aws:iam::123456789012:role/deploy (account 123456789012)"),
        Event::Warning { message: "slack: SLACK_WEBHOOK_URL is not set; no Slack message".into() },
        Event::PhaseStarted { phase: Phase::Render },
        Event::ReleaseStarted {
            release_id: "r-20261123-0912-abc1234".into(),
            product: "shop".into(),
            environment: "dev".into(),
            git_sha: "abc1234def5678".into(),
            services: vec!["payments".into(), "web".into()],
            strategy: Some("rolling".into()),
        },
        Event::PhaseStarted { phase: Phase::Apply },
        svc("payments", Phase::Apply, "applied Deployment/payments"),
        svc("web", Phase::Apply, "applied Deployment/web"),
        Event::PhaseStarted { phase: Phase::Health },
        svc("payments", Phase::Health, "Deployment/payments: healthy"),
        svc("web", Phase::Health, "Deployment/web: 0/2 ready"),
        Event::HealthVerdict {
            service: "web".into(),
            verdict: Verdict::Failed(Box::new(HealthFailure {
                workload: "Deployment/web".into(),
                pod: Some("web-7d9f-x2x".into()),
                container: Some("web".into()),
                reason: "CrashLoopBackOff".into(),
                restart_count: Some(3),
                message: Some("exit code 1".into()),
                logs: Vec::new(),
            })),
        },
        Event::PhaseStarted { phase: Phase::Rollback },
        Event::RollbackStarted {
            to_release: to.clone(),
            reason: "web is unhealthy".into(),
            digests: BTreeMap::new(),
        },
        svc("web", Phase::Health, "Deployment/web: 1/2 ready"),
        Event::RollbackFinished { to_release: to, ok: true, digests: BTreeMap::new(), message: None },
        Event::ReleaseFinished {
            release_id: "r-20261123-0912-abc1234".into(),
            outcome: Outcome::FailedRolledBack,
            environment_url: None,
            timings: Vec::new(),
        },
        Event::Warning { message: "github: the deployment status could not be set".into() },
        Event::finished(deployer::ExitCode::RolledBack, Vec::new()),
    ]
}

#[test]
fn a_rolled_back_deploy_on_a_terminal() {
    let (out, err, screen) = (Buf::default(), Buf::default(), Screen::default());
    let live = Live::with_draw_target(
        Box::new(out.clone()),
        Box::new(err.clone()),
        0,
        false,
        ProgressDrawTarget::term_like(Box::new(screen.clone())),
    );
    for e in failing_release() {
        live.emit(&e);
    }
    let board = live.board();
    assert!(board.done && board.settled);
    drop(live);

    // What stays: release-level lines in order, the service table once, what came after it.
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\b\d+(\.\d)?s\b", "[t]");
    settings.bind(|| {
        insta::assert_snapshot!("live-terminal-stderr", err.text());
        insta::assert_snapshot!("live-terminal-stdout", out.text());
    });
    // Per-service progress is on the bars, not printed line by line.
    assert!(!err.text().contains("[payments] apply"), "{}", err.text());
    // The bars were drawn with the service lines (content only: frames are rate-limited).
    let drawn = screen.text();
    assert!(drawn.contains("payments"), "nothing drawn: {drawn:?}");
    assert!(drawn.contains("deploy shop → dev"), "no release line drawn: {drawn:?}");
}

#[test]
fn a_run_without_a_release_leaves_only_its_output() {
    let (out, err, screen) = (Buf::default(), Buf::default(), Screen::default());
    let live = Live::with_draw_target(
        Box::new(out.clone()),
        Box::new(err.clone()),
        0,
        true,
        ProgressDrawTarget::term_like(Box::new(screen)),
    );
    live.emit(&Event::Started { command: "validate".into(), product: None, environment: None });
    live.emit(&Event::PhaseStarted { phase: Phase::Config });
    live.emit(&Event::PhaseFinished { phase: Phase::Config, ok: true, elapsed_ms: 3 });
    live.emit(&Event::Validated { product: "shop".into(), environments: vec!["dev".into()], services: 3 });
    live.emit(&Event::finished(deployer::ExitCode::Success, Vec::new()));
    // Byte for byte what the plain view prints: no table, no leftover release line.
    assert_eq!(out.text(), "ok: product `shop` (3 services) and 1 environment(s) [dev] are valid\n");
    assert_eq!(err.text(), "");
}

/// Runs `deployer plan --env dev` on the example in a pseudo-terminal (`script`, util-linux)
/// with `env` added; returns everything the terminal received. `redirect` is appended to the
/// command line (e.g. `2>/dev/null`).
fn plan_in_a_pty(env: &[(&str, &str)], redirect: &str) -> String {
    let script = support::system_bin("script");
    let home = tempfile::tempdir().unwrap();
    let mut vars = vec![
        format!("PATH={}", std::env::var("PATH").unwrap()),
        format!("HOME={}", home.path().display()),
        format!("DEPLOYER_KUSTOMIZE={}", support::kubectl().display()),
        "DEPLOYER_BUILDER=buildah".to_owned(),
    ];
    vars.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
    let line = format!(
        "stty cols 100 rows 30; cd {} && env -i {} {} plan --env dev {redirect}",
        support::root().join("examples/shop").display(),
        vars.join(" "),
        assert_cmd::cargo::cargo_bin("deployer").display(),
    );
    let log = home.path().join("typescript");
    let o = std::process::Command::new(script).args(["-q", "-e", "-c", &line]).arg(&log).output().unwrap();
    let seen = std::fs::read_to_string(&log).unwrap();
    assert!(o.status.success(), "{seen}");
    seen
}

#[test]
fn the_binary_draws_live_lines_only_on_a_capable_terminal() {
    support::system_bin("buildah");
    let release_line = "plan → dev  ";
    let live = plan_in_a_pty(&[("TERM", "xterm-256color")], "");
    assert!(live.contains(release_line), "no live release line on a terminal: {live}");
    assert!(live.contains("Plan for shop → dev"), "{live}");
    for (env, redirect) in [
        (&[("TERM", "dumb")][..], ""),
        (&[("TERM", "xterm-256color"), ("GITHUB_ACTIONS", "true")][..], ""),
        (&[("TERM", "xterm-256color")][..], "-q"),
        // stderr to a file: the plain lines, even with stdout on the terminal.
        (&[("TERM", "xterm-256color")][..], "2>/dev/null"),
    ] {
        let plain = plan_in_a_pty(env, redirect);
        assert!(!plain.contains(release_line), "{env:?} {redirect}: {plain}");
        assert!(plain.contains("Plan for shop → dev") || env.len() == 2, "{env:?} {redirect}: {plain}");
    }
}
