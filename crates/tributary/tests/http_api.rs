//! Every route of the API over real HTTP against the real binary, including the ways a client can
//! get it wrong: each bad request gets a 4xx JSON error, changes nothing, and the node keeps serving.

mod common;

use common::{Node, account, balance, deposit};
use serde_json::{Value, json};

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

async fn ledger(node: &Node) -> Value {
    let (status, body) = node.call("GET", "/v1/ledger", Some(&node.operator_key), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["balanced"], json!(true), "{body}");
    body
}

#[tokio::test]
async fn health_openapi_metrics_and_unknown_routes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let (status, body) = node.call("GET", "/healthz", None, None).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));

    let (status, openapi) = node.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    for path in [
        "/v1/accounts",
        "/v1/accounts/{id}",
        "/v1/deposits",
        "/v1/transfers",
        "/v1/holds/{id}/post",
        "/v1/datanets/{id}/contributions/batch",
        "/v1/models",
        "/v1/ledger",
    ] {
        assert!(openapi["paths"].get(path).is_some(), "openapi documents {path}");
    }
    assert!(openapi["paths"]["/v1/accounts/{id}"].get("patch").is_some());

    let (status, body) = node.call("GET", "/v1/nope", None, None).await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, body) = node.call("DELETE", "/v1/deposits", None, None).await;
    assert_eq!((status, code(&body)), (405, "method_not_allowed"));

    let metrics =
        node.http.get(node.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(
        metrics.contains(r#"tributary_http_requests_total{method="GET",route="/healthz",status="200"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("tributary_http_request_duration_seconds_count"));
    assert!(metrics.contains("tributary_ledger_batches_total"));
}

#[tokio::test]
async fn accounts_keys_and_privacy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let key_file = dir.path().join("operator.key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key_file).expect("meta").permissions());
    assert_eq!(mode & 0o777, 0o600, "the operator key is private to its owner");

    let (status, alice) = node.call("POST", "/v1/accounts", None, Some(json!({"name": "alice"}))).await;
    assert_eq!(status, 201, "{alice}");
    let (alice_id, alice_key) = (alice["id"].as_str().expect("id"), alice["api_key"].as_str().expect("key"));
    let (bob_id, bob_key) = account(&node, "bob").await;

    let (status, me) = node.call("GET", &format!("/v1/accounts/{alice_id}"), Some(alice_key), None).await;
    assert_eq!(status, 200);
    assert_eq!(me["name"], "alice");
    assert_eq!((me["balance"].as_str(), me["held"].as_str()), (Some("0"), Some("0")));
    assert_eq!(me["payout_address"], Value::Null);

    // Another account's data is invisible, whatever the key.
    let (status, body) = node.call("GET", &format!("/v1/accounts/{alice_id}"), Some(&bob_key), None).await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, body) = node.call("GET", &format!("/v1/accounts/{alice_id}"), None, None).await;
    assert_eq!((status, code(&body)), (401, "unauthorized"));
    let (status, body) = node.call("GET", &format!("/v1/accounts/{alice_id}"), Some("trb_wrong"), None).await;
    assert_eq!((status, code(&body)), (401, "unauthorized"));
    let (status, _) = node
        .call_with("GET", &format!("/v1/accounts/{alice_id}"), None, None, &[("authorization", "Basic abc")])
        .await;
    assert_eq!(status, 401);
    let (status, _) =
        node.call("GET", &format!("/v1/accounts/{alice_id}"), Some(&node.operator_key), None).await;
    assert_eq!(status, 200, "the operator reads any account");
    let (status, body) = node.call("GET", "/v1/accounts/dn_1", Some(alice_key), None).await;
    assert_eq!((status, code(&body)), (400, "invalid_id"));

    // Payout addresses: any case in, checksummed out; bad checksums and others' accounts refused.
    let path = format!("/v1/accounts/{alice_id}");
    let lower = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
    let (status, body) =
        node.call("PATCH", &path, Some(alice_key), Some(json!({"payout_address": lower}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["payout_address"], "0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
    let (status, body) = node
        .call(
            "PATCH",
            &path,
            Some(alice_key),
            Some(json!({"payout_address": "0x70997970C51812dc3A010C7d01b50e0d17dc79c8"})),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "invalid_payout_address"));
    let (status, _) = node.call("PATCH", &path, Some(&bob_key), Some(json!({"payout_address": lower}))).await;
    assert_eq!(status, 404);
    let (status, _) =
        node.call("PATCH", &path, Some(&node.operator_key), Some(json!({"payout_address": lower}))).await;
    assert_eq!(status, 403, "not even the operator redirects someone's payouts");
    let (status, body) =
        node.call("PATCH", &path, Some(alice_key), Some(json!({"payout_address": null}))).await;
    assert_eq!((status, &body["payout_address"]), (200, &Value::Null));

    // Keys are stored hashed: the database files never contain a key in clear.
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(dir.path()).expect("data dir") {
        let path = entry.expect("entry").path();
        if path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("tributary.db")) {
            stored.extend(std::fs::read(&path).expect("read db file"));
        }
    }
    assert!(!stored.is_empty());
    for key in [alice_key, bob_key.as_str(), node.operator_key.as_str()] {
        assert!(
            !stored.windows(key.len()).any(|window| window == key.as_bytes()),
            "a key is stored in clear"
        );
    }

    let (status, body) = node.call("POST", "/v1/accounts", None, Some(json!({"name": "  "}))).await;
    assert_eq!((status, code(&body)), (400, "invalid_field"));
    let (status, body) =
        node.call("POST", "/v1/accounts", None, Some(json!({"name": "x", "admin": true}))).await;
    assert_eq!((status, code(&body)), (400, "invalid_body"));
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("admin"), "{body}");
    let _ = bob_id;
}

#[tokio::test]
async fn signups_are_rate_limited_and_can_be_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &["--signups-per-minute", "3"]);
    for n in 0..3 {
        let (status, body) =
            node.call("POST", "/v1/accounts", None, Some(json!({"name": format!("u{n}")}))).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = node.call("POST", "/v1/accounts", None, Some(json!({"name": "u4"}))).await;
    assert_eq!((status, code(&body)), (429, "rate_limited"));
    let (status, _) =
        node.call("POST", "/v1/accounts", Some(&node.operator_key), Some(json!({"name": "u5"}))).await;
    assert_eq!(status, 201, "the operator is not rate-limited");

    let closed_dir = tempfile::tempdir().expect("tempdir");
    let closed = Node::start(closed_dir.path(), &["--signup", "operator-only"]);
    let (status, body) = closed.call("POST", "/v1/accounts", None, Some(json!({"name": "x"}))).await;
    assert_eq!((status, code(&body)), (403, "forbidden"));
    let (_, user_key) = account(&closed, "y").await;
    let (status, _) = closed.call("POST", "/v1/accounts", Some(&user_key), Some(json!({"name": "z"}))).await;
    assert_eq!(status, 403, "only the operator opens accounts on a closed node");
}

