//! The kickstart `interactive --save-ks FILE` writes, from the kickstart the console planned,
//! the inventory and the chosen disk. By default one that repeats across a fleet: the disk by a
//! `--firstdisk` rule (its model, else its vendor: [`DiskRule`]) that picks the chosen disk on
//! this host, read back as `install --ks` reads it to prove it, and no address or host name
//! unless static addressing was chosen. With [`Form::Exact`], this host's answers as they are.
//! See docs/CONSOLE.md.

use serde::{Deserialize, Serialize};

use crate::inventory::{select, Disk, DiskLookupError, Inventory};
use crate::kickstart::{self, BootProto, DiskTarget, Kickstart};

/// Which kickstart is saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Form {
    /// For other hosts: the disk by a rule, no per-host address unless chosen static.
    Fleet,
    /// This host's answers: its disk by name, its address and host name.
    Exact,
}

/// `--firstdisk` keywords: a model or vendor spelled like one would not be matched by name.
const KEYWORDS: [&str; 6] = ["local", "remote", "usb", "esx", "localesx", "remoteesx"];

/// The name a saved kickstart goes by when it is read back to check it.
const SAVED_NAME: &str = "saved";

/// Which of the disk's reports a rule filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum By {
    Model,
    Vendor,
}

impl std::fmt::Display for By {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            By::Model => "model",
            By::Vendor => "vendor",
        })
    }
}

/// A `--firstdisk` filter that picks the chosen disk on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskRule {
    pub by: By,
    /// The model or vendor as the disk reports it (trimmed); the reader lower-cases it.
    pub filter: String,
    /// How many disks here the filter matches; the chosen one is the first.
    pub matches: usize,
}

/// One of the disk's reports that is no rule, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Tried {
    /// A comma (the reader splits the list there) or a `--firstdisk` keyword.
    #[error("its {by} {value:?} cannot be a filter")]
    NotAFilter { by: By, value: String },
    #[error("{by} {value:?} picks {first} first")]
    PicksAnother {
        by: By,
        value: String,
        first: String,
    },
    #[error("{by} {value:?} picks no disk")]
    PicksNone { by: By, value: String },
}

/// Why the saved kickstart names the disk by this host's name instead of by a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum NoRule {
    #[error("the disk reports no model or vendor")]
    NoModelOrVendor,
    #[error("{}", join(.tried))]
    NoFilterPicksIt { tried: Vec<Tried> },
    #[error("--firstdisk={filter} read back chose {disk}")]
    ReadBackChose { filter: String, disk: String },
    #[error("--firstdisk={filter} read back: {error}")]
    ReadBack {
        filter: String,
        error: ReadBackError,
    },
}

fn join(tried: &[Tried]) -> String {
    tried
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a saved kickstart, read back, chooses no disk on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ReadBackError {
    /// The first error the kickstart reader reports.
    #[error("{message}")]
    Kickstart { message: String },
    #[error("no install line")]
    NoInstallLine,
    #[error("the install line names no disk")]
    NoDisk,
    #[error("{error}")]
    Disk { error: DiskLookupError },
}

/// How a fleet kickstart names the disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SavedDisk {
    /// `--firstdisk=FILTER`, read back to pick the chosen disk here.
    Rule(DiskRule),
    /// `--disk=NAME`: this host's name for it, and why no rule does.
    Name { name: String, why: NoRule },
}

/// A fleet kickstart and how it names the disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    pub disk: SavedDisk,
    pub text: String,
}

/// The kickstart to save, from the one the plan was made of. `chosen` is the disk the user
/// chose, one of `inventory.disks`. The root password is in `ks` only as its hash.
pub fn text(ks: &Kickstart, inventory: &Inventory, chosen: &Disk, form: Form) -> String {
    match form {
        Form::Exact => kickstart::print(ks),
        Form::Fleet => fleet(ks, inventory, chosen).text,
    }
}

