//! Push benchmark: deployer's native push against skopeo, same layout, same machine, same run.
//!
//! Run: `cargo bench --bench push` (needs Debian `docker-registry` and `skopeo`; see .ci/setup).
//! It generates a ~200 MB OCI layout of 3 gzip layers of random data (cached in bench/out/),
//! and per round starts two fresh docker-registry instances on loopback so neither tool
//! benefits from the other's blobs. Reported: median wall time of the first push for each tool,
//! their ratio, and the re-push time (all blobs already there). Writes bench/out/push.md.
//! Environment: `BENCH_ROUNDS` (default 5), `BENCH_MB` (default 200); for exploring only:
//! `BENCH_CHUNK_MB`, `BENCH_CONCURRENCY` (deployer's upload chunk size and blob parallelism).
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it only says how to run it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deployer::image::push::Pusher;
use deployer::image::{Credentials, Digest, Endpoint, Registry, RegistryOptions};

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("push benchmark: run it with `cargo bench --bench push`");
        return;
    }
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let megabytes: usize = std::env::var("BENCH_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/out");
    let layout = out.join(format!("layout-{megabytes}mb"));
    let size = ensure_layout(&layout, megabytes);
    // Knobs for exploring; the reported numbers use the defaults.
    let mut options = RegistryOptions::default();
    if let Some(mb) = std::env::var("BENCH_CHUNK_MB").ok().and_then(|v| v.parse::<usize>().ok()) {
        options.chunk_size = mb << 20;
    }
    if let Some(n) = std::env::var("BENCH_CONCURRENCY").ok().and_then(|v| v.parse::<usize>().ok()) {
        options.concurrency = n;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));

    let mut deployer_first = Vec::new();
    let mut deployer_again = Vec::new();
    let mut skopeo_first = Vec::new();
    let mut skopeo_again = Vec::new();
    for round in 0..rounds {
        let a = LocalRegistry::start(&out);
        let b = LocalRegistry::start(&out);
        // Alternate who goes first so neither gets a systematically warmer page cache or CPU.
        let run_deployer = |reg: &LocalRegistry| {
            rt.block_on(async {
                let client = Registry::connect(
                    Endpoint::parse(&format!("http://{}", reg.host)).unwrap_or_else(|e| panic!("{e}")),
                    Credentials::Anonymous,
                    options.clone(),
                )
                .unwrap_or_else(|e| panic!("{e}"));
                let pusher = Pusher::new(Arc::new(client));
                let t = Instant::now();
                let first = pusher.push_layout(&layout, "bench/deployer", &["v1".into()], &[]).await;
                let first_time = t.elapsed();
                let pushed = first.unwrap_or_else(|e| panic!("deployer push: {e}"));
                assert_eq!(pushed.stats.bytes_uploaded, size, "{:?}", pushed.stats);
                let t = Instant::now();
                let again = pusher.push_layout(&layout, "bench/deployer", &["v1".into()], &[]).await;
                let again_time = t.elapsed();
                assert_eq!(again.unwrap_or_else(|e| panic!("{e}")).stats.bytes_uploaded, 0);
                (first_time, again_time)
            })
        };
        let run_skopeo =
            |reg: &LocalRegistry| (skopeo(&layout, &reg.host, &out), skopeo(&layout, &reg.host, &out));
        let ((df, da), (sf, sa)) = if round % 2 == 0 {
            let d = run_deployer(&a);
            (d, run_skopeo(&b))
        } else {
            let s = run_skopeo(&b);
            (run_deployer(&a), s)
        };
        eprintln!(
            "round {}: deployer {:.3}s (re-push {:.3}s), skopeo {:.3}s (re-push {:.3}s)",
            round + 1,
            df.as_secs_f64(),
            da.as_secs_f64(),
            sf.as_secs_f64(),
            sa.as_secs_f64()
        );
        deployer_first.push(df);
        deployer_again.push(da);
        skopeo_first.push(sf);
        skopeo_again.push(sa);
    }
    let mut ratios: Vec<f64> =
        deployer_first.iter().zip(&skopeo_first).map(|(d, s)| d.as_secs_f64() / s.as_secs_f64()).collect();
    ratios.sort_by(f64::total_cmp);
    let round_ratio = ratios[ratios.len() / 2];
    let (df, da, sf, sa) = (
        median(&mut deployer_first),
        median(&mut deployer_again),
        median(&mut skopeo_first),
        median(&mut skopeo_again),
    );
    let report = format!(
        "| | deployer | skopeo 1.9 | ratio deployer/skopeo |\n|---|---|---|---|\n\
         | push {mb:.0} MB, 3 gzip layers, fresh registry | {df:.3} s | {sf:.3} s | {r1:.2}× |\n\
         | re-push (all blobs present) | {da:.3} s | {sa:.3} s | {r2:.2}× |\n\n\
         Median of {rounds} rounds (median of the per-round ratios: {round_ratio:.2}×); each round uses two \
         fresh docker-registry 2.8 instances on 127.0.0.1 (filesystem storage), one per tool, and alternates \
         which tool goes first.\n",
        mb = size as f64 / 1e6,
        df = df.as_secs_f64(),
        sf = sf.as_secs_f64(),
        da = da.as_secs_f64(),
        sa = sa.as_secs_f64(),
        r1 = df.as_secs_f64() / sf.as_secs_f64(),
        r2 = da.as_secs_f64() / sa.as_secs_f64(),
    );
    println!("{report}");
    let _ = std::fs::write(out.join("push.md"), &report);
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn skopeo(layout: &Path, host: &str, out: &Path) -> Duration {
    let tmp = out.join("skopeo-tmp");
    let _ = std::fs::create_dir_all(&tmp);
    let t = Instant::now();
    let status = Command::new("skopeo")
        .arg("--tmpdir")
        .arg(&tmp)
        .args(["--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}", layout.display()))
        .arg(format!("docker://{host}/bench/skopeo:v1"))
        .status()
        .unwrap_or_else(|e| panic!("skopeo (apt-get install skopeo): {e}"));
    let elapsed = t.elapsed();
    assert!(status.success(), "skopeo copy failed");
    elapsed
}

