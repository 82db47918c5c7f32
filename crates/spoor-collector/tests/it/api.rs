//! The Public API subset under `/api`: envelopes, paging, roles and errors.

use std::collections::HashSet;

use serde_json::{Value, json};
use spoor_store::{MetaStore, Role};

use crate::util::{TestServer, answer, basic};

async fn call(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server
        .client
        .request(method, format!("{}/api{path}", server.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    answer(request.send().await.unwrap()).await
}

/// Polls `GET /api/` with `token` until it answers `status`, for at most a second.
async fn wait_for_status(server: &TestServer, token: &str, status: u16) {
    let started = std::time::Instant::now();
    loop {
        let (got, _) = call(server, reqwest::Method::GET, "/", Some(token), None).await;
        if got == status {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "still {got}, not {status}, after a second"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

fn error_type(answer: &Value) -> &str {
    answer["errors"][0]["type"].as_str().unwrap_or("")
}

#[tokio::test]
async fn tokens_roles_and_errors() {
    let server = TestServer::start("api-auth").await;
    let owner = server.first.token.clone();
    let (member_id, member) = {
        let mut meta = MetaStore::open(server.dir.path()).unwrap();
        let (token, secret) = meta.create_token("read only", Role::Member).unwrap();
        (token.id, secret)
    };
    // The running server picks the new token up within a second.
    wait_for_status(&server, &member, 200).await;

    let (status, body) = call(&server, reqwest::Method::GET, "/", Some(&owner), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["workspace"]["id"], server.first.workspace.id);

    type Case<'a> = (
        &'a str,
        reqwest::Method,
        &'a str,
        Option<&'a str>,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "no token",
            reqwest::Method::GET,
            "/",
            None,
            401,
            "unauthorized",
        ),
        (
            "unknown token",
            reqwest::Method::GET,
            "/sources",
            Some("spoor_nope"),
            401,
            "unauthorized",
        ),
        (
            "member reads",
            reqwest::Method::GET,
            "/sources",
            Some(&member),
            200,
            "",
        ),
        (
            "member writes",
            reqwest::Method::POST,
            "/sources",
            Some(&member),
            403,
            "forbidden",
        ),
        (
            "unknown source",
            reqwest::Method::GET,
            "/sources/nope",
            Some(&owner),
            404,
            "not-found",
        ),
    ];
    for (name, method, path, token, status, kind) in cases {
        let body = (method == reqwest::Method::POST).then(|| json!({"slug": "x"}));
        let (got, answer) = call(&server, method, path, token, body).await;
        assert_eq!(got, status, "{name}: {answer}");
        if status >= 400 {
            assert_eq!(error_type(&answer), kind, "{name}: {answer}");
            assert_eq!(answer["errors"][0]["status"], status, "{name}");
        }
    }
    // Members do not see write keys.
    let (_, list) = call(
        &server,
        reqwest::Method::GET,
        "/sources",
        Some(&member),
        None,
    )
    .await;
    assert_eq!(list["data"]["sources"][0]["writeKeys"], json!([]));
    let (_, list) = call(
        &server,
        reqwest::Method::GET,
        "/sources",
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(
        list["data"]["sources"][0]["writeKeys"],
        json!([server.key()])
    );

    // A revoked token is refused.
    MetaStore::open(server.dir.path())
        .unwrap()
        .revoke_token(&member_id)
        .unwrap();
    wait_for_status(&server, &member, 401).await;
}

#[tokio::test]
async fn sources_lifecycle_and_write_keys() {
    let server = TestServer::start("api-sources").await;
    let owner = server.first.token.clone();
    let (status, created) = call(
        &server,
        reqwest::Method::POST,
        "/sources",
        Some(&owner),
        Some(json!({"slug": "web", "enabled": true, "metadataId": "iUM16Md8P2"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let source = &created["data"]["source"];
    let id = source["id"].as_str().unwrap().to_owned();
    let key = source["writeKeys"][0].as_str().unwrap().to_owned();
    assert_eq!(source["slug"], "web");
    assert_eq!(source["metadata"]["id"], "iUM16Md8P2");

    let send = |key: String| {
        let client = server.client.clone();
        let url = format!("{}/v1/track", server.url);
        async move {
            client
                .post(url)
                .header("Authorization", basic(&key))
                .json(&json!({"userId": "u", "event": "E"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        send(key.clone()).await,
        200,
        "a new source's key works at once"
    );

    let (status, bad) = call(
        &server,
        reqwest::Method::POST,
        "/sources",
        Some(&owner),
        Some(json!({"slug": "Bad Slug"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(bad["errors"][0]["field"], "slug");
    let (status, _) = call(
        &server,
        reqwest::Method::POST,
        "/sources",
        Some(&owner),
        Some(json!({"slug": "web"})),
    )
    .await;
    assert_eq!(status, 409);

    let (status, patched) = call(
        &server,
        reqwest::Method::PATCH,
        &format!("/sources/{id}"),
        Some(&owner),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(patched["data"]["source"]["enabled"], false);
    assert_eq!(send(key.clone()).await, 401);
    call(
        &server,
        reqwest::Method::PATCH,
        &format!("/sources/{id}"),
        Some(&owner),
        Some(json!({"enabled": true})),
    )
    .await;

    let (status, added) = call(
        &server,
        reqwest::Method::POST,
        &format!("/sources/{id}/writekey"),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let keys = added["data"]["source"]["writeKeys"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(keys.len(), 2);
    let second = keys[1].as_str().unwrap().to_owned();
    assert_eq!(send(second.clone()).await, 200);

    let (status, removed) = call(
        &server,
        reqwest::Method::DELETE,
        &format!("/sources/{id}/writekey/{key}"),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(removed["data"]["source"]["writeKeys"], json!([second]));
    assert_eq!(send(key.clone()).await, 401, "a removed key is refused");

    let (status, deleted) = call(
        &server,
        reqwest::Method::DELETE,
        &format!("/sources/{id}"),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(
        (status, deleted),
        (200, json!({"data": {"status": "SUCCESS"}}))
    );
    let (status, _) = call(
        &server,
        reqwest::Method::GET,
        &format!("/sources/{id}"),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(send(second).await, 401);
}

#[tokio::test]
async fn sources_are_paged_with_opaque_cursors() {
    let server = TestServer::start("api-paging").await;
    let owner = server.first.token.clone();
    for i in 0..6 {
        let (status, _) = call(
            &server,
            reqwest::Method::POST,
            "/sources",
            Some(&owner),
            Some(json!({"slug": format!("s{i}")})),
        )
        .await;
        assert_eq!(status, 201);
    }
    let mut seen = HashSet::new();
    let mut path = "/sources?pagination.count=3".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = call(&server, reqwest::Method::GET, &path, Some(&owner), None).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        let sources = page["data"]["sources"].as_array().unwrap();
        assert!(sources.len() <= 3);
        for source in sources {
            assert!(seen.insert(source["id"].as_str().unwrap().to_owned()));
        }
        assert_eq!(page["data"]["pagination"]["totalEntries"], 7);
        match page["data"]["pagination"]["next"].as_str() {
            Some(next) => path = format!("/sources?pagination.count=3&pagination.cursor={next}"),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (7, 3));
    for bad in [
        "/sources?pagination.count=0",
        "/sources?pagination.count=1001",
        "/sources?pagination.cursor=%21%21",
    ] {
        let (status, body) = call(&server, reqwest::Method::GET, bad, Some(&owner), None).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(error_type(&body), "validation");
    }
}
