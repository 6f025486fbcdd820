//! The top-level error: one enum, one exit code per kind, and a hint for every message.
//!
//! Module errors (identity, images, platforms, the engine) implement [`Diagnostic`] — their exit
//! code and hint — and travel inside [`Error::Module`] with their source chain intact, so
//! `-v` diagnostics and tests can still reach the typed error underneath. One mapping, asked
//! through one trait, holds for every command and both platforms.
//!
//! Exit codes are part of the interface (documented in README.md and tested):
//! 0 success · 1 internal · 2 usage/config · 3 auth/identity · 4 scan gate refused ·
//! 5 deploy failed and was rolled back · 6 rollback failed (manual action needed) · 7 lock held.

use std::fmt;

use crate::config::{ConfigError, ConfigErrors};

/// Process exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[repr(u8)]
pub enum ExitCode {
    Success = 0,
    Internal = 1,
    Config = 2,
    Auth = 3,
    ScanGate = 4,
    RolledBack = 5,
    RollbackFailed = 6,
    LockHeld = 7,
    /// A pre-deploy hook failed: the release stopped before anything was applied.
    HookFailed = 8,
    /// Cancelled by SIGINT/SIGTERM (128 + SIGINT, as shells report it).
    Cancelled = 130,
}

impl ExitCode {
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// Short machine-readable name (JSON output, GitHub `result` output).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Internal => "internal-error",
            Self::Config => "config-error",
            Self::Auth => "auth-error",
            Self::ScanGate => "scan-gate-refused",
            Self::RolledBack => "rolled-back",
            Self::RollbackFailed => "rollback-failed",
            Self::LockHeld => "lock-held",
            Self::HookFailed => "hook-failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// What every error of ours tells users besides its message.
pub trait Diagnostic: std::error::Error + Send + Sync + 'static {
    /// The documented exit code the command ends with.
    fn exit_code(&self) -> ExitCode;
    /// How to fix it, in one sentence.
    fn hint(&self) -> String;
    /// The configuration file the problem is about, when there is one.
    fn file(&self) -> Option<&std::path::Path> {
        None
    }
}

/// A module's error, kept typed (see [`Error::module`]) with its own source chain.
pub struct ModuleError(Box<dyn Diagnostic>);

impl ModuleError {
    pub fn new(e: impl Diagnostic) -> Self {
        Self(Box::new(e))
    }
}

impl fmt::Debug for ModuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ModuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for ModuleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Everything that can stop a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// A module's own typed error (identity, images, platform, engine).
    #[error(transparent)]
    Module(ModuleError),
    /// A command line that names something that does not exist (e.g. `rollback --to` an
    /// unknown release): exit 2 like a configuration error, found before any lock is taken.
    #[error("{message}")]
    Usage { message: String, hint: String },
    #[error("{message}")]
    Auth { message: String, hint: String },
    #[error("{message}")]
    ScanGate { message: String, hint: String },
    #[error("{message}")]
    RolledBack { message: String, hint: String },
    #[error("{message}")]
    RollbackFailed { message: String, hint: String },
    #[error("{message}")]
    LockHeld { message: String, hint: String },
    /// A pre-deploy hook failed; nothing of the release was applied.
    #[error("{message}")]
    HookFailed { message: String, hint: String },
    #[error("{message}")]
    Internal { message: String, hint: String },
    /// Stopped by SIGINT/SIGTERM (the record says `interrupted` or `rolled-back`).
    #[error("{message}")]
    Cancelled { message: String, hint: String },
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Self::Config(e.into())
    }
}

impl<E: Diagnostic> From<E> for Error {
    fn from(e: E) -> Self {
        Self::Module(ModuleError::new(e))
    }
}

impl Error {
    /// The typed module error underneath, if it is an `E`.
    pub fn module<E: Diagnostic>(&self) -> Option<&E> {
        match self {
            Self::Module(m) => (&*m.0 as &dyn std::error::Error).downcast_ref::<E>(),
            _ => None,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Module(m) => m.0.exit_code(),
            Self::Config(_) | Self::Usage { .. } => ExitCode::Config,
            Self::Auth { .. } => ExitCode::Auth,
            Self::ScanGate { .. } => ExitCode::ScanGate,
            Self::RolledBack { .. } => ExitCode::RolledBack,
            Self::RollbackFailed { .. } => ExitCode::RollbackFailed,
            Self::LockHeld { .. } => ExitCode::LockHeld,
            Self::HookFailed { .. } => ExitCode::HookFailed,
            Self::Internal { .. } => ExitCode::Internal,
            Self::Cancelled { .. } => ExitCode::Cancelled,
        }
    }

    /// Internal errors are bugs or unexpected environments; the hint says where to report.
    pub fn internal(message: impl fmt::Display) -> Self {
        Self::Internal {
            message: message.to_string(),
            hint: "this is unexpected; rerun with -v and report it with the output".to_owned(),
        }
    }

    pub fn auth(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Auth { message: message.into(), hint: hint.into() }
    }

    /// Each problem as (position or empty, message, hint).
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            Self::Module(m) => {
                let file = m.0.file().map(|f| f.display().to_string());
                vec![Problem {
                    position: file.clone(),
                    file,
                    line: None,
                    column: None,
                    message: m.to_string(),
                    hint: Some(m.0.hint()),
                }]
            }
            Self::Config(errs) => errs
                .0
                .iter()
                .map(|e| Problem {
                    position: Some(e.position()),
                    file: Some(e.file.display().to_string()),
                    line: e.line,
                    column: e.column,
                    message: e.message.clone(),
                    hint: e.hint.clone(),
                })
                .collect(),
            Self::Auth { message, hint }
            | Self::Usage { message, hint }
            | Self::ScanGate { message, hint }
            | Self::RolledBack { message, hint }
            | Self::RollbackFailed { message, hint }
            | Self::LockHeld { message, hint }
            | Self::HookFailed { message, hint }
            | Self::Internal { message, hint }
            | Self::Cancelled { message, hint } => vec![Problem {
                position: None,
                file: None,
                line: None,
                column: None,
                message: message.clone(),
                hint: Some(hint.clone()),
            }],
        }
    }
}

/// One problem as users read it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Problem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u64>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.position {
            Some(p) => write!(f, "error: {p}: {}", self.message)?,
            None => write!(f, "error: {}", self.message)?,
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}
