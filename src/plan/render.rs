//! The plan as people read it: plain text for terminals and logs, Markdown for PR comments and
//! job summaries. (JSON is the serde form of [`Plan`].)

use std::fmt::Write as _;

use super::diff::ObjectChange;
use super::{BuildPlan, Change, Plan, RenderPlan};
use crate::config::StrategyKind;

fn strategy_name(s: StrategyKind) -> &'static str {
    match s {
        StrategyKind::Rolling => "rolling",
        StrategyKind::BlueGreen => "blue-green",
    }
}

fn build_line(b: &BuildPlan) -> String {
    match b {
        BuildPlan::Build { context, dockerfile, builder } => {
            format!("build {context}/{dockerfile} with {builder}")
        }
        BuildPlan::Prebuilt { reference } => format!("prebuilt {reference} (resolved to a digest)"),
        BuildPlan::Missing { reason } => format!("cannot build: {reason}"),
    }
}

fn change_line(c: &Change) -> String {
    match c {
        Change::FirstDeploy => "first deploy".to_owned(),
        Change::Update { from } => format!("update from {from}"),
        Change::Unknown => "unknown (live state not observed)".to_owned(),
    }
}

/// Plain text.
pub fn text(plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Plan for {} → {} ({}, account {}, {})",
        plan.product, plan.environment, plan.target, plan.account_id, plan.region
    );
    let _ = writeln!(s, "  strategy: {}", strategy_name(plan.strategy));
    let _ = writeln!(s, "  commit:   {}", plan.git_sha.as_deref().unwrap_or("unknown"));
    let _ = writeln!(s, "  registry: {}", plan.registry);
    for svc in &plan.services {
        let _ = writeln!(s, "\nservice {}", svc.name);
        let _ = writeln!(s, "  build:  {}", build_line(&svc.build));
        let _ = writeln!(s, "  push:   {}", svc.image.reference());
        match &svc.render {
            RenderPlan::Kubernetes { overlay, objects } => {
                let _ = writeln!(s, "  render: {overlay} → {} object(s)", objects.len());
                for o in objects {
                    let _ = writeln!(s, "          - {o}");
                }
            }
            RenderPlan::Ecs { template, family, ecs_service } => {
                let _ = writeln!(s, "  render: {template} → task definition family {family}");
                let _ = writeln!(s, "          ECS service {ecs_service}");
            }
            RenderPlan::Failed { error } => {
                let _ = writeln!(s, "  render: FAILED: {error}");
            }
        }
        let _ = writeln!(s, "  apply:  {}", change_line(&svc.change));
        for c in &svc.objects {
            match c {
                ObjectChange::Create { object } => {
                    let _ = writeln!(s, "          + create {object}");
                }
                ObjectChange::Unchanged { object } => {
                    let _ = writeln!(s, "          = unchanged {object}");
                }
                ObjectChange::Update { object, diff } => {
                    let _ = writeln!(s, "          ~ update {object}");
                    for line in diff.lines() {
                        let _ = writeln!(s, "              {line}");
                    }
                }
            }
        }
        if !svc.depends_on.is_empty() {
            let _ = writeln!(s, "  after:  {}", svc.depends_on.join(", "));
        }
        for h in &svc.hooks {
            let _ = writeln!(s, "  hook:   {}", h.line());
        }
    }
    if !plan.prune.is_empty() {
        let _ = writeln!(s, "\nprune (no longer in the overlays)");
        for o in &plan.prune {
            let _ = writeln!(s, "  - delete {o}");
        }
        if plan.prune_needs_allow {
            let _ = writeln!(
                s,
                "  ! deletes more objects than it creates or keeps: `deploy` needs --allow-prune (or a confirmation at a terminal)"
            );
        }
    }
    let _ = writeln!(s, "\ngates");
    let _ = writeln!(s, "  scan:     {}", plan.gates.scan);
    let _ = writeln!(s, "  approval: {}", plan.gates.approval.as_deref().unwrap_or("not required"));
    let _ = writeln!(s, "  health:   {}", plan.gates.health);
    let _ = writeln!(s, "  rollback: {}", plan.gates.rollback);
    if !plan.unobserved.is_empty() {
        let _ = writeln!(s, "\nnot observed");
        for u in &plan.unobserved {
            let _ = writeln!(s, "  {}: {}", u.what, u.reason);
        }
    }
    s
}

/// Markdown for a PR comment or job summary: a table, then one collapsible block per service.
pub fn markdown(plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### Plan: `{}` → `{}`\n", plan.product, plan.environment);
    let _ = writeln!(
        s,
        "{} · account `{}` · {} · strategy **{}** · commit `{}`\n",
        plan.target,
        plan.account_id,
        plan.region,
        strategy_name(plan.strategy),
        plan.git_sha.as_deref().map_or("unknown", |g| &g[..g.len().min(12)])
    );
    let _ = writeln!(s, "| service | image | change |\n|---|---|---|");
    for svc in &plan.services {
        let _ =
            writeln!(s, "| `{}` | `{}` | {} |", svc.name, svc.image.reference(), change_line(&svc.change));
    }
    s.push('\n');
    for svc in &plan.services {
        let _ = writeln!(s, "<details><summary><code>{}</code></summary>\n", svc.name);
        let _ = writeln!(s, "- build: {}", build_line(&svc.build));
        for h in &svc.hooks {
            let _ = writeln!(s, "- hook: {}", h.line());
        }
        match &svc.render {
            RenderPlan::Kubernetes { overlay, objects } => {
                let _ = writeln!(s, "- render: `{overlay}` → {} object(s)\n", objects.len());
                let _ = writeln!(s, "```text");
                for o in objects {
                    let _ = writeln!(s, "{o}");
                }
                let _ = writeln!(s, "```");
            }
            RenderPlan::Ecs { template, family, ecs_service } => {
                let _ = writeln!(
                    s,
                    "- render: `{template}` → task definition family `{family}`, ECS service `{ecs_service}`"
                );
            }
            RenderPlan::Failed { error } => {
                let _ = writeln!(s, "- render: **failed**\n\n```text\n{error}\n```");
            }
        }
        for c in &svc.objects {
            match c {
                ObjectChange::Create { object } => {
                    let _ = writeln!(s, "- create `{object}`");
                }
                ObjectChange::Unchanged { .. } => {}
                ObjectChange::Update { object, diff } => {
                    let _ = writeln!(s, "- update `{object}`\n\n```diff\n{}\n```", diff.trim_end());
                }
            }
        }
        let _ = writeln!(s, "\n</details>\n");
    }
    if !plan.prune.is_empty() {
        let list: Vec<String> = plan.prune.iter().map(|o| format!("`{o}`")).collect();
        let _ = writeln!(s, "**Prune** (left the overlays): {}\n", list.join(", "));
        if plan.prune_needs_allow {
            let _ = writeln!(
                s,
                "> [!WARNING]\n> This release deletes more objects than it creates or keeps: `deploy` needs `--allow-prune`.\n"
            );
        }
    }
    let _ = writeln!(
        s,
        "**Gates** — scan: {} · approval: {} · health: {} · rollback: {}",
        plan.gates.scan,
        plan.gates.approval.as_deref().unwrap_or("not required"),
        plan.gates.health,
        plan.gates.rollback
    );
    if !plan.unobserved.is_empty() {
        let _ = writeln!(s, "\n> [!NOTE]\n> Not observed:");
        for u in &plan.unobserved {
            let _ = writeln!(s, "> - {}: {}", u.what, u.reason);
        }
    }
    s
}
