//! A PostgreSQL outage under load, on a throwaway cluster of the test's
//! own: prompt 503s while it is down, service back soon after it returns.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::harness::{
    Auth, Backend, Body, Env, Known, Options, Reply, TestServer, assert_code, check_code_body,
    code_path, random_bytes, unix_ms,
};
use crate::otp::{Alg, base32_encode};

/// The request timeout the outage test gives `totpd serve`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// What an answer may take beyond the request timeout (scheduling on two
/// busy cores); a client waits a little longer still, so a hang is seen as one.
const ANSWER_GRACE: Duration = Duration::from_secs(1);
/// How long PostgreSQL stays down: more than one request timeout, so
/// requests that wait for a connection run into it.
const OUTAGE: Duration = Duration::from_secs(6);
/// Recovery must take at most this long once PostgreSQL accepts connections.
const RECOVERY: Duration = Duration::from_secs(5);
const LOAD_CLIENTS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_stopped_under_load_gives_prompt_503s_and_service_recovers_after_restart() {
    let Some(cluster) = ThrowawayCluster::for_test(
        "postgresql_stopped_under_load_gives_prompt_503s_and_service_recovers_after_restart",
    ) else {
        return;
    };
    let cluster = Arc::new(cluster);
    let env = Env::with_database_url(Backend::Postgres, &cluster.url());
    // Declared after the cluster, so dropped (killed) before it.
    let mut server = TestServer::start_in(
        &env,
        Options {
            env: vec![
                (
                    "TOTPD_REQUEST_TIMEOUT".to_owned(),
                    REQUEST_TIMEOUT.as_secs().to_string(),
                ),
                // The load is one key hammering codes: not what these limits are for.
                ("TOTPD_RATE_LIMIT_PER_KEY".to_owned(), "0".to_owned()),
                ("TOTPD_AUTH_FAILURE_LIMIT".to_owned(), "0".to_owned()),
                ("TOTPD_LOG".to_owned(), "warn".to_owned()),
            ],
            ..Options::default()
        },
    );
    let api = server
        .api()
        .with_timeout(REQUEST_TIMEOUT + ANSWER_GRACE + Duration::from_secs(2));
    let mut secrets = Vec::new();
    for (alg, digits, period) in [
        (Alg::Sha1, 6, 30),
        (Alg::Sha256, 8, 30),
        (Alg::Sha512, 6, 60),
    ] {
        let key = random_bytes(alg.natural_key_len());
        let known = Known {
            key: key.clone(),
            alg,
            digits,
            period,
        };
        let created = api
            .create_ok(json!({
                "label": format!("outage {}", alg.wire_name()),
                "secret": base32_encode(&key),
                "algorithm": alg.wire_name(),
                "digits": digits,
                "period": period,
            }))
            .await;
        let id = created["id"].as_str().unwrap().to_owned();
        assert_code(&api, &id, &known).await;
        secrets.push((id, known));
    }
    let secrets = Arc::new(secrets);

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..LOAD_CLIENTS)
        .map(|client| {
            tokio::spawn(load(
                api.clone(),
                Arc::clone(&secrets),
                client,
                Arc::clone(&stop),
            ))
        })
        .collect();

    // Up, under load.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopping = Instant::now();
    {
        let cluster = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || cluster.stop())
            .await
            .unwrap();
    }
    let down = Instant::now();

    // Down: readiness says so, liveness does not, the process keeps running.
    let public = server
        .api_with(Auth::None)
        .with_timeout(REQUEST_TIMEOUT + ANSWER_GRACE + Duration::from_secs(2));
    let mut readiness = Vec::new();
    while down.elapsed() < OUTAGE {
        let asked = Instant::now();
        let reply = public.try_request(Method::GET, "/readyz", Body::None).await;
        readiness.push((asked.elapsed(), reply));
        let health = public
            .try_request(Method::GET, "/healthz", Body::None)
            .await;
        assert!(
            matches!(&health, Ok(reply) if reply.status == 200),
            "/healthz during the outage: {health:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        server.is_running(),
        "totpd exited during the outage; stderr:\n{}",
        server.log()
    );

    let restarting = Instant::now();
    {
        let cluster = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || cluster.start())
            .await
            .unwrap();
    }
    // pg_ctl start -w returns once PostgreSQL accepts connections.
    let up = Instant::now();
    let first_code = code_path(&secrets[0].0);
    let recovered = loop {
        let code = api.try_request(Method::GET, &first_code, Body::None);
        let ready = public.try_request(Method::GET, "/readyz", Body::None);
        let (code, ready) = tokio::join!(code, ready);
        if matches!((&code, &ready), (Ok(c), Ok(r)) if c.status == 200 && r.status == 200) {
            break up.elapsed();
        }
        assert!(
            up.elapsed() < RECOVERY,
            "no recovery {RECOVERY:?} after PostgreSQL accepted connections again: code {code:?}, /readyz {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Keep the load on past the recovery deadline: every request from then on must succeed.
    tokio::time::sleep((RECOVERY + Duration::from_millis(1500)).saturating_sub(up.elapsed())).await;
    stop.store(true, Ordering::Relaxed);
    let mut records = Vec::new();
    for client in clients {
        records.extend(client.await.unwrap());
    }

    assert!(
        server.is_running(),
        "totpd exited; stderr:\n{}",
        server.log()
    );
    for (id, known) in secrets.iter() {
        assert_code(&api, id, known).await;
    }

    // /readyz while PostgreSQL was down: 503 with the error body, promptly.
    assert!(!readiness.is_empty());
    for (took, reply) in &readiness {
        let reply = reply
            .as_ref()
            .unwrap_or_else(|e| panic!("/readyz during the outage: {e}"));
        reply.expect_error(503, "unavailable");
        assert!(
            *took <= REQUEST_TIMEOUT + ANSWER_GRACE,
            "/readyz took {took:?} during the outage"
        );
    }

    let windows = Windows {
        stopping,
        down,
        restarting,
        up,
    };
    let mut problems = Vec::new();
    let mut during_outage = vec![0usize; LOAD_CLIENTS];
    let mut refused = 0;
    let mut served_after_deadline = 0;
    for record in &records {
        let phase = windows.phase(record);
        if phase == Phase::Down {
            during_outage[record.client] += 1;
        }
        let took = record.finished - record.started;
        if took > REQUEST_TIMEOUT + ANSWER_GRACE {
            problems.push(format!(
                "{phase:?}: an answer took {took:?} (request timeout {REQUEST_TIMEOUT:?})"
            ));
        }
        let reply = match &record.outcome {
            Ok(reply) => reply,
            Err(e) => {
                problems.push(format!("{phase:?}: no answer after {took:?}: {e}"));
                continue;
            }
        };
        match (reply.status, phase) {
            (200, Phase::Down) => problems.push(format!(
                "a code was served while PostgreSQL was down: {}",
                reply.text
            )),
            (200, _) => {
                // A wrong code fails the test right here, with the expected ones.
                check_code_body(
                    &reply.json(),
                    &secrets[record.secret].1,
                    record.before_ms,
                    record.after_ms,
                );
                if phase == Phase::Recovered {
                    served_after_deadline += 1;
                }
            }
            (503, Phase::Up) => {
                problems.push(format!("503 while PostgreSQL was up: {}", reply.text))
            }
            (503, Phase::Recovered) => problems.push(format!(
                "503 more than {RECOVERY:?} after PostgreSQL accepted connections again: {}",
                reply.text
            )),
            (503, _) => {
                reply.expect_error(503, "unavailable");
                refused += 1;
            }
            (status, _) => problems.push(format!("{phase:?}: HTTP {status}: {}", reply.text)),
        }
    }
    let log = server.log();
    assert!(
        problems.is_empty(),
        "{} of {} answers under load were wrong:\n{}\n(recovered {recovered:?} after restart; server log tail:\n{})",
        problems.len(),
        records.len(),
        problems
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        tail(&log, 10)
    );
    assert!(
        during_outage.iter().all(|&n| n > 0),
        "some load client made no request while PostgreSQL was down: {during_outage:?}"
    );
    assert!(refused > 0, "no request under load got a 503");
    assert!(
        served_after_deadline > 0,
        "no request under load was served after the recovery deadline"
    );
    let slowest = records
        .iter()
        .map(|r| r.finished - r.started)
        .max()
        .unwrap_or_default();
    eprintln!(
        "outage: {} requests, {refused} refused with 503, slowest answer {slowest:?}, recovered {recovered:?} after PostgreSQL came back",
        records.len()
    );
}

/// One request of a load client.
#[derive(Debug)]
struct Record {
    client: usize,
    secret: usize,
    started: Instant,
    finished: Instant,
    before_ms: i64,
    after_ms: i64,
    outcome: Result<Reply, String>,
}

/// Requests codes in a loop, round robin over the secrets, until `stop`.
async fn load(
    api: crate::harness::Api,
    secrets: Arc<Vec<(String, Known)>>,
    client: usize,
    stop: Arc<AtomicBool>,
) -> Vec<Record> {
    let mut records = Vec::new();
    let mut n = client;
    while !stop.load(Ordering::Relaxed) {
        let secret = n % secrets.len();
        n += 1;
        let started = Instant::now();
        let before_ms = unix_ms();
        let outcome = api
            .try_request(Method::GET, &code_path(&secrets[secret].0), Body::None)
            .await;
        records.push(Record {
            client,
            secret,
            started,
            finished: Instant::now(),
            before_ms,
            after_ms: unix_ms(),
            outcome,
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    records
}

/// Where a request falls in the outage's timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Answered before PostgreSQL was asked to stop: must be served.
    Up,
    /// Overlapped the stop: served (correctly) or 503.
    Stopping,
    /// Sent after PostgreSQL had stopped and answered before it was asked to
    /// start again: must be 503.
    Down,
    /// Overlapped the restart or the recovery allowance: served or 503.
    Recovering,
    /// Sent once the recovery allowance was over: must be served.
    Recovered,
}

struct Windows {
    stopping: Instant,
    down: Instant,
    restarting: Instant,
    up: Instant,
}

impl Windows {
    fn phase(&self, record: &Record) -> Phase {
        if record.finished < self.stopping {
            Phase::Up
        } else if record.started < self.down {
            Phase::Stopping
        } else if record.finished < self.restarting {
            Phase::Down
        } else if record.started < self.up + RECOVERY {
            Phase::Recovering
        } else {
            Phase::Recovered
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A PostgreSQL cluster of one test: `initdb` into a temporary directory,
/// trust authentication for the `postgres` user, listening on 127.0.0.1 on a
/// free port with its socket in that directory. As root, `initdb` and
/// `pg_ctl` (which refuse to run as root) run as the `postgres` user, who
/// owns the directory. Dropping it stops the server and removes the directory.
#[derive(Debug)]
struct ThrowawayCluster {
    bin: PathBuf,
    /// Runs the PostgreSQL tools as `postgres` (we are root).
    as_postgres: bool,
    dir: tempfile::TempDir,
    port: u16,
}

impl ThrowawayCluster {
    /// A running cluster, or None (after saying SKIPPED) when this machine
    /// cannot make one; in CI that is a failure.
    fn for_test(test: &str) -> Option<ThrowawayCluster> {
        let tools = cluster_tools().map_err(|why| format!("needs initdb/pg_ctl: {why}"));
        totpd_testkit::or_skip(test, tools)
            .map(|(bin, as_postgres)| ThrowawayCluster::create(bin, as_postgres))
    }

    fn create(bin: PathBuf, as_postgres: bool) -> ThrowawayCluster {
        // Under /tmp, not $TMPDIR: the postgres user must be able to reach it.
        let dir = tempfile::Builder::new()
            .prefix("totpd-pg-")
            .tempdir_in("/tmp")
            .expect("a temporary directory for the cluster");
        if as_postgres {
            let chown = Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .expect("run chown");
            assert!(chown.success(), "chown postgres {}", dir.path().display());
        }
        let cluster = ThrowawayCluster {
            bin,
            as_postgres,
            dir,
            port: free_port(),
        };
        let data = cluster.data_dir();
        cluster.tool(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                // Throwaway: no fsync wait.
                "--no-sync",
            ],
        );
        cluster.start();
        cluster
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl start`, returning once PostgreSQL accepts connections.
    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        let data = self.data_dir();
        self.tool(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
    }

    /// `pg_ctl stop -m immediate`: every backend dies at once, as in a crash.
    fn stop(&self) {
        let data = self.data_dir();
        self.tool(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "-t",
                "30",
                "stop",
            ],
        );
    }

    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    fn tool(&self, tool: &str, args: &[&str]) {
        let output = self
            .command(tool, args)
            .output()
            .unwrap_or_else(|e| panic!("could not run {tool}: {e}"));
        assert!(
            output.status.success(),
            "{tool} {} failed with {}:\n{}{}\nserver log:\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            tail(
                &std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default(),
                20
            )
        );
    }
}

impl Drop for ThrowawayCluster {
    fn drop(&mut self) {
        let data = self.data_dir();
        let stopped = self
            .command(
                "pg_ctl",
                &[
                    "-D",
                    data.to_str().unwrap_or_default(),
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    "30",
                    "stop",
                ],
            )
            .output();
        let running = data.join("postmaster.pid");
        if !matches!(stopped, Ok(out) if out.status.success())
            && let Ok(pid_file) = std::fs::read_to_string(&running)
            && let Some(pid) = pid_file
                .lines()
                .next()
                .and_then(|l| l.trim().parse::<u32>().ok())
        {
            // Our own postmaster, by its id.
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
        // The TempDir removes the directory after this.
    }
}

/// The directory of the newest PostgreSQL's `initdb` and `pg_ctl`, and
/// whether they must run as the `postgres` user; or why they cannot run.
fn cluster_tools() -> Result<(PathBuf, bool), String> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .map_err(|e| format!("{}: {e}", root.display()))?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    versions.sort();
    let (_, bin) = versions
        .pop()
        .ok_or_else(|| format!("no initdb and pg_ctl under {}/*/bin", root.display()))?;
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| format!("id -u: {e}"))?;
    let as_root = String::from_utf8_lossy(&uid.stdout).trim() == "0";
    if !as_root {
        // initdb and pg_ctl run as any user but root.
        return Ok((bin, false));
    }
    let runuser = Command::new("runuser")
        .args(["-u", "postgres", "--", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !matches!(runuser, Ok(status) if status.success()) {
        return Err("running as root, and `runuser -u postgres` does not work".to_owned());
    }
    Ok((bin, true))
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("a bound address").port()
}
