//! The boot bank: the files copied to it and to the ESP, its `boot.cfg`, and what first boot is handed.

use super::*;

pub(super) fn file_copy(c: &crate::media::Component, to: String, partition: u32) -> FileCopy {
    FileCopy {
        from: c.path.clone(),
        to,
        partition,
        size: c.size,
        sha256: c.sha256.clone(),
    }
}

/// The EFI System Partition's files: the media's loaders where a host has them, names valid on
/// FAT and distinct, `EFI/BOOT/BOOTX64.EFI` among them, all fitting; and `syslinux.cfg` where the
/// media carry BIOS boot.
pub(super) fn esp_plan(
    media: &MediaFacts,
    layout: &Layout,
) -> Result<(Vec<FileCopy>, Vec<GeneratedFile>), PlanError> {
    let esp_files: Vec<FileCopy> = media
        .manifest
        .components
        .iter()
        .filter(|c| c.role == Role::Bootloader)
        .map(|c| file_copy(c, c.esp_path.clone().unwrap_or_default(), 1))
        .collect();
    let mut esp_names = std::collections::HashSet::new();
    for f in &esp_files {
        storage::fat::check_fat_path(&f.to).map_err(|e| {
            refuse(
                Outcome::Media,
                format!(
                    "{}: bootloader {} -> {}: {e:#}",
                    media.describe(),
                    f.from,
                    f.to
                ),
            )
        })?;
        if !esp_names.insert(f.to.to_ascii_lowercase()) {
            return Err(refuse(
                Outcome::Media,
                format!("{}: two bootloader files go to {}", media.describe(), f.to),
            ));
        }
    }
    // BIOS boot as a 7.x host has it (media.md §3): syslinux loads safeboot.c32 from the ESP.
    let esp_generated = if esp_files.iter().any(|f| f.to == "safeboot.c32") {
        vec![GeneratedFile::new(
            "syslinux.cfg",
            b"DEFAULT safeboot.c32 -S 1\n".to_vec(),
        )]
    } else {
        Vec::new()
    };
    let esp_bytes: u64 = esp_files.iter().map(|f| f.size).sum();
    if let Some(esp) = layout.partition(1) {
        if esp_bytes > esp.size_bytes.saturating_sub(esp.size_bytes / 8) {
            return Err(refuse(Outcome::Media, format!("the bootloader files ({esp_bytes} bytes) do not fit the system partition ({} bytes)", esp.size_bytes)));
        }
    }
    if !esp_files
        .iter()
        .any(|f| f.to.eq_ignore_ascii_case("EFI/BOOT/BOOTX64.EFI"))
    {
        return Err(refuse(
            Outcome::Media,
            format!(
                "{}: no bootloader component for EFI/BOOT/BOOTX64.EFI",
                media.describe()
            ),
        ));
    }
    Ok((esp_files, esp_generated))
}

/// Boot bank 0's modules: by their lower-case 8.3 names, distinct, fitting the bank.
pub(super) fn bank_plan(
    media: &MediaFacts,
    layout: &Layout,
    target: &Target,
) -> Result<Vec<FileCopy>, PlanError> {
    let bank_components = media.bank_components();
    let mut bank_files = Vec::new();
    let mut names = std::collections::HashSet::new();
    for c in &bank_components {
        let base = c
            .path
            .rsplit('/')
            .next()
            .unwrap_or(&c.path)
            .to_ascii_lowercase();
        if !names.insert(base.clone()) {
            return Err(refuse(
                Outcome::Media,
                format!("{}: two modules are named {base}", media.describe()),
            ));
        }
        bank_files.push(file_copy(c, base, 5));
    }
    let bank_bytes: u64 = bank_files.iter().map(|f| f.size).sum();
    if let Some(bank) = layout.partition(5) {
        // Leave room for FAT overhead and the generated files.
        if bank_bytes > bank.size_bytes.saturating_sub(bank.size_bytes / 16) {
            return Err(refuse(Outcome::Precondition, format!("the image's modules ({bank_bytes} bytes) do not fit boot bank 0 ({} bytes) on {}", bank.size_bytes, target.name)));
        }
    }

    Ok(bank_files)
}

