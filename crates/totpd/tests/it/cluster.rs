//! Several stateless `totpd serve` nodes on one PostgreSQL database, with one
//! master key given through `TOTPD_MASTER_KEY` (issue 4): they agree at once
//! on what exists, what was deleted and which keys are revoked.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{
    Backend, Env, Known, Options, Starting, TestServer, assert_code,
    assert_refused_by_every_node_within_a_second, code_path, on_postgres_only, random_bytes,
    random_master_key, start_together, the_one_bootstrap_key, unix_ms,
};
use crate::otp::{Alg, base32_encode};

on_postgres_only! {
    a_secret_created_on_one_node_gives_the_same_code_on_another
        => a_secret_created_on_one_node_gives_the_same_code_on_another_on_postgres;
    a_secret_deleted_on_one_node_is_gone_on_the_other_at_once
        => a_secret_deleted_on_one_node_is_gone_on_the_other_at_once_on_postgres;
    a_key_revoked_with_the_cli_is_refused_by_every_node_within_one_second
        => a_key_revoked_with_the_cli_is_refused_by_every_node_within_one_second_on_postgres;
    nodes_started_at_the_same_instant_all_come_up_with_exactly_one_bootstrap_key
        => nodes_started_at_the_same_instant_all_come_up_with_exactly_one_bootstrap_key_on_postgres;
    while_the_database_refuses_connections_requests_get_503_and_service_recovers_after
        => while_the_database_refuses_connections_requests_get_503_and_service_recovers_after_on_postgres;
}

/// Node A (which bootstraps the database) and node B, each with its own
/// data directory; both use A's key.
pub(crate) async fn two_nodes() -> (TestServer, TestServer) {
    let env = Env::new(Backend::Postgres)
        .await
        .with_master_key(Some(random_master_key()));
    let a = TestServer::start_in(&env, Options::default());
    let mut b = Starting::spawn(&env.other_node(), Options::keyless()).ready();
    assert!(
        b.bootstrap.is_none(),
        "node B bootstrapped a bootstrapped database"
    );
    b.key = a.key.clone();
    (a, b)
}

async fn a_secret_created_on_one_node_gives_the_same_code_on_another() {
    let (a, b) = two_nodes().await;
    let (on_a, on_b) = (a.api(), b.api());
    let key = random_bytes(32);
    let known = Known {
        key: key.clone(),
        alg: Alg::Sha256,
        digits: 8,
        period: 30,
    };
    let created = on_a
        .create_ok(json!({
            "label": "shared",
            "secret": base32_encode(&key),
            "algorithm": "SHA256",
            "digits": 8,
        }))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    // B knows it at once, with the right code.
    assert_code(&on_b, &id, &known).await;
    assert_eq!(on_b.listed_ids().await, vec![id.clone()]);
    // A and B give the same code at the same instant.
    let mut compared = false;
    for _ in 0..5 {
        let before = unix_ms();
        let code_a = assert_code(&on_a, &id, &known).await;
        let code_b = assert_code(&on_b, &id, &known).await;
        let after = unix_ms();
        if before / 30_000 == after / 30_000 {
            assert_eq!(code_a, code_b, "nodes A and B disagree on the code");
            compared = true;
            break;
        }
    }
    assert!(compared, "never got both codes within one period");
    // And the other way round.
    let from_b = on_b.create_ok(json!({"label": "from B"})).await;
    assert!(
        on_a.listed_ids()
            .await
            .contains(&from_b["id"].as_str().unwrap().to_owned())
    );
}

async fn a_secret_deleted_on_one_node_is_gone_on_the_other_at_once() {
    let (a, b) = two_nodes().await;
    let (on_a, on_b) = (a.api(), b.api());
    let keep = on_a.create_ok(json!({"label": "keep"})).await;
    let doomed = on_a.create_ok(json!({"label": "doomed"})).await;
    let id = doomed["id"].as_str().unwrap().to_owned();
    // B has served it (and could have cached it).
    for _ in 0..3 {
        on_b.code(&id).await.expect_ok();
    }
    on_a.delete(&id).await.expect_ok();
    // No waiting: the very next request on B.
    on_b.code(&id).await.expect_error(404, "not_found");
    assert_eq!(
        on_b.listed_ids().await,
        vec![keep["id"].as_str().unwrap().to_owned()]
    );
    on_b.delete(&id).await.expect_error(404, "not_found");
}

