//! The per-environment deploy lock for ECS: one DynamoDB item held and renewed while a deploy or
//! rollback runs, with the EKS Lease lock's semantics (holder identity, a bounded wait,
//! background renewal, [`Lock::lost`], stale takeover that names the previous holder, exit 7
//! when still held after the wait).
//!
//! # Why DynamoDB
//! ECS itself has nothing a lock can be built on: tags and service attributes are
//! last-writer-wins. A lock needs a compare-and-set, and DynamoDB's conditional writes are
//! exactly that, atomic per item and strongly consistent, in every region and partition, with
//! no server to run. An S3 conditional write (`If-None-Match` / `If-Match`) would do too, but
//! renewing means rewriting a whole object every few seconds and S3's `If-Match` on PUT arrived
//! late and is not in every S3-compatible store; one small item updated in place is cheaper,
//! and its condition expressions say exactly what each step requires.
//!
//! # Table
//! Created once per account and region by whoever owns the infrastructure (deployer never
//! creates or alters it, so its role needs no control-plane rights), name from the
//! environment's `target.ecs.lock_table`, default [`DEFAULT_TABLE`]:
//!
//! ```text
//! aws dynamodb create-table --table-name deployer-locks \
//!     --attribute-definitions AttributeName=lock_id,AttributeType=S \
//!     --key-schema AttributeName=lock_id,KeyType=HASH --billing-mode PAY_PER_REQUEST
//! aws dynamodb update-time-to-live --table-name deployer-locks \
//!     --time-to-live-specification Enabled=true,AttributeName=ttl      # optional housekeeping
//! ```
//!
//! One item per environment, partition key `lock_id` (S) = [`lock_key`] (`<product>/<env>`):
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | `lock_id` | S | partition key |
//! | `holder` | S | the run holding the lock; absent when free |
//! | `version` | N | +1 on every write (acquire, renew, release); takeovers are conditional on the version read |
//! | `token` | N | fencing token: the `version` at which the holder acquired; constant while held, higher for every later holder |
//! | `acquired_at`, `renewed_at` | N | epoch milliseconds, for people reading the table |
//! | `expires_at` | N | epoch milliseconds: `renewed_at` + the lease ([`LEASE`]); past it the holder is stale |
//! | `ttl` | N | epoch seconds, a day after `expires_at`: the table's TTL attribute, so environments that stopped deploying vanish; nothing depends on it |
//!
//! Released locks keep their item (holder removed) so `version` and `token` keep increasing.
//!
//! # IAM
//! The deploy role needs `dynamodb:GetItem` and `dynamodb:UpdateItem` on
//! `arn:aws:dynamodb:<region>:<account>:table/<lock_table>` — nothing else (creation is an
//! `UpdateItem` conditional on `attribute_not_exists`, so not even `PutItem`). To keep one
//! product's runs off another's locks, add the condition
//! `"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["<product>/*"]}`.
//!
//! # Correctness
//! Every write is conditional: creating on `attribute_not_exists(lock_id)`, taking a free or
//! stale lock on the `version` just read (two runs racing for it: one write matches, the other
//! gets `ConditionalCheckFailedException` and reads again), renewing and releasing on
//! `holder` and `token` being still ours (so a run that was taken over can neither extend nor
//! delete the new holder's lock; its renewal fails and [`Lock::lost`] turns true).
//! A holder is stale when its `expires_at` has passed by our clock (as for the EKS Lease), or
//! when its `version` has not changed for a whole lease while we watched — the second rule needs
//! no clock agreement, so a holder whose clock runs ahead cannot block the environment forever.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::config::EcsTarget;
use crate::error::ExitCode;

/// The table used when the environment names none.
pub const DEFAULT_TABLE: &str = "deployer-locks";

/// How long a lock stays valid without renewal (renewed every third of it).
pub const LEASE: Duration = Duration::from_secs(15);

/// How long the `ttl` attribute lags `expires_at`: long enough for a person to read who held
/// the lock last.
const TTL_AFTER_EXPIRY: Duration = Duration::from_hours(24);

