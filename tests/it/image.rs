//! Images against real stand-ins: buildah builds of examples/shop, pushes to docker-registry in
//! plain / TLS+basic / token modes read back by skopeo, re-push costs nothing, faults injected
//! by a proxy, ECR login and scan gate on moto, promotion by digest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use deployer::config::values::Date;
use deployer::config::{OnTimeout, ResolvedScan, ScanIgnore, SeverityLimits};
use deployer::image::build::{self, Builder, Built};
use deployer::image::push::Pusher;
use deployer::image::scan::{self, EcrScanner};
use deployer::image::{
    self as image, Credentials, Digest, Endpoint, Reference, Registry, RegistryOptions, promote,
};

use crate::support::moto::{Moto, REGION};
use crate::support::registry::{FaultProxy, Mode, TestRegistry};
use crate::support::root;

const REVISION: &str = "0123456789abcdef0123456789abcdef01234567";

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("org.opencontainers.image.revision".to_owned(), REVISION.to_owned()),
        ("org.opencontainers.image.source".to_owned(), "https://github.com/example/shop".to_owned()),
    ])
}

/// Builds the four shop services with buildah into `dir` (own storage root, nothing in
/// /var/lib/containers).
async fn build_shop(dir: &Path) -> Vec<Built> {
    crate::support::system_bin("buildah");
    let config = deployer::config::Config::load(&root().join("examples/shop/deployer.yaml")).unwrap();
    let requests = build::requests(&config, &[], &labels());
    assert_eq!(requests.len(), 4);
    let builder = Builder::Buildah { storage: Some(dir.join("storage")) };
    build::build_all(&builder, requests, &dir.join("layouts"), 2).await.unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Digest::of(bytes).to_string()
}

