//! Release records as tags on the ECS services themselves.
//!
//! Why service tags and not an SSM parameter: anyone who can see the service (`ecs:Describe*`,
//! `ecs:ListTagsForResource`, e.g. a laptop with read access) sees its records, no extra
//! dependency or resource to create, and the records live and die with the service they
//! describe. Limits shape the format: 50 tags per resource, values ≤ 256 characters from
//! `[A-Za-z0-9 +-=._:/@]` (no JSON). So each service carries
//! - `deployer:known-good` = the task-definition ARN of the last release that passed its checks;
//! - `deployer:known-good-release` = that release's id;
//! - `deployer:release:<id>` = `<outcome> <time> <actor> <family:revision> <digest|->` for the
//!   newest [`KEEP`] releases that touched the service (older ones are untagged).
//!
//! An environment's history is the union over its services, grouped by release id.

use std::collections::BTreeMap;

use crate::platform::{Outcome, RecordedService, ReleaseId, ReleaseRecord};

pub const KNOWN_GOOD: &str = "deployer:known-good";
pub const KNOWN_GOOD_RELEASE: &str = "deployer:known-good-release";
pub const RELEASE_PREFIX: &str = "deployer:release:";
/// Releases kept per service (the rest of the 50-tag budget stays with the user).
pub const KEEP: usize = 10;

/// One service's entry of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub outcome: Outcome,
    pub at: String,
    pub actor: String,
    /// `family:revision`.
    pub revision: String,
    pub digest: Option<String>,
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

/// The tag (key, value) of one service's entry.
pub fn encode(id: &ReleaseId, e: &Entry) -> (String, String) {
    let digest = e.digest.as_deref().map_or_else(|| "-".to_owned(), |d| clean(d, 80));
    (
        format!("{RELEASE_PREFIX}{}", clean(id.as_str(), 100)),
        format!(
            "{} {} {} {} {digest}",
            e.outcome.as_str(),
            clean(&e.at, 30),
            clean(&e.actor, 39),
            clean(&e.revision, 100)
        ),
    )
}

/// Parses a release tag; None for other tags or values deployer did not write.
pub fn decode(key: &str, value: &str) -> Option<(ReleaseId, Entry)> {
    let id = key.strip_prefix(RELEASE_PREFIX)?;
    let mut parts = value.split(' ');
    let outcome = Outcome::parse(parts.next()?)?;
    let at = parts.next()?.to_owned();
    let actor = parts.next()?.to_owned();
    let revision = parts.next()?.to_owned();
    let digest = parts.next().filter(|d| *d != "-").map(str::to_owned);
    Some((ReleaseId(id.to_owned()), Entry { outcome, at, actor, revision, digest }))
}

/// The digest part of an image reference.
pub fn digest_of(image: &str) -> Option<String> {
    image.split_once('@').map(|(_, d)| d.to_owned())
}

/// Release tag keys to remove so that `KEEP` remain (oldest first out).
pub fn prune<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut ids: Vec<&str> = keys.into_iter().filter(|k| k.starts_with(RELEASE_PREFIX)).collect();
    ids.sort_unstable();
    let excess = ids.len().saturating_sub(KEEP);
    ids[..excess].iter().map(|k| (*k).to_owned()).collect()
}

/// Groups per-service entries into releases, newest first. If services disagree on the
/// outcome (a record interrupted halfway), the worst one wins.
pub fn merge(entries: Vec<(String, ReleaseId, Entry)>) -> Vec<ReleaseRecord> {
    let mut by_id: BTreeMap<ReleaseId, ReleaseRecord> = BTreeMap::new();
    for (service, id, e) in entries {
        let rec = by_id.entry(id.clone()).or_insert_with(|| ReleaseRecord {
            id,
            at: e.at.clone(),
            actor: e.actor.clone(),
            outcome: e.outcome,
            services: BTreeMap::new(),
        });
        rec.outcome = worst(rec.outcome, e.outcome);
        rec.services.insert(service, RecordedService { revision: e.revision, digest: e.digest });
    }
    by_id.into_values().rev().collect()
}

const fn worst(a: Outcome, b: Outcome) -> Outcome {
    match (a, b) {
        (Outcome::RollbackFailed, _) | (_, Outcome::RollbackFailed) => Outcome::RollbackFailed,
        (Outcome::RolledBack, _) | (_, Outcome::RolledBack) => Outcome::RolledBack,
        _ => Outcome::Succeeded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(outcome: Outcome, rev: &str) -> Entry {
        Entry {
            outcome,
            at: "2026-11-23T07:05:12Z".into(),
            actor: "octo cat".into(),
            revision: rev.into(),
            digest: Some(format!("sha256:{}", "a".repeat(64))),
        }
    }

    #[test]
    fn round_trip_within_tag_limits() {
        let id = ReleaseId("20261123T070512Z-1a2b3c4".into());
        let (k, v) = encode(&id, &entry(Outcome::Succeeded, "shop-notification-prod:123"));
        assert_eq!(k, "deployer:release:20261123T070512Z-1a2b3c4");
        assert!(k.len() <= 128 && v.len() <= 256, "{v}");
        let (id2, e) = decode(&k, &v).unwrap();
        assert_eq!(id2, id);
        assert_eq!(e.actor, "octo_cat");
        assert_eq!(e.revision, "shop-notification-prod:123");
        assert_eq!(e.digest.as_deref(), Some(&*format!("sha256:{}", "a".repeat(64))));
        assert!(decode("deployer:known-good", "x").is_none());
        assert!(decode("deployer:release:x", "garbage").is_none());
    }

    #[test]
    fn merge_groups_services_newest_first_worst_outcome() {
        let r1 = ReleaseId("20261123T070000Z-a".into());
        let r2 = ReleaseId("20261123T080000Z-b".into());
        let merged = merge(vec![
            ("user".into(), r1.clone(), entry(Outcome::Succeeded, "u:1")),
            ("order".into(), r1, entry(Outcome::Succeeded, "o:1")),
            ("user".into(), r2.clone(), entry(Outcome::RolledBack, "u:2")),
            ("order".into(), r2, entry(Outcome::Succeeded, "o:2")),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].id.as_str(), "20261123T080000Z-b");
        assert_eq!(merged[0].outcome, Outcome::RolledBack);
        assert_eq!(merged[1].services["order"].revision, "o:1");
    }

    #[test]
    fn prune_keeps_the_newest() {
        let keys: Vec<String> = (0..13).map(|i| format!("{RELEASE_PREFIX}20261123T{i:02}0000Z-x")).collect();
        let mut all: Vec<&str> = keys.iter().map(String::as_str).collect();
        all.push(KNOWN_GOOD);
        let gone = prune(all);
        assert_eq!(gone.len(), 3);
        assert!(gone[0].contains("T000000Z") && gone[2].contains("T020000Z"));
    }
}
