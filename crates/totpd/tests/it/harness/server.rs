//! `totpd serve` processes: spawned on port 0, the bound address read back
//! from stdout, stopped with signals, restarted on the same vault.

use std::fs::OpenOptions;
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use super::cli::{CliOutput, EXIT_TIMEOUT, signal, wait_with_timeout};
use super::env::{ApiKey, Env};
use super::http::{Api, Auth, Reply, http_client};
use super::{Backend, Serves};

/// How long a server may take to print its "listening on" line. Generous:
/// debug builds on two busy cores, PostgreSQL migrations.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const LISTENING: &str = "totpd listening on ";

/// How to start `totpd serve`.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub no_bootstrap: bool,
    /// Extra environment for the server process (e.g. `TOTPD_LOG`).
    pub env: Vec<(String, String)>,
    /// Without a bootstrap key, do not make one with `keys create` either
    /// (the server's `key` is then empty).
    pub no_key: bool,
    /// More flags for `serve` (TLS, limits). With a `--listen` among them,
    /// the default `--listen 127.0.0.1:0` is left out.
    pub args: Vec<String>,
}

impl Options {
    /// Options for a node that must not mint a key of its own: its `key` is
    /// the bootstrap key if it prints one, else empty.
    pub fn keyless() -> Options {
        Options {
            no_key: true,
            ..Options::default()
        }
    }

    /// Default options plus the `serve` flags `args`.
    pub fn with_args(args: &[&str]) -> Options {
        Options {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            ..Options::default()
        }
    }
}

/// The printed bootstrap key in a run's stdout, if any.
fn bootstrap_key(lines: &[String]) -> Option<ApiKey> {
    let value = |label: &str| {
        lines
            .iter()
            .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_owned()))
    };
    Some(ApiKey {
        key_id: value("key id:")?,
        secret: value("key secret:")?,
    })
}

/// Starts a server for each of `envs` at the same instant (all spawned
/// before any is waited for), with `options`; returns them once all listen.
pub fn start_together(envs: &[Env], options: &Options) -> Vec<TestServer> {
    let starting: Vec<Starting> = envs
        .iter()
        .map(|env| Starting::spawn(env, options.clone()))
        .collect();
    starting.into_iter().map(Starting::ready).collect()
}

/// The one bootstrap key that servers started together printed: exactly one
/// of them must have printed one.
pub fn the_one_bootstrap_key(servers: &[TestServer], round: usize) -> ApiKey {
    let printed: Vec<ApiKey> = servers.iter().filter_map(|s| s.bootstrap.clone()).collect();
    assert_eq!(
        printed.len(),
        1,
        "round {round}: {} nodes printed a bootstrap key",
        printed.len()
    );
    printed[0].clone()
}

/// A `totpd serve` process that has been spawned but may not listen yet.
#[derive(Debug)]
pub struct Starting {
    env: Env,
    options: Options,
    child: Option<Child>,
    stdout: Arc<Mutex<Vec<String>>>,
    first_line: usize,
    lines: mpsc::Receiver<usize>,
    log_path: PathBuf,
}

impl Starting {
    /// Spawns `totpd serve --listen 127.0.0.1:0` for `env`, stderr appended
    /// to `<data-dir>/serve.log`.
    pub fn spawn(env: &Env, options: Options) -> Starting {
        Starting::spawn_with(env, options, Arc::new(Mutex::new(Vec::new())))
    }

