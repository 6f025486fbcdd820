//! The cluster side of the plan's diff: a server-side dry-run apply of each object compared
//! with the live object ([`crate::plan::diff`] compares and renders). Comparing the dry-run
//! result (not the raw manifest) means the API server's own defaulting is on both sides, so
//! only real changes show.

use futures::StreamExt;
use serde_json::Value;

use super::EksError;
use super::apply::{APPLY_CONCURRENCY, FIELD_MANAGER, Resolver, sort_for_apply};
pub use crate::plan::diff::{ObjectChange, unified};
use crate::render::kustomize::object_ref;

/// Dry-run applies every object and compares it with the live one. Objects are independent
/// (nothing is written), so up to [`APPLY_CONCURRENCY`] are looked at together; the changes come
/// back in apply order, and the first error in that order is the one returned.
pub async fn plan_changes(
    client: &kube::Client,
    objects: &[Value],
    default_ns: &str,
) -> Result<Vec<ObjectChange>, EksError> {
    plan_changes_with(client, &Resolver::default(), objects, default_ns).await
}

/// [`plan_changes`] with a resolver shared by several calls (one discovery per kind in all).
pub async fn plan_changes_with(
    client: &kube::Client,
    resolver: &Resolver,
    objects: &[Value],
    default_ns: &str,
) -> Result<Vec<ObjectChange>, EksError> {
    let mut sorted = objects.to_vec();
    sort_for_apply(&mut sorted);
    let params = kube::api::PatchParams::apply(FIELD_MANAGER).dry_run();
    let mut work = Vec::with_capacity(sorted.len());
    for obj in &sorted {
        let r = object_ref(obj);
        let api = resolver.api(client, &r, default_ns).await?;
        work.push((r, api, obj));
    }
    let params = &params;
    let changes = work.into_iter().map(|(r, api, obj)| async move {
        let err = |e: kube::Error| EksError::Api { action: format!("dry-run {r}"), message: e.to_string() };
        let Some(live) = api.get_opt(&r.name).await.map_err(err)? else {
            return Ok(ObjectChange::Create { object: r });
        };
        let dynamic: kube::api::DynamicObject = serde_json::from_value(obj.clone())
            .map_err(|e| EksError::Api { action: format!("read {r}"), message: e.to_string() })?;
        let would = api.patch(&r.name, params, &kube::api::Patch::Apply(&dynamic)).await.map_err(err)?;
        let (live, would) = (
            serde_json::to_value(&live).unwrap_or_default(),
            serde_json::to_value(&would).unwrap_or_default(),
        );
        let diff = unified(&live, &would, &format!("{}/{}", r.kind, r.name));
        Ok(if diff.is_empty() {
            ObjectChange::Unchanged { object: r }
        } else {
            ObjectChange::Update { object: r, diff }
        })
    });
    futures::stream::iter(changes).buffered(APPLY_CONCURRENCY).collect::<Vec<_>>().await.into_iter().collect()
}
