//! `totpd bench-seed` (only in builds with the `bench-bare` feature): fills
//! an account with generated secrets through the vault itself (encrypted and
//! stored exactly as a create would), much faster than over HTTP, for the
//! benchmarks' scale runs.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use totpd_otp::{Algorithm, Digits, Period};
use totpd_vault::{AccountName, Label, NewSecret, Principal, Role, SecretSource};
use totpd_vault::{Clock as _, SystemClock};

use crate::cli::BenchSeedArgs;
use crate::config::open_vault;

/// Creates in flight at once, so the store can group them into few commits.
const IN_FLIGHT: usize = 256;

pub(crate) async fn run(args: BenchSeedArgs) -> anyhow::Result<ExitCode> {
    let (vault, _) = open_vault(&args.store).await?;
    let vault = Arc::new(vault);
    let account =
        AccountName::parse(&args.account).context("could not create the account's key")?;
    let key = vault
        .create_api_key(&account, SystemClock.now())
        .await
        .context("could not create the account's key")?;
    let principal = Principal::new(key.account.id, key.key_id.clone(), Role::Owner);
    let label = Label::parse("bench")?;
    let mut first_id = None;
    let stride = match args.sample {
        0 => None,
        n => Some(args.count.div_ceil(n).max(1)),
    };
    let mut sample_ids = Vec::new();
    let mut done_count = 0u64;
    let mut created = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    while created < args.count || !tasks.is_empty() {
        while created < args.count && tasks.len() < IN_FLIGHT {
            let vault = Arc::clone(&vault);
            let principal = principal.clone();
            let new = NewSecret {
                label: label.clone(),
                issuer: None,
                source: SecretSource::Generate,
                algorithm: Algorithm::Sha1,
                digits: Digits::default(),
                period: Period::default(),
                kind: totpd_vault::SecretKind::default(),
            };
            tasks.spawn(async move {
                vault
                    .create_secret(&principal, new, SystemClock.now())
                    .await
            });
            created += 1;
        }
        if let Some(done) = tasks.join_next().await {
            let secret = done.context("a seeding task failed")??;
            first_id.get_or_insert(secret.info.id);
            if stride.is_some_and(|k| done_count.is_multiple_of(k)) {
                sample_ids.push(secret.info.id.to_string());
            }
            done_count += 1;
        }
    }
    let object = serde_json::json!({
        "account": key.account.name,
        "key_id": key.key_id,
        "secret": key.secret.expose(),
        "count": args.count,
        "secret_id": first_id.map(|id| id.to_string()),
        "sample_ids": sample_ids,
    });
    println!("{object}");
    Ok(ExitCode::SUCCESS)
}
