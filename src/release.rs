//! Release records: what a release deployed and how it ended.
//!
//! The record is what makes rollback correct: "last known-good" is the newest release that
//! *succeeded* (passed health and bake), never "revision − 1" — a failed release in between is
//! skipped. Platforms store records where a laptop with read access finds them (EKS: Secrets in
//! the environment's namespace).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a release ended (or that it has not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseStatus {
    /// Being applied or watched.
    Pending,
    /// Healthy through the bake time: a rollback target.
    Succeeded,
    /// Failed health checks; the environment was returned to an earlier release.
    RolledBack,
    /// Failed, and returning to an earlier release failed too (manual action needed).
    Failed,
    /// Stopped before it ended: its run was cancelled (SIGINT/SIGTERM) or died (`kill -9`, a
    /// lost runner) and a later run found its record still `pending`. What it left running is
    /// whatever it had applied by then: `deployer status` tells per service.
    Interrupted,
}

impl ReleaseStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::RolledBack => "rolled-back",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }
}

/// One service in a release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRelease {
    /// The pinned image, `repo@sha256:…`.
    pub image: String,
    /// Rendered Kubernetes objects (EKS), exactly as applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<Value>,
    /// The platform's revision (ECS: the task definition `family:revision`), once applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// ECS: the rendered task definition to register (not recorded: `revision` is).
    #[serde(skip)]
    pub spec: Option<Value>,
    /// EKS blue-green: the objects applied before the switch (Services still on the live colour).
    #[serde(skip)]
    pub stage: Option<Vec<Value>>,
}

impl ServiceRelease {
    /// A service of a new release (nothing applied yet).
    pub fn new(image: String, manifests: Vec<Value>, spec: Option<Value>) -> Self {
        Self { image, manifests, revision: None, spec, stage: None }
    }

    /// The same service carried into a later release unchanged (what runs stays).
    #[must_use]
    pub fn carried(&self) -> Self {
        Self { spec: None, stage: None, ..self.clone() }
    }
}

/// A release of a product to an environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    /// `<environment>.<sequence>`, e.g. `prod.17`.
    pub id: String,
    pub sequence: u64,
    pub product: String,
    pub environment: String,
    pub status: ReleaseStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_sha: Option<String>,
    /// Who started it (GitHub actor or local user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// How an approval-gated environment was confirmed (`github-environment production`, `--yes by alice`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<String>,
    /// RFC 3339.
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// The release this one returned the environment to (for a rollback, or after a failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_to: Option<String>,
    /// The run that writes this record while it is `pending` (the deploy lock's holder), so a
    /// later reader can tell a live release from one whose run is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    pub services: BTreeMap<String, ServiceRelease>,
}

impl Release {
    /// A pending release `<environment>.<sequence>` with nothing in it yet.
    pub fn pending(product: &str, environment: &str, sequence: u64) -> Self {
        Self {
            id: Self::make_id(environment, sequence),
            sequence,
            product: product.to_owned(),
            environment: environment.to_owned(),
            status: ReleaseStatus::Pending,
            git_sha: None,
            actor: None,
            confirmation: None,
            started_at: String::new(),
            finished_at: None,
            failure: None,
            rolled_back_to: None,
            holder: None,
            services: BTreeMap::new(),
        }
    }

    /// The id for a sequence number.
    pub fn make_id(environment: &str, sequence: u64) -> String {
        format!("{environment}.{sequence}")
    }

    /// A manual rollback: a release of its own whose contents are `target`'s.
    pub const fn is_rollback(&self) -> bool {
        matches!(self.status, ReleaseStatus::Succeeded) && self.rolled_back_to.is_some()
    }
}

/// The release whose contents `r` runs: for a rollback the release it returned to, else `r`.
pub fn origin<'a>(history: &'a [Release], r: &'a Release) -> &'a Release {
    if r.is_rollback()
        && let Some(to) = r.rolled_back_to.as_deref()
        && let Some(t) = history.iter().find(|t| t.id == to)
    {
        return t;
    }
    r
}

/// Which release a `rollback` without `--to` returns to, and which release it leaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RollbackChoice<'a> {
    pub target: &'a Release,
    /// The known-good release that ran and is rolled back from (no longer known-good once the
    /// rollback succeeded); None when the newest release did not end healthy (interrupted,
    /// pending, failed), so the environment may run a mix and the rollback restores the last
    /// release that ran healthy.
    pub from: Option<&'a Release>,
}

