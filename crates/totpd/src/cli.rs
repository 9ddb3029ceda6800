//! Command-line interface. The forms here are a contract: tests and tools
//! outside the project rely on them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::otp_cmd::OtpArgs;

const MCP_ENV_HELP: &str = "\
Environment:
  TOTPD_URL               base URL of the totpd server (--url)
  TOTPD_KEY_ID            API key id (--key-id)
  TOTPD_KEY_SECRET        API key secret (never on the command line)
  TOTPD_API_KEY           <key_id>.<secret>, instead of the two above
  TOTPD_MCP_ALLOW_DELETE  offer delete_totp_secret (--allow-delete)";

const ENV_HELP: &str = "\
Environment:
  TOTPD_LISTEN           address to listen on (serve)
  TOTPD_DATA_DIR         data directory
  TOTPD_DATABASE_URL     database URL (sqlite://PATH or postgres://...)
  TOTPD_MASTER_KEY       base64 of the 32-byte master key; wins over the key file.
                         Several keys, comma-separated, form a ring for rotation:
                         the first seals, any opens (see totpd rekey)
  TOTPD_MASTER_KEY_FILE  path of the master key file
  TOTPD_LOG              log filter, e.g. info, debug, totpd_api=debug (default info)
  TOTPD_LOG_FORMAT       text (default) or json
  TOTPD_MAX_SECRETS_PER_ACCOUNT  most secrets per account (serve; default 1000000)
  TOTPD_AUDIT_RETENTION  days audit events are kept (serve; default 365)";

/// A self-hosted TOTP vault for AI agents and automation.
///
/// Enroll a 2FA secret once; agents then fetch the current code over HTTP
/// (Sendblue-compatible `/api/v2/totp` API).
#[derive(Debug, Parser)]
#[command(name = "totpd", version, after_help = ENV_HELP)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the HTTP server.
    #[command(after_help = ENV_HELP)]
    Serve(ServeArgs),
    /// Copy an installation into an empty database (e.g. SQLite to PostgreSQL) and verify it.
    ///
    /// The source is read as one consistent snapshot, so a copy taken while
    /// serve runs is consistent, but writes made after the snapshot are not
    /// in it: stop serve first to lose none. The copy is one transaction on
    /// the target; every row is compared with the source before it commits,
    /// and on any failure the target is left empty, ready for another try.
    /// No message contains a password of either URL.
    Migrate(MigrateArgs),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the audit log: the newest events, oldest first, one per line.
    ///
    /// With --follow, keeps printing events as they are recorded (by any
    /// node) until SIGINT or SIGTERM, then exits 0. Reads the database only
    /// (a SQLite file is opened read-only) and needs no master key. Never
    /// prints a code, a secret or a key secret: the log holds none.
    #[command(after_help = ENV_HELP)]
    Audit(AuditArgs),
    /// Re-seal every ciphertext under the first master key (rotation), while nodes serve.
    ///
    /// Rotation: (1) put the new key FIRST in the key setting of every node
    /// (key file: one key per line; TOTPD_MASTER_KEY: comma-separated),
    /// keeping the old key after it, and restart the nodes one by one; (2)
    /// run totpd rekey with the same keys; (3) once totpd rekey --status
    /// shows no row under the old key, remove it everywhere. Each secret is
    /// rewritten by one conditional UPDATE, in batches, so a killed run can
    /// simply be run again, and a second run changes nothing. Rows of
    /// earlier associated-data versions are upgraded too. Progress goes to
    /// standard error.
    #[command(after_help = ENV_HELP)]
    Rekey(RekeyArgs),
    /// Write a consistent snapshot of the installation to a new SQLite file, while serve runs.
    ///
    /// Works from SQLite and PostgreSQL alike. Ciphertexts are copied as
    /// stored: the backup is useless without the master key, which it does
    /// not contain (back that up separately). The copy is verified against
    /// the snapshot before the file appears under its name (mode 0600);
    /// writes made after the snapshot are not in it.
    #[command(after_help = ENV_HELP)]
    Backup(BackupArgs),
    /// Fill an empty database from a file written by totpd backup, and verify it.
    ///
    /// The target is the database of the store options (--database, or the
    /// SQLite file in --data-dir); it must hold no data, and is left empty
    /// if anything fails. The master key setting must open the backup:
    /// that is checked before anything is copied.
    #[command(after_help = ENV_HELP)]
    Restore(RestoreArgs),
    /// Import secrets from files: QR screenshots, otpauth:// lists and authenticator exports.
    ///
    /// Formats: qr (PNG, JPEG or WebP with one or more QR codes), otpauth
    /// (one URI per line), google (otpauth-migration:// URIs), aegis, 2fas,
    /// andotp, bitwarden, 1pux, ente and proton, plain or password-encrypted;
    /// auto (the default) detects each file's format. Works against the same
    /// database as serve, running or not. Each file is imported in one
    /// transaction: an entry whose key bytes the account already holds is a
    /// duplicate and is not stored again, an entry the vault cannot serve
    /// (Steam, mOTP, ...) is listed as invalid with the reason. Shows a
    /// progress bar on a terminal and a summary table at the end; exits 1 if
    /// a file could not be read or stored (the other files are imported).
    #[command(after_help = ENV_HELP)]
    Import(ImportArgs),
    /// Serve MCP (Model Context Protocol) on stdin/stdout for an AI agent.
    ///
    /// Talks to a running totpd server over its HTTP API with one API key
    /// (give the agent an `agent` key scoped to its secrets: totpd keys
    /// create --account NAME --role agent --secret ID); never opens the
    /// database or the master key. Tools: list_totp_secrets, get_totp_code,
    /// add_totp_secret, verify_totp_code, and delete_totp_secret with
    /// --allow-delete. stdout carries only the protocol; errors go to
    /// stderr. At start the server is asked once for one secret: a missing
    /// URL or key, an unreachable server or a refused key exits 1 with the
    /// reason.
    #[command(after_help = MCP_ENV_HELP)]
    Mcp(McpArgs),
    /// Compute codes offline, like oathtool (no server, no database).
    Otp(OtpArgs),
    /// Fill an account with generated secrets (benchmark builds only).
    #[cfg(feature = "bench-bare")]
    #[command(hide = true)]
    BenchSeed(BenchSeedArgs),
}

