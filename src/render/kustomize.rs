//! The real kustomize: locate it, render an overlay through a wrapper kustomization, parse the
//! output into objects.

use std::path::{Component, Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;

use super::{ImagePin, ObjectRef, RenderError};

/// Labels deployer adds to every top-level object it renders (never to pod templates or
/// selectors: changing a selector is refused by the API server, and a template change would
/// restart pods on every release).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "deployer");
/// Label naming the environment.
pub const ENV_LABEL: &str = "deployer.dev/environment";
/// Label naming the product.
pub const PRODUCT_LABEL: &str = "deployer.dev/product";
/// Label naming the service.
pub const SERVICE_LABEL: &str = "deployer.dev/service";

/// A located kustomize.
#[derive(Debug, Clone)]
pub struct Kustomize {
    program: PathBuf,
    /// `true` for `kubectl kustomize`, `false` for `kustomize build`.
    via_kubectl: bool,
}

impl Kustomize {
    /// Finds kustomize: `DEPLOYER_KUSTOMIZE` (a `kustomize` or `kubectl` binary), else
    /// `kustomize` on PATH, else `kubectl` on PATH.
    pub fn locate(explicit: Option<&Path>) -> Result<Self, RenderError> {
        if let Some(p) = explicit {
            if !p.is_file() {
                return Err(RenderError::NotFound(format!("{} does not exist", p.display())));
            }
            let via_kubectl =
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("kubectl"));
            return Ok(Self { program: p.to_path_buf(), via_kubectl });
        }
        if let Some(p) = which("kustomize") {
            return Ok(Self { program: p, via_kubectl: false });
        }
        if let Some(p) = which("kubectl") {
            return Ok(Self { program: p, via_kubectl: true });
        }
        Err(RenderError::NotFound("neither `kustomize` nor `kubectl` is on PATH".into()))
    }

    /// Human description, e.g. `kubectl kustomize (/usr/bin/kubectl)`.
    pub fn describe(&self) -> String {
        let how = if self.via_kubectl { "kubectl kustomize" } else { "kustomize build" };
        format!("{how} ({})", self.program.display())
    }

    /// Runs kustomize on `dir` and returns its stdout.
    pub async fn build_dir(&self, dir: &Path, service: &str, env: &str) -> Result<String, RenderError> {
        let mut cmd = tokio::process::Command::new(&self.program);
        if self.via_kubectl {
            cmd.arg("kustomize");
        } else {
            cmd.arg("build");
        }
        cmd.arg(dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        tracing::debug!(program = %self.program.display(), dir = %dir.display(), service, env, "running kustomize");
        let out = cmd
            .output()
            .await
            .map_err(|e| RenderError::Io { service: service.into(), message: e.to_string() })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(RenderError::Kustomize {
                service: service.into(),
                env: env.into(),
                message: clean_kustomize_error(&stderr),
            });
        }
        String::from_utf8(out.stdout)
            .map_err(|e| RenderError::Parse { service: service.into(), message: e.to_string() })
    }

    /// Renders `overlay` with `images` pinned and deployer's labels added, without touching the
    /// overlay: a wrapper kustomization in a temporary directory references it by relative path
    /// (kustomize refuses absolute paths in `resources:`). Returns kustomize's output text.
    pub async fn render_text(
        &self,
        overlay: &Path,
        images: &[ImagePin],
        labels: &[(&str, &str)],
        service: &str,
        env: &str,
    ) -> Result<String, RenderError> {
        let io = |e: std::io::Error| RenderError::Io { service: service.into(), message: e.to_string() };
        let overlay = overlay.canonicalize().map_err(|e| RenderError::Kustomize {
            service: service.into(),
            env: env.into(),
            message: format!("overlay {}: {}", overlay.display(), e.to_string().to_lowercase()),
        })?;
        // Outside the repository on purpose: a wrapper inside a directory the overlay loads makes
        // kustomize report a cycle. Canonical, because kustomize resolves symlinks before `..`.
        let tmp = tempfile::Builder::new().prefix("deployer-render-").tempdir().map_err(io)?;
        let wrapper_dir = tmp.path().canonicalize().map_err(io)?;
        let rel = relative_path(&wrapper_dir, &overlay);
        let wrapper = wrapper_kustomization(&rel, images, labels);
        std::fs::write(wrapper_dir.join("kustomization.yaml"), wrapper).map_err(io)?;
        self.build_dir(&wrapper_dir, service, env).await.map_err(|e| match e {
            RenderError::Kustomize { service, env, message } => {
                RenderError::Kustomize { service, env, message: strip_wrapper_layer(&message, &overlay) }
            }
            other => other,
        })
    }

    /// [`Self::render_text`] parsed into objects; when every image has a digest, also refuses
    /// output that still references one of them un-pinned.
    pub async fn render(
        &self,
        overlay: &Path,
        images: &[ImagePin],
        labels: &[(&str, &str)],
        service: &str,
        env: &str,
    ) -> Result<Vec<Value>, RenderError> {
        let text = self.render_text(overlay, images, labels, service, env).await?;
        let objects = parse_objects(&text)
            .map_err(|message| RenderError::Parse { service: service.into(), message })?;
        check_pinned(service, &objects, images)?;
        Ok(objects)
    }
}

