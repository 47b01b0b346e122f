//! `ksinstall pxe`: the files a PXE server needs to start the installer on many hosts
//! (docs/PXE.md): a `boot.cfg` whose `kernelopt` carries `ks=` (one per host under
//! `01-<mac>/`, with `BOOTIF=`), PXELINUX entries for BIOS (`pxelinux.cfg/default`,
//! `pxelinux.cfg/01-<mac>`, with `IPAPPEND 2` so PXELINUX adds `BOOTIF=`), a GRUB `grub.cfg`
//! for UEFI PXE/HTTP boot, and an iPXE script.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ksinstall::exit::Outcome;
use ksinstall::media::{BootCfg, Media};

/// Write the PXE files for the media in DIR.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The installation media (an extracted ISO) that the TFTP/HTTP server serves.
    #[arg(long, value_name = "DIR")]
    media: PathBuf,
    /// The kickstart for every host without a --host entry.
    #[arg(long, value_name = "URL")]
    ks_url: String,
    /// Where to write the files (may be the media directory itself).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// A host's own kickstart: MAC=KS_URL (aa:bb:cc:dd:ee:ff or aa-bb-cc-dd-ee-ff). Repeatable.
    #[arg(long, value_name = "MAC=KS_URL")]
    host: Vec<String>,
    /// The HTTP URL the media directory is served at. It becomes boot.cfg's prefix= (so mboot
    /// loads the modules over HTTP) and the base of the iPXE script's paths. Without it, the
    /// modules are loaded over TFTP, relative to boot.cfg.
    #[arg(long, value_name = "URL")]
    http_url: Option<String>,
    /// More boot options for every host (e.g. "ip=10.0.0.5 netmask=255.255.255.0 inst.ks.sendmac").
    #[arg(long, value_name = "OPTIONS", default_value = "")]
    append: String,
}

/// A host entry: its MAC as `aa:bb:cc:dd:ee:ff` and its kickstart URL.
struct Host {
    mac: String,
    ks_url: String,
}

impl Host {
    /// `01-aa-bb-cc-dd-ee-ff`: PXELINUX's per-MAC file name, and ESXi's per-MAC directory.
    fn pxe_name(&self) -> String {
        format!("01-{}", self.mac.replace(':', "-"))
    }
}

fn parse_host(s: &str) -> Result<Host, String> {
    let (mac, url) = s
        .split_once('=')
        .ok_or_else(|| format!("--host {s}: want MAC=KS_URL"))?;
    let mac = mac.trim().to_ascii_lowercase().replace('-', ":");
    let ok = mac.split(':').count() == 6
        && mac
            .split(':')
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if !ok {
        return Err(format!(
            "--host {s}: {mac} is not a MAC address (aa:bb:cc:dd:ee:ff)"
        ));
    }
    check_url(url).map_err(|e| format!("--host {s}: {e}"))?;
    Ok(Host {
        mac,
        ks_url: url.to_string(),
    })
}

/// A ks= URL must be one ESXi fetches, and one word of the kernel command line.
fn check_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!(
            "{url}: the kickstart URL must be http:// or https://"
        ));
    }
    if url
        .chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\'')
    {
        return Err(format!("{url}: no spaces or quotes in a boot option"));
    }
    Ok(())
}

