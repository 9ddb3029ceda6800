//! Errors never repeat input that could be a secret: a base32 secret pasted
//! into the wrong part of an `otpauth://` URI or of a create request does
//! not come back in the 400 answer, nor on the stderr of `totpd otp`.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::harness::{BIN, Backend, Body, SECRETS, TestServer, on_both_backends};

on_both_backends! {
    a_secret_pasted_anywhere_in_a_create_request_is_not_in_the_400
        => a_secret_pasted_anywhere_in_a_create_request_is_not_in_the_400_on_sqlite,
           a_secret_pasted_anywhere_in_a_create_request_is_not_in_the_400_on_postgres;
}

/// What gets pasted.
const PASTED: &str = "JBSWY3DPEHPK3PXPGEZDGNBV";

/// Whether `text` contains six consecutive characters of [`PASTED`], in any
/// case.
fn repeats_the_paste(text: &str) -> bool {
    let text = text.to_uppercase();
    PASTED
        .as_bytes()
        .windows(6)
        .any(|window| text.contains(std::str::from_utf8(window).unwrap()))
}

/// URIs with the paste where an error is about.
fn uris() -> Vec<String> {
    let p = PASTED;
    vec![
        format!("otpauth://totp/x?{p}&{p}"),
        format!(
            "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&{p}=1&{}=2",
            p.to_lowercase()
        ),
        format!("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&{p}%zz=1"),
        format!("otpauth://{p}/x?secret=JBSWY3DPEHPK3PXP"),
        format!("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&digits={p}"),
        format!("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&period={p}"),
        format!("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&algorithm={p}"),
        format!("otpauth://totp/x?secret={p}1"),
        format!("otpauth://totp/x?secret={p}&secret={p}"),
        format!("{p}:alice"),
        format!("otpauth-migration://offline?data={p}"),
    ]
}

async fn a_secret_pasted_anywhere_in_a_create_request_is_not_in_the_400(backend: Backend) {
    let server = TestServer::start(backend).await;
    let api = server.api();
    let mut bodies: Vec<Value> = uris()
        .into_iter()
        .map(|uri| json!({ "uri": uri }))
        .collect();
    bodies.extend([
        json!({"label": "x", "secret": format!("{PASTED}1")}),
        json!({"label": "x", "secret": format!("{PASTED}=A")}),
        json!({"label": "x", "algorithm": PASTED}),
        json!({"label": "x", "digits": PASTED}),
        json!({"label": "x", "period": PASTED}),
        json!({"label": "x", "issuer": 7, PASTED: PASTED}),
    ]);
    for (i, body) in bodies.into_iter().enumerate() {
        let reply = api.create(body).await;
        reply.expect_error(400, "invalid_request");
        assert!(
            !repeats_the_paste(&reply.text),
            "create body #{i}: the 400 repeats the pasted secret: {}",
            reply.text
        );
    }
    // Bodies that are not even JSON.
    for (i, raw) in [
        format!("{{\"secret\": \"{PASTED}"),
        format!("{{\"{PASTED}\" 1}}"),
        format!("[\"{PASTED}\"]"),
        PASTED.to_owned(),
    ]
    .into_iter()
    .enumerate()
    {
        let reply = api
            .request(
                reqwest::Method::POST,
                SECRETS,
                Body::Raw {
                    content_type: Some("application/json"),
                    bytes: raw.into_bytes(),
                },
            )
            .await;
        reply.expect_error(400, "invalid_request");
        assert!(
            !repeats_the_paste(&reply.text),
            "raw body #{i}: the 400 repeats the pasted secret: {}",
            reply.text
        );
    }
    assert!(
        !repeats_the_paste(&server.log()),
        "the server log repeats the pasted secret"
    );
}

/// `totpd otp ARGS` with `stdin`; returns (success, stdout, stderr).
fn otp_with_stdin(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .arg("otp")
        .args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run totpd otp");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_secret_pasted_into_a_uri_on_stdin_is_not_on_the_stderr_of_totpd_otp() {
    for (i, uri) in uris().into_iter().enumerate() {
        let (ok, stdout, stderr) = otp_with_stdin(&["--uri", "-", "--at", "0"], &uri);
        assert!(!ok, "uri #{i} was accepted: {stdout}");
        assert!(
            stderr.contains("invalid --uri"),
            "uri #{i}: unexpected stderr: {stderr}"
        );
        assert!(
            !repeats_the_paste(&stderr),
            "uri #{i}: stderr repeats the pasted secret: {stderr}"
        );
    }
    let (ok, _, stderr) = otp_with_stdin(&["--secret", "-", "--at", "0"], &format!("{PASTED}1"));
    assert!(!ok);
    assert!(
        !repeats_the_paste(&stderr),
        "--secret: stderr repeats the pasted secret: {stderr}"
    );
}
