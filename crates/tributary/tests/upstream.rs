//! An `openai` upstream backend, tested against a real OpenAI-compatible server: a second
//! Tributary node. Node A forwards the conversation to node B, pays B with its own key there, bills
//! its caller for the answer, and attributes the answer over its own datanets. Upstream failures
//! are reported clearly and never charged.

mod common;

use std::time::{Duration, Instant};

use common::{Node, account, balance, deposit};
use serde_json::{Value, json};

const PSALM: &str = "The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures: he leadeth me beside the still waters. He restoreth my soul: he leadeth me in the paths of righteousness for his name's sake.";

async fn datanet_with_psalm(node: &Node, key: &str) -> String {
    let (_, created) = node
        .call("POST", "/v1/datanets", Some(key), Some(json!({"name": "psalms", "license": "public-domain"})))
        .await;
    let datanet = created["id"].as_str().expect("id").to_owned();
    node.call(
        "POST",
        &format!("/v1/datanets/{datanet}/contributions"),
        Some(key),
        Some(json!({"title": "23", "text": PSALM})),
    )
    .await;
    let started = Instant::now();
    while node.call("GET", &format!("/v1/datanets/{datanet}"), None, None).await.1["contributions_pending"]
        != 0
    {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    datanet
}

async fn model(node: &Node, key: &str, datanet: &str, backend: Value) -> String {
    let (status, created) = node
        .call(
            "POST",
            "/v1/models",
            Some(key),
            Some(json!({"name": format!("m{}", rand_suffix()), "datanets": [datanet], "backend": backend,
            "price": {"input_per_1k": "1000", "output_per_1k": "2000", "request": "5"},
            "split": {"owner_bps": 5000, "data_bps": 3500, "validators_bps": 1000, "protocol_bps": 500}})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().expect("id").to_owned()
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_a_model_from_another_node() {
    let upstream_dir = tempfile::tempdir().expect("tempdir");
    let upstream = Node::start(upstream_dir.path(), &[]);
    let (_, b_owner_key) = account(&upstream, "b owner").await;
    let b_datanet = datanet_with_psalm(&upstream, &b_owner_key).await;
    let b_model = model(&upstream, &b_owner_key, &b_datanet, json!({"kind": "infinigram"})).await;
    let (gateway, gateway_key) = account(&upstream, "node a's account").await;
    deposit(&upstream, &gateway, "1000000").await;

    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let (alice, alice_key) = account(&node, "alice").await;
    let datanet = datanet_with_psalm(&node, &alice_key).await;
    let (_, bob_key) = account(&node, "bob").await;
    let base_url = format!("{}/v1", upstream.base);
    let proxied = model(
        &node,
        &bob_key,
        &datanet,
        json!({"kind": "openai", "base_url": base_url, "model": b_model, "api_key": gateway_key}),
    )
    .await;
    let (carol, carol_key) = account(&node, "carol").await;
    deposit(&node, &carol, "1000000").await;

    let request = json!({"model": proxied, "messages": [{"role": "user", "content": "The LORD is my"}], "max_tokens": 12, "temperature": 0});
    let (status, answer) =
        node.call("POST", "/v1/chat/completions", Some(&carol_key), Some(request.clone())).await;
    assert_eq!(status, 200, "{answer}");
    let content = answer["choices"][0]["message"]["content"].as_str().expect("content");
    // The same question straight to B gives the same (greedy) answer.
    let (_, direct) = upstream.call("POST", "/v1/chat/completions", Some(&gateway_key), Some(json!({"model": b_model, "messages": [{"role": "user", "content": "The LORD is my"}], "max_tokens": 12, "temperature": 0}))).await;
    assert_eq!(direct["choices"][0]["message"]["content"], content);
    // A attributes the answer over its own datanet, and pays Alice for it.
    let shares = answer["tributary"]["attribution"]["contributions"].as_array().expect("contributions");
    assert!(!shares.is_empty(), "{answer}");
    assert!(shares.iter().all(|c| c["contributor"] == alice.as_str()));
    let fee: u128 = answer["tributary"]["fee"].as_str().expect("fee").parse().expect("amount");
    assert_eq!(balance(&node, &carol).await.0, (1_000_000 - fee).to_string());
    assert!(balance(&node, &alice).await.0 != "0");
    // A replay of an upstream answer needs the answer (the upstream is not called again).
    let receipt = answer["tributary"]["receipt_id"].as_str().expect("receipt");
    let (status, _) = node
        .call(
            "POST",
            &format!("/v1/receipts/{receipt}/replay"),
            Some(&carol_key),
            Some(json!({"prompt": "The LORD is my"})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, replay) = node
        .call(
            "POST",
            &format!("/v1/receipts/{receipt}/replay"),
            Some(&carol_key),
            Some(json!({"prompt": "The LORD is my", "answer": content})),
        )
        .await;
    assert_eq!(status, 200, "{replay}");
    assert_eq!(
        (replay["answer_matches"].as_bool(), replay["attribution_matches"].as_bool()),
        (Some(true), Some(true))
    );

    // B billed node A's account for the upstream call.
    assert!(balance(&upstream, &gateway).await.0 != "1000000");

    // Failures upstream: clear errors, nothing charged, no hold left.
    let unreachable = model(
        &node,
        &bob_key,
        &datanet,
        json!({"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "x"}),
    )
    .await;
    let wrong_key = model(
        &node,
        &bob_key,
        &datanet,
        json!({"kind": "openai", "base_url": base_url, "model": b_model, "api_key": "trb_wrong"}),
    )
    .await;
    let before = balance(&node, &carol).await;
    for (model, code) in [(unreachable, "upstream_unreachable"), (wrong_key, "upstream_error")] {
        let mut failing = request.clone();
        failing["model"] = json!(model);
        let (status, error) =
            node.call("POST", "/v1/chat/completions", Some(&carol_key), Some(failing)).await;
        assert_eq!((status, error["error"]["code"].as_str()), (502, Some(code)), "{error}");
        assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("not charged")));
    }
    assert_eq!(balance(&node, &carol).await, before);
    let (_, ledger) = node.call("GET", "/v1/ledger", Some(&node.operator_key), None).await;
    assert_eq!((ledger["balanced"].as_bool(), ledger["holds_pending"].as_u64()), (Some(true), Some(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_hangs_up_leaves_nothing_held() {
    // An upstream that accepts connections and never answers: a real socket, misbehaving.
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hanging_address = hanging.local_addr().expect("address");
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in hanging.incoming() {
            open.push(stream);
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let (_, alice_key) = account(&node, "alice").await;
    let datanet = datanet_with_psalm(&node, &alice_key).await;
    let (_, bob_key) = account(&node, "bob").await;
    let stuck = model(
        &node,
        &bob_key,
        &datanet,
        json!({"kind": "openai", "base_url": format!("http://{hanging_address}/v1"), "model": "x"}),
    )
    .await;
    let (carol, carol_key) = account(&node, "carol").await;
    deposit(&node, &carol, "1000000").await;

    // The call waits on the upstream; once its money is held, the client hangs up.
    let call = tokio::spawn(
        reqwest::Client::new()
            .post(node.url("/v1/chat/completions"))
            .bearer_auth(&carol_key)
            .json(
                &json!({"model": stuck, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}),
            )
            .send(),
    );
    let started = Instant::now();
    while balance(&node, &carol).await.1 == "0" {
        assert!(started.elapsed() < Duration::from_secs(10), "the call never held any money");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    call.abort();
    assert!(call.await.is_err(), "the client gave up before any answer");
    let started = Instant::now();
    loop {
        let (available, held) = balance(&node, &carol).await;
        if held == "0" {
            assert_eq!(available, "1000000", "nothing was charged");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "the hold outlived the hung-up request");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_times_out_is_504_and_free() {
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hanging_address = hanging.local_addr().expect("address");
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in hanging.incoming() {
            open.push(stream);
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &["--upstream-timeout-ms", "300"]);
    let (_, alice_key) = account(&node, "alice").await;
    let datanet = datanet_with_psalm(&node, &alice_key).await;
    let (_, bob_key) = account(&node, "bob").await;
    let stuck = model(
        &node,
        &bob_key,
        &datanet,
        json!({"kind": "openai", "base_url": format!("http://{hanging_address}/v1"), "model": "x"}),
    )
    .await;
    let (carol, carol_key) = account(&node, "carol").await;
    deposit(&node, &carol, "1000000").await;
    let (status, error) = node
        .call(
            "POST",
            "/v1/chat/completions",
            Some(&carol_key),
            Some(json!({"model": stuck, "messages": [{"role": "user", "content": "hello"}]})),
        )
        .await;
    assert_eq!((status, error["error"]["code"].as_str()), (504, Some("upstream_timeout")), "{error}");
    assert!(
        error["error"]["message"].as_str().is_some_and(|m| m.contains("300 ms") && m.contains("not charged"))
    );
    assert_eq!(balance(&node, &carol).await, ("1000000".to_owned(), "0".to_owned()));
}
