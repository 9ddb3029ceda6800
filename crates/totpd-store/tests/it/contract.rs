//! The Store contract, the same for every backend.

use std::sync::Arc;

use totpd_vault::{
    ApiKeyHashUpgrade, ApiKeyRow, AuditQuery, AuditRecord, SecretRow, SecretUpdate, StoreError,
};
use uuid::Uuid;

use crate::db::{TestDb, for_each_backend, options};
use crate::rows::{account, api_key, secret};

for_each_backend!(
    ping_and_pool_status_answer,
    meta_insert_keeps_the_first_value,
    concurrent_account_inserts_all_return_the_stored_row,
    api_keys_are_stored_found_listed_and_revoked_once,
    a_key_hash_is_upgraded_only_while_the_row_holds_what_was_verified,
    a_key_name_scope_expiry_and_last_use_round_trip,
    key_uses_are_recorded_in_one_batch_and_only_move_forward,
    a_duplicate_key_id_is_a_conflict,
    a_secret_round_trips_and_is_found_only_under_its_account,
    a_secret_id_is_unique_across_accounts,
    a_secret_of_an_unknown_account_is_refused,
    secrets_list_oldest_first_and_only_the_accounts_own,
    delete_is_scoped_by_account_and_visible_at_once,
    an_update_changes_only_the_label_and_issuer_of_the_accounts_own_secret,
    concurrent_updates_of_different_fields_keep_both,
    dumps_return_everything_in_key_order_and_page_by_id,
    is_empty_sees_any_row,
    hotp_counters_are_handed_out_once_each_under_concurrency,
    a_totp_step_is_accepted_once_and_never_an_earlier_one,
    an_hotp_counter_moves_only_forward_past_a_match,
    failed_verifications_count_within_a_window_and_restart_after_it,
    a_skew_is_set_only_on_the_accounts_own_secret,
    a_create_within_the_quota_writes_its_record_and_one_over_it_nothing,
    an_import_skips_held_fingerprints_and_stores_the_rest_with_their_records,
    concurrent_imports_of_one_file_store_each_secret_once,
    an_import_over_the_quota_stores_nothing,
    fingerprints_are_set_only_where_missing,
);

async fn ping_and_pool_status_answer(db: &TestDb) {
    db.store.ping().await.unwrap();
    let status = db.store.pool_status();
    assert_eq!(status.max, options().max_connections, "{status:?}");
    assert!(status.size >= 1 && status.size <= status.max, "{status:?}");
    assert!(status.idle <= status.size, "{status:?}");
}

