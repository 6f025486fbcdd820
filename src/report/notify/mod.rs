//! Notifiers: GitHub Deployments, the sticky PR comment and Slack, kept off the deploy's
//! critical path.
//!
//! Each notifier runs in its own background task and sees only events, folded into a
//! [`RunState`]. The deploy emits into a [`NotifySink`], which just queues the event (it never
//! waits on the network), and at the end calls [`Notifiers::flush`] with a bound: whatever is not
//! done by then is abandoned with a warning. Every network call is bounded by
//! [`Options::call_timeout`] (retries included), and a notifier that fails twice in a row stops
//! sending progress and only tries its final update. Failures become [`Event::Warning`]s on the
//! `warnings` sink (the renderers), never errors: a Slack outage cannot fail, block or slow a
//! deploy by more than the flush bound.
//!
//! Notifiers are called when the release reaches a new phase or [`Stage`] (queued → in
//! progress → rolling back → done), not per event: a dozen calls per deploy, well within GitHub's
//! secondary rate limits and Slack's Tier 3, and deterministic, so tests can assert the exact
//! request sequence. Each notifier decides what is worth sending: Slack edits its message at
//! every phase, the PR comment and the Deployment status change with the stage only.
//!
//! Library API for the integrator:
//! ```ignore
//! let setup = report::notify::Setup::from_env(&env, var, token_input);   // env = config::Environment
//! for w in &setup.warnings { renderer.emit(&Event::Warning { message: w.clone() }) }
//! let notifiers = report::notify::spawn(setup, renderer.clone());        // renderer: Arc<dyn Sink>
//! let events = Fanout::new(vec![Box::new(renderer.clone()), Box::new(notifiers.sink())]);
//! /* … run the deploy, emitting into `events`, including the final `finished` event … */
//! notifiers.flush(report::notify::FLUSH_BOUND).await;                  // after `finished`
//! ```
//! The GitHub renderer takes the same links for its job summary:
//! `Github::new(out, summary, output).with_links(notify::github::links_from_env(var))`.
//! Environment: `GITHUB_API_URL`, `GITHUB_SERVER_URL`, `GITHUB_REPOSITORY`, `GITHUB_RUN_ID`,
//! `GITHUB_EVENT_NAME`, `GITHUB_EVENT_PATH`, `GITHUB_TOKEN`; Slack's webhook URL and bot token
//! come from the variables named in the configuration, and `SLACK_API_URL` (default
//! `https://slack.com/api`) points the bot client elsewhere (a proxy, or a test server).

pub mod github;
pub mod http;
pub mod slack;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::state::{RunState, Stage};
use crate::config::Environment;
use crate::events::{Event, Sink};
use crate::support::VarFn;

pub use http::NotifyError;

/// Default bound on the end-of-run flush.
pub const FLUSH_BOUND: Duration = Duration::from_secs(10);

/// A place progress is reported to.
pub trait Notifier: Send + 'static {
    /// Short name used in warnings (`slack`, `github deployment`, `github comment`).
    fn name(&self) -> &'static str;
    /// The run reached a new phase or stage.
    fn update(&mut self, state: &RunState) -> impl Future<Output = Result<(), NotifyError>> + Send;
    /// The run is over (or the flush began): last chance to say so.
    fn finish(&mut self, state: &RunState) -> impl Future<Output = Result<(), NotifyError>> + Send;
}

/// Bounds and retry policy shared by all notifiers.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Longest one notifier call may take, retries and backoff included.
    pub call_timeout: Duration,
    /// Retries after the first attempt for 5xx, 429 and transport errors.
    pub retries: u32,
    /// First backoff; doubled on each retry.
    pub backoff: Duration,
    /// A `Retry-After` (or rate-limit reset) longer than this is not waited for.
    pub max_retry_wait: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(10),
            retries: 2,
            backoff: Duration::from_millis(500),
            max_retry_wait: Duration::from_secs(5),
        }
    }
}

