//! The vault as the enrolling side (DESIGN §2.5): a generated secret comes
//! back with its `otpauth://` URI and, on request, that URI as a QR code,
//! read back here by an independent decoder (rqrr) from the PNG and from
//! the SVG's geometry.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::harness::{Backend, Known, assert_code, code_path, spawn_app};
use crate::otp::{Alg, base32_decode, hotp};

/// The query parameters of an `otpauth://` URI, and its label.
fn uri_parts(uri: &str) -> (String, Vec<(String, String)>) {
    let url = reqwest::Url::parse(uri).unwrap_or_else(|e| panic!("{uri:?} is not a URI: {e}"));
    assert_eq!(url.scheme(), "otpauth");
    let label = percent_decode(url.path().trim_start_matches('/'));
    let query = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    (
        format!("{}/{label}", url.host_str().unwrap_or_default()),
        query,
    )
}

fn percent_decode(text: &str) -> String {
    let url = reqwest::Url::parse(&format!("x:?v={text}")).unwrap();
    url.query_pairs()
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> &'a str {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("the URI has no {name}"))
}

/// Decodes every QR code in a greyscale image.
fn decode_qr(width: usize, height: usize, pixel: impl FnMut(usize, usize) -> u8) -> Vec<String> {
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, pixel);
    image
        .detect_grids()
        .iter()
        .map(|grid| grid.decode().expect("the QR code decodes").1)
        .collect()
}

fn decode_png_data_uri(data_uri: &str) -> Vec<String> {
    let b64 = data_uri
        .strip_prefix("data:image/png;base64,")
        .unwrap_or_else(|| panic!("not a PNG data URI: {:.40}", data_uri));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(frame.color_type, png::ColorType::Grayscale);
    let (w, h) = (frame.width as usize, frame.height as usize);
    decode_qr(w, h, |x, y| pixels[y * frame.line_size + x])
}

