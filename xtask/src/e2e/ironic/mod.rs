//! `cargo xtask rollout --engine ironic --hosts N`: a rack installed the way fleets are, by a
//! bare-metal engine driving each server's BMC. A standalone OpenStack Ironic powers N UEFI
//! guests (libvirt, QEMU's TCG) through sushy-tools' Redfish BMC emulator and boots each with
//! the installer image as a `ramdisk` deploy: odd hosts by Redfish virtual media (Ironic builds
//! the ISO from our kernel and initrd, our options in `ramdisk_kernel_arguments`), even hosts by
//! iPXE. Each host has its own kickstart and the e2e's netdevsim DSC; host 3 gets a broken one.
//! The hosts post their reports to `ksinstall report serve`; then the disks are judged as the
//! e2e judges them, `cluster check` reads the reports, and everything started is stopped.
//! docs/FLEET.md says how to run ksinstall under Ironic; the facts behind this configuration
//! were found on this kind of machine (docs/PERFORMANCE.md has the timings).

mod stack;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::guest::{HttpServer, Serial};
use super::image::{fresh_disk, Images};
use super::judges::{check_broken, check_dpu_flash, check_host_tools, check_pxe, Outcome};
use super::{Laps, Paths};
use crate::image as installer;
use crate::run;
use stack::Stack;

pub(super) const SERVER: &str = "10.77.0.1";
pub(super) const VIRSH_URI: &str = "qemu:///system";
const WWW_PORT: u16 = 8080;
const HTTPBOOT_PORT: u16 = 8088;
const SUSHY_PORT: u16 = 8000;
const IRONIC_PORT: u16 = 6385;
const REPORT_PORT: u16 = 8079;
/// The host that gets the broken kickstart.
const BROKEN: usize = 3;

/// What the engine needs beside the e2e's packages.
const PACKAGES: &[&str] = &[
    "libvirt-daemon-system",
    "libvirt-dev",
    "qemu-utils",
    "genisoimage",
    "grub-efi-amd64-bin",
    "ipxe",
    "pkg-config",
    "gcc",
    "python3-venv",
    "dnsmasq-base",
    "dosfstools",
    "mtools",
    "gdisk",
];

/// Ironic, sushy-tools and the client in a venv under target/ (kept between runs).
fn venv(target: &Path) -> Result<PathBuf> {
    let venv = target.join("ironic-venv");
    let bin = venv.join("bin");
    if ["ironic", "sushy-emulator", "baremetal"]
        .iter()
        .all(|b| bin.join(b).exists())
        && run(Command::new(bin.join("python3")).args(["-c", "import libvirt"])).is_ok()
    {
        return Ok(bin);
    }
    println!(
        "== pip: ironic, sushy-tools, python-ironicclient, libvirt-python into {}",
        venv.display()
    );
    run(Command::new("/usr/bin/python3")
        .arg("-m")
        .arg("venv")
        .arg(&venv))?;
    run(Command::new(bin.join("pip")).args([
        "install",
        "-q",
        "ironic",
        "sushy-tools",
        "python-ironicclient",
        "libvirt-python",
    ]))?;
    Ok(bin)
}

/// One host of the rack.
struct Host {
    n: usize,
    name: String,
    mac: String,
    uuid: String,
    disk: PathBuf,
    serial: PathBuf,
    /// Redfish virtual media, else iPXE.
    vmedia: bool,
}

impl Host {
    fn new(work: &Path, n: usize) -> Result<Host> {
        let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid")?
            .trim()
            .to_string();
        Ok(Host {
            n,
            name: format!("host-{n}"),
            mac: format!("52:54:00:29:00:{n:02x}"),
            uuid,
            disk: fresh_disk(&work.join(format!("disks/host-{n}.img")))?,
            serial: work.join(format!("logs/host-{n}.serial.log")),
            vmedia: n % 2 == 1,
        })
    }

