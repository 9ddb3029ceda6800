//! Connection slots and kept-alive connections: the per-address connection
//! cap, the keep-alive idle timeout, and connections that stay usable after
//! a request answered before its body was read.
//!
//! Connection handling lives in the HTTP layer, not in storage: SQLite only.
//! Clients are raw TCP sockets, bound to 127.0.0.2 where a second client
//! address is needed (Linux routes all of 127.0.0.0/8 to loopback).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

use crate::hardening::server_with;
use crate::harness::{Answer, read_answer};

/// A connection to the server from the local address `from`.
async fn connect_from(from: &str, server: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .bind(format!("{from}:0").parse::<SocketAddr>().unwrap())
        .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    socket
        .connect(server.parse::<SocketAddr>().unwrap())
        .await
        .unwrap_or_else(|e| panic!("connect from {from} to {server}: {e}"))
}

/// Sends `GET /healthz` and returns its answer (None: the connection closed).
async fn healthz(stream: &mut TcpStream) -> Option<Answer> {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: totpd\r\n\r\n")
        .await
        .ok()?;
    tokio::time::timeout(Duration::from_secs(20), read_answer(stream))
        .await
        .expect("an answer or a close within 20 s")
}

/// How long until the server closes `stream` (reading and discarding
/// anything it sends), or None if it is still open after `within`.
async fn closed_after(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut chunk = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

// ---------------------------------------------------------------------------
// The per-address cap

#[tokio::test]
async fn one_address_holding_more_than_its_cap_of_idle_connections_does_not_keep_another_address_waiting()
 {
    // Idle connections stay open for a minute: only the cap can help.
    let server = server_with(&[
        ("TOTPD_MAX_CONNECTIONS", "8"),
        ("TOTPD_MAX_CONNECTIONS_PER_ADDRESS", "3"),
        ("TOTPD_KEEP_ALIVE_TIMEOUT", "60"),
        ("TOTPD_HEADER_READ_TIMEOUT", "60"),
    ])
    .await;
    let addr = server.addr.clone();

    // 127.0.0.1 holds its three connections, served and kept alive.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect_from("127.0.0.1", &addr).await;
        let answer = healthz(&mut stream)
            .await
            .expect("a connection within the cap is served");
        assert_eq!(answer.status, 200, "{answer:?}");
        held.push(stream);
    }
    // Every further one from that address is closed unanswered, so it does
    // not take a slot of the global cap of 8.
    for i in 0..9 {
        let mut extra = connect_from("127.0.0.1", &addr).await;
        let _ = extra
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: totpd\r\n\r\n")
            .await;
        let closed = closed_after(&mut extra, Duration::from_secs(10)).await;
        assert!(
            closed.is_some(),
            "connection {} from 127.0.0.1, beyond its cap of 3, is still open",
            i + 4
        );
        held.push(extra);
    }

    // Another address is served at once.
    let mut other = connect_from("127.0.0.2", &addr).await;
    let answer = healthz(&mut other)
        .await
        .expect("127.0.0.2 gets an answer while 127.0.0.1 holds its connections");
    assert_eq!(answer.status, 200, "{answer:?}");

    // The held connections are still served, and a closed one gives its
    // slot back to its address.
    let first = held.first_mut().unwrap();
    assert_eq!(healthz(first).await.map(|a| a.status), Some(200));
    drop(held.remove(0));
    let mut again = None;
    for _ in 0..50 {
        let mut stream = connect_from("127.0.0.1", &addr).await;
        if let Some(answer) = healthz(&mut stream).await {
            again = Some(answer.status);
            break;
        }
        // The server notices the close asynchronously.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        again,
        Some(200),
        "a freed slot was not given back to 127.0.0.1"
    );
}