/// Pushes every built service to `shop/<service>` and checks each with skopeo.
async fn push_and_read_back(reg: &TestRegistry, built: &[Built]) {
    let pusher = Pusher::new(Arc::new(reg.client()));
    for b in built {
        let repo = format!("shop/{}", b.service);
        let pushed =
            pusher.push_layout(&b.layout, &repo, &[REVISION.to_owned(), "dev".to_owned()], &[]).await;
        let pushed = pushed.unwrap_or_else(|e| panic!("push {repo}: {e}\nregistry log:\n{}", reg.log()));
        assert_eq!(pushed.digest, b.digest);
        assert_eq!(pushed.reference, format!("{}/{repo}@{}", reg.host, b.digest));
        assert!(pushed.stats.blobs_uploaded >= 2, "config and layer uploaded: {:?}", pushed.stats);
        let raw = reg.skopeo_raw(&format!("{repo}@{}", b.digest));
        assert_eq!(sha256_hex(&raw), b.digest.to_string(), "skopeo reads back the same manifest bytes");
        let by_tag = reg.skopeo_raw(&format!("{repo}:{REVISION}"));
        assert_eq!(raw, by_tag);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_builds_are_reproducible_and_push_by_digest_over_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let first = build_shop(&dir.path().join("a")).await;
    let second = build_shop(&dir.path().join("b")).await;
    let digests = |v: &[Built]| v.iter().map(|b| (b.service.clone(), b.digest.clone())).collect::<Vec<_>>();
    assert_eq!(digests(&first), digests(&second), "same sources and labels give the same digests");

    // The VCS labels are in the image config.
    let img = image::layout::read(&first[0].layout).unwrap();
    let config_desc = &img.top.blobs[0];
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(img.blob_path(&config_desc.digest)).unwrap()).unwrap();
    assert_eq!(config["config"]["Labels"]["org.opencontainers.image.revision"], REVISION);

    let reg = TestRegistry::start(Mode::Plain);
    push_and_read_back(&reg, &first).await;

    // A second push of the same images sends no blob bytes: counted by the proxy.
    let proxy = FaultProxy::start(&reg);
    let pusher = Pusher::new(Arc::new(proxy.client(RegistryOptions::default())));
    for b in &second {
        let pushed = pusher
            .push_layout(&b.layout, &format!("shop/{}", b.service), &[REVISION.to_owned()], &[])
            .await
            .unwrap();
        assert_eq!(pushed.digest, b.digest);
        assert_eq!((pushed.stats.bytes_uploaded, pushed.stats.blobs_uploaded), (0, 0), "{:?}", pushed.stats);
        assert_eq!(pushed.stats.blobs_existing, 2);
    }
    let stats = proxy.stats();
    assert_eq!(stats["upload_bytes"], 0, "{stats}");
    let methods: Vec<&str> =
        stats["requests"].as_array().unwrap().iter().map(|r| r[0].as_str().unwrap()).collect();
    assert!(methods.iter().all(|m| *m == "HEAD"), "a re-push only asks: {methods:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_images_push_over_tls_with_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let built = build_shop(dir.path()).await;
    let reg = TestRegistry::start(Mode::TlsBasic);
    push_and_read_back(&reg, &built).await;

    // Wrong password: an auth error (exit code 3) with a hint, not a retry loop.
    let bad = Registry::connect(
        Endpoint::parse(&reg.endpoint).unwrap(),
        Credentials::Basic { username: reg.user.clone(), password: "wrong".into() },
        reg.options(),
    )
    .unwrap();
    let err =
        Pusher::new(Arc::new(bad)).push_layout(&built[0].layout, "shop/user", &[], &[]).await.unwrap_err();
    assert!(matches!(err, image::Error::Unauthorized { .. }), "{err}");
    assert_eq!(deployer::Error::from(err).exit_code(), deployer::ExitCode::Auth);

    // Without the CA the certificate is refused: TLS is really verified.
    let untrusted = Registry::connect(
        Endpoint::parse(&reg.endpoint).unwrap(),
        reg.credentials(),
        RegistryOptions { attempts: 1, ..RegistryOptions::default() },
    )
    .unwrap();
    let err = image::resolve(&untrusted, &Reference::parse("shop/user:dev").unwrap()).await.unwrap_err();
    assert!(matches!(err, image::Error::Unreachable { .. }), "{err}");
    assert!(err.hint().contains("DEPLOYER_REGISTRY_CA"), "{}", err.hint());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_images_push_with_registry_token_auth() {
    let dir = tempfile::tempdir().unwrap();
    let built = build_shop(dir.path()).await;
    let reg = TestRegistry::start(Mode::Token);
    push_and_read_back(&reg, &built).await;

    // Mounting needs a token for two repositories; the copy moves no bytes.
    let pusher = Pusher::new(Arc::new(reg.client()));
    let copy = pusher
        .push_layout(
            &built[0].layout,
            "mirror/user",
            &["dev".into()],
            &[format!("shop/{}", built[0].service)],
        )
        .await
        .unwrap();
    assert_eq!((copy.stats.blobs_mounted, copy.stats.bytes_uploaded), (2, 0), "{:?}", copy.stats);
    assert_eq!(sha256_hex(&reg.skopeo_raw(&format!("mirror/user@{}", copy.digest))), copy.digest.to_string());
}

/// A layout with a config and layers of the given sizes (pseudo-random content per `seed`).
fn synthetic_layout(dir: &Path, sizes: &[usize], seed: u64) -> PathBuf {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let write = |bytes: &[u8]| {
        let d = Digest::of(bytes);
        std::fs::write(blobs.join(d.hex()), bytes).unwrap();
        serde_json::json!({"digest": d.to_string(), "size": bytes.len()})
    };
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut layers = Vec::new();
    for &size in sizes {
        let mut data = Vec::with_capacity(size);
        while data.len() < size {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            data.extend_from_slice(&state.to_le_bytes());
        }
        data.truncate(size);
        let mut l = write(&data);
        l["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip".into();
        layers.push(l);
    }
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}, "config": {"Labels": {"seed": seed.to_string()}}});
    let mut c = write(config.to_string().as_bytes());
    c["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": c, "layers": layers});
    let mut m = write(manifest.to_string().as_bytes());
    m["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": [m]}).to_string(),
    )
    .unwrap();
    dir.to_path_buf()
}

