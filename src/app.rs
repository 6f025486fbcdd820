//! Runs one parsed command: wires the event sinks, loads configuration, and dispatches.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use crate::cli::{Cli, Command, ImageArgs, OutputFormat};
use crate::config::{Config, ConfigError, ConfigErrors, Environment, Target, did_you_mean};
use crate::error::{Error, ExitCode};
use crate::events::{Event, Fanout, Phase, Sink};
use crate::identity;
use crate::observe::{self, VarFn};
use crate::plan::{self, Inputs};
use crate::render::RenderError;
use crate::report::{self, github::Github};

/// What the binary gives the library: where to write, and how to read the environment.
pub struct Io {
    pub stdout: Box<dyn Write + Send>,
    pub stderr: Box<dyn Write + Send>,
}

/// Runs the command and returns the process exit code.
pub async fn run(cli: Cli, io: Io, var: VarFn<'_>) -> ExitCode {
    let format = cli.global.output.unwrap_or_else(|| {
        if var("GITHUB_ACTIONS").as_deref() == Some("true") {
            OutputFormat::Github
        } else {
            OutputFormat::Human
        }
    });
    let sink: Box<dyn Sink> = match format {
        OutputFormat::Human => {
            Box::new(report::Human::new(io.stdout, io.stderr, cli.global.verbose, cli.global.quiet))
        }
        OutputFormat::Json => Box::new(report::JsonLines::new(io.stdout)),
        OutputFormat::Github => Box::new(Github::new(
            io.stdout,
            var("GITHUB_STEP_SUMMARY").map(PathBuf::from),
            var("GITHUB_OUTPUT").map(PathBuf::from),
        )),
    };
    let events = Fanout::new(vec![sink]);
    let command_name = command_name(&cli.command);
    events.emit(&Event::Started {
        command: command_name.into(),
        product: None,
        environment: cli.global.env.clone(),
    });
    let result = dispatch(&cli, &events, var).await;
    let code = match &result {
        Ok(()) => ExitCode::Success,
        Err(e) => e.exit_code(),
    };
    events.emit(&Event::finished(code, result.err().map(|e| e.problems()).unwrap_or_default()));
    code
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Deploy(_) => "deploy",
        Command::Plan(_) => "plan",
        Command::Rollback(_) => "rollback",
        Command::Status => "status",
        Command::History(_) => "history",
        Command::Promote(_) => "promote",
        Command::Validate(_) => "validate",
    }
}

/// Runs `f` as a phase: start and finish events with the elapsed time.
async fn phase<T, F: Future<Output = Result<T, Error>>>(
    events: &dyn Sink,
    phase: Phase,
    f: F,
) -> Result<T, Error> {
    let start = Instant::now();
    events.emit(&Event::PhaseStarted { phase });
    let r = f.await;
    let elapsed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    events.emit(&Event::PhaseFinished { phase, ok: r.is_ok(), elapsed_ms });
    r
}

async fn dispatch(cli: &Cli, events: &dyn Sink, var: VarFn<'_>) -> Result<(), Error> {
    match &cli.command {
        Command::Validate(args) => {
            let config =
                phase(events, Phase::Config, async { Ok(Config::load(&cli.global.config)?) }).await?;
            let names = match &cli.global.env {
                Some(e) => vec![e.clone()],
                None => config.environment_names(),
            };
            let mut errors = Vec::new();
            for name in &names {
                if let Err(ConfigErrors(mut e)) = config.environment(name) {
                    errors.append(&mut e);
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
            let (config, env) = load(cli, events).await?;
            let inputs = inputs(&config, &args.images)?;
            let (the_plan, render_errors) = compute_plan(&config, &env, &inputs, events, var).await?;
            if let Some(path) = &args.markdown {
                std::fs::write(path, plan::render::markdown(&the_plan))
                    .map_err(|e| Error::internal(format!("cannot write {}: {e}", path.display())))?;
            }
            events.emit(&Event::Planned { plan: Box::new(the_plan) });
            // The plan is shown either way; a broken overlay still makes the command fail.
            if render_errors.is_empty() { Ok(()) } else { Err(ConfigErrors(render_errors).into()) }
        }
        Command::Deploy(args) => {
            let (config, env) = load(cli, events).await?;
            let inputs = inputs(&config, &args.images)?;
            let (the_plan, render_errors) = compute_plan(&config, &env, &inputs, events, var).await?;
            events.emit(&Event::Planned { plan: Box::new(the_plan) });
            if !render_errors.is_empty() {
                return Err(ConfigErrors(render_errors).into());
            }
            require_credentials(var)?;
            Err(not_in_this_build("deploy"))
        }
        Command::Rollback(_) | Command::Status | Command::History(_) => {
            let (_config, _env) = load(cli, events).await?;
            require_credentials(var)?;
            Err(not_in_this_build(command_name(&cli.command)))
        }
        Command::Promote(args) => {
            let config =
                phase(events, Phase::Config, async { Ok(Config::load(&cli.global.config)?) }).await?;
            config.environment(&args.from)?;
            config.environment(&args.to)?;
            require_credentials(var)?;
            Err(not_in_this_build("promote"))
        }
    }
}

/// The apply half of these commands arrives with the identity, image and platform work; until
/// then they stop with a clear internal error rather than pretending to succeed.
fn not_in_this_build(command: &str) -> Error {
    Error::Internal {
        message: format!(
            "`deployer {command}` cannot change anything yet: this build has no {command} executor"
        ),
        hint:
            "use `deployer plan` to see what would happen; the executor lands with the EKS/ECS platform work"
                .to_owned(),
    }
}

fn require_credentials(var: VarFn<'_>) -> Result<identity::CredentialSource, Error> {
    identity::detect(&|k| var(k))
        .ok_or_else(|| Error::auth("no AWS credentials found", identity::NO_CREDENTIALS_HINT))
}

async fn load(cli: &Cli, events: &dyn Sink) -> Result<(Config, Environment), Error> {
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
        let env = config.environment(name)?;
        Ok((config, env))
    })
    .await
}

