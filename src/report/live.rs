//! The live terminal view: one line per service of the release, redrawn in place.
//!
//! Used only when a person watches: stderr is a terminal, the output is for humans, not `-q`,
//! not GitHub Actions (whose log keeps its groups) and not `TERM=dumb`; [`display`] makes that
//! choice from plain inputs. Everywhere else the plain [`Human`](super::Human) sink prints one
//! line per event, unchanged.
//!
//! Three layers, so everything but the drawing is tested without a terminal:
//! - [`Board`]: the state folded from the one event stream (service → phase, started at, latest
//!   message, failure, outcome), fed explicit times;
//! - [`rows`] / [`header`] / [`frame`]: the text of each line at a given instant (pure);
//! - [`Live`]: the [`Sink`] that owns an indicatif `MultiProgress` (a spinner bar per service
//!   plus one release line) and redraws it from the board ten times a second. Everything that
//!   is not per-service progress is printed above the bars with the same text the plain sink
//!   writes ([`human_text`]), inside `MultiProgress::suspend`, so nothing is lost or garbled.
//!   When every service line has ended the lines are printed once for good (so the transcript
//!   reads in order: log, service table, release outcome, problems) and the bars go away.
//!
//! Library API for the binary: `display(&DisplayInputs::from_env(..))`, then
//! `Live::stderr(out, err, verbose, color)` when it says [`Display::Live`].

use std::fmt::Write as _;
use std::io::Write;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Out, Stream, human_text, markdown, write_to};
use crate::events::{Event, Outcome, Phase, Sink, Verdict};
use crate::plan::BuildPlan;

// ---------------------------------------------------------------------------------------------
// Which view

/// Which terminal view to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// One line per event (pipes, files, CI logs): [`Human`](super::Human).
    Plain,
    /// Lines redrawn in place: [`Live`]. `color` tints the spinner and ✓/✗.
    Live { color: bool },
}

/// Everything the choice of view depends on, read once at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisplayInputs {
    pub stderr_is_terminal: bool,
    /// `-q`.
    pub quiet: bool,
    /// A machine format was asked for (`--output json` or `github`).
    pub machine_output: bool,
    /// `GITHUB_ACTIONS=true`: the log keeps its groups, and nothing redraws there.
    pub github_actions: bool,
    /// `TERM`.
    pub term: Option<String>,
    /// `NO_COLOR`: set and not empty turns colour off (<https://no-color.org>).
    pub no_color: Option<String>,
}

impl DisplayInputs {
    /// The inputs from the process's facts and environment variables.
    pub fn from_env(
        stderr_is_terminal: bool,
        quiet: bool,
        machine_output: bool,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Self {
        Self {
            stderr_is_terminal,
            quiet,
            machine_output,
            github_actions: var("GITHUB_ACTIONS").as_deref() == Some("true"),
            term: var("TERM"),
            no_color: var("NO_COLOR"),
        }
    }
}

/// The live view only for a person at a capable terminal; the plain lines everywhere else.
pub fn display(i: &DisplayInputs) -> Display {
    let dumb = i.term.as_deref() == Some("dumb");
    if !i.stderr_is_terminal || i.quiet || i.machine_output || i.github_actions || dumb {
        return Display::Plain;
    }
    Display::Live { color: i.no_color.as_deref().is_none_or(str::is_empty) }
}

// ---------------------------------------------------------------------------------------------
// State

/// How a service's line ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub ok: bool,
    pub at: Duration,
}

/// One service of the release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLine {
    pub name: String,
    /// The furthest phase reached; `None` while waiting for its first.
    pub phase: Option<Phase>,
    /// When its first phase started.
    pub started: Option<Duration>,
    pub message: String,
    /// What made it fail (a refused image, a health verdict), kept through the rollback.
    pub failure: Option<String>,
    pub ended: Option<Ended>,
    /// Built here; prebuilt images skip the build and push phases.
    pub builds: bool,
    /// The image by digest once known (`sha256:` and 12 digits): shown when there is no message.
    pub image: Option<String>,
}

impl ServiceLine {
    fn new(name: &str, builds: bool) -> Self {
        Self {
            name: name.to_owned(),
            phase: None,
            started: None,
            message: String::new(),
            failure: None,
            ended: None,
            builds,
            image: None,
        }
    }

    /// Moves forward to `phase` (never back: a health report during the bake or the rollback
    /// does not undo them).
    fn advance(&mut self, phase: Phase, now: Duration) {
        if self.ended.is_some() {
            return;
        }
        self.started.get_or_insert(now);
        if self.phase.is_none_or(|p| p < phase) {
            // The last phase's message would read as news of this one; the bake only continues
            // the health watch, whose last word still holds.
            if !(self.phase == Some(Phase::Health) && phase == Phase::Bake) {
                self.message.clear();
            }
            self.phase = Some(phase);
        }
    }