const KEY: &str = "lock_id";
const HOLDER: &str = "holder";
const VERSION: &str = "version";
const TOKEN: &str = "token";
const ACQUIRED_AT: &str = "acquired_at";
const RENEWED_AT: &str = "renewed_at";
const EXPIRES_AT: &str = "expires_at";
const TTL: &str = "ttl";

/// The lock table of an ECS environment.
pub fn table_name(target: &EcsTarget) -> &str {
    target.lock_table.as_deref().unwrap_or(DEFAULT_TABLE)
}

/// The item key of an environment's lock.
pub fn lock_key(product: &str, environment: &str) -> String {
    format!("{product}/{environment}")
}

type Source = Box<dyn std::error::Error + Send + Sync>;

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the deploy lock {key} is held by `{holder}` (dynamodb table {table})")]
    Held { table: String, key: String, holder: String },
    #[error("the deploy lock table {table} does not exist: {detail}")]
    TableMissing {
        table: String,
        detail: String,
        #[source]
        source: Source,
    },
    #[error("access to the deploy lock table {table} was denied while trying to {action}: {detail}")]
    Denied {
        table: String,
        action: &'static str,
        detail: String,
        #[source]
        source: Source,
    },
    #[error("dynamodb error while trying to {action} in table {table}: {detail}")]
    Aws {
        table: String,
        action: &'static str,
        detail: String,
        #[source]
        source: Source,
    },
    #[error("the deploy lock item {key} in table {table} is malformed: {detail}")]
    Malformed { table: String, key: String, detail: String },
}

impl LockError {
    /// The process exit code: 7 for a held lock, as on EKS.
    pub const fn exit_code(&self) -> ExitCode {
        match self {
            Self::Held { .. } => ExitCode::LockHeld,
            Self::TableMissing { .. } => ExitCode::Config,
            Self::Denied { .. } => ExitCode::Auth,
            Self::Aws { .. } | Self::Malformed { .. } => ExitCode::Internal,
        }
    }

    /// How to fix it.
    pub fn hint(&self) -> String {
        match self {
            Self::Held { .. } => {
                "another deploy of this environment is running; wait for it (timeouts.lock) or stop it".into()
            }
            Self::TableMissing { table, .. } => format!(
                "create it once per account and region: aws dynamodb create-table --table-name {table} \
                 --attribute-definitions AttributeName={KEY},AttributeType=S \
                 --key-schema AttributeName={KEY},KeyType=HASH --billing-mode PAY_PER_REQUEST \
                 (or set `target.ecs.lock_table` to an existing table)"
            ),
            Self::Denied { table, .. } => format!(
                "allow the deploy role dynamodb:GetItem and dynamodb:UpdateItem on arn:aws:dynamodb:<region>:<account>:table/{table}"
            ),
            Self::Aws { .. } => "check the AWS region and endpoint, then retry".into(),
            Self::Malformed { key, .. } => format!(
                "the item was edited by hand; delete the item `{key}` once no deploy of this environment runs"
            ),
        }
    }
}

/// The lock item as read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    /// `None` for an item written by hand without one.
    version: Option<u64>,
    expires_at_ms: Option<i64>,
}

/// What to do about the lock item just read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    /// No item: create it.
    Create,
    /// Free, ours, or stale: take it, conditional on the version read. `previous` names a stale
    /// holder we take over from.
    Take { previous: Option<String> },
    /// A live holder.
    Wait { holder: String },
}

/// Decides from the item read at `now_ms` (our wall clock) and how long its version has stayed
/// the same while we watched (our monotonic clock).
fn decide(
    record: Option<&Record>,
    me: &str,
    now_ms: i64,
    unchanged_for: Duration,
    lease: Duration,
) -> Decision {
    let Some(record) = record else { return Decision::Create };
    let holder = match record.holder.as_deref() {
        None | Some("") => return Decision::Take { previous: None },
        // Only this run uses its identity: a retry after a write whose answer was lost.
        Some(h) if h == me => return Decision::Take { previous: None },
        Some(h) => h,
    };
    // A holder without an expiry never renewed in a way we understand (as on EKS: stale).
    let expired = record.expires_at_ms.is_none_or(|at| now_ms > at);
    // A live holder changes the version every third of a lease, whatever its clock says.
    let silent = unchanged_for > lease;
    if expired || silent {
        Decision::Take { previous: Some(holder.to_owned()) }
    } else {
        Decision::Wait { holder: holder.to_owned() }
    }
}

fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn n(v: impl Into<i128>) -> AttributeValue {
    AttributeValue::N(v.into().to_string())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

/// The timestamps every acquire and renewal writes, as expression values.
fn times(now: i64, lease: Duration) -> [(&'static str, AttributeValue); 3] {
    let expires = now.saturating_add(millis(lease));
    let ttl = expires.saturating_add(millis(TTL_AFTER_EXPIRY)) / 1000;
    [(":now", n(now)), (":exp", n(expires)), (":ttl", n(ttl))]
}

/// Names for `#x` placeholders: every attribute goes through one (`ttl` is a reserved word, and
/// DynamoDB refuses names a request does not use, so each request lists only its own).
fn names(attrs: &[&str]) -> HashMap<String, String> {
    attrs.iter().map(|a| (format!("#{a}"), (*a).to_owned())).collect()
}

enum WriteError {
    /// The condition did not hold: someone else wrote first.
    Conflict,
    Failed(LockError),
}

fn classify<E>(e: SdkError<E>, table: &str, action: &'static str) -> WriteError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = e.as_service_error().and_then(ProvideErrorMetadata::code).map(str::to_owned);
    let detail = DisplayErrorContext(&e).to_string();
    let table = table.to_owned();
    let source: Source = Box::new(e);
    WriteError::Failed(match code.as_deref() {
        Some("ConditionalCheckFailedException") => return WriteError::Conflict,
        Some("ResourceNotFoundException") => LockError::TableMissing { table, detail, source },
        Some("AccessDeniedException" | "UnrecognizedClientException") => {
            LockError::Denied { table, action, detail, source }
        }
        _ => LockError::Aws { table, action, detail, source },
    })
}

/// Where the lock lives and who asks for it.
#[derive(Debug, Clone)]
struct Item {
    client: Client,
    table: String,
    key: String,
    holder: String,
    lease: Duration,
}

impl Item {
    fn malformed(&self, detail: String) -> LockError {
        LockError::Malformed { table: self.table.clone(), key: self.key.clone(), detail }
    }

    async fn read(&self) -> Result<Option<Record>, LockError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY, s(&self.key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| match classify(e, &self.table, "read the lock") {
                WriteError::Failed(e) => e,
                WriteError::Conflict => self.malformed("unexpected conditional check on a read".into()),
            })?;
        let Some(item) = out.item() else { return Ok(None) };
        let number = |name: &str| -> Result<Option<&str>, LockError> {
            match item.get(name) {
                None => Ok(None),
                Some(AttributeValue::N(v)) => Ok(Some(v.as_str())),
                Some(other) => Err(self.malformed(format!("`{name}` is not a number: {other:?}"))),
            }
        };
        let version = number(VERSION)?
            .map(|v| v.parse::<u64>().map_err(|_| self.malformed(format!("`{VERSION}` is `{v}`"))))
            .transpose()?;
        let expires_at_ms = number(EXPIRES_AT)?
            .map(|v| v.parse::<i64>().map_err(|_| self.malformed(format!("`{EXPIRES_AT}` is `{v}`"))))
            .transpose()?;
        let holder = match item.get(HOLDER) {
            None => None,
            Some(AttributeValue::S(h)) => Some(h.clone()),
            Some(other) => return Err(self.malformed(format!("`{HOLDER}` is not a string: {other:?}"))),
        };
        Ok(Some(Record { holder, version, expires_at_ms }))
    }

    /// Takes the lock for `self.holder`, conditional on the item being as read; the new
    /// version (also the fencing token) on success.
    async fn take(&self, read: Option<&Record>) -> Result<u64, WriteError> {
        let (condition, seen) = match read {
            None => (format!("attribute_not_exists(#{KEY})"), None),
            Some(Record { version: None, .. }) => (format!("attribute_not_exists(#{VERSION})"), None),
            Some(Record { version: Some(v), .. }) => (format!("#{VERSION} = :seen"), Some(*v)),
        };
        let token = seen.unwrap_or(0) + 1;
        let mut used = vec![HOLDER, TOKEN, VERSION, ACQUIRED_AT, RENEWED_AT, EXPIRES_AT, TTL];
        if read.is_none() {
            used.push(KEY);
        }
        let mut values: HashMap<String, AttributeValue> =
            times(now_ms(), self.lease).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        values.insert(":me".into(), s(&self.holder));
        values.insert(":token".into(), n(token));
        if let Some(v) = seen {
            values.insert(":seen".into(), n(v));
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .key(KEY, s(&self.key))
            .update_expression(format!(
                "SET #{HOLDER} = :me, #{TOKEN} = :token, #{VERSION} = :token, #{ACQUIRED_AT} = :now, \
                 #{RENEWED_AT} = :now, #{EXPIRES_AT} = :exp, #{TTL} = :ttl"
            ))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names(&used)))
            .set_expression_attribute_values(Some(values))
            .send()
            .await
            .map_err(|e| classify(e, &self.table, "take the lock"))?;
        Ok(token)
    }

    /// Extends our hold, only while the item still names us with our token.
    async fn renew(&self, token: u64) -> Result<(), WriteError> {
        let mut values: HashMap<String, AttributeValue> =
            times(now_ms(), self.lease).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        values.extend([(":me".into(), s(&self.holder)), (":token".into(), n(token)), (":one".into(), n(1))]);
        self.client
            .update_item()
            .table_name(&self.table)
            .key(KEY, s(&self.key))
            .update_expression(format!(
                "SET #{RENEWED_AT} = :now, #{EXPIRES_AT} = :exp, #{TTL} = :ttl, #{VERSION} = #{VERSION} + :one"
            ))
            .condition_expression(format!("#{HOLDER} = :me AND #{TOKEN} = :token"))
            .set_expression_attribute_names(Some(names(&[HOLDER, TOKEN, VERSION, RENEWED_AT, EXPIRES_AT, TTL])))
            .set_expression_attribute_values(Some(values))
            .send()
            .await
            .map_err(|e| classify(e, &self.table, "renew the lock"))?;
        Ok(())
    }

    /// Frees the lock, only while it is still ours; the item stays so the version keeps rising.
    async fn free(&self, token: u64) -> Result<(), WriteError> {
        let now = now_ms();
        let ttl = now.saturating_add(millis(TTL_AFTER_EXPIRY)) / 1000;
        self.client
            .update_item()
            .table_name(&self.table)
            .key(KEY, s(&self.key))
            .update_expression(format!(
                "REMOVE #{HOLDER}, #{TOKEN} SET #{EXPIRES_AT} = :now, #{TTL} = :ttl, #{VERSION} = #{VERSION} + :one"
            ))
            .condition_expression(format!("#{HOLDER} = :me AND #{TOKEN} = :token"))
            .set_expression_attribute_names(Some(names(&[HOLDER, TOKEN, VERSION, EXPIRES_AT, TTL])))
            .set_expression_attribute_values(Some(HashMap::from([
                (":me".into(), s(&self.holder)),
                (":token".into(), n(token)),
                (":now".into(), n(now)),
                (":ttl".into(), n(ttl)),
                (":one".into(), n(1)),
            ])))
            .send()
            .await
            .map_err(|e| classify(e, &self.table, "release the lock"))?;
        Ok(())
    }
}