async fn meta_insert_keeps_the_first_value(db: &TestDb) {
    let store = &db.store;
    assert_eq!(store.get_meta("pepper").await.unwrap(), None);
    assert!(store.insert_meta("pepper", b"first").await.unwrap());
    assert!(!store.insert_meta("pepper", b"second").await.unwrap());
    assert_eq!(
        store.get_meta("pepper").await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
    assert!(store.insert_meta("empty", b"").await.unwrap());
    assert_eq!(store.get_meta("empty").await.unwrap(), Some(Vec::new()));
}

async fn concurrent_account_inserts_all_return_the_stored_row(db: &TestDb) {
    let racers: Vec<_> = (0..16)
        .map(|_| {
            let store = Arc::clone(&db.store);
            tokio::spawn(async move { store.insert_account(&account("racer")).await })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        winners.push(racer.await.unwrap().unwrap());
    }
    let stored = db.store.account_by_name("racer").await.unwrap().unwrap();
    assert!(winners.iter().all(|row| *row == stored), "{winners:?}");
    assert_eq!(db.store.count_accounts().await.unwrap(), 1);
    assert_eq!(db.store.account_by_name("nobody").await.unwrap(), None);

    // Inserting again later also answers with the stored row.
    let again = db.store.insert_account(&account("racer")).await.unwrap();
    assert_eq!(again, stored);
    let other = account("other");
    assert_eq!(db.store.insert_account(&other).await.unwrap(), other);
    assert_eq!(db.store.count_accounts().await.unwrap(), 2);
}

async fn api_keys_are_stored_found_listed_and_revoked_once(db: &TestDb) {
    let store = &db.store;
    let alice = store.insert_account(&account("alice")).await.unwrap();
    let bob = store.insert_account(&account("bob")).await.unwrap();
    let newer = api_key(&alice, "tk_b", 2_000);
    let older = api_key(&bob, "tk_c", 1_000);
    let tie = api_key(&alice, "tk_a", 2_000);
    for key in [&newer, &older, &tie] {
        store.insert_api_key(key).await.unwrap();
    }
    assert_eq!(store.api_key("tk_b").await.unwrap(), Some(newer.clone()));
    assert_eq!(store.api_key("tk_missing").await.unwrap(), None);

    let listed: Vec<(String, String)> = store
        .list_api_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|(key, name)| (key.key_id, name))
        .collect();
    let expected = [("tk_c", "bob"), ("tk_a", "alice"), ("tk_b", "alice")];
    assert_eq!(
        listed,
        expected.map(|(k, n)| (k.to_owned(), n.to_owned())),
        "oldest first, ties by key id"
    );

    assert!(store.revoke_api_key("tk_b", 5_000).await.unwrap());
    assert!(
        !store.revoke_api_key("tk_b", 6_000).await.unwrap(),
        "revoked twice"
    );
    assert!(!store.revoke_api_key("tk_missing", 6_000).await.unwrap());
    let revoked = store.api_key("tk_b").await.unwrap().unwrap();
    assert_eq!(
        revoked.revoked_at,
        Some(5_000),
        "the first revocation stands"
    );
    assert_eq!(
        store.api_key("tk_a").await.unwrap().unwrap().revoked_at,
        None
    );
}

async fn a_key_hash_is_upgraded_only_while_the_row_holds_what_was_verified(db: &TestDb) {
    let store = &db.store;
    let alice = store.insert_account(&account("alice")).await.unwrap();
    let mut old = api_key(&alice, "tk_old", 1_000);
    old.hash_version = 1;
    store.insert_api_key(&old).await.unwrap();
    let upgrade = ApiKeyHashUpgrade {
        key_id: old.key_id.clone(),
        account_id: old.account_id,
        role: old.role.clone(),
        old_hash: old.secret_hash.clone(),
        old_version: 1,
        new_hash: vec![9; 32],
        new_version: 2,
    };
    // Any field that differs from the row leaves it alone.
    let stale = [
        ApiKeyHashUpgrade {
            old_hash: vec![0; 32],
            ..upgrade.clone()
        },
        ApiKeyHashUpgrade {
            old_version: 2,
            ..upgrade.clone()
        },
        ApiKeyHashUpgrade {
            account_id: Uuid::new_v4(),
            ..upgrade.clone()
        },
        ApiKeyHashUpgrade {
            role: "agent".to_owned(),
            ..upgrade.clone()
        },
        ApiKeyHashUpgrade {
            key_id: "tk_other".to_owned(),
            ..upgrade.clone()
        },
    ];
    for attempt in &stale {
        assert!(
            !store.upgrade_api_key_hash(attempt).await.unwrap(),
            "{attempt:?}"
        );
    }
    assert_eq!(store.api_key("tk_old").await.unwrap(), Some(old.clone()));

    assert!(store.upgrade_api_key_hash(&upgrade).await.unwrap());
    let upgraded = store.api_key("tk_old").await.unwrap().unwrap();
    assert_eq!(
        (upgraded.secret_hash.clone(), upgraded.hash_version),
        (vec![9; 32], 2)
    );
    assert_eq!(
        (
            upgraded.account_id,
            upgraded.role.as_str(),
            upgraded.created_at
        ),
        (old.account_id, old.role.as_str(), old.created_at)
    );
    assert!(
        !store.upgrade_api_key_hash(&upgrade).await.unwrap(),
        "upgraded twice"
    );

    // A revoked key is never rewritten.
    let mut revoked = api_key(&alice, "tk_revoked", 1_000);
    revoked.hash_version = 1;
    store.insert_api_key(&revoked).await.unwrap();
    assert!(store.revoke_api_key("tk_revoked", 2_000).await.unwrap());
    let attempt = ApiKeyHashUpgrade {
        key_id: revoked.key_id.clone(),
        old_hash: revoked.secret_hash.clone(),
        ..upgrade.clone()
    };
    assert!(!store.upgrade_api_key_hash(&attempt).await.unwrap());
}

async fn a_key_name_scope_expiry_and_last_use_round_trip(db: &TestDb) {
    let store = &db.store;
    let alice = store.insert_account(&account("alice")).await.unwrap();
    let mut ids = vec![Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    ids.sort_unstable();
    let mut scoped = api_key(&alice, "tk_scoped", 1_000);
    scoped.role = "agent".to_owned();
    scoped.name = "CI runner \u{e9}".to_owned();
    scoped.secret_ids = Some(ids.clone());
    scoped.expires_at = Some(9_000_000_000_000);
    scoped.last_used_at = Some(2_000);
    store.insert_api_key(&scoped).await.unwrap();
    let mut none_listed = api_key(&alice, "tk_none", 1_001);
    none_listed.secret_ids = Some(Vec::new());
    store.insert_api_key(&none_listed).await.unwrap();
    let unnamed = ApiKeyRow {
        name: String::new(),
        ..api_key(&alice, "tk_all", 1_002)
    };
    store.insert_api_key(&unnamed).await.unwrap();

    for row in [&scoped, &none_listed, &unnamed] {
        assert_eq!(
            store.api_key(&row.key_id).await.unwrap().as_ref(),
            Some(row)
        );
    }
    let listed: Vec<ApiKeyRow> = store
        .list_api_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|(row, name)| {
            assert_eq!(name, "alice");
            row
        })
        .collect();
    assert_eq!(listed, [scoped.clone(), none_listed, unnamed]);

    // An older row (no scope) may be upgraded; a scoped or expiring row
    // cannot be of an older version, so it is never rewritten.
    let attempt = ApiKeyHashUpgrade {
        key_id: scoped.key_id.clone(),
        account_id: scoped.account_id,
        role: scoped.role.clone(),
        old_hash: scoped.secret_hash.clone(),
        old_version: scoped.hash_version,
        new_hash: vec![7; 32],
        new_version: 4,
    };
    assert!(!store.upgrade_api_key_hash(&attempt).await.unwrap());
}

async fn key_uses_are_recorded_in_one_batch_and_only_move_forward(db: &TestDb) {
    let store = &db.store;
    let alice = store.insert_account(&account("alice")).await.unwrap();
    for key_id in ["tk_1", "tk_2", "tk_3"] {
        store
            .insert_api_key(&api_key(&alice, key_id, 1_000))
            .await
            .unwrap();
    }
    assert_eq!(store.record_api_key_uses(&[]).await.unwrap(), 0);
    let uses = [
        ("tk_1".to_owned(), 5_000),
        ("tk_2".to_owned(), 6_000),
        ("tk_unknown".to_owned(), 7_000),
    ];
    assert_eq!(store.record_api_key_uses(&uses).await.unwrap(), 2);
    let last = |key_id: &'static str| async move {
        store.api_key(key_id).await.unwrap().unwrap().last_used_at
    };
    assert_eq!(last("tk_1").await, Some(5_000));
    assert_eq!(last("tk_2").await, Some(6_000));
    assert_eq!(last("tk_3").await, None);
    // An older time (another node's late flush) never moves it back.
    let uses = [("tk_1".to_owned(), 4_000), ("tk_2".to_owned(), 8_000)];
    assert_eq!(store.record_api_key_uses(&uses).await.unwrap(), 1);
    assert_eq!(last("tk_1").await, Some(5_000));
    assert_eq!(last("tk_2").await, Some(8_000));
}

