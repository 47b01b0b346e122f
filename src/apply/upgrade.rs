//! Carrying out an upgrade plan. Only the target bank's partition is written: first it is checked
//! that the disk is the one planned (the GPT entries, the bank that boots and the files carried
//! from it as the plan saw them), then the bank is reformatted (which drops its old `boot.cfg`
//! first of all), filled, read back, and its `boot.cfg` written last and synced. A crash or a
//! kill at any point leaves the bank that booted before as the one that boots: its bytes are
//! never written, and the new bank has no valid `boot.cfg` until the very end.

use std::io::Read;

use super::{
    classify, copy_in, mismatch, read_back, unmount, write_bytes, Applied, ApplyError, StepTiming,
    INSTALL_RECORD,
};
use crate::exit::Outcome;
use crate::media::verify;
use crate::media::Media;
use crate::plan::upgrade::UpgradePlan;
use crate::plan::Plan;
use crate::report::{EventSink, Step, StepId};
use crate::storage::{self, BlockDev, Filesystem};

/// The files carried from the running bank, read and checked against the plan's hashes.
fn read_carried(
    dev: &mut BlockDev,
    plan: &Plan,
    u: &UpgradePlan,
) -> Result<Vec<(String, Vec<u8>)>, ApplyError> {
    let stop = |message: String| ApplyError {
        step: StepId::Open,
        outcome: Outcome::Precondition,
        message,
    };
    let running = plan
        .layout
        .partition(u.running_bank)
        .map(|p| p.entry.clone())
        .ok_or_else(|| stop(format!("the layout has no partition {}", u.running_bank)))?;
    let mut out = Vec::new();
    let fs = storage::fat::open_fat(dev, &running).map_err(|e| classify(StepId::Open, e))?;
    for c in &u.carried {
        let mut bytes = Vec::new();
        fs.root_dir()
            .open_file(&c.name)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| stop(format!("bank {}: reading {}: {e}", u.running_bank, c.name)))?;
        let sha = verify::sha256_hex(&bytes);
        if bytes.len() as u64 != c.size || sha != c.sha256 {
            return Err(stop(format!(
                "bank {}: {} changed since the plan was made ({} bytes, SHA-256 {sha}; planned {} bytes, {}): plan again",
                u.running_bank,
                c.name,
                bytes.len(),
                c.size,
                c.sha256
            )));
        }
        out.push((c.name.clone(), bytes));
    }
    drop(fs);
    Ok(out)
}

/// The disk is the one planned: its size, every GPT entry as planned (the target bank's too).
fn check_disk(dev: &mut BlockDev, plan: &Plan, u: &UpgradePlan) -> Result<(), ApplyError> {
    storage::check_target(dev, &plan.layout).map_err(|e| classify(StepId::Open, e))?;
    let gpt = storage::read_gpt(dev).map_err(|e| classify(StepId::Open, e))?;
    if !gpt.entries.contains(&u.target_entry) {
        return Err(ApplyError {
            step: StepId::Open,
            outcome: Outcome::Precondition,
            message: format!(
                "{}: partition {} is not as planned: plan again",
                plan.target.path.display(),
                u.target_bank
            ),
        });
    }
    Ok(())
}

/// Reformat and fill the target bank, read everything back: all but `boot.cfg`.
fn fill_bank(
    dev: &mut BlockDev,
    plan: &Plan,
    u: &UpgradePlan,
    media: &Media,
    carried: &[(String, Vec<u8>)],
    sink: &dyn EventSink,
    applied: &mut Applied,
) -> Result<(), ApplyError> {
    let bank = plan
        .layout
        .partition(u.target_bank)
        .cloned()
        .ok_or_else(|| classify(StepId::Bootbank, anyhow::anyhow!("no target bank")))?;
    let Filesystem::Fat16 {
        label,
        volume_id,
        bytes_per_cluster,
        bank_uuid,
        ..
    } = &bank.filesystem
    else {
        return Err(classify(
            StepId::Bootbank,
            anyhow::anyhow!("the target bank is not planned as FAT16"),
        ));
    };
    let total: u64 = plan.bank_files.iter().map(|f| f.size).sum::<u64>()
        + plan.generated.iter().map(|g| g.size).sum::<u64>()
        + carried.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
    let step = Step::start(
        sink,
        StepId::Bootbank,
        format!(
            "{} modules to boot bank {} (partition {}), reformatted",
            plan.bank_files.len(),
            u.target_bank - 5,
            u.target_bank
        ),
        Some(total),
    );
    let spec = storage::fat::FatSpec {
        label,
        volume_id: *volume_id,
        bytes_per_cluster: *bytes_per_cluster,
        bank_uuid: *bank_uuid,
    };
    storage::fat::format_fat16(dev, &bank.entry, &spec)
        .map_err(|e| classify(StepId::Bootbank, e))?;
    let mut done = 0;
    {
        let fs =
            storage::fat::open_fat(dev, &bank.entry).map_err(|e| classify(StepId::Bootbank, e))?;
        for f in &plan.bank_files {
            copy_in(&fs, media, f, &step, &mut done).map_err(|e| classify(StepId::Bootbank, e))?;
        }
        for (name, bytes) in carried {
            write_bytes(&fs, name, bytes).map_err(|e| classify(StepId::Bootbank, e))?;
            done += bytes.len() as u64;
            step.progress(done);
        }
        for g in &plan.generated {
            write_bytes(&fs, &g.name, &g.bytes).map_err(|e| classify(StepId::Bootbank, e))?;
            done += g.size;
            step.progress(done);
        }
        unmount(fs, &format!("partition {}", u.target_bank))
            .map_err(|e| classify(StepId::Bootbank, e))?;
    }
    applied.bytes_written += done;
    applied.timings.push(StepTiming {
        step: StepId::Bootbank,
        elapsed_ms: step.finish(),
    });
    dev.sync().map_err(|e| classify(StepId::Verify, e))?;

    let step = Step::start(
        sink,
        StepId::Verify,
        "reading every written file back",
        Some(total),
    );
    let fs = storage::fat::open_fat(dev, &bank.entry).map_err(|e| classify(StepId::Verify, e))?;
    let expected = plan
        .bank_files
        .iter()
        .map(|f| (f.to.clone(), f.size, f.sha256.clone()))
        .chain(
            carried
                .iter()
                .map(|(n, b)| (n.clone(), b.len() as u64, verify::sha256_hex(b))),
        )
        .chain(
            plan.generated
                .iter()
                .map(|g| (g.name.clone(), g.size, g.sha256.clone())),
        );
    let mut done = 0;
    for (path, size, sha) in expected {
        let w = read_back(&fs, u.target_bank, &path).map_err(|e| classify(StepId::Verify, e))?;
        if let Some(e) = mismatch(&w, size, &sha) {
            return Err(e);
        }
        done += w.size;
        step.progress(done);
        applied.files.push(w);
    }
    unmount(fs, &format!("partition {}", u.target_bank))
        .map_err(|e| classify(StepId::Verify, e))?;
    applied.timings.push(StepTiming {
        step: StepId::Verify,
        elapsed_ms: step.finish(),
    });
    Ok(())
}

