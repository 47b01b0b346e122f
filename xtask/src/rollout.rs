//! `cargo xtask rollout --hosts N`: a simulated rack on this machine. N sysroots (fixture
//! hardware: BlueField-3 hosts with simulated DPUs behind rshim files, mixed disk sizes and
//! sector sizes, and one deliberately wrong host), each installed by the real binary from one
//! kickstart served by one HTTP server, at most `--jobs` at a time. The reports go to
//! `ksinstall cluster check`, which must name exactly the wrong host. Figures go to the
//! `## Rollout` section of docs/PERFORMANCE.md (the rest of the file is the bench's).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use testkit::sim::{Config, RshimSim};
use testkit::synth;

const KS: &str = "vmaccepteula\nrootpw --iscrypted $6$ksinstallExampl$gs0rWRb4e18QdWwUGxkYYf27pufzcgy.uh99Ch9umRYHEgzPhZjOfXvb9/6j3OBpXQpAO238CiGZZ0X5fOIg31\ninstall --firstdisk --overwritevmfs\nnetwork --bootproto=dhcp\n";

/// What is wrong with the odd host out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Wrong {
    /// A BlueField-2 among BlueField-3s.
    OtherModel,
    /// No DPU at all.
    NoDpu,
    /// Installed from another build of the same release.
    OtherImage,
}

impl Wrong {
    /// The rule `cluster check` must report for it.
    fn rule(self) -> &'static str {
        match self {
            Wrong::OtherModel => "same_model",
            Wrong::NoDpu => "has_dpu",
            Wrong::OtherImage => "same_image",
        }
    }
}

/// Who installs the rack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// Simulated hosts (fixtures and simulated DPUs) installed in parallel by ksinstall itself.
    Sim,
    /// A standalone OpenStack Ironic through sushy-tools' Redfish BMCs over libvirt (docs/FLEET.md).
    Ironic,
}

/// `cargo xtask rollout [--engine sim|ironic] [--hosts N] ...`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Who installs the rack.
    #[arg(long, value_enum, default_value_t = Engine::Sim)]
    pub engine: Engine,
    /// Hosts in the rack (sim: at least 2, 3 for --wrong other-model/other-image, default 16;
    /// ironic: 1 to 16, default 3).
    #[arg(long, value_name = "N")]
    pub hosts: Option<usize>,
    /// Installs at once (sim only).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Size of the synthetic media (sim only; default 256M).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub media_size: Option<u64>,
    /// What is wrong with the odd host out (sim only; default other-model).
    #[arg(long, value_enum)]
    pub wrong: Option<Wrong>,
    /// Do not write the figures into docs/PERFORMANCE.md (sim only).
    #[arg(long)]
    pub no_doc: bool,
}

fn parse_size(s: &str) -> Result<u64> {
    ksinstall::size::parse_size(s)
}

struct Options {
    hosts: usize,
    jobs: usize,
    media_size: u64,
    wrong: Wrong,
    write_doc: bool,
}

impl Options {
    fn sim(a: &Args) -> Result<Options> {
        let o = Options {
            hosts: a.hosts.unwrap_or(16),
            jobs: a.jobs.unwrap_or(4).max(1),
            media_size: a.media_size.unwrap_or(256 << 20),
            wrong: a.wrong.unwrap_or(Wrong::OtherModel),
            write_doc: !a.no_doc,
        };
        if o.hosts < 2 {
            bail!("--hosts must be at least 2 (one of them is the wrong one)");
        }
        // Two hosts that differ in model or image have no majority, and cluster check names both.
        if o.hosts < 3 && o.wrong != Wrong::NoDpu {
            bail!(
                "--wrong {} needs --hosts 3 or more: of two hosts that differ, neither is the odd one out",
                clap::ValueEnum::to_possible_value(&o.wrong).map(|v| v.get_name().to_string()).unwrap_or_default()
            );
        }
        Ok(o)
    }
}

