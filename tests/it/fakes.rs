//! The stand-ins themselves are tested against the behaviour contract (shared/TESTBED.md) with
//! real clients (boto3, and the pip kubectl), so deployer's tests rest on checked ground.

use crate::support;

#[test]
fn moto_ecs_controller_follows_the_contract() {
    let out = support::moto::run_fake_check(
        &support::root().join("tests/fakes/check_moto_ecs.py"),
        &["--time-scale", "0.5"],
    );
    assert!(out.lines().any(|l| l.ends_with(" passed, 0 failed")), "{out}");
    // The refusals real ECS and ELB make (TESTBED.md) are part of the contract.
    for refusal in [
        "PASS CreateService with a target group no load balancer uses: InvalidParameterException",
        "PASS UpdateService with a target group no load balancer uses: InvalidParameterException",
        "PASS CreateService of an awsvpc task definition without networkConfiguration",
        "PASS UpdateService to an awsvpc task definition without networkConfiguration",
        "PASS RunTask of an awsvpc task definition without networkConfiguration",
        "PASS DescribeTargetHealth of a group no listener or rule uses: unused / Target.NotInUse",
    ] {
        assert!(out.lines().any(|l| l.starts_with(refusal)), "missing `{refusal}`:\n{out}");
    }
}

#[tokio::test]
async fn deployer_sdk_clients_reach_moto() {
    let moto = support::moto::Moto::start();
    let sts = aws_sdk_sts::Client::new(&moto.sdk_config().await);
    let who = sts.get_caller_identity().send().await.unwrap();
    assert_eq!(who.account(), Some("123456789012"));
}

#[test]
fn fake_kubernetes_api_server_answers_kubectl_like_a_cluster() {
    // The real pip kubectl drives the fake: apply --server-side, get -o yaml, rollout status/undo,
    // watches, conflicts, leases, expired resourceVersions (see tests/fakes/check_fake_k8s.py).
    let out = support::moto::run_fake_check(&support::root().join("tests/fakes/check_fake_k8s.py"), &[]);
    assert!(out.lines().any(|l| l.ends_with(" passed, 0 failed")), "{out}");
    // The Job refusals and controller verdicts a real v1.28 cluster gives (release hooks rest on them).
    for check in [
        "ok   - Job without restartPolicy -> 422",
        "ok   - Job named over 63 characters -> 422",
        "ok   - a changed Job template -> 422",
        "ok   - exit 3 with backoffLimit 0: Failed BackoffLimitExceeded",
        "ok   - activeDeadlineSeconds: Failed DeadlineExceeded",
        "ok   - ttlSecondsAfterFinished: the finished Job and its pods are deleted",
    ] {
        assert!(out.lines().any(|l| l.starts_with(check)), "missing `{check}`:\n{out}");
    }
}

#[test]
fn ecr_bridge_registers_pushed_manifests_in_the_ecr_control_plane() {
    // Raw `/v2/` pushes (TLS, basic auth) through the bridge, then boto3 against moto: the image
    // is in ECR under its real digest, tags and immutability behave as ECR, scans bind to it.
    let moto = support::moto::Moto::start();
    let ecr = support::ecr_bridge::EcrRegistry::start(&moto, support::ecr_bridge::ACCOUNT);
    let out = support::moto::run_fake_check(
        &support::root().join("tests/fakes/check_ecr_bridge.py"),
        &[
            "--bridge",
            &ecr.endpoint,
            "--ca",
            ecr.ca.to_str().unwrap(),
            "--user",
            &ecr.upstream.user,
            "--password",
            &ecr.upstream.password,
            "--moto",
            &moto.url,
        ],
    );
    assert!(out.lines().any(|l| l == "8 passed, 0 failed"), "{out}");
}
