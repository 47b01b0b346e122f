//! The apply stage: carries out a `Plan` and nothing else. The order is what keeps a failed
//! install from ever booting: partitions, bootloader, every module streamed media -> SHA-256 ->
//! FAT file, the host configuration, a read-back pass over everything written, and only then
//! `boot.cfg` (synced), the one file that makes boot bank 0 bootable.

pub mod scripts;
mod upgrade;

use std::io::{Read, Write};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dpu;
use crate::exit::Outcome;
use crate::media::verify::{self, VerifyingReader};
use crate::media::Media;
use crate::plan::{DpuAction, DpuPlan, FileCopy, Plan};
use crate::report::{EventSink, Step, StepId};
use crate::storage::{self, BlockDev, FatVolume};

/// An install that stopped: which step, why, and the exit class.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {message}")]
pub struct ApplyError {
    pub step: StepId,
    pub outcome: Outcome,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepTiming {
    pub step: StepId,
    pub elapsed_ms: u64,
}

/// A file as read back from the disk after writing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WrittenFile {
    pub partition: u32,
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub timings: Vec<StepTiming>,
    pub files: Vec<WrittenFile>,
    pub bytes_written: u64,
    /// The DPUs installed, with what they report afterwards.
    pub dpus: Vec<dpu::Installed>,
}

const COPY_BUFFER: usize = 1 << 20;

/// The install record's name in boot bank 0.
pub(crate) const INSTALL_RECORD: &str = "ksinstall.json";

fn classify(step: StepId, err: anyhow::Error) -> ApplyError {
    let outcome = if err
        .chain()
        .any(|e| e.downcast_ref::<crate::interrupt::Interrupted>().is_some())
    {
        Outcome::Interrupted
    } else if verify::mismatch_of(&err).is_some() || verify::unreadable_of(&err).is_some() {
        Outcome::Media
    } else if err
        .chain()
        .any(|e| e.downcast_ref::<storage::VerifyFailed>().is_some())
    {
        Outcome::Verify
    } else {
        storage::outcome_of(&err)
    };
    ApplyError {
        step,
        outcome,
        message: format!("{err:#}"),
    }
}

/// Copy one media component into an open FAT through the verifier, with a bounded buffer.
/// Buffers in flight between the reading thread and the writer: keeps memory flat (4 MiB).
const IN_FLIGHT: usize = 4;

/// Copy one media component into an open FAT: media -> SHA-256 -> FAT file. Reading and hashing
/// run on a second thread while this one writes, so the two CPU costs of a lay-down overlap; a
/// bounded channel of 1 MiB buffers keeps memory independent of the file size.
fn copy_in(
    fs: &FatVolume<'_>,
    media: &Media,
    f: &FileCopy,
    step: &Step<'_>,
    done: &mut u64,
) -> Result<()> {
    let src = media.source.open(&f.from).map_err(|e| verify::Unreadable {
        name: f.from.clone(),
        message: format!("{e:#}"),
    })?;
    let mut out = fs
        .root_dir()
        .create_file(&f.to)
        .with_context(|| format!("creating {}", f.to))?;
    out.truncate()
        .with_context(|| format!("truncating {}", f.to))?;
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<Vec<u8>>>(IN_FLIGHT);
        let (spare_tx, spare_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        // A mismatch names the file and what vouches for it (the VIB and payload).
        let name = media
            .manifest
            .find(&f.from)
            .map_or_else(|| f.from.clone(), |c| c.describe());
        let reader = scope.spawn(move || {
            let mut reader = VerifyingReader::new(src, &name, f.size, &f.sha256);
            loop {
                let mut buf = spare_rx.try_recv().unwrap_or_default();
                buf.resize(COPY_BUFFER, 0);
                match reader.read(&mut buf) {
                    Ok(0) => return reader.verified,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.send(Ok(buf)).is_err() {
                            return false; // the writer stopped
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return false;
                    }
                }
            }
        });
        for chunk in rx {
            let buf = chunk
                .map_err(anyhow::Error::from)
                .with_context(|| format!("reading {}", f.from))?;
            out.write_all(&buf)
                .with_context(|| format!("writing {} to partition {}", f.to, f.partition))?;
            *done += buf.len() as u64;
            step.progress(*done);
            let _ = spare_tx.send(buf);
            // A safe point: the file is incomplete, but boot.cfg is not written yet.
            crate::interrupt::check()?;
        }
        let verified = reader
            .join()
            .map_err(|_| anyhow::anyhow!("{}: the reading thread failed", f.from))?;
        anyhow::ensure!(verified, "{}: not verified", f.from);
        Ok(())
    })?;
    out.flush().with_context(|| format!("writing {}", f.to))?;
    Ok(())
}