/// The rollback target: the last release that ran healthy, whatever happened after it.
/// - the newest release did not end on a healthy environment (interrupted, pending, or failed
///   with a failed rollback): every service goes back to the newest succeeded release;
/// - else the environment runs the newest succeeded release (a failed release after it was
///   rolled back already): go one further back, past what that release ran (a rollback
///   release runs its target's contents), never forward.
pub fn rollback_choice(history: &[Release]) -> Option<RollbackChoice<'_>> {
    let good = last_known_good(history, None)?;
    let unsettled = history.iter().any(|r| {
        r.sequence > good.sequence
            && matches!(r.status, ReleaseStatus::Interrupted | ReleaseStatus::Pending | ReleaseStatus::Failed)
    });
    if unsettled {
        return Some(RollbackChoice { target: good, from: None });
    }
    let runs = origin(history, good);
    let target = history
        .iter()
        .filter(|r| r.status == ReleaseStatus::Succeeded && r.sequence < runs.sequence)
        .filter(|r| origin(history, r).id != runs.id)
        .max_by_key(|r| r.sequence)?;
    Some(RollbackChoice { target, from: Some(good) })
}

/// The newest succeeded release, excluding `except` (the release being replaced).
pub fn last_known_good<'a>(history: &'a [Release], except: Option<&str>) -> Option<&'a Release> {
    history
        .iter()
        .filter(|r| r.status == ReleaseStatus::Succeeded && Some(r.id.as_str()) != except)
        .max_by_key(|r| r.sequence)
}

/// The next sequence number.
pub fn next_sequence(history: &[Release]) -> u64 {
    history.iter().map(|r| r.sequence).max().map_or(1, |s| s + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(seq: u64, status: ReleaseStatus) -> Release {
        Release { status, ..Release::pending("shop", "prod", seq) }
    }

    #[test]
    fn last_known_good_skips_failed_releases() {
        // 1 ok, 2 ok, 3 rolled back, 4 pending (the one being deployed): the target is 2, not 3.
        let h = vec![
            rel(1, ReleaseStatus::Succeeded),
            rel(2, ReleaseStatus::Succeeded),
            rel(3, ReleaseStatus::RolledBack),
            rel(4, ReleaseStatus::Pending),
        ];
        assert_eq!(last_known_good(&h, Some("prod.4")).map(|r| r.sequence), Some(2));
        assert_eq!(last_known_good(&h, Some("prod.2")).map(|r| r.sequence), Some(1));
        assert_eq!(last_known_good(&[], None), None);
        assert_eq!(next_sequence(&h), 5);
    }

    fn rollback_to(seq: u64, to: u64) -> Release {
        Release { rolled_back_to: Some(format!("prod.{to}")), ..rel(seq, ReleaseStatus::Succeeded) }
    }

    fn choice(h: &[Release]) -> Option<(u64, Option<u64>)> {
        rollback_choice(h).map(|c| (c.target.sequence, c.from.map(|f| f.sequence)))
    }

    #[test]
    fn after_an_interrupted_release_rollback_restores_the_last_healthy_one() {
        // 12 ok, 13 ok, 14 interrupted mid-apply: every service back to 13 (not 12).
        let mut h = vec![
            rel(12, ReleaseStatus::Succeeded),
            rel(13, ReleaseStatus::Succeeded),
            rel(14, ReleaseStatus::Interrupted),
        ];
        assert_eq!(choice(&h), Some((13, None)));
        h[2].status = ReleaseStatus::Pending;
        assert_eq!(choice(&h), Some((13, None)));
        h[2].status = ReleaseStatus::Failed;
        assert_eq!(choice(&h), Some((13, None)));
        // A failed release that was rolled back left 13 running: one further back.
        h[2].status = ReleaseStatus::RolledBack;
        assert_eq!(choice(&h), Some((12, Some(13))));
    }

    #[test]
    fn a_second_rollback_goes_further_back_never_forward() {
        // 11, 12, 13 ok; rollback 14 (= 12) marked 13 rolled-back.
        let mut h = vec![
            rel(11, ReleaseStatus::Succeeded),
            rel(12, ReleaseStatus::Succeeded),
            rel(13, ReleaseStatus::Succeeded),
        ];
        assert_eq!(choice(&h), Some((12, Some(13))));
        h[2].status = ReleaseStatus::RolledBack;
        h.push(rollback_to(14, 12));
        assert_eq!(choice(&h), Some((11, Some(14))), "14 runs 12: next is 11");
        h[1].status = ReleaseStatus::RolledBack;
        h[3].status = ReleaseStatus::RolledBack;
        h.push(rollback_to(15, 11));
        assert_eq!(choice(&h), None, "nothing older than 11");
    }
}
