//! The `deployer` binary: parse arguments, run, exit with the command's code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = deployer::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(deployer::ExitCode::Internal.code());
        }
    };
    let var = |k: &str| std::env::var(k).ok();
    let code = runtime.block_on(async {
        let io = deployer::Io {
            stdout: Box::new(std::io::stdout()),
            stderr: Box::new(std::io::stderr()),
            stdin: Box::new(std::io::BufReader::new(std::io::stdin())),
            interactive: std::io::IsTerminal::is_terminal(&std::io::stdin()),
            stderr_is_terminal: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            cancel: deployer::app::listen_for_signals(),
        };
        deployer::run(cli, io, &var).await
    });
    std::process::ExitCode::from(code.code())
}
