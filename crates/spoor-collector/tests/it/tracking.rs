//! The Tracking API over real HTTP: every rule of the issue, table-driven where it can be.

use std::io::Write as _;
use std::time::Duration;

use serde_json::{Value, json};
use spoor_collector::ServerConfig;
use spoor_collector::net::TrustedProxies;
use spoor_store::MetaStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::{TestServer, answer, basic, text};

fn track(user: &str) -> Value {
    json!({"userId": user, "event": "Signed Up", "properties": {"plan": "pro"}})
}

/// Each bad request gets its status and code; nothing of it lands in `messages`, and it is
/// kept in `discards` when the source is known.
#[tokio::test]
async fn bad_requests_get_their_status_and_code() {
    let server = TestServer::start("bad-requests").await;
    let big_property = "x".repeat(33 * 1024);
    let many: Vec<Value> = (0..2501)
        .map(|i| json!({"type": "track", "userId": "u", "event": format!("e{i}")}))
        .collect();
    let huge = "y".repeat(520 * 1024);
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "malformed JSON",
            "/v1/track",
            b"{\"userId\": \"u\", ".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "not an object",
            "/v1/track",
            b"[1, 2]".to_vec(),
            400,
            "not_an_object",
        ),
        (
            "type disagrees with the path",
            "/v1/track",
            br#"{"type": "identify", "userId": "u"}"#.to_vec(),
            400,
            "type_mismatch",
        ),
        (
            "no identity",
            "/v1/track",
            br#"{"event": "x"}"#.to_vec(),
            400,
            "validation_failed",
        ),
        (
            "message over 32 KB",
            "/v1/track",
            serde_json::to_vec(
                &json!({"userId": "u", "event": "x", "properties": {"p": big_property}}),
            )
            .unwrap(),
            400,
            "message_too_large",
        ),
        (
            "body over 500 KB",
            "/v1/batch",
            huge.into_bytes(),
            400,
            "body_too_large",
        ),
        (
            "more than 2,500 messages",
            "/v1/batch",
            serde_json::to_vec(&json!({ "batch": many })).unwrap(),
            400,
            "too_many_messages",
        ),
        (
            "batch without batch",
            "/v1/batch",
            br#"{"messages": []}"#.to_vec(),
            400,
            "missing_batch",
        ),
        (
            "batch not an object",
            "/v1/batch",
            b"[1]".to_vec(),
            400,
            "not_an_object",
        ),
        (
            "batch malformed",
            "/v1/batch",
            b"{\"batch\": [".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "batch not an array",
            "/v1/batch",
            br#"{"batch": 5}"#.to_vec(),
            400,
            "missing_batch",
        ),
        (
            "unknown endpoint",
            "/v1/nope",
            br#"{}"#.to_vec(),
            404,
            "not_found",
        ),
    ];
    for (name, path, body, status, code) in cases {
        let (got, answer) = server.post(path, body).await;
        assert_eq!(got, status, "{name}: {answer}");
        assert_eq!(answer["code"], code, "{name}: {answer}");
        assert_eq!(answer["success"], false, "{name}: {answer}");
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}"
        );
    }
    assert_eq!(server.count("SELECT count(*) FROM messages"), 0);
    // Every rejection of an authenticated request is kept, except bodies over the limit,
    // which are never read in full (and the 404, which is no rejection).
    let codes: Vec<String> = server
        .query("SELECT code FROM discards ORDER BY id")
        .iter()
        .map(|r| text(&r[0]))
        .collect();
    assert_eq!(
        codes,
        [
            "invalid_json",
            "not_an_object",
            "type_mismatch",
            "missing_identity",
            "message_too_large",
            "too_many_messages",
            "missing_batch",
            "not_an_object",
            "invalid_json",
            "missing_batch",
        ]
    );
}

#[tokio::test]
async fn errors_name_the_position_the_size_and_the_path() {
    let server = TestServer::start("error-details").await;
    let (_, answer) = server.post("/v1/track", "{\n  \"userId\": }").await;
    let message = answer["message"].as_str().unwrap();
    assert!(message.contains("line 2, column 13"), "{message}");

    let big = json!({"userId": "u", "event": "x", "properties": {"p": "z".repeat(40_000)}});
    let (_, answer) = server.post_json("/v1/track", &big).await;
    let message = answer["message"].as_str().unwrap();
    assert!(message.contains("32768"), "{message}");

    let (_, answer) = server
        .post_json("/v1/identify", &json!({"traits": {}}))
        .await;
    assert_eq!(answer["errors"][0]["path"], "userId", "{answer}");
    assert_eq!(answer["errors"][0]["code"], "missing_identity", "{answer}");
}