fn write_bytes(fs: &FatVolume<'_>, name: &str, bytes: &[u8]) -> Result<()> {
    let mut out = fs
        .root_dir()
        .create_file(name)
        .with_context(|| format!("creating {name}"))?;
    out.truncate()?;
    out.write_all(bytes)
        .with_context(|| format!("writing {name}"))?;
    out.flush()?;
    Ok(())
}

fn read_back(fs: &FatVolume<'_>, partition: u32, path: &str) -> Result<WrittenFile> {
    let mut f = fs
        .root_dir()
        .open_file(path)
        .with_context(|| format!("partition {partition}: {path} is missing"))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("partition {partition}: reading {path} back"))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
        crate::interrupt::check()?;
    }
    Ok(WrittenFile {
        partition,
        path: path.to_string(),
        size,
        sha256: verify::hex(&h.finalize()),
    })
}

fn mismatch(w: &WrittenFile, size: u64, sha: &str) -> Option<ApplyError> {
    (w.size != size || w.sha256 != sha).then(|| ApplyError {
        step: StepId::Verify,
        outcome: Outcome::Verify,
        message: format!(
            "partition {} {}: read back {} bytes with SHA-256 {}, wrote {size} bytes with {sha}",
            w.partition, w.path, w.size, w.sha256
        ),
    })
}

fn unmount(fs: FatVolume<'_>, what: &str) -> Result<()> {
    fs.unmount()
        .with_context(|| format!("closing the FAT file system of {what}"))
}

/// `clearpart` on a disk that is not the target: zero what the plan says, then sync.
fn clear_disk(c: &crate::plan::ClearDisk) -> Result<()> {
    let mut dev = BlockDev::open(&c.path, c.logical_sector_size)?;
    // The disk the plan was made for: a different size is a different disk.
    anyhow::ensure!(
        dev.size_bytes() == c.size_bytes,
        "clearpart: {} ({}) is {} bytes now, not the {} planned: not cleared",
        c.name,
        c.path.display(),
        dev.size_bytes(),
        c.size_bytes
    );
    for (offset, len) in &c.zero {
        storage::zero_range(&mut dev, *offset, *len)
            .with_context(|| format!("clearpart: zeroing {} at byte {offset}", c.name))?;
    }
    dev.sync()?;
    log::info!("clearpart: {} cleared", c.name);
    Ok(())
}

