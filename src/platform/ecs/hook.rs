//! Release hooks on ECS: one-off tasks run once per release with the release's image.
//! (Being built: see issue 19.)

use crate::events::Sink;
use crate::model::{Failure, Hook};
use crate::platform::PlatformError;
use crate::release::Release;

use super::EcsPlatform;

/// Runs `hook` to completion (see [`crate::platform::Platform::run_hook`]).
#[allow(clippy::unused_async)] // the placeholder the platform's implementation replaces
pub async fn run(
    _platform: &EcsPlatform,
    _release: &Release,
    hook: &Hook,
    _events: &dyn Sink,
) -> Result<Option<Failure>, PlatformError> {
    Err(PlatformError::setup(
        format!("{} cannot run: hooks are not supported on ECS yet", hook.title()),
        "remove `hooks:` from the service in deployer.yaml",
    ))
}

/// Stops what [`run`] started (see [`crate::platform::Platform::stop_hook`]).
#[allow(clippy::unused_async)]
pub async fn stop(_platform: &EcsPlatform, _release: &Release, _hook: &Hook) -> Result<(), PlatformError> {
    Ok(())
}
