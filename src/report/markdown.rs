//! Markdown views of a [`RunState`]: the sticky pull-request comment and the job summary.
//!
//! Both read top-down the way a developer on a PR asks: did it work, what runs now, and if
//! not, what exactly failed and what was done about it. Sections are added in that order and
//! the later ones (details, timings) are the first left out when a size limit is near, so a
//! huge scan report can never push the verdict out of the comment.

use std::fmt::Write as _;

use super::state::{RunState, ServiceState, Stage, short_digest};
use crate::events::{HealthFailure, Outcome, Verdict};

/// GitHub rejects issue comments longer than this (422).
pub const COMMENT_LIMIT: usize = 65_536;
/// GitHub drops step summaries larger than this (1 MiB).
pub const SUMMARY_LIMIT: usize = 1024 * 1024;

/// Links that come from the CI context rather than from events.
#[derive(Debug, Clone, Default)]
pub struct Links {
    /// `$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID`.
    pub log_url: Option<String>,
    /// `$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/commit/` (the sha is appended).
    pub commit_base: Option<String>,
}

/// The hidden marker that identifies the sticky comment of one environment.
pub fn marker(environment: &str) -> String {
    format!("<!-- deployer:{environment} -->")
}

/// One line saying where the release stands, with an emoji for scanning a channel or a PR.
pub fn headline(state: &RunState) -> String {
    let product = state.product.as_deref().unwrap_or("deploy");
    let env = state.environment.as_deref().unwrap_or("?");
    let phase = state.current_phase.map_or_else(String::new, |p| format!(" ({})", p.title()));
    match state.stage() {
        Stage::Done(Outcome::Succeeded) => format!("✅ {product} deployed to {env}"),
        Stage::Done(Outcome::FailedRolledBack) => {
            match state.rollback.as_ref().and_then(|r| r.to_release.as_deref()) {
                Some(to) => format!("↩️ {product}: deploy to {env} failed and was rolled back to {to}"),
                None => format!("↩️ {product}: deploy to {env} failed and was rolled back"),
            }
        }
        Stage::Done(Outcome::RollbackFailed) => {
            format!("🚨 {product}: deploy to {env} failed and the rollback failed: manual action needed")
        }
        Stage::Done(Outcome::RefusedByGate) => {
            format!("⛔ {product}: deploy to {env} refused by the gate; nothing changed")
        }
        Stage::Done(Outcome::Failed) => format!("❌ {product}: deploy to {env} failed"),
        Stage::Done(Outcome::Interrupted) => {
            match state.rollback.as_ref().filter(|r| r.ok == Some(true)).and_then(|r| r.to_release.as_deref())
            {
                Some(to) => format!("⏹️ {product}: deploy to {env} was cancelled and rolled back to {to}"),
                None => format!(
                    "⏹️ {product}: deploy to {env} was cancelled before it ended; `deployer status` shows what runs"
                ),
            }
        }
        Stage::RollingBack => match state.rollback.as_ref().and_then(|r| r.to_release.as_deref()) {
            Some(to) => format!("↩️ {product}: rolling {env} back to {to}"),
            None => format!("↩️ {product}: rolling {env} back"),
        },
        Stage::InProgress => format!("🚀 {product}: deploying to {env}{phase}"),
        Stage::Queued => format!("⏳ {product}: preparing the deploy to {env}{phase}"),
        Stage::NotStarted => format!("⏳ {product}: planning the deploy to {env}"),
    }
}

/// The sticky PR comment (marker first, ≤ [`COMMENT_LIMIT`]).
pub fn pr_comment(state: &RunState, links: &Links) -> String {
    let env = state.environment.as_deref().unwrap_or("unknown");
    let mut sections = vec![format!("{}\n{}", marker(env), head(state, links, "###"))];
    sections.extend(body_sections(state, false));
    assemble(&sections, COMMENT_LIMIT, links)
}

/// The job summary section for this run (≤ [`SUMMARY_LIMIT`], minus what is already in the file).
pub fn job_summary(state: &RunState, links: &Links, limit: usize) -> String {
    let mut sections = vec![head(state, links, "##")];
    sections.extend(body_sections(state, true));
    assemble(&sections, limit, links)
}

