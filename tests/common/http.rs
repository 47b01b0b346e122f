//! A real HTTP/1.1 server on 127.0.0.1 for the tests, plain or TLS (rustls, with a certificate
//! the test makes with the openssl CLI). It serves files below a root (GET, HEAD, `Range:
//! bytes=N-`), records every request, and can misbehave on purpose: stall before answering,
//! drop the connection part way through a file, ignore `Range`, or answer POSTs with errors.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How the server behaves; change it while the server runs through `Server::rules`.
#[derive(Debug, Default)]
pub struct Rules {
    /// Path -> (seconds to wait before answering, how many GETs to treat so).
    pub stall: HashMap<String, (Duration, u32)>,
    /// Path -> (bytes to send before closing, how many GETs to cut; u32::MAX for all).
    pub drop_after: HashMap<String, (u64, u32)>,
    /// Answer `Range` requests with the whole file (200), as some servers do.
    pub ignore_range: bool,
    /// Status codes for the next POSTs, in order; 200 once empty. A 3xx names `/ok`.
    pub post_statuses: Vec<u16>,
    /// Path -> URL: GETs of the path are answered 302 with that `Location`.
    pub redirect: HashMap<String, String>,
    /// Path -> bytes: GETs of the path send that many bytes of the body, then wait for
    /// `Server::release` before sending the rest (a transfer the test holds at a known point).
    pub hold_after: HashMap<String, u64>,
    /// Opened by `Server::release`.
    pub released: Arc<(Mutex<bool>, std::sync::Condvar)>,
}

pub struct Server {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Request>>>,
    pub rules: Arc<Mutex<Rules>>,
}

impl Server {
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
    pub fn gets(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path == path)
            .collect()
    }
    /// Let every held transfer (`Rules::hold_after`) go on.
    #[allow(dead_code)]
    pub fn release(&self) {
        let gate = self.rules.lock().unwrap().released.clone();
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
    }
    pub fn posts(&self) -> Vec<serde_json::Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }
}

/// Serve `root` over plain HTTP.
pub fn serve(root: &Path) -> Server {
    start(root.to_path_buf(), None)
}

/// Serve `root` over HTTPS with the PEM certificate chain and PKCS#8 key given.
pub fn serve_tls(root: &Path, cert_pem: &Path, key_pem: &Path) -> Server {
    let certs: Vec<rustls::pki_types::CertificateDer<'static>> =
        ureq::tls::parse_pem(&std::fs::read(cert_pem).unwrap())
            .filter_map(|i| match i.unwrap() {
                ureq::tls::PemItem::Certificate(c) => {
                    Some(rustls::pki_types::CertificateDer::from(c.der().to_vec()))
                }
                _ => None,
            })
            .collect();
    let key = ureq::tls::parse_pem(&std::fs::read(key_pem).unwrap())
        .find_map(|i| match i.unwrap() {
            ureq::tls::PemItem::PrivateKey(k) => Some(rustls::pki_types::PrivateKeyDer::from(
                rustls::pki_types::PrivatePkcs8KeyDer::from(k.der().to_vec()),
            )),
            _ => None,
        })
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    start(root.to_path_buf(), Some(Arc::new(config)))
}

fn start(root: PathBuf, tls: Option<Arc<rustls::ServerConfig>>) -> Server {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let rules = Arc::new(Mutex::new(Rules::default()));
    let (req2, rules2) = (requests.clone(), rules.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (root, requests, rules, tls) =
                (root.clone(), req2.clone(), rules2.clone(), tls.clone());
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(20)));
                match tls {
                    Some(config) => {
                        let Ok(session) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        let stream = rustls::StreamOwned::new(session, conn);
                        handle(stream, &root, &requests, &rules);
                    }
                    None => handle(conn, &root, &requests, &rules),
                }
            });
        }
    });
    Server {
        url: format!("{scheme}://{addr}"),
        requests,
        rules,
    }
}

