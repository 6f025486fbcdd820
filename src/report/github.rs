//! GitHub Actions conventions: log groups, annotations, the job summary and step outputs.
//!
//! Formats follow the runner's command and file-command parsers (see shared/CONTRACTS.md §1):
//! data escapes `%`, CR, LF; properties also `:` and `,`; multi-line outputs use a random
//! delimiter that cannot occur in the value.
//!
//! A deploy's job summary (per-service table, what failed, the rollback, a Mermaid gantt of the
//! phases) and its step outputs (`release-id`, `digests`, `result`, `rolled-back`,
//! `environment-url`) are written when the command finishes, from the [`RunState`] this
//! renderer folds; [`write_outputs`] and [`markdown::job_summary`] are usable on their own.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::markdown::{self, Links, SUMMARY_LIMIT};
use super::state::{RunState, Stage};
use super::{Out, write_to};
use crate::events::{Event, Outcome, Sink};
use crate::plan;

/// Escapes a command's message.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escapes a command property value.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Appends `name=value` (or the heredoc form for multi-line values) to a GITHUB_OUTPUT-style file.
pub fn append_output(path: &std::path::Path, name: &str, value: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    if value.contains('\n') || value.contains('\r') {
        let mut delim = format!("ghadelimiter_{:032x}", rand::random::<u128>());
        while value.contains(&delim) {
            delim = format!("ghadelimiter_{:032x}", rand::random::<u128>());
        }
        writeln!(f, "{name}<<{delim}\n{value}\n{delim}")
    } else {
        writeln!(f, "{name}={value}")
    }
}

/// Writes a release's step outputs: `release-id`, `digests` (JSON object service → digest),
/// `rolled-back` (`true`/`false`) and `environment-url` (when known). `result` is written by the
/// renderer from the `finished` event.
pub fn write_outputs(path: &Path, state: &RunState) -> std::io::Result<()> {
    if let Some(id) = &state.release_id {
        append_output(path, "release-id", id)?;
    }
    let digests = serde_json::to_string(&state.digests()).map_err(std::io::Error::other)?;
    append_output(path, "digests", &digests)?;
    append_output(path, "rolled-back", if state.rolled_back() { "true" } else { "false" })?;
    if let Some(u) = &state.environment_url {
        append_output(path, "environment-url", u)?;
    }
    Ok(())
}

/// The GitHub Actions renderer.
pub struct Github {
    out: Out,
    summary: Option<PathBuf>,
    output: Option<PathBuf>,
    open_group: Mutex<bool>,
    state: Mutex<RunState>,
    links: Links,
}

impl Github {
    /// `summary` and `output` are the `GITHUB_STEP_SUMMARY` and `GITHUB_OUTPUT` paths.
    pub fn new(
        out: Box<dyn std::io::Write + Send>,
        summary: Option<PathBuf>,
        output: Option<PathBuf>,
    ) -> Self {
        Self {
            out: Mutex::new(out),
            summary,
            output,
            open_group: Mutex::new(false),
            state: Mutex::new(RunState::default()),
            links: Links::default(),
        }
    }

    /// Links (run log, commits) for the job summary; see [`super::notify::github::links_from_env`].
    pub fn with_links(mut self, links: Links) -> Self {
        self.links = links;
        self
    }

    /// The deploy's summary and outputs, once a release was started (or refused by the gate).
    fn finish_release(&self) {
        let Ok(state) = self.state.lock().map(|s| s.clone()) else { return };
        if state.release_id.is_none() && state.stage() != Stage::Done(Outcome::RefusedByGate) {
            return;
        }
        if let Some(path) = &self.summary {
            let used = std::fs::metadata(path).map_or(0, |m| usize::try_from(m.len()).unwrap_or(usize::MAX));
            let room = SUMMARY_LIMIT.saturating_sub(used);
            if room > 1024 {
                self.append_summary(&markdown::job_summary(&state, &self.links, room));
            }
        }
        if let Some(path) = &self.output
            && let Err(e) = write_outputs(path, &state)
        {
            write_to(
                &self.out,
                &format!("::warning::{}\n", escape_data(&format!("cannot write step outputs: {e}"))),
            );
        }
    }

