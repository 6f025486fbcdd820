//! Identity as a deploy meets it: GitHub OIDC → STS (moto) → chained role, refreshing for as long
//! as the process runs, the account allow-list, STS refusals explained (wiremock STS speaking
//! the real XML errors), EKS access and tokens checked against botocore.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use deployer::config::{Config, Environment, Target, values::RoleArn};
use deployer::identity::{self, IdentityError, Options, eks};
use wiremock::matchers::{body_string_contains, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::moto::{Moto, REGION};
use crate::support::oidc::{FakeOidc, github_claims};
use crate::support::{self, venv_bin};

/// The example product's `prod` environment (account 333333333333, approval-gated).
fn prod() -> Environment {
    let config = Config::load(&support::root().join("examples/shop/deployer.yaml")).unwrap();
    config.environment("prod").unwrap()
}

fn arn(s: &str) -> RoleArn {
    RoleArn::parse(s).unwrap()
}

/// An SDK configuration pointing every service at `endpoint`, with or without base credentials.
async fn base(endpoint: &str, creds: Option<Credentials>) -> SdkConfig {
    let loader =
        aws_config::defaults(BehaviorVersion::latest()).endpoint_url(endpoint).region(Region::new(REGION));
    match creds {
        Some(c) => loader.credentials_provider(c).load().await,
        None => loader.no_credentials().load().await,
    }
}

fn actions_vars(k: &str) -> Option<String> {
    match k {
        "GITHUB_REPOSITORY" => Some("acme/shop".into()),
        "GITHUB_RUN_ID" => Some("4242".into()),
        "GITHUB_RUN_ATTEMPT" => Some("1".into()),
        _ => None,
    }
}

async fn oidc_options(endpoint: &str, oidc: &FakeOidc) -> Options {
    Options {
        oidc: Some(oidc.request()),
        session_name: identity::sts::session_name(&actions_vars),
        ..Options::new(base(endpoint, None).await)
    }
}

async fn caller_arn(config: &SdkConfig) -> String {
    let out = aws_sdk_sts::Client::new(config).get_caller_identity().send().await.unwrap();
    out.arn().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn github_oidc_then_chained_role_with_tags() {
    let moto = Moto::start();
    let oidc =
        FakeOidc::start("sts.amazonaws.com", github_claims("sts.amazonaws.com", Some("production"))).await;
    let mut env = prod();
    let role = env.role.as_mut().unwrap();
    role.arn = arn("arn:aws:iam::111111111111:role/github-oidc");
    role.chain = Some(arn("arn:aws:iam::333333333333:role/shop-deployer-prod"));
    role.session_tags = [("team".to_owned(), "shop".to_owned())].into();

    let session = identity::establish(&env, oidc_options(&moto.url, &oidc).await).await.unwrap();

    assert_eq!(session.caller.account, "333333333333");
    assert_eq!(
        session.caller.arn,
        "arn:aws:sts::333333333333:assumed-role/shop-deployer-prod/acme-shop-4242-1"
    );
    let claims = session.claims.as_ref().unwrap();
    assert_eq!(claims.environment.as_deref(), Some("production"));
    assert_eq!(claims.sub, "repo:acme/shop:environment:production");
    assert_eq!(oidc.issued(), 1, "one token, requested with the bearer and audience");
    assert_eq!(session.chain_runs(), 1);
    // Clients built from the session act as the chained role.
    assert_eq!(caller_arn(&session.config).await, session.caller.arn);

    // Masks: the JWT and every part of the final credentials, each once.
    let lines = session.mask_lines();
    assert_eq!(oidc.requests().await.len(), 1, "no request was turned away by the fake");
    let creds = aws_credential_types::provider::ProvideCredentials::provide_credentials(
        &session.credentials_provider(),
    )
    .await
    .unwrap();
    for secret in [creds.access_key_id(), creds.secret_access_key(), creds.session_token().unwrap()] {
        assert!(lines.contains(&format!("::add-mask::{secret}")), "{secret} not masked: {lines:?}");
    }
    assert!(lines.iter().any(|l| l.starts_with("::add-mask::ey")), "the JWT is masked: {lines:?}");
    assert!(session.mask_lines().is_empty(), "lines are handed out once");
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_refresh_before_expiry_for_as_long_as_the_process_runs() {
    let moto = Moto::start();
    let oidc =
        FakeOidc::start("sts.amazonaws.com", github_claims("sts.amazonaws.com", Some("production"))).await;
    let mut env = prod();
    env.role.as_mut().unwrap().chain = Some(arn("arn:aws:iam::333333333333:role/shop-deployer-chained"));
    // moto honours any DurationSeconds: 3 s sessions renewed 1 s before expiry stand in for
    // 1 h chained sessions renewed 5 min before.
    let opts = Options {
        session_duration: Some(Duration::from_secs(3)),
        refresh_margin: Duration::from_secs(1),
        ..oidc_options(&moto.url, &oidc).await
    };
    let session = identity::establish(&env, opts).await.unwrap();
    let sts = aws_sdk_sts::Client::new(&session.config);
    let mut keys = std::collections::BTreeSet::new();
    // Keep working well past several session lifetimes: every call must succeed.
    for _ in 0..40 {
        let out = sts.get_caller_identity().send().await.unwrap();
        assert_eq!(out.account(), Some("333333333333"));
        let creds = aws_credential_types::provider::ProvideCredentials::provide_credentials(
            &session.credentials_provider(),
        )
        .await
        .unwrap();
        keys.insert(creds.access_key_id().to_owned());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let runs = session.chain_runs();
    assert!(runs >= 3, "expected at least 2 refreshes over 10 s of 3 s sessions, the chain ran {runs} times");
    assert_eq!(oidc.issued(), runs, "every refresh fetched a fresh OIDC token");
    assert!(keys.len() >= 3, "new credentials after each refresh: {keys:?}");
    // Refreshed secrets are queued for masking too.
    assert!(session.mask_lines().len() >= 4 * usize::try_from(runs).unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chained_role_in_another_account_is_refused() {
    let moto = Moto::start();
    let oidc =
        FakeOidc::start("sts.amazonaws.com", github_claims("sts.amazonaws.com", Some("production"))).await;
    let mut env = prod();
    // Config validation rejects this; the runtime check must hold on its own.
    env.role.as_mut().unwrap().chain = Some(arn("arn:aws:iam::444444444444:role/elsewhere"));
    let err = identity::establish(&env, oidc_options(&moto.url, &oidc).await).await.unwrap_err();
    assert!(
        matches!(&err, IdentityError::WrongAccount { actual, .. } if actual == "444444444444"),
        "{err:?}"
    );
    let err = deployer::Error::from(err);
    assert_eq!(err.exit_code(), deployer::ExitCode::Auth);
    insta::assert_snapshot!("wrong-account-chained", err.problems()[0].to_string());
}

fn sts_xml(body: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).insert_header("content-type", "text/xml").set_body_string(body)
}

fn web_identity_ok(account: &str) -> String {
    web_identity_ok_for(account, time::Duration::hours(1))
}

fn web_identity_ok_for(account: &str, lifetime: time::Duration) -> String {
    let exp = time::OffsetDateTime::now_utc() + lifetime;
    let exp = exp.format(&time::format_description::well_known::Rfc3339).unwrap();
    format!(
        r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>repo:acme/shop:environment:production</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::{account}:assumed-role/shop-deployer-prod/acme-shop-4242-1</Arn>
      <AssumedRoleId>AROAEXAMPLE:acme-shop-4242-1</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>FwoGZXIvYXdzEXAMPLE</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY</SecretAccessKey>
      <Expiration>{exp}</Expiration>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
    </Credentials>
    <Provider>arn:aws:iam::{account}:oidc-provider/token.actions.githubusercontent.com</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#
    )
}

fn caller_ok(account: &str) -> String {
    format!(
        r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:sts::{account}:assumed-role/shop-deployer-prod/acme-shop-4242-1</Arn>
    <UserId>AROAEXAMPLE:acme-shop-4242-1</UserId>
    <Account>{account}</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"#
    )
}

fn sts_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).insert_header("content-type", "text/xml").set_body_string(format!(
        r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>{code}</Code>
    <Message>{message}</Message>
  </Error>
  <RequestId>4d8c6f0e-2d1a-4b7e-9b36-0f5e1c2a3b4c</RequestId>
</ErrorResponse>"#
    ))
}

/// The form fields of every request wiremock received.
async fn sts_actions(server: &MockServer) -> Vec<std::collections::BTreeMap<String, String>> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| url::form_urlencoded::parse(&r.body).into_owned().collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_account_check_comes_before_any_credentials_reach_the_caller() {
    let sts = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("Action=AssumeRoleWithWebIdentity"))
        .respond_with(sts_xml(&web_identity_ok("333333333333")))
        .mount(&sts)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("Action=GetCallerIdentity"))
        .respond_with(sts_xml(&caller_ok("555555555555")))
        .mount(&sts)
        .await;
    let oidc =
        FakeOidc::start("sts.amazonaws.com", github_claims("sts.amazonaws.com", Some("production"))).await;
    let err = identity::establish(&prod(), oidc_options(&sts.uri(), &oidc).await).await.unwrap_err();
    assert!(
        matches!(&err, IdentityError::WrongAccount { actual, .. } if actual == "555555555555"),
        "{err:?}"
    );
    // The whole conversation: one exchange and one read; nothing else was sent anywhere.
    let actions: Vec<String> = sts_actions(&sts).await.iter().map(|f| f["Action"].clone()).collect();
    assert_eq!(actions, ["AssumeRoleWithWebIdentity", "GetCallerIdentity"]);
    insta::assert_snapshot!("wrong-account-caller", deployer::Error::from(err).problems()[0].to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sts_refusal_explains_the_trust_policy() {
    let oidc =
        FakeOidc::start("sts.amazonaws.com", github_claims("sts.amazonaws.com", Some("production"))).await;
    let cases = [
        (403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity"),
        (
            400,
            "InvalidIdentityToken",
            "No OpenIDConnect provider found in your account for https://token.actions.githubusercontent.com",
        ),
        (
            400,
            "ExpiredTokenException",
            "Token expired: current date/time 1700000400 must be before the expiration date/time 1700000300",
        ),
    ];
    for (status, code, message) in cases {
        let sts = MockServer::start().await;
        Mock::given(method("POST")).respond_with(sts_error(status, code, message)).mount(&sts).await;
        let err = identity::establish(&prod(), oidc_options(&sts.uri(), &oidc).await).await.unwrap_err();
        assert!(matches!(&err, IdentityError::WebIdentityRefused { .. }), "{err:?}");
        let err = deployer::Error::from(err);
        assert_eq!(err.exit_code(), deployer::ExitCode::Auth);
        let text = err.problems()[0].to_string();
        for needle in [
            "repo:acme/shop:environment:production",
            "sts.amazonaws.com",
            "refs/heads/main",
            "job_workflow_ref",
        ] {
            assert!(text.contains(needle), "{code}: `{needle}` missing from\n{text}");
        }
        insta::assert_snapshot!(format!("sts-refused-{code}"), text);

        // What was sent: the real web-identity exchange, unsigned, with the job's token.
        let requests = sts.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1, "refusals are final, not retried");
        assert!(requests[0].headers.get("authorization").is_none(), "AssumeRoleWithWebIdentity is unsigned");
        let form = &sts_actions(&sts).await[0];
        assert_eq!(form["Action"], "AssumeRoleWithWebIdentity");
        assert_eq!(form["Version"], "2011-06-15");
        assert_eq!(form["RoleArn"], "arn:aws:iam::333333333333:role/shop-deployer-prod");
        assert_eq!(form["RoleSessionName"], "acme-shop-4242-1");
        assert_eq!(form["DurationSeconds"], "3600");
        let claims = identity::oidc::decode_claims(&form["WebIdentityToken"]).unwrap();
        assert_eq!(claims.environment.as_deref(), Some("production"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_trust_policy_suggestion_admits_the_job() {
    // The suggested statement is valid JSON whose conditions equal the token's claims.
    let claims: identity::Claims =
        serde_json::from_value(github_claims("sts.amazonaws.com", Some("production"))).unwrap();
    let text = identity::trust_statement(
        "arn:aws:iam::333333333333:role/shop-deployer-prod",
        &claims,
        "sts.amazonaws.com",
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["Principal"]["Federated"],
        "arn:aws:iam::333333333333:oidc-provider/token.actions.githubusercontent.com"
    );
    assert_eq!(v["Action"], "sts:AssumeRoleWithWebIdentity");
    let eq = &v["Condition"]["StringEquals"];
    assert_eq!(eq["token.actions.githubusercontent.com:aud"], claims.aud.to_string());
    assert_eq!(eq["token.actions.githubusercontent.com:sub"], claims.sub);
}

#[tokio::test(flavor = "multi_thread")]
async fn outside_actions_the_standard_chain_assumes_the_role_unless_already_in_it() {
    let moto = Moto::start();
    let env = prod();
    let static_creds = Credentials::new("testing", "testing", None, None, "tests");
    let opts = Options {
        session_name: "deployer-alice".into(),
        ..Options::new(base(&moto.url, Some(static_creds)).await)
    };
    let session = identity::establish(&env, opts).await.unwrap();
    assert_eq!(
        session.caller.arn,
        "arn:aws:sts::333333333333:assumed-role/shop-deployer-prod/deployer-alice"
    );
    assert!(session.claims.is_none());

    // Credentials that already are the role are used as they are (no second AssumeRole: the
    // session name stays the first one's).
    let role_creds = aws_credential_types::provider::ProvideCredentials::provide_credentials(
        &session.credentials_provider(),
    )
    .await
    .unwrap();
    let opts = Options {
        session_name: "deployer-bob".into(),
        ..Options::new(base(&moto.url, Some(role_creds)).await)
    };
    let again = identity::establish(&env, opts).await.unwrap();
    assert_eq!(again.caller.arn, session.caller.arn);

    // No role configured: the standard chain's identity is checked against account_id as is
    // (moto's default account is 123456789012).
    let mut no_role = prod();
    no_role.role = None;
    let plain = Credentials::new("testing", "testing", None, None, "tests");
    let err = identity::establish(&no_role, Options::new(base(&moto.url, Some(plain.clone())).await))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, IdentityError::WrongAccount { actual, .. } if actual == "123456789012"),
        "{err:?}"
    );
    no_role.account_id = deployer::config::values::AccountId::parse("123456789012").unwrap();
    let ok = identity::establish(&no_role, Options::new(base(&moto.url, Some(plain)).await)).await.unwrap();
    assert_eq!(ok.caller.account, "123456789012");

    // No credentials at all: exit code 3 with the hint.
    let err = identity::establish(&env, Options::new(base(&moto.url, None).await)).await.unwrap_err();
    assert!(matches!(err, IdentityError::NoCredentials { .. }), "{err:?}");
    assert!(err.hint().contains("id-token: write"));
}

#[tokio::test(flavor = "multi_thread")]
async fn eks_describe_cluster_and_kube_config_through_moto() {
    let moto = Moto::start();
    let oidc =
        FakeOidc::start("sts.amazonaws.com", github_claims("sts.amazonaws.com", Some("production"))).await;
    let session = identity::establish(&prod(), oidc_options(&moto.url, &oidc).await).await.unwrap();
    // moto keeps EKS per account: create the cluster as the deploy role.
    let created = aws_sdk_eks::Client::new(&session.config)
        .create_cluster()
        .name("shop-prod")
        .role_arn("arn:aws:iam::333333333333:role/eks-cluster")
        .resources_vpc_config(aws_sdk_eks::types::VpcConfigRequest::builder().subnet_ids("subnet-1").build())
        .send()
        .await
        .unwrap();
    let created = created.cluster().unwrap();

    let access =
        eks::cluster_access(&session.config, "shop-prod", Some(session.masker.clone())).await.unwrap();
    assert_eq!(access.endpoint, created.endpoint().unwrap());
    assert_eq!(access.certificate_authority_data, created.certificate_authority().unwrap().data().unwrap());
    let first = access.tokens.token().await.unwrap();
    assert!(first.token.starts_with("k8s-aws-v1."));
    assert_eq!(access.tokens.token().await.unwrap(), first, "cached while valid");
    assert!(session.mask_lines().contains(&format!("::add-mask::{}", first.token)));

    let missing = eks::cluster_access(&session.config, "nope", None).await.unwrap_err();
    assert!(matches!(missing, IdentityError::Eks { .. }), "{missing:?}");
    assert_eq!(deployer::Error::from(missing).exit_code(), deployer::ExitCode::Auth);

    // moto's CA is random text; the kube config is checked with a real certificate.
    let ca = self_signed_ca_b64();
    let access = eks::ClusterAccess { certificate_authority_data: ca, ..access };
    let kube = access.kube_config("shop").await.unwrap();
    assert_eq!(
        kube.cluster_url.to_string().trim_end_matches('/'),
        created.endpoint().unwrap().trim_end_matches('/')
    );
    assert_eq!(kube.default_namespace, "shop");
    assert_eq!(kube.root_cert.as_ref().map(Vec::len), Some(1));

    let Target::Eks(target) = &prod().target else { panic!("prod is EKS") };
    assert_eq!(target.cluster.as_deref(), Some("shop-prod"));
}

/// A throwaway self-signed certificate, base64 of its PEM (kubeconfig's format).
fn self_signed_ca_b64() -> String {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(support::system_bin("openssl"))
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
        ])
        .args(["-subj", "/CN=kubernetes", "-keyout"])
        .arg(dir.path().join("k.pem"))
        .arg("-out")
        .arg(dir.path().join("c.pem"))
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(dir.path().join("c.pem")).unwrap())
}

#[test]
fn eks_token_signature_matches_botocore() {
    use base64::Engine;
    let at = std::time::UNIX_EPOCH + Duration::from_secs(1_763_884_801); // 2025-11-23T08:00:01Z
    let creds = Credentials::new(
        "ASIAEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        Some("FwoGZXIvYXdzEXAMPLE+token/with=chars".into()),
        None,
        "t",
    );
    let token = eks::presign(&creds, REGION, "shop-prod", at).unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.token.strip_prefix("k8s-aws-v1.").unwrap())
        .unwrap();
    let ours = url::Url::parse(std::str::from_utf8(&raw).unwrap()).unwrap();
    let q: std::collections::BTreeMap<String, String> = ours.query_pairs().into_owned().collect();
    assert_eq!(q["X-Amz-Date"], "20251123T080001Z");
    assert_eq!(q["X-Amz-Expires"], "60");
    assert_eq!(q["X-Amz-SignedHeaders"], "host;x-k8s-aws-id");

    // botocore, as `aws eks get-token` uses it, at the same instant.
    let script = r#"
import sys, datetime
from unittest import mock
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
ak, sk, tok, region, cluster = sys.argv[1:6]
req = AWSRequest(method="GET", url=f"https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15", headers={"x-k8s-aws-id": cluster})
fixed = datetime.datetime(2025, 11, 23, 8, 0, 1)
with mock.patch.object(botocore.auth, "get_current_datetime", return_value=fixed):
    botocore.auth.SigV4QueryAuth(Credentials(ak, sk, tok), "sts", region, expires=60).add_auth(req)
print(req.url)
"#;
    let out = std::process::Command::new(venv_bin("python"))
        .args([
            "-c",
            script,
            creds.access_key_id(),
            creds.secret_access_key(),
            creds.session_token().unwrap(),
            REGION,
            "shop-prod",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "botocore: {}", String::from_utf8_lossy(&out.stderr));
    let theirs = url::Url::parse(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    let t: std::collections::BTreeMap<String, String> = theirs.query_pairs().into_owned().collect();
    assert_eq!(t["X-Amz-Date"], q["X-Amz-Date"]);
    // Compared as parameters: botocore puts X-Amz-Signature last, aws-sigv4 before the token.
    assert_eq!(t, q, "same parameters and signature as botocore");

    // A different cluster name changes the signature (the header really is signed).
    let other = eks::presign(&creds, REGION, "other", at).unwrap();
    assert_ne!(other.token, token.token);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_explicit_kubeconfig_context_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\ncurrent-context: a\nclusters:\n- name: a\n  cluster: {server: 'https://a.example:6443'}\n- name: b\n  cluster: {server: 'https://b.example:6443'}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: a\n  context: {cluster: a, user: u}\n- name: b\n  context: {cluster: b, user: u, namespace: shop}\n",
    )
    .unwrap();
    let config = eks::kube_config_for_context("b", Some(&path)).await.unwrap();
    assert_eq!(config.cluster_url.to_string(), "https://b.example:6443/");
    assert_eq!(config.default_namespace, "shop");
    let err = eks::kube_config_for_context("missing", Some(&path)).await.unwrap_err();
    assert!(err.to_string().contains("`missing`"), "{err}");
    assert!(err.hint().contains("get-contexts"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_chained_role_says_which_permissions_are_missing() {
    let sts = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("Action=AssumeRoleWithWebIdentity"))
        .respond_with(sts_xml(&web_identity_ok("111111111111")))
        .mount(&sts)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("Action=AssumeRole&"))
        .respond_with(sts_error(
            403,
            "AccessDenied",
            "User: arn:aws:sts::111111111111:assumed-role/github-oidc/acme-shop-4242-1 is not authorized to perform: sts:TagSession on resource: arn:aws:iam::333333333333:role/shop-deployer-prod",
        ))
        .mount(&sts)
        .await;
    let oidc =
        FakeOidc::start("sts.amazonaws.com", github_claims("sts.amazonaws.com", Some("production"))).await;
    let mut env = prod();
    let role = env.role.as_mut().unwrap();
    role.arn = arn("arn:aws:iam::111111111111:role/github-oidc");
    role.chain = Some(arn("arn:aws:iam::333333333333:role/shop-deployer-prod"));
    role.session_tags = [("team".to_owned(), "shop".to_owned())].into();
    let err = identity::establish(&env, oidc_options(&sts.uri(), &oidc).await).await.unwrap_err();
    assert!(matches!(&err, IdentityError::AssumeRoleRefused { tagged: true, .. }), "{err:?}");
    // The chained call was signed with the first hop's credentials and carried the tags.
    let requests = sts.received_requests().await.unwrap();
    let chained =
        requests.iter().find(|r| String::from_utf8_lossy(&r.body).contains("Action=AssumeRole&")).unwrap();
    let auth = chained.headers.get("authorization").unwrap().to_str().unwrap();
    assert!(auth.contains("Credential=ASIAEXAMPLE/"), "{auth}");
    let form: std::collections::BTreeMap<String, String> =
        url::form_urlencoded::parse(&chained.body).into_owned().collect();
    assert_eq!(form["Tags.member.1.Key"], "team");
    assert_eq!(form["Tags.member.1.Value"], "shop");
    assert_eq!(form["DurationSeconds"], "3600", "chained sessions are capped at 1 h");
    insta::assert_snapshot!("chained-role-refused", deployer::Error::from(err).problems()[0].to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configured_audience_is_requested() {
    let moto = Moto::start();
    let audience = "https://github.com/acme";
    let oidc = FakeOidc::start(audience, github_claims(audience, None)).await;
    let mut env = prod();
    env.role.as_mut().unwrap().audience = audience.to_owned();
    let session = identity::establish(&env, oidc_options(&moto.url, &oidc).await).await.unwrap();
    assert_eq!(oidc.issued(), 1);
    let raw = oidc.requests().await[0].url.query().unwrap().to_owned();
    assert!(raw.contains("audience=https%3A%2F%2Fgithub.com%2Facme"), "audience is URL-encoded: {raw}");
    let claims = session.claims.unwrap();
    assert_eq!(claims.aud.to_string(), audience);
    assert_eq!(claims.environment, None);
}

/// Runs in a child process started by `options_from_the_process_environment` (real environment
/// variables are process-wide, so they are set on a child, not on this test process).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "run by options_from_the_process_environment in a child process"]
async fn child_establish_from_env() {
    let env = prod();
    let opts = Options::from_env(&env, &|k| std::env::var(k).ok()).await;
    match identity::establish(&env, opts).await {
        Ok(s) => println!(
            "RESULT {}",
            serde_json::json!({"arn": s.caller.arn, "environment": s.claims.and_then(|c| c.environment), "masks": s.masker.take_lines().len()})
        ),
        Err(e) => println!(
            "RESULT {}",
            serde_json::json!({"error": deployer::Error::from(e).problems()[0].to_string()})
        ),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn options_from_the_process_environment() {
    let sts = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("Action=AssumeRoleWithWebIdentity"))
        .respond_with(sts_xml(&web_identity_ok("333333333333")))
        .mount(&sts)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("Action=GetCallerIdentity"))
        .respond_with(sts_xml(&caller_ok("333333333333")))
        .mount(&sts)
        .await;
    let oidc =
        FakeOidc::start("sts.amazonaws.com", github_claims("sts.amazonaws.com", Some("production"))).await;
    let home = tempfile::tempdir().unwrap();
    let req = oidc.request();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "identity::child_establish_from_env",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_REPOSITORY", "acme/shop")
        .env("GITHUB_RUN_ID", "4242")
        .env("GITHUB_RUN_ATTEMPT", "2")
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", &req.url)
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", &req.bearer)
        // Every other service points nowhere: STS must come from its own override.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ENDPOINT_URL_STS", sts.uri())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no result:\n{stdout}"));
    let result: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(result["environment"], "production", "{result}");
    assert_eq!(result["arn"], "arn:aws:sts::333333333333:assumed-role/shop-deployer-prod/acme-shop-4242-1");
    assert_eq!(result["masks"], 4, "JWT, access key id, secret key, session token");
    assert_eq!(oidc.issued(), 1);
    let forms = sts_actions(&sts).await;
    assert_eq!(forms[0]["RoleSessionName"], "acme-shop-4242-2", "session name from GITHUB_* variables");
    assert_eq!(forms[0]["RoleArn"], "arn:aws:iam::333333333333:role/shop-deployer-prod");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_refresh_keeps_credentials_that_still_work() {
    for (lifetime, still_works) in [(time::Duration::minutes(2), true), (time::Duration::seconds(5), false)] {
        let sts = MockServer::start().await;
        Mock::given(method("POST"))
            .and(body_string_contains("Action=AssumeRoleWithWebIdentity"))
            .respond_with(sts_xml(&web_identity_ok_for("333333333333", lifetime)))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&sts)
            .await;
        Mock::given(method("POST"))
            .and(body_string_contains("Action=AssumeRoleWithWebIdentity"))
            .respond_with(sts_error(
                400,
                "IDPCommunicationError",
                "Couldn't retrieve verification key from your identity provider",
            ))
            .mount(&sts)
            .await;
        Mock::given(method("POST"))
            .and(body_string_contains("Action=GetCallerIdentity"))
            .respond_with(sts_xml(&caller_ok("333333333333")))
            .mount(&sts)
            .await;
        let oidc =
            FakeOidc::start("sts.amazonaws.com", github_claims("sts.amazonaws.com", Some("production")))
                .await;
        // A margin longer than the session: every use wants a refresh, and every refresh fails.
        let opts =
            Options { refresh_margin: Duration::from_mins(10), ..oidc_options(&sts.uri(), &oidc).await };
        let session = identity::establish(&prod(), opts).await.unwrap();
        let result = aws_sdk_sts::Client::new(&session.config).get_caller_identity().send().await;
        assert_eq!(session.chain_runs(), 2, "the refresh was attempted");
        assert_eq!(oidc.issued(), 4, "with a fresh token, retried twice after IDPCommunicationError");
        if still_works {
            assert_eq!(result.unwrap().account(), Some("333333333333"), "2-minute-old credentials are kept");
        } else {
            let err = aws_sdk_sts::error::DisplayErrorContext(result.unwrap_err()).to_string();
            assert!(err.contains("IDPCommunicationError"), "nearly expired credentials are not kept: {err}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_eks_token_file_is_rewritten_before_the_token_expires() {
    let moto = Moto::start();
    let oidc =
        FakeOidc::start("sts.amazonaws.com", github_claims("sts.amazonaws.com", Some("production"))).await;
    // 4 s sessions: tokens signed with them expire within seconds, so the file must turn over.
    let opts = Options {
        session_duration: Some(Duration::from_secs(4)),
        refresh_margin: Duration::from_secs(1),
        ..oidc_options(&moto.url, &oidc).await
    };
    let session = identity::establish(&prod(), opts).await.unwrap();
    aws_sdk_eks::Client::new(&session.config)
        .create_cluster()
        .name("shop-prod")
        .role_arn("arn:aws:iam::333333333333:role/eks-cluster")
        .resources_vpc_config(aws_sdk_eks::types::VpcConfigRequest::builder().subnet_ids("subnet-1").build())
        .send()
        .await
        .unwrap();
    let access =
        eks::cluster_access(&session.config, "shop-prod", Some(session.masker.clone())).await.unwrap();
    let access = eks::ClusterAccess { certificate_authority_data: self_signed_ca_b64(), ..access };
    let refreshing = access.refreshing_kube_config("shop").await.unwrap();
    let file = refreshing.token_file.clone();
    assert_eq!(refreshing.config.auth_info.token_file.as_deref(), Some(file.to_str().unwrap()));
    kube::Client::try_from(refreshing.config.clone())
        .expect("kube accepts the config and reads the token file");

    // Wait (bounded) until the file has carried tokens signed with two different sessions.
    let key_of = |token: &str| -> String {
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.strip_prefix("k8s-aws-v1.").unwrap_or_else(|| panic!("not a token: {token}")))
            .unwrap();
        let url = url::Url::parse(std::str::from_utf8(&raw).unwrap()).unwrap();
        let cred = url.query_pairs().find(|(k, _)| k == "X-Amz-Credential").unwrap().1.into_owned();
        cred.split('/').next().unwrap().to_owned()
    };
    let mut tokens = std::collections::BTreeSet::new();
    let mut keys = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_mins(1);
    while keys.len() < 2 && std::time::Instant::now() < deadline {
        let now = std::fs::read_to_string(&file).unwrap();
        keys.insert(key_of(&now));
        tokens.insert(now);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(keys.len() >= 2, "tokens from refreshed credentials reach the file: {keys:?}");
    assert!(tokens.len() >= 2);
    assert!(session.chain_runs() >= 2);
    drop(refreshing);
    assert!(!file.exists(), "the token file goes away with the config");
}
