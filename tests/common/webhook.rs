//! A webhook receiver on 127.0.0.1 for sink tests: a small HTTP/1.1 server
//! that answers 503 while `down` and otherwise upserts the rows of each
//! emission by (table, keys, window_start), as a real receiver must. The
//! 503 phase stands in for a receiver that is failing for a while.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
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
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || serve(conn, &s));
            }
        });
        Receiver { url, state }
    }

    /// Rows received, as (table, window_start, keys) → row object.
    pub fn rows(&self) -> BTreeMap<(String, String, String), serde_json::Value> {
        self.state.rows.lock().unwrap().clone()
    }
}

fn serve(conn: std::net::TcpStream, s: &State) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if s.down.load(Ordering::SeqCst) {
            s.refused.fetch_add(1, Ordering::SeqCst);
            let msg = "receiver down";
            let _ = write!(
                out,
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: {}\r\n\r\n{msg}",
                msg.len()
            );
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON body");
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
        let _ = write!(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    }
}
