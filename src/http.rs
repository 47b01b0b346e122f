//! The one HTTP(S) client of the installer: the kickstart, `%include` URLs, the media and the
//! report webhooks all go through [`Http`], so they share one set of options (docs/BOOT.md):
//! certificates checked against the web PKI or `--ca-file`, `--insecure` to turn that off,
//! connect and stall timeouts, retries with exponential backoff, and the identity headers that
//! Anaconda's `inst.ks.sendmac`/`inst.ks.sendsn` send.
//!
//! A module of its own rather than part of a stage: the source, media and report stages all use
//! it, and none of them may reach into another.

use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

/// How the installer talks HTTP. `Default` is what a boot without flags uses.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// PEM file of the CA certificates to trust instead of the built-in web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate (as ESXi's own installer does). Off unless asked for.
    pub insecure: bool,
    /// For the TCP connection, and again for the response headers.
    pub connect_timeout: Duration,
    /// The longest a transfer may stall between two reads before it is retried.
    pub read_timeout: Duration,
    /// Tries per request (and per resumption of a body), at least 1.
    pub attempts: u32,
    /// The wait before the second try; doubled for each try after it.
    pub backoff: Duration,
    /// Extra headers sent with every request (the MAC and serial headers, see
    /// [`identity_headers`]).
    pub headers: Vec<(String, String)>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            ca_file: None,
            insecure: false,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            attempts: 4,
            backoff: Duration::from_millis(500),
            headers: Vec::new(),
        }
    }
}

/// Kickstarts, includes and media metadata are small; refuse anything larger than this rather
/// than fill memory.
pub(crate) const SMALL_LIMIT: u64 = 16 << 20;

/// A configured client. Cheap to clone (the agent shares its connection pool).
#[derive(Clone)]
pub struct Http {
    agent: ureq::Agent,
    /// The same, refusing any plain-http hop: for https URLs, so that a redirect can never
    /// downgrade a kickstart (which carries the root password's hash) to cleartext.
    agent_https_only: ureq::Agent,
    opts: HttpOptions,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").field("opts", &self.opts).finish()
    }
}

/// Whether trying again can help: not for 4xx answers nor for certificate problems.
fn worth_retrying(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::StatusCode(code) => !(400..500).contains(code),
        e => !is_tls_trust_error(e),
    }
}

/// A certificate the handshake refused, read from the error's type: during the handshake
/// rustls' error travels inside ureq's `Io` error (rustls wraps it in an `InvalidData` I/O error).
fn is_tls_trust_error(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Rustls(_) | ureq::Error::Tls(_) => true,
        ureq::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .is_some_and(is_certificate_problem),
        _ => false,
    }
}

/// The server's certificate refused here, or ours or the server's refused by the other side.
fn is_certificate_problem(e: &rustls::Error) -> bool {
    use rustls::AlertDescription as A;
    match e {
        rustls::Error::InvalidCertificate(_)
        | rustls::Error::NoCertificatesPresented
        | rustls::Error::InvalidCertRevocationList(_) => true,
        rustls::Error::AlertReceived(alert) => matches!(
            alert,
            A::BadCertificate
                | A::UnsupportedCertificate
                | A::CertificateRevoked
                | A::CertificateExpired
                | A::CertificateUnknown
                | A::UnknownCA
                | A::CertificateRequired
                | A::CertificateUnobtainable
                | A::BadCertificateStatusResponse
                | A::BadCertificateHashValue
        ),
        _ => false,
    }
}

/// A URL as it may be shown, logged or reported: ureq sends the userinfo of a URL
/// (`https://user:secret@host/ks.cfg`) as Basic auth, so the password is replaced by `***`, and
/// a userinfo without one (a token as the user name) as a whole.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => format!("{scheme}://***@{host}{tail}"),
        },
        None => url.to_string(),
    }
}

/// The error text a person can act on.
fn explain(url: &str, e: &ureq::Error) -> String {
    let url = redact(url);
    match e {
        ureq::Error::StatusCode(code) => format!("{url}: HTTP {code}"),
        e if is_tls_trust_error(e) => format!(
            "{url}: the server's TLS certificate is not trusted ({e}); give the CA that signed \
             it with --ca-file FILE, or turn checking off with --insecure"
        ),
        e => format!("{url}: {e}"),
    }
}

