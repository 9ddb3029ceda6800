//! Scale-out (issue 4): a PostgreSQL outage under load on a throwaway
//! cluster of the test's own, `totpd migrate` from SQLite to PostgreSQL,
//! and `/metrics` scraped and read as Prometheus text.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::{
    ApiKey, Auth, Backend, Body, CliOutput, Env, Known, Options, Reply, SECRETS, TestServer,
    assert_code, check_code_body, code_path, on_both_backends, on_postgres_only, random_bytes,
    refused_after, run_totpd, unix_ms,
};
use crate::otp::{Alg, base32_encode};

// ---------------------------------------------------------------------------
// PostgreSQL outage on a throwaway cluster

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

// ---------------------------------------------------------------------------
// totpd migrate

on_postgres_only! {
    a_sqlite_installation_migrated_to_postgresql_serves_the_same_ids_codes_and_keys
        => a_sqlite_installation_migrated_to_postgresql_serves_the_same_ids_codes_and_keys_on_postgres;
    migrating_from_an_empty_or_missing_sqlite_database_fails_clearly_and_creates_nothing
        => migrating_from_an_empty_or_missing_sqlite_database_fails_clearly_and_creates_nothing_on_postgres;
}

/// One secret of the installation: what to create, and what it must give.
struct Spec {
    label: &'static str,
    issuer: Option<&'static str>,
    alg: Alg,
    digits: u32,
    period: u64,
    key_len: usize,
    /// Enrolled from an `otpauth://` URI rather than fields.
    via_uri: bool,
}

/// Mixed algorithms, digits, periods and secret lengths (80-bit, as GitHub
/// issues them, to 512-bit); each account gets them all.
const SPECS: [Spec; 4] = [
    Spec {
        label: "ops@example.com",
        issuer: Some("GitHub"),
        alg: Alg::Sha1,
        digits: 6,
        period: 30,
        key_len: 10,
        via_uri: false,
    },
    Spec {
        label: "deploy bot",
        issuer: Some("AWS"),
        alg: Alg::Sha256,
        digits: 8,
        period: 30,
        key_len: 32,
        via_uri: false,
    },
    Spec {
        label: "root",
        issuer: None,
        alg: Alg::Sha512,
        digits: 8,
        period: 60,
        key_len: 64,
        via_uri: false,
    },
    Spec {
        label: "alice",
        issuer: Some("ACME Co"),
        alg: Alg::Sha1,
        digits: 6,
        period: 45,
        key_len: 20,
        via_uri: true,
    },
];