/// Writes the layout once: 3 layers of random bytes, gzip (fast level), plus config and manifest.
/// Returns the total blob bytes a push sends.
fn ensure_layout(dir: &Path, megabytes: usize) -> u64 {
    let blobs = dir.join("blobs/sha256");
    if !dir.join("index.json").exists() {
        eprintln!("generating a {megabytes} MB layout in {}", dir.display());
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(&blobs).unwrap_or_else(|e| panic!("{e}"));
        let write = |bytes: &[u8], media_type: &str| {
            let d = Digest::of(bytes);
            std::fs::write(blobs.join(d.hex()), bytes).unwrap_or_else(|e| panic!("{e}"));
            serde_json::json!({"mediaType": media_type, "digest": d.to_string(), "size": bytes.len()})
        };
        let per_layer = megabytes * 1_000_000 / 3;
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for _ in 0..3 {
            let mut raw = vec![0u8; per_layer];
            rand::fill(&mut raw[..]);
            diff_ids.push(Digest::of(&raw).to_string());
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&raw).unwrap_or_else(|e| panic!("{e}"));
            let gz = gz.finish().unwrap_or_else(|e| panic!("{e}"));
            layers.push(write(&gz, "application/vnd.oci.image.layer.v1.tar+gzip"));
        }
        let config = serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}});
        let config = write(config.to_string().as_bytes(), "application/vnd.oci.image.config.v1+json");
        let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": config, "layers": layers});
        let m = write(manifest.to_string().as_bytes(), "application/vnd.oci.image.manifest.v1+json");
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            dir.join("index.json"),
            serde_json::json!({"schemaVersion": 2, "manifests": [m]}).to_string(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let image = deployer::image::layout::read(dir).unwrap_or_else(|e| panic!("{e}"));
    image.blobs().iter().map(|b| b.size).sum()
}

/// A plain-HTTP docker-registry on a free loopback port; killed and removed on drop.
struct LocalRegistry {
    host: String,
    child: Child,
    /// Storage, removed when dropped.
    _dir: tempfile::TempDir,
}

impl LocalRegistry {
    fn start(out: &Path) -> Self {
        let _ = std::fs::create_dir_all(out);
        let dir = tempfile::tempdir_in(out).unwrap_or_else(|e| panic!("{e}"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_or_else(|e| panic!("{e}"), |a| a.port());
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: bench\n",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("docker-registry (apt-get install docker-registry): {e}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { host: format!("127.0.0.1:{port}"), child, _dir: dir }
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
