//! EKS access: the cluster's endpoint and CA from `eks:DescribeCluster`, and bearer tokens
//! generated in-process the way `aws eks get-token` / aws-iam-authenticator do.
//!
//! A token is `k8s-aws-v1.` + base64url (unpadded) of a SigV4 query-presigned
//! `GET https://sts.<region>.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15` with the
//! header `x-k8s-aws-id: <cluster>` signed and `X-Amz-Expires=60`. The API server accepts it for
//! 15 minutes after `X-Amz-Date` (and only while the signing credentials are valid), so
//! [`TokenSource::token`] renews it a minute before that.
//!
//! Integrator API: [`kube_config`] turns `target.eks` into a [`KubeAccess`] whose `config` builds
//! the `kube::Client` (an explicit kubeconfig `context` wins over `cluster`). For a cluster the
//! config names a token file that a background task keeps current, so a client built once
//! keeps working through a 75-minute deploy; keep the `KubeAccess` alive as long as the client.
//! [`TokenSource::token`] (cached, renewed a minute before expiry) serves anything else that
//! needs a bearer token.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_types::SdkConfig;
use base64::Engine;

use super::IdentityError;
use super::mask::Masker;
use crate::config::EksTarget;

/// A token is accepted this long after its `X-Amz-Date`.
pub const TOKEN_LIFETIME: Duration = Duration::from_mins(15);
/// Tokens are renewed this long before they stop being accepted.
pub const RENEW_BEFORE: Duration = Duration::from_mins(1);

/// A bearer token and the moment it stops being accepted.
#[derive(Clone, PartialEq, Eq)]
pub struct EksToken {
    pub token: String,
    pub expires_at: SystemTime,
}

impl std::fmt::Debug for EksToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EksToken").field("token", &"***").field("expires_at", &self.expires_at).finish()
    }
}

/// The STS host a token is signed for (the API server checks it).
pub fn sts_host(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("sts.{region}.amazonaws.com.cn")
    } else {
        format!("sts.{region}.amazonaws.com")
    }
}

/// Signs a token for `cluster` with `credentials` at time `at`.
pub fn presign(
    credentials: &Credentials,
    region: &str,
    cluster: &str,
    at: SystemTime,
) -> Result<EksToken, IdentityError> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
    let err = |e: &dyn std::fmt::Display| IdentityError::Signing { message: e.to_string() };
    let identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    // 60 s, as aws-iam-authenticator signs; the server accepts the token for 15 min regardless.
    settings.expires_in = Some(Duration::from_mins(1));
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(at)
        .settings(settings)
        .build()
        .map_err(|e| err(&e))?
        .into();
    let base = format!("https://{}/?Action=GetCallerIdentity&Version=2011-06-15", sts_host(region));
    let request = SignableRequest::new(
        "GET",
        base.as_str(),
        [("x-k8s-aws-id", cluster)].into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| err(&e))?;
    let (instructions, _) = sign(request, &params).map_err(|e| err(&e))?.into_parts();
    let mut url = url::Url::parse(&base).map_err(|e| err(&e))?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in instructions.params() {
            q.append_pair(k, v);
        }
    }
    let token =
        format!("k8s-aws-v1.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url.as_str()));
    let mut expires_at = at + TOKEN_LIFETIME;
    if let Some(exp) = credentials.expiry() {
        expires_at = expires_at.min(exp);
    }
    Ok(EksToken { token, expires_at })
}

/// Hands out tokens for one cluster, renewing them before they expire.
#[derive(Debug)]
pub struct TokenSource {
    provider: SharedCredentialsProvider,
    region: String,
    cluster: String,
    masker: Option<Arc<Masker>>,
    cached: tokio::sync::Mutex<Option<EksToken>>,
}