    fn spawn_with(env: &Env, options: Options, stdout: Arc<Mutex<Vec<String>>>) -> Starting {
        let log_path = env.data_dir().join("serve.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open the server log");
        let mut args = vec!["serve"];
        if !options.args.iter().any(|a| a == "--listen") {
            args.extend(["--listen", "127.0.0.1:0"]);
        }
        if options.no_bootstrap {
            args.push("--no-bootstrap");
        }
        args.extend(options.args.iter().map(String::as_str));
        let mut command = env.command(&args);
        command.envs(options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command.stdout(Stdio::piped()).stderr(Stdio::from(log));
        let mut child = command.spawn().expect("spawn totpd serve");
        let pipe = child.stdout.take().expect("piped stdout");
        let first_line = stdout.lock().unwrap().len();
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&stdout);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let index = {
                    let mut all = sink.lock().unwrap();
                    all.push(line);
                    all.len() - 1
                };
                let _ = tx.send(index);
            }
        });
        Starting {
            env: env.clone(),
            options,
            child: Some(child),
            stdout,
            first_line,
            lines: rx,
            log_path,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits for the "listening on" line and returns the running server,
    /// with an API key: the bootstrap key if this start printed one, else
    /// `previous`, else a new key made with `keys create --account default`.
    fn ready_with(mut self, previous: Option<ApiKey>) -> TestServer {
        let deadline = Instant::now() + READY_TIMEOUT;
        let base_url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(index) => {
                    let line = self.stdout.lock().unwrap()[index].clone();
                    if let Some(url) = line.trim().strip_prefix(LISTENING) {
                        break url.trim_end_matches('/').to_owned();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let mut child = self.child.take().expect("a child");
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "totpd serve did not print \"{LISTENING}...\" within {READY_TIMEOUT:?}; stdout:\n{}\nstderr:\n{}",
                        self.stdout_lines().join("\n"),
                        self.log()
                    );
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let mut child = self.child.take().expect("a child");
                    let status = wait_with_timeout(&mut child, EXIT_TIMEOUT);
                    panic!(
                        "totpd serve exited ({status:?}) before listening; stdout:\n{}\nstderr:\n{}",
                        self.stdout_lines().join("\n"),
                        self.log()
                    );
                }
            }
        };
        let printed = bootstrap_key(&self.stdout_lines());
        let key = printed.clone().or(previous).unwrap_or_else(|| {
            if self.options.no_key {
                ApiKey {
                    key_id: String::new(),
                    secret: String::new(),
                }
            } else {
                self.env.create_key("default")
            }
        });
        TestServer {
            env: self.env.clone(),
            options: self.options.clone(),
            child: self.child.take(),
            addr: base_url
                .split_once("://")
                .map_or(base_url.as_str(), |(_, rest)| rest)
                .to_owned(),
            base_url,
            stdout: Arc::clone(&self.stdout),
            run_first_line: self.first_line,
            log_path: self.log_path.clone(),
            key,
            bootstrap: printed,
            http: http_client(),
        }
    }

    /// Waits for the server to become ready.
    pub fn ready(self) -> TestServer {
        self.ready_with(None)
    }

    /// Waits for a server that must refuse to start: it exits without ever
    /// listening. Returns its exit status and everything it printed.
    pub fn refused(mut self) -> CliOutput {
        let mut child = self.child.take().expect("a child");
        let Some(status) = wait_with_timeout(&mut child, EXIT_TIMEOUT) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "totpd serve was expected to refuse to start, but it still runs after {EXIT_TIMEOUT:?}; stdout:\n{}\nstderr:\n{}",
                self.stdout_lines().join("\n"),
                self.log()
            );
        };
        // Let the reader thread drain what was printed before the exit.
        let _ = self.lines.recv_timeout(Duration::from_millis(200));
        while self.lines.try_recv().is_ok() {}
        CliOutput {
            status,
            stdout: self.stdout_lines().join("\n"),
            stderr: self.log(),
        }
    }

    fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap()[self.first_line..].to_vec()
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running `totpd serve`.
#[derive(Debug)]
pub struct TestServer {
    pub env: Env,
    options: Options,
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The URL the server printed, e.g. `http://127.0.0.1:PORT` (`https`
    /// with TLS).
    pub base_url: String,
    stdout: Arc<Mutex<Vec<String>>>,
    run_first_line: usize,
    log_path: PathBuf,
    /// An owner key of the `default` account.
    pub key: ApiKey,
    /// The bootstrap key this server printed on its first start, if any.
    pub bootstrap: Option<ApiKey>,
    http: reqwest::Client,
}

impl TestServer {
    /// A server on a fresh data directory and database of `backend`.
    pub async fn start(backend: Backend) -> TestServer {
        TestServer::start_in(&Env::new(backend).await, Options::default())
    }