    /// A q35 UEFI TCG guest: a 40 GB virtio disk, a virtio NIC on the rack's bridge (QEMU's
    /// iPXE ROM answers the network boot), the serial console to a file, and the stock `edu`
    /// device the e2e's hooks dress as a DSC (libvirt has no element for it: qemu:commandline).
    fn domain_xml(&self, work: &Path) -> String {
        format!(
            "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>ksi-{name}</name><uuid>{uuid}</uuid>
  <memory unit='MiB'>1024</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type>
    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>
    <nvram template='/usr/share/OVMF/OVMF_VARS.fd'>{work}/nvram/{name}.fd</nvram>
    <boot dev='hd'/></os>
  <features><acpi/><apic/></features>
  <cpu mode='custom' match='exact'><model fallback='allow'>qemu64</model><feature policy='require' name='rdrand'/></cpu>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='raw' cache='unsafe'/>
      <source file='{disk}'/><target dev='vda' bus='virtio'/></disk>
    <interface type='bridge'><source bridge='br0'/><mac address='{mac}'/><model type='virtio'/></interface>
    <serial type='file'><source path='{serial}' append='on'/><target port='0'/></serial>
  </devices>
  <qemu:commandline><qemu:arg value='-device'/><qemu:arg value='edu,addr=0x6'/></qemu:commandline>
</domain>
",
            name = self.name,
            uuid = self.uuid,
            work = work.display(),
            disk = self.disk.display(),
            mac = self.mac,
            serial = self.serial.display(),
        )
    }

    /// The boot options Ironic hands the kernel: the console, this host's kickstart and the
    /// media, the e2e's DSC, and where the report goes.
    fn kernel_args(&self) -> String {
        let www = format!("http://{SERVER}:{WWW_PORT}");
        let scenario = if self.n == BROKEN { "broken" } else { "pxe" };
        format!(
            "console=ttyS0 ks={www}/ks/{name}.cfg inst.repo={www}/media e2e.scenario={scenario} e2e.dpu=pensando ksinstall.report_url=http://{SERVER}:{REPORT_PORT}/{name}",
            name = self.name
        )
    }
}

/// The kickstarts: each host its own hostname; host 3 a disk it does not have.
fn kickstarts(www: &Path, hosts: &[Host]) -> Result<()> {
    std::fs::create_dir_all(www.join("ks"))?;
    let head = "vmaccepteula\nrootpw --iscrypted $6$ksinstallExampl$gs0rWRb4e18QdWwUGxkYYf27pufzcgy.uh99Ch9umRYHEgzPhZjOfXvb9/6j3OBpXQpAO238CiGZZ0X5fOIg31\n";
    for h in hosts {
        let install = if h.n == BROKEN {
            "install --disk=mpx.vmhba9:C0:T9:L0 --overwritevmfs"
        } else {
            "install --firstdisk --overwritevmfs"
        };
        std::fs::write(
            www.join(format!("ks/{}.cfg", h.name)),
            format!(
                "# cargo xtask rollout --engine ironic: {}\n{head}network --bootproto=dhcp --hostname={}.rack.test\n{install}\n",
                h.name, h.name
            ),
        )?;
    }
    Ok(())
}