fn head(state: &RunState, links: &Links, level: &str) -> String {
    let mut s = format!("{level} {}\n\n", headline(state));
    let mut facts = Vec::new();
    if let Some(r) = &state.release_id {
        facts.push(format!("release `{r}`"));
    }
    if let Some(sha) = &state.git_sha {
        let short = &sha[..sha.len().min(7)];
        facts.push(match &links.commit_base {
            Some(base) => format!("commit [`{short}`]({base}{sha})"),
            None => format!("commit `{short}`"),
        });
    }
    if let Some(st) = &state.strategy {
        facts.push(format!("strategy {st}"));
    }
    if matches!(state.stage(), Stage::Done(_)) && state.elapsed_ms() > 0 {
        facts.push(format!("took {}", human_ms(state.elapsed_ms())));
    }
    if !facts.is_empty() {
        let _ = writeln!(s, "{}\n", facts.join(" · "));
    }
    let mut links_line = Vec::new();
    if let Some(u) = &state.environment_url {
        links_line.push(format!("[Open the environment]({u})"));
    }
    if let Some(u) = &links.log_url {
        links_line.push(format!("[Run log]({u})"));
    }
    if !links_line.is_empty() {
        let _ = writeln!(s, "{}\n", links_line.join(" · "));
    }
    // Sections are joined with a blank line; end with exactly one newline.
    let trimmed = s.trim_end().len();
    s.truncate(trimmed);
    s.push('\n');
    s
}

fn body_sections(state: &RunState, gantt: bool) -> Vec<String> {
    let mut out = Vec::new();
    if !state.services.is_empty() {
        out.push(services_table(state));
    }
    if let Some(h) = hooks(state) {
        out.push(h);
    }
    if let Some(f) = failure(state) {
        out.push(f);
    }
    if let Some(r) = rollback(state) {
        out.push(r);
    }
    if let Some(p) = problems(state) {
        out.push(p);
    }
    if let Some(d) = scan_details(state) {
        out.push(d);
    }
    if gantt && !state.phases.is_empty() {
        out.push(gantt_chart(state));
    }
    if !state.phases.is_empty() {
        out.push(timings(state));
    }
    if !state.warnings.is_empty() {
        let mut s = String::from("<details><summary>Warnings</summary>\n\n");
        for w in &state.warnings {
            let _ = writeln!(s, "- {}", one_line(w));
        }
        s.push_str("\n</details>\n");
        out.push(s);
    }
    out
}

fn services_table(state: &RunState) -> String {
    // The change column comes from the plan; without one it would be a column of dashes.
    let with_change = state.services.iter().any(|s| s.change.is_some());
    let mut s = if with_change {
        String::from("| Service | Change | Image | Scan | Health |\n|---|---|---|---|---|\n")
    } else {
        String::from("| Service | Image | Scan | Health |\n|---|---|---|---|\n")
    };
    for svc in &state.services {
        let change = if with_change {
            format!(" {} |", svc.change.as_deref().map_or_else(|| "–".to_owned(), cell))
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "| `{}` |{change} {} | {} | {} |",
            svc.name,
            svc.digest.as_deref().map_or_else(|| "–".to_owned(), |d| format!("`{}`", short_digest(d))),
            scan_cell(svc),
            health_cell(state, svc),
        );
    }
    s
}

/// One severity line: `2 critical · 1 high` (most severe first; zero counts left out).
pub fn severity_counts(counts: &std::collections::BTreeMap<String, u32>) -> String {
    const ORDER: [&str; 6] = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED"];
    let mut parts: Vec<String> = ORDER
        .iter()
        .filter_map(|sev| counts.get(*sev).filter(|n| **n > 0).map(|n| format!("{n} {}", sev.to_lowercase())))
        .collect();
    for (sev, n) in counts {
        if *n > 0 && !ORDER.contains(&sev.as_str()) {
            parts.push(format!("{n} {}", sev.to_lowercase()));
        }
    }
    if parts.is_empty() { "no findings".to_owned() } else { parts.join(" · ") }
}

fn scan_cell(svc: &ServiceState) -> String {
    let Some(scan) = &svc.scan else { return "–".to_owned() };
    let mut s = if scan.passed {
        format!("✅ {}", severity_counts(&scan.counts))
    } else {
        format!("⛔ {}", severity_counts(&scan.counts))
    };
    if !scan.expired_ignores.is_empty() {
        let _ = write!(s, " · {} expired ignore(s)", scan.expired_ignores.len());
    }
    if scan.note.is_some() {
        s.push_str(" ⚠️");
    }
    s
}