impl Http {
    pub fn new(opts: HttpOptions) -> Result<Http> {
        let mut tls = ureq::tls::TlsConfig::builder().disable_verification(opts.insecure);
        if let Some(path) = &opts.ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading the CA file {}", path.display()))?;
            let certs = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("{}: not a PEM certificate file", path.display()))?;
            anyhow::ensure!(
                !certs.is_empty(),
                "{}: holds no PEM certificate",
                path.display()
            );
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let tls = tls.build();
        let make = |https_only: bool| -> ureq::Agent {
            ureq::Agent::config_builder()
                .timeout_connect(Some(opts.connect_timeout))
                .timeout_recv_response(Some(opts.connect_timeout))
                .timeout_per_read(Some(opts.read_timeout))
                .http_status_as_error(true)
                .https_only(https_only)
                .user_agent(concat!("ksinstall/", env!("CARGO_PKG_VERSION")))
                .tls_config(tls.clone())
                .build()
                .into()
        };
        Ok(Http {
            agent: make(false),
            agent_https_only: make(true),
            opts,
        })
    }

    pub fn options(&self) -> &HttpOptions {
        &self.opts
    }

    fn pause(&self, attempt: u32) {
        if attempt > 0 {
            let factor = 1u32 << (attempt - 1).min(6);
            std::thread::sleep(self.opts.backoff.saturating_mul(factor));
        }
    }

    fn agent_for(&self, url: &str) -> &ureq::Agent {
        if url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
        {
            &self.agent_https_only
        } else {
            &self.agent
        }
    }

    fn attempts(&self) -> u32 {
        self.opts.attempts.max(1)
    }

    fn request(
        &self,
        method: &str,
        url: &str,
        range_from: u64,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let agent = self.agent_for(url);
        let mut req = match method {
            "HEAD" => agent.head(url),
            _ => agent.get(url),
        };
        for (k, v) in &self.opts.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if range_from > 0 {
            req = req.header("Range", format!("bytes={range_from}-"));
        }
        req.call()
    }

    /// `call` with retries and backoff; 4xx and certificate errors are final at once.
    fn with_retries<T>(
        &self,
        url: &str,
        mut call: impl FnMut() -> Result<T, ureq::Error>,
    ) -> Result<T> {
        let mut last = String::new();
        for attempt in 0..self.attempts() {
            self.pause(attempt);
            match call() {
                Ok(v) => return Ok(v),
                Err(e) if !worth_retrying(&e) => anyhow::bail!("{}", explain(url, &e)),
                Err(e) => {
                    log::warn!(
                        "{}: attempt {} of {}: {e}",
                        redact(url),
                        attempt + 1,
                        self.attempts()
                    );
                    last = explain(url, &e);
                }
            }
        }
        let n = self.attempts();
        anyhow::bail!(
            "{last} (gave up after {n} attempt{})",
            if n == 1 { "" } else { "s" }
        )
    }

    /// A whole small file (at most `SMALL_LIMIT` bytes), retried as a whole.
    pub fn get_small(&self, url: &str) -> Result<Vec<u8>> {
        self.with_retries(url, || {
            let resp = self.request("GET", url, 0)?;
            let mut bytes = Vec::new();
            resp.into_body()
                .into_reader()
                .take(SMALL_LIMIT + 1)
                .read_to_end(&mut bytes)
                .map_err(ureq::Error::Io)?;
            Ok(bytes)
        })
        .and_then(|bytes| {
            anyhow::ensure!(
                bytes.len() as u64 <= SMALL_LIMIT,
                "{}: larger than {SMALL_LIMIT} bytes",
                redact(url)
            );
            Ok(bytes)
        })
    }

    /// The size the server gives for `url` (HEAD), if it gives one.
    pub fn size(&self, url: &str) -> Result<Option<u64>> {
        let resp = self.with_retries(url, || self.request("HEAD", url, 0))?;
        Ok(content_length(&resp))
    }

    /// A stream of the body of `url` that survives dropped connections and stalls: it asks
    /// again from the byte it had reached (`Range: bytes=N-`), up to `attempts` times in a row.
    /// The caller still checks what it gets (the media's SHA-256): resuming only saves the
    /// bytes already read.
    pub fn open(&self, url: &str) -> Result<Box<dyn Read + Send>> {
        let body = self.with_retries(url, || self.request("GET", url, 0))?;
        let length = content_length(&body);
        Ok(Box::new(ResumingReader {
            http: self.clone(),
            url: url.to_string(),
            body: Some(Box::new(body.into_body().into_reader())),
            pos: 0,
            length,
            failures: 0,
            resumed: 0,
        }))
    }

    /// POST a JSON body, with retries. Used by the report webhooks.
    pub(crate) fn post_json(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &serde_json::Value,
        attempts: u32,
    ) -> Result<()> {
        let bytes = serde_json::to_vec(body)?;
        let mut last = String::new();
        for attempt in 0..attempts.max(1) {
            self.pause(attempt);
            // No redirects: a client turns a redirected POST into a GET without the body,
            // which would look delivered while the event is lost.
            let mut req = self
                .agent_for(url)
                .post(url)
                .header("Content-Type", "application/json")
                .config()
                .max_redirects(0)
                .build();
            for (k, v) in headers {
                req = req.header(*k, v.as_str());
            }
            match req.send(&bytes[..]) {
                Ok(r) if r.status().is_redirection() => {
                    last = format!(
                        "{}: answered {} (a redirect): a report is not re-sent elsewhere",
                        redact(url),
                        r.status()
                    )
                }
                Ok(_) => return Ok(()),
                Err(e) => last = explain(url, &e),
            }
        }
        anyhow::bail!("{last}")
    }
}