async fn a_duplicate_key_id_is_a_conflict(db: &TestDb) {
    let alice = db.store.insert_account(&account("alice")).await.unwrap();
    db.store
        .insert_api_key(&api_key(&alice, "tk_x", 1))
        .await
        .unwrap();
    let error = db
        .store
        .insert_api_key(&api_key(&alice, "tk_x", 2))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict { .. }), "{error:?}");
    // The message names the constraint, never the values.
    assert!(!error.to_string().contains("owner"), "{error}");
}

async fn a_secret_round_trips_and_is_found_only_under_its_account(db: &TestDb) {
    let store = &db.store;
    let alice = store.insert_account(&account("alice")).await.unwrap();
    let mallory = store.insert_account(&account("mallory")).await.unwrap();
    let mut row = secret(&alice, 10);
    row.issuer = None;
    row.algorithm = "SHA512".to_owned();
    row.digits = 8;
    row.period = 60;
    store.insert_secret(&row).await.unwrap();
    let with_issuer = secret(&alice, 11);
    store.insert_secret(&with_issuer).await.unwrap();

    assert_eq!(
        store.secret(alice.id, row.id).await.unwrap(),
        Some(row.clone())
    );
    assert_eq!(
        store.secret(alice.id, with_issuer.id).await.unwrap(),
        Some(with_issuer)
    );
    assert_eq!(store.secret(mallory.id, row.id).await.unwrap(), None);
    assert_eq!(store.secret(alice.id, Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(store.secret(Uuid::new_v4(), row.id).await.unwrap(), None);
}

async fn a_secret_id_is_unique_across_accounts(db: &TestDb) {
    let alice = db.store.insert_account(&account("alice")).await.unwrap();
    let bob = db.store.insert_account(&account("bob")).await.unwrap();
    let row = secret(&alice, 1);
    db.store.insert_secret(&row).await.unwrap();
    let mut copy = secret(&bob, 2);
    copy.id = row.id;
    let error = db.store.insert_secret(&copy).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict { .. }), "{error:?}");
    assert_eq!(db.store.secret(bob.id, row.id).await.unwrap(), None);
    assert_eq!(db.store.secret(alice.id, row.id).await.unwrap(), Some(row));
}

