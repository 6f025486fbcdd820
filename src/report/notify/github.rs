//! GitHub: a Deployment per environment with its status stream, and one sticky PR comment.
//!
//! REST per shared/CONTRACTS.md §7, against `GITHUB_API_URL` (GitHub Enterprise and test
//! servers alike). Requests carry `Accept: application/vnd.github+json`,
//! `X-GitHub-Api-Version: 2022-11-28`, `Authorization: Bearer …` and a `User-Agent`.
//!
//! - Deployment: `POST /repos/{o}/{r}/deployments` with the commit sha as `ref`,
//!   `auto_merge: false` (the default would merge the default branch into the ref) and
//!   `required_contexts: []` (deployer runs its own gates); the payload carries the release id.
//!   201 = created; 202 = GitHub merged instead of deploying (no deployment, reported once);
//!   409/422 = refused (reported once). Statuses follow the run: `queued` (build, push, scan) →
//!   `in_progress` (the environment is being changed) → `success` / `failure` (rolled back or
//!   refused) / `error` (rollback failed, or the run broke), with `log_url` and, on success,
//!   `environment_url`. GitHub marks the previous successful deployment `inactive` itself
//!   (`auto_inactive`) except for production environments, so for those deployer does it.
//! - Comment: one per pull request and environment, found by the hidden marker
//!   `<!-- deployer:ENV -->` across all pages (`per_page=100`, `Link: rel="next"`), then PATCHed;
//!   POSTed when absent. Written when the release starts and at each later stage.
//!
//! Why not octocrab (measured against 0.54, the version the design named, on this lock file):
//! it added 20 crates of its own to the build (`cargo tree -e normal,build`: 348 → 328 unique
//! crates without it; `jsonwebtoken`, `snafu`, `cargo_metadata`, `simple_asn1`, `num-bigint`, a
//! second `sha2`/`getrandom`, …) for five REST calls, and it hides what these calls must see:
//! `repos().deployments().create()` deserializes the answer into a `Deployment`, so GitHub's
//! 202 ("merged the default branch instead of deploying", a body without an id) surfaces as a
//! JSON error rather than the status it is; its rate-limit retry sleeps until
//! `x-ratelimit-reset`, up to an hour, while a notifier must give up within
//! [`super::FLUSH_BOUND`] so it never holds the deploy. It was declared and never used, so it
//! was removed (`.ci/unused_deps.py` keeps unused crates out).

use std::fmt::Write as _;

use reqwest::Method;
use serde_json::{Value, json};

use super::http::{self, NotifyError};
use super::{Notifier, Options};
use crate::events::Outcome;
use crate::report::markdown::{self, Links};
use crate::report::state::{RunState, Stage};
use crate::support::VarFn;

/// The GitHub Actions context the notifiers need.
#[derive(Clone)]
pub struct Context {
    /// `GITHUB_API_URL` (default `https://api.github.com`), without a trailing slash.
    pub api_url: String,
    /// `GITHUB_SERVER_URL` (default `https://github.com`).
    pub server_url: String,
    /// `owner/repo`.
    pub repository: String,
    pub run_id: Option<String>,
    pub token: String,
    /// The pull request, for `pull_request*` events.
    pub pr_number: Option<u64>,
}

impl std::fmt::Debug for Context {
    // The token is a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("api_url", &self.api_url)
            .field("server_url", &self.server_url)
            .field("repository", &self.repository)
            .field("run_id", &self.run_id)
            .field("token", &"***")
            .field("pr_number", &self.pr_number)
            .finish()
    }
}