/// An account of the installation, as the test made it.
struct Tenant {
    name: &'static str,
    /// Keys that must keep working.
    active: Vec<ApiKey>,
    /// A key revoked before the migration.
    revoked: Option<ApiKey>,
    secrets: Vec<(String, Known)>,
    /// A secret deleted before the migration.
    deleted: Option<String>,
    /// The list answer before the migration, sorted by id.
    listed: Vec<Value>,
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

fn migrate(from: &str, to: &str) -> CliOutput {
    run_totpd(&["migrate", "--from", from, "--to", to])
}

fn sorted_by_id(mut list: Vec<Value>) -> Vec<Value> {
    list.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    list
}

fn sorted(mut rows: Vec<String>) -> Vec<String> {
    rows.sort();
    rows
}

/// Enrolls every spec for `account` through the API.
async fn enroll(server: &TestServer, key: &ApiKey, account: &str) -> Vec<(String, Known)> {
    let api = server.api_as(key);
    let mut out = Vec::new();
    for spec in &SPECS {
        let bytes = random_bytes(spec.key_len);
        let secret = base32_encode(&bytes);
        let label = format!("{} ({account})", spec.label);
        let body = if spec.via_uri {
            let issuer = spec.issuer.unwrap_or_default().replace(' ', "%20");
            json!({"uri": format!(
                "otpauth://totp/{issuer}:{}?secret={secret}&issuer={issuer}&algorithm={}&digits={}&period={}",
                label.replace(' ', "%20").replace('(', "%28").replace(')', "%29"),
                spec.alg.wire_name(),
                spec.digits,
                spec.period,
            )})
        } else {
            let mut body = json!({
                "label": label,
                "secret": secret,
                "algorithm": spec.alg.wire_name(),
                "digits": spec.digits,
                "period": spec.period,
            });
            if let Some(issuer) = spec.issuer {
                body["issuer"] = json!(issuer);
            }
            body
        };
        let created = api.create_ok(body).await;
        assert_eq!(created["label"], json!(label), "{created}");
        assert_eq!(created["issuer"], json!(spec.issuer), "{created}");
        let known = Known {
            key: bytes,
            alg: spec.alg,
            digits: spec.digits,
            period: spec.period,
        };
        let id = created["id"].as_str().unwrap().to_owned();
        assert_code(&api, &id, &known).await;
        out.push((id, known));
    }
    out
}

async fn a_sqlite_installation_migrated_to_postgresql_serves_the_same_ids_codes_and_keys() {
    // The installation: SQLite in one data directory, its master.key beside it.
    let env = Env::new(Backend::Sqlite).await;
    let mut server = TestServer::start_in(&env, Options::default());
    let mut tenants = Vec::new();
    for name in ["default", "alpha", "beta"] {
        let mut active = Vec::new();
        if name == "default" {
            active.push(server.key.clone());
        }
        active.push(env.create_key(name));
        active.push(env.create_key(name));
        let secrets = enroll(&server, &active[0], name).await;
        tenants.push(Tenant {
            name,
            active,
            revoked: None,
            secrets,
            deleted: None,
            listed: Vec::new(),
        });
    }
    // alpha: a third key, revoked; beta: a secret enrolled, then deleted.
    let doomed_key = env.create_key("alpha");
    server.api_as(&doomed_key).list_ok().await;
    env.run_ok(&["keys", "revoke", &doomed_key.key_id]);
    // Revocation reaches a running node within a second (DESIGN §4).
    let took = refused_after(&server.api_as(&doomed_key), SECRETS, Instant::now()).await;
    assert!(
        took <= Duration::from_secs(1),
        "revoked key accepted for {took:?}"
    );
    tenants[1].revoked = Some(doomed_key);
    let beta = server.api_as(&tenants[2].active[0]);
    let doomed = beta.create_ok(json!({"label": "short-lived"})).await;
    let doomed = doomed["id"].as_str().unwrap().to_owned();
    beta.delete(&doomed).await.expect_ok();
    tenants[2].deleted = Some(doomed);
    for tenant in &mut tenants {
        tenant.listed = sorted_by_id(server.api_as(&tenant.active[0]).list_ok().await);
        assert_eq!(tenant.listed.len(), SPECS.len(), "{}", tenant.name);
    }
    assert_eq!(server.kill().code(), Some(0), "serve exits 0 on SIGTERM");
    // After the stop: a stopping node writes the key uses it last saw.
    let keys_before: Value = serde_json::from_str(env.run_ok(&["keys", "list", "--json"]).trim())
        .expect("keys list --json");
    let source_rows = sorted(env.dump_rows().await);

    // The migration into a fresh PostgreSQL database.
    let target = Env::new(Backend::Postgres).await;
    let from = sqlite_url(&env.sqlite_file());
    let to = target.database_url().unwrap().to_owned();
    let migrated = migrate(&from, &to);
    assert!(
        migrated.status.success(),
        "totpd migrate failed with {}:\n{}{}",
        migrated.status,
        migrated.stdout,
        migrated.stderr
    );
    assert_eq!(
        sorted(env.dump_rows().await),
        source_rows,
        "totpd migrate changed its source"
    );

    // Served from PostgreSQL with the same data directory, so the same master.key.
    let served = env.on_database_of(&target);
    let keys_after: Value = serde_json::from_str(served.run_ok(&["keys", "list", "--json"]).trim())
        .expect("keys list --json");
    assert_eq!(
        keys_after, keys_before,
        "keys list differs after the migration"
    );
    let quiet = Options {
        no_bootstrap: true,
        no_key: true,
        ..Options::default()
    };
    let pg_server = TestServer::start_in(&served, quiet.clone());
    assert!(
        pg_server.bootstrap.is_none(),
        "serve bootstrapped the migrated database"
    );
    for tenant in &tenants {
        for key in &tenant.active {
            let api = pg_server.api_as(key);
            assert_eq!(
                sorted_by_id(api.list_ok().await),
                tenant.listed,
                "{}'s list differs after the migration",
                tenant.name
            );
        }
        let api = pg_server.api_as(&tenant.active[1]);
        for (id, known) in &tenant.secrets {
            assert_code(&api, id, known).await;
        }
        if let Some(revoked) = &tenant.revoked {
            let refused = pg_server.api_as(revoked);
            refused.list().await.expect_error(401, "unauthorized");
            refused
                .code(&tenant.secrets[0].0)
                .await
                .expect_error(401, "unauthorized");
        }
        if let Some(deleted) = &tenant.deleted {
            api.code(deleted).await.expect_error(404, "not_found");
        }
    }
    // Tenancy survived: alpha's key cannot see or touch beta's secrets.
    let alpha = pg_server.api_as(&tenants[1].active[0]);
    for (id, _) in &tenants[2].secrets {
        alpha.code(id).await.expect_error(404, "not_found");
        alpha.delete(id).await.expect_error(404, "not_found");
    }
    let beta = pg_server.api_as(&tenants[2].active[0]);
    assert_eq!(sorted_by_id(beta.list_ok().await), tenants[2].listed);

    // Another node, given only the URL and the key (TOTPD_MASTER_KEY), agrees.
    let master_key = std::fs::read_to_string(env.data_dir().join("master.key"))
        .expect("the installation's master.key");
    let node = served
        .other_node()
        .with_master_key(Some(master_key.trim().to_owned()));
    let other = TestServer::start_in(&node, quiet);
    for tenant in &tenants {
        let api = other.api_as(&tenant.active[0]);
        let (id, known) = &tenant.secrets[tenant.secrets.len() - 1];
        assert_code(&api, id, known).await;
    }

    // Migrating again into the now non-empty target is refused and changes nothing.
    let target_rows = sorted(target.dump_rows().await);
    let again = migrate(&from, &to);
    assert!(
        !again.status.success(),
        "a second migration into a non-empty database succeeded:\n{}",
        again.stdout
    );
    let said = again.stderr.to_lowercase();
    assert!(
        said.contains("target")
            && (said.contains("not empty")
                || said.contains("non-empty")
                || said.contains("already holds data")
                || said.contains("already contains")),
        "the refusal does not say the target is not empty:\n{}",
        again.stderr
    );
    assert_eq!(
        sorted(target.dump_rows().await),
        target_rows,
        "a refused migration changed the target"
    );
    for tenant in &tenants {
        let api = pg_server.api_as(&tenant.active[0]);
        assert_eq!(sorted_by_id(api.list_ok().await), tenant.listed);
    }
}

/// `migrate` with a source that holds nothing fails with a message about
/// the source, never writes a file where it expected one, and leaves the
/// target usable for a real migration afterwards.
async fn migrating_from_an_empty_or_missing_sqlite_database_fails_clearly_and_creates_nothing() {
    let target = Env::new(Backend::Postgres).await;
    let to = target.database_url().unwrap().to_owned();
    let scratch = tempfile::tempdir().unwrap();

    let missing = scratch.path().join("totpd.db");
    let empty = scratch.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let no_directory = scratch.path().join("no such directory").join("totpd.db");
    let mut problems = Vec::new();
    for (what, path) in [
        ("a missing file", &missing),
        ("an empty file", &empty),
        ("a file in a missing directory", &no_directory),
    ] {
        let out = migrate(&sqlite_url(path), &to);
        if out.status.success() {
            problems.push(format!("{what}: migrate succeeded:\n{}", out.stdout));
            continue;
        }
        let said = out.stderr.to_lowercase();
        if !(said.contains("source") || said.contains("--from")) {
            problems.push(format!(
                "{what}: the error does not point at the source:\n{}",
                out.stderr
            ));
        }
    }
    let created: Vec<String> = std::fs::read_dir(scratch.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "empty.db")
        .collect();
    if !created.is_empty() {
        problems.push(format!(
            "a failed migrate created files where its --from pointed: {created:?}"
        ));
    }
    let empty_len = std::fs::metadata(&empty).unwrap().len();
    if empty_len != 0 {
        problems.push(format!(
            "a failed migrate wrote to its (empty) source: it is now {empty_len} bytes"
        ));
    }

    // The target took no harm: a real installation still migrates into it.
    let env = Env::new(Backend::Sqlite).await;
    let mut server = TestServer::start_in(&env, Options::default());
    let key = server.key.clone();
    let secrets = enroll(&server, &key, "default").await;
    assert_eq!(server.kill().code(), Some(0));
    let out = migrate(&sqlite_url(&env.sqlite_file()), &to);
    assert!(
        out.status.success(),
        "migrating into the target of failed migrations failed:\n{}",
        out.stderr
    );
    let pg_server = TestServer::start_in(
        &env.on_database_of(&target),
        Options {
            no_bootstrap: true,
            no_key: true,
            ..Options::default()
        },
    );
    for (id, known) in &secrets {
        assert_code(&pg_server.api_as(&key), id, known).await;
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------
// /metrics

on_both_backends! {
    metrics_are_prometheus_text_counting_requests_codes_and_failures_without_sensitive_labels
        => metrics_are_prometheus_text_counting_requests_codes_and_failures_without_sensitive_labels_on_sqlite,
           metrics_are_prometheus_text_counting_requests_codes_and_failures_without_sensitive_labels_on_postgres;
}

const CODE_ROUTE: &str = "/api/v2/totp/code/{id}";

async fn metrics_are_prometheus_text_counting_requests_codes_and_failures_without_sensitive_labels(
    backend: Backend,
) {
    let server = TestServer::start(backend).await;
    let api = server.api();
    // Everything the test sends that must never become a metric, by kind
    // (failures name the kind, never the value).
    let mut sensitive: Vec<(&str, String)> = vec![
        ("key id", server.key.key_id.clone()),
        ("key secret", server.key.secret.clone()),
    ];
    let canary = Uuid::new_v4().simple().to_string();
    let mut secrets = Vec::new();
    for (i, alg) in Alg::ALL.into_iter().enumerate() {
        let key = random_bytes(20);
        let label = format!("metrics canary {i} {canary}");
        let issuer = format!("Issuer{i}{canary}");
        let created = api
            .create_ok(json!({
                "label": label,
                "issuer": issuer,
                "secret": base32_encode(&key),
                "algorithm": alg.wire_name(),
            }))
            .await;
        let id = created["id"].as_str().unwrap().to_owned();
        sensitive.extend([
            ("secret id", id.clone()),
            ("label", label),
            ("issuer", issuer),
            ("secret", base32_encode(&key)),
            (
                "secret as answered",
                created["secret"].as_str().unwrap_or_default().to_owned(),
            ),
        ]);
        secrets.push((
            id,
            Known {
                key,
                alg,
                digits: 6,
                period: 30,
            },
        ));
    }
    let mut codes = 0u64;
    for round in 0..2 {
        for (id, known) in &secrets[..=round] {
            assert_code(&api, id, known).await;
            codes += 1;
        }
    }
    // A wrong secret for a real key id, and a key that does not exist: 401.
    let wrong = ApiKey {
        key_id: server.key.key_id.clone(),
        secret: format!("wrong{canary}"),
    };
    let stranger = ApiKey {
        key_id: format!("tk_{canary}"),
        secret: format!("stranger{canary}"),
    };
    sensitive.extend([
        ("wrong key secret", wrong.secret.clone()),
        ("unknown key id", stranger.key_id.clone()),
        ("unknown key secret", stranger.secret.clone()),
    ]);
    let mut unauthorized = 0u64;
    for key in [&wrong, &stranger] {
        server
            .api_as(key)
            .code(&secrets[0].0)
            .await
            .expect_error(401, "unauthorized");
        unauthorized += 1;
    }
    // Not found: on the code route, on the delete route, and a path no route matches.
    let nobody = Uuid::new_v4().to_string();
    sensitive.push(("unknown secret id", nobody.clone()));
    api.code(&nobody).await.expect_error(404, "not_found");
    let not_found = 1u64;
    api.delete(&nobody).await.expect_error(404, "not_found");
    let unmatched = format!("{}/{}", code_path(&secrets[1].0), canary);
    assert_eq!(api.get(&unmatched).await.status, 404, "GET {unmatched}");
    api.list_ok().await;

    let reply = server.get_public("/metrics").await;
    assert_eq!(reply.status, 200, "/metrics: {}", reply.text);
    let content_type = reply
        .headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "/metrics Content-Type: {content_type:?}"
    );
    let metrics = exposition::parse(&reply.text)
        .unwrap_or_else(|e| panic!("/metrics is not Prometheus text: {e}\n{}", reply.text));
    exposition::check_histograms(&metrics)
        .unwrap_or_else(|e| panic!("/metrics: {e}\n{}", reply.text));

    let requests = |status: &str| {
        metrics.value(
            "totpd_http_requests_total",
            &[("route", CODE_ROUTE), ("method", "GET"), ("status", status)],
        )
    };
    // The server is this test's alone: the counts are exactly what it did.
    assert_eq!(requests("200"), Some(codes as f64), "codes answered 200");
    assert_eq!(
        requests("401"),
        Some(unauthorized as f64),
        "codes answered 401"
    );
    assert_eq!(
        requests("404"),
        Some(not_found as f64),
        "codes answered 404"
    );
    assert_eq!(
        metrics.value(
            "totpd_http_requests_total",
            &[("route", SECRETS), ("method", "POST"), ("status", "200")],
        ),
        Some(secrets.len() as f64),
        "creates answered 200"
    );
    assert_eq!(
        metrics.value("totpd_codes_issued_total", &[]),
        Some(codes as f64)
    );
    assert_eq!(
        metrics.value("totpd_auth_failures_total", &[]),
        Some(unauthorized as f64)
    );
    for family in [
        "totpd_http_requests_total",
        "totpd_codes_issued_total",
        "totpd_auth_failures_total",
    ] {
        assert_eq!(metrics.kind(family), Some("counter"), "TYPE of {family}");
    }

    // The latency histogram of the code route: cumulative, ending in +Inf = _count.
    assert_eq!(
        metrics.kind("totpd_http_request_duration_seconds"),
        Some("histogram")
    );
    let route = [("route", CODE_ROUTE), ("method", "GET")];
    let buckets = metrics.buckets("totpd_http_request_duration_seconds", &route);
    assert!(
        buckets.len() >= 2,
        "the code route has no latency buckets: {buckets:?}"
    );
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "buckets are not cumulative: {buckets:?}"
    );
    let (last_le, last_count) = buckets[buckets.len() - 1];
    assert!(last_le.is_infinite(), "the last bucket is not +Inf");
    let count = metrics
        .value("totpd_http_request_duration_seconds_count", &route)
        .expect("_count of the code route");
    assert_eq!(last_count, count, "+Inf bucket and _count");
    assert_eq!(
        count,
        (codes + unauthorized + not_found) as f64,
        "_count of the code route"
    );
    let sum = metrics
        .value("totpd_http_request_duration_seconds_sum", &route)
        .expect("_sum of the code route");
    assert!(sum > 0.0 && sum.is_finite(), "_sum {sum}");

    // The database pool.
    for state in ["idle", "in_use"] {
        let n = metrics.value("totpd_db_pool_connections", &[("state", state)]);
        assert!(
            matches!(n, Some(v) if v >= 0.0),
            "totpd_db_pool_connections{{state={state:?}}}: {n:?}"
        );
    }
    assert_eq!(metrics.kind("totpd_db_pool_connections"), Some("gauge"));
    let max = metrics.value("totpd_db_pool_max_connections", &[]);
    assert!(
        matches!(max, Some(v) if v >= 1.0),
        "totpd_db_pool_max_connections: {max:?}"
    );

    // Labels are route templates, methods, statuses and fixed enumerations.
    for (kind, secret) in &sensitive {
        assert!(!secret.is_empty(), "no {kind} to look for");
    }
    let templates = [
        SECRETS,
        CODE_ROUTE,
        "/api/v2/totp/secrets/{id}",
        "/metrics",
        "unmatched",
    ];
    for sample in &metrics.samples {
        for (name, value) in &sample.labels {
            for (kind, secret) in &sensitive {
                assert!(
                    !value.contains(secret.as_str()),
                    "label {name} of {} carries a {kind} the test sent",
                    sample.name
                );
            }
            let fine = match name.as_str() {
                "route" => templates.contains(&value.as_str()),
                "method" => ["GET", "POST", "DELETE"].contains(&value.as_str()),
                "status" => value.len() == 3 && value.bytes().all(|b| b.is_ascii_digit()),
                "le" => exposition::number(value).is_some(),
                _ => {
                    !value.is_empty() && value.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                }
            };
            assert!(
                fine,
                "{}: label {name}={value:?} is not a route template, method, status or enumeration",
                sample.name
            );
        }
    }
    for (kind, secret) in &sensitive {
        assert!(
            !reply.text.contains(secret.as_str()),
            "/metrics carries a {kind} the test sent"
        );
    }
    // Counters never go backwards: the next scrape is no lower.
    let again = exposition::parse(&server.get_public("/metrics").await.text).unwrap();
    assert!(
        again.value("totpd_codes_issued_total", &[]) >= Some(codes as f64)
            && again.value(
                "totpd_http_requests_total",
                &[("route", "/metrics"), ("method", "GET"), ("status", "200")]
            ) == Some(1.0),
        "the second scrape does not count the first"
    );
}

/// A client chooses the request method: a made-up one must not become a
/// label value, or anyone without a key can grow the metrics (and the
/// server's memory) without bound, one series per method.
#[tokio::test]
async fn made_up_http_methods_do_not_become_metric_labels() {
    let server = TestServer::start(Backend::Sqlite).await;
    let api = server.api();
    let made_up: Vec<String> = (0..20)
        .map(|_| format!("X{}", Uuid::new_v4().simple()).to_uppercase())
        .collect();
    for (i, method) in made_up.iter().enumerate() {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let path = if i % 2 == 0 { SECRETS } else { "/nowhere" };
        let reply = api.request(method, path, Body::None).await;
        assert!(
            (400..500).contains(&reply.status),
            "a made-up method got HTTP {}",
            reply.status
        );
    }
    let text = server.get_public("/metrics").await.text;
    let metrics =
        exposition::parse(&text).unwrap_or_else(|e| panic!("/metrics is not Prometheus text: {e}"));
    let leaked: BTreeSet<&str> = metrics
        .samples
        .iter()
        .flat_map(|s| s.labels.values())
        .filter(|v| made_up.iter().any(|m| v.contains(m.as_str())))
        .map(String::as_str)
        .collect();
    assert!(
        leaked.is_empty(),
        "{} made-up methods became label values (one new series each), e.g. {:?}",
        leaked.len(),
        leaked.iter().next()
    );
}

/// A strict reader of the Prometheus text exposition format, version 0.0.4
/// (prometheus.io/docs/instrumenting/exposition_formats): every line is a
/// sample, a HELP or TYPE line, another comment or empty, and anything else
/// is an error. Written here rather than taken from the `prometheus-parse`
/// crate, which skips lines it cannot match and cuts label values at the
/// first `}`, so the `{id}` in a route template would lose the whole line.
mod exposition {
    use std::collections::{BTreeMap, BTreeSet};