    fn end(&mut self, ok: bool, note: Option<&str>, now: Duration) {
        if self.ended.is_some() {
            return;
        }
        self.ended = Some(Ended { ok, at: now });
        if let Some(note) = note {
            self.message = match &self.failure {
                Some(f) => format!("{f}; {note}"),
                None => note.to_owned(),
            };
        }
    }
}

/// Release-level phases that every running service line takes part in.
const SHARED_PHASES: [Phase; 9] = [
    Phase::Build,
    Phase::Push,
    Phase::Scan,
    Phase::Render,
    Phase::Lock,
    Phase::Apply,
    Phase::Health,
    Phase::Bake,
    Phase::Rollback,
];

/// The run as the live view shows it, folded from events at explicit times (offsets from the
/// start of the view), so a sequence of events always gives the same board.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Board {
    pub command: String,
    pub product: Option<String>,
    pub environment: Option<String>,
    pub release_id: Option<String>,
    /// When the command started.
    pub started: Duration,
    /// The release-level phase that started last, and when.
    pub phase: Option<(Phase, Duration)>,
    /// The latest release-level message (events without a service).
    pub message: String,
    /// Between the start and the end of a rollback (its apply and watch are phases of their own).
    pub rolling_back: bool,
    /// In deploy order once the release started; plan order before.
    pub services: Vec<ServiceLine>,
    /// Every line ended and was printed for good: later events print as plain lines.
    pub settled: bool,
    /// The command finished.
    pub done: bool,
}

impl Board {
    /// Whether the board shows `event` in place of a printed line. Failures, warnings and
    /// release-level facts are always printed too.
    pub fn absorbs(&self, event: &Event) -> bool {
        if self.settled {
            return false;
        }
        match event {
            Event::Service { service, .. } | Event::ServiceProgress { service, .. } => !service.is_empty(),
            Event::ImagePushed { .. } => true,
            Event::ScanSummary(s) => s.passed,
            // A failed hook is printed whole (with its log tail); the others are bar text.
            Event::Hook { status, .. } => *status != crate::events::HookStatus::Failed,
            Event::HealthVerdict { service, verdict } => {
                !service.is_empty() && matches!(verdict, Verdict::Healthy)
            }
            _ => false,
        }
    }

    fn line(&mut self, name: &str) -> &mut ServiceLine {
        if let Some(i) = self.services.iter().position(|l| l.name == name) {
            return &mut self.services[i];
        }
        self.services.push(ServiceLine::new(name, true));
        let last = self.services.len() - 1;
        &mut self.services[last]
    }

    fn running(&mut self) -> impl Iterator<Item = &mut ServiceLine> {
        self.services.iter_mut().filter(|l| l.ended.is_none())
    }

