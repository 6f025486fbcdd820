//! Identity: where AWS credentials come from, and who may use them.
//!
//! In GitHub Actions the job's OIDC token is exchanged for the environment's role; elsewhere the
//! standard AWS chain (environment, profiles, SSO, web-identity file) applies, followed by
//! `AssumeRole` into the environment's role unless the caller already is that role. Either way
//! an optional chained role (`role.chain`, with session tags) follows, the result is checked
//! against the environment's `account_id` before anyone gets it, and it refreshes itself
//! before expiry for as long as the process runs.
//!
//! [`detect`] is offline on purpose: `deployer plan` without credentials must say so at once
//! instead of probing the instance-metadata endpoint for seconds.
//!
//! Library API (what the commands call):
//! - [`establish`]`(&Environment, Options) -> Result<AwsSession, IdentityError>`: the only way to
//!   get credentials. [`Options::from_env`] reads the process environment (standard AWS config,
//!   `ACTIONS_ID_TOKEN_REQUEST_*`, `GITHUB_REPOSITORY`/`GITHUB_RUN_ID` for the session name).
//!   [`AwsSession::config`] is an `SdkConfig` whose provider re-runs the whole chain (fresh OIDC
//!   token included) `refresh_margin` before expiry.
//! - Masking ([`mask`]): every secret obtained (JWT, access key id, secret key, session token,
//!   EKS tokens) goes to [`Options::masker`]; print [`AwsSession::mask_lines`] before anything
//!   else, or build the masker with [`Masker::with_sink`] so secrets from later refreshes are
//!   masked the moment they exist. Add webhook URLs to the same masker.
//! - [`guard::guard`]`(env_name, approval, Action, &Invocation, &mut dyn Prompt) -> Result<Confirmation, _>`:
//!   the production guard; the [`guard::Confirmation`] (who, how) goes into the release record.
//! - [`eks::kube_config`]`(&EksTarget, &AwsSession) -> Result<KubeAccess, _>`: a `kube::Config`
//!   for the target (explicit context, or DescribeCluster + an in-process token kept current).
//! - `impl From<IdentityError> for crate::error::Error`: identity errors exit with code 3 (auth); only an
//!   EKS signing failure (a bug) is internal (1).

pub mod eks;
pub mod guard;
pub mod mask;
pub mod oidc;
pub mod sts;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_config::identity::IdentityCache;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_types::SdkConfig;

use crate::config::Environment;
pub use mask::Masker;
pub use oidc::{Claims, OidcRequest};
use serde::Serialize;
pub use sts::Caller;

/// Where credentials would come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialSource {
    /// GitHub Actions OIDC (`ACTIONS_ID_TOKEN_REQUEST_URL` is set: the job has `id-token: write`).
    GithubOidc,
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` in the environment.
    Environment,
    /// `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (e.g. EKS pod identity, IRSA).
    WebIdentityFile,
    /// A named or default profile in the shared AWS files (incl. SSO).
    Profile(String),
    /// `AWS_CONTAINER_CREDENTIALS_*` (ECS tasks, CodeBuild) or an explicit IMDS opt-in.
    ContainerOrInstance,
}

impl CredentialSource {
    pub fn describe(&self) -> String {
        match self {
            Self::GithubOidc => "GitHub Actions OIDC".into(),
            Self::Environment => "AWS_ACCESS_KEY_ID in the environment".into(),
            Self::WebIdentityFile => "AWS_WEB_IDENTITY_TOKEN_FILE".into(),
            Self::Profile(p) => format!("AWS profile `{p}`"),
            Self::ContainerOrInstance => "container/instance credentials".into(),
        }
    }
}

