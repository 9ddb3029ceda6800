//! One-shot CLI commands with a clean environment and a timeout, and signals.

use std::io::{BufRead as _, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::BIN;

/// How long a process may take to exit once asked to (or a CLI command to run).
pub(super) const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// What a CLI command did.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `totpd ARGS` exactly as given (no `--data-dir` or `--database`
/// added, e.g. `totpd migrate`) with a clean environment.
pub fn run_totpd(args: &[&str]) -> CliOutput {
    let mut command = Command::new(BIN);
    command.args(args).stdin(Stdio::null());
    clear_totpd_env(&mut command);
    run_to_completion(command, &format!("totpd {}", args.join(" ")))
}

/// `run_totpd` with `vars` set in the child's environment (after the
/// developer's `TOTPD_` variables were cleared).
pub fn run_totpd_with_env(args: &[&str], vars: &[(&str, &str)]) -> CliOutput {
    let mut command = Command::new(BIN);
    command.args(args).stdin(Stdio::null());
    clear_totpd_env(&mut command);
    command.envs(vars.iter().copied());
    run_to_completion(command, &format!("totpd {}", args.join(" ")))
}

/// Drops every `TOTPD_` variable of the developer's shell from a child's
/// environment, so a test's process sees only what the test gives it.
pub(super) fn clear_totpd_env(command: &mut Command) {
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("TOTPD_") {
            command.env_remove(var);
        }
    }
}

pub(super) fn run_to_completion(mut command: Command, what: &str) -> CliOutput {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("could not run {what}: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(EXIT_TIMEOUT) {
        Ok(Ok(output)) => CliOutput {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        },
        Ok(Err(e)) => panic!("{what}: {e}"),
        Err(_) => {
            signal(pid, "KILL");
            panic!("{what} did not finish within {EXIT_TIMEOUT:?}");
        }
    }
}

/// The lines a child prints on `output` (its piped stdout or stderr), each
/// as soon as it is printed, until the pipe closes.
pub fn lines_of(output: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Sends a signal to one process by its id (`kill -SIG PID`).
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

pub(super) fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the server") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What `totpd serve --help` prints (it must succeed).
pub fn serve_help() -> String {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .expect("run totpd serve --help");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}
