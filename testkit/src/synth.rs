//! A deterministic synthetic ESXi 8 installer medium of any size (`cargo xtask mkmedia`, the
//! demo, the tests and the benchmark all use it; never the product), in the real format: upper-case ISO9660 8.3
//! names, VMware's BOOT.CFG, and `imgdb.tgz` (an image profile and VIB descriptors in VMware's
//! schema, with the three checksums of each payload). There is no MANIFEST.JSON.
//!
//! We cannot ship VMware's bits, so the payloads are gzip streams of pseudo-random bytes; their
//! names, order and relative sizes follow the ESXi 8.0 Update 3 installer's BOOT.CFG
//! (../shared/spec/layout.md), with `esxiodpt.tgz` (the ESXio depot) as the DPU's part of the
//! unified image.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use ksinstall::media::manifest::Manifest;
use ksinstall::media::BootCfg;

/// The 8.0U3 installer's modules after the kernel `b.b00`, in BOOT.CFG order.
pub const MODULES: &str = "jumpstrt.gz useropts.gz features.gz k.b00 uc_intel.b00 uc_amd.b00 uc_hygon.b00 procfs.b00 vmx.v00 vim.v00 tpm.v00 sb.v00 s.v00 atlantic.v00 bcm_mpi3.v00 bnxtnet.v00 bnxtroce.v00 brcmfcoe.v00 cndi_igc.v00 dwi2c.v00 elxiscsi.v00 elxnet.v00 i40en.v00 iavmd.v00 icen.v00 igbn.v00 intelgpi.v00 ionic_cl.v00 ionic_en.v00 irdman.v00 iser.v00 ixgben.v00 lpfc.v00 lpnic.v00 lsi_mr3.v00 lsi_msgp.v00 lsi_msgp.v01 lsi_msgp.v02 mtip32xx.v00 ne1000.v00 nenic.v00 nfnic.v00 nhpsa.v00 nipmi.v00 nmlx5_cc.v00 nmlx5_co.v00 nmlx5_rd.v00 ntg3.v00 nvme_pci.v00 nvmerdma.v00 nvmetcp.v00 nvmxnet3.v00 nvmxnet3.v01 pvscsi.v00 qcnic.v00 qedentv.v00 qedrntv.v00 qfle3.v00 qfle3f.v00 qfle3i.v00 qflge.v00 rdmahl.v00 rshim_ne.v00 rshim.v00 rste.v00 sfvmk.v00 smartpqi.v00 vmkata.v00 vmksdhci.v00 vmkusb.v00 vmw_ahci.v00 bmcal.v00 clusters.v00 crx.v00 drivervm.v00 elx_esx_.v00 btldr.v00 dvfilter.v00 esx_ui.v00 esxupdt.v00 tpmesxup.v00 weaselin.v00 esxio_co.v00 infravis.v00 loadesx.v00 lsuv2_hp.v00 lsuv2_in.v00 lsuv2_ls.v00 lsuv2_nv.v00 lsuv2_oe.v00 lsuv2_oe.v01 lsuv2_sm.v00 native_m.v00 qlnative.v00 trx.v00 vcls_pod.v00 vdfs.v00 vds_vsip.v00 vmware_e.v00 hbrsrv.v00 vsan.v00 vsanheal.v00 vsanmgmt.v00 tools.t00 xorg.v00 gc.v00 imgdb.tgz basemisc.tgz resvibs.tgz esxiodpt.tgz imgpayld.tgz";

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

pub struct Options {
    pub out: PathBuf,
    pub size: u64,
    pub version: String,
    pub seed: u64,
}

