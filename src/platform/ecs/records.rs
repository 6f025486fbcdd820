//! Release records as tags on the ECS services themselves.
//!
//! Why service tags and not an SSM parameter: anyone who can see the service (`ecs:Describe*`,
//! `ecs:ListTagsForResource`, e.g. a laptop with read access) sees its records, no extra
//! dependency or resource to create, and the records live and die with the service they
//! describe. Limits shape the format: 50 tags per resource, values ≤ 256 characters from
//! `[A-Za-z0-9 +-=._:/@]` (no JSON). So each service carries
//! - `deployer:known-good` = the task-definition ARN of the last release that passed its checks;
//! - `deployer:known-good-release` = that release's id;
//! - `deployer:release:<id>` = `<status> <started> <actor> <family:revision|-> <digest|-> <commit|-> <returned-to|->`
//!   for the newest [`KEEP`] releases that touched the service (older ones are untagged).
//!
//! An environment's history ([`merge`]) is the union over its services, grouped by release id
//! (`<environment>.<n>`, the engine's one format) into [`Release`]s.

use std::collections::BTreeMap;

use crate::release::{Release, ReleaseStatus, ServiceRelease};

pub const KNOWN_GOOD: &str = "deployer:known-good";
pub const KNOWN_GOOD_RELEASE: &str = "deployer:known-good-release";
pub const RELEASE_PREFIX: &str = "deployer:release:";
/// Releases kept per service (the rest of the 50-tag budget stays with the user).
pub const KEEP: usize = 10;

/// One service's entry of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub status: ReleaseStatus,
    pub at: String,
    pub actor: String,
    /// `family:revision` (None before the task definition is registered).
    pub revision: Option<String>,
    pub digest: Option<String>,
    pub git_sha: Option<String>,
    pub returned_to: Option<String>,
}

/// Tag characters ECS accepts; anything else becomes `_`.
fn clean(s: &str, max: usize) -> String {
    let out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "+-=._:/@".contains(c) { c } else { '_' })
        .take(max)
        .collect();
    if out.is_empty() { "-".to_owned() } else { out }
}

fn opt(s: Option<&str>, max: usize) -> String {
    s.map_or_else(|| "-".to_owned(), |s| clean(s, max))
}

/// The status word in a tag (`failed` for a release whose rollback failed).
fn status_parse(s: &str) -> Option<ReleaseStatus> {
    Some(match s {
        "pending" => ReleaseStatus::Pending,
        "succeeded" => ReleaseStatus::Succeeded,
        "rolled-back" => ReleaseStatus::RolledBack,
        "failed" | "rollback-failed" => ReleaseStatus::Failed,
        "interrupted" => ReleaseStatus::Interrupted,
        _ => return None,
    })
}

/// The tag (key, value) of one service's entry.
pub fn encode(id: &str, e: &Entry) -> (String, String) {
    (
        format!("{RELEASE_PREFIX}{}", clean(id, 100)),
        format!(
            "{} {} {} {} {} {} {}",
            e.status.as_str(),
            clean(&e.at, 30),
            clean(&e.actor, 39),
            opt(e.revision.as_deref(), 60),
            opt(e.digest.as_deref(), 71),
            opt(e.git_sha.as_deref(), 12),
            opt(e.returned_to.as_deref(), 20),
        ),
    )
}

/// Parses a release tag; None for other tags or values deployer did not write.
pub fn decode(key: &str, value: &str) -> Option<(String, Entry)> {
    let id = key.strip_prefix(RELEASE_PREFIX)?;
    let mut parts = value.split(' ');
    let status = status_parse(parts.next()?)?;
    let at = parts.next()?.to_owned();
    let actor = parts.next()?.to_owned();
    let mut next = || parts.next().filter(|d| *d != "-").map(str::to_owned);
    let revision = next();
    let digest = next();
    let git_sha = next();
    let returned_to = next();
    Some((id.to_owned(), Entry { status, at, actor, revision, digest, git_sha, returned_to }))
}

/// The sequence number of an id `<environment>.<n>` (0 for ids of older deployers).
fn sequence_of(id: &str) -> u64 {
    id.rsplit_once('.').and_then(|(_, n)| n.parse().ok()).unwrap_or(0)
}

/// Release tag keys to remove so that `KEEP` remain (oldest first out).
pub fn prune<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut ids: Vec<&str> = keys.into_iter().filter(|k| k.starts_with(RELEASE_PREFIX)).collect();
    ids.sort_by_key(|k| (sequence_of(k), k.to_string()));
    let excess = ids.len().saturating_sub(KEEP);
    ids[..excess].iter().map(|k| (*k).to_owned()).collect()
}

