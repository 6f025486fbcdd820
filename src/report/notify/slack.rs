//! Slack: one message per deploy, updated in place (bot token), or a start and an end message
//! (incoming webhook, which cannot edit).
//!
//! Contracts in shared/CONTRACTS.md §8. Bot: `chat.postMessage` once the release starts, then
//! `chat.update` of that `channel`/`ts` at each stage, and on failure a threaded reply
//! (`thread_ts`) with what failed and what the rollback did. Webhook: a `{text, blocks}` POST at
//! the start and at the end; its errors are plain text. Every message stays within Block Kit
//! limits (≤ 50 blocks, section text ≤ 3000, header ≤ 150 characters). The bot API base is
//! `SLACK_API_URL` (default `https://slack.com/api`).

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::http::{self, NotifyError};
use super::{Notifier, Options};
use crate::config::SlackNotify;
use crate::events::{Outcome, Verdict};
use crate::report::markdown::{self, Links, human_ms, severity_counts};
use crate::report::state::{RunState, Stage, short_digest};
use crate::support::VarFn;

/// Default Slack Web API base.
pub const DEFAULT_API_URL: &str = "https://slack.com/api";

const MAX_BLOCKS: usize = 50;
const MAX_SECTION: usize = 3000;
const MAX_HEADER: usize = 150;

/// Where messages go.
#[derive(Clone)]
pub enum Kind {
    Webhook { url: String },
    Bot { api_url: String, token: String, channel: String },
}

impl std::fmt::Debug for Kind {
    // Webhook URLs and tokens are secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Webhook { .. } => f.write_str("Webhook { url: *** }"),
            Self::Bot { api_url, channel, .. } => {
                write!(f, "Bot {{ api_url: {api_url}, channel: {channel}, token: *** }}")
            }
        }
    }
}

/// A configured Slack destination.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: Kind,
    pub links: Links,
}

impl Target {
    /// The bot token wins when both are configured: only it can update the message.
    ///
    /// The error (a warning for the log) names the setting, and the variable it names, never a
    /// value: a setting that holds the URL or token itself instead of a variable's name, or a
    /// variable that holds something other than a URL, is reported without echoing it.
    pub fn from_config(cfg: &SlackNotify, var: VarFn<'_>) -> Result<Self, String> {
        let links = super::github::links_from_env(var);
        if let (Some(token_env), Some(channel)) = (&cfg.token_env, &cfg.channel) {
            let token = from_var(var, token_env, "notifications.slack.token_env", "the bot token")?;
            let api_url = var("SLACK_API_URL")
                .unwrap_or_else(|| DEFAULT_API_URL.to_owned())
                .trim_end_matches('/')
                .to_owned();
            return Ok(Self { kind: Kind::Bot { api_url, token, channel: channel.clone() }, links });
        }
        if let Some(env) = &cfg.webhook_url_env {
            const SETTING: &str = "notifications.slack.webhook_url_env";
            let url = from_var(var, env, SETTING, "the incoming-webhook URL")?;
            let parsed = url::Url::parse(url.trim()).ok().filter(|u| matches!(u.scheme(), "https" | "http"));
            if parsed.is_none() {
                return Err(format!(
                    "`{env}` ({SETTING}) does not hold an http(s) URL (its value is not shown); \
                     set it to the incoming-webhook URL Slack gave you"
                ));
            }
            return Ok(Self { kind: Kind::Webhook { url: url.trim().to_owned() }, links });
        }
        Err("set `webhook_url_env`, or `token_env` and `channel`".to_owned())
    }
}

/// The value of the variable a `*_env` setting names; the error names the setting (and the
/// variable, when the setting holds a variable's name), never what the setting holds otherwise.
fn from_var(var: VarFn<'_>, name: &str, setting: &str, what: &str) -> Result<String, String> {
    if !crate::identity::mask::is_var_name(name) {
        return Err(format!(
            "`{setting}` must name an environment variable, but holds something else (not shown: it may be \
             {what} itself); put {what} in a secret, pass it as a variable, and name that variable here"
        ));
    }
    var(name)
        .filter(|t| !t.trim().is_empty())
        .ok_or(format!("`{name}` ({setting}) is not set; pass {what} as a secret"))
}

