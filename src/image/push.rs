//! Push an OCI layout to a registry by digest, then tag.
//!
//! Order matters for safety: blobs first (in parallel, each HEAD → mount → resumable upload),
//! then child manifests and the manifest by digest, and only then the tags. A tag that already
//! names the same digest costs nothing; with immutable tags, a tag naming a different digest is
//! [`Error::ImmutableTag`] (compared before the PUT, because ECR refuses even an identical
//! re-put on an immutable repository).

use std::sync::Arc;

use futures::{StreamExt as _, TryStreamExt as _};
use serde::Serialize;

use super::build::Built;
use super::layout::{self, LayoutImage};
use super::registry::{BlobOutcome, Registry};
use super::{Digest, Error};
use crate::config::Config;

/// What a push did, for reports and for "a re-push sends nothing".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PushStats {
    pub blobs_existing: u32,
    pub blobs_mounted: u32,
    pub blobs_uploaded: u32,
    pub bytes_uploaded: u64,
    /// Uploads that continued after a failure.
    pub resumed: u32,
}

impl PushStats {
    /// Totals of the per-blob outcomes of one push or copy.
    pub fn from_outcomes(outcomes: &[BlobOutcome]) -> Self {
        let mut stats = Self::default();
        for o in outcomes {
            match o {
                BlobOutcome::Existed => stats.blobs_existing += 1,
                BlobOutcome::Mounted => stats.blobs_mounted += 1,
                BlobOutcome::Uploaded { bytes, resumed } => {
                    stats.blobs_uploaded += 1;
                    stats.bytes_uploaded += bytes;
                    stats.resumed += resumed;
                }
            }
        }
        stats
    }
}

/// A pushed image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushedImage {
    /// `host/repository@sha256:…`: what gets deployed.
    pub reference: String,
    pub repository: String,
    pub digest: Digest,
    pub tags: Vec<String>,
    pub stats: PushStats,
}

/// Pushes layouts to one registry.
#[derive(Debug, Clone)]
pub struct Pusher {
    registry: Arc<Registry>,
    /// Refuse to move an existing tag to a different digest.
    pub immutable_tags: bool,
}

impl Pusher {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry, immutable_tags: true }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Pushes every built service to its configured repository (two services at a time; each
    /// sends its blobs in parallel), tagging each with `tags`. Results are in `built` order.
    pub async fn push_all(
        &self,
        config: &Config,
        built: &[Built],
        tags: &[String],
    ) -> Result<Vec<PushedImage>, Error> {
        futures::stream::iter(built)
            .map(|b| async move {
                let repository =
                    config.service(&b.service).map(|s| s.repository.to_string()).ok_or_else(|| {
                        Error::Settings(format!("service `{}` is not in the configuration", b.service))
                    })?;
                self.push_layout(&b.layout, &repository, tags, &[]).await
            })
            .buffered(2)
            .try_collect()
            .await
    }

    /// Pushes the image in `layout_dir` to `repository`, then applies `tags`. `mount_from` lists
    /// other repositories of the same registry that may already hold the blobs.
    pub async fn push_layout(
        &self,
        layout_dir: &std::path::Path,
        repository: &str,
        tags: &[String],
        mount_from: &[String],
    ) -> Result<PushedImage, Error> {
        let image = layout::read(layout_dir)?;
        self.push_image(&image, repository, tags, mount_from).await
    }

    /// As [`Self::push_layout`], for a layout already read.
    pub async fn push_image(
        &self,
        image: &LayoutImage,
        repository: &str,
        tags: &[String],
        mount_from: &[String],
    ) -> Result<PushedImage, Error> {
        let reg = &self.registry;
        let outcomes: Vec<BlobOutcome> = futures::stream::iter(image.blobs())
            .map(|b| {
                let path = image.blob_path(&b.digest);
                async move { reg.put_blob(repository, &b.digest, b.size, &path, mount_from).await }
            })
            .buffer_unordered(reg.options().concurrency.max(1))
            .try_collect()
            .await?;
        let stats = PushStats::from_outcomes(&outcomes);
        for child in &image.children {
            put_manifest_if_absent(reg, repository, child).await?;
        }
        put_manifest_if_absent(reg, repository, &image.top).await?;
        let digest = image.top.digest.clone();
        for tag in tags {
            self.tag(repository, tag, &digest, &image.top.media_type, &image.top.bytes).await?;
        }
        Ok(PushedImage {
            reference: format!("{}/{repository}@{digest}", reg.endpoint().host()),
            repository: repository.to_owned(),
            digest,
            tags: tags.to_vec(),
            stats,
        })
    }

    /// Points `tag` at `digest`: nothing to do when it already does; refused when it names
    /// something else and tags are immutable.
    pub async fn tag(
        &self,
        repository: &str,
        tag: &str,
        digest: &Digest,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), Error> {
        Self::tag_on(&self.registry, self.immutable_tags, repository, tag, digest, media_type, bytes).await
    }

    /// [`Self::tag`] for any registry client.
    pub async fn tag_on(
        reg: &Registry,
        immutable: bool,
        repository: &str,
        tag: &str,
        digest: &Digest,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), Error> {
        match reg.manifest_head(repository, tag).await? {
            Some((existing, _)) if existing == *digest => return Ok(()),
            Some((existing, _)) if immutable => {
                return Err(Error::ImmutableTag {
                    reference: format!("{}/{repository}:{tag}", reg.endpoint().host()),
                    existing: existing.to_string(),
                    pushed: digest.to_string(),
                });
            }
            _ => {}
        }
        reg.manifest_put(repository, tag, media_type, bytes).await?;
        Ok(())
    }
}

async fn put_manifest_if_absent(
    reg: &Registry,
    repository: &str,
    m: &layout::ManifestBlob,
) -> Result<(), Error> {
    if reg.manifest_head(repository, m.digest.as_str()).await?.is_some() {
        return Ok(());
    }
    let got = reg.manifest_put(repository, m.digest.as_str(), &m.media_type, &m.bytes).await?;
    if got != m.digest {
        return Err(Error::Registry {
            registry: reg.endpoint().to_string(),
            what: format!("PUT manifest {repository}@{}", m.digest),
            status: 201,
            body: format!("the registry stored it as {got}"),
        });
    }
    Ok(())
}
