//! A deterministic synthetic ESXi 8 installer medium of any size (`cargo xtask mkmedia`, the
//! demo, the tests and the benchmark all use it).
//!
//! We cannot ship VMware's bits, so the files hold pseudo-random bytes; their names, order and
//! relative sizes follow the ESXi 8.0 Update 3 installer's BOOT.CFG (../shared/spec/layout.md),
//! with `esxiodpt.tgz` (the ESXio depot) as the DPU's part of the unified image.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::manifest::{Component, Manifest, Platform, Role, FORMAT, MANIFEST_NAME};
use super::BootCfg;

/// The 8.0U3 installer's modules after the kernel `b.b00`, in BOOT.CFG order.
const MODULES: &str = "jumpstrt.gz useropts.gz features.gz k.b00 uc_intel.b00 uc_amd.b00 uc_hygon.b00 procfs.b00 vmx.v00 vim.v00 tpm.v00 sb.v00 s.v00 atlantic.v00 bcm_mpi3.v00 bnxtnet.v00 bnxtroce.v00 brcmfcoe.v00 cndi_igc.v00 dwi2c.v00 elxiscsi.v00 elxnet.v00 i40en.v00 iavmd.v00 icen.v00 igbn.v00 intelgpi.v00 ionic_cl.v00 ionic_en.v00 irdman.v00 iser.v00 ixgben.v00 lpfc.v00 lpnic.v00 lsi_mr3.v00 lsi_msgp.v00 lsi_msgp.v01 lsi_msgp.v02 mtip32xx.v00 ne1000.v00 nenic.v00 nfnic.v00 nhpsa.v00 nipmi.v00 nmlx5_cc.v00 nmlx5_co.v00 nmlx5_rd.v00 ntg3.v00 nvme_pci.v00 nvmerdma.v00 nvmetcp.v00 nvmxnet3.v00 nvmxnet3.v01 pvscsi.v00 qcnic.v00 qedentv.v00 qedrntv.v00 qfle3.v00 qfle3f.v00 qfle3i.v00 qflge.v00 rdmahl.v00 rshim_ne.v00 rshim.v00 rste.v00 sfvmk.v00 smartpqi.v00 vmkata.v00 vmksdhci.v00 vmkusb.v00 vmw_ahci.v00 bmcal.v00 clusters.v00 crx.v00 drivervm.v00 elx_esx_.v00 btldr.v00 dvfilter.v00 esx_ui.v00 esxupdt.v00 tpmesxup.v00 weaselin.v00 esxio_co.v00 infravis.v00 loadesx.v00 lsuv2_hp.v00 lsuv2_in.v00 lsuv2_ls.v00 lsuv2_nv.v00 lsuv2_oe.v00 lsuv2_oe.v01 lsuv2_sm.v00 native_m.v00 qlnative.v00 trx.v00 vcls_pod.v00 vdfs.v00 vds_vsip.v00 vmware_e.v00 hbrsrv.v00 vsan.v00 vsanheal.v00 vsanmgmt.v00 tools.t00 xorg.v00 gc.v00 imgdb.tgz basemisc.tgz resvibs.tgz esxiodpt.tgz imgpayld.tgz";

/// Relative weights of the big files (roughly their share of a real 8.0U3 ISO); others weigh 1.
fn weight(name: &str) -> u64 {
    match name {
        "s.v00" => 400,
        "esxiodpt.tgz" => 300,
        "vsan.v00" => 90,
        "tools.t00" => 80,
        "vim.v00" => 60,
        "k.b00" => 30,
        "vmx.v00" => 30,
        "esx_ui.v00" => 25,
        "vsanheal.v00" | "vsanmgmt.v00" => 10,
        "imgpayld.tgz" | "xorg.v00" | "crx.v00" | "esxio_co.v00" => 6,
        "b.b00" | "imgdb.tgz" | "jumpstrt.gz" | "useropts.gz" | "features.gz" => 1,
        _ => 2,
    }
}

/// Bootloader files for the EFI System Partition: (path on media, path on the ESP).
/// Real media carry them inside btldr.v00; ours keep them as plain files (docs/MEDIA.md).
const BOOTLOADER: [(&str, &str); 3] = [
    ("EFI/VMware/safeboot64.efi", "EFI/BOOT/BOOTX64.EFI"),
    ("EFI/VMware/mboot64.efi", "EFI/VMware/mboot64.efi"),
    ("EFI/VMware/crypto64.efi", "EFI/VMware/crypto64.efi"),
];

pub struct Options {
    pub out: PathBuf,
    pub size: u64,
    pub version: String,
    pub seed: u64,
}

