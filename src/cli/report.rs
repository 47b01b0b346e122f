//! `ksinstall report serve`: store the reports a rollout's hosts post (docs/FLEET.md).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use ksinstall::exit::Outcome;
use ksinstall::fleet::receiver::{self, Receiver};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Receive `--report-url` posts (`--report-format json`) at http://ADDR/<host> and keep,
    /// per host, DIR/<host>.events.jsonl and its report DIR/<host>.json for `cluster check`.
    /// Runs until stopped.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Where the hosts' files go (made if missing).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// The address and port to listen on (port 0: any free one, printed).
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:8079")]
    listen: String,
}

pub fn run(c: Command) -> anyhow::Result<Outcome> {
    let Command::Serve(a) = c;
    let receiver = Receiver::new(&a.dir)?;
    let server = tiny_http::Server::http(&a.listen)
        .map_err(|e| anyhow::anyhow!("listening on {}: {e}", a.listen))?;
    let at = server
        .server_addr()
        .to_ip()
        .context("the server has no IP address")?;
    // The first line of output, for scripts that start it on port 0.
    println!(
        "listening on http://{at}/<host>, storing into {}",
        a.dir.display()
    );
    std::io::stdout().flush()?;
    let stop = std::sync::atomic::AtomicBool::new(false);
    receiver::serve(&server, &receiver, &stop)?;
    Ok(Outcome::Success)
}
