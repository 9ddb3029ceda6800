//! `totpd audit`: print the audit log, and follow it.
//!
//! It reads the database only (a SQLite file is opened read-only) and needs
//! no master key: the log holds nothing sealed.

use std::collections::{BTreeSet, VecDeque};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use totpd_store::ConnectOptions;
use totpd_vault::{AccountName, AuditPage, AuditQuery, AuditRow, Store};
use uuid::Uuid;

use crate::cli::AuditArgs;
use crate::config::{self, Locations};
use crate::serve::shutdown_signal;

/// How often `--follow` asks for new events.
const POLL: Duration = Duration::from_millis(500);
/// Events read per query while following.
const FOLLOW_PAGE: u32 = 1000;
/// Polls (of [`POLL`]) during which `--follow` still looks below the
/// newest id it printed. PostgreSQL hands out ids when rows are inserted,
/// not when they commit, so an event can appear after one with a higher id;
/// looking back this far (10 s) and skipping ids already printed catches
/// those without printing anything twice.
const LOOK_BACK_POLLS: usize = 20;

pub(crate) async fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let locations = Locations::resolve(&args.store)?;
    let options = ConnectOptions {
        max_connections: args.store.db_pool_size.max(1),
        acquire_timeout: Duration::from_secs(3),
    };
    let store = config::connect_read_only(&locations, &options).await?;
    let store = store.as_ref();
    let account = match &args.account {
        Some(name) => {
            // A name no account could have names no account.
            let found = match AccountName::parse(name) {
                Ok(valid) => store.account_by_name(valid.as_str()).await?,
                Err(_) => None,
            };
            Some(
                found
                    .with_context(|| format!("no account named {name:?}"))?
                    .id,
            )
        }
        None => None,
    };
    let filter = AuditQuery {
        action: args.action.clone(),
        secret_id: args.secret,
        key_id: args.key.clone(),
        since: args.since,
        until: None,
        page: AuditPage::Newest,
        limit: args.limit,
    };
    let mut newest = page(store, account, &filter).await?;
    newest.reverse();
    for row in &newest {
        print_event(row, args.json);
    }
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let mut seen: BTreeSet<i64> = newest.iter().map(|row| row.id).collect();
    let mut look_back: VecDeque<i64> = VecDeque::new();
    let mut low = newest.iter().map(|row| row.id).min().map_or(0, |id| id - 1);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(ExitCode::SUCCESS),
            () = tokio::time::sleep(POLL) => {}
        }
        let mut after = low;
        loop {
            let query = AuditQuery {
                page: AuditPage::After(after),
                limit: FOLLOW_PAGE,
                ..filter.clone()
            };
            let rows = page(store, account, &query).await?;
            for row in &rows {
                if seen.insert(row.id) {
                    print_event(row, args.json);
                }
            }
            match rows.last() {
                Some(last) if rows.len() == FOLLOW_PAGE as usize => after = last.id,
                _ => break,
            }
        }
        look_back.push_back(seen.last().copied().unwrap_or(low));
        if look_back.len() > LOOK_BACK_POLLS
            && let Some(settled) = look_back.pop_front()
        {
            low = low.max(settled);
            seen = seen.split_off(&(low + 1));
        }
    }
}

async fn page(
    store: &dyn Store,
    account: Option<Uuid>,
    query: &AuditQuery,
) -> anyhow::Result<Vec<AuditRow>> {
    let rows = match account {
        Some(account) => store.list_audit(account, query).await?,
        None => store.list_audit_all(query).await?,
    };
    Ok(rows)
}

fn print_event(row: &AuditRow, json: bool) {
    let r = &row.record;
    let at = rfc3339_millis(r.at);
    if json {
        let object = serde_json::json!({
            "id": row.id,
            "at": at,
            "account_id": r.account_id.map(|id| id.to_string()),
            "action": r.action,
            "outcome": r.outcome,
            "key_id": r.key_id,
            "role": r.role,
            "secret_id": r.secret_id.map(|id| id.to_string()),
            "remote_addr": r.remote_addr,
            "user_agent": r.user_agent,
            "request_id": r.request_id,
        });
        println!("{object}");
        return;
    }
    let or_dash = |v: Option<&str>| v.map_or_else(|| "-".to_owned(), str::to_owned);
    println!(
        "{id} {at} {action} {outcome} key={key} role={role} secret={secret} addr={addr} request={request} agent={agent:?}",
        id = row.id,
        action = r.action,
        outcome = r.outcome,
        key = or_dash(r.key_id.as_deref()),
        role = or_dash(r.role.as_deref()),
        secret = r
            .secret_id
            .map_or_else(|| "-".to_owned(), |id| id.to_string()),
        addr = or_dash(r.remote_addr.as_deref()),
        request = or_dash(r.request_id.as_deref()),
        agent = r.user_agent.as_deref().unwrap_or(""),
    );
}

/// `2026-01-01T00:00:00.123Z`.
fn rfc3339_millis(ms: i64) -> String {
    totpd_vault::UnixTime(ms).rfc3339_millis()
}
