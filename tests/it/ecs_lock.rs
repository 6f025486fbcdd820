//! The ECS deploy lock (`platform::ecs::lock`) against DynamoDB in moto (tests/fakes/moto_ecs.py,
//! whose DynamoDB conditional writes are atomic as on AWS — see its conformance check):
//! acquire and release, a held lock that is waited for and then refused naming the holder,
//! takeover of a holder that stopped renewing (it learns it lost), and lockers started at the
//! same instant, of which exactly one wins, round after round.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use deployer::error::ExitCode;
use deployer::platform::ecs::lock::{DEFAULT_TABLE, Lock, LockError, lock_key};

use crate::support::moto::Moto;

const KEY: &str = "shop/prod";

/// moto with the lock table created as the module doc tells operators to (TTL included).
async fn bed() -> (Moto, aws_config::SdkConfig, Client) {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    crate::support::ecs_env::create_lock_table(&sdk).await;
    let client = Client::new(&sdk);
    (moto, sdk, client)
}

async fn item(client: &Client, key: &str) -> std::collections::HashMap<String, AttributeValue> {
    client
        .get_item()
        .table_name(DEFAULT_TABLE)
        .key("lock_id", AttributeValue::S(key.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item()
        .cloned()
        .unwrap_or_default()
}

fn text(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).map(|v| match v {
        AttributeValue::S(s) | AttributeValue::N(s) => s.clone(),
        other => panic!("{name}: {other:?}"),
    })
}

fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// Writes the item a run that died (or whose clock is off) leaves behind.
async fn leave_item(client: &Client, key: &str, holder: &str, version: u64, expires_at_ms: i64) {
    client
        .put_item()
        .table_name(DEFAULT_TABLE)
        .item("lock_id", AttributeValue::S(key.into()))
        .item("holder", AttributeValue::S(holder.into()))
        .item("version", AttributeValue::N(version.to_string()))
        .item("token", AttributeValue::N(version.to_string()))
        .item("expires_at", AttributeValue::N(expires_at_ms.to_string()))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_lock_is_acquired_renewed_and_released_and_its_token_keeps_rising() {
    let (_moto, _sdk, client) = bed().await;
    let a =
        Lock::acquire_for(&client, DEFAULT_TABLE, KEY, "run-a/1/aa", Duration::ZERO, Duration::from_secs(3))
            .await
            .unwrap();
    assert_eq!(a.took_over_from, None);
    assert_eq!(a.holder(), "run-a/1/aa");
    assert_eq!(a.fencing_token(), 1);
    let held = item(&client, KEY).await;
    assert_eq!(text(&held, "holder").as_deref(), Some("run-a/1/aa"));
    assert_eq!(text(&held, "token").as_deref(), Some("1"));
    let expires: i64 = text(&held, "expires_at").unwrap().parse().unwrap();
    let ttl: i64 = text(&held, "ttl").unwrap().parse().unwrap();
    assert!(ttl > expires / 1000, "ttl {ttl} is epoch seconds after expires_at {expires}");

    // Renewal (every lease/3 = 1 s) moves the version and the expiry, not the token.
    let renewed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = item(&client, KEY).await;
            if text(&now, "version").as_deref() != Some("1") {
                return now;
            }
        }
    })
    .await
    .expect("the lock was never renewed");
    assert_eq!(text(&renewed, "token").as_deref(), Some("1"));
    assert!(text(&renewed, "expires_at").unwrap().parse::<i64>().unwrap() > expires);
    assert!(!a.lost());

    a.release().await;
    let freed = item(&client, KEY).await;
    assert_eq!(text(&freed, "holder"), None, "{freed:?}");
    let version: u64 = text(&freed, "version").unwrap().parse().unwrap();

    // Free again: the next run takes it at once, with a higher fencing token, and no takeover.
    let b = Lock::acquire(&client, DEFAULT_TABLE, KEY, "run-b/2/bb", Duration::ZERO).await.unwrap();
    assert_eq!(b.took_over_from, None);
    assert_eq!(b.fencing_token(), version + 1);
    b.release().await;
}