// ---------------------------------------------------------------------------
// The keep-alive idle timeout

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout() {
    // A long header-read timeout: only the keep-alive timeout can close it.
    let server = server_with(&[
        ("TOTPD_KEEP_ALIVE_TIMEOUT", "2"),
        ("TOTPD_HEADER_READ_TIMEOUT", "60"),
    ])
    .await;
    let addr = server.addr.clone();

    let mut idle = TcpStream::connect(&addr).await.unwrap();
    let answer = healthz(&mut idle).await.expect("served");
    assert_eq!(answer.status, 200);
    assert!(!answer.closes(), "keep-alive is on: {answer:?}");
    let closed = closed_after(&mut idle, Duration::from_secs(15))
        .await
        .expect("an idle kept-alive connection is still open 15 s after its answer (timeout 2 s)");
    assert!(
        closed >= Duration::from_millis(1500),
        "closed {closed:?} after its answer, before the 2 s keep-alive timeout"
    );

    // A connection in use is not idle: one request a second for 5 s.
    let mut busy = TcpStream::connect(&addr).await.unwrap();
    for _ in 0..5 {
        let answer = healthz(&mut busy)
            .await
            .expect("a connection used every second stays open");
        assert_eq!(answer.status, 200);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn with_keep_alive_off_every_answer_closes_its_connection() {
    let server = server_with(&[("TOTPD_KEEP_ALIVE_TIMEOUT", "0")]).await;
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    let answer = healthz(&mut stream).await.expect("served");
    assert_eq!(answer.status, 200);
    assert!(answer.closes(), "no Connection: close: {answer:?}");
    assert!(
        closed_after(&mut stream, Duration::from_secs(5))
            .await
            .is_some(),
        "the connection stays open after its answer"
    );
}

// ---------------------------------------------------------------------------
// Early answers on kept-alive connections

/// A POST whose head goes out first and whose body follows a moment later,
/// so the server answers before the body has arrived.
async fn post_in_two_parts(stream: &mut TcpStream, head: &str, body: &[u8]) -> Option<Answer> {
    stream.write_all(head.as_bytes()).await.ok()?;
    stream.flush().await.ok()?;
    tokio::time::sleep(Duration::from_millis(3)).await;
    stream.write_all(body).await.ok()?;
    tokio::time::timeout(Duration::from_secs(20), read_answer(stream))
        .await
        .expect("an answer within 20 s")
}

#[tokio::test]
async fn a_request_after_an_early_answer_on_the_same_kept_alive_connection_is_always_served() {
    let server = server_with(&[("TOTPD_KEEP_ALIVE_TIMEOUT", "30")]).await;
    let addr = server.addr.clone();
    let body = vec![b'x'; 2600];
    let unknown_route = format!(
        "POST /no/such/route HTTP/1.1\r\nHost: totpd\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // No credentials: 401 before the body is read (and no lockout).
    let unauthenticated = format!(
        "POST /api/v2/totp/secrets HTTP/1.1\r\nHost: totpd\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut pairs = 0;
    for (head, status) in [(&unknown_route, 404), (&unauthenticated, 401)] {
        for _connection in 0..10 {
            let mut stream = TcpStream::connect(&addr).await.unwrap();
            for _ in 0..15 {
                let answer = post_in_two_parts(&mut stream, head, &body)
                    .await
                    .expect("the early answer arrives");
                assert_eq!(answer.status, status, "{answer:?}");
                assert!(answer.body.contains("\"ERROR\""), "{answer:?}");
                if answer.closes() {
                    // Announced: the client knows to open a new connection.
                    stream = TcpStream::connect(&addr).await.unwrap();
                }
                let follow_up = healthz(&mut stream).await.unwrap_or_else(|| {
                    panic!(
                        "after pair {pairs}: the server closed a connection it had kept alive \
                         (the early {status} did not say Connection: close)"
                    )
                });
                assert_eq!(follow_up.status, 200, "{follow_up:?}");
                pairs += 1;
            }
        }
    }
    assert_eq!(pairs, 300);
}

#[tokio::test]
async fn an_early_answer_whose_body_is_too_large_to_drain_says_connection_close() {
    let server = server_with(&[]).await;
    let addr = server.addr.clone();
    // 200 KB to an unknown route: beyond what the server reads and discards.
    let body = vec![b'x'; 200_000];
    let head = format!(
        "POST /no/such/route HTTP/1.1\r\nHost: totpd\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let stream = TcpStream::connect(&addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let write = tokio::spawn(async move {
        let _ = writer.write_all(head.as_bytes()).await;
        let _ = writer.write_all(&body).await;
        writer
    });
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    write.abort();
    let text = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(text.starts_with("http/1.1 404"), "{text:?}");
    assert!(text.contains("\r\nconnection: close\r\n"), "{text:?}");

    // A body held back for `Expect: 100-continue` is not invited either.
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(
            b"POST /no/such/route HTTP/1.1\r\nHost: totpd\r\nExpect: 100-continue\r\nContent-Length: 2600\r\n\r\n",
        )
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(20), read_answer(&mut stream))
        .await
        .expect("an answer within 20 s")
        .expect("an answer");
    assert_eq!(answer.status, 404, "{answer:?}");
    assert!(answer.closes(), "{answer:?}");
}