impl Context {
    /// Reads the Actions environment; `token` (the action input) wins over `GITHUB_TOKEN`.
    pub fn from_env(var: VarFn<'_>, token: Option<&str>) -> Result<Self, String> {
        let token = token
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .or_else(|| var("GITHUB_TOKEN").filter(|t| !t.is_empty()))
            .ok_or("no GitHub token: pass the `github-token` input (GITHUB_TOKEN is not in the environment by default)")?;
        let repository = var("GITHUB_REPOSITORY")
            .filter(|r| r.contains('/'))
            .ok_or("GITHUB_REPOSITORY is not set (owner/repo)")?;
        let pr_number = match (var("GITHUB_EVENT_NAME"), var("GITHUB_EVENT_PATH")) {
            (Some(name), Some(path)) => {
                std::fs::read_to_string(path).ok().and_then(|json| pr_number(&name, &json))
            }
            _ => None,
        };
        Ok(Self {
            api_url: var("GITHUB_API_URL")
                .unwrap_or_else(|| "https://api.github.com".to_owned())
                .trim_end_matches('/')
                .to_owned(),
            server_url: var("GITHUB_SERVER_URL")
                .unwrap_or_else(|| "https://github.com".to_owned())
                .trim_end_matches('/')
                .to_owned(),
            repository,
            run_id: var("GITHUB_RUN_ID"),
            token,
            pr_number,
        })
    }

    /// Links to the run log and commits.
    pub fn links(&self) -> Links {
        Links {
            log_url: self
                .run_id
                .as_ref()
                .map(|id| format!("{}/{}/actions/runs/{id}", self.server_url, self.repository)),
            commit_base: Some(format!("{}/{}/commit/", self.server_url, self.repository)),
        }
    }
}

/// Links from the Actions environment alone (no token needed; for Slack and the summary).
pub fn links_from_env(var: VarFn<'_>) -> Links {
    let server = var("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".to_owned());
    let server = server.trim_end_matches('/');
    match var("GITHUB_REPOSITORY") {
        Some(repo) => Links {
            log_url: var("GITHUB_RUN_ID").map(|id| format!("{server}/{repo}/actions/runs/{id}")),
            commit_base: Some(format!("{server}/{repo}/commit/")),
        },
        None => Links::default(),
    }
}

/// The pull request number from the event payload: `pull_request*` events only (a push has none).
pub fn pr_number(event_name: &str, event_json: &str) -> Option<u64> {
    if !event_name.starts_with("pull_request") {
        return None;
    }
    let v: Value = serde_json::from_str(event_json).ok()?;
    v.pointer("/pull_request/number").or_else(|| v.get("number")).and_then(Value::as_u64)
}

/// Production on GitHub: approval-gated environments, and ones named `prod` / `production`.
pub fn is_production(environment: &str, approval_required: bool) -> bool {
    approval_required || matches!(environment.to_ascii_lowercase().as_str(), "prod" | "production")
}

/// The GitHub environment a Deployment belongs to: `approval.github_environment` when set (the
/// environment the job runs in, e.g. `production`), else deployer's environment name. GitHub
/// keeps one history per environment name, so a job in `production` that reported deployments
/// to `prod` would show two environments with separate histories.
pub fn deployment_environment(environment: &str, approval: Option<&crate::config::Approval>) -> String {
    approval
        .and_then(|a| a.github_environment.as_deref())
        .filter(|e| !e.is_empty())
        .unwrap_or(environment)
        .to_owned()
}

/// Preview environments (`pr-123`, `preview`, `preview-…`, `review-…`) are transient on GitHub:
/// they disappear with their pull request.
pub fn is_preview(environment: &str) -> bool {
    let e = environment.to_ascii_lowercase();
    e.starts_with("pr-") || e == "preview" || e.starts_with("preview-") || e.starts_with("review-")
}

/// What to report, for one environment.
#[derive(Debug, Clone)]
pub struct Target {
    pub context: Context,
    /// deployer's environment name (the sticky comment's marker).
    pub environment: String,
    /// The GitHub environment the Deployment is created in: see [`deployment_environment`].
    pub deployment_environment: String,
    pub deployments: bool,
    pub pr_comment: bool,
    /// From `notifications.github.environment_url`; an `environment_url` in the events wins.
    pub environment_url: Option<String>,
    /// Approval-gated environments are production ones.
    pub production: bool,
    pub transient: bool,
}

/// A GitHub REST client bound to one repository.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    repo: String,
    token: String,
    opts: Options,
}

impl Api {
    pub fn new(ctx: &Context, opts: Options) -> Result<Self, NotifyError> {
        Ok(Self {
            client: http::client(opts)?,
            base: ctx.api_url.clone(),
            repo: ctx.repository.clone(),
            token: ctx.token.clone(),
            opts,
        })
    }

