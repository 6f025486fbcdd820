//! The layering stays true: reads every `use crate::…` (and `crate::…` path) of `src/` and fails
//! on an import that runs against the architecture (README, "Architecture"), or on a circle of
//! files that import each other.
//!
//! Rules:
//! - `model` and `support` are the ground floor: they import nothing of ours;
//! - the pure parts (`plan`, `health`, `config`, `render`, `release`, `model`) import no
//!   platform adapter, no engine, no pipeline;
//! - the engine knows platforms only through the trait: no `platform::eks`/`platform::ecs`,
//!   no pipeline, app or report;
//! - the pipeline names a platform adapter in one place only (`fn connect`);
//! - no two files import each other, directly or around a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::support;

/// Every `.rs` file under `src/`, relative to it.
fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let src = support::root().join("src");
    let mut out = Vec::new();
    walk(&src, &mut out);
    out.into_iter().map(|p| p.strip_prefix(&src).unwrap().to_path_buf()).collect()
}

/// The module path of a file: `platform/eks/mod.rs` → `platform::eks`.
fn module_of(file: &Path) -> String {
    let s = file.with_extension("").to_string_lossy().replace('/', "::");
    s.strip_suffix("::mod").map(str::to_owned).unwrap_or(s)
}

/// The code of a file without its comments (a doc link is no import) and without its
/// `#[cfg(test)]` module (tests may reach anywhere).
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(support::root().join("src").join(file)).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text,
    };
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The `crate::a::b::…` paths a file names (in `use` lines and inline), as written.
fn crate_paths(code: &str) -> Vec<String> {
    let re = regex::Regex::new(r"crate::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)").unwrap();
    let mut out: Vec<String> = re.captures_iter(code).map(|c| c[1].to_owned()).collect();
    // `use crate::{a, b::c}` groups.
    let group = regex::Regex::new(r"use crate::\{([^}]*)\}").unwrap();
    for c in group.captures_iter(code) {
        for part in c[1].split(',') {
            let p = part.trim().split("::{").next().unwrap_or_default().trim().to_owned();
            if !p.is_empty() {
                out.push(p);
            }
        }
    }
    out
}

/// The module (of `modules`) a path lands in: its longest prefix that is a module of ours.
fn target(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len()).rev().map(|n| parts[..n].join("::")).find(|m| modules.contains(m))
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = sources();
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    let mut g = BTreeMap::new();
    for f in &files {
        let from = module_of(f);
        let to: BTreeSet<String> = crate_paths(&code(f))
            .iter()
            .filter_map(|p| target(p, &modules))
            .filter(|t| *t != from && !from.starts_with(&format!("{t}::")) && t != "lib")
            .collect();
        g.insert(from, to);
    }
    g
}

fn imports_of<'a>(g: &'a BTreeMap<String, BTreeSet<String>>, prefix: &str) -> Vec<(&'a str, &'a str)> {
    g.iter()
        .filter(|(m, _)| *m == prefix || m.starts_with(&format!("{prefix}::")))
        .flat_map(|(m, to)| to.iter().map(move |t| (m.as_str(), t.as_str())))
        .collect()
}

fn under(module: &str, prefix: &str) -> bool {
    module == prefix || module.starts_with(&format!("{prefix}::"))
}

#[test]
fn the_layers_hold() {
    let g = graph();
    assert!(g.contains_key("engine") && g.contains_key("platform::eks"), "the graph was not read: {g:?}");
    let mut wrong = Vec::new();
    for ground in ["model", "support"] {
        for (m, t) in imports_of(&g, ground) {
            wrong.push(format!("{m} -> {t}: the ground floor imports nothing of ours"));
        }
    }
    for pure in ["plan", "health", "config", "render", "release", "model"] {
        for (m, t) in imports_of(&g, pure) {
            if ["platform", "engine", "pipeline", "app", "report", "image", "identity", "observe", "validate"]
                .iter()
                .any(|x| under(t, x))
            {
                wrong.push(format!(
                    "{m} -> {t}: the pure parts import no platform, engine, pipeline, artifacts, identity or observation"
                ));
            }
        }
    }
    // Artifacts and identity sit below observation: they take what they need (e.g. `VarFn`) from
    // the ground floor.
    for low in ["image", "identity"] {
        for (m, t) in imports_of(&g, low) {
            if ["observe", "validate", "pipeline", "app", "engine", "report"].iter().any(|x| under(t, x)) {
                wrong.push(format!("{m} -> {t}: artifacts and identity import nothing above them"));
            }
        }
    }
    for (m, t) in imports_of(&g, "engine") {
        if ["platform::eks", "platform::ecs", "pipeline", "app", "report"].iter().any(|x| under(t, x)) {
            wrong.push(format!("{m} -> {t}: the engine knows platforms only through the trait"));
        }
    }
    assert!(wrong.is_empty(), "imports against the architecture:\n{}", wrong.join("\n"));
}

#[test]
fn the_pipeline_names_a_platform_adapter_in_one_place() {
    let code = code(Path::new("pipeline.rs"));
    let connect = code.find("async fn connect(").expect("pipeline::connect");
    let end = connect + code[connect..].find("\n}\n").expect("end of connect");
    let outside = format!("{}{}", &code[..connect], &code[end..]);
    for adapter in ["platform::eks::", "platform::ecs::", "Target::Eks", "Target::Ecs"] {
        assert!(!outside.contains(adapter), "pipeline.rs names `{adapter}` outside `connect`");
    }
}

#[test]
fn no_file_imports_itself_around_a_circle() {
    // Depth-first search for a back edge; report the circle it closes.
    fn visit<'a>(
        n: &'a str,
        g: &'a BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| *s == n) {
            return Some(stack[i..].iter().map(|s| (*s).to_owned()).chain([n.to_owned()]).collect());
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n);
        for t in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(t, g, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n);
        None
    }
    let g = graph();
    let mut done = BTreeSet::new();
    for n in g.keys() {
        if let Some(circle) = visit(n, &g, &mut Vec::new(), &mut done) {
            panic!("a circle of imports: {}", circle.join(" -> "));
        }
    }
}

#[test]
fn the_checks_see_a_forbidden_import() {
    // The reader finds grouped and inline paths (a rule that cannot fail would prove nothing).
    let paths = crate_paths("use crate::{platform::eks::Eks, model};\nlet x = crate::engine::deploy;");
    assert!(paths.contains(&"platform::eks::Eks".to_owned()), "{paths:?}");
    assert!(paths.contains(&"model".to_owned()), "{paths:?}");
    assert!(paths.contains(&"engine::deploy".to_owned()), "{paths:?}");
    let modules: BTreeSet<String> =
        ["platform", "platform::eks", "engine"].iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(target("platform::eks::Eks", &modules).as_deref(), Some("platform::eks"));
}