#[tokio::test]
async fn deposits_and_transfers_with_every_kind_of_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let (alice, alice_key) = account(&node, "alice").await;
    let (bob, bob_key) = account(&node, "bob").await;

    let (status, body) = node
        .call("POST", "/v1/deposits", Some(&alice_key), Some(json!({"account": alice, "amount": "5"})))
        .await;
    assert_eq!((status, code(&body)), (403, "forbidden"), "only the operator deposits");
    deposit(&node, &alice, "1000").await;
    let before = ledger(&node).await;

    let op = Some(node.operator_key.as_str());
    for (amount, expected_code) in [
        (json!(100), "invalid_body"),
        (json!("-1"), "invalid_body"),
        (json!("1.5"), "invalid_body"),
        (json!("1e3"), "invalid_body"),
        (json!(""), "invalid_body"),
        (json!("340282366920938463463374607431768211456"), "invalid_body"),
        (json!(null), "invalid_body"),
        (json!("0"), "invalid_amount"),
    ] {
        let (status, body) =
            node.call("POST", "/v1/deposits", op, Some(json!({"account": alice, "amount": amount}))).await;
        assert_eq!((status, code(&body)), (400, expected_code), "amount {amount}: {body}");
        let (status, body) = node
            .call("POST", "/v1/transfers", Some(&alice_key), Some(json!({"to": bob, "amount": amount})))
            .await;
        assert_eq!((status, code(&body)), (400, expected_code), "amount {amount}: {body}");
    }
    let (status, body) =
        node.call("POST", "/v1/deposits", op, Some(json!({"account": "acct_999", "amount": "1"}))).await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, body) =
        node.call("POST", "/v1/deposits", op, Some(json!({"account": "acct_1", "amount": "1"}))).await;
    assert_eq!((status, code(&body)), (400, "invalid_request"), "internal accounts take no deposits: {body}");
    let (status, body) = node
        .call("POST", "/v1/transfers", Some(&alice_key), Some(json!({"to": bob, "amount": "1", "from": bob})))
        .await;
    assert_eq!((status, code(&body)), (400, "invalid_body"), "nobody names the account to debit");
    let (status, body) = node
        .raw("POST", "/v1/transfers", Some(&alice_key), Some("application/json"), b"{\"to\":".to_vec())
        .await;
    assert_eq!((status, code(&body)), (400, "malformed_json"));
    let (status, body) = node.raw("POST", "/v1/transfers", Some(&alice_key), None, b"{}".to_vec()).await;
    assert_eq!((status, code(&body)), (415, "unsupported_media_type"));
    let mut bad_utf8 = b"{\"to\":\"".to_vec();
    bad_utf8.extend_from_slice(&[0xff, 0xfe]);
    bad_utf8.extend_from_slice(b"\",\"amount\":\"1\"}");
    let (status, _) =
        node.raw("POST", "/v1/transfers", Some(&alice_key), Some("application/json"), bad_utf8).await;
    assert_eq!(status, 400);
    // An oversized body is refused as soon as its length is known; the node may close the
    // connection before the client has finished writing, so a write error is also a refusal.
    let huge = vec![b' '; 17 * 1024 * 1024];
    let sent = reqwest::Client::new()
        .post(node.url("/v1/transfers"))
        .bearer_auth(&alice_key)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await;
    match sent {
        Ok(response) => {
            assert_eq!(response.status().as_u16(), 413);
            let body: Value = response.json().await.expect("json error");
            assert_eq!(code(&body), "body_too_large");
        }
        Err(error) => assert!(error.is_request(), "{error}"),
    }
    assert_eq!(node.call("GET", "/healthz", None, None).await.0, 200, "and keeps serving");

    let (status, body) = node
        .call("POST", "/v1/transfers", Some(&alice_key), Some(json!({"to": bob, "amount": "1001"})))
        .await;
    assert_eq!((status, code(&body)), (402, "insufficient_funds"));
    let (status, body) =
        node.call("POST", "/v1/transfers", Some(&alice_key), Some(json!({"to": alice, "amount": "1"}))).await;
    assert_eq!((status, code(&body)), (400, "same_account"));
    let (status, body) =
        node.call("POST", "/v1/transfers", None, Some(json!({"to": bob, "amount": "1"}))).await;
    assert_eq!((status, code(&body)), (401, "unauthorized"));

    // Nothing above changed anything.
    assert_eq!(ledger(&node).await, before);
    assert_eq!(balance(&node, &alice).await, ("1000".into(), "0".into()));

    let (status, paid) =
        node.call("POST", "/v1/transfers", Some(&alice_key), Some(json!({"to": bob, "amount": "300"}))).await;
    assert_eq!(status, 201, "{paid}");
    assert_eq!(
        (paid["from"].as_str(), paid["to"].as_str(), paid["amount"].as_str()),
        (Some(alice.as_str()), Some(bob.as_str()), Some("300"))
    );
    let transfer_path = format!("/v1/transfers/{}", paid["id"].as_str().expect("id"));
    assert_eq!(node.call("GET", &transfer_path, Some(&bob_key), None).await.0, 200);
    let (_, carol_key) = account(&node, "carol").await;
    assert_eq!(
        node.call("GET", &transfer_path, Some(&carol_key), None).await.0,
        404,
        "strangers cannot read it"
    );

    let (status, history) =
        node.call("GET", &format!("/v1/accounts/{bob}/transfers"), Some(&bob_key), None).await;
    assert_eq!(status, 200);
    assert_eq!(history["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        node.call("GET", &format!("/v1/accounts/{bob}/transfers?limit=0"), Some(&bob_key), None).await.0,
        400
    );
    assert_eq!(
        node.call("GET", &format!("/v1/accounts/{alice}/transfers"), Some(&bob_key), None).await.0,
        404
    );

    assert_eq!(balance(&node, &alice).await.0, "700");
    assert_eq!(balance(&node, &bob).await.0, "300");
    let after = ledger(&node).await;
    assert_eq!(after["deposited"], "1000");

    // Amounts are exact up to 2^128 - 1; one unit more than any counter can hold is refused.
    let (big, _) = account(&node, "big").await;
    let max = u128::MAX - 1000;
    deposit(&node, &big, &max.to_string()).await;
    assert_eq!(balance(&node, &big).await.0, max.to_string());
    let (status, body) =
        node.call("POST", "/v1/deposits", op, Some(json!({"account": big, "amount": "1"}))).await;
    assert_eq!((status, code(&body)), (400, "amount_overflow"), "{body}");
    assert_eq!(ledger(&node).await["deposited"], (max + 1000).to_string());
}

