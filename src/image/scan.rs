//! The scan gate: ECR findings for the exact digest, judged by the environment's policy.
//!
//! [`evaluate`] is the pure policy: `(policy, outcome, today) → GateVerdict`. Limits are per
//! severity (`scan.max`; a severity without a limit is not limited); an ignore entry hides its
//! finding through its `expires` date inclusive, after which the finding counts again and the
//! entry is reported as expired. A scan that does not finish (timeout, or a status such as
//! `FAILED` / `UNSUPPORTED_IMAGE`) fails closed unless `on_timeout: pass`.
//!
//! [`EcrScanner::await_scan`] is the effect: `DescribeImageScanFindings` by `imageDigest`
//! (basic `findings` and enhanced `enhancedFindings`, all pages); `ScanNotFoundException` →
//! one `StartImageScan` (ECR allows one per image per day; `LimitExceededException` means a scan
//! already ran and we keep polling) → poll with backoff until `timeouts.scan`.
//!
//! [`gate`] runs both and turns a refusal into [`Error::GateRefused`] (exit code 4) whose message
//! lists the blocking findings. The returned [`GateReport`] is the evidence promotion asks for.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Digest, Error};
use crate::config::values::Date;
use crate::config::{OnTimeout, ResolvedScan, ScanIgnore};

/// Finding severity, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Informational,
    Undefined,
}

impl Severity {
    /// ECR's names; anything unknown (`UNTRIAGED`, future values) is `Undefined`.
    pub fn parse(s: &str) -> Self {
        match s.to_ascii_uppercase().as_str() {
            "CRITICAL" => Self::Critical,
            "HIGH" => Self::High,
            "MEDIUM" => Self::Medium,
            "LOW" => Self::Low,
            "INFORMATIONAL" => Self::Informational,
            _ => Self::Undefined,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
            Self::Informational => "informational",
            Self::Undefined => "undefined",
        }
    }
}

/// One vulnerability finding (basic or enhanced scanning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// `CVE-…` (basic: `name`; enhanced: `packageVulnerabilityDetails.vulnerabilityId`).
    pub id: String,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_in: Option<String>,
    /// Enhanced scanning's `fixAvailable` (`YES`, `NO`, `PARTIAL`); basic scanning does not know.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix_available: Option<String>,
}

/// What the scanner produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum ScanOutcome {
    /// Findings are available (`COMPLETE`, or `ACTIVE` for continuous enhanced scanning).
    Complete { findings: Vec<Finding> },
    /// Still not finished when the time was up.
    TimedOut { last_status: String, waited_secs: u64 },
    /// The scanner gave up (`FAILED`, `UNSUPPORTED_IMAGE`, `FINDINGS_UNAVAILABLE`, …).
    Unavailable { status: String, description: String },
}

/// A limit that was exceeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exceeded {
    pub severity: Severity,
    pub count: u32,
    pub max: u32,
}

/// A finding hidden by an ignore entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ignored {
    pub finding: Finding,
    pub reason: String,
    pub expires: Date,
}

/// The gate's decision and everything that explains it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateVerdict {
    pub pass: bool,
    /// Counted findings per severity (after ignores).
    pub counts: BTreeMap<Severity, u32>,
    pub exceeded: Vec<Exceeded>,
    /// Counted findings of the severities over their limit, most severe first.
    pub blocking: Vec<Finding>,
    pub ignored: Vec<Ignored>,
    /// Ignore entries past their date: no longer applied.
    pub expired_ignores: Vec<ScanIgnore>,
    /// Why the scan did not decide (timeout / unavailable), when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undecided: Option<String>,
}

fn limit_of(policy: &ResolvedScan, s: Severity) -> Option<u32> {
    match s {
        Severity::Critical => policy.max.critical,
        Severity::High => policy.max.high,
        Severity::Medium => policy.max.medium,
        Severity::Low => policy.max.low,
        Severity::Informational | Severity::Undefined => None,
    }
}

