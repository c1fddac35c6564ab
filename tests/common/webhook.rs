//! A webhook receiver on 127.0.0.1 for sink tests: a small HTTP/1.1 server
//! that answers 503 while `down` and otherwise upserts the rows of each
//! emission by (table, keys, window_start), as a real receiver must. The
//! 503 phase stands in for a receiver that is failing for a while.
//! [`serve`] is the HTTP part alone, for receivers that answer otherwise.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct State {
    /// (table, window_start, key values joined by '|') → row.
    pub rows: Mutex<BTreeMap<(String, String, String), serde_json::Value>>,
    pub down: AtomicBool,
    pub refused: AtomicUsize,
    pub received: AtomicUsize,
}

pub struct Receiver {
    pub url: String,
    pub state: Arc<State>,
}

impl Receiver {
    pub fn start(down: bool) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/emit", listener.local_addr().unwrap());
        let state = Arc::new(State::default());
        state.down.store(down, Ordering::SeqCst);
        let s = state.clone();
        serve(listener, move |r| upsert(r, &s));
        Receiver { url, state }
    }

    /// Rows received, as (table, window_start, keys) → row object.
    pub fn rows(&self) -> BTreeMap<(String, String, String), serde_json::Value> {
        self.state.rows.lock().unwrap().clone()
    }
}

fn upsert(r: &Request, s: &State) -> (u16, String) {
    if s.down.load(Ordering::SeqCst) {
        s.refused.fetch_add(1, Ordering::SeqCst);
        return (503, "receiver down".into());
    }
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON body");
    let table = v["table"].as_str().unwrap().to_string();
    let keys: Vec<String> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let mut rows = s.rows.lock().unwrap();
    for row in v["rows"].as_array().unwrap() {
        let start = row["window_start"].as_str().unwrap().to_string();
        let key = keys
            .iter()
            .map(|k| row.get(k).map_or(String::new(), |v| v.to_string()))
            .collect::<Vec<_>>()
            .join("|");
        rows.insert((table.clone(), start, key), row.clone());
    }
    drop(rows);
    s.received.fetch_add(1, Ordering::SeqCst);
    (200, String::new())
}

/// One HTTP/1.1 request as the receivers here read it.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    /// Lower-case names.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// Serves `listener` on threads: every request (keep-alive, bodies by
/// Content-Length) is answered with `answer`'s status and body.
pub fn serve<F>(listener: TcpListener, answer: F)
where
    F: Fn(&Request) -> (u16, String) + Send + Sync + 'static,
{
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut out = conn;
                while let Some(r) = read_request(&mut reader) {
                    let (status, body) = answer(&r);
                    let reason = if status == 200 { "OK" } else { "Error" };
                    let _ = write!(
                        out,
                        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                }
            });
        }
    });
}

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let path = line.split(' ').nth(1).unwrap_or("").to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        path,
        headers,
        body: String::from_utf8(body).ok()?,
    })
}