async fn a_secret_of_an_unknown_account_is_refused(db: &TestDb) {
    let ghost = account("ghost");
    let error = db
        .store
        .insert_secret(&secret(&ghost, 1))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Other { .. }), "{error:?}");
    assert!(db.store.is_empty().await.unwrap());
}

async fn secrets_list_oldest_first_and_only_the_accounts_own(db: &TestDb) {
    let store = &db.store;
    let alice = store.insert_account(&account("alice")).await.unwrap();
    let bob = store.insert_account(&account("bob")).await.unwrap();
    let mut mine = Vec::new();
    // Out of order, with ties on created_at (broken by id).
    for created_at in [50, 10, 30, 10, 20, 50, 40, 10] {
        let row = secret(&alice, created_at);
        store.insert_secret(&row).await.unwrap();
        mine.push(row);
        store
            .insert_secret(&secret(&bob, created_at))
            .await
            .unwrap();
    }
    mine.sort_by_key(|row| (row.created_at, row.id));
    assert_eq!(store.list_secrets(alice.id).await.unwrap(), mine);
    assert_eq!(store.list_secrets(bob.id).await.unwrap().len(), 8);
    assert!(store.list_secrets(Uuid::new_v4()).await.unwrap().is_empty());
}

async fn delete_is_scoped_by_account_and_visible_at_once(db: &TestDb) {
    let store = &db.store;
    let alice = store.insert_account(&account("alice")).await.unwrap();
    let mallory = store.insert_account(&account("mallory")).await.unwrap();
    let row = secret(&alice, 1);
    let kept = secret(&alice, 2);
    store.insert_secret(&row).await.unwrap();
    store.insert_secret(&kept).await.unwrap();
    // Warm the read path, so a stale cached answer would show.
    assert!(store.secret(alice.id, row.id).await.unwrap().is_some());

    assert!(!store.delete_secret(mallory.id, row.id).await.unwrap());
    assert!(store.secret(alice.id, row.id).await.unwrap().is_some());
    assert!(store.delete_secret(alice.id, row.id).await.unwrap());
    assert_eq!(store.secret(alice.id, row.id).await.unwrap(), None);
    assert!(!store.delete_secret(alice.id, row.id).await.unwrap());
    assert_eq!(store.list_secrets(alice.id).await.unwrap(), vec![kept]);
}

async fn an_update_changes_only_the_label_and_issuer_of_the_accounts_own_secret(db: &TestDb) {
    let store = &db.store;
    let alice = store.insert_account(&account("alice")).await.unwrap();
    let mallory = store.insert_account(&account("mallory")).await.unwrap();
    let row = secret(&alice, 1);
    store.insert_secret(&row).await.unwrap();
    // Warm the read path, so a stale cached answer would show.
    assert_eq!(
        store.secret(alice.id, row.id).await.unwrap().as_ref(),
        Some(&row)
    );

    let rename = SecretUpdate {
        label: Some("renamed \u{e9}".to_owned()),
        issuer: None,
        skew: None,
    };
    assert_eq!(
        store
            .update_secret(mallory.id, row.id, &rename)
            .await
            .unwrap(),
        None,
        "another account's secret is not there"
    );
    assert_eq!(
        store
            .update_secret(alice.id, Uuid::new_v4(), &rename)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.secret(alice.id, row.id).await.unwrap().as_ref(),
        Some(&row)
    );

    let renamed = store
        .update_secret(alice.id, row.id, &rename)
        .await
        .unwrap()
        .unwrap();
    let expected = SecretRow {
        label: "renamed \u{e9}".to_owned(),
        ..row.clone()
    };
    assert_eq!(renamed, expected, "only the label changed");
    assert_eq!(
        store.secret(alice.id, row.id).await.unwrap(),
        Some(expected.clone())
    );

    let issued = SecretUpdate {
        label: None,
        issuer: Some(Some("New Issuer".to_owned())),
        skew: None,
    };
    let with_issuer = store
        .update_secret(alice.id, row.id, &issued)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(with_issuer.issuer.as_deref(), Some("New Issuer"));
    assert_eq!(with_issuer.label, expected.label);
    let cleared = SecretUpdate {
        label: None,
        issuer: Some(None),
        skew: None,
    };
    let without = store
        .update_secret(alice.id, row.id, &cleared)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        without,
        SecretRow {
            issuer: None,
            ..expected
        }
    );
    // The sealed part, and everything it is bound to, is as it was.
    assert_eq!(
        (
            &without.ciphertext,
            &without.nonce,
            &without.sealed_by,
            without.aad_version
        ),
        (&row.ciphertext, &row.nonce, &row.sealed_by, row.aad_version)
    );
    assert_eq!(store.list_secrets(alice.id).await.unwrap(), vec![without]);
}

