//! The ESXi 8 kickstart command grammar, as data (in the manner of pykickstart's handler tables):
//! each command's aliases, how often it may occur, its options with their value rules, its
//! positional argument, and the option pairs that exclude each other. The checker in `parse.rs`
//! interprets this table; rules that need more than a table (passwords, networks) live in
//! `rules.rs`. Facts: ../shared/spec/kickstart.md §1.

use super::diag::Severity;

/// How often a command may appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occurs {
    /// Once; a repeat is a warning and the last one wins.
    Once,
    /// Once; a repeat is an error (`install`, `upgrade`, `installorupgrade`).
    OnceStrict,
    /// Any number of times.
    Many,
}

/// What a command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Command,
    /// `%pre`, `%post`, `%firstboot`: a header line followed by a script body.
    Section,
    /// Red Hat-era commands ESXi ignores with a warning.
    Deprecated,
    /// Deprecated sections (`%packages`, `%vmlicense_text`): warned about, body ignored.
    DeprecatedSection,
    /// Accepted, no effect (`lang`, `langsupport`).
    Unused,
}

/// The shape a value must have. A mismatch is a warning unless the option says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    Any,
    /// `true`/`false`/`0`/`1`, any case.
    Bool,
    /// `true`/`false`, any case.
    TrueFalse,
    /// `python` or `busybox`.
    Interpreter,
    /// A non-negative whole number.
    Number,
    /// `XXXXX-XXXXX-XXXXX-XXXXX-XXXXX` of word characters.
    SerialNumber,
    /// `dhcp` or `static`, any case.
    BootProto,
}

/// Whether an option takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// A flag: `--noeject`.
    None,
    /// `--key=value` is required.
    Required(Pattern),
    /// `--key` alone means `default`; `--key=value` gives one.
    Optional {
        default: &'static str,
        pattern: Pattern,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct OptSpec {
    /// Canonical name without the leading dashes, in the spelling we print.
    pub name: &'static str,
    /// Other names meaning the same option.
    pub aliases: &'static [&'static str],
    pub value: Value,
    /// Severity when the value does not match the pattern.
    pub bad_value: Severity,
    /// Severity when the option (or an alias) is given twice.
    pub duplicate: Severity,
    /// Accepted but ignored, with a warning.
    pub deprecated: bool,
}

impl OptSpec {
    pub fn matches(&self, key: &str) -> bool {
        // Case-insensitive: the 8.x docs spell `--dpuPciSlots`/`--dpupcislots` and
        // `--systemDisk`/`--systemdisk` both ways (spec §0.2, UNCONFIRMED for 8.x itself).
        self.name.eq_ignore_ascii_case(key)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(key))
    }
}

/// The positional ("hanging") argument, when the command has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positional {
    None,
    /// Exactly one; missing is an error.
    Required(&'static str),
    /// Deprecated install-media words of ESX 4.x (`install cdrom`): accepted with a warning.
    DeprecatedMedia,
}

/// What the model builder does with a command: each table entry names it, and the builder
/// matches on it exhaustively, so a command cannot be in the table and fall through the
/// builder unhandled (a misspelt name in a `match` on strings would).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    Eula,
    Rootpw,
    /// `install`, `upgrade`, `installorupgrade`.
    Action,
    Clearpart,
    Part,
    Network,
    Keyboard,
    Serialnum,
    Reboot,
    Paranoid,
    Dryrun,
    PartitionEmbed,
    PostScript,
    FirstbootScript,
    /// Handled while reading, before the model is built (`%include`, `%pre`).
    ByReader,
    /// Accepted and not used (ESX 4.x words, `%packages`): the reader already warned.
    Ignored,
}

#[derive(Debug, Clone, Copy)]
pub struct CommandSpec {
    pub name: &'static str,
    /// What builds the model from it.
    pub build: Build,
    pub aliases: &'static [&'static str],
    pub kind: Kind,
    pub occurs: Occurs,
    pub options: &'static [OptSpec],
    pub positional: Positional,
    /// Pairs of options that may not be used together: an error.
    pub exclusive: &'static [(&'static str, &'static str)],
    /// Options of which exactly one must be given (`clearpart`).
    pub one_of: &'static [&'static str],
    /// Needs `install` in the same kickstart (`clearpart`, `part`, `partitionembed`).
    pub requires_install: bool,
    /// Ignored (with a warning) when the kickstart upgrades (spec §1.1 INVALIDATED).
    pub invalidated_by_upgrade: bool,
}