/// The pure gate policy.
pub fn evaluate(policy: &ResolvedScan, outcome: &ScanOutcome, today: Date) -> GateVerdict {
    let expired_ignores: Vec<ScanIgnore> =
        policy.ignore.iter().filter(|i| i.expires < today).cloned().collect();
    let findings = match outcome {
        ScanOutcome::Complete { findings } => findings,
        ScanOutcome::TimedOut { last_status, waited_secs } => {
            return undecided(
                policy,
                expired_ignores,
                format!("the scan was still {last_status} after {waited_secs}s"),
            );
        }
        ScanOutcome::Unavailable { status, description } => {
            let why =
                if description.is_empty() { status.clone() } else { format!("{status}: {description}") };
            return undecided(policy, expired_ignores, format!("the scan produced no findings ({why})"));
        }
    };
    let mut counts = BTreeMap::new();
    let mut counted = Vec::new();
    let mut ignored = Vec::new();
    for f in findings {
        if let Some(i) = policy.ignore.iter().find(|i| i.id.eq_ignore_ascii_case(&f.id) && i.expires >= today)
        {
            ignored.push(Ignored { finding: f.clone(), reason: i.reason.clone(), expires: i.expires });
        } else {
            *counts.entry(f.severity).or_insert(0) += 1;
            counted.push(f.clone());
        }
    }
    let exceeded: Vec<Exceeded> = counts
        .iter()
        .filter_map(|(&severity, &count)| {
            let max = limit_of(policy, severity)?;
            (count > max).then_some(Exceeded { severity, count, max })
        })
        .collect();
    let mut blocking: Vec<Finding> =
        counted.into_iter().filter(|f| exceeded.iter().any(|e| e.severity == f.severity)).collect();
    blocking.sort_by(|a, b| a.severity.cmp(&b.severity).then_with(|| a.id.cmp(&b.id)));
    GateVerdict {
        pass: exceeded.is_empty(),
        counts,
        exceeded,
        blocking,
        ignored,
        expired_ignores,
        undecided: None,
    }
}

fn undecided(policy: &ResolvedScan, expired_ignores: Vec<ScanIgnore>, why: String) -> GateVerdict {
    GateVerdict {
        pass: policy.on_timeout == OnTimeout::Pass,
        counts: BTreeMap::new(),
        exceeded: Vec::new(),
        blocking: Vec::new(),
        ignored: Vec::new(),
        expired_ignores,
        undecided: Some(why),
    }
}

/// The gate's record for one image in one environment: the evidence promotion checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateReport {
    pub environment: String,
    pub repository: String,
    pub digest: Digest,
    pub verdict: GateVerdict,
}

impl GateReport {
    /// [`Error::GateRefused`] when the verdict is a refusal.
    pub fn refusal(&self, policy: &ResolvedScan) -> Option<Error> {
        (!self.verdict.pass).then(|| Error::GateRefused {
            reference: format!("{}@{}", self.repository, self.digest),
            environment: self.environment.clone(),
            summary: self.summary(policy),
        })
    }