/// Partition, bootloader, boot bank 0, read-back: everything of the host but `boot.cfg`.
fn lay_down(
    plan: &Plan,
    media: &Media,
    sink: &dyn EventSink,
    applied: &mut Applied,
) -> Result<BlockDev, ApplyError> {
    let t = &plan.target;
    let mut dev =
        BlockDev::open(&t.path, t.logical_sector_size).map_err(|e| classify(StepId::Open, e))?;
    partition(plan, &mut dev, sink, applied)?;
    let esp = layout_entry(plan, 1, StepId::Bootloader)?;
    let bank = layout_entry(plan, 5, StepId::Bootbank)?;

    let esp_bytes = write_esp(plan, media, &mut dev, &esp, sink, applied)?;
    let bank_bytes = write_bank(plan, media, &mut dev, &bank, sink, applied)?;
    // Flush the written data to the device while the read-back below runs (that reads from
    // memory anyway), so the final sync after boot.cfg has little left to do.
    let early_sync = dev
        .sync_handle()
        .map(|f| std::thread::spawn(move || f.sync_data()))
        .map_err(|e| classify(StepId::Verify, e))?;

    verify_written(
        plan,
        &mut dev,
        [(&esp, 1), (&bank, 5)],
        esp_bytes + bank_bytes,
        sink,
        applied,
    )?;
    match early_sync.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Err(classify(
                StepId::Verify,
                anyhow::Error::from(e).context("flushing the written data"),
            ))
        }
        Err(_) => {
            return Err(classify(
                StepId::Verify,
                anyhow::anyhow!("the flushing thread failed"),
            ))
        }
    }

    Ok(dev)
}

/// The planned GPT entry of partition `number`; a plan without it fails at `step`.
fn layout_entry(
    plan: &Plan,
    number: u32,
    step: StepId,
) -> Result<crate::partition::PartitionEntry, ApplyError> {
    plan.layout
        .partition(number)
        .map(|p| p.entry.clone())
        .ok_or_else(|| {
            classify(
                step,
                anyhow::anyhow!("the layout has no partition {number}"),
            )
        })
}

/// `clearpart`'s other disks, the target's GPT and wipes, the `part` datastore disks.
fn partition(
    plan: &Plan,
    dev: &mut BlockDev,
    sink: &dyn EventSink,
    applied: &mut Applied,
) -> Result<(), ApplyError> {
    let t = &plan.target;
    let step = Step::start(
        sink,
        StepId::Partition,
        format!("partitioning {}", t.name),
        None,
    );
    for c in &plan.cleared {
        clear_disk(c).map_err(|e| classify(StepId::Partition, e))?;
        step.status(format!("clearpart: {} cleared", c.name));
    }
    storage::apply_layout(dev, &plan.layout).map_err(|e| classify(StepId::Partition, e))?;
    // `part` datastore disks: a GPT with one VMFS partition each, wiped; formatted at first boot.
    for d in &plan.datastore_disks {
        let mut other = BlockDev::open(&d.path, d.layout.logical_sector_size)
            .map_err(|e| classify(StepId::Open, e))?;
        storage::apply_layout(&mut other, &d.layout)
            .map_err(|e| classify(StepId::Partition, e.context(d.name.clone())))?;
    }
    applied.timings.push(StepTiming {
        step: StepId::Partition,
        elapsed_ms: step.finish(),
    });

    Ok(())
}

/// The EFI System Partition (partition 1); returns the bytes it holds.
fn write_esp(
    plan: &Plan,
    media: &Media,
    dev: &mut BlockDev,
    esp: &crate::partition::PartitionEntry,
    sink: &dyn EventSink,
    applied: &mut Applied,
) -> Result<u64, ApplyError> {
    // The EFI System Partition: safeboot as EFI/BOOT/BOOTX64.EFI, mboot and crypto in EFI/VMware.
    let esp_bytes: u64 = plan.esp_files.iter().map(|f| f.size).sum::<u64>()
        + plan.esp_generated.iter().map(|g| g.size).sum::<u64>();
    let step = Step::start(
        sink,
        StepId::Bootloader,
        "bootloader files to partition 1",
        Some(esp_bytes),
    );
    let mut dirs: Vec<&str> = plan
        .esp_files
        .iter()
        .filter_map(|f| f.to.rsplit_once('/').map(|(d, _)| d))
        .collect();
    dirs.sort_unstable();
    dirs.dedup();
    for d in dirs {
        storage::fat::create_dir_all(dev, esp, d).map_err(|e| classify(StepId::Bootloader, e))?;
    }
    let mut done = 0;
    {
        let fs = storage::fat::open_fat(dev, esp).map_err(|e| classify(StepId::Bootloader, e))?;
        for f in &plan.esp_files {
            copy_in(&fs, media, f, &step, &mut done)
                .map_err(|e| classify(StepId::Bootloader, e))?;
        }
        for g in &plan.esp_generated {
            write_bytes(&fs, &g.name, &g.bytes).map_err(|e| classify(StepId::Bootloader, e))?;
            done += g.size;
        }
        unmount(fs, "partition 1").map_err(|e| classify(StepId::Bootloader, e))?;
    }
    applied.bytes_written += done;
    applied.timings.push(StepTiming {
        step: StepId::Bootloader,
        elapsed_ms: step.finish(),
    });

    Ok(esp_bytes)
}

