//! The workflow templates and the IAM trust policies printed beside them agree: for every job
//! of every template in `workflows/`, the OIDC `sub` claim GitHub will put in the job's token is
//! derived from the template (`repo:O/R:environment:E` when the job runs in a GitHub
//! environment, else from the trigger: `repo:O/R:ref:refs/heads/B`, `repo:O/R:pull_request`,
//! …), and every role the job's deployer steps assume (the deploy role, or the read-only
//! `role.plan_arn` for `plan` and for `promote`'s source) has a documented trust policy in
//! `docs/iam/` that admits exactly that subject.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::support;

const REPO: &str = "OWNER/REPO";

/// Which of an environment's roles a command uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Deploy,
    Plan,
}

fn yaml(path: &Path) -> Value {
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One way a job can run: a value for each choice input and matrix axis (`inputs.X`,
/// `matrix.X`).
type Binding = BTreeMap<String, String>;

/// Every combination of the workflow's choice inputs and the job's matrix axes.
fn bindings(workflow: &Value, job: &Value) -> Vec<Binding> {
    let mut axes: Vec<(String, Vec<String>)> = Vec::new();
    let strings =
        |v: &Value| v.as_array().map(|a| a.iter().map(|x| x.as_str().unwrap().to_owned()).collect());
    if let Some(inputs) = workflow["on"]["workflow_dispatch"]["inputs"].as_object() {
        for (name, input) in inputs {
            if let Some(options) = strings(&input["options"]) {
                axes.push((format!("inputs.{name}"), options));
            }
        }
    }
    if let Some(matrix) = job["strategy"]["matrix"].as_object() {
        for (name, values) in matrix {
            if let Some(values) = strings(values) {
                axes.push((format!("matrix.{name}"), values));
            }
        }
    }
    let mut out = vec![Binding::new()];
    for (name, values) in axes {
        let mut next = Vec::new();
        for b in &out {
            for v in &values {
                let mut b = b.clone();
                b.insert(name.clone(), v.clone());
                next.push(b);
            }
        }
        out = next;
    }
    out
}

/// The value of a template string in one binding: a literal, `${{ inputs.X }}` / `${{ matrix.X }}`,
/// or `${{ inputs.X == 'a' && 'b' || 'c' }}`.
fn eval(text: &str, b: &Binding) -> String {
    let text = text.trim();
    let Some(expr) = text.strip_prefix("${{").and_then(|t| t.strip_suffix("}}")).map(str::trim) else {
        return text.to_owned();
    };
    if let Some(v) = b.get(expr) {
        return v.clone();
    }
    let re = regex::Regex::new(r"^(inputs\.[\w-]+)\s*==\s*'([^']*)'\s*&&\s*'([^']*)'\s*\|\|\s*'([^']*)'$")
        .unwrap();
    let c = re.captures(expr).unwrap_or_else(|| panic!("cannot evaluate `{text}`"));
    let v = b.get(&c[1]).unwrap_or_else(|| panic!("`{}` is not a choice input", &c[1]));
    if *v == c[2] { c[3].to_owned() } else { c[4].to_owned() }
}

/// The `sub` claims of a job's token in one binding (several when the trigger allows several).
fn subjects(workflow: &Value, job: &Value, b: &Binding) -> BTreeSet<String> {
    let env = &job["environment"];
    let env_name = env.get("name").unwrap_or(env);
    if let Some(name) = env_name.as_str() {
        return BTreeSet::from([format!("repo:{REPO}:environment:{}", eval(name, b))]);
    }
    let on = workflow["on"].as_object().expect("`on:` as a map");
    let mut subs = BTreeSet::new();
    for (event, filter) in on {
        match event.as_str() {
            "pull_request" | "pull_request_target" => {
                subs.insert(format!("repo:{REPO}:pull_request"));
            }
            "push" => {
                for (key, prefix) in [("branches", "refs/heads/"), ("tags", "refs/tags/")] {
                    for b in filter[key].as_array().into_iter().flatten() {
                        subs.insert(format!("repo:{REPO}:ref:{prefix}{}", b.as_str().unwrap()));
                    }
                }
            }
            // Dispatched from any branch the person picks.
            "workflow_dispatch" => {
                subs.insert(format!("repo:{REPO}:ref:refs/heads/*"));
            }
            other => panic!("no subject rule for trigger `{other}`"),
        }
    }
    subs
}

/// (environment, role) for every role a job's deployer steps assume in one binding.
fn roles(job: &Value, b: &Binding) -> BTreeSet<(String, Role)> {
    let mut out = BTreeSet::new();
    for step in job["steps"].as_array().unwrap() {
        if !step["uses"].as_str().is_some_and(|u| u.starts_with("org/deployer@")) {
            continue;
        }
        let with = &step["with"];
        let command = with["command"].as_str().unwrap_or("deploy");
        let envs: Vec<String> = with["environment"].as_str().map(|e| eval(e, b)).into_iter().collect();
        match command {
            "plan" => out.extend(envs.into_iter().map(|e| (e, Role::Plan))),
            "promote" => {
                let args: Vec<&str> = with["args"].as_str().unwrap().split_whitespace().collect();
                let flag =
                    |f: &str| args.iter().position(|a| *a == f).map(|i| args[i + 1].to_owned()).unwrap();
                out.insert((flag("--from"), Role::Plan));
                out.insert((flag("--to"), Role::Deploy));
            }
            "validate" => {}
            _ => out.extend(envs.into_iter().map(|e| (e, Role::Deploy))),
        }
    }
    out
}

fn policy_file(env: &str, role: Role) -> String {
    format!("docs/iam/trust-{env}-{}.json", if role == Role::Deploy { "deploy" } else { "plan" })
}

/// Whether the trust policy admits a GitHub OIDC token with this `sub` (and `aud` sts).
fn admits(policy: &Value, sub: &str) -> bool {
    let host = "token.actions.githubusercontent.com";
    policy["Statement"].as_array().unwrap().iter().any(|s| {
        let list = |v: &Value| -> Vec<String> {
            match v {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_owned()).collect(),
                _ => vec![],
            }
        };
        let cond = &s["Condition"];
        let aud_ok = list(&cond["StringEquals"][format!("{host}:aud")]).contains(&"sts.amazonaws.com".to_owned());
        let equals = list(&cond["StringEquals"][format!("{host}:sub")]);
        s["Effect"] == "Allow"
            && s["Action"] == "sts:AssumeRoleWithWebIdentity"
            && s["Principal"]["Federated"].as_str().is_some_and(|f| f.ends_with(&format!(":oidc-provider/{host}")))
            && aud_ok
            // A template subject with `*` (dispatch from any branch) must be admitted literally:
            // a policy that names one branch does not admit "any branch".
            && equals.iter().any(|e| e == sub)
    })
}

#[test]
fn every_template_job_is_admitted_by_the_trust_policies_documented_beside_it() {
    let root = support::root();
    let mut checked = BTreeMap::new();
    let mut templates: Vec<_> =
        std::fs::read_dir(root.join("workflows")).unwrap().map(|e| e.unwrap().path()).collect();
    templates.sort();
    assert!(templates.len() >= 4, "{templates:?}");
    for path in templates {
        let text = std::fs::read_to_string(&path).unwrap();
        let workflow = yaml(&path);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for (job_name, job) in workflow["jobs"].as_object().unwrap() {
            for b in bindings(&workflow, job) {
                let subs = subjects(&workflow, job, &b);
                for (env, role) in roles(job, &b) {
                    let file = policy_file(&env, role);
                    // The template's own header names the policy its jobs need.
                    assert!(text.contains(&file), "{name}: the header comment does not name {file}");
                    let policy: Value = serde_json::from_str(
                        &std::fs::read_to_string(root.join(&file)).unwrap_or_else(|e| panic!("{file}: {e}")),
                    )
                    .unwrap();
                    for sub in &subs {
                        assert!(
                            admits(&policy, sub),
                            "{name} job `{job_name}`: {file} does not admit sub `{sub}`"
                        );
                        checked.entry(file.clone()).or_insert_with(BTreeSet::new).insert(sub.clone());
                    }
                }
            }
        }
    }
    // Each policy admits exactly the subjects of the jobs that need it: nothing more.
    for (file, subs) in &checked {
        let policy: Value = serde_json::from_str(&std::fs::read_to_string(root.join(file)).unwrap()).unwrap();
        let documented: BTreeSet<String> = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| {
                let v = &s["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"];
                match v {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_owned()).collect(),
                    _ => vec![],
                }
            })
            .collect();
        assert_eq!(&documented, subs, "{file} admits more (or other) subjects than the templates use");
    }
    assert_eq!(
        checked.keys().cloned().collect::<Vec<_>>(),
        [
            "docs/iam/trust-dev-deploy.json",
            "docs/iam/trust-dev-plan.json",
            "docs/iam/trust-prod-deploy.json",
            "docs/iam/trust-prod-plan.json",
        ]
    );
    // The policies users read are these files: the guide and the README point at them.
    let guide = std::fs::read_to_string(root.join("docs/getting-started.md")).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for file in checked.keys() {
        assert!(guide.contains(file.as_str()), "docs/getting-started.md does not show {file}");
        assert!(readme.contains(file.as_str()), "README.md does not name {file}");
    }
}

