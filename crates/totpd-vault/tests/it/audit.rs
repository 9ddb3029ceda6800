//! The vault's audit recorder: each operation records its own event, a
//! code is returned only once its record is stored, failed
//! authentications keep only key ids that name a key, and concurrent
//! records share commits.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use totpd_otp::{Algorithm, Digits, Period, Secret};
use totpd_vault::{
    IssuedCode, NewSecret, Origin, Principal, Role, SecretKind, SecretSource, Vault, VaultError,
    Verification,
};
use uuid::Uuid;

use crate::memory_store::MemoryStore;
use crate::support::{NOW, vault_with_key};

async fn setup() -> (Arc<MemoryStore>, Vault, Principal, Uuid) {
    let store = Arc::new(MemoryStore::default());
    let (vault, key) = vault_with_key(&store, "alice").await;
    let origin = Origin {
        remote_addr: Some("192.0.2.7".parse().unwrap()),
        user_agent: Some("agent/1".to_owned()),
        request_id: Some("req-1".to_owned()),
    };
    let principal = vault
        .authenticate(&key.key_id, key.secret.expose(), NOW, origin)
        .await
        .unwrap();
    let created = vault
        .create_secret(
            &principal,
            NewSecret {
                label: totpd_vault::Label::parse("audited").unwrap(),
                issuer: None,
                source: SecretSource::Provided(
                    Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap(),
                ),
                algorithm: Algorithm::Sha1,
                digits: Digits::default(),
                period: Period::default(),
                kind: totpd_vault::SecretKind::default(),
            },
            NOW,
        )
        .await
        .unwrap();
    (store, vault, principal, created.info.id)
}

#[tokio::test]
async fn each_operation_records_its_event_with_the_principal_and_origin() {
    let (store, vault, principal, id) = setup().await;
    vault.code(&principal, id, NOW).await.unwrap();
    let missing = Uuid::new_v4();
    assert!(matches!(
        vault.code(&principal, missing, NOW).await,
        Err(VaultError::NotFound)
    ));
    vault.delete_secret(&principal, id, NOW).await.unwrap();
    // Not waited for: give the writer a moment.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let events: Vec<_> = store
        .audit_events()
        .into_iter()
        .map(|row| row.record)
        .collect();
    let summary: Vec<(&str, &str)> = events
        .iter()
        .map(|r| (r.action.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("key.create", "ok"),
            ("secret.create", "ok"),
            ("code.read", "ok"),
            ("code.read", "invalid"),
            ("secret.delete", "ok"),
        ]
    );
    let read = &events[2];
    assert_eq!(read.key_id.as_deref(), Some(principal.key_id.as_str()));
    assert_eq!(read.role.as_deref(), Some("owner"));
    assert_eq!(read.account_id, Some(principal.account_id));
    assert_eq!(read.secret_id, Some(id));
    assert_eq!(read.remote_addr.as_deref(), Some("192.0.2.7"));
    assert_eq!(read.user_agent.as_deref(), Some("agent/1"));
    assert_eq!(read.request_id.as_deref(), Some("req-1"));
    assert_eq!(read.at, NOW.0);
    assert_eq!(events[3].secret_id, Some(missing));
}

#[tokio::test]
async fn no_code_is_returned_when_its_record_cannot_be_stored() {
    let (store, vault, principal, id) = setup().await;
    store.fail_audit(true);
    let answer = vault.code(&principal, id, NOW).await;
    assert!(
        matches!(answer, Err(VaultError::Unavailable(_))),
        "{answer:?}"
    );
    store.fail_audit(false);
    vault.code(&principal, id, NOW).await.unwrap();
    let reads = store
        .audit_events()
        .iter()
        .filter(|row| row.record.action == "code.read")
        .count();
    assert_eq!(reads, 1);
}