/// splitmix64: deterministic, fast, and enough for filler bytes and test choices (no secrecy
/// needed); the same seed gives the same numbers.
pub struct SplitMix64(pub u64);
impl SplitMix64 {
    #[allow(clippy::should_implement_trait)] // an endless stream: Iterator's Option is noise
    pub fn next(&mut self) -> u64 {
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

/// A payload as written: its 8.3 name and the three checksums VMware's descriptors carry.
struct Written {
    file: String,
    size: u64,
    sha256: String,
    sha256_gunzip: String,
    sha1_gunzip: String,
}

/// Counts and hashes what goes to the file (the stored bytes: the plain sha-256).
struct Tee<W: Write> {
    inner: W,
    hash: Sha256,
    size: u64,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn create(path: &Path) -> Result<std::io::BufWriter<std::fs::File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let f = std::fs::File::create(path).with_context(|| format!("{}", path.display()))?;
    Ok(std::io::BufWriter::with_capacity(1 << 20, f))
}

/// Write `size` filler bytes to `out`, hashing them (sha-256, sha-1).
fn fill(out: &mut dyn Write, size: u64, seed: u64) -> Result<(String, String)> {
    let (mut h256, mut h1) = (Sha256::new(), Sha1::new());
    let mut rng = SplitMix64(seed);
    let mut buf = vec![0u8; 1 << 16];
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(buf.len() as u64))?;
        for chunk in buf[..n].chunks_mut(8) {
            let v = rng.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        h256.update(&buf[..n]);
        h1.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok((hex(&h256.finalize()), hex(&h1.finalize())))
}

/// A payload file: `raw` filler bytes, gzip-wrapped as VMware stores boot modules (stored
/// blocks: random bytes do not compress, and mkmedia must stay fast) unless `plain`.
fn write_payload(dir: &Path, file: &str, raw: u64, seed: u64, plain: bool) -> Result<Written> {
    let mut tee = Tee {
        inner: create(&dir.join(file))?,
        hash: Sha256::new(),
        size: 0,
    };
    let (sha256_gunzip, sha1_gunzip) = if plain {
        fill(&mut tee, raw, seed)?
    } else {
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(&mut tee, flate2::Compression::none());
        let sums = fill(&mut gz, raw, seed)?;
        gz.finish()?;
        sums
    };
    tee.flush()?;
    Ok(Written {
        file: file.to_string(),
        size: tee.size,
        sha256: hex(&tee.hash.finalize()),
        sha256_gunzip,
        sha1_gunzip,
    })
}

/// Wrap a media directory into an ISO9660 image as VMware's recipe does: ISO9660 names only
/// (no Joliet, no Rock Ridge), a BIOS El Torito entry (isolinux) and an EFI one (`EFIBOOT.IMG`),
/// made by `xorriso -as mkisofs` (the tool must be installed).
pub fn make_iso(dir: &Path, iso: &Path) -> Result<()> {
    let out = std::process::Command::new("xorriso")
        .args([
            "-as",
            "mkisofs",
            "-quiet",
            "-iso-level",
            "1",
            "-V",
            "ESXI-8",
            "-o",
        ])
        .arg(iso)
        .args(["-b", "ISOLINUX.BIN", "-c", "BOOT.CAT", "-no-emul-boot"])
        .args([
            "-boot-load-size",
            "4",
            "-boot-info-table",
            "-eltorito-alt-boot",
        ])
        .args(["-e", "EFIBOOT.IMG", "-no-emul-boot"])
        .arg(dir)
        .output()
        .context("running xorriso (apt-get install xorriso)")?;
    if !out.status.success() {
        bail!("xorriso failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

use ksinstall::media::verify::hex;

/// The VIB a module belongs to: esx-base for the base system's, else one VIB per module file
/// (`lsi_msgp.v00`, `.v01`, `.v02` are three VIBs, each with a payload `lsi_msgp`, as on real media).
fn vib_of(file: &str) -> String {
    let stem = file.split('.').next().unwrap_or(file);
    const BASE: [&str; 11] = [
        "b", "jumpstrt", "useropts", "features", "k", "procfs", "vmx", "vim", "tpm", "sb", "s",
    ];
    if BASE.contains(&stem) {
        "esx-base".into()
    } else {
        file.replace(['_', '.'], "-")
    }
}

/// The boot order VMware's descriptors give (7.0 esx-base: b 10, jumpstrt 47 ... s/sb/vim 100);
/// drivers carry none and follow BOOT.CFG's order.
fn boot_order(stem: &str) -> Option<u32> {
    match stem {
        "b" => Some(10),
        "jumpstrt" => Some(47),
        "useropts" => Some(48),
        "features" => Some(49),
        "k" => Some(50),
        "uc_intel" | "uc_amd" | "uc_hygon" => Some(51),
        "procfs" => Some(99),
        "vmx" | "vim" | "tpm" | "sb" | "s" => Some(100),
        _ => None,
    }
}

fn payload_type(file: &str) -> &'static str {
    if file.ends_with(".b00") || file.ends_with(".gz") {
        "boot"
    } else if file.ends_with(".t00") {
        "tgz"
    } else {
        "vgz"
    }
}

/// Loaders esx-base carries: (file on the media, payload name, payload type).
const LOADERS: [(&str, &str, &str); 8] = [
    ("EFI/BOOT/BOOTX64.EFI", "BOOTx64.EFI", "boot_loader_efi"),
    ("EFI/BOOT/SAFEBOOT.EFI", "safeboot.efi", "boot_loader_efi"),
    ("EFI/BOOT/CRYPTO64.EFI", "crypto64.efi", "boot_loader_efi"),
    ("SAFEBOOT.C32", "safeboot.c32", "boot_com32_bios"),
    ("MBOOT.C32", "mboot.c32", "boot_com32_bios"),
    ("LDLINUX.SYS", "ldlinux.sys", "boot_com32_bios"),
    ("ISOLINUX.BIN", "isolinux.bin", "boot_iso_bios"),
    ("EFIBOOT.IMG", "efiboot.img", "eltorito_image_efi"),
];

/// A payload element in VMware's descriptor schema.
fn payload_xml(name: &str, kind: &str, w: &Written, gz: bool) -> String {
    let order = boot_order(name)
        .map(|o| format!(" boot-order=\"{o}\""))
        .unwrap_or_default();
    let vfat = if w.file.ends_with(".gz") {
        format!(" vfat-name=\"{}\"", w.file)
    } else {
        String::new()
    };
    let mut x = format!(
        "<payload name=\"{name}\" type=\"{kind}\"{order}{vfat} size=\"{}\">",
        w.size
    );
    if gz {
        x += &format!(
            "<checksum checksum-type=\"sha-256\" verify-process=\"gunzip\">{}</checksum>",
            w.sha256_gunzip
        );
    }
    x += &format!(
        "<checksum checksum-type=\"sha-256\">{}</checksum>",
        w.sha256
    );
    if gz {
        x += &format!(
            "<checksum checksum-type=\"sha-1\" verify-process=\"gunzip\">{}</checksum>",
            w.sha1_gunzip
        );
    }
    x + "</payload>"
}

fn vib_xml(name: &str, version: &str, payloads: &str) -> String {
    let vendor = if name == "esx-base" { "VMware" } else { "VMW" };
    format!("<vib version=\"5.0\"><type>bootbank</type><name>{name}</name><version>{version}</version><vendor>{vendor}</vendor><summary>synthetic (ksinstall mkmedia)</summary><acceptance-level>certified</acceptance-level><payloads>{payloads}</payloads></vib>")
}

/// A fixed clock for the EFI image's FAT timestamps, so that mkmedia's output (and the
/// efiboot.img digest in imgdb.tgz) is the same on every run.
#[derive(Debug)]
struct FixedTime;

impl fatfs::TimeProvider for FixedTime {
    fn get_current_date(&self) -> fatfs::Date {
        fatfs::Date {
            year: 2024,
            month: 6,
            day: 25,
        }
    }
    fn get_current_date_time(&self) -> fatfs::DateTime {
        fatfs::DateTime {
            date: self.get_current_date(),
            time: fatfs::Time {
                hour: 0,
                min: 0,
                sec: 0,
                millis: 0,
            },
        }
    }
}

static FIXED_TIME: FixedTime = FixedTime;

/// A FAT image holding `EFI/BOOT/BOOTX64.EFI`, as the ISO's El Torito EFI image.
fn efiboot_img(loader: &[u8]) -> Result<Vec<u8>> {
    let mut img = std::io::Cursor::new(vec![0u8; 2880 * 512]);
    fatfs::format_volume(
        &mut img,
        fatfs::FormatVolumeOptions::new().volume_label(*b"ESXI-EFI   "),
    )?;
    {
        let fs =
            fatfs::FileSystem::new(&mut img, fatfs::FsOptions::new().time_provider(&FIXED_TIME))?;
        {
            let dir = fs.root_dir().create_dir("EFI")?.create_dir("BOOT")?;
            dir.create_file("BOOTX64.EFI")?.write_all(loader)?;
        }
        fs.unmount()?;
    }
    Ok(img.into_inner())
}

/// A VIB as mkmedia writes it: its name, its descriptor (or payload elements while building),
/// and (payload name, 8.3 file) for the profile.
type SynthVib = (String, String, Vec<(String, String)>);

/// Write `imgdb.tgz`: one profile and the VIB descriptors, as VMware's image database has them.
fn write_imgdb(
    dir: &Path,
    profile: &str,
    vibs: &[SynthVib],
    version: &str,
    esxio: Option<&str>,
) -> Result<()> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        create(&dir.join("IMGDB.TGZ"))?,
        flate2::Compression::default(),
    ));
    let mut add = |path: &str, bytes: &[u8]| -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, path, bytes)?;
        Ok(())
    };
    let mut list = String::new();
    for (i, (name, xml, files)) in vibs.iter().enumerate() {
        let vendor = if name == "esx-base" { "VMware" } else { "VMW" };
        let version = match esxio {
            Some(e) if name.starts_with("esxio") => e,
            _ => version,
        };
        list += &format!("<vib><vib-id>{vendor}_bootbank_{name}_{version}</vib-id><payloads>");
        for (payload, file) in files {
            list += &format!("<payload payload-name=\"{payload}\">{file}</payload>");
        }
        list += "</payloads></vib>";
        add(&format!("vibs/{name}-{}.xml", 1000 + i), xml.as_bytes())?;
    }
    let text = format!("<imageprofile><name>{profile}</name><creator>ksinstall mkmedia</creator><viblist>{list}</viblist><acceptancelevel>partner</acceptancelevel></imageprofile>");
    add(&format!("profiles/{profile}0"), text.as_bytes())?;
    tar.into_inner()?.finish()?.flush()?;
    Ok(())
}

