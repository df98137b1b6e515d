//! The stream manager API of a real renderer: operators stopping and starting
//! outputs and uploading assets while it renders, tokens (HS256 and an OIDC
//! provider's), health and the error envelope.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn an_operator_stops_and_starts_outputs_and_uploads_assets_while_rendering_goes_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let assets = dir.path().join("assets");
    std::fs::create_dir_all(&assets).expect("assets");
    let first = dir.path().join("first.mkv");
    // Recordings started through the API go to the data dir's recordings folder.
    let second = dir.path().join("recordings/second.mkv");
    let mut show = Running::start(&[
        "--fps",
        "15",
        "--jwt-secret",
        SECRET,
        "--data-dir",
        dir.path().to_str().expect("path"),
        "--assets",
        assets.to_str().expect("path"),
        "--output",
        first.to_str().expect("path"),
    ]);
    let api = show.api();
    wait_for_status(&api, "never live", Duration::from_secs(60), |status| {
        output_state(status, 0).0 == "live" && status["frames_rendered"].as_u64() > Some(15)
    });
    let operator = [
        ("Authorization", format!("Bearer {}", token("operator"))),
        ("Content-Type", "application/json".into()),
    ];

    // Auth and bad bodies first.
    let (code, body) = send(&api, "POST", "/api/stream/playback", &[], br#"{"action":"stop"}"#);
    assert_eq!((code, body["error"]["code"].as_str()), (401, Some("UNAUTHENTICATED")), "{body}");
    let viewer = [("Authorization", format!("Bearer {}", token("viewer")))];
    assert_eq!(send(&api, "POST", "/api/stream/playback", &viewer, br#"{"action":"stop"}"#).0, 403);
    let (code, body) = send(&api, "POST", "/api/stream/playback", &operator, br#"{"action":"pause"}"#);
    assert_eq!((code, body["success"].as_bool()), (400, Some(false)), "{body}");

    // Stop: the recording is finalised while rendering goes on.
    let (code, body) = send(&api, "POST", "/api/stream/playback", &operator, br#"{"action":"stop"}"#);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["outputs"][0]["state"], "stopped", "{body}");
    let streams = probe(first.to_str().expect("path"));
    assert_show_streams_sized(&streams, 640, 360, "15/1");
    let stopped = wait_for_status(&api, "idle", Duration::from_secs(10), |status| status["state"] == "idle");
    let frames_then = stopped["data"]["frames_rendered"].as_u64().unwrap_or_default();

    // Start a new recording by naming it.
    let start = r#"{"action":"start","outputs":["second.mkv"]}"#;
    let (code, body) = send(&api, "POST", "/api/stream/playback", &operator, start.as_bytes());
    assert_eq!(code, 200, "{body}");
    wait_for_status(&api, "the new output never went live", Duration::from_secs(30), |status| {
        output_state(status, 1).0 == "live" && status["frames_rendered"].as_u64() > Some(frames_then + 30)
    });

    // Uploads: an image lands under a clean name; a file that lies about its type
    // and a request without a token are refused.
    let png = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/lots/placeholder.png"))
        .expect("png");
    let (content_type, body) = multipart("../Lot 7.PNG", &png);
    let auth = ("Authorization", format!("Bearer {}", token("operator")));
    let (code, reply) = send(
        &api,
        "POST",
        "/api/stream/assets/upload",
        &[auth.clone(), ("Content-Type", content_type.clone())],
        &body,
    );
    assert_eq!((code, reply["data"]["path"].as_str()), (201, Some("uploads/lot-7.png")), "{reply}");
    assert_eq!(std::fs::read(assets.join("uploads/lot-7.png")).expect("stored"), png);
    let (content_type, body) = multipart("fake.png", b"GIF89a not a png");
    let (code, _) = send(
        &api,
        "POST",
        "/api/stream/assets/upload",
        &[auth, ("Content-Type", content_type.clone())],
        &body,
    );
    assert_eq!(code, 400);
    let (code, _) = send(&api, "POST", "/api/stream/assets/upload", &[("Content-Type", content_type)], &body);
    assert_eq!(code, 401);

    let status = Command::new("kill").args(["-TERM", &show.child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    assert!(show.child.wait().expect("exit").success(), "{}", show.log());
    assert_show_streams_sized(&probe(second.to_str().expect("path")), 640, 360, "15/1");
}

#[test]
fn an_operator_token_from_the_oidc_provider_is_accepted() {
    // RS256 tokens from AUTH_JWKS_URL, as the backend accepts them; without a JWT
    // secret HS256 tokens are refused.
    let jwks = include_str!("../../auth/fixtures/rs256_jwks.json");
    let pem = include_bytes!("../../auth/fixtures/rs256_private.pem");
    let url = serve_json(jwks.to_owned());
    let dir = tempfile::tempdir().expect("temp dir");
    let recording = dir.path().join("show.mkv");
    let show = Running::start(&[
        "--fps",
        "15",
        "--auth-jwks-url",
        &url,
        "--output",
        recording.to_str().expect("path"),
    ]);
    let api = show.api();
    let exp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() + 600;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("test-key-1".into());
    let rs256 = jsonwebtoken::encode(
        &header,
        &serde_json::json!({ "sub": "user_2abc", "role": "operator", "exp": exp }),
        &jsonwebtoken::EncodingKey::from_rsa_pem(pem).expect("pem"),
    )
    .expect("sign");
    // Back to the rules: valid whatever scenes are loaded yet.
    let pin = br#"{"name": null}"#;
    let bearer = |token: String| [("Authorization", format!("Bearer {token}"))];
    let (code, body) = send(&api, "POST", "/api/stream/scenes/active", &bearer(rs256), pin);
    assert_eq!(code, 200, "{body}\n{}", show.log());
    let (code, body) = send(&api, "POST", "/api/stream/scenes/active", &bearer(token("operator")), pin);
    assert_eq!((code, body["error"]["code"].as_str()), (401, Some("UNAUTHENTICATED")), "{body}");
    assert!(
        body["error"]["message"].as_str().is_some_and(|message| message.contains("no JWT secret")),
        "{body}"
    );
}

#[test]
fn health_names_its_checks_and_every_refusal_is_in_the_envelope() {
    let dir = tempfile::tempdir().expect("temp dir");
    let recording = dir.path().join("health.mkv");
    let data_dir = dir.path().to_str().expect("path");
    let show = Running::start(&[
        "--output",
        recording.to_str().expect("path"),
        "--jwt-secret",
        SECRET,
        "--data-dir",
        data_dir,
    ]);
    let api = show.api();
    let health = show.listener("health");
    let (code, body) = send(&health, "GET", "/health", &[], b"");
    assert_eq!(code, 200, "{body}\n{}", show.log());
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["role"], "stream", "{body}");
    assert_eq!(body["checks"]["encoder"], "ok", "the spec's encoder check: {body}");
    assert_eq!(body["checks"]["ingest"], "ok", "the spec's ingest check: {body}");

    // The API wears the conventions of every listener: a capped body, the envelope.
    let operator = [
        ("Authorization", format!("Bearer {}", token("operator"))),
        ("Content-Type", "application/json".to_owned()),
    ];
    let huge = format!("{{\"text\": \"{}\"}}", "x".repeat(100 * 1024));
    let (code, body) = send(&api, "POST", "/api/stream/layers/title", &operator, huge.as_bytes());
    assert_eq!((code, body["error"]["code"].as_str()), (413, Some("PAYLOAD_TOO_LARGE")), "{body}");
    let long = format!("{{\"text\": \"{}\"}}", "x".repeat(5_000));
    let (code, body) = send(&api, "POST", "/api/stream/layers/title", &operator, long.as_bytes());
    assert_eq!((code, body["error"]["details"]["field"].as_str()), (400, Some("text")), "{body}");
    // Recordings started through the API land in the recordings folder and nowhere else.
    let start = |target: &str| format!("{{\"action\": \"start\", \"outputs\": [\"{target}\"]}}");
    for escape in ["/tmp/sothebais-escape.mkv", "../escape.mkv", "sub/escape.mkv"] {
        let (code, body) = send(&api, "POST", "/api/stream/playback", &operator, start(escape).as_bytes());
        assert_eq!(
            (code, body["error"]["details"]["field"].as_str()),
            (400, Some("outputs")),
            "{escape}: {body}"
        );
    }
    assert!(!Path::new("/tmp/sothebais-escape.mkv").exists());
    let (code, body) = send(&api, "POST", "/api/stream/playback", &operator, start("second.mkv").as_bytes());
    assert_eq!(code, 200, "{body}");
    let added = wait_for_status(&api, "the second recording", Duration::from_secs(30), |status| {
        status["outputs"].as_array().is_some_and(|outputs| {
            outputs.iter().any(|output| {
                output["url"].as_str().is_some_and(|url| url.ends_with("recordings/second.mkv"))
                    && output["state"] == "live"
            })
        })
    });
    assert!(dir.path().join("recordings/second.mkv").exists(), "{added}");
    let (code, body) = send(&api, "DELETE", "/api/stream/status", &[], b"");
    assert_eq!((code, body["success"].as_bool()), (405, Some(false)), "{body}");
    let (code, body) = send(&show.listener("metrics"), "GET", "/nowhere", &[], b"");
    assert_eq!((code, body["error"]["code"].as_str()), (404, Some("NOT_FOUND")), "{body}");
}
