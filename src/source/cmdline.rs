//! Installer boot options from the kernel command line (`/proc/cmdline` or `--cmdline`), read as
//! ESXi's installer reads them (../shared/spec/kickstart.md §2): split like shlex, each word
//! matched in a fixed order, unknown words logged and ignored.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::words;

/// Where `ks=` says the kickstart is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "location")]
pub enum KsLocation {
    /// `ks=file://path`, `ks=/path`.
    File(String),
    /// `ks=http://...`, `ks=https://...`.
    Http(String),
    /// `ks=ftp://...` or `ks=nfs://...`: recognised, not supported.
    Unsupported(String),
    /// `ks=cdrom:/PATH`.
    Cdrom(String),
    /// `ks=usb` (`ks.cfg` at the root) or `ks=usb:/path`.
    Usb(String),
}

/// `ks=...` as a person reads it (a password in a URL redacted).
impl std::fmt::Display for KsLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KsLocation::File(p) => write!(f, "ks=file://{p}"),
            KsLocation::Http(u) | KsLocation::Unsupported(u) => {
                write!(f, "ks={}", crate::http::redact(u))
            }
            KsLocation::Cdrom(p) => write!(f, "ks=cdrom:{p}"),
            KsLocation::Usb(p) => write!(f, "ks=usb:{p}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemMediaSize {
    Min,
    Small,
    Default,
    Max,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootOptions {
    pub ks: Vec<KsLocation>,
    pub ip: Option<String>,
    pub netmask: Option<String>,
    pub gateway: Option<Ipv4Addr>,
    pub nameserver: Option<Ipv4Addr>,
    /// `netdevice=`/`ksdevice=`/`BOOTIF=`: a MAC (with `:`) or `vmnicN`.
    pub netdevice: Option<String>,
    pub vlan_id: Option<u16>,
    pub system_media_size: Option<SystemMediaSize>,
    /// `autoPartitionOSDataSize=` in MiB.
    pub osdata_size_mib: Option<u64>,
    pub allow_legacy_cpu: bool,
    /// `inst.ks.sendmac` (Anaconda's word; ESXi ignores it): send the MAC headers over HTTP.
    pub send_mac: bool,
    /// `inst.ks.sendsn`: send the serial number header over HTTP.
    pub send_serial: bool,
    /// `inst.repo=` (Anaconda's word; ESXi ignores it): where the installation media are, an
    /// http(s):// URL or an absolute path in the installer's file system. A PXE-booted installer
    /// image has no CD to find them on.
    pub media: Option<String>,
    /// Words we did not recognise (logged, ignored).
    pub ignored: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("boot option \"{word}\": {why}")]
pub struct BootOptionError {
    pub word: String,
    pub why: String,
}

/// Why the boot options of this run could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    /// The sysroot cannot be opened; the message names it.
    #[error("{message}")]
    Sysroot {
        sysroot: std::path::PathBuf,
        message: String,
    },
    /// `proc/cmdline` below the sysroot cannot be read; the message names it.
    #[error("{message}")]
    Unreadable {
        path: std::path::PathBuf,
        message: String,
    },
    #[error(transparent)]
    Option(#[from] BootOptionError),
}

/// A `ks=` value that is none of the kickstart locations ESXi knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a kickstart location (file://, /path, http(s)://, cdrom:/PATH, usb, usb:/PATH)")]
struct NotAKsLocation;

fn ks_location(v: &str) -> Result<KsLocation, NotAKsLocation> {
    let lower = v.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(KsLocation::Http(v.to_string()));
    }
    if lower.starts_with("ftp://") || lower.starts_with("nfs://") {
        return Ok(KsLocation::Unsupported(v.to_string()));
    }
    if let Some(p) = v.strip_prefix("file://") {
        // `file://etc/ks.cfg` (no third slash) means `/etc/ks.cfg`.
        return Ok(KsLocation::File(if p.starts_with('/') {
            p.to_string()
        } else {
            format!("/{p}")
        }));
    }
    if v.starts_with('/') {
        return Ok(KsLocation::File(v.to_string()));
    }
    if let Some(p) = v.strip_prefix("cdrom:") {
        return Ok(KsLocation::Cdrom(p.to_string()));
    }
    if lower == "usb" {
        return Ok(KsLocation::Usb("/ks.cfg".into()));
    }
    if let Some(p) = v.strip_prefix("usb:") {
        return Ok(KsLocation::Usb(p.to_string()));
    }
    Err(NotAKsLocation)
}