/// Boot bank 0 (partition 5); returns the bytes it holds.
fn write_bank(
    plan: &Plan,
    media: &Media,
    dev: &mut BlockDev,
    bank: &crate::partition::PartitionEntry,
    sink: &dyn EventSink,
    applied: &mut Applied,
) -> Result<u64, ApplyError> {
    // Boot bank 0: every module, streamed and verified, then the generated archives.
    let bank_bytes: u64 = plan.bank_files.iter().map(|f| f.size).sum::<u64>()
        + plan.generated.iter().map(|g| g.size).sum::<u64>();
    let step = Step::start(
        sink,
        StepId::Bootbank,
        format!(
            "{} modules to boot bank 0 (partition 5)",
            plan.bank_files.len()
        ),
        Some(bank_bytes),
    );
    let mut done = 0;
    {
        let fs = storage::fat::open_fat(dev, bank).map_err(|e| classify(StepId::Bootbank, e))?;
        for f in &plan.bank_files {
            copy_in(&fs, media, f, &step, &mut done).map_err(|e| classify(StepId::Bootbank, e))?;
        }
        for g in &plan.generated {
            write_bytes(&fs, &g.name, &g.bytes).map_err(|e| classify(StepId::Bootbank, e))?;
            done += g.size;
            step.progress(done);
        }
        unmount(fs, "partition 5").map_err(|e| classify(StepId::Bootbank, e))?;
    }
    applied.bytes_written += done;
    applied.timings.push(StepTiming {
        step: StepId::Bootbank,
        elapsed_ms: step.finish(),
    });

    Ok(bank_bytes)
}

/// Every written file read back from the disk and compared with the plan.
fn verify_written(
    plan: &Plan,
    dev: &mut BlockDev,
    partitions: [(&crate::partition::PartitionEntry, u32); 2],
    total: u64,
    sink: &dyn EventSink,
    applied: &mut Applied,
) -> Result<(), ApplyError> {
    // Read everything back from the disk and compare with the plan.
    let step = Step::start(
        sink,
        StepId::Verify,
        "reading every written file back",
        Some(total),
    );
    let mut done = 0;
    for (entry, number) in partitions {
        let fs = storage::fat::open_fat(dev, entry).map_err(|e| classify(StepId::Verify, e))?;
        let expected: Vec<(String, u64, String)> = plan
            .esp_files
            .iter()
            .chain(plan.bank_files.iter())
            .filter(|f| f.partition == number)
            .map(|f| (f.to.clone(), f.size, f.sha256.clone()))
            .chain(
                plan.generated
                    .iter()
                    .filter(|_| number == 5)
                    .chain(plan.esp_generated.iter().filter(|_| number == 1))
                    .map(|g| (g.name.clone(), g.size, g.sha256.clone())),
            )
            .collect();
        for (path, size, sha) in expected {
            let w = read_back(&fs, number, &path).map_err(|e| classify(StepId::Verify, e))?;
            if let Some(e) = mismatch(&w, size, &sha) {
                return Err(e);
            }
            done += w.size;
            step.progress(done);
            applied.files.push(w);
        }
        unmount(fs, &format!("partition {number}")).map_err(|e| classify(StepId::Verify, e))?;
    }
    applied.timings.push(StepTiming {
        step: StepId::Verify,
        elapsed_ms: step.finish(),
    });

    Ok(())
}