    pub type Labels = BTreeMap<String, String>;

    #[derive(Clone, Debug, PartialEq)]
    pub struct Sample {
        pub name: String,
        pub labels: Labels,
        pub value: f64,
    }

    #[derive(Debug, Default)]
    pub struct Family {
        pub help: Option<String>,
        pub kind: Option<String>,
    }

    #[derive(Debug, Default)]
    pub struct Exposition {
        pub families: BTreeMap<String, Family>,
        pub samples: Vec<Sample>,
    }

    const KINDS: [&str; 5] = ["counter", "gauge", "histogram", "summary", "untyped"];

    impl Exposition {
        /// The value of the one sample `name` whose labels are exactly `labels`.
        pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
            let wanted: BTreeMap<String, String> = labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            self.samples
                .iter()
                .find(|s| s.name == name && s.labels == wanted)
                .map(|s| s.value)
        }

        pub fn kind(&self, family: &str) -> Option<&str> {
            self.families.get(family)?.kind.as_deref()
        }

        /// `(le, count)` of histogram `family` for `labels` (without `le`), by `le`.
        pub fn buckets(&self, family: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
            let name = format!("{family}_bucket");
            let mut out: Vec<(f64, f64)> = self
                .samples
                .iter()
                .filter(|s| s.name == name)
                .filter(|s| {
                    s.labels.len() == labels.len() + 1
                        && labels
                            .iter()
                            .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
                })
                .filter_map(|s| Some((number(s.labels.get("le")?)?, s.value)))
                .collect();
            out.sort_by(|a, b| a.0.total_cmp(&b.0));
            out
        }
    }

