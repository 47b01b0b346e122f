//! Reading what a disk holds now, byte by byte: partition table (GPT via the `gpt` crate, or a
//! legacy MBR), an ESXi install (boot banks with `boot.cfg`), VMFS, VMFS-L, vSAN. Read-only,
//! always. The model it fills and the rules on it live in [`super::installed`]; the arrow goes
//! from here to there only.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use super::installed;
pub use super::installed::{Bootbank, DiskContent, EsxInstall, MbrPartition, PartitionTable};
use crate::partition::{types, PartitionEntry};
use gpt::disk::LogicalBlockSize;

/// Largest GPT entry array we accept; real tables have 128 entries.
const MAX_GPT_ENTRIES: u32 = 4096;
/// A `boot.cfg` is a few kilobytes; read no more than this.
const MAX_BOOT_CFG: u64 = 64 * 1024;

/// A device opened for reading that refuses every write: the `gpt` and `fatfs` crates want a
/// `Write` bound even to read, and nothing here may ever write a disk.
#[derive(Debug)]
struct ReadOnly<T>(T);

impl<T: Read> Read for ReadOnly<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<T: Seek> Seek for ReadOnly<T> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.0.seek(pos)
    }
}

impl<T> Write for ReadOnly<T> {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(read_only())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What every write through the inventory's readers gets: it never writes to a disk.
fn read_only() -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        "the inventory opens disks read-only",
    )
}

/// A partition seen as a device of its own (fatfs must start at offset 0).
#[derive(Debug)]
struct Slice<'a> {
    file: &'a File,
    start: u64,
    len: u64,
    pos: u64,
    /// Bytes this slice may still read. fatfs 0.3.6 does not detect cluster-chain loops, so a
    /// crafted FAT could otherwise keep the inventory reading forever.
    budget: u64,
}

/// What reading one boot bank's `boot.cfg`, `imgdb.tgz`, `state.tgz` and `jumpstrt.gz` may
/// cost: far more than a real bank needs.
const FAT_READ_BUDGET: u64 = 64 << 20;
/// The bank files read whole (`imgdb.tgz`, `state.tgz`, `jumpstrt.gz`): a few MiB on ESXi.
const MAX_BANK_FILE: u64 = 32 << 20;

impl Read for Slice<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let at = self.start.checked_add(self.pos).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "partition beyond 2^64 bytes")
        })?;
        if self.budget == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "FAT read budget exceeded (a looping cluster chain?)",
            ));
        }
        let want = want.min(usize::try_from(self.budget).unwrap_or(usize::MAX));
        let mut file = self.file;
        file.seek(SeekFrom::Start(at))?;
        let n = file.read(&mut buf[..want])?;
        self.pos += n as u64;
        self.budget = self.budget.saturating_sub(n as u64);
        Ok(n)
    }
}

impl Seek for Slice<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(p) if p <= self.len => {
                self.pos = p;
                Ok(p)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek outside the partition",
            )),
        }
    }
}

impl Write for Slice<'_> {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(read_only())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Content left unread on purpose.
pub(crate) fn not_read() -> DiskContent {
    DiskContent::empty(PartitionTable::Unreadable, Some("not read".to_string()))
}

/// Reads what is on the device at `path` (a block device, or in tests a regular file).
/// Never fails: what cannot be read is reported in the result and logged.
pub fn read(path: &Path, logical_block_size: u32) -> DiskContent {
    // Opened read-only: no code path below can write through this handle.
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            // Said where it matters: the plan names what the target holds, probe lists it.
            log::debug!("cannot open {} to see what it holds: {e}", path.display());
            return DiskContent::empty(
                PartitionTable::Unreadable,
                Some(format!("{}: {e}", path.display())),
            );
        }
    };
    let lb = match LogicalBlockSize::try_from(u64::from(logical_block_size)) {
        Ok(lb) => lb,
        Err(_) => {
            let why = format!("logical block size {logical_block_size} is neither 512 nor 4096");
            log::warn!("{}: {why}", path.display());
            return DiskContent::empty(PartitionTable::Unknown, Some(why));
        }
    };
    match catch_unwind(AssertUnwindSafe(|| read_table(&file, lb))) {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            log::warn!("reading {}: {e}", path.display());
            DiskContent::empty(
                PartitionTable::Unreadable,
                Some(format!("{}: {e}", path.display())),
            )
        }
        Err(_) => {
            log::warn!("{}: partition table is malformed", path.display());
            DiskContent::empty(
                PartitionTable::Unknown,
                Some("malformed partition table".to_string()),
            )
        }
    }
}