    /// Folds one event in, at `now`.
    pub fn apply(&mut self, event: &Event, now: Duration) {
        if self.settled && !matches!(event, Event::Finished { .. }) {
            return;
        }
        match event {
            Event::Started { command, product, environment } => {
                command.clone_into(&mut self.command);
                self.product.clone_from(product);
                self.environment.clone_from(environment);
                self.started = now;
            }
            Event::PhaseStarted { phase } => {
                self.phase = Some((*phase, now));
                // A release-level message belongs to the phase that said it.
                self.message.clear();
                self.rolling_back |= *phase == Phase::Rollback;
                if SHARED_PHASES.contains(phase) {
                    let building = matches!(phase, Phase::Build | Phase::Push);
                    for l in self.running().filter(|l| l.builds || !building) {
                        l.advance(*phase, now);
                        if *phase == Phase::Rollback {
                            "rolling back".clone_into(&mut l.message);
                        }
                    }
                }
            }
            Event::Planned { plan } => {
                self.product = Some(plan.product.clone());
                if self.command == "deploy" && self.services.is_empty() {
                    self.services = plan
                        .services
                        .iter()
                        .map(|s| ServiceLine::new(&s.name, matches!(s.build, BuildPlan::Build { .. })))
                        .collect();
                }
            }
            Event::ReleaseStarted { release_id, product, environment, services, .. } => {
                self.release_id = Some(release_id.clone());
                self.product = Some(product.clone());
                self.environment = Some(environment.clone());
                // Lines keep their place (a reshuffle mid-run loses the reader's eye); the plan's
                // lines the release did not take, and never started, go.
                self.services.retain(|l| services.contains(&l.name) || l.phase.is_some());
                for name in services {
                    self.line(name);
                }
            }
            Event::Service { service, phase, message }
            | Event::ServiceProgress { service, phase, message, .. } => {
                if service.is_empty() {
                    message.clone_into(&mut self.message);
                } else {
                    let l = self.line(service);
                    l.advance(*phase, now);
                    if l.ended.is_none() {
                        message.clone_into(&mut l.message);
                    }
                }
            }
            Event::ImagePushed { service, digest, .. } => {
                self.line(service).image = Some(short_digest(digest));
            }
            Event::ScanSummary(s) => {
                let l = self.line(&s.service);
                l.advance(Phase::Scan, now);
                let counts = markdown::severity_counts(&s.counts);
                if s.passed {
                    l.message = format!("scan gate passed: {counts}");
                } else {
                    l.message = format!("scan gate refused: {counts}");
                    l.failure = Some(l.message.clone());
                }
            }
            Event::HealthVerdict { service, verdict } if !service.is_empty() => {
                let l = self.line(service);
                match verdict {
                    Verdict::Healthy => {
                        "healthy".clone_into(&mut l.message);
                        l.end(true, None, now);
                    }
                    Verdict::Failed(f) => {
                        // Short: the full verdict is printed above the bars and in the error.
                        let failure = format!("unhealthy: {} {}", f.workload, f.reason);
                        l.message.clone_from(&failure);
                        l.failure = Some(failure);
                        if let Some(e) = &mut l.ended {
                            e.ok = false;
                        }
                    }
                }
            }
            Event::Hook { service, .. } => {
                if let Some(run) = super::state::HookRun::of(event) {
                    let l = self.line(service);
                    l.advance(Phase::Hooks, now);
                    l.message = markdown::hook_plain(&run).replace(&format!(" of `{service}`"), "");
                    if run.status == crate::events::HookStatus::Failed {
                        l.failure = Some(l.message.clone());
                    }
                }
            }
            Event::RollbackStarted { to_release, digests, .. } => {
                self.rolling_back = true;
                for name in digests.keys() {
                    self.line(name);
                }
                let to = to_release.as_deref().unwrap_or("the previous release");
                for l in self.running() {
                    l.advance(Phase::Rollback, now);
                    l.message = format!("rolling back to {to}");
                }
            }
            Event::RollbackFinished { to_release, ok, message, .. } => {
                self.rolling_back = false;
                let to = to_release.as_deref().unwrap_or("the previous release");
                let note = if *ok {
                    format!("rolled back to {to}")
                } else {
                    format!(
                        "rollback failed{}",
                        message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
                    )
                };
                // Rolling back is the goal of `deployer rollback`, a failure of `deploy`.
                let line_ok = *ok && self.command == "rollback";
                for l in self.running() {
                    l.end(line_ok, Some(&note), now);
                }
            }
            Event::ReleaseFinished { release_id, outcome, .. } => {
                self.release_id = Some(release_id.clone());
                let note = match outcome {
                    Outcome::Succeeded => None,
                    Outcome::FailedRolledBack => Some("rolled back"),
                    Outcome::RollbackFailed => Some("rollback failed"),
                    Outcome::RefusedByGate => Some("not deployed: the scan gate refused the release"),
                    Outcome::Failed => Some("stopped"),
                    Outcome::Interrupted => Some("cancelled"),
                };
                for l in self.running() {
                    l.end(*outcome == Outcome::Succeeded, note, now);
                }
                self.settled = true;
            }
            Event::Finished { result, .. } => {
                let ok = *result == crate::error::ExitCode::Success.name();
                for l in self.running() {
                    // Before its apply nothing of a service changed: say so.
                    let note = match l.phase {
                        _ if ok => None,
                        Some(p) if p >= Phase::Apply => Some(format!("stopped ({result})")),
                        _ => Some(format!("not deployed ({result})")),
                    };
                    l.end(ok, note.as_deref(), now);
                }
                self.settled = true;
                self.done = true;
            }
            _ => {}
        }
    }
}

fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((alg, hex)) => format!("{alg}:{}", &hex[..hex.len().min(12)]),
        None => digest.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Text

/// Where a line stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Waiting,
    Running,
    Ok,
    Failed,
}

impl Status {
    /// The symbol in front of a line; a running line gets the spinner when drawn.
    pub const fn symbol(self) -> &'static str {
        match self {
            Self::Waiting => " ",
            Self::Running => "•",
            Self::Ok => "✓",
            Self::Failed => "✗",
        }
    }
}

/// One rendered service line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub status: Status,
    /// Name, phase, elapsed time and latest message, aligned across the rows.
    pub text: String,
}

/// Phase names as a service line shows them.
const fn label(phase: Phase) -> &'static str {
    match phase {
        Phase::Scan => "scan",
        // The watch covers the rollout and its health checks: "rollout" is what a person expects.
        Phase::Health => "rollout",
        p => p.title(),
    }
}

/// `0.4s`, `12s`, `3m05s`, `1h02m`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 10 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    }
}

