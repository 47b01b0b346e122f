//! `loader: ksinstall`: iPXE, GRUB and PXELINUX load ksinstall's installer image (vmlinuz +
//! initrd.img) with each host's ks= and BOOTIF=; `grub/grub.cfg` for hosts with Secure Boot on
//! (Debian's signed shim and network GRUB); http-boot.txt says what UEFI HTTP boot loads; with
//! an `out_url`, one by-MAC kickstart per host.

use std::fmt::Write as _;

use super::request::Host;
use super::write::{Files, Role};

/// Which written file boots which firmware: `ksinstall pxe` prints it after the files.
pub const FIRMWARE_GUIDE: &str = "\
which entry for which firmware setting (docs/PXE.md):
  UEFI, Secure Boot on:  DHCP boot file shimx64.efi (Debian's signed shim), grubx64.efi (Debian's
                         signed network GRUB) beside it, grub/grub.cfg, vmlinuz and initrd.img at
                         the TFTP root (cargo xtask image writes the .efi files)
  UEFI, Secure Boot off: the same, or boot.ipxe through iPXE, or grub.cfg with your own GRUB,
                         or ksinstall.efi by UEFI HTTP boot (http-boot.txt)
  UEFI, your own db key: ksinstall.efi signed with it (cargo xtask image --sign-key --sign-cert)
  BIOS:                  pxelinux.0 with pxelinux.cfg/";

/// GRUB's `BOOTIF=` for every host, from the firmware's MAC of the booting NIC
/// (`$net_default_mac`, `aa:bb:cc:dd:ee:ff`) in PXELINUX's form `01-aa-bb-cc-dd-ee-ff`. GRUB has
/// no substitution but `regexp` (built into Debian's signed network GRUB).
const GRUB_BOOTIF: &str = "  set bootif=\n  if regexp --set=1:m1 --set=2:m2 --set=3:m3 --set=4:m4 --set=5:m5 --set=6:m6 '^(..):(..):(..):(..):(..):(..)$' \"$net_default_mac\"; then\n    set bootif=BOOTIF=01-$m1-$m2-$m3-$m4-$m5-$m6\n  fi\n";

/// An `http://HOST[:PORT]/PATH` URL as a GRUB file name: `(http,HOST)/PATH` or
/// `(http,HOST,PORT)/PATH` (GRUB's network device syntax). None for anything else: GRUB has no
/// TLS.
pub(super) fn grub_http(url: &str) -> Option<String> {
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

/// Where the installer image's files and the media are.
pub(super) struct ImageBoot<'a> {
    pub build: &'a str,
    /// The HTTP directory of vmlinuz, initrd.img and ksinstall.efi; None: relative (TFTP).
    pub image: Option<&'a str>,
    /// inst.repo=: the media over HTTP.
    pub repo: &'a str,
    pub extra: &'a str,
    /// Where the output directory is served over HTTP: the by-MAC kickstarts.
    pub out_url: Option<&'a str>,
}

impl ImageBoot<'_> {
    fn at(&self, file: &str) -> String {
        match self.image {
            Some(b) => format!("{b}/{file}"),
            None => file.to_string(),
        }
    }
    /// A file of the image as GRUB names it: over HTTP from the image URL (an http:// one),
    /// else relative to where GRUB was loaded from.
    fn grub_at(&self, file: &str) -> String {
        match self.image.and_then(grub_http) {
            Some(dir) => format!("{dir}/{file}"),
            None => file.to_string(),
        }
    }
    /// The kernel options but ks= and BOOTIF=: the media, the consoles (VGA and the first
    /// serial port, unless the extra options name their own), the extra options.
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

/// Every file of `loader: ksinstall`, into `files`.
pub(super) fn image_files(b: &ImageBoot, ks_default: &str, hosts: &[Host], files: &mut Files) {
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
    files.put(
        "pxelinux.cfg/default",
        Role::Pxelinux,
        None,
        pxelinux(ks_default),
    );
    for h in hosts {
        files.put(
            format!("pxelinux.cfg/{}", h.pxe_name()),
            Role::Pxelinux,
            Some(h),
            pxelinux(&h.ks_url),
        );
    }
    files.put(
        "grub.cfg",
        Role::Grub,
        None,
        grub_cfg(b, &head, ks_default, hosts, &opts),
    );
    files.put(
        "boot.ipxe",
        Role::Ipxe,
        None,
        ipxe_script(b, &head, ks_default, hosts, &opts),
    );
    files.put(
        "grub/grub.cfg",
        Role::ShimGrub,
        None,
        shim_grub_cfg(b, ks_default, hosts),
    );
    files.put(
        "http-boot.txt",
        Role::HttpBoot,
        None,
        http_boot(b, ks_default, hosts, &opts),
    );
    // The by-MAC kickstarts of the one HTTP-boot build: each an `%include` of the host's own.
    if b.out_url.is_some() {
        for h in hosts {
            files.put(
                format!("ks/{}.cfg", h.hyphens()),
                Role::Kickstart,
                Some(h),
                format!(
                    "# Written by ksinstall pxe: the kickstart of {} (UEFI HTTP boot, ks=.../ks/@MAC@.cfg).\n%include {}\n",
                    h.mac, h.ks_url
                ),
            );
        }
    }
}

/// GRUB loads the files over HTTP from the image URL, else from where it came from (its
/// $prefix's device: TFTP or HTTP). BOOTIF= from the firmware's MAC for every host.
fn grub_cfg(b: &ImageBoot, head: &str, ks_default: &str, hosts: &[Host], opts: &str) -> String {
    let mut grub = format!(
        "# {head}\nset timeout=5\nset default=0\n\nmenuentry \"Install ESXi {} (ksinstall)\" {{\n  set ks={ks_default}\n{GRUB_BOOTIF}",
        b.build
    );
    grub_hosts(&mut grub, hosts);
    writeln!(
        grub,
        "  linux {} ks=$ks {opts} $bootif\n  initrd {}\n}}",
        b.grub_at("vmlinuz"),
        b.grub_at("initrd.img")
    )
    .ok();
    grub
}

/// Each host's ks= and BOOTIF= by the firmware's MAC, in a GRUB menu entry.
fn grub_hosts(grub: &mut String, hosts: &[Host]) {
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
}

/// iPXE: the host's kickstart by the MAC of the NIC it booted from; BOOTIF= from that NIC.
fn ipxe_script(b: &ImageBoot, head: &str, ks_default: &str, hosts: &[Host], opts: &str) -> String {
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
    ipxe
}

/// UEFI HTTP boot loads one file and passes no options: ksinstall.efi with its command line
/// built in. One build for the default kickstart; with an out URL one build for every host
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
    grub_hosts(&mut grub, hosts);
    writeln!(
        grub,
        "  linux /vmlinuz ks=$ks {} $bootif\n  initrd /initrd.img\n}}",
        b.options()
    )
    .ok();
    grub
}
