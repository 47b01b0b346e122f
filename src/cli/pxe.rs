//! `ksinstall pxe`: the files a PXE server needs to start the installer on many hosts
//! (docs/PXE.md). By default they boot ksinstall's installer image (`cargo xtask image`,
//! docs/IMAGE.md): an iPXE script, a GRUB `grub.cfg`, PXELINUX entries and the UEFI HTTP-boot
//! URL, each loading `vmlinuz` + `initrd.img` with `ks=`, `inst.repo=` and `BOOTIF=` per host,
//! and `grub/grub.cfg` for hosts with Secure Boot on (Debian's signed shim and network GRUB).
//! `--loader esxi` writes VMware's way instead: a `boot.cfg` whose `kernelopt` carries `ks=`
//! (one per host under `01-<mac>/`), PXELINUX entries for mboot.c32, GRUB and iPXE chaining
//! mboot: VMware's installer then runs with our validated kickstart.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ksinstall::exit::Outcome;
use ksinstall::media::{BootCfg, Media};

/// What the written files boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Loader {
    /// ksinstall's installer image (vmlinuz, initrd.img, ksinstall.efi): `ksinstall boot` runs.
    Ksinstall,
    /// VMware's installer (mboot with the media's boot.cfg), handed our kickstart with ks=.
    Esxi,
}

/// Write the files that network-boot the installer image (or VMware's: --loader esxi) on many hosts.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What the hosts boot: ksinstall's installer image, or VMware's installer (mboot).
    #[arg(long, value_enum, default_value_t = Loader::Ksinstall)]
    loader: Loader,
    /// Where the installer image (vmlinuz, initrd.img, ksinstall.efi) is served over HTTP. Without
    /// it, the boot loaders fetch the image's files relative to their own (TFTP). Only with
    /// --loader ksinstall.
    #[arg(long, value_name = "URL")]
    image_url: Option<String>,
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
    /// The HTTP URL the media directory is served at: the installer image's inst.repo=.
    /// With --loader esxi it becomes boot.cfg's prefix= (so mboot loads the modules over HTTP)
    /// and the base of the iPXE script's paths; without it the modules are loaded over TFTP.
    #[arg(long, value_name = "URL")]
    http_url: Option<String>,
    /// The HTTP URL at which --out is served. With it (--loader ksinstall) pxe writes
    /// ks/<aa-bb-cc-dd-ee-ff>.cfg for each --host (an `%include` of its kickstart), and
    /// http-boot.txt gives one ksinstall.efi build for all of them: ks=URL/ks/@MAC@.cfg, which
    /// the image fills in with the MAC of the NIC it brings up.
    #[arg(long, value_name = "URL")]
    out_url: Option<String>,
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
        format!("01-{}", self.hyphens())
    }
    /// `aa-bb-cc-dd-ee-ff`: what the installer image puts for `@MAC@` in ks= (xtask/image/init).
    fn hyphens(&self) -> String {
        self.mac.replace(':', "-")
    }
}

/// GRUB's `BOOTIF=` for every host, from the firmware's MAC of the booting NIC
/// (`$net_default_mac`, `aa:bb:cc:dd:ee:ff`) in PXELINUX's form `01-aa-bb-cc-dd-ee-ff`. GRUB has
/// no substitution but `regexp` (built into Debian's signed network GRUB).
const GRUB_BOOTIF: &str = "  set bootif=\n  if regexp --set=1:m1 --set=2:m2 --set=3:m3 --set=4:m4 --set=5:m5 --set=6:m6 '^(..):(..):(..):(..):(..):(..)$' \"$net_default_mac\"; then\n    set bootif=BOOTIF=01-$m1-$m2-$m3-$m4-$m5-$m6\n  fi\n";