/// The first line of a message, without control characters that would break a redrawn line.
fn one_line(message: &str) -> String {
    message.lines().next().unwrap_or_default().chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// The service lines at `now`.
pub fn rows(board: &Board, now: Duration) -> Vec<Row> {
    let width = board.services.iter().map(|l| l.name.chars().count()).max().unwrap_or(0);
    board
        .services
        .iter()
        .map(|l| {
            let status = match (l.ended, l.phase) {
                (Some(e), _) => {
                    if e.ok {
                        Status::Ok
                    } else {
                        Status::Failed
                    }
                }
                (None, None) => Status::Waiting,
                (None, Some(_)) => Status::Running,
            };
            let elapsed = l
                .started
                .map(|s| duration(l.ended.map_or(now, |e| e.at).saturating_sub(s)))
                .unwrap_or_default();
            let phase = l.phase.map_or("waiting", label);
            let message = match &l.image {
                Some(image) if l.message.is_empty() => format!("image {image}"),
                _ => one_line(&l.message),
            };
            let mut text = format!("{:<width$}  {phase:<8}  {elapsed:>6}  {message}", l.name);
            text.truncate(text.trim_end().len());
            Row { name: l.name.clone(), status, text }
        })
        .collect()
}

/// The release line at `now`: command, product → environment, current phase, elapsed time,
/// latest release-level message. `None` before the first phase and once the command finished.
pub fn header(board: &Board, now: Duration) -> Option<String> {
    let (phase, _) = board.phase?;
    if board.done {
        return None;
    }
    let mut s = board.command.clone();
    if let Some(p) = &board.product {
        let _ = write!(s, " {p}");
    }
    if let Some(e) = &board.environment {
        let _ = write!(s, " → {e}");
    }
    let phase = match phase {
        Phase::Rollback => "rollback".to_owned(),
        p if board.rolling_back => format!("rollback: {}", p.title()),
        p => p.title().to_owned(),
    };
    let _ = write!(s, "  {phase}  {}", duration(now.saturating_sub(board.started)));
    if !board.message.is_empty() {
        let _ = write!(s, "  {}", one_line(&board.message));
    }
    Some(s)
}

/// The whole view at `now` as plain text (the release line, then one line per service), with
/// `•` where the spinner turns.
pub fn frame(board: &Board, now: Duration) -> String {
    let mut out = String::new();
    if let Some(h) = header(board, now) {
        let _ = writeln!(out, "• {h}");
    }
    for r in rows(board, now) {
        let _ = writeln!(out, "{} {}", r.status.symbol(), r.text);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Drawing

/// How often the spinner turns and elapsed times move.
const TICK: Duration = Duration::from_millis(100);

struct Styles {
    color: bool,
}

impl Styles {
    fn template(&self, status: Status) -> ProgressStyle {
        let t = match (status, self.color) {
            (Status::Running, true) => "{spinner:.cyan} {wide_msg}",
            (Status::Running, false) => "{spinner} {wide_msg}",
            (Status::Waiting, true) => "  {wide_msg:.dim}",
            (Status::Waiting, false) => "  {wide_msg}",
            (Status::Ok, true) => "{prefix:.green} {wide_msg}",
            (Status::Failed, true) => "{prefix:.red} {wide_msg}",
            (Status::Ok | Status::Failed, false) => "{prefix} {wide_msg}",
        };
        ProgressStyle::with_template(t).unwrap_or_else(|_| ProgressStyle::default_spinner())
    }

    fn symbol(&self, status: Status) -> String {
        match (status, self.color) {
            (Status::Ok, true) => format!("\x1b[32m{}\x1b[0m", status.symbol()),
            (Status::Failed, true) => format!("\x1b[31m{}\x1b[0m", status.symbol()),
            _ => status.symbol().to_owned(),
        }
    }
}

struct Inner {
    board: Board,
    origin: Instant,
    mp: MultiProgress,
    header: Option<ProgressBar>,
    bars: Vec<(String, ProgressBar, Status)>,
    styles: Styles,
}

impl Inner {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Brings the bars in line with the board.
    fn sync(&mut self, now: Duration) {
        match (header(&self.board, now), &self.header) {
            (Some(text), Some(bar)) => bar.set_message(text),
            (Some(text), None) => {
                let bar = self.mp.insert(0, ProgressBar::new_spinner());
                bar.set_style(self.styles.template(Status::Running));
                bar.set_message(text);
                self.header = Some(bar);
            }
            (None, Some(bar)) => {
                bar.finish_and_clear();
                self.mp.remove(bar);
                self.header = None;
            }
            (None, None) => {}
        }
        if let Some(bar) = &self.header {
            bar.tick();
        }
        let rows = rows(&self.board, now);
        // Lines the release dropped go; the others keep their bar, in board order.
        let mut old = std::mem::take(&mut self.bars);
        old.retain(|(name, bar, _)| {
            let keep = rows.iter().any(|r| &r.name == name);
            if !keep {
                bar.finish_and_clear();
                self.mp.remove(bar);
            }
            keep
        });
        for row in rows {
            let (bar, status) = if let Some(i) = old.iter().position(|(n, _, _)| *n == row.name) {
                let (_, bar, status) = old.remove(i);
                (bar, Some(status))
            } else {
                (self.mp.add(ProgressBar::new_spinner()), None)
            };
            if status != Some(row.status) {
                bar.set_style(self.styles.template(row.status));
                bar.set_prefix(row.status.symbol());
            }
            bar.set_message(row.text.clone());
            if row.status == Status::Running {
                bar.tick();
            }
            self.bars.push((row.name, bar, row.status));
        }
    }

    /// Prints the ended lines for good and removes the bars.
    fn freeze(&mut self, now: Duration, err: &Out) {
        let text: String = rows(&self.board, now).iter().fold(String::new(), |mut acc, r| {
            let _ = writeln!(acc, "{} {}", self.styles.symbol(r.status), r.text);
            acc
        });
        for (_, bar, _) in std::mem::take(&mut self.bars) {
            bar.finish_and_clear();
            self.mp.remove(&bar);
        }
        self.sync(now);
        if !text.is_empty() {
            self.mp.suspend(|| write_to(err, &text));
        }
    }
}

/// The live view: a [`Sink`] drawing on stderr while a person watches (see the module doc).
pub struct Live {
    inner: Arc<Mutex<Inner>>,
    out: Out,
    err: Out,
    verbose: u8,
    stop: Mutex<Option<mpsc::Sender<()>>>,
    ticker: Mutex<Option<JoinHandle<()>>>,
}

impl Live {
    /// Draws on the process's stderr; `out` and `err` receive the printed lines (the binary's
    /// stdout and stderr).
    pub fn stderr(out: Box<dyn Write + Send>, err: Box<dyn Write + Send>, verbose: u8, color: bool) -> Self {
        Self::with_draw_target(out, err, verbose, color, ProgressDrawTarget::stderr())
    }

    /// Draws on `target` (e.g. `ProgressDrawTarget::term_like` for an in-memory terminal).
    pub fn with_draw_target(
        out: Box<dyn Write + Send>,
        err: Box<dyn Write + Send>,
        verbose: u8,
        color: bool,
        target: ProgressDrawTarget,
    ) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            board: Board::default(),
            origin: Instant::now(),
            mp: MultiProgress::with_draw_target(target),
            header: None,
            bars: Vec::new(),
            styles: Styles { color },
        }));
        let (tx, rx) = mpsc::channel::<()>();
        let tick = Arc::clone(&inner);
        // One ticker for all lines (indicatif's steady tick would start a thread per bar).
        let ticker = std::thread::Builder::new()
            .name("deployer-live".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(TICK) {
                    if let Ok(mut i) = tick.lock() {
                        let now = i.now();
                        i.sync(now);
                    }
                }
            })
            .ok();
        Self {
            inner,
            out: Mutex::new(out),
            err: Mutex::new(err),
            verbose,
            stop: Mutex::new(Some(tx)),
            ticker: Mutex::new(ticker),
        }
    }

    /// Runs `f` with the lines hidden and not redrawn (a question to a person, say).
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match self.lock() {
            Some(inner) => inner.mp.suspend(f),
            None => f(),
        }
    }

    /// A copy of the board as it stands.
    pub fn board(&self) -> Board {
        self.lock().map(|i| i.board.clone()).unwrap_or_default()
    }

    fn lock(&self) -> Option<MutexGuard<'_, Inner>> {
        self.inner.lock().ok()
    }

    fn stop_ticker(&self) {
        if let Ok(mut s) = self.stop.lock() {
            s.take();
        }
        let handle = self.ticker.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Sink for Live {
    fn emit(&self, event: &Event) {
        let done = {
            let Some(mut inner) = self.lock() else { return };
            let now = inner.now();
            let was_settled = inner.board.settled;
            // With `-v` the bars are an addition: every line the plain view prints still prints.
            let absorbed = self.verbose == 0 && inner.board.absorbs(event);
            inner.board.apply(event, now);
            if inner.board.settled && !was_settled {
                inner.freeze(now, &self.err);
            } else {
                inner.sync(now);
            }
            let text = human_text(event, self.verbose, false);
            if !absorbed && let Some((stream, text)) = text {
                let w = match stream {
                    Stream::Out => &self.out,
                    Stream::Err => &self.err,
                };
                inner.mp.suspend(|| write_to(w, &text));
            }
            inner.board.done
        };
        if done {
            self.stop_ticker();
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.stop_ticker();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::events::{HealthFailure, ScanSummary};

    fn inputs() -> DisplayInputs {
        DisplayInputs {
            stderr_is_terminal: true,
            term: Some("xterm-256color".into()),
            ..DisplayInputs::default()
        }
    }

    #[test]
    fn live_only_for_a_person_at_a_capable_terminal() {
        assert_eq!(display(&inputs()), Display::Live { color: true });
        let plain = [
            DisplayInputs { stderr_is_terminal: false, ..inputs() },
            DisplayInputs { quiet: true, ..inputs() },
            DisplayInputs { machine_output: true, ..inputs() },
            DisplayInputs { github_actions: true, ..inputs() },
            DisplayInputs { term: Some("dumb".into()), ..inputs() },
        ];
        for i in plain {
            assert_eq!(display(&i), Display::Plain, "{i:?}");
        }
    }

    #[test]
    fn no_color_when_set_and_not_empty() {
        assert_eq!(
            display(&DisplayInputs { no_color: Some("1".into()), ..inputs() }),
            Display::Live { color: false }
        );
        assert_eq!(
            display(&DisplayInputs { no_color: Some(String::new()), ..inputs() }),
            Display::Live { color: true }
        );
        // TERM unset (some terminals do not set it) is not `dumb`.
        assert_eq!(display(&DisplayInputs { term: None, ..inputs() }), Display::Live { color: true });
    }

    #[test]
    fn inputs_from_the_environment() {
        let env: BTreeMap<&str, &str> =
            [("GITHUB_ACTIONS", "true"), ("TERM", "dumb"), ("NO_COLOR", "1")].into();
        let var = |k: &str| env.get(k).map(|v| (*v).to_owned());
        let i = DisplayInputs::from_env(true, false, false, &var);
        assert_eq!(
            i,
            DisplayInputs {
                stderr_is_terminal: true,
                quiet: false,
                machine_output: false,
                github_actions: true,
                term: Some("dumb".into()),
                no_color: Some("1".into()),
            }
        );
        let none = |_: &str| None;
        assert_eq!(
            display(&DisplayInputs::from_env(true, false, false, &none)),
            Display::Live { color: true }
        );
        let other = |k: &str| (k == "GITHUB_ACTIONS").then(|| "false".to_owned());
        assert_eq!(
            display(&DisplayInputs::from_env(true, false, false, &other)),
            Display::Live { color: true }
        );
    }

    #[test]
    fn durations_read_at_a_glance() {
        let d = |ms| duration(Duration::from_millis(ms));
        assert_eq!(
            [d(0), d(430), d(9_950), d(12_400), d(59_999), d(185_000), d(3_725_000)],
            ["0.0s", "0.4s", "9.9s", "12s", "59s", "3m05s", "1h02m"]
        );
    }

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    fn svc(service: &str, phase: Phase, message: &str) -> Event {
        Event::Service { service: service.into(), phase, message: message.into() }
    }

    fn scan(service: &str, passed: bool, critical: u32) -> Event {
        Event::ScanSummary(Box::new(ScanSummary {
            service: service.into(),
            digest: "sha256:00".into(),
            counts: [("CRITICAL".to_owned(), critical)].into(),
            passed,
            blocking: Vec::new(),
            ignored: Vec::new(),
            expired_ignores: Vec::new(),
            note: None,
        }))
    }

    fn release_started(services: &[&str]) -> Event {
        Event::ReleaseStarted {
            release_id: "r-20261123-0912-abc1234".into(),
            product: "shop".into(),
            environment: "dev".into(),
            git_sha: "abc1234def5678".into(),
            services: services.iter().map(|s| (*s).to_owned()).collect(),
            strategy: Some("rolling".into()),
        }
    }

    fn started(command: &str) -> Event {
        Event::Started { command: command.into(), product: None, environment: Some("dev".into()) }
    }

    /// The board after `(seconds, event)` pairs.
    fn feed(events: &[(f64, Event)]) -> Board {
        let mut b = Board::default();
        for (t, e) in events {
            b.apply(e, s(*t));
        }
        b
    }

    fn pushed(service: &str) -> Event {
        Event::ImagePushed {
            service: service.into(),
            repository: format!("123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/{service}"),
            digest: "sha256:4f2a9c0d1e7b3a5566778899aabbccddeeff00112233445566778899aabbccdd".into(),
        }
    }

    fn phase(p: Phase) -> Event {
        Event::PhaseStarted { phase: p }
    }

    /// Before the release: build, push, scan with one prebuilt image that skips the build.
    fn up_to_scan() -> Vec<(f64, Event)> {
        vec![
            (0.0, started("deploy")),
            (0.0, phase(Phase::Config)),
            (0.3, phase(Phase::Identity)),
            (0.5, svc("", Phase::Identity, "acting as arn:aws:iam::123456789012:role/deploy")),
            (0.9, planned()),
            (1.0, phase(Phase::Build)),
            (4.0, phase(Phase::Push)),
            (6.0, pushed("cart")),
            (6.0, pushed("web")),
            (6.0, pushed("payments")),
            (6.1, phase(Phase::Scan)),
            (7.0, scan("cart", true, 0)),
        ]
    }

    /// A plan of `web` and `cart` (built here) and `payments` (a prebuilt image).
    pub(crate) fn planned() -> Event {
        use crate::plan::{BuildPlan, Change, Gates, Plan, RenderPlan, ServicePlan};
        let service = |name: &str, build: bool| ServicePlan {
            name: name.into(),
            build: if build {
                BuildPlan::Build {
                    context: name.into(),
                    dockerfile: "Dockerfile".into(),
                    builder: "buildah".into(),
                }
            } else {
                BuildPlan::Prebuilt { reference: format!("ghcr.io/acme/{name}:1.4.2") }
            },
            image: crate::render::ImagePin {
                name: format!("shop/{name}"),
                new_name: format!("123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/{name}"),
                digest: None,
            },
            render: RenderPlan::Failed { error: "not rendered in this fixture".into() },
            change: Change::FirstDeploy,
            objects: Vec::new(),
            depends_on: Vec::new(),
            hooks: Vec::new(),
        };
        Event::Planned {
            plan: Box::new(Plan {
                product: "shop".into(),
                environment: "dev".into(),
                account_id: "123456789012".into(),
                region: "eu-west-1".into(),
                target: "eks".into(),
                strategy: crate::config::StrategyKind::Rolling,
                registry: "123456789012.dkr.ecr.eu-west-1.amazonaws.com".into(),
                git_sha: Some("abc1234def5678".into()),
                services: vec![service("web", true), service("cart", true), service("payments", false)],
                gates: Gates {
                    scan: "no CRITICAL".into(),
                    approval: None,
                    health: "rollout".into(),
                    rollback: "automatic".into(),
                },
                unobserved: Vec::new(),
                prune: Vec::new(),
                prune_needs_allow: false,
            }),
        }
    }

    #[test]
    fn prebuilt_images_skip_build_and_push_and_phases_move_forward() {
        let mut b = feed(&up_to_scan());
        let names = |b: &Board| -> Vec<(String, Option<Phase>)> {
            b.services.iter().map(|l| (l.name.clone(), l.phase)).collect()
        };
        assert_eq!(
            names(&b),
            [
                ("web".to_owned(), Some(Phase::Scan)),
                ("cart".to_owned(), Some(Phase::Scan)),
                ("payments".to_owned(), Some(Phase::Scan))
            ]
        );
        assert_eq!(b.services[0].started, Some(s(1.0)));
        assert_eq!(b.services[2].started, Some(s(6.1)), "prebuilt: starts with the scan");
        // Moving on clears the last phase's message, except into the bake (the watch goes on).
        b.apply(&phase(Phase::Render), s(7.5));
        assert_eq!(b.services[1].message, "");
        b.apply(&phase(Phase::Health), s(8.0));
        b.apply(&svc("web", Phase::Health, "Deployment/web: healthy"), s(9.0));
        b.apply(&phase(Phase::Bake), s(9.5));
        assert_eq!(
            (b.services[0].phase, b.services[0].message.as_str()),
            (Some(Phase::Bake), "Deployment/web: healthy")
        );
        // A health report while rolling back does not move the line back.
        b.apply(&phase(Phase::Rollback), s(10.0));
        b.apply(&svc("web", Phase::Health, "Deployment/web: 1/2 ready"), s(11.0));
        assert_eq!(b.services[0].phase, Some(Phase::Rollback));
        assert_eq!(b.services[0].message, "Deployment/web: 1/2 ready");
    }

    fn successful_release() -> Vec<(f64, Event)> {
        let mut e = up_to_scan();
        e.extend([
            (7.2, scan("web", true, 0)),
            (7.3, scan("payments", true, 0)),
            (7.4, phase(Phase::Render)),
            (8.0, phase(Phase::Lock)),
            (8.2, release_started(&["payments", "cart", "web"])),
            (8.3, phase(Phase::Apply)),
            (8.5, svc("payments", Phase::Apply, "applied Deployment/payments, Service/payments")),
            (8.6, svc("cart", Phase::Apply, "applied Deployment/cart")),
            (8.7, svc("web", Phase::Apply, "applied Deployment/web, Ingress/web")),
            (9.0, phase(Phase::Health)),
            (9.5, svc("payments", Phase::Health, "Deployment/payments: 1/2 ready")),
            (12.0, svc("payments", Phase::Health, "Deployment/payments: healthy")),
            (12.5, svc("web", Phase::Health, "Deployment/web: 0/3 ready, waiting for pods")),
        ]);
        e
    }

    #[test]
    fn frames_of_a_release_rolling_out() {
        let events = successful_release();
        let mut b = Board::default();
        let mut frames = String::new();
        for (i, (t, e)) in events.iter().enumerate() {
            b.apply(e, s(*t));
            if [4, 5, 11, 16, 20, events.len() - 1].contains(&i) {
                let _ = write!(frames, "--- at {t}s + 0.4s\n{}", frame(&b, s(t + 0.4)));
            }
        }
        insta::assert_snapshot!("live-rolling-out", frames);
    }

    #[test]
    fn lines_end_with_the_verdicts_and_the_release() {
        let mut events = successful_release();
        events.extend([
            (14.0, phase(Phase::Bake)),
            (20.0, Event::HealthVerdict { service: "payments".into(), verdict: Verdict::Healthy }),
            (20.0, Event::HealthVerdict { service: "cart".into(), verdict: Verdict::Healthy }),
            (20.0, Event::HealthVerdict { service: "web".into(), verdict: Verdict::Healthy }),
            (20.1, phase(Phase::Record)),
        ]);
        let mut b = feed(&events);
        let before_end = frame(&b, s(30.0));
        b.apply(
            &Event::ReleaseFinished {
                release_id: "r-20261123-0912-abc1234".into(),
                outcome: Outcome::Succeeded,
                environment_url: None,
                timings: Vec::new(),
            },
            s(20.5),
        );
        assert!(b.settled && !b.done);
        b.apply(&Event::finished(crate::error::ExitCode::Success, Vec::new()), s(21.0));
        assert!(b.done);
        assert_eq!(header(&b, s(22.0)), None, "the release line goes when the command ends");
        insta::assert_snapshot!(
            "live-succeeded",
            format!("{before_end}--- finished\n{}", frame(&b, s(99.0)))
        );
    }

    fn failure() -> Verdict {
        Verdict::Failed(Box::new(HealthFailure {
            workload: "Deployment/web".into(),
            pod: Some("web-7d9f-x2x".into()),
            container: Some("web".into()),
            reason: "CrashLoopBackOff".into(),
            restart_count: Some(3),
            message: Some("exit code 1".into()),
            logs: Vec::new(),
        }))
    }

    #[test]
    fn a_failure_rolls_every_line_back() {
        let mut events = successful_release();
        events.extend([
            (15.0, Event::HealthVerdict { service: "web".into(), verdict: failure() }),
            (15.1, phase(Phase::Rollback)),
            (
                15.1,
                Event::RollbackStarted {
                    to_release: Some("r-20261122-1700-0ff1ce0".into()),
                    reason: "web is unhealthy".into(),
                    digests: BTreeMap::new(),
                },
            ),
            // The rollback's own apply: the release line says whose apply it is.
            (15.2, phase(Phase::Apply)),
        ]);
        let mut b = feed(&events);
        let rolling = frame(&b, s(16.0));
        b.apply(
            &Event::RollbackFinished {
                to_release: Some("r-20261122-1700-0ff1ce0".into()),
                ok: true,
                digests: BTreeMap::new(),
                message: None,
            },
            s(25.0),
        );
        assert!(b.services.iter().all(|l| l.ended.is_some_and(|e| !e.ok)), "a rolled-back deploy failed");
        b.apply(
            &Event::ReleaseFinished {
                release_id: "r-20261123-0912-abc1234".into(),
                outcome: Outcome::FailedRolledBack,
                environment_url: None,
                timings: Vec::new(),
            },
            s(25.1),
        );
        insta::assert_snapshot!(
            "live-rolled-back",
            format!("{rolling}--- rolled back\n{}", frame(&b, s(99.0)))
        );
    }

    #[test]
    fn a_refused_image_stops_every_line_before_the_release() {
        let mut events = up_to_scan();
        events.extend([
            (7.2, scan("web", false, 2)),
            (7.3, scan("payments", true, 0)),
            (7.4, Event::PhaseFinished { phase: Phase::Scan, ok: false, elapsed_ms: 1300 }),
            (7.5, Event::finished(crate::error::ExitCode::ScanGate, Vec::new())),
        ]);
        let b = feed(&events);
        insta::assert_snapshot!("live-refused", frame(&b, s(99.0)));
    }

    #[test]
    fn the_rollback_command_makes_its_lines_from_the_events() {
        let b = feed(&[
            (0.0, started("rollback")),
            (0.1, phase(Phase::Identity)),
            (1.0, phase(Phase::Rollback)),
            (1.2, svc("cart", Phase::Rollback, "rolling shop-cart back to shop-cart:41 (release r-1)")),
            (1.2, svc("web", Phase::Rollback, "rolling shop-web back to shop-web:17 (release r-1)")),
            (3.0, svc("web", Phase::Health, "deployment ecs-svc/1: 1/2 running, 0 failed")),
        ]);
        let running = frame(&b, s(4.0));
        let mut done = b.clone();
        done.apply(&Event::finished(crate::error::ExitCode::Success, Vec::new()), s(6.0));
        insta::assert_snapshot!(
            "live-rollback-command",
            format!("{running}--- finished\n{}", frame(&done, s(9.0)))
        );
    }

    #[test]
    fn what_the_board_shows_is_not_printed_again() {
        let b = Board::default();
        assert!(b.absorbs(&svc("web", Phase::Apply, "applied")));
        assert!(!b.absorbs(&svc("", Phase::Identity, "acting as …")), "release-level facts print");
        assert!(b.absorbs(&scan("web", true, 0)));
        assert!(!b.absorbs(&scan("web", false, 1)), "a refusal prints in full");
        assert!(b.absorbs(&Event::HealthVerdict { service: "web".into(), verdict: Verdict::Healthy }));
        assert!(!b.absorbs(&Event::HealthVerdict { service: "web".into(), verdict: failure() }));
        assert!(!b.absorbs(&Event::Warning { message: "x".into() }));
        let settled = Board { settled: true, ..Board::default() };
        assert!(!settled.absorbs(&svc("web", Phase::Apply, "applied")), "after the table: plain lines");
    }
}
