//! Task definitions: registered only when the rendered one differs from what the service runs.
//!
//! The rendered template is sent to `RegisterTaskDefinition` verbatim (it has the API's request
//! shape, like `aws ecs register-task-definition --cli-input-json`), so every field AWS supports
//! passes through without deployer mapping it; the SDK still signs, retries and resolves the
//! endpoint. Likewise the current definition is read as raw JSON, so the comparison sees every
//! field. Comparison is on a normalised form: metadata (ARN, revision, status, registeredAt, …)
//! and the defaults ECS fills in (`cpu: 0`, empty lists, `hostPort` = `containerPort`, …) are
//! dropped from both sides.

use std::sync::{Arc, Mutex};

use aws_sdk_ecs::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::display::DisplayErrorContext;
use serde_json::{Map, Value};

use crate::platform::PlatformError;

/// Fields ECS adds to a registered definition that are not part of what was asked for.
const METADATA: [&str; 10] = [
    "taskDefinitionArn",
    "revision",
    "status",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "deleteRequested",
    "requiresAttributes",
    "compatibilities",
    "tags",
];

/// The comparable form of a task definition (rendered or registered).
pub fn normalise(doc: &Value) -> Value {
    let mut v = doc.clone();
    if let Value::Object(m) = &mut v {
        for k in METADATA {
            m.remove(k);
        }
        if let Some(Value::Array(containers)) = m.get_mut("containerDefinitions") {
            for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                normalise_container(c);
            }
        }
    }
    prune(&mut v);
    v
}

fn normalise_container(c: &mut Map<String, Value>) {
    if c.get("cpu").and_then(Value::as_i64) == Some(0) {
        c.remove("cpu");
    }
    // ECS reports `essential: true` when the request left it out.
    if c.get("essential") == Some(&Value::Bool(true)) {
        c.remove("essential");
    }
    if let Some(Value::Array(ports)) = c.get_mut("portMappings") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            if p.get("hostPort").is_some() && p.get("hostPort") == p.get("containerPort") {
                p.remove("hostPort");
            }
            if p.get("protocol").and_then(Value::as_str) == Some("tcp") {
                p.remove("protocol");
            }
        }
    }
}

/// Drops nulls, empty lists and empty objects at every level (ECS returns `[]` for lists that
/// were not given).
fn prune(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for x in m.values_mut() {
                prune(x);
            }
            m.retain(|_, x| !is_empty(x));
        }
        Value::Array(a) => a.iter_mut().for_each(prune),
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// True when registering `rendered` would produce what `live` already is.
pub fn same(rendered: &Value, live: &Value) -> bool {
    normalise(rendered) == normalise(live)
}

/// `family:revision` of a task-definition ARN (or of `family:revision` itself).
pub fn family_revision(arn: &str) -> &str {
    arn.rsplit_once("task-definition/").map_or(arn, |(_, fr)| fr)
}

/// Registers `doc` as is; returns the new task-definition ARN.
pub async fn register(ecs: &Client, doc: &Value) -> Result<String, PlatformError> {
    let family = doc
        .get("family")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            PlatformError::setup("the task definition has no `family`", "add `family` to the template")
        })?
        .to_owned();
    // The bytes `deployer render` prints for it (one function, so they cannot drift apart).
    let body =
        crate::render::ecs::request_body(doc).map_err(|e| PlatformError::api("RegisterTaskDefinition", e))?;
    let out = ecs
        .register_task_definition()
        .family(&family)
        .customize()
        .mutate_request(move |req| {
            let len = body.len();
            *req.body_mut() = SdkBody::from(body.clone());
            req.headers_mut().insert("content-length", len.to_string());
        })
        .send()
        .await
        .map_err(|e| {
            PlatformError::api(format!("RegisterTaskDefinition {family}"), DisplayErrorContext(&e))
        })?;
    out.task_definition()
        .and_then(|t| t.task_definition_arn())
        .map(str::to_owned)
        .ok_or_else(|| PlatformError::api("RegisterTaskDefinition", "the response has no taskDefinitionArn"))
}

/// The registered definition `arn` as raw JSON.
pub async fn describe(ecs: &Client, arn: &str) -> Result<Value, PlatformError> {
    let capture = CaptureBody::default();
    ecs.describe_task_definition()
        .task_definition(arn)
        .customize()
        .interceptor(capture.clone())
        .send()
        .await
        .map_err(|e| PlatformError::api(format!("DescribeTaskDefinition {arn}"), DisplayErrorContext(&e)))?;
    let bytes = capture.0.lock().ok().and_then(|mut b| b.take()).unwrap_or_default();
    let mut v: Value =
        serde_json::from_slice(&bytes).map_err(|e| PlatformError::api("DescribeTaskDefinition", e))?;
    Ok(v.get_mut("taskDefinition").map(Value::take).unwrap_or_default())
}

/// Keeps the raw response body of one call (the SDK's types cannot be turned back into JSON).
#[derive(Debug, Clone, Default)]
struct CaptureBody(Arc<Mutex<Option<Vec<u8>>>>);

impl Intercept for CaptureBody {
    fn name(&self) -> &'static str {
        "CaptureBody"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let (Some(bytes), Ok(mut slot)) = (context.response().body().bytes(), self.0.lock()) {
            *slot = Some(bytes.to_vec());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rendered() -> Value {
        json!({
            "family": "shop-user-dev",
            "networkMode": "awsvpc",
            "cpu": "256",
            "containerDefinitions": [{
                "name": "user",
                "image": "r/shop/user@sha256:aa",
                "essential": true,
                "portMappings": [{"containerPort": 8080}],
                "environment": [{"name": "APP_ENV", "value": "dev"}]
            }],
            "tags": [{"key": "a", "value": "b"}]
        })
    }

    #[test]
    fn registered_form_with_ecs_defaults_is_the_same() {
        let live = json!({
            "taskDefinitionArn": "arn:aws:ecs:eu-west-1:1:task-definition/shop-user-dev:7",
            "revision": 7, "status": "ACTIVE", "registeredAt": 1.7e9,
            "family": "shop-user-dev", "networkMode": "awsvpc", "cpu": "256",
            "volumes": [], "placementConstraints": [], "compatibilities": ["EC2", "FARGATE"],
            "containerDefinitions": [{
                "name": "user", "image": "r/shop/user@sha256:aa", "cpu": 0, "essential": true,
                "portMappings": [{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp"}],
                "environment": [{"name": "APP_ENV", "value": "dev"}],
                "mountPoints": [], "volumesFrom": [], "systemControls": []
            }]
        });
        assert!(same(&rendered(), &live));
    }

    #[test]
    fn a_new_digest_or_a_removed_field_differs() {
        let mut other = rendered();
        other["containerDefinitions"][0]["image"] = json!("r/shop/user@sha256:bb");
        assert!(!same(&rendered(), &other));
        let mut fewer = rendered();
        fewer["containerDefinitions"][0]["environment"] = json!([]);
        assert!(!same(&rendered(), &fewer));
        let mut host = rendered();
        host["containerDefinitions"][0]["portMappings"][0]["hostPort"] = json!(80);
        assert!(!same(&rendered(), &host));
    }

    #[test]
    fn family_revision_of_arns() {
        assert_eq!(
            family_revision("arn:aws:ecs:eu-west-1:1:task-definition/shop-user-dev:7"),
            "shop-user-dev:7"
        );
        assert_eq!(family_revision("shop-user-dev:7"), "shop-user-dev:7");
    }
}
