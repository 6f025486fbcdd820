//! The one event stream every phase writes to.
//!
//! Renderers (terminal, plain CI log, GitHub log groups and summary, JSON lines) and notifiers
//! only ever see [`Event`]s, so what a person reads, what a machine parses and what GitHub or
//! Slack show cannot disagree. The JSON form is versioned by [`SCHEMA_VERSION`].

use std::sync::Mutex;

use serde::Serialize;

use crate::error::{ExitCode, Problem};
use crate::plan::Plan;

/// Version of the JSON-lines event format (`--output json`); bumped on incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// A phase of a command, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Config,
    Observe,
    Plan,
    Identity,
    Build,
    Push,
    Scan,
    Render,
    Lock,
    Apply,
    Health,
    Bake,
    Record,
    Rollback,
    Report,
}

impl Phase {
    pub const fn title(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Observe => "observe",
            Self::Plan => "plan",
            Self::Identity => "identity",
            Self::Build => "build",
            Self::Push => "push",
            Self::Scan => "scan gate",
            Self::Render => "render",
            Self::Lock => "lock",
            Self::Apply => "apply",
            Self::Health => "health",
            Self::Bake => "bake",
            Self::Record => "record",
            Self::Rollback => "rollback",
            Self::Report => "report",
        }
    }
}

/// Something that happened.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A command began.
    Started { command: String, product: Option<String>, environment: Option<String> },
    /// A phase began.
    PhaseStarted { phase: Phase },
    /// A phase ended.
    PhaseFinished { phase: Phase, ok: bool, elapsed_ms: u64 },
    /// A fact about one service's progress.
    Service { service: String, phase: Phase, message: String },
    /// Something could not be looked at; the plan says so instead of guessing.
    Unobserved { what: String, reason: String },
    /// A non-fatal problem (e.g. a notifier failed).
    Warning { message: String },
    /// The computed plan.
    Planned { plan: Box<Plan> },
    /// Configuration checked.
    Validated { product: String, environments: Vec<String>, services: usize },
    /// The command ended.
    Finished {
        result: &'static str,
        exit_code: u8,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        problems: Vec<Problem>,
    },
}

impl Event {
    pub fn finished(code: ExitCode, problems: Vec<Problem>) -> Self {
        Self::Finished { result: code.name(), exit_code: code.code(), problems }
    }
}

/// Receives events. Implemented by renderers and notifiers.
pub trait Sink: Send + Sync {
    fn emit(&self, event: &Event);
}

/// Fans one event out to several sinks, in order.
#[derive(Default)]
pub struct Fanout {
    sinks: Vec<Box<dyn Sink>>,
}

impl Fanout {
    pub fn new(sinks: Vec<Box<dyn Sink>>) -> Self {
        Self { sinks }
    }
}

impl Sink for Fanout {
    fn emit(&self, event: &Event) {
        for s in &self.sinks {
            s.emit(event);
        }
    }
}

/// Keeps every event (tests, and the end-of-run summary).
#[derive(Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl Sink for Recorder {
    fn emit(&self, event: &Event) {
        if let Ok(mut e) = self.events.lock() {
            e.push(event.clone());
        }
    }
}