fn mac_from_bootif(v: &str) -> Option<String> {
    // PXELINUX IPAPPEND 2: `01-aa-bb-cc-dd-ee-ff`, the first byte being the hardware type.
    let (_, rest) = v.split_once('-')?;
    let mac = rest.replace('-', ":").to_ascii_lowercase();
    (mac.split(':').count() == 6
        && mac
            .split(':')
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit())))
    .then_some(mac)
}

impl BootOptions {
    /// The boot options of this run: `cmdline` when given (`--cmdline`), else `proc/cmdline`
    /// below the sysroot; none when that file does not exist (not a booted installer).
    pub fn read(
        sysroot: &std::path::Path,
        cmdline: Option<&str>,
    ) -> Result<BootOptions, CmdlineError> {
        let sys = crate::sysroot::Sysroot::new(sysroot).map_err(|e| CmdlineError::Sysroot {
            sysroot: sysroot.to_path_buf(),
            message: format!("{e:#}"),
        })?;
        BootOptions::read_in(&sys, cmdline)
    }

    /// As [`BootOptions::read`], through an open seam (so `probe --record` sees the read).
    pub(crate) fn read_in(
        sys: &crate::sysroot::Sysroot,
        cmdline: Option<&str>,
    ) -> Result<BootOptions, CmdlineError> {
        let rel = std::path::Path::new("proc/cmdline");
        let text = match cmdline {
            Some(c) => c.to_string(),
            None => sys
                .attr(rel)
                .map_err(|e| CmdlineError::Unreadable {
                    path: sys.host_path(rel),
                    message: format!("{e:#}"),
                })?
                .unwrap_or_default(),
        };
        // Its warnings become plan warnings (shown and reported there).
        Ok(BootOptions::parse(&text)?)
    }

    pub fn parse(cmdline: &str) -> Result<BootOptions, BootOptionError> {
        let mut o = BootOptions::default();
        if cmdline.len() >= 4096 {
            o.warnings.push(
                "the boot command line is 4096 bytes or longer and may have been truncated".into(),
            );
        }
        // shlex.split(cmdline), without comments: a `#` is part of a word here.
        let words =
            words::split_without_comments(cmdline.trim_end()).map_err(|e| BootOptionError {
                word: cmdline.to_string(),
                why: e.message.to_string(),
            })?;
        for w in words.into_iter().map(|w| w.text) {
            // The installer image's own options (docs/IMAGE.md): read by its init, not logged
            // here (ksinstall.report_token= carries a secret).
            if w.starts_with("ksinstall.") {
                continue;
            }
            let Some((key, value)) = w.split_once('=') else {
                match w.as_str() {
                    "inst.ks.sendmac" => o.send_mac = true,
                    "inst.ks.sendsn" => o.send_serial = true,
                    _ => o.ignored.push(w),
                }
                continue;
            };
            // ESXi matches each word against a list of patterns; a word that matches none is
            // logged and ignored. Only `ks=uuid` is fatal here (and `netmask=` without `ip=`).
            match o.word(key, value) {
                Ok(true) => {}
                Ok(false) => o.ignored.push(w.clone()),
                Err(WordError::Fatal(why)) => {
                    return Err(BootOptionError {
                        word: w.clone(),
                        why,
                    })
                }
                Err(WordError::Ignored(why)) => {
                    o.warnings.push(format!(
                        "boot option \"{}\" ignored: {why}",
                        crate::http::redact(&w)
                    ));
                    o.ignored.push(w.clone());
                }
            }
        }
        o.finish()
    }