/// One service to render with [`Kustomize::render_all`].
#[derive(Debug, Clone)]
pub struct RenderJob {
    pub service: String,
    pub overlay: PathBuf,
    pub images: Vec<ImagePin>,
    pub labels: Vec<(String, String)>,
}

/// Label that tells the services of a combined render apart; removed before anyone sees it.
const BATCH_LABEL: &str = "deployer.dev/render-job";

impl Kustomize {
    /// Renders several services' overlays, as [`Self::render`] would one by one, but in one
    /// kustomize process: a top-level kustomization lists every service's wrapper, each wrapper
    /// marks its objects with a job label, and the output is split back by it. Kustomize's
    /// start-up (the Go runtime, its OpenAPI schema) is most of a small render's cost, so this
    /// makes N services cost about one. When the combined build fails for any reason (an
    /// overlay's error, two services declaring the same object) every service is rendered on its
    /// own, so each error names its service exactly as a single render does.
    ///
    /// A job rendered before in this process, with the same inputs and none of the files its
    /// overlay names changed since (see [`Fingerprint`]), is not rendered again: `deployer
    /// deploy` renders for its plan and then for the release, and applies what the plan showed.
    pub async fn render_all(&self, jobs: &[RenderJob], env: &str) -> Vec<Result<Vec<Value>, RenderError>> {
        let keys: Vec<(String, Option<Fingerprint>)> =
            jobs.iter().map(|job| (self.memo_key(job), Fingerprint::of(&job.overlay))).collect();
        let mut out: Vec<Option<Result<Vec<Value>, RenderError>>> = keys
            .iter()
            .map(|(key, print)| {
                let print = print.as_ref()?;
                let memo = RENDERED.lock().ok()?;
                let (was, objects) = memo.get(key)?;
                (was == print).then(|| Ok(objects.clone()))
            })
            .collect();
        let todo: Vec<usize> = (0..jobs.len()).filter(|&i| out[i].is_none()).collect();
        let todo_jobs: Vec<RenderJob> = todo.iter().map(|&i| jobs[i].clone()).collect();
        let fresh = self.render_uncached(&todo_jobs, env).await;
        for (i, result) in todo.into_iter().zip(fresh) {
            if let (Ok(objects), (key, Some(print))) = (&result, &keys[i])
                && let Ok(mut memo) = RENDERED.lock()
            {
                memo.insert(key.clone(), (print.clone(), objects.clone()));
            }
            out[i] = Some(result);
        }
        out.into_iter().map(|r| r.unwrap_or_else(|| Ok(Vec::new()))).collect()
    }

    async fn render_uncached(&self, jobs: &[RenderJob], env: &str) -> Vec<Result<Vec<Value>, RenderError>> {
        if jobs.len() > 1
            && let Some(all) = self.render_combined(jobs).await
        {
            return jobs
                .iter()
                .zip(all)
                .map(|(job, objects)| check_pinned(&job.service, &objects, &job.images).map(|()| objects))
                .collect();
        }
        let each = jobs.iter().map(|job| async move {
            let labels: Vec<(&str, &str)> =
                job.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            self.render(&job.overlay, &job.images, &labels, &job.service, env).await
        });
        futures::future::join_all(each).await
    }