/// Finds the credential source from the environment and the shared AWS files, without network.
pub fn detect(var: &dyn Fn(&str) -> Option<String>) -> Option<CredentialSource> {
    let set = |k: &str| var(k).is_some_and(|v| !v.is_empty());
    if set("ACTIONS_ID_TOKEN_REQUEST_URL") && set("ACTIONS_ID_TOKEN_REQUEST_TOKEN") {
        return Some(CredentialSource::GithubOidc);
    }
    if set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY") {
        return Some(CredentialSource::Environment);
    }
    if set("AWS_WEB_IDENTITY_TOKEN_FILE") && set("AWS_ROLE_ARN") {
        return Some(CredentialSource::WebIdentityFile);
    }
    if set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        || set("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        || var("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("false"))
    {
        return Some(CredentialSource::ContainerOrInstance);
    }
    let profile = var("AWS_PROFILE").filter(|p| !p.is_empty());
    let home = var("HOME").map(PathBuf::from);
    let config =
        var("AWS_CONFIG_FILE").map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(".aws/config")));
    let creds = var("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".aws/credentials")));
    let has_files = config.is_some_and(|p| p.is_file()) || creds.is_some_and(|p| p.is_file());
    match (profile, has_files) {
        (Some(p), _) => Some(CredentialSource::Profile(p)),
        (None, true) => Some(CredentialSource::Profile("default".into())),
        (None, false) => None,
    }
}

/// The hint shown when no credentials are found.
pub const NO_CREDENTIALS_HINT: &str = "in GitHub Actions give the job `permissions: id-token: write`; \
on a laptop run `aws sso login` or set AWS_PROFILE";

/// Why identity could not be established (every variant exits with code 3).
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("no usable AWS credentials: {detail}")]
    NoCredentials { detail: String },
    #[error("cannot get the GitHub OIDC token: {message}")]
    OidcRequest { message: String },
    #[error("{}", web_identity_message(.role, .code, .message, .claims))]
    WebIdentityRefused { role: String, code: String, message: String, claims: Box<Claims>, audience: String },
    #[error("sts refused AssumeRole into `{role}`: {code}: {message}")]
    AssumeRoleRefused { role: String, code: String, message: String, tagged: bool },
    #[error("sts {operation} failed: {message}")]
    Sts { operation: &'static str, message: String },
    #[error(
        "the credentials belong to account {actual} (`{arn}`), but this environment's account_id is {expected}"
    )]
    WrongAccount { expected: String, actual: String, arn: String },
    #[error("refusing to {action} `{environment}`: {reason}")]
    GuardRefused { environment: String, action: &'static str, reason: String, hint: String },
    #[error("cannot read EKS cluster `{cluster}`: {message}")]
    Eks { cluster: String, message: String },
    #[error("cannot use kubeconfig context `{context}`: {message}")]
    Kubeconfig { context: String, message: String },
    #[error("cannot sign the EKS token: {message}")]
    Signing { message: String },
}

impl IdentityError {
    /// How to fix it.
    pub fn hint(&self) -> String {
        match self {
            Self::NoCredentials { .. } => NO_CREDENTIALS_HINT.to_owned(),
            Self::OidcRequest { .. } => "give the job `permissions: id-token: write`; if it is set, rerun the job (the request token is valid only while the job runs)".to_owned(),
            Self::WebIdentityRefused { role, code, claims, audience, .. } => web_identity_hint(role, code, claims, audience),
            Self::AssumeRoleRefused { role, tagged, .. } => {
                let mut h = format!(
                    "the first role needs `sts:AssumeRole` on `{role}`, and the trust policy of `{role}` must name the first role as a principal"
                );
                if *tagged {
                    h.push_str("; with session_tags both also need `sts:TagSession`");
                }
                h
            }
            Self::Sts { .. } => "check the network and the STS endpoint (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_STS, AWS_REGION); rerun with -v for details".to_owned(),
            Self::WrongAccount { .. } => "deployer stops before changing anything in an account other than the environment's; fix `role`/`role.chain` or `account_id` in the environment file".to_owned(),
            Self::GuardRefused { hint, .. } => hint.clone(),
            Self::Eks { .. } => "check `target.eks.cluster` and the region, and that the role may call `eks:DescribeCluster`".to_owned(),
            Self::Kubeconfig { .. } => "check `target.eks.context` against `kubectl config get-contexts` (KUBECONFIG)".to_owned(),
            Self::Signing { .. } => "this is unexpected; rerun with -v and report it with the output".to_owned(),
        }
    }
}

