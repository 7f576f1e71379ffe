//! Settings layer as documented: the TOML file, overridden by `TRIBUTARY_*` variables, overridden
//! by flags; and a bad config file is a clear error, not a silent default.

mod common;

use std::process::{Command, Stdio};

use serde_json::json;

#[tokio::test]
async fn file_then_environment_then_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("node.toml");
    std::fs::write(&config, "signup = \"operator_only\"\nsignups_per_minute = 1\nlog_format = \"json\"\n")
        .expect("write");

    // The file closes sign-up.
    let node = common::Node::start(&dir.path().join("a"), &["--config", config.to_str().expect("utf-8")]);
    let (status, _) = node.call("POST", "/v1/accounts", None, Some(json!({"name": "x"}))).await;
    assert_eq!(status, 403, "the file's signup = operator_only applies");
    drop(node);

    // A flag overrides the file; the file's rate limit still applies.
    let node = common::Node::start(
        &dir.path().join("b"),
        &["--config", config.to_str().expect("utf-8"), "--signup", "open"],
    );
    assert_eq!(node.call("POST", "/v1/accounts", None, Some(json!({"name": "x"}))).await.0, 201);
    assert_eq!(node.call("POST", "/v1/accounts", None, Some(json!({"name": "y"}))).await.0, 429);
    drop(node);

    // The environment overrides the file too.
    let node = common::Node::start_with_env(
        &dir.path().join("c"),
        &["--config", config.to_str().expect("utf-8")],
        &[("TRIBUTARY_SIGNUP", "open"), ("TRIBUTARY_SIGNUPS_PER_MINUTE", "5")],
    );
    for n in 0..5 {
        assert_eq!(
            node.call("POST", "/v1/accounts", None, Some(json!({"name": format!("u{n}")}))).await.0,
            201
        );
    }
    drop(node);

    // And a bad value in the environment is named in the error.
    let output = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("TRIBUTARY_LISTEN", "not-an-address")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TRIBUTARY_LISTEN") || stderr.contains("not-an-address"), "{stderr}");
}

#[test]
fn a_bad_config_file_is_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("node.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nsingup = \"open\"\n").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["serve", "--data"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("singup"), "the typo is named: {stderr}");
    assert!(!dir.path().join("data").exists(), "nothing was created");
}

#[test]
fn a_stale_operator_key_is_never_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("operator.key"), "trb_from_another_node\n").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("has no operator"), "{stderr}");
    let kept = std::fs::read_to_string(dir.path().join("operator.key")).expect("still there");
    assert_eq!(kept, "trb_from_another_node\n");
}