/// splitmix64: deterministic, fast, and enough for filler bytes (no secrecy needed).
struct Filler(u64);
impl Filler {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn name_seed(seed: u64, name: &str) -> u64 {
    name.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Write `size` filler bytes to `path`, returning their SHA-256.
fn write_filler(path: &Path, size: u64, seed: u64) -> Result<String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(path).with_context(|| format!("{}", path.display()))?,
    );
    let mut h = Sha256::new();
    let mut rng = Filler(seed);
    let mut buf = vec![0u8; 1 << 16];
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(buf.len() as u64))?;
        for chunk in buf[..n].chunks_mut(8) {
            let v = rng.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        h.update(&buf[..n]);
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(hex(&h.finalize()))
}

/// Wrap a media directory into an ISO9660 image with Joliet and Rock Ridge names, as
/// `xorriso -as mkisofs` makes them (the tool must be installed).
pub fn make_iso(dir: &Path, iso: &Path) -> Result<()> {
    let out = std::process::Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-J", "-R", "-V", "ESXI-8", "-o"])
        .arg(iso)
        .arg(dir)
        .output()
        .context("running xorriso (apt-get install xorriso)")?;
    if !out.status.success() {
        bail!("xorriso failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn mkmedia(o: &Options) -> Result<Manifest> {
    let parts: Vec<&str> = o.version.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.parse::<u32>().is_err()) {
        bail!("--version wants MAJOR.MINOR.PATCH, not {}", o.version);
    }
    std::fs::create_dir_all(&o.out).with_context(|| format!("{}", o.out.display()))?;
    let build = format!(
        "{}-0.35.{}",
        o.version,
        24_280_767u64.wrapping_add(o.seed % 1000)
    );
    let names: Vec<&str> = std::iter::once("b.b00")
        .chain(MODULES.split_whitespace())
        .collect();
    let bootloader_bytes: u64 = 3 * 64 * 1024;
    let budget = o
        .size
        .saturating_sub(bootloader_bytes)
        .max(names.len() as u64 * 512);
    let total_weight: u64 = names.iter().map(|n| weight(n)).sum();
    let mut components = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let size = (budget as u128 * weight(name) as u128 / total_weight as u128) as u64;
        // Odd sizes, so nothing depends on sector multiples.
        let size = size
            .saturating_sub(size % 4096)
            .saturating_add(17 + i as u64 * 31);
        let sha256 = write_filler(&o.out.join(name), size, name_seed(o.seed, name))?;
        let (platform, role) = match *name {
            "b.b00" => (Platform::X86_64, Role::Kernel),
            "esxiodpt.tgz" => (Platform::Esxio, Role::Dpu),
            _ => (Platform::X86_64, Role::Module),
        };
        components.push(Component {
            path: name.to_string(),
            size,
            sha256,
            platform,
            role,
            esp_path: None,
        });
    }
    for (media_path, esp_path) in BOOTLOADER {
        let size = 64 * 1024 - 123;
        let sha256 = write_filler(&o.out.join(media_path), size, name_seed(o.seed, media_path))?;
        components.push(Component {
            path: media_path.to_string(),
            size,
            sha256,
            platform: Platform::X86_64,
            role: Role::Bootloader,
            esp_path: Some(esp_path.to_string()),
        });
    }
    let boot_cfg = BootCfg {
        bootstate: Some(0),
        title: Some("Loading ESXi installer".into()),
        timeout: Some(5),
        prefix: Some(String::new()),
        kernel: Some("/b.b00".into()),
        kernelopt: Some("runweasel cdromBoot".into()),
        modules: names[1..].iter().map(|n| format!("/{n}")).collect(),
        build: Some(build.clone()),
        updated: Some(0),
        other: Vec::new(),
    };
    std::fs::write(o.out.join("BOOT.CFG"), boot_cfg.render())?;
    std::fs::create_dir_all(o.out.join("EFI/BOOT"))?;
    std::fs::write(o.out.join("EFI/BOOT/BOOT.CFG"), boot_cfg.render())?;
    // On real media EFI/BOOT/BOOTX64.EFI is mboot; ours is a copy of the synthetic mboot.
    std::fs::copy(
        o.out.join("EFI/VMware/mboot64.efi"),
        o.out.join("EFI/BOOT/BOOTX64.EFI"),
    )?;
    let manifest = Manifest {
        format: FORMAT,
        version: o.version.clone(),
        build,
        components,
    };
    std::fs::write(
        o.out.join(MANIFEST_NAME),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    Ok(manifest)
}
