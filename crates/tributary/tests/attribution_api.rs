//! The attribution API over HTTP: contributions become attributable within moments, answers are
//! traced to their sources, bad input is refused clearly, and the index survives restarts and
//! corruption (it is rebuilt from the contributions, to the same version).

mod common;

use std::time::{Duration, Instant};

use common::{Node, account};
use serde_json::{Value, json};

const PSALMS: [(&str, &str); 3] = [
    (
        "Psalm 1",
        "Blessed is the man that walketh not in the counsel of the ungodly, nor standeth in the way of sinners, nor sitteth in the seat of the scornful. But his delight is in the law of the LORD; and in his law doth he meditate day and night.",
    ),
    (
        "Psalm 23",
        "The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures: he leadeth me beside the still waters. He restoreth my soul: he leadeth me in the paths of righteousness for his name's sake.",
    ),
    (
        "Psalm 121",
        "I will lift up mine eyes unto the hills, from whence cometh my help. My help cometh from the LORD, which made heaven and earth.",
    ),
];

async fn wait_until_indexed(node: &Node, datanet: &str) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let (status, body) = node.call("GET", &format!("/v1/datanets/{datanet}"), None, None).await;
        assert_eq!(status, 200);
        if body["contributions_pending"] == 0
            && body["contributions_indexed"].as_u64() == body["contributions"].as_u64()
        {
            return (body, started.elapsed());
        }
        assert!(started.elapsed() < Duration::from_secs(10), "not indexed after 10 s: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn answers_are_traced_to_their_sources() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let (alice, alice_key) = account(&node, "alice").await;
    let key = Some(alice_key.as_str());
    let (_, created) = node
        .call("POST", "/v1/datanets", key, Some(json!({"name": "psalms", "license": "public-domain"})))
        .await;
    let datanet = created["id"].as_str().expect("id").to_owned();
    let items: Vec<Value> =
        PSALMS.iter().map(|(title, text)| json!({"title": title, "text": text})).collect();
    let (status, added) = node
        .call("POST", &format!("/v1/datanets/{datanet}/contributions/batch"), key, Some(json!(items)))
        .await;
    assert_eq!(status, 201, "{added}");
    let ids: Vec<String> = added["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect();

    // How fast is a benchmark matter; here it only has to happen (the helper allows 10 s).
    let (state, waited) = wait_until_indexed(&node, &datanet).await;
    println!("contributions attributable after {waited:?}");
    let version = state["index_version"].as_str().expect("version").to_owned();

    let answer = "Critics say he leadeth me beside the still waters and he restoreth my soul, which is true.";
    let (status, result) =
        node.call("POST", "/v1/attribution", key, Some(json!({"datanets": [datanet], "text": answer}))).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["index_version"], version.as_str());
    let contributions = result["contributions"].as_array().expect("contributions");
    assert_eq!(contributions.len(), 1, "{result}");
    assert_eq!(contributions[0]["id"], ids[1].as_str());
    assert_eq!(contributions[0]["contributor"], alice.as_str());
    assert_eq!(contributions[0]["datanet"], datanet.as_str());
    assert_eq!(contributions[0]["share"], 1.0);
    for span in result["spans"].as_array().expect("spans") {
        let (start, end) =
            (span["start"].as_u64().expect("start") as usize, span["end"].as_u64().expect("end") as usize);
        assert_eq!(&answer[start..end], span["text"].as_str().expect("text"));
    }

    // By model: the same result over the model's datanets.
    let (_, model) = node
        .call(
            "POST",
            "/v1/models",
            key,
            Some(json!({"name": "m", "datanets": [datanet], "backend": {"kind": "infinigram"},
            "price": {"input_per_1k": "1", "output_per_1k": "1", "request": "0"},
            "split": {"owner_bps": 5000, "data_bps": 5000, "validators_bps": 0, "protocol_bps": 0}})),
        )
        .await;
    let (status, by_model) =
        node.call("POST", "/v1/attribution", key, Some(json!({"model": model["id"], "text": answer}))).await;
    assert_eq!((status, &by_model), (200, &result));

    // Bad input: clear errors, never a panic; unattributable text is an empty result.
    let bad = [
        (json!({"text": answer}), 400),
        (json!({"datanets": [datanet], "model": model["id"], "text": answer}), 400),
        (json!({"datanets": [], "text": answer}), 400),
        (json!({"datanets": ["dn_999"], "text": answer}), 404),
        (json!({"model": "mdl_999", "text": answer}), 404),
        (json!({"datanets": [datanet], "text": "x".repeat(300 * 1024)}), 413),
        (json!({"datanets": [datanet]}), 400),
    ];
    for (body, expected) in bad {
        let (status, error) = node.call("POST", "/v1/attribution", key, Some(body.clone())).await;
        assert_eq!(status, expected, "{body}: {error}");
        assert!(error["error"]["code"].is_string());
    }
    assert_eq!(
        node.call("POST", "/v1/attribution", None, Some(json!({"datanets": [datanet], "text": "x"}))).await.0,
        401
    );
    for text in ["", "Stock markets fell on Tuesday.", "\u{0}\u{7f}\u{fffd}\u{202e}", "the LORD"] {
        let (status, empty) = node
            .call("POST", "/v1/attribution", key, Some(json!({"datanets": [datanet], "text": text})))
            .await;
        assert_eq!(status, 200);
        assert_eq!(empty["contributions"], json!([]), "{text:?}: {empty}");
    }
    // A datanet with no contributions attributes nothing.
    let (_, empty_datanet) =
        node.call("POST", "/v1/datanets", key, Some(json!({"name": "empty", "license": "x"}))).await;
    let (status, empty) = node
        .call(
            "POST",
            "/v1/attribution",
            key,
            Some(json!({"datanets": [empty_datanet["id"]], "text": answer})),
        )
        .await;
    assert_eq!((status, &empty["contributions"]), (200, &json!([])));

    // The operator can force the index up to date; others cannot.
    assert_eq!(node.call("POST", &format!("/v1/datanets/{datanet}/index"), key, None).await.0, 403);
    let (status, refreshed) =
        node.call("POST", &format!("/v1/datanets/{datanet}/index"), Some(&node.operator_key), None).await;
    assert_eq!((status, refreshed["contributions_pending"].as_u64()), (200, Some(0)));

    // Restart: the index is loaded from disk at the same version.
    drop(node);
    let node = Node::start(dir.path(), &[]);
    let (state, _) = wait_until_indexed(&node, &datanet).await;
    assert_eq!(state["index_version"], version.as_str());

    // Corrupt a segment behind the node's back: it is detected and rebuilt to the same version.
    drop(node);
    let index_dir = dir.path().join("index").join(&datanet);
    for entry in std::fs::read_dir(&index_dir).expect("index dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "seg") {
            let mut bytes = std::fs::read(&path).expect("read");
            let last = bytes.len() - 16; // inside the suffix array, the last section
            bytes[last] ^= 0x55;
            std::fs::write(&path, bytes).expect("write");
        }
    }
    let node = Node::start(dir.path(), &[]);
    let started = Instant::now();
    loop {
        let (status, result) = node
            .call("POST", "/v1/attribution", key, Some(json!({"datanets": [datanet], "text": answer})))
            .await;
        assert_eq!(status, 200);
        if result["index_version"] == version.as_str()
            && result["contributions"].as_array().map(Vec::len) == Some(1)
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "not rebuilt: {result}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