fn small_chunks() -> RegistryOptions {
    RegistryOptions {
        chunk_size: 1 << 20,
        max_backoff: Duration::from_millis(500),
        ..RegistryOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_survive_503_and_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let layout = synthetic_layout(dir.path(), &[3 << 20, 200_000], 1);
    let reg = TestRegistry::start(Mode::Plain);
    let proxy = FaultProxy::start(&reg);
    proxy.add_faults(&serde_json::json!([
        {"method": "PATCH", "path": "/blobs/uploads/", "times": 1, "status": 503},
        {"method": "PATCH", "path": "/blobs/uploads/", "times": 1, "status": 429, "retry_after": "1"},
        // The small layer and the config go in one PUT each: fail the first of them too.
        {"method": "PUT", "path": "/blobs/uploads/", "times": 1, "status": 503},
        {"method": "PUT", "path": "/blobs/uploads/", "times": 1, "status": 429, "retry_after": "1"},
    ]));
    let pusher = Pusher::new(Arc::new(proxy.client(RegistryOptions { concurrency: 1, ..small_chunks() })));
    let pushed = pusher
        .push_layout(&layout, "faults/retry", &["v1".into()], &[])
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));
    let stats = proxy.stats();
    assert_eq!(stats["fired"], 4, "{stats}");
    let statuses: Vec<String> =
        stats["requests"].as_array().unwrap().iter().map(|r| r[2].to_string()).collect();
    assert!(statuses.contains(&"429".to_owned()) && statuses.contains(&"503".to_owned()), "{statuses:?}");
    assert_eq!(
        sha256_hex(&reg.skopeo_raw(&format!("faults/retry@{}", pushed.digest))),
        pushed.digest.to_string()
    );
    assert_eq!(pushed.stats.blobs_uploaded, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_resume_after_a_dropped_connection() {
    let dir = tempfile::tempdir().unwrap();
    let size = 5 << 20;
    let layout = synthetic_layout(dir.path(), &[size], 2);
    let blob =
        image::layout::read(&layout).unwrap().blobs().into_iter().find(|b| b.size == size as u64).unwrap();
    let reg = TestRegistry::start(Mode::Plain);
    let proxy = FaultProxy::start(&reg);
    let pusher = Pusher::new(Arc::new(proxy.client(small_chunks())));

    // Cut in front of the registry during the second chunk: the session still stands at 1 MiB
    // (`GET` on it says `Range: 0-1048575`) and the upload continues from there.
    proxy.add_faults(&serde_json::json!([
        {"method": "PATCH", "path": "/blobs/uploads/", "skip": 1, "times": 1, "drop_after": 300_000, "forward": false}
    ]));
    let pushed = pusher.push_layout(&layout, "faults/drop", &["v1".into()], &[]).await;
    let pushed = pushed.unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));
    let stats = proxy.stats();
    let methods: Vec<(&str, String)> = stats["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap(), r[2].to_string()))
        .collect();
    assert!(methods.contains(&("PATCH", "\"dropped\"".into())), "{stats}");
    assert!(methods.contains(&("GET", "204".into())), "the session was asked where it stands: {stats}");
    assert_eq!(pushed.stats.resumed, 1, "{:?}", pushed.stats);
    let sent = stats["upload_bytes"].as_u64().unwrap();
    assert_eq!(
        sent,
        size as u64 + pushed_config_size(&layout),
        "each byte reached the registry once: {stats}"
    );
    assert_eq!(
        sha256_hex(&reg.skopeo_raw(&format!("faults/drop@{}", pushed.digest))),
        pushed.digest.to_string()
    );

    // Cut after the registry stored part of a chunk: docker-registry then refuses the session
    // ("upload resumed at wrong offset"), so the blob restarts in a new one, and still lands.
    proxy.reset();
    proxy.add_faults(&serde_json::json!([
        {"method": "PATCH", "path": "/blobs/uploads/", "skip": 1, "times": 1, "drop_after": 300_000}
    ]));
    let pushed = pusher.push_layout(&layout, "faults/drop-partial", &["v1".into()], &[]).await;
    let pushed = pushed.unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));
    assert!(pushed.stats.resumed >= 1, "{:?}", pushed.stats);
    assert!(reg.client().blob_exists("faults/drop-partial", &blob.digest).await.unwrap());
    assert_eq!(
        sha256_hex(&reg.skopeo_raw(&format!("faults/drop-partial@{}", pushed.digest))),
        pushed.digest.to_string()
    );
}