/// One host of the rack.
#[derive(Clone)]
struct Host {
    name: String,
    fixture: &'static str,
    /// rshim function and DEV_INFO of its BlueField.
    rshim: Option<(&'static str, &'static str)>,
    media: PathBuf,
    disk: &'static str,
    disk_size: &'static str,
    sector_size: u32,
}

struct Outcome {
    host: Host,
    secs: f64,
    exit: Option<i32>,
    bytes_written: u64,
    dpu_bytes: u64,
}

/// Serves the files of one directory over HTTP/1.1 on 127.0.0.1 (GET only), counting requests.
struct KsServer {
    url: String,
    served: Arc<AtomicUsize>,
}

fn serve(root: PathBuf) -> Result<KsServer> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1")?;
    let url = format!("http://{}", listener.local_addr()?);
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let root = root.clone();
            let count = count.clone();
            std::thread::spawn(move || {
                if answer(stream, &root).unwrap_or(false) {
                    count.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    Ok(KsServer { url, served })
}

/// One request; true when a file was sent.
fn answer(stream: TcpStream, root: &Path) -> Result<bool> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let mut out = stream;
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let name = path.trim_start_matches('/');
    let file = (line.starts_with("GET ") && !name.is_empty() && !name.contains(".."))
        .then(|| std::fs::read(root.join(name)).ok())
        .flatten();
    match file {
        Some(body) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            out.write_all(&body)?;
            Ok(true)
        }
        None => {
            out.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
            Ok(false)
        }
    }
}

