use std::process::ExitCode;

use clap::Parser;
use ksinstall::exit::Outcome;

mod cli;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn,fatfs=error"))
        .format_timestamp(None)
        .init();
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            // --help and --version are not failures; every real usage error is exit 1.
            let code = if e.use_stderr() {
                Outcome::UsageOrIo
            } else {
                Outcome::Success
            };
            let _ = e.print();
            return code.into();
        }
    };
    match cli::run(args) {
        Ok(outcome) => outcome.into(),
        Err(e) => {
            eprintln!("ksinstall: error: {e:#}");
            Outcome::UsageOrIo.into()
        }
    }
}