/// The installer's BOOT.CFG made fit for network boot, as VMware's PXE instructions say: no
/// leading `/` on the kernel and modules (so `prefix=` applies), `cdromBoot` dropped, and our
/// boot options added.
fn net_boot_cfg(media: &BootCfg, prefix: &str, extra: &str) -> BootCfg {
    let mut cfg = media.clone();
    cfg.prefix = Some(prefix.to_string());
    cfg.kernel = cfg.kernel.map(|k| k.trim_start_matches('/').to_string());
    cfg.modules = cfg
        .modules
        .iter()
        .map(|m| m.trim_start_matches('/').to_string())
        .collect();
    let mut opts: Vec<String> = cfg
        .kernelopt
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .filter(|w| {
            *w != "cdromBoot"
                && !w.starts_with("ks=")
                && !w.starts_with("BOOTIF=")
                && !w.starts_with("inst.repo=")
        })
        .map(String::from)
        .collect();
    opts.extend(extra.split_whitespace().map(String::from));
    cfg.kernelopt = Some(opts.join(" "));
    cfg
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

pub fn run(a: Args) -> Result<Outcome> {
    if let Err(e) = check_url(&a.ks_url) {
        eprintln!("ksinstall: error: --ks-url {e}");
        return Ok(Outcome::UsageOrIo);
    }
    // --http-url goes into boot.cfg's prefix= and the iPXE script: one word, http(s) only.
    if let Some(Err(e)) = a.http_url.as_deref().map(check_url) {
        eprintln!(
            "ksinstall: error: --http-url {}",
            e.replace("the kickstart URL", "it")
        );
        return Ok(Outcome::UsageOrIo);
    }
    let mut hosts = Vec::new();
    for h in &a.host {
        match parse_host(h) {
            Ok(h) => hosts.push(h),
            Err(e) => {
                eprintln!("ksinstall: error: {e}");
                return Ok(Outcome::UsageOrIo);
            }
        }
    }
    let media = match Media::open(&a.media.display().to_string()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("ksinstall: error: {e:#}");
            return Ok(Outcome::Media);
        }
    };
    let build = media.manifest.build.clone();
    // TFTP and HTTP servers match names exactly: use the loader's name as the media spells it.
    let loader = ["EFI/BOOT/BOOTX64.EFI", "efi/boot/bootx64.efi"]
        .into_iter()
        .find(|p| a.media.join(p).is_file())
        .unwrap_or("EFI/BOOT/BOOTX64.EFI");
    let base = a.http_url.as_deref().map(|u| u.trim_end_matches('/'));
    let prefix = base.unwrap_or("");
    let extra = a.append.trim();
    let opts = |ks: &str, mac: Option<&str>| kernel_opts(base, extra, ks, mac);

    let mut written = Vec::new();
    let mut put = |rel: String, text: String| -> Result<()> {
        write(&a.out.join(&rel), &text)?;
        written.push(rel);
        Ok(())
    };

    // boot.cfg: the default one, and one per host in 01-<mac>/ (where mboot.efi looks first).
    put(
        "boot.cfg".into(),
        net_boot_cfg(&media.boot_cfg, prefix, &opts(&a.ks_url, None)).render(),
    )?;
    for h in &hosts {
        put(
            format!("{}/boot.cfg", h.pxe_name()),
            net_boot_cfg(&media.boot_cfg, prefix, &opts(&h.ks_url, Some(&h.mac))).render(),
        )?;
    }

    // PXELINUX (BIOS): VMware's documented entry; IPAPPEND 2 adds BOOTIF=.
    let pxelinux = |cfg: &str| {
        format!(
            "# Written by ksinstall pxe for ESXi {build}.\nDEFAULT install\nNOHALT 1\nLABEL install\n  KERNEL mboot.c32\n  APPEND -c {cfg}\n  IPAPPEND 2\n"
        )
    };
    put("pxelinux.cfg/default".into(), pxelinux("boot.cfg"))?;
    for h in &hosts {
        put(
            format!("pxelinux.cfg/{}", h.pxe_name()),
            pxelinux(&format!("{}/boot.cfg", h.pxe_name())),
        )?;
    }

    put("grub.cfg".into(), grub_cfg(&build, &hosts, loader))?;
    put(
        "boot.ipxe".into(),
        ipxe_script(&build, &hosts, loader, base),
    )?;

    for f in &written {
        println!("{}", a.out.join(f).display());
    }
    if !a.media.join("mboot.c32").exists() && !a.media.join("MBOOT.C32").exists() {
        eprintln!(
            "ksinstall: warning: {} has no mboot.c32: BIOS (PXELINUX) boot needs it next to boot.cfg",
            a.media.display()
        );
    }
    Ok(Outcome::Success)
}

/// The kernel options of one boot.cfg: the kickstart, the media (for a ksinstall installer
/// image), the host's BOOTIF= and the words given with --append.
fn kernel_opts(base: Option<&str>, extra: &str, ks: &str, mac: Option<&str>) -> String {
    let mut o = format!("ks={ks}");
    // For a ksinstall installer image: the media are where the boot files are. ESXi logs
    // and ignores words it has no pattern for (../shared/spec/kickstart.md §2). One given
    // with --append wins.
    if let Some(base) = base.filter(|_| {
        !extra
            .split_whitespace()
            .any(|w| w.starts_with("inst.repo="))
    }) {
        write!(o, " inst.repo={base}").ok();
    }
    if let Some(mac) = mac {
        write!(o, " BOOTIF=01-{}", mac.replace(':', "-")).ok();
    }
    if !extra.is_empty() {
        write!(o, " {extra}").ok();
    }
    o
}

/// GRUB (UEFI PXE or HTTP boot): chain mboot with the host's boot.cfg.
fn grub_cfg(build: &str, hosts: &[Host], loader: &str) -> String {
    let mut grub = format!(
        "# Written by ksinstall pxe for ESXi {build}.\nset timeout=5\nset default=0\n\nmenuentry \"Install ESXi {build} (ksinstall)\" {{\n  set cfg=boot.cfg\n"
    );
    for h in hosts {
        writeln!(
            grub,
            "  if [ \"$net_default_mac\" = \"{}\" ]; then\n    set cfg={}/boot.cfg\n  fi",
            h.mac,
            h.pxe_name()
        )
        .ok();
    }
    writeln!(grub, "  chainloader /{loader} -c $cfg\n}}").ok();
    grub
}

/// iPXE (UEFI): mboot.efi over HTTP when --http-url is given, else relative (TFTP).
fn ipxe_script(build: &str, hosts: &[Host], loader: &str, base: Option<&str>) -> String {
    let at = |p: &str| match base {
        Some(b) => format!("{b}/{p}"),
        None => p.to_string(),
    };
    let mut ipxe = format!("#!ipxe\n# Written by ksinstall pxe for ESXi {build}.\n");
    for (i, h) in hosts.iter().enumerate() {
        writeln!(ipxe, "iseq ${{net0/mac}} {} && goto host{i} ||", h.mac).ok();
    }
    writeln!(ipxe, "set cfg {}\ngoto boot", at("boot.cfg")).ok();
    for (i, h) in hosts.iter().enumerate() {
        writeln!(
            ipxe,
            ":host{i}\nset cfg {}\ngoto boot",
            at(&format!("{}/boot.cfg", h.pxe_name()))
        )
        .ok();
    }
    writeln!(ipxe, ":boot\nkernel {} -c ${{cfg}}\nboot", at(loader)).ok();
    ipxe
}