/// Everything [`spawn`] needs, resolved from configuration and the environment.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    pub github: Option<github::Target>,
    pub slack: Option<slack::Target>,
    pub options: Options,
    /// Why a configured notifier is not set up (missing token, variable unset); for the log.
    pub warnings: Vec<String>,
}

impl Setup {
    /// Reads the environment's `notifications:` and the CI context. `github_token` is the
    /// action's `github-token` input when given (else `GITHUB_TOKEN`).
    pub fn from_env(env: &Environment, var: VarFn<'_>, github_token: Option<&str>) -> Self {
        let mut warnings = Vec::new();
        let github = env.notifications.github.as_ref().and_then(|cfg| {
            if !cfg.deployments && !cfg.pr_comment {
                return None;
            }
            let ctx = github::Context::from_env(var, github_token);
            match ctx {
                Ok(ctx) => Some(github::Target {
                    context: ctx,
                    environment: env.name.clone(),
                    deployment_environment: github::deployment_environment(&env.name, env.approval.as_ref()),
                    deployments: cfg.deployments,
                    pr_comment: cfg.pr_comment,
                    environment_url: cfg.environment_url.clone(),
                    production: github::is_production(
                        &env.name,
                        env.approval.as_ref().is_some_and(|a| a.required),
                    ),
                    transient: github::is_preview(&env.name),
                }),
                Err(why) => {
                    // Outside Actions GitHub reporting is simply off; inside, say why.
                    if var("GITHUB_ACTIONS").as_deref() == Some("true") {
                        warnings.push(format!("github reporting is off: {why}"));
                    }
                    None
                }
            }
        });
        let slack =
            env.notifications.slack.as_ref().and_then(|cfg| match slack::Target::from_config(cfg, var) {
                Ok(t) => Some(t),
                Err(why) => {
                    warnings.push(format!("slack reporting is off: {why}"));
                    None
                }
            });
        Self { github, slack, options: Options::default(), warnings }
    }

    /// True when nothing would be notified.
    pub fn is_empty(&self) -> bool {
        self.github.is_none() && self.slack.is_none()
    }
}

enum Msg {
    Event(Box<Event>),
    Flush,
}

/// The running notifiers.
pub struct Notifiers {
    sink: NotifySink,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    warnings: Arc<dyn Sink>,
}

/// Queues events for the notifiers; never blocks (clone it into a [`crate::events::Fanout`]).
#[derive(Clone)]
pub struct NotifySink {
    senders: Vec<mpsc::UnboundedSender<Msg>>,
}

impl Sink for NotifySink {
    fn emit(&self, event: &Event) {
        for tx in &self.senders {
            // A finished task has dropped its receiver: nothing left to tell it.
            let _ = tx.send(Msg::Event(Box::new(event.clone())));
        }
    }
}

impl Sink for Notifiers {
    fn emit(&self, event: &Event) {
        self.sink.emit(event);
    }
}

/// Starts one background task per configured notifier. Needs a Tokio runtime.
pub fn spawn(setup: Setup, warnings: Arc<dyn Sink>) -> Notifiers {
    let mut n = Notifiers { sink: NotifySink { senders: Vec::new() }, tasks: Vec::new(), warnings };
    let opts = setup.options;
    if let Some(t) = setup.github {
        match github::Api::new(&t.context, opts) {
            Ok(api) => {
                if t.deployments {
                    n.add(github::Deployments::new(api.clone(), &t), opts);
                }
                if t.pr_comment
                    && let Some(pr) = t.context.pr_number
                {
                    n.add(github::Comment::new(api, &t, pr), opts);
                }
            }
            Err(e) => n.warnings.emit(&Event::Warning { message: format!("github reporting is off: {e}") }),
        }
    }
    if let Some(t) = setup.slack {
        match slack::Slack::new(t, opts) {
            Ok(s) => n.add(s, opts),
            Err(e) => n.warnings.emit(&Event::Warning { message: format!("slack reporting is off: {e}") }),
        }
    }
    n
}

