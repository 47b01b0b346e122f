//! `loader: esxi`: VMware's installer (mboot) with the media's boot.cfg, our ks= added: a
//! `boot.cfg` whose `kernelopt` carries ks= (one per host under `01-<mac>/`, where mboot.efi
//! looks first), PXELINUX entries for mboot.c32, GRUB and iPXE chaining mboot.

use std::fmt::Write as _;
use std::path::Path;

use super::request::Host;
use super::write::{Files, Role};
use crate::media::BootCfg;

/// Where the media are and what every host is given.
pub(super) struct EsxiBoot<'a> {
    pub build: &'a str,
    /// The media's own BOOT.CFG.
    pub boot_cfg: &'a BootCfg,
    /// The media directory (to spell the UEFI loader as the media do).
    pub media_dir: &'a Path,
    /// The media over HTTP (boot.cfg's prefix=, the iPXE script's base); None: TFTP.
    pub base: Option<&'a str>,
    pub extra: &'a str,
}

/// Every file of `loader: esxi`, into `files`.
pub(super) fn esxi_files(b: &EsxiBoot, ks_default: &str, hosts: &[Host], files: &mut Files) {
    // TFTP and HTTP servers match names exactly: use the loader's name as the media spells it.
    let loader = ["EFI/BOOT/BOOTX64.EFI", "efi/boot/bootx64.efi"]
        .into_iter()
        .find(|p| b.media_dir.join(p).is_file())
        .unwrap_or("EFI/BOOT/BOOTX64.EFI");
    let prefix = b.base.unwrap_or("");
    let opts = |ks: &str, mac: Option<&str>| kernel_opts(b.base, b.extra, ks, mac);

    // boot.cfg: the default one, and one per host in 01-<mac>/ (where mboot.efi looks first).
    files.put(
        "boot.cfg",
        Role::BootCfg,
        None,
        net_boot_cfg(b.boot_cfg, prefix, &opts(ks_default, None)).render(),
    );
    for h in hosts {
        files.put(
            format!("{}/boot.cfg", h.pxe_name()),
            Role::BootCfg,
            Some(h),
            net_boot_cfg(b.boot_cfg, prefix, &opts(&h.ks_url, Some(&h.mac))).render(),
        );
    }

    // PXELINUX (BIOS): VMware's documented entry; IPAPPEND 2 adds BOOTIF=.
    let build = b.build;
    let pxelinux = |cfg: &str| {
        format!(
            "# Written by ksinstall pxe for ESXi {build}.\nDEFAULT install\nNOHALT 1\nLABEL install\n  KERNEL mboot.c32\n  APPEND -c {cfg}\n  IPAPPEND 2\n"
        )
    };
    files.put(
        "pxelinux.cfg/default",
        Role::Pxelinux,
        None,
        pxelinux("boot.cfg"),
    );
    for h in hosts {
        files.put(
            format!("pxelinux.cfg/{}", h.pxe_name()),
            Role::Pxelinux,
            Some(h),
            pxelinux(&format!("{}/boot.cfg", h.pxe_name())),
        );
    }

    files.put("grub.cfg", Role::Grub, None, grub_cfg(build, hosts, loader));
    files.put(
        "boot.ipxe",
        Role::Ipxe,
        None,
        ipxe_script(build, hosts, loader, b.base),
    );
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

/// The kernel options of one boot.cfg: the kickstart, the media (for a ksinstall installer
/// image), the host's BOOTIF= and the extra options.
fn kernel_opts(base: Option<&str>, extra: &str, ks: &str, mac: Option<&str>) -> String {
    let mut o = format!("ks={ks}");
    // For a ksinstall installer image: the media are where the boot files are. ESXi logs
    // and ignores words it has no pattern for (../shared/spec/kickstart.md §2). One given
    // in the extra options wins.
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

/// iPXE (UEFI): mboot.efi over HTTP when the media's HTTP URL is given, else relative (TFTP).
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