impl TokenSource {
    /// Tokens signed with `provider`'s credentials (e.g. an [`AwsSession`](super::AwsSession)'s);
    /// each new token is added to `masker`.
    pub fn new(
        provider: SharedCredentialsProvider,
        region: &str,
        cluster: &str,
        masker: Option<Arc<Masker>>,
    ) -> Self {
        Self {
            provider,
            region: region.to_owned(),
            cluster: cluster.to_owned(),
            masker,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// A token valid for at least [`RENEW_BEFORE`].
    pub async fn token(&self) -> Result<EksToken, IdentityError> {
        self.get(false).await
    }

    /// A newly signed token, whatever the cache holds.
    pub async fn fresh_token(&self) -> Result<EksToken, IdentityError> {
        self.get(true).await
    }

    async fn get(&self, fresh: bool) -> Result<EksToken, IdentityError> {
        let mut cached = self.cached.lock().await;
        if !fresh
            && let Some(t) = cached.as_ref()
            && SystemTime::now() + RENEW_BEFORE < t.expires_at
        {
            return Ok(t.clone());
        }
        let creds = self.provider.provide_credentials().await.map_err(|e| IdentityError::NoCredentials {
            detail: aws_sdk_sts::error::DisplayErrorContext(&e).to_string(),
        })?;
        let t = presign(&creds, &self.region, &self.cluster, SystemTime::now())?;
        if let Some(m) = &self.masker {
            m.add(&t.token);
        }
        *cached = Some(t.clone());
        Ok(t)
    }
}

/// What the Kubernetes client needs to reach an EKS cluster.
#[derive(Debug, Clone)]
pub struct ClusterAccess {
    pub cluster: String,
    /// `https://….eks.amazonaws.com`.
    pub endpoint: String,
    /// Base64 of the cluster CA in PEM (kubeconfig's `certificate-authority-data`).
    pub certificate_authority_data: String,
    pub tokens: Arc<TokenSource>,
}

/// `eks:DescribeCluster` for the endpoint and CA, plus a token source using `config`'s credentials.
pub async fn cluster_access(
    config: &SdkConfig,
    cluster: &str,
    masker: Option<Arc<Masker>>,
) -> Result<ClusterAccess, IdentityError> {
    let eks_err = |message: String| IdentityError::Eks { cluster: cluster.to_owned(), message };
    let out = aws_sdk_eks::Client::new(config)
        .describe_cluster()
        .name(cluster)
        .send()
        .await
        .map_err(|e| eks_err(aws_sdk_eks::error::DisplayErrorContext(&e).to_string()))?;
    let c = out.cluster().ok_or_else(|| eks_err("the answer has no cluster".to_owned()))?;
    let endpoint = c.endpoint().filter(|e| !e.is_empty()).ok_or_else(|| {
        eks_err(format!(
            "the cluster has no endpoint yet (status {:?})",
            c.status().map(|s| s.as_str().to_owned())
        ))
    })?;
    let ca = c
        .certificate_authority()
        .and_then(|a| a.data())
        .ok_or_else(|| eks_err("the cluster has no certificate authority data".to_owned()))?;
    let provider = config.credentials_provider().ok_or_else(|| IdentityError::NoCredentials {
        detail: "the AWS configuration has no credentials".to_owned(),
    })?;
    let region = config.region().map_or_else(String::new, ToString::to_string);
    Ok(ClusterAccess {
        cluster: cluster.to_owned(),
        endpoint: endpoint.to_owned(),
        certificate_authority_data: ca.to_owned(),
        tokens: Arc::new(TokenSource::new(provider, &region, cluster, masker)),
    })
}

impl ClusterAccess {
    /// A `kube::Config` for the cluster with a current token and `namespace` as default. The
    /// token is fixed: use [`Self::refreshing_kube_config`] for clients that live longer than
    /// a few minutes.
    pub async fn kube_config(&self, namespace: &str) -> Result<kube::Config, IdentityError> {
        let token = self.tokens.token().await?;
        self.build_config(namespace, serde_json::json!({"token": token.token})).await
    }

    /// A `kube::Config` whose token never goes stale: it names a token file (kube re-reads it at
    /// least once a minute) that a background task rewrites with a newly signed token well
    /// before the current one expires. Keep the returned value alive as long as the client.
    pub async fn refreshing_kube_config(
        &self,
        namespace: &str,
    ) -> Result<RefreshingKubeConfig, IdentityError> {
        let io =
            |e: std::io::Error| IdentityError::Eks { cluster: self.cluster.clone(), message: e.to_string() };
        // tempfile creates the directory 0700: the token is readable by this user only.
        let dir = tempfile::Builder::new().prefix("deployer-eks-").tempdir().map_err(io)?;
        let path = dir.path().join("token");
        let first = self.tokens.fresh_token().await?;
        write_token(&path, &first.token).map_err(io)?;
        let config =
            self.build_config(namespace, serde_json::json!({"tokenFile": path.to_string_lossy()})).await?;
        let tokens = self.tokens.clone();
        let file = path.clone();
        let task = tokio::spawn(async move {
            let mut expires_at = first.expires_at;
            loop {
                tokio::time::sleep(rewrite_delay(expires_at, SystemTime::now())).await;
                match tokens.fresh_token().await {
                    Ok(t) => match write_token(&file, &t.token) {
                        Ok(()) => expires_at = t.expires_at,
                        Err(e) => tracing::warn!("cannot rewrite the EKS token file: {e}"),
                    },
                    Err(e) => tracing::warn!("cannot renew the EKS token: {e}"),
                }
            }
        });
        Ok(RefreshingKubeConfig { config, token_file: path, _dir: dir, task })
    }

    async fn build_config(
        &self,
        namespace: &str,
        user: serde_json::Value,
    ) -> Result<kube::Config, IdentityError> {
        let kubeconfig = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": self.cluster, "cluster": {
                "server": self.endpoint,
                "certificate-authority-data": self.certificate_authority_data,
            }}],
            "users": [{"name": "deployer", "user": user}],
            "contexts": [{"name": "deployer", "context": {
                "cluster": self.cluster, "user": "deployer", "namespace": namespace,
            }}],
            "current-context": "deployer",
        });
        let err = |e: &dyn std::fmt::Display| IdentityError::Eks {
            cluster: self.cluster.clone(),
            message: e.to_string(),
        };
        let kc: kube::config::Kubeconfig = serde_json::from_value(kubeconfig).map_err(|e| err(&e))?;
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| err(&e))
    }
}

