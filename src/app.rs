//! Runs one parsed command: wires the event sinks, loads configuration, and dispatches.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use std::sync::{Arc, Mutex};

use crate::cli::{Cli, Command, DeployArgs, ImageArgs, OutputFormat, RenderArgs};
use crate::config::{Config, ConfigErrors, Environment, did_you_mean};
use crate::engine::cancel::Cancel;
use crate::error::{Error, ExitCode};
use crate::events::{Event, Fanout, Phase, Sink};
use crate::identity;
use crate::identity::Masker;
use crate::identity::guard::{LinePrompt, Prompt};
use crate::pipeline::{self, phase};
use crate::plan::{self, Inputs};
use crate::report::{self, github::Github, live};
use crate::support::VarFn;

/// What the binary gives the library: where to write, where to read confirmations from.
pub struct Io {
    pub stdout: Box<dyn Write + Send>,
    pub stderr: Box<dyn Write + Send>,
    pub stdin: Box<dyn std::io::BufRead + Send>,
    /// Whether stdin is a terminal (a confirmation can be asked for).
    pub interactive: bool,
    /// Whether stderr is a terminal (a person may be watching: live progress lines).
    pub stderr_is_terminal: bool,
    /// SIGINT/SIGTERM ([`listen_for_signals`]); `Cancel::default()` never cancels.
    pub cancel: Cancel,
}

/// Turns SIGINT and SIGTERM into cancellation (GitHub Actions cancels a job with SIGINT, then
/// SIGTERM 7.5 s later, then SIGKILL): the first stops new work and undoes what is in flight,
/// the second abandons the undo (record and lock release only), a third exits at once with
/// [`ExitCode::Cancelled`] and no cleanup. Call it inside the runtime.
pub fn listen_for_signals() -> Cancel {
    let (trigger, cancel) = Cancel::new();
    let mut signals = Signals::new();
    tokio::spawn(async move {
        while signals.next().await {
            trigger.signal();
            if trigger.count() >= 3 {
                std::process::exit(i32::from(ExitCode::Cancelled.code()));
            }
        }
    });
    cancel
}

/// SIGINT and SIGTERM, registered once: a stream only sees signals that arrive after it was
/// created, so re-registering per wait could lose a second signal sent right after the first.
#[cfg(unix)]
struct Signals(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

#[cfg(unix)]
impl Signals {
    fn new() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self(signal(SignalKind::interrupt()).ok().zip(signal(SignalKind::terminate()).ok()))
    }

    /// Waits for the next signal; false when signals cannot be listened to.
    async fn next(&mut self) -> bool {
        let Some((int, term)) = self.0.as_mut() else { return false };
        tokio::select! {
            s = int.recv() => s.is_some(),
            s = term.recv() => s.is_some(),
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    const fn new() -> Self {
        Self
    }

    async fn next(&mut self) -> bool {
        tokio::signal::ctrl_c().await.is_ok()
    }
}

/// One writer shared by the renderer and the masker, so `::add-mask::` lines and output
/// interleave in order.
#[derive(Clone)]
struct SharedOut(Arc<Mutex<Box<dyn Write + Send>>>);

impl Write for SharedOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("stdout lock poisoned"))?.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().map_err(|_| std::io::Error::other("stdout lock poisoned"))?.flush()
    }
}