    fn request(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, url)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .bearer_auth(&self.token)
    }

    async fn send(
        &self,
        what: &str,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, NotifyError> {
        http::send(what, self.opts, || {
            let r = self.request(method.clone(), url);
            match body {
                Some(b) => r.json(b),
                None => r,
            }
        })
        .await
    }

    async fn json(what: &str, r: reqwest::Response) -> Result<Value, NotifyError> {
        r.json().await.map_err(|e| NotifyError::Other(format!("{what}: unreadable answer: {e}")))
    }

    fn url(&self, path: &str) -> String {
        format!("{}/repos/{}{path}", self.base, self.repo)
    }

    /// Finds the comment carrying `marker` on the pull request, reading every page.
    pub async fn find_comment(&self, pr: u64, marker: &str) -> Result<Option<u64>, NotifyError> {
        const MAX_PAGES: usize = 50;
        let what = "github comment: list";
        let mut url = self.url(&format!("/issues/{pr}/comments?per_page=100"));
        for _ in 0..MAX_PAGES {
            let r = self.send(what, Method::GET, &url, None).await?;
            let next = r.headers().get("link").and_then(|v| v.to_str().ok()).and_then(next_link);
            let page = Self::json(what, r).await?;
            let found = page
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c.get("body").and_then(Value::as_str).is_some_and(|b| b.contains(marker)));
            if let Some(id) = found.and_then(|c| c.get("id")).and_then(Value::as_u64) {
                return Ok(Some(id));
            }
            match next {
                // Only follow links to the same API: the token goes with the request.
                Some(n) if n.starts_with(&self.base) => url = n,
                _ => return Ok(None),
            }
        }
        Ok(None)
    }
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p == "rel=\"next\"" || p == "rel=next"
        });
        is_next.then(|| url.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
    })
}

/// The Deployment status a stage is reported as.
pub const fn status_for(stage: Stage) -> Option<&'static str> {
    match stage {
        Stage::NotStarted => None,
        Stage::Queued => Some("queued"),
        Stage::InProgress | Stage::RollingBack => Some("in_progress"),
        Stage::Done(Outcome::Succeeded) => Some("success"),
        Stage::Done(Outcome::FailedRolledBack | Outcome::RefusedByGate) => Some("failure"),
        Stage::Done(Outcome::RollbackFailed | Outcome::Failed | Outcome::Interrupted) => Some("error"),
    }
}

/// The GitHub Deployment of this run.
pub struct Deployments {
    api: Api,
    environment: String,
    production: bool,
    transient: bool,
    environment_url: Option<String>,
    log_url: Option<String>,
    id: Option<u64>,
    /// GitHub would not create the deployment; said once, then quiet.
    gave_up: bool,
    posted: Option<&'static str>,
    inactivated: bool,
}

impl Deployments {
    pub fn new(api: Api, t: &Target) -> Self {
        Self {
            api,
            environment: t.deployment_environment.clone(),
            production: t.production,
            transient: t.transient,
            environment_url: t.environment_url.clone(),
            log_url: t.context.links().log_url,
            id: None,
            gave_up: false,
            posted: None,
            inactivated: false,
        }
    }