/// An error with `secret` (and, for a URL, its path, which is the secret part of a webhook URL)
/// cut out of whatever the server answered.
fn scrubbed(e: NotifyError, secret: &str) -> NotifyError {
    let mut parts = vec![secret.to_owned()];
    if let Ok(u) = url::Url::parse(secret)
        && u.path().len() > 1
    {
        parts.push(u.path().to_owned());
        parts.push(u.path().trim_start_matches('/').to_owned());
    }
    let scrub =
        |text: String| parts.iter().filter(|p| !p.is_empty()).fold(text, |t, p| t.replace(p.as_str(), "***"));
    match e {
        NotifyError::Status { what, status, body } => NotifyError::Status { what, status, body: scrub(body) },
        NotifyError::Transport { what, host, reason } => {
            NotifyError::Transport { what, host, reason: scrub(reason) }
        }
        NotifyError::Slack { what, error } => NotifyError::Slack { what, error: scrub(error) },
        NotifyError::Other(m) => NotifyError::Other(scrub(m)),
        e @ NotifyError::RateLimited { .. } => e,
    }
}

/// The Slack notifier.
pub struct Slack {
    target: Target,
    client: reqwest::Client,
    opts: Options,
    /// Bot: the message being updated.
    message: Option<(String, String)>,
    last: Option<Value>,
    /// Webhook: the end message is sent.
    sent_final: bool,
    replied: bool,
}

impl Slack {
    pub fn new(target: Target, opts: Options) -> Result<Self, NotifyError> {
        Ok(Self {
            target,
            client: http::client(opts)?,
            opts,
            message: None,
            last: None,
            sent_final: false,
            replied: false,
        })
    }

    async fn api(&self, method: &str, body: &Value) -> Result<Value, NotifyError> {
        let Kind::Bot { api_url, token, .. } = &self.target.kind else {
            return Err(NotifyError::Other("slack: not a bot".into()));
        };
        let what = format!("slack {method}");
        let url = format!("{api_url}/{method}");
        let r = http::send(&what, self.opts, || {
            self.client
                .post(&url)
                .bearer_auth(token)
                .header("Content-Type", "application/json; charset=utf-8")
                .body(body.to_string())
        })
        .await
        .map_err(|e| scrubbed(e, token))?;
        let v: Value = r.json().await.map_err(|e| {
            scrubbed(NotifyError::Other(format!("{what}: unreadable answer: {}", e.without_url())), token)
        })?;
        if v.get("ok").and_then(Value::as_bool) == Some(true) {
            Ok(v)
        } else {
            let error = v.get("error").and_then(Value::as_str).unwrap_or("unknown_error").to_owned();
            Err(scrubbed(NotifyError::Slack { what, error }, token))
        }
    }

    async fn webhook(&self, body: &Value) -> Result<(), NotifyError> {
        let Kind::Webhook { url } = &self.target.kind else {
            return Err(NotifyError::Other("slack: not a webhook".into()));
        };
        http::send("slack webhook", self.opts, || self.client.post(url).json(body))
            .await
            .map(drop)
            .map_err(|e| scrubbed(e, url))
    }

    async fn show(&mut self, state: &RunState) -> Result<(), NotifyError> {
        if state.release_id.is_none() {
            return Ok(());
        }
        let msg = message(state, &self.target.links);
        if self.last.as_ref() == Some(&msg) {
            return Ok(());
        }
        match &self.target.kind {
            Kind::Bot { channel, .. } => {
                let mut body = msg.clone();
                match &self.message {
                    None => {
                        body["channel"] = json!(channel);
                        let v = self.api("chat.postMessage", &body).await?;
                        let ch = v.get("channel").and_then(Value::as_str).unwrap_or(channel).to_owned();
                        let ts = v.get("ts").and_then(Value::as_str).unwrap_or_default().to_owned();
                        self.message = Some((ch, ts));
                    }
                    Some((ch, ts)) => {
                        body["channel"] = json!(ch);
                        body["ts"] = json!(ts);
                        self.api("chat.update", &body).await?;
                    }
                }
            }
            Kind::Webhook { .. } => {
                // A webhook cannot edit: one message when the release starts, one at the end.
                let done = matches!(state.stage(), Stage::Done(_));
                if self.last.is_some() && !done {
                    return Ok(());
                }
                if done && self.sent_final {
                    return Ok(());
                }
                self.webhook(&msg).await?;
                self.sent_final = done;
            }
        }
        self.last = Some(msg);
        Ok(())
    }
}