/// Runs the command and returns the process exit code.
pub async fn run(cli: Cli, io: Io, var: VarFn<'_>) -> ExitCode {
    // Completions and the man page describe the CLI itself: no events, no configuration.
    if matches!(cli.command, Command::Completions(_) | Command::Man) {
        let mut out = io.stdout;
        return match crate::cli::generate(&cli.command, &mut out).and_then(|()| out.flush()) {
            Ok(()) => ExitCode::Success,
            Err(e) => {
                let mut err = io.stderr;
                let _ = writeln!(err, "error: cannot write to stdout: {e}");
                ExitCode::Internal
            }
        };
    }
    let in_actions = var("GITHUB_ACTIONS").as_deref() == Some("true");
    let format =
        cli.global.output.unwrap_or(if in_actions { OutputFormat::Github } else { OutputFormat::Human });
    let documents = SharedOut(Arc::new(Mutex::new(io.stdout)));
    // The confirmation question goes to stderr too, in order with the rest.
    let stderr = SharedOut(Arc::new(Mutex::new(io.stderr)));
    // `render` keeps stdout for the rendered documents (`render > all.yaml`, `| kubectl diff -f -`):
    // its events, results and (in Actions) mask commands, which the runner reads on either
    // stream, go to stderr.
    let stdout = if matches!(cli.command, Command::Render(_)) { stderr.clone() } else { documents.clone() };
    // In Actions every secret is announced to the runner before it could be printed.
    let masker = if in_actions {
        let out = stdout.clone();
        Arc::new(Masker::with_sink(move |line| {
            let mut out = out.clone();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }))
    } else {
        Arc::new(Masker::new())
    };
    // Every command, before anything reads or could print them (issue 15).
    masker.add_env(var);
    // `-v` / `RUST_LOG`: diagnostics on stderr, scrubbed by the same masker.
    if let Some(filter) = report::diagnostics::filter(cli.global.verbose, var("RUST_LOG").as_deref()) {
        report::diagnostics::install(filter, masker.clone(), Box::new(stderr.clone()));
    }
    // A person at a terminal gets live lines per service; pipes and CI logs the plain ones.
    let view = live::display(&live::DisplayInputs::from_env(
        io.stderr_is_terminal,
        cli.global.quiet,
        format != OutputFormat::Human,
        &|k| var(k),
    ));
    let mut live_view = None;
    let renderer: Arc<dyn Sink> = match format {
        OutputFormat::Human => match view {
            live::Display::Live { color } => {
                let l = Arc::new(live::Live::stderr(
                    Box::new(stdout.clone()),
                    Box::new(stderr.clone()),
                    cli.global.verbose,
                    color,
                ));
                live_view = Some(l.clone());
                l
            }
            live::Display::Plain => Arc::new(report::Human::new(
                Box::new(stdout.clone()),
                Box::new(stderr.clone()),
                cli.global.verbose,
                cli.global.quiet,
            )),
        },
        OutputFormat::Json => Arc::new(report::JsonLines::new(Box::new(stdout.clone()))),
        OutputFormat::Github => Arc::new(
            Github::new(
                Box::new(stdout.clone()),
                var("GITHUB_STEP_SUMMARY").map(PathBuf::from),
                var("GITHUB_OUTPUT").map(PathBuf::from),
            )
            .with_links(report::notify::github::links_from_env(var)),
        ),
    };
    let mut prompt = Asking {
        line: LinePrompt { reader: io.stdin, writer: stderr, interactive: io.interactive },
        live: live_view,
    };
    let command_name = command_name(&cli.command);
    renderer.emit(&Event::Started {
        command: command_name.into(),
        product: None,
        environment: cli.global.env.clone(),
    });
    let changes = matches!(cli.command, Command::Deploy(_) | Command::Rollback(_));
    let work = async {
        match &cli.command {
            Command::Render(args) => (Box::pin(render(&cli, args, &*renderer, documents, var)).await, None),
            _ => Box::pin(dispatch(&cli, renderer.clone(), masker, &mut prompt, var, &io.cancel)).await,
        }
    };
    // deploy and rollback end on a known state themselves (the engine reads the signal);
    // every other command changes nothing and just stops.
    let (result, notifiers) = if changes {
        work.await
    } else {
        tokio::select! {
            r = work => r,
            () = io.cancel.stopped() => (Err(Error::Cancelled {
                message: format!("{command_name} was cancelled"),
                hint: "it changes nothing; run it again".into(),
            }), None),
        }
    };
    let code = match &result {
        Ok(()) => ExitCode::Success,
        Err(e) => e.exit_code(),
    };
    let finished = Event::finished(code, result.err().map(|e| e.problems()).unwrap_or_default());
    renderer.emit(&finished);
    if let Some(n) = notifiers {
        let sink = n.sink();
        sink.emit(&finished);
        n.flush(report::notify::FLUSH_BOUND).await;
    }
    code
}