    async fn create(&mut self, state: &RunState, sha: &str) -> Result<u64, NotifyError> {
        let what = "github deployment: create";
        let body = json!({
            "ref": sha,
            "task": "deploy",
            "auto_merge": false,
            "required_contexts": [],
            "environment": self.environment,
            "description": truncate(&format!("{} release {}", state.product.as_deref().unwrap_or("deployer"), state.release_id.as_deref().unwrap_or("?")), 140),
            "payload": {
                "release_id": state.release_id,
                "product": state.product,
                "services": state.services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            },
            "transient_environment": self.transient,
            "production_environment": self.production,
        });
        let r = self.api.send(what, Method::POST, &self.api.url("/deployments"), Some(&body)).await;
        let r = match r {
            Ok(r) => r,
            Err(e @ NotifyError::Status { status: 409 | 422, .. }) => {
                self.gave_up = true;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let status = r.status().as_u16();
        let v = Api::json(what, r).await?;
        if status == 202 {
            self.gave_up = true;
            let msg = v.get("message").and_then(Value::as_str).unwrap_or("no message");
            return Err(NotifyError::Other(format!(
                "github deployment: GitHub merged the default branch into {sha} instead of creating a deployment (202: {msg}); no deployment statuses for this run"
            )));
        }
        v.get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| NotifyError::Other(format!("{what}: no id in the answer")))
    }

    async fn post_status(&self, id: u64, state_name: &str, state: &RunState) -> Result<(), NotifyError> {
        let mut body = json!({
            "state": state_name,
            "description": truncate(&markdown::headline(state), 140),
        });
        if let Some(u) = &self.log_url {
            body["log_url"] = json!(u);
        }
        if state_name == "success"
            && let Some(u) = state.environment_url.as_ref().or(self.environment_url.as_ref())
        {
            body["environment_url"] = json!(u);
        }
        self.api
            .send(
                &format!("github deployment: status {state_name}"),
                Method::POST,
                &self.api.url(&format!("/deployments/{id}/statuses")),
                Some(&body),
            )
            .await
            .map(drop)
    }

    /// Production deployments are not made inactive by GitHub's `auto_inactive`: mark the
    /// previous successful one inactive so the environment shows one active deployment.
    async fn inactivate_previous(&mut self, ours: u64) -> Result<(), NotifyError> {
        let what = "github deployment: previous";
        let list = self
            .api
            .send(
                what,
                Method::GET,
                &self
                    .api
                    .url(&format!("/deployments?environment={}&per_page=10", urlencode(&self.environment))),
                None,
            )
            .await?;
        let list = Api::json(what, list).await?;
        let prev = list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d.get("id").and_then(Value::as_u64))
            .find(|id| *id != ours);
        let Some(prev) = prev else { return Ok(()) };
        let statuses = self
            .api
            .send(what, Method::GET, &self.api.url(&format!("/deployments/{prev}/statuses?per_page=1")), None)
            .await?;
        let statuses = Api::json(what, statuses).await?;
        let latest = statuses.pointer("/0/state").and_then(Value::as_str);
        if latest == Some("success") {
            let body = json!({ "state": "inactive", "description": "superseded by a newer deployment" });
            self.api
                .send(
                    "github deployment: status inactive",
                    Method::POST,
                    &self.api.url(&format!("/deployments/{prev}/statuses")),
                    Some(&body),
                )
                .await?;
        }
        Ok(())
    }
}

impl Notifier for Deployments {
    fn name(&self) -> &'static str {
        "github deployment"
    }

    async fn update(&mut self, state: &RunState) -> Result<(), NotifyError> {
        if self.gave_up {
            return Ok(());
        }
        let (Some(sha), Some(want)) = (state.git_sha.clone(), status_for(state.stage())) else {
            return Ok(());
        };
        if state.release_id.is_none() {
            return Ok(());
        }
        let id = if let Some(id) = self.id {
            id
        } else {
            let id = self.create(state, &sha).await?;
            self.id = Some(id);
            id
        };
        if self.posted != Some(want) {
            self.post_status(id, want, state).await?;
            self.posted = Some(want);
        }
        Ok(())
    }

    async fn finish(&mut self, state: &RunState) -> Result<(), NotifyError> {
        self.update(state).await?;
        if let Some(id) = self.id
            && self.production
            && !self.inactivated
            && state.stage() == Stage::Done(Outcome::Succeeded)
        {
            self.inactivated = true;
            self.inactivate_previous(id).await?;
        }
        Ok(())
    }
}

/// The sticky pull-request comment of one environment.
pub struct Comment {
    api: Api,
    pr: u64,
    marker: String,
    links: Links,
    id: Option<u64>,
    searched: bool,
    last: Option<String>,
    /// The stage last written: phases alone do not edit the comment.
    stage: Option<Stage>,
}

impl Comment {
    pub fn new(api: Api, t: &Target, pr: u64) -> Self {
        Self {
            api,
            pr,
            marker: markdown::marker(&t.environment),
            links: t.context.links(),
            id: None,
            searched: false,
            last: None,
            stage: None,
        }
    }