async fn concurrent_updates_of_different_fields_keep_both(db: &TestDb) {
    let store = &db.store;
    let alice = store.insert_account(&account("alice")).await.unwrap();
    let mut rows = Vec::new();
    for n in 0..8 {
        let row = secret(&alice, n);
        store.insert_secret(&row).await.unwrap();
        rows.push(row);
    }
    let mut tasks = Vec::new();
    for row in &rows {
        for update in [
            SecretUpdate {
                label: Some(format!("label of {}", row.id)),
                issuer: None,
                skew: None,
            },
            SecretUpdate {
                label: None,
                issuer: Some(Some(format!("issuer of {}", row.id))),
                skew: None,
            },
        ] {
            let store = Arc::clone(&db.store);
            let (account_id, id) = (row.account_id, row.id);
            tasks.push(tokio::spawn(async move {
                store.update_secret(account_id, id, &update).await
            }));
        }
    }
    for task in tasks {
        assert!(task.await.unwrap().unwrap().is_some());
    }
    for row in rows {
        let stored = store.secret(alice.id, row.id).await.unwrap().unwrap();
        assert_eq!(stored.label, format!("label of {}", row.id));
        assert_eq!(stored.issuer, Some(format!("issuer of {}", row.id)));
    }
}

async fn dumps_return_everything_in_key_order_and_page_by_id(db: &TestDb) {
    let store = &db.store;
    for name in ["b", "a", "c"] {
        store.insert_meta(name, name.as_bytes()).await.unwrap();
    }
    let alice = store.insert_account(&account("alice")).await.unwrap();
    let bob = store.insert_account(&account("bob")).await.unwrap();
    store
        .insert_api_key(&api_key(&bob, "tk_2", 1))
        .await
        .unwrap();
    store
        .insert_api_key(&api_key(&alice, "tk_1", 2))
        .await
        .unwrap();
    let mut secrets = Vec::new();
    for i in 0..25 {
        let row = secret(if i % 2 == 0 { &alice } else { &bob }, i);
        store.insert_secret(&row).await.unwrap();
        secrets.push(row);
    }

    let mut snapshot = store.snapshot().await.unwrap();
    let meta = snapshot.meta().await.unwrap();
    let names: Vec<&str> = meta.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(meta[0].1, b"a");

    let mut accounts = vec![alice, bob];
    accounts.sort_by_key(|row| row.id);
    assert_eq!(snapshot.accounts().await.unwrap(), accounts);
    let keys: Vec<String> = snapshot
        .api_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|key| key.key_id)
        .collect();
    assert_eq!(keys, ["tk_1", "tk_2"]);

    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = snapshot.secrets(after, 7).await.unwrap();
        assert!(page.len() <= 7);
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        paged.extend(page);
    }
    secrets.sort_by_key(|row| row.id);
    assert_eq!(paged, secrets);
    assert!(snapshot.secrets(None, 0).await.unwrap().is_empty());
}

async fn is_empty_sees_any_row(db: &TestDb) {
    let store = &db.store;
    assert!(store.is_empty().await.unwrap());
    store.insert_account(&account("alice")).await.unwrap();
    assert!(!store.is_empty().await.unwrap());
}

/// The audit event a state change writes along with it.
fn event(account: Uuid) -> AuditRecord {
    crate::audit::record(0, Some(account))
}

/// How many audit events the account's changes wrote.
async fn events_of(db: &TestDb, account: Uuid) -> usize {
    let query = AuditQuery {
        limit: 1000,
        ..AuditQuery::default()
    };
    db.store.list_audit(account, &query).await.unwrap().len()
}

fn hotp_secret(owner: &totpd_vault::AccountRow, counter: i64) -> totpd_vault::SecretRow {
    let mut row = secret(owner, 1);
    row.otp_type = "hotp".to_owned();
    row.counter = counter;
    row
}