    /// What a person reads: the decision, the counts against the limits, and each finding that
    /// blocks, is ignored, or whose ignore entry expired.
    pub fn summary(&self, policy: &ResolvedScan) -> String {
        let v = &self.verdict;
        let mut s = String::new();
        let decision = if v.pass { "passed" } else { "REFUSED" };
        let _ = writeln!(
            s,
            "scan gate {decision} for `{}`: {}@{}",
            self.environment, self.repository, self.digest
        );
        if let Some(why) = &v.undecided {
            let rule = match policy.on_timeout {
                OnTimeout::Fail => "on_timeout: fail (fail closed)",
                OnTimeout::Pass => "on_timeout: pass",
            };
            let _ = writeln!(s, "  {why}; {rule}");
        } else {
            let counts: Vec<String> = v.counts.iter().map(|(sev, n)| format!("{n} {}", sev.name())).collect();
            let limits: Vec<String> = [Severity::Critical, Severity::High, Severity::Medium, Severity::Low]
                .into_iter()
                .filter_map(|sev| limit_of(policy, sev).map(|m| format!("{} ≤ {m}", sev.name())))
                .collect();
            let _ = writeln!(
                s,
                "  findings: {} (limits: {})",
                if counts.is_empty() { "none".to_owned() } else { counts.join(", ") },
                if limits.is_empty() { "none".to_owned() } else { limits.join(", ") }
            );
            if !v.exceeded.is_empty() {
                let over: Vec<String> = v
                    .exceeded
                    .iter()
                    .map(|e| format!("{} {} > {}", e.count, e.severity.name(), e.max))
                    .collect();
                let _ = writeln!(s, "  over the limit: {}", over.join(", "));
            }
        }
        if !v.blocking.is_empty() {
            let _ = writeln!(s, "  blocking findings:");
            for f in &v.blocking {
                let _ = writeln!(
                    s,
                    "    {:<9} {}{}",
                    f.severity.name().to_uppercase(),
                    f.id,
                    describe_package(f)
                );
            }
        }
        if !v.ignored.is_empty() {
            let _ = writeln!(s, "  ignored:");
            for i in &v.ignored {
                let _ = writeln!(s, "    {} until {}: {}", i.finding.id, i.expires, i.reason);
            }
        }
        if !v.expired_ignores.is_empty() {
            let _ = writeln!(s, "  expired ignore entries (no longer applied):");
            for i in &v.expired_ignores {
                let _ = writeln!(s, "    {} expired {}: {}", i.id, i.expires, i.reason);
            }
        }
        s.trim_end().to_owned()
    }
}

fn describe_package(f: &Finding) -> String {
    match (&f.package, &f.fixed_in) {
        (Some(p), Some(v)) => format!("  {p} (fixed in {v})"),
        (Some(p), None) if f.fix_available.as_deref() == Some("NO") => format!("  {p} (no fix available)"),
        (Some(p), None) => format!("  {p}"),
        (None, _) => String::new(),
    }
}

/// Polls ECR image scans.
#[derive(Debug, Clone)]
pub struct EcrScanner {
    pub client: aws_sdk_ecr::Client,
    pub registry_id: Option<String>,
    /// First wait between polls; doubles up to `max_poll`.
    pub poll: Duration,
    pub max_poll: Duration,
}

impl EcrScanner {
    pub fn new(client: aws_sdk_ecr::Client) -> Self {
        Self { client, registry_id: None, poll: Duration::from_secs(2), max_poll: Duration::from_secs(15) }
    }

    /// Waits for the scan of `repository@digest` (starting one if none exists) up to `timeout`.
    pub async fn await_scan(
        &self,
        repository: &str,
        digest: &Digest,
        timeout: Duration,
    ) -> Result<ScanOutcome, Error> {
        let started_at = Instant::now();
        let deadline = started_at + timeout;
        let mut wait = self.poll;
        let mut started = false;
        let mut last_status = "not started".to_owned();
        loop {
            match self.describe(repository, digest).await? {
                Described::NotFound if !started => {
                    started = true;
                    self.start(repository, digest).await?;
                    last_status = "IN_PROGRESS".into();
                }
                Described::NotFound => {}
                Described::Status { status, description, findings } => match status.as_str() {
                    "COMPLETE" | "ACTIVE" => return Ok(ScanOutcome::Complete { findings }),
                    "IN_PROGRESS" | "PENDING" => last_status = status,
                    _ => return Ok(ScanOutcome::Unavailable { status, description }),
                },
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(ScanOutcome::TimedOut { last_status, waited_secs: timeout.as_secs() });
            }
            tokio::time::sleep(wait.min(deadline - now)).await;
            wait = (wait * 2).min(self.max_poll);
        }
    }