fn install(bin: &Path, work: &Path, ks_url: &str, h: &Host) -> Result<Outcome> {
    let sysroot = work.join("hosts").join(&h.name);
    let _ = std::fs::remove_dir_all(&sysroot);
    let ok = Command::new("cp")
        .arg("-a")
        .arg(super::root().join("tests/fixtures").join(h.fixture))
        .arg(&sysroot)
        .status()
        .context("cp -a")?;
    if !ok.success() {
        bail!("copying the {} fixture failed", h.fixture);
    }
    // The install goes onto the host's own disk file, so the sysroot is the whole host.
    let disk = sysroot.join("dev").join(h.disk);
    std::fs::remove_file(&disk).with_context(|| format!("{}", disk.display()))?;
    let sim = match h.rshim {
        Some((address, info)) => {
            let mut c = Config::new(address, info);
            // A DPU takes its stream at a fixed rate, as the bench's does.
            c.rate = Some(200_000_000);
            Some(RshimSim::start(&sysroot.join("dev/rshim0"), c)?)
        }
        None => None,
    };
    let report = work.join("reports").join(format!("{}.json", h.name));
    let started = Instant::now();
    let out = Command::new(bin)
        .arg("install")
        .arg("--ks")
        .arg(ks_url)
        .arg("--media")
        .arg(&h.media)
        .arg("--sysroot")
        .arg(&sysroot)
        .arg("--disk")
        .arg(&disk)
        .args(["--disk-size", h.disk_size, "--sector-size"])
        .arg(h.sector_size.to_string())
        .args(["--cmdline", "", "--progress", "none", "--report"])
        .arg(&report)
        .output()
        .context("running ksinstall install")?;
    let secs = started.elapsed().as_secs_f64();
    let dpu_bytes = sim.map(|s| s.finish().bytes).unwrap_or(0);
    if !out.status.success() {
        eprintln!(
            "{}: {}",
            h.name,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    let bytes_written = std::fs::read(&report)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["bytes_written"].as_u64())
        .unwrap_or(0);
    // The rack's disks are sparse, but the data in them adds up: only the report is kept.
    let _ = std::fs::remove_file(&disk);
    Ok(Outcome {
        host: h.clone(),
        secs,
        exit: out.status.code(),
        bytes_written,
        dpu_bytes,
    })
}

/// Replace the `## Rollout` section of a Markdown document (up to the next `## ` heading), or
/// append it.
pub fn with_section(doc: &str, heading: &str, section: &str) -> String {
    let Some(start) = doc.find(heading) else {
        return format!("{}\n\n{}", doc.trim_end(), section);
    };
    let rest = &doc[start + heading.len()..];
    let end = rest
        .find("\n## ")
        .map(|i| start + heading.len() + i + 1)
        .unwrap_or(doc.len());
    format!("{}{}{}", &doc[..start], section, &doc[end..])
}

/// The `## Rollout` section of a document, if any (so the bench keeps it when it rewrites).
pub fn section_of(doc: &str, heading: &str) -> Option<String> {
    let start = doc.find(heading)?;
    let rest = &doc[start + heading.len()..];
    let end = rest
        .find("\n## ")
        .map(|i| start + heading.len() + i + 1)
        .unwrap_or(doc.len());
    Some(doc[start..end].to_string())
}

pub const HEADING: &str = "## Rollout";

pub fn rollout(root: &Path, cargo: &mut Command, args: &Args) -> Result<()> {
    // --engine ironic: the rack installed by OpenStack Ironic through Redfish BMCs
    // (xtask/src/e2e/ironic); --engine sim (the default): the simulated hosts below.
    if args.engine == Engine::Ironic {
        if args.jobs.is_some() || args.media_size.is_some() || args.wrong.is_some() || args.no_doc {
            bail!("rollout --engine ironic takes --hosts N only (--jobs, --media-size, --wrong and --no-doc are the simulated rack's)");
        }
        return crate::e2e::ironic::rollout(root, cargo, args.hosts.unwrap_or(3));
    }
    let o = Options::sim(args)?;
    let (bin, work) = release_build(root, cargo)?;
    let media = rack_media(&work, "media", o.media_size, 1)?;
    let other_media = rack_media(&work, "media-other-build", o.media_size, 2)?;
    std::fs::write(work.join("www/ks.cfg"), KS)?;
    let server = serve(work.join("www"))?;
    let ks_url = format!("{}/ks.cfg", server.url);
    let hosts = rack(&o, &media, &other_media);
    let wrong_name = hosts[o.hosts / 3].name.clone();

    let alone = install_alone(&bin, &work, &ks_url, &hosts[0])?;
    println!(
        "== {} hosts, {} at a time, kickstart from {ks_url}",
        o.hosts, o.jobs
    );
    let (results, wall) = install_rack(&bin, &work, &ks_url, &hosts, o.jobs)?;
    let reports: Vec<PathBuf> = results
        .iter()
        .map(|r| work.join("reports").join(format!("{}.json", r.host.name)))
        .collect();
    let verdict = cluster_check(&bin, &reports)?;
    print_table(&results, &verdict.broken);
    let figures = Figures::of(&alone, &results, wall);
    println!(
        "rack: {} hosts in {wall:.1} s = {:.1} hosts/minute; {:.0} MB laid down at {:.1} MB/s aggregate ({:.2}x one host alone at {:.1} MB/s); {:.0} MB to the DPUs; kickstart served {} times",
        o.hosts,
        figures.per_minute,
        figures.host_bytes as f64 / 1e6,
        figures.aggregate,
        figures.aggregate / figures.alone_mbs,
        figures.alone_mbs,
        figures.dpu_bytes as f64 / 1e6,
        server.served.load(Ordering::SeqCst)
    );
    print!(
        "{}",
        String::from_utf8_lossy(
            &Command::new(&bin)
                .args(["cluster", "check"])
                .args(&reports)
                .output()?
                .stdout
        )
    );
    judge(&results, &verdict, &wrong_name, o.wrong)?;
    if o.write_doc {
        write_section(root, &section(&o, &wrong_name, &figures))?;
    }
    Ok(())
}

/// `cargo build --release` of the binary the rack runs; returns it and the rack's work
/// directory (under the target directory, emptied of the last run's hosts and reports).
fn release_build(root: &Path, cargo: &mut Command) -> Result<(PathBuf, PathBuf)> {
    let (bin, target) = crate::bench::release_build(root, cargo)?;
    let work = target.join("rollout");
    let _ = std::fs::remove_dir_all(work.join("hosts"));
    let _ = std::fs::remove_dir_all(work.join("reports"));
    for d in ["hosts", "reports", "www"] {
        std::fs::create_dir_all(work.join(d)).with_context(|| format!("{}", work.display()))?;
    }
    Ok((bin, work))
}

/// A synthetic medium of `size` bytes under `work`, kept between runs (it takes a while).
fn rack_media(work: &Path, name: &str, size: u64, seed: u64) -> Result<PathBuf> {
    let dir = work.join(format!("{name}-{}m", size >> 20));
    if !dir.join("IMGDB.TGZ").exists() {
        let _ = std::fs::remove_dir_all(&dir);
        synth::mkmedia(&synth::Options {
            out: dir.clone(),
            size,
            version: "8.0.3".into(),
            seed,
        })?;
    }
    Ok(dir)
}

/// The rack: BlueField-3 hosts on mixed disks; the wrong one a third of the way in.
fn rack(o: &Options, media: &Path, other_media: &Path) -> Vec<Host> {
    let disks: [(&str, &str, u32); 4] = [
        ("sda", "40G", 512),
        ("sdb", "200G", 512),
        ("sda", "120G", 4096),
        ("sdb", "480G", 512),
    ];
    let wrong_at = o.hosts / 3;
    (0..o.hosts)
        .map(|i| {
            let (disk, disk_size, sector_size) = disks[i % disks.len()];
            let mut h = Host {
                name: format!("esx-{:02}", i + 1),
                fixture: "bluefield3",
                rshim: Some(("0000:ca:00.2", "BlueField-3(Rev 1)")),
                media: media.to_path_buf(),
                disk,
                disk_size,
                sector_size,
            };
            if i == wrong_at {
                match o.wrong {
                    Wrong::OtherModel => {
                        h.fixture = "bluefield2";
                        h.rshim = Some(("0000:3b:00.2", "BlueField-2(Rev 1)"));
                        h.disk = "sda";
                    }
                    Wrong::NoDpu => {
                        h.fixture = "plain";
                        h.rshim = None;
                    }
                    Wrong::OtherImage => h.media = other_media.to_path_buf(),
                }
            }
            h
        })
        .collect()
}

/// The first host installed on its own, the yardstick for the rack's aggregate figure.
fn install_alone(bin: &Path, work: &Path, ks_url: &str, first: &Host) -> Result<Outcome> {
    println!("== one host alone ({}), for comparison", first.name);
    let alone = install(
        bin,
        work,
        ks_url,
        &Host {
            name: "alone".into(),
            ..first.clone()
        },
    )?;
    if alone.exit != Some(0) {
        bail!("the lone install failed ({:?})", alone.exit);
    }
    println!(
        "   {:.2} s, {:.0} MB laid down: {:.1} MB/s",
        alone.secs,
        alone.bytes_written as f64 / 1e6,
        alone.bytes_written as f64 / 1e6 / alone.secs
    );
    let _ = std::fs::remove_file(work.join("reports/alone.json"));
    Ok(alone)
}

/// Every host installed, `jobs` at a time; the outcomes sorted by host name, and the wall time.
fn install_rack(
    bin: &Path,
    work: &Path,
    ks_url: &str,
    hosts: &[Host],
    jobs: usize,
) -> Result<(Vec<Outcome>, f64)> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..jobs.min(hosts.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(h) = hosts.get(i) else { break };
                match install(bin, work, ks_url, h) {
                    Ok(r) => results.lock().map(|mut v| v.push(r)).unwrap_or(()),
                    Err(e) => failures
                        .lock()
                        .map(|mut v| v.push(format!("{}: {e:#}", h.name)))
                        .unwrap_or(()),
                }
            });
        }
    });
    let wall = started.elapsed().as_secs_f64();
    let failures = failures.into_inner().unwrap_or_default();
    if !failures.is_empty() {
        bail!("the rack could not be run: {}", failures.join("; "));
    }
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by(|a, b| a.host.name.cmp(&b.host.name));
    Ok((results, wall))
}