    /// Everything a job's output depends on besides the files: kustomize, overlay, pins, labels.
    fn memo_key(&self, job: &RenderJob) -> String {
        let overlay = job.overlay.canonicalize().unwrap_or_else(|_| job.overlay.clone());
        let labels: Vec<(&str, &str)> = job.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        format!(
            "{}\n{}\n{}\n{}",
            self.program.display(),
            overlay.display(),
            job.service,
            wrapper_kustomization(Path::new("."), &job.images, &labels)
        )
    }

    /// The combined render, split per job; `None` when anything about it fails.
    async fn render_combined(&self, jobs: &[RenderJob]) -> Option<Vec<Vec<Value>>> {
        let tmp = tempfile::Builder::new().prefix("deployer-render-").tempdir().ok()?;
        let top = tmp.path().canonicalize().ok()?;
        let mut resources = Vec::with_capacity(jobs.len());
        for (i, job) in jobs.iter().enumerate() {
            let overlay = job.overlay.canonicalize().ok()?;
            let dir = top.join(i.to_string());
            std::fs::create_dir(&dir).ok()?;
            let index = i.to_string();
            let mut labels: Vec<(&str, &str)> =
                job.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            labels.push((BATCH_LABEL, &index));
            let wrapper = wrapper_kustomization(&relative_path(&dir, &overlay), &job.images, &labels);
            std::fs::write(dir.join("kustomization.yaml"), wrapper).ok()?;
            resources.push(index);
        }
        let doc = serde_json::json!({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": resources,
        });
        std::fs::write(top.join("kustomization.yaml"), serde_json::to_string_pretty(&doc).ok()?).ok()?;
        let text = self.build_dir(&top, "", "").await.ok()?;
        split_by_job(parse_objects(&text).ok()?, jobs.len())
    }
}

/// Successful renders of this process: memo key → (the files' fingerprint then, objects).
type Memo = std::collections::HashMap<String, (Fingerprint, Vec<Value>)>;
static RENDERED: std::sync::LazyLock<std::sync::Mutex<Memo>> = std::sync::LazyLock::new(Default::default);

/// Names kustomize looks for in a directory.
const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// The files an overlay's output depends on, as (path, length, modification time): each
/// kustomization file, and every file or directory that a string in it names relative to its
/// directory (resources, components, patches, generator files, ...), directories followed as
/// kustomizations. `None` (never reused) when the overlay uses anything not local (a URL
/// resource, a Helm chart) or cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(Vec<(PathBuf, u64, Option<std::time::SystemTime>)>);

impl Fingerprint {
    pub fn of(overlay: &Path) -> Option<Self> {
        let mut seen = std::collections::BTreeSet::new();
        let mut files = Vec::new();
        Self::walk(overlay, &mut seen, &mut files, 0)?;
        Some(Self(files))
    }

    fn stat(path: &Path) -> Option<(PathBuf, u64, Option<std::time::SystemTime>)> {
        let m = std::fs::metadata(path).ok()?;
        Some((path.to_path_buf(), m.len(), m.modified().ok()))
    }

    fn walk(
        dir: &Path,
        seen: &mut std::collections::BTreeSet<PathBuf>,
        files: &mut Vec<(PathBuf, u64, Option<std::time::SystemTime>)>,
        depth: usize,
    ) -> Option<()> {
        let dir = dir.canonicalize().ok()?;
        if depth > 32 {
            return None;
        }
        if !seen.insert(dir.clone()) {
            return Some(());
        }
        let file = KUSTOMIZATION_FILES.iter().map(|n| dir.join(n)).find(|p| p.is_file())?;
        files.push(Self::stat(&file)?);
        let doc: Value = serde_saphyr::from_str(&std::fs::read_to_string(&file).ok()?).ok()?;
        if doc.get("helmCharts").is_some() || doc.get("helmChartInflationGenerator").is_some() {
            return None;
        }
        let mut strings = Vec::new();
        collect_strings(&doc, &mut strings);
        for s in strings {
            if s.contains("://") || s.starts_with("git@") || s.starts_with("github.com/") {
                return None;
            }
            // `files:` entries may be `key=path`.
            for candidate in [Some(s.as_str()), s.split_once('=').map(|(_, p)| p)].into_iter().flatten() {
                if candidate.is_empty() || candidate.contains('\n') {
                    continue;
                }
                let path = dir.join(candidate);
                if path.is_dir() {
                    if KUSTOMIZATION_FILES.iter().any(|n| path.join(n).is_file()) {
                        Self::walk(&path, seen, files, depth + 1)?;
                    } else {
                        files.push(Self::stat(&path)?);
                    }
                } else if path.is_file() {
                    files.push(Self::stat(&path)?);
                }
            }
        }
        Some(())
    }
}

