//! The built-in retrieval model (BM25 over the datanet, an extractive answer) and RAG in front of
//! an upstream model: answers come from the best-matching contribution, which gets the credit.

mod common;

use std::time::{Duration, Instant};

use common::{Node, account, balance, deposit};
use serde_json::{Value, json};

const PSALMS: [(&str, &str); 3] = [
    (
        "23",
        "The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures: he leadeth me beside the still waters.",
    ),
    (
        "121",
        "I will lift up mine eyes unto the hills, from whence cometh my help. My help cometh from the LORD, which made heaven and earth.",
    ),
    (
        "1",
        "Blessed is the man that walketh not in the counsel of the ungodly. But his delight is in the law of the LORD.",
    ),
];

async fn setup(node: &Node, key: &str) -> (String, Vec<String>) {
    let (_, created) = node
        .call("POST", "/v1/datanets", Some(key), Some(json!({"name": "psalms", "license": "public-domain"})))
        .await;
    let datanet = created["id"].as_str().expect("id").to_owned();
    let items: Vec<Value> = PSALMS.iter().map(|(t, x)| json!({"title": t, "text": x})).collect();
    let (_, added) = node
        .call("POST", &format!("/v1/datanets/{datanet}/contributions/batch"), Some(key), Some(json!(items)))
        .await;
    let ids = added["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect();
    let started = Instant::now();
    while node.call("GET", &format!("/v1/datanets/{datanet}"), None, None).await.1["contributions_pending"]
        != 0
    {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (datanet, ids)
}

fn model_body(name: &str, datanet: &str, backend: Value) -> Value {
    json!({"name": name, "datanets": [datanet], "backend": backend,
           "price": {"input_per_1k": "1000", "output_per_1k": "2000", "request": "5"},
           "split": {"owner_bps": 5000, "data_bps": 3500, "validators_bps": 1000, "protocol_bps": 500}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrieval_answers_from_the_best_contribution_and_rag_credits_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let (alice, alice_key) = account(&node, "alice").await;
    let (datanet, ids) = setup(&node, &alice_key).await;
    let (_, bob_key) = account(&node, "bob").await;
    let (_, created) = node
        .call(
            "POST",
            "/v1/models",
            Some(&bob_key),
            Some(model_body("librarian", &datanet, json!({"kind": "retrieval"}))),
        )
        .await;
    let librarian = created["id"].as_str().expect("id").to_owned();
    let (carol, carol_key) = account(&node, "carol").await;
    deposit(&node, &carol, "1000000").await;

    let (status, answer) = node
        .call("POST", "/v1/chat/completions", Some(&carol_key), Some(json!({"model": librarian, "messages": [{"role": "user", "content": "where cometh my help from, the hills?"}], "max_tokens": 30})))
        .await;
    assert_eq!(status, 200, "{answer}");
    let content = answer["choices"][0]["message"]["content"].as_str().expect("content");
    assert!(
        content.starts_with("I will lift up mine eyes unto the hills"),
        "an extract of Psalm 121, as written: {content}"
    );
    let shares = answer["tributary"]["attribution"]["contributions"].as_array().expect("contributions");
    assert_eq!(
        shares[0]["id"],
        ids[1].as_str(),
        "the retrieved and quoted contribution earns the most: {answer}"
    );
    assert!((shares.iter().map(|c| c["share"].as_f64().expect("share")).sum::<f64>() - 1.0).abs() < 1e-9);
    let fee: u128 = answer["tributary"]["fee"].as_str().expect("fee").parse().expect("amount");
    assert_eq!(balance(&node, &carol).await.0, (1_000_000 - fee).to_string());
    assert!(balance(&node, &alice).await.0 != "0");

    let receipt = answer["tributary"]["receipt_id"].as_str().expect("receipt");
    let (status, replay) = node
        .call(
            "POST",
            &format!("/v1/receipts/{receipt}/replay"),
            Some(&carol_key),
            Some(json!({"prompt": "where cometh my help from, the hills?"})),
        )
        .await;
    assert_eq!(status, 200, "{replay}");
    assert_eq!(
        (replay["answer_matches"].as_bool(), replay["attribution_matches"].as_bool()),
        (Some(true), Some(true))
    );

    // RAG in front of an upstream (another node): the retrieved contribution is credited.
    let upstream_dir = tempfile::tempdir().expect("tempdir");
    let upstream = Node::start(upstream_dir.path(), &[]);
    let (_, b_key) = account(&upstream, "b").await;
    let (b_datanet, _) = setup(&upstream, &b_key).await;
    let (_, b_model) = upstream
        .call(
            "POST",
            "/v1/models",
            Some(&b_key),
            Some(model_body("b", &b_datanet, json!({"kind": "infinigram"}))),
        )
        .await;
    let (gateway, gateway_key) = account(&upstream, "gateway").await;
    deposit(&upstream, &gateway, "1000000").await;
    let rag = json!({"kind": "openai", "base_url": format!("{}/v1", upstream.base), "model": b_model["id"], "api_key": gateway_key, "rag": true});
    let (_, created) =
        node.call("POST", "/v1/models", Some(&bob_key), Some(model_body("rag", &datanet, rag))).await;
    let (status, answer) = node
        .call("POST", "/v1/chat/completions", Some(&carol_key), Some(json!({"model": created["id"], "messages": [{"role": "user", "content": "blessed is the man who delights in the law"}], "max_tokens": 8})))
        .await;
    assert_eq!(status, 200, "{answer}");
    let shares = answer["tributary"]["attribution"]["contributions"].as_array().expect("contributions");
    assert!(
        shares.iter().any(|c| c["id"] == ids[2].as_str()),
        "Psalm 1 was retrieved and credited: {answer}"
    );
    let (_, ledger) = node.call("GET", "/v1/ledger", Some(&node.operator_key), None).await;
    assert_eq!((ledger["balanced"].as_bool(), ledger["holds_pending"].as_u64()), (Some(true), Some(0)));
}
