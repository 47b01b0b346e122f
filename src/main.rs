use std::process::ExitCode;

use clap::Parser;
use ksinstall::exit::Outcome;

mod cli;

fn main() -> ExitCode {
    let args = cli::Cli::try_parse();
    // A full-screen command logs only when asked (RUST_LOG, with stderr sent elsewhere).
    let default_filter = match &args {
        Ok(a) if a.is_full_screen() => "off",
        _ => "warn,fatfs=error",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter))
        .format_timestamp(None)
        .init();
    let args = match args {
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
