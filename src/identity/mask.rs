//! Masking: `::add-mask::` lines for every secret deployer obtains.
//!
//! GitHub Actions hides a value from the log only after it has seen `::add-mask::VALUE`. The
//! value is escaped like any workflow-command data (`%` → `%25`, CR → `%0D`, LF → `%0A`): the
//! runner then masks the whole value and each of its lines, whereas a raw multi-line value would
//! mask its first line and leak the rest. The library never prints: the [`Masker`] collects the
//! lines and the caller writes them before anything else.

use std::sync::Mutex;

/// Escapes workflow-command data (`%`, CR, LF).
pub fn escape_data(value: &str) -> String {
    value.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// The `::add-mask::` line for `value` (without a trailing newline).
pub fn add_mask_line(value: &str) -> String {
    format!("::add-mask::{}", escape_data(value))
}

/// Secrets seen so far; new ones wait in a queue until the caller takes their mask lines.
///
/// Refreshing credentials and EKS tokens add their new values here, so a long deploy masks the
/// credentials of minute 60 as well as those of minute 0.
#[derive(Default)]
pub struct Masker {
    inner: Mutex<MaskerState>,
    sink: Option<Sink>,
}

type Sink = Box<dyn Fn(String) + Send + Sync>;

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker").field("sink", &self.sink.is_some()).finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct MaskerState {
    seen: std::collections::BTreeSet<String>,
    pending: Vec<String>,
}

impl Masker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A masker that hands each new `::add-mask::` line to `sink` at once instead of queueing
    /// it (the binary passes a function that writes to stdout, so a secret obtained by a
    /// refresh in the middle of a deploy is masked before anything can print it).
    pub fn with_sink(sink: impl Fn(String) + Send + Sync + 'static) -> Self {
        Self { inner: Mutex::default(), sink: Some(Box::new(sink)) }
    }

    /// Records a secret (empty and already-seen values are ignored).
    pub fn add(&self, value: &str) {
        if value.trim().is_empty() {
            return;
        }
        let mut s = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if s.seen.insert(value.to_owned()) {
            match &self.sink {
                Some(sink) => sink(add_mask_line(value)),
                None => s.pending.push(value.to_owned()),
            }
        }
    }

    /// The `::add-mask::` lines for the secrets added since the last call, in the order added.
    pub fn take_lines(&self) -> Vec<String> {
        let mut s = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::take(&mut s.pending).iter().map(|v| add_mask_line(v)).collect()
    }

    /// Every secret recorded so far (e.g. to scrub text written somewhere other than the log).
    pub fn values(&self) -> Vec<String> {
        let s = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        s.seen.iter().cloned().collect()
    }

    /// Replaces every recorded secret in `text` with `***`.
    pub fn scrub(&self, text: &str) -> String {
        let mut values = self.values();
        // Longest first, so a secret containing another is replaced whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.iter().fold(text.to_owned(), |acc, v| acc.replace(v.as_str(), "***"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_percent_cr_lf() {
        assert_eq!(add_mask_line("a%b\r\nc\nd"), "::add-mask::a%25b%0D%0Ac%0Ad");
        assert_eq!(add_mask_line("plain"), "::add-mask::plain");
        // `%` first: an existing `%0A` in the value must not become a newline.
        assert_eq!(escape_data("%0A"), "%250A");
    }

    #[test]
    fn masker_queues_each_secret_once() {
        let m = Masker::new();
        m.add("secret-1");
        m.add("");
        m.add("secret-1");
        m.add("line1\nline2");
        assert_eq!(m.take_lines(), vec!["::add-mask::secret-1", "::add-mask::line1%0Aline2"]);
        assert!(m.take_lines().is_empty());
        m.add("secret-2");
        assert_eq!(m.take_lines(), vec!["::add-mask::secret-2"]);
        assert_eq!(m.scrub("x secret-1 y secret-2"), "x *** y ***");
    }

    #[test]
    fn a_sink_gets_lines_at_once() {
        let out = std::sync::Arc::new(Mutex::new(Vec::new()));
        let o = out.clone();
        let m = Masker::with_sink(move |l| o.lock().unwrap().push(l));
        m.add("a\nb");
        m.add("a\nb");
        assert_eq!(*out.lock().unwrap(), vec!["::add-mask::a%0Ab".to_owned()]);
        assert!(m.take_lines().is_empty());
    }
}