async fn hotp_counters_are_handed_out_once_each_under_concurrency(db: &TestDb) {
    let alice = db.store.insert_account(&account("alice")).await.unwrap();
    let bob = db.store.insert_account(&account("bob")).await.unwrap();
    let row = hotp_secret(&alice, 5);
    db.store.insert_secret(&row).await.unwrap();
    let takers: Vec<_> = (0..200)
        .map(|_| {
            let store = Arc::clone(&db.store);
            tokio::spawn(async move {
                store
                    .take_hotp_counter(alice.id, row.id, &event(alice.id))
                    .await
            })
        })
        .collect();
    let mut counters = Vec::new();
    for taker in takers {
        counters.push(taker.await.unwrap().unwrap().expect("a counter"));
    }
    counters.sort_unstable();
    assert_eq!(counters, (5..205).collect::<Vec<i64>>());
    assert_eq!(events_of(db, alice.id).await, 200, "one record per counter");
    let stored = db.store.secret(alice.id, row.id).await.unwrap().unwrap();
    assert_eq!(stored.counter, 205);
    // Another account's id, a TOTP secret and an exhausted counter get none.
    assert_eq!(
        db.store
            .take_hotp_counter(bob.id, row.id, &event(bob.id))
            .await
            .unwrap(),
        None
    );
    let totp = secret(&alice, 2);
    db.store.insert_secret(&totp).await.unwrap();
    assert_eq!(
        db.store
            .take_hotp_counter(alice.id, totp.id, &event(alice.id))
            .await
            .unwrap(),
        None
    );
    let last = hotp_secret(&alice, i64::MAX);
    db.store.insert_secret(&last).await.unwrap();
    assert_eq!(
        db.store
            .take_hotp_counter(alice.id, last.id, &event(alice.id))
            .await
            .unwrap(),
        None
    );
}

async fn a_totp_step_is_accepted_once_and_never_an_earlier_one(db: &TestDb) {
    let alice = db.store.insert_account(&account("alice")).await.unwrap();
    let bob = db.store.insert_account(&account("bob")).await.unwrap();
    let row = secret(&alice, 1);
    db.store.insert_secret(&row).await.unwrap();
    let racers: Vec<_> = (0..50)
        .map(|_| {
            let store = Arc::clone(&db.store);
            tokio::spawn(async move {
                store
                    .accept_totp_step(alice.id, row.id, 100, &event(alice.id))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        won += usize::from(racer.await.unwrap().unwrap());
    }
    assert_eq!(won, 1, "one of the racers accepts step 100");
    assert!(
        !db.store
            .accept_totp_step(alice.id, row.id, 99, &event(alice.id))
            .await
            .unwrap()
    );
    assert!(
        !db.store
            .accept_totp_step(bob.id, row.id, 101, &event(bob.id))
            .await
            .unwrap()
    );
    assert!(
        db.store
            .accept_totp_step(alice.id, row.id, 101, &event(alice.id))
            .await
            .unwrap()
    );
    let stored = db.store.secret(alice.id, row.id).await.unwrap().unwrap();
    assert_eq!(stored.last_step, Some(101));
    assert_eq!(
        events_of(db, alice.id).await,
        2,
        "a record per accepted step only"
    );
    let hotp = hotp_secret(&alice, 0);
    db.store.insert_secret(&hotp).await.unwrap();
    assert!(
        !db.store
            .accept_totp_step(alice.id, hotp.id, 1, &event(alice.id))
            .await
            .unwrap()
    );
}

async fn an_hotp_counter_moves_only_forward_past_a_match(db: &TestDb) {
    let alice = db.store.insert_account(&account("alice")).await.unwrap();
    let row = hotp_secret(&alice, 3);
    db.store.insert_secret(&row).await.unwrap();
    assert!(
        db.store
            .accept_hotp_counter(alice.id, row.id, 7, &event(alice.id))
            .await
            .unwrap()
    );
    let stored = db.store.secret(alice.id, row.id).await.unwrap().unwrap();
    assert_eq!(stored.counter, 8);
    assert_eq!(events_of(db, alice.id).await, 1);
    assert!(
        !db.store
            .accept_hotp_counter(alice.id, row.id, 7, &event(alice.id))
            .await
            .unwrap()
    );
    assert!(
        !db.store
            .accept_hotp_counter(alice.id, row.id, 5, &event(alice.id))
            .await
            .unwrap()
    );
    assert!(
        db.store
            .accept_hotp_counter(alice.id, row.id, 8, &event(alice.id))
            .await
            .unwrap()
    );
    let totp = secret(&alice, 2);
    db.store.insert_secret(&totp).await.unwrap();
    assert!(
        !db.store
            .accept_hotp_counter(alice.id, totp.id, 0, &event(alice.id))
            .await
            .unwrap()
    );
}

async fn failed_verifications_count_within_a_window_and_restart_after_it(db: &TestDb) {
    let alice = db.store.insert_account(&account("alice")).await.unwrap();
    let bob = db.store.insert_account(&account("bob")).await.unwrap();
    let row = secret(&alice, 1);
    db.store.insert_secret(&row).await.unwrap();
    let store = &db.store;
    let fail = |now: i64| store.record_verify_failure(alice.id, row.id, now, 1_000);
    assert_eq!(fail(10_000).await.unwrap(), Some((1, 10_000)));
    assert_eq!(fail(10_500).await.unwrap(), Some((2, 10_000)));
    assert_eq!(fail(10_999).await.unwrap(), Some((3, 10_000)));
    assert_eq!(
        fail(11_000).await.unwrap(),
        Some((1, 11_000)),
        "the window passed"
    );
    let racers: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&db.store);
            tokio::spawn(async move {
                store
                    .record_verify_failure(alice.id, row.id, 11_100, 1_000)
                    .await
            })
        })
        .collect();
    let mut counts = Vec::new();
    for racer in racers {
        counts.push(racer.await.unwrap().unwrap().unwrap().0);
    }
    counts.sort_unstable();
    assert_eq!(
        counts,
        (2..22).collect::<Vec<i64>>(),
        "each failure is counted once"
    );
    assert_eq!(
        store
            .record_verify_failure(bob.id, row.id, 11_200, 1_000)
            .await
            .unwrap(),
        None
    );
    let stored = store.secret(alice.id, row.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.failed_verifies, stored.failed_since),
        (21, Some(11_000))
    );
}