#[tokio::test]
async fn a_held_lock_is_waited_for_then_refused_with_exit_7_naming_the_holder() {
    let (_moto, _sdk, client) = bed().await;
    let a = Lock::acquire(&client, DEFAULT_TABLE, KEY, "github-run-17-1/42/0badcafe", Duration::ZERO)
        .await
        .unwrap();

    let started = Instant::now();
    let err = Lock::acquire(&client, DEFAULT_TABLE, KEY, "run-b/2/bb", Duration::from_secs(2))
        .await
        .err()
        .expect("a held lock must not be acquired");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "gave up before timeouts.lock: {:?}",
        started.elapsed()
    );
    assert!(
        matches!(&err, LockError::Held { holder, key, table }
            if holder == "github-run-17-1/42/0badcafe" && key == KEY && table == DEFAULT_TABLE),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), ExitCode::LockHeld);
    assert_eq!(err.exit_code().code(), 7);
    assert_eq!(
        err.to_string(),
        "the deploy lock shop/prod is held by `github-run-17-1/42/0badcafe` (dynamodb table deployer-locks)"
    );
    assert!(err.hint().contains("timeouts.lock"), "{}", err.hint());

    // With no wait at all the answer is immediate and the same.
    let err = Lock::acquire(&client, DEFAULT_TABLE, KEY, "run-c/3/cc", Duration::ZERO).await.err().unwrap();
    assert!(matches!(err, LockError::Held { .. }), "{err:?}");
    assert!(!a.lost(), "a refused run must not disturb the holder");

    // A run that waits long enough gets it once the holder releases, without a takeover.
    let waiter = tokio::spawn({
        let client = client.clone();
        async move { Lock::acquire(&client, DEFAULT_TABLE, KEY, "run-d/4/dd", Duration::from_secs(30)).await }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!waiter.is_finished());
    a.release().await;
    let d = waiter.await.unwrap().unwrap();
    assert_eq!(d.took_over_from, None);
    d.release().await;
}

#[tokio::test]
async fn a_holder_that_stopped_renewing_is_taken_over_named_and_learns_it_lost() {
    let (_moto, sdk, client) = bed().await;
    let (acquired_tx, acquired_rx) = std::sync::mpsc::channel();
    // Run A in a runtime of its own, then freeze that runtime's only thread (a stopped process,
    // a long GC pause): its renewer cannot run, so its 1.5 s lease runs out.
    let frozen = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let client = Client::new(&sdk);
            let a = Lock::acquire_for(
                &client,
                DEFAULT_TABLE,
                KEY,
                "run-a/1/aa",
                Duration::ZERO,
                Duration::from_millis(1500),
            )
            .await
            .unwrap();
            acquired_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_secs(4));
            // Thawed: the overdue renewal finds the item names someone else.
            let deadline = Instant::now() + Duration::from_secs(10);
            while !a.lost() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let lost = a.lost();
            // Releasing a lost lock must leave the new holder's item alone.
            a.release().await;
            lost
        })
    });
    acquired_rx.recv().unwrap();

    let b = Lock::acquire(&client, DEFAULT_TABLE, KEY, "run-b/2/bb", Duration::from_secs(20)).await.unwrap();
    assert_eq!(b.took_over_from.as_deref(), Some("run-a/1/aa"));
    assert_eq!(b.fencing_token(), 2);

    assert!(frozen.join().unwrap(), "the frozen holder never noticed it lost the lock");
    let now = item(&client, KEY).await;
    assert_eq!(text(&now, "holder").as_deref(), Some("run-b/2/bb"));
    assert!(!b.lost());
    b.release().await;
}

#[tokio::test]
async fn an_item_left_by_a_dead_run_is_taken_over_at_once() {
    let (_moto, _sdk, client) = bed().await;
    leave_item(&client, KEY, "github-run-9-1/7/deadbeef", 41, now_ms() - 60_000).await;
    let b = Lock::acquire(&client, DEFAULT_TABLE, KEY, "run-b/2/bb", Duration::ZERO).await.unwrap();
    assert_eq!(b.took_over_from.as_deref(), Some("github-run-9-1/7/deadbeef"));
    assert_eq!(b.fencing_token(), 42);
    b.release().await;
}