impl Notifier for Slack {
    fn name(&self) -> &'static str {
        "slack"
    }

    async fn update(&mut self, state: &RunState) -> Result<(), NotifyError> {
        self.show(state).await
    }

    async fn finish(&mut self, state: &RunState) -> Result<(), NotifyError> {
        self.show(state).await?;
        if self.replied {
            return Ok(());
        }
        let (Some((channel, ts)), Some(reply)) =
            (self.message.clone(), failure_reply(state, &self.target.links))
        else {
            return Ok(());
        };
        let mut body = reply;
        body["channel"] = json!(channel);
        body["thread_ts"] = json!(ts);
        self.api("chat.postMessage", &body).await?;
        self.replied = true;
        Ok(())
    }
}

/// Escapes Slack mrkdwn control characters in text we did not write.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

fn section(text: &str) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": cut(text, MAX_SECTION) } })
}

/// The main message: `{text, blocks}` (the channel and ts are added by the caller).
pub fn message(state: &RunState, links: &Links) -> Value {
    let headline = markdown::headline(state);
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": cut(&headline, MAX_HEADER), "emoji": true }
    })];
    let mut facts = Vec::new();
    if let Some(r) = &state.release_id {
        facts.push(format!("*Release* `{}`", esc(r)));
    }
    if let Some(sha) = &state.git_sha {
        let short = esc(&sha[..sha.len().min(7)]);
        facts.push(match &links.commit_base {
            Some(base) => format!("*Commit* <{}{}|`{short}`>", esc(base), esc(sha)),
            None => format!("*Commit* `{short}`"),
        });
    }
    if let Some(s) = &state.strategy {
        facts.push(format!("*Strategy* {}", esc(s)));
    }
    if !facts.is_empty() {
        blocks.push(section(&facts.join("  ·  ")));
    }
    // One line per service, packed into as few sections as the limits allow.
    let mut lines = String::new();
    let mut service_sections = Vec::new();
    for svc in &state.services {
        let mut line = format!("`{}`", esc(&svc.name));
        if let Some(d) = &svc.digest {
            let _ = write!(line, "  {}", short_digest(d));
        }
        if let Some(scan) = &svc.scan {
            let _ = write!(
                line,
                "  ·  scan {} {}",
                if scan.passed { "✅" } else { "⛔" },
                severity_counts(&scan.counts)
            );
        }
        let _ = write!(line, "  ·  {}", esc(&markdown::health_text(state, svc)));
        line.push('\n');
        if lines.len() + line.len() > MAX_SECTION {
            service_sections.push(std::mem::take(&mut lines));
        }
        lines.push_str(&line);
    }
    if !lines.is_empty() {
        service_sections.push(lines);
    }
    let reserve = 5; // hooks, failure, rollback, context, and the "more" note
    let room = MAX_BLOCKS.saturating_sub(blocks.len() + reserve);
    let total = service_sections.len();
    for s in service_sections.iter().take(room) {
        blocks.push(section(s.trim_end()));
    }
    if total > room {
        blocks.push(section(&format!(
            "_…and more services; see the run log_ ({} sections left out)",
            total - room
        )));
    }
    if let Some(h) = hooks_line(state) {
        blocks.push(section(&h));
    }
    if let Some(f) = failure_line(state) {
        blocks.push(section(&f));
    }
    if let Some(r) = rollback_line(state) {
        blocks.push(section(&r));
    }
    let mut ctx = Vec::new();
    if let Some(u) = &state.environment_url {
        ctx.push(format!("<{}|Open the environment>", esc(u)));
    }
    if let Some(u) = &links.log_url {
        ctx.push(format!("<{}|Run log>", esc(u)));
    }
    if matches!(state.stage(), Stage::Done(_)) && state.elapsed_ms() > 0 {
        ctx.push(format!("took {}", human_ms(state.elapsed_ms())));
    }
    if !ctx.is_empty() {
        blocks.push(json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": cut(&ctx.join("  ·  "), MAX_SECTION) }] }));
    }
    blocks.truncate(MAX_BLOCKS);
    json!({ "text": headline, "blocks": blocks })
}

