//! A small HTTP/1.1 server the registry tests put in front of (or beside) docker-registry: it
//! records every request and, by a rule the test gives, forwards it, forwards it but cuts the
//! answer short, stalls it, redirects it, or answers it itself (a token service). One request
//! per connection (`Connection: close`), which every client handles.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// The port the request came in on.
    pub port: u16,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of query parameter `name` (first one), percent-decoded.
    pub fn query(&self, name: &str) -> Vec<String> {
        let Some((_, q)) = self.target.split_once('?') else {
            return Vec::new();
        };
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| percent_decode(v))
            .collect()
    }
}

/// What to do with a request.
pub enum Answer {
    /// Pass it to the upstream port and the answer back.
    Forward(u16),
    /// Forward, but close the connection after this many bytes of the answer's body.
    Cut(u16, usize),
    /// Forward, send this many bytes of the body, then hold the connection open, silent.
    Stall(u16, usize),
    /// Answer it here.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
}

pub type Rule = Arc<dyn Fn(&Seen) -> Answer + Send + Sync>;

pub struct Front {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl Front {
    pub fn start(rule: Rule) -> Front {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (rule, seen, stop) = (rule.clone(), seen2.clone(), stop2.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, port, &rule, &seen, &stop);
                });
            }
        });
        Front { port, seen, stop }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(
    conn: TcpStream,
    port: u16,
    rule: &Rule,
    seen: &Mutex<Vec<Seen>>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Ok(());
    };
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let request = Seen {
        method: method.to_string(),
        target: target.to_string(),
        port,
        headers,
    };
    let length: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    seen.lock().unwrap().push(request.clone());
    let mut conn = conn;
    match rule(&request) {
        Answer::Respond {
            status,
            headers,
            body,
        } => {
            let mut head = format!("HTTP/1.1 {status} Status\r\n");
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str(&format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ));
            conn.write_all(head.as_bytes())?;
            if request.method != "HEAD" {
                conn.write_all(&body)?;
            }
        }
        Answer::Forward(up) => forward(&request, &body, &mut conn, up, None, false, stop)?,
        Answer::Cut(up, n) => forward(&request, &body, &mut conn, up, Some(n), false, stop)?,
        Answer::Stall(up, n) => forward(&request, &body, &mut conn, up, Some(n), true, stop)?,
    }
    Ok(())
}

fn forward(
    request: &Seen,
    body: &[u8],
    conn: &mut TcpStream,
    upstream: u16,
    limit: Option<usize>,
    stall: bool,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.target);
    for (k, v) in &request.headers {
        if !k.eq_ignore_ascii_case("connection") {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    up.write_all(head.as_bytes())?;
    up.write_all(body)?;
    // The answer's head, whole, then its body (to the end, or to the limit).
    let mut reader = BufReader::new(up);
    let mut answer_head = Vec::new();
    while !answer_head.ends_with(b"\r\n\r\n") {
        let n = reader.read_until(b'\n', &mut answer_head)?;
        if n == 0 {
            break;
        }
    }
    conn.write_all(&answer_head)?;
    match limit {
        None => {
            std::io::copy(&mut reader, conn)?;
        }
        Some(n) => {
            std::io::copy(&mut (&mut reader).take(n as u64), conn)?;
            conn.flush()?;
            if stall {
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
    Ok(())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
