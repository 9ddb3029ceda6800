//! The server's log writer, off the request path.
//!
//! At the default `info` level `serve` logs one line per request. Writing
//! it to stderr from the request's task would cost every request a system
//! call, and a slow reader of stderr (a full pipe) would stall requests.
//! Instead a line is appended to an in-memory buffer under a short lock,
//! and one thread writes the buffer out: every [`FLUSH_EVERY`], or at once
//! when it holds [`FLUSH_AT`] bytes. So a line reaches stderr at most
//! [`FLUSH_EVERY`] after it was logged.
//!
//! The buffer is bounded: when stderr cannot keep up and it holds
//! [`MAX_BUFFERED`] bytes, further lines are dropped (not waited for) and
//! counted, and the next write says how many were lost. Dropping the
//! [`Flusher`] (when `serve` returns, on shutdown or on a start-up error)
//! writes out what is buffered before the process exits. A `kill -9` loses
//! at most the last [`FLUSH_EVERY`] of log lines, never data: the log is
//! not the audit trail, which is in the database.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Longest a logged line waits in the buffer.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Buffered bytes that wake the thread before its timer.
const FLUSH_AT: usize = 64 * 1024;

/// Most bytes buffered; lines past it are dropped and counted.
pub(crate) const MAX_BUFFERED: usize = 4 * 1024 * 1024;

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    /// Lines dropped since the last write, the buffer being full.
    dropped: u64,
    /// The flusher was dropped: write out what is left and stop.
    closing: bool,
}

struct Shared {
    buffer: Mutex<Buffer>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Buffer> {
        // A panic while appending bytes leaves a buffer that is still valid.
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The [`MakeWriter`] for the tracing subscriber: every event's line goes
/// to the shared buffer.
#[derive(Clone)]
pub(crate) struct BufferedStderr {
    shared: Arc<Shared>,
}

/// Owns the thread that writes the buffer to stderr; dropping it writes out
/// everything buffered and stops the thread.
pub(crate) struct Flusher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A writer to stderr through the buffer, and the thread that drains it.
/// Falls back to writing stderr directly when the thread cannot start.
pub(crate) fn buffered_stderr() -> (BufferedStderr, Option<Flusher>) {
    start(io::stderr)
}

fn start<W, F>(open: F) -> (BufferedStderr, Option<Flusher>)
where
    W: Write,
    F: Fn() -> W + Send + 'static,
{
    let shared = Arc::new(Shared {
        buffer: Mutex::new(Buffer::default()),
        wake: Condvar::new(),
    });
    let writer = BufferedStderr {
        shared: Arc::clone(&shared),
    };
    let drain = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("totpd-log".to_owned())
        .spawn(move || drain_loop(&drain, open));
    match thread {
        Ok(thread) => (
            writer,
            Some(Flusher {
                shared,
                thread: Some(thread),
            }),
        ),
        Err(error) => {
            // Without the thread nothing would ever be written: say so and
            // let lines through unbuffered.
            eprintln!("totpd: cannot start the log writer thread ({error}); logging unbuffered");
            shared.lock().closing = true;
            (writer, None)
        }
    }
}

fn drain_loop<W: Write>(shared: &Shared, open: impl Fn() -> W) {
    let mut out = Vec::new();
    loop {
        let (dropped, closing) = {
            let buffer = shared.lock();
            let (mut buffer, _) = shared
                .wake
                .wait_timeout_while(buffer, FLUSH_EVERY, |b| {
                    !b.closing && b.bytes.len() < FLUSH_AT
                })
                .unwrap_or_else(PoisonError::into_inner);
            // Swap so the lock is held only for the swap, not the write.
            std::mem::swap(&mut out, &mut buffer.bytes);
            (std::mem::take(&mut buffer.dropped), buffer.closing)
        };
        if !out.is_empty() || dropped > 0 {
            let mut sink = open();
            // Nowhere to report a failed write of the log itself.
            let _ = sink.write_all(&out);
            if dropped > 0 {
                let _ = writeln!(
                    sink,
                    "totpd: {dropped} log lines dropped: stderr did not keep up"
                );
            }
            let _ = sink.flush();
            out.clear();
            // A burst can leave a large allocation behind: give it back.
            if out.capacity() > 4 * FLUSH_AT {
                out = Vec::new();
            }
        }
        if closing {
            return;
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One event's line on its way into the buffer.
pub(crate) struct Line<'a> {
    shared: &'a Shared,
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut buffer = self.shared.lock();
        if buffer.closing {
            // The thread is gone (or never started): straight to stderr.
            drop(buffer);
            return io::stderr().write(bytes);
        }
        if buffer.bytes.len() + bytes.len() > MAX_BUFFERED {
            buffer.dropped += 1;
            return Ok(bytes.len());
        }
        buffer.bytes.extend_from_slice(bytes);
        if buffer.bytes.len() >= FLUSH_AT {
            drop(buffer);
            self.shared.wake.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BufferedStderr {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "the tests wait on the real flush thread, with a real clock"
)]
mod tests {
    use std::sync::Mutex as StdMutex;
    use std::time::Instant;

    use super::*;

    /// A stand-in for stderr that the test can read.
    #[derive(Clone, Default)]
    struct Captured(Arc<StdMutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn log(writer: &BufferedStderr, line: &str) {
        writer.make_writer().write_all(line.as_bytes()).unwrap();
    }

    #[test]
    fn lines_come_out_in_order_within_the_flush_interval() {
        let out = Captured::default();
        let sink = out.clone();
        let (writer, flusher) = start(move || sink.clone());
        log(&writer, "one\n");
        log(&writer, "two\n");
        let logged = Instant::now();
        while out.text().is_empty() {
            assert!(
                logged.elapsed() < Duration::from_secs(10),
                "nothing written after {:?}",
                logged.elapsed()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(out.text(), "one\ntwo\n");
        drop(flusher);
    }

    #[test]
    fn dropping_the_flusher_writes_out_everything_buffered() {
        let out = Captured::default();
        let sink = out.clone();
        let (writer, flusher) = start(move || sink.clone());
        let lines: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        for line in lines.lines() {
            log(&writer, &format!("{line}\n"));
        }
        drop(flusher);
        assert_eq!(out.text(), lines);
    }

    #[test]
    fn a_full_buffer_drops_lines_and_says_how_many() {
        // A writer whose output blocks until released: the buffer fills.
        let gate = Arc::new(StdMutex::new(()));
        let held = gate.lock().unwrap();
        let out = Captured::default();
        let (taken, took) = std::sync::mpsc::channel();
        let (sink, thread_gate) = (out.clone(), Arc::clone(&gate));
        let (writer, flusher) = start(move || {
            // Told once the thread has swapped a batch out, then blocked.
            let _ = taken.send(());
            drop(thread_gate.lock().unwrap());
            sink.clone()
        });
        let line = "x".repeat(1023) + "\n";
        let fits = MAX_BUFFERED / line.len();
        // The thread takes a first batch and blocks on the gate with it.
        log(&writer, &line);
        took.recv_timeout(Duration::from_secs(10))
            .expect("the thread took the first line");
        for _ in 0..fits + 10 {
            log(&writer, &line);
        }
        drop(held);
        drop(flusher);
        let text = out.text();
        assert_eq!(
            text.matches(&line).count(),
            fits + 1,
            "one batch taken, then a full buffer"
        );
        assert!(
            text.ends_with("totpd: 10 log lines dropped: stderr did not keep up\n"),
            "{}",
            &text[text.len().saturating_sub(200)..]
        );
    }
}