/// The kickstart for other hosts: the disk by a rule that, read back, picks `chosen` here;
/// else by `chosen`'s name, with why no rule does.
pub fn fleet(ks: &Kickstart, inventory: &Inventory, chosen: &Disk) -> Saved {
    let why = match disk_rule(&inventory.disks, chosen) {
        Ok(rule) => {
            let target = DiskTarget::FirstDisk(vec![rule.filter.clone()]);
            let text = render(ks, target, &rule_comment(&rule, chosen));
            // Read back as `install --ks` will: it must choose this very disk here.
            match chosen_by(&text, inventory) {
                Ok(d) if d.device == chosen.device => {
                    return Saved {
                        disk: SavedDisk::Rule(rule),
                        text,
                    }
                }
                Ok(d) => NoRule::ReadBackChose {
                    filter: rule.filter,
                    disk: d.kernel_name.clone(),
                },
                Err(error) => NoRule::ReadBack {
                    filter: rule.filter,
                    error,
                },
            }
        }
        Err(why) => why,
    };
    let target = DiskTarget::Disk(chosen.name.clone());
    let text = render(ks, target, &fallback_comment(&why));
    Saved {
        disk: SavedDisk::Name {
            name: chosen.name.clone(),
            why,
        },
        text,
    }
}

/// The first of the chosen disk's model and vendor that, as the only `--firstdisk` filter,
/// picks it on this host; else why none does.
pub fn disk_rule(disks: &[Disk], chosen: &Disk) -> Result<DiskRule, NoRule> {
    let mut tried = Vec::new();
    for (by, value) in [(By::Model, &chosen.model), (By::Vendor, &chosen.vendor)] {
        let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
            continue;
        };
        let value = v.to_string();
        // The reader splits the list at commas; a keyword would not match by name.
        if v.contains(',') || KEYWORDS.contains(&v.to_lowercase().as_str()) {
            tried.push(Tried::NotAFilter { by, value });
            continue;
        }
        match select::first_disk(disks, std::slice::from_ref(&value), false, false) {
            Ok(c) if c.disk.device == chosen.device => {
                return Ok(DiskRule {
                    by,
                    filter: value,
                    matches: c.candidates.len(),
                })
            }
            Ok(c) => tried.push(Tried::PicksAnother {
                by,
                value,
                first: c.disk.kernel_name.clone(),
            }),
            Err(_) => tried.push(Tried::PicksNone { by, value }),
        }
    }
    if tried.is_empty() {
        Err(NoRule::NoModelOrVendor)
    } else {
        Err(NoRule::NoFilterPicksIt { tried })
    }
}

/// The disk a saved kickstart's `install` line chooses on this host.
pub fn chosen_by<'a>(text: &str, inventory: &'a Inventory) -> Result<&'a Disk, ReadBackError> {
    let mut loader = kickstart::FsLoader::new("/nonexistent");
    let parsed = kickstart::parse(SAVED_NAME, SAVED_NAME, text.as_bytes(), &mut loader, None);
    if let Some(e) = parsed.diagnostics.iter().find(|d| d.is_error()) {
        return Err(ReadBackError::Kickstart {
            message: e.message.clone(),
        });
    }
    let Some(action) = &parsed.kickstart.action else {
        return Err(ReadBackError::NoInstallLine);
    };
    let found = match &action.target {
        Some(DiskTarget::Disk(name)) => inventory.resolve_disk(name),
        Some(DiskTarget::FirstDisk(filters)) => inventory
            .first_disk_choice(filters, action.ignore_ssd, false)
            .map(|c| c.disk),
        None => return Err(ReadBackError::NoDisk),
    };
    found.map_err(|error| ReadBackError::Disk { error })
}

fn rule_comment(rule: &DiskRule, chosen: &Disk) -> Vec<String> {
    let here = if rule.matches > 1 {
        format!(
            ", the first of the {} disks of that {} there",
            rule.matches, rule.by
        )
    } else {
        String::new()
    };
    vec![
        format!(
            "# The disk by a rule, not by this host's disk name: the first disk whose {} is {:?}.",
            rule.by, rule.filter
        ),
        format!(
            "# On the host this was saved on that is {} ({}){here}.",
            chosen.kernel_name, chosen.name
        ),
        "# A host without such a disk refuses the install and nothing is written.".into(),
    ]
}