#[tokio::test]
async fn every_endpoint_and_short_path_stores_its_type() {
    let server = TestServer::start("endpoints").await;
    let cases = [
        ("/v1/identify", "identify"),
        ("/v1/track", "track"),
        ("/v1/page", "page"),
        ("/v1/screen", "screen"),
        ("/v1/group", "group"),
        ("/v1/alias", "alias"),
        ("/v1/i", "identify"),
        ("/v1/t", "track"),
        ("/v1/p", "page"),
        ("/v1/s", "screen"),
        ("/v1/g", "group"),
        ("/v1/a", "alias"),
    ];
    for (i, (path, kind)) in cases.iter().enumerate() {
        let body = json!({
            "userId": format!("u{i}"),
            "event": "Clicked",
            "groupId": "g1",
            "previousId": "p1",
            "messageId": format!("m-{i}"),
        });
        let (status, answer) = server.post_json(path, &body).await;
        assert_eq!(status, 200, "{path}: {answer}");
        assert_eq!(answer, json!({"success": true}));
        let rows = server.query(&format!(
            "SELECT type FROM messages WHERE message_id = 'm-{i}'"
        ));
        assert_eq!(text(&rows[0][0]), *kind, "{path}");
    }
    for path in ["/v1/batch", "/v1/import", "/v1/b"] {
        let body = json!({"batch": [{"type": "track", "userId": "b", "event": path}]});
        let (status, answer) = server.post_json(path, &body).await;
        assert_eq!((status, answer), (200, json!({"success": true})), "{path}");
    }
    assert_eq!(server.count("SELECT count(*) FROM messages"), 15);
}

#[tokio::test]
async fn in_a_batch_valid_items_are_kept_and_invalid_ones_listed() {
    let server = TestServer::start("partial-batch").await;
    let body = json!({
        "batch": [
            {"type": "track", "userId": "u1", "event": "A", "context": {"library": {"name": "own"}}},
            {"type": "track", "event": "no identity"},
            {"type": "identify", "userId": "u2", "traits": {"email": "a@example.com"}},
            {"type": "sing", "userId": "u3"},
            "not an object",
            {"type": "page", "anonymousId": "a4", "name": "Home"},
        ],
        "context": {"library": {"name": "analytics-go", "version": "3.3.0"}, "locale": "fr-FR"},
        "integrations": {"All": true},
        "sentAt": "2030-01-01T00:00:00.000Z",
    });
    let (status, answer) = server.post_json("/v1/batch", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["success"], true);
    assert_eq!(answer["accepted"], 3);
    let rejected: Vec<u64> = answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(rejected, [1, 3, 4]);
    assert_eq!(
        answer["rejected"][0]["errors"][0]["path"],
        "batch[1].userId"
    );
    assert_eq!(answer["rejected"][1]["errors"][0]["code"], "unknown_type");

    let rows = server.query("SELECT type, user_id, anonymous_id, body FROM messages ORDER BY seq");
    assert_eq!(rows.len(), 3);
    let first: Value = serde_json::from_str(&text(&rows[0][3])).unwrap();
    // The item's own context wins key by key; batch-level keys are merged in.
    assert_eq!(first["context"]["library"]["name"], "own");
    assert_eq!(first["context"]["locale"], "fr-FR");
    assert_eq!(first["integrations"]["All"], true);
    assert_eq!(first["sentAt"], "2030-01-01T00:00:00.000Z");
    assert_eq!(text(&rows[2][2]), "a4");

    let discards = server.query("SELECT code, reasons, body FROM discards ORDER BY id");
    assert_eq!(discards.len(), 3);
    let reasons: Value = serde_json::from_str(&text(&discards[0][1])).unwrap();
    assert_eq!(reasons[0]["path"], "batch[1].userId");
    let kept: Value = serde_json::from_str(&text(&discards[0][2])).unwrap();
    assert_eq!(kept["event"], "no identity");
}