/// The confirmation prompt on stderr; live lines stop redrawing while a person answers.
struct Asking<R, W> {
    line: LinePrompt<R, W>,
    live: Option<Arc<live::Live>>,
}

impl<R: std::io::BufRead, W: Write> Prompt for Asking<R, W> {
    fn ask(&mut self, question: &str) -> Option<String> {
        match &self.live {
            Some(l) => l.suspend(|| self.line.ask(question)),
            None => self.line.ask(question),
        }
    }
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Deploy(_) => "deploy",
        Command::Plan(_) => "plan",
        Command::Render(_) => "render",
        Command::Rollback(_) => "rollback",
        Command::Status => "status",
        Command::History(_) => "history",
        Command::Promote(_) => "promote",
        Command::Validate(_) => "validate",
        Command::Completions(_) => "completions",
        Command::Man => "man",
    }
}

async fn dispatch(
    cli: &Cli,
    renderer: Arc<dyn Sink>,
    masker: Arc<Masker>,
    prompt: &mut dyn Prompt,
    var: VarFn<'_>,
    cancel: &Cancel,
) -> (Result<(), Error>, Option<report::notify::Notifiers>) {
    let events: &dyn Sink = &*renderer;
    match &cli.command {
        Command::Deploy(_) | Command::Rollback(_) => {
            let (config, env) = match load(cli, events, Access::Write).await {
                Ok(x) => x,
                Err(e) => return (Err(e), None),
            };
            // Slack's URL and token are masked before the notifiers read them (GitHub's token
            // and the OIDC request token were at start, by `add_env`).
            masker.add_notifications(&env.notifications, var);
            let setup = report::notify::Setup::from_env(&env, var, None);
            for w in &setup.warnings {
                events.emit(&Event::Warning { message: w.clone() });
            }
            let notifiers = report::notify::spawn(setup, renderer.clone());
            let fan = Fanout::new(vec![Box::new(renderer.clone()), Box::new(notifiers.sink())]);
            let cx = pipeline::Context { config: &config, env: &env, var, events: &fan, masker };
            let result = match &cli.command {
                Command::Deploy(args) => Box::pin(deploy(&cx, args, prompt, cancel)).await,
                Command::Rollback(args) => {
                    let flags = pipeline::Flags {
                        yes: args.yes,
                        cancel: cancel.clone(),
                        ..pipeline::Flags::default()
                    };
                    Box::pin(pipeline::rollback(&cx, args.to.as_deref(), &flags, prompt)).await.map(|_| ())
                }
                _ => Ok(()),
            };
            (result, Some(notifiers))
        }
        _ => (Box::pin(dispatch_read_only(cli, events, masker, var)).await, None),
    }
}

async fn deploy(
    cx: &pipeline::Context<'_>,
    args: &DeployArgs,
    prompt: &mut dyn Prompt,
    cancel: &Cancel,
) -> Result<(), Error> {
    let mut inputs = inputs(cx.config, &args.images)?;
    // Digests given on the command line are pinned as the images step will pin them, so the
    // preflight's render is the release's render (compared in `observe::render_services`).
    inputs.pinned = pipeline::known_pins(cx.config, &inputs);
    // Everything that needs no credentials is checked before STS: a release that would be
    // refused takes no lock, and a configuration error is never hidden behind an auth one.
    let (problems, rendered) = phase(cx.events, Phase::Config, async {
        Ok(crate::validate::preflight(cx.config, cx.env, &inputs, cx.var).await)
    })
    .await?;
    if !problems.is_empty() {
        return Err(ConfigErrors(problems).into());
    }
    inputs.rendered = rendered;
    let session = pipeline::establish(cx).await?;
    let flags = pipeline::Flags {
        yes: args.yes,
        force_conflicts: args.force_conflicts,
        allow_prune: args.allow_prune,
        cancel: cancel.clone(),
    };
    Box::pin(pipeline::deploy(cx, &session, inputs, &flags, prompt)).await
}