/// Where the vault's state lives. Every command that touches the vault takes
/// these, with the same defaults and environment variables. (`Debug`, in
/// config.rs, hides the database password.)
#[derive(Clone, Args)]
pub(crate) struct StoreArgs {
    /// Data directory: holds the SQLite database and the master key file.
    /// Default: $XDG_DATA_HOME/totpd, else ~/.local/share/totpd.
    #[arg(long, env = "TOTPD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB. For
    /// PostgreSQL over a network add ?sslmode=verify-full (verify-ca at
    /// least; require does not check the certificate): a host other than
    /// this machine without either gets a warning at start.
    /// Default: sqlite://<data-dir>/totpd.db.
    #[arg(
        long,
        env = "TOTPD_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database: Option<String>,
    /// Master key file (base64 of 32 bytes; several keys, one per line, form
    /// a ring for rotation: the first seals, any opens). Default:
    /// <data-dir>/master.key, created with mode 0600 when a new database is
    /// initialised. TOTPD_MASTER_KEY, when set, wins over this file.
    #[arg(long, env = "TOTPD_MASTER_KEY_FILE", value_name = "PATH")]
    pub master_key_file: Option<PathBuf>,
    /// Largest number of pooled database connections.
    #[arg(
        long,
        env = "TOTPD_DB_POOL_SIZE",
        value_name = "N",
        default_value_t = 8,
        value_parser = clap::value_parser!(u32).range(1..=1024)
    )]
    pub db_pool_size: u32,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on. Listening beyond loopback exposes the vault to
    /// the network: put TLS in front of it.
    #[arg(
        long,
        env = "TOTPD_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: String,
    /// Do not create the `default` account and its owner key on an empty database.
    #[arg(long)]
    pub no_bootstrap: bool,
    /// Seconds a request may take before it is answered 503 (1 to 3600). A
    /// request that times out stores nothing; one whose write is already
    /// committing gets its real answer, late.
    #[arg(
        long,
        env = "TOTPD_REQUEST_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub request_timeout: u64,
    /// PEM file with the TLS certificate chain (leaf first). With --tls-key,
    /// serve HTTPS instead of HTTP; one without the other is an error.
    #[arg(long, env = "TOTPD_TLS_CERT", value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the TLS private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, env = "TOTPD_TLS_KEY", value_name = "PATH")]
    pub tls_key: Option<PathBuf>,
    /// Largest request line plus headers, in bytes; beyond, the answer is 431
    /// and the connection is closed.
    #[arg(
        long,
        env = "TOTPD_MAX_HEADER_BYTES",
        value_name = "BYTES",
        default_value_t = 16 * 1024,
        value_parser = clap::value_parser!(u32).range(1024..=1024 * 1024)
    )]
    pub max_header_bytes: u32,
    /// Largest request body, in bytes (1024 to 16 MiB); beyond, the answer
    /// is 413.
    #[arg(
        long,
        env = "TOTPD_MAX_BODY_BYTES",
        value_name = "BYTES",
        default_value_t = 64 * 1024,
        value_parser = clap::value_parser!(u32).range(1024..=16 * 1024 * 1024)
    )]
    pub max_body_bytes: u32,
    /// Most connections served at once (1 to 1048576). Beyond, new
    /// connections wait in the kernel's listen queue until one closes.
    #[arg(
        long,
        env = "TOTPD_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(1..=1_048_576)
    )]
    pub max_connections: u32,
    /// Most connections served at once from one client address (1 to
    /// 1048576; at most --max-connections applies). IPv6 addresses count
    /// per /64. Beyond, a new connection from that address is closed at
    /// once without an answer. Behind a proxy every client shares the
    /// proxy's address: raise it there.
    #[arg(
        long,
        env = "TOTPD_MAX_CONNECTIONS_PER_ADDRESS",
        value_name = "N",
        default_value_t = 256,
        value_parser = clap::value_parser!(u32).range(1..=1_048_576)
    )]
    pub max_connections_per_address: u32,
    /// Seconds a client has to complete the TLS handshake and to send a
    /// request's headers (1 to 3600); slower connections are closed.
    #[arg(
        long,
        env = "TOTPD_HEADER_READ_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub header_read_timeout: u64,
    /// Seconds a kept-alive connection may stay idle (no request in
    /// progress, nothing received) before it is closed (0 to 3600; the
    /// shorter of this and --header-read-timeout applies). 0: no keep-alive,
    /// every answer closes its connection.
    #[arg(
        long,
        env = "TOTPD_KEEP_ALIVE_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 5,
        value_parser = clap::value_parser!(u64).range(0..=3600)
    )]
    pub keep_alive_timeout: u64,
    /// Serve GET /metrics on this address only (e.g. 127.0.0.1:9100), and
    /// no longer on --listen. Default: /metrics is served on --listen.
    #[arg(long, env = "TOTPD_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Require `Authorization: Bearer TOKEN` on GET /metrics (16 to 256
    /// visible ASCII characters); others get 401. Prefer the environment
    /// variable: arguments show in the process list.
    #[arg(
        long,
        env = "TOTPD_METRICS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        value_parser = parse_secret_arg
    )]
    pub metrics_token: Option<SecretArg>,
    /// Requests per second of one API key, with bursts of as many; beyond,
    /// 429 with Retry-After. Counted per node. Default 0: no limit, one key
    /// may use the whole node. To cap keys handed to agents you do not fully
    /// trust, set a few times the busiest key's peak rate (e.g. 1000).
    #[arg(
        long,
        env = "TOTPD_RATE_LIMIT_PER_KEY",
        value_name = "N",
        default_value_t = totpd_api::RATE_LIMIT_PER_KEY
    )]
    pub rate_limit_per_key: u32,
    /// Failed authentications (credentials sent but wrong, unknown or
    /// revoked) of one key id from one client address (IPv6: its /64) within
    /// --auth-failure-window, after which that key id from that address gets
    /// 429 for the window, before its secret is checked. Other keys from the
    /// address keep working until the address as a whole has failed 10 times
    /// this limit; then only keys that authenticated from it during those
    /// failures are still served. Counted per node. 0: no lockout.
    #[arg(
        long,
        env = "TOTPD_AUTH_FAILURE_LIMIT",
        value_name = "N",
        default_value_t = totpd_api::AUTH_FAILURE_LIMIT
    )]
    pub auth_failure_limit: u32,
    /// Window of --auth-failure-limit, and how long a lockout lasts.
    #[arg(
        long,
        env = "TOTPD_AUTH_FAILURE_WINDOW",
        value_name = "SECONDS",
        default_value_t = totpd_api::AUTH_FAILURE_WINDOW.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub auth_failure_window: u64,
    /// Most secrets one account may hold; a create beyond is answered 403
    /// `quota_exceeded` and stores nothing. Exact under concurrent creates,
    /// on every node.
    #[arg(
        long,
        env = "TOTPD_MAX_SECRETS_PER_ACCOUNT",
        value_name = "N",
        default_value_t = totpd_vault::DEFAULT_MAX_SECRETS_PER_ACCOUNT,
        value_parser = clap::value_parser!(u64).range(1..=MAX_SECRETS_PER_ACCOUNT_CEILING)
    )]
    pub max_secrets_per_account: u64,
    /// Days audit events are kept (1 to 36500); each node deletes older
    /// ones at start and then hourly.
    #[arg(
        long,
        env = "TOTPD_AUDIT_RETENTION",
        value_name = "DAYS",
        default_value_t = 365,
        value_parser = clap::value_parser!(u32).range(1..=36_500)
    )]
    pub audit_retention: u32,
    /// Do not answer MCP (streamable HTTP) at /mcp.
    #[arg(long, env = "TOTPD_NO_MCP")]
    pub no_mcp: bool,
    /// Host header values /mcp accepts, comma-separated (names or
    /// host:port), against DNS rebinding. Default: localhost, 127.0.0.1 and
    /// ::1. Behind a proxy or on a network address, list the names clients
    /// use (e.g. totpd.example.com); `*` accepts any Host (only behind a
    /// proxy that checks it).
    #[arg(
        long,
        env = "TOTPD_MCP_ALLOWED_HOSTS",
        value_name = "HOSTS",
        value_delimiter = ','
    )]
    pub mcp_allowed_hosts: Vec<String>,
    /// Origin header values /mcp accepts, comma-separated
    /// (scheme://host[:port], `:*` for any port). Requests without Origin
    /// (MCP clients that are not browsers) always pass; by default every
    /// request with an Origin is refused (no web page may call /mcp).
    #[arg(
        long,
        env = "TOTPD_MCP_ALLOWED_ORIGINS",
        value_name = "ORIGINS",
        value_delimiter = ','
    )]
    pub mcp_allowed_origins: Vec<String>,
    /// List and run the delete_totp_secret tool on /mcp (the API key's
    /// role must still allow deleting: agent keys never may).
    #[arg(long, env = "TOTPD_MCP_ALLOW_DELETE")]
    pub mcp_allow_delete: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `totpd mcp`: an MCP server on stdin/stdout for one API key, talking to a