/// The media's `kernelopt` as an installed bank keeps it: the installer's own words
/// (`runweasel`, `cdromBoot`, `ks=`) removed, as weasel does (media.md §4).
pub(super) fn installed_kernelopt(media: &MediaFacts) -> String {
    media
        .boot_cfg
        .kernelopt
        .clone()
        .unwrap_or_default()
        .split_whitespace()
        .filter(|w| !matches!(*w, "runweasel" | "cdromBoot") && !w.starts_with("ks="))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The partitions of `layout` that ESXi's tools must format at first boot (docs/FIRSTBOOT.md).
pub(super) fn format_steps(layout: &Layout, boot_disk: bool) -> Vec<FormatStep> {
    use storage::Filesystem as F;
    layout
        .partitions
        .iter()
        .filter(|p| p.action == storage::Action::Create)
        .filter_map(|p| {
            let (fs, label) = match &p.filesystem {
                F::VmfslAtFirstBoot => ("vmfsl", None),
                F::VmfsAtFirstBoot => ("vmfs6", Some("datastore1".to_string())),
                F::VmfsByFirstBootScript { volume_name } => ("vmfs6", Some(volume_name.clone())),
                _ => return None,
            };
            Some(FormatStep {
                disk: layout.disk_id.clone(),
                boot_disk,
                disk_guid: layout.disk_guid.to_string(),
                partition: p.entry.number,
                filesystem: fs.into(),
                label,
            })
        })
        .collect()
}

/// The install log first boot copies to `/var/log/esxi_install.log`, as weasel copies its own:
/// what was installed, the same bytes for the same install on every host of a fleet (the full
/// record, with this host's disk and kickstart, is `ksinstall.json` on the bank).
pub(super) fn install_log(media: &MediaFacts) -> String {
    format!(
        "ksinstall {}: fresh install of ESXi {} (build {}); the install record is ksinstall.json in this boot bank\n",
        env!("CARGO_PKG_VERSION"),
        media.manifest.version,
        media.manifest.build,
    )
}

/// What differs between the `boot.cfg` of a fresh install's bank and of an upgrade's new bank.
pub(super) struct BankBoot<'a> {
    /// The first file of the bank: the kernel (`b.b00`).
    pub kernel: Option<&'a FileCopy>,
    /// Every other module, in boot order (the generated and carried archives last).
    pub modules: Vec<String>,
    pub kernelopt: String,
    pub build: &'a str,
    /// 0: boots; 1: upgrading (ESXi's loader boots it once, then makes it 0).
    pub bootstate: u32,
    /// The bank with the higher `updated` boots.
    pub updated: u64,
}

/// A bank's `boot.cfg` as VMware's installer writes it (weasel's `bootbank` module): one
/// builder for the fresh install and the upgrade.
pub(super) fn bank_boot_cfg(b: BankBoot<'_>) -> BootCfg {
    BootCfg {
        bootstate: Some(b.bootstate),
        title: Some("Loading VMware ESXi".into()),
        timeout: Some(5),
        prefix: Some(String::new()),
        kernel: b.kernel.map(|f| f.to.clone()),
        kernelopt: Some(b.kernelopt),
        modules: b.modules,
        build: Some(b.build.to_string()),
        updated: Some(b.updated),
        other: Vec::new(),
    }
}

/// `onetime.tgz` (first boot's whole input: a fresh install writes no `state.tgz`) and the
/// bank's `boot.cfg`, which must be bootable and hand `onetime.tgz` to first boot last.
pub(super) fn bank_config(
    media: &MediaFacts,
    bank_files: &[FileCopy],
    first: &hostconfig::FirstBootInputs<'_>,
) -> Result<(Vec<GeneratedFile>, BootCfg, HostConfig), PlanError> {
    let (onetime, host) = hostconfig::first_boot(first)
        .map_err(|e| refuse(Outcome::UsageOrIo, format!("onetime.tgz: {e}")))?;
    let mut modules: Vec<String> = bank_files.iter().skip(1).map(|f| f.to.clone()).collect();
    modules.push(onetime.name.clone());
    let mut kernelopt = installed_kernelopt(media);
    if !kernelopt
        .split_whitespace()
        .any(|w| w == firstboot::NO_AUTO_PARTITION)
    {
        kernelopt = format!("{kernelopt} {}", firstboot::NO_AUTO_PARTITION)
            .trim()
            .to_string();
    }
    let boot_cfg = bank_boot_cfg(BankBoot {
        kernel: bank_files.first(),
        modules,
        kernelopt,
        build: &media.manifest.build,
        bootstate: 0,
        updated: 1,
    });
    if let Some(why) = boot_cfg.unbootable_reason() {
        return Err(refuse(
            Outcome::Media,
            format!("the boot.cfg we would write is not bootable: {why}"),
        ));
    }

    Ok((vec![onetime], boot_cfg, host))
}
