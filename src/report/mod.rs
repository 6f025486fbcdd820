//! Renderers of the event stream: human text, JSON lines, GitHub Actions; and the notifiers.
//!
//! The library never prints on its own: the binary hands these sinks its stdout and stderr.
//! [`state::RunState`] is the run folded from events; [`markdown`] renders it for the PR
//! comment and the job summary; [`notify`] sends it to GitHub and Slack off the critical path.

pub mod diagnostics;
pub mod github;
pub mod live;
pub mod markdown;
pub mod notify;
pub mod state;

use std::fmt::Write as _;
use std::io::Write;
use std::sync::Mutex;

use crate::events::{Event, SCHEMA_VERSION, Sink};
use crate::plan;

/// A shared writer.
pub type Out = Mutex<Box<dyn Write + Send>>;

/// Readable text: results on stdout, progress and problems on stderr.
pub struct Human {
    out: Out,
    err: Out,
    verbose: u8,
    quiet: bool,
}

impl Human {
    pub fn new(out: Box<dyn Write + Send>, err: Box<dyn Write + Send>, verbose: u8, quiet: bool) -> Self {
        Self { out: Mutex::new(out), err: Mutex::new(err), verbose, quiet }
    }
}

pub(crate) fn write_to(w: &Out, text: &str) {
    if let Ok(mut w) = w.lock() {
        // A closed pipe (e.g. `| head`) must not turn into a failed deploy.
        let _ = w.write_all(text.as_bytes());
        let _ = w.flush();
    }
}

/// Which of the two streams a piece of human text goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Results: plans, tables, the release outcome.
    Out,
    /// Progress and problems.
    Err,
}

/// The text [`Human`] writes for `event` and where, or `None` when it writes nothing at this
/// verbosity. The live terminal view ([`live`]) prints the same text above its bars.
pub fn human_text(event: &Event, verbose: u8, quiet: bool) -> Option<(Stream, String)> {
    let out = |t: String| Some((Stream::Out, t));
    let err = |t: String| Some((Stream::Err, t));
    match event {
        Event::Planned { plan } => out(plan::render::text(plan)),
        Event::Table { title, columns, rows } => out(table_text(title, columns, rows)),
        Event::Validated { product, environments, services } => out(format!(
            "ok: product `{product}` ({services} services) and {} environment(s) [{}] are valid\n",
            environments.len(),
            environments.join(", ")
        )),
        Event::Warning { message } if !quiet => err(format!("warning: {message}\n")),
        Event::PhaseStarted { phase } if verbose > 0 => err(format!("→ {}\n", phase.title())),
        Event::PhaseFinished { phase, ok, elapsed_ms } if verbose > 0 => {
            err(format!("{} {} ({elapsed_ms} ms)\n", if *ok { "✓" } else { "✗" }, phase.title()))
        }
        // A release-level fact (no service) reads better without an empty `[]`.
        Event::Service { service, phase, message } if !quiet && service.is_empty() => {
            err(format!("{}: {message}\n", phase.title()))
        }
        Event::Service { service, phase, message } if !quiet => {
            err(format!("[{service}] {}: {message}\n", phase.title()))
        }
        Event::ReleaseStarted { release_id, product, environment, git_sha, services, .. } if !quiet => {
            let at = if git_sha.is_empty() {
                String::new()
            } else {
                format!(" at {}", &git_sha[..git_sha.len().min(12)])
            };
            err(format!("release {release_id}: {product} → {environment}{at} ({})\n", services.join(", ")))
        }
        Event::ImagePushed { service, digest, .. } if !quiet => err(format!("[{service}] pushed {digest}\n")),
        Event::ScanSummary(scan) if !quiet => err(format!(
            "[{}] scan gate {}: {}\n",
            scan.service,
            if scan.passed { "passed" } else { "REFUSED" },
            markdown::severity_counts(&scan.counts)
        )),
        Event::ServiceProgress { service, phase, message, .. } if verbose > 0 => {
            err(format!("[{service}] {}: {message}\n", phase.title()))
        }
        Event::HealthVerdict { service, verdict } if !quiet => err(match verdict {
            crate::events::Verdict::Healthy => format!("[{service}] healthy\n"),
            crate::events::Verdict::Failed(f) => {
                format!("[{service}] UNHEALTHY: {}\n", markdown::failure_plain(f))
            }
        }),
        Event::Hook { .. } if !quiet => {
            let run = state::HookRun::of(event)?;
            let mut s = format!("[{}] {}\n", run.service, markdown::hook_plain(&run));
            // The log tail is what a failed migration is debugged from: on stderr, whole.
            for line in run.failure.iter().flat_map(|f| &f.logs) {
                let _ = writeln!(s, "    | {line}");
            }
            err(s)
        }
        Event::RollbackStarted { to_release, reason, .. } if !quiet => err(format!(
            "rolling back to {} because {reason}\n",
            to_release.as_deref().unwrap_or("the previous release")
        )),
        Event::RollbackFinished { to_release, ok, message, .. } if !quiet => {
            let to = to_release.as_deref().unwrap_or("the previous release");
            let mut s = if *ok { format!("rolled back to {to}") } else { format!("ROLLBACK to {to} FAILED") };
            if let Some(m) = message {
                let _ = write!(s, ": {m}");
            }
            s.push('\n');
            err(s)
        }
        Event::ReleaseFinished { release_id, outcome, environment_url, .. } => {
            let mut s = format!("release {release_id}: {}", outcome.name());
            if let Some(u) = environment_url {
                let _ = write!(s, " → {u}");
            }
            s.push('\n');
            out(s)
        }
        Event::Finished { problems, .. } => err(problems.iter().fold(String::new(), |mut acc, p| {
            let _ = writeln!(acc, "{p}");
            acc
        })),
        _ => None,
    }
}

impl Sink for Human {
    fn emit(&self, event: &Event) {
        match human_text(event, self.verbose, self.quiet) {
            Some((Stream::Out, text)) => write_to(&self.out, &text),
            Some((Stream::Err, text)) => write_to(&self.err, &text),
            None => {}
        }
    }
}

/// One JSON object per line on stdout: `{"v":1,"ts":"…","event":"…",…}`.
pub struct JsonLines {
    out: Out,
}

impl JsonLines {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self { out: Mutex::new(out) }
    }
}

impl Sink for JsonLines {
    fn emit(&self, event: &Event) {
        let mut v = serde_json::to_value(event).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            m.insert("v".into(), SCHEMA_VERSION.into());
            m.insert("ts".into(), now_rfc3339().into());
        }
        write_to(&self.out, &format!("{v}\n"));
    }
}

pub use crate::support::now_rfc3339;

/// A plain-text table with aligned columns.
pub fn table_text(title: &str, columns: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &[String]| {
        let mut l = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join("  ");
        l.truncate(l.trim_end().len());
        l + "\n"
    };
    let mut out = format!("{title}\n");
    out.push_str(&line(columns));
    for r in rows {
        out.push_str(&line(r));
    }
    if rows.is_empty() {
        out.push_str("(none)\n");
    }
    out
}