    /// A sample value or `le` bound: a Go float, `+Inf`, `-Inf` or `NaN`.
    pub fn number(text: &str) -> Option<f64> {
        match text {
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            "NaN" => Some(f64::NAN),
            _ if text
                .bytes()
                .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
                && text.bytes().any(|b| b.is_ascii_digit()) =>
            {
                text.parse().ok()
            }
            _ => None,
        }
    }

    fn is_metric_name(name: &str) -> bool {
        let mut chars = name.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    fn is_label_name(name: &str) -> bool {
        let mut chars = name.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    fn is_blank(c: char) -> bool {
        c == ' ' || c == '\t'
    }

    /// The first blank-separated token and the rest after its blanks.
    fn token(text: &str) -> (&str, &str) {
        let text = text.trim_start_matches(is_blank);
        match text.find(is_blank) {
            Some(end) => (&text[..end], text[end..].trim_start_matches(is_blank)),
            None => (text, ""),
        }
    }

    /// HELP text: `\\` and `\n` are its only escapes.
    fn unescape_help(text: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                other => return Err(format!("invalid escape \\{other:?} in HELP text")),
            }
        }
        Ok(out)
    }

    /// The family a sample belongs to: its own name, or a histogram's or
    /// summary's name for the `_bucket`, `_sum` and `_count` series.
    fn family_of(name: &str, families: &BTreeMap<String, Family>) -> String {
        if families.contains_key(name) {
            return name.to_owned();
        }
        for (suffix, kinds) in [
            ("_bucket", &["histogram"][..]),
            ("_sum", &["histogram", "summary"][..]),
            ("_count", &["histogram", "summary"][..]),
        ] {
            if let Some(base) = name.strip_suffix(suffix)
                && let Some(kind) = families.get(base).and_then(|f| f.kind.as_deref())
                && kinds.contains(&kind)
            {
                return base.to_owned();
            }
        }
        name.to_owned()
    }