impl crate::error::Diagnostic for IdentityError {
    fn exit_code(&self) -> crate::error::ExitCode {
        match self {
            // Signing a token with credentials we hold cannot fail for a user-side reason.
            Self::Signing { .. } => crate::error::ExitCode::Internal,
            _ => crate::error::ExitCode::Auth,
        }
    }

    fn hint(&self) -> String {
        Self::hint(self)
    }
}

fn or_none(v: Option<&String>) -> &str {
    v.map_or("(none)", String::as_str)
}

fn web_identity_message(role: &str, code: &str, message: &str, c: &Claims) -> String {
    format!(
        "sts refused AssumeRoleWithWebIdentity into `{role}`: {code}: {message}\n\
         the job's OIDC token:\n  \
         sub:              {}\n  \
         aud:              {}\n  \
         repository:       {}\n  \
         ref:              {}\n  \
         environment:      {}\n  \
         job_workflow_ref: {}",
        c.sub,
        c.aud,
        or_none(c.repository.as_ref()),
        or_none(c.git_ref.as_ref()),
        or_none(c.environment.as_ref()),
        or_none(c.job_workflow_ref.as_ref()),
    )
}

/// The trust-policy statement that admits exactly this job.
pub fn trust_statement(role: &str, claims: &Claims, audience: &str) -> String {
    let q = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    let parts: Vec<&str> = role.splitn(6, ':').collect();
    let (partition, account) = match parts.as_slice() {
        [_, p, _, _, a, _] => (*p, *a),
        _ => ("aws", "ACCOUNT"),
    };
    let host = claims.issuer_host();
    format!(
        "{{\n  \"Effect\": \"Allow\",\n  \"Principal\": {{ \"Federated\": {} }},\n  \"Action\": \"sts:AssumeRoleWithWebIdentity\",\n  \"Condition\": {{\n    \"StringEquals\": {{\n      {}: {},\n      {}: {}\n    }}\n  }}\n}}",
        q(&format!("arn:{partition}:iam::{account}:oidc-provider/{host}")),
        q(&format!("{host}:aud")),
        q(audience),
        q(&format!("{host}:sub")),
        q(&claims.sub),
    )
}

fn web_identity_hint(role: &str, code: &str, claims: &Claims, audience: &str) -> String {
    // Indented so the JSON reads as part of the hint.
    let statement = trust_statement(role, claims, audience)
        .lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    let account = role.split(':').nth(4).unwrap_or("ACCOUNT");
    let host = claims.issuer_host();
    let repo_wide = claims
        .repository
        .as_ref()
        .map(|r| {
            format!(
                "\n    to admit every job of the repository instead, use \"StringLike\": {{ \"{host}:sub\": \"repo:{r}:*\" }} for `sub`"
            )
        })
        .unwrap_or_default();
    match code {
        "ExpiredTokenException" => "the ID token expired before STS saw it: check the runner's clock; deployer fetches a fresh token for every exchange, so a rerun normally succeeds".to_owned(),
        "IDPCommunicationError" => "a temporary failure: STS could not reach GitHub's OIDC issuer; rerun the job".to_owned(),
        "RegionDisabledException" => "the regional STS endpoint is disabled: activate it (IAM → Account settings) or use another region".to_owned(),
        "InvalidIdentityToken" => format!(
            "the token could not be validated: account {account} needs the IAM OIDC identity provider `https://{host}` with audience `{audience}`, and the trust policy of `{role}` a statement such as:\n{statement}{repo_wide}"
        ),
        "ValidationError" => "check `role.arn` and `role.session_duration`: the duration must not exceed the role's maximum session duration (IAM → Roles → Maximum session duration)".to_owned(),
        "AccessDenied" | "IDPRejectedClaim" => format!(
            "the trust policy of `{role}` does not admit this job's `sub`/`aud`; this statement admits it:\n{statement}{repo_wide}"
        ),
        _ => format!("STS answered `{code}`, which is usually temporary: rerun the job; if it persists, check the AWS Health Dashboard"),
    }
}