/// An `http://HOST[:PORT]/PATH` URL as a GRUB file name: `(http,HOST)/PATH` or
/// `(http,HOST,PORT)/PATH` (GRUB's network device syntax). None for anything else: GRUB has no
/// TLS.
fn grub_http(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() || authority.contains('@') || authority.starts_with('[') {
        return None;
    }
    let device = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !port.is_empty() => {
            format!("(http,{host},{port})")
        }
        Some(_) => return None,
        None => format!("(http,{authority})"),
    };
    let path = path.trim_end_matches('/');
    Some(if path.is_empty() {
        device
    } else {
        format!("{device}/{path}")
    })
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
    let extra = a.append.trim();
    let mut written = Vec::new();
    let mut put = |rel: String, text: String| -> Result<()> {
        write(&a.out.join(&rel), &text)?;
        written.push(rel);
        Ok(())
    };
    match a.loader {
        Loader::Esxi => esxi_files(&a, &media, &hosts, &mut put)?,
        Loader::Ksinstall => {
            let Some(repo) = a.http_url.as_deref() else {
                eprintln!("ksinstall: error: --loader ksinstall needs --http-url: the installer image reads the media over HTTP (inst.repo=)");
                return Ok(Outcome::UsageOrIo);
            };
            if let Some(Err(e)) = a.image_url.as_deref().map(check_url) {
                eprintln!(
                    "ksinstall: error: --image-url {}",
                    e.replace("the kickstart URL", "it")
                );
                return Ok(Outcome::UsageOrIo);
            }
            if let Some(Err(e)) = a.out_url.as_deref().map(check_url) {
                eprintln!(
                    "ksinstall: error: --out-url {}",
                    e.replace("the kickstart URL", "it")
                );
                return Ok(Outcome::UsageOrIo);
            }
            let image = ImageBoot {
                build: &build,
                image: a.image_url.as_deref().map(|u| u.trim_end_matches('/')),
                repo: repo.trim_end_matches('/'),
                extra,
                out_url: a.out_url.as_deref().map(|u| u.trim_end_matches('/')),
            };
            if let Some(url) = image.image.filter(|u| grub_http(u).is_none()) {
                eprintln!("ksinstall: warning: --image-url {url}: GRUB fetches only http://HOST[:PORT]/PATH (it has no TLS): grub.cfg loads vmlinuz and initrd.img from where GRUB itself was loaded");
            }
            image_files(&image, &a.ks_url, &hosts, &mut put)?;
        }
    }
    for f in &written {
        println!("{}", a.out.join(f).display());
    }
    if a.loader == Loader::Ksinstall {
        eprintln!("{FIRMWARE_GUIDE}");
    }
    if a.loader == Loader::Esxi
        && !a.media.join("mboot.c32").exists()
        && !a.media.join("MBOOT.C32").exists()
    {
        eprintln!(
            "ksinstall: warning: {} has no mboot.c32: BIOS (PXELINUX) boot needs it next to boot.cfg",
            a.media.display()
        );
    }
    Ok(Outcome::Success)
}

/// `--loader esxi`: VMware's installer (mboot) with the media's boot.cfg, our ks= added.
fn esxi_files(
    a: &Args,
    media: &Media,
    hosts: &[Host],
    put: &mut dyn FnMut(String, String) -> Result<()>,
) -> Result<()> {
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

    // boot.cfg: the default one, and one per host in 01-<mac>/ (where mboot.efi looks first).
    put(
        "boot.cfg".into(),
        net_boot_cfg(&media.boot_cfg, prefix, &opts(&a.ks_url, None)).render(),
    )?;
    for h in hosts {
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
    for h in hosts {
        put(
            format!("pxelinux.cfg/{}", h.pxe_name()),
            pxelinux(&format!("{}/boot.cfg", h.pxe_name())),
        )?;
    }

    put("grub.cfg".into(), grub_cfg(&build, hosts, loader))?;
    put("boot.ipxe".into(), ipxe_script(&build, hosts, loader, base))?;

    Ok(())
}

/// Where the installer image's files and the media are, for `--loader ksinstall`.
struct ImageBoot<'a> {
    build: &'a str,
    /// The HTTP directory of vmlinuz, initrd.img and ksinstall.efi; None: relative (TFTP).
    image: Option<&'a str>,
    /// inst.repo=: the media over HTTP.
    repo: &'a str,
    extra: &'a str,
    /// Where --out is served over HTTP (--out-url): the by-MAC kickstarts.
    out_url: Option<&'a str>,
}

impl ImageBoot<'_> {
    fn at(&self, file: &str) -> String {
        match self.image {
            Some(b) => format!("{b}/{file}"),
            None => file.to_string(),
        }
    }
    /// A file of the image as GRUB names it: over HTTP from --image-url (an http:// one), else
    /// relative to where GRUB was loaded from.
    fn grub_at(&self, file: &str) -> String {
        match self.image.and_then(grub_http) {
            Some(dir) => format!("{dir}/{file}"),
            None => file.to_string(),
        }
    }
    /// The kernel options but ks= and BOOTIF=: the media, the consoles (VGA and the first
    /// serial port, unless --append names its own), --append.
    fn options(&self) -> String {
        let mut o = String::new();
        if !self
            .extra
            .split_whitespace()
            .any(|w| w.starts_with("inst.repo="))
        {
            write!(o, "inst.repo={}", self.repo).ok();
        }
        if !self
            .extra
            .split_whitespace()
            .any(|w| w.starts_with("console="))
        {
            o.push_str(" console=tty0 console=ttyS0,115200");
        }
        if !self.extra.is_empty() {
            write!(o, " {}", self.extra).ok();
        }
        o.trim().to_string()
    }
}