/// How one medium differs from the default of its version: another build (upgrade tests need
/// builds A < B < C of one release) and modules left out (a VIB the new image no longer has).
#[derive(Debug, Clone, Default)]
pub struct Variant {
    /// `build=` of BOOT.CFG and every VIB's version: `8.0.3-0.35.24280800`. It must start with
    /// the version. Default: `VERSION-0.35.<24280767 + seed % 1000>`.
    pub build: Option<String>,
    /// Module files (`qflge.v00`) not on the medium: neither the file, its VIB, nor BOOT.CFG.
    pub omit: Vec<String>,
    /// The version of the ESXio VIBs (`esxio*`: the DPU's part of the unified image), when it
    /// differs from `build` (a host image whose DPU part is that of another build).
    pub esxio_build: Option<String>,
}

pub fn mkmedia(o: &Options) -> Result<Manifest> {
    mkmedia_with(o, &Variant::default())
}

pub fn mkmedia_with(o: &Options, v: &Variant) -> Result<Manifest> {
    let parts: Vec<&str> = o.version.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.parse::<u32>().is_err()) {
        bail!("--version wants MAJOR.MINOR.PATCH, not {}", o.version);
    }
    std::fs::create_dir_all(&o.out).with_context(|| format!("{}", o.out.display()))?;
    let build = match &v.build {
        Some(b) if b.starts_with(&format!("{}-", o.version)) => b.clone(),
        Some(b) => bail!("--build {b} does not start with the version {}-", o.version),
        None => format!(
            "{}-0.35.{}",
            o.version,
            24_280_767u64.wrapping_add(o.seed % 1000)
        ),
    };
    for m in &v.omit {
        if m == "b.b00"
            || !MODULES.split_whitespace().any(|n| n == m)
            || ksinstall::media::real::NOT_COVERED.contains(&m.as_str())
        {
            bail!("--omit {m}: not a module of the image that can be left out");
        }
    }
    let names: Vec<&str> = std::iter::once("b.b00")
        .chain(MODULES.split_whitespace())
        .filter(|n| !v.omit.iter().any(|m| m == n))
        .collect();
    let budget = o
        .size
        .saturating_sub(8 * 64 * 1024)
        .max(names.len() as u64 * 512);
    let total_weight: u64 = names.iter().map(|n| weight(n)).sum();
    // VIB name -> (payload name, 8.3 file) and its payload elements, in first-seen order.
    let mut vibs: Vec<SynthVib> = Vec::new();
    let mut add = |vib: String, payload: &str, file: &str, xml: String| {
        if let Some(v) = vibs.iter_mut().find(|v| v.0 == vib) {
            v.1 += &xml;
            v.2.push((payload.to_string(), file.to_string()));
        } else {
            vibs.push((vib, xml, vec![(payload.to_string(), file.to_string())]));
        }
    };
    for (i, name) in names.iter().enumerate() {
        let size = (budget as u128 * weight(name) as u128 / total_weight as u128) as u64;
        // Odd sizes, so nothing depends on sector multiples.
        let size = size
            .saturating_sub(size % 4096)
            .saturating_add(17 + i as u64 * 31);
        let upper = name.to_ascii_uppercase();
        if ksinstall::media::real::NOT_COVERED.contains(name) {
            if *name != "imgdb.tgz" {
                write_payload(&o.out, &upper, size, name_seed(o.seed, name), true)?;
            }
            continue;
        }
        let w = write_payload(&o.out, &upper, size, name_seed(o.seed, name), false)?;
        let stem = name.split('.').next().unwrap_or(name);
        add(
            vib_of(name),
            stem,
            name,
            payload_xml(stem, payload_type(name), &w, true),
        );
    }
    let mut mboot = Vec::new();
    for (i, (path, payload, kind)) in LOADERS.into_iter().enumerate() {
        let w = if payload == "efiboot.img" {
            let bytes = efiboot_img(&mboot)?;
            std::fs::write(o.out.join(path), &bytes)?;
            Written {
                file: path.into(),
                size: bytes.len() as u64,
                sha256: ksinstall::media::verify::sha256_hex(&bytes),
                sha256_gunzip: String::new(),
                sha1_gunzip: String::new(),
            }
        } else {
            write_payload(&o.out, path, 64 * 1024 - 123, name_seed(o.seed, path), true)?
        };
        if payload == "BOOTx64.EFI" {
            mboot = std::fs::read(o.out.join(path))?;
        }
        // The profile's own 8.3 name for it (6.7: `bootx64..b00`, `mboot.c3.b00`).
        let stem: String = payload.to_ascii_lowercase().chars().take(8).collect();
        let file = format!("{stem}.b{i:02}");
        add(
            "esx-base".into(),
            payload,
            &file,
            payload_xml(payload, kind, &w, false),
        );
    }
    let vibs: Vec<_> = vibs
        .into_iter()
        .map(|(name, payloads, files)| {
            let version = match &v.esxio_build {
                Some(e) if name.starts_with("esxio") => e,
                _ => &build,
            };
            let xml = vib_xml(&name, version, &payloads);
            (name, xml, files)
        })
        .collect();
    write_imgdb(
        &o.out,
        &format!("ESXi-{build}-standard"),
        &vibs,
        &build,
        v.esxio_build.as_deref(),
    )?;
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
    std::fs::write(o.out.join("EFI/BOOT/BOOT.CFG"), boot_cfg.render())?;
    // Opening it is the check that what was written is what the installer reads.
    Ok(ksinstall::media::Media::open(&o.out.display().to_string())?.manifest)
}

