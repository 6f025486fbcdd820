//! Image references: `[host[:port]/]repository[:tag][@sha256:…]`.
//!
//! The host is recognised the way docker does: the first path component is a host when it holds
//! a `.` or a `:`, or is `localhost`. Without a host the reference is relative to the product's
//! registry (`registry.endpoint`).

use std::fmt;

use super::{Digest, Error};

/// A parsed reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub host: Option<String>,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::BadReference { reference: s.to_owned(), reason: reason.to_owned() };
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                (r, Some(Digest::parse(d).ok_or_else(|| bad("the digest is not sha256:<64 lowercase hex>"))?))
            }
            None => (s, None),
        };
        let (host, path) = match rest.split_once('/') {
            Some((first, path)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (Some(first.to_owned()), path)
            }
            _ => (None, rest),
        };
        // A `:` after the last `/` separates the tag (a `:` before it belongs to the host).
        let last = path.rsplit('/').next().unwrap_or(path);
        let (repository, tag) = match last.split_once(':') {
            Some((_, tag)) => (&path[..path.len() - tag.len() - 1], Some(tag.to_owned())),
            None => (path, None),
        };
        if repository.is_empty() {
            return Err(bad("the repository is empty"));
        }
        if !repository.split('/').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        }) {
            return Err(bad("repository components are lowercase letters, digits, `.`, `_`, `-`"));
        }
        if let Some(t) = &tag
            && (t.is_empty()
                || t.len() > 128
                || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
        {
            return Err(bad("a tag is 1-128 letters, digits, `.`, `_`, `-`"));
        }
        Ok(Self { host, repository: repository.to_owned(), tag, digest })
    }

    /// The tag, or `latest` when neither tag nor digest was given.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(h) = &self.host {
            write!(f, "{h}/")?;
        }
        f.write_str(&self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_tags_and_digests() {
        let d = format!("sha256:{}", "0".repeat(64));
        let r = Reference::parse(&format!("127.0.0.1:5000/shop/user:v1@{d}")).unwrap();
        assert_eq!(r.host.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(r.repository, "shop/user");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.digest.as_ref().map(Digest::as_str), Some(d.as_str()));
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/shop/user:v1@{d}"));

        let r = Reference::parse("shop/user").unwrap();
        assert_eq!((r.host.as_deref(), r.tag_or_latest()), (None, "latest"));
        let r = Reference::parse("localhost/app:1.2").unwrap();
        assert_eq!((r.host.as_deref(), r.repository.as_str()), (Some("localhost"), "app"));
        assert!(Reference::parse("Shop/User").is_err());
        assert!(Reference::parse("shop/user@sha256:12").is_err());
        assert!(Reference::parse("host.io/").is_err());
    }
}
