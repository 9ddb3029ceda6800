//! Raw HTTP/1.1 over TCP, for what reqwest hides: held connections, slow
//! clients, oversized heads, answers on connections that stay open.

use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

/// One answer read from a connection that stays open.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The head's header lines, lower-cased.
    pub headers: String,
    pub body: String,
}

impl Answer {
    /// Whether the answer says `Connection: close`.
    pub fn closes(&self) -> bool {
        self.headers
            .lines()
            .any(|l| l.starts_with("connection:") && l.contains("close"))
    }
}

/// Reads one HTTP/1.1 answer (body by Content-Length); None if the
/// connection closes (or resets) first.
pub async fn read_answer(stream: &mut TcpStream) -> Option<Answer> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
            let status = head.split_whitespace().nth(1)?.parse().ok()?;
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:")?.trim().parse().ok())
                .unwrap_or(0);
            while buffer.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buffer.extend_from_slice(&chunk[..n]);
            }
            let headers = head.split_once("\r\n").map(|h| h.1).unwrap_or_default();
            return Some(Answer {
                status,
                headers: headers.to_owned(),
                body: String::from_utf8_lossy(&buffer[end + 4..end + 4 + length]).into_owned(),
            });
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// Whether the server closes `stream` within `within` (reading and
/// discarding anything it sends).
pub async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut chunk = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}
