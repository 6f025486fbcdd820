//! The documented IAM permission policies (docs/iam/deploy-eks.json, deploy-ecs.json, plan.json)
//! allow exactly the AWS actions the code can call: every call covered, nothing extra.
//!
//! The calls are derived from `src/`, not listed by hand:
//! - AWS SDK operations: every `.operation()` of an `aws-sdk-*` crate the file uses (the
//!   operation names come from the crates' own `src/operation/` directories, at the versions in
//!   Cargo.lock); when several of a file's clients have that operation, the receiver names it
//!   (`self.ecs.tag_resource()`);
//! - the registry API of the hand-written `/v2/` client (`Req::new(Method::…, url)` in
//!   src/image/registry.rs), mapped to the ECR actions that authorize each request.
//!
//! Which policy needs what follows from where the call is: `platform/ecs` is ECS only,
//! `identity/eks.rs` EKS only, the rest (images, identity, the engine's gates) both. The plan
//! role (`role.plan_arn`: `plan`, and `promote`'s read of the source environment) may make every
//! read of the modules those commands run (`observe`, `platform` but its locks and release
//! hooks, `identity`) and
//! nothing else: no registry (a plan resolves no image; `promote` gates with the target's
//! deploy role) and no alarms (read only during a deploy's bake).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support;

/// SDK crate (short name) → IAM service prefix.
const SERVICES: [(&str, &str); 8] = [
    ("cloudwatch", "cloudwatch"),
    ("cloudwatchlogs", "logs"),
    ("dynamodb", "dynamodb"),
    ("ecr", "ecr"),
    ("ecs", "ecs"),
    ("eks", "eks"),
    ("elasticloadbalancingv2", "elasticloadbalancing"),
    ("sts", "sts"),
];

/// Receiver names that say which client a call goes to when a file has several.
const RECEIVERS: [(&str, &str); 8] = [
    ("cw", "cloudwatch"),
    ("logs", "cloudwatchlogs"),
    ("cloudwatch", "cloudwatch"),
    ("dynamodb", "dynamodb"),
    ("ecr", "ecr"),
    ("ecs", "ecs"),
    ("elb", "elasticloadbalancingv2"),
    ("sts", "sts"),
];

/// Actions that need no permission policy: `GetCallerIdentity` is allowed to every principal,
/// and `AssumeRoleWithWebIdentity` is authorized by the role's trust policy alone (it is called
/// with the OIDC token, not with credentials).
const NO_POLICY: [&str; 2] = ["sts:GetCallerIdentity", "sts:AssumeRoleWithWebIdentity"];

/// Each `aws-sdk-*` crate's operations, from its sources at the version Cargo.lock pins (in
/// cargo's registry cache, where the build unpacked them).
fn sdk_operations() -> BTreeMap<String, BTreeSet<String>> {
    let lock = std::fs::read_to_string(support::root().join("Cargo.lock")).unwrap();
    let home = std::env::var_os("CARGO_HOME")
        .map_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"), PathBuf::from);
    let registries: Vec<PathBuf> = std::fs::read_dir(home.join("registry/src"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    let mut ops = BTreeMap::new();
    for (short, _) in SERVICES {
        let name = format!("aws-sdk-{short}");
        let version = lock
            .split("[[package]]")
            .find(|p| p.contains(&format!("name = \"{name}\"\n")))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
            .map_or_else(|| panic!("{name} is not in Cargo.lock"), |v| v.trim_end_matches('"').to_owned());
        let dir = registries
            .iter()
            .map(|r| r.join(format!("{name}-{version}/src/operation")))
            .find(|d| d.is_dir())
            .unwrap_or_else(|| panic!("the sources of {name} {version} are not in {}", home.display()));
        let names: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.len() > 5, "{}: no operations found", dir.display());
        ops.insert(short.to_owned(), names);
    }
    ops
}

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
    let mut out = Vec::new();
    walk(&support::root().join("src"), &mut out);
    out.sort();
    out
}

/// A file's code without comments and without its unit tests.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.find("#[cfg(test)]").map_or(text.as_str(), |i| &text[..i]);
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