/// running totpd over HTTP(S).
#[derive(Debug, Args)]
pub(crate) struct McpArgs {
    /// Base URL of the running totpd server, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "TOTPD_URL", value_name = "URL")]
    pub url: Option<String>,
    /// The API key's id (with TOTPD_KEY_SECRET). Alternatively
    /// TOTPD_API_KEY=<key_id>.<secret>.
    #[arg(long, env = "TOTPD_KEY_ID", value_name = "KEY_ID")]
    pub key_id: Option<String>,
    /// Offer the delete_totp_secret tool (the key's role must still allow
    /// deleting: agent keys never may). Without it the tool is not listed.
    #[arg(long, env = "TOTPD_MCP_ALLOW_DELETE")]
    pub allow_delete: bool,
}

/// Highest accepted `--max-secrets-per-account`.
const MAX_SECRETS_PER_ACCOUNT_CEILING: u64 = 1_000_000_000;

/// An argument that is a secret: `Debug` never shows it, it is wiped from
/// memory when dropped, and it is checked after parsing (clap's own errors
/// would repeat the value).
#[derive(Clone)]
pub(crate) struct SecretArg(zeroize::Zeroizing<String>);

impl SecretArg {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

fn parse_secret_arg(text: &str) -> Result<SecretArg, std::convert::Infallible> {
    Ok(SecretArg(zeroize::Zeroizing::new(text.to_owned())))
}

/// Most a key's `--expires-in` may be: 100 years.
const MAX_EXPIRES_IN_DAYS: i64 = 36_500;

/// A duration like `30d`, `12h`, `90m` or `3600s`, in milliseconds.
pub(crate) fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let rule = || {
        format!(
            "{text:?} is not a duration: use a whole number and a unit, d, h, m or s (e.g. 30d, 12h, 90m, 3600s), at most {MAX_EXPIRES_IN_DAYS}d"
        )
    };
    let split = text.len().checked_sub(1).ok_or_else(rule)?;
    let (number, unit) = (
        text.get(..split).ok_or_else(rule)?,
        text.get(split..).ok_or_else(rule)?,
    );
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(rule());
    }
    let n: i64 = number.parse().map_err(|_| rule())?;
    let unit_ms: i64 = match unit {
        "d" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        "s" => 1_000,
        _ => return Err(rule()),
    };
    let ms = n.checked_mul(unit_ms).ok_or_else(rule)?;
    if ms <= 0 || ms > MAX_EXPIRES_IN_DAYS * 86_400_000 {
        return Err(rule());
    }
    Ok(ms)
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Create an API key (and its account, if new). The secret is shown once.
    #[command(after_help = ENV_HELP)]
    Create(KeysCreateArgs),
    /// List API keys (never their secrets) with role, scope, expiry and
    /// last use (uses are recorded every few seconds, so it may lag).
    #[command(after_help = ENV_HELP)]
    List(KeysListArgs),
    /// Revoke an API key; every node refuses it within a second.
    #[command(after_help = ENV_HELP)]
    Revoke(KeysRevokeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct KeysCreateArgs {
    /// Account name (1-64 of A-Z a-z 0-9 . _ -); created if it does not exist.
    #[arg(long, value_name = "NAME")]
    pub account: String,
    /// What the key may do: owner (everything), admin (everything but
    /// keys), agent (list and read secrets, get codes, create secrets) or
    /// verifier (only verify codes).
    #[arg(long, value_name = "ROLE", default_value = "owner")]
    pub role: totpd_vault::Role,
    /// A name for people, shown by `keys list` (at most 128 characters).
    #[arg(long, value_name = "N", default_value = "")]
    pub name: String,
    /// Scope the key to this secret id (UUID) of the account; repeat for
    /// more (at most 100). Without it the key sees every secret. A scoped
    /// key cannot create secrets.
    #[arg(long = "secret", value_name = "ID")]
    pub secrets: Vec<uuid::Uuid>,
    /// The key stops working this long from now: a whole number with a
    /// unit, d (days), h (hours), m (minutes) or s (seconds), e.g. 30d,
    /// 12h, 90m, 3600s; at most 36500d. Without it the key never expires.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
    pub expires_in: Option<i64>,
    /// Print exactly one JSON object: {"account","account_id","key_id","secret",
    /// "role","name","secret_ids","expires_at"} (secret_ids null for every
    /// secret; expires_at RFC 3339 or null).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The files to import.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Account to import into (1-64 of A-Z a-z 0-9 . _ -); created if it does
    /// not exist.
    #[arg(long, value_name = "NAME")]
    pub account: String,
    /// The files' format (auto detects each file's).
    #[arg(long, value_name = "F", default_value = "auto", value_parser = parse_import_format)]
    pub format: totpd_import::Format,
    /// A file holding the password of encrypted exports (its first line).
    /// Never given on the command line, where other users could read it.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Store nothing; show what would be imported.
    #[arg(long)]
    pub dry_run: bool,
    /// Store all of a file's entries or none of them.
    #[arg(long)]
    pub atomic: bool,
    /// Print one JSON object per file on standard output instead of the table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

fn parse_import_format(name: &str) -> Result<totpd_import::Format, String> {
    totpd_import::Format::from_name(name)
        .ok_or_else(|| format!("must be one of {}", totpd_import::Format::names()))
}

#[derive(Debug, Args)]
pub(crate) struct KeysListArgs {
    /// Print a JSON array instead of a table: per key "key_id", "account",
    /// "account_id", "role", "name", "secret_ids" (null: every secret),
    /// "created_at", "expires_at", "revoked_at", "last_used_at" (RFC 3339
    /// UTC or null).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub(crate) struct KeysRevokeArgs {
    /// The key id to revoke (tk_...).
    #[arg(value_name = "KEY_ID")]
    pub key_id: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Keep printing new events until SIGINT or SIGTERM.
    #[arg(long)]
    pub follow: bool,
    /// One JSON object per line: {"id","at","account_id","action","outcome",
    /// "key_id","role","secret_id","remote_addr","user_agent","request_id"}.
    #[arg(long)]
    pub json: bool,
    /// Only events of this account (by name). Default: every account, and
    /// failed authentications that name no key.
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// Only this action (code.read, secret.create, auth.failure, ...).
    #[arg(long, value_name = "ACTION")]
    pub action: Option<String>,
    /// Only events on this secret.
    #[arg(long, value_name = "ID")]
    pub secret: Option<uuid::Uuid>,
    /// Only events of this API key.
    #[arg(long = "key", value_name = "KEY_ID")]
    pub key: Option<String>,
    /// Only events at or after this time (RFC 3339, e.g. 2026-01-01T00:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_rfc3339)]
    pub since: Option<i64>,
    /// How many of the newest events to print first (1 to 1000).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    pub limit: u32,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RekeyArgs {
    /// Change nothing: count secrets (and the key check record) per sealing
    /// key id and associated-data version, and API keys per hash version,
    /// marking the current sealing key and ids the given keys do not hold.
    #[arg(long)]
    pub status: bool,
    /// With --status, print one JSON object instead of a table.
    #[arg(long, requires = "status")]
    pub json: bool,
    /// Secrets read and rewritten per transaction (1 to 10000).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 500,
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub batch_size: u32,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// An RFC 3339 time as Unix milliseconds.
fn parse_rfc3339(text: &str) -> Result<i64, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok())
        .ok_or_else(|| "expected an RFC 3339 time, e.g. 2026-01-01T00:00:00Z".to_owned())
}

#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// The backup file to create; an existing file is never overwritten.
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// The backup file (written by totpd backup); only read.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// (`Debug`, in config.rs, hides the database passwords.)
#[derive(Args)]
pub(crate) struct MigrateArgs {
    /// Source database URL, e.g. sqlite:///var/lib/totpd/totpd.db. Only read
    /// (a SQLite file is opened read-only), as one consistent snapshot.
    /// A URL with a password belongs in TOTPD_MIGRATE_FROM: command lines
    /// are visible to every local user (ps).
    #[arg(
        long,
        env = "TOTPD_MIGRATE_FROM",
        value_name = "URL",
        hide_env_values = true
    )]
    pub from: String,
    /// Target database URL, e.g. postgres://totpd@db/totpd; must be empty,
    /// and is left empty if the copy fails. A URL with a password belongs
    /// in TOTPD_MIGRATE_TO.
    #[arg(
        long,
        env = "TOTPD_MIGRATE_TO",
        value_name = "URL",
        hide_env_values = true
    )]
    pub to: String,
}

