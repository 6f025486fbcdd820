//! The production guard: who may change an environment that requires approval, and how that
//! approval is recorded.
//!
//! An environment with `approval.required` names a GitHub environment. In GitHub Actions the job
//! must run in that environment: GitHub only issues an ID token whose `environment` claim names
//! it after the environment's protection rules (required reviewers, branch rules) passed, so the
//! claim is the proof of approval. From a terminal a person confirms explicitly, either at a
//! prompt or with `--yes`. `--yes` does not count in Actions: it would let any workflow skip the
//! reviewers. Rollbacks need the same confirmation as deploys. The returned [`Confirmation`] is
//! stored in the release record.

use std::io::{BufRead, Write};

use serde::Serialize;

use super::IdentityError;
use crate::config::Approval;

/// What is about to happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Deploy,
    Rollback,
}

impl Action {
    const fn verb(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::Rollback => "roll back",
        }
    }
}

/// Where deployer runs, as far as the guard cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// A GitHub Actions job; `environment` is the OIDC token's `environment` claim (None when the
    /// job has no environment or no ID token).
    Actions { environment: Option<String>, actor: Option<String> },
    /// A person at a terminal (or a script outside Actions).
    Terminal { user: String, assume_yes: bool },
}

impl Invocation {
    /// From the process environment: `GITHUB_ACTIONS=true` means Actions; otherwise a terminal
    /// whose user is `$USER` (or `$USERNAME`), followed by the git identity when known
    /// (`git config user.name`, read by the caller): `alice (Alice Smith)`.
    pub fn from_env(
        var: &dyn Fn(&str) -> Option<String>,
        environment_claim: Option<&str>,
        assume_yes: bool,
        git_user: Option<&str>,
    ) -> Self {
        if var("GITHUB_ACTIONS").as_deref() == Some("true") {
            Self::Actions {
                environment: environment_claim.map(str::to_owned),
                actor: var("GITHUB_ACTOR").filter(|v| !v.is_empty()),
            }
        } else {
            let login = var("USER").or_else(|| var("USERNAME")).filter(|v| !v.is_empty());
            let git = git_user.map(str::trim).filter(|g| !g.is_empty());
            let user = match (login, git) {
                (Some(l), Some(g)) => format!("{l} ({g})"),
                (Some(l), None) => l,
                (None, Some(g)) => g.to_owned(),
                (None, None) => "unknown".to_owned(),
            };
            Self::Terminal { user, assume_yes }
        }
    }
}

/// How the change was approved; goes into the release record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "how", rename_all = "kebab-case")]
pub enum Approved {
    /// The environment requires no approval.
    NotRequired,
    /// The job ran in the GitHub environment (its reviewers approved).
    GithubEnvironment { environment: String },
    /// `--yes` on the command line.
    YesFlag,
    /// Answered a prompt.
    Prompt,
}

/// Who approved the change, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Confirmation {
    pub by: String,
    #[serde(flatten)]
    pub approved: Approved,
}

/// Asks a person a question. `None` means nobody can answer (stdin is not a terminal).
pub trait Prompt {
    fn ask(&mut self, question: &str) -> Option<String>;
}

/// A prompt on a reader/writer pair (stdin/stderr in the binary, buffers in tests).
pub struct LinePrompt<R, W> {
    pub reader: R,
    pub writer: W,
    /// False when the reader is not a terminal: the guard then refuses instead of waiting.
    pub interactive: bool,
}

impl<R: BufRead, W: Write> Prompt for LinePrompt<R, W> {
    fn ask(&mut self, question: &str) -> Option<String> {
        if !self.interactive {
            return None;
        }
        write!(self.writer, "{question} ").ok()?;
        self.writer.flush().ok()?;
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim().to_owned()),
        }
    }
}

