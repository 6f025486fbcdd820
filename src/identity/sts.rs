//! STS: the credential chain behind an [`AwsSession`](super::AwsSession) and its refresh.
//!
//! The chain is one or two hops: a first hop (the GitHub OIDC token exchanged with
//! `AssumeRoleWithWebIdentity`, or the standard AWS chain optionally followed by `AssumeRole`
//! into the environment's role) and an optional chained `AssumeRole` with session tags. A
//! `ChainProvider` re-runs the whole chain, with a fresh OIDC token, whenever the cached
//! credentials are within the refresh margin of their expiry, so a deploy that outlives a
//! one-hour chained session keeps working.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{
    ProvideCredentials, SharedCredentialsProvider, error::CredentialsError, future,
};
use aws_sdk_sts::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_types::SdkConfig;

use super::IdentityError;
use super::mask::Masker;
use super::oidc::{self, Claims, OidcRequest};

/// Credentials closer than this to expiry are not worth keeping after a failed refresh.
const STILL_USABLE: Duration = Duration::from_secs(10);

/// Extra attempts after `IDPCommunicationError`.
const IDP_RETRIES: usize = 2;

/// AWS caps a session obtained by role chaining at one hour.
pub const CHAINED_MAX: Duration = Duration::from_hours(1);

/// The first hop of the chain.
#[derive(Debug, Clone)]
pub(crate) enum FirstHop {
    /// GitHub OIDC → `AssumeRoleWithWebIdentity`.
    WebIdentity { request: OidcRequest, audience: String, role: String, duration: Duration },
    /// The standard chain's credentials, then `AssumeRole` into `assume` unless the caller
    /// already is that role.
    Base { provider: SharedCredentialsProvider, assume: Option<(String, Duration)> },
}

/// The chained `AssumeRole`.
#[derive(Debug, Clone)]
pub(crate) struct ChainHop {
    pub role: String,
    pub duration: Duration,
    pub tags: BTreeMap<String, String>,
}

/// What one run of the chain produced.
#[derive(Debug, Clone)]
pub(crate) struct ChainOutput {
    pub credentials: Credentials,
    pub claims: Option<Claims>,
}

/// Runs the chain and caches its result until `margin` before expiry.
#[derive(Debug)]
pub(crate) struct ChainProvider {
    pub first: FirstHop,
    pub chain: Option<ChainHop>,
    /// Region, endpoints, HTTP client and retry settings for STS.
    pub base: SdkConfig,
    pub expected_account: String,
    pub margin: Duration,
    pub session_name: String,
    pub http: reqwest::Client,
    pub masker: Arc<Masker>,
    pub cache: tokio::sync::Mutex<Option<Credentials>>,
    pub runs: AtomicU64,
}

impl ChainProvider {
    /// Runs every hop once, with a fresh OIDC token.
    pub async fn run(&self) -> Result<ChainOutput, IdentityError> {
        self.runs.fetch_add(1, Ordering::Relaxed);
        let (mut creds, claims, mut assumed) = match &self.first {
            FirstHop::WebIdentity { request, audience, role, duration } => {
                use backon::Retryable as _;
                let once = || async {
                    let token = oidc::fetch(&self.http, request, audience).await?;
                    self.masker.add(&token.jwt);
                    let creds =
                        self.web_identity(role, *duration, &token.jwt, &token.claims, audience).await?;
                    Ok::<_, IdentityError>((creds.0, Some(token.claims), Some(creds.1)))
                };
                // STS could not reach GitHub's key endpoint: AWS documents this as retryable,
                // with a fresh token each time (1 s, then 2 s apart).
                once.retry(crate::support::retry_policy(Duration::from_secs(1), Duration::from_secs(2), IDP_RETRIES))
                    .when(|e| {
                        matches!(e, IdentityError::WebIdentityRefused { code, .. } if code == "IDPCommunicationError")
                    })
                    .await?
            }
            FirstHop::Base { provider, assume } => {
                let base = provider.provide_credentials().await.map_err(|e| {
                    IdentityError::NoCredentials { detail: DisplayErrorContext(&e).to_string() }
                })?;
                match assume {
                    None => (base, None, None),
                    Some((role, duration)) => {
                        let (c, arn) = self.assume_role(base, role, *duration, &BTreeMap::new()).await?;
                        (c, None, Some(arn))
                    }
                }
            }
        };
        if let Some(hop) = &self.chain {
            let (c, arn) =
                self.assume_role(creds, &hop.role, hop.duration.min(CHAINED_MAX), &hop.tags).await?;
            creds = c;
            assumed = Some(arn);
        }
        // A refresh must not land in another account either (the first run is checked with
        // GetCallerIdentity by `establish`).
        if let Some(arn) = assumed
            && let Some(account) = arn.split(':').nth(4)
            && account != self.expected_account
        {
            return Err(IdentityError::WrongAccount {
                expected: self.expected_account.clone(),
                actual: account.to_owned(),
                arn,
            });
        }
        self.masker.add(creds.access_key_id());
        self.masker.add(creds.secret_access_key());
        if let Some(t) = creds.session_token() {
            self.masker.add(t);
        }
        Ok(ChainOutput { credentials: creds, claims })
    }