impl CommandSpec {
    pub fn option(&self, key: &str) -> Option<&'static OptSpec> {
        self.options.iter().find(|o| o.matches(key))
    }
    pub fn is(&self, word: &str) -> bool {
        self.name == word || self.aliases.contains(&word)
    }
}

const fn flag(name: &'static str) -> OptSpec {
    OptSpec {
        name,
        aliases: &[],
        value: Value::None,
        bad_value: Severity::Warning,
        duplicate: Severity::Warning,
        deprecated: false,
    }
}

const fn value(name: &'static str, pattern: Pattern) -> OptSpec {
    OptSpec {
        value: Value::Required(pattern),
        ..flag(name)
    }
}

const fn deprecated(name: &'static str, v: Value) -> OptSpec {
    OptSpec {
        value: v,
        deprecated: true,
        ..flag(name)
    }
}

/// `--disk`/`--drive`: a duplicate is an error (spec §1.1).
const DISK: OptSpec = OptSpec {
    aliases: &["drive"],
    duplicate: Severity::Error,
    ..value("disk", Pattern::Any)
};

const fn firstdisk(default: &'static str) -> OptSpec {
    OptSpec {
        value: Value::Optional {
            default,
            pattern: Pattern::Any,
        },
        duplicate: Severity::Error,
        ..flag("firstdisk")
    }
}

/// ESX 4.x install-media options, accepted with a warning by every action command.
const ESX4_SERVER: OptSpec = deprecated("server", Value::Required(Pattern::Any));
const ESX4_DIR: OptSpec = deprecated("dir", Value::Required(Pattern::Any));

const INTERPRETER: OptSpec = OptSpec {
    bad_value: Severity::Error,
    ..value("interpreter", Pattern::Interpreter)
};

const NONE: &[OptSpec] = &[];

const fn command(
    name: &'static str,
    build: Build,
    occurs: Occurs,
    options: &'static [OptSpec],
) -> CommandSpec {
    CommandSpec {
        name,
        build,
        aliases: &[],
        kind: Kind::Command,
        occurs,
        options,
        positional: Positional::None,
        exclusive: &[],
        one_of: &[],
        requires_install: false,
        invalidated_by_upgrade: false,
    }
}

const fn deprecated_command(name: &'static str) -> CommandSpec {
    CommandSpec {
        kind: Kind::Deprecated,
        ..command(name, Build::Ignored, Occurs::Many, NONE)
    }
}

pub(crate) const ACTION_COMMANDS: [&str; 3] = ["install", "upgrade", "installorupgrade"];