/// Reads up to `buf.len()` bytes at `offset`, zero-filling what lies past the end.
fn read_at(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    buf.fill(0);
    let mut f = file;
    f.seek(SeekFrom::Start(offset))?;
    let mut done = 0;
    while done < buf.len() {
        match f.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn read_table(file: &File, lb: LogicalBlockSize) -> io::Result<DiskContent> {
    let lbs = lb.as_u64();
    let mut lba0 = vec![0u8; lb.as_usize()];
    read_at(file, 0, &mut lba0)?;
    let mbr = parse_mbr(&lba0);
    let protective = mbr.iter().any(|p| p.os_type == 0xee);

    match open_gpt(file, lb)? {
        GptRead::Table(disk) => {
            let mut content = DiskContent::empty(PartitionTable::Gpt, None);
            content.protective_mbr = protective;
            for (number, p) in disk.partitions() {
                content
                    .partitions
                    .push(PartitionEntry::from_gpt(*number, p));
            }
            classify(file, lbs, &mut content);
            Ok(content)
        }
        GptRead::Refused(why) => Ok(DiskContent::empty(PartitionTable::Unknown, Some(why))),
        GptRead::None => {
            if protective {
                return Ok(DiskContent::empty(
                    PartitionTable::Unknown,
                    Some("protective MBR, but no readable GPT".to_string()),
                ));
            }
            if !mbr.is_empty() {
                let mut content = DiskContent::empty(PartitionTable::Mbr, None);
                content.mbr_partitions = mbr;
                return Ok(content);
            }
            if lba0.iter().all(|b| *b == 0) {
                Ok(DiskContent::empty(PartitionTable::Blank, None))
            } else {
                Ok(DiskContent::empty(
                    PartitionTable::Unknown,
                    Some("data, but no partition table".to_string()),
                ))
            }
        }
    }
}

/// The used records of an MBR, if LBA 0 carries the 0x55AA signature.
fn parse_mbr(lba0: &[u8]) -> Vec<MbrPartition> {
    if lba0.get(510..512) != Some(&[0x55, 0xaa][..]) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for i in 0..4u32 {
        let at = 446 + 16 * i as usize;
        let Some(rec) = lba0.get(at..at + 16) else {
            break;
        };
        let le32 = |o: usize| u32::from_le_bytes([rec[o], rec[o + 1], rec[o + 2], rec[o + 3]]);
        let (os_type, first_lba, sectors) = (rec[4], le32(8), le32(12));
        if os_type != 0 && sectors != 0 {
            out.push(MbrPartition {
                number: i + 1,
                os_type,
                first_lba,
                sectors,
            });
        }
    }
    out
}

enum GptRead {
    None,
    Refused(String),
    Table(Box<gpt::GptDisk<ReadOnly<File>>>),
}

fn open_gpt(file: &File, lb: LogicalBlockSize) -> io::Result<GptRead> {
    // The gpt crate asserts 128-byte entries and allocates the whole entry array: check the
    // header it will use before handing it untrusted bytes.
    let lbs = lb.as_u64();
    let len = {
        let mut f = file;
        f.seek(SeekFrom::End(0))?
    };
    let mut header = [0u8; 92];
    let mut candidates = vec![lbs];
    if len >= 3 * lbs {
        candidates.push((len / lbs - 1) * lbs);
    }
    let mut any = false;
    for at in candidates {
        read_at(file, at, &mut header)?;
        if &header[..8] != b"EFI PART" {
            continue;
        }
        any = true;
        let num_parts = u32::from_le_bytes([header[80], header[81], header[82], header[83]]);
        let part_size = u32::from_le_bytes([header[84], header[85], header[86], header[87]]);
        if part_size != 128 || num_parts > MAX_GPT_ENTRIES {
            return Ok(GptRead::Refused(format!(
                "GPT with {num_parts} entries of {part_size} bytes is not supported"
            )));
        }
        // The crate prefers the primary header when it is valid; checking that one is enough.
        if at == lbs
            && gpt::header::read_header_from_arbitrary_device(&mut ReadOnly(file), lb).is_ok()
        {
            break;
        }
    }
    if !any {
        return Ok(GptRead::None);
    }
    let device = ReadOnly(file.try_clone()?);
    match gpt::GptConfig::new()
        .writable(false)
        .logical_block_size(lb)
        .open_from_device(device)
    {
        Ok(disk) => Ok(GptRead::Table(Box::new(disk))),
        Err(e) => Ok(GptRead::Refused(format!("GPT present but unreadable: {e}"))),
    }
}

/// Bytes at the head of a VMFS or VMFS-L partition that must read as zeros for it to count as
/// unformatted: the layout's wipe (`WIPE_HEAD_BYTES` in src/storage/layout/sizes.rs), which
/// covers the VMFS volume header at 1 MiB.
const UNFORMATTED_HEAD: u64 = 4 << 20;

/// The partition's first 4 MiB (or all of it, if smaller) read, and every byte is zero. A read
/// that fails or comes up short is "not known to be empty".
fn head_is_zero(file: &File, lbs: u64, p: &PartitionEntry) -> bool {
    let (Some(start), Some(end)) = (
        p.first_lba.checked_mul(lbs),
        (p.last_lba + 1).checked_mul(lbs),
    ) else {
        return false;
    };
    let mut left = end.saturating_sub(start).min(UNFORMATTED_HEAD);
    let mut f = file;
    if left == 0 || f.seek(SeekFrom::Start(start)).is_err() {
        return false;
    }
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(buf.len()).min(buf.len());
        match f.read(&mut buf[..want]) {
            Ok(0) | Err(_) => return false,
            Ok(n) if buf[..n].iter().any(|b| *b != 0) => return false,
            Ok(n) => left -= n as u64,
        }
    }
    true
}

fn classify(file: &File, lbs: u64, content: &mut DiskContent) {
    let mut banks = Vec::new();
    for p in &content.partitions {
        if p.type_guid == types::VMFS || p.type_guid == types::VMFSL {
            if p.type_guid == types::VMFS {
                content.vmfs.push(p.number);
            } else {
                content.vmfsl.push(p.number);
            }
            if head_is_zero(file, lbs, p) {
                content.unformatted.push(p.number);
            }
        } else if p.type_guid == types::VSAN {
            content.vsan.push(p.number);
        } else if p.type_guid == types::BASIC_DATA {
            // Like ESXi's bootloader, consider every Basic Data (FAT) partition, not only 5 and 6.
            if let Some(bank) = read_bank(file, lbs, p) {
                banks.push(bank);
            }
        }
    }
    if !banks.iter().any(|b| b.has_boot_cfg) {
        return;
    }
    let choice = installed::safeboot_choice(&banks);
    let version = choice
        .boots
        .and_then(|p| banks.iter().find(|b| b.partition == p))
        .and_then(|b| b.build.clone())
        .or_else(|| {
            banks
                .iter()
                .filter(|b| b.build.as_deref().is_some_and(|s| !s.is_empty()))
                .max_by_key(|b| (b.updated.unwrap_or(0), std::cmp::Reverse(b.partition)))
                .and_then(|b| b.build.clone())
        });
    let upgrade = installed::upgradability(&content.partitions, &banks, lbs);
    content.esx = Some(EsxInstall {
        version,
        banks,
        boots: choice.boots,
        upgrade,
    });
}

/// The VMware FAT signature of a partition: its bank UUID, if it has one.
fn bank_signature(file: &File, lbs: u64, p: &PartitionEntry) -> io::Result<Option<String>> {
    let mut buf = [0u8; 32];
    let at = p
        .first_lba
        .checked_add(1)
        .and_then(|s| s.checked_mul(lbs))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "partition beyond 2^64 bytes"))?;
    read_at(file, at, &mut buf)?;
    if &buf[..16] != crate::partition::VMWARE_FAT_MAGIC {
        return Ok(None);
    }
    let mut u = [0u8; 16];
    u.copy_from_slice(&buf[16..]);
    Ok(Some(uuid::Uuid::from_bytes(u).to_string()))
}

