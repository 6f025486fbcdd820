//! Images: build per service, push natively by digest, resolve prebuilt references, gate on the
//! ECR scan, promote exact digests between environments.
//!
//! Peers chain `docker/build-push-action`, `amazon-ecr-login` and shell for this; deployer does it
//! in one process and always hands on `repo@sha256:…`, never a moving tag.
//!
//! Library API (what the pipeline calls, in order):
//! - [`build::Builder::detect`]`(var)`, [`build::vcs_labels`]`(root, var)`,
//!   [`build::requests`]`(&Config, only, &labels)`, then
//!   [`build::build_all`]`(&Builder, Vec<BuildRequest>, out_dir, concurrency) -> Vec<Built>`: one
//!   OCI layout directory per service (buildah, or docker buildx when a daemon answers).
//! - [`Registry::for_config`]`(&Config, Option<&SdkConfig>, var)`: the `/v2/` client for
//!   `registry.endpoint` (else the ECR host) with credentials `DEPLOYER_REGISTRY_USERNAME` /
//!   `DEPLOYER_REGISTRY_PASSWORD`, else ECR `GetAuthorizationToken` through the AWS session; a
//!   private CA from `DEPLOYER_REGISTRY_CA` (PEM bundle); `http://` only for loopback hosts.
//!   [`Registry::connect`] takes explicit [`Endpoint`], [`Credentials`], [`RegistryOptions`].
//! - [`push::Pusher::push_all`]`(&Config, &[Built], tags) -> Vec<PushedImage>` or
//!   [`push::Pusher::push_layout`]`(layout, repository, tags, mount_from) -> PushedImage`;
//!   `PushedImage { reference: "host/repo@sha256:…", digest, tags, stats }`.
//! - [`resolve`]`(&Registry, &Reference) -> Resolved` for `--image service=REF` (tag or digest).
//! - [`scan::gate`]`(&EcrScanner, &ResolvedScan, env, repository, &digest, timeout, today) -> GateReport`
//!   (refusal as an error), or [`scan::judge`] (same arguments, the report either way) then
//!   [`scan::GateReport::refusal`];
//!   a refusal is [`Error::GateRefused`] (exit code 4). [`scan::evaluate`] is the pure policy.
//! - [`promote::promote`]`(src: Location, dst: Location, &digest, &GateReport, tags, work_dir) -> PushedImage`.
//!
//! Every error converts into [`crate::error::Error`] with a hint ([`Error::hint`]).

pub mod build;
pub mod layout;
pub mod promote;
pub mod push;
pub mod reference;
pub mod registry;
pub mod scan;

use std::fmt;

pub use reference::Reference;
pub use registry::{Credentials, Endpoint, Registry, RegistryOptions};

