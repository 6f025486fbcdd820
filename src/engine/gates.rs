//! The health signals that are not the platform's: CloudWatch alarms (`health.alarms`) and
//! HTTP checks (`health.http`), the same on EKS and ECS.
//!
//! Alarms are read through `DescribeAlarms` every poll; a named alarm that does not exist fails
//! the release (a typo must not silently turn a production gate off). HTTP checks tolerate
//! [`Gates::http_failure_limit`] consecutive misses (one blip is not a failed release); the
//! next miss fails it.

use std::collections::HashMap;
use std::time::Duration;

use aws_smithy_types::error::display::DisplayErrorContext;

use crate::config::HttpCheck;
use crate::events::{Event, Sink};
use crate::model::{Failure, Reason};

/// The gates of one environment.
#[derive(Debug, Clone)]
pub struct Gates {
    /// CloudWatch, when the environment names alarms.
    pub cloudwatch: Option<aws_sdk_cloudwatch::Client>,
    pub alarms: Vec<String>,
    pub http_checks: Vec<HttpCheck>,
    pub http: reqwest::Client,
    /// Consecutive failed HTTP samples tolerated.
    pub http_failure_limit: u32,
    /// How often alarms and HTTP checks are sampled.
    pub every: Duration,
}

impl Gates {
    /// No alarms, no HTTP checks.
    pub fn none() -> Self {
        Self {
            cloudwatch: None,
            alarms: Vec::new(),
            http_checks: Vec::new(),
            http: crate::support::http_client(),
            http_failure_limit: 2,
            every: Duration::from_secs(1),
        }
    }

    /// Samples the alarms (always) and, with `http`, the HTTP checks every [`Gates::every`]
    /// for `duration` (a zero duration samples the alarms once). Err at the first failure.
    pub async fn hold(&self, duration: Duration, http: bool, events: &dyn Sink) -> Result<(), Failure> {
        let end = tokio::time::Instant::now() + duration;
        let mut misses = vec![0_u32; self.http_checks.len()];
        let mut api_errors = 0_u32;
        loop {
            match self.alarms_ok().await {
                Ok(()) => api_errors = 0,
                Err(Sampled::Failed(f)) => return Err(f),
                // A throttled call must not roll back a healthy release: tolerated a few times.
                Err(Sampled::Unavailable(why)) => {
                    api_errors += 1;
                    if api_errors > 5 {
                        return Err(Failure::new(None, Reason::Alarm, "CloudWatch", why));
                    }
                    events.emit(&Event::Warning { message: format!("reading the alarms: {why} (retrying)") });
                }
            }
            if http {
                for (check, miss) in self.http_checks.iter().zip(misses.iter_mut()) {
                    match crate::checks::http_check(&self.http, check).await {
                        Ok(()) => *miss = 0,
                        Err(detail) => {
                            *miss += 1;
                            if *miss > self.http_failure_limit {
                                return Err(Failure::new(
                                    None,
                                    Reason::HttpCheck,
                                    format!("GET {}", check.url),
                                    format!("{detail} ({} times in a row)", *miss),
                                ));
                            }
                        }
                    }
                }
            }
            if tokio::time::Instant::now() >= end {
                return Ok(());
            }
            tokio::time::sleep(self.every.min(end.saturating_duration_since(tokio::time::Instant::now())))
                .await;
        }
    }

    async fn alarms_ok(&self) -> Result<(), Sampled> {
        let (Some(cw), false) = (&self.cloudwatch, self.alarms.is_empty()) else { return Ok(()) };
        let out =
            cw.describe_alarms().set_alarm_names(Some(self.alarms.clone())).send().await.map_err(|e| {
                Sampled::Unavailable(format!("DescribeAlarms failed: {}", DisplayErrorContext(&e)))
            })?;
        let mut found: HashMap<String, (bool, String)> = HashMap::new();
        for a in out.metric_alarms() {
            let in_alarm = a.state_value().is_some_and(|s| s.as_str() == "ALARM");
            found.insert(
                a.alarm_name().unwrap_or_default().to_owned(),
                (in_alarm, a.state_reason().unwrap_or_default().to_owned()),
            );
        }
        for a in out.composite_alarms() {
            let in_alarm = a.state_value().is_some_and(|s| s.as_str() == "ALARM");
            found.insert(
                a.alarm_name().unwrap_or_default().to_owned(),
                (in_alarm, a.state_reason().unwrap_or_default().to_owned()),
            );
        }
        for name in &self.alarms {
            match found.get(name) {
                None => {
                    return Err(Sampled::Failed(Failure::new(
                        None,
                        Reason::Alarm,
                        format!("`{name}`"),
                        "no such alarm in this account and region (fix `health.alarms`)",
                    )));
                }
                Some((true, reason)) => {
                    return Err(Sampled::Failed(Failure::new(
                        None,
                        Reason::Alarm,
                        format!("`{name}`"),
                        format!("in ALARM: {reason}"),
                    )));
                }
                Some((false, _)) => {}
            }
        }
        Ok(())
    }
}

enum Sampled {
    Failed(Failure),
    Unavailable(String),
}