/// `--loader ksinstall`: iPXE, GRUB and PXELINUX load vmlinuz + initrd.img with each host's
/// ks= and BOOTIF=; http-boot.txt says what UEFI HTTP boot loads.
fn image_files(
    b: &ImageBoot,
    ks_default: &str,
    hosts: &[Host],
    put: &mut dyn FnMut(String, String) -> Result<()>,
) -> Result<()> {
    let head = format!(
        "Written by ksinstall pxe: ksinstall's installer image for ESXi {}.",
        b.build
    );
    let opts = b.options();
    let pxelinux = |ks: &str| {
        format!(
            "# {head}\nDEFAULT install\nPROMPT 0\nLABEL install\n  KERNEL {}\n  INITRD {}\n  APPEND ks={ks} {opts}\n  IPAPPEND 2\n",
            b.at("vmlinuz"),
            b.at("initrd.img")
        )
    };
    put("pxelinux.cfg/default".into(), pxelinux(ks_default))?;
    for h in hosts {
        put(
            format!("pxelinux.cfg/{}", h.pxe_name()),
            pxelinux(&h.ks_url),
        )?;
    }

    // GRUB loads the files over HTTP from --image-url, else from where it came from (its
    // $prefix's device: TFTP or HTTP). BOOTIF= from the firmware's MAC for every host.
    let mut grub = format!(
        "# {head}\nset timeout=5\nset default=0\n\nmenuentry \"Install ESXi {} (ksinstall)\" {{\n  set ks={ks_default}\n{GRUB_BOOTIF}",
        b.build
    );
    for h in hosts {
        writeln!(
            grub,
            "  if [ \"$net_default_mac\" = \"{}\" ]; then\n    set ks={}\n    set bootif=BOOTIF={}\n  fi",
            h.mac,
            h.ks_url,
            h.pxe_name()
        )
        .ok();
    }
    writeln!(
        grub,
        "  linux {} ks=$ks {opts} $bootif\n  initrd {}\n}}",
        b.grub_at("vmlinuz"),
        b.grub_at("initrd.img")
    )
    .ok();
    put("grub.cfg".into(), grub)?;

    // iPXE: the host's kickstart by the MAC of the NIC it booted from; BOOTIF= from that NIC.
    let mut ipxe = format!("#!ipxe\n# {head}\nset ks {ks_default}\n");
    for h in hosts {
        writeln!(
            ipxe,
            "iseq ${{netX/mac}} {} && set ks {} ||",
            h.mac, h.ks_url
        )
        .ok();
    }
    writeln!(
        ipxe,
        "kernel {} initrd=initrd.img ks=${{ks}} {opts} BOOTIF=01-${{netX/mac:hexhyp}}\ninitrd {}\nboot",
        b.at("vmlinuz"),
        b.at("initrd.img")
    )
    .ok();
    put("boot.ipxe".into(), ipxe)?;

    put("grub/grub.cfg".into(), shim_grub_cfg(b, ks_default, hosts))?;

    put(
        "http-boot.txt".into(),
        http_boot(b, ks_default, hosts, &opts),
    )?;
    // The by-MAC kickstarts of the one HTTP-boot build: each an `%include` of the host's own.
    if b.out_url.is_some() {
        for h in hosts {
            put(
                format!("ks/{}.cfg", h.hyphens()),
                format!(
                    "# Written by ksinstall pxe: the kickstart of {} (UEFI HTTP boot, ks=.../ks/@MAC@.cfg).\n%include {}\n",
                    h.mac, h.ks_url
                ),
            )?;
        }
    }
    Ok(())
}