/// Every command ESXi 8's installer knows. Deprecated and unused ones are listed so that they
/// get their own warning instead of "unknown command".
pub(crate) static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        aliases: &["accepteula"],
        ..command("vmaccepteula", Build::Eula, Occurs::Once, NONE)
    },
    CommandSpec {
        positional: Positional::Required("password"),
        invalidated_by_upgrade: true,
        ..command("rootpw", Build::Rootpw, Occurs::Once, &[flag("iscrypted")])
    },
    CommandSpec {
        positional: Positional::DeprecatedMedia,
        exclusive: &[
            ("disk", "firstdisk"),
            ("ignoressd", "disk"),
            ("overwritevmfs", "preservevmfs"),
            ("preservevmfs", "novmfsondisk"),
        ],
        invalidated_by_upgrade: true,
        ..command(
            "install",
            Build::Action,
            Occurs::OnceStrict,
            &[
                DISK,
                firstdisk("local,remote,usb"),
                flag("ignoressd"),
                flag("overwritevmfs"),
                flag("preservevmfs"),
                flag("novmfsondisk"),
                flag("overwritevsan"),
                flag("ignoreprereqwarnings"),
                flag("ignoreprereqerrors"),
                flag("forceunsupportedinstall"),
                value("systemdisk", Pattern::Any),
                flag("repartitionsystemdisk"),
                value("dpuPciSlots", Pattern::Any),
                ESX4_SERVER,
                ESX4_DIR,
            ],
        )
    },
    CommandSpec {
        positional: Positional::DeprecatedMedia,
        exclusive: &[("disk", "firstdisk")],
        ..command(
            "installorupgrade",
            Build::Action,
            Occurs::OnceStrict,
            &[
                DISK,
                firstdisk("local,remote,usb"),
                flag("overwritevmfs"),
                flag("overwritevsan"),
                flag("ignoreprereqwarnings"),
                flag("ignoreprereqerrors"),
                flag("forcemigrate"),
                ESX4_SERVER,
                ESX4_DIR,
            ],
        )
    },
    CommandSpec {
        positional: Positional::DeprecatedMedia,
        exclusive: &[("disk", "firstdisk")],
        ..command(
            "upgrade",
            Build::Action,
            Occurs::OnceStrict,
            &[
                DISK,
                firstdisk("local,remote,usb"),
                flag("diskBootedFrom"),
                OptSpec {
                    duplicate: Severity::Error,
                    ..value("savebootbank", Pattern::Any)
                },
                flag("bootDiskMarker"),
                flag("overwritevmfs"),
                flag("deletecosvmdk"),
                flag("ignoreprereqwarnings"),
                flag("ignoreprereqerrors"),
                flag("forcemigrate"),
                ESX4_SERVER,
                ESX4_DIR,
            ],
        )
    },
    CommandSpec {
        exclusive: &[
            ("drives", "ignoredrives"),
            ("drives", "alldrives"),
            ("drives", "firstdisk"),
            ("ignoredrives", "alldrives"),
            ("ignoredrives", "firstdisk"),
            ("alldrives", "firstdisk"),
        ],
        one_of: &["drives", "alldrives", "ignoredrives", "firstdisk"],
        requires_install: true,
        invalidated_by_upgrade: true,
        ..command(
            "clearpart",
            Build::Clearpart,
            Occurs::Many,
            &[
                OptSpec {
                    duplicate: Severity::Error,
                    ..value("drives", Pattern::Any)
                },
                flag("alldrives"),
                value("ignoredrives", Pattern::Any),
                firstdisk("local,remote"),
                flag("overwritevmfs"),
                deprecated("initlabel", Value::None),
                flag("all"),
            ],
        )
    },
    CommandSpec {
        aliases: &["partition"],
        positional: Positional::Required("datastore name"),
        exclusive: &[("ondisk", "onfirstdisk")],
        requires_install: true,
        invalidated_by_upgrade: true,
        ..command(
            "part",
            Build::Part,
            Occurs::Many,
            &[
                OptSpec {
                    aliases: &["ondrive"],
                    ..value("ondisk", Pattern::Any)
                },
                OptSpec {
                    value: Value::Optional {
                        default: "local,remote",
                        pattern: Pattern::Any,
                    },
                    ..flag("onfirstdisk")
                },
                deprecated("size", Value::Required(Pattern::Any)),
                deprecated("grow", Value::None),
                deprecated("maxsize", Value::Required(Pattern::Any)),
                deprecated("fstype", Value::Required(Pattern::Any)),
            ],
        )
    },
    CommandSpec {
        invalidated_by_upgrade: true,
        ..command(
            "network",
            Build::Network,
            Occurs::Once,
            &[
                value("bootproto", Pattern::BootProto),
                value("device", Pattern::Any),
                value("ip", Pattern::Any),
                value("gateway", Pattern::Any),
                value("nameserver", Pattern::Any),
                value("netmask", Pattern::Any),
                value("hostname", Pattern::Any),
                value("vlanid", Pattern::Number),
                value("addvmportgroup", Pattern::Bool),
                flag("nodns"),
            ],
        )
    },
    CommandSpec {
        positional: Positional::Required("keyboard layout"),
        invalidated_by_upgrade: true,
        ..command("keyboard", Build::Keyboard, Occurs::Once, NONE)
    },
    CommandSpec {
        aliases: &["vmserialnum"],
        invalidated_by_upgrade: true,
        ..command(
            "serialnum",
            Build::Serialnum,
            Occurs::Once,
            &[OptSpec {
                bad_value: Severity::Error,
                ..value("esx", Pattern::SerialNumber)
            }],
        )
    },
    command("reboot", Build::Reboot, Occurs::Once, &[flag("noeject")]),
    command("paranoid", Build::Paranoid, Occurs::Once, NONE),
    command("dryrun", Build::Dryrun, Occurs::Once, NONE),
    CommandSpec {
        requires_install: true,
        ..command("partitionembed", Build::PartitionEmbed, Occurs::Once, NONE)
    },
    CommandSpec {
        aliases: &["include"],
        positional: Positional::Required("file"),
        ..command("%include", Build::ByReader, Occurs::Many, NONE)
    },
    CommandSpec {
        kind: Kind::Section,
        ..command("%pre", Build::ByReader, Occurs::Many, &[INTERPRETER])
    },
    CommandSpec {
        kind: Kind::Section,
        ..command(
            "%post",
            Build::PostScript,
            Occurs::Many,
            &[
                INTERPRETER,
                value("timeout", Pattern::Number),
                value("ignorefailure", Pattern::TrueFalse),
            ],
        )
    },
    CommandSpec {
        kind: Kind::Section,
        ..command(
            "%firstboot",
            Build::FirstbootScript,
            Occurs::Many,
            &[INTERPRETER],
        )
    },
    CommandSpec {
        kind: Kind::DeprecatedSection,
        ..command("%packages", Build::Ignored, Occurs::Many, NONE)
    },
    CommandSpec {
        kind: Kind::DeprecatedSection,
        ..command("%vmlicense_text", Build::Ignored, Occurs::Many, NONE)
    },
    CommandSpec {
        kind: Kind::Unused,
        ..command("lang", Build::Ignored, Occurs::Many, NONE)
    },
    CommandSpec {
        kind: Kind::Unused,
        ..command("langsupport", Build::Ignored, Occurs::Many, NONE)
    },
    deprecated_command("auth"),
    deprecated_command("authconfig"),
    deprecated_command("autopart"),
    deprecated_command("autostep"),
    deprecated_command("bootloader"),
    deprecated_command("cmdline"),
    deprecated_command("device"),
    deprecated_command("deviceprobe"),
    deprecated_command("esxlocation"),
    deprecated_command("firewall"),
    deprecated_command("firewallport"),
    deprecated_command("firstboot"),
    deprecated_command("harddrive"),
    deprecated_command("ignoredisk"),
    deprecated_command("interactive"),
    deprecated_command("lilo"),
    deprecated_command("lilocheck"),
    deprecated_command("logvol"),
    deprecated_command("mouse"),
    deprecated_command("raid"),
    deprecated_command("skipx"),
    deprecated_command("text"),
    deprecated_command("timezone"),
    deprecated_command("virtualdisk"),
    deprecated_command("vnc"),
    deprecated_command("volgroup"),
    deprecated_command("xconfig"),
    deprecated_command("xdisplay"),
    deprecated_command("vmlicense"),
    deprecated_command("zerombr"),
];