#[tokio::test]
async fn a_change_whose_record_cannot_be_stored_does_not_happen() {
    let (store, vault, principal, totp) = setup().await;
    let rfc_secret = || Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
    let new = |kind| NewSecret {
        label: totpd_vault::Label::parse("hotp").unwrap(),
        issuer: None,
        source: SecretSource::Provided(rfc_secret()),
        algorithm: Algorithm::Sha1,
        digits: Digits::default(),
        period: Period::default(),
        kind,
    };
    let hotp = vault
        .create_secret(&principal, new(SecretKind::Hotp { counter: 0 }), NOW)
        .await
        .unwrap()
        .info
        .id;
    let events = || store.audit_events().len();
    let before = events();

    store.fail_audit(true);
    let created = vault
        .create_secret(&principal, new(SecretKind::default()), NOW)
        .await;
    assert!(
        matches!(created, Err(VaultError::Unavailable(_))),
        "{created:?}"
    );
    let code = vault.code(&principal, hotp, NOW).await;
    assert!(matches!(code, Err(VaultError::Unavailable(_))), "{code:?}");
    // RFC 4226 appendix D: counter 0 is 755224, counter 1 287082.
    let verified = vault.verify(&principal, hotp, "755224", NOW).await;
    assert!(
        matches!(verified, Err(VaultError::Unavailable(_))),
        "{verified:?}"
    );
    store.fail_audit(false);

    let listed = vault.list_secrets(&principal).await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id).collect::<Vec<_>>(),
        [totp, hotp],
        "the refused create stored nothing"
    );
    // Neither the code nor the verification used counter 0 up.
    let verified = vault.verify(&principal, hotp, "755224", NOW).await;
    assert!(matches!(verified, Ok(Verification::Valid)), "{verified:?}");
    match vault.code(&principal, hotp, NOW).await.unwrap() {
        IssuedCode::Hotp(code) => assert_eq!(
            (code.counter, code.code.to_string()),
            (1, "287082".to_owned())
        ),
        other => panic!("{other:?}"),
    }
    let written: Vec<String> = store.audit_events()[before..]
        .iter()
        .map(|row| format!("{} {}", row.record.action, row.record.outcome))
        .collect();
    assert_eq!(written, ["code.verify ok", "code.read ok"]);
}

#[tokio::test]
async fn failed_authentications_keep_only_key_ids_that_name_a_key() {
    let (store, vault, principal, _) = setup().await;
    let origin = Origin::default;
    // A secret pasted into the key id header, an unknown well-formed id,
    // and a known key with a wrong secret.
    let pasted = "s3cr3t-pasted-into-the-key-id-header";
    let unknown = format!("tk_{}", "ab".repeat(12));
    for key_id in [pasted, unknown.as_str(), principal.key_id.as_str()] {
        let refused = vault.authenticate(key_id, "wrong", NOW, origin()).await;
        assert!(matches!(refused, Err(VaultError::Unauthorized)));
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let failures: Vec<_> = store
        .audit_events()
        .into_iter()
        .map(|row| row.record)
        .filter(|r| r.action == "auth.failure")
        .collect();
    assert_eq!(failures.len(), 3);
    assert!(failures.iter().all(|r| r.outcome == "denied"));
    assert_eq!(failures[0].key_id, None);
    assert_eq!(failures[0].account_id, None);
    assert_eq!(failures[1].key_id, None);
    assert_eq!(
        failures[2].key_id.as_deref(),
        Some(principal.key_id.as_str())
    );
    assert_eq!(failures[2].account_id, Some(principal.account_id));
    let everything = format!("{:?}", store.audit_events());
    assert!(!everything.contains("s3cr3t"));
    assert!(!everything.contains("wrong"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_code_reads_share_commits() {
    let (store, vault, principal, id) = setup().await;
    let vault = Arc::new(vault);
    let before = vault.audit_stats().commits.load(Ordering::Relaxed);
    let reads: Vec<_> = (0..200)
        .map(|_| {
            let (vault, principal) = (Arc::clone(&vault), principal.clone());
            tokio::spawn(async move { vault.code(&principal, id, NOW).await.map(drop) })
        })
        .collect();
    for read in reads {
        read.await.unwrap().unwrap();
    }
    let commits = vault.audit_stats().commits.load(Ordering::Relaxed) - before;
    let reads = store
        .audit_events()
        .iter()
        .filter(|row| row.record.action == "code.read")
        .count();
    assert_eq!(reads, 200);
    assert!(commits < 200, "{commits} commits for 200 records");
}

#[tokio::test]
async fn only_owner_and_admin_keys_read_the_audit_log_of_their_own_account() {
    let (_store, vault, principal, _) = setup().await;
    let query = totpd_vault::AuditQuery {
        limit: 100,
        ..Default::default()
    };
    for role in [Role::Owner, Role::Admin] {
        let reader = Principal::new(principal.account_id, "tk_reader", role);
        let events = vault.list_audit(&reader, &query).await.unwrap();
        assert!(events.len() >= 2, "{role}: {events:?}");
        assert!(
            events
                .iter()
                .all(|e| e.record.account_id == Some(principal.account_id))
        );
    }
    for role in [Role::Agent, Role::Verifier] {
        let reader = Principal::new(principal.account_id, "tk_reader", role);
        let refused = vault.list_audit(&reader, &query).await;
        assert!(matches!(refused, Err(VaultError::Forbidden)), "{role}");
    }
    let stranger = Principal::new(Uuid::new_v4(), "tk_stranger", Role::Owner);
    assert!(
        vault
            .list_audit(&stranger, &query)
            .await
            .unwrap()
            .is_empty()
    );
}