/// Hash every host component of the media (`--skip-media-check` turns this off).
fn check_media(media: &Media, sink: &dyn EventSink) -> Result<(), ApplyError> {
    let host = |c: &crate::media::Component| c.role != crate::media::Role::Dpu;
    let total: u64 = media
        .manifest
        .components
        .iter()
        .filter(|c| host(c))
        .map(|c| c.size)
        .sum();
    let step = Step::start(
        sink,
        StepId::Media,
        "checking every host component of the media",
        Some(total),
    );
    media
        .verify_components(&host, &mut |done| step.progress(done))
        .map_err(|e| {
            let mut e = classify(StepId::Media, e);
            if e.outcome != Outcome::Interrupted {
                e.outcome = Outcome::Media;
            }
            e
        })?;
    step.finish();
    Ok(())
}

/// Staged files in the firmware search path, removed (with our directory, once empty) when
/// dropped: after the flash, or on any error or panic on the way.
struct StagedFiles(Vec<std::path::PathBuf>);

impl Drop for StagedFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
            if let Some(dir) = p.parent() {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

/// Stage every payload to be installed; returns each with its staged file.
fn stage_dpus<'p>(
    plan: &'p Plan,
    media: &Media,
    sink: &dyn EventSink,
    scratch: &std::path::Path,
) -> Result<Vec<(&'p DpuPlan, dpu::payload::Staged)>, ApplyError> {
    let mut out = Vec::new();
    for d in plan.dpus.iter().filter(|d| d.action == DpuAction::Install) {
        let total: u64 = d.payload.parts.iter().map(|p| p.size).sum();
        let step = Step::start(
            sink,
            StepId::DpuStage,
            format!("checking and packing the payload for {}", d.name),
            Some(total),
        );
        let dir = d.stage_dir.as_deref().unwrap_or(scratch);
        let staged = match dpu::payload::stage(
            &d.payload,
            media,
            dir,
            &d.card.identity.model,
            &d.card.identity.address,
        ) {
            Ok(s) => s,
            Err(e) => {
                // What was staged for another card goes too.
                drop(StagedFiles(
                    out.iter()
                        .filter(|(d, _): &&(&DpuPlan, dpu::payload::Staged)| d.stage_dir.is_some())
                        .map(|(_, s)| s.path.clone())
                        .collect(),
                ));
                let mut e = classify(StepId::DpuStage, e);
                e.message = format!("{}: {}", d.name, e.message);
                return Err(e);
            }
        };
        step.progress(total);
        step.finish();
        out.push((d, staged));
    }
    Ok(out)
}

/// Install one DPU through its interface, reporting progress as step `dpu`.
fn install_dpu(
    d: &DpuPlan,
    staged: &dpu::payload::Staged,
    sink: &dyn EventSink,
    access: &dpu::Access,
) -> Result<dpu::Installed, ApplyError> {
    let started = Instant::now();
    let step = Step::start(
        sink,
        StepId::Dpu,
        format!(
            "{} onto {} through {}",
            d.payload.label, d.name, d.interface
        ),
        Some(staged.size),
    );
    let mut backend: Box<dyn dpu::Backend + '_> = match &d.interface {
        dpu::Interface::Rshim { dir, .. } => Box::new(dpu::RshimBackend {
            dpu: &d.card,
            name: d.name.clone(),
            dir: dir.clone(),
            marker: staged.marker.clone().unwrap_or_default(),
            access,
        }),
        dpu::Interface::Devlink {
            bus,
            device,
            firmware_dir,
            ..
        } => Box::new(dpu::DevlinkBackend {
            dpu: &d.card,
            name: d.name.clone(),
            bus: bus.clone(),
            device: device.clone(),
            firmware_name: d.payload.file_name.clone(),
            firmware_version: d.payload.firmware_version.clone(),
            firmware_dir: firmware_dir.clone(),
            access,
        }),
    };
    let result = backend.install(&staged.path, &mut |p| match p {
        dpu::Progress::Bytes(n) => step.progress(n),
        dpu::Progress::Status(m) => {
            log::info!("{}: {m}", d.name);
            step.status(m);
        }
    });
    match result {
        Ok(sent) => {
            step.finish();
            Ok(dpu::Installed {
                address: d.card.identity.address.clone(),
                staged_sha256: sent.sha256,
                staged_bytes: sent.bytes,
                after: sent.after,
                elapsed_ms: dpu::elapsed_ms(started),
            })
        }
        Err(f) => Err(ApplyError {
            step: StepId::Dpu,
            outcome: f.outcome,
            message: f.to_string(),
        }),
    }
}