/// Lines starting with one of these end a section body (spec §0.6: there is no `%end`).
pub(crate) const SECTION_ENDS: &[&str] = &[
    "%post",
    "%pre",
    "%packages",
    "%vmlicense_text",
    "%firstboot",
    "%include",
    "include",
];

pub fn lookup(word: &str) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|c| c.is(word))
}

/// The keyboard layouts ESXi accepts by name (spec §1.2, D9 list).
pub const KEYBOARDS: &[&str] = &[
    "Belgian",
    "Brazilian",
    "Croatian",
    "Czechoslovakian",
    "Danish",
    "Estonian",
    "Finnish",
    "French",
    "German",
    "Greek",
    "Icelandic",
    "Italian",
    "Japanese",
    "Latin American",
    "Norwegian",
    "Polish",
    "Portuguese",
    "Russian",
    "Slovenian",
    "Spanish",
    "Swedish",
    "Swiss French",
    "Swiss German",
    "Turkish",
    "Ukrainian",
    "United Kingdom",
    "US Default",
    "US Dvorak",
];

pub(crate) fn pattern_matches(p: Pattern, v: &str) -> bool {
    match p {
        Pattern::Any => true,
        Pattern::Bool => ["true", "false", "0", "1"]
            .iter()
            .any(|b| b.eq_ignore_ascii_case(v)),
        Pattern::TrueFalse => ["true", "false"].iter().any(|b| b.eq_ignore_ascii_case(v)),
        Pattern::Interpreter => v == "python" || v == "busybox",
        Pattern::Number => !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()),
        Pattern::BootProto => v.eq_ignore_ascii_case("dhcp") || v.eq_ignore_ascii_case("static"),
        Pattern::SerialNumber => {
            let groups: Vec<&str> = v.split('-').collect();
            groups.len() == 5
                && groups.iter().all(|g| {
                    g.chars().count() == 5 && g.chars().all(|c| c.is_alphanumeric() || c == '_')
                })
        }
    }
}

pub(crate) fn pattern_hint(p: Pattern) -> &'static str {
    match p {
        Pattern::Any => "any value",
        Pattern::Bool => "one of 0, 1, true, false",
        Pattern::TrueFalse => "true or false",
        Pattern::Interpreter => "python or busybox",
        Pattern::Number => "a whole number",
        Pattern::SerialNumber => "five groups of five characters: XXXXX-XXXXX-XXXXX-XXXXX-XXXXX",
        Pattern::BootProto => "dhcp or static",
    }
}
