//! The `deployer` binary end to end on ECS: moto with the ECS controller, a cluster with the
//! shop's four services. A healthy release, then a crash loop that is rolled back to the
//! known-good task definitions (exit 5), then the history.

use crate::support;
use crate::support::ecs_env::{EcsEnv, Options, SERVICES};

fn images(version: u8, crash: Option<&str>) -> Vec<String> {
    SERVICES
        .iter()
        .flat_map(|svc| {
            let marker = if crash == Some(*svc) { "crashloop/" } else { "" };
            let digest = format!("sha256:{}", format!("{version:02x}").repeat(32));
            ["--image".to_owned(), format!("{svc}=registry.local/{marker}shop/{svc}@{digest}")]
        })
        .collect()
}

async fn run(env: &EcsEnv, home: &std::path::Path, args: Vec<String>) -> std::process::Output {
    let mut cmd = support::deployer(home);
    cmd.arg("--config").arg(env.product_dir().join("deployer.yaml")).args(&args);
    for (k, v) in env.moto.env() {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
}

async fn image_of(env: &EcsEnv, service: &str) -> String {
    let td = env.service(&format!("shop-{service}")).await.task_definition().unwrap().to_owned();
    let d = env.ecs.describe_task_definition().task_definition(td).send().await.unwrap();
    d.task_definition().unwrap().container_definitions()[0].image().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_deploy_and_automatic_rollback_through_the_cli() {
    let env = EcsEnv::start(Options::default()).await;
    let home = tempfile::tempdir().unwrap();
    let deploy = |v: u8, crash: Option<&str>| {
        ["deploy", "--env", "test"]
            .iter()
            .map(|s| (*s).to_owned())
            .chain(images(v, crash))
            .collect::<Vec<_>>()
    };

    let o = run(&env, home.path(), deploy(2, None)).await;
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let v2 = format!("registry.local/shop/user@sha256:{}", "02".repeat(32));
    assert_eq!(image_of(&env, "user").await, v2);

    // The plan compares each rendered task definition with the one the service runs.
    let plan = |v: u8| {
        ["plan", "--env", "test"].iter().map(|s| (*s).to_owned()).chain(images(v, None)).collect::<Vec<_>>()
    };
    let o = run(&env, home.path(), plan(2)).await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("= unchanged TaskDefinition/shop-user-test"), "{out}");
    let o = run(&env, home.path(), plan(3)).await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(&format!("apply:  update from {v2}")), "{out}");
    assert!(out.contains("~ update TaskDefinition/shop-user-test"), "{out}");
    assert!(out.contains(&format!("+  image: registry.local/shop/user@sha256:{}", "03".repeat(32))), "{out}");

    let o = run(&env, home.path(), deploy(3, Some("user"))).await;
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(5), "{out}\n{err}");
    assert!(err.contains("failed and was rolled back"), "{err}");
    // Every service runs release 2 again.
    for svc in SERVICES {
        assert_eq!(
            image_of(&env, svc).await,
            format!("registry.local/shop/{svc}@sha256:{}", "02".repeat(32)),
            "{svc}"
        );
    }

    let o = run(&env, home.path(), vec!["history".into(), "--env".into(), "test".into()]).await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let outcomes: Vec<&str> = out.lines().skip(2).filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert_eq!(outcomes, ["rolled-back", "succeeded"], "{out}");
}