#[test]
fn subjects_are_derived_the_way_github_issues_them() {
    let wf = |text: &str| -> Value { serde_saphyr::from_str(text).unwrap() };
    let w = wf("on:\n  push:\n    branches: [main]\njobs:\n  a:\n    steps: []\n");
    let none = Binding::new();
    assert_eq!(
        subjects(&w, &w["jobs"]["a"], &none),
        BTreeSet::from([format!("repo:{REPO}:ref:refs/heads/main")])
    );
    let w = wf("on:\n  pull_request:\njobs:\n  a:\n    environment: dev\n    steps: []\n");
    assert_eq!(
        subjects(&w, &w["jobs"]["a"], &none),
        BTreeSet::from([format!("repo:{REPO}:environment:dev")])
    );
    let w = wf("on:\n  pull_request:\njobs:\n  a:\n    steps: []\n");
    assert_eq!(subjects(&w, &w["jobs"]["a"], &none), BTreeSet::from([format!("repo:{REPO}:pull_request")]));
    let w = wf(
        "on:\n  workflow_dispatch:\n    inputs:\n      e: { type: choice, options: [dev, prod] }\njobs:\n  a:\n    environment:\n      name: ${{ inputs.e == 'prod' && 'production' || 'dev' }}\n    steps: []\n",
    );
    // One run per choice: `prod` runs in `production`, `dev` in `dev`.
    let runs: Vec<(String, BTreeSet<String>)> = bindings(&w, &w["jobs"]["a"])
        .iter()
        .map(|b| (b["inputs.e"].clone(), subjects(&w, &w["jobs"]["a"], b)))
        .collect();
    assert_eq!(
        runs,
        [
            ("dev".to_owned(), BTreeSet::from([format!("repo:{REPO}:environment:dev")])),
            ("prod".to_owned(), BTreeSet::from([format!("repo:{REPO}:environment:production")])),
        ]
    );
    // The mismatch issue 18 found: a dev rollback in `environment: dev` is not `ref:refs/heads/main`.
    let old_dev_policy = serde_json::json!({"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
        "Principal": {"Federated": "arn:aws:iam::1:oidc-provider/token.actions.githubusercontent.com"},
        "Condition": {"StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": format!("repo:{REPO}:ref:refs/heads/main")}}}]});
    assert!(!admits(&old_dev_policy, &format!("repo:{REPO}:environment:dev")));
    assert!(admits(&old_dev_policy, &format!("repo:{REPO}:ref:refs/heads/main")));
}