    fn sts(&self, credentials: Option<Credentials>) -> aws_sdk_sts::Client {
        let mut b = aws_sdk_sts::config::Builder::from(&self.base);
        // The web-identity call is unsigned: without a provider the SDK sends it anonymously
        // instead of first probing the default chain (and the instance metadata endpoint).
        b.set_credentials_provider(credentials.map(SharedCredentialsProvider::new));
        aws_sdk_sts::Client::from_conf(b.build())
    }

    async fn web_identity(
        &self,
        role: &str,
        duration: Duration,
        jwt: &str,
        claims: &Claims,
        audience: &str,
    ) -> Result<(Credentials, String), IdentityError> {
        tracing::debug!(role, audience, session = %self.session_name, "AssumeRoleWithWebIdentity");
        let out = self
            .sts(None)
            .assume_role_with_web_identity()
            .role_arn(role)
            .role_session_name(&self.session_name)
            .web_identity_token(jwt)
            .duration_seconds(duration_secs(duration))
            .send()
            .await
            .map_err(|e| match e.code() {
                Some(code) => IdentityError::WebIdentityRefused {
                    role: role.to_owned(),
                    code: code.to_owned(),
                    message: e.message().unwrap_or_default().to_owned(),
                    claims: Box::new(claims.clone()),
                    audience: audience.to_owned(),
                },
                None => IdentityError::Sts {
                    operation: "AssumeRoleWithWebIdentity",
                    message: DisplayErrorContext(&e).to_string(),
                },
            })?;
        let arn = out.assumed_role_user().map(|u| u.arn().to_owned()).unwrap_or_default();
        let creds = out.credentials().ok_or_else(|| IdentityError::Sts {
            operation: "AssumeRoleWithWebIdentity",
            message: "the answer has no credentials".to_owned(),
        })?;
        Ok((convert(creds, "github-oidc"), arn))
    }

    async fn assume_role(
        &self,
        from: Credentials,
        role: &str,
        duration: Duration,
        tags: &BTreeMap<String, String>,
    ) -> Result<(Credentials, String), IdentityError> {
        let mut tag_list = Vec::new();
        for (k, v) in tags {
            tag_list.push(aws_sdk_sts::types::Tag::builder().key(k).value(v).build().map_err(|e| {
                IdentityError::Sts {
                    operation: "AssumeRole",
                    message: format!("invalid session tag `{k}`: {e}"),
                }
            })?);
        }
        tracing::debug!(role, session = %self.session_name, "AssumeRole (chained)");
        let out = self
            .sts(Some(from))
            .assume_role()
            .role_arn(role)
            .role_session_name(&self.session_name)
            .duration_seconds(duration_secs(duration))
            .set_tags((!tag_list.is_empty()).then_some(tag_list))
            .send()
            .await
            .map_err(|e| match e.code() {
                Some(code) => IdentityError::AssumeRoleRefused {
                    role: role.to_owned(),
                    code: code.to_owned(),
                    message: e.message().unwrap_or_default().to_owned(),
                    tagged: !tags.is_empty(),
                },
                None => IdentityError::Sts {
                    operation: "AssumeRole",
                    message: DisplayErrorContext(&e).to_string(),
                },
            })?;
        let arn = out.assumed_role_user().map(|u| u.arn().to_owned()).unwrap_or_default();
        let creds = out.credentials().ok_or_else(|| IdentityError::Sts {
            operation: "AssumeRole",
            message: "the answer has no credentials".to_owned(),
        })?;
        Ok((convert(creds, "assume-role"), arn))
    }

    /// The cached credentials, or a fresh run of the chain when they are within the margin of
    /// their expiry. Concurrent callers wait for one refresh.
    pub async fn credentials(&self) -> Result<Credentials, IdentityError> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref()
            && c.expiry().is_none_or(|exp| SystemTime::now() + self.margin < exp)
        {
            return Ok(c.clone());
        }
        match self.run().await {
            Ok(out) => {
                *cache = Some(out.credentials.clone());
                Ok(out.credentials)
            }
            // A failed refresh (a GitHub or STS hiccup) must not fail a deploy while the current
            // credentials still work: keep them and try again on the next call.
            Err(e) => match cache.as_ref() {
                Some(c) if c.expiry().is_some_and(|exp| SystemTime::now() + STILL_USABLE < exp) => {
                    tracing::warn!("credential refresh failed, keeping the current credentials: {e}");
                    Ok(c.clone())
                }
                _ => Err(e),
            },
        }
    }
}

/// The SDK-facing handle of a [`ChainProvider`].
#[derive(Debug, Clone)]
pub(crate) struct Refreshing(pub Arc<ChainProvider>);

impl ProvideCredentials for Refreshing {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.0.credentials().await.map_err(CredentialsError::provider_error)
        })
    }
}

