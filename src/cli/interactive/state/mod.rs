//! The console install as a state machine: screens, the answers, and their checks. No drawing
//! here (see `draw/`), no terminal: keys in, state out, so it is small and testable.
//!
//! The answers become kickstart text that the scripted path's parser reads (`rootpw` only as
//! its SHA-512 crypt hash), so both paths share every check, the plan and the apply.

use ksinstall::inventory::{DiskContent, PartitionTable};
use ksinstall::kickstart::{self, grammar::KEYBOARDS, password, Diagnostic, Kickstart};
use ksinstall::plan::{self, Plan};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use zeroize::{Zeroize, Zeroizing};

mod forms;
pub use forms::*;

/// The name the console's kickstart goes by in diagnostics and the plan.
pub const KICKSTART_NAME: &str = "console";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Welcome,
    Eula,
    Disk,
    /// The chosen disk holds VMFS, ESXi or data we cannot read: overwrite, preserve or go back.
    Vmfs,
    Keyboard,
    Password,
    Network,
    Dpu,
    Confirm,
}

/// What the caller must do after a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Stay,
    /// The user left before anything was written.
    Quit,
    /// F11 on a confirmation with a plan: install it.
    Install,
}

/// A plan made from the answers, with the kickstart it was made from.
pub struct Planned {
    pub kickstart: Kickstart,
    /// Warnings of the kickstart check and the plan, for the confirmation.
    pub warnings: Vec<String>,
    pub plan: Plan,
}

pub struct App {
    pub ctx: Context,
    pub screen: Screen,
    pub eula_scroll: u16,
    pub disk_cursor: usize,
    pub disk_error: Option<String>,
    pub vmfs_cursor: usize,
    pub keyboard_cursor: usize,
    pub password: PasswordForm,
    pub network: NetworkForm,
    pub answers: Answers,
    /// The plan for the confirmation, or why there is none.
    pub planned: Option<Result<Planned, plan::PlanError>>,
    /// `boot --strict`: what the plan only warns about is refused, as in a scripted install.
    pub strict: bool,
    pub confirm_scroll: u16,
}

/// Does choosing this disk need the overwrite/preserve question? Anything that may be a
/// datastore or an install someone wants back.
pub fn needs_vmfs_choice(c: &DiskContent) -> bool {
    !c.vmfs.is_empty()
        || !c.vmfsl.is_empty()
        || !c.vsan.is_empty()
        || c.esx.is_some()
        || matches!(
            c.table,
            PartitionTable::Unknown | PartitionTable::Unreadable
        )
        || c.mbr_partitions
            .iter()
            .any(|p| matches!(p.os_type, 0xFB | 0xFC))
}

/// A character typed as text, not a Ctrl or Alt chord.
fn typed(k: &KeyEvent) -> bool {
    !k.modifiers
        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
}

impl App {
    pub fn new(ctx: Context, strict: bool) -> App {
        let keyboard = KEYBOARDS
            .iter()
            .position(|k| *k == "US Default")
            .unwrap_or(0);
        App {
            ctx,
            screen: Screen::Welcome,
            eula_scroll: 0,
            disk_cursor: 0,
            disk_error: None,
            vmfs_cursor: 0,
            keyboard_cursor: keyboard,
            password: PasswordForm::default(),
            network: NetworkForm {
                dhcp: true,
                ..Default::default()
            },
            answers: Answers {
                keyboard,
                ..Default::default()
            },
            planned: None,
            strict,
            confirm_scroll: 0,
        }
    }

    /// The choices on the VMFS screen for the chosen disk: preserving needs a datastore.
    pub fn vmfs_choices(&self) -> Vec<VmfsChoice> {
        let has_datastore = self
            .chosen_disk()
            .is_some_and(|d| !d.content.vmfs.is_empty());
        let upgradable = self.chosen_disk().is_some_and(|d| {
            d.content.esx.as_ref().is_some_and(|e| {
                e.upgrade == ksinstall::inventory::installed::Upgradability::Upgradable
            })
        });
        let mut v = Vec::new();
        if upgradable {
            v.push(VmfsChoice::Upgrade);
        }
        v.push(VmfsChoice::Overwrite);
        if has_datastore {
            v.push(VmfsChoice::Preserve);
        }
        v.push(VmfsChoice::Back);
        v
    }

    pub fn chosen_disk(&self) -> Option<&ksinstall::inventory::Disk> {
        self.answers
            .disk
            .and_then(|i| self.ctx.host.inventory.disks.get(i))
    }