    fn parse_sample(line: &str) -> Result<Sample, String> {
        let name_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(line.len());
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(format!("invalid metric name {name:?}"));
        }
        let mut rest = line[name_end..].trim_start_matches(is_blank);
        let mut labels = BTreeMap::new();
        if let Some(inside) = rest.strip_prefix('{') {
            let mut chars = inside.char_indices().peekable();
            let skip_blanks = |chars: &mut std::iter::Peekable<std::str::CharIndices>| {
                while chars.next_if(|&(_, c)| is_blank(c)).is_some() {}
            };
            let end = loop {
                skip_blanks(&mut chars);
                let Some(&(start, c)) = chars.peek() else {
                    return Err("labels are not closed".to_owned());
                };
                if c == '}' {
                    break start + 1;
                }
                let mut label = String::new();
                while let Some((_, c)) =
                    chars.next_if(|&(_, c)| c.is_ascii_alphanumeric() || c == '_')
                {
                    label.push(c);
                }
                if !is_label_name(&label) || label.starts_with("__") {
                    return Err(format!("invalid label name {label:?}"));
                }
                skip_blanks(&mut chars);
                if chars.next().map(|(_, c)| c) != Some('=') {
                    return Err(format!("no = after label {label}"));
                }
                skip_blanks(&mut chars);
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(format!("the value of label {label} is not quoted"));
                }
                let mut value = String::new();
                loop {
                    match chars.next().map(|(_, c)| c) {
                        None => return Err(format!("the value of label {label} is not closed")),
                        Some('"') => break,
                        Some('\\') => match chars.next().map(|(_, c)| c) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            other => {
                                return Err(format!(
                                    "invalid escape \\{other:?} in the value of label {label}"
                                ));
                            }
                        },
                        Some(c) => value.push(c),
                    }
                }
                if labels.insert(label.clone(), value).is_some() {
                    return Err(format!("label {label} appears twice"));
                }
                skip_blanks(&mut chars);
                match chars.next() {
                    Some((_, ',')) => {}
                    Some((i, '}')) => break i + 1,
                    _ => return Err(format!("no , or }} after label {label}")),
                }
            };
            rest = &inside[end..];
            if !rest.starts_with(is_blank) {
                return Err("no blank between labels and value".to_owned());
            }
        } else if !line[name_end..].starts_with(is_blank) {
            return Err("no blank between name and value".to_owned());
        }
        let (value, rest) = token(rest);
        let value = number(value).ok_or_else(|| format!("invalid value {value:?}"))?;
        let (timestamp, rest) = token(rest);
        if !timestamp.is_empty() && timestamp.parse::<i64>().is_err() {
            return Err(format!("invalid timestamp {timestamp:?}"));
        }
        if !rest.is_empty() {
            return Err(format!("unexpected {rest:?} after the value"));
        }
        Ok(Sample {
            name: name.to_owned(),
            labels,
            value,
        })
    }

    pub fn parse(text: &str) -> Result<Exposition, String> {
        if !text.is_empty() && !text.ends_with('\n') {
            return Err("the last line does not end with a line feed".to_owned());
        }
        let mut out = Exposition::default();
        // Families whose samples have started; the one being read now.
        let mut started: BTreeSet<String> = BTreeSet::new();
        let mut current: Option<String> = None;
        let mut series: BTreeSet<(String, Labels)> = BTreeSet::new();
        for (n, raw) in text.split_terminator('\n').enumerate() {
            let fail = |why: String| format!("line {}: {why}: {raw:?}", n + 1);
            if raw.contains('\r') {
                return Err(fail("carriage return".to_owned()));
            }
            let line = raw.trim_start_matches(is_blank);
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let (keyword, rest) = token(comment);
                if keyword != "HELP" && keyword != "TYPE" {
                    continue;
                }
                let (name, rest) = token(rest);
                if !is_metric_name(name) {
                    return Err(fail(format!("invalid metric name {name:?}")));
                }
                if started.contains(name) {
                    return Err(fail(format!("{keyword} of {name} after its samples")));
                }
                let family = out.families.entry(name.to_owned()).or_default();
                if keyword == "HELP" {
                    if family.help.is_some() {
                        return Err(fail(format!("second HELP of {name}")));
                    }
                    family.help = Some(unescape_help(rest).map_err(fail)?);
                } else {
                    let (kind, extra) = token(rest);
                    if !KINDS.contains(&kind) || !extra.is_empty() {
                        return Err(fail(format!("invalid type {rest:?}")));
                    }
                    if family.kind.is_some() {
                        return Err(fail(format!("second TYPE of {name}")));
                    }
                    family.kind = Some(kind.to_owned());
                }
                continue;
            }
            let sample = parse_sample(line).map_err(fail)?;
            let family = family_of(&sample.name, &out.families);
            let kind = out.families.get(&family).and_then(|f| f.kind.as_deref());
            match kind {
                Some("histogram") if sample.name == family => {
                    return Err(fail(
                        "a histogram sample without _bucket, _sum or _count".to_owned(),
                    ));
                }
                Some("histogram")
                    if sample.name.ends_with("_bucket")
                        && sample.labels.get("le").and_then(|le| number(le)).is_none() =>
                {
                    return Err(fail("a bucket without a numeric le label".to_owned()));
                }
                Some("summary")
                    if sample.name == family
                        && sample
                            .labels
                            .get("quantile")
                            .and_then(|q| number(q))
                            .is_none() =>
                {
                    return Err(fail("a summary sample without a quantile label".to_owned()));
                }
                _ => {}
            }
            if current.as_deref() != Some(family.as_str()) {
                if started.contains(&family) {
                    return Err(fail(format!("the samples of {family} are not together")));
                }
                started.insert(family.clone());
                current = Some(family);
            }
            let key = (sample.name.clone(), sample.labels.clone());
            if !series.insert(key) {
                return Err(fail("the same series twice".to_owned()));
            }
            out.samples.push(sample);
        }
        Ok(out)
    }

    /// Every histogram: per label set, buckets cumulative by `le`, a `+Inf`
    /// bucket equal to `_count`, and a `_sum`.
    pub fn check_histograms(exposition: &Exposition) -> Result<(), String> {
        for (family, _) in exposition
            .families
            .iter()
            .filter(|(_, f)| f.kind.as_deref() == Some("histogram"))
        {
            let bucket_name = format!("{family}_bucket");
            let mut groups: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
            for sample in exposition.samples.iter().filter(|s| s.name == bucket_name) {
                let mut labels = sample.labels.clone();
                let le = labels
                    .remove("le")
                    .and_then(|le| number(&le))
                    .unwrap_or(f64::NAN);
                groups.entry(labels).or_default().push((le, sample.value));
            }
            for (labels, mut buckets) in groups {
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                if buckets
                    .windows(2)
                    .any(|w| w[0].0 == w[1].0 || w[0].1 > w[1].1)
                {
                    return Err(format!(
                        "{family}{labels:?}: buckets are not cumulative: {buckets:?}"
                    ));
                }
                let Some(&(last_le, last)) = buckets.last() else {
                    continue;
                };
                if last_le != f64::INFINITY {
                    return Err(format!("{family}{labels:?}: no +Inf bucket"));
                }
                let with = |suffix: &str| {
                    let name = format!("{family}{suffix}");
                    exposition
                        .samples
                        .iter()
                        .find(|s| s.name == name && s.labels == labels)
                        .map(|s| s.value)
                };
                if with("_count") != Some(last) {
                    return Err(format!(
                        "{family}{labels:?}: _count {:?} is not the +Inf bucket {last}",
                        with("_count")
                    ));
                }
                if with("_sum").is_none() {
                    return Err(format!("{family}{labels:?}: no _sum"));
                }
            }
        }
        Ok(())
    }

    /// The reader itself: what it must accept, and what it must refuse.
    #[test]
    fn the_exposition_reader_accepts_the_format_and_refuses_malformed_lines() {
        let good = "# HELP a_total Things, with \\\\ and \\n escaped.\n\
                    # TYPE a_total counter\n\
                    a_total{route=\"/x/{id}\",q=\"a \\\"b\\\" c\\\\d\\ne,f}\"} 3\n\
                    a_total{route=\"/y\",} 4 1700000000000\n\
                    \n\
                    # a comment\n\
                    # TYPE h histogram\n\
                    h_bucket{le=\"0.5\"} 1\n\
                    h_bucket{le=\"+Inf\"} 2\n\
                    h_sum 0.7\n\
                    h_count 2\n\
                    plain NaN\n";
        let parsed = parse(good).unwrap();
        check_histograms(&parsed).unwrap();
        assert_eq!(parsed.kind("a_total"), Some("counter"));
        assert_eq!(
            parsed.families["a_total"].help.as_deref(),
            Some("Things, with \\ and \n escaped.")
        );
        assert_eq!(
            parsed.value(
                "a_total",
                &[("route", "/x/{id}"), ("q", "a \"b\" c\\d\ne,f}")]
            ),
            Some(3.0)
        );
        assert_eq!(parsed.value("a_total", &[("route", "/y")]), Some(4.0));
        assert_eq!(
            parsed.buckets("h", &[]),
            vec![(0.5, 1.0), (f64::INFINITY, 2.0)]
        );

        for bad in [
            "a 1",                                // no final line feed
            "a 1\r\n",                            // CR
            "1a 1\n",                             // name
            "a{b=\"c\" 1\n",                      // labels not closed
            "a{b=c} 1\n",                         // unquoted value
            "a{b=\"c\\t\"} 1\n",                  // bad escape
            "a{b=\"c\"}1\n",                      // no blank before the value
            "a{b=\"c\",b=\"d\"} 1\n",             // label twice
            "a{2b=\"c\"} 1\n",                    // label name
            "a{b=\"c\" d=\"e\"} 1\n",             // no comma
            "a\n",                                // no value
            "a one\n",                            // value
            "a 1 2 3\n",                          // trailing junk
            "a 1 1.5\n",                          // timestamp
            "# TYPE a countr\n",                  // type
            "# TYPE a counter\n# TYPE a gauge\n", // second TYPE
            "# HELP a x\n# HELP a y\n",           // second HELP
            "# HELP a bad \\t escape\n",          // HELP escape
            "a 1\n# TYPE a counter\n",            // TYPE after samples
            "a 1\nb 1\na{x=\"y\"} 2\n",           // not together
            "a 1\na 2\n",                         // same series twice
            "# TYPE h histogram\nh 1\n",          // bare histogram sample
            "# TYPE h histogram\nh_bucket 1\n",   // bucket without le
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
        for bad in [
            // not cumulative
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
            // no +Inf
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n",
            // +Inf is not _count
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
        ] {
            let parsed = parse(bad).unwrap();
            assert!(check_histograms(&parsed).is_err(), "accepted {bad:?}");
        }
    }
}