/// A short health cell: the verdict, or progress while rolling out.
pub fn health_text(state: &RunState, svc: &ServiceState) -> String {
    match &svc.health {
        Some(Verdict::Healthy) => "✅ healthy".to_owned(),
        Some(Verdict::Failed(f)) => format!("❌ {}", f.reason),
        None => match (&svc.progress, state.stage()) {
            (Some(p), Stage::InProgress | Stage::Queued) => match (p.ready, p.desired) {
                (Some(r), Some(d)) => format!("⏳ {r}/{d} ready"),
                _ => format!("⏳ {}", p.message),
            },
            (_, Stage::Done(_)) => "not checked".to_owned(),
            _ => "⏳ pending".to_owned(),
        },
    }
}

fn health_cell(state: &RunState, svc: &ServiceState) -> String {
    cell(&health_text(state, svc))
}

/// The failure explained in one paragraph: which workload, pod, container, why.
pub fn failure_text(state: &RunState) -> Option<String> {
    let (service, f) = state.first_failure()?;
    let mut where_ = vec![format!("`{}`", f.workload)];
    if let Some(p) = &f.pod {
        where_.push(format!("pod `{p}`"));
    }
    if let Some(c) = &f.container {
        where_.push(format!("container `{c}`"));
    }
    let mut s = format!("`{service}` is unhealthy: {} is **{}**", where_.join(", "), f.reason);
    if let Some(n) = f.restart_count {
        let _ = write!(s, " after {n} restart{}", if n == 1 { "" } else { "s" });
    }
    s.push('.');
    Some((s, f.message.clone())).map(|(s, m)| match m {
        Some(m) => format!("{s}\n\n```text\n{}\n```", m.trim_end()),
        None => s,
    })
}

/// The failure in one plain-text line (logs, annotations):
/// `Deployment/worker (pod worker-1, container app) is CrashLoopBackOff after 5 restarts: …`.
pub fn failure_plain(f: &HealthFailure) -> String {
    let mut s = f.workload.clone();
    match (&f.pod, &f.container) {
        (Some(p), Some(c)) => {
            let _ = write!(s, " (pod {p}, container {c})");
        }
        (Some(p), None) => {
            let _ = write!(s, " (pod {p})");
        }
        (None, Some(c)) => {
            let _ = write!(s, " (container {c})");
        }
        (None, None) => {}
    }
    let _ = write!(s, " is {}", f.reason);
    if let Some(n) = f.restart_count {
        let _ = write!(s, " after {n} restart{}", if n == 1 { "" } else { "s" });
    }
    if let Some(m) = &f.message {
        let _ = write!(s, ": {}", m.trim_end());
    }
    s
}

/// One line for a hook event (terminal, GitHub log): `pre-deploy hook `migrate` of `order`
/// failed after 2.1s: exit 3`.
pub fn hook_plain(run: &super::state::HookRun) -> String {
    use crate::events::HookStatus;
    let title = format!("{} hook `{}` of `{}`", run.stage, run.hook, run.service);
    let after = run.elapsed_ms.map(|ms| format!(" after {}", human_ms(ms))).unwrap_or_default();
    match run.status {
        HookStatus::Running => format!("{title}: running"),
        HookStatus::Succeeded => format!("{title} succeeded{after}"),
        HookStatus::Stopped => format!("{title} stopped{after} (the release was cancelled)"),
        HookStatus::Failed => match &run.failure {
            Some(f) => format!("{title} failed{after}: {}", failure_plain(f)),
            None => format!("{title} failed{after}"),
        },
    }
}

/// The hooks of the run, and the failing one's last log lines.
fn hooks(state: &RunState) -> Option<String> {
    use crate::events::HookStatus;
    if state.hooks.is_empty() {
        return None;
    }
    let mut s =
        String::from("#### Hooks\n\n| hook | service | when | result | time |\n|---|---|---|---|---|\n");
    for h in &state.hooks {
        let result = match (h.status, &h.failure) {
            (HookStatus::Running, _) => "⏳ running".to_owned(),
            (HookStatus::Succeeded, _) => "✅ succeeded".to_owned(),
            (HookStatus::Stopped, _) => "⏹️ stopped".to_owned(),
            (HookStatus::Failed, None) => "❌ failed".to_owned(),
            (HookStatus::Failed, Some(f)) => match &f.message {
                Some(m) => format!("❌ {}: {m}", f.reason),
                None => format!("❌ {}", f.reason),
            },
        };
        let time = h.elapsed_ms.map(human_ms).unwrap_or_default();
        let _ = writeln!(
            s,
            "| `{}` | `{}` | {} | {} | {time} |",
            cell(&h.hook),
            cell(&h.service),
            h.stage,
            cell(&result)
        );
    }
    for h in state.hooks.iter().filter(|h| h.status == HookStatus::Failed) {
        if let Some(f) = h.failure.as_ref().filter(|f| !f.logs.is_empty()) {
            // A fence the log cannot close early.
            let fence = if f.logs.iter().any(|l| l.contains("```")) { "~~~~" } else { "```" };
            let _ = write!(
                s,
                "\nLast lines of `{}` ({} hook of `{}`):\n\n{fence}text\n{}\n{fence}\n",
                h.hook,
                h.stage,
                h.service,
                f.logs.join("\n")
            );
        }
    }
    Some(s)
}

