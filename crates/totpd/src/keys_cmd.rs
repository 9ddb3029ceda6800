//! `totpd keys create|list|revoke`: API key management against the same
//! database as `serve`, whether or not a server is running.

use std::process::ExitCode;

use totpd_vault::VaultError;
use totpd_vault::{Clock as _, SystemClock};

use crate::cli::{KeysCreateArgs, KeysListArgs, KeysRevokeArgs};
use crate::config::open_vault;

pub(crate) async fn create(args: KeysCreateArgs) -> anyhow::Result<ExitCode> {
    let (vault, _) = open_vault(&args.store).await?;
    let key = vault
        .create_api_key(&args.account, SystemClock.now())
        .await
        .map_err(|e| match e {
            VaultError::Invalid(message) => anyhow::anyhow!(message),
            other => anyhow::Error::new(other),
        })?;
    if args.json {
        let object = serde_json::json!({
            "account": key.account.name,
            "account_id": key.account.id.to_string(),
            "key_id": key.key_id,
            "secret": key.secret.expose(),
        });
        println!("{object}");
    } else {
        println!(
            "Created an API key for account {:?}. The secret is shown only this once:",
            key.account.name
        );
        println!("  key id:     {}", key.key_id);
        println!("  key secret: {}", key.secret.expose());
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn list(args: KeysListArgs) -> anyhow::Result<ExitCode> {
    let (vault, _) = open_vault(&args.store).await?;
    let keys = vault.list_api_keys().await?;
    if args.json {
        let rows: Vec<serde_json::Value> = keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "key_id": k.key_id,
                    "account": k.account_name,
                    "account_id": k.account_id.to_string(),
                    "role": k.role,
                    "created_at": k.created_at.0,
                    "revoked_at": k.revoked_at.map(|t| t.0),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        println!("{:<28} {:<20} {:<8} STATUS", "KEY ID", "ACCOUNT", "ROLE");
        for k in &keys {
            let status = if k.revoked_at.is_some() {
                "revoked"
            } else {
                "active"
            };
            println!(
                "{:<28} {:<20} {:<8} {}",
                k.key_id, k.account_name, k.role, status
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn revoke(args: KeysRevokeArgs) -> anyhow::Result<ExitCode> {
    let (vault, _) = open_vault(&args.store).await?;
    match vault.revoke_api_key(&args.key_id, SystemClock.now()).await {
        Ok(()) => {
            println!("revoked {}", args.key_id);
            Ok(ExitCode::SUCCESS)
        }
        Err(VaultError::NotFound) => {
            anyhow::bail!("no active API key with id {:?}", args.key_id)
        }
        Err(other) => Err(other.into()),
    }
}