/// Groups per-service entries (service, id, entry) into releases, oldest first. If services
/// disagree on the status (a record interrupted halfway), the worst one wins. `repository`
/// gives each service's image repository (the tags keep the digest only).
pub fn merge(
    product: &str,
    environment: &str,
    entries: Vec<(String, String, Entry)>,
    repository: &dyn Fn(&str) -> String,
) -> Vec<Release> {
    let mut by_id: BTreeMap<(u64, String), Release> = BTreeMap::new();
    for (service, id, e) in entries {
        let rec = by_id.entry((sequence_of(&id), id.clone())).or_insert_with(|| Release {
            id: id.clone(),
            sequence: sequence_of(&id),
            product: product.to_owned(),
            environment: environment.to_owned(),
            status: e.status,
            git_sha: e.git_sha.clone(),
            actor: Some(e.actor.clone()),
            confirmation: None,
            started_at: e.at.clone(),
            finished_at: None,
            failure: None,
            rolled_back_to: e.returned_to.clone(),
            holder: None,
            services: BTreeMap::new(),
        });
        rec.status = worst(rec.status, e.status);
        let image = e.digest.as_ref().map_or_else(String::new, |d| format!("{}@{d}", repository(&service)));
        rec.services.insert(
            service,
            ServiceRelease { revision: e.revision, ..ServiceRelease::new(image, Vec::new(), None) },
        );
    }
    by_id.into_values().collect()
}

const fn rank(s: ReleaseStatus) -> u8 {
    match s {
        ReleaseStatus::Succeeded => 0,
        ReleaseStatus::Pending => 1,
        // A record being rewritten service by service: a service already marked interrupted
        // (or rolled back, failed) tells more than one still pending.
        ReleaseStatus::Interrupted => 2,
        ReleaseStatus::RolledBack => 3,
        ReleaseStatus::Failed => 4,
    }
}

const fn worst(a: ReleaseStatus, b: ReleaseStatus) -> ReleaseStatus {
    if rank(a) >= rank(b) { a } else { b }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(status: ReleaseStatus, rev: &str) -> Entry {
        Entry {
            status,
            at: "2026-11-23T07:05:12Z".into(),
            actor: "octo cat".into(),
            revision: Some(rev.into()),
            digest: Some(format!("sha256:{}", "a".repeat(64))),
            git_sha: Some("1a2b3c4d5e6f7".into()),
            returned_to: None,
        }
    }

    #[test]
    fn round_trip_within_tag_limits() {
        let (k, v) = encode("prod.123", &entry(ReleaseStatus::Succeeded, "shop-notification-prod:123"));
        assert_eq!(k, "deployer:release:prod.123");
        assert!(k.len() <= 128 && v.len() <= 256, "{v}");
        let (id2, e) = decode(&k, &v).unwrap();
        assert_eq!(id2, "prod.123");
        assert_eq!(e.actor, "octo_cat");
        assert_eq!(e.revision.as_deref(), Some("shop-notification-prod:123"));
        assert_eq!(e.digest.as_deref(), Some(&*format!("sha256:{}", "a".repeat(64))));
        assert_eq!(e.git_sha.as_deref(), Some("1a2b3c4d5e6f"));
        assert!(decode("deployer:known-good", "x").is_none());
        assert!(decode("deployer:release:x", "garbage").is_none());
    }

    #[test]
    fn merge_groups_services_by_sequence_worst_status() {
        let repo = |s: &str| format!("reg/shop/{s}");
        let merged = merge(
            "shop",
            "dev",
            vec![
                ("user".into(), "dev.9".into(), entry(ReleaseStatus::Succeeded, "u:1")),
                ("order".into(), "dev.9".into(), entry(ReleaseStatus::Succeeded, "o:1")),
                ("user".into(), "dev.10".into(), entry(ReleaseStatus::RolledBack, "u:2")),
                ("order".into(), "dev.10".into(), entry(ReleaseStatus::Succeeded, "o:2")),
            ],
            &repo,
        );
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[1].id, "dev.10", "oldest first, by sequence (not text)");
        assert_eq!(merged[1].status, ReleaseStatus::RolledBack);
        assert_eq!(merged[0].services["order"].revision.as_deref(), Some("o:1"));
        assert!(merged[0].services["order"].image.starts_with("reg/shop/order@sha256:"));
    }

    #[test]
    fn prune_keeps_the_newest_by_sequence() {
        let keys: Vec<String> = (1..=13).map(|i| format!("{RELEASE_PREFIX}dev.{i}")).collect();
        let mut all: Vec<&str> = keys.iter().map(String::as_str).collect();
        all.push(KNOWN_GOOD);
        let gone = prune(all);
        assert_eq!(
            gone,
            vec![
                format!("{RELEASE_PREFIX}dev.1"),
                format!("{RELEASE_PREFIX}dev.2"),
                format!("{RELEASE_PREFIX}dev.3")
            ]
        );
    }
}