#[tokio::test]
async fn a_holder_whose_clock_runs_ahead_is_taken_over_once_silent_for_a_lease() {
    let (_moto, _sdk, client) = bed().await;
    // Its expiry claims another hour, but its version never moves: it is not renewing.
    leave_item(&client, KEY, "skewed/7/ahead", 5, now_ms() + 3_600_000).await;
    let err =
        Lock::acquire_for(&client, DEFAULT_TABLE, KEY, "run-b/2/bb", Duration::ZERO, Duration::from_secs(1))
            .await
            .err()
            .unwrap();
    assert!(matches!(&err, LockError::Held { holder, .. } if holder == "skewed/7/ahead"), "{err:?}");
    let b = Lock::acquire_for(
        &client,
        DEFAULT_TABLE,
        KEY,
        "run-b/2/bb",
        Duration::from_secs(10),
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    assert_eq!(b.took_over_from.as_deref(), Some("skewed/7/ahead"));
    assert_eq!(b.fencing_token(), 6);
    b.release().await;
}

/// Starts `n` lockers at the same instant (a barrier), each with its own client (its own
/// connections, like separate deployer processes), none willing to wait.
async fn race(
    sdk: &aws_config::SdkConfig,
    key: &str,
    n: usize,
    round: usize,
) -> Vec<Result<Lock, LockError>> {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let racers: Vec<_> = (0..n)
        .map(|i| {
            let (client, barrier, key) = (Client::new(sdk), barrier.clone(), key.to_owned());
            tokio::spawn(async move {
                barrier.wait().await;
                Lock::acquire(&client, DEFAULT_TABLE, &key, &format!("racer-{round}-{i}"), Duration::ZERO)
                    .await
            })
        })
        .collect();
    let mut results = Vec::new();
    for r in racers {
        results.push(r.await.unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lockers_started_at_the_same_instant_have_exactly_one_winner_every_round() {
    let (_moto, sdk, client) = bed().await;
    let mut last_token = 0;
    for round in 0..40 {
        let n = 2 + round % 7; // 2..=8 racers
        // Rotate what they race for: no item yet, a released item, an item left by a dead run.
        let key = match round % 3 {
            0 => lock_key("shop", &format!("fresh-{round}")),
            _ => KEY.to_owned(),
        };
        if round % 3 == 2 {
            leave_item(&client, KEY, "dead/1/x", last_token + 1, now_ms() - 1_000).await;
        }
        let results = race(&sdk, &key, n, round).await;
        let winners: Vec<&Lock> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {n} racers, {} winners", winners.len());
        let winner = winners[0];
        for r in &results {
            if let Err(e) = r {
                assert!(
                    matches!(e, LockError::Held { holder, .. } if holder == winner.holder()),
                    "round {round}: a loser must be refused naming the winner {}: {e:?}",
                    winner.holder()
                );
            }
        }
        let expected_previous = (round % 3 == 2).then(|| "dead/1/x".to_owned());
        assert_eq!(winner.took_over_from, expected_previous, "round {round}");
        if key == KEY {
            assert!(winner.fencing_token() > last_token, "round {round}: fencing token went back");
            last_token = winner.fencing_token();
        }
        for r in results.into_iter().flatten() {
            r.release().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lockers_that_wait_take_turns_and_never_overlap() {
    let (_moto, sdk, _client) = bed().await;
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(5));
    let lockers: Vec<_> = (0..5)
        .map(|i| {
            let (client, barrier, inside, most) =
                (Client::new(&sdk), barrier.clone(), inside.clone(), most.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let lock = Lock::acquire_for(
                    &client,
                    DEFAULT_TABLE,
                    KEY,
                    &format!("waiter-{i}"),
                    Duration::from_mins(1),
                    Duration::from_secs(2),
                )
                .await
                .unwrap();
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                assert!(!lock.lost());
                assert_eq!(lock.took_over_from, None, "nobody died, so nobody is taken over");
                let token = lock.fencing_token();
                lock.release().await;
                token
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for l in lockers {
        tokens.push(l.await.unwrap());
    }
    assert_eq!(most.load(Ordering::SeqCst), 1, "two lockers held the lock at once");
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), 5, "every holder gets its own fencing token: {tokens:?}");
}

#[tokio::test]
async fn a_missing_table_is_a_configuration_error_with_the_command_that_creates_it() {
    let moto = Moto::start();
    let client = Client::new(&moto.sdk_config().await);
    let err = Lock::acquire(&client, "no-such-table", KEY, "run-a/1/aa", Duration::ZERO).await.err().unwrap();
    assert!(matches!(&err, LockError::TableMissing { table, .. } if table == "no-such-table"), "{err:?}");
    assert_eq!(err.exit_code(), ExitCode::Config);
    assert!(err.hint().contains("aws dynamodb create-table --table-name no-such-table"), "{}", err.hint());
}