#[tokio::test]
async fn normalization_ids_timestamps_ip_and_no_write_key_in_bodies() {
    let server = TestServer::start("normalize").await;
    let body = json!({
        "userId": "u1",
        "event": "Skewed",
        "timestamp": "2030-01-01T00:00:00.000Z",
        "sentAt": "2030-01-01T00:00:10.000Z",
        "writeKey": server.key(),
    });
    let response = server
        .client
        .post(format!("{}/v1/track", server.url))
        .header("Content-Type", "text/plain")
        .body(serde_json::to_vec(&body).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let rows = server.query("SELECT message_id, timestamp, received_at, body FROM messages");
    let stored: Value = serde_json::from_str(&text(&rows[0][3])).unwrap();
    assert_eq!(text(&rows[0][0]).len(), 36, "a UUID messageId is generated");
    assert_eq!(stored["messageId"].as_str().unwrap(), text(&rows[0][0]));
    assert_eq!(stored["originalTimestamp"], "2030-01-01T00:00:00.000Z");
    let received = spoor_spec::Timestamp::parse(&text(&rows[0][2])).unwrap();
    let corrected = spoor_spec::Timestamp::parse(&text(&rows[0][1])).unwrap();
    assert_eq!(
        received.nanos_since(corrected),
        10_000_000_000,
        "receivedAt - (sentAt - timestamp)"
    );
    assert_eq!(stored["context"]["ip"], "127.0.0.1");
    assert!(
        stored.get("writeKey").is_none(),
        "the write key is never stored"
    );

    let own_ip = json!({"userId": "u2", "event": "E", "context": {"ip": "203.0.113.7"}});
    server.post_json("/v1/track", &own_ip).await;
    let rows = server.query("SELECT body ->> '$.context.ip' FROM messages WHERE user_id = 'u2'");
    assert_eq!(text(&rows[0][0]), "203.0.113.7");
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    for (trusted, expected) in [(false, "127.0.0.1"), (true, "198.51.100.4")] {
        let config = ServerConfig {
            trusted_proxies: if trusted {
                TrustedProxies::new(vec!["127.0.0.0/8".parse().unwrap()])
            } else {
                TrustedProxies::default()
            },
            ..ServerConfig::default()
        };
        let server = TestServer::start_with("xff", config, Duration::from_secs(3600)).await;
        let response = server
            .client
            .post(format!("{}/v1/t", server.url))
            .header("Authorization", server.basic())
            .header("X-Forwarded-For", "198.51.100.4")
            .body(serde_json::to_vec(&track("u")).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let rows = server.query("SELECT body ->> '$.context.ip' FROM messages");
        assert_eq!(text(&rows[0][0]), expected, "trusted: {trusted}");
    }
}

#[tokio::test]
async fn auth_forms_and_refusals() {
    let server = TestServer::start("auth").await;
    let key = server.key().to_owned();
    let body_with = |k: &str| {
        let mut body = track("u");
        body["writeKey"] = json!(k);
        serde_json::to_vec(&body).unwrap()
    };
    let plain = serde_json::to_vec(&track("u")).unwrap();
    let no_colon = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key.as_bytes())
    );
    type Case<'a> = (&'a str, Option<String>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "basic with colon",
            Some(basic(&key)),
            plain.clone(),
            200,
            "",
        ),
        (
            "basic without colon",
            Some(no_colon),
            plain.clone(),
            200,
            "",
        ),
        ("writeKey in the body", None, body_with(&key), 200, ""),
        (
            "both, agreeing",
            Some(basic(&key)),
            body_with(&key),
            200,
            "",
        ),
        (
            "both, differing",
            Some(basic(&key)),
            body_with("other"),
            401,
            "write_key_mismatch",
        ),
        ("none", None, plain.clone(), 401, "missing_write_key"),
        (
            "unknown basic",
            Some(basic("nope")),
            plain.clone(),
            401,
            "invalid_write_key",
        ),
        (
            "unknown in body",
            None,
            body_with("nope"),
            401,
            "invalid_write_key",
        ),
        (
            "broken header",
            Some("Basic %%%".to_owned()),
            plain.clone(),
            401,
            "invalid_authorization",
        ),
    ];
    for (name, header, body, status, code) in cases {
        let mut request = server
            .client
            .post(format!("{}/v1/track", server.url))
            .body(body);
        if let Some(header) = header {
            request = request.header("Authorization", header);
        }
        let (got, answer) = answer(request.send().await.unwrap()).await;
        assert_eq!(got, status, "{name}: {answer}");
        if status == 401 {
            assert_eq!(answer["code"], code, "{name}");
            assert_eq!(answer["success"], false, "{name}");
        }
    }
    assert_eq!(server.count("SELECT count(*) FROM messages"), 4);
    // Unauthenticated requests leave nothing on disk.
    assert_eq!(server.count("SELECT count(*) FROM discards"), 0);

    // A source disabled from another process (the CLI) is refused within a second.
    let mut meta = MetaStore::open(server.dir.path()).unwrap();
    meta.set_enabled("default", false).unwrap();
    let started = std::time::Instant::now();
    loop {
        let (status, answer) = server.post_json("/v1/track", &track("u")).await;
        if status == 401 {
            assert_eq!(answer["code"], "source_disabled");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "still accepted after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn duplicates_are_acknowledged_counted_and_stored_once() {
    let server =
        TestServer::start_with("dedupe", ServerConfig::default(), Duration::from_secs(1)).await;
    let mut body = track("u");
    body["messageId"] = json!("same-id");
    for _ in 0..3 {
        let (status, _) = server.post_json("/v1/track", &body).await;
        assert_eq!(status, 200);
    }
    let batch = json!({"batch": [
        {"type": "track", "userId": "u", "event": "x", "messageId": "same-id"},
        {"type": "track", "userId": "u", "event": "x", "messageId": "b-1"},
        {"type": "track", "userId": "u", "event": "x", "messageId": "b-1"},
    ]});
    let (status, answer) = server.post_json("/v1/batch", &batch).await;
    assert_eq!((status, answer), (200, json!({"success": true})));
    assert_eq!(server.count("SELECT count(*) FROM messages"), 2);
    let metrics = server
        .client
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("spoor_messages_deduplicated_total 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("spoor_messages_accepted_total 6"),
        "{metrics}"
    );

    // After the window, the same messageId is a new message.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    server.post_json("/v1/track", &body).await;
    assert_eq!(
        server.count("SELECT count(*) FROM messages WHERE message_id = 'same-id'"),
        2
    );
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn gzip_and_deflate_bodies_and_the_bomb_cap() {
    let server = TestServer::start("encodings").await;
    let body = serde_json::to_vec(&json!({"batch": [
        {"type": "track", "userId": "gz", "event": "E"}
    ]}))
    .unwrap();
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(&body).unwrap();
    let deflated = zlib.finish().unwrap();
    let bomb = gzip(&vec![b' '; 20 * 1024 * 1024]);
    let cases = [
        ("gzip", gzip(&body), 200, ""),
        ("deflate", deflated, 200, ""),
        ("gzip", bomb, 400, "body_too_large"),
        ("gzip", b"not gzip at all".to_vec(), 400, "invalid_encoding"),
        ("br", body.clone(), 400, "unsupported_encoding"),
    ];
    for (encoding, bytes, status, code) in cases {
        let (got, answer) = answer(
            server
                .client
                .post(format!("{}/v1/batch", server.url))
                .header("Authorization", server.basic())
                .header("Content-Encoding", encoding)
                .body(bytes)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(got, status, "{encoding}: {answer}");
        if status != 200 {
            assert_eq!(answer["code"], code);
        }
    }
    assert_eq!(
        server.count("SELECT count(*) FROM messages WHERE user_id = 'gz'"),
        2
    );
}

#[tokio::test]
async fn cors_preflight_and_headers() {
    let server = TestServer::start("cors").await;
    let response = server
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/v1/t", server.url))
        .header("Origin", "https://shop.example.com")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let h = response.headers();
    assert_eq!(h["access-control-allow-origin"], "https://shop.example.com");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(
        h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );

    let response = server
        .client
        .post(format!("{}/v1/t", server.url))
        .header("Origin", "https://shop.example.com")
        .header("Authorization", server.basic())
        .header("Content-Type", "text/plain")
        .body(serde_json::to_vec(&track("u")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://shop.example.com"
    );
}

#[tokio::test]
async fn analytics_js_settings_point_back_at_this_server() {
    let server = TestServer::start("settings").await;
    let url = format!("{}/v1/projects/{}/settings", server.url, server.key());
    let (status, settings) = answer(server.client.get(&url).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let segment = &settings["integrations"]["Segment.io"];
    assert_eq!(segment["apiKey"], server.key());
    let host = server.url.trim_start_matches("http://");
    assert_eq!(segment["apiHost"], format!("{host}/v1"));
    assert_eq!(segment["protocol"], "http");
    assert_eq!(settings["integrations"].as_object().unwrap().len(), 1);

    let unknown = format!("{}/v1/projects/nope/settings", server.url);
    assert_eq!(
        server.client.get(&unknown).send().await.unwrap().status(),
        404
    );

    let config = ServerConfig {
        public_url: Some("https://events.example.com/".to_owned()),
        ..ServerConfig::default()
    };
    let public = TestServer::start_with("settings-public", config, Duration::from_secs(60)).await;
    let url = format!("{}/v1/projects/{}/settings", public.url, public.key());
    let (_, settings) = answer(public.client.get(&url).send().await.unwrap()).await;
    assert_eq!(
        settings["integrations"]["Segment.io"]["apiHost"],
        "events.example.com/v1"
    );
    assert_eq!(settings["integrations"]["Segment.io"]["protocol"], "https");
}

#[tokio::test]
async fn health_and_metrics() {
    let server = TestServer::start("health").await;
    server.post_json("/v1/track", &track("u")).await;
    server.post("/v1/track", "{").await;
    let (status, health) = answer(
        server
            .client
            .get(format!("{}/health", server.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(health["store"]["writable"], true);
    assert!(health["store"]["queueDepth"].is_u64());
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    let metrics = server
        .client
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "spoor_http_requests_total{route=\"tracking\",status=\"200\"} 1",
        "spoor_http_requests_total{route=\"tracking\",status=\"400\"} 1",
        "spoor_messages_accepted_total 1",
        "spoor_messages_rejected_total{reason=\"invalid_json\"} 1",
        "spoor_commit_latency_seconds_count",
        "spoor_commit_latency_seconds_bucket{le=\"+Inf\"}",
        "spoor_request_bytes_total",
        "spoor_queue_depth 0",
        "spoor_log_commits_total",
        "spoor_log_write_seconds_bucket{le=\"+Inf\"}",
        "spoor_log_fsync_seconds_bucket{le=\"0.001\"}",
    ] {
        assert!(metrics.contains(needle), "missing {needle}:\n{metrics}");
    }
    // The accepted message was written in a group and made durable by an fsync: both timed.
    for histogram in [
        "spoor_log_write_seconds_count",
        "spoor_log_fsync_seconds_count",
    ] {
        let count: u64 = metrics
            .lines()
            .find_map(|line| line.strip_prefix(histogram))
            .and_then(|rest| rest.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {histogram}:\n{metrics}"));
        assert!(count >= 1, "{histogram} {count}");
    }
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let config = ServerConfig {
        header_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with("slow", config, Duration::from_secs(60)).await;
    let addr = server.url.trim_start_matches("http://").to_owned();

    // A connection that never sends anything is closed too.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), idle.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server kept an idle connection open");

    // So is a kept-alive connection that goes quiet after a request.
    let mut kept = tokio::net::TcpStream::connect(&addr).await.unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), kept.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the server kept a quiet kept-alive connection open"
    );
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));

    // Headers never finished: the connection is closed.
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"POST /v1/track HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server kept a stalled connection open");

    // Body never finished: 408.
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/track HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 100\r\n\r\n{{\"userId\"",
        server.basic()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("body_timeout"), "{text}");
}

#[tokio::test]
async fn connections_over_the_cap_wait_for_a_free_slot() {
    let config = ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    };
    let server = TestServer::start_with("conn-cap", config, Duration::from_secs(60)).await;
    let addr = server.url.trim_start_matches("http://").to_owned();
    let holder = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let blocked = server
        .client
        .get(format!("{}/health", server.url))
        .timeout(Duration::from_millis(400))
        .send()
        .await;
    assert!(
        blocked.is_err(),
        "a second connection was served beyond the cap"
    );
    drop(holder);
    let fresh = reqwest::Client::new();
    let response = fresh
        .get(format!("{}/health", server.url))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_commits_them() {
    let server = TestServer::start("graceful").await;
    let addr = server.url.trim_start_matches("http://").to_owned();
    let body = serde_json::to_vec(&track("in-flight")).unwrap();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/track HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: {}\r\n\r\n",
        server.basic(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..5]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream.write_all(&body[5..]).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let dir = stopping.await.unwrap();
    let rows = spoor_store::run_query(dir.path(), "SELECT user_id FROM messages").unwrap();
    assert_eq!(rows.rows.len(), 1);
}