fn failure_line(state: &RunState) -> Option<String> {
    let (service, f) = state.first_failure()?;
    let mut where_ = vec![format!("`{}`", esc(&f.workload))];
    if let Some(p) = &f.pod {
        where_.push(format!("pod `{}`", esc(p)));
    }
    if let Some(c) = &f.container {
        where_.push(format!("container `{}`", esc(c)));
    }
    let mut s = format!("*What failed:* `{}` — {} is *{}*", esc(service), where_.join(", "), esc(&f.reason));
    if let Some(n) = f.restart_count {
        let _ = write!(s, " after {n} restart{}", if n == 1 { "" } else { "s" });
    }
    Some(s)
}

/// The release's hooks in one line each (`pre-deploy hook `migrate` of `order` succeeded after 2.1s`).
fn hooks_line(state: &RunState) -> Option<String> {
    if state.hooks.is_empty() {
        return None;
    }
    let lines: Vec<String> = state.hooks.iter().map(|h| esc(&markdown::hook_plain(h))).collect();
    Some(cut(&format!("*Hooks:*\n{}", lines.join("\n")), MAX_SECTION))
}

fn rollback_line(state: &RunState) -> Option<String> {
    let r = state.rollback.as_ref()?;
    let to = r
        .to_release
        .as_deref()
        .map_or_else(|| "the previous release".to_owned(), |t| format!("release `{}`", esc(t)));
    Some(match r.ok {
        Some(true) => format!("*Rolled back:* restored {to}; it is what runs now."),
        Some(false) => format!("*Rollback failed:* restoring {to} did not complete. Manual action needed."),
        None => format!("*Rolling back* to {to}…"),
    })
}

