//! `ksinstall inspect`: an installed disk read back, read-only: its banks, which one boots, and
//! what that bank's first boot will apply, with everything ESXi would not read flagged
//! (docs/FIRSTBOOT.md).

use super::Format;
use std::fmt::Write as _;
use std::path::PathBuf;

use ksinstall::exit::Outcome;
use ksinstall::inventory::content::{self, DiskContent};

/// Read an installed disk (device or image file) back: banks, builds, the bank that boots, and
/// what its first boot applies. Writes nothing. Exit 5 when the booting bank hands ESXi's first
/// boot something it would refuse or not read.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The disk: a block device or an image file.
    #[arg(value_name = "DISK|IMAGE")]
    disk: PathBuf,
    /// Logical sector size of an image file (a block device's is read from it).
    #[arg(long, value_name = "BYTES", default_value_t = 512)]
    sector_size: u32,
    /// Output for people (text) or machines (json).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    if let Err(e) = std::fs::File::open(&a.disk) {
        anyhow::bail!("{}: {e}", a.disk.display());
    }
    let c = content::read(&a.disk, a.sector_size);
    let problems = booting_bank_problems(&c);
    match a.format {
        Format::Json => {
            let doc = serde_json::json!({
                "disk": a.disk,
                "content": c,
                "first_boot_problems": problems,
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Format::Text => print!("{}", text(&a.disk, &c, &problems)),
    }
    Ok(if problems.is_empty() {
        Outcome::Success
    } else {
        Outcome::Verify
    })
}

/// The first-boot problems of the bank that boots (or of every bank when none boots).
fn booting_bank_problems(c: &DiskContent) -> Vec<String> {
    let Some(esx) = &c.esx else {
        return Vec::new();
    };
    esx.banks
        .iter()
        .filter(|b| esx.boots.is_none_or(|p| p == b.partition))
        .filter_map(|b| b.first_boot.as_ref())
        .flat_map(|f| f.problems.iter().cloned())
        .collect()
}

fn text(disk: &std::path::Path, c: &DiskContent, problems: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}: {}", disk.display(), c.summary());
    let Some(esx) = &c.esx else {
        let _ = writeln!(s, "No ESXi install on this disk.");
        return s;
    };
    for b in &esx.banks {
        let boots = if esx.boots == Some(b.partition) {
            " (boots)"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "Bank {}{boots}: build {}, updated {}, bootstate {}",
            b.partition,
            b.build.as_deref().unwrap_or("none"),
            b.updated.map(|u| u.to_string()).unwrap_or("-".into()),
            b.bootstate.map(|u| u.to_string()).unwrap_or("-".into()),
        );
        if let Some(p) = &b.problem {
            let _ = writeln!(s, "  unreadable: {p}");
        }
        match &b.first_boot {
            None => {}
            Some(f) if !f.pending => {
                let _ = writeln!(
                    s,
                    "  first boot done (onetime.tgz is no longer in boot.cfg)"
                );
            }
            Some(f) => {
                let _ = writeln!(s, "  first boot will apply (onetime.tgz):");
                for line in &f.applies {
                    let _ = writeln!(s, "    {line}");
                }
            }
        }
    }
    for p in problems {
        let _ = writeln!(s, "ESXi would not read: {p}");
    }
    s
}
