//! HTTP health checks (smoke checks before a blue-green switch, and checks during bake).

use std::time::Duration;

use crate::config::HttpCheck;

/// Runs one check: GET the URL and compare the status. The error says what was seen.
pub async fn http_check(client: &reqwest::Client, check: &HttpCheck) -> Result<(), String> {
    let timeout = check.timeout.map_or(Duration::from_secs(5), |d| d.0);
    match client.get(&check.url).timeout(timeout).send().await {
        Ok(resp) if resp.status().as_u16() == check.expect_status => Ok(()),
        Ok(resp) => Err(format!(
            "GET {} returned {}, expected {}",
            check.url,
            resp.status().as_u16(),
            check.expect_status
        )),
        Err(e) => Err(format!("GET {} failed: {e}", check.url)),
    }
}

/// Runs every check once; the first failure is returned.
pub async fn all_pass(client: &reqwest::Client, checks: &[HttpCheck]) -> Result<(), String> {
    for c in checks {
        http_check(client, c).await?;
    }
    Ok(())
}

/// Repeats the checks every second for `duration`; returns the first failure.
pub async fn keep_passing(
    client: &reqwest::Client,
    checks: &[HttpCheck],
    duration: Duration,
) -> Result<(), String> {
    if checks.is_empty() {
        return Ok(());
    }
    let end = tokio::time::Instant::now() + duration;
    loop {
        all_pass(client, checks).await?;
        if tokio::time::Instant::now() >= end {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