    fn back(&mut self) -> Step {
        self.screen = match self.screen {
            Screen::Welcome => return Step::Quit,
            Screen::Eula => Screen::Welcome,
            Screen::Disk => Screen::Eula,
            Screen::Vmfs => Screen::Disk,
            Screen::Keyboard => {
                if self.answers.vmfs.is_some() {
                    Screen::Vmfs
                } else {
                    Screen::Disk
                }
            }
            Screen::Password => {
                self.password.clear();
                Screen::Keyboard
            }
            Screen::Network => Screen::Password,
            Screen::Dpu if self.answers.vmfs == Some(VmfsChoice::Upgrade) => Screen::Vmfs,
            Screen::Dpu => Screen::Network,
            Screen::Confirm => Screen::Dpu,
        };
        Step::Stay
    }

    /// One key. Esc goes back everywhere, Ctrl-C leaves before the install.
    pub fn key(&mut self, k: KeyEvent) -> Step {
        if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
            return Step::Quit;
        }
        if k.code == KeyCode::Esc {
            return self.back();
        }
        match self.screen {
            Screen::Welcome => {
                if k.code == KeyCode::Enter {
                    self.screen = Screen::Eula;
                }
            }
            Screen::Eula => match k.code {
                KeyCode::Down => self.eula_scroll = self.eula_scroll.saturating_add(1),
                KeyCode::Up => self.eula_scroll = self.eula_scroll.saturating_sub(1),
                KeyCode::PageDown | KeyCode::Char(' ') => {
                    self.eula_scroll = self.eula_scroll.saturating_add(10)
                }
                KeyCode::PageUp => self.eula_scroll = self.eula_scroll.saturating_sub(10),
                KeyCode::F(11) => self.screen = Screen::Disk,
                _ => {}
            },
            Screen::Disk => self.disk_key(k),
            Screen::Vmfs => self.vmfs_key(k),
            Screen::Keyboard => self.keyboard_key(k),
            Screen::Password => self.password_key(k),
            Screen::Network => self.network_key(k),
            Screen::Dpu => {
                if k.code == KeyCode::Enter {
                    self.confirm_scroll = 0;
                    self.screen = Screen::Confirm;
                }
            }
            Screen::Confirm => match k.code {
                KeyCode::Down => self.confirm_scroll = self.confirm_scroll.saturating_add(1),
                KeyCode::Up => self.confirm_scroll = self.confirm_scroll.saturating_sub(1),
                KeyCode::PageDown => self.confirm_scroll = self.confirm_scroll.saturating_add(10),
                KeyCode::PageUp => self.confirm_scroll = self.confirm_scroll.saturating_sub(10),
                KeyCode::F(11) if matches!(self.planned, Some(Ok(_))) => return Step::Install,
                _ => {}
            },
        }
        Step::Stay
    }

    fn disk_key(&mut self, k: KeyEvent) {
        let n = self.ctx.host.inventory.disks.len();
        match k.code {
            KeyCode::Down if self.disk_cursor + 1 < n => {
                self.disk_cursor += 1;
                self.disk_error = None;
            }
            KeyCode::Up if self.disk_cursor > 0 => {
                self.disk_cursor -= 1;
                self.disk_error = None;
            }
            KeyCode::Enter => {
                let Some(d) = self.ctx.host.inventory.disks.get(self.disk_cursor) else {
                    self.disk_error = Some("there is no disk to install on".into());
                    return;
                };
                if !d.is_large_enough() {
                    self.disk_error = Some(format!(
                        "{} is too small: ESXi needs at least {} here",
                        d.kernel_name,
                        ksinstall::size::human(d.minimum_size())
                    ));
                    return;
                }
                self.disk_error = None;
                self.answers.disk = Some(self.disk_cursor);
                if needs_vmfs_choice(&d.content) {
                    self.vmfs_cursor = 0;
                    self.screen = Screen::Vmfs;
                } else {
                    self.answers.vmfs = None;
                    self.screen = Screen::Keyboard;
                }
            }
            _ => {}
        }
    }

    fn vmfs_key(&mut self, k: KeyEvent) {
        let choices = self.vmfs_choices();
        match k.code {
            KeyCode::Down if self.vmfs_cursor + 1 < choices.len() => self.vmfs_cursor += 1,
            KeyCode::Up if self.vmfs_cursor > 0 => self.vmfs_cursor -= 1,
            KeyCode::Enter => match choices.get(self.vmfs_cursor) {
                Some(VmfsChoice::Back) | None => {
                    self.answers.vmfs = None;
                    self.screen = Screen::Disk;
                }
                Some(VmfsChoice::Upgrade) => {
                    // An upgrade keeps the host's configuration: no keyboard, password or
                    // network to ask; the plan is made now, as the scripted path makes it.
                    self.answers.vmfs = Some(VmfsChoice::Upgrade);
                    let (parsed, _, _) = self.parse();
                    self.planned = Some(self.make_plan(parsed));
                    self.screen = Screen::Dpu;
                }
                Some(c) => {
                    self.answers.vmfs = Some(*c);
                    self.screen = Screen::Keyboard;
                }
            },
            _ => {}
        }
    }

    fn keyboard_key(&mut self, k: KeyEvent) {
        match k.code {
            KeyCode::Down if self.keyboard_cursor + 1 < KEYBOARDS.len() => {
                self.keyboard_cursor += 1
            }
            KeyCode::Up if self.keyboard_cursor > 0 => self.keyboard_cursor -= 1,
            // A letter jumps to the next layout starting with it, as list boxes do.
            KeyCode::Char(c) if c.is_ascii_alphabetic() => {
                let n = KEYBOARDS.len();
                if let Some(i) = (1..=n)
                    .map(|d| (self.keyboard_cursor + d) % n)
                    .find(|i| KEYBOARDS[*i].starts_with(c.to_ascii_uppercase()))
                {
                    self.keyboard_cursor = i;
                }
            }
            KeyCode::Enter => {
                self.answers.keyboard = self.keyboard_cursor;
                self.screen = Screen::Password;
            }
            _ => {}
        }
    }

    fn password_key(&mut self, k: KeyEvent) {
        let p = &mut self.password;
        match k.code {
            KeyCode::Tab | KeyCode::Down | KeyCode::BackTab | KeyCode::Up => p.focus = 1 - p.focus,
            KeyCode::Backspace => {
                let field = if p.focus == 0 {
                    &mut p.first
                } else {
                    &mut p.second
                };
                field.pop();
            }
            KeyCode::Char(c) if typed(&k) => {
                let field = if p.focus == 0 {
                    &mut p.first
                } else {
                    &mut p.second
                };
                field.push(c);
            }
            KeyCode::Enter => self.submit_password(),
            _ => {}
        }
    }

    fn submit_password(&mut self) {
        let p = &mut self.password;
        p.error_first = None;
        p.error_second = None;
        // Coming back to this screen with a password set: empty fields keep it.
        if p.first.is_empty() && p.second.is_empty() && self.answers.root_hash.is_some() {
            self.screen = Screen::Network;
            return;
        }
        // The same rules as `rootpw 'PASSWORD'`.
        if let Err(refusal) = password::check_plain(&p.first) {
            p.error_first = Some(refusal.message());
            p.focus = 0;
            return;
        }
        if p.focus == 0 && p.second.is_empty() {
            p.focus = 1;
            return;
        }
        if p.first != p.second {
            p.error_second = Some("the two passwords differ: type the same password twice".into());
            p.second.zeroize();
            p.focus = 1;
            return;
        }
        match password::sha512_crypt(&p.first) {
            Ok(hash) => {
                self.answers.root_hash = Some(hash);
                p.clear();
                self.screen = Screen::Network;
            }
            Err(e) => p.error_first = Some(format!("{e:#}")),
        }
    }

    fn network_key(&mut self, k: KeyEvent) {
        let n = &mut self.network;
        let fields = n.fields();
        let focused = n.focused();
        match k.code {
            KeyCode::Tab | KeyCode::Down => n.focus = (n.focus + 1) % fields.len(),
            KeyCode::BackTab | KeyCode::Up => n.focus = (n.focus + fields.len() - 1) % fields.len(),
            KeyCode::Left | KeyCode::Right | KeyCode::Char(' ') if focused == NetField::Mode => {
                n.dhcp = !n.dhcp;
                n.notes.clear();
            }
            KeyCode::Backspace => {
                if let Some(v) = n.value_mut(focused) {
                    v.pop();
                }
            }
            KeyCode::Char(c) if typed(&k) && !c.is_control() => {
                if let Some(v) = n.value_mut(focused) {
                    v.push(c);
                }
            }
            KeyCode::Enter => self.submit_network(),
            _ => {}
        }
    }

    /// The answers as a kickstart. `network_line` gives the line number of `network` for
    /// mapping diagnostics back to fields.
    pub fn kickstart_text(&self) -> (String, u32, Vec<(NetField, u32, u32)>) {
        let mut text = String::from("vmaccepteula\n");
        if self.answers.vmfs == Some(VmfsChoice::Upgrade) {
            let disk = self
                .chosen_disk()
                .map(|d| format!(" --disk={}", quote(&d.name)))
                .unwrap_or_default();
            text.push_str(&format!("upgrade{disk}\n"));
            return (text, 0, Vec::new());
        }
        if let Some(h) = &self.answers.root_hash {
            text.push_str(&format!("rootpw --iscrypted {}\n", quote(h)));
        }
        let mut install = String::from("install");
        if let Some(d) = self.chosen_disk() {
            install.push_str(&format!(" --disk={}", quote(&d.name)));
        }
        match self.answers.vmfs {
            Some(VmfsChoice::Overwrite) => {
                install.push_str(" --overwritevmfs");
                // The overwrite screen names a vSAN disk group among what is erased.
                if self
                    .chosen_disk()
                    .is_some_and(|d| !d.content.vsan.is_empty())
                {
                    install.push_str(" --overwritevsan");
                }
            }
            Some(VmfsChoice::Preserve) => install.push_str(" --preservevmfs"),
            _ => {}
        }
        text.push_str(&install);
        text.push('\n');
        let keyboard = KEYBOARDS
            .get(self.answers.keyboard)
            .copied()
            .unwrap_or("US Default");
        text.push_str(&format!("keyboard {}\n", quote(keyboard)));
        let (line, spans) = self.network.line();
        text.push_str(&line);
        text.push('\n');
        let network_line = text.lines().count() as u32;
        (text, network_line, spans)
    }

    /// Parse the answers with the scripted path's parser (no includes, no %pre).
    fn parse(&self) -> (kickstart::Parsed, u32, Vec<(NetField, u32, u32)>) {
        let (text, network_line, spans) = self.kickstart_text();
        let mut loader = kickstart::FsLoader::new("/nonexistent");
        let parsed = kickstart::parse(
            KICKSTART_NAME,
            KICKSTART_NAME,
            text.as_bytes(),
            &mut loader,
            None,
        );
        (parsed, network_line, spans)
    }

    fn submit_network(&mut self) {
        let (parsed, network_line, spans) = self.parse();
        let n = &mut self.network;
        n.notes.clear();
        let shown = n.fields();
        let field_of = |d: &Diagnostic| -> NetField {
            spans
                .iter()
                .find(|(_, from, to)| (*from..=*to).contains(&d.span.col))
                .map(|(f, ..)| *f)
                // A finding about the whole line says which option it is about ("no --netmask").
                .or_else(|| {
                    let option = d.option.as_deref()?;
                    shown.iter().copied().find(|f| f.option() == option)
                })
                .unwrap_or(NetField::Mode)
        };
        let mut blocked = false;
        for d in parsed
            .diagnostics
            .iter()
            .filter(|d| d.span.line == network_line)
        {
            blocked |= d.is_error();
            n.notes.push((field_of(d), d.message.clone(), d.is_error()));
        }
        if blocked {
            if let Some(first) = n.notes.iter().find(|x| x.2) {
                n.focus = n.fields().iter().position(|f| *f == first.0).unwrap_or(0);
            }
            return;
        }
        self.planned = Some(self.make_plan(parsed));
        self.screen = Screen::Dpu;
    }

    /// The plan from the parsed answers: the scripted install's `plan::make`.
    fn make_plan(&self, parsed: kickstart::Parsed) -> Result<Planned, plan::PlanError> {
        if let Some(e) = parsed.diagnostics.iter().find(|d| d.is_error()) {
            return Err(plan::PlanError {
                outcome: ksinstall::exit::Outcome::InvalidKickstart,
                message: e.to_string(),
                dpu_findings: Vec::new(),
            });
        }
        let mut warnings: Vec<String> = parsed
            .diagnostics
            .iter()
            .map(|d| d.message.clone())
            .collect();
        let mut inputs = plan::Inputs::new(&self.ctx.host, KICKSTART_NAME, &parsed.kickstart);
        inputs.strict = self.strict;
        let plan = plan::make(&inputs)?;
        warnings.extend(plan.warnings.iter().cloned());
        Ok(Planned {
            kickstart: parsed.kickstart,
            warnings,
            plan,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ksinstall::source::cmdline::BootOptions;
    use ratatui::crossterm::event::KeyEvent;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn app(dir: &std::path::Path) -> App {
        let sysroot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plain");
        testkit::synth::mkmedia(&testkit::synth::Options {
            out: dir.join("media"),
            size: 16 << 20,
            version: "8.0.3".into(),
            seed: 1,
        })
        .unwrap();
        let options = ksinstall::install::Options::new(
            &sysroot,
            ksinstall::dpu::Access::new(&sysroot),
            ksinstall::dpu::bundle::default_root().map_err(|e| e.to_string()),
        );
        let media = dir.join("media").display().to_string();
        let http = ksinstall::http::Http::new(Default::default()).unwrap();
        let prepared =
            ksinstall::install::prepare(&options, BootOptions::parse("").unwrap(), &media, &http);
        App::new(prepared.map_err(|f| f.message).unwrap(), false)
    }

    fn typed(app: &mut App, text: &str) {
        for c in text.chars() {
            app.key(key(KeyCode::Char(c)));
        }
    }

    #[test]
    fn forward_to_the_confirmation_and_esc_back_to_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = app(dir.path());
        let mut seen = vec![a.screen];
        for k in [
            KeyCode::Enter,
            KeyCode::F(11),
            KeyCode::Enter,
            KeyCode::Enter,
        ] {
            assert_eq!(a.key(key(k)), Step::Stay);
            seen.push(a.screen);
        }
        typed(&mut a, "Console-Pass-42x");
        a.key(key(KeyCode::Enter));
        typed(&mut a, "Console-Pass-42x");
        a.key(key(KeyCode::Enter));
        assert!(a.password.first.is_empty() && a.password.second.is_empty());
        let hash = a.answers.root_hash.clone().unwrap();
        assert!(hash.starts_with("$6$") && !hash.contains("Console"));
        seen.push(a.screen);
        a.key(key(KeyCode::Enter));
        seen.push(a.screen);
        a.key(key(KeyCode::Enter));
        seen.push(a.screen);
        assert_eq!(
            seen,
            [
                Screen::Welcome,
                Screen::Eula,
                Screen::Disk,
                Screen::Keyboard,
                Screen::Password,
                Screen::Network,
                Screen::Dpu,
                Screen::Confirm
            ]
        );
        assert!(matches!(a.planned, Some(Ok(_))), "a blank disk plans");
        assert_eq!(a.key(key(KeyCode::F(11))), Step::Install);
        let mut back = vec![a.screen];
        while a.key(key(KeyCode::Esc)) == Step::Stay {
            back.push(a.screen);
        }
        seen.reverse();
        assert_eq!(back, seen);
    }

    #[test]
    fn the_answers_are_a_kickstart_the_parser_reads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = app(dir.path());
        a.answers.disk = Some(0);
        a.answers.vmfs = Some(VmfsChoice::Overwrite);
        a.answers.keyboard = KEYBOARDS.iter().position(|k| *k == "Swiss German").unwrap();
        a.answers.root_hash = Some(password::sha512_crypt("Console-Pass-42x").unwrap());
        a.network.dhcp = false;
        a.network.ip = "10.0.0.5".into();
        a.network.netmask = "255.255.255.0".into();
        a.network.nameservers = "10.0.0.2, 10.0.0.3".into();
        a.network.hostname = "esx 7".into();
        a.network.vlan = "20".into();
        // The parser's finding is shown next to the field it is about.
        a.screen = Screen::Network;
        a.submit_network();
        assert_eq!(a.screen, Screen::Network);
        let errors: Vec<_> = a.network.notes.iter().filter(|n| n.2).collect();
        assert_eq!(errors.len(), 1, "{:?}", a.network.notes);
        assert_eq!(errors[0].0, NetField::Hostname);
        assert!(a
            .network
            .notes
            .iter()
            .any(|n| n.0 == NetField::Gateway && !n.2));
        assert_eq!(a.network.focused(), NetField::Hostname);
        a.network.hostname = "esx7.example".into();
        let (parsed, ..) = a.parse();
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        let ks = &parsed.kickstart;
        assert_eq!(ks.keyboard.as_ref().unwrap().layout, "Swiss German");
        let n = ks.network.as_ref().unwrap();
        assert_eq!(n.hostname.as_deref(), Some("esx7.example"));
        assert_eq!(n.nameservers.len(), 2);
        assert_eq!(n.vlan_id, Some(20));
        assert!(ks.action.as_ref().unwrap().overwrite_vmfs);
        // What --save-ks writes reads back as the same model.
        let printed = kickstart::print(ks);
        let mut loader = kickstart::FsLoader::new("/nonexistent");
        let again = kickstart::parse("saved", "saved", printed.as_bytes(), &mut loader, None);
        assert!(!again.has_errors(), "{:?}", again.diagnostics);
        assert_eq!(again.kickstart.network.as_ref().unwrap().ip, n.ip);
        assert_eq!(
            again.kickstart.root_password.unwrap().hash,
            ks.root_password.clone().unwrap().hash
        );
    }
}