fn failure(state: &RunState) -> Option<String> {
    Some(format!("#### What failed\n\n{}\n", failure_text(state)?))
}

fn rollback(state: &RunState) -> Option<String> {
    let r = state.rollback.as_ref()?;
    let to = r
        .to_release
        .as_deref()
        .map_or_else(|| "the previous release".to_owned(), |t| format!("release `{t}`"));
    let mut s = match r.ok {
        Some(true) => format!("#### Rolled back\n\nRestored {to}; it is what runs now.\n"),
        Some(false) => format!(
            "#### Rollback failed\n\nRestoring {to} did not complete: **the environment may run a mix of releases**. \
             Check the run log, then run `deployer rollback --env {}` or fix forward.\n",
            state.environment.as_deref().unwrap_or("ENV")
        ),
        None => format!("#### Rolling back\n\nRestoring {to}…\n"),
    };
    if let Some(m) = &r.message {
        let _ = writeln!(s, "\n> {}", one_line(m));
    }
    if !r.digests.is_empty() {
        s.push_str("\n| Service | Restored image |\n|---|---|\n");
        for (svc, d) in &r.digests {
            let _ = writeln!(s, "| `{svc}` | `{}` |", short_digest(d));
        }
    }
    Some(s)
}

fn problems(state: &RunState) -> Option<String> {
    let res = state.result.as_ref()?;
    if res.problems.is_empty() {
        return None;
    }
    let mut s = String::from("#### Errors\n\n");
    for p in &res.problems {
        let _ = writeln!(s, "- {}", one_line(&p.message));
        if let Some(h) = &p.hint {
            let _ = writeln!(s, "  - hint: {}", one_line(h));
        }
    }
    Some(s)
}

fn scan_details(state: &RunState) -> Option<String> {
    let scans: Vec<_> = state.services.iter().filter_map(|s| s.scan.as_ref()).collect();
    let interesting = scans.iter().any(|s| {
        !s.blocking.is_empty() || !s.ignored.is_empty() || !s.expired_ignores.is_empty() || s.note.is_some()
    });
    if !interesting {
        return None;
    }
    let refused = scans.iter().any(|s| !s.passed);
    let mut s = if refused {
        String::from("<details open><summary>Scan findings</summary>\n\n")
    } else {
        String::from("<details><summary>Scan findings</summary>\n\n")
    };
    for scan in scans.into_iter().filter(|s| {
        !s.blocking.is_empty() || !s.ignored.is_empty() || !s.expired_ignores.is_empty() || s.note.is_some()
    }) {
        let _ = writeln!(s, "**`{}`** ({})\n", scan.service, severity_counts(&scan.counts));
        if let Some(n) = &scan.note {
            let _ = writeln!(s, "- ⚠️ {}", one_line(n));
        }
        for f in &scan.blocking {
            let pkg = f.package.as_deref().map_or_else(String::new, |p| format!(" in `{p}`"));
            let fix = f.fixed_in.as_deref().map_or_else(String::new, |v| format!(", fixed in `{v}`"));
            let _ = writeln!(s, "- ⛔ {} {}{pkg}{fix}", f.severity.to_lowercase(), f.id);
        }
        for i in &scan.expired_ignores {
            let _ = writeln!(
                s,
                "- ⚠️ ignore of {} expired on {}: counts again ({})",
                i.id,
                i.expires,
                one_line(&i.reason)
            );
        }
        for i in &scan.ignored {
            let _ = writeln!(s, "- ignored {} until {}: {}", i.id, i.expires, one_line(&i.reason));
        }
        s.push('\n');
    }
    s.push_str("</details>\n");
    Some(s)
}