/// Ironic's configuration: one process (no RPC), no authentication, Redfish hardware with the
/// two boot interfaces, the `ramdisk` deploy, no DHCP management (dnsmasq is ours).
fn ironic_conf(work: &Path) -> String {
    let w = work.display();
    format!(
        "[DEFAULT]
auth_strategy = noauth
rpc_transport = none
enabled_hardware_types = redfish
enabled_boot_interfaces = redfish-virtual-media,ipxe
enabled_deploy_interfaces = ramdisk
enabled_management_interfaces = redfish
enabled_power_interfaces = redfish
enabled_network_interfaces = noop
enabled_inspect_interfaces = no-inspect
enabled_bios_interfaces = no-bios
enabled_console_interfaces = no-console
enabled_raid_interfaces = no-raid
enabled_rescue_interfaces = no-rescue
enabled_vendor_interfaces = no-vendor
enabled_firmware_interfaces = no-firmware
default_deploy_interface = ramdisk
esp_image = {w}/esp.img
grub_config_path = EFI/BOOT/grub.cfg
host = ksinstall-rollout
log_dir = {w}/logs
use_stderr = false
[api]
host_ip = {SERVER}
port = {IRONIC_PORT}
[database]
connection = sqlite:///{w}/ironic.sqlite
[dhcp]
dhcp_provider = none
[conductor]
automated_clean = false
force_power_state_during_sync = false
deploy_callback_timeout = 0
[deploy]
http_url = http://{SERVER}:{HTTPBOOT_PORT}
http_root = {w}/httpboot
default_boot_mode = uefi
[redfish]
use_swift = false
[pxe]
tftp_root = {w}/tftp
tftp_master_path = {w}/tftp/master
images_path = {w}/images
instance_master_path = {w}/images/master
ipxe_enabled = true
[oslo_concurrency]
lock_path = {w}/lock
"
    )
}

/// The FAT image with GRUB as EFI/BOOT/BOOTX64.EFI that Ironic puts into the virtual-media ISOs
/// it builds for UEFI (`esp_image`); Ironic writes its grub.cfg beside it.
fn esp_image(work: &Path) -> Result<()> {
    let grub = work.join("BOOTX64.EFI");
    run(Command::new("grub-mkimage")
        .args(["-O", "x86_64-efi", "-p", "/EFI/BOOT", "-o"])
        .arg(&grub)
        .args([
            "part_gpt",
            "part_msdos",
            "fat",
            "iso9660",
            "linux",
            "normal",
            "configfile",
            "search",
            "search_label",
            "search_fs_uuid",
            "search_fs_file",
            "echo",
            "boot",
            "all_video",
            "efi_gop",
            "test",
            "ls",
            "cat",
        ]))?;
    let img = work.join("esp.img");
    let _ = std::fs::remove_file(&img);
    run(Command::new("mkfs.vfat")
        .args(["-C", "-n", "ESP"])
        .arg(&img)
        .arg("8192")
        .stdout(std::process::Stdio::null()))?;
    let i = img.display().to_string();
    run(Command::new("mmd").args(["-i", &i, "::/EFI", "::/EFI/BOOT"]))?;
    run(Command::new("mcopy")
        .args(["-i", &i])
        .arg(&grub)
        .arg("::/EFI/BOOT/BOOTX64.EFI"))
}

/// libvirt's own configuration for this run, seen only by its libvirtd (a private mount
/// namespace): /dev/kvm hidden (KVM does not work on these machines, and libvirt otherwise
/// probes QEMU's capabilities anew on every call, minutes each, because /dev/kvm is there but
/// not usable by its QEMU user), and no per-domain /dev namespace (it would copy /dev/kvm).
fn libvirtd_command(work: &Path) -> Result<String> {
    let nokvm = work.join("run/nokvm");
    std::fs::write(&nokvm, "")?;
    let conf = work.join("run/qemu.conf");
    let mut text = std::fs::read_to_string("/etc/libvirt/qemu.conf").unwrap_or_default();
    text.push_str("\n# cargo xtask rollout --engine ironic\nnamespaces = [ ]\n");
    std::fs::write(&conf, text)?;
    Ok(format!(
        "exec unshare -m --propagation private sh -c \"mount --bind '{}' /dev/kvm && mount --bind '{}' /etc/libvirt/qemu.conf && exec libvirtd\"",
        nokvm.display(),
        conf.display()
    ))
}

/// `baremetal ARGS` against our Ironic, from inside the namespace.
fn baremetal(stack: &Stack, bin: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &stack.netns])
        .arg(bin.join("baremetal"))
        .args(args)
        .env("OS_ENDPOINT", format!("http://{SERVER}:{IRONIC_PORT}"))
        .env("OS_AUTH_TYPE", "none")
        .output()
        .context("baremetal (python-ironicclient)")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!(
            "baremetal {}: {}{}",
            args.join(" "),
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(text)
}

