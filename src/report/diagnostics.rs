//! `-v` / `RUST_LOG` diagnostics: a `tracing` subscriber that writes to the run's stderr, every
//! line passed through the [`Masker`] first, so a credential that reaches a log line (a token in
//! a URL, a header an SDK logs at `trace`) is printed as `***`, like everything else deployer
//! writes. Nothing is installed without `-v` or `RUST_LOG`: the normal output is the event
//! stream, and diagnostics are opt-in.
//!
//! Filter: `RUST_LOG` when set (the `tracing-subscriber` `EnvFilter` syntax, e.g.
//! `deployer=debug,kube=trace`); else `-v` = deployer at `debug`, `-vv` = deployer at `trace` and
//! the Kubernetes and AWS clients at `debug`; always at least `warn` for everything.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::identity::Masker;

/// The filter for `verbose` (`-v` count) and `RUST_LOG`; `None`: no diagnostics asked for.
pub fn filter(verbose: u8, rust_log: Option<&str>) -> Option<EnvFilter> {
    if let Some(spec) = rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        // A spec the filter cannot read still asked for diagnostics: its valid parts are kept.
        return Some(EnvFilter::builder().parse_lossy(spec));
    }
    match verbose {
        0 => None,
        1 => Some(EnvFilter::new("warn,deployer=debug")),
        _ => Some(EnvFilter::new(
            "warn,deployer=trace,kube_client=debug,aws_smithy_runtime=debug,aws_config=debug",
        )),
    }
}

/// Installs the subscriber for this process (the first call wins: one run per process).
pub fn install(filter: EnvFilter, masker: Arc<Masker>, stderr: Box<dyn Write + Send>) {
    let writer = Masked { masker, out: Arc::new(Mutex::new(stderr)) };
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .with_target(true)
        .finish();
    // Already installed (a second run in one process, e.g. a test): keep the first.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Makes one [`Line`] per event.
#[derive(Clone)]
struct Masked {
    masker: Arc<Masker>,
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl<'a> MakeWriter<'a> for Masked {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line { buf: Vec::new(), to: self.clone() }
    }
}

/// One formatted event, scrubbed and written whole when dropped (a secret split across two
/// writes would escape a per-write scrub).
struct Line {
    buf: Vec<u8>,
    to: Masked,
}

impl Write for Line {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let text = self.to.masker.scrub(&String::from_utf8_lossy(&self.buf));
        if let Ok(mut out) = self.to.out.lock() {
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_asked_for_diagnostics_install_a_filter() {
        assert!(filter(0, None).is_none());
        assert!(filter(0, Some("  ")).is_none());
        assert_eq!(filter(1, None).unwrap().to_string(), "deployer=debug,warn");
        assert!(filter(2, None).unwrap().to_string().contains("deployer=trace"));
        // RUST_LOG wins over -v.
        assert_eq!(filter(2, Some("kube_client=trace")).unwrap().to_string(), "kube_client=trace");
    }

    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_is_scrubbed_whole_before_it_is_written() {
        let masker = Arc::new(Masker::new());
        masker.add("s3cr3t-token-value");
        let sink = Arc::new(Mutex::new(Vec::<u8>::new()));
        let m = Masked { masker, out: Arc::new(Mutex::new(Box::new(Shared(sink.clone())))) };
        {
            let mut line = m.make_writer();
            // Split across writes, as a formatter writes fields.
            line.write_all(b"GET /api?token=s3cr3t-").unwrap();
            line.write_all(b"token-value 200\n").unwrap();
        }
        assert_eq!(String::from_utf8(sink.lock().unwrap().clone()).unwrap(), "GET /api?token=*** 200\n");
    }
}
