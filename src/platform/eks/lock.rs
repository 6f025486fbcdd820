//! The per-environment deploy lock: a `coordination.k8s.io/v1` Lease held and renewed while a
//! deploy or rollback runs.
//!
//! A holder that died leaves a Lease whose `renewTime + leaseDurationSeconds` has passed; the next
//! run takes it over with a warning instead of waiting for a human (helm's stale
//! `pending-upgrade` is the failure this avoids). Updates carry the resourceVersion, so two
//! runs racing for a stale lease cannot both win.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};

use super::EksError;

/// How long a Lease stays valid without renewal.
pub const LEASE_SECONDS: i32 = 15;

/// Who holds the Lease `name` (read-only, for `deployer status`), and whether the hold is live.
pub async fn holder(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<(String, bool)>, EksError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let lease = api.get_opt(name).await.map_err(|e| EksError::Api {
        action: format!("read the lock {namespace}/{name}"),
        message: e.to_string(),
    })?;
    Ok(lease.and_then(|l| l.spec).and_then(|spec| {
        let h = spec.holder_identity.clone().filter(|h| !h.is_empty())?;
        Some((h, !expired(&spec)))
    }))
}

/// A held lock; renewed in the background until [`Lock::release`].
pub struct Lock {
    api: Api<Lease>,
    name: String,
    renewer: tokio::task::JoinHandle<()>,
    lost: Arc<AtomicBool>,
    /// Set when the lock was taken over from a holder that had stopped renewing it.
    pub took_over_from: Option<String>,
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn expired(spec: &LeaseSpec) -> bool {
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else { return true };
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
    Timestamp::now().as_second() > renewed.0.as_second() + duration
}

impl Lock {
    /// Acquires the Lease `name` for `holder`, waiting up to `wait` for a live holder.
    pub async fn acquire(
        client: &kube::Client,
        namespace: &str,
        name: &str,
        holder: &str,
        wait: Duration,
    ) -> Result<Self, EksError> {
        let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
        let deadline = tokio::time::Instant::now() + wait;
        let api_err = |e: kube::Error| EksError::Api {
            action: format!("lock {namespace}/{name}"),
            message: e.to_string(),
        };
        loop {
            let mut took_over_from = None;
            let attempt = match api.get_opt(name).await.map_err(api_err)? {
                None => {
                    let lease = Lease {
                        metadata: kube::api::ObjectMeta { name: Some(name.into()), ..Default::default() },
                        spec: Some(spec(holder, 0)),
                    };
                    api.create(&PostParams::default(), &lease).await
                }
                Some(mut lease) => {
                    let current = lease.spec.clone().unwrap_or_default();
                    let held_by = current.holder_identity.clone().unwrap_or_default();
                    if !held_by.is_empty() && held_by != holder && !expired(&current) {
                        if tokio::time::Instant::now() >= deadline {
                            return Err(EksError::LockHeld {
                                lease: format!("{namespace}/{name}"),
                                holder: held_by,
                            });
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                    if !held_by.is_empty() && held_by != holder {
                        took_over_from = Some(held_by);
                    }
                    lease.spec = Some(spec(holder, current.lease_transitions.unwrap_or(0) + 1));
                    // Replace carries the resourceVersion we read: a racing writer gets 409.
                    api.replace(name, &PostParams::default(), &lease).await
                }
            };
            match attempt {
                Ok(_) => return Ok(Self::start(api, name, holder, took_over_from)),
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(api_err(e)),
            }
        }
    }

    fn start(api: Api<Lease>, name: &str, holder: &str, took_over_from: Option<String>) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let (api2, name2, holder2, lost2) = (api.clone(), name.to_owned(), holder.to_owned(), lost.clone());
        let renewer = tokio::spawn(async move {
            let every = Duration::from_secs(u64::try_from(LEASE_SECONDS / 3).unwrap_or(5));
            loop {
                tokio::time::sleep(every).await;
                let Ok(mut lease) = api2.get(&name2).await else { continue };
                let mine =
                    lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(holder2.as_str());
                if !mine {
                    lost2.store(true, Ordering::SeqCst);
                    return;
                }
                if let Some(s) = lease.spec.as_mut() {
                    s.renew_time = Some(now());
                }
                let _ = api2.replace(&name2, &PostParams::default(), &lease).await;
            }
        });
        Self { api, name: name.to_owned(), renewer, lost, took_over_from }
    }

    /// True when another holder took the lease (this run must stop changing things).
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Stops renewing and deletes the Lease (only if it is still ours, by resourceVersion).
    pub async fn release(self) {
        self.renewer.abort();
        if self.lost() {
            return;
        }
        if let Ok(lease) = self.api.get(&self.name).await {
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: lease.metadata.resource_version,
                    uid: None,
                }),
                ..DeleteParams::default()
            };
            let _ = self.api.delete(&self.name, &dp).await;
        }
    }
}

impl Drop for Lock {
    /// A lock dropped without `release` (the run was cancelled) stops renewing, so the Lease
    /// expires and the next run can take it over — as it would if the process had died.
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

fn spec(holder: &str, transitions: i32) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(holder.into()),
        lease_duration_seconds: Some(LEASE_SECONDS),
        acquire_time: Some(now()),
        renew_time: Some(now()),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    }
}