async fn a_key_revoked_with_the_cli_is_refused_by_every_node_within_one_second() {
    let (mut a, mut b) = two_nodes().await;
    // An operator's machine: no data of its own, just the URL and the key.
    let operator = a.env.other_node();
    let agent = operator.create_key("default");
    let created = a.api().create_ok(json!({"label": "agent's"})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let (agent_a, agent_b) = (a.api_as(&agent), b.api_as(&agent));
    for _ in 0..3 {
        agent_a.code(&id).await.expect_ok();
        agent_b.code(&id).await.expect_ok();
    }

    // `Env::command` passes `--database URL` (and TOTPD_MASTER_KEY).
    let revoke = operator.run(&["keys", "revoke", &agent.key_id]);
    assert!(revoke.status.success(), "keys revoke: {}", revoke.stderr);
    assert_refused_by_every_node_within_a_second(&[&agent_a, &agent_b], &code_path(&id)).await;
    a.assert_healthy().await;
    b.assert_healthy().await;
    a.api().code(&id).await.expect_ok();
    b.api().code(&id).await.expect_ok();
}

async fn nodes_started_at_the_same_instant_all_come_up_with_exactly_one_bootstrap_key() {
    for round in 0..2 {
        let env = Env::new(Backend::Postgres)
            .await
            .with_master_key(Some(random_master_key()));
        let nodes: Vec<Env> = (0..3).map(|_| env.other_node()).collect();
        let mut servers = start_together(&nodes, &Options::keyless());
        let key = the_one_bootstrap_key(&servers, round);
        for server in &mut servers {
            server.assert_healthy().await;
            server.api_as(&key).list_ok().await;
        }
        let created = servers[0]
            .api_as(&key)
            .create_ok(json!({"label": "everyone sees it"}))
            .await;
        for server in &servers {
            server
                .api_as(&key)
                .code(created["id"].as_str().unwrap())
                .await
                .expect_ok();
        }
        let listing = env.run_ok(&["keys", "list"]);
        assert_eq!(
            listing.matches("tk_").count(),
            1,
            "round {round}: exactly one key exists:\n{listing}"
        );
    }
}

/// A database outage without stopping the shared PostgreSQL server: the
/// test's database stops accepting connections and its sessions are
/// terminated. Every answer must then be a prompt 503 with the JSON error
/// body (or a correct answer), never a hang, a 500, a crash or a wrong code;
/// once the database accepts connections again, service must come back
/// within 5 s without restarting totpd.
async fn while_the_database_refuses_connections_requests_get_503_and_service_recovers_after() {
    let mut server = TestServer::start(Backend::Postgres).await;
    let api = server.api();
    let key = random_bytes(20);
    let known = Known {
        key: key.clone(),
        alg: Alg::Sha1,
        digits: 6,
        period: 30,
    };
    let created = api
        .create_ok(json!({"label": "outage", "secret": base32_encode(&key)}))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_code(&api, &id, &known).await;

    server
        .env
        .pg_admin("ALTER DATABASE {db} ALLOW_CONNECTIONS false")
        .await;
    server
        .env
        .pg_admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{db}' AND pid <> pg_backend_pid()",
        )
        .await;

    let mut problems = Vec::new();
    let mut saw_503 = false;
    let mut stored_during_outage = Vec::new();
    for round in 0..3 {
        for what in ["code", "list", "create", "readyz"] {
            let started = Instant::now();
            let before = unix_ms();
            let reply = match what {
                "code" => api.code(&id).await,
                "list" => api.list().await,
                "create" => {
                    api.create(json!({"label": format!("during outage {round}")}))
                        .await
                }
                _ => server.get_public("/readyz").await,
            };
            let after = unix_ms();
            let took = started.elapsed();
            if took > Duration::from_secs(12) {
                problems.push(format!("{what}: answered after {took:?}"));
            }
            match reply.status {
                503 => {
                    saw_503 = true;
                    reply.expect_error(503, "unavailable");
                }
                200 if what == "code" => {
                    crate::harness::check_code_body(&reply.json(), &known, before, after);
                }
                200 if what == "create" => {
                    stored_during_outage.push(reply.json()["totp_secret"]["id"].clone());
                }
                200 if what == "list" => {}
                status => problems.push(format!("{what}: HTTP {status} {}", reply.text)),
            }
        }
    }
    let health = server.get_public("/healthz").await;
    assert_eq!(
        health.status, 200,
        "/healthz during the outage: {}",
        health.text
    );
    assert!(server.is_running(), "totpd exited during the outage");

    server
        .env
        .pg_admin("ALTER DATABASE {db} ALLOW_CONNECTIONS true")
        .await;
    let back = Instant::now();
    loop {
        let reply = api.code(&id).await;
        if reply.status == 200 && server.get_public("/readyz").await.status == 200 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "no recovery 5 s after the database came back: {}",
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_code(&api, &id, &known).await;
    let causes: Vec<String> = server
        .log()
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .take(3)
        .map(str::to_owned)
        .collect();
    assert!(
        problems.is_empty(),
        "answers during the outage:\n{}\nserver log:\n{}",
        problems.join("\n"),
        causes.join("\n")
    );
    assert!(saw_503, "no request noticed the outage");
    let listed = api.listed_ids().await;
    for id in stored_during_outage {
        assert!(
            listed.iter().any(|l| *l == id),
            "a create answered 200 during the outage is lost"
        );
    }
}
