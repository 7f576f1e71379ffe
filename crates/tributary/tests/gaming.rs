//! Gaming the attribution economy loses, shown through the real binary over HTTP:
//! - Sybil: many fresh accounts uploading the same text; only the first earns, and with a bond the
//!   attempt costs every copier the bond.
//! - Flood: 1,000 near-copies of accepted documents (real text); at most a few get in.
//! - Self-dealing: paying your own model to answer with your own text loses money on every call.
//! - Collusion: validators who approve a copied contribution are slashed when a dispute is upheld,
//!   and the copy stops earning; only a datanet's validators vote, once each, and nobody touches
//!   someone else's stake.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Node, account, balance, deposit};
use serde_json::{Value, json};

fn units(value: &Value) -> u128 {
    value.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not an amount: {value}"))
}

async fn units_of(node: &Node, account: &str) -> (u128, u128) {
    let (balance, held) = balance(node, account).await;
    (balance.parse().expect("amount"), held.parse().expect("amount"))
}

async fn create_datanet(node: &Node, key: &str, rules: Value) -> String {
    let (status, created) = node
        .call("POST", "/v1/datanets", Some(key), Some(json!({"name": "d", "license": "CC0", "rules": rules})))
        .await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().expect("id").to_owned()
}

async fn contribute(node: &Node, key: &str, datanet: &str, text: &str) -> (u16, Value) {
    node.call(
        "POST",
        &format!("/v1/datanets/{datanet}/contributions"),
        Some(key),
        Some(json!({"title": "t", "text": text})),
    )
    .await
}