/// Who holds the lock `key` (read-only, for `deployer status`): the holder and whether its
/// hold is still live by our clock (false: it stopped renewing, the next run takes it over).
pub async fn holder(client: &Client, table: &str, key: &str) -> Result<Option<(String, bool)>, LockError> {
    let item = Item {
        client: client.clone(),
        table: table.to_owned(),
        key: key.to_owned(),
        holder: String::new(),
        lease: LEASE,
    };
    let Some(record) = item.read().await? else { return Ok(None) };
    Ok(record.holder.filter(|h| !h.is_empty()).map(|h| {
        let live = record.expires_at_ms.is_some_and(|at| now_ms() <= at);
        (h, live)
    }))
}

/// A held lock; renewed in the background until [`Lock::release`].
pub struct Lock {
    item: Item,
    token: u64,
    renewer: tokio::task::JoinHandle<()>,
    lost: Arc<AtomicBool>,
    /// Set when the lock was taken over from a holder that had stopped renewing it.
    pub took_over_from: Option<String>,
}

impl Lock {
    /// Acquires the lock `key` in `table` for `holder`, waiting up to `wait` for a live holder,
    /// with the standard [`LEASE`].
    pub async fn acquire(
        client: &Client,
        table: &str,
        key: &str,
        holder: &str,
        wait: Duration,
    ) -> Result<Self, LockError> {
        Self::acquire_for(client, table, key, holder, wait, LEASE).await
    }