#[tokio::test]
async fn idempotency_keys_replay_and_conflict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let (alice, alice_key) = account(&node, "alice").await;
    let (bob, _) = account(&node, "bob").await;
    let op = Some(node.operator_key.as_str());
    let deposit_body = json!({"account": alice, "amount": "500"});
    let (s1, first) = node
        .call_with("POST", "/v1/deposits", op, Some(deposit_body.clone()), &[("idempotency-key", "d-1")])
        .await;
    let (s2, second) =
        node.call_with("POST", "/v1/deposits", op, Some(deposit_body), &[("idempotency-key", "d-1")]).await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(first, second, "a retry returns the first response");
    assert_eq!(balance(&node, &alice).await.0, "500", "and has no second effect");
    let (status, body) = node
        .call_with(
            "POST",
            "/v1/deposits",
            op,
            Some(json!({"account": alice, "amount": "501"})),
            &[("idempotency-key", "d-1")],
        )
        .await;
    assert_eq!((status, code(&body)), (409, "idempotency_key_reused"));

    // Concurrent retries of one transfer: exactly one effect.
    let body = json!({"to": bob, "amount": "7"});
    let attempts = (0..8).map(|_| {
        node.call_with(
            "POST",
            "/v1/transfers",
            Some(&alice_key),
            Some(body.clone()),
            &[("idempotency-key", "t-1")],
        )
    });
    let results = futures_join_all(attempts).await;
    let ids: std::collections::HashSet<_> = results.iter().map(|(s, b)| (*s, b["id"].clone())).collect();
    assert_eq!(ids.len(), 1, "{results:?}");
    assert_eq!(balance(&node, &bob).await.0, "7");
    let (status, _) = node
        .call_with("POST", "/v1/transfers", Some(&alice_key), Some(body), &[("idempotency-key", "")])
        .await;
    assert_eq!(status, 400);
}