    async fn start(&self, repository: &str, digest: &Digest) -> Result<(), Error> {
        let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(digest.as_str()).build();
        let mut req = self.client.start_image_scan().repository_name(repository).image_id(id);
        if let Some(r) = &self.registry_id {
            req = req.registry_id(r);
        }
        match req.send().await {
            Ok(_) => Ok(()),
            // A scan already ran today (scan on push counts): its findings will show up.
            Err(e) if e.as_service_error().is_some_and(aws_sdk_ecr::operation::start_image_scan::StartImageScanError::is_limit_exceeded_exception) => Ok(()),
            Err(e) => Err(ecr_error("StartImageScan", &e)),
        }
    }

    async fn describe(&self, repository: &str, digest: &Digest) -> Result<Described, Error> {
        let mut findings = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(digest.as_str()).build();
            let mut req = self
                .client
                .describe_image_scan_findings()
                .repository_name(repository)
                .image_id(id)
                .set_next_token(next.take());
            if let Some(r) = &self.registry_id {
                req = req.registry_id(r);
            }
            let out = match req.send().await {
                Ok(o) => o,
                Err(e) if e.as_service_error().is_some_and(aws_sdk_ecr::operation::describe_image_scan_findings::DescribeImageScanFindingsError::is_scan_not_found_exception) => {
                    return Ok(Described::NotFound);
                }
                Err(e) => return Err(ecr_error("DescribeImageScanFindings", &e)),
            };
            let status = out
                .image_scan_status()
                .and_then(|s| s.status())
                .map_or("UNKNOWN", aws_sdk_ecr::types::ScanStatus::as_str)
                .to_owned();
            let description =
                out.image_scan_status().and_then(|s| s.description()).unwrap_or_default().to_owned();
            if let Some(f) = out.image_scan_findings() {
                findings.extend(f.findings().iter().map(|x| Finding {
                    id: x.name().unwrap_or("unnamed").to_owned(),
                    severity: Severity::parse(
                        x.severity().map_or("UNDEFINED", aws_sdk_ecr::types::FindingSeverity::as_str),
                    ),
                    package: attribute(x.attributes(), "package_name"),
                    fixed_in: None,
                    fix_available: None,
                }));
                findings.extend(f.enhanced_findings().iter().map(|x| {
                    let details = x.package_vulnerability_details();
                    let pkg = details.and_then(|d| d.vulnerable_packages().first());
                    Finding {
                        id: details
                            .and_then(|d| d.vulnerability_id())
                            .or(x.title())
                            .unwrap_or("unnamed")
                            .to_owned(),
                        severity: Severity::parse(x.severity().unwrap_or("UNDEFINED")),
                        package: pkg.map(|p| match (p.name(), p.version()) {
                            (Some(n), Some(v)) => format!("{n} {v}"),
                            (n, _) => n.unwrap_or("unknown package").to_owned(),
                        }),
                        fixed_in: pkg.and_then(|p| p.fixed_in_version()).map(str::to_owned),
                        fix_available: x.fix_available().map(str::to_owned),
                    }
                }));
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => return Ok(Described::Status { status, description, findings }),
            }
        }
    }
}

enum Described {
    NotFound,
    Status { status: String, description: String, findings: Vec<Finding> },
}

fn attribute(attrs: &[aws_sdk_ecr::types::Attribute], key: &str) -> Option<String> {
    attrs.iter().find(|a| a.key() == key).and_then(|a| a.value()).map(str::to_owned)
}

fn ecr_error<E: std::error::Error + 'static>(operation: &str, e: &E) -> Error {
    Error::Ecr {
        operation: operation.to_owned(),
        message: aws_smithy_types::error::display::DisplayErrorContext(e).to_string(),
    }
}

/// Waits for the scan, evaluates it, and refuses with [`Error::GateRefused`] when it fails.
pub async fn gate(
    scanner: &EcrScanner,
    policy: &ResolvedScan,
    environment: &str,
    repository: &str,
    digest: &Digest,
    timeout: Duration,
    today: Date,
) -> Result<GateReport, Error> {
    let report = judge(scanner, policy, environment, repository, digest, timeout, today).await?;
    match report.refusal(policy) {
        None => Ok(report),
        Some(refused) => Err(refused),
    }
}