/// Replace the file at `media_path` with `bytes` and make VMware's metadata vouch for it: the
/// size and plain sha-256 of its payload in `imgdb.tgz` are rewritten (the e2e test boots a
/// loader of its own this way). Only for media mkmedia made: it edits our own descriptors.
pub fn replace_payload(dir: &Path, media_path: &str, bytes: &[u8]) -> Result<()> {
    let old = std::fs::read(dir.join(media_path)).with_context(|| media_path.to_string())?;
    let (old_size, old_sha) = (old.len(), ksinstall::media::verify::sha256_hex(&old));
    let (new_size, new_sha) = (bytes.len(), ksinstall::media::verify::sha256_hex(bytes));
    let mut members = read_members(dir)?;
    let mut hits = 0;
    for (_, data) in members.iter_mut() {
        let text = String::from_utf8_lossy(data).into_owned();
        let from = format!("size=\"{old_size}\"><checksum checksum-type=\"sha-256\">{old_sha}<");
        if text.contains(&from) {
            let to = format!("size=\"{new_size}\"><checksum checksum-type=\"sha-256\">{new_sha}<");
            *data = text.replace(&from, &to).into_bytes();
            hits += 1;
        }
    }
    anyhow::ensure!(hits > 0, "no payload in imgdb.tgz describes {media_path}");
    write_members(dir, &members)?;
    std::fs::write(dir.join(media_path), bytes)?;
    Ok(())
}

