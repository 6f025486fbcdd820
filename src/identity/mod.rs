//! Identity: where AWS credentials come from.
//!
//! In GitHub Actions the job's OIDC token is exchanged for the environment's role; elsewhere the
//! standard AWS chain (environment, profiles, SSO, web-identity file) applies. Detection here is
//! offline on purpose: `deployer plan` without credentials must say so at once instead of
//! probing the instance-metadata endpoint for seconds.

use std::path::PathBuf;

use serde::Serialize;

/// Where credentials would come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialSource {
    /// GitHub Actions OIDC (`ACTIONS_ID_TOKEN_REQUEST_URL` is set: the job has `id-token: write`).
    GithubOidc,
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` in the environment.
    Environment,
    /// `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (e.g. EKS pod identity, IRSA).
    WebIdentityFile,
    /// A named or default profile in the shared AWS files (incl. SSO).
    Profile(String),
    /// `AWS_CONTAINER_CREDENTIALS_*` (ECS tasks, CodeBuild) or an explicit IMDS opt-in.
    ContainerOrInstance,
}

impl CredentialSource {
    pub fn describe(&self) -> String {
        match self {
            Self::GithubOidc => "GitHub Actions OIDC".into(),
            Self::Environment => "AWS_ACCESS_KEY_ID in the environment".into(),
            Self::WebIdentityFile => "AWS_WEB_IDENTITY_TOKEN_FILE".into(),
            Self::Profile(p) => format!("AWS profile `{p}`"),
            Self::ContainerOrInstance => "container/instance credentials".into(),
        }
    }
}

/// Finds the credential source from the environment and the shared AWS files, without network.
pub fn detect(var: &dyn Fn(&str) -> Option<String>) -> Option<CredentialSource> {
    let set = |k: &str| var(k).is_some_and(|v| !v.is_empty());
    if set("ACTIONS_ID_TOKEN_REQUEST_URL") && set("ACTIONS_ID_TOKEN_REQUEST_TOKEN") {
        return Some(CredentialSource::GithubOidc);
    }
    if set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY") {
        return Some(CredentialSource::Environment);
    }
    if set("AWS_WEB_IDENTITY_TOKEN_FILE") && set("AWS_ROLE_ARN") {
        return Some(CredentialSource::WebIdentityFile);
    }
    if set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        || set("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        || var("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("false"))
    {
        return Some(CredentialSource::ContainerOrInstance);
    }
    let profile = var("AWS_PROFILE").filter(|p| !p.is_empty());
    let home = var("HOME").map(PathBuf::from);
    let config =
        var("AWS_CONFIG_FILE").map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(".aws/config")));
    let creds = var("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".aws/credentials")));
    let has_files = config.is_some_and(|p| p.is_file()) || creds.is_some_and(|p| p.is_file());
    match (profile, has_files) {
        (Some(p), _) => Some(CredentialSource::Profile(p)),
        (None, true) => Some(CredentialSource::Profile("default".into())),
        (None, false) => None,
    }
}

/// The hint shown when no credentials are found.
pub const NO_CREDENTIALS_HINT: &str = "in GitHub Actions give the job `permissions: id-token: write`; \
on a laptop run `aws sso login` or set AWS_PROFILE";

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: std::collections::BTreeMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn detects_sources_in_order() {
        assert_eq!(detect(&env(&[("HOME", "/nonexistent")])), None);
        assert_eq!(
            detect(&env(&[
                ("ACTIONS_ID_TOKEN_REQUEST_URL", "u"),
                ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "t"),
                ("AWS_ACCESS_KEY_ID", "a"),
                ("AWS_SECRET_ACCESS_KEY", "s")
            ])),
            Some(CredentialSource::GithubOidc)
        );
        assert_eq!(
            detect(&env(&[("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "s")])),
            Some(CredentialSource::Environment)
        );
        assert_eq!(detect(&env(&[("AWS_PROFILE", "dev")])), Some(CredentialSource::Profile("dev".into())));
    }
}