fn fallback_comment(why: &NoRule) -> Vec<String> {
    vec![
        "# The disk by this host's name: no --firstdisk rule picks it first here".into(),
        format!("# ({why})."),
        "# Give each other host its own --disk=NAME (`ksinstall probe` lists the disks).".into(),
    ]
}

const STATIC_COMMENT: [&str; 2] = [
    "# per-host: static addressing was chosen, so the address and host name are this host's.",
    "# Give each host its own (or --bootproto=dhcp) before installing another host with it.",
];

/// `ks` printed with `target` on its install line, each remark above the line it is about.
fn render(ks: &Kickstart, target: DiskTarget, disk_comment: &[String]) -> String {
    let mut ks = ks.clone();
    let mut install = None;
    if let Some(a) = ks.action.as_mut() {
        a.target = Some(target);
        install = Some(format!("{} ", a.kind.command()));
    }
    let per_host = ks
        .network
        .as_ref()
        .is_some_and(|n| n.bootproto == BootProto::Static);
    let mut out = String::new();
    for (i, line) in kickstart::print(&ks).lines().enumerate() {
        if i == 1 {
            out.push_str("# Saved by `ksinstall interactive --save-ks` for other hosts too.\n");
        }
        let remarks: Vec<&str> = if install.as_deref().is_some_and(|p| line.starts_with(p)) {
            disk_comment.iter().map(String::as_str).collect()
        } else if per_host && line.starts_with("network ") {
            STATIC_COMMENT.to_vec()
        } else {
            Vec::new()
        };
        for r in remarks {
            out.push_str(r);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kickstart::password;
    use std::path::Path;

    fn inventory(fixture: &str) -> Inventory {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(fixture);
        Inventory::read(&root).unwrap()
    }

    fn disk<'a>(inv: &'a Inventory, kernel: &str) -> &'a Disk {
        inv.disks.iter().find(|d| d.kernel_name == kernel).unwrap()
    }

    /// The console's kickstart for `disk`, parsed as the console parses it.
    fn console_ks(disk: &Disk, network: &str) -> Kickstart {
        let hash = password::sha512_crypt("Console-Pass-42x").unwrap();
        let text = format!(
            "vmaccepteula\nrootpw --iscrypted '{hash}'\ninstall --disk={} --overwritevmfs\n\
             keyboard 'US Default'\n{network}\n",
            disk.name
        );
        let mut loader = kickstart::FsLoader::new("/nonexistent");
        let parsed = kickstart::parse("console", "console", text.as_bytes(), &mut loader, None);
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        parsed.kickstart
    }

    fn settings(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn the_disk_is_saved_as_its_model_and_the_rule_picks_it_here() {
        let inv = inventory("bluefield3");
        let sda = disk(&inv, "sda");
        let ks = console_ks(sda, "network --bootproto=dhcp");
        let text = text(&ks, &inv, sda, Form::Fleet);
        let s = settings(&text);
        assert!(
            s.contains(&"install --firstdisk=MR9560-16i --overwritevmfs"),
            "{text}"
        );
        assert!(
            s.contains(&"network --bootproto=dhcp --addvmportgroup=1"),
            "{text}"
        );
        assert!(
            text.contains("the first disk whose model is \"MR9560-16i\""),
            "{text}"
        );
        assert!(!text.contains("per-host"), "{text}");
        assert_eq!(chosen_by(&text, &inv).unwrap().device, sda.device);
        // The other disk, a NetApp LUN, by its own model.
        let sdb = disk(&inv, "sdb");
        let text = super::text(&console_ks(sdb, ""), &inv, sdb, Form::Fleet);
        assert!(
            text.contains("install --firstdisk='LUN C-Mode' --overwritevmfs"),
            "{text}"
        );
        assert_eq!(chosen_by(&text, &inv).unwrap().device, sdb.device);
    }

    #[test]
    fn the_first_of_two_twins_is_saved_by_model_the_second_by_its_name() {
        let inv = inventory("plain");
        let sda = disk(&inv, "sda");
        let text = text(&console_ks(sda, ""), &inv, sda, Form::Fleet);
        assert!(
            text.contains("install --firstdisk='Samsung SSD 870 EVO 1TB'"),
            "{text}"
        );
        assert!(
            text.contains("the first of the 2 disks of that model"),
            "{text}"
        );
        // sdb: its model and vendor both pick sda first, so the file names sdb.
        let sdb = disk(&inv, "sdb");
        let text = super::text(&console_ks(sdb, ""), &inv, sdb, Form::Fleet);
        assert!(
            settings(&text)
                .contains(&format!("install --disk={} --overwritevmfs", sdb.name).as_str()),
            "{text}"
        );
        assert!(
            !settings(&text).iter().any(|l| l.contains("--firstdisk")),
            "{text}"
        );
        assert!(
            text.contains("no --firstdisk rule picks it first here")
                && text.contains("model \"Samsung SSD 870 EVO 1TB\" picks sda first")
                && text.contains("vendor \"ATA\" picks sda first"),
            "{text}"
        );
        assert_eq!(chosen_by(&text, &inv).unwrap().device, sdb.device);
    }

    #[test]
    fn without_a_model_the_vendor_is_the_rule() {
        let mut inv = inventory("bluefield3");
        inv.disks[0].model = None;
        let sda = inv.disks[0].clone();
        let text = text(&console_ks(&sda, ""), &inv, &sda, Form::Fleet);
        assert!(text.contains("install --firstdisk=BROADCOM"), "{text}");
        assert!(text.contains("whose vendor is \"BROADCOM\""), "{text}");
        // A model spelled like a keyword is no filter.
        inv.disks[0].model = Some("local".into());
        inv.disks[0].vendor = None;
        let sda = inv.disks[0].clone();
        let text = super::text(&console_ks(&sda, ""), &inv, &sda, Form::Fleet);
        assert!(
            text.contains(&format!("install --disk={}", sda.name)),
            "{text}"
        );
        assert!(
            text.contains("its model \"local\" cannot be a filter"),
            "{text}"
        );
    }

    #[test]
    fn a_static_address_is_kept_and_marked_per_host_and_exact_is_the_plain_print() {
        let inv = inventory("bluefield3");
        let sda = disk(&inv, "sda");
        let ks = console_ks(
            sda,
            "network --bootproto=static --ip=10.1.2.3 --netmask=255.255.255.0 \
             --hostname=esx1.example",
        );
        let text = text(&ks, &inv, sda, Form::Fleet);
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with("network "))
            .unwrap();
        assert!(
            lines[at].contains("--ip=10.1.2.3") && lines[at].contains("--hostname=esx1.example"),
            "{text}"
        );
        assert!(lines[at - 2].starts_with("# per-host:"), "{text}");
        // The rest of the model is what the console planned: read back, only the disk differs.
        let mut loader = kickstart::FsLoader::new("/nonexistent");
        let back = kickstart::parse("saved", "saved", text.as_bytes(), &mut loader, None);
        assert!(!back.has_errors(), "{:?}", back.diagnostics);
        assert_eq!(
            back.kickstart.network.as_ref().map(|n| n.ip),
            ks.network.as_ref().map(|n| n.ip)
        );
        assert_eq!(
            back.kickstart.root_password.map(|p| p.hash),
            ks.root_password.clone().map(|p| p.hash)
        );
        assert_eq!(
            super::text(&ks, &inv, sda, Form::Exact),
            kickstart::print(&ks)
        );
    }

    #[test]
    fn a_disk_without_model_or_vendor_has_no_rule_and_is_saved_by_name() {
        let mut inv = inventory("bluefield3");
        inv.disks[0].model = Some("  ".into());
        inv.disks[0].vendor = None;
        let sda = inv.disks[0].clone();
        assert_eq!(disk_rule(&inv.disks, &sda), Err(NoRule::NoModelOrVendor));
        let saved = fleet(&console_ks(&sda, ""), &inv, &sda);
        assert_eq!(
            saved.disk,
            SavedDisk::Name {
                name: sda.name.clone(),
                why: NoRule::NoModelOrVendor
            }
        );
        assert!(
            saved
                .text
                .contains("# (the disk reports no model or vendor)."),
            "{}",
            saved.text
        );
    }

    #[test]
    fn each_report_that_is_no_rule_says_why_as_data() {
        let inv = inventory("plain");
        let sdb = disk(&inv, "sdb");
        let Err(NoRule::NoFilterPicksIt { tried }) = disk_rule(&inv.disks, sdb) else {
            panic!("sdb has a rule")
        };
        assert_eq!(
            tried,
            [
                Tried::PicksAnother {
                    by: By::Model,
                    value: "Samsung SSD 870 EVO 1TB".into(),
                    first: "sda".into()
                },
                Tried::PicksAnother {
                    by: By::Vendor,
                    value: "ATA".into(),
                    first: "sda".into()
                }
            ]
        );
        // A comma or a keyword is no filter; a vendor no eligible disk has picks none.
        let mut inv = inventory("bluefield3");
        inv.disks[0].model = Some("a,b".into());
        inv.disks[0].vendor = Some("NOSUCH".into());
        let sda = inv.disks[0].clone();
        let mut others = inv.disks.clone();
        others[0].vendor = Some("OTHER".into());
        assert_eq!(
            disk_rule(&others, &sda),
            Err(NoRule::NoFilterPicksIt {
                tried: vec![
                    Tried::NotAFilter {
                        by: By::Model,
                        value: "a,b".into()
                    },
                    Tried::PicksNone {
                        by: By::Vendor,
                        value: "NOSUCH".into()
                    }
                ]
            })
        );
    }

    #[test]
    fn a_rule_read_back_and_the_read_back_errors_are_typed() {
        let inv = inventory("bluefield3");
        let sda = disk(&inv, "sda");
        let saved = fleet(&console_ks(sda, ""), &inv, sda);
        let SavedDisk::Rule(rule) = &saved.disk else {
            panic!("{:?}", saved.disk)
        };
        assert_eq!(
            (rule.by, rule.filter.as_str(), rule.matches),
            (By::Model, "MR9560-16i", 1)
        );
        // The rule and the reason are documents: they read back as they were.
        let json = serde_json::to_string(&saved).unwrap();
        assert_eq!(serde_json::from_str::<Saved>(&json).unwrap(), saved);
        assert!(json.contains(r#""kind":"rule","by":"model""#), "{json}");

        // The saved text with its install line replaced.
        let with_install = |line: &str| {
            let mut t: Vec<&str> = saved
                .text
                .lines()
                .filter(|l| !l.starts_with("install "))
                .collect();
            t.push(line);
            t.join("\n") + "\n"
        };
        assert_eq!(
            chosen_by(&with_install(""), &inv),
            Err(ReadBackError::Kickstart {
                message: "one of install, upgrade or installorupgrade is required".into()
            })
        );
        let Err(ReadBackError::Disk { error }) =
            chosen_by(&with_install("install --disk=nosuch --overwritevmfs"), &inv)
        else {
            panic!("a disk that is not there was found")
        };
        assert!(matches!(error, DiskLookupError::NotFound { ref name, .. } if name == "nosuch"));
        assert_eq!(
            chosen_by(&with_install("install --firstdisk=MR9560-16i"), &inv).map(|d| &d.device),
            Ok(&sda.device)
        );
        let why = NoRule::ReadBack {
            filter: "X".into(),
            error: ReadBackError::NoInstallLine,
        };
        assert_eq!(why.to_string(), "--firstdisk=X read back: no install line");
        let json = serde_json::to_string(&why).unwrap();
        assert_eq!(serde_json::from_str::<NoRule>(&json).unwrap(), why);
    }
}
