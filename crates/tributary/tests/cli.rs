//! The CLI commands the README shows, run as a user runs them, against a real node.

mod common;

use serde_json::Value;

struct Cli<'a> {
    node: &'a common::Node,
}

impl Cli<'_> {
    /// Runs `tributary ARGS` with the node's URL and the given key; returns (exit code, stdout JSON).
    fn run(&self, key: Option<&str>, args: &[&str]) -> (i32, Value, String) {
        self.node.cli(key, args)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_cli_walkthrough_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = common::Node::start(dir.path(), &[]);
    let cli = Cli { node: &node };
    let operator_key_file = dir.path().join("operator.key");
    let operator_key_file = operator_key_file.to_str().expect("utf-8");

    let (code, alice, _) = cli.run(None, &["account", "create", "alice"]);
    assert_eq!(code, 0);
    let (alice_id, alice_key) = (alice["id"].as_str().expect("id"), alice["api_key"].as_str().expect("key"));
    let (_, bob, _) = cli.run(None, &["account", "create", "bob"]);
    let bob_id = bob["id"].as_str().expect("id");

    let (code, _, _) = cli.run(None, &["deposit", alice_id, "1000000", "--key-file", operator_key_file]);
    assert_eq!(code, 0);
    let (code, shown, _) = cli.run(Some(alice_key), &["account", "show", alice_id]);
    assert_eq!((code, shown["balance"].as_str()), (0, Some("1000000")));
    let address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    let (code, shown, _) = cli.run(Some(alice_key), &["account", "set-payout", alice_id, address]);
    assert_eq!((code, shown["payout_address"].as_str()), (0, Some(address)));

    let (code, paid, _) =
        cli.run(Some(alice_key), &["transfer", bob_id, "250", "--idempotency-key", "pay-1"]);
    assert_eq!(code, 0);
    let (_, again, _) = cli.run(Some(alice_key), &["transfer", bob_id, "250", "--idempotency-key", "pay-1"]);
    assert_eq!(paid["id"], again["id"], "the CLI passes the idempotency key through");

    let (code, hold, _) =
        cli.run(Some(alice_key), &["hold", "place", bob_id, "500", "--timeout-ms", "60000"]);
    assert_eq!(code, 0);
    let hold_id = hold["id"].as_str().expect("hold id");
    let (code, posted, _) = cli.run(Some(alice_key), &["hold", "post", hold_id, "--amount", "200"]);
    assert_eq!((code, posted["amount"].as_str()), (0, Some("200")));
    let (code, _, stderr) = cli.run(Some(alice_key), &["hold", "void", hold_id]);
    assert_eq!(code, 3, "a refused request exits 3");
    assert!(stderr.contains("hold_not_pending"), "{stderr}");

    let (code, datanet, _) =
        cli.run(Some(alice_key), &["datanet", "create", "psalms", "--license", "public-domain"]);
    assert_eq!(code, 0);
    let datanet_id = datanet["id"].as_str().expect("datanet id");
    let psalm = dir.path().join("psalm23.txt");
    std::fs::write(&psalm, "The LORD is my shepherd; I shall not want.").expect("write");
    let (code, uploaded, _) = cli
        .run(Some(alice_key), &["contribute", datanet_id, psalm.to_str().expect("utf-8"), "--source", "KJV"]);
    assert_eq!((code, uploaded["results"][0]["status"].as_str()), (0, Some("accepted")), "{uploaded}");
    let (code, model, _) = cli.run(
        Some(alice_key),
        &[
            "model",
            "create",
            "shepherd",
            "--datanet",
            datanet_id,
            "--backend",
            "infinigram",
            "--price-input-per-1k",
            "20",
            "--price-output-per-1k",
            "60",
            "--price-request",
            "1",
            "--split",
            "5000,3500,1000,500",
        ],
    );
    assert_eq!(code, 0, "{model}");
    let (code, _, stderr) = cli.run(
        Some(alice_key),
        &["model", "create", "bad", "--datanet", datanet_id, "--split", "5000,3500,1000,499"],
    );
    assert_eq!(code, 3);
    assert!(stderr.contains("invalid_split"), "{stderr}");

    let (code, ledger, _) = cli.run(None, &["ledger", "--key-file", operator_key_file]);
    assert_eq!((code, ledger["balanced"].as_bool()), (0, Some(true)));
    let (code, history, _) = cli.run(Some(alice_key), &["account", "transfers", alice_id]);
    assert_eq!(code, 0);
    assert_eq!(history["data"].as_array().map(Vec::len), Some(4), "{history}");

    let (code, _, stderr) = cli.run(None, &["account", "show", alice_id, "--node", "http://127.0.0.1:9"]);
    assert_eq!(code, 1, "an unreachable node is a plain error");
    assert!(stderr.contains("is the node running"), "{stderr}");
}
