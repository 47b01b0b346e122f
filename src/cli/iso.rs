//! `ksinstall iso customize`: a copy of the installer ISO carrying a kickstart or a `ks=` URL
//! and boot options (docs/IMAGE.md); `ksinstall iso show`: what an ISO carries.

use std::path::PathBuf;

use anyhow::Context;
use ksinstall::exit::Outcome;
use ksinstall::iso::{self, Embedded};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Write a copy of the installer ISO (`cargo xtask image`) that carries a kickstart (or a
    /// ks= URL) and boot options, read by the image's init at boot. The ISO given is only read.
    Customize(CustomizeArgs),
    /// Print the boot options and the kickstart an installer ISO carries.
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
pub struct CustomizeArgs {
    /// The kickstart to embed (the image boots it as ks=file://...).
    #[arg(long, value_name = "FILE", conflicts_with = "ks_url")]
    ks: Option<PathBuf>,
    /// A ks= location to boot with instead (http(s)://, usb, cdrom:/PATH, file://).
    #[arg(long, value_name = "URL")]
    ks_url: Option<String>,
    /// More boot options for the init and `ksinstall boot` (ip=, netdevice=, inst.repo=,
    /// ksinstall.report_url=, ...). They are not the kernel's own (console= stays as built).
    #[arg(long, value_name = "OPTIONS", default_value = "")]
    append: String,
    /// The customized copy (must not exist).
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// The installer ISO.
    iso: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    iso: PathBuf,
}

pub fn run(c: Command) -> anyhow::Result<Outcome> {
    match c {
        Command::Customize(a) => customize(a),
        Command::Show(a) => {
            let e = iso::read_embedded(&a.iso)?;
            println!("kargs: {}", e.kargs);
            match e.kickstart {
                Some(ks) => print!("kickstart ({} bytes):\n{ks}", ks.len()),
                None => println!("kickstart: none"),
            }
            Ok(Outcome::Success)
        }
    }
}

fn customize(a: CustomizeArgs) -> anyhow::Result<Outcome> {
    let kickstart = match &a.ks {
        Some(p) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("--ks {}", p.display()))?)
        }
        None => None,
    };
    let mut kargs = Vec::new();
    if let Some(u) = &a.ks_url {
        kargs.push(format!("ks={u}"));
    }
    if !a.append.trim().is_empty() {
        kargs.push(a.append.trim().to_string());
    }
    let e = Embedded {
        kargs: kargs.join(" "),
        kickstart,
    };
    let offset = iso::customize(&a.iso, &a.output, &e)?;
    log::info!("embed area at byte {offset}");
    println!(
        "{}: {} with boot options \"{}\" ({} left as it was)",
        a.output.display(),
        match &e.kickstart {
            Some(k) => format!("the kickstart embedded ({} bytes)", k.len()),
            None => "no kickstart embedded".into(),
        },
        e.kargs,
        a.iso.display()
    );
    Ok(Outcome::Success)
}