    /// [`Lock::acquire`] with another lease: renewed every third of it, and other runs take the
    /// lock over once it passed without renewal.
    pub async fn acquire_for(
        client: &Client,
        table: &str,
        key: &str,
        holder: &str,
        wait: Duration,
        lease: Duration,
    ) -> Result<Self, LockError> {
        let item = Item {
            client: client.clone(),
            table: table.to_owned(),
            key: key.to_owned(),
            holder: holder.to_owned(),
            lease,
        };
        let poll = (lease / 4).min(Duration::from_secs(1));
        let deadline = tokio::time::Instant::now() + wait;
        // The version we saw and since when, for the clock-free staleness rule.
        let mut watched: Option<(Option<u64>, tokio::time::Instant)> = None;
        loop {
            let record = item.read().await?;
            let now = tokio::time::Instant::now();
            let unchanged_for = match (&record, watched) {
                (Some(r), Some((v, since))) if r.version == v => now - since,
                _ => {
                    watched = record.as_ref().map(|r| (r.version, now));
                    Duration::ZERO
                }
            };
            let previous = match decide(record.as_ref(), holder, now_ms(), unchanged_for, lease) {
                Decision::Wait { holder: held_by } => {
                    if now >= deadline {
                        return Err(LockError::Held { table: item.table, key: item.key, holder: held_by });
                    }
                    tokio::time::sleep(poll.min(deadline - now)).await;
                    continue;
                }
                Decision::Create => None,
                Decision::Take { previous } => previous,
            };
            match item.take(record.as_ref()).await {
                Ok(token) => return Ok(Self::start(item, token, previous)),
                // Another run wrote between our read and our write: read again.
                Err(WriteError::Conflict) => {}
                Err(WriteError::Failed(e)) => return Err(e),
            }
        }
    }

    fn start(item: Item, token: u64, took_over_from: Option<String>) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let (renewing, lost2) = (item.clone(), lost.clone());
        let renewer = tokio::spawn(async move {
            let every = renewing.lease / 3;
            loop {
                tokio::time::sleep(every).await;
                // The item no longer names us with our token: another run has it. Any other
                // failure (throttling, the network) is retried: the lease has two more chances.
                if let Err(WriteError::Conflict) = renewing.renew(token).await {
                    lost2.store(true, Ordering::SeqCst);
                    return;
                }
            }
        });
        Self { item, token, renewer, lost, took_over_from }
    }

    /// True when another holder took the lock (this run must stop changing things).
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Who holds it (the identity given to [`Lock::acquire`]).
    pub fn holder(&self) -> &str {
        &self.item.holder
    }

    /// The fencing token: higher for every later holder of this environment's lock.
    pub fn fencing_token(&self) -> u64 {
        self.token
    }

    /// Stops renewing and frees the lock (only if it is still ours, by holder and token).
    pub async fn release(self) {
        self.renewer.abort();
        if self.lost() {
            return;
        }
        // Nothing to report on failure: the lock then expires after one lease, as if this
        // process had died.
        let _ = self.item.free(self.token).await;
    }
}

impl Drop for Lock {
    /// A lock dropped without `release` (the run was cancelled) stops renewing, so the item
    /// expires and the next run can take it over — as it would if the process had died.
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE_15: Duration = Duration::from_secs(15);
    const NOW: i64 = 1_800_000_000_000;

    fn held(holder: &str, version: u64, expires_at_ms: i64) -> Record {
        Record { holder: Some(holder.into()), version: Some(version), expires_at_ms: Some(expires_at_ms) }
    }

