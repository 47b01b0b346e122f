//! Command-line interface: one file per subcommand, each turning its arguments into a stage call.

use clap::{Parser, Subcommand};
use ksinstall::exit::Outcome;

mod boot;
mod cluster;
mod hcl;
mod inspect;
mod install;
pub mod interactive;
mod iso;
mod media;
mod plan;
mod probe;
mod pxe;
mod report;
mod validate;

/// Output for people (text) or machines (json), shared by every subcommand that offers both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// An installer for ESXi hosts that carry a DPU (vSphere 8 Distributed Services Engine).
#[derive(Debug, Parser)]
#[command(name = "ksinstall", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Validate(validate::Args),
    Probe(probe::Args),
    Install(install::Args),
    Boot(boot::Args),
    Pxe(pxe::Args),
    Interactive(interactive::Args),
    Inspect(inspect::Args),
    Plan(plan::Args),
    /// Rules across the hosts of a cluster (docs/FLEET.md).
    #[command(subcommand)]
    Cluster(cluster::Command),
    /// DPU hardware compatibility against a table (docs/FLEET.md).
    #[command(subcommand)]
    Hcl(hcl::Command),
    /// Installation media against VMware's own metadata (docs/MEDIA.md).
    #[command(subcommand)]
    Media(media::Command),
    /// The installer ISO: a copy carrying a kickstart and boot options (docs/IMAGE.md).
    #[command(subcommand)]
    Iso(iso::Command),
    /// Receiving the reports of a rollout (docs/FLEET.md).
    #[command(subcommand)]
    Report(report::Command),
}

/// The exit codes of `install` and `boot`, for `--help` (README.md has the same table).
pub const EXIT_CODES: &str = "Exit codes:
  0  success (warnings allowed)
  1  usage error, or an I/O failure outside the classes below
  2  invalid kickstart (or a warning under --strict / paranoid)
  3  precondition: the hardware or the request does not allow the install
  4  installation media unreadable, malformed, or not matching VMware's metadata
  5  verification: what was written did not read back as planned
  6  writing to the target failed
  7  the DPU reported that its install failed
  8  a %pre or %post script failed
  9  the DPU said nothing for --dpu-timeout seconds
 10  the DPU payload did not reach the DPU
 11  the DPU's driver refused the request
 14  interrupted by SIGINT, SIGTERM or SIGHUP (stopped at the next safe point; see the report)";

/// How the DPUs are reached (shared by `install` and `probe`).
#[derive(Debug, Clone, clap::Args)]
pub struct DpuArgs {
    /// The DPU firmware bundles (default: found relative to this program: PREFIX/share/ksinstall/
    /// firmware, firmware/ beside it, the checkout it was built in; else
    /// /usr/share/ksinstall/firmware).
    #[arg(long, value_name = "DIR")]
    pub firmware: Option<std::path::PathBuf>,
    /// Talk devlink to a simulator on this Unix socket instead of the kernel (tests, demos).
    #[arg(long, value_name = "PATH")]
    pub devlink_socket: Option<std::path::PathBuf>,
    /// Tests only: reach the DSC through this devlink handle (BUS/DEVICE, e.g.
    /// netdevsim/netdevsim10) instead of pci/<its management function> (docs/TESTING.md).
    #[arg(long, value_name = "BUS/DEVICE", value_parser = parse_devlink_handle, hide = true)]
    pub dpu_devlink_handle: Option<(String, String)>,
    /// Give up on a DPU that says nothing (no log line, no flash status) for this long.
    #[arg(long, value_name = "SECS", default_value_t = ksinstall::dpu::DEFAULT_SILENCE_SECS)]
    pub dpu_timeout: u64,
}

/// `BUS/DEVICE` as devlink writes a handle (PCI addresses and netdevsim names hold no `/`).
fn parse_devlink_handle(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((bus, device)) if !bus.is_empty() && !device.is_empty() && !device.contains('/') => {
            Ok((bus.to_string(), device.to_string()))
        }
        _ => Err("expected BUS/DEVICE, e.g. netdevsim/netdevsim10".into()),
    }
}

impl DpuArgs {
    pub fn access(&self, sysroot: &std::path::Path) -> ksinstall::dpu::Access {
        let mut a = ksinstall::dpu::Access::new(sysroot);
        if let Some(p) = &self.devlink_socket {
            a.devlink = ksinstall::dpu::Endpoint::Simulator(p.clone());
        }
        a.silence = std::time::Duration::from_secs(self.dpu_timeout.max(1));
        a.devlink_handle = self.dpu_devlink_handle.clone();
        // bfb-install reads misc every second; five times a second costs nothing and ends the
        // wait sooner.
        a.poll = std::time::Duration::from_millis(200);
        a
    }
    pub fn firmware_root(&self) -> Result<std::path::PathBuf, String> {
        match &self.firmware {
            Some(dir) => Ok(dir.clone()),
            None => ksinstall::dpu::bundle::default_root().map_err(|e| e.to_string()),
        }
    }
}

impl Cli {
    /// Whether the command takes the whole screen, where log lines on stderr would garble it.
    pub fn is_full_screen(&self) -> bool {
        matches!(self.command, Command::Interactive(_))
    }
}

pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Validate(a) => validate::run(a),
        Command::Probe(a) => probe::run(a),
        Command::Install(a) => install::run(a),
        Command::Boot(a) => boot::run(a),
        Command::Pxe(a) => pxe::run(a),
        Command::Interactive(a) => interactive::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Cluster(c) => cluster::run(c),
        Command::Hcl(c) => hcl::run(c),
        Command::Media(c) => media::run(c),
        Command::Iso(c) => iso::run(c),
        Command::Report(c) => report::run(c),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_devlink_handle;

    #[test]
    fn a_devlink_handle_is_bus_slash_device() {
        assert_eq!(
            parse_devlink_handle("netdevsim/netdevsim10"),
            Ok(("netdevsim".to_string(), "netdevsim10".to_string()))
        );
        assert_eq!(
            parse_devlink_handle("pci/0000:45:00.0"),
            Ok(("pci".to_string(), "0000:45:00.0".to_string()))
        );
        for bad in ["netdevsim10", "/x", "pci/", "a/b/c"] {
            assert!(parse_devlink_handle(bad).is_err(), "{bad}");
        }
    }
}