/// What `cluster check` said of the rack.
struct Verdict {
    /// (host, rule) of every finding of severity "broken".
    broken: Vec<(String, String)>,
    exit: Option<i32>,
}

/// The reports, as a fleet tool would gather them, to `cluster check --format json`.
fn cluster_check(bin: &Path, reports: &[PathBuf]) -> Result<Verdict> {
    let check = Command::new(bin)
        .args(["cluster", "check", "--format", "json"])
        .args(reports)
        .output()
        .context("running ksinstall cluster check")?;
    let verdict: serde_json::Value = serde_json::from_slice(&check.stdout).with_context(|| {
        format!(
            "cluster check said: {}",
            String::from_utf8_lossy(&check.stderr)
        )
    })?;
    let broken: Vec<(String, String)> = verdict["verdict"]["findings"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|f| f["severity"] == "broken")
        .map(|f| {
            (
                f["host"].as_str().unwrap_or("?").to_string(),
                f["rule"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    Ok(Verdict {
        broken,
        exit: check.status.code(),
    })
}

/// One line a host: what it is, how its install went, what the cluster check says of it.
fn print_table(results: &[Outcome], broken: &[(String, String)]) {
    println!(
        "{:<8} {:<11} {:<12} {:>6} {:>6} {:>8} {:>8} {:>8} {:>5}  CLUSTER",
        "HOST", "FIXTURE", "DISK", "SIZE", "SECTOR", "TIME s", "HOST MB", "DPU MB", "EXIT"
    );
    for r in results {
        let rules: Vec<&str> = broken
            .iter()
            .filter(|(h, _)| *h == r.host.name)
            .map(|(_, rule)| rule.as_str())
            .collect();
        println!(
            "{:<8} {:<11} {:<12} {:>6} {:>6} {:>8.2} {:>8.0} {:>8.0} {:>5}  {}",
            r.host.name,
            r.host.fixture,
            format!("dev/{}", r.host.disk),
            r.host.disk_size,
            r.host.sector_size,
            r.secs,
            r.bytes_written as f64 / 1e6,
            r.dpu_bytes as f64 / 1e6,
            r.exit.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
            if rules.is_empty() {
                "ok".to_string()
            } else {
                format!("BROKEN: {}", rules.join(", "))
            }
        );
    }
}

/// Every install succeeded and the cluster check flagged exactly the wrong host, by its rule,
/// with exit 12.
fn judge(results: &[Outcome], verdict: &Verdict, wrong_name: &str, wrong: Wrong) -> Result<()> {
    let (broken, check_exit) = (&verdict.broken, verdict.exit);
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| r.exit != Some(0))
        .map(|r| r.host.name.as_str())
        .collect();
    let expected = vec![(wrong_name.to_string(), wrong.rule().to_string())];
    if !failed.is_empty() {
        bail!("installs failed: {}", failed.join(", "));
    }
    if *broken != expected || check_exit != Some(12) {
        bail!(
            "cluster check should flag exactly {wrong_name} ({}), it flagged {broken:?} (exit {:?})",
            wrong.rule(),
            check_exit
        );
    }
    println!(
        "cluster check flagged exactly {wrong_name} ({}), exit 12",
        wrong.rule()
    );
    Ok(())
}

/// What the rack measured, for the summary line and docs/PERFORMANCE.md.
struct Figures {
    alone_secs: f64,
    alone_bytes: u64,
    alone_mbs: f64,
    wall: f64,
    per_minute: f64,
    host_bytes: u64,
    dpu_bytes: u64,
    /// MB/s laid down by the whole rack.
    aggregate: f64,
    dpus: usize,
}

impl Figures {
    fn of(alone: &Outcome, results: &[Outcome], wall: f64) -> Figures {
        let host_bytes: u64 = results.iter().map(|r| r.bytes_written).sum();
        Figures {
            alone_secs: alone.secs,
            alone_bytes: alone.bytes_written,
            alone_mbs: alone.bytes_written as f64 / 1e6 / alone.secs,
            wall,
            per_minute: results.len() as f64 / wall * 60.0,
            host_bytes,
            dpu_bytes: results.iter().map(|r| r.dpu_bytes).sum(),
            aggregate: host_bytes as f64 / 1e6 / wall,
            dpus: results.iter().filter(|r| r.dpu_bytes > 0).count(),
        }
    }
}

/// The `## Rollout` section of docs/PERFORMANCE.md.
fn section(o: &Options, wrong_name: &str, f: &Figures) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!(
        "{HEADING}\n\nMeasured by `cargo xtask rollout --hosts {n} --jobs {jobs}` (release build; writes this section only).\n\
A simulated rack on one machine ({cpu}, {cores} cores): {n} hosts, copies of the `bluefield3` fixture (but the wrong one), each\n\
DPU simulated behind rshim's files (draining at 200 MB/s), installed onto its own disk file (40 G to 480 G,\n\
512- and 4096-byte sectors) from one kickstart served over HTTP, from a {msize} MiB synthetic 8.0.3 medium, {jobs}\n\
installs at a time. Host {wrong} is the deliberately wrong one ({why}); `ksinstall cluster check` over the\n\
{n} reports flagged exactly it (`{rule}`, exit 12).\n\n\
| What | Figure |\n|---|---|\n\
| one host alone | {at:.2} s, {amb:.0} MB laid down, {ambs:.1} MB/s |\n\
| the rack | {n} hosts in {wall:.1} s: **{ppm:.1} hosts per minute** |\n\
| aggregate lay-down | {hmb:.0} MB at **{agg:.1} MB/s = {ratio:.2}x one host alone** |\n\
| DPU payloads | {dmb:.0} MB through {ndpu} simulated rshim devices |\n\n\
Why the aggregate is not {jobs}x: the {jobs} installs share this machine's two cores (and one disk), and each\n\
install hashes every byte twice (the media check, then as it is written) and reads it back; not profiled\n\
further. In a real rack every host has its own CPU and disk. The machine is shared with other jobs, so the\n\
figures move from run to run.\n",
        n = o.hosts,
        jobs = o.jobs,
        msize = o.media_size >> 20,
        wrong = wrong_name,
        why = match o.wrong {
            Wrong::OtherModel => "a BlueField-2 among BlueField-3s",
            Wrong::NoDpu => "no DPU",
            Wrong::OtherImage => "another build of 8.0.3",
        },
        rule = o.wrong.rule(),
        at = f.alone_secs,
        amb = f.alone_bytes as f64 / 1e6,
        ambs = f.alone_mbs,
        wall = f.wall,
        ppm = f.per_minute,
        hmb = f.host_bytes as f64 / 1e6,
        agg = f.aggregate,
        ratio = f.aggregate / f.alone_mbs,
        dmb = f.dpu_bytes as f64 / 1e6,
        ndpu = f.dpus,
    )
}

/// Replace (or add) the `## Rollout` section of docs/PERFORMANCE.md; the rest is the bench's.
fn write_section(root: &Path, section: &str) -> Result<()> {
    let doc_path = root.join("docs/PERFORMANCE.md");
    let doc = std::fs::read_to_string(&doc_path)
        .with_context(|| format!("reading {}", doc_path.display()))?;
    std::fs::write(&doc_path, with_section(&doc, HEADING, section))
        .with_context(|| format!("writing {}", doc_path.display()))?;
    println!("wrote the {HEADING} section of {}", doc_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_rollout_section_is_replaced() {
        let doc = "# Performance\n\nbench text\n\n## Rollout\n\nold\n\n## Later\n\nkept\n";
        let new = with_section(doc, HEADING, "## Rollout\n\nnew\n\n");
        assert_eq!(
            new,
            "# Performance\n\nbench text\n\n## Rollout\n\nnew\n\n## Later\n\nkept\n"
        );
        let appended = with_section("# Performance\n\nbench\n", HEADING, "## Rollout\n\nx\n");
        assert_eq!(appended, "# Performance\n\nbench\n\n## Rollout\n\nx\n");
        assert_eq!(
            section_of(doc, HEADING).as_deref(),
            Some("## Rollout\n\nold\n\n")
        );
    }
}