/// The install record and, last, `boot.cfg`, each read back: until `boot.cfg` is there the bank
/// does not boot.
fn finish_bank(
    plan: &Plan,
    dev: &mut BlockDev,
    install_record: &dyn Fn(&Applied) -> Vec<u8>,
    sink: &dyn EventSink,
    applied: &mut Applied,
) -> Result<(), ApplyError> {
    let bank = layout_entry(plan, 5, StepId::Bootcfg)?;

    // The install record, kept on the bank itself: how this host was installed, with every file's
    // hash as read back (never the password).
    {
        let bytes = install_record(applied);
        let fs = storage::fat::open_fat(dev, &bank).map_err(|e| classify(StepId::Bootcfg, e))?;
        write_bytes(&fs, INSTALL_RECORD, &bytes).map_err(|e| classify(StepId::Bootcfg, e))?;
        unmount(fs, "partition 5").map_err(|e| classify(StepId::Bootcfg, e))?;
    }

    // boot.cfg last: until it is there (with bootstate=0, updated>0, a build), the bank does not
    // boot, so no failure above can leave a bootable half-written bank.
    let step = Step::start(
        sink,
        StepId::Bootcfg,
        "writing boot.cfg to boot bank 0",
        None,
    );
    let text = plan.boot_cfg.render();
    {
        let fs = storage::fat::open_fat(dev, &bank).map_err(|e| classify(StepId::Bootcfg, e))?;
        write_bytes(&fs, "boot.cfg", text.as_bytes()).map_err(|e| classify(StepId::Bootcfg, e))?;
        unmount(fs, "partition 5").map_err(|e| classify(StepId::Bootcfg, e))?;
    }
    dev.sync().map_err(|e| classify(StepId::Bootcfg, e))?;
    {
        let fs = storage::fat::open_fat(dev, &bank).map_err(|e| classify(StepId::Bootcfg, e))?;
        let w = read_back(&fs, 5, "boot.cfg").map_err(|e| classify(StepId::Bootcfg, e))?;
        if let Some(e) = mismatch(&w, text.len() as u64, &verify::sha256_hex(text.as_bytes())) {
            return Err(e);
        }
        applied.files.push(w);
        unmount(fs, "partition 5").map_err(|e| classify(StepId::Bootcfg, e))?;
    }
    applied.timings.push(StepTiming {
        step: StepId::Bootcfg,
        elapsed_ms: step.finish(),
    });
    Ok(())
}

