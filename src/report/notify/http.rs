//! One HTTP request with bounded retries, shared by the GitHub and Slack clients.
//!
//! Retried: transport errors, 5xx, 429, and GitHub's rate-limit 403 (`x-ratelimit-remaining: 0`
//! or a `retry-after`). Waits honour `Retry-After` / `x-ratelimit-reset` when they are short
//! (≤ [`Options::max_retry_wait`]); a longer wait is not worth holding a notifier for, so the
//! call fails at once with a warning that says how long the limit lasts. The caller's
//! [`Options::call_timeout`] bounds the whole thing anyway.

use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode};

use super::Options;

/// Why a notifier call failed. These only ever become warnings.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("{what}: cannot reach {host}: {reason}")]
    Transport { what: String, host: String, reason: String },
    #[error("{what}: HTTP {status}: {body}")]
    Status { what: String, status: u16, body: String },
    #[error("{what}: rate limited for {wait_s} s")]
    RateLimited { what: String, wait_s: u64 },
    #[error("{what}: slack answered `{error}`")]
    Slack { what: String, error: String },
    #[error("{0}")]
    Other(String),
}

impl NotifyError {
    /// How to fix it, when there is something to do.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Self::Status { status: 401, .. } => {
                Some("the token is missing or expired; pass `github-token` / check the Slack token")
            }
            Self::Status { status: 403 | 404, what, .. } if what.contains("deployment") => {
                Some("give the workflow `permissions: deployments: write` (and check the repository name)")
            }
            Self::Status { status: 403 | 404, what, .. } if what.contains("comment") => {
                Some("give the workflow `permissions: pull-requests: write`")
            }
            Self::Status { status: 404 | 410, what, .. } if what.contains("slack") => {
                Some("the webhook's channel is gone or archived; create a new incoming webhook")
            }
            Self::Slack { error, .. } if error == "not_in_channel" || error == "channel_not_found" => {
                Some("invite the bot to the channel (`/invite @bot`) and use the channel id (C…)")
            }
            Self::Slack { error, .. } if error == "invalid_auth" || error == "not_authed" => {
                Some("check the bot token (xoxb-…) in the variable named by `notifications.slack.token_env`")
            }
            Self::RateLimited { .. } => {
                Some("other jobs share this token's rate limit; the next run will report normally")
            }
            _ => None,
        }
    }
}

/// Sends `build()` (rebuilt for each attempt), retrying what is worth retrying with the one
/// retry policy ([`crate::support::retry_policy`]: `backoff` doubling, `retries` retries).
pub async fn send(
    what: &str,
    opts: Options,
    build: impl Fn() -> RequestBuilder,
) -> Result<Response, NotifyError> {
    use backon::Retryable as _;
    let once = || async {
        match build().send().await {
            Err(e) => {
                // A webhook URL is a secret: keep it out of the warning.
                let e = e.without_url();
                let host = build()
                    .build()
                    .ok()
                    .and_then(|r| r.url().host_str().map(str::to_owned))
                    .unwrap_or_default();
                Err(Failed {
                    error: NotifyError::Transport { what: what.to_owned(), host, reason: error_chain(&e) },
                    wait: None,
                    retry: true,
                })
            }
            Ok(r) => match classify(&r) {
                Verdict::Done => Ok(r),
                Verdict::Fail => Err(Failed { error: status_error(what, r).await, wait: None, retry: false }),
                Verdict::Retry(wait) if matches!(r.status().as_u16(), 403 | 429) => {
                    // A limit that lasts longer than a notifier may wait fails at once.
                    let wait_s = wait.unwrap_or(opts.backoff).as_secs();
                    Err(Failed {
                        error: NotifyError::RateLimited { what: what.to_owned(), wait_s },
                        wait,
                        retry: wait.is_none_or(|w| w <= opts.max_retry_wait),
                    })
                }
                Verdict::Retry(wait) => Err(Failed { error: status_error(what, r).await, wait, retry: true }),
            },
        }
    };
    let policy = crate::support::retry_policy(opts.backoff, opts.max_retry_wait, opts.retries as usize);
    once.retry(policy)
        .when(|f| f.retry)
        // The server's wait when it named one, never longer than a notifier may wait.
        .adjust(|f, next| next.map(|d| f.wait.unwrap_or(d).min(opts.max_retry_wait)))
        .await
        .map_err(|f| f.error)
}

/// One failed attempt: the error it ends with if it is the last, and whether and when to retry.
struct Failed {
    error: NotifyError,
    wait: Option<Duration>,
    retry: bool,
}

enum Verdict {
    Done,
    Fail,
    /// Retry, after this long if the server said so.
    Retry(Option<Duration>),
}

fn classify(r: &Response) -> Verdict {
    let s = r.status();
    let h = r.headers();
    let num =
        |name: &str| h.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let retry_after = num("retry-after").map(Duration::from_secs);
    let reset_wait = || {
        let reset = num("x-ratelimit-reset")?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        Some(Duration::from_secs(u64::try_from(i64::try_from(reset).ok()? - now).unwrap_or(0)))
    };
    if s.is_success() || s.is_redirection() || s == StatusCode::NOT_MODIFIED {
        return Verdict::Done;
    }
    if s == StatusCode::TOO_MANY_REQUESTS {
        // Without a hint GitHub asks for at least a minute (more than a notifier may wait).
        return Verdict::Retry(retry_after.or_else(reset_wait).or(Some(Duration::from_mins(1))));
    }
    if s == StatusCode::FORBIDDEN {
        if retry_after.is_some() {
            return Verdict::Retry(retry_after);
        }
        if num("x-ratelimit-remaining") == Some(0) {
            return Verdict::Retry(reset_wait());
        }
        return Verdict::Fail;
    }
    if s.is_server_error() { Verdict::Retry(None) } else { Verdict::Fail }
}

async fn status_error(what: &str, r: Response) -> NotifyError {
    let status = r.status().as_u16();
    let body = r.text().await.unwrap_or_default();
    // GitHub errors are JSON with `message`; Slack webhook errors are plain text.
    let body = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or(body);
    let body: String = body.chars().take(300).collect();
    NotifyError::Status { what: what.to_owned(), status, body: body.trim().to_owned() }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// A client with the timeouts every notifier shares.
pub fn client(opts: Options) -> Result<reqwest::Client, NotifyError> {
    reqwest::Client::builder()
        .user_agent(crate::support::USER_AGENT)
        .connect_timeout(opts.call_timeout.min(Duration::from_secs(5)))
        .timeout(opts.call_timeout)
        .build()
        .map_err(|e| NotifyError::Other(format!("cannot build an HTTP client: {}", error_chain(&e))))
}