fn timings(state: &RunState) -> String {
    let mut s = String::from("<details><summary>Timings</summary>\n\n| Phase | Took | |\n|---|--:|---|\n");
    for t in &state.phases {
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            t.phase.title(),
            human_ms(t.elapsed_ms),
            if t.ok { "✅" } else { "❌" }
        );
    }
    let _ = writeln!(s, "| **total** | **{}** | |", human_ms(state.elapsed_ms()));
    s.push_str("\n</details>\n");
    s
}

/// A Mermaid gantt of the phases (GitHub renders it in summaries and comments).
pub fn gantt_chart(state: &RunState) -> String {
    let mut s =
        String::from("```mermaid\ngantt\n    dateFormat x\n    axisFormat %M:%S\n    section phases\n");
    for t in &state.phases {
        let tag = if t.ok { "done" } else { "crit" };
        // Mermaid reads `:` and `#` as syntax; phase titles contain neither.
        let _ = writeln!(
            s,
            "    {} ({}) : {tag}, {}, {}",
            t.phase.title(),
            human_ms(t.elapsed_ms),
            t.start_ms,
            t.start_ms + t.elapsed_ms.max(1)
        );
    }
    s.push_str("```\n");
    s
}

/// `850 ms`, `12.3 s`, `2m 14s`, `1h 02m`.
pub fn human_ms(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m {:02}s", ms / 60_000, (ms % 60_000) / 1000),
        _ => format!("{}h {:02}m", ms / 3_600_000, (ms % 3_600_000) / 60_000),
    }
}

/// Text safe inside a table cell or list item.
fn cell(s: &str) -> String {
    one_line(s).replace('|', "\\|")
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Joins sections while they fit in `limit` bytes; says what was left out.
fn assemble(sections: &[String], limit: usize, links: &Links) -> String {
    let note = match &links.log_url {
        Some(u) => {
            format!("\n_Some details were left out to fit GitHub's size limit; see the [run log]({u})._\n")
        }
        None => "\n_Some details were left out to fit GitHub's size limit; see the run log._\n".to_owned(),
    };
    let mut out = String::new();
    for (i, sec) in sections.iter().enumerate() {
        let sep = usize::from(i > 0);
        if out.len() + sep + sec.len() + note.len() <= limit
            || (i + 1 == sections.len() && out.len() + sep + sec.len() <= limit)
        {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(sec);
        } else {
            let room = limit.saturating_sub(out.len() + sep + note.len());
            if i == 0 {
                // Even the head is too big (absurd names): cut it at a character boundary.
                let mut cut = room;
                while cut > 0 && !sec.is_char_boundary(cut) {
                    cut -= 1;
                }
                out.push_str(&sec[..cut]);
            } else if !sec.contains("<details") && !sec.contains("```") {
                // A table keeps the rows that fit; a cut inside a fence or <details> would swallow the note.
                if let Some(cut) = sec.get(..room).and_then(|s| s.rfind('\n')) {
                    out.push('\n');
                    out.push_str(&sec[..=cut]);
                }
            }
            out.push_str(&note);
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;

    #[test]
    fn formats_durations_for_reading() {
        assert_eq!(human_ms(850), "850 ms");
        assert_eq!(human_ms(12_345), "12.3 s");
        assert_eq!(human_ms(134_000), "2m 14s");
        assert_eq!(human_ms(3_720_000), "1h 02m");
    }

    #[test]
    fn sections_that_do_not_fit_are_left_out_with_a_note() {
        let links = Links { log_url: Some("https://x/run".into()), commit_base: None };
        let big = "x".repeat(1000);
        let out = assemble(&["head".into(), big.clone(), "tail".into()], 500, &links);
        assert!(out.starts_with("head"));
        assert!(!out.contains(&big));
        assert!(out.contains("[run log](https://x/run)"));
        assert!(out.len() <= 500);
        let out = assemble(&["ä".repeat(400)], 300, &links);
        assert!(out.len() <= 300);
    }

    #[test]
    fn a_huge_comment_stays_under_the_limit_and_keeps_the_verdict() {
        let mut s = RunState::default();
        s.apply(&Event::ReleaseStarted {
            release_id: "r1".into(),
            product: "shop".into(),
            environment: "prod".into(),
            git_sha: "abcdef0123".into(),
            services: (0..3000).map(|i| format!("service-with-a-long-name-{i}")).collect(),
            strategy: None,
        });
        let body = pr_comment(&s, &Links::default());
        assert!(body.len() <= COMMENT_LIMIT);
        assert!(body.starts_with("<!-- deployer:prod -->\n### ⏳ shop"));
        assert!(body.contains("left out"));
    }
}
