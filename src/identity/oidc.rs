//! GitHub Actions OIDC: requesting the job's ID token and reading (not verifying) its claims.
//!
//! The token is requested from `ACTIONS_ID_TOKEN_REQUEST_URL` (plus `&audience=`) with
//! `Authorization: Bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN`; the answer is `{"value": JWT}`. A
//! token lives about five minutes, so it is fetched right before each exchange, never cached.
//! The claims are decoded only to explain an STS refusal and to check the production guard: STS
//! verifies the signature, deployer does not need to.

use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::IdentityError;

/// Where and how to ask GitHub for an ID token.
#[derive(Debug, Clone)]
pub struct OidcRequest {
    /// `ACTIONS_ID_TOKEN_REQUEST_URL` (already carries `?api-version=…`).
    pub url: String,
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
    pub bearer: String,
}

impl OidcRequest {
    /// Reads the two variables GitHub sets when the job has `permissions: id-token: write`.
    pub fn from_env(var: &dyn Fn(&str) -> Option<String>) -> Option<Self> {
        let url = var("ACTIONS_ID_TOKEN_REQUEST_URL").filter(|v| !v.is_empty())?;
        let bearer = var("ACTIONS_ID_TOKEN_REQUEST_TOKEN").filter(|v| !v.is_empty())?;
        Some(Self { url, bearer })
    }

    /// The request URL with the audience appended.
    pub fn url_for(&self, audience: &str) -> Result<url::Url, IdentityError> {
        let mut url = url::Url::parse(&self.url).map_err(|e| IdentityError::OidcRequest {
            message: format!("ACTIONS_ID_TOKEN_REQUEST_URL is not a URL ({e})"),
        })?;
        url.query_pairs_mut().append_pair("audience", audience);
        Ok(url)
    }
}

/// An ID token and its decoded claims.
#[derive(Debug, Clone)]
pub struct IdToken {
    pub jwt: String,
    pub claims: Claims,
}

/// The claims of a GitHub Actions ID token that matter to deployer (others are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub repository: Option<String>,
    pub repository_owner: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub ref_type: Option<String>,
    pub sha: Option<String>,
    /// Present only when the job runs in a GitHub environment (after its protection rules passed).
    pub environment: Option<String>,
    pub workflow_ref: Option<String>,
    pub job_workflow_ref: Option<String>,
    pub run_id: Option<String>,
    pub run_attempt: Option<String>,
    pub actor: Option<String>,
    pub event_name: Option<String>,
    pub runner_environment: Option<String>,
    pub iat: Option<i64>,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
}

/// `aud` is a string or an array of strings (RFC 7519).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Default for Audience {
    fn default() -> Self {
        Self::Many(Vec::new())
    }
}

impl std::fmt::Display for Audience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::One(a) => f.write_str(a),
            Self::Many(v) => f.write_str(&v.join(",")),
        }
    }
}

impl Claims {
    /// The issuer host used as the condition-key prefix in IAM (`token.actions.githubusercontent.com`).
    pub fn issuer_host(&self) -> String {
        let host = self.iss.trim_start_matches("https://").trim_end_matches('/');
        if host.is_empty() { "token.actions.githubusercontent.com".to_owned() } else { host.to_owned() }
    }
}

/// Decodes the payload of a JWT without verifying it.
pub fn decode_claims(jwt: &str) -> Result<Claims, IdentityError> {
    let bad =
        |why: &str| IdentityError::OidcRequest { message: format!("the ID token is not a JWT ({why})") };
    let mut parts = jwt.split('.');
    let (Some(_header), Some(payload), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("expected three dot-separated parts"));
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| bad("payload is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|e| bad(&format!("payload is not a claims object: {e}")))
}

#[derive(Deserialize)]
struct TokenResponse {
    value: String,
}

/// Requests an ID token for `audience`. Retries transport errors and 5xx answers twice, as the
/// Actions toolkit does; a 4xx is final (the request token is wrong or expired).
pub async fn fetch(
    http: &reqwest::Client,
    req: &OidcRequest,
    audience: &str,
) -> Result<IdToken, IdentityError> {
    use backon::Retryable as _;
    let url = req.url_for(audience)?;
    let once = || async {
        let resp = http
            .get(url.clone())
            .bearer_auth(&req.bearer)
            .header("Accept", "application/json; api-version=2.0")
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| Try::Again(format!("cannot reach the token endpoint: {e}")))?;
        let status = resp.status();
        if status.is_server_error() {
            return Err(Try::Again(format!("the token endpoint answered HTTP {status}")));
        }
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(Try::Final(IdentityError::OidcRequest {
                message: format!("the token endpoint answered HTTP {status}: {}", body.trim()),
            }));
        }
        let body: TokenResponse = resp.json().await.map_err(|e| {
            Try::Final(IdentityError::OidcRequest {
                message: format!("the token endpoint's answer has no `value`: {e}"),
            })
        })?;
        let claims = decode_claims(&body.value).map_err(Try::Final)?;
        Ok(IdToken { jwt: body.value, claims })
    };
    // Two retries, 0.5 s then 1 s apart.
    once.retry(crate::support::retry_policy(Duration::from_millis(500), Duration::from_secs(1), 2))
        .when(|e| matches!(e, Try::Again(_)))
        .await
        .map_err(|e| match e {
            Try::Again(message) => IdentityError::OidcRequest { message },
            Try::Final(e) => e,
        })
}

/// How one request for a token ended, when it did not give one.
enum Try {
    /// Worth another attempt (transport error, 5xx).
    Again(String),
    Final(IdentityError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &serde_json::Value) -> String {
        let e = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        format!("{}.{}.{}", e(br#"{"alg":"RS256"}"#), e(payload.to_string().as_bytes()), e(b"sig"))
    }

    #[test]
    fn decodes_github_claims() {
        let c = decode_claims(&jwt(&serde_json::json!({
            "iss": "https://token.actions.githubusercontent.com",
            "sub": "repo:acme/shop:environment:production",
            "aud": "sts.amazonaws.com",
            "ref": "refs/heads/main",
            "environment": "production",
            "repository": "acme/shop",
            "run_id": "42",
            "unknown_claim": {"nested": true}
        })))
        .unwrap();
        assert_eq!(c.sub, "repo:acme/shop:environment:production");
        assert_eq!(c.aud, Audience::One("sts.amazonaws.com".into()));
        assert_eq!(c.git_ref.as_deref(), Some("refs/heads/main"));
        assert_eq!(c.environment.as_deref(), Some("production"));
        assert_eq!(c.issuer_host(), "token.actions.githubusercontent.com");
        let many = decode_claims(&jwt(&serde_json::json!({"aud": ["a", "b"]}))).unwrap();
        assert_eq!(many.aud.to_string(), "a,b");
    }

    #[test]
    fn rejects_non_jwts() {
        assert!(decode_claims("abc").is_err());
        assert!(decode_claims("a.!!!.c").is_err());
        assert!(decode_claims("a.b.c.d").is_err());
    }

    #[test]
    fn appends_the_audience() {
        let r = OidcRequest { url: "https://x/token?api-version=2.0".into(), bearer: "b".into() };
        assert_eq!(
            r.url_for("sts.amazonaws.com").unwrap().as_str(),
            "https://x/token?api-version=2.0&audience=sts.amazonaws.com"
        );
        assert_eq!(r.url_for("a b&c").unwrap().query(), Some("api-version=2.0&audience=a+b%26c"));
    }
}
