//! What a disk holds (the model, [`DiskContent`], filled by [`super::content::read`]) and the
//! rules on it. The ESXi already on a disk, as an upgrade needs it: each boot bank's `boot.cfg`,
//! its image database (`imgdb.tgz`: the profile and VIBs installed), `state.tgz` and
//! `jumpstrt.gz`, whether the disk has the 7.0/8.x layout an upgrade keeps, and which bank
//! ESXi's bootloader boots.
//!
//! The boot choice is our own reading of esx-boot's `safeboot/bootbank.c` (8.0.3; facts in
//! ../shared/spec/layout.md and media.md §6), written here as a pure function so that tests can
//! ask "which bank boots now" of any disk: [`safeboot_choice`].

use serde::{Deserialize, Serialize};

use crate::partition::{types, PartitionEntry};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionTable {
    /// The device could not be opened or read.
    Unreadable,
    /// The first sector is all zeros and there is no GPT.
    Blank,
    /// Data, but no partition table we recognise (or a damaged one).
    Unknown,
    /// A legacy (non-protective) MBR.
    Mbr,
    Gpt,
}

/// One legacy MBR partition record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MbrPartition {
    /// 1 to 4.
    pub number: u32,
    pub os_type: u8,
    pub first_lba: u32,
    pub sectors: u32,
}

/// One ESXi boot bank found on the disk: a Basic Data partition with the VMware FAT signature
/// or a `boot.cfg`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootbank {
    pub partition: u32,
    /// The bank UUID of the VMware FAT signature (second sector): without it safeboot ignores
    /// the partition.
    pub uuid: Option<String>,
    pub has_boot_cfg: bool,
    /// `build=` of its `boot.cfg`, e.g. `7.0.3-0.50.20036589`.
    pub build: Option<String>,
    pub updated: Option<u64>,
    pub bootstate: Option<i64>,
    pub quickboot: bool,
    /// The installed image (`imgdb.tgz`): profile and VIBs.
    pub image: Option<BankImage>,
    /// The host configuration ESXi saved (`state.tgz`).
    pub state_tgz: Option<FileFact>,
    pub jumpstrt_gz: Option<FileFact>,
    /// What this bank hands ESXi's first boot (`onetime.tgz`), read back as ESXi reads it.
    pub first_boot: Option<crate::firstboot::BankFirstBoot>,
    /// What could not be read (the FAT, `boot.cfg`, `imgdb.tgz`).
    pub problem: Option<String>,
}

/// An existing ESXi install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EsxInstall {
    /// Build of the bank that would boot (safeboot's choice), else of the bank with the highest
    /// `updated` that names a build.
    pub version: Option<String>,
    pub banks: Vec<Bootbank>,
    /// The partition ESXi's bootloader boots ([`safeboot_choice`]).
    pub boots: Option<u32>,
    /// Whether `upgrade` can keep this disk, and if not, why.
    pub upgrade: Upgradability,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskContent {
    pub table: PartitionTable,
    /// Why the table is unreadable or unknown.
    pub problem: Option<String>,
    /// LBA 0 holds a protective MBR (type 0xEE) in front of the GPT.
    pub protective_mbr: bool,
    pub partitions: Vec<PartitionEntry>,
    pub mbr_partitions: Vec<MbrPartition>,
    pub esx: Option<EsxInstall>,
    /// Numbers of partitions typed VMFS (datastores).
    pub vmfs: Vec<u32>,
    /// Numbers of partitions typed VMFS-L (ESX-OSData).
    pub vmfsl: Vec<u32>,
    /// Numbers of partitions typed vSAN.
    pub vsan: Vec<u32>,
    /// Of `vmfs` and `vmfsl`, the partitions with no file system: their first 4 MiB (where a
    /// VMFS volume header would be, at 1 MiB) read as zeros, as our layout's wipe leaves them
    /// until the host formats them at first boot. An install of ours that stopped half way
    /// leaves these; they hold no datastore, so they need no `--overwritevmfs`.
    pub unformatted: Vec<u32>,
}

impl DiskContent {
    /// A disk with nothing on it: an image file still to be created.
    pub fn blank() -> DiskContent {
        DiskContent::empty(PartitionTable::Blank, None)
    }

    pub(crate) fn empty(table: PartitionTable, problem: Option<String>) -> DiskContent {
        DiskContent {
            table,
            problem,
            protective_mbr: false,
            partitions: Vec::new(),
            mbr_partitions: Vec::new(),
            esx: None,
            vmfs: Vec::new(),
            vmfsl: Vec::new(),
            vsan: Vec::new(),
            unformatted: Vec::new(),
        }
    }

