//! `ksinstall report serve`: the receiver of a rollout's `--report-url` posts (docs/FLEET.md,
//! *Collecting the reports*). Each host posts to `http://RECEIVER/<host>`; the receiver keeps,
//! in one directory,
//!
//! - `<host>.events.jsonl`: every body the host posted, one JSON document a line, as it came;
//! - `<host>.json`: the host's install report (the `{"event": "report"}` post that
//!   `--report-format json` sends after the last event), which `ksinstall cluster check DIR/*.json`
//!   and `hcl check` read.
//!
//! A post to `/` names its host by the identity headers (`X-System-Serial-Number`, else the
//! first `X-RHN-Provisioning-MAC-N`'s MAC), so the same URL can go to every host when they send
//! them (`--send-serial`, `--send-mac`). Each host's end is logged: `esx-03: failed at source:
//! ... (exit code 3)`.
//!
//! The HTTP server is tiny_http (plain HTTP: put it behind a TLS proxy where the network is not
//! the rollout's own).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The largest body taken (a report with many DPUs is a few KB).
pub const MAX_BODY: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("the path {0:?} names no host (use /<host>, letters, digits, '.', '-', '_'), and the post has no identity header")]
    NoHost(String),
    #[error("the body is larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("the body is not a JSON object: {0}")]
    NotJson(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ReceiveError {
    /// The HTTP status the poster gets.
    pub fn status(&self) -> u16 {
        match self {
            ReceiveError::NoHost(_) | ReceiveError::NotJson(_) => 400,
            ReceiveError::TooLarge => 413,
            ReceiveError::Io { .. } => 500,
        }
    }
}

/// What one post was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// An event (or a curtin/Ironic body), appended to the host's events.
    Event { host: String },
    /// The host's report, written as `<host>.json`.
    Report { host: String, path: PathBuf },
}

/// The directory a receiver stores into.
pub struct Receiver {
    dir: PathBuf,
}

fn good_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// The host a post is from: the URL path's last segment, else the identity headers.
fn host_of(path: &str, headers: &[(String, String)]) -> Result<String, ReceiveError> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if good_name(last) {
        return Ok(last.to_string());
    }
    if !last.is_empty() {
        return Err(ReceiveError::NoHost(path.to_string()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let from_serial = header("X-System-Serial-Number").filter(|s| good_name(s));
    // `X-RHN-Provisioning-MAC-0: eth0 52:54:00:12:34:56`
    let from_mac = header("X-RHN-Provisioning-MAC-0")
        .and_then(|v| v.split_whitespace().last().map(|m| m.replace(':', "-")))
        .filter(|m| good_name(m));
    from_serial
        .or(from_mac)
        .ok_or_else(|| ReceiveError::NoHost(path.to_string()))
}

impl Receiver {
    pub fn new(dir: &Path) -> Result<Receiver, ReceiveError> {
        std::fs::create_dir_all(dir).map_err(|source| ReceiveError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Receiver {
            dir: dir.to_path_buf(),
        })
    }

    /// Store one post.
    pub fn take(
        &self,
        path: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Stored, ReceiveError> {
        if body.len() > MAX_BODY {
            return Err(ReceiveError::TooLarge);
        }
        let host = host_of(path, headers)?;
        let value: Value =
            serde_json::from_slice(body).map_err(|e| ReceiveError::NotJson(e.to_string()))?;
        if !value.is_object() {
            return Err(ReceiveError::NotJson("not an object".into()));
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ReceiveError::Io { path, source }
        };
        if value["event"] == "report" {
            let out = self.dir.join(format!("{host}.json"));
            let tmp = self.dir.join(format!(".{host}.json.tmp"));
            let text = serde_json::to_string_pretty(&value["report"])
                .map_err(|e| ReceiveError::NotJson(e.to_string()))?;
            std::fs::write(&tmp, text + "\n").map_err(io(&tmp))?;
            std::fs::rename(&tmp, &out).map_err(io(&out))?;
            log::info!("{host}: report stored in {}", out.display());
            return Ok(Stored::Report { host, path: out });
        }
        let events = self.dir.join(format!("{host}.events.jsonl"));
        let mut f = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&events)
            .map_err(io(&events))?;
        writeln!(f, "{value}").map_err(io(&events))?;
        say_end(&host, &value);
        Ok(Stored::Event { host })
    }
}

/// A host's end, said as it arrives: the failed step and why, or the exit code.
fn say_end(host: &str, v: &Value) {
    match v["event"].as_str() {
        Some("failed") => log::warn!(
            "{host}: failed at {}: {} (exit code {})",
            v["step"].as_str().unwrap_or("?"),
            v["message"].as_str().unwrap_or(""),
            v["exit_code"]
        ),
        Some("finished") => log::info!("{host}: finished, exit code {}", v["exit_code"]),
        _ => {}
    }
}

/// Answer the posts `server` gets, storing them through `receiver`, until `stop` says so
/// (looked at between requests, at least every half second) or the process ends.
pub fn serve(
    server: &tiny_http::Server,
    receiver: &Receiver,
    stop: &std::sync::atomic::AtomicBool,
) -> std::io::Result<()> {
    use std::io::Read;
    use std::sync::atomic::Ordering;
    while !stop.load(Ordering::Relaxed) {
        let Some(mut req) = server.recv_timeout(std::time::Duration::from_millis(500))? else {
            continue;
        };
        if *req.method() != tiny_http::Method::Post {
            let _ =
                req.respond(tiny_http::Response::from_string("POST only\n").with_status_code(405));
            continue;
        }
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|h| (h.field.to_string(), h.value.to_string()))
            .collect();
        let mut body = Vec::new();
        let read = req
            .as_reader()
            .take(MAX_BODY as u64 + 1)
            .read_to_end(&mut body);
        let answer = match read {
            Err(e) => (400, format!("reading the body: {e}\n")),
            Ok(_) => match receiver.take(req.url(), &headers, &body) {
                Ok(_) => (200, "{}\n".to_string()),
                Err(e) => {
                    log::warn!("POST {}: {e}", req.url());
                    (e.status(), format!("{e}\n"))
                }
            },
        };
        let _ = req.respond(tiny_http::Response::from_string(answer.1).with_status_code(answer.0));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_named_by_its_path_or_its_identity_headers() {
        let none: Vec<(String, String)> = Vec::new();
        assert_eq!(host_of("/esx-03", &none).unwrap(), "esx-03");
        assert_eq!(host_of("/rollout/esx-03/?x=1", &none).unwrap(), "esx-03");
        assert!(matches!(
            host_of("/..", &none),
            Err(ReceiveError::NoHost(_))
        ));
        assert!(matches!(host_of("/", &none), Err(ReceiveError::NoHost(_))));
        let mac = vec![(
            "x-rhn-provisioning-mac-0".to_string(),
            "eth0 52:54:00:12:34:56".to_string(),
        )];
        assert_eq!(host_of("/", &mac).unwrap(), "52-54-00-12-34-56");
        let serial = vec![("X-System-Serial-Number".to_string(), "SN1234".to_string())];
        assert_eq!(host_of("/", &serial).unwrap(), "SN1234");
    }
}