/// The threaded reply with the details of a failure (`None` when the release succeeded).
pub fn failure_reply(state: &RunState, links: &Links) -> Option<Value> {
    let Stage::Done(outcome) = state.stage() else { return None };
    if outcome == Outcome::Succeeded {
        return None;
    }
    let mut blocks = Vec::new();
    if let Some((service, f)) = state.first_failure() {
        let mut s = failure_line(state).unwrap_or_default();
        if let Some(m) = &f.message {
            let _ = write!(s, "\n```{}```", esc(m.trim_end()));
        }
        blocks.push(section(&s));
        let others: Vec<String> = state
            .services
            .iter()
            .filter(|x| x.name != service && matches!(x.health, Some(Verdict::Failed(_))))
            .map(|x| format!("`{}`", esc(&x.name)))
            .collect();
        if !others.is_empty() {
            blocks.push(section(&format!("Also unhealthy: {}", others.join(", "))));
        }
    }
    for scan in state.services.iter().filter_map(|s| s.scan.as_ref()).filter(|s| !s.passed) {
        let mut s =
            format!("*Scan gate refused* `{}`: {}", esc(&scan.service), severity_counts(&scan.counts));
        for f in scan.blocking.iter().take(20) {
            let pkg = f.package.as_deref().map_or_else(String::new, |p| format!(" in `{}`", esc(p)));
            let _ = write!(s, "\n• {} {}{pkg}", f.severity.to_lowercase(), esc(&f.id));
        }
        if scan.blocking.len() > 20 {
            let _ = write!(s, "\n• …and {} more", scan.blocking.len() - 20);
        }
        blocks.push(section(&s));
    }
    if let Some(r) = &state.rollback {
        let mut s = rollback_line(state).unwrap_or_default();
        if let Some(m) = &r.message {
            let _ = write!(s, "\n> {}", esc(m));
        }
        for (svc, d) in &r.digests {
            let _ = write!(s, "\n• `{}` → {}", esc(svc), short_digest(d));
        }
        blocks.push(section(&s));
    }
    if let Some(res) = &state.result {
        for p in res.problems.iter().take(5) {
            let mut s = format!("*Error:* {}", esc(&p.message));
            if let Some(h) = &p.hint {
                let _ = write!(s, "\n_hint:_ {}", esc(h));
            }
            blocks.push(section(&s));
        }
    }
    if let Some(u) = &links.log_url {
        blocks.push(json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": format!("<{}|Full run log>", esc(u)) }] }));
    }
    blocks.truncate(MAX_BLOCKS);
    let text = format!("Details: {}", markdown::headline(state));
    Some(json!({ "text": text, "blocks": blocks }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;

    #[test]
    fn many_services_stay_within_block_kit_limits() {
        let mut s = RunState::default();
        s.apply(&Event::ReleaseStarted {
            release_id: "r1".into(),
            product: "shop".repeat(50),
            environment: "prod".into(),
            git_sha: "abc".into(),
            services: (0..2000).map(|i| format!("svc-{i}")).collect(),
            strategy: None,
        });
        let m = message(&s, &Links::default());
        let blocks = m["blocks"].as_array().unwrap();
        assert!(blocks.len() <= MAX_BLOCKS);
        assert!(blocks[0]["text"]["text"].as_str().unwrap().chars().count() <= MAX_HEADER);
        for b in blocks {
            if let Some(t) = b.pointer("/text/text").and_then(Value::as_str) {
                assert!(t.chars().count() <= MAX_SECTION);
            }
        }
        assert!(m["text"].as_str().is_some_and(|t| !t.is_empty()));
    }

    #[test]
    fn escapes_user_text() {
        assert_eq!(esc("a<b>&c"), "a&lt;b&gt;&amp;c");
    }

    #[test]
    fn bot_wins_over_webhook_and_missing_variables_are_explained() {
        let cfg = SlackNotify {
            webhook_url_env: Some("HOOK".into()),
            token_env: Some("TOK".into()),
            channel: Some("C1".into()),
        };
        let var = |k: &str| match k {
            "HOOK" => Some("https://hooks.example/x".to_owned()),
            "TOK" => Some("xoxb-1".to_owned()),
            _ => None,
        };
        let t = Target::from_config(&cfg, &var).unwrap();
        assert!(matches!(t.kind, Kind::Bot { ref api_url, .. } if api_url == DEFAULT_API_URL));
        let none = |_: &str| None;
        let err = Target::from_config(&cfg, &none).unwrap_err();
        assert!(err.contains("`TOK`"), "{err}");
    }

    #[test]
    fn a_misconfigured_setting_is_named_and_its_value_never_echoed() {
        let hook = "https://hooks.slack.com/services/T000/B000/SecretPart0123456789";
        let webhook = |setting: &str| SlackNotify {
            webhook_url_env: Some(setting.to_owned()),
            token_env: None,
            channel: None,
        };
        // The URL where the variable's name belongs.
        let err = Target::from_config(&webhook(hook), &|_: &str| None).unwrap_err();
        assert!(err.contains("notifications.slack.webhook_url_env") && !err.contains("SecretPart"), "{err}");
        // A variable holding something that is not a URL (here: a bot token by mistake).
        let var = |k: &str| (k == "HOOK").then(|| "xoxb-secret-token-0123".to_owned());
        let err = Target::from_config(&webhook("HOOK"), &var).unwrap_err();
        assert!(err.contains("`HOOK` (notifications.slack.webhook_url_env)"), "{err}");
        assert!(!err.contains("xoxb-secr"), "{err}");
        // The bot token where its variable's name belongs.
        let bot = SlackNotify {
            webhook_url_env: None,
            token_env: Some("xoxb-secret-token-0123".into()),
            channel: Some("C1".into()),
        };
        let err = Target::from_config(&bot, &|_: &str| None).unwrap_err();
        assert!(err.contains("notifications.slack.token_env") && !err.contains("xoxb-secr"), "{err}");
        // A server that echoes the request path in its error.
        let e = NotifyError::Status {
            what: "slack webhook".into(),
            status: 404,
            body: "no route for /services/T000/B000/SecretPart0123456789".into(),
        };
        let shown = scrubbed(e, hook).to_string();
        assert!(!shown.contains("SecretPart") && shown.contains("HTTP 404"), "{shown}");
    }
}