async fn a_skew_is_set_only_on_the_accounts_own_secret(db: &TestDb) {
    let alice = db.store.insert_account(&account("alice")).await.unwrap();
    let bob = db.store.insert_account(&account("bob")).await.unwrap();
    let row = secret(&alice, 1);
    db.store.insert_secret(&row).await.unwrap();
    let skew = |skew| SecretUpdate {
        skew: Some(skew),
        ..SecretUpdate::default()
    };
    let updated = db.store.update_secret(alice.id, row.id, &skew(2)).await;
    assert_eq!(
        updated.unwrap().map(|r| (r.skew, r.label)),
        Some((2, row.label.clone()))
    );
    assert!(
        db.store
            .update_secret(bob.id, row.id, &skew(0))
            .await
            .unwrap()
            .is_none()
    );
    let stored = db.store.secret(alice.id, row.id).await.unwrap().unwrap();
    assert_eq!(stored.skew, 2);
    // Out of range is refused by the database itself.
    assert!(
        db.store
            .update_secret(alice.id, row.id, &skew(3))
            .await
            .is_err()
    );
}

async fn a_create_within_the_quota_writes_its_record_and_one_over_it_nothing(db: &TestDb) {
    let alice = db.store.insert_account(&account("alice")).await.unwrap();
    let creators: Vec<_> = (0..8)
        .map(|n| {
            let (store, row) = (Arc::clone(&db.store), secret(&alice, n));
            let record = AuditRecord {
                secret_id: Some(row.id),
                ..event(alice.id)
            };
            tokio::spawn(async move { store.insert_secret_within_quota(&row, 5, &record).await })
        })
        .collect();
    let mut created = 0;
    for creator in creators {
        match creator.await.unwrap() {
            Ok(()) => created += 1,
            Err(StoreError::QuotaExceeded { limit: 5 }) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(created, 5);
    let stored = db.store.list_secrets(alice.id).await.unwrap();
    assert_eq!(stored.len(), 5);
    let query = AuditQuery {
        limit: 100,
        ..AuditQuery::default()
    };
    let mut recorded: Vec<Uuid> = db
        .store
        .list_audit(alice.id, &query)
        .await
        .unwrap()
        .iter()
        .filter_map(|row| row.record.secret_id)
        .collect();
    let mut ids: Vec<Uuid> = stored.iter().map(|row| row.id).collect();
    recorded.sort_unstable();
    ids.sort_unstable();
    assert_eq!(
        recorded, ids,
        "a record for each stored secret, none for the refused"
    );
}

/// `n` rows of `account` for an import, each with its `secret.import` record.
fn import_rows(account: &totpd_vault::AccountRow, n: i64) -> Vec<(SecretRow, AuditRecord)> {
    (0..n)
        .map(|i| {
            let row = secret(account, 1_000 + i);
            let record = AuditRecord {
                action: "secret.import".to_owned(),
                secret_id: Some(row.id),
                ..event(account.id)
            };
            (row, record)
        })
        .collect()
}

async fn an_import_skips_held_fingerprints_and_stores_the_rest_with_their_records(db: &TestDb) {
    let alice = db.store.insert_account(&account("alice")).await.unwrap();
    let bob = db.store.insert_account(&account("bob")).await.unwrap();
    let held = secret(&alice, 1);
    db.store.insert_secret(&held).await.unwrap();
    let mut rows = import_rows(&alice, 3);
    rows[1].0.fingerprint = held.fingerprint.clone();
    let fingerprints: Vec<Vec<u8>> = rows
        .iter()
        .map(|(r, _)| r.fingerprint.clone().unwrap())
        .collect();
    assert_eq!(
        db.store
            .secrets_by_fingerprint(alice.id, &fingerprints)
            .await
            .unwrap(),
        [None, Some(held.id), None]
    );
    // Another account's fingerprints are never found.
    assert_eq!(
        db.store
            .secrets_by_fingerprint(bob.id, &fingerprints)
            .await
            .unwrap(),
        [None, None, None]
    );
    let outcome = db.store.import_secrets(alice.id, &rows, 100).await.unwrap();
    assert_eq!(outcome, [None, Some(held.id), None]);
    let stored: Vec<Uuid> = db
        .store
        .list_secrets(alice.id)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(stored.len(), 3, "{stored:?}");
    assert!(stored.contains(&rows[0].0.id) && stored.contains(&rows[2].0.id));
    assert!(!stored.contains(&rows[1].0.id));
    let query = AuditQuery {
        limit: 100,
        ..AuditQuery::default()
    };
    let recorded: Vec<Option<Uuid>> = db
        .store
        .list_audit(alice.id, &query)
        .await
        .unwrap()
        .iter()
        .filter(|row| row.record.action == "secret.import")
        .map(|row| row.record.secret_id)
        .collect();
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    // The same rows again: every one is now held.
    let again = db.store.import_secrets(alice.id, &rows, 100).await.unwrap();
    assert_eq!(
        again,
        [Some(rows[0].0.id), Some(held.id), Some(rows[2].0.id)]
    );
    assert_eq!(db.store.list_secrets(alice.id).await.unwrap().len(), 3);
}

async fn concurrent_imports_of_one_file_store_each_secret_once(db: &TestDb) {
    let alice = db.store.insert_account(&account("alice")).await.unwrap();
    let rows = import_rows(&alice, 20);
    let importers: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&db.store);
            // Each importer has rows of its own ids but the same key bytes.
            let rows: Vec<(SecretRow, AuditRecord)> = rows
                .iter()
                .map(|(row, record)| {
                    let id = Uuid::new_v4();
                    let row = SecretRow { id, ..row.clone() };
                    let record = AuditRecord {
                        secret_id: Some(id),
                        ..record.clone()
                    };
                    (row, record)
                })
                .collect();
            tokio::spawn(async move { store.import_secrets(alice.id, &rows, 1_000).await })
        })
        .collect();
    let mut stored = 0;
    for importer in importers {
        stored += importer
            .await
            .unwrap()
            .unwrap()
            .iter()
            .filter(|id| id.is_none())
            .count();
    }
    assert_eq!(stored, 20);
    assert_eq!(db.store.list_secrets(alice.id).await.unwrap().len(), 20);
}