fn virsh(args: &[&str]) -> Result<String> {
    let out = Command::new("virsh")
        .args(["-c", VIRSH_URI])
        .args(args)
        .output()
        .context("virsh")?;
    if !out.status.success() {
        bail!(
            "virsh {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// virtlogd and libvirtd, then the hosts' domains. libvirtd probes QEMU when it starts (and
/// kills its probe processes by PID); the other services start after that is over.
fn start_libvirt(stack: &mut Stack, hosts: &[Host]) -> Result<()> {
    let w = stack.work.clone();
    stack.start("virtlogd", "exec virtlogd")?;
    let libvirtd = libvirtd_command(&w)?;
    stack.start("libvirtd", &libvirtd)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while virsh(&["version"]).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "libvirtd did not answer in 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    virsh(&["domcapabilities", "--virttype", "qemu", "--machine", "q35"])?;
    for h in hosts {
        let xml = w.join(format!("{}.xml", h.name));
        std::fs::write(&xml, h.domain_xml(&w))?;
        virsh(&["define", &xml.display().to_string()])?;
        stack.domains.push(format!("ksi-{}", h.name));
    }
    Ok(())
}

/// The other services, in order, each waited for.
fn start_services(
    stack: &mut Stack,
    bin: &Path,
    ksinstall: &Path,
) -> Result<(HttpServer, HttpServer)> {
    let w = stack.work.clone();
    // sushy uploads the virtual media into the pool called default: a transient one.
    std::fs::write(
        w.join("pool.xml"),
        format!(
            "<pool type='dir'><name>default</name><target><path>{}/pool</path></target></pool>",
            w.display()
        ),
    )?;
    // libvirtd keeps a transient pool across its restarts (/run/libvirt): one left by an
    // earlier run goes first.
    let _ = virsh(&["pool-destroy", "default"]);
    virsh(&["pool-create", &w.join("pool.xml").display().to_string()])?;
    let www = HttpServer::start_in(
        &stack.netns,
        &w.join("www"),
        &w.join("logs/www.log"),
        WWW_PORT,
    )?;
    let httpboot = HttpServer::start_in(
        &stack.netns,
        &w.join("httpboot"),
        &w.join("logs/httpboot.log"),
        HTTPBOOT_PORT,
    )?;
    // DHCP for the rack; iPXE (QEMU's ROM) is sent to Ironic's boot script.
    stack.start(
        "dnsmasq",
        &format!(
            "exec dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 --interface=br0 --bind-interfaces --dhcp-range=10.77.0.100,10.77.0.150,1h --dhcp-userclass=set:ipxe,iPXE --dhcp-boot=tag:ipxe,http://{SERVER}:{HTTPBOOT_PORT}/boot.ipxe --log-dhcp --log-facility={w}/logs/dnsmasq-dhcp.log --dhcp-leasefile={w}/run/dnsmasq.leases",
            w = w.display()
        ),
    )?;
    std::fs::write(
        w.join("sushy.conf"),
        format!(
            "SUSHY_EMULATOR_LISTEN_IP = '{SERVER}'\nSUSHY_EMULATOR_LISTEN_PORT = {SUSHY_PORT}\nSUSHY_EMULATOR_LIBVIRT_URI = '{VIRSH_URI}'\nSUSHY_EMULATOR_FEATURE_SET = 'full'\nSUSHY_EMULATOR_BOOT_LOADER_MAP = {{'UEFI': {{'x86_64': '/usr/share/OVMF/OVMF_CODE.fd'}}, 'Legacy': {{'x86_64': None}}}}\nSUSHY_EMULATOR_VMEDIA_VERIFY_SSL = False\n"
        ),
    )?;
    stack.start(
        "sushy",
        &format!(
            "exec '{}' --config '{}'",
            bin.join("sushy-emulator").display(),
            w.join("sushy.conf").display()
        ),
    )?;
    std::fs::write(w.join("ironic.conf"), ironic_conf(&w))?;
    run(Command::new(bin.join("ironic-dbsync"))
        .arg("--config-file")
        .arg(w.join("ironic.conf"))
        .arg("create_schema")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null()))?;
    // KSINSTALL_ROLLOUT_STRACE=1: Ironic under strace (its signals and kill calls, with their
    // senders, in logs/ironic.strace), to find who stops it.
    let strace = if std::env::var_os("KSINSTALL_ROLLOUT_STRACE").is_some() {
        format!(
            "strace -f -qq -e trace=kill,tgkill,tkill,exit_group -o '{}' ",
            w.join("logs/ironic.strace").display()
        )
    } else {
        String::new()
    };
    stack.start(
        "ironic",
        &format!(
            "exec {strace}'{}' --config-file '{}'",
            bin.join("ironic").display(),
            w.join("ironic.conf").display()
        ),
    )?;
    stack.start(
        "receiver",
        &format!(
            "exec '{}' report serve --listen {SERVER}:{REPORT_PORT} --dir '{}'",
            ksinstall.display(),
            w.join("reports").display()
        ),
    )?;
    stack.wait_port("sushy", SUSHY_PORT, Duration::from_secs(60))?;
    stack.wait_port("ironic", IRONIC_PORT, Duration::from_secs(120))?;
    stack.wait_port("receiver", REPORT_PORT, Duration::from_secs(30))?;
    Ok((www, httpboot))
}

/// Each host's node: Redfish driver info pointing at its sushy system, its port (MAC), then
/// manage and provide (no cleaning), then its instance_info, then all deployed at once.
fn enroll_and_deploy(stack: &Stack, bin: &Path, hosts: &[Host]) -> Result<()> {
    for h in hosts {
        let boot = if h.vmedia {
            "redfish-virtual-media"
        } else {
            "ipxe"
        };
        let uuid = baremetal(
            stack,
            bin,
            &[
                "node",
                "create",
                "--driver",
                "redfish",
                "--name",
                &h.name,
                "--boot-interface",
                boot,
                "--deploy-interface",
                "ramdisk",
                "--driver-info",
                &format!("redfish_address=http://{SERVER}:{SUSHY_PORT}"),
                "--driver-info",
                &format!("redfish_system_id=/redfish/v1/Systems/{}", h.uuid),
                "--driver-info",
                "redfish_username=admin",
                "--driver-info",
                "redfish_password=password",
                "--property",
                "capabilities=boot_mode:uefi",
                "-f",
                "value",
                "-c",
                "uuid",
            ],
        )?;
        baremetal(
            stack,
            bin,
            &["port", "create", "--node", uuid.trim(), &h.mac],
        )?;
    }
    let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    let mut manage = vec!["node", "manage", "--wait", "120"];
    manage.extend(&names);
    baremetal(stack, bin, &manage)?;
    let mut provide = vec!["node", "provide", "--wait", "120"];
    provide.extend(&names);
    baremetal(stack, bin, &provide)?;
    let www = format!("http://{SERVER}:{WWW_PORT}");
    for h in hosts {
        baremetal(
            stack,
            bin,
            &[
                "node",
                "set",
                &h.name,
                "--instance-info",
                &format!("kernel={www}/vmlinuz"),
                "--instance-info",
                &format!("ramdisk={www}/initrd.img"),
                "--instance-info",
                &format!("ramdisk_kernel_arguments={}", h.kernel_args()),
            ],
        )?;
    }
    let mut deploy = vec!["node", "deploy", "--wait", "300"];
    deploy.extend(&names);
    baremetal(stack, bin, &deploy)?;
    Ok(())
}

/// Until every guest has powered itself off (the e2e hook does after the install), or the
/// deadline.
fn wait_shut_off(hosts: &[Host], deadline: Instant) -> Vec<(usize, bool, Duration)> {
    let started = Instant::now();
    let mut ended: Vec<Option<Duration>> = vec![None; hosts.len()];
    while Instant::now() < deadline && ended.iter().any(Option::is_none) {
        for (i, h) in hosts.iter().enumerate() {
            if ended[i].is_none()
                && virsh(&["domstate", &format!("ksi-{}", h.name)])
                    .is_ok_and(|s| s.trim() == "shut off")
            {
                ended[i] = Some(started.elapsed());
                println!(
                    "== [{}] powered off after {:.0} s",
                    h.name,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    hosts
        .iter()
        .zip(ended)
        .map(|(h, e)| (h.n, e.is_none(), e.unwrap_or(started.elapsed())))
        .collect()
}

/// `cargo xtask rollout --engine ironic --hosts N`.
pub fn rollout(root: &Path, cargo: &mut Command, n: usize) -> Result<()> {
    anyhow::ensure!((1..=16).contains(&n), "--hosts: 1 to 16");
    let target = crate::target_dir(root);
    let t0 = Instant::now();
    let mut laps = Laps {
        timings: Vec::new(),
        since: Instant::now(),
    };
    let (p, images) = super::image::build(root, &target, cargo, &mut laps)?;
    let wanted: Vec<String> = PACKAGES.iter().map(|s| s.to_string()).collect();
    installer::ensure_packages(&wanted)?;
    let bin = venv(&target)?;
    laps.lap("packages, venv");
    let work = target.join("rollout-ironic");
    let _ = std::fs::remove_dir_all(&work);
    for d in [
        "run", "logs", "disks", "nvram", "pool", "httpboot", "tftp", "images", "lock", "reports",
        "www",
    ] {
        std::fs::create_dir_all(work.join(d))?;
    }
    let www = work.join("www");
    std::fs::copy(&images.installer.vmlinuz, www.join("vmlinuz"))?;
    std::fs::copy(&images.initrd, www.join("initrd.img"))?;
    run(Command::new("cp")
        .arg("-al")
        .arg(&images.media)
        .arg(www.join("media")))?;
    let hosts: Vec<Host> = (1..=n)
        .map(|i| Host::new(&work, i))
        .collect::<Result<_>>()?;
    kickstarts(&www, &hosts)?;
    esp_image(&work)?;
    let mut stack = Stack::new(&work)?;
    let result = drive(&mut stack, &p, &images, &bin, &hosts, &mut laps);
    let left = stack.stop();
    laps.lap("stop");
    let results = result?;
    summary(
        &images.installer.bin,
        &work,
        &hosts,
        t0,
        &laps,
        &results,
        &left,
    )
}

/// `baremetal node list`: each node's name, provision state and power state, a line each.
fn node_states(stack: &Stack, bin: &Path) -> Result<String> {
    baremetal(
        stack,
        bin,
        &[
            "node",
            "list",
            "-f",
            "value",
            "-c",
            "Name",
            "-c",
            "Provision State",
            "-c",
            "Power State",
        ],
    )
}

/// Start, enroll, deploy, wait, judge; what each host came to.
fn drive(
    stack: &mut Stack,
    p: &Paths,
    images: &Images,
    bin: &Path,
    hosts: &[Host],
    laps: &mut Laps,
) -> Result<Vec<Outcome>> {
    start_libvirt(stack, hosts)?;
    let (www, _httpboot) = start_services(stack, bin, &images.installer.bin)?;
    laps.lap("stack up, domains defined");
    enroll_and_deploy(stack, bin, hosts)?;
    laps.lap("enroll, deploy to active");
    let states = node_states(stack, bin)?;
    println!("== Ironic node states after deploy:\n{states}");
    let ended = wait_shut_off(hosts, Instant::now() + Duration::from_secs(480));
    laps.lap("installs");
    let mut out = Vec::new();
    for (h, (_, timed_out, elapsed)) in hosts.iter().zip(ended) {
        // GRUB's menu (virtual media) draws in CP437: the log is not all UTF-8.
        let text = std::fs::read(&h.serial)
            .map(|b| String::from_utf8_lossy(&b).replace('\r', ""))
            .unwrap_or_default();
        let serial = Serial {
            text,
            elapsed,
            timed_out,
        };
        let how = if h.vmedia { "virtual media" } else { "iPXE" };
        let mut o = if h.n == BROKEN {
            check_broken(&serial, &h.disk)
        } else {
            let mut o = check_pxe(
                &serial,
                &h.disk,
                &images.media,
                &images.uki,
                &www,
                &format!("{}.cfg", h.name),
            );
            for extra in [check_dpu_flash(&serial), check_host_tools(p, &h.disk)] {
                if !extra.passed {
                    o.passed = false;
                }
                o.detail = format!("{}; {}", o.detail, extra.detail);
            }
            o
        };
        o.name = format!("{} ({how})", h.name);
        out.push(o);
    }
    let final_states = node_states(stack, bin)?;
    println!("== Ironic node states at the end:\n{final_states}");
    Ok(out)
}

/// Reports, cluster check, timings; an error when a host is not as it should be or a process
/// was left.
fn summary(
    ksinstall: &Path,
    work: &Path,
    hosts: &[Host],
    t0: Instant,
    laps: &Laps,
    results: &[Outcome],
    left: &[String],
) -> Result<()> {
    let reports = work.join("reports");
    let mut failed = 0;
    println!(
        "\n== rollout --engine ironic: {} hosts, {:.0} s in all",
        hosts.len(),
        t0.elapsed().as_secs_f64()
    );
    for (name, d) in &laps.timings {
        println!("   {:<26} {:>7.1} s", name, d.as_secs_f64());
    }
    for (h, r) in hosts.iter().zip(results) {
        let mark = if r.passed { "PASS" } else { "FAIL" };
        println!(
            "{mark} {:<26} {:>6.1} s  {}",
            r.name,
            r.elapsed.as_secs_f64(),
            r.detail
        );
        let report = reports.join(format!("{}.json", h.name));
        println!(
            "     serial log {}; report {}",
            h.serial.display(),
            if report.exists() {
                report.display().to_string()
            } else {
                "NONE RECEIVED".into()
            }
        );
        if !r.passed || !report.exists() {
            failed += 1;
        }
    }
    let good: Vec<PathBuf> = hosts
        .iter()
        .filter(|h| h.n != BROKEN)
        .map(|h| reports.join(format!("{}.json", h.name)))
        .collect();
    let bin = ksinstall;
    if !good.is_empty() {
        println!("== ksinstall cluster check (the good hosts)");
        let st = Command::new(bin)
            .args(["cluster", "check"])
            .args(&good)
            .status()?;
        if !st.success() {
            failed += 1;
        }
    }
    if hosts.len() >= BROKEN {
        println!("== ksinstall cluster check (all hosts: the broken one named)");
        let all: Vec<PathBuf> = hosts
            .iter()
            .map(|h| reports.join(format!("{}.json", h.name)))
            .collect();
        let out = Command::new(bin)
            .args(["cluster", "check"])
            .args(&all)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        print!("{text}");
        if out.status.code() != Some(12) || !text.contains(&format!("host-{BROKEN}")) {
            println!(
                "FAIL cluster check did not name host-{BROKEN} (exit {:?})",
                out.status.code()
            );
            failed += 1;
        }
    }
    if left.is_empty() {
        println!("== every process the rollout started is gone");
    } else {
        println!("FAIL still running: {left:?}");
        failed += 1;
    }
    if failed > 0 {
        bail!("{failed} check(s) of the Ironic rollout failed");
    }
    Ok(())
}