async fn dispatch_read_only(
    cli: &Cli,
    events: &dyn Sink,
    masker: Arc<Masker>,
    var: VarFn<'_>,
) -> Result<(), Error> {
    match &cli.command {
        Command::Validate(args) => {
            let config =
                phase(events, Phase::Config, async { Ok(Config::load(&cli.global.config)?) }).await?;
            let names = match &cli.global.env {
                Some(e) => vec![e.clone()],
                None => config.environment_names(),
            };
            let mut errors = Vec::new();
            let today = crate::image::scan::today();
            for name in &names {
                match config.environment(name) {
                    Err(ConfigErrors(mut e)) => errors.append(&mut e),
                    Ok(env) => {
                        for message in config.warnings(&env).into_iter().chain(expired_ignores(&env, today)) {
                            events.emit(&Event::Warning { message });
                        }
                    }
                }
            }
            if !errors.is_empty() {
                return Err(ConfigErrors(errors).into());
            }
            if let Some(dir) = &args.write_schema {
                write_schemas(dir)?;
            }
            events.emit(&Event::Validated {
                product: config.product.product.as_str().to_owned(),
                environments: names,
                services: config.product.services.len(),
            });
            Ok(())
        }
        Command::Plan(args) => {
            let (config, env) = load(cli, events, Access::Read).await?;
            let inputs = inputs(&config, &args.images)?;
            // With credentials the plan includes live state; a failure to get in is reported as
            // "not observed", not as a failed plan.
            let cx = pipeline::Context { config: &config, env: &env, var, events, masker };
            let session = match identity::detect(&|k| var(k)) {
                None => None,
                Some(_) => Some(Box::pin(pipeline::establish(&cx)).await.map_err(|e| {
                    let p = e.problems();
                    p.first()
                        .map(|p| format!("{} ({})", p.message, p.hint.clone().unwrap_or_default()))
                        .unwrap_or_default()
                })),
            };
            let (the_plan, render_errors, _) = Box::pin(pipeline::compute_plan(
                &config,
                &env,
                &inputs,
                events,
                var,
                session.as_ref().map(|s| s.as_ref().map_err(Clone::clone)),
            ))
            .await?;
            if let Some(path) = &args.markdown {
                std::fs::write(path, plan::render::markdown(&the_plan))
                    .map_err(|e| Error::internal(format!("cannot write {}: {e}", path.display())))?;
            }
            events.emit(&Event::Planned { plan: Box::new(the_plan) });
            // The plan is shown either way; a broken overlay still makes the command fail.
            if render_errors.is_empty() { Ok(()) } else { Err(ConfigErrors(render_errors).into()) }
        }
        Command::History(args) => {
            let (config, env) = load(cli, events, Access::Write).await?;
            let cx = pipeline::Context { config: &config, env: &env, var, events, masker };
            let history = Box::pin(pipeline::history(&cx)).await?;
            let rows = history
                .iter()
                .take(args.limit)
                .map(|r| {
                    vec![
                        r.id.clone(),
                        r.outcome.clone(),
                        r.started.clone(),
                        r.actor.clone(),
                        r.commit.clone(),
                        r.returned_to.clone(),
                    ]
                })
                .collect();
            let columns = ["release", "outcome", "started", "actor", "commit", "returned to"];
            events.emit(&Event::Table {
                title: format!("releases of {} in {}", config.product.product.as_str(), env.name),
                columns: columns.iter().map(|c| (*c).to_owned()).collect(),
                rows,
            });
            Ok(())
        }
        Command::Status => {
            let (config, env) = load(cli, events, Access::Write).await?;
            let cx = pipeline::Context { config: &config, env: &env, var, events, masker };
            let status = Box::pin(pipeline::status(&cx)).await?;
            let rows = status
                .services
                .iter()
                .map(|s| {
                    vec![
                        s.service.clone(),
                        s.digest.strip_prefix("sha256:").map_or_else(
                            || s.digest.clone(),
                            |d| format!("sha256:{}", &d[..d.len().min(12)]),
                        ),
                        s.release.clone(),
                        s.since.clone(),
                        if s.drifted {
                            format!("DRIFTED: runs {}", s.live.join(", "))
                        } else {
                            "in sync".to_owned()
                        },
                    ]
                })
                .collect();
            let columns = ["service", "digest", "release", "since", "live state"];
            events.emit(&Event::Table {
                title: format!("{} in {}", config.product.product.as_str(), env.name),
                columns: columns.iter().map(|c| (*c).to_owned()).collect(),
                rows,
            });
            events.emit(&Event::Table {
                title: "release state".to_owned(),
                columns: vec!["what".to_owned(), "state".to_owned()],
                rows: status.notes.iter().map(|(k, v)| vec![k.clone(), v.clone()]).collect(),
            });
            Ok(())
        }
        Command::Promote(args) => {
            let config =
                phase(events, Phase::Config, async { Ok(Config::load(&cli.global.config)?) }).await?;
            if args.from == args.to {
                return Err(Error::Usage {
                    message: format!("`promote --from {} --to {}` names the same environment twice", args.from, args.to),
                    hint: "promote from the environment that verified the images to another one, e.g. `--from staging --to prod`".into(),
                });
            }
            // The source is only read (its read-only role, when it has one); `--role-arn` is
            // the role for the environment being changed.
            let from = config.environment(&args.from)?.for_reading();
            let mut to = config.environment(&args.to)?;
            if let Some(arn) = &cli.global.role_arn {
                identity::override_role(&mut to, arn)?;
            }
            let from_cx =
                pipeline::Context { config: &config, env: &from, var, events, masker: masker.clone() };
            let to_cx = pipeline::Context { config: &config, env: &to, var, events, masker };
            let pinned = Box::pin(pipeline::promote(&from_cx, &to_cx)).await?;
            let lines: Vec<String> =
                pinned.iter().map(|(s, p)| format!("{s}={}@{}", p.repository, p.digest)).collect();
            events.emit(&Event::Table {
                title: format!("verified in {}, promoted to {} (pass each as --image)", from.name, to.name),
                columns: vec!["image".to_owned()],
                rows: lines.iter().map(|l| vec![l.clone()]).collect(),
            });
            if let Some(path) = var("GITHUB_OUTPUT") {
                report::github::append_output(std::path::Path::new(&path), "images", &lines.join("\n"))
                    .map_err(|e| Error::internal(format!("cannot write GITHUB_OUTPUT: {e}")))?;
            }
            Ok(())
        }
        Command::Deploy(_)
        | Command::Rollback(_)
        | Command::Render(_)
        | Command::Completions(_)
        | Command::Man => Ok(()),
    }
}