/// The identifier a method call is made on: `self.ecs\n  .op()` → `ecs`, `.sts(None)\n .op()` → `sts`.
fn receiver(before: &str) -> String {
    let mut s = before.trim_end();
    if s.ends_with(')') {
        // Skip one balanced argument list.
        let mut depth = 0;
        for (i, c) in s.char_indices().rev() {
            match c {
                ')' => depth += 1,
                '(' => {
                    depth -= 1;
                    if depth == 0 {
                        s = &s[..i];
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    s.chars()
        .rev()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect::<String>()
        .chars()
        .rev()
        .collect()
}

/// One AWS action the code can call, and where.
#[derive(Debug, Clone)]
struct Call {
    action: String,
    file: String,
}

fn relative(path: &Path) -> String {
    path.strip_prefix(support::root().join("src")).unwrap().to_string_lossy().into_owned()
}

fn sdk_calls(ops: &BTreeMap<String, BTreeSet<String>>) -> Vec<Call> {
    let call = regex::Regex::new(r"\.\s*([a-z][a-z0-9_]*)\(\)").unwrap();
    let mut out = Vec::new();
    for path in sources() {
        let code = code(&path);
        let used: Vec<&str> =
            SERVICES.iter().map(|(s, _)| *s).filter(|s| code.contains(&format!("aws_sdk_{s}::"))).collect();
        if used.is_empty() {
            continue;
        }
        for c in call.captures_iter(&code) {
            let op = &c[1];
            let candidates: Vec<&str> = used.iter().copied().filter(|s| ops[*s].contains(op)).collect();
            let service = match candidates.as_slice() {
                [] => continue,
                [one] => *one,
                several => {
                    let at = c.get(0).unwrap().start();
                    let r = receiver(&code[..at]);
                    let named = RECEIVERS.iter().find(|(n, _)| *n == r).map(|(_, s)| *s);
                    match named.filter(|s| several.contains(s)) {
                        Some(s) => s,
                        // `aws_sdk_eks::Client::new(config)\n.describe_cluster()` and the like.
                        None => several
                            .iter()
                            .copied()
                            .find(|s| code[..at].trim_end().ends_with(')') && code[..at].contains(&format!("aws_sdk_{s}::Client")))
                            .unwrap_or_else(|| {
                                panic!("{}: `.{op}()` on `{r}` could be any of {several:?}; name the client in RECEIVERS", relative(&path))
                            }),
                    }
                }
            };
            let prefix = SERVICES.iter().find(|(s, _)| *s == service).unwrap().1;
            let action = format!("{prefix}:{}", pascal(op));
            // What some calls imply: a task definition naming roles passes them to ECS tasks
            // (registering it, and running it: a hook's RunTask); a role chained with session
            // tags tags the session.
            if action == "ecs:RegisterTaskDefinition" || action == "ecs:RunTask" {
                out.push(Call { action: "iam:PassRole".into(), file: relative(&path) });
            }
            if action == "sts:AssumeRole" && (code.contains(".tags(") || code.contains(".set_tags(")) {
                out.push(Call { action: "sts:TagSession".into(), file: relative(&path) });
            }
            out.push(Call { action, file: relative(&path) });
        }
    }
    out
}

/// The ECR actions that authorize each request of the `/v2/` client (ECR user guide, "Amazon
/// ECR registry permissions" / the Docker Registry HTTP API V2 mapping).
fn registry_calls() -> Vec<Call> {
    let path = support::root().join("src/image/registry.rs");
    let code = code(&path);
    let req = regex::Regex::new(r"Req::new\(Method::([A-Z]+),\s*([^\n]*)").unwrap();
    let mut out = Vec::new();
    for c in req.captures_iter(&code) {
        let method = &c[1];
        let mut url = c[2].to_owned();
        // A bare variable (`Req::new(Method::POST, url)`): what it was bound to.
        let var: String = url.chars().take_while(|ch| ch.is_alphanumeric() || *ch == '_').collect();
        if !var.is_empty() && url[var.len()..].starts_with(')') {
            let at = c.get(0).unwrap().start();
            if let Some(i) = code[..at].rfind(&format!("let {var} = ")) {
                code[i..at].clone_into(&mut url);
            }
        }
        let action = if url.contains("manifests/") {
            match method {
                "GET" | "HEAD" => "ecr:BatchGetImage",
                "PUT" => "ecr:PutImage",
                m => panic!("registry: {m} on a manifest is not mapped"),
            }
        } else if url.contains("blobs/uploads/") {
            // Starting an upload, or mounting a blob from another repository.
            assert_eq!(method, "POST", "registry: {method} {url}");
            "ecr:InitiateLayerUpload"
        } else if url.contains("blobs/") {
            match method {
                "HEAD" => "ecr:BatchCheckLayerAvailability",
                "GET" => "ecr:GetDownloadUrlForLayer",
                m => panic!("registry: {m} on a blob is not mapped"),
            }
        } else if url.contains("location") {
            // The upload session the registry opened.
            match method {
                "PATCH" | "GET" | "DELETE" => "ecr:UploadLayerPart",
                "PUT" => "ecr:CompleteLayerUpload",
                m => panic!("registry: {m} on an upload session is not mapped"),
            }
        } else {
            panic!("registry: request `{method} {url}` is not mapped to an ECR action");
        };
        out.push(Call { action: action.into(), file: "image/registry.rs".into() });
    }
    assert!(out.len() >= 8, "the registry client's requests were not found: {out:?}");
    out
}

fn is_read(action: &str) -> bool {
    let name = action.split_once(':').map_or(action, |(_, n)| n);
    ["Describe", "List", "Get", "BatchGet", "BatchCheck"].iter().any(|p| name.starts_with(p))
}

/// What each documented policy must allow.
fn required() -> BTreeMap<&'static str, BTreeSet<String>> {
    let ops = sdk_operations();
    let mut calls = sdk_calls(&ops);
    calls.extend(registry_calls());
    let mut need: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for c in calls {
        if NO_POLICY.contains(&c.action.as_str()) {
            continue;
        }
        let eks = !c.file.starts_with("platform/ecs/");
        let ecs = c.file != "identity/eks.rs" && !c.file.starts_with("platform/eks/");
        if eks {
            need.entry("deploy-eks.json").or_default().insert(c.action.clone());
        }
        if ecs {
            need.entry("deploy-ecs.json").or_default().insert(c.action.clone());
        }
        // A plan looks at what runs and its records; it never takes or reads the deploy lock,
        // and runs no release hook (nor reads a hook's logs).
        let read_path = ["observe.rs", "platform/", "identity/"].iter().any(|p| c.file.starts_with(p))
            && !c.file.ends_with("/lock.rs")
            && !c.file.ends_with("/hook.rs");
        // The plan role assumes no chained role (`for_reading` drops the chain).
        if read_path && is_read(&c.action) && !c.action.starts_with("sts:") {
            need.entry("plan.json").or_default().insert(c.action.clone());
        }
    }
    need
}

fn documented(file: &str) -> BTreeSet<String> {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(support::root().join("docs/iam").join(file)).unwrap())
            .unwrap();
    let mut out = BTreeSet::new();
    for st in doc["Statement"].as_array().unwrap() {
        assert_eq!(st["Effect"], "Allow", "{file}: only Allow statements");
        match &st["Action"] {
            Value::String(a) => {
                out.insert(a.clone());
            }
            Value::Array(a) => out.extend(a.iter().map(|x| x.as_str().unwrap().to_owned())),
            other => panic!("{file}: Action {other}"),
        }
    }
    out
}

#[test]
fn documented_policies_allow_exactly_the_actions_the_code_calls() {
    let need = required();
    assert_eq!(need.len(), 3, "{need:?}");
    let mut problems = Vec::new();
    for (file, actions) in &need {
        let doc = documented(file);
        for a in actions.difference(&doc) {
            problems.push(format!("{file}: missing {a} (the code calls it)"));
        }
        for a in doc.difference(actions) {
            problems.push(format!("{file}: {a} is allowed but no code calls it"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_derivation_finds_the_calls_it_is_known_to_need() {
    // A guard on the derivation itself: these calls exist in src/ today, so a derivation that
    // stops seeing them is broken (not the policies).
    let need = required();
    for (file, action) in [
        ("deploy-ecs.json", "ecs:RegisterTaskDefinition"),
        ("deploy-ecs.json", "dynamodb:UpdateItem"),
        ("deploy-ecs.json", "elasticloadbalancing:ModifyListener"),
        ("deploy-eks.json", "eks:DescribeCluster"),
        ("deploy-eks.json", "ecr:PutImage"),
        ("deploy-eks.json", "cloudwatch:DescribeAlarms"),
        ("plan.json", "ecs:DescribeServices"),
    ] {
        assert!(need[file].contains(action), "{file} should need {action}: {:?}", need[file]);
    }
    assert!(!need["plan.json"].iter().any(|a| !is_read(a)), "plan needs only reads");
    assert!(!need["deploy-eks.json"].iter().any(|a| a.starts_with("ecs:")), "EKS needs no ECS");
}