/// Applies `--role-arn` / `DEPLOYER_ROLE_ARN` (the Action's `role-arn` input): the role the
/// credentials are exchanged for becomes `arn` (replacing `role.arn`, or `role.plan_arn` for a
/// read-only command; a `role.chain` still follows). An empty value is no override. Without a
/// chain the role must be in the environment's account, checked here before any call to AWS.
pub fn override_role(env: &mut Environment, arn: &str) -> Result<(), crate::error::Error> {
    let arn = arn.trim();
    if arn.is_empty() {
        return Ok(());
    }
    let refuse = |message: String, hint: &str| {
        crate::error::Error::Config(crate::config::ConfigErrors(vec![crate::config::ConfigError {
            file: env.file.clone(),
            line: None,
            column: None,
            message,
            hint: Some(hint.to_owned()),
        }]))
    };
    let parsed = crate::config::values::RoleArn::parse(arn).map_err(|e| {
        refuse(format!("--role-arn: {e}"), "pass a role ARN such as `arn:aws:iam::123456789012:role/deployer` (or leave the `role-arn` input empty)")
    })?;
    let chained = env.role.as_ref().is_some_and(|r| r.chain.is_some());
    if !chained && parsed.account_id() != env.account_id.as_str() {
        return Err(refuse(
            format!(
                "--role-arn `{arn}` is in account {}, but environment `{}` has account_id {}",
                parsed.account_id(),
                env.name,
                env.account_id
            ),
            "deployer refuses to act in an account other than `account_id`; pass a role of that account (or set `role.chain` for a cross-account role)",
        ));
    }
    match &mut env.role {
        Some(role) => role.arn = parsed,
        None => {
            env.role = Some(crate::config::ResolvedRole {
                arn: parsed,
                chain: None,
                session_duration: Duration::from_hours(1),
                session_tags: std::collections::BTreeMap::new(),
                audience: "sts.amazonaws.com".to_owned(),
                plan_arn: None,
            });
        }
    }
    Ok(())
}

/// How [`establish`] obtains credentials.
#[derive(Debug, Clone)]
pub struct Options {
    /// Region, endpoints (`AWS_ENDPOINT_URL*`), HTTP client and the standard credential chain.
    pub aws: SdkConfig,
    /// The GitHub OIDC token request, when the job has `id-token: write`.
    pub oidc: Option<OidcRequest>,
    /// The STS role session name (see [`sts::session_name`]).
    pub session_name: String,
    /// Credentials are renewed this long before they expire.
    pub refresh_margin: Duration,
    /// Overrides `role.session_duration` (AWS requires ≥ 15 min; shorter only for local stand-ins).
    pub session_duration: Option<Duration>,
    /// Where secrets go; share one masker per process (webhook URLs, tokens, credentials).
    pub masker: Arc<Masker>,
}

/// Renew credentials five minutes before they expire (the SDK's own default is much shorter,
/// which leaves a slow request racing the expiry).
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_mins(5);

impl Options {
    /// Options around a ready `SdkConfig` (its credentials provider is the "standard chain").
    pub fn new(aws: SdkConfig) -> Self {
        Self {
            aws,
            oidc: None,
            session_name: "deployer".to_owned(),
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            session_duration: None,
            masker: Arc::new(Masker::new()),
        }
    }

    /// The standard AWS configuration for the environment's region, plus the GitHub Actions
    /// variables in `var`.
    pub async fn from_env(env: &Environment, var: &dyn Fn(&str) -> Option<String>) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(env.region.to_string()));
        // AWS's own User-Agent then carries `app/deployer` (CloudTrail's userAgent field).
        if let Ok(app) = aws_config::AppName::new("deployer") {
            loader = loader.app_name(app);
        }
        let aws = loader.load().await;
        Self { oidc: OidcRequest::from_env(var), session_name: sts::session_name(var), ..Self::new(aws) }
    }
}

/// Credentials for one environment, checked against its account and refreshing themselves.
#[derive(Debug, Clone)]
pub struct AwsSession {
    /// Build every AWS client from this (`aws_sdk_x::Client::new(&session.config)`).
    pub config: SdkConfig,
    /// `GetCallerIdentity` of the first credentials (account = the environment's `account_id`).
    pub caller: Caller,
    /// The decoded OIDC claims, when the credentials came from GitHub OIDC.
    pub claims: Option<Claims>,
    /// Secrets to mask; refreshed credentials are added as they appear.
    pub masker: Arc<Masker>,
    provider: Arc<sts::ChainProvider>,
}

