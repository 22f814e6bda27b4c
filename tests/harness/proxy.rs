//! A scriptable HTTP proxy in front of a real Prometheus, for the fault suite.
//!
//! The scripted fake (`fake.rs`) can only answer with canned bodies; this proxy sits
//! between `rollwatch` and a real Prometheus and can be switched, while a watch runs,
//! from passing requests through to injecting one fault, and back. That is how the
//! tests show both halves of every fault: nothing wrong happens while it lasts, and
//! judging resumes on real data once it ends.
//!
//! Every connection serves one request and is then closed (`Connection: close`), so a
//! mode change takes effect at the next poll.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What the proxy does with the next requests.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// Forward to Prometheus and relay its answer.
    Pass,
    /// Hold the request this long, then forward it (beyond the query timeout, the
    /// client has given up by then).
    Delay(Duration),
    /// Answer with this status and a plain-text body, as Prometheus does with
    /// `503 Service Unavailable` before it is ready.
    Text(u16, &'static str),
    /// Forward, then relay only the first half of the JSON body (with a matching
    /// Content-Length, so the HTTP exchange itself is complete).
    Truncated,
    /// Forward, then relay the body with its JSON broken in the middle.
    Malformed,
    /// Read the request, then reset the connection (RST, no answer).
    Reset,
    /// Answer `{"status":"error",...}` with HTTP 422, as Prometheus does when a query
    /// fails to execute.
    StatusError,
    /// Forward, then add `warnings` to the (successful) answer, as Thanos does with a
    /// partial response.
    Warnings,
}

/// The message of the `StatusError` mode, to look for in logs.
pub const STATUS_ERROR_MESSAGE: &str = "injected execution failure";
/// The warning of the `Warnings` mode, to look for in logs.
pub const WARNING: &str = "partial response: injected store unavailable";

pub struct Proxy {
    /// The URL to give `rollwatch --prometheus`.
    pub url: String,
    mode: Arc<Mutex<Mode>>,
}

impl Proxy {
    /// Starts a proxy on a free loopback port in front of `upstream` (`host:port`).
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mode = Arc::new(Mutex::new(Mode::Pass));
        let (m, upstream) = (mode.clone(), upstream.to_string());
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (m, upstream) = (m.clone(), upstream.clone());
                thread::spawn(move || {
                    let _ = serve(stream, &upstream, &m);
                });
            }
        });
        Proxy { url, mode }
    }

    /// Switches mode; applies to every request read from now on.
    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
}

/// One request as read from the client: its head lines and body.
struct Request {
    head: Vec<String>,
    body: Vec<u8>,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Request> {
    let mut head = Vec::new();
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        head.push(line.trim_end().to_string());
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok(Request { head, body })
}

/// Sends the request to Prometheus as HTTP/1.0 (so the answer is neither chunked nor
/// kept alive) and returns the status and body of its answer.
fn forward(upstream: &str, req: &Request) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(upstream)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = Vec::new();
    let request_line = req.head[0].replace("HTTP/1.1", "HTTP/1.0");
    out.extend_from_slice(request_line.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in &req.head[1..] {
        let lower = h.to_ascii_lowercase();
        if lower.starts_with("connection:") || lower.starts_with("accept-encoding:") {
            continue;
        }
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(&req.body);
    s.write_all(&out)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let head = String::from_utf8_lossy(&resp[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    Ok((status, resp[split + 4..].to_vec()))
}

fn reply(stream: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) {
    let reason = match status {
        200 => "OK",
        422 => "Unprocessable Entity",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

const JSON: &str = "application/json";

fn serve(mut stream: TcpStream, upstream: &str, mode: &Mutex<Mode>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let req = read_request(&mut reader)?;
    let mode = mode.lock().unwrap().clone();
    // Prometheus being down is relayed as a 502, the way a real reverse proxy would.
    let forwarded = |req: &Request| {
        forward(upstream, req).unwrap_or_else(|e| (502, format!("upstream: {e}").into_bytes()))
    };
    match mode {
        Mode::Pass => {
            let (status, body) = forwarded(&req);
            reply(&mut stream, status, JSON, &body);
        }
        Mode::Delay(d) => {
            thread::sleep(d);
            let (status, body) = forwarded(&req);
            reply(&mut stream, status, JSON, &body);
        }
        Mode::Text(status, text) => {
            reply(
                &mut stream,
                status,
                "text/plain; charset=utf-8",
                text.as_bytes(),
            );
        }
        Mode::Truncated => {
            let (status, body) = forwarded(&req);
            reply(&mut stream, status, JSON, &body[..body.len() / 2]);
        }
        Mode::Malformed => {
            let (status, mut body) = forwarded(&req);
            let mid = body.len() / 2;
            body.splice(mid..mid, b"}]\"{,".iter().copied());
            reply(&mut stream, status, JSON, &body);
        }
        Mode::Reset => {
            socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
            drop(reader);
            drop(stream);
        }
        Mode::StatusError => {
            let body = format!(
                r#"{{"status":"error","errorType":"execution","error":"{STATUS_ERROR_MESSAGE}"}}"#
            );
            reply(&mut stream, 422, JSON, body.as_bytes());
        }
        Mode::Warnings => {
            let (status, body) = forwarded(&req);
            let body = match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(mut v) if status == 200 => {
                    v["warnings"] = serde_json::json!([WARNING]);
                    serde_json::to_vec(&v).unwrap()
                }
                _ => body,
            };
            reply(&mut stream, status, JSON, &body);
        }
    }
    Ok(())
}
