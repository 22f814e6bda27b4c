//! A scripted stand-in for Prometheus, used only to inject faults a real one cannot be
//! made to produce on demand (5xx, hangs, garbage, resets).
//!
//! `watch` first asks for `time()` (to compare clocks); the fake answers that from its
//! own clock, outside the script, so a script is the polls' replies alone.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

#[derive(Clone, Debug)]
pub enum Reply {
    /// HTTP status and body.
    Http(u16, String),
    /// Accept and never answer.
    Hang,
    /// Close the connection without answering.
    Reset,
}

impl Reply {
    /// A successful instant query with one label-less sample.
    pub fn value(v: f64) -> Reply {
        Reply::Http(
            200,
            format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1,"{v}"]}}]}}}}"#
            ),
        )
    }
}

pub struct Fake {
    pub url: String,
    /// Requests received (but `time()`'s).
    pub requests: Arc<AtomicUsize>,
    /// `time()` requests received (the agent's clock checks).
    pub clock_checks: Arc<AtomicUsize>,
}

impl Fake {
    /// Answers requests with `script` in order, repeating the last reply forever;
    /// `time()` is answered with this machine's clock.
    pub fn start(script: Vec<Reply>) -> Fake {
        Fake::start_with_clock(script, None)
    }

    /// Like `start`, with `time()` answered by `clock` (None: this machine's clock).
    pub fn start_with_clock(script: Vec<Reply>, clock: Option<Reply>) -> Fake {
        Fake::serve(script, move || clock.clone().unwrap_or_else(now))
    }

    /// Like `start`, with `time()` answered by this machine's clock plus the offset
    /// (ms) the returned cell holds at that moment: a Prometheus whose clock the test
    /// moves while a watch runs.
    pub fn start_with_shifting_clock(
        script: Vec<Reply>,
    ) -> (Fake, Arc<std::sync::atomic::AtomicI64>) {
        let offset = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let shift = offset.clone();
        let fake = Fake::serve(script, move || at(shift.load(Ordering::SeqCst)));
        (fake, offset)
    }

    /// Answers `time()` with `time`, every other request with `script` in order.
    fn serve(script: Vec<Reply>, time: impl Fn() -> Reply + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        let clock_checks = Arc::new(AtomicUsize::new(0));
        let checks = clock_checks.clone();
        let script = Arc::new(Mutex::new(script));
        let time = Arc::new(time);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (r, s, time) = (requests.clone(), script.clone(), time.clone());
                let checks = checks.clone();
                thread::spawn(move || {
                    answer(stream, |body| {
                        if is_time_query(body) {
                            checks.fetch_add(1, Ordering::SeqCst);
                            return time();
                        }
                        let n = r.fetch_add(1, Ordering::SeqCst);
                        let s = s.lock().unwrap();
                        s.get(n).or(s.last()).cloned().unwrap_or(Reply::Reset)
                    })
                });
            }
        });
        Fake {
            url,
            requests: counted,
            clock_checks,
        }
    }
}

/// A form body asking for `time()`.
fn is_time_query(body: &[u8]) -> bool {
    body.split(|&b| b == b'&')
        .any(|kv| kv.eq_ignore_ascii_case(b"query=time%28%29") || kv == b"query=time()")
}

/// `time()` as Prometheus answers it, from this machine's clock.
fn now() -> Reply {
    at(0)
}

/// `time()` from this machine's clock plus `offset_ms`.
fn at(offset_ms: i64) -> Reply {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + offset_ms as f64 / 1000.0;
    Reply::Http(
        200,
        format!(
            r#"{{"status":"success","data":{{"resultType":"scalar","result":[{t:.3},"{t:.3}"]}}}}"#
        ),
    )
}

fn answer(mut stream: TcpStream, reply: impl FnOnce(&[u8]) -> Reply) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut len = 0usize;
    let mut line = String::new();
    while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
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
    match reply(&body) {
        Reply::Http(status, body) => {
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        Reply::Hang => thread::sleep(Duration::from_secs(600)),
        Reply::Reset => drop(stream),
    }
}