async fn an_import_over_the_quota_stores_nothing(db: &TestDb) {
    let alice = db.store.insert_account(&account("alice")).await.unwrap();
    db.store.insert_secret(&secret(&alice, 1)).await.unwrap();
    let rows = import_rows(&alice, 5);
    assert!(matches!(
        db.store.import_secrets(alice.id, &rows, 5).await,
        Err(StoreError::QuotaExceeded { limit: 5 })
    ));
    assert_eq!(db.store.list_secrets(alice.id).await.unwrap().len(), 1);
    // Exactly up to the quota is allowed.
    let outcome = db.store.import_secrets(alice.id, &rows, 6).await.unwrap();
    assert_eq!(outcome, [None; 5]);
    assert_eq!(db.store.list_secrets(alice.id).await.unwrap().len(), 6);
}

async fn fingerprints_are_set_only_where_missing(db: &TestDb) {
    let alice = db.store.insert_account(&account("alice")).await.unwrap();
    let bob = db.store.insert_account(&account("bob")).await.unwrap();
    let old = SecretRow {
        fingerprint: None,
        ..secret(&alice, 1)
    };
    let new = secret(&alice, 2);
    db.store.insert_secret(&old).await.unwrap();
    db.store.insert_secret(&new).await.unwrap();
    let set = |id: Uuid| (id, vec![7u8; 32]);
    // Another account's id changes nothing; a held fingerprint is kept.
    assert_eq!(
        db.store
            .set_fingerprints(bob.id, &[set(old.id)])
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        db.store
            .set_fingerprints(alice.id, &[set(old.id), set(new.id)])
            .await
            .unwrap(),
        1
    );
    let stored = db.store.secret(alice.id, old.id).await.unwrap().unwrap();
    assert_eq!(stored.fingerprint, Some(vec![7u8; 32]));
    let kept = db.store.secret(alice.id, new.id).await.unwrap().unwrap();
    assert_eq!(kept.fingerprint, new.fingerprint);
}