trait Stream: Read + Write {
    fn shutdown(&mut self) {}
}
impl Stream for TcpStream {
    fn shutdown(&mut self) {
        let _ = TcpStream::shutdown(self, std::net::Shutdown::Both);
    }
}
impl Stream for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn shutdown(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}

fn handle<S: Stream>(
    mut stream: S,
    root: &Path,
    requests: &Mutex<Vec<Request>>,
    rules: &Mutex<Rules>,
) {
    let mut reader = BufReader::new(&mut stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("/").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).map_or(true, |n| n == 0) || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    drop(reader);
    let req = Request {
        method: method.clone(),
        path: path.clone(),
        headers,
        body,
    };
    requests.lock().unwrap().push(req.clone());

    if method == "POST" {
        let status = {
            let mut r = rules.lock().unwrap();
            if r.post_statuses.is_empty() {
                200
            } else {
                r.post_statuses.remove(0)
            }
        };
        let location = if (300..400).contains(&status) {
            "Location: /ok\r\n"
        } else {
            ""
        };
        let _ = write!(
            stream,
            "HTTP/1.1 {status} X\r\n{location}Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.shutdown();
        return;
    }
    let redirect = rules.lock().unwrap().redirect.get(&path).cloned();
    if let Some(to) = redirect {
        let _ = write!(
            stream,
            "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.shutdown();
        return;
    }

    let (stall, cut, ignore_range, hold) = {
        let mut r = rules.lock().unwrap();
        let hold = (method == "GET")
            .then(|| r.hold_after.get(&path).map(|n| (*n, r.released.clone())))
            .flatten();
        let stall = if method == "GET" {
            match r.stall.get_mut(&path) {
                Some((d, n)) if *n > 0 => {
                    *n -= 1;
                    Some(*d)
                }
                _ => None,
            }
        } else {
            None
        };
        let cut = if method == "GET" {
            match r.drop_after.get_mut(&path) {
                Some((at, n)) if *n > 0 => {
                    if *n != u32::MAX {
                        *n -= 1;
                    }
                    Some(*at)
                }
                _ => None,
            }
        } else {
            None
        };
        (stall, cut, r.ignore_range, hold)
    };
    if let Some(d) = stall {
        std::thread::sleep(d);
    }
    let file = root.join(path.trim_start_matches('/'));
    let Ok(data) = std::fs::read(&file) else {
        let _ = write!(
            stream,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.shutdown();
        return;
    };
    let from = req
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| !ignore_range && *n <= data.len());
    let (head, part) = match from {
        Some(n) => (
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {n}-{}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                data.len().saturating_sub(1),
                data.len(),
                data.len() - n
            ),
            &data[n..],
        ),
        None => (
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n",
                data.len()
            ),
            &data[..],
        ),
    };
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    if method == "GET" {
        let send = match cut {
            Some(at) => &part[..(at as usize).min(part.len())],
            None => part,
        };
        let send = match hold {
            Some((n, gate)) => {
                let (head, rest) = send.split_at((n as usize).min(send.len()));
                if stream
                    .write_all(head)
                    .and_then(|()| stream.flush())
                    .is_err()
                {
                    return;
                }
                let mut open = gate.0.lock().unwrap();
                while !*open {
                    open = gate.1.wait(open).unwrap();
                }
                rest
            }
            None => send,
        };
        let _ = stream.write_all(send);
    }
    let _ = stream.flush();
    stream.shutdown();
}

/// A CA, a server certificate for 127.0.0.1 signed by it, and an unrelated second CA, made with
/// the real openssl CLI. Returns (ca.pem, server.pem, server.key, other-ca.pem).
pub fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let ossl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is needed for the HTTPS tests (apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for ca in ["ca", "other-ca"] {
        ossl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=ksinstall test {ca}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
    }
    ossl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    ossl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
        dir.join("other-ca.pem"),
    )
}