/// UEFI HTTP boot loads one file and passes no options: ksinstall.efi with its command line
/// built in. One build for the default kickstart; with --out-url one build for every --host
/// (ks= by MAC), else one build per host.
fn http_boot(b: &ImageBoot, ks_default: &str, hosts: &[Host], opts: &str) -> String {
    let mut http = format!("# Written by ksinstall pxe: ksinstall's installer image for ESXi {}.\n# UEFI HTTP boot: give the host this boot file URL (DHCP option 67, or its\n# firmware's HTTP boot setting). ksinstall.efi carries its kernel command line;\n# build it for these hosts with:\n", b.build);
    match (b.out_url, hosts.is_empty()) {
        (Some(out), false) => {
            writeln!(
                http,
                "#   every --host (by MAC: the image puts the MAC of the NIC it brings up, aa-bb-cc-dd-ee-ff,\n#   for @MAC@ and fetches ks/<mac>.cfg, written here; a host without one stops at its 404):\n#   cargo xtask image --out DIR --cmdline \"ks={out}/ks/@MAC@.cfg {opts}\"\n#   every other host:\n#   cargo xtask image --out DIR-default --cmdline \"ks={ks_default} {opts}\""
            )
            .ok();
        }
        _ => {
            writeln!(
                http,
                "#   cargo xtask image --out DIR --cmdline \"ks={ks_default} {opts}\""
            )
            .ok();
            for h in hosts {
                writeln!(
                    http,
                    "# {}: cargo xtask image --out DIR-{} --cmdline \"ks={} {opts} BOOTIF={}\"",
                    h.mac,
                    h.pxe_name(),
                    h.ks_url,
                    h.pxe_name()
                )
                .ok();
            }
        }
    }
    writeln!(http, "{}", b.at("ksinstall.efi")).ok();
    http
}

/// `grub/grub.cfg` for Secure Boot: read by Debian's signed network GRUB (`grubx64.efi`, which
/// the DHCP boot file `shimx64.efi` starts from its own directory) as `$prefix/grub.cfg`; its
/// built-in prefix is `/grub` on the TFTP server it was loaded from. That GRUB has no HTTP
/// (it asks for `http.mod`, which is not built in, and Secure Boot forbids loading modules), so
/// it loads Debian's signed kernel (which it has shim verify) and the image's initrd over TFTP,
/// from the TFTP root, with each host's ks= and BOOTIF=.
fn shim_grub_cfg(b: &ImageBoot, ks_default: &str, hosts: &[Host]) -> String {
    let mut grub = format!(
        "# Written by ksinstall pxe: ksinstall's installer image for ESXi {}, Secure Boot on.\n\
         # DHCP boot file shimx64.efi; grubx64.efi (Debian's grubnetx64.efi.signed) beside it;\n\
         # this file at grub/grub.cfg, vmlinuz and initrd.img at the TFTP root (that GRUB has no HTTP).\n\
         set timeout=5\nset default=0\n\nmenuentry \"Install ESXi {} (ksinstall, Secure Boot)\" {{\n  set ks={ks_default}\n{GRUB_BOOTIF}",
        b.build, b.build
    );
    for h in hosts {
        writeln!(
            grub,
            "  if [ \"$net_default_mac\" = \"{}\" ]; then\n    set ks={}\n    set bootif=BOOTIF={}\n  fi",
            h.mac,
            h.ks_url,
            h.pxe_name()
        )
        .ok();
    }
    writeln!(
        grub,
        "  linux /vmlinuz ks=$ks {} $bootif\n  initrd /initrd.img\n}}",
        b.options()
    )
    .ok();
    grub
}

/// Which written file boots which firmware, for the output of `ksinstall pxe`.
const FIRMWARE_GUIDE: &str = "\
which entry for which firmware setting (docs/PXE.md):
  UEFI, Secure Boot on:  DHCP boot file shimx64.efi (Debian's signed shim), grubx64.efi (Debian's
                         signed network GRUB) beside it, grub/grub.cfg, vmlinuz and initrd.img at
                         the TFTP root (cargo xtask image writes the .efi files)
  UEFI, Secure Boot off: the same, or boot.ipxe through iPXE, or grub.cfg with your own GRUB,
                         or ksinstall.efi by UEFI HTTP boot (http-boot.txt)
  UEFI, your own db key: ksinstall.efi signed with it (cargo xtask image --sign-key --sign-cert)
  BIOS:                  pxelinux.0 with pxelinux.cfg/";

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
        // ${netX/mac}: the NIC iPXE booted from (its last DHCP), whichever it is.
        writeln!(ipxe, "iseq ${{netX/mac}} {} && goto host{i} ||", h.mac).ok();
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
