//! The validator and dispute CLI (`tributary datanet rules`, `validator stake|vote|list|unstake`,
//! `dispute open|vote|show`), run as a user runs it, against a real node.

mod common;

use std::process::Command;

use serde_json::Value;

fn run(node: &common::Node, key: Option<&str>, args: &[&str]) -> (i32, Value, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tributary"));
    command.args(args).env("TRIBUTARY_NODE", &node.base).env_remove("TRIBUTARY_API_KEY");
    if let Some(key) = key {
        command.env("TRIBUTARY_API_KEY", key);
    }
    let output = command.output().expect("the CLI runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), serde_json::from_str(&stdout).unwrap_or(Value::Null), stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_and_dispute_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = common::Node::start(dir.path(), &[]);
    let (owner, owner_key) = common::account(&node, "owner").await;
    let (author, author_key) = common::account(&node, "author").await;
    let (copier, copier_key) = common::account(&node, "copier").await;
    let (validator, validator_key) = common::account(&node, "validator").await;
    common::deposit(&node, &validator, "1000").await;
    common::deposit(&node, &copier, "100").await;
    common::deposit(&node, &author, "100").await;
    let _ = owner;

    let (code, open, _) = run(&node, Some(&owner_key), &["datanet", "create", "open", "--license", "CC0"]);
    assert_eq!(code, 0);
    let open = open["id"].as_str().expect("id").to_owned();
    let (code, reviewed, _) =
        run(&node, Some(&owner_key), &["datanet", "create", "reviewed", "--license", "CC0"]);
    assert_eq!(code, 0);
    let reviewed = reviewed["id"].as_str().expect("id").to_owned();
    let (code, rules, stderr) =
        run(&node, Some(&owner_key), &["datanet", "rules", &reviewed, r#"{"policy":"review","bond":"10"}"#]);
    assert_eq!((code, rules["policy"].as_str()), (0, Some("review")), "{stderr}");
    let (code, _, stderr) = run(&node, Some(&copier_key), &["datanet", "rules", &reviewed, "{}"]);
    assert_eq!(code, 3, "only the owner sets rules");
    assert!(stderr.contains("forbidden"), "{stderr}");
    let (code, _, stderr) =
        run(&node, Some(&owner_key), &["datanet", "rules", &reviewed, r#"{"policy":"maybe"}"#]);
    assert_eq!(code, 3);
    assert!(stderr.contains("invalid_rules"), "{stderr}");

    let text = dir.path().join("psalm.txt");
    std::fs::write(
        &text,
        "The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures.",
    )
    .expect("write");
    let text = text.to_str().expect("utf-8");
    let (_, original, _) = run(&node, Some(&author_key), &["contribute", &open, text]);
    let original = original["results"][0]["id"].as_str().expect("id").to_owned();
    let (code, copy, _) = run(&node, Some(&copier_key), &["contribute", &reviewed, text]);
    assert_eq!((code, copy["results"][0]["status"].as_str()), (0, Some("pending")), "{copy}");
    let copy = copy["results"][0]["id"].as_str().expect("id").to_owned();

    let (code, _, stderr) = run(&node, Some(&validator_key), &["validator", "vote", &copy, "--approve"]);
    assert_eq!(code, 3, "not a validator yet");
    assert!(stderr.contains("forbidden"), "{stderr}");
    let (code, staked, _) = run(&node, Some(&validator_key), &["validator", "stake", &reviewed, "400"]);
    assert_eq!((code, staked["amount"].as_str()), (0, Some("400")));
    let (code, list, _) = run(&node, None, &["validator", "list", &reviewed]);
    assert_eq!((code, list["total_stake"].as_str()), (0, Some("400")));
    let (code, voted, _) = run(&node, Some(&validator_key), &["validator", "vote", &copy, "--approve"]);
    assert_eq!((code, voted["status"].as_str()), (0, Some("accepted")), "{voted}");
    let (code, _, stderr) = run(&node, Some(&validator_key), &["validator", "unstake", &reviewed]);
    assert_eq!(code, 3, "the approval binds the stake");
    assert!(stderr.contains("conflict"), "{stderr}");

    let (code, dispute, stderr) = run(
        &node,
        Some(&author_key),
        &["dispute", "open", &copy, "--evidence", &original, "--claim", "my psalm"],
    );
    assert_eq!((code, dispute["status"].as_str()), (0, Some("open")), "{stderr}");
    let dispute = dispute["id"].as_str().expect("id").to_owned();
    let (code, decided, _) = run(&node, Some(&validator_key), &["dispute", "vote", &dispute, "--uphold"]);
    assert_eq!((code, decided["status"].as_str()), (0, Some("upheld")), "{decided}");
    let (code, shown, _) = run(&node, None, &["dispute", "show", &dispute]);
    assert_eq!(code, 0);
    // The bond (10) and 20% of the only approver's stake (80): half to the disputer.
    assert_eq!(shown["to_disputer"].as_str(), Some("45"), "{shown}");
    let (code, record, _) = run(&node, None, &["contribution", &copy]);
    assert_eq!(
        (code, record["status"].as_str(), record["reason"].as_str()),
        (0, Some("rejected"), Some("dispute_upheld"))
    );
}
