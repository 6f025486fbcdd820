//! A fake GitHub Actions OIDC token endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL`).
//!
//! It answers only requests that carry the expected `Authorization: Bearer` request token, the
//! `api-version=2.0` the runner puts in the URL and the expected `audience`; anything else gets
//! a 404, so a client that forgets one of them fails the test. Every answer is a fresh unsigned
//! JWT (header.payload.signature, base64url) with realistic claims and `iat`/`exp` five minutes
//! apart, like GitHub's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use deployer::identity::OidcRequest;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub const REQUEST_TOKEN: &str = "fake-actions-request-token";

/// A running fake token endpoint.
pub struct FakeOidc {
    pub server: MockServer,
    issued: Arc<AtomicU64>,
}

/// Encodes `claims` as an unsigned JWT.
pub fn jwt(claims: &serde_json::Value) -> String {
    let e = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "kid": "fake"});
    format!(
        "{}.{}.{}",
        e(header.to_string().as_bytes()),
        e(claims.to_string().as_bytes()),
        e(b"not-a-signature")
    )
}

/// The claims GitHub puts in a token for a job of `acme/shop` on `main`, optionally in a
/// GitHub environment.
pub fn github_claims(audience: &str, environment: Option<&str>) -> serde_json::Value {
    let sub = environment.map_or_else(
        || "repo:acme/shop:ref:refs/heads/main".to_owned(),
        |e| format!("repo:acme/shop:environment:{e}"),
    );
    let mut c = serde_json::json!({
        "iss": "https://token.actions.githubusercontent.com",
        "sub": sub,
        "aud": audience,
        "ref": "refs/heads/main",
        "ref_type": "branch",
        "sha": "2f6b1c0ffee0ddba11ab1eb0a710ad5ca1ab1e00",
        "repository": "acme/shop",
        "repository_id": "123456789",
        "repository_owner": "acme",
        "repository_owner_id": "987654",
        "repository_visibility": "private",
        "actor": "octocat",
        "actor_id": "1",
        "workflow": "deploy",
        "workflow_ref": "acme/shop/.github/workflows/deploy.yml@refs/heads/main",
        "job_workflow_ref": "acme/shop/.github/workflows/deploy.yml@refs/heads/main",
        "event_name": "push",
        "run_id": "4242",
        "run_number": "17",
        "run_attempt": "1",
        "runner_environment": "github-hosted",
    });
    if let Some(e) = environment {
        c["environment"] = serde_json::json!(e);
    }
    c
}

impl FakeOidc {
    /// Serves tokens with `claims` (iat/exp/nbf/jti are set per token) for `audience`.
    pub async fn start(audience: &str, claims: serde_json::Value) -> Self {
        let server = MockServer::start().await;
        let issued = Arc::new(AtomicU64::new(0));
        let counter = issued.clone();
        Mock::given(method("GET"))
            .and(path("/_apis/token"))
            .and(query_param("api-version", "2.0"))
            .and(query_param("audience", audience))
            .and(header("authorization", format!("Bearer {REQUEST_TOKEN}").as_str()))
            .respond_with(move |_: &Request| {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                let now =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                let mut c = claims.clone();
                c["iat"] = serde_json::json!(now);
                c["nbf"] = serde_json::json!(now - 600);
                c["exp"] = serde_json::json!(now + 300);
                c["jti"] = serde_json::json!(format!("token-{n}"));
                ResponseTemplate::new(200).set_body_json(serde_json::json!({"count": 1, "value": jwt(&c)}))
            })
            .mount(&server)
            .await;
        Self { server, issued }
    }

    /// What the runner would put in `ACTIONS_ID_TOKEN_REQUEST_URL` / `_TOKEN`.
    pub fn request(&self) -> OidcRequest {
        OidcRequest {
            url: format!("{}/_apis/token?api-version=2.0", self.server.uri()),
            bearer: REQUEST_TOKEN.to_owned(),
        }
    }

    /// How many tokens were issued (requests that passed every check).
    pub fn issued(&self) -> u64 {
        self.issued.load(Ordering::SeqCst)
    }

    /// Every request received, matching or not.
    pub async fn requests(&self) -> Vec<Request> {
        self.server.received_requests().await.unwrap_or_default()
    }
}