/// `deployer render`: the documents on stdout (or one file per service in `--out-dir`), the
/// events on stderr. Reads no credentials: what it shows depends on the files and flags only.
async fn render(
    cli: &Cli,
    args: &RenderArgs,
    events: &dyn Sink,
    mut out: SharedOut,
    var: VarFn<'_>,
) -> Result<(), Error> {
    let (config, env) = load(cli, events, Access::Read).await?;
    let inputs = inputs(&config, &args.images)?;
    let planned = Box::pin(pipeline::render(&config, &env, &inputs, events, var)).await?;
    let files = pipeline::render_files(&planned, args.show_secrets)?;
    let Some(dir) = &args.out_dir else {
        // One stream: YAML documents separated by `---` (EKS), one JSON document a line (ECS).
        let mut text = String::new();
        for (i, f) in files.iter().enumerate() {
            if f.yaml && i > 0 {
                text.push_str("---\n");
            }
            text.push_str(&f.text);
        }
        return out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| Error::internal(format!("cannot write to stdout: {e}")));
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
    for f in &files {
        let path = dir.join(&f.file_name);
        std::fs::write(&path, &f.text)
            .map_err(|e| Error::internal(format!("cannot write {}: {e}", path.display())))?;
        events.emit(&Event::Service {
            service: f.service.clone(),
            phase: Phase::Render,
            message: format!("wrote {}", path.display()),
        });
    }
    Ok(())
}

/// Whether a command may change the environment: read-only ones use `role.plan_arn`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