/// Decides whether `action` on environment `env_name` may proceed.
pub fn guard(
    env_name: &str,
    approval: Option<&Approval>,
    action: Action,
    invocation: &Invocation,
    prompt: &mut dyn Prompt,
) -> Result<Confirmation, IdentityError> {
    let who = match invocation {
        Invocation::Actions { actor, .. } => actor.clone().unwrap_or_else(|| "github-actions".to_owned()),
        Invocation::Terminal { user, .. } => user.clone(),
    };
    let Some(approval) = approval.filter(|a| a.required) else {
        return Ok(Confirmation { by: who, approved: Approved::NotRequired });
    };
    let required_env = approval.github_environment.clone().unwrap_or_else(|| env_name.to_owned());
    let refused = |reason: String, hint: String| IdentityError::GuardRefused {
        environment: env_name.to_owned(),
        action: action.verb(),
        reason,
        hint,
    };
    match invocation {
        Invocation::Actions { environment, .. } => match environment.as_deref() {
            Some(e) if e == required_env => Ok(Confirmation {
                by: who,
                approved: Approved::GithubEnvironment { environment: required_env },
            }),
            Some(other) => Err(refused(
                format!("the job runs in GitHub environment `{other}`, not `{required_env}`"),
                format!("set `environment: {required_env}` on the deploy job so its reviewers approve it"),
            )),
            None => Err(refused(
                format!(
                    "the job's OIDC token has no `environment` claim (it must run in GitHub environment `{required_env}`)"
                ),
                format!(
                    "set `environment: {required_env}` and `permissions: id-token: write` on the deploy job; `--yes` does not apply in GitHub Actions"
                ),
            )),
        },
        Invocation::Terminal { assume_yes: true, .. } => {
            Ok(Confirmation { by: who, approved: Approved::YesFlag })
        }
        Invocation::Terminal { assume_yes: false, .. } => {
            let question = format!(
                "environment `{env_name}` requires approval. {} `{env_name}` now? type `yes` or the environment name to confirm:",
                action.verb()
            );
            match prompt.ask(&question) {
                Some(a) if a.eq_ignore_ascii_case("yes") || a.eq_ignore_ascii_case("y") || a == env_name => {
                    Ok(Confirmation { by: who, approved: Approved::Prompt })
                }
                Some(_) => Err(refused(
                    "not confirmed at the prompt".to_owned(),
                    "answer `yes` to proceed, or run it through the GitHub workflow".to_owned(),
                )),
                None => Err(refused(
                    "it needs a confirmation and there is no terminal to ask".to_owned(),
                    format!(
                        "pass `--yes` to confirm, or deploy from the GitHub workflow running in `{required_env}`"
                    ),
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scripted(Option<&'static str>, Vec<String>);
    impl Prompt for Scripted {
        fn ask(&mut self, q: &str) -> Option<String> {
            self.1.push(q.to_owned());
            self.0.map(str::to_owned)
        }
    }

    fn prod() -> Approval {
        Approval { required: true, github_environment: Some("production".into()) }
    }

    fn actions(env: Option<&str>) -> Invocation {
        Invocation::Actions { environment: env.map(str::to_owned), actor: Some("octocat".into()) }
    }

    fn terminal(yes: bool) -> Invocation {
        Invocation::Terminal { user: "alice".into(), assume_yes: yes }
    }

    #[test]
    fn no_approval_needed() {
        let mut p = Scripted(None, vec![]);
        let c = guard("dev", None, Action::Deploy, &terminal(false), &mut p).unwrap();
        assert_eq!(c, Confirmation { by: "alice".into(), approved: Approved::NotRequired });
        let off = Approval { required: false, github_environment: None };
        let c = guard("dev", Some(&off), Action::Deploy, &actions(None), &mut p).unwrap();
        assert_eq!(c.approved, Approved::NotRequired);
        assert!(p.1.is_empty(), "no prompt when no approval is required");
    }

    #[test]
    fn actions_right_environment_claim() {
        let mut p = Scripted(None, vec![]);
        for action in [Action::Deploy, Action::Rollback] {
            let c = guard("prod", Some(&prod()), action, &actions(Some("production")), &mut p).unwrap();
            assert_eq!(
                c,
                Confirmation {
                    by: "octocat".into(),
                    approved: Approved::GithubEnvironment { environment: "production".into() }
                }
            );
        }
        assert!(p.1.is_empty());
    }

    #[test]
    fn actions_wrong_or_missing_environment_claim() {
        let mut p = Scripted(Some("yes"), vec![]);
        let e = guard("prod", Some(&prod()), Action::Deploy, &actions(Some("staging")), &mut p).unwrap_err();
        assert!(e.to_string().contains("`staging`, not `production`"), "{e}");
        let e = guard("prod", Some(&prod()), Action::Rollback, &actions(None), &mut p).unwrap_err();
        assert!(e.to_string().contains("no `environment` claim"), "{e}");
        assert!(e.hint().contains("environment: production"));
        assert_eq!(crate::error::Error::from(e).exit_code(), crate::error::ExitCode::Auth);
        assert!(p.1.is_empty(), "Actions never prompts");
    }

    #[test]
    fn terminal_yes_flag() {
        let mut p = Scripted(None, vec![]);
        for action in [Action::Deploy, Action::Rollback] {
            let c = guard("prod", Some(&prod()), action, &terminal(true), &mut p).unwrap();
            assert_eq!(c, Confirmation { by: "alice".into(), approved: Approved::YesFlag });
        }
    }

    #[test]
    fn terminal_prompt_yes_and_no() {
        let mut yes = Scripted(Some("yes"), vec![]);
        let c = guard("prod", Some(&prod()), Action::Rollback, &terminal(false), &mut yes).unwrap();
        assert_eq!(c.approved, Approved::Prompt);
        assert!(yes.1[0].contains("roll back `prod`"), "{:?}", yes.1);
        let mut name = Scripted(Some("prod"), vec![]);
        assert!(guard("prod", Some(&prod()), Action::Deploy, &terminal(false), &mut name).is_ok());
        let mut no = Scripted(Some("no"), vec![]);
        let e = guard("prod", Some(&prod()), Action::Deploy, &terminal(false), &mut no).unwrap_err();
        assert!(e.to_string().contains("not confirmed"), "{e}");
    }

    #[test]
    fn terminal_non_interactive_without_yes() {
        let mut p = LinePrompt { reader: &b"yes\n"[..], writer: Vec::new(), interactive: false };
        let e = guard("prod", Some(&prod()), Action::Deploy, &terminal(false), &mut p).unwrap_err();
        assert!(e.hint().contains("--yes"), "{}", e.hint());
        assert!(p.writer.is_empty(), "nothing asked when nobody can answer");
        let mut eof = LinePrompt { reader: &b""[..], writer: Vec::new(), interactive: true };
        assert!(guard("prod", Some(&prod()), Action::Deploy, &terminal(false), &mut eof).is_err());
    }

    #[test]
    fn line_prompt_reads_an_answer() {
        let mut p = LinePrompt { reader: &b"yes\n"[..], writer: Vec::new(), interactive: true };
        let c = guard("prod", Some(&prod()), Action::Deploy, &terminal(false), &mut p).unwrap();
        assert_eq!(c.approved, Approved::Prompt);
        assert!(String::from_utf8(p.writer).unwrap().starts_with("environment `prod` requires approval"));
    }

    #[test]
    fn refusals_as_users_read_them() {
        let cases: [(&str, Action, Invocation, Option<&'static str>); 4] = [
            ("wrong environment", Action::Deploy, actions(Some("staging")), None),
            ("no environment claim", Action::Rollback, actions(None), None),
            ("answered no", Action::Deploy, terminal(false), Some("no")),
            ("no terminal", Action::Rollback, terminal(false), None),
        ];
        let text: Vec<String> = cases
            .into_iter()
            .map(|(name, action, inv, answer)| {
                let e =
                    guard("prod", Some(&prod()), action, &inv, &mut Scripted(answer, vec![])).unwrap_err();
                format!("# {name}\n{}", crate::error::Error::from(e).problems()[0])
            })
            .collect();
        insta::assert_snapshot!(text.join("\n\n"));
    }

    #[test]
    fn invocation_from_env() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
        };
        assert_eq!(
            Invocation::from_env(
                &vars(&[("GITHUB_ACTIONS", "true"), ("GITHUB_ACTOR", "octocat")]),
                Some("production"),
                true,
                Some("Octo Cat")
            ),
            Invocation::Actions { environment: Some("production".into()), actor: Some("octocat".into()) }
        );
        assert_eq!(
            Invocation::from_env(&vars(&[("USER", "alice")]), None, false, None),
            Invocation::Terminal { user: "alice".into(), assume_yes: false }
        );
        assert_eq!(
            Invocation::from_env(&vars(&[("USER", "alice")]), None, true, Some("Alice Smith\n")),
            Invocation::Terminal { user: "alice (Alice Smith)".into(), assume_yes: true }
        );
        assert_eq!(
            Invocation::from_env(&vars(&[]), None, false, None),
            Invocation::Terminal { user: "unknown".into(), assume_yes: false }
        );
    }
}
