//! `tributary attribute` against a running node, and `tributary index build|status|verify` on its
//! data directory.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn tributary(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(args)
        .env_remove("TRIBUTARY_API_KEY")
        .envs(env.iter().copied())
        .output()
        .expect("runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_and_index_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8").to_owned();
    let node = common::Node::start(dir.path(), &[]);
    let (_, key) = common::account(&node, "alice").await;
    let (_, created) = node
        .call("POST", "/v1/datanets", Some(&key), Some(json!({"name": "psalms", "license": "public-domain"})))
        .await;
    let datanet = created["id"].as_str().expect("id").to_owned();
    let text =
        "I will lift up mine eyes unto the hills, from whence cometh my help. My help cometh from the LORD.";
    let (_, added) = node
        .call(
            "POST",
            &format!("/v1/datanets/{datanet}/contributions"),
            Some(&key),
            Some(json!({"title": "121", "text": text})),
        )
        .await;
    let contribution = added["id"].as_str().expect("id").to_owned();
    let started = Instant::now();
    while node.call("GET", &format!("/v1/datanets/{datanet}"), None, None).await.1["contributions_pending"]
        != 0
    {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let answer = dir.path().join("answer.txt");
    std::fs::write(&answer, "He said: I will lift up mine eyes unto the hills, and went home.")
        .expect("write");
    let env = [("TRIBUTARY_NODE", node.base.as_str()), ("TRIBUTARY_API_KEY", key.as_str())];
    let (code, table, stderr) =
        tributary(&["attribute", "--datanet", &datanet, answer.to_str().expect("utf-8")], &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(table.contains(&contribution) && table.contains("100.00%"), "{table}");
    let (code, raw, _) =
        tributary(&["attribute", "--datanet", &datanet, "--json", answer.to_str().expect("utf-8")], &env);
    assert_eq!(code, 0);
    let parsed: Value = serde_json::from_str(&raw).expect("json");
    assert_eq!(parsed["contributions"][0]["id"], contribution.as_str());
    let (code, _, stderr) =
        tributary(&["attribute", "--datanet", "dn_999", answer.to_str().expect("utf-8")], &env);
    assert_eq!(code, 3, "{stderr}");

    // The node holds the index: an offline build is refused while it runs.
    let (code, _, stderr) = tributary(&["index", "build", "--data", &data], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("is the node running"), "{stderr}");
    let version =
        node.call("GET", &format!("/v1/datanets/{datanet}"), None, None).await.1["index_version"].clone();
    assert!(node.terminate().success());

    let (code, built, stderr) = tributary(&["index", "build", "--data", &data], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(built.contains(version.as_str().expect("version")), "a rebuild gives the same version: {built}");
    let (code, status, _) = tributary(&["index", "status", "--data", &data], &[]);
    assert_eq!(code, 0);
    assert!(
        status.lines().any(|l| l.starts_with(&datanet) && l.split_whitespace().nth(1) == Some("1")),
        "{status}"
    );
    let (code, verified, _) = tributary(&["index", "verify", "--data", &data], &[]);
    assert_eq!(code, 0, "{verified}");

    let segment = std::fs::read_dir(dir.path().join("index").join(&datanet))
        .expect("index dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .expect("a segment");
    let mut bytes = std::fs::read(&segment).expect("read");
    let at = bytes.len() - 16;
    bytes[at] ^= 0x01;
    std::fs::write(&segment, bytes).expect("write");
    let (code, verified, _) = tributary(&["index", "verify", "--data", &data], &[]);
    assert_eq!(code, 1);
    assert!(verified.contains("CORRUPT"), "{verified}");
}
