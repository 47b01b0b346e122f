//! The end of a boot-time install: what the kickstart's `reboot` asks for, done only when
//! allowed (`boot --allow-reboot`): eject the CDs that were read, then reboot.

use std::path::{Path, PathBuf};

use super::{Failure, KickstartInput};
use crate::exit::Outcome;
use crate::http::Http;
use crate::report::StepId;
use crate::source::cmdline::BootOptions;
use crate::source::kickstart::{self as ks_source, Reach};
use crate::source::{cdrom, usb};

/// Where a boot-time install gets its inputs.
pub struct Sources {
    pub kickstart: KickstartInput,
    /// `--media`, else `inst.repo=` (a PXE boot), else the installer CD.
    pub media: String,
    /// The CD drives read from, to eject before a reboot.
    pub cd_drives: Vec<PathBuf>,
}

/// The kickstart from where `ks=` says (each location in turn), and the media: `media` given,
/// else `inst.repo=`, else the CD drive that holds installer media.
pub fn sources(
    sysroot: &Path,
    boot: &BootOptions,
    media: Option<&str>,
    http: &Http,
    usb: usb::UsbScan,
) -> Result<Sources, Failure> {
    let usb_disks = || super::usb_disks(sysroot);
    let reach = Reach {
        sysroot,
        http,
        usb_disks: &usb_disks,
        usb,
    };
    let fetched = ks_source::fetch(&boot.ks, &reach)
        .map_err(|e| Failure::new(StepId::Source, Outcome::UsageOrIo, e.to_string()))?;
    log::info!("kickstart: {}", fetched.name);
    let mut cd_drives: Vec<PathBuf> = fetched.cdrom.iter().cloned().collect();
    let media = match media.map(str::to_string).or_else(|| boot.media.clone()) {
        Some(m) => m,
        None => {
            let (location, drive) = cdrom::installer_media(sysroot)
                .map_err(|e| Failure::new(StepId::Source, Outcome::Media, e.to_string()))?;
            if !cd_drives.contains(&drive) {
                cd_drives.push(drive);
            }
            location
        }
    };
    Ok(Sources {
        kickstart: KickstartInput {
            name: fetched.name,
            key: fetched.key,
            bytes: fetched.bytes,
        },
        media,
        cd_drives,
    })
}

/// What the end of a successful install does, as the kickstart's `reboot` and `--allow-reboot`
/// decide it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterInstall {
    /// The kickstart has no `reboot`: the machine stays up.
    StayUp,
    /// `reboot` without `--allow-reboot`: said, not done. `eject`: the CDs it would eject.
    WouldReboot { no_eject: bool, eject: Vec<PathBuf> },
    /// Eject these CDs, then reboot ([`reboot`]).
    Reboot { eject: Vec<PathBuf> },
}

impl AfterInstall {
    /// `reboot`: the kickstart's `reboot` (`Some(no_eject)`); `cd_drives`: the CDs read from.
    pub fn decide(reboot: Option<bool>, allowed: bool, cd_drives: &[PathBuf]) -> AfterInstall {
        let Some(no_eject) = reboot else {
            return AfterInstall::StayUp;
        };
        let eject = if no_eject {
            Vec::new()
        } else {
            cd_drives.to_vec()
        };
        if allowed {
            AfterInstall::Reboot { eject }
        } else {
            AfterInstall::WouldReboot { no_eject, eject }
        }
    }
}

impl std::fmt::Display for AfterInstall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AfterInstall::StayUp => {
                f.write_str("done; the kickstart has no `reboot`, so the machine stays up")
            }
            AfterInstall::WouldReboot { no_eject, eject } => {
                write!(
                    f,
                    "the kickstart says reboot{}; not rebooting without --allow-reboot",
                    if *no_eject { " --noeject" } else { "" }
                )?;
                if !eject.is_empty() {
                    let names: Vec<String> =
                        eject.iter().map(|p| p.display().to_string()).collect();
                    write!(f, " (would eject {})", names.join(", "))?;
                }
                Ok(())
            }
            AfterInstall::Reboot { .. } => f.write_str("rebooting"),
        }
    }
}

/// Eject `eject` (a drive that does not eject is only logged), then reboot the machine.
pub fn reboot(eject: &[PathBuf]) -> anyhow::Result<()> {
    for drive in eject {
        if let Err(e) = eject_cd(drive) {
            log::warn!("{}: not ejected: {e}", drive.display());
        }
    }
    reboot_now()
}

fn eject_cd(drive: &std::path::Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    /// `CDROMEJECT` from linux/cdrom.h.
    const CDROMEJECT: libc::c_ulong = 0x5309;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(drive)?;
    // SAFETY: a plain ioctl without argument on a file descriptor we own.
    if unsafe { libc::ioctl(f.as_raw_fd(), CDROMEJECT as _) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A clean reboot through systemd when it runs the machine, else sync and reboot(2) (an
/// installer image whose init is ksinstall's own wrapper).
fn reboot_now() -> anyhow::Result<()> {
    if std::path::Path::new("/run/systemd/system").is_dir() {
        let status = std::process::Command::new("systemctl")
            .arg("reboot")
            .status()
            .map_err(|e| anyhow::anyhow!("running systemctl reboot: {e}"))?;
        anyhow::ensure!(status.success(), "systemctl reboot: {status}");
        return Ok(());
    }
    // SAFETY: sync(2) and reboot(2) take no pointers.
    unsafe { libc::sync() };
    if unsafe { libc::reboot(libc::RB_AUTOBOOT) } != 0 {
        anyhow::bail!("reboot(2): {}", std::io::Error::last_os_error());
    }
    Ok(())
}