async fn futures_join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.collect();
    let mut outputs = Vec::new();
    // Poll them together by pinning into a join set of local futures.
    let mut pinned: Vec<_> = handles.into_iter().map(Box::pin).collect();
    let mut slots: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, future) in slots.iter_mut().zip(pinned.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(output) => *slot = Some(output),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    outputs.extend(slots.into_iter().map(|slot| slot.expect("every future finished")));
    outputs
}

#[tokio::test]
async fn holds_post_void_and_expire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let (alice, alice_key) = account(&node, "alice").await;
    let (bob, bob_key) = account(&node, "bob").await;
    deposit(&node, &alice, "1000").await;

    let (status, hold) = node
        .call(
            "POST",
            "/v1/holds",
            Some(&alice_key),
            Some(json!({"to": bob, "amount": "600", "timeout_ms": 60000})),
        )
        .await;
    assert_eq!((status, hold["kind"].as_str()), (201, Some("pending")), "{hold}");
    let hold_id = hold["id"].as_str().expect("id").to_owned();
    assert_eq!(balance(&node, &alice).await, ("400".into(), "600".into()));
    let (status, body) = node
        .call(
            "POST",
            "/v1/holds",
            Some(&alice_key),
            Some(json!({"to": bob, "amount": "401", "timeout_ms": 60000})),
        )
        .await;
    assert_eq!((status, code(&body)), (402, "insufficient_funds"));
    let (status, body) = node
        .call("POST", "/v1/holds", Some(&alice_key), Some(json!({"to": bob, "amount": "1", "timeout_ms": 0})))
        .await;
    assert_eq!((status, code(&body)), (400, "invalid_timeout"));

    let post = format!("/v1/holds/{hold_id}/post");
    let (status, body) = node.call("POST", &post, Some(&bob_key), Some(json!({}))).await;
    assert_eq!((status, code(&body)), (403, "forbidden"), "the payee cannot take the money");
    let (status, body) = node.call("POST", &post, Some(&alice_key), Some(json!({"amount": "601"}))).await;
    assert_eq!((status, code(&body)), (400, "post_exceeds_hold"));
    let (status, posted) = node.call("POST", &post, Some(&alice_key), Some(json!({"amount": "250"}))).await;
    assert_eq!(
        (status, posted["kind"].as_str(), posted["hold"].as_str()),
        (201, Some("post_pending"), Some(hold_id.as_str()))
    );
    assert_eq!(balance(&node, &alice).await, ("750".into(), "0".into()));
    assert_eq!(balance(&node, &bob).await, ("250".into(), "0".into()));
    let (status, body) = node.call("POST", &post, Some(&alice_key), None).await;
    assert_eq!((status, code(&body)), (409, "hold_not_pending"));

    // The payee may refuse (void) a hold; a stranger may not.
    let (_, hold) = node
        .call(
            "POST",
            "/v1/holds",
            Some(&alice_key),
            Some(json!({"to": bob, "amount": "100", "timeout_ms": 60000})),
        )
        .await;
    let void = format!("/v1/holds/{}/void", hold["id"].as_str().expect("id"));
    let (_, carol_key) = account(&node, "carol").await;
    assert_eq!(node.call("POST", &void, Some(&carol_key), None).await.0, 403);
    assert_eq!(node.call("POST", &void, Some(&bob_key), None).await.0, 201);
    assert_eq!(node.call("POST", &void, Some(&alice_key), None).await.0, 409);

    // A hold nobody resolves expires and gives the money back.
    let (_, hold) = node
        .call(
            "POST",
            "/v1/holds",
            Some(&alice_key),
            Some(json!({"to": bob, "amount": "50", "timeout_ms": 300})),
        )
        .await;
    assert_eq!(balance(&node, &alice).await, ("700".into(), "50".into()));
    let mut released = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if balance(&node, &alice).await == ("750".into(), "0".into()) {
            released = true;
            break;
        }
    }
    assert!(released, "the expired hold was released");
    let (status, body) = node
        .call("POST", &format!("/v1/holds/{}/post", hold["id"].as_str().expect("id")), Some(&alice_key), None)
        .await;
    assert_eq!((status, code(&body)), (409, "hold_not_pending"));
    ledger(&node).await;
}