fn duration_secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

fn convert(c: &aws_sdk_sts::types::Credentials, name: &'static str) -> Credentials {
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        SystemTime::try_from(*c.expiration()).ok(),
        name,
    )
}

/// Who the credentials belong to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Caller {
    pub account: String,
    pub arn: String,
    pub user_id: String,
}

/// `GetCallerIdentity` with the given credentials.
pub(crate) async fn caller_identity(
    base: &SdkConfig,
    credentials: Credentials,
) -> Result<Caller, IdentityError> {
    let mut b = aws_sdk_sts::config::Builder::from(base);
    b.set_credentials_provider(Some(SharedCredentialsProvider::new(credentials)));
    let out = aws_sdk_sts::Client::from_conf(b.build()).get_caller_identity().send().await.map_err(|e| {
        IdentityError::Sts { operation: "GetCallerIdentity", message: DisplayErrorContext(&e).to_string() }
    })?;
    Ok(Caller {
        account: out.account().unwrap_or_default().to_owned(),
        arn: out.arn().unwrap_or_default().to_owned(),
        user_id: out.user_id().unwrap_or_default().to_owned(),
    })
}

/// True when `caller_arn` (an STS assumed-role ARN) is a session of `role_arn`.
pub fn is_session_of(caller_arn: &str, role_arn: &str) -> bool {
    let caller: Vec<&str> = caller_arn.splitn(6, ':').collect();
    let role: Vec<&str> = role_arn.splitn(6, ':').collect();
    if caller.len() != 6 || role.len() != 6 || caller[4] != role[4] {
        return false;
    }
    let Some(rest) = caller[5].strip_prefix("assumed-role/") else { return false };
    let name = rest.split('/').next().unwrap_or_default();
    let role_name = role[5].rsplit('/').next().unwrap_or_default();
    !name.is_empty() && name == role_name
}

/// The role session name: `<repository>-<run id>-<attempt>` in GitHub Actions (CloudTrail then
/// leads back to the run), `deployer-<user>` elsewhere; characters outside `[\w+=,.@-]` become
/// `-` and the result is cut to 64 characters, keeping the run id.
pub fn session_name(var: &dyn Fn(&str) -> Option<String>) -> String {
    let clean = |s: &str| -> String {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) { c } else { '-' }).collect()
    };
    let (prefix, suffix) = match (var("GITHUB_REPOSITORY"), var("GITHUB_RUN_ID")) {
        (Some(repo), Some(run)) if !repo.is_empty() && !run.is_empty() => {
            let attempt =
                var("GITHUB_RUN_ATTEMPT").filter(|a| !a.is_empty()).unwrap_or_else(|| "1".to_owned());
            (clean(&repo), clean(&format!("-{run}-{attempt}")))
        }
        _ => {
            let user = var("USER").or_else(|| var("USERNAME")).filter(|u| !u.is_empty());
            (user.map_or_else(|| "deployer".to_owned(), |u| format!("deployer-{}", clean(&u))), String::new())
        }
    };
    let suffix: String = suffix.chars().take(64).collect();
    let room = 64 - suffix.len();
    let name = format!("{}{suffix}", prefix.chars().take(room).collect::<String>());
    if name.len() < 2 { "deployer".to_owned() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn session_names() {
        assert_eq!(
            session_name(&vars(&[
                ("GITHUB_REPOSITORY", "acme/shop"),
                ("GITHUB_RUN_ID", "123"),
                ("GITHUB_RUN_ATTEMPT", "2")
            ])),
            "acme-shop-123-2"
        );
        assert_eq!(
            session_name(&vars(&[("GITHUB_REPOSITORY", "acme/shop"), ("GITHUB_RUN_ID", "9")])),
            "acme-shop-9-1"
        );
        assert_eq!(session_name(&vars(&[("USER", "jörg smith")])), "deployer-j-rg-smith");
        assert_eq!(session_name(&vars(&[])), "deployer");
        let long = session_name(&vars(&[
            (
                "GITHUB_REPOSITORY",
                "an-organisation-with-a-long-name/and-a-repository-with-an-even-longer-name",
            ),
            ("GITHUB_RUN_ID", "12345678901"),
            ("GITHUB_RUN_ATTEMPT", "3"),
        ]));
        assert_eq!(long.len(), 64);
        assert!(long.ends_with("-12345678901-3"), "{long}");
        assert!(long.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)));
    }

    #[test]
    fn recognises_a_session_of_the_role() {
        let role = "arn:aws:iam::123456789012:role/ci/deployer";
        assert!(is_session_of("arn:aws:sts::123456789012:assumed-role/deployer/alice", role));
        assert!(!is_session_of("arn:aws:sts::210987654321:assumed-role/deployer/alice", role));
        assert!(!is_session_of("arn:aws:sts::123456789012:assumed-role/admin/alice", role));
        assert!(!is_session_of("arn:aws:iam::123456789012:user/deployer", role));
    }
}