fn collect_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

/// Splits a combined render's objects by [`BATCH_LABEL`] (kustomize keeps each job's objects
/// in the order a render of that job alone gives) and removes the label. `None` when an object
/// has no valid job label.
fn split_by_job(objects: Vec<Value>, jobs: usize) -> Option<Vec<Vec<Value>>> {
    let mut out = vec![Vec::new(); jobs];
    for mut obj in objects {
        let labels = obj.pointer_mut("/metadata/labels").and_then(Value::as_object_mut)?;
        let job: usize = labels.remove(BATCH_LABEL)?.as_str()?.parse().ok()?;
        if labels.is_empty() {
            // Kustomize created the map for the job label alone.
            obj.get_mut("metadata").and_then(Value::as_object_mut)?.remove("labels");
        }
        out.get_mut(job)?.push(obj);
    }
    Some(out)
}

/// Refuses objects that still reference one of `pins` without its digest (e.g. the image is
/// spelled differently in the manifests, or an overlay's own `images:` rewrote it). Pins still
/// pending (a plan before the build) are not checked.
pub fn check_pinned(service: &str, objects: &[Value], pins: &[ImagePin]) -> Result<(), RenderError> {
    for obj in objects {
        for image in images_of(obj) {
            for pin in pins {
                let Some(digest) = &pin.digest else { continue };
                let repo = image.split('@').next().unwrap_or(&image);
                let repo_no_tag = match repo.rsplit_once(':') {
                    // A `:` after the last `/` is a tag; one before it is a registry port.
                    Some((r, tag)) if !tag.contains('/') => r,
                    _ => repo,
                };
                let ours = repo_no_tag == pin.name || repo_no_tag == pin.new_name;
                if ours && image != format!("{}@{digest}", pin.new_name) {
                    return Err(RenderError::Unpinned { service: service.into(), image });
                }
            }
        }
    }
    Ok(())
}

/// The wrapper kustomization's text.
pub fn wrapper_kustomization(overlay_rel: &Path, images: &[ImagePin], labels: &[(&str, &str)]) -> String {
    let mut doc = serde_json::json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [overlay_rel.to_string_lossy()],
    });
    let mut pins = Vec::new();
    for img in images {
        // Match both the short name used in manifests and the full registry path, in case the
        // overlay already spells out the registry.
        for name in [&img.name, &img.new_name] {
            let mut entry = serde_json::json!({ "name": name, "newName": img.new_name });
            if let Some(d) = &img.digest {
                entry["digest"] = Value::String(d.clone());
            }
            pins.push(entry);
        }
    }
    if !pins.is_empty() {
        doc["images"] = Value::Array(pins);
    }
    if !labels.is_empty() {
        let pairs: serde_json::Map<String, Value> =
            labels.iter().map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned()))).collect();
        doc["labels"] =
            serde_json::json!([{ "pairs": pairs, "includeSelectors": false, "includeTemplates": false }]);
    }
    // JSON is valid YAML, and kustomize reads it as such.
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// Parses kustomize's multi-document YAML output into JSON values (empty documents skipped).
pub fn parse_objects(text: &str) -> Result<Vec<Value>, String> {
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(text).map_err(|e| e.to_string())?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Identity of an object.
pub fn object_ref(obj: &Value) -> ObjectRef {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).map(str::to_owned);
    ObjectRef {
        api_version: s("/apiVersion").unwrap_or_default(),
        kind: s("/kind").unwrap_or_default(),
        namespace: s("/metadata/namespace"),
        name: s("/metadata/name").unwrap_or_default(),
    }
}

