//! GitHub Actions conventions: log groups, annotations, the job summary and step outputs.
//!
//! Formats follow the runner's command and file-command parsers (see shared/CONTRACTS.md §1):
//! data escapes `%`, CR, LF; properties also `:` and `,`; multi-line outputs use a random
//! delimiter that cannot occur in the value.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

use super::{Out, write_to};
use crate::events::{Event, Sink};
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

/// The GitHub Actions renderer.
pub struct Github {
    out: Out,
    summary: Option<PathBuf>,
    output: Option<PathBuf>,
    open_group: Mutex<bool>,
}

impl Github {
    /// `summary` and `output` are the `GITHUB_STEP_SUMMARY` and `GITHUB_OUTPUT` paths.
    pub fn new(
        out: Box<dyn std::io::Write + Send>,
        summary: Option<PathBuf>,
        output: Option<PathBuf>,
    ) -> Self {
        Self { out: Mutex::new(out), summary, output, open_group: Mutex::new(false) }
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
            Event::Service { service, phase, message } => {
                write_to(&self.out, &format!("[{service}] {}: {message}\n", phase.title()));
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