async fn wait_indexed(node: &Node, datanet: &str, count: u64) {
    let started = Instant::now();
    loop {
        let (_, body) = node.call("GET", &format!("/v1/datanets/{datanet}"), None, None).await;
        if body["contributions_indexed"] == count && body["contributions_pending"] == 0 {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "index never reached {count}: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn create_model(node: &Node, key: &str, name: &str, datanet: &str) {
    let (status, body) = node
        .call(
            "POST",
            "/v1/models",
            Some(key),
            Some(json!({"name": name, "datanets": [datanet], "backend": {"kind": "infinigram"},
                "price": {"input_per_1k": "100000", "output_per_1k": "200000", "request": "500"},
                "split": {"owner_bps": 5000, "data_bps": 3500, "validators_bps": 1000, "protocol_bps": 500}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn ask(node: &Node, key: &str, model: &str, prompt: &str, seed: u64) -> Value {
    let (status, answer) = node
        .call(
            "POST",
            "/v1/chat/completions",
            Some(key),
            Some(json!({"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 24, "seed": seed})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    answer
}

const PSALM: &str = "The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures: \
    he leadeth me beside the still waters. He restoreth my soul: he leadeth me in the paths of righteousness \
    for his name's sake. Yea, though I walk through the valley of the shadow of death, I will fear no evil: \
    for thou art with me; thy rod and thy staff they comfort me.";

#[tokio::test]
async fn sybil_copies_earn_nothing_and_cost_their_bonds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let (_, owner_key) = account(&node, "owner").await;
    let (alice, alice_key) = account(&node, "alice").await;
    let datanet = create_datanet(&node, &owner_key, json!({"bond": "100", "min_words": 10})).await;
    deposit(&node, &alice, "1000").await;
    let (status, first) = contribute(&node, &alice_key, &datanet, PSALM).await;
    assert_eq!((status, first["status"].as_str()), (201, Some("accepted")), "{first}");
    let original = first["id"].as_str().expect("id").to_owned();

    // A fresh account with nothing to bond cannot even try.
    let (_, broke_key) = account(&node, "broke").await;
    let (status, refused) = contribute(&node, &broke_key, &datanet, PSALM).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (402, Some("insufficient_funds")), "{refused}");

    let variants = [
        PSALM.to_owned(),
        PSALM.to_uppercase(),
        PSALM.replace(' ', "  "),
        format!("{PSALM} Amen."),
        PSALM.to_lowercase(),
    ];
    let mut sybils = Vec::new();
    for i in 0..20 {
        let (id, key) = account(&node, &format!("sybil{i}")).await;
        deposit(&node, &id, "1000").await;
        let (status, outcome) = contribute(&node, &key, &datanet, &variants[i % variants.len()]).await;
        assert_eq!((status, outcome["status"].as_str()), (201, Some("rejected")), "{outcome}");
        let reason = outcome["reason"].as_str().expect("reason");
        assert!(reason == "duplicate" || reason == "near_duplicate", "{outcome}");
        let (_, record) = node
            .call("GET", &format!("/v1/contributions/{}", outcome["id"].as_str().expect("id")), None, None)
            .await;
        let earlier =
            record["findings"]["duplicate_of"].as_str().or(record["findings"]["near_duplicate_of"].as_str());
        assert_eq!(earlier, Some(original.as_str()), "{record}");
        sybils.push((id, key));
    }
    // Every copier paid the bond to the datanet's pool; the original's bond is only held.
    for (id, _) in &sybils {
        assert_eq!(units_of(&node, id).await, (900, 0));
    }
    assert_eq!(units_of(&node, &alice).await, (900, 100));
    let (_, datanet_body) = node.call("GET", &format!("/v1/datanets/{datanet}"), None, None).await;
    let pool = datanet_body["pool_account"].as_str().expect("pool").to_owned();
    assert_eq!(units_of(&node, &pool).await.0, 2_000);

    // Paid inferences over the datanet credit only the original.
    wait_indexed(&node, &datanet, 1).await;
    create_model(&node, &owner_key, "psalm", &datanet).await;
    let (caller, caller_key) = account(&node, "caller").await;
    deposit(&node, &caller, "100000000").await;
    for seed in 0..5 {
        let answer = ask(&node, &caller_key, "psalm", "The LORD is my shepherd", seed).await;
        let contributions = answer["tributary"]["attribution"]["contributions"].as_array().expect("list");
        assert!(contributions.iter().all(|c| c["id"] == original.as_str()), "{answer}");
    }
    let (_, earned) =
        node.call("GET", &format!("/v1/accounts/{alice}/earnings"), Some(&alice_key), None).await;
    assert!(units(&earned["total"]) > 0, "{earned}");
    for (id, key) in &sybils {
        let (_, earned) = node.call("GET", &format!("/v1/accounts/{id}/earnings"), Some(key), None).await;
        assert_eq!(units(&earned["total"]), 0, "{earned}");
    }
}

fn test_data(name: &str) -> String {
    let dir = std::env::var_os("TRIBUTARY_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.test-data")));
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}; run scripts/fetch-test-data.sh first"))
}

#[tokio::test]
async fn a_flood_of_near_copies_is_turned_away() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let (_, owner_key) = account(&node, "owner").await;
    let datanet = create_datanet(&node, &owner_key, json!({})).await;
    // Originals: 50 Lee news articles of at least 120 words, accepted.
    let articles: Vec<String> = test_data("lee_background.cor")
        .lines()
        .filter(|l| l.split_whitespace().count() >= 120)
        .take(50)
        .map(str::to_owned)
        .collect();
    assert_eq!(articles.len(), 50);
    let items: Vec<Value> = articles.iter().map(|t| json!({"title": "a", "text": t})).collect();
    let (status, body) = node
        .call(
            "POST",
            &format!("/v1/datanets/{datanet}/contributions/batch"),
            Some(&owner_key),
            Some(json!(items)),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["results"].as_array().expect("results").iter().all(|r| r["status"] == "accepted"), "{body}");
    // 1,000 near-copies from 10 other accounts: word swaps, case and spacing, boilerplate, reordering.
    let mut state: u64 = 0x9e37_79b9;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut accepted = 0;
    for sender in 0..10 {
        let (_, key) = account(&node, &format!("flooder{sender}")).await;
        let mut copies = Vec::new();
        for copy in 0..100 {
            let article = &articles[next(articles.len())];
            let mut words: Vec<String> = article.split(' ').map(str::to_owned).collect();
            let text = match copy % 4 {
                0 => {
                    for _ in 0..(words.len() / 100).max(1) {
                        let at = next(words.len() - 1);
                        words.swap(at, at + 1);
                    }
                    words.join(" ")
                }
                1 => words
                    .iter()
                    .map(|w| if next(3) == 0 { w.to_uppercase() } else { w.clone() })
                    .collect::<Vec<_>>()
                    .join("  "),
                2 => format!(
                    "Shared for educational purposes only; all rights remain with the authors. {article}"
                ),
                _ => {
                    let mut sentences: Vec<&str> = article.split_inclusive(". ").collect();
                    let len = sentences.len();
                    sentences.rotate_left(len / 2);
                    sentences.concat()
                }
            };
            copies.push(json!({"title": "copy", "text": text}));
        }
        let (status, body) = node
            .call(
                "POST",
                &format!("/v1/datanets/{datanet}/contributions/batch"),
                Some(&key),
                Some(json!(copies)),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let results = body["results"].as_array().expect("results");
        assert_eq!(results.len(), 100);
        accepted += results.iter().filter(|r| r["status"] == "accepted").count();
    }
    println!("flood over HTTP: {accepted} of 1000 near-copies accepted");
    assert!(accepted <= 5, "{accepted} near-copies accepted");
}

#[tokio::test]
async fn self_dealing_loses_money_on_every_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    // Eve owns the datanet, the only contribution and the model, and pays for the calls herself:
    // the most a self-dealer can recover (owner and data shares). The validators' and protocol
    // shares leave her every time.
    let (eve, eve_key) = account(&node, "eve").await;
    let datanet = create_datanet(&node, &eve_key, json!({})).await;
    let (status, added) = contribute(&node, &eve_key, &datanet, PSALM).await;
    assert_eq!((status, added["status"].as_str()), (201, Some("accepted")), "{added}");
    wait_indexed(&node, &datanet, 1).await;
    create_model(&node, &eve_key, "mine", &datanet).await;
    deposit(&node, &eve, "100000000").await;
    let before = units_of(&node, &eve).await.0;
    let mut data_earned = 0u128;
    let mut fees = 0u128;
    for seed in 0..40 {
        let answer = ask(&node, &eve_key, "mine", "The LORD is my shepherd; I shall not want", seed).await;
        fees += units(&answer["tributary"]["fee"]);
        data_earned += answer["tributary"]["splits"]
            .as_array()
            .expect("splits")
            .iter()
            .filter(|l| l["role"] == "data" && l["account"] == eve.as_str())
            .map(|l| units(&l["amount"]))
            .sum::<u128>();
    }
    let after = units_of(&node, &eve).await.0;
    println!(
        "self-dealing: 40 calls, fees {fees}, data share earned back {data_earned}, net {}",
        after as i128 - before as i128
    );
    assert!(data_earned > 0, "the answers were attributed to eve's text");
    assert!(after < before, "self-dealing must lose money: before {before}, after {after}");
    // She loses exactly the validators' and protocol parts: 15% of the fees, within rounding.
    let lost = before - after;
    assert!(lost * 100 >= fees * 14 && lost * 100 <= fees * 16, "lost {lost} of {fees}");
}

#[tokio::test]
async fn colluding_validators_are_slashed_and_only_validators_vote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let (_, owner_key) = account(&node, "owner").await;
    let (_, alice_key) = account(&node, "alice").await;
    let (mallory, mallory_key) = account(&node, "mallory").await;
    let (outsider, outsider_key) = account(&node, "outsider").await;
    let mut validators = Vec::new();
    for (name, funds, stake) in [("v1", "1000", "500"), ("v2", "1000", "500"), ("v3", "5000", "4000")] {
        let (id, key) = account(&node, name).await;
        deposit(&node, &id, funds).await;
        validators.push((id, key, stake));
    }
    deposit(&node, &mallory, "1000").await;
    deposit(&node, &outsider, "100000000").await;
    let open_datanet = create_datanet(&node, &owner_key, json!({})).await;
    let reviewed =
        create_datanet(&node, &owner_key, json!({"policy": "review", "approvals_required": 2, "bond": "50"}))
            .await;
    let (_, original) = contribute(&node, &alice_key, &open_datanet, PSALM).await;
    let original = original["id"].as_str().expect("id").to_owned();
    for (_, key, stake) in &validators {
        let (status, body) = node
            .call(
                "POST",
                &format!("/v1/datanets/{reviewed}/stake"),
                Some(key),
                Some(json!({"amount": stake})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, list) = node.call("GET", &format!("/v1/datanets/{reviewed}/validators"), None, None).await;
    assert_eq!(units(&list["total_stake"]), 5_000, "{list}");
    let v1_hold = list["data"][0]["hold"].as_str().expect("hold").to_owned();
    let (v1, v1_key, _) = &validators[0];
    // Nobody spends a stake through the hold routes, not even its owner, and nobody unstakes
    // another's stake (unstake only ever acts on the caller).
    for key in [&outsider_key, v1_key] {
        let (status, body) =
            node.call("POST", &format!("/v1/holds/{v1_hold}/void"), Some(key), Some(json!({}))).await;
        assert_eq!(status, 403, "{body}");
        let (status, body) =
            node.call("POST", &format!("/v1/holds/{v1_hold}/post"), Some(key), Some(json!({}))).await;
        assert_eq!(status, 403, "{body}");
    }
    let (status, body) =
        node.call("POST", &format!("/v1/datanets/{reviewed}/unstake"), Some(&outsider_key), None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(units_of(&node, v1).await, (500, 500));

    // Mallory copies alice's text into the reviewed datanet (another datanet: dedup cannot see it).
    let (status, copy) = contribute(&node, &mallory_key, &reviewed, PSALM).await;
    assert_eq!((status, copy["status"].as_str()), (201, Some("pending")), "{copy}");
    let copy = copy["id"].as_str().expect("id").to_owned();
    let vote = |key: &str, approve: bool| {
        let key = key.to_owned();
        let copy = copy.clone();
        let node = &node;
        async move {
            node.call(
                "POST",
                &format!("/v1/contributions/{copy}/votes"),
                Some(&key),
                Some(json!({"approve": approve})),
            )
            .await
        }
    };
    let (status, body) = vote(&outsider_key, true).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    let (status, body) = vote(&mallory_key, true).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = vote(v1_key, true).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("pending")), "{body}");
    let (status, body) = vote(v1_key, true).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")), "{body}");
    let (status, body) = vote(&validators[1].1, true).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("accepted")), "{body}");

    // Accepted: it enters the index and earns, and the validators share the validators' part by stake.
    wait_indexed(&node, &reviewed, 1).await;
    create_model(&node, &owner_key, "copied", &reviewed).await;
    let answer = ask(&node, &outsider_key, "copied", "The LORD is my shepherd", 1).await;
    let splits = answer["tributary"]["splits"].as_array().expect("splits");
    let validator_lines: Vec<(String, u128)> = splits
        .iter()
        .filter(|l| l["role"] == "validators")
        .map(|l| (l["account"].as_str().expect("account").to_owned(), units(&l["amount"])))
        .collect();
    let fee = units(&answer["tributary"]["fee"]);
    let validators_part = validator_lines.iter().map(|l| l.1).sum::<u128>();
    assert!(validators_part == fee / 10 || validators_part == fee / 10 + 1, "{splits:?}");
    let paid = |id: &str| validator_lines.iter().find(|l| l.0 == id).map_or(0, |l| l.1);
    assert!(paid(&validators[2].0) >= paid(v1) * 7, "stake 4000 vs 500: {validator_lines:?}");

    // The dispute: evidence is alice's earlier contribution. The colluders dismiss, v3 upholds.
    let (status, dispute) = node
        .call(
            "POST",
            "/v1/disputes",
            Some(&outsider_key),
            Some(json!({"contribution": copy, "evidence": original, "claim": "verbatim copy"})),
        )
        .await;
    assert_eq!(status, 201, "{dispute}");
    let dispute = dispute["id"].as_str().expect("id").to_owned();
    let dispute_vote = |key: &str, uphold: bool| {
        let key = key.to_owned();
        let dispute = dispute.clone();
        let node = &node;
        async move {
            node.call(
                "POST",
                &format!("/v1/disputes/{dispute}/votes"),
                Some(&key),
                Some(json!({"uphold": uphold})),
            )
            .await
        }
    };
    assert_eq!(dispute_vote(&outsider_key, true).await.0, 403);
    assert_eq!(dispute_vote(v1_key, false).await.1["status"], "open");
    assert_eq!(dispute_vote(&validators[1].1, false).await.1["status"], "open");
    assert_eq!(dispute_vote(v1_key, true).await.0, 409);
    let before = units_of(&node, &outsider).await.0;
    let (status, decided) = dispute_vote(&validators[2].1, true).await;
    assert_eq!((status, decided["status"].as_str()), (200, Some("upheld")), "{decided}");
    let slashed: Vec<(String, String, u128)> = decided["slashed"]
        .as_array()
        .expect("slashed")
        .iter()
        .map(|l| {
            (
                l["account"].as_str().expect("a").to_owned(),
                l["role"].as_str().expect("r").to_owned(),
                units(&l["amount"]),
            )
        })
        .collect();
    assert_eq!(
        slashed,
        [
            (mallory.clone(), "bond".to_owned(), 50),
            (v1.clone(), "stake".to_owned(), 100),
            (validators[1].0.clone(), "stake".to_owned(), 100)
        ]
    );
    assert_eq!(units(&decided["to_disputer"]), 125);
    // The disputer's own bond (the datanet's 50) comes back with the reward.
    assert_eq!(units_of(&node, &outsider).await, (before + 125 + 50, 0));
    // The colluders keep 400 staked each; the honest validator keeps all 4000.
    let (_, list) = node.call("GET", &format!("/v1/datanets/{reviewed}/validators"), None, None).await;
    let stakes: Vec<u128> =
        list["data"].as_array().expect("list").iter().map(|s| units(&s["amount"])).collect();
    assert_eq!(stakes, [400, 400, 4_000]);
    let v1_units = units_of(&node, v1).await;
    assert_eq!(v1_units.1, 400);
    // The copy no longer earns: rejected, and out of the index.
    let (_, record) = node.call("GET", &format!("/v1/contributions/{copy}"), None, None).await;
    assert_eq!(
        (record["status"].as_str(), record["reason"].as_str()),
        (Some("rejected"), Some("dispute_upheld")),
        "{record}"
    );
    wait_indexed(&node, &reviewed, 0).await;
    let answer = ask(&node, &outsider_key, "copied", "The LORD is my shepherd", 2).await;
    assert_eq!(answer["tributary"]["attribution"]["contributions"], json!([]), "{answer}");
    // The ledger still balances to the unit.
    let (status, ledger) = node.call("GET", "/v1/ledger", Some(&node.operator_key), None).await;
    assert_eq!(status, 200, "{ledger}");
}

#[tokio::test]
async fn bad_validation_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let (validator, key) = account(&node, "validator").await;
    deposit(&node, &validator, "100").await;
    let datanet = create_datanet(&node, &key, json!({})).await;
    let cases: [(&str, String, Value, u16, &str); 12] = [
        ("POST", format!("/v1/datanets/{datanet}/stake"), json!({"amount": "abc"}), 400, "invalid_body"),
        ("POST", format!("/v1/datanets/{datanet}/stake"), json!({"amount": "0"}), 400, "invalid_amount"),
        (
            "POST",
            format!("/v1/datanets/{datanet}/stake"),
            json!({"amount": "101"}),
            402,
            "insufficient_funds",
        ),
        ("POST", "/v1/datanets/dn_999/stake".to_owned(), json!({"amount": "1"}), 404, "not_found"),
        ("POST", format!("/v1/datanets/{datanet}/unstake"), json!({}), 404, "not_found"),
        ("POST", "/v1/contributions/ctb_999/votes".to_owned(), json!({"approve": true}), 404, "not_found"),
        ("POST", "/v1/contributions/nope/votes".to_owned(), json!({"approve": true}), 400, "invalid_id"),
        (
            "POST",
            "/v1/disputes".to_owned(),
            json!({"contribution": "ctb_999", "evidence": "ctb_1"}),
            404,
            "not_found",
        ),
        ("POST", "/v1/disputes/dsp_x/votes".to_owned(), json!({"uphold": true}), 400, "invalid_id"),
        ("GET", "/v1/disputes/dsp_7".to_owned(), Value::Null, 404, "not_found"),
        (
            "PUT",
            format!("/v1/datanets/{datanet}/rules"),
            json!({"near_duplicate_threshold": 1.5}),
            400,
            "invalid_rules",
        ),
        ("PUT", format!("/v1/datanets/{datanet}/rules"), json!({"surprise": 1}), 400, "invalid_body"),
    ];
    for (method, path, body, status, code) in cases {
        let body = (!body.is_null()).then_some(body);
        let (got, answer) = node.call(method, &path, Some(&key), body).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {answer}"
        );
    }
    assert_eq!(units_of(&node, &validator).await, (100, 0), "nothing was staked");
    let (_, list) = node.call("GET", &format!("/v1/datanets/{datanet}/validators"), None, None).await;
    assert_eq!(list["data"], json!([]));
    let (_, shown) = node.call("GET", &format!("/v1/datanets/{datanet}"), None, None).await;
    assert_eq!(shown["rules"]["near_duplicate_threshold"], 0.8, "{shown}");
    // Limits are datanet settings: a text under min_words is refused, nothing stored.
    let (status, _) = node
        .call("PUT", &format!("/v1/datanets/{datanet}/rules"), Some(&key), Some(json!({"min_words": 5})))
        .await;
    assert_eq!(status, 200);
    let (status, refused) = contribute(&node, &key, &datanet, "too short").await;
    assert_eq!((status, refused["error"]["code"].as_str()), (400, Some("invalid_request")), "{refused}");
    assert!(refused["error"]["message"].as_str().is_some_and(|m| m.contains("min_words")), "{refused}");
    let (_, shown) = node.call("GET", &format!("/v1/datanets/{datanet}"), None, None).await;
    assert_eq!(shown["contributions"], 0);
}

/// An upheld dispute's contribution must leave the index even if the node stopped before the
/// rebuild: on start, an index holding a different number of contributions than are accepted up
/// to its last one is rebuilt. (The stop is simulated by changing the status offline.)
#[tokio::test]
async fn an_index_out_of_step_with_statuses_is_rebuilt_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let (_, key) = account(&node, "owner").await;
    let datanet = create_datanet(&node, &key, json!({})).await;
    let (_, first) = contribute(&node, &key, &datanet, PSALM).await;
    let (_, second) = contribute(
        &node,
        &key,
        &datanet,
        "In the beginning God created the heaven and the earth. \
        And the earth was without form, and void; and darkness was upon the face of the deep.",
    )
    .await;
    assert_eq!((first["status"].as_str(), second["status"].as_str()), (Some("accepted"), Some("accepted")));
    wait_indexed(&node, &datanet, 2).await;
    assert!(node.terminate().success());
    let id: i64 =
        first["id"].as_str().and_then(|id| id.strip_prefix("ctb_")).and_then(|n| n.parse().ok()).expect("id");
    let db = rusqlite::Connection::open(dir.path().join("tributary.db")).expect("db");
    db.execute("UPDATE contributions SET status = 'rejected', reason = 'dispute_upheld' WHERE id = ?1", [id])
        .expect("update");
    drop(db);
    let node = Node::start(dir.path(), &[]);
    wait_indexed(&node, &datanet, 1).await;
    let (status, result) = node
        .call("POST", "/v1/attribution", Some(&key), Some(json!({"datanets": [datanet], "text": PSALM})))
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["contributions"], json!([]), "the rejected psalm is no longer attributed: {result}");
}