    /// One `key=value` word: `Ok(false)` when it is not one of ours.
    fn word(&mut self, key: &str, value: &str) -> Result<bool, WordError> {
        let ignored = |why: &str| WordError::Ignored(why.to_string());
        match key {
            "ks" => {
                if value.to_ascii_lowercase().starts_with("uuid") {
                    return Err(WordError::Fatal(
                        "ks=uuid is no longer a supported method".into(),
                    ));
                }
                self.ks
                    .push(ks_location(value).map_err(|e| WordError::Ignored(e.to_string()))?);
            }
            "ip" | "netmask" | "gateway" | "nameserver" | "vlanid" => {
                self.network_word(key, value)?
            }
            "netdevice" | "ksdevice" => self.netdevice = Some(value.replace('-', ":")),
            "BOOTIF" => {
                self.netdevice = Some(
                    mac_from_bootif(value)
                        .ok_or_else(|| ignored("not of the form 01-aa-bb-cc-dd-ee-ff"))?,
                )
            }
            "systemMediaSize" => {
                self.system_media_size = Some(match value.to_ascii_lowercase().as_str() {
                    "min" => SystemMediaSize::Min,
                    "small" => SystemMediaSize::Small,
                    "default" => SystemMediaSize::Default,
                    "max" => SystemMediaSize::Max,
                    _ => return Err(ignored("must be min, small, default or max")),
                })
            }
            "autoPartitionOSDataSize" => {
                self.osdata_size_mib = Some(
                    value
                        .parse::<u64>()
                        .ok()
                        .filter(|v| *v > 0)
                        .ok_or_else(|| ignored("must be a size in MiB above 0"))?,
                )
            }
            "allowLegacyCPU" => self.allow_legacy_cpu = value.eq_ignore_ascii_case("true"),
            "inst.repo" => {
                // Lower-case schemes, as the media reader matches them.
                if !(value.starts_with("http://")
                    || value.starts_with("https://")
                    || value.starts_with('/'))
                {
                    return Err(ignored("not an http(s):// URL or an absolute path"));
                }
                self.media = Some(value.to_string());
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `ip=`, `netmask=`, `gateway=`, `nameserver=`, `vlanid=`.
    fn network_word(&mut self, key: &str, value: &str) -> Result<(), WordError> {
        let ignored = |why: &str| WordError::Ignored(why.to_string());
        let ipv4 = |v: &str| {
            v.parse::<Ipv4Addr>()
                .map_err(|_| ignored("not an IPv4 address"))
        };
        match key {
            "ip" => {
                let ok = value.parse::<Ipv4Addr>().is_ok()
                    || (value.contains(':')
                        && value
                            .split(':')
                            .next()
                            .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit())));
                if !ok {
                    return Err(ignored("not an IPv4 address or a colon form"));
                }
                self.ip = Some(value.to_string());
            }
            "netmask" => {
                let ok =
                    value.parse::<Ipv4Addr>().is_ok() || value.parse::<u8>().is_ok_and(|p| p <= 32);
                if !ok {
                    return Err(ignored("not a dotted netmask or a prefix length 0..32"));
                }
                self.netmask = Some(value.to_string());
            }
            "gateway" => self.gateway = Some(ipv4(value)?),
            "nameserver" => self.nameserver = Some(ipv4(value)?),
            _ => {
                self.vlan_id = Some(
                    value
                        .parse::<u16>()
                        .ok()
                        .filter(|v| *v <= 4095)
                        .ok_or_else(|| ignored("must be 0..4095"))?,
                )
            }
        }
        Ok(())
    }

    /// The rules across words, once all are read.
    fn finish(mut self) -> Result<BootOptions, BootOptionError> {
        if self.netmask.is_some() && self.ip.is_none() {
            return Err(BootOptionError {
                word: format!("netmask={}", self.netmask.unwrap_or_default()),
                why: "netmask= without ip=".into(),
            });
        }
        if self.ip.as_deref().is_some_and(|ip| !ip.contains(':')) && self.netmask.is_none() {
            self.warnings
                .push("ip= without netmask=: the classful netmask is used".into());
        }
        for w in &self.ignored {
            log::info!(
                "boot option \"{}\" is not one of ours; ignored",
                crate::http::redact(w)
            );
        }
        Ok(self)
    }
}

/// Why a boot option word was not taken: most are logged and ignored, as ESXi does; a few stop.
enum WordError {
    Fatal(String),
    Ignored(String),
}

/// `netdevice=`/`ksdevice=`/`BOOTIF=` must name a NIC the machine has: ESXi stops on an unknown
/// one (spec §2). A MAC is looked up in `sys/class/net/*/address` below the sysroot; a `vmnicN`
/// name cannot be checked from Linux (ESXi numbers NICs its own way) and is only logged. Without
/// `sys/class/net` (a recorded sysroot) there is nothing to check against.
pub fn check_netdevice(sysroot: &std::path::Path, o: &BootOptions) -> Result<(), BootOptionError> {
    let Some(dev) = o.netdevice.as_deref() else {
        return Ok(());
    };
    let net = sysroot.join("sys/class/net");
    let is_mac = dev.split(':').count() == 6;
    if !is_mac {
        log::info!("netdevice={dev}: an ESXi NIC name; not checked");
        return Ok(());
    }
    let Ok(sys) = crate::sysroot::Sysroot::new(sysroot) else {
        return Ok(());
    };
    let found = crate::sysroot::mac_addresses(&sys)
        .iter()
        .any(|(_, a)| a.eq_ignore_ascii_case(dev));
    if found {
        Ok(())
    } else {
        Err(BootOptionError {
            word: format!("netdevice={dev}"),
            why: format!(
                "no network interface has this MAC address (in {})",
                net.display()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_of_the_spec() {
        let o = BootOptions::parse("runweasel ks=http://10.0.0.1/ks.cfg ip=10.0.0.5 netmask=255.255.255.0 gateway=10.0.0.1 nameserver=10.0.0.2 BOOTIF=01-00-50-56-AA-BB-CC vlanid=20 systemMediaSize=min autoPartitionOSDataSize=8192 allowLegacyCPU=true debug inst.ks.sendmac inst.ks.sendsn").unwrap();
        assert!(o.send_mac && o.send_serial);
        assert_eq!(o.ks, [KsLocation::Http("http://10.0.0.1/ks.cfg".into())]);
        assert_eq!(o.netdevice.as_deref(), Some("00:50:56:aa:bb:cc"));
        assert_eq!(
            (
                o.vlan_id,
                o.system_media_size,
                o.osdata_size_mib,
                o.allow_legacy_cpu
            ),
            (Some(20), Some(SystemMediaSize::Min), Some(8192), true)
        );
        assert_eq!(o.ignored, ["runweasel", "debug"]);
        // The image's init's own words are neither ours nor logged (a report token is a secret).
        let o = BootOptions::parse("ks=usb ksinstall.report_token=s3cret ksinstall.shell").unwrap();
        assert!(o.ignored.is_empty() && o.warnings.is_empty(), "{o:?}");
        assert_eq!(
            BootOptions::parse("ks=file://etc/vmware/weasel/ks.cfg")
                .unwrap()
                .ks,
            [KsLocation::File("/etc/vmware/weasel/ks.cfg".into())]
        );
        assert_eq!(
            BootOptions::parse("ks=usb").unwrap().ks,
            [KsLocation::Usb("/ks.cfg".into())]
        );
        // Not a comment on the command line (shlex.split without comments=True).
        assert_eq!(
            BootOptions::parse("ks=file:///etc/a#b.cfg").unwrap().ks,
            [KsLocation::File("/etc/a#b.cfg".into())]
        );
        assert_eq!(
            BootOptions::parse("ks=cdrom:/KS_CUST.CFG").unwrap().ks,
            [KsLocation::Cdrom("/KS_CUST.CFG".into())]
        );
        assert_eq!(
            BootOptions::parse("netdevice=00-50-56-aa-bb-cc")
                .unwrap()
                .netdevice
                .as_deref(),
            Some("00:50:56:aa:bb:cc")
        );
    }

    #[test]
    fn inst_repo_names_the_media() {
        let o = BootOptions::parse("ks=http://10.0.2.2/ks.cfg inst.repo=http://10.0.2.2:8080/esxi")
            .unwrap();
        assert_eq!(o.media.as_deref(), Some("http://10.0.2.2:8080/esxi"));
        assert_eq!(
            BootOptions::parse("inst.repo=/run/media/esxi.iso")
                .unwrap()
                .media
                .as_deref(),
            Some("/run/media/esxi.iso")
        );
        // Anaconda's other forms are not ours: a warning, and the media are looked for elsewhere.
        let o = BootOptions::parse("inst.repo=nfs:server:/esxi").unwrap();
        assert_eq!(o.media, None);
        assert!(
            o.warnings.iter().any(|w| w.contains("inst.repo=nfs")),
            "{:?}",
            o.warnings
        );
    }

    #[test]
    fn a_sysroot_that_is_not_there_is_named() {
        let e = BootOptions::read(std::path::Path::new("/nonexistent-sysroot"), None).unwrap_err();
        assert!(
            matches!(&e, CmdlineError::Sysroot { sysroot, .. } if sysroot == std::path::Path::new("/nonexistent-sysroot")),
            "{e:?}"
        );
        assert!(e.to_string().contains("/nonexistent-sysroot"), "{e}");
        // A refused word keeps its own error, message unchanged.
        let e = BootOptions::read(std::path::Path::new("/"), Some("ks=uuid:1")).unwrap_err();
        assert!(matches!(e, CmdlineError::Option(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "boot option \"ks=uuid:1\": ks=uuid is no longer a supported method"
        );
    }

    #[test]
    fn the_spec_errors() {
        assert!(BootOptions::parse("netmask=255.255.255.0")
            .unwrap_err()
            .why
            .contains("without ip="));
        assert!(BootOptions::parse("ks=uuid:1234")
            .unwrap_err()
            .why
            .contains("no longer"));
        // Words that match no pattern are ignored with a warning, as ESXi logs and ignores them.
        let o = BootOptions::parse(
            "ip=dhcp systemMediaSize=huge vlanid=4096 gateway=x BOOTIF=zz ks=nowhere",
        )
        .unwrap();
        assert_eq!(o.ignored.len(), 6, "{:?}", o.ignored);
        assert!(o
            .warnings
            .iter()
            .any(|w| w.contains("systemMediaSize=huge")));
        assert_eq!((o.ip, o.system_media_size, o.vlan_id), (None, None, None));
    }
}