#[cfg(feature = "bench-bare")]
#[derive(Debug, Args)]
pub(crate) struct BenchSeedArgs {
    /// Account to fill (created if needed; a new key is printed as JSON).
    #[arg(long, value_name = "NAME")]
    pub account: String,
    /// Number of secrets to create.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub count: u64,
    /// Also print the ids of about N of the new secrets, spread evenly over
    /// the run (`sample_ids`), for benchmarks that ask for a random secret
    /// per request. Ids are random, so every k-th one created is a uniform
    /// sample of where the rows lie in the table.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub sample: u64,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[cfg(test)]
mod tests {
    use super::parse_duration_ms;

    #[test]
    fn durations_take_a_whole_number_and_one_unit() {
        assert_eq!(parse_duration_ms("30d"), Ok(30 * 86_400_000));
        assert_eq!(parse_duration_ms("12h"), Ok(12 * 3_600_000));
        assert_eq!(parse_duration_ms("90m"), Ok(90 * 60_000));
        assert_eq!(parse_duration_ms("3600s"), Ok(3_600_000));
        assert_eq!(parse_duration_ms("36500d"), Ok(36_500 * 86_400_000));
        for bad in [
            "",
            "d",
            "0s",
            "-1h",
            "1",
            "1w",
            "1.5h",
            "1 h",
            "36501d",
            "99999999999999999999d",
            "1hh",
            "é",
        ] {
            assert!(parse_duration_ms(bad).is_err(), "{bad:?}");
        }
    }
}