/// A `kube::Config` reading its token from a file that is kept current; dropping it stops the
/// renewal and deletes the file.
#[derive(Debug)]
pub struct RefreshingKubeConfig {
    pub config: kube::Config,
    pub token_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RefreshingKubeConfig {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// kube re-reads a token file at most a minute late; rewrite it with margin to spare.
const FILE_MARGIN: Duration = Duration::from_mins(3);

/// How long to wait before rewriting the token file for a token expiring at `expires_at`.
fn rewrite_delay(expires_at: SystemTime, now: SystemTime) -> Duration {
    let due = expires_at.checked_sub(FILE_MARGIN).unwrap_or(now);
    // Short-lived credentials (or a failed renewal) must not turn this into a busy loop.
    due.duration_since(now).unwrap_or_default().max(Duration::from_secs(1))
}

/// Replaces the token file atomically, so kube never reads half a token.
fn write_token(path: &Path, token: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, token)?;
    std::fs::rename(&tmp, path)
}

/// A `kube::Config` for an explicit kubeconfig context (`KUBECONFIG`/`~/.kube/config`, or the
/// file given).
pub async fn kube_config_for_context(
    context: &str,
    kubeconfig: Option<&Path>,
) -> Result<kube::Config, IdentityError> {
    let err = |e: &dyn std::fmt::Display| IdentityError::Kubeconfig {
        context: context.to_owned(),
        message: e.to_string(),
    };
    let options = kube::config::KubeConfigOptions { context: Some(context.to_owned()), ..Default::default() };
    match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| err(&e))?;
            kube::Config::from_custom_kubeconfig(kc, &options).await.map_err(|e| err(&e))
        }
        None => kube::Config::from_kubeconfig(&options).await.map_err(|e| err(&e)),
    }
}

/// Registers the credentials of a kubeconfig's user with `masker`: bearer token, password,
/// client key (as written, base64-decoded, and the content of `client-key`), the content of
/// `tokenFile`, and the tokens and secrets of an `auth-provider`. (Tokens an `exec` plugin hands
/// to the client inside kube are never seen by deployer, so they cannot be registered here.)
pub fn mask_kube_credentials(config: &kube::Config, masker: &Masker) {
    use serde_json::Value;
    // kube keeps these as `SecretString`; its serialisation (made for writing kubeconfigs)
    // is the one place they come out as text.
    let Ok(user) = serde_json::to_value(&config.auth_info) else { return };
    let text = |k: &str| user.get(k).and_then(Value::as_str).filter(|v| !v.trim().is_empty());
    let file = |k: &str| text(k).and_then(|p| std::fs::read_to_string(p).ok());
    let mut secrets: Vec<String> = ["token", "password", "client-key-data"]
        .iter()
        .filter_map(|k| text(k).map(str::to_owned))
        .chain(file("tokenFile"))
        .chain(file("client-key"))
        .collect();
    if let Some(key) = text("client-key-data")
        && let Ok(pem) = base64::engine::general_purpose::STANDARD.decode(key.trim())
    {
        secrets.push(String::from_utf8_lossy(&pem).into_owned());
    }
    if let Some(provider) = user.get("auth-provider").and_then(|p| p.get("config")).and_then(Value::as_object)
    {
        secrets.extend(
            provider
                .iter()
                .filter(|(k, _)| k.contains("token") || k.contains("secret"))
                .filter_map(|(_, v)| v.as_str().map(str::to_owned)),
        );
    }
    for s in secrets {
        masker.add(&s);
        masker.add(s.trim());
    }
}

/// How deployer reaches the cluster of an EKS target.
#[derive(Debug)]
pub struct KubeAccess {
    pub config: kube::Config,
    /// Present for `cluster:` targets (tokens renew while this lives); absent for `context:`.
    pub cluster: Option<ClusterAccess>,
    pub refresh: Option<RefreshingKubeConfig>,
}

