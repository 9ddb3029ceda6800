//! The abuse limits as a user meets them: the default configuration serves
//! one key at full speed, and the failed-authentication lockout keys on
//! (client address, key id), so an attacker's failures do not lock out the
//! other keys used from the same address, while the address as a whole is
//! still stopped when it cycles key ids.
//!
//! Like `hardening`, these run on SQLite only: the limits live in the HTTP
//! layer and in memory, not in storage. Clients pick their source address
//! on the loopback network (127.0.0.x) to stand for different hosts.

use std::net::Ipv4Addr;

use serde_json::json;

use crate::hardening::{
    client_from, retry_after, send, server_with, statuses_under_load, with_key,
};
use crate::harness::{SECRETS, code_path, metric};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_connections_on_one_key_see_no_429_under_the_default_configuration() {
    let server = server_with(&[]).await;
    let api = server.api();
    let id = api.create_ok(json!({"label": "hammered"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // 64 connections, 3,200 requests of the code endpoint and the list.
    let path = code_path(&id);
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let api = api.clone();
            let path = path.clone();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..50 {
                    statuses.push(api.get(&path).await.status);
                }
                statuses
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.extend(task.await.unwrap());
    }
    statuses.extend(statuses_under_load(&api, 1000, 64).await);
    let refused = statuses.iter().filter(|&&s| s != 200).count();
    assert_eq!(
        refused,
        0,
        "{refused} of {} requests were not served",
        statuses.len()
    );
    let counted = metric(&server, "totpd_rate_limited_total{limit=\"per_key\"}").await;
    assert_eq!(counted, 0);
}

#[tokio::test]
async fn a_thousand_sequential_creates_on_one_key_see_no_429_under_the_default_configuration() {
    let server = server_with(&[]).await;
    let api = server.api();
    for i in 0..1000 {
        let reply = api.create(json!({"label": format!("batch {i}")})).await;
        assert_eq!(reply.status, 200, "create {i}: {}", reply.text);
    }
    assert_eq!(api.list_ok().await.len(), 1000);
}

#[tokio::test]
async fn an_attackers_failures_on_one_key_id_leave_other_keys_from_the_same_address_working() {
    let server = server_with(&[("TOTPD_AUTH_FAILURE_LIMIT", "3")]).await;
    let target = format!("http://{}{SECRETS}", server.addr);
    let attacked = server.key.clone();
    let colleague = server.env.create_key("colleague");
    // Attacker and colleague share 127.0.0.2 (a NAT, a proxy, a node).
    let shared = client_from(Ipv4Addr::new(127, 0, 0, 2));
    for i in 0..3 {
        let reply = send(with_key(shared.get(&target), &attacked.key_id, "wrong")).await;
        assert_eq!(reply.status, 401, "guess {i}: {}", reply.text);
    }
    // The attacked key id is refused from that address, before its secret
    // is looked at...
    let guess = send(with_key(shared.get(&target), &attacked.key_id, "wrong")).await;
    let wait = retry_after(&guess);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    // ...while the colleague's key from the same address keeps working, and
    // a wrong secret for it is an ordinary 401.
    for _ in 0..10 {
        let reply = send(with_key(
            shared.get(&target),
            &colleague.key_id,
            &colleague.secret,
        ))
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let slip = send(with_key(shared.get(&target), &colleague.key_id, "wrong")).await;
    slip.expect_error(401, "unauthorized");
    // The attacked key works from every other address.
    let elsewhere = client_from(Ipv4Addr::new(127, 0, 0, 3));
    let reply = send(with_key(
        elsewhere.get(&target),
        &attacked.key_id,
        &attacked.secret,
    ))
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let counted = metric(&server, "totpd_rate_limited_total{limit=\"auth_failures\"}").await;
    assert_eq!(counted, 1);
}

#[tokio::test]
async fn the_address_ceiling_stops_an_attacker_cycling_key_ids_but_not_a_key_in_use_there() {
    // 3 failures per key id and address; 30 for the address as a whole.
    let server = server_with(&[("TOTPD_AUTH_FAILURE_LIMIT", "3")]).await;
    let target = format!("http://{}{SECRETS}", server.addr);
    let agent = server.key.clone();
    let latecomer = server.env.create_key("latecomer");
    let shared = client_from(Ipv4Addr::new(127, 0, 0, 4));
    let guess = |i: usize| {
        let shared = shared.clone();
        let target = target.clone();
        async move {
            let key_id = format!("tk_guess{i:04}");
            send(with_key(shared.get(&target), &key_id, "wrong")).await
        }
    };
    // The attack starts; the agent on the same address keeps polling.
    guess(0).await.expect_error(401, "unauthorized");
    let polled = send(with_key(shared.get(&target), &agent.key_id, &agent.secret)).await;
    assert_eq!(polled.status, 200, "{}", polled.text);
    let mut first_refused = None;
    for i in 1..100 {
        let reply = guess(i).await;
        match reply.status {
            401 => assert!(first_refused.is_none(), "guess {i} checked after a 429"),
            429 => {
                retry_after(&reply);
                first_refused.get_or_insert(i);
            }
            other => panic!("guess {i} answered {other}: {}", reply.text),
        }
    }
    assert_eq!(
        first_refused,
        Some(30),
        "the address was not stopped after 30 failures"
    );
    // The agent that was in use from the address is still served...
    for _ in 0..10 {
        let reply = send(with_key(shared.get(&target), &agent.key_id, &agent.secret)).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    // ...a key id not seen working from it waits out the window...
    let reply = send(with_key(
        shared.get(&target),
        &latecomer.key_id,
        &latecomer.secret,
    ))
    .await;
    retry_after(&reply);
    // ...and other addresses are not affected.
    let elsewhere = client_from(Ipv4Addr::new(127, 0, 0, 5));
    let reply = send(with_key(
        elsewhere.get(&target),
        &latecomer.key_id,
        &latecomer.secret,
    ))
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = send(with_key(elsewhere.get(&target), "tk_guess9999", "wrong")).await;
    reply.expect_error(401, "unauthorized");
}