/// One boot bank, or `None` for a Basic Data partition that is neither signed as a bank nor
/// holds a `boot.cfg`. What cannot be read is said in `problem`, never a panic.
fn read_bank(file: &File, lbs: u64, p: &PartitionEntry) -> Option<Bootbank> {
    let uuid = match bank_signature(file, lbs, p) {
        Ok(u) => u,
        Err(e) => {
            log::debug!("partition {}: {e}", p.number);
            None
        }
    };
    let mut bank = Bootbank {
        partition: p.number,
        uuid,
        has_boot_cfg: false,
        build: None,
        updated: None,
        bootstate: None,
        quickboot: false,
        image: None,
        state_tgz: None,
        jumpstrt_gz: None,
        first_boot: None,
        problem: None,
    };
    match catch_unwind(AssertUnwindSafe(|| {
        read_bank_files(file, lbs, p, &mut bank)
    })) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => bank.problem = Some(e.to_string()),
        Err(_) => bank.problem = Some("malformed FAT file system".into()),
    }
    if let Some(why) = &bank.problem {
        log::debug!("partition {}: {why}", p.number);
    }
    (bank.uuid.is_some() || bank.has_boot_cfg).then_some(bank)
}

fn read_whole(
    fs: &fatfs::FileSystem<Slice<'_>>,
    name: &str,
    limit: u64,
) -> io::Result<Option<Vec<u8>>> {
    let f = match fs.root_dir().open_file(name) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    f.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{name} is larger than {limit} bytes"),
        ));
    }
    Ok(Some(bytes))
}