async fn load(cli: &Cli, events: &dyn Sink, access: Access) -> Result<(Config, Environment), Error> {
    phase(events, Phase::Config, async {
        let config = Config::load(&cli.global.config)?;
        let Some(name) = &cli.global.env else {
            let known = config.environment_names();
            return Err(Error::Config(ConfigErrors(vec![crate::config::ConfigError {
                file: config.environments_dir.clone(),
                line: None,
                column: None,
                message: "no environment given".to_owned(),
                hint: Some(format!("pass `--env ENV`; known environments: {}", known.join(", "))),
            }])));
        };
        let mut env = config.environment(name)?;
        if access == Access::Read {
            env = env.for_reading();
        }
        if let Some(arn) = &cli.global.role_arn {
            identity::override_role(&mut env, arn)?;
        }
        for message in config.warnings(&env) {
            events.emit(&Event::Warning { message });
        }
        Ok((config, env))
    })
    .await
}

/// Parses `--image SERVICE=REF` and `--service NAME` against the product's services, before any
/// network call; every problem of the command line is reported at once.
pub fn inputs(config: &Config, args: &ImageArgs) -> Result<Inputs, Error> {
    let names: Vec<&str> = config.product.services.iter().map(|s| s.name.as_str()).collect();
    let problem = |message: String, hint: String| crate::config::ConfigError {
        file: config.path.clone(),
        line: None,
        column: None,
        message,
        hint: Some(hint),
    };
    let unknown = |what: &str, name: &str| {
        let hint = match did_you_mean(name, names.iter().copied()) {
            Some(s) => format!("did you mean `{s}`? services: {}", names.join(", ")),
            None => format!("services: {}", names.join(", ")),
        };
        problem(format!("{what} names unknown service `{name}`"), hint)
    };
    let mut errors = Vec::new();
    let mut images = BTreeMap::new();
    for spec in &args.images {
        let Some((svc, reference)) = spec.split_once('=') else {
            errors.push(problem(
                format!("`--image {spec}` is not SERVICE=REF"),
                "e.g. `--image user=123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/user:1.4.2`".into(),
            ));
            continue;
        };
        if !names.contains(&svc) {
            errors.push(unknown("--image", svc));
            continue;
        }
        if let Err(e) = crate::image::Reference::parse(reference) {
            errors.push(problem(
                format!("`--image {spec}`: {e}"),
                "give a reference as `[HOST/]REPOSITORY[:TAG][@sha256:<64 hex>]`".into(),
            ));
            continue;
        }
        if let Some(first) = images.insert(svc.to_owned(), reference.to_owned()) {
            errors.push(problem(
                format!("`--image` is given twice for service `{svc}` ({first} and {reference})"),
                "give each service's image once".into(),
            ));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for s in &args.services {
        if !names.contains(&s.as_str()) {
            errors.push(unknown("--service", s));
        } else if !seen.insert(s.as_str()) {
            errors.push(problem(format!("`--service {s}` is given twice"), "name each service once".into()));
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors).into());
    }
    Ok(Inputs { images, services: args.services.clone(), ..Inputs::default() })
}

/// Scan-ignore entries past their expiry date: their findings count again (a warning, so the
/// owner renews or removes them before a release is refused for it).
fn expired_ignores(env: &Environment, today: crate::config::values::Date) -> Vec<String> {
    env.scan
        .ignore
        .iter()
        .filter(|i| i.expires < today)
        .map(|i| {
            format!(
                "{}: scan ignore of {} expired on {}: its findings count again in the scan gate (renew `expires` or remove the entry)",
                env.file.display(),
                i.id,
                i.expires
            )
        })
        .collect()
}

fn write_schemas(dir: &std::path::Path) -> Result<(), Error> {
    let w = |name: &str, text: String| {
        std::fs::write(dir.join(name), text)
            .map_err(|e| Error::internal(format!("cannot write {}: {e}", dir.join(name).display())))
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
    w("deployer.schema.json", crate::config::schema::product_schema())?;
    w("environment.schema.json", crate::config::schema::environment_schema())
}
