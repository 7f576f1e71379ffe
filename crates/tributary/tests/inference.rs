//! Paid inference over HTTP against the real binary: the ∞-gram model answers from the datanet,
//! the caller pays exactly the fee, the split reaches the owner, contributors, validators and
//! protocol to the unit, and every answer has a signed receipt chained to the previous one.

mod common;

use std::time::{Duration, Instant};

use common::{Node, account, balance, deposit};
use serde_json::{Value, json};

const PSALMS: [&str; 3] = [
    "The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures: he leadeth me beside the still waters.",
    "The LORD is my light and my salvation; whom shall I fear? the LORD is the strength of my life; of whom shall I be afraid?",
    "I will lift up mine eyes unto the hills, from whence cometh my help. My help cometh from the LORD, which made heaven and earth.",
];

fn units(value: &Value) -> u128 {
    value.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not an amount: {value}"))
}

#[tokio::test]
async fn a_paid_chat_completion_moves_exactly_the_fee_and_is_receipted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let (alice, alice_key) = account(&node, "alice").await;
    let (bob, bob_key) = account(&node, "bob").await;
    let (carol, carol_key) = account(&node, "carol").await;
    let (_, created) = node
        .call(
            "POST",
            "/v1/datanets",
            Some(&alice_key),
            Some(json!({"name": "psalms", "license": "public-domain"})),
        )
        .await;
    let datanet = created["id"].as_str().expect("id").to_owned();
    let items: Vec<Value> =
        PSALMS.iter().enumerate().map(|(i, t)| json!({"title": format!("{i}"), "text": t})).collect();
    node.call(
        "POST",
        &format!("/v1/datanets/{datanet}/contributions/batch"),
        Some(&alice_key),
        Some(json!(items)),
    )
    .await;
    let started = Instant::now();
    while node.call("GET", &format!("/v1/datanets/{datanet}"), None, None).await.1["contributions_indexed"]
        != 3
    {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, model) = node
        .call(
            "POST",
            "/v1/models",
            Some(&bob_key),
            Some(json!({"name": "shepherd", "datanets": [datanet], "backend": {"kind": "infinigram"},
            "price": {"input_per_1k": "1000", "output_per_1k": "2000", "request": "5"},
            "split": {"owner_bps": 5000, "data_bps": 3500, "validators_bps": 1000, "protocol_bps": 500}})),
        )
        .await;
    let model = model["id"].as_str().expect("model id").to_owned();
    deposit(&node, &carol, "1000000").await;

    let request = json!({"model": "shepherd", "messages": [{"role": "user", "content": "The LORD is my"}], "max_tokens": 8, "seed": 7});
    let response = node
        .http
        .post(node.url("/v1/chat/completions"))
        .bearer_auth(&carol_key)
        .json(&request)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 200);
    let header = response
        .headers()
        .get("x-tributary-receipt")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("receipt header");
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], model.as_str());
    let content = answer["choices"][0]["message"]["content"].as_str().expect("content");
    assert!(!content.is_empty(), "{answer}");
    let prompt_tokens = answer["usage"]["prompt_tokens"].as_u64().expect("usage");
    let completion_tokens = answer["usage"]["completion_tokens"].as_u64().expect("usage");
    assert_eq!(prompt_tokens, 4);
    assert_eq!(completion_tokens as usize, content.split(' ').count());
    assert!((1..=8).contains(&completion_tokens));
    let tributary = &answer["tributary"];
    assert_eq!(tributary["receipt_id"], header.as_str());
    let fee = units(&tributary["fee"]);
    assert_eq!(
        fee,
        (u128::from(prompt_tokens) * 1000 + u128::from(completion_tokens) * 2000).div_ceil(1000) + 5
    );
    let splits = tributary["splits"].as_array().expect("splits");
    assert_eq!(
        splits.iter().map(|l| units(&l["amount"])).sum::<u128>(),
        fee,
        "the splits add up to the fee exactly"
    );
    let paid = |account: &str| {
        splits.iter().filter(|l| l["account"] == account).map(|l| units(&l["amount"])).sum::<u128>()
    };
    // Largest remainder: the owner's 50% is its exact share rounded down, or one unit more.
    assert!(paid(&bob) == fee / 2 || paid(&bob) == fee / 2 + 1, "{splits:?}");
    // Every word came from Alice's psalms: the data share is all hers.
    let attribution = &tributary["attribution"];
    let shares = attribution["contributions"].as_array().expect("contributions");
    assert!(!shares.is_empty());
    assert!(shares.iter().all(|c| c["contributor"] == alice.as_str() && c["datanet"] == datanet.as_str()));
    assert!((shares.iter().map(|c| c["share"].as_f64().expect("share")).sum::<f64>() - 1.0).abs() < 1e-9);
    assert!(paid(&alice) > 0);

    // Balances: Carol paid exactly the fee and holds nothing; the ledger balances; clearing is empty.
    assert_eq!(balance(&node, &carol).await, ((1_000_000 - fee).to_string(), "0".to_owned()));
    assert_eq!(units(&json!(balance(&node, &bob).await.0)), paid(&bob));
    assert_eq!(units(&json!(balance(&node, &alice).await.0)), paid(&alice));
    let (_, ledger) = node.call("GET", "/v1/ledger", Some(&node.operator_key), None).await;
    assert_eq!(ledger["balanced"], true);
    assert_eq!(
        balance(&node, "acct_4").await,
        ("0".to_owned(), "0".to_owned()),
        "the clearing account is empty"
    );

    // The receipt: visible to the caller and the payees, signed by the node's key, chained.
    let (status, receipt) = node.call("GET", &format!("/v1/receipts/{header}"), Some(&carol_key), None).await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(units(&receipt["fee"]), fee);
    assert_eq!(receipt["prev_hash"], "0".repeat(64), "the first receipt starts the chain");
    assert_eq!(node.call("GET", &format!("/v1/receipts/{header}"), Some(&alice_key), None).await.0, 200);
    let (_, stranger_key) = account(&node, "stranger").await;
    assert_eq!(node.call("GET", &format!("/v1/receipts/{header}"), Some(&stranger_key), None).await.0, 404);
    let (_, info) = node.call("GET", "/v1/node", None, None).await;
    let public_key: [u8; 32] = hex_bytes(info["public_key"].as_str().expect("key"));
    let hash: [u8; 32] = hex_bytes(receipt["hash"].as_str().expect("hash"));
    let signature: [u8; 64] = hex_bytes(receipt["signature"].as_str().expect("signature"));
    let id: u64 = header.trim_start_matches("rcpt_").parse().expect("id");
    let recomputed = tributary_ledger::store::receipt_hash(
        id,
        receipt["created_at_ms"].as_u64().expect("time"),
        &hex_bytes(receipt["prev_hash"].as_str().expect("prev")),
        receipt["body"].as_str().expect("body"),
    );
    assert_eq!(recomputed, hash, "the hash covers the signed body");
    assert!(tributary_server::signing::verify(&public_key, &hash, &signature));
    let mut forged = signature;
    forged[0] ^= 1;
    assert!(!tributary_server::signing::verify(&public_key, &hash, &forged));

    // `tributary receipt verify` checks the same, and the answer the caller kept.
    let cli = |key: &str, args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
            .args(args)
            .env("TRIBUTARY_NODE", &node.base)
            .env("TRIBUTARY_API_KEY", key)
            .output()
            .expect("cli runs");
        (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let kept = dir.path().join("answer.txt");
    std::fs::write(&kept, content).expect("write");
    let (code, out) =
        cli(&carol_key, &["receipt", "verify", &header, "--answer", kept.to_str().expect("utf-8")]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("hash and signature: valid") && out.contains("answer: matches"), "{out}");
    std::fs::write(&kept, "a different answer").expect("write");
    let (code, out) =
        cli(&carol_key, &["receipt", "verify", &header, "--answer", kept.to_str().expect("utf-8")]);
    assert_eq!(code, Some(1), "{out}");

    // An auditor's replay: the same prompt at the receipt's index version gives the same answer and
    // the same attribution; a different prompt is refused.
    let (status, replay) = node
        .call(
            "POST",
            &format!("/v1/receipts/{header}/replay"),
            Some(&alice_key),
            Some(json!({"prompt": "The LORD is my"})),
        )
        .await;
    assert_eq!(status, 200, "{replay}");
    assert_eq!(
        (replay["answer_matches"].as_bool(), replay["attribution_matches"].as_bool()),
        (Some(true), Some(true))
    );
    let (status, _) = node
        .call(
            "POST",
            &format!("/v1/receipts/{header}/replay"),
            Some(&carol_key),
            Some(json!({"prompt": "The LORD is our"})),
        )
        .await;
    assert_eq!(status, 400);
    let prompt_file = dir.path().join("prompt.txt");
    std::fs::write(&prompt_file, "The LORD is my").expect("write");
    let (code, out) =
        cli(&carol_key, &["receipt", "verify", &header, "--prompt", prompt_file.to_str().expect("utf-8")]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("answer matches, attribution matches"), "{out}");

    // The same seed gives the same answer; the next receipt chains to this one.
    let (status, again) =
        node.call("POST", "/v1/chat/completions", Some(&carol_key), Some(request.clone())).await;
    assert_eq!(status, 200);
    assert_eq!(again["choices"][0]["message"]["content"], content);
    let next = again["tributary"]["receipt_id"].as_str().expect("id");
    let (_, next_receipt) = node.call("GET", &format!("/v1/receipts/{next}"), Some(&carol_key), None).await;
    assert_eq!(next_receipt["prev_hash"], receipt["hash"]);
    let (code, out) = cli(&node.operator_key, &["receipt", "verify", next]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("prev_hash matches the hash of rcpt_1"), "{out}");

    // Streaming: the same answer word by word, then the usage and the receipt in the final chunk.
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let response = node
        .http
        .post(node.url("/v1/chat/completions"))
        .bearer_auth(&carol_key)
        .json(&streamed)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"].to_str().is_ok_and(|c| c.starts_with("text/event-stream")));
    let events = response.text().await.expect("body");
    let chunks: Vec<Value> = events
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).expect("chunk json"))
        .collect();
    assert!(events.trim_end().ends_with("data: [DONE]"));
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, content);
    let last = chunks.last().expect("chunks");
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["usage"]["completion_tokens"], completion_tokens);
    assert!(last["tributary"]["receipt_id"].as_str().is_some_and(|r| r.starts_with("rcpt_")));

    // The text completion endpoint bills the same way.
    let (status, completion) = node
        .call(
            "POST",
            "/v1/completions",
            Some(&carol_key),
            Some(json!({"model": model, "prompt": "My help cometh", "max_tokens": 4})),
        )
        .await;
    assert_eq!((status, completion["object"].as_str()), (200, Some("text_completion")), "{completion}");

    // Earnings views: Alice earned only from data lines; Bob as the owner; pages of lines.
    let (status, earned) =
        node.call("GET", &format!("/v1/accounts/{alice}/earnings"), Some(&alice_key), None).await;
    assert_eq!(status, 200, "{earned}");
    assert_eq!(
        earned["total"],
        json!(balance(&node, &alice).await.0),
        "every unit Alice has, she earned from data"
    );
    assert_eq!(
        earned["by_role"].as_object().map(|r| r.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["data".to_owned()])
    );
    assert_eq!(earned["inferences"].as_u64(), Some(earned["lines"].as_array().map_or(0, Vec::len) as u64));
    let (_, owner) =
        node.call("GET", &format!("/v1/accounts/{bob}/earnings?limit=1"), Some(&bob_key), None).await;
    assert_eq!(owner["total"], json!(balance(&node, &bob).await.0));
    assert_eq!(owner["lines"].as_array().map(Vec::len), Some(1));
    let next = owner["next_before"].as_str().expect("more pages").to_owned();
    let (_, second) = node
        .call("GET", &format!("/v1/accounts/{bob}/earnings?limit=1&before={next}"), Some(&bob_key), None)
        .await;
    assert_ne!(second["lines"][0]["receipt"], owner["lines"][0]["receipt"]);
    assert_eq!(
        node.call("GET", &format!("/v1/accounts/{alice}/earnings"), Some(&bob_key), None).await.0,
        404
    );

    // Once the datanet changes, the old index version is gone: a replay says so.
    node.call(
        "POST",
        &format!("/v1/datanets/{datanet}/contributions"),
        Some(&alice_key),
        Some(json!({"title": "new", "text": "The LORD is my rock, and my fortress, and my deliverer."})),
    )
    .await;
    node.call("POST", &format!("/v1/datanets/{datanet}/index"), Some(&node.operator_key), None).await;
    let (status, replay) = node
        .call(
            "POST",
            &format!("/v1/receipts/{header}/replay"),
            Some(&carol_key),
            Some(json!({"prompt": "The LORD is my"})),
        )
        .await;
    assert_eq!((status, replay["error"]["code"].as_str()), (409, Some("index_changed")), "{replay}");

    // Refusals change nothing.
    let (dave, dave_key) = account(&node, "dave").await;
    deposit(&node, &dave, "3").await;
    let (status, body) =
        node.call("POST", "/v1/chat/completions", Some(&dave_key), Some(request.clone())).await;
    assert_eq!((status, body["error"]["code"].as_str()), (402, Some("insufficient_funds")), "{body}");
    assert_eq!(balance(&node, &dave).await, ("3".to_owned(), "0".to_owned()));
    let cases = [
        (json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}), 404),
        (json!({"model": model, "messages": []}), 400),
        (json!({"model": model, "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}), 400),
        (json!({"model": model, "messages": [{"role": "user", "content": "x"}], "max_tokens": 100000}), 400),
        (json!({"model": model}), 400),
    ];
    for (body, expected) in cases {
        let (status, error) =
            node.call("POST", "/v1/chat/completions", Some(&carol_key), Some(body.clone())).await;
        assert_eq!(status, expected, "{body}: {error}");
    }
    assert_eq!(node.call("POST", "/v1/chat/completions", None, Some(request)).await.0, 401);
    let (_, after) = node.call("GET", "/v1/ledger", Some(&node.operator_key), None).await;
    assert_eq!(after["balanced"], true);
    assert_eq!(after["holds_pending"], 0, "no refused or failed call leaves a hold behind");
}

fn hex_bytes<const N: usize>(text: &str) -> [u8; N] {
    let bytes: Vec<u8> =
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect();
    bytes.try_into().expect("length")
}