/// Waits for the scan and evaluates it; the report whether it passes or not (a release gate
/// reports every image before it refuses).
pub async fn judge(
    scanner: &EcrScanner,
    policy: &ResolvedScan,
    environment: &str,
    repository: &str,
    digest: &Digest,
    timeout: Duration,
    today: Date,
) -> Result<GateReport, Error> {
    let outcome = scanner.await_scan(repository, digest, timeout).await?;
    Ok(GateReport {
        environment: environment.to_owned(),
        repository: repository.to_owned(),
        digest: digest.clone(),
        verdict: evaluate(policy, &outcome, today),
    })
}

/// Today's date (UTC), for [`evaluate`].
pub fn today() -> Date {
    Date(time::OffsetDateTime::now_utc().date())
}

impl GateReport {
    /// The report form of the gate's result (job summary, PR comment, Slack).
    pub fn event(&self, service: &str) -> crate::events::ScanSummary {
        let name = |s: Severity| {
            serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
        };
        let finding = |f: &Finding| crate::events::Finding {
            id: f.id.clone(),
            severity: name(f.severity),
            package: f.package.clone(),
            fixed_in: f.fixed_in.clone(),
        };
        let v = &self.verdict;
        crate::events::ScanSummary {
            service: service.to_owned(),
            digest: self.digest.to_string(),
            counts: v.counts.iter().map(|(s, n)| (name(*s), *n)).collect(),
            passed: v.pass,
            blocking: v.blocking.iter().map(finding).collect(),
            ignored: v
                .ignored
                .iter()
                .map(|i| crate::events::IgnoredFinding {
                    id: i.finding.id.clone(),
                    reason: i.reason.clone(),
                    expires: i.expires.to_string(),
                })
                .collect(),
            expired_ignores: v
                .expired_ignores
                .iter()
                .map(|i| crate::events::IgnoredFinding {
                    id: i.id.clone(),
                    reason: i.reason.clone(),
                    expires: i.expires.to_string(),
                })
                .collect(),
            note: v.undecided.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SeverityLimits;

    fn date(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    fn f(id: &str, severity: Severity) -> Finding {
        Finding {
            id: id.into(),
            severity,
            package: Some("openssl 3.0.1".into()),
            fixed_in: Some("3.0.9".into()),
            fix_available: Some("YES".into()),
        }
    }

    fn policy(max: SeverityLimits, ignore: Vec<ScanIgnore>, on_timeout: OnTimeout) -> ResolvedScan {
        ResolvedScan { max, ignore, on_timeout }
    }

    fn ignore(id: &str, expires: &str) -> ScanIgnore {
        ScanIgnore { id: id.into(), reason: "not reachable from the network".into(), expires: date(expires) }
    }

    fn complete(findings: Vec<Finding>) -> ScanOutcome {
        ScanOutcome::Complete { findings }
    }

    const TODAY: &str = "2026-11-23";

    #[test]
    fn thresholds_are_per_severity_and_inclusive() {
        let p = policy(
            SeverityLimits { critical: Some(0), high: Some(1), ..Default::default() },
            vec![],
            OnTimeout::Fail,
        );
        let one_high = complete(vec![
            f("CVE-1", Severity::High),
            f("CVE-2", Severity::Medium),
            f("CVE-3", Severity::Low),
        ]);
        let v = evaluate(&p, &one_high, date(TODAY));
        assert!(v.pass, "{v:?}");
        assert_eq!(v.counts.get(&Severity::Medium), Some(&1));

        let two_high_one_critical = complete(vec![
            f("CVE-1", Severity::High),
            f("CVE-4", Severity::High),
            f("CVE-9", Severity::Critical),
            f("CVE-2", Severity::Medium),
        ]);
        let v = evaluate(&p, &two_high_one_critical, date(TODAY));
        assert!(!v.pass);
        assert_eq!(
            v.exceeded,
            vec![
                Exceeded { severity: Severity::Critical, count: 1, max: 0 },
                Exceeded { severity: Severity::High, count: 2, max: 1 }
            ]
        );
        let ids: Vec<&str> = v.blocking.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["CVE-9", "CVE-1", "CVE-4"], "medium is unlimited, so not blocking");
    }

    #[test]
    fn ignores_apply_through_their_expiry_date_then_stop_and_are_reported() {
        let max = SeverityLimits { critical: Some(0), ..Default::default() };
        let findings = complete(vec![f("CVE-2024-1", Severity::Critical)]);
        let valid = policy(max.clone(), vec![ignore("cve-2024-1", TODAY)], OnTimeout::Fail);
        let v = evaluate(&valid, &findings, date(TODAY));
        assert!(v.pass);
        assert_eq!(v.ignored.len(), 1);
        assert!(v.expired_ignores.is_empty());

        let v = evaluate(&valid, &findings, date("2026-11-24"));
        assert!(!v.pass, "the day after expiry the finding counts again");
        assert!(v.ignored.is_empty());
        assert_eq!(v.expired_ignores.len(), 1);
        assert_eq!(v.blocking[0].id, "CVE-2024-1");
    }

    #[test]
    fn timeouts_fail_closed_unless_configured_to_pass() {
        let out = ScanOutcome::TimedOut { last_status: "IN_PROGRESS".into(), waited_secs: 600 };
        let closed = policy(SeverityLimits::default(), vec![], OnTimeout::Fail);
        let v = evaluate(&closed, &out, date(TODAY));
        assert!(!v.pass);
        assert!(v.undecided.as_deref().unwrap().contains("IN_PROGRESS"));
        let open = policy(SeverityLimits::default(), vec![], OnTimeout::Pass);
        assert!(evaluate(&open, &out, date(TODAY)).pass);
        let failed =
            ScanOutcome::Unavailable { status: "UNSUPPORTED_IMAGE".into(), description: "no OS".into() };
        assert!(!evaluate(&closed, &failed, date(TODAY)).pass);
    }

    #[test]
    fn the_same_findings_pass_dev_and_fail_prod() {
        let findings = complete(vec![f("CVE-1", Severity::High)]);
        let dev = policy(SeverityLimits { critical: Some(0), ..Default::default() }, vec![], OnTimeout::Fail);
        let prod = policy(
            SeverityLimits { critical: Some(0), high: Some(0), ..Default::default() },
            vec![],
            OnTimeout::Fail,
        );
        assert!(evaluate(&dev, &findings, date(TODAY)).pass);
        assert!(!evaluate(&prod, &findings, date(TODAY)).pass);
    }

    #[test]
    fn gate_reports_survive_a_round_trip_through_json() {
        let p = policy(
            SeverityLimits { high: Some(0), ..Default::default() },
            vec![ignore("CVE-2", "2026-01-01")],
            OnTimeout::Fail,
        );
        let report = GateReport {
            environment: "dev".into(),
            repository: "shop/user".into(),
            digest: Digest::of(b"m"),
            verdict: evaluate(
                &p,
                &complete(vec![f("CVE-1", Severity::High), f("CVE-2", Severity::Low)]),
                date(TODAY),
            ),
        };
        let json = serde_json::to_string(&report).unwrap();
        let back: GateReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back.summary(&p), report.summary(&p));
        assert!(!back.verdict.pass);
    }

    #[test]
    fn unknown_severities_are_never_limited() {
        assert_eq!(Severity::parse("UNTRIAGED"), Severity::Undefined);
        let p = policy(
            SeverityLimits { critical: Some(0), high: Some(0), medium: Some(0), low: Some(0) },
            vec![],
            OnTimeout::Fail,
        );
        assert!(
            evaluate(
                &p,
                &complete(vec![f("X", Severity::Undefined), f("Y", Severity::Informational)]),
                date(TODAY)
            )
            .pass
        );
    }
}