impl AwsSession {
    /// `::add-mask::` lines for the secrets obtained since the last call.
    pub fn mask_lines(&self) -> Vec<String> {
        self.masker.take_lines()
    }

    /// How many times the chain ran (1 after [`establish`]; each refresh adds one).
    pub fn chain_runs(&self) -> u64 {
        self.provider.runs.load(Ordering::Relaxed)
    }

    /// The refreshing credentials provider (also inside [`Self::config`]).
    pub fn credentials_provider(&self) -> SharedCredentialsProvider {
        SharedCredentialsProvider::new(sts::Refreshing(self.provider.clone()))
    }
}

/// Obtains credentials for `env`: runs the chain once, checks `GetCallerIdentity` against
/// `env.account_id` (nothing is returned otherwise) and wraps the chain in a refreshing provider.
pub async fn establish(env: &Environment, opts: Options) -> Result<AwsSession, IdentityError> {
    let base = opts.aws.to_builder().region(aws_config::Region::new(env.region.to_string())).build();
    let duration = |configured: Duration| opts.session_duration.unwrap_or(configured);
    let first = match (&env.role, &opts.oidc) {
        (Some(role), Some(request)) => sts::FirstHop::WebIdentity {
            request: request.clone(),
            audience: role.audience.clone(),
            role: role.arn.to_string(),
            duration: duration(role.session_duration),
        },
        (role, _) => {
            let provider = base.credentials_provider().ok_or_else(|| IdentityError::NoCredentials {
                detail: "no credentials provider is configured".to_owned(),
            })?;
            let assume = match role {
                None => None,
                Some(role) => {
                    let creds =
                        aws_credential_types::provider::ProvideCredentials::provide_credentials(&provider)
                            .await
                            .map_err(|e| IdentityError::NoCredentials {
                                detail: aws_sdk_sts::error::DisplayErrorContext(&e).to_string(),
                            })?;
                    let me = sts::caller_identity(&base, creds).await?;
                    if sts::is_session_of(&me.arn, role.arn.as_str()) {
                        None
                    } else {
                        // Assuming a role from a role session is role chaining: at most 1 h.
                        let mut d = duration(role.session_duration);
                        if me.arn.contains(":assumed-role/") {
                            d = d.min(sts::CHAINED_MAX);
                        }
                        Some((role.arn.to_string(), d))
                    }
                }
            };
            sts::FirstHop::Base { provider, assume }
        }
    };
    let chain = env.role.as_ref().and_then(|r| {
        r.chain.as_ref().map(|c| sts::ChainHop {
            role: c.to_string(),
            duration: duration(r.session_duration),
            tags: r.session_tags.clone(),
        })
    });
    let masker = opts.masker.clone();
    let provider = Arc::new(sts::ChainProvider {
        first,
        chain,
        base: base.clone(),
        expected_account: env.account_id.to_string(),
        margin: opts.refresh_margin,
        session_name: opts.session_name.clone(),
        http: reqwest::Client::builder()
            .user_agent(crate::support::USER_AGENT)
            .build()
            .map_err(|e| IdentityError::OidcRequest { message: format!("cannot set up HTTPS: {e}") })?,
        masker: masker.clone(),
        cache: tokio::sync::Mutex::new(None),
        runs: AtomicU64::new(0),
    });
    let out = provider.run().await?;
    let caller = sts::caller_identity(&base, out.credentials.clone()).await?;
    if caller.account != env.account_id.as_str() {
        return Err(IdentityError::WrongAccount {
            expected: env.account_id.to_string(),
            actual: caller.account,
            arn: caller.arn,
        });
    }
    *provider.cache.lock().await = Some(out.credentials);
    let config = base
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(sts::Refreshing(provider.clone())))
        // The provider caches with its own margin; a second cache would hide refreshes from it.
        .identity_cache(IdentityCache::no_cache())
        .build();
    Ok(AwsSession { config, caller, claims: out.claims, masker, provider })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: std::collections::BTreeMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |k| m.get(k).cloned()
    }

    fn shop_dev() -> Environment {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        crate::config::Config::load(&root.join("examples/shop/deployer.yaml"))
            .unwrap()
            .environment("dev")
            .unwrap()
    }

    fn arn(s: &str) -> crate::config::values::RoleArn {
        crate::config::values::RoleArn::parse(s).unwrap()
    }

    #[test]
    fn role_override_replaces_the_first_hop_in_the_environments_account_only() {
        let mut env = shop_dev();
        override_role(&mut env, "").unwrap();
        assert_eq!(
            env.role.as_ref().unwrap().arn.as_str(),
            "arn:aws:iam::222222222222:role/shop-deployer-dev"
        );
        override_role(&mut env, " arn:aws:iam::222222222222:role/other ").unwrap();
        assert_eq!(env.role.as_ref().unwrap().arn.as_str(), "arn:aws:iam::222222222222:role/other");

        let err = override_role(&mut env, "arn:aws:iam::999999999999:role/x").unwrap_err();
        assert_eq!(err.exit_code(), crate::error::ExitCode::Config);
        assert!(
            err.problems()[0]
                .message
                .contains("is in account 999999999999, but environment `dev` has account_id 222222222222"),
            "{:?}",
            err.problems()
        );
        let err = override_role(&mut env, "shop-deployer").unwrap_err();
        assert!(
            err.problems()[0].message.contains("--role-arn: invalid IAM role ARN `shop-deployer`"),
            "{err}"
        );

        // With a chain the first hop may live elsewhere: the chained role is the one checked.
        env.role.as_mut().unwrap().chain = Some(arn("arn:aws:iam::222222222222:role/target"));
        override_role(&mut env, "arn:aws:iam::111111111111:role/hub").unwrap();
        assert_eq!(env.role.as_ref().unwrap().arn.as_str(), "arn:aws:iam::111111111111:role/hub");

        // No role in the file: the override is the role, with the defaults.
        env.role = None;
        override_role(&mut env, "arn:aws:iam::222222222222:role/other").unwrap();
        let role = env.role.unwrap();
        assert_eq!(
            (role.arn.as_str(), role.audience.as_str()),
            ("arn:aws:iam::222222222222:role/other", "sts.amazonaws.com")
        );
    }

    #[test]
    fn read_only_commands_use_the_plan_role_without_chain_or_tags() {
        let env = shop_dev();
        assert!(env.role.as_ref().unwrap().plan_arn.is_none());
        let same = env.clone().for_reading();
        assert_eq!(same.role.unwrap().arn, env.role.as_ref().unwrap().arn);

        let mut env = env;
        let role = env.role.as_mut().unwrap();
        role.plan_arn = Some(arn("arn:aws:iam::222222222222:role/shop-planner-dev"));
        role.chain = Some(arn("arn:aws:iam::222222222222:role/target"));
        role.session_tags.insert("team".into(), "shop".into());
        let read = env.clone().for_reading().role.unwrap();
        assert_eq!(read.arn.as_str(), "arn:aws:iam::222222222222:role/shop-planner-dev");
        assert!(read.chain.is_none() && read.session_tags.is_empty());
        // The deploy commands keep the deploy role.
        assert_eq!(env.role.unwrap().arn.as_str(), "arn:aws:iam::222222222222:role/shop-deployer-dev");
    }

    #[test]
    fn detects_sources_in_order() {
        assert_eq!(detect(&env(&[("HOME", "/nonexistent")])), None);
        assert_eq!(
            detect(&env(&[
                ("ACTIONS_ID_TOKEN_REQUEST_URL", "u"),
                ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "t"),
                ("AWS_ACCESS_KEY_ID", "a"),
                ("AWS_SECRET_ACCESS_KEY", "s")
            ])),
            Some(CredentialSource::GithubOidc)
        );
        assert_eq!(
            detect(&env(&[("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "s")])),
            Some(CredentialSource::Environment)
        );
        assert_eq!(detect(&env(&[("AWS_PROFILE", "dev")])), Some(CredentialSource::Profile("dev".into())));
    }
}
