use ksinstall::exit::Outcome;

/// Check kickstart files the way the ESXi installer reads them.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kickstart files to check.
    #[arg(required = true)]
    files: Vec<std::path::PathBuf>,
}

pub fn run(_a: Args) -> anyhow::Result<Outcome> {
    anyhow::bail!("validate: in progress")
}