fn pushed_config_size(layout: &Path) -> u64 {
    image::layout::read(layout).unwrap().top.blobs[0].size
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_stays_down_fails_clearly_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let layout = synthetic_layout(dir.path(), &[1000], 3);
    let options = RegistryOptions {
        attempts: 3,
        max_backoff: Duration::from_millis(300),
        ..RegistryOptions::default()
    };

    // Nothing listens.
    let port = crate::support::free_port();
    let down = Registry::connect(
        Endpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
        Credentials::Anonymous,
        options.clone(),
    )
    .unwrap();
    let err = tokio::time::timeout(
        Duration::from_mins(1),
        Pusher::new(Arc::new(down)).push_layout(&layout, "x/y", &[], &[]),
    )
    .await
    .expect("gives up on its own")
    .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with(&format!("cannot reach registry http://127.0.0.1:{port}")), "{text}");
    assert!(text.contains("failed 3 times"), "{text}");

    // Answers, but only 503.
    let reg = TestRegistry::start(Mode::Plain);
    let proxy = FaultProxy::start(&reg);
    proxy.add_faults(&serde_json::json!([{"times": 1000, "status": 503}]));
    let err = tokio::time::timeout(
        Duration::from_mins(1),
        Pusher::new(Arc::new(proxy.client(options))).push_layout(&layout, "x/y", &[], &[]),
    )
    .await
    .expect("gives up on its own")
    .unwrap_err();
    assert!(err.to_string().contains("last: HTTP 503"), "{err}");
    let e = deployer::Error::from(err);
    assert_eq!(e.exit_code(), deployer::ExitCode::Internal);
    assert!(e.problems()[0].hint.as_deref().unwrap().contains("registry.endpoint"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_are_immutable_but_the_same_push_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let a = synthetic_layout(&dir.path().join("a"), &[1000], 10);
    let b = synthetic_layout(&dir.path().join("b"), &[1000], 11);
    let reg = TestRegistry::start(Mode::Plain);
    let pusher = Pusher::new(Arc::new(reg.client()));
    let first = pusher.push_layout(&a, "shop/user", &["v1".into()], &[]).await.unwrap();
    let again = pusher.push_layout(&a, "shop/user", &["v1".into()], &[]).await.unwrap();
    assert_eq!(first.digest, again.digest);
    let err = pusher.push_layout(&b, "shop/user", &["v1".into()], &[]).await.unwrap_err();
    insta::assert_snapshot!(
        "immutable-tag",
        format!("{err}\nhint: {}", err.hint()).replace(&reg.host, "REGISTRY")
    );
    // The digest itself was pushed; only the tag move was refused.
    let tag = reg.client().manifest_head("shop/user", "v1").await.unwrap().unwrap();
    assert_eq!(tag.0, first.digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prebuilt_references_resolve_to_digests() {
    let dir = tempfile::tempdir().unwrap();
    let layout = synthetic_layout(dir.path(), &[1000], 20);
    let reg = TestRegistry::start(Mode::TlsBasic);
    let client = reg.client();
    let pushed = Pusher::new(Arc::new(reg.client()))
        .push_layout(&layout, "shop/payment", &["1.4.0".into()], &[])
        .await
        .unwrap();

    let by_tag =
        image::resolve(&client, &Reference::parse(&format!("{}/shop/payment:1.4.0", reg.host)).unwrap())
            .await
            .unwrap();
    assert_eq!(by_tag.digest, pushed.digest);
    assert_eq!(by_tag.reference, pushed.reference);
    assert_eq!(by_tag.media_type, "application/vnd.oci.image.manifest.v1+json");
    let by_digest =
        image::resolve(&client, &Reference::parse(&format!("shop/payment@{}", pushed.digest)).unwrap())
            .await
            .unwrap();
    assert_eq!(by_digest.digest, pushed.digest);

    let missing =
        image::resolve(&client, &Reference::parse("shop/payment:9.9.9").unwrap()).await.unwrap_err();
    assert_eq!(missing.to_string(), "shop/payment:9.9.9 not found in the registry");
    let elsewhere =
        image::resolve(&client, &Reference::parse("ghcr.io/acme/payment:1.4.0").unwrap()).await.unwrap_err();
    assert!(elsewhere.to_string().contains("is not in the product's registry"), "{elsewhere}");
    let unknown_digest = Reference::parse(&format!("shop/payment@{}", Digest::of(b"nothing"))).unwrap();
    assert!(matches!(
        image::resolve(&client, &unknown_digest).await.unwrap_err(),
        image::Error::NotFound { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_builds_and_pushes_through_its_config_with_ecr_credentials() {
    // The integrator's path: `registry.endpoint` from deployer.yaml, ECR credentials from the AWS
    // session (moto: `AWS:<account>-auth-token`, born expired, fake proxyEndpoint: the endpoint
    // comes from the config and expiry never triggers a refresh loop), the CA from
    // DEPLOYER_REGISTRY_CA.
    let moto = Moto::start();
    let reg = TestRegistry::start_with(Mode::TlsBasic, "AWS", "123456789012-auth-token");
    let dir = tempfile::tempdir().unwrap();
    let shop = dir.path().join("shop");
    crate::support::copy_tree(&root().join("examples/shop"), &shop);
    let yaml = std::fs::read_to_string(shop.join("deployer.yaml")).unwrap();
    let yaml = yaml.replacen(
        "  region: eu-west-1\n",
        &format!("  region: eu-west-1\n  endpoint: {}\n", reg.endpoint),
        1,
    );
    std::fs::write(shop.join("deployer.yaml"), yaml).unwrap();
    let config = deployer::config::Config::load(&shop.join("deployer.yaml")).unwrap();

    let ca = reg.ca.as_ref().unwrap().display().to_string();
    let var = |k: &str| (k == "DEPLOYER_REGISTRY_CA").then(|| ca.clone());
    let sdk = moto.sdk_config().await;
    let client = Registry::for_config(&config, Some(&sdk), &var).unwrap();
    assert!(matches!(Credentials::for_deploy(Some(&sdk), &var), Credentials::Ecr { .. }));

    let builder = Builder::Buildah { storage: Some(dir.path().join("storage")) };
    let built =
        build::build_all(&builder, build::requests(&config, &[], &labels()), &dir.path().join("out"), 2)
            .await
            .unwrap();
    let pushed =
        Pusher::new(Arc::new(client)).push_all(&config, &built, &[REVISION.to_owned()]).await.unwrap();
    assert_eq!(pushed.len(), 4);
    for (b, p) in built.iter().zip(&pushed) {
        assert_eq!(p.reference, format!("{}/shop/{}@{}", reg.host, b.service, b.digest));
        assert_eq!(
            sha256_hex(&reg.skopeo_raw(&format!("shop/{}:{REVISION}", b.service))),
            b.digest.to_string()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_copies_exact_digests_and_needs_gate_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let layout = synthetic_layout(&dir.path().join("l"), &[3 << 20, 5000], 40);
    let dev = TestRegistry::start(Mode::Plain);
    let prod = TestRegistry::start(Mode::TlsBasic);
    let dev_client = dev.client();
    let prod_client = prod.client();
    let pushed = Pusher::new(Arc::new(dev.client()))
        .push_layout(&layout, "shop/user", &["dev".into()], &[])
        .await
        .unwrap();

    let evidence = |pass: bool, digest: &Digest| scan::GateReport {
        environment: "dev".into(),
        repository: "shop/user".into(),
        digest: digest.clone(),
        verdict: scan::evaluate(
            &ResolvedScan {
                max: SeverityLimits { critical: Some(0), ..Default::default() },
                ignore: vec![],
                on_timeout: OnTimeout::Fail,
            },
            &scan::ScanOutcome::Complete {
                findings: if pass {
                    vec![]
                } else {
                    vec![scan::Finding {
                        id: "CVE-1".into(),
                        severity: scan::Severity::Critical,
                        package: None,
                        fixed_in: None,
                        fix_available: None,
                    }]
                },
            },
            scan::today(),
        ),
    };
    let src = promote::Location { registry: &dev_client, repository: "shop/user" };
    let failed = promote::promote(
        src,
        promote::Location { registry: &prod_client, repository: "shop/user" },
        &pushed.digest,
        &evidence(false, &pushed.digest),
        &[],
        dir.path(),
    )
    .await
    .unwrap_err();
    assert_eq!(deployer::Error::from(failed).exit_code(), deployer::ExitCode::ScanGate);
    let other = promote::promote(
        src,
        promote::Location { registry: &prod_client, repository: "shop/user" },
        &pushed.digest,
        &evidence(true, &Digest::of(b"other")),
        &[],
        dir.path(),
    )
    .await
    .unwrap_err();
    assert!(other.to_string().contains("the gate evidence is for sha256:"), "{other}");

    // Across registries: blobs stream through, the manifest bytes are identical.
    let ok = evidence(true, &pushed.digest);
    let copied = promote::promote(
        src,
        promote::Location { registry: &prod_client, repository: "shop/user" },
        &pushed.digest,
        &ok,
        &["prod".into()],
        &dir.path().join("work"),
    )
    .await
    .unwrap();
    assert_eq!(copied.digest, pushed.digest);
    assert_eq!(copied.stats.blobs_uploaded, 3);
    assert_eq!(sha256_hex(&prod.skopeo_raw("shop/user:prod")), pushed.digest.to_string());

    // Within a registry: mounted, nothing uploaded.
    let within = promote::promote(
        src,
        promote::Location { registry: &dev_client, repository: "shop-prod/user" },
        &pushed.digest,
        &ok,
        &["prod".into()],
        &dir.path().join("work"),
    )
    .await
    .unwrap();
    assert_eq!((within.stats.blobs_mounted, within.stats.bytes_uploaded), (3, 0), "{:?}", within.stats);
    assert_eq!(
        sha256_hex(&dev.skopeo_raw(&format!("shop-prod/user@{}", pushed.digest))),
        pushed.digest.to_string()
    );
}

// ------------------------------------------------------------------ scan gate on moto

/// Creates `repository` in moto and puts an image; returns moto's digest for it (moto's digest
/// is not the manifest's sha256, so the gate is asked about moto's).
async fn moto_image(ecr: &aws_sdk_ecr::Client, repository: &str, seed: &str) -> Digest {
    let _ = ecr.create_repository().repository_name(repository).send().await;
    let layer = Digest::of(seed.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(b"config").to_string(), "size": 6},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer.to_string(), "size": 10}]
    });
    let out = ecr
        .put_image()
        .repository_name(repository)
        .image_manifest(manifest.to_string())
        .image_manifest_media_type("application/vnd.oci.image.manifest.v1+json")
        .image_tag(seed)
        .send()
        .await
        .unwrap();
    Digest::parse(out.image().unwrap().image_id().unwrap().image_digest().unwrap()).unwrap()
}

fn inject(
    moto: &Moto,
    repository: &str,
    digest: &Digest,
    status: &str,
    findings: &serde_json::Value,
    enhanced: &serde_json::Value,
) {
    moto.control(
        "/moto-api/static/ecr/scan-finding-results",
        &serde_json::json!({"region": REGION, "results": [{
            "registryId": "123456789012",
            "repositoryName": repository,
            "imageId": {"imageDigest": digest.to_string()},
            "imageScanStatus": {"status": status, "description": "injected"},
            "imageScanFindings": {"findings": findings, "enhancedFindings": enhanced, "findingSeverityCounts": {}}
        }]}),
    );
}

fn date(s: &str) -> Date {
    Date::parse(s).unwrap()
}

fn scanner(ecr: aws_sdk_ecr::Client) -> EcrScanner {
    EcrScanner {
        poll: Duration::from_millis(100),
        max_poll: Duration::from_millis(300),
        ..EcrScanner::new(ecr)
    }
}

fn policy(max: SeverityLimits, ignore: Vec<ScanIgnore>, on_timeout: OnTimeout) -> ResolvedScan {
    ResolvedScan { max, ignore, on_timeout }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_gate_judges_ecr_findings_per_environment() {
    let moto = Moto::start();
    let ecr = aws_sdk_ecr::Client::new(&moto.sdk_config().await);
    let s = scanner(ecr.clone());
    let today = date("2026-11-23");
    let digest = moto_image(&ecr, "shop/user", "user-1").await;
    inject(
        &moto,
        "shop/user",
        &digest,
        "COMPLETE",
        &serde_json::json!([
            {"name": "CVE-2026-1111", "severity": "HIGH", "uri": "https://cve.example/1111", "attributes": [{"key": "package_name", "value": "zlib"}]},
            {"name": "CVE-2026-2222", "severity": "MEDIUM", "attributes": []}
        ]),
        &serde_json::json!([
            {"severity": "CRITICAL", "status": "ACTIVE", "score": 9.8, "fixAvailable": "YES",
             "packageVulnerabilityDetails": {"vulnerabilityId": "CVE-2026-3333", "vulnerablePackages": [{"name": "openssl", "version": "3.0.1", "fixedInVersion": "3.0.9"}]}},
            {"severity": "CRITICAL", "status": "ACTIVE", "score": 9.1, "fixAvailable": "NO",
             "packageVulnerabilityDetails": {"vulnerabilityId": "CVE-2026-4444", "vulnerablePackages": [{"name": "glibc", "version": "2.36"}]}}
        ]),
    );
    let timeout = Duration::from_secs(20);
    let dev = policy(
        SeverityLimits { critical: Some(0), ..Default::default() },
        vec![
            ScanIgnore {
                id: "CVE-2026-3333".into(),
                reason: "fixed image rolls out next sprint".into(),
                expires: date("2026-12-31"),
            },
            ScanIgnore {
                id: "CVE-2026-4444".into(),
                reason: "glibc path not reachable".into(),
                expires: date("2026-12-01"),
            },
        ],
        OnTimeout::Fail,
    );
    let report = scan::gate(&s, &dev, "dev", "shop/user", &digest, timeout, today).await.unwrap();
    assert!(report.verdict.pass);
    assert_eq!(report.verdict.ignored.len(), 2);

    // The same findings in prod: stricter limits and an expired ignore entry.
    let prod = policy(
        SeverityLimits { critical: Some(0), high: Some(0), ..Default::default() },
        vec![
            ScanIgnore {
                id: "CVE-2026-3333".into(),
                reason: "fixed image rolls out next sprint".into(),
                expires: date("2026-12-31"),
            },
            ScanIgnore {
                id: "CVE-2026-4444".into(),
                reason: "glibc path not reachable".into(),
                expires: date("2026-11-01"),
            },
        ],
        OnTimeout::Fail,
    );
    let err = scan::gate(&s, &prod, "prod", "shop/user", &digest, timeout, today).await.unwrap_err();
    insta::assert_snapshot!("scan-gate-refused", format!("{err}\nhint: {}", err.hint()));
    assert_eq!(deployer::Error::from(err).exit_code(), deployer::ExitCode::ScanGate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_gate_starts_a_missing_scan_and_fails_closed_on_timeout() {
    let moto = Moto::start();
    let ecr = aws_sdk_ecr::Client::new(&moto.sdk_config().await);
    let s = scanner(ecr.clone());
    let today = scan::today();

    // Never scanned: ScanNotFoundException → StartImageScan → moto's fixed result (one HIGH).
    let digest = moto_image(&ecr, "shop/order", "order-1").await;
    let outcome = s.await_scan("shop/order", &digest, Duration::from_secs(20)).await.unwrap();
    let scan::ScanOutcome::Complete { findings } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(findings[0].id, "CVE-9999-9999");
    assert_eq!(findings[0].severity, scan::Severity::High);
    assert_eq!(findings[0].package.as_deref(), Some("moto_fake"));

    // A scan that stays IN_PROGRESS: fail closed by default, pass when configured.
    let slow = moto_image(&ecr, "shop/order", "order-2").await;
    inject(&moto, "shop/order", &slow, "IN_PROGRESS", &serde_json::json!([]), &serde_json::json!([]));
    let closed = policy(SeverityLimits { critical: Some(0), ..Default::default() }, vec![], OnTimeout::Fail);
    let err = scan::gate(&s, &closed, "prod", "shop/order", &slow, Duration::from_secs(1), today)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("the scan was still IN_PROGRESS after 1s; on_timeout: fail (fail closed)"),
        "{text}"
    );
    let open = policy(SeverityLimits { critical: Some(0), ..Default::default() }, vec![], OnTimeout::Pass);
    let report =
        scan::gate(&s, &open, "dev", "shop/order", &slow, Duration::from_secs(1), today).await.unwrap();
    assert!(report.verdict.pass && report.verdict.undecided.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_honour_args_and_target_and_report_failures() {
    let dir = tempfile::tempdir().unwrap();
    let builder = Builder::Buildah { storage: Some(dir.path().join("storage")) };
    let fixtures = root().join("tests/fixtures/images");
    let request = |service: &str, context: &str| build::BuildRequest {
        service: service.into(),
        context: fixtures.join(context),
        dockerfile: "Dockerfile".into(),
        args: BTreeMap::from([("FLAVOUR".to_owned(), "spicy".to_owned())]),
        target: Some("release".into()),
        platform: "linux/amd64".into(),
        labels: labels(),
    };
    let built =
        build::build_all(&builder, vec![request("args", "args")], &dir.path().join("out"), 2).await.unwrap();
    let img = image::layout::read(&built[0].layout).unwrap();
    assert_eq!(img.top.blobs.len(), 2, "config + the release stage's one layer");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(img.blob_path(&img.top.blobs[0].digest)).unwrap()).unwrap();
    assert_eq!(config["config"]["Labels"]["shop.flavour"], "spicy");
    assert_eq!(config["architecture"], "amd64");

    let broken = build::BuildRequest { target: None, ..request("broken", "broken") };
    let err = build::build_all(&builder, vec![broken], &dir.path().join("out"), 2).await.unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("building `broken` failed (exit "), "{text}");
    assert!(text.contains("does-not-exist.txt"), "the builder's own words are kept: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_ecr_credentials_end_in_an_auth_error_not_a_refresh_loop() {
    let moto = Moto::start();
    let reg = TestRegistry::start_with(Mode::TlsBasic, "AWS", "a-different-password");
    let ecr = aws_sdk_ecr::Client::new(&moto.sdk_config().await);
    let client = Registry::connect(
        Endpoint::parse(&reg.endpoint).unwrap(),
        Credentials::Ecr { client: ecr },
        reg.options(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = synthetic_layout(dir.path(), &[2000], 31);
    let err = tokio::time::timeout(
        Duration::from_mins(1),
        Pusher::new(Arc::new(client)).push_layout(&layout, "shop/order", &[], &[]),
    )
    .await
    .expect("no refresh loop")
    .unwrap_err();
    assert!(matches!(err, image::Error::Unauthorized { .. }), "{err}");
    assert_eq!(deployer::Error::from(err).exit_code(), deployer::ExitCode::Auth);
}
