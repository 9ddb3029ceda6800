//! `totpd rekey [--status] [--json]`: master-key rotation.
//!
//! The key setting (key file or `TOTPD_MASTER_KEY`) is a ring whose first
//! key seals. `rekey` re-seals, under that key and with the current
//! associated data, every secret sealed otherwise, batch by batch (each
//! row by one conditional `UPDATE`, so serving nodes and a concurrent or
//! interrupted run are safe), then the key check record (the pepper).
//! Progress goes to standard error, the outcome to standard output.
//!
//! Order of a rotation, which the nodes rely on: every node must already
//! hold the new key in its ring (first) before `rekey` runs, since a node
//! without it cannot open a secret once it is re-sealed; the old key may go
//! once `--status` shows no row under it.

use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::json;
use totpd_vault::{SealStatus, Vault};

use crate::cli::RekeyArgs;
use crate::config::{self, Locations};

pub(crate) async fn run(args: RekeyArgs) -> anyhow::Result<ExitCode> {
    let (store, locations) = config::connect_store(&args.store).await?;
    let ring = config::configured_ring(&locations)?.with_context(|| no_keys(&locations))?;
    if args.status {
        let status = Vault::seal_status(store.as_ref(), &ring).await?;
        if args.json {
            println!("{}", status_json(&status));
        } else {
            print!("{}", status_text(&status));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !Vault::is_initialized(store.as_ref()).await? {
        anyhow::bail!(
            "the database {} holds no vault yet: there is nothing to re-seal",
            locations.database_for_display()
        );
    }
    let vault = config::open_with_ring(store.clone(), ring.clone(), &locations).await?;
    let before = Vault::seal_status(store.as_ref(), &ring).await?;
    let sealing = vault.master_key_id().to_owned();
    let total = before.secrets_to_reseal();

    let mut resealed = 0_u64;
    let mut changed_meanwhile = 0_u64;
    let mut failed = 0_u64;
    if total > 0 {
        eprintln!("totpd: rekey: 0/{total} secrets re-sealed under {sealing}");
        let mut after = None;
        loop {
            let batch = vault
                .rekey_batch(after, args.batch_size)
                .await
                .context("a batch of the rekey failed; run totpd rekey again to go on")?;
            for (id, why) in &batch.failed {
                eprintln!("totpd: rekey: secret {id} was not re-sealed: {why}");
            }
            resealed += batch.resealed;
            changed_meanwhile += batch.changed_meanwhile;
            failed += u64::try_from(batch.failed.len()).unwrap_or(u64::MAX);
            if batch.needed > 0 {
                eprintln!("totpd: rekey: {resealed}/{total} secrets re-sealed under {sealing}");
            }
            match batch.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    let pepper = vault
        .rekey_pepper()
        .await
        .context("could not re-seal the key check record")?;
    if pepper {
        eprintln!("totpd: rekey: key check record re-sealed under {sealing}");
    }
    // API-key rows of hash version 1 (made before keys were bound to their
    // account and role) are rewritten as the current version; that needs
    // the pepper only, not the keys' secrets. Version-2 rows are rewritten
    // on their next use.
    let rehashed = vault
        .upgrade_legacy_key_hashes()
        .await
        .context("could not upgrade the API-key hashes of an earlier version")?;
    if rehashed > 0 {
        eprintln!("totpd: rekey: {rehashed} API keys of hash version 1 upgraded");
    }

    if resealed == 0 && !pepper && failed == 0 && rehashed == 0 {
        println!(
            "nothing to re-seal: every secret and the key check record are sealed by {sealing} with the current associated data"
        );
    } else {
        let mut line = format!("re-sealed {resealed} secrets under {sealing}");
        if pepper {
            line.push_str(", and the key check record");
        }
        if rehashed > 0 {
            line.push_str(&format!(
                "; upgraded {rehashed} API-key hashes of version 1"
            ));
        }
        if changed_meanwhile > 0 {
            line.push_str(&format!(
                "; {changed_meanwhile} changed (deleted or rewritten) while being re-sealed and were left as they are"
            ));
        }
        println!("{line}");
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} secrets could not be re-sealed (listed above); see totpd rekey --status"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn no_keys(locations: &Locations) -> String {
    format!(
        "no master key: {}; totpd rekey needs the keys of the vault, the new sealing key first",
        config::master_key_source(locations)
    )
}

/// A key id with what it is to the ring.
fn mark(status: &SealStatus, key_id: &str) -> String {
    if key_id == status.sealing_key_id() {
        format!("{key_id} (sealing key)")
    } else if status.ring_holds(key_id) {
        key_id.to_owned()
    } else {
        format!("{key_id} (NOT in the given keys)")
    }
}

fn status_text(status: &SealStatus) -> String {
    let mut out = String::new();
    let ring: Vec<String> = status.ring.iter().map(|id| mark(status, id)).collect();
    out.push_str(&format!("master keys given: {}\n", ring.join(", ")));
    match &status.pepper_key_id {
        Some(id) => out.push_str(&format!(
            "key check record: sealed by {}\n",
            mark(status, id)
        )),
        None => out.push_str("key check record: none (the database holds no vault yet)\n"),
    }
    out.push_str("secrets:\n");
    if status.secrets.is_empty() {
        out.push_str("  none\n");
    }
    for count in &status.secrets {
        let version = if count.aad_version == status.current_aad_version {
            format!("v{} (current)", count.aad_version)
        } else {
            format!("v{}", count.aad_version)
        };
        out.push_str(&format!(
            "  {:>10}  sealed by {}, associated data {version}\n",
            count.rows,
            mark(status, &count.key_id)
        ));
    }
    out.push_str("api keys:\n");
    if status.api_keys.is_empty() {
        out.push_str("  none\n");
    }
    for (version, rows) in &status.api_keys {
        let current = if *version == status.current_hash_version {
            " (current)"
        } else {
            ""
        };
        out.push_str(&format!("  {rows:>10}  hash v{version}{current}\n"));
    }
    let to_reseal = status.secrets_to_reseal();
    let pepper = if status.pepper_to_reseal() {
        " and the key check record"
    } else {
        ""
    };
    if to_reseal == 0 && pepper.is_empty() {
        out.push_str("to re-seal: nothing\n");
    } else {
        out.push_str(&format!("to re-seal: {to_reseal} secrets{pepper}\n"));
    }
    let missing = status.missing_keys();
    if !missing.is_empty() {
        out.push_str(&format!(
            "rows sealed by keys not given (they cannot be opened): {}\n",
            missing.join(", ")
        ));
    }
    out
}

fn status_json(status: &SealStatus) -> serde_json::Value {
    let sealing = status.sealing_key_id();
    json!({
        "sealing_key_id": sealing,
        "ring": status.ring,
        "pepper": status.pepper_key_id.as_ref().map(|id| json!({
            "key_id": id,
            "sealing": id == sealing,
            "in_ring": status.ring_holds(id),
        })),
        "secrets": status.secrets.iter().map(|c| json!({
            "key_id": c.key_id,
            "aad_version": c.aad_version,
            "rows": c.rows,
            "sealing": c.key_id == sealing,
            "in_ring": status.ring_holds(&c.key_id),
        })).collect::<Vec<_>>(),
        "api_keys": status.api_keys.iter().map(|(version, rows)| json!({
            "hash_version": version,
            "rows": rows,
            "current": *version == status.current_hash_version,
        })).collect::<Vec<_>>(),
        "current_aad_version": status.current_aad_version,
        "current_hash_version": status.current_hash_version,
        "secrets_to_reseal": status.secrets_to_reseal(),
        "pepper_to_reseal": status.pepper_to_reseal(),
        "keys_not_in_ring": status.missing_keys(),
    })
}