impl Notifiers {
    fn add<N: Notifier>(&mut self, notifier: N, opts: Options) {
        let (tx, rx) = mpsc::unbounded_channel();
        let name = notifier.name();
        let task = tokio::spawn(drive(notifier, rx, self.warnings.clone(), opts));
        self.sink.senders.push(tx);
        self.tasks.push((name, task));
    }

    /// A handle that queues events for every notifier.
    pub fn sink(&self) -> NotifySink {
        self.sink.clone()
    }

    /// How many notifiers run.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Lets every notifier send its final update, waiting at most `bound` in total; what is
    /// not done by then is abandoned with a warning. Returns true when all finished in time.
    pub async fn flush(self, bound: Duration) -> bool {
        for tx in &self.sink.senders {
            let _ = tx.send(Msg::Flush);
        }
        let deadline = tokio::time::Instant::now() + bound;
        let mut all = true;
        for (name, mut task) in self.tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                all = false;
                self.warnings.emit(&Event::Warning {
                    message: format!(
                        "{name}: did not finish within {} s; its last update was abandoned so the deploy is not held up",
                        bound.as_secs_f32()
                    ),
                });
            }
        }
        all
    }
}

/// After this many failures in a row a notifier only gets its final update.
const DEGRADED_AFTER: u32 = 2;

async fn drive<N: Notifier>(
    mut n: N,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    warnings: Arc<dyn Sink>,
    opts: Options,
) {
    let mut state = RunState::default();
    let mut shown = (state.stage(), state.last_phase);
    let mut failures = 0u32;
    while let Some(msg) = rx.recv().await {
        let Msg::Event(event) = msg else { break };
        state.apply(&event);
        let now = (state.stage(), state.last_phase);
        if now == shown || now.0 == Stage::NotStarted {
            continue;
        }
        shown = now;
        if failures >= DEGRADED_AFTER {
            continue;
        }
        if call(n.name(), n.update(&state), opts, &*warnings).await {
            failures = 0;
        } else {
            failures += 1;
            if failures == DEGRADED_AFTER {
                warnings.emit(&Event::Warning {
                    message: format!(
                        "{}: {DEGRADED_AFTER} calls failed in a row; skipping progress updates until the end of the run",
                        n.name()
                    ),
                });
            }
        }
    }
    // Events queued behind the flush request (none in a well-behaved run) still count.
    while let Ok(Msg::Event(event)) = rx.try_recv() {
        state.apply(&event);
    }
    call(n.name(), n.finish(&state), opts, &*warnings).await;
}