async fn compute_plan(
    config: &Config,
    env: &Environment,
    inputs: &Inputs,
    events: &dyn Sink,
    var: VarFn<'_>,
) -> Result<(plan::Plan, Vec<ConfigError>), Error> {
    let observed =
        phase(events, Phase::Observe, async { Ok(observe::observe(config, env, inputs, var).await) }).await?;
    for u in &observed.unobserved {
        events.emit(&Event::Unobserved { what: u.what.clone(), reason: u.reason.clone() });
    }
    let render_errors = render_errors(config, env, &observed);
    let the_plan =
        phase(events, Phase::Plan, async { Ok(plan::plan(config, env, &observed, inputs)) }).await?;
    Ok((the_plan, render_errors))
}

/// Render failures that are the configuration's fault (kustomize errors, bad templates, images
/// left un-pinned), each naming the overlay or template. A missing kustomize is not one: the
/// plan reports it as not rendered.
fn render_errors(config: &Config, env: &Environment, observed: &plan::Observed) -> Vec<ConfigError> {
    observed
        .renders
        .iter()
        .filter_map(|(service, r)| {
            let e = r.as_ref().err()?;
            if matches!(e, RenderError::NotFound(_)) {
                return None;
            }
            let svc = config.service(service)?;
            let file = match (&env.target, e) {
                (Target::Ecs(_), _) | (_, RenderError::TaskDefinition { .. }) => {
                    svc.ecs.as_ref().map(|t| config.root.join(&t.task_definition.value))
                }
                (Target::Eks(_), _) => config.overlay_dir(svc, &env.name),
            };
            Some(ConfigError {
                file: file.unwrap_or_else(|| config.path.clone()),
                line: None,
                column: None,
                message: e.to_string(),
                hint: Some(e.hint()),
            })
        })
        .collect()
}

/// Parses `--image SERVICE=REF` and `--service NAME` against the product's services.
pub fn inputs(config: &Config, args: &ImageArgs) -> Result<Inputs, Error> {
    let names: Vec<&str> = config.product.services.iter().map(|s| s.name.as_str()).collect();
    let unknown = |what: &str, name: &str| {
        let hint = match did_you_mean(name, names.iter().copied()) {
            Some(s) => format!("did you mean `{s}`? services: {}", names.join(", ")),
            None => format!("services: {}", names.join(", ")),
        };
        Error::Config(ConfigErrors(vec![crate::config::ConfigError {
            file: config.path.clone(),
            line: None,
            column: None,
            message: format!("{what} names unknown service `{name}`"),
            hint: Some(hint),
        }]))
    };
    let mut images = BTreeMap::new();
    for spec in &args.images {
        let Some((svc, reference)) = spec.split_once('=') else {
            return Err(Error::Config(ConfigErrors(vec![crate::config::ConfigError {
                file: config.path.clone(),
                line: None,
                column: None,
                message: format!("`--image {spec}` is not SERVICE=REF"),
                hint: Some(
                    "e.g. `--image user=123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/user:1.4.2`".into(),
                ),
            }])));
        };
        if !names.contains(&svc) {
            return Err(unknown("--image", svc));
        }
        images.insert(svc.to_owned(), reference.to_owned());
    }
    for s in &args.services {
        if !names.contains(&s.as_str()) {
            return Err(unknown("--service", s));
        }
    }
    Ok(Inputs { images, services: args.services.clone(), digests: BTreeMap::new() })
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
