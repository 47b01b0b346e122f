//! `ksinstall hcl check`: DPU model, firmware and ESXio against the compatibility table.

use std::path::PathBuf;

use ksinstall::exit::Outcome;
use ksinstall::fleet::hcl;

use super::cluster::{unreadable, Inputs};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check each host's DPU, its firmware and the image's ESXio against the compatibility
    /// table, and say which firmware bundle to use on which hosts. Exit 0: all compatible;
    /// 12: an incompatibility; 13: an input or the table unreadable.
    Check(Args),
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    inputs: Inputs,
    /// The compatibility table (default: hcl.toml in the firmware directory).
    #[arg(long, value_name = "FILE")]
    table: Option<PathBuf>,
    /// The firmware bundles to recommend from (default: found relative to this program, as for
    /// `install --firmware`).
    #[arg(long, value_name = "DIR")]
    firmware: Option<PathBuf>,
}

pub fn run(c: Command) -> anyhow::Result<Outcome> {
    let Command::Check(a) = c;
    let root = match a
        .firmware
        .clone()
        .map_or_else(ksinstall::dpu::bundle::default_root, Ok)
    {
        Ok(r) => r,
        Err(why) => return Ok(unreadable(&[why.to_string()])),
    };
    let table_path = a.table.clone().unwrap_or_else(|| root.join("hcl.toml"));
    let table = match hcl::Table::read(&table_path) {
        Ok(t) => t,
        Err(e) => return Ok(unreadable(&[format!("{e:#}")])),
    };
    let bundles = match hcl::bundles_in(&root) {
        Ok(b) => b,
        Err(e) => return Ok(unreadable(&[format!("{e:#}")])),
    };
    let hosts = match a.inputs.read() {
        Ok(h) => h,
        Err(p) => return Ok(unreadable(&p)),
    };
    let verdict = hcl::check(&hosts, &table, &bundles);
    let json = serde_json::json!({ "table": table_path, "hosts": hosts, "verdict": verdict });
    super::cluster::show(a.inputs.format, &json, &verdict.text(), verdict.ok)
}