/// Carry out an upgrade plan (see the module comment for the order and what it guarantees).
pub(super) fn apply_upgrade(
    plan: &Plan,
    u: &UpgradePlan,
    media: &Media,
    sink: &dyn EventSink,
    install_record: &dyn Fn(&Applied) -> Vec<u8>,
) -> Result<Applied, ApplyError> {
    let mut applied = Applied {
        timings: Vec::new(),
        files: Vec::new(),
        bytes_written: 0,
        dpus: Vec::new(),
    };
    if plan.check_media {
        super::check_media(media, sink)?;
    }
    let t = &plan.target;
    let mut dev =
        BlockDev::open(&t.path, t.logical_sector_size).map_err(|e| classify(StepId::Open, e))?;
    check_disk(&mut dev, plan, u)?;
    // Read through a handle that cannot write: the running bank is never written, not even by
    // a file system library's bookkeeping.
    let mut ro = BlockDev::open_read_only(&t.path, t.logical_sector_size)
        .map_err(|e| classify(StepId::Open, e))?;
    let carried = read_carried(&mut ro, plan, u)?;
    drop(ro);
    fill_bank(&mut dev, plan, u, media, &carried, sink, &mut applied)?;
    let bank = u.target_entry.clone();
    {
        let bytes = install_record(&applied);
        let fs =
            storage::fat::open_fat(&mut dev, &bank).map_err(|e| classify(StepId::Bootcfg, e))?;
        write_bytes(&fs, INSTALL_RECORD, &bytes).map_err(|e| classify(StepId::Bootcfg, e))?;
        unmount(fs, "the target bank").map_err(|e| classify(StepId::Bootcfg, e))?;
    }
    dev.sync().map_err(|e| classify(StepId::Bootcfg, e))?;
    // boot.cfg last: with it (bootstate=1, updated=max+1) the new bank boots next; before it,
    // the bank has no boot.cfg and safeboot ignores it.
    let step = Step::start(
        sink,
        StepId::Bootcfg,
        format!("writing boot.cfg to partition {}", u.target_bank),
        None,
    );
    let text = plan.boot_cfg.render();
    {
        let fs =
            storage::fat::open_fat(&mut dev, &bank).map_err(|e| classify(StepId::Bootcfg, e))?;
        write_bytes(&fs, "boot.cfg", text.as_bytes()).map_err(|e| classify(StepId::Bootcfg, e))?;
        unmount(fs, "the target bank").map_err(|e| classify(StepId::Bootcfg, e))?;
    }
    dev.sync().map_err(|e| classify(StepId::Bootcfg, e))?;
    {
        let fs =
            storage::fat::open_fat(&mut dev, &bank).map_err(|e| classify(StepId::Bootcfg, e))?;
        let w =
            read_back(&fs, u.target_bank, "boot.cfg").map_err(|e| classify(StepId::Bootcfg, e))?;
        if let Some(e) = mismatch(&w, text.len() as u64, &verify::sha256_hex(text.as_bytes())) {
            return Err(e);
        }
        applied.files.push(w);
        unmount(fs, "the target bank").map_err(|e| classify(StepId::Bootcfg, e))?;
    }
    applied.timings.push(StepTiming {
        step: StepId::Bootcfg,
        elapsed_ms: step.finish(),
    });
    log::info!(
        "{}: upgraded to {} in bank {} (bank {} kept for rollback)",
        t.path.display(),
        u.to_build,
        u.target_bank,
        u.running_bank
    );
    Ok(applied)
}