/// Manifest media types deployer asks for. docker-registry answers 404 for an OCI manifest
/// unless an OCI type is in `Accept`, so all four are always sent.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// Everything that can go wrong with images.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{tool} is not available: {reason}")]
    NoBuilder { tool: String, reason: String },
    #[error("building `{service}` failed (exit {code}):\n{log_tail}")]
    Build { service: String, code: String, log_tail: String },
    #[error("{path}: not a usable OCI layout: {reason}")]
    Layout { path: String, reason: String },
    #[error("cannot reach registry {registry}: {reason}")]
    Unreachable { registry: String, reason: String },
    #[error("registry {registry} refused the credentials: {reason}")]
    Unauthorized { registry: String, reason: String },
    #[error("registry {registry}: {what} failed with HTTP {status}: {body}")]
    Registry { registry: String, what: String, status: u16, body: String },
    #[error("{reference} not found in the registry")]
    NotFound { reference: String },
    #[error("tag {reference} already points to {existing}, not to {pushed}")]
    ImmutableTag { reference: String, existing: String, pushed: String },
    #[error("invalid image reference `{reference}`: {reason}")]
    BadReference { reference: String, reason: String },
    #[error("invalid registry settings: {0}")]
    Settings(String),
    #[error("ECR {operation} failed: {message}")]
    Ecr { operation: String, message: String },
    /// `summary` is [`scan::GateReport::summary`]: decision, counts, blocking findings.
    #[error("{summary}")]
    GateRefused { reference: String, environment: String, summary: String },
    #[error("promotion of {digest} refused: {reason}")]
    PromotionRefused { digest: String, reason: String },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }

    /// How to fix it.
    pub fn hint(&self) -> String {
        match self {
            Self::NoBuilder { .. } => {
                "install buildah (`apt-get install buildah`) or start a Docker daemon with buildx; \
                 or pass prebuilt images with `--image service=REF`"
                    .into()
            }
            Self::Build { .. } => {
                "the builder's own output is above; build the service locally with the same command to debug"
                    .into()
            }
            Self::Layout { .. } => "rebuild the image; the OCI layout on disk is incomplete".into(),
            Self::Unreachable { .. } => "check `registry.endpoint` in deployer.yaml, the network, and for a \
                 private CA set DEPLOYER_REGISTRY_CA to its PEM bundle"
                .into(),
            Self::Unauthorized { .. } => "check the registry credentials (DEPLOYER_REGISTRY_USERNAME / \
                 DEPLOYER_REGISTRY_PASSWORD, or the role's ecr:GetAuthorizationToken and push permissions)"
                .into(),
            Self::Registry { .. } => "the registry's answer is above; retry, or check its logs".into(),
            Self::NotFound { .. } => {
                "check the `--image` reference (repository, tag or digest) and that it was pushed".into()
            }
            Self::ImmutableTag { .. } => "tags are immutable: the same tag now names different content; \
                 make the build reproducible or push from a new commit"
                .into(),
            Self::BadReference { .. } => {
                "write references as `[host/]repository[:tag][@sha256:<64 hex>]`".into()
            }
            Self::Settings(_) => "fix `registry.endpoint` or the registry environment variables".into(),
            Self::Ecr { .. } => "check the role's ECR permissions and that the repository exists".into(),
            Self::GateRefused { .. } => "fix the blocking findings (upgrade the packages) or add a reviewed \
                 entry with a reason and an expiry to `scan.ignore`; if the scan did not finish, raise \
                 `timeouts.scan`"
                .into(),
            Self::PromotionRefused { .. } => {
                "promote only a digest that passed the source environment's scan gate".into()
            }
            Self::Io { .. } => "check the path and free disk space".into(),
        }
    }
}

impl crate::error::Diagnostic for Error {
    fn exit_code(&self) -> crate::error::ExitCode {
        match self {
            Self::Unauthorized { .. } => crate::error::ExitCode::Auth,
            Self::GateRefused { .. } | Self::PromotionRefused { .. } => crate::error::ExitCode::ScanGate,
            _ => crate::error::ExitCode::Internal,
        }
    }

    fn hint(&self) -> String {
        Self::hint(self)
    }
}

/// A digest `sha256:<64 hex>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Digest(String);

impl Digest {
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s.strip_prefix("sha256:")?;
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            .then(|| Self(s.to_owned()))
    }

    /// The sha256 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Self(format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex part (the file name inside `blobs/sha256/`).
    pub fn hex(&self) -> &str {
        self.0.strip_prefix("sha256:").unwrap_or(&self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A prebuilt image resolved to its digest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Resolved {
    /// `host/repository@sha256:…`.
    pub reference: String,
    pub digest: Digest,
    pub media_type: String,
}

/// Resolves `--image service=REF` (tag or digest) to a digest and checks the manifest exists.
/// A REF without a host is in `registry`; a REF naming another host is refused: what runs must
/// come from the product's registry (promote it there first).
pub async fn resolve(registry: &Registry, reference: &Reference) -> Result<Resolved, Error> {
    if let Some(host) = &reference.host
        && host != registry.endpoint().host()
    {
        return Err(Error::BadReference {
            reference: reference.to_string(),
            reason: format!(
                "it is not in the product's registry {}; push or promote it there first",
                registry.endpoint().host()
            ),
        });
    }
    let wanted =
        reference.digest.as_ref().map_or_else(|| reference.tag_or_latest().to_owned(), ToString::to_string);
    let Some((digest, media_type)) = registry.manifest_head(&reference.repository, &wanted).await? else {
        return Err(Error::NotFound { reference: reference.to_string() });
    };
    if let Some(d) = &reference.digest
        && *d != digest
    {
        return Err(Error::Registry {
            registry: registry.endpoint().to_string(),
            what: format!("resolving {reference}"),
            status: 200,
            body: format!("registry answered digest {digest}"),
        });
    }
    Ok(Resolved {
        reference: format!("{}/{}@{digest}", registry.endpoint().host(), reference.repository),
        digest,
        media_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_parse_strictly() {
        let hex = "a".repeat(64);
        assert!(Digest::parse(&format!("sha256:{hex}")).is_some());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_none());
        assert!(Digest::parse("sha256:abc").is_none());
        assert!(Digest::parse(&hex).is_none());
        assert_eq!(
            Digest::of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
