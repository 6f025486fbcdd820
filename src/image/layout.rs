//! Reading an OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/…`): the
//! hand-off format between the builders and the pusher.
//!
//! The image is the first entry of `index.json` (buildah and buildx write exactly one). It may
//! be an image manifest or an image index (multi-platform) one level deep.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Digest, Error};

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

/// A manifest's exact bytes.
#[derive(Debug, Clone)]
pub struct ManifestBlob {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Vec<u8>,
    /// Config and layers (empty for an index).
    pub blobs: Vec<Descriptor>,
}

/// The image in a layout: its top manifest, child manifests (for an index), and every blob.
#[derive(Debug, Clone)]
pub struct LayoutImage {
    pub root: PathBuf,
    pub top: ManifestBlob,
    pub children: Vec<ManifestBlob>,
}

impl LayoutImage {
    /// Every config and layer blob, each once, largest first (they dominate the transfer time).
    pub fn blobs(&self) -> Vec<Descriptor> {
        let mut all: Vec<Descriptor> =
            self.children.iter().chain(std::iter::once(&self.top)).flat_map(|m| m.blobs.clone()).collect();
        all.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.digest.cmp(&b.digest)));
        all.dedup_by(|a, b| a.digest == b.digest);
        all
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.root, digest)
    }
}

pub fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join("blobs").join("sha256").join(digest.hex())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestJson {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// Reads and checks the layout at `root`.
pub fn read(root: &Path) -> Result<LayoutImage, Error> {
    let bad = |reason: String| Error::Layout { path: root.display().to_string(), reason };
    let index = std::fs::read(root.join("index.json")).map_err(|e| bad(format!("index.json: {e}")))?;
    let index: ManifestJson = serde_json::from_slice(&index).map_err(|e| bad(format!("index.json: {e}")))?;
    let first = index.manifests.first().ok_or_else(|| bad("index.json lists no image".into()))?;
    let top = read_manifest(root, first)?;
    let mut children = Vec::new();
    if top.blobs.is_empty() {
        let parsed: ManifestJson =
            serde_json::from_slice(&top.bytes).map_err(|e| bad(format!("{}: {e}", top.digest)))?;
        for child in &parsed.manifests {
            children.push(read_manifest(root, child)?);
        }
    }
    let image = LayoutImage { root: root.to_path_buf(), top, children };
    for b in image.blobs() {
        let meta = std::fs::metadata(image.blob_path(&b.digest))
            .map_err(|e| bad(format!("blob {}: {e}", b.digest)))?;
        if meta.len() != b.size {
            return Err(bad(format!(
                "blob {} has {} bytes, the manifest says {}",
                b.digest,
                meta.len(),
                b.size
            )));
        }
    }
    Ok(image)
}

fn read_manifest(root: &Path, desc: &Descriptor) -> Result<ManifestBlob, Error> {
    let bad = |reason: String| Error::Layout { path: root.display().to_string(), reason };
    let bytes = std::fs::read(blob_path(root, &desc.digest))
        .map_err(|e| bad(format!("manifest {}: {e}", desc.digest)))?;
    if Digest::of(&bytes) != desc.digest {
        return Err(bad(format!("manifest {} does not match its digest", desc.digest)));
    }
    let parsed: ManifestJson =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("manifest {}: {e}", desc.digest)))?;
    let media_type = parsed.media_type.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| {
        if parsed.manifests.is_empty() {
            "application/vnd.oci.image.manifest.v1+json".to_owned()
        } else {
            "application/vnd.oci.image.index.v1+json".to_owned()
        }
    });
    let blobs = parsed.config.into_iter().chain(parsed.layers).collect();
    Ok(ManifestBlob { digest: desc.digest.clone(), media_type, bytes, blobs })
}
