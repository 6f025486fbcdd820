//! Release records stored in the cluster: one Secret per release in the environment's namespace
//! (type `deployer.dev/release.v1`, gzip-compressed JSON), like Helm's storage driver. Anyone who
//! can read Secrets there — CI or a laptop — sees the same history, so `deployer rollback` from a
//! terminal finds the same last known-good release as the pipeline.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};

use super::EksError;
use crate::release::{Release, ReleaseStatus};

/// Secret type of a release record.
pub const RECORD_TYPE: &str = "deployer.dev/release.v1";
/// Records kept per environment (older ones are deleted, except the last known-good).
pub const HISTORY_LIMIT: usize = 20;

/// Records of one product's environment.
pub struct Records {
    api: Api<Secret>,
    product: String,
    environment: String,
}

impl Records {
    pub fn new(client: &kube::Client, namespace: &str, product: &str, environment: &str) -> Self {
        Self {
            api: Api::namespaced(client.clone(), namespace),
            product: product.into(),
            environment: environment.into(),
        }
    }

    fn name(&self, sequence: u64) -> String {
        format!("deployer.{}.{}.v{sequence}", self.product, self.environment)
    }

    fn selector(&self) -> String {
        format!(
            "deployer.dev/record=release,deployer.dev/product={},deployer.dev/environment={}",
            self.product, self.environment
        )
    }

    /// Every record, oldest first.
    pub async fn list(&self) -> Result<Vec<Release>, EksError> {
        let list =
            self.api.list(&ListParams::default().labels(&self.selector())).await.map_err(|e| {
                EksError::Api { action: "list release records".into(), message: e.to_string() }
            })?;
        let mut out = Vec::new();
        for s in list.items {
            if s.type_.as_deref() != Some(RECORD_TYPE) {
                continue;
            }
            let Some(data) = s.data.as_ref().and_then(|d| d.get("release")) else { continue };
            out.push(decode(&data.0).map_err(|message| EksError::Record {
                name: s.metadata.name.clone().unwrap_or_default(),
                message,
            })?);
        }
        out.sort_by_key(|r| r.sequence);
        Ok(out)
    }

    /// Creates or updates the record of `release`.
    pub async fn save(&self, release: &Release) -> Result<(), EksError> {
        let name = self.name(release.sequence);
        let labels = BTreeMap::from([
            ("app.kubernetes.io/managed-by".to_owned(), "deployer".to_owned()),
            ("deployer.dev/record".to_owned(), "release".to_owned()),
            ("deployer.dev/product".to_owned(), self.product.clone()),
            ("deployer.dev/environment".to_owned(), self.environment.clone()),
            ("deployer.dev/status".to_owned(), release.status.as_str().to_owned()),
            ("deployer.dev/sequence".to_owned(), release.sequence.to_string()),
        ]);
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                labels: Some(labels),
                ..Default::default()
            },
            type_: Some(RECORD_TYPE.into()),
            data: Some(BTreeMap::from([("release".to_owned(), ByteString(encode(release)?))])),
            ..Secret::default()
        };
        let mut value = serde_json::to_value(&secret)
            .map_err(|e| EksError::Record { name: name.clone(), message: e.to_string() })?;
        value["apiVersion"] = "v1".into();
        value["kind"] = "Secret".into();
        self.api
            .patch(&name, &PatchParams::apply("deployer-records").force(), &Patch::Apply(&value))
            .await
            .map_err(|e| EksError::Api {
            action: format!("save release record {name}"),
            message: e.to_string(),
        })?;
        Ok(())
    }

    /// Deletes records beyond the history limit, never the newest succeeded one.
    pub async fn trim(&self, history: &[Release]) -> Result<(), EksError> {
        if history.len() <= HISTORY_LIMIT {
            return Ok(());
        }
        let keep_good =
            history.iter().filter(|r| r.status == ReleaseStatus::Succeeded).map(|r| r.sequence).max();
        for r in &history[..history.len() - HISTORY_LIMIT] {
            if Some(r.sequence) == keep_good {
                continue;
            }
            match self.api.delete(&self.name(r.sequence), &DeleteParams::default()).await {
                Ok(_) | Err(kube::Error::Api(_)) => {}
                Err(e) => {
                    return Err(EksError::Api {
                        action: "trim release records".into(),
                        message: e.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

fn encode(release: &Release) -> Result<Vec<u8>, EksError> {
    let err = |e: std::io::Error| EksError::Record { name: release.id.clone(), message: e.to_string() };
    let json = serde_json::to_vec(release)
        .map_err(|e| EksError::Record { name: release.id.clone(), message: e.to_string() })?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json).map_err(err)?;
    gz.finish().map_err(err)
}

fn decode(bytes: &[u8]) -> Result<Release, String> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut json).map_err(|e| e.to_string())?;
    serde_json::from_slice(&json).map_err(|e| e.to_string())
}