/// Reads the SVG's geometry back: its `viewBox` and the rectangles of its
/// path (`M x y h w v 1 H x z`, one per run of dark modules), drawn at 4
/// pixels a module, then decoded.
fn decode_svg(svg: &str) -> Vec<String> {
    assert!(
        svg.starts_with("<svg ") && svg.ends_with("</svg>"),
        "{svg:.80}"
    );
    let view = svg.split("viewBox=\"0 0 ").nth(1).unwrap();
    let side: usize = view.split(' ').next().unwrap().parse().unwrap();
    let path = svg
        .split(" d=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let mut dark = vec![false; side * side];
    for run in path.split('z').filter(|r| !r.is_empty()) {
        let numbers: Vec<usize> = run
            .split(|c: char| c.is_ascii_alphabetic() || c == ' ')
            .filter(|n| !n.is_empty())
            .map(|n| n.parse().unwrap())
            .collect();
        let [x, y, w, one, back] = numbers[..] else {
            panic!("unexpected path segment {run:?}")
        };
        assert_eq!((one, back), (1, x), "a run is one module high: {run:?}");
        for i in x..x + w {
            dark[y * side + i] = true;
        }
    }
    const PX: usize = 4;
    decode_qr(side * PX, side * PX, |x, y| {
        if dark[(y / PX) * side + x / PX] {
            0
        } else {
            255
        }
    })
}

#[tokio::test]
async fn a_generated_secret_comes_back_with_its_uri_and_on_request_its_qr_code() {
    let server = spawn_app(Backend::Sqlite).await;
    let api = server.api();
    for (qr, decode) in [
        ("png", decode_png_data_uri as fn(&str) -> Vec<String>),
        ("svg", decode_svg),
    ] {
        let created = api
            .create_ok(json!({
                "label": "alice@example.com", "issuer": "ACME Co", "algorithm": "SHA256",
                "digits": 8, "period": 60, "qr": qr,
            }))
            .await;
        let uri = created["uri"]
            .as_str()
            .expect("a generated secret has its uri");
        let (label, query) = uri_parts(uri);
        assert_eq!(label, "totp/ACME Co:alice@example.com");
        assert_eq!(param(&query, "secret"), created["secret"]);
        assert_eq!(param(&query, "issuer"), "ACME Co");
        assert_eq!(param(&query, "algorithm"), "SHA256");
        assert_eq!(param(&query, "digits"), "8");
        assert_eq!(param(&query, "period"), "60");
        // The URI's secret gives the vault's codes.
        let key = base32_decode(param(&query, "secret")).unwrap();
        let id = created["id"].as_str().unwrap();
        assert_code(
            &api,
            id,
            &Known {
                key,
                alg: Alg::Sha256,
                digits: 8,
                period: 60,
            },
        )
        .await;
        let code = created["qr"]
            .as_str()
            .unwrap_or_else(|| panic!("no {qr} qr: {created}"));
        assert_eq!(
            decode(code),
            vec![uri.to_owned()],
            "the {qr} QR code holds the URI"
        );

        // Only the create answer holds them.
        let read = api
            .get(&format!("/api/v2/totp/secrets/{id}"))
            .await
            .expect_ok();
        assert!(read.to_string().find("otpauth").is_none(), "{read}");
        assert!(api.list().await.text.find("otpauth").is_none());
    }
}

#[tokio::test]
async fn a_generated_hotp_secret_has_an_hotp_uri_with_its_counter() {
    let server = spawn_app(Backend::Sqlite).await;
    let api = server.api();
    let created = api
        .create_ok(json!({"label": "bank", "type": "hotp", "counter": 7}))
        .await;
    assert!(created.get("qr").is_none(), "no qr unless asked: {created}");
    let (label, query) = uri_parts(created["uri"].as_str().unwrap());
    assert_eq!(label, "hotp/bank");
    assert_eq!(param(&query, "counter"), "7");
    let key = base32_decode(param(&query, "secret")).unwrap();
    let id = created["id"].as_str().unwrap();
    let answer = api.get(&code_path(id)).await.expect_ok();
    assert_eq!(answer["code"], hotp(&key, Alg::Sha1, 6, 7));
}

#[tokio::test]
async fn qr_is_refused_where_it_cannot_apply_and_nothing_is_stored() {
    let server = spawn_app(Backend::Sqlite).await;
    let api = server.api();
    let secret = "JBSWY3DPEHPK3PXP";
    let cases: [(Value, &str); 5] = [
        (
            json!({"label": "a", "secret": secret, "qr": "svg"}),
            "only for a generated secret",
        ),
        (
            json!({"uri": format!("otpauth://totp/a?secret={secret}"), "qr": "png"}),
            "only for a generated secret",
        ),
        (
            json!({"label": "a", "qr": "jpeg"}),
            "\"qr\" must be svg or png",
        ),
        (json!({"label": "a", "qr": true}), "qr"),
        // 256 characters of three UTF-8 bytes each, percent-encoded in the
        // label and in the issuer parameter: longer than a QR code holds.
        (
            json!({"label": "€".repeat(256), "issuer": "€".repeat(256), "qr": "svg"}),
            "too long for a QR code",
        ),
    ];
    for (body, message) in cases {
        let reply = api.create(body.clone()).await;
        let error = reply.expect_error(400, "invalid_request");
        assert!(
            error["message"].as_str().unwrap().contains(message),
            "{body}: {error}"
        );
        assert!(!reply.text.contains(secret), "the error echoes the secret");
    }
    assert!(
        api.list_ok().await.is_empty(),
        "a refused create stored something"
    );

    // A supplied secret gets no uri (the caller has it); the long label
    // still gets its uri without a QR code.
    let given = api.create_ok(json!({"label": "a", "secret": secret})).await;
    assert!(
        given.get("uri").is_none() && given.get("qr").is_none(),
        "{given}"
    );
    let long = api
        .create_ok(json!({"label": "€".repeat(256), "issuer": "€".repeat(256)}))
        .await;
    assert!(long["uri"].as_str().unwrap().len() > 4000);
}