fn content_length(resp: &ureq::http::Response<ureq::Body>) -> Option<u64> {
    resp.headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// See `ResumingReader::resumed`.
const MAX_RESUMPTIONS_PER_ATTEMPT: u32 = 8;

/// See [`Http::open`].
struct ResumingReader {
    http: Http,
    url: String,
    body: Option<Box<dyn Read + Send>>,
    pos: u64,
    /// The length the first answer gave: an end before it is a dropped connection.
    length: Option<u64>,
    /// Failures since the last byte was read.
    failures: u32,
    /// Resumptions in all, capped so a server that drips a few bytes per connection cannot
    /// keep us asking for ever.
    resumed: u32,
}

impl ResumingReader {
    /// A new body from `pos` on: a 206 must start exactly there; a server that ignores `Range`
    /// (200) is read again from the start and the bytes we had are skipped.
    fn reopen(&mut self) -> io::Result<()> {
        let resp = self
            .http
            .request("GET", &self.url, self.pos)
            .map_err(|e| io::Error::other(explain(&self.url, &e)))?;
        let status = resp.status().as_u16();
        // `Content-Range: bytes START-END/TOTAL`: a 206 that starts anywhere else is not ours.
        let range_start = resp
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes "))
            .and_then(|v| v.split('-').next())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut reader: Box<dyn Read + Send> = Box::new(resp.into_body().into_reader());
        if status == 206 {
            if range_start != Some(self.pos) {
                return Err(io::Error::other(format!(
                    "{}: asked to resume at byte {}, the server answered a range from {:?}",
                    redact(&self.url),
                    self.pos,
                    range_start
                )));
            }
            log::info!("{}: resumed at byte {}", redact(&self.url), self.pos);
        } else {
            log::info!(
                "{}: the server does not resume; reading again from the start, skipping {} bytes",
                redact(&self.url),
                self.pos
            );
            let skipped = io::copy(&mut (&mut reader).take(self.pos), &mut io::sink())?;
            if skipped != self.pos {
                return Err(io::Error::other(format!(
                    "{}: now ends after {skipped} bytes, before byte {} we had reached",
                    redact(&self.url),
                    self.pos
                )));
            }
        }
        self.body = Some(reader);
        Ok(())
    }
}

impl Read for ResumingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let result = match self.body.as_mut() {
                Some(body) => body.read(buf),
                None => match self.reopen() {
                    Ok(()) => continue,
                    Err(e) => Err(e),
                },
            };
            let result = match result {
                Ok(0) if self.length.is_some_and(|len| self.pos < len) && !buf.is_empty() => {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection closed before the end of the file",
                    ))
                }
                other => other,
            };
            match result {
                Ok(n) => {
                    if n > 0 {
                        self.pos += n as u64;
                        self.failures = 0;
                    }
                    return Ok(n);
                }
                Err(e) => {
                    self.body = None;
                    self.failures += 1;
                    self.resumed += 1;
                    if self.failures >= self.http.attempts()
                        || self.resumed >= MAX_RESUMPTIONS_PER_ATTEMPT * self.http.attempts()
                    {
                        return Err(io::Error::new(
                            e.kind(),
                            format!(
                                "{}: {e} after byte {} ({} attempts to resume)",
                                redact(&self.url),
                                self.pos,
                                self.failures
                            ),
                        ));
                    }
                    log::warn!(
                        "{}: {e} at byte {}; resuming (attempt {} of {})",
                        redact(&self.url),
                        self.pos,
                        self.failures + 1,
                        self.http.attempts()
                    );
                    self.http.pause(self.failures);
                }
            }
        }
    }
}