    async fn write(&mut self, state: &RunState) -> Result<(), NotifyError> {
        if state.release_id.is_none() {
            return Ok(());
        }
        let body = markdown::pr_comment(state, &self.links);
        if self.last.as_ref() == Some(&body) {
            return Ok(());
        }
        if self.id.is_none() && !self.searched {
            self.id = self.api.find_comment(self.pr, &self.marker).await?;
            self.searched = true;
        }
        let payload = json!({ "body": body });
        if let Some(id) = self.id {
            let url = self.api.url(&format!("/issues/comments/{id}"));
            match self.api.send("github comment: update", Method::PATCH, &url, Some(&payload)).await {
                Ok(_) => {}
                // Someone deleted it: write a new one below.
                Err(NotifyError::Status { status: 404, .. }) => self.id = None,
                Err(e) => return Err(e),
            }
        }
        if self.id.is_none() {
            let what = "github comment: create";
            let url = self.api.url(&format!("/issues/{}/comments", self.pr));
            let r = self.api.send(what, Method::POST, &url, Some(&payload)).await?;
            self.id = Api::json(what, r).await.ok().and_then(|v| v.get("id").and_then(Value::as_u64));
            // Without the id, search again next time rather than post a duplicate.
            self.searched = self.id.is_some();
        }
        self.last = Some(body);
        Ok(())
    }
}

impl Notifier for Comment {
    fn name(&self) -> &'static str {
        "github comment"
    }

    async fn update(&mut self, state: &RunState) -> Result<(), NotifyError> {
        if self.stage == Some(state.stage()) {
            return Ok(());
        }
        self.write(state).await?;
        self.stage = Some(state.stage());
        Ok(())
    }

    async fn finish(&mut self, state: &RunState) -> Result<(), NotifyError> {
        self.write(state).await
    }
}

/// Cuts to at most `max` characters, with an ellipsis.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

fn urlencode(s: &str) -> String {
    s.bytes().fold(String::new(), |mut acc, b| {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            acc.push(char::from(b));
        } else {
            let _ = write!(acc, "%{b:02X}");
        }
        acc
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_are_named_after_the_github_environment_the_job_runs_in() {
        let gated = crate::config::Approval { required: true, github_environment: Some("production".into()) };
        assert_eq!(deployment_environment("prod", Some(&gated)), "production");
        let unnamed = crate::config::Approval { required: false, github_environment: None };
        assert_eq!(deployment_environment("dev", Some(&unnamed)), "dev");
        assert_eq!(deployment_environment("dev", None), "dev");
    }

    #[test]
    fn pr_number_only_for_pull_request_events() {
        let ev = r#"{"number": 7, "pull_request": {"number": 7, "head": {"sha": "abc"}}}"#;
        assert_eq!(pr_number("pull_request", ev), Some(7));
        assert_eq!(pr_number("pull_request_target", r#"{"number": 9}"#), Some(9));
        assert_eq!(pr_number("push", ev), None);
        assert_eq!(pr_number("pull_request", "not json"), None);
    }

    #[test]
    fn follows_rel_next_only() {
        let h = r#"<https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=2>; rel="next", <https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=5>; rel="last""#;
        assert_eq!(
            next_link(h).as_deref(),
            Some("https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=2")
        );
        assert_eq!(next_link(r#"<https://x/?page=1>; rel="prev", <https://x/?page=1>; rel="first""#), None);
    }

    #[test]
    fn stages_map_to_deployment_states() {
        assert_eq!(status_for(Stage::Queued), Some("queued"));
        assert_eq!(status_for(Stage::RollingBack), Some("in_progress"));
        assert_eq!(status_for(Stage::Done(Outcome::FailedRolledBack)), Some("failure"));
        assert_eq!(status_for(Stage::Done(Outcome::RollbackFailed)), Some("error"));
        assert_eq!(status_for(Stage::NotStarted), None);
    }

    #[test]
    fn previews_are_transient() {
        assert!(is_preview("pr-42"));
        assert!(is_preview("preview"));
        assert!(!is_preview("prod"));
        assert!(!is_preview("production"));
        assert!(is_production("prod", false));
        assert!(is_production("eu-live", true));
        assert!(!is_production("staging", false));
    }

    #[test]
    fn truncates_on_characters() {
        assert_eq!(truncate("ääää", 3), "ää…");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(urlencode("pr 1/x"), "pr%201%2Fx");
    }
}