/// Every container image referenced by an object (pods, workload templates, cron jobs).
pub fn images_of(obj: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for key in ["initContainers", "containers", "ephemeralContainers"] {
                    if let Some(Value::Array(cs)) = m.get(key) {
                        out.extend(cs.iter().filter_map(|c| c.get("image")?.as_str().map(str::to_owned)));
                    }
                }
                for (k, child) in m {
                    if k != "containers" && k != "initContainers" && k != "ephemeralContainers" {
                        walk(child, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(obj, &mut out);
    out
}

/// Kustomize prints `Error: ` plus a long chain; keep it whole but trimmed, without the usage text.
fn clean_kustomize_error(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()).collect();
    let first_err =
        lines.iter().position(|l| l.starts_with("error:") || l.starts_with("Error:")).unwrap_or(0);
    let msg = lines[first_err..].join("\n");
    msg.trim_start_matches("error: ").trim_start_matches("Error: ").to_owned()
}

/// Kustomize wraps an overlay's error in the wrapper's own accumulation context; users should
/// read what `kubectl kustomize <overlay>` says, so that outer layer is removed.
fn strip_wrapper_layer(message: &str, overlay: &Path) -> String {
    let marker = format!("recursed accumulation of path '{}': ", overlay.display());
    match message.find(&marker) {
        Some(i) => message[i + marker.len()..].to_owned(),
        None => message.to_owned(),
    }
}

/// `to` relative to directory `from` (both absolute and canonical).
pub fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..from.len() {
        rel.push("..");
    }
    for c in &to[common..] {
        rel.push(c.as_os_str());
    }
    if rel.as_os_str().is_empty() { PathBuf::from(".") } else { rel }
}

pub use crate::support::which;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative_path(Path::new("/tmp/x"), Path::new("/work/a/b")),
            PathBuf::from("../../work/a/b")
        );
        assert_eq!(relative_path(Path::new("/work"), Path::new("/work/a")), PathBuf::from("a"));
    }

    #[test]
    fn images_found_in_templates_and_cronjobs() {
        let obj = serde_json::json!({"kind":"CronJob","spec":{"jobTemplate":{"spec":{"template":{"spec":{
            "initContainers":[{"image":"a"}],"containers":[{"image":"b"},{"image":"c"}]}}}}}});
        assert_eq!(images_of(&obj), vec!["a", "b", "c"]);
    }

    #[test]
    fn unpinned_images_of_our_services_are_refused() {
        let pin = ImagePin {
            name: "shop/user".into(),
            new_name: "r:5000/shop/user".into(),
            digest: Some("sha256:ab".into()),
        };
        let obj =
            |img: &str| serde_json::json!({"spec":{"template":{"spec":{"containers":[{"image": img}]}}}});
        let pins = std::slice::from_ref(&pin);
        assert!(check_pinned("user", &[obj("r:5000/shop/user@sha256:ab")], pins).is_ok());
        assert!(check_pinned("user", &[obj("other/image:1")], pins).is_ok());
        for bad in ["shop/user", "shop/user:1.2", "r:5000/shop/user:latest", "r:5000/shop/user@sha256:cd"] {
            assert_eq!(
                check_pinned("user", &[obj(bad)], pins),
                Err(RenderError::Unpinned { service: "user".into(), image: bad.into() }),
                "{bad}"
            );
        }
    }

    #[test]
    fn wrapper_pins_both_names() {
        let pins = [ImagePin {
            name: "shop/user".into(),
            new_name: "r.example/shop/user".into(),
            digest: Some("sha256:ab".into()),
        }];
        let w: Value =
            serde_json::from_str(&wrapper_kustomization(Path::new("../o"), &pins, &[MANAGED_BY])).unwrap();
        assert_eq!(w["images"].as_array().unwrap().len(), 2);
        assert_eq!(w["images"][0]["digest"], "sha256:ab");
        assert_eq!(w["labels"][0]["includeTemplates"], false);
    }
}