/// The headers Anaconda sends with `inst.ks.sendmac` and `inst.ks.sendsn`, read below the
/// sysroot: `X-RHN-Provisioning-MAC-N: <interface> <mac>` for each network interface with a
/// hardware address (`sys/class/net/*/address`, loopback left out), and
/// `X-System-Serial-Number: <serial>` from `sys/class/dmi/id/product_serial`.
pub fn identity_headers(
    sysroot: &std::path::Path,
    mac: bool,
    serial: bool,
) -> Vec<(String, String)> {
    match crate::sysroot::Sysroot::new(sysroot) {
        Ok(sys) => identity_headers_in(&sys, mac, serial),
        Err(e) => {
            log::warn!("{e:#}; no identity headers sent");
            Vec::new()
        }
    }
}

/// As [`identity_headers`], through an open seam (so `probe --record` sees the reads).
pub(crate) fn identity_headers_in(
    sys: &crate::sysroot::Sysroot,
    mac: bool,
    serial: bool,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if mac {
        for (n, (name, addr)) in crate::sysroot::mac_addresses(sys).into_iter().enumerate() {
            out.push((
                format!("X-RHN-Provisioning-MAC-{n}"),
                format!("{name} {addr}"),
            ));
        }
    }
    if serial {
        let p = std::path::Path::new("sys/class/dmi/id/product_serial");
        match sys.attr(p) {
            Ok(Some(s)) if !s.is_empty() => out.push(("X-System-Serial-Number".into(), s)),
            Ok(_) => log::warn!(
                "{}: empty or absent; no serial number header sent",
                p.display()
            ),
            Err(e) => log::warn!("{e:#}; no serial number header sent"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn a_url_shows_no_password() {
        assert_eq!(
            redact("https://deploy:s3cret@10.0.0.1:8443/ks/esx1.cfg?x=1"),
            "https://deploy:***@10.0.0.1:8443/ks/esx1.cfg?x=1"
        );
        assert_eq!(
            redact("https://ghp_token@host/ks.cfg"),
            "https://***@host/ks.cfg"
        );
        // An @ after the host is not userinfo.
        assert_eq!(
            redact("http://10.0.0.1/ks@2.cfg"),
            "http://10.0.0.1/ks@2.cfg"
        );
        assert_eq!(redact("http://10.0.0.1/ks.cfg"), "http://10.0.0.1/ks.cfg");
        assert_eq!(redact("/etc/ks.cfg"), "/etc/ks.cfg");
    }

    #[test]
    fn one_attempt_is_said_in_the_singular() {
        // Nothing listens on port 1: refused at once, which is worth retrying.
        let http = super::Http::new(super::HttpOptions {
            attempts: 1,
            ..Default::default()
        })
        .unwrap();
        let e = http.get_small("http://127.0.0.1:1/ks.cfg").unwrap_err();
        let text = format!("{e:#}");
        assert!(text.ends_with("(gave up after 1 attempt)"), "{text}");
    }
}