#[tokio::test]
async fn datanets_contributions_and_models() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let (alice, key) = account(&node, "alice").await;
    let key = Some(key.as_str());

    let (status, created) = node
        .call(
            "POST",
            "/v1/datanets",
            key,
            Some(json!({"name": "psalms", "description": "KJV", "license": "public-domain"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let datanet = created["id"].as_str().expect("id").to_owned();
    let (status, body) =
        node.call("POST", "/v1/datanets", key, Some(json!({"name": "", "license": "x"}))).await;
    assert_eq!((status, code(&body)), (400, "invalid_field"));
    let (status, body) =
        node.call("POST", "/v1/datanets", None, Some(json!({"name": "x", "license": "x"}))).await;
    assert_eq!((status, code(&body)), (401, "unauthorized"));

    let (status, list) = node.call("GET", "/v1/datanets", None, None).await;
    assert_eq!((status, list["data"].as_array().map(Vec::len)), (200, Some(1)));
    let (status, shown) = node.call("GET", &format!("/v1/datanets/{datanet}"), None, None).await;
    assert_eq!(
        (status, shown["owner"].as_str(), shown["license"].as_str()),
        (200, Some(alice.as_str()), Some("public-domain"))
    );
    assert_eq!(node.call("GET", "/v1/datanets/dn_999", None, None).await.0, 404);
    assert_eq!(node.call("GET", "/v1/datanets/999", None, None).await.0, 400);

    let text = "The LORD is my shepherd; I shall not want.";
    let (status, added) = node
        .call(
            "POST",
            &format!("/v1/datanets/{datanet}/contributions"),
            key,
            Some(json!({"title": "Psalm 23:1", "text": text})),
        )
        .await;
    assert_eq!((status, added["status"].as_str()), (201, Some("accepted")), "{added}");
    let (status, stored) = node
        .call("GET", &format!("/v1/contributions/{}", added["id"].as_str().expect("id")), None, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(stored["text"], text);
    assert_eq!(stored["contributor"], alice.as_str());
    assert_eq!(stored["content_hash"], blake3::hash(text.as_bytes()).to_hex().as_str());
    let (status, _) = node
        .call("POST", "/v1/datanets/dn_999/contributions", key, Some(json!({"title": "t", "text": "x"})))
        .await;
    assert_eq!(status, 404);

    let batch = json!([
        {"title": "Psalm 23:2", "text": "He maketh me to lie down in green pastures"},
        {"title": "empty", "text": "   "},
        {"title": "Psalm 23:3", "text": "He restoreth my soul", "source": "KJV"},
    ]);
    let (status, results) =
        node.call("POST", &format!("/v1/datanets/{datanet}/contributions/batch"), key, Some(batch)).await;
    assert_eq!(status, 201, "{results}");
    let results = results["results"].as_array().expect("results").clone();
    assert_eq!(results[0]["status"], "accepted");
    assert_eq!(results[1]["error"]["code"], "invalid_field", "one bad item gets its own error");
    assert_eq!(results[2]["status"], "accepted", "and does not sink the rest");
    let too_many: Vec<Value> = (0..1001).map(|n| json!({"title": format!("{n}"), "text": "x"})).collect();
    let (status, _) = node
        .call("POST", &format!("/v1/datanets/{datanet}/contributions/batch"), key, Some(json!(too_many)))
        .await;
    assert_eq!(status, 400);
    assert_eq!(node.call("GET", &format!("/v1/datanets/{datanet}"), None, None).await.1["contributions"], 3);

    let model = |split: Value, datanets: Value, backend: Value| {
        json!({"name": "shepherd", "datanets": datanets, "backend": backend,
               "price": {"input_per_1k": "20", "output_per_1k": "60", "request": "1"}, "split": split})
    };
    let good_split =
        json!({"owner_bps": 5000, "data_bps": 3500, "validators_bps": 1000, "protocol_bps": 500});
    let (status, created) = node
        .call(
            "POST",
            "/v1/models",
            key,
            Some(model(good_split.clone(), json!([datanet]), json!({"kind": "infinigram"}))),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let model_id = created["id"].as_str().expect("id").to_owned();
    let (status, shown) = node.call("GET", &format!("/v1/models/{model_id}"), None, None).await;
    assert_eq!(
        (status, shown["owner"].as_str(), shown["price"]["output_per_1k"].as_str()),
        (200, Some(alice.as_str()), Some("60"))
    );

    let bad_split = json!({"owner_bps": 5000, "data_bps": 3500, "validators_bps": 1000, "protocol_bps": 499});
    let (status, body) = node
        .call(
            "POST",
            "/v1/models",
            key,
            Some(model(bad_split, json!([datanet]), json!({"kind": "retrieval"}))),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "invalid_split"));
    let (status, body) = node
        .call(
            "POST",
            "/v1/models",
            key,
            Some(model(good_split.clone(), json!(["dn_404"]), json!({"kind": "retrieval"}))),
        )
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, body) = node
        .call(
            "POST",
            "/v1/models",
            key,
            Some(model(good_split.clone(), json!([datanet]), json!({"kind": "gpt"}))),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "invalid_body"));

    let upstream = json!({"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "llama", "api_key": "sk-secret", "rag": true});
    let (status, created) =
        node.call("POST", "/v1/models", key, Some(model(good_split, json!([datanet]), upstream))).await;
    assert_eq!(status, 201, "{created}");
    let (_, shown) =
        node.call("GET", &format!("/v1/models/{}", created["id"].as_str().expect("id")), None, None).await;
    assert_eq!(shown["backend"]["api_key"], "[redacted]", "an upstream key is never shown");
    assert!(!shown.to_string().contains("sk-secret"));

    let (status, list) = node.call("GET", "/v1/models", None, None).await;
    assert_eq!((status, list["object"].as_str()), (200, Some("list")));
    assert_eq!(list["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(list["data"][0]["object"], "model");
}

#[tokio::test]
async fn sigterm_drains_and_state_survives_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let operator_key = node.operator_key.clone();
    let (alice, _) = account(&node, "alice").await;
    deposit(&node, &alice, "42").await;
    let status = node.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");

    // A second start reuses the operator and all data; it prints no new key.
    let node = Node::start(dir.path(), &[]);
    assert_eq!(node.operator_key, operator_key);
    assert_eq!(balance(&node, &alice).await.0, "42");
}
