//! Masking: `::add-mask::` lines for every secret deployer obtains.
//!
//! GitHub Actions hides a value from the log only after it has seen `::add-mask::VALUE`. The
//! value is escaped like any workflow-command data (`%` → `%25`, CR → `%0D`, LF → `%0A`): the
//! runner then masks the whole value and each of its lines, whereas a raw multi-line value would
//! mask its first line and leak the rest. The library never prints: the [`Masker`] collects the
//! lines and the caller writes them before anything else.
//!
//! What is registered, and when (every command, before first use):
//! - at start, [`Masker::add_env`]: the credentials in the process environment ([`SECRET_VARS`]:
//!   registry password, GitHub token, the OIDC request token, static AWS keys) and the content of
//!   the web-identity token file;
//! - once the environment is known, [`Masker::add_notifications`]: the Slack webhook URL and bot
//!   token named by `notifications.slack`;
//! - as they are obtained: the OIDC JWT and STS credentials (`sts.rs`), EKS tokens and the
//!   credentials of a kubeconfig user (`eks.rs`).

use std::sync::Mutex;

/// Escapes workflow-command data (`%`, CR, LF).
pub fn escape_data(value: &str) -> String {
    value.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// The `::add-mask::` line for `value` (without a trailing newline).
pub fn add_mask_line(value: &str) -> String {
    format!("::add-mask::{}", escape_data(value))
}

/// Environment variables whose values are credentials deployer reads (itself, or through the
/// AWS SDK's credential chain).
pub const SECRET_VARS: [&str; 5] = [
    "DEPLOYER_REGISTRY_PASSWORD",
    "GITHUB_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// Whether `name` can be an environment variable's name (what a `*_env` setting must hold). A
/// setting that is not one most likely holds the secret itself.
pub fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
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

    /// Registers the credentials in the process environment ([`SECRET_VARS`], and the content of
    /// `AWS_WEB_IDENTITY_TOKEN_FILE`). Every command calls this first.
    pub fn add_env(&self, var: &dyn Fn(&str) -> Option<String>) {
        for name in SECRET_VARS {
            if let Some(v) = var(name) {
                self.add_value(&v);
            }
        }
        if let Some(path) = var("AWS_WEB_IDENTITY_TOKEN_FILE").filter(|p| !p.is_empty())
            && let Ok(token) = std::fs::read_to_string(path)
        {
            self.add_value(&token);
        }
    }

    /// Registers the Slack webhook URL and bot token that `notifications.slack` names. A setting
    /// that is not a variable name is taken for the secret itself and masked as well.
    pub fn add_notifications(
        &self,
        notifications: &crate::config::Notifications,
        var: &dyn Fn(&str) -> Option<String>,
    ) {
        let Some(slack) = &notifications.slack else { return };
        for name in [&slack.webhook_url_env, &slack.token_env].into_iter().flatten() {
            if is_var_name(name) {
                if let Some(v) = var(name) {
                    self.add_value(&v);
                }
            } else {
                self.add_value(name);
            }
        }
    }

    /// A secret as it was read: the value, and the value without surrounding whitespace (a
    /// file's trailing newline, a pasted space), which is what gets sent and could be printed.
    fn add_value(&self, value: &str) {
        self.add(value);
        self.add(value.trim());
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
    fn credentials_in_the_environment_and_slack_settings_are_registered() {
        let vars = |k: &str| match k {
            "DEPLOYER_REGISTRY_PASSWORD" => Some("registry-pw".to_owned()),
            "GITHUB_TOKEN" => Some("ghs_token".to_owned()),
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN" => Some("oidc-request".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("aws-secret".to_owned()),
            "AWS_SESSION_TOKEN" => Some("aws-session".to_owned()),
            "HOOK" => Some("https://hooks.example/T/B/X\n".to_owned()),
            "TOK" => Some("xoxb-1".to_owned()),
            "USER" => Some("octocat".to_owned()),
            _ => None,
        };
        let m = Masker::new();
        m.add_env(&vars);
        let slack = |hook: &str| crate::config::Notifications {
            github: None,
            slack: Some(crate::config::SlackNotify {
                webhook_url_env: Some(hook.to_owned()),
                token_env: Some("TOK".to_owned()),
                channel: None,
            }),
        };
        m.add_notifications(&slack("HOOK"), &vars);
        // A URL where the variable's name belongs is masked too.
        m.add_notifications(&slack("https://hooks.example/T/B/inline"), &vars);
        let values = m.values();
        for v in [
            "registry-pw",
            "ghs_token",
            "oidc-request",
            "aws-secret",
            "aws-session",
            "https://hooks.example/T/B/X",
            "xoxb-1",
            "https://hooks.example/T/B/inline",
        ] {
            assert!(values.iter().any(|x| x == v), "{v} not registered: {values:?}");
        }
        assert!(!values.iter().any(|x| x == "octocat"));
        assert!(is_var_name("SLACK_WEBHOOK_URL") && is_var_name("_x1"));
        assert!(!is_var_name("https://hooks.slack.com/x") && !is_var_name("1A") && !is_var_name(""));
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
