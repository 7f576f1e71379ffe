//! The official `openai` Python package, unchanged, against a Tributary node: `base_url` pointed at
//! the node and a Tributary API key. (Installed by scripts/fetch-test-data.sh, which the test
//! command runs.)

mod common;

use std::time::{Duration, Instant};

use common::{Node, account, deposit};
use serde_json::{Value, json};

const SCRIPT: &str = r#"
import json, sys
import openai
from openai import OpenAI

base_url, key, poor_key, model = sys.argv[1:5]
client = OpenAI(base_url=base_url, api_key=key)
raw = client.chat.completions.with_raw_response.create(
    model=model,
    messages=[{"role": "user", "content": "The LORD is my"}],
    max_tokens=8,
    seed=7,
)
completion = raw.parse()
out = {
    "header": raw.headers.get("x-tributary-receipt"),
    "content": completion.choices[0].message.content,
    "finish_reason": completion.choices[0].finish_reason,
    "usage": completion.usage.model_dump(),
    "tributary": (completion.model_extra or {}).get("tributary"),
    "models": [m.id for m in client.models.list().data],
}
chunks = list(client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "The LORD is my"}], max_tokens=8, seed=7, stream=True))
out["stream_text"] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
out["stream_usage"] = chunks[-1].usage.model_dump() if chunks[-1].usage else None
out["stream_tributary"] = (chunks[-1].model_extra or {}).get("tributary")
text = client.completions.create(model=model, prompt="My help cometh", max_tokens=4)
streamed_text = list(client.completions.create(model=model, prompt="My help cometh", max_tokens=4, stream=True))
out["text_stream"] = "".join(c.choices[0].text for c in streamed_text if c.choices)
out["text_stream_tributary"] = (streamed_text[-1].model_extra or {}).get("tributary")
out["text"] = text.choices[0].text
try:
    OpenAI(base_url=base_url, api_key=poor_key).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "The LORD is my"}], max_tokens=8)
    out["poor"] = "succeeded"
except openai.APIStatusError as error:
    out["poor"] = error.status_code
try:
    OpenAI(base_url=base_url, api_key="trb_not_a_key").chat.completions.create(
        model=model, messages=[{"role": "user", "content": "x"}])
    out["bad_key"] = "succeeded"
except openai.AuthenticationError as error:
    out["bad_key"] = error.status_code
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_client_works_unchanged() {
    let python =
        std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.test-data/venv/bin/python"));
    assert!(python.exists(), "{} is missing; run scripts/fetch-test-data.sh", python.display());
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let (_, alice_key) = account(&node, "alice").await;
    let (_, bob_key) = account(&node, "bob").await;
    let (carol, carol_key) = account(&node, "carol").await;
    let (_, poor_key) = account(&node, "poor").await;
    let (_, created) = node
        .call(
            "POST",
            "/v1/datanets",
            Some(&alice_key),
            Some(json!({"name": "psalms", "license": "public-domain"})),
        )
        .await;
    let datanet = created["id"].as_str().expect("id").to_owned();
    node.call(
        "POST",
        &format!("/v1/datanets/{datanet}/contributions"),
        Some(&alice_key),
        Some(json!({"title": "23", "text": "The LORD is my shepherd; I shall not want. My help cometh from the LORD."})),
    )
    .await;
    let started = Instant::now();
    while node.call("GET", &format!("/v1/datanets/{datanet}"), None, None).await.1["contributions_pending"]
        != 0
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
    let model = model["id"].as_str().expect("model").to_owned();
    deposit(&node, &carol, "1000000").await;

    let base = format!("{}/v1", node.base);
    let args = [SCRIPT.to_owned(), base, carol_key, poor_key, model.clone()];
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python).arg("-c").args(&args).output().expect("python runs")
    })
    .await
    .expect("join");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let result: Value = serde_json::from_slice(&output.stdout).expect("json from the script");
    assert!(result["content"].as_str().is_some_and(|c| !c.is_empty()), "{result}");
    assert_eq!(result["usage"]["prompt_tokens"], 4);
    assert!(result["header"].as_str().is_some_and(|h| h.starts_with("rcpt_")));
    assert_eq!(result["tributary"]["receipt_id"], result["header"]);
    assert!(result["tributary"]["fee"].as_str().is_some_and(|f| f.parse::<u64>().is_ok_and(|f| f > 0)));
    assert!(result["models"].as_array().is_some_and(|m| m.iter().any(|id| id == model.as_str())));
    assert!(result["text"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(result["stream_text"], result["content"], "streamed with the same seed, the same answer");
    assert_eq!(
        result["text_stream"], result["text"],
        "a streamed text completion: the same answer word by word"
    );
    assert!(result["text_stream_tributary"]["receipt_id"].as_str().is_some_and(|r| r.starts_with("rcpt_")));
    assert_eq!(result["stream_usage"]["prompt_tokens"], 4);
    assert!(
        result["stream_tributary"]["receipt_id"]
            .as_str()
            .is_some_and(|r| r.starts_with("rcpt_") && r != result["header"])
    );
    assert_eq!(result["poor"], 402, "an empty balance is HTTP 402 to the client");
    assert_eq!(result["bad_key"], 401);
}