    fn append_summary(&self, text: &str) {
        let Some(path) = &self.summary else { return };
        let res = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        if let Err(e) = res {
            write_to(
                &self.out,
                &format!("::warning::{}\n", escape_data(&format!("cannot write the job summary: {e}"))),
            );
        }
    }

    fn set_output(&self, name: &str, value: &str) {
        let Some(path) = &self.output else { return };
        if let Err(e) = append_output(path, name, value) {
            write_to(
                &self.out,
                &format!("::warning::{}\n", escape_data(&format!("cannot write step output {name}: {e}"))),
            );
        }
    }

    fn close_group(&self) {
        if let Ok(mut open) = self.open_group.lock()
            && *open
        {
            write_to(&self.out, "::endgroup::\n");
            *open = false;
        }
    }
}

impl Sink for Github {
    fn emit(&self, event: &Event) {
        if let Ok(mut st) = self.state.lock() {
            st.apply(event);
        }
        match event {
            Event::PhaseStarted { phase } => {
                self.close_group();
                write_to(&self.out, &format!("::group::{}\n", escape_data(phase.title())));
                if let Ok(mut open) = self.open_group.lock() {
                    *open = true;
                }
            }
            Event::PhaseFinished { phase, ok, elapsed_ms } => {
                write_to(
                    &self.out,
                    &format!("{} {} ({elapsed_ms} ms)\n", if *ok { "✓" } else { "✗" }, phase.title()),
                );
                self.close_group();
            }
            Event::Planned { plan } => {
                write_to(&self.out, &plan::render::text(plan));
                self.append_summary(&plan::render::markdown(plan));
            }
            Event::Validated { product, environments, services } => write_to(
                &self.out,
                &format!(
                    "ok: product `{product}` ({services} services) and environments [{}] are valid\n",
                    environments.join(", ")
                ),
            ),
            Event::Unobserved { what, reason } => {
                write_to(
                    &self.out,
                    &format!(
                        "::notice title={}::{}\n",
                        escape_property(&format!("not observed: {what}")),
                        escape_data(reason)
                    ),
                );
            }
            Event::Warning { message } => {
                write_to(&self.out, &format!("::warning::{}\n", escape_data(message)));
            }
            Event::Service { service, phase, message }
            | Event::ServiceProgress { service, phase, message, .. } => {
                write_to(&self.out, &format!("[{service}] {}: {message}\n", phase.title()));
            }
            Event::ReleaseStarted { release_id, product, environment, git_sha, .. } => write_to(
                &self.out,
                &format!("release {release_id}: {product} → {environment} at {git_sha}\n"),
            ),
            Event::ImagePushed { service, digest, .. } => {
                write_to(&self.out, &format!("[{service}] pushed {digest}\n"));
            }
            Event::ScanSummary(scan) => {
                let counts = markdown::severity_counts(&scan.counts);
                if scan.passed {
                    write_to(&self.out, &format!("[{}] scan gate passed: {counts}\n", scan.service));
                } else {
                    write_to(
                        &self.out,
                        &format!(
                            "::error title={}::{}\n",
                            escape_property(&format!("scan gate refused {}", scan.service)),
                            escape_data(&format!(
                                "{counts}; blocking: {}",
                                scan.blocking.iter().map(|f| f.id.as_str()).collect::<Vec<_>>().join(", ")
                            ))
                        ),
                    );
                }
                for i in &scan.expired_ignores {
                    write_to(
                        &self.out,
                        &format!(
                            "::warning title={}::{}\n",
                            escape_property(&format!("expired scan ignore in {}", scan.service)),
                            escape_data(&format!(
                                "{} expired on {} and counts again ({})",
                                i.id, i.expires, i.reason
                            ))
                        ),
                    );
                }
            }
            Event::HealthVerdict { service, verdict } => match verdict {
                crate::events::Verdict::Healthy => write_to(&self.out, &format!("[{service}] healthy\n")),
                crate::events::Verdict::Failed(f) => write_to(
                    &self.out,
                    &format!(
                        "::error title={}::{}\n",
                        escape_property(&format!("{service} is unhealthy")),
                        escape_data(&markdown::failure_plain(f))
                    ),
                ),
            },
            Event::Hook { .. } => {
                let Some(run) = super::state::HookRun::of(event) else { return };
                let line = markdown::hook_plain(&run);
                if run.status == crate::events::HookStatus::Failed {
                    let logs = run.failure.iter().flat_map(|f| &f.logs).fold(String::new(), |mut acc, l| {
                        acc.push('\n');
                        acc.push_str(l);
                        acc
                    });
                    write_to(
                        &self.out,
                        &format!(
                            "::error title={}::{}\n",
                            escape_property(&format!(
                                "{} hook {} of {} failed",
                                run.stage, run.hook, run.service
                            )),
                            escape_data(&format!("{line}{logs}"))
                        ),
                    );
                } else {
                    write_to(&self.out, &format!("[{}] {line}\n", run.service));
                }
            }
            Event::RollbackStarted { to_release, reason, .. } => write_to(
                &self.out,
                &format!(
                    "rolling back to {}: {reason}\n",
                    to_release.as_deref().unwrap_or("the previous release")
                ),
            ),
            Event::RollbackFinished { to_release, ok, .. } => {
                let to = to_release.as_deref().unwrap_or("the previous release");
                if *ok {
                    write_to(&self.out, &format!("rolled back to {to}\n"));
                } else {
                    write_to(
                        &self.out,
                        &format!(
                            "::error title=rollback failed::{}\n",
                            escape_data(&format!("restoring {to} did not complete; manual action needed"))
                        ),
                    );
                }
            }
            Event::ReleaseFinished { release_id, outcome, .. } => {
                write_to(&self.out, &format!("release {release_id}: {}\n", outcome.name()));
            }
            Event::Finished { result, problems, .. } => {
                self.close_group();
                for p in problems {
                    let mut props = Vec::new();
                    if let Some(f) = &p.file {
                        props.push(format!("file={}", escape_property(f)));
                    }
                    if let Some(l) = p.line {
                        props.push(format!("line={l}"));
                    }
                    if let Some(c) = p.column {
                        props.push(format!("col={c}"));
                    }
                    props.push("title=deployer".to_owned());
                    let msg = match &p.hint {
                        Some(h) => format!("{}\nhint: {h}", p.message),
                        None => p.message.clone(),
                    };
                    write_to(&self.out, &format!("::error {}::{}\n", props.join(","), escape_data(&msg)));
                }
                self.set_output("result", result);
                self.finish_release();
            }
            Event::Table { title, columns, rows } => {
                write_to(&self.out, &super::table_text(title, columns, rows));
            }
            Event::Started { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_the_runner() {
        assert_eq!(escape_data("a%b\r\nc"), "a%25b%0D%0Ac");
        assert_eq!(escape_property("x:y,z"), "x%3Ay%2Cz");
    }

    #[test]
    fn multiline_outputs_use_a_delimiter() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out");
        append_output(&p, "a", "1").unwrap();
        append_output(&p, "b", "x\ny").unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "a=1");
        assert!(lines[1].starts_with("b<<ghadelimiter_"));
        assert_eq!(&lines[2..4], &["x", "y"]);
        assert_eq!(lines[4], lines[1].trim_start_matches("b<<"));
    }
}

#[cfg(test)]
mod refused {
    use super::*;

    #[test]
    fn a_refused_gate_gets_a_job_summary_without_a_release() {
        let dir = tempfile::tempdir().unwrap();
        let summary = dir.path().join("summary.md");
        let g = Github::new(Box::new(std::io::sink()), Some(summary.clone()), None);
        g.emit(&Event::Started {
            command: "deploy".into(),
            product: Some("shop".into()),
            environment: Some("dev".into()),
        });
        g.emit(&Event::finished(crate::error::ExitCode::ScanGate, Vec::new()));
        let text = std::fs::read_to_string(&summary).unwrap();
        assert!(text.contains("## ⛔ shop: deploy to dev refused by the gate; nothing changed"), "{text}");
        // Another command ending with the same code is not a refused deploy.
        let other = dir.path().join("other.md");
        let g = Github::new(Box::new(std::io::sink()), Some(other.clone()), None);
        g.emit(&Event::Started { command: "promote".into(), product: None, environment: None });
        g.emit(&Event::finished(crate::error::ExitCode::ScanGate, Vec::new()));
        assert!(!other.exists());
    }
}