    fn at(record: &Record, unchanged_for: Duration) -> Decision {
        decide(Some(record), "me/1/abc", NOW, unchanged_for, LEASE_15)
    }

    #[test]
    fn no_item_is_created() {
        assert_eq!(decide(None, "me", NOW, Duration::ZERO, LEASE_15), Decision::Create);
    }

    #[test]
    fn a_released_item_is_taken_without_a_previous_holder() {
        let free = Record { holder: None, version: Some(4), expires_at_ms: Some(NOW - 10) };
        assert_eq!(at(&free, Duration::ZERO), Decision::Take { previous: None });
        let empty = Record { holder: Some(String::new()), ..free };
        assert_eq!(at(&empty, Duration::ZERO), Decision::Take { previous: None });
    }

    #[test]
    fn a_live_holder_is_waited_for() {
        let live = held("other/7/def", 3, NOW + 5_000);
        assert_eq!(at(&live, Duration::ZERO), Decision::Wait { holder: "other/7/def".into() });
        // Exactly at the expiry instant it is still valid.
        let edge = held("other/7/def", 3, NOW);
        assert_eq!(at(&edge, Duration::ZERO), Decision::Wait { holder: "other/7/def".into() });
    }

    #[test]
    fn an_expired_holder_is_taken_over_and_named() {
        let stale = held("other/7/def", 3, NOW - 1);
        assert_eq!(at(&stale, Duration::ZERO), Decision::Take { previous: Some("other/7/def".into()) });
    }

    #[test]
    fn a_holder_without_expiry_counts_as_stale() {
        let odd = Record { holder: Some("hand".into()), version: None, expires_at_ms: None };
        assert_eq!(at(&odd, Duration::ZERO), Decision::Take { previous: Some("hand".into()) });
    }

    #[test]
    fn a_holder_whose_clock_runs_ahead_is_stale_once_silent_for_a_lease() {
        // Its expiry is an hour ahead of our clock, but its version has not moved.
        let ahead = held("other/7/def", 3, NOW + 3_600_000);
        assert_eq!(at(&ahead, LEASE_15), Decision::Wait { holder: "other/7/def".into() });
        assert_eq!(
            at(&ahead, LEASE_15 + Duration::from_millis(1)),
            Decision::Take { previous: Some("other/7/def".into()) }
        );
    }

    #[test]
    fn our_own_identity_is_taken_again_without_a_takeover() {
        let mine = held("me/1/abc", 9, NOW + 5_000);
        assert_eq!(at(&mine, Duration::ZERO), Decision::Take { previous: None });
    }

    #[test]
    fn times_put_expiry_one_lease_ahead_and_ttl_a_day_later_in_seconds() {
        let [(_, now), (_, exp), (_, ttl)] = times(NOW, LEASE_15);
        assert_eq!(now, n(NOW));
        assert_eq!(exp, n(NOW + 15_000));
        assert_eq!(ttl, n((NOW + 15_000 + 86_400_000) / 1000));
    }

    #[test]
    fn the_table_defaults_to_deployer_locks_and_keys_are_product_slash_env() {
        let mut target: EcsTarget = serde_json::from_value(serde_json::json!({"cluster": "c"})).unwrap();
        assert_eq!(table_name(&target), "deployer-locks");
        target.lock_table = Some("team-locks".into());
        assert_eq!(table_name(&target), "team-locks");
        assert_eq!(lock_key("shop", "prod"), "shop/prod");
    }

    #[test]
    fn a_held_lock_exits_7_and_names_the_holder() {
        let e = LockError::Held {
            table: "deployer-locks".into(),
            key: "shop/prod".into(),
            holder: "run-1".into(),
        };
        assert_eq!(e.exit_code(), ExitCode::LockHeld);
        assert_eq!(
            e.to_string(),
            "the deploy lock shop/prod is held by `run-1` (dynamodb table deployer-locks)"
        );
        assert!(e.hint().contains("timeouts.lock"));
        let m = LockError::Malformed { table: "t".into(), key: "shop/prod".into(), detail: "x".into() };
        assert_eq!(m.exit_code(), ExitCode::Internal);
    }
}