fn fact(bytes: &[u8]) -> installed::FileFact {
    installed::FileFact {
        size: bytes.len() as u64,
        sha256: crate::media::verify::sha256_hex(bytes),
    }
}

fn read_bank_files(
    file: &File,
    lbs: u64,
    p: &PartitionEntry,
    bank: &mut Bootbank,
) -> io::Result<()> {
    let overflow = || io::Error::new(io::ErrorKind::InvalidData, "partition beyond 2^64 bytes");
    let slice = Slice {
        file,
        start: p.first_lba.checked_mul(lbs).ok_or_else(overflow)?,
        len: p.sectors().checked_mul(lbs).ok_or_else(overflow)?,
        pos: 0,
        budget: FAT_READ_BUDGET,
    };
    let fs = fatfs::FileSystem::new(slice, fatfs::FsOptions::new())?;
    let Some(bytes) = read_whole(&fs, "boot.cfg", MAX_BOOT_CFG)? else {
        return Ok(());
    };
    bank.has_boot_cfg = true;
    let text = String::from_utf8_lossy(&bytes);
    let (mut modules, mut kernelopt) = (Vec::new(), String::new());
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "modules" => modules = value.split(" --- ").map(|m| m.trim().to_string()).collect(),
            "kernelopt" => kernelopt = value.to_string(),
            "build" => bank.build = Some(value.to_string()),
            "updated" => bank.updated = value.parse().ok(),
            "bootstate" => bank.bootstate = value.parse().ok(),
            "quickboot" => bank.quickboot = value.parse::<u64>().is_ok_and(|q| q != 0),
            _ => {}
        }
    }
    // A bank ESXi will never boot (bootstate 3, no build) is not read further: it is what an
    // upgrade overwrites, and a damaged one must not stop the upgrade that replaces it.
    if bank.bootstate == Some(3) {
        return Ok(());
    }
    bank.state_tgz = read_whole(&fs, "state.tgz", MAX_BANK_FILE)?.map(|b| fact(&b));
    bank.jumpstrt_gz = read_whole(&fs, "jumpstrt.gz", MAX_BANK_FILE)?.map(|b| fact(&b));
    let onetime = read_whole(&fs, crate::firstboot::ONETIME, MAX_BANK_FILE)?;
    bank.first_boot =
        crate::firstboot::BankFirstBoot::read(onetime.as_deref(), &modules, &kernelopt);
    if let Some(db) = read_whole(&fs, "imgdb.tgz", MAX_BANK_FILE)? {
        match installed::BankImage::from_imgdb(&db) {
            Ok(img) => bank.image = Some(img),
            Err(why) => bank.problem = Some(why.to_string()),
        }
    }
    Ok(())
}
