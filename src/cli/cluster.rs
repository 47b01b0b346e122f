//! `ksinstall cluster check`: the Distributed Services Engine rules across hosts.

use super::Format;
use ksinstall::exit::Outcome;
use ksinstall::fleet::{cluster, record, HostRecord};
use ksinstall::http::{Http, HttpOptions};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check that the hosts can form one DPU cluster: one supported DPU each, one DPU vendor and
    /// model, one image. Exit 0: every rule holds; 12: a rule is broken; 13: an input unreadable.
    Check(Args),
}

/// Where the host records come from, and how to print the verdict (shared with `hcl check`).
#[derive(Debug, clap::Args)]
pub struct Inputs {
    /// `install --report` files or `probe --format json` outputs: paths or http(s):// URLs.
    #[arg(value_name = "REPORT_OR_PROBE", required = true)]
    pub inputs: Vec<String>,
    /// Text for people, JSON for tools.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Trust the CA certificates in this PEM file for https:// inputs.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Do not check servers' TLS certificates.
    #[arg(long)]
    pub insecure: bool,
    /// Seconds to wait for a connection and for each read.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub http_timeout: u64,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub inputs: Inputs,
}

impl Inputs {
    /// Every input read and parsed, or the reason of each one that was not.
    pub fn read(&self) -> Result<Vec<HostRecord>, Vec<String>> {
        let timeout = std::time::Duration::from_secs(self.http_timeout.max(1));
        let http = if self.inputs.iter().any(|i| is_url(i)) {
            match Http::new(HttpOptions {
                ca_file: self.ca_file.clone(),
                insecure: self.insecure,
                connect_timeout: timeout,
                read_timeout: timeout,
                ..HttpOptions::default()
            }) {
                Ok(h) => Some(h),
                Err(e) => return Err(vec![format!("{e:#}")]),
            }
        } else {
            None
        };
        let names: Vec<String> = self.inputs.iter().map(|s| record::host_name(s)).collect();
        let mut hosts = Vec::new();
        let mut problems = Vec::new();
        for (source, stem) in self.inputs.iter().zip(&names) {
            // Two inputs with the same file name are told apart by their whole path.
            let name = if names.iter().filter(|n| *n == stem).count() > 1 {
                source.clone()
            } else {
                stem.clone()
            };
            let bytes = match (&http, is_url(source)) {
                (Some(h), true) => h.get_small(source).map_err(|e| format!("{e:#}")),
                _ => std::fs::read(source).map_err(|e| format!("reading {source}: {e}")),
            };
            match bytes
                .and_then(|b| HostRecord::parse(&name, source, &b).map_err(|e| e.to_string()))
            {
                Ok(h) => hosts.push(h),
                Err(e) => problems.push(e),
            }
        }
        if problems.is_empty() {
            Ok(hosts)
        } else {
            Err(problems)
        }
    }
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Say why inputs could not be read; the exit code for it.
pub fn unreadable(problems: &[String]) -> Outcome {
    for p in problems {
        eprintln!("ksinstall: error: {p}");
    }
    eprintln!("ksinstall: nothing was checked: every input must be readable");
    Outcome::InputUnreadable
}

pub fn run(c: Command) -> anyhow::Result<Outcome> {
    let Command::Check(a) = c;
    let hosts = match a.inputs.read() {
        Ok(h) => h,
        Err(p) => return Ok(unreadable(&p)),
    };
    let verdict = cluster::check(&hosts);
    let json = serde_json::json!({ "hosts": hosts, "verdict": verdict });
    show(a.inputs.format, &json, &verdict.text(), verdict.ok)
}

/// Print a check's verdict as asked, and its exit code for CI gates.
pub fn show(
    format: Format,
    json: &serde_json::Value,
    text: &str,
    ok: bool,
) -> anyhow::Result<Outcome> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(json)?),
        Format::Text => print!("{text}"),
    }
    Ok(if ok {
        Outcome::Success
    } else {
        Outcome::RuleBroken
    })
}
