//! A real local HTTP receiver for webhook tests: accepts POSTs on a loopback port, answers
//! `200` (or a chosen status), and hands each request (headers, body, arrival time) to the test.
//! It can be stopped (the port then refuses connections) and started again on the same port.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    pub body: String,
    /// Wall-clock arrival time (ms since the epoch), comparable with ledger timestamps.
    pub at_ms: i64,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// The receiver. Requests arrive on [`Receiver::next`] in arrival order.
pub struct Receiver {
    pub addr: SocketAddr,
    tx: mpsc::UnboundedSender<Received>,
    rx: mpsc::UnboundedReceiver<Received>,
    task: Option<JoinHandle<()>>,
}

fn listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = TcpSocket::new_v4()?;
    // Rebinding the same port right after a stop must not fail on TIME_WAIT connections.
    s.set_reuseaddr(true)?;
    s.bind(addr)?;
    s.listen(128)
}

impl Receiver {
    /// A receiver on a free loopback port, answering 200.
    pub async fn start() -> Self {
        let l = listener("127.0.0.1:0".parse().expect("addr")).expect("bind the receiver");
        let addr = l.local_addr().expect("addr");
        let (tx, rx) = mpsc::unbounded_channel();
        let mut r = Self { addr, tx, rx, task: None };
        r.serve(l);
        r
    }

    /// A free port with nothing listening yet (a receiver that is down): call [`Receiver::resume`]
    /// to start listening there.
    pub async fn down() -> Self {
        let mut r = Self::start().await;
        r.stop();
        r
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops listening: new connections are refused.
    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    /// Listens again on the same port.
    pub fn resume(&mut self) {
        let l = listener(self.addr).expect("rebind the receiver's port");
        self.serve(l);
    }

    fn serve(&mut self, l: TcpListener) {
        let tx = self.tx.clone();
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = l.accept().await {
                let tx = tx.clone();
                conns.spawn(async move {
                    let _ = handle(stream, tx).await;
                });
            }
        }));
    }

    /// The next request, or a panic after `limit`.
    pub async fn next(&mut self, limit: Duration) -> Received {
        match tokio::time::timeout(limit, self.rx.recv()).await {
            Ok(Some(r)) => r,
            _ => panic!("no request reached the receiver on {} within {limit:?}", self.addr),
        }
    }

    /// The next request whose `x-sett-event` header is `event`; other requests are collected
    /// into `others`.
    pub async fn next_event(&mut self, event: &str, limit: Duration, others: &mut Vec<Received>) -> Received {
        let until = tokio::time::Instant::now() + limit;
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            let r = self.next(left).await;
            if r.header("x-sett-event") == Some(event) {
                return r;
            }
            others.push(r);
        }
    }

    /// Every request received so far and not yet taken.
    pub fn drain(&mut self) -> Vec<Received> {
        let mut out = Vec::new();
        while let Ok(r) = self.rx.try_recv() {
            out.push(r);
        }
        out
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves HTTP/1.1 requests on one connection (keep-alive), answering 200 with an empty body.
async fn handle(stream: tokio::net::TcpStream, tx: mpsc::UnboundedSender<Received>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if read.read_line(&mut h).await? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
        let mut body = vec![0u8; len];
        read.read_exact(&mut body).await?;
        let at_ms = sett_store::now_ms();
        write.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await?;
        write.flush().await?;
        let _ = tx.send(Received { path, headers, body: String::from_utf8_lossy(&body).into_owned(), at_ms });
    }
}