    /// A short text such as `ESXi 7.0.3-0.50.20036589, VMFS (p8)`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        match self.table {
            PartitionTable::Unreadable => parts.push("unreadable".to_string()),
            PartitionTable::Blank => parts.push("blank".to_string()),
            PartitionTable::Unknown => parts.push("unknown data".to_string()),
            PartitionTable::Mbr => {
                parts.push(format!("MBR, {} partitions", self.mbr_partitions.len()))
            }
            PartitionTable::Gpt => parts.push(format!("GPT, {} partitions", self.partitions.len())),
        }
        if let Some(esx) = &self.esx {
            parts.push(format!(
                "ESXi {}",
                esx.version.as_deref().unwrap_or("(unknown build)")
            ));
        }
        let list = |label: &str, nums: &[u32]| {
            let n: Vec<String> = nums.iter().map(|n| format!("p{n}")).collect();
            format!("{label} ({})", n.join(","))
        };
        if !self.vmfs.is_empty() {
            parts.push(list("VMFS", &self.vmfs));
        }
        if !self.vmfsl.is_empty() {
            parts.push(list("VMFS-L", &self.vmfsl));
        }
        if !self.vsan.is_empty() {
            parts.push(list("vSAN", &self.vsan));
        }
        if !self.unformatted.is_empty() {
            parts.push(list("unformatted", &self.unformatted));
        }
        parts.join(", ")
    }
}

/// The smallest boot bank an upgrade writes to: 7.0 and later have banks of "500 MB" (the
/// smallest column of VMware's table; ksinstall lays down 499 MiB there); 6.x had 250 MB banks.
pub const MIN_BANK_BYTES: u64 = 499 << 20;

/// What safeboot does with one bank at power-on, and whether it may then boot it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankAtBoot {
    pub partition: u32,
    /// `bootstate` after safeboot's rewrite: 1 (upgrading) -> 2 (dirty, booted once), 2 -> 3
    /// (the upgraded bank was never confirmed: rolled back), a bad bank -> 3.
    pub bootstate_after: Option<i64>,
    pub valid: bool,
}

/// safeboot's decision for a disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootChoice {
    /// The partition that boots, if any bank is valid.
    pub boots: Option<u32>,
    /// Every bank safeboot considered (at most three), in partition order.
    pub banks: Vec<BankAtBoot>,
    /// A bank that was being upgraded failed: safeboot rolls back to the other.
    pub rollback: bool,
}

/// Which bank ESXi's bootloader boots, by our reading of esx-boot 8.0.3 `bank_scan` and
/// `bank_auto_select`:
/// - a partition is a bank only with the VMware FAT signature (a UUID) and a readable `boot.cfg`;
///   the first three such partitions count;
/// - `updated` must be > 0 and `build` non-empty, else the bank is not valid;
/// - `bootstate` 1 (upgrading) becomes 2 (dirty) and the bank boots; 2 becomes 3 (its first boot
///   was never confirmed) and it does not; 0 stays; 3 stays and is ignored; anything else
///   (missing, unknown) becomes 3; `quickboot` banks become 3;
/// - an upgrading bank that is not valid also becomes 3 (a rollback);
/// - among banks left in state 0 or 2, the one with the highest `updated` boots (on a tie, the
///   lower partition number: the first one scanned).
pub fn safeboot_choice(banks: &[Bootbank]) -> BootChoice {
    let mut seen = Vec::new();
    let mut rollback = false;
    let mut scanned: Vec<&Bootbank> = banks
        .iter()
        .filter(|b| b.uuid.is_some() && b.has_boot_cfg)
        .collect();
    scanned.sort_by_key(|b| b.partition);
    for b in scanned.into_iter().take(3) {
        let mut valid =
            b.updated.is_some_and(|u| u > 0) && b.build.as_deref().is_some_and(|s| !s.is_empty());
        let (mut upgrading, mut after) = match b.bootstate {
            Some(1) => (true, 2),
            Some(2) => (true, 3),
            Some(s @ (0 | 3)) => (false, s),
            _ => {
                valid = false;
                (false, 3)
            }
        };
        if b.quickboot {
            // A QuickBoot bank is for one boot only.
            valid = false;
            upgrading = false;
            after = 3;
        }
        if upgrading && !valid {
            after = 3;
        }
        if upgrading && after == 3 {
            rollback = true;
        }
        if !matches!(after, 0 | 2) {
            valid = false;
        }
        seen.push(BankAtBoot {
            partition: b.partition,
            bootstate_after: Some(after),
            valid,
        });
    }
    let boots = seen
        .iter()
        .zip(banks_updated(banks, &seen))
        .filter(|(s, _)| s.valid)
        .fold(None::<(u32, u64)>, |best, (s, u)| match best {
            Some((_, bu)) if u <= bu => best,
            _ => Some((s.partition, u)),
        })
        .map(|(p, _)| p);
    BootChoice {
        boots,
        banks: seen,
        rollback,
    }
}

fn banks_updated(banks: &[Bootbank], seen: &[BankAtBoot]) -> Vec<u64> {
    seen.iter()
        .map(|s| {
            banks
                .iter()
                .find(|b| b.partition == s.partition)
                .and_then(|b| b.updated)
                .unwrap_or(0)
        })
        .collect()
}

