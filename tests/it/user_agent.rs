//! Every HTTP client deployer builds names itself: `deployer/<version>` reaches the Kubernetes
//! API server (its audit log), the HTTP checks' endpoints and the OIDC token endpoint.

use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

const EXPECTED: &str = concat!("deployer/", env!("CARGO_PKG_VERSION"));

async fn agents(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.headers.get("user-agent").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn the_kubernetes_client_names_deployer() {
    let server = MockServer::start().await;
    // What a real API server answers for a missing object.
    let not_found = serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "namespaces \"shop-dev\" not found", "reason": "NotFound", "code": 404});
    Mock::given(any()).respond_with(ResponseTemplate::new(404).set_body_json(not_found)).mount(&server).await;
    let config = kube::Config::new(server.uri().parse().unwrap());
    let client = deployer::support::kube_client(config).unwrap();
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
    assert!(api.get_opt("shop-dev").await.unwrap().is_none());
    let got = agents(&server).await;
    assert!(!got.is_empty() && got.iter().all(|a| a == EXPECTED), "{got:?}");
}

#[tokio::test]
async fn the_http_checks_name_deployer() {
    let server = MockServer::start().await;
    Mock::given(any()).respond_with(ResponseTemplate::new(200)).mount(&server).await;
    let gates = deployer::engine::gates::Gates::none();
    gates.http.get(format!("{}/healthz", server.uri())).send().await.unwrap();
    assert_eq!(agents(&server).await, [EXPECTED]);
}