/// The members of the media's `IMGDB.TGZ`, in order.
fn read_members(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let tgz = std::fs::read(dir.join("IMGDB.TGZ"))?;
    let mut members = Vec::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&tgz[..]));
    for e in archive.entries()? {
        let mut e = e?;
        let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data)?;
        members.push((path, data));
    }
    Ok(members)
}

/// Write the media's `IMGDB.TGZ` from `members`.
fn write_members(dir: &Path, members: &[(String, Vec<u8>)]) -> Result<()> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        create(&dir.join("IMGDB.TGZ"))?,
        flate2::Compression::default(),
    ));
    for (path, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, path, &data[..])?;
    }
    tar.into_inner()?.finish()?.flush()?;
    Ok(())
}

/// Sign every VIB descriptor of a medium mkmedia made, as VMware's image database carries
/// signatures: `vibs/X.xml.orig` (the signed bytes) and `vibs/X.xml.sig`, a PEM PKCS#7 detached
/// signature (sha256WithRSA) made by `openssl smime` with `key` and `cert` (a test key: VMware's
/// is not ours to have). Returns how many descriptors were signed.
pub fn sign(dir: &Path, key: &Path, cert: &Path) -> Result<usize> {
    let members = read_members(dir)?;
    let scratch = tempfile::tempdir()?;
    let orig = scratch.path().join("orig");
    let mut out = Vec::new();
    let mut signed = 0;
    for (path, data) in members {
        let is_descriptor = path.starts_with("vibs/") && path.ends_with(".xml");
        if is_descriptor {
            std::fs::write(&orig, &data)?;
            let sig = std::process::Command::new("openssl")
                .args([
                    "smime", "-sign", "-binary", "-md", "sha256", "-outform", "PEM",
                ])
                .arg("-signer")
                .arg(cert)
                .arg("-inkey")
                .arg(key)
                .arg("-in")
                .arg(&orig)
                .output()
                .context("running openssl")?;
            if !sig.status.success() {
                bail!(
                    "openssl smime -sign: {}",
                    String::from_utf8_lossy(&sig.stderr)
                );
            }
            out.push((format!("{path}.orig"), data.clone()));
            out.push((format!("{path}.sig"), sig.stdout));
            signed += 1;
        }
        out.push((path, data));
    }
    write_members(dir, &out)?;
    Ok(signed)
}