/// The Kubernetes configuration for an EKS target: the explicit `context` when set, else the
/// `cluster` through `eks:DescribeCluster` with a token file that is kept current.
pub async fn kube_config(
    target: &EksTarget,
    session: &super::AwsSession,
) -> Result<KubeAccess, IdentityError> {
    if let Some(context) = &target.context {
        let mut config = kube_config_for_context(context, None).await?;
        mask_kube_credentials(&config, &session.masker);
        config.default_namespace.clone_from(&target.namespace);
        return Ok(KubeAccess { config, cluster: None, refresh: None });
    }
    let cluster = target.cluster.as_deref().ok_or_else(|| IdentityError::Eks {
        cluster: String::new(),
        message: "target.eks has neither `cluster` nor `context`".to_owned(),
    })?;
    let access = cluster_access(&session.config, cluster, Some(session.masker.clone())).await?;
    let refresh = access.refreshing_kube_config(&target.namespace).await?;
    Ok(KubeAccess { config: refresh.config.clone(), cluster: Some(access), refresh: Some(refresh) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(token: &str) -> url::Url {
        let b64 = token.strip_prefix("k8s-aws-v1.").unwrap();
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64).unwrap();
        url::Url::parse(std::str::from_utf8(&raw).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_kubeconfig_users_credentials_are_registered() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "file-token-0123456789\n").unwrap();
        let key_pem = "-----BEGIN PRIVATE KEY-----\nMIIKEYBODY0123456789\n-----END PRIVATE KEY-----\n";
        let key_b64 = base64::engine::general_purpose::STANDARD.encode(key_pem);
        let kubeconfig = serde_json::json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "k", "cluster": {"server": "http://127.0.0.1:1"}}],
            "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
            "users": [{"name": "u", "user": {
                "token": "inline-token-0123456789", "tokenFile": token_file.to_string_lossy(),
                "username": "admin", "password": "basic-password-0123",
                "client-key-data": key_b64,
                "auth-provider": {"name": "oidc", "config": {"id-token": "idtok-0123", "refresh-token": "refresh-0123",
                    "client-secret": "client-secret-0123", "client-id": "public-id"}},
            }}],
        });
        let kc: kube::config::Kubeconfig = serde_json::from_value(kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
        let m = Masker::new();
        mask_kube_credentials(&config, &m);
        let values = m.values();
        for v in [
            "inline-token-0123456789",
            "file-token-0123456789",
            "basic-password-0123",
            key_b64.as_str(),
            key_pem,
            "idtok-0123",
            "refresh-0123",
            "client-secret-0123",
        ] {
            assert!(values.iter().any(|x| x == v), "{v} not registered: {values:?}");
        }
        assert!(!values.iter().any(|x| x == "admin" || x == "public-id"), "{values:?}");
    }

    #[test]
    fn token_file_rewrite_schedule() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(rewrite_delay(now + TOKEN_LIFETIME, now), Duration::from_mins(12));
        assert_eq!(
            rewrite_delay(now + Duration::from_secs(5), now),
            Duration::from_secs(1),
            "never a busy loop"
        );
        assert_eq!(rewrite_delay(now - Duration::from_secs(5), now), Duration::from_secs(1));
    }

    #[test]
    fn token_shape() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let creds = Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            Some("tok+en/=".into()),
            Some(at + Duration::from_mins(5)),
            "t",
        );
        let t = presign(&creds, "eu-west-1", "shop", at).unwrap();
        assert!(!t.token.contains('='), "unpadded");
        assert_eq!(t.expires_at, at + Duration::from_mins(5), "bounded by the credentials");
        let url = decode(&t.token);
        assert_eq!(url.host_str(), Some("sts.eu-west-1.amazonaws.com"));
        assert_eq!(url.path(), "/");
        let q: std::collections::BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["Action"], "GetCallerIdentity");
        assert_eq!(q["Version"], "2011-06-15");
        assert_eq!(q["X-Amz-Expires"], "60");
        assert_eq!(q["X-Amz-Date"], "20231114T221320Z");
        assert_eq!(q["X-Amz-Security-Token"], "tok+en/=");
        assert!(q["X-Amz-SignedHeaders"].split(';').any(|h| h == "x-k8s-aws-id"));
        assert!(q["X-Amz-Credential"].starts_with("AKIDEXAMPLE/20231114/eu-west-1/sts/aws4_request"));
        let allowed = [
            "Action",
            "Version",
            "X-Amz-Algorithm",
            "X-Amz-Credential",
            "X-Amz-Date",
            "X-Amz-Expires",
            "X-Amz-Security-Token",
            "X-Amz-Signature",
            "X-Amz-SignedHeaders",
        ];
        assert!(q.keys().all(|k| allowed.contains(&k.as_str())), "{q:?}");
        let long = presign(&Credentials::new("A", "s", None, None, "t"), "eu-west-1", "shop", at).unwrap();
        assert_eq!(long.expires_at, at + TOKEN_LIFETIME);
        assert_eq!(sts_host("cn-north-1"), "sts.cn-north-1.amazonaws.com.cn");
    }
}
