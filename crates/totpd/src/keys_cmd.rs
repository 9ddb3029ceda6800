//! `totpd keys create|list|revoke`: API key management against the same
//! database as `serve`, whether or not a server is running.

use std::process::ExitCode;

use totpd_vault::{
    AccountName, ApiKeyInfo, Clock as _, KeySpec, Scope, SystemClock, UnixTime, VaultError,
};

use crate::cli::{KeysCreateArgs, KeysListArgs, KeysRevokeArgs};
use crate::config::open_vault;

pub(crate) async fn create(args: KeysCreateArgs) -> anyhow::Result<ExitCode> {
    let (vault, _) = open_vault(&args.store).await?;
    let now = SystemClock.now();
    let spec = KeySpec {
        name: args.name.clone(),
        role: args.role,
        scope: if args.secrets.is_empty() {
            Scope::All
        } else {
            Scope::only(args.secrets.iter().copied())
        },
        expires_at: args.expires_in.map(|ms| UnixTime(now.0.saturating_add(ms))),
    };
    // An invalid name is refused with the rule as the whole message.
    let account = AccountName::parse(&args.account).map_err(anyhow::Error::new)?;
    let key = vault
        .create_api_key_with(&account, spec, now)
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
            "role": key.info.role,
            "name": key.info.name,
            "secret_ids": key.info.secret_ids,
            "expires_at": key.info.expires_at.map(rfc3339),
        });
        println!("{object}");
    } else {
        println!(
            "Created an API key for account {:?}. The secret is shown only this once:",
            key.account.name
        );
        println!("  key id:     {}", key.key_id);
        println!("  key secret: {}", key.secret.expose());
        println!("  role:       {}", key.info.role);
        println!("  scope:      {}", scope_text(&key.info));
        println!(
            "  expires:    {}",
            key.info
                .expires_at
                .map_or_else(|| "never".to_owned(), rfc3339)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn list(args: KeysListArgs) -> anyhow::Result<ExitCode> {
    let (vault, _) = open_vault(&args.store).await?;
    let keys = vault.list_api_keys().await?;
    let now = SystemClock.now();
    if args.json {
        let rows: Vec<serde_json::Value> = keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "key_id": k.key_id,
                    "account": k.account_name,
                    "account_id": k.account_id.to_string(),
                    "role": k.role,
                    "name": k.name,
                    "secret_ids": k.secret_ids,
                    "created_at": rfc3339(k.created_at),
                    "expires_at": k.expires_at.map(rfc3339),
                    "revoked_at": k.revoked_at.map(rfc3339),
                    "last_used_at": k.last_used_at.map(rfc3339),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        println!(
            "{:<28} {:<20} {:<8} {:<12} {:<24} {:<24} {:<8} NAME",
            "KEY ID", "ACCOUNT", "ROLE", "SCOPE", "EXPIRES", "LAST USED", "STATUS"
        );
        for k in &keys {
            let status = if k.revoked_at.is_some() {
                "revoked"
            } else if k.expires_at.is_some_and(|at| at <= now) {
                "expired"
            } else {
                "active"
            };
            println!(
                "{:<28} {:<20} {:<8} {:<12} {:<24} {:<24} {:<8} {}",
                k.key_id,
                k.account_name,
                k.role,
                scope_text(k),
                k.expires_at.map_or_else(|| "never".to_owned(), rfc3339),
                k.last_used_at.map_or_else(|| "never".to_owned(), rfc3339),
                status,
                k.name.escape_debug(),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `all`, or how many secrets the key is scoped to.
fn scope_text(key: &ApiKeyInfo) -> String {
    match &key.secret_ids {
        None => "all".to_owned(),
        Some(ids) if ids.len() == 1 => "1 secret".to_owned(),
        Some(ids) => format!("{} secrets", ids.len()),
    }
}

/// RFC 3339 UTC with milliseconds, as the API writes times.
fn rfc3339(t: UnixTime) -> String {
    t.rfc3339_millis()
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
