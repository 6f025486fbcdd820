//! Promotion: copy the exact digest (manifest bytes and blobs) from one environment's
//! registry/repository to another's, never rebuilding and never re-tagging by name.
//!
//! Evidence: promotion takes the [`GateReport`] the source environment's gate returned (the
//! pipeline keeps it in the release record; it round-trips through JSON between jobs). It must be for
//! the same repository and digest, and must have passed; anything else is
//! [`Error::PromotionRefused`] (exit code 4). Keeping the evidence a plain value rather than a
//! registry-side marker (tag or annotation) means it cannot be forged by anyone who can push
//! a tag, and promotion needs no extra registry API.
//!
//! Copy: within one registry each blob is mounted (`POST ?mount=&from=`: no bytes move); across
//! registries each missing blob goes through a temporary file, so its upload is the same
//! resumable, chunked upload a push uses (a live stream cannot be resumed after a drop).

use std::path::Path;

use futures::{StreamExt as _, TryStreamExt as _};
use serde::Deserialize;

use super::push::{PushStats, PushedImage, Pusher};
use super::registry::{BlobOutcome, Registry};
use super::scan::GateReport;
use super::{Digest, Error};

/// A source or destination of a promotion.
#[derive(Debug, Clone, Copy)]
pub struct Location<'a> {
    pub registry: &'a Registry,
    pub repository: &'a str,
}

#[derive(Deserialize)]
struct Parsed {
    #[serde(default)]
    config: Option<super::layout::Descriptor>,
    #[serde(default)]
    layers: Vec<super::layout::Descriptor>,
    #[serde(default)]
    manifests: Vec<super::layout::Descriptor>,
}

/// Checks the evidence: the gate passed for exactly this repository and digest.
pub fn check_evidence(evidence: &GateReport, repository: &str, digest: &Digest) -> Result<(), Error> {
    let refuse = |reason: String| Error::PromotionRefused { digest: digest.to_string(), reason };
    if evidence.digest != *digest {
        return Err(refuse(format!("the gate evidence is for {}, not this digest", evidence.digest)));
    }
    if evidence.repository != repository {
        return Err(refuse(format!(
            "the gate evidence is for repository {}, not {repository}",
            evidence.repository
        )));
    }
    if !evidence.verdict.pass {
        return Err(refuse(format!("it did not pass the scan gate of `{}`", evidence.environment)));
    }
    Ok(())
}

/// Copies `digest` from `src` to `dst` and applies `tags` there. `work_dir` holds blobs in
/// transit between registries.
pub async fn promote(
    src: Location<'_>,
    dst: Location<'_>,
    digest: &Digest,
    evidence: &GateReport,
    tags: &[String],
    work_dir: &Path,
) -> Result<PushedImage, Error> {
    check_evidence(evidence, src.repository, digest)?;
    let not_found = || Error::NotFound {
        reference: format!("{}/{}@{digest}", src.registry.endpoint().host(), src.repository),
    };
    let (top, top_type) =
        src.registry.manifest_get(src.repository, digest.as_str()).await?.ok_or_else(not_found)?;
    if Digest::of(&top) != *digest {
        return Err(Error::Registry {
            registry: src.registry.endpoint().to_string(),
            what: format!("GET manifest {}@{digest}", src.repository),
            status: 200,
            body: "the manifest bytes do not hash to the digest".into(),
        });
    }
    let parsed: Parsed = serde_json::from_slice(&top)
        .map_err(|e| Error::Layout { path: format!("{}@{digest}", src.repository), reason: e.to_string() })?;
    let mut manifests = Vec::new();
    let mut blobs: Vec<super::layout::Descriptor> = parsed.config.into_iter().chain(parsed.layers).collect();
    for child in &parsed.manifests {
        let (bytes, mt) =
            src.registry.manifest_get(src.repository, child.digest.as_str()).await?.ok_or_else(not_found)?;
        let p: Parsed = serde_json::from_slice(&bytes).map_err(|e| Error::Layout {
            path: format!("{}@{}", src.repository, child.digest),
            reason: e.to_string(),
        })?;
        blobs.extend(p.config.into_iter().chain(p.layers));
        manifests.push((child.digest.clone(), mt, bytes));
    }
    blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
    blobs.dedup_by(|a, b| a.digest == b.digest);

    std::fs::create_dir_all(work_dir)
        .map_err(|e| Error::io(format!("creating {}", work_dir.display()), e))?;
    let same_registry = src.registry.endpoint() == dst.registry.endpoint();
    let outcomes: Vec<BlobOutcome> = futures::stream::iter(blobs)
        .map(|b| async move {
            if dst.registry.blob_exists(dst.repository, &b.digest).await? {
                return Ok(BlobOutcome::Existed);
            }
            if same_registry && dst.registry.mount_only(dst.repository, &b.digest, src.repository).await? {
                return Ok(BlobOutcome::Mounted);
            }
            let tmp = work_dir.join(b.digest.hex());
            src.registry.blob_to_file(src.repository, &b.digest, &tmp).await?;
            let r = dst.registry.put_blob(dst.repository, &b.digest, b.size, &tmp, &[]).await;
            let _ = std::fs::remove_file(&tmp);
            r
        })
        .buffer_unordered(dst.registry.options().concurrency.max(1))
        .try_collect()
        .await?;
    let stats = PushStats::from_outcomes(&outcomes);
    for (d, mt, bytes) in
        manifests.iter().chain(std::iter::once(&(digest.clone(), top_type.clone(), top.clone())))
    {
        if dst.registry.manifest_head(dst.repository, d.as_str()).await?.is_none() {
            dst.registry.manifest_put(dst.repository, d.as_str(), mt, bytes).await?;
        }
    }
    // Tags go through the pusher's immutable-tag check.
    for tag in tags {
        Pusher::tag_on(dst.registry, true, dst.repository, tag, digest, &top_type, &top).await?;
    }
    Ok(PushedImage {
        reference: format!("{}/{}@{digest}", dst.registry.endpoint().host(), dst.repository),
        repository: dst.repository.to_owned(),
        digest: digest.clone(),
        tags: tags.to_vec(),
        stats,
    })
}
