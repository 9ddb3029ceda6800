//! `totpd`: a self-hosted TOTP vault for AI agents and automation.
//!
//! `main` only parses arguments and hands over to [`run`]; each subcommand
//! lives in its own module.

mod audit_cmd;
mod backup_cmd;
#[cfg(feature = "bench-bare")]
mod bench_seed;
mod cli;
mod config;
mod import_cmd;
mod keys_cmd;
mod log_sink;
mod mcp_cmd;
mod migrate_cmd;
mod otp_cmd;
mod redact;
mod rekey_cmd;

mod serve;
mod server;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, KeysCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("totpd: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Otp(args) => otp_cmd::run(args),
        Command::Mcp(args) => runtime()?.block_on(mcp_cmd::run(args)),
        #[cfg(feature = "bench-bare")]
        Command::BenchSeed(args) => runtime()?.block_on(bench_seed::run(args)),
        Command::Audit(args) => runtime()?.block_on(audit_cmd::run(args)),
        Command::Migrate(args) => runtime()?.block_on(migrate_cmd::run(args)),
        Command::Serve(args) => runtime()?.block_on(serve::run(args)),
        Command::Rekey(args) => runtime()?.block_on(rekey_cmd::run(args)),
        Command::Backup(args) => runtime()?.block_on(backup_cmd::backup(args)),
        Command::Import(args) => runtime()?.block_on(import_cmd::run(args)),
        Command::Restore(args) => runtime()?.block_on(backup_cmd::restore(args)),
        Command::Keys(KeysCommand::Create(args)) => runtime()?.block_on(keys_cmd::create(args)),
        Command::Keys(KeysCommand::List(args)) => runtime()?.block_on(keys_cmd::list(args)),
        Command::Keys(KeysCommand::Revoke(args)) => runtime()?.block_on(keys_cmd::revoke(args)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")
}
