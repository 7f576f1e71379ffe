//! The validator and dispute CLI (`tributary datanet rules`, `validator stake|vote|list|unstake`,
//! `dispute open|vote|show`), run as a user runs it, against a real node.

mod common;

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

    let (code, open, _) = node.cli(Some(&owner_key), &["datanet", "create", "open", "--license", "CC0"]);
    assert_eq!(code, 0);
    let open = open["id"].as_str().expect("id").to_owned();
    let (code, reviewed, _) =
        node.cli(Some(&owner_key), &["datanet", "create", "reviewed", "--license", "CC0"]);
    assert_eq!(code, 0);
    let reviewed = reviewed["id"].as_str().expect("id").to_owned();
    let (code, rules, stderr) =
        node.cli(Some(&owner_key), &["datanet", "rules", &reviewed, r#"{"policy":"review","bond":"10"}"#]);
    assert_eq!((code, rules["policy"].as_str()), (0, Some("review")), "{stderr}");
    let (code, _, stderr) = node.cli(Some(&copier_key), &["datanet", "rules", &reviewed, "{}"]);
    assert_eq!(code, 3, "only the owner sets rules");
    assert!(stderr.contains("forbidden"), "{stderr}");
    let (code, _, stderr) =
        node.cli(Some(&owner_key), &["datanet", "rules", &reviewed, r#"{"policy":"maybe"}"#]);
    assert_eq!(code, 3);
    assert!(stderr.contains("invalid_rules"), "{stderr}");

    let text = dir.path().join("psalm.txt");
    std::fs::write(
        &text,
        "The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures.",
    )
    .expect("write");
    let text = text.to_str().expect("utf-8");
    let (_, original, _) = node.cli(Some(&author_key), &["contribute", &open, text]);
    let original = original["results"][0]["id"].as_str().expect("id").to_owned();
    let (code, copy, _) = node.cli(Some(&copier_key), &["contribute", &reviewed, text]);
    assert_eq!((code, copy["results"][0]["status"].as_str()), (0, Some("pending")), "{copy}");
    let copy = copy["results"][0]["id"].as_str().expect("id").to_owned();

    let (code, _, stderr) = node.cli(Some(&validator_key), &["validator", "vote", &copy, "--approve"]);
    assert_eq!(code, 3, "not a validator yet");
    assert!(stderr.contains("forbidden"), "{stderr}");
    let (code, staked, _) = node.cli(Some(&validator_key), &["validator", "stake", &reviewed, "400"]);
    assert_eq!((code, staked["amount"].as_str()), (0, Some("400")));
    let (code, list, _) = node.cli(None, &["validator", "list", &reviewed]);
    assert_eq!((code, list["total_stake"].as_str()), (0, Some("400")));
    let (code, voted, _) = node.cli(Some(&validator_key), &["validator", "vote", &copy, "--approve"]);
    assert_eq!((code, voted["status"].as_str()), (0, Some("accepted")), "{voted}");
    let (code, _, stderr) = node.cli(Some(&validator_key), &["validator", "unstake", &reviewed]);
    assert_eq!(code, 3, "the approval binds the stake");
    assert!(stderr.contains("conflict"), "{stderr}");

    let (code, dispute, stderr) = node
        .cli(Some(&author_key), &["dispute", "open", &copy, "--evidence", &original, "--claim", "my psalm"]);
    assert_eq!((code, dispute["status"].as_str()), (0, Some("open")), "{stderr}");
    let dispute = dispute["id"].as_str().expect("id").to_owned();
    let (code, decided, _) = node.cli(Some(&validator_key), &["dispute", "vote", &dispute, "--uphold"]);
    assert_eq!((code, decided["status"].as_str()), (0, Some("upheld")), "{decided}");
    let (code, shown, _) = node.cli(None, &["dispute", "show", &dispute]);
    assert_eq!(code, 0);
    // The bond (10) and 20% of the only approver's stake (80): half to the disputer.
    assert_eq!(shown["to_disputer"].as_str(), Some("45"), "{shown}");
    let (code, record, _) = node.cli(None, &["contribution", &copy]);
    assert_eq!(
        (code, record["status"].as_str(), record["reason"].as_str()),
        (0, Some("rejected"), Some("dispute_upheld"))
    );
}
