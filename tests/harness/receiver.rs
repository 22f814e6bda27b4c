//! A local HTTP receiver for notification tests: records every request and answers
//! from a script (a status, or 0 = hang without answering).

use super::now_ms;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A local HTTP receiver: records each request body; answers from `script` in order
/// (an HTTP status, or 0 = hang without answering), repeating the last entry.
pub struct Receiver {
    pub url: String,
    bodies: mpsc::Receiver<Request>,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Request {
    /// When it arrived (Unix ms).
    pub at_ms: u64,
    pub path: String,
    /// Header names in lower case, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }
}

pub fn receiver(script: Vec<u16>) -> Receiver {
    receiver_with(script, "")
}

/// A `receiver` whose every answer carries the header line `header` too (e.g.
/// `Retry-After: 3`; empty: none).
pub fn receiver_with(script: Vec<u16>, header: &str) -> Receiver {
    let header = if header.is_empty() {
        String::new()
    } else {
        format!("{header}\r\n")
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, bodies) = mpsc::channel();
    let count = Arc::new(Mutex::new(0usize));
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let n = {
                let mut c = count.lock().unwrap();
                *c += 1;
                *c - 1
            };
            let status = script.get(n).or(script.last()).copied().unwrap_or(200);
            let tx = tx.clone();
            let header = header.clone();
            thread::spawn(move || {
                let mut stream = stream;
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut line, mut len, mut path) = (String::new(), 0usize, String::new());
                let mut headers = Vec::new();
                while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if path.is_empty() {
                        path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    } else if let Some((k, v)) = line.split_once(':') {
                        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let _ = tx.send(Request {
                    at_ms: now_ms(),
                    path,
                    headers,
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                });
                if status == 0 {
                    thread::sleep(Duration::from_secs(120));
                    return;
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\n{header}Content-Length: 2\r\nConnection: close\r\n\r\nok"
                );
            });
        }
    });
    Receiver { url, bodies }
}

impl Receiver {
    pub fn next(&self, within: Duration) -> (u64, String, Value) {
        let r = self.next_request(within);
        (r.at_ms, r.path, r.body)
    }

    /// The next request, with its headers.
    pub fn next_request(&self, within: Duration) -> Request {
        self.bodies
            .recv_timeout(within)
            .expect("a notification arrives")
    }

    /// Every request that arrives within `within` (none is an answer too).
    pub fn all_within(&self, within: Duration) -> Vec<Request> {
        let deadline = std::time::Instant::now() + within;
        let mut out = Vec::new();
        while let Ok(r) = self
            .bodies
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            out.push(r);
        }
        out
    }
}

/// A receiver that answers every request with `307 Temporary Redirect` to `to` (a
/// receiver on another host, say): a stand-in for a channel URL that moved, or for
/// one an attacker controls the answers of.
pub fn redirector(to: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let to = to.to_string();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let to = to.clone();
            thread::spawn(move || {
                let mut stream = stream;
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut line, mut len) = (String::new(), 0usize);
                while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let _ = reader.read_exact(&mut vec![0; len]);
                let _ = write!(
                    stream,
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            });
        }
    });
    url
}