/// Runs one bounded notifier call; a failure or timeout becomes a warning.
async fn call(
    name: &str,
    f: impl Future<Output = Result<(), NotifyError>>,
    opts: Options,
    warnings: &dyn Sink,
) -> bool {
    let message = match tokio::time::timeout(opts.call_timeout, f).await {
        Ok(Ok(())) => return true,
        // Errors name their call (`github deployment: create: …`).
        Ok(Err(e)) => match e.hint() {
            Some(h) => format!("{e} (hint: {h})"),
            None => e.to_string(),
        },
        Err(_) => {
            format!("{name}: no answer within {} s; carrying on without it", opts.call_timeout.as_secs_f32())
        }
    };
    warnings.emit(&Event::Warning { message });
    false
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::events::{Outcome, Recorder};

    /// Records the stages it was shown; fails or hangs on demand.
    struct Probe {
        seen: Arc<Mutex<Vec<String>>>,
        fail: bool,
        hang: bool,
    }

    impl Notifier for Probe {
        fn name(&self) -> &'static str {
            "probe"
        }
        async fn update(&mut self, state: &RunState) -> Result<(), NotifyError> {
            self.seen.lock().unwrap().push(format!("{:?}", state.stage()));
            if self.hang {
                std::future::pending::<()>().await;
            }
            if self.fail { Err(NotifyError::Other("boom".into())) } else { Ok(()) }
        }
        async fn finish(&mut self, state: &RunState) -> Result<(), NotifyError> {
            self.seen.lock().unwrap().push(format!("finish {:?}", state.stage()));
            if self.hang {
                std::future::pending::<()>().await;
            }
            Ok(())
        }
    }

    fn events() -> Vec<Event> {
        use crate::events::Phase;
        vec![
            Event::Started { command: "deploy".into(), product: None, environment: Some("dev".into()) },
            Event::ReleaseStarted {
                release_id: "r1".into(),
                product: "shop".into(),
                environment: "dev".into(),
                git_sha: "abc".into(),
                services: vec!["web".into()],
                strategy: None,
            },
            Event::PhaseStarted { phase: Phase::Build },
            Event::PhaseFinished { phase: Phase::Build, ok: true, elapsed_ms: 5 },
            Event::PhaseStarted { phase: Phase::Apply },
            Event::PhaseFinished { phase: Phase::Apply, ok: true, elapsed_ms: 5 },
            Event::ReleaseFinished {
                release_id: "r1".into(),
                outcome: Outcome::Succeeded,
                environment_url: None,
                timings: vec![],
            },
        ]
    }

    async fn run(fail: bool, hang: bool) -> (Vec<String>, Vec<String>, bool) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rec = Arc::new(Recorder::default());
        let mut n = Notifiers { sink: NotifySink { senders: vec![] }, tasks: vec![], warnings: rec.clone() };
        let opts = Options { call_timeout: Duration::from_millis(50), ..Options::default() };
        n.add(Probe { seen: seen.clone(), fail, hang }, opts);
        for e in events() {
            n.emit(&e);
        }
        let done = n.flush(Duration::from_secs(10)).await;
        let warnings = rec
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Warning { message } => Some(message),
                _ => None,
            })
            .collect();
        (seen.lock().unwrap().clone(), warnings, done)
    }

    #[tokio::test]
    async fn each_stage_is_shown_once_then_finish() {
        let (seen, warnings, done) = run(false, false).await;
        assert_eq!(seen, ["Queued", "Queued", "InProgress", "Done(Succeeded)", "finish Done(Succeeded)"]);
        assert!(warnings.is_empty());
        assert!(done);
    }

    #[tokio::test]
    async fn failing_notifier_degrades_to_final_update_with_warnings() {
        let (seen, warnings, done) = run(true, false).await;
        assert_eq!(seen, ["Queued", "Queued", "finish Done(Succeeded)"]);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[2].contains("skipping progress updates"));
        assert!(done);
    }

    #[tokio::test]
    async fn flush_abandons_what_exceeds_its_bound() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rec = Arc::new(Recorder::default());
        let mut n = Notifiers { sink: NotifySink { senders: vec![] }, tasks: vec![], warnings: rec.clone() };
        // Calls may take an hour; the flush may not.
        let opts = Options { call_timeout: Duration::from_hours(1), ..Options::default() };
        n.add(Probe { seen: seen.clone(), fail: false, hang: true }, opts);
        for e in events() {
            n.emit(&e);
        }
        assert!(!n.flush(Duration::from_millis(100)).await);
        let w: Vec<String> = rec
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Warning { message } => Some(message),
                _ => None,
            })
            .collect();
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("probe: did not finish within 0.1 s"), "{w:?}");
    }

    #[tokio::test]
    async fn hanging_notifier_times_out_per_call() {
        let (seen, warnings, done) = run(false, true).await;
        assert_eq!(seen.last().map(String::as_str), Some("finish Done(Succeeded)"));
        assert_eq!(warnings.iter().filter(|w| w.contains("no answer within")).count(), 3, "{warnings:?}");
        assert!(done);
    }
}