/// Carry out `plan` with the bytes of `media`. Every DPU payload is staged (and so checked)
/// first; then each DPU is installed on its own thread while the host's disk is laid down, and
/// `boot.cfg` is written only when both have succeeded. `install_record` makes the bytes of
/// `ksinstall.json` from what was applied (the driver's report type: apply does not know it);
/// it is written after everything else is written and verified, just before `boot.cfg`.
pub fn apply(
    plan: &Plan,
    media: &Media,
    sink: &dyn EventSink,
    access: &dpu::Access,
    install_record: &dyn Fn(&Applied) -> Vec<u8>,
) -> Result<Applied, ApplyError> {
    if let Some(u) = &plan.upgrade {
        return upgrade::apply_upgrade(plan, u, media, sink, install_record);
    }
    let mut applied = Applied {
        timings: Vec::new(),
        files: Vec::new(),
        bytes_written: 0,
        dpus: Vec::new(),
    };
    let started = Instant::now();
    let t = &plan.target;

    // Before the first write, on two threads: every host component of the media hashed, and
    // the DPU payloads packed (hashing each of their parts). Anything that does not hash as
    // planned stops the install while every disk and device is as it was.
    let scratch = dpu::payload::scratch_dir().map_err(|e| classify(StepId::DpuStage, e))?;
    let (checked, staged) = std::thread::scope(|scope| {
        let check = plan
            .check_media
            .then(|| scope.spawn(|| check_media(media, sink)));
        let staged = stage_dpus(plan, media, sink, scratch.path());
        let checked = match check {
            Some(h) => h.join().unwrap_or_else(|_| {
                Err(classify(
                    StepId::Media,
                    anyhow::anyhow!("the media check failed"),
                ))
            }),
            None => Ok(()),
        };
        (checked, staged)
    });
    // Staged files in the firmware search path go when this run ends, however it ends.
    let _cleanup = StagedFiles(match &staged {
        Ok(s) => s
            .iter()
            .filter(|(d, _)| d.stage_dir.is_some())
            .map(|(_, s)| s.path.clone())
            .collect(),
        Err(_) => Vec::new(),
    });
    checked?;
    let staged = staged?;
    // The last safe point before the first write: a run stopped here leaves every disk as it was.
    crate::interrupt::check().map_err(|i| classify(StepId::Media, i.into()))?;
    for d in plan
        .dpus
        .iter()
        .filter(|d| d.action == DpuAction::AlreadyInstalled)
    {
        let msg = format!(
            "{} already runs {}: not flashed again",
            d.name, d.payload.label
        );
        log::info!("{msg}");
        sink.emit(crate::report::Event::Status {
            step: StepId::Dpu,
            message: msg,
        });
    }

    let (host, dpus) = std::thread::scope(|scope| {
        // A card the host reaches the network through waits for the lay-down (its reset takes
        // the port down); the others run beside it.
        let (now, later): (Vec<_>, Vec<_>) =
            staged.iter().partition(|(d, _)| d.after_host.is_none());
        let mut dpu_threads: Vec<_> = now
            .into_iter()
            .map(|(d, s)| scope.spawn(move || install_dpu(d, s, sink, access)))
            .collect();
        let host = lay_down(plan, media, sink, &mut applied);
        if host.is_err() {
            // The install has failed: stop waiting for the DPU (a transfer under way ends), and
            // start none that waited.
            access
                .cancel
                .store(true, std::sync::atomic::Ordering::SeqCst);
        } else {
            dpu_threads.extend(
                later
                    .into_iter()
                    .map(|(d, s)| scope.spawn(move || install_dpu(d, s, sink, access))),
            );
        }
        let dpus: Vec<_> = dpu_threads
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(ApplyError {
                        step: StepId::Dpu,
                        outcome: Outcome::Dpu,
                        message: "the DPU thread failed".into(),
                    })
                })
            })
            .collect();
        (host, dpus)
    });
    // A host failure is reported first; a DPU failure keeps boot.cfg from being written, so
    // the host never boots as a DPU host whose DPU failed.
    let mut dev = host?;
    for r in dpus {
        applied.dpus.push(r?);
    }
    finish_bank(plan, &mut dev, install_record, sink, &mut applied)?;
    log::info!(
        "{}: installed in {:.1}s",
        t.path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(applied)
}