/// Whether an upgrade can keep this disk's layout, and if not, why (typed: callers branch on it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Upgradability {
    #[error("upgradable: the ESXi 7.0/8.x layout (partitions 1, 5, 6, 7)")]
    Upgradable,
    #[error("the layout of ESXi 6.x or older ({why}): ESXi 7.0 and later change the partitions, so only a fresh install (install --overwritevmfs) can move it to this release")]
    PreSeven { why: String },
    #[error("boot bank partition {partition} has {bytes} bytes, less than the {min_bytes} an ESXi 7.0/8.x bank has: only a fresh install can resize it")]
    BanksTooSmall {
        partition: u32,
        bytes: u64,
        min_bytes: u64,
    },
    #[error("not the ESXi 7.0/8.x layout: {why}")]
    NotEsxLayout { why: String },
    #[error("no boot bank is valid (none would boot): there is no running ESXi to upgrade from")]
    NoBootableBank,
    #[error("boot bank partition {partition}, the one that boots, cannot be read: {why}")]
    Unreadable { partition: u32, why: String },
}

/// Judge the layout and the bank that boots: can an upgrade keep everything but the other bank?
pub fn upgradability(
    partitions: &[PartitionEntry],
    banks: &[Bootbank],
    sector: u64,
) -> Upgradability {
    let part = |n: u32| partitions.iter().find(|p| p.number == n);
    // 6.x: vmkDiagnostic in 7 and 9, a locker (Basic Data) in 8, banks of 250 MB at sector 8224.
    if partitions
        .iter()
        .any(|p| p.type_guid == types::VMK_DIAGNOSTIC)
    {
        return Upgradability::PreSeven {
            why: "a vmkDiagnostic partition".into(),
        };
    }
    if part(8).is_some_and(|p| p.type_guid == types::BASIC_DATA) {
        return Upgradability::PreSeven {
            why: "a locker (FAT) in partition 8".into(),
        };
    }
    for (n, want, name) in [
        (1, types::EFI_SYSTEM, "EFI System"),
        (5, types::BASIC_DATA, "Basic Data (boot bank)"),
        (6, types::BASIC_DATA, "Basic Data (boot bank)"),
        (7, types::VMFSL, "VMFS-L (ESX-OSData)"),
    ] {
        match part(n) {
            None => {
                return Upgradability::NotEsxLayout {
                    why: format!("no partition {n}"),
                }
            }
            Some(p) if p.type_guid != want => {
                return Upgradability::NotEsxLayout {
                    why: format!("partition {n} is not typed {name}"),
                }
            }
            Some(_) => {}
        }
    }
    for n in [5, 6] {
        if let Some(p) = part(n) {
            let bytes = p.sectors().saturating_mul(sector);
            if bytes < MIN_BANK_BYTES {
                return Upgradability::BanksTooSmall {
                    partition: n,
                    bytes,
                    min_bytes: MIN_BANK_BYTES,
                };
            }
        }
    }
    let ours: Vec<Bootbank> = banks
        .iter()
        .filter(|b| matches!(b.partition, 5 | 6))
        .cloned()
        .collect();
    let Some(boots) = safeboot_choice(&ours).boots else {
        return Upgradability::NoBootableBank;
    };
    let Some(bank) = ours.iter().find(|b| b.partition == boots) else {
        return Upgradability::NoBootableBank;
    };
    if let Some(why) = &bank.problem {
        return Upgradability::Unreadable {
            partition: boots,
            why: why.clone(),
        };
    }
    if bank.image.is_none() {
        return Upgradability::Unreadable {
            partition: boots,
            why: "it has no readable imgdb.tgz (the installed image profile)".into(),
        };
    }
    Upgradability::Upgradable
}

/// A file of a bank: its size and SHA-256 as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFact {
    pub size: u64,
    pub sha256: String,
}

/// One installed VIB as the bank's image database names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledVib {
    /// `VMware_bootbank_esx-base_8.0.3-0.35.24280767`.
    pub id: String,
    pub name: String,
    pub version: String,
    pub vendor: String,
}

/// The image a bank holds, from its `imgdb.tgz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankImage {
    pub profile: String,
    /// The version of its `esx-base` (`8.0.3`).
    pub version: Option<String>,
    pub vibs: Vec<InstalledVib>,
}

/// A bank's (or the media's) `imgdb.tgz` that cannot be read as an image database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("imgdb.tgz {0}")]
pub struct BadImgDb(pub crate::media::imgdb::ImgDbError);

impl BankImage {
    pub(crate) fn from_imgdb(bytes: &[u8]) -> Result<BankImage, BadImgDb> {
        let db = crate::media::imgdb::parse(bytes).map_err(BadImgDb)?;
        Ok(BankImage {
            profile: db.profile.name.clone(),
            version: db.version(),
            vibs: db
                .vibs
                .iter()
                .map(|v| InstalledVib {
                    id: v.id.clone(),
                    name: v.name.clone(),
                    version: v.version.clone(),
                    vendor: v.vendor.clone(),
                })
                .collect(),
        })
    }
}