    /// A server on a fresh `backend` environment, with `vars` (settings such
    /// as `TOTPD_MAX_CONNECTIONS`) in its environment.
    pub async fn with_env<V: AsRef<str>>(backend: Backend, vars: &[(&str, V)]) -> TestServer {
        let options = Options {
            env: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.as_ref().to_owned()))
                .collect(),
            ..Options::default()
        };
        TestServer::start_in(&Env::new(backend).await, options)
    }

    /// A server for an existing `env`.
    pub fn start_in(env: &Env, options: Options) -> TestServer {
        Starting::spawn(env, options).ready()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("poll the server").is_none(),
            None => false,
        }
    }

    /// Sends `signal` (e.g. "TERM", "INT") and waits for the exit.
    pub fn stop_with(&mut self, name: &str) -> ExitStatus {
        signal(self.pid(), name);
        self.wait_exit()
    }

    /// Waits for the process to exit (after a signal sent with [`signal`]).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the server runs");
        match wait_with_timeout(&mut child, EXIT_TIMEOUT) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "totpd serve did not exit within {EXIT_TIMEOUT:?}; stderr:\n{}",
                    self.log()
                );
            }
        }
    }

    /// SIGTERM, and wait for the exit.
    pub fn kill(&mut self) -> ExitStatus {
        self.stop_with("TERM")
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("the server runs");
        child.kill().expect("kill -9 the server");
        let _ = child.wait();
    }

    /// Starts the server again on the same data directory and database (after
    /// stopping it with SIGTERM if it still runs). Keeps the same API key.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            let status = self.kill();
            assert!(status.success(), "SIGTERM before restart: {status}");
        }
        self.restart_with(self.options.clone());
    }

    /// Starts the (stopped) server again with other options.
    pub fn restart_with(&mut self, options: Options) {
        assert!(self.child.is_none(), "stop the server before restarting it");
        let starting = Starting::spawn_with(&self.env, options, Arc::clone(&self.stdout));
        let mut again = starting.ready_with(Some(self.key.clone()));
        self.child = again.child.take();
        self.addr = again.addr.clone();
        self.run_first_line = again.run_first_line;
        self.options = again.options.clone();
        self.key = again.key.clone();
    }

    /// Stdout of the current run (since the last start).
    pub fn run_stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap()[self.run_first_line..].to_vec()
    }

    /// Everything the server wrote to stderr, all runs, including every
    /// line it logged before this call (see [`TestServer::sync_log`]).
    pub fn log(&self) -> String {
        self.sync_log();
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The server writes its log from a buffer, up to 50 ms late: so that a
    /// check that a line is absent cannot pass only because the line was
    /// not written yet, this sends a request with a unique request id and
    /// waits until its log line (and so everything logged before it) is in
    /// the file. A server that does not log requests at info (`TOTPD_LOG`
    /// above it), serves TLS, or has stopped gets a pause instead (a
    /// stopped one has written everything on its way out).
    fn sync_log(&self) {
        static MARKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        if self.child.is_none() {
            return;
        }
        let quiet = self
            .options
            .env
            .iter()
            .any(|(k, v)| k == "TOTPD_LOG" && ["warn", "error", "off"].contains(&v.as_str()));
        if quiet || self.base_url.starts_with("https://") {
            std::thread::sleep(Duration::from_millis(300));
            return;
        }
        let mark = format!(
            "log-sync-{}-{}",
            std::process::id(),
            MARKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let request = format!(
            "GET /healthz HTTP/1.1\r\nHost: {}\r\nx-request-id: {mark}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        let sent = std::net::TcpStream::connect(&self.addr).and_then(|mut stream| {
            use std::io::{Read as _, Write as _};
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.write_all(request.as_bytes())?;
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).map(drop)
        });
        if sent.is_err() {
            // Not answering (stopping, or stopped by the test): nothing to
            // wait for.
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            if text.contains(&mark) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the server's log line for request {mark} did not appear within 10 s");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {}", self.addr))
    }

    /// The API as the `default` account's owner key, in the SDKs' header form.
    pub fn api(&self) -> Api {
        Serves::api(self)
    }

    /// The API as `key`.
    pub fn api_as(&self, key: &ApiKey) -> Api {
        Serves::api_as(self, key)
    }

    pub fn api_with(&self, auth: Auth) -> Api {
        Api {
            http: self.http.clone(),
            base: format!("http://{}", self.addr),
            auth,
        }
    }

    /// `GET path` without credentials, expecting a 200 JSON answer.
    pub async fn get_public(&self, path: &str) -> Reply {
        self.api_with(Auth::None).get(path).await
    }

    /// Asserts the server still answers `/healthz`.
    pub async fn assert_healthy(&mut self) {
        assert!(
            self.is_running(),
            "the server exited; stderr:\n{}",
            self.log()
        );
        let reply = self.get_public("/healthz").await;
        assert_eq!(reply.status, 200, "/healthz: {}", reply.text);
    }
}

impl Serves for TestServer {
    fn api_with(&self, auth: Auth) -> Api {
        TestServer::api_with(self, auth)
    }

    fn key(&self) -> &ApiKey {
        &self.key
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
