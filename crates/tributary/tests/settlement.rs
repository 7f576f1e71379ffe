//! Settlement end to end, against real things: the real binary over HTTP, a real local chain
//! (anvil), the contract compiled from contracts/, and OpenZeppelin's own Merkle tree library.

mod common;

use std::time::{Duration, Instant};

use common::{ANVIL_KEYS, Anvil, Node, account, cli, contracts_tool, deposit, repository_root};
use serde_json::{Value, json};
use tributary_core::EvmAddress;
use tributary_settlement::chain::{ChainError, Wallet};
use tributary_settlement::{Claim, parse_hex32};

const PSALMS: [&str; 4] = [
    "The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures: he leadeth me beside the still waters.",
    "The LORD is my light and my salvation; whom shall I fear? the LORD is the strength of my life; of whom shall I be afraid?",
    "I will lift up mine eyes unto the hills, from whence cometh my help. My help cometh from the LORD, which made heaven and earth.",
    "Make a joyful noise unto the LORD, all ye lands. Serve the LORD with gladness: come before his presence with singing.",
];
const PROMPTS: [&str; 4] =
    ["The LORD is my", "I will lift up mine", "Make a joyful noise", "He maketh me to"];

const ADDRESS_A: &str = "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ADDRESS_B: &str = "0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const ADDRESS_C: &str = "0xcccccccccccccccccccccccccccccccccccccccc";

fn units(value: &Value) -> u128 {
    value.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not an amount: {value}"))
}

fn address(text: &str) -> EvmAddress {
    text.parse().expect("an address")
}

struct Market {
    node: Node,
    /// (id, key) of the model owner, two contributors sharing payout address B, one without an
    /// address at first, and the paying caller.
    bob: (String, String),
    alice: (String, String),
    erin: (String, String),
    dave: (String, String),
    carol: (String, String),
}

async fn call_ok(node: &Node, method: &str, path: &str, key: &str, body: Option<Value>) -> Value {
    let (status, value) = node.call(method, path, Some(key), body).await;
    assert!((200..300).contains(&status), "{method} {path}: {status} {value}");
    value
}

/// A datanet with three contributors, a paid ∞-gram model over it, and a funded caller.
async fn market(node: Node) -> Market {
    let bob = account(&node, "bob").await;
    let alice = account(&node, "alice").await;
    let erin = account(&node, "erin").await;
    let dave = account(&node, "dave").await;
    let carol = account(&node, "carol").await;
    for (who, payout) in
        [(&bob, Some(ADDRESS_A)), (&alice, Some(ADDRESS_B)), (&erin, Some(ADDRESS_B)), (&dave, None)]
    {
        if let Some(payout) = payout {
            call_ok(
                &node,
                "PATCH",
                &format!("/v1/accounts/{}", who.0),
                &who.1,
                Some(json!({"payout_address": payout})),
            )
            .await;
        }
    }
    let datanet = call_ok(
        &node,
        "POST",
        "/v1/datanets",
        &alice.1,
        Some(json!({"name": "psalms", "license": "public-domain"})),
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for (who, text) in [(&alice, PSALMS[0]), (&erin, PSALMS[1]), (&dave, PSALMS[2]), (&alice, PSALMS[3])] {
        call_ok(
            &node,
            "POST",
            &format!("/v1/datanets/{datanet}/contributions"),
            &who.1,
            Some(json!({"title": "psalm", "text": text})),
        )
        .await;
    }
    let started = Instant::now();
    while node.call("GET", &format!("/v1/datanets/{datanet}"), None, None).await.1["contributions_indexed"]
        != 4
    {
        assert!(started.elapsed() < Duration::from_secs(20), "the index caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    call_ok(
        &node,
        "POST",
        "/v1/models",
        &bob.1,
        Some(json!({"name": "shepherd", "datanets": [datanet], "backend": {"kind": "infinigram"},
            "price": {"input_per_1k": "100000", "output_per_1k": "200000", "request": "1000"},
            "split": {"owner_bps": 5000, "data_bps": 3500, "validators_bps": 1000, "protocol_bps": 500}})),
    )
    .await;
    deposit(&node, &carol.0, "1000000000").await;
    Market { node, bob, alice, erin, dave, carol }
}

impl Market {
    async fn infer(&self, rounds: usize) {
        for round in 0..rounds {
            for (i, prompt) in PROMPTS.iter().enumerate() {
                let body = json!({"model": "shepherd", "messages": [{"role": "user", "content": prompt}],
                    "max_tokens": 12, "seed": round * 10 + i});
                call_ok(&self.node, "POST", "/v1/chat/completions", &self.carol.1, Some(body)).await;
            }
        }
    }

    /// Stops the node with SIGTERM and starts it again on the same data directory.
    fn restart(self, args: &[&str]) -> Market {
        let data = self.node.data.clone();
        let Market { node, bob, alice, erin, dave, carol } = self;
        assert!(node.terminate().success());
        Market { node: Node::start(&data, args), bob, alice, erin, dave, carol }
    }

    async fn close_epoch(&self) -> Value {
        let (status, epoch) = self.node.call("POST", "/v1/epochs", Some(&self.node.operator_key), None).await;
        assert_eq!(status, 201, "{epoch}");
        epoch
    }

    /// An account's (total earned, settled, owed).
    async fn money(&self, who: &(String, String)) -> (u128, u128, u128) {
        let earned =
            call_ok(&self.node, "GET", &format!("/v1/accounts/{}/earnings", who.0), &who.1, None).await;
        let settled =
            call_ok(&self.node, "GET", &format!("/v1/accounts/{}/settlements", who.0), &who.1, None).await;
        (units(&earned["total"]), units(&settled["settled"]), units(&settled["owed"]))
    }

    async fn claim(&self, epoch: u64, payee: &str) -> (Value, Claim) {
        self.claim_as(epoch, payee, None).await
    }

    async fn claim_as(&self, epoch: u64, payee: &str, key: Option<&str>) -> (Value, Claim) {
        let (status, served) =
            self.node.call("GET", &format!("/v1/epochs/{epoch}/claims/{payee}"), key, None).await;
        assert_eq!(status, 200, "{served}");
        let proof = served["proof"]
            .as_array()
            .expect("proof")
            .iter()
            .map(|h| parse_hex32(h.as_str().expect("hex")).expect("hash"));
        let claim = Claim {
            address: address(served["address"].as_str().expect("address")),
            cumulative_amount: units(&served["cumulative_amount"]),
            proof: proof.collect(),
            root: parse_hex32(served["root"].as_str().expect("root")).expect("root"),
        };
        (served, claim)
    }
}

fn refused(result: Result<impl std::fmt::Debug, ChainError>, because: &str) {
    match result {
        Err(ChainError::Reverted(reason)) => {
            assert!(reason.contains(because), "{reason:?} should say {because:?}")
        }
        other => panic!("expected a revert saying {because:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn epochs_pay_real_inference_earnings_out_on_a_real_chain() {
    let anvil = Anvil::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let operator_key_file = dir.path().join("operator-chain.key");
    let payer_key_file = dir.path().join("payer-chain.key");
    std::fs::write(&operator_key_file, ANVIL_KEYS[0]).expect("key file");
    std::fs::write(&payer_key_file, ANVIL_KEYS[1]).expect("key file");
    let operator_key_file = operator_key_file.to_str().expect("utf-8 path");
    let payer_key_file = payer_key_file.to_str().expect("utf-8 path");

    // Deploy the committed artifact with the CLI, as an operator would.
    let (ok, out, err) = cli(&[
        "chain",
        "deploy",
        "--chain-rpc",
        &anvil.url,
        "--chain-key-file",
        operator_key_file,
        "--test-token",
    ]);
    assert!(ok, "deploy failed: {err}");
    let deployed: Value = serde_json::from_str(&out).expect("deploy prints JSON");
    assert_eq!(deployed["chain_id"], 31337);
    let contract = address(deployed["contract"].as_str().expect("contract"));
    let token = address(deployed["token"].as_str().expect("token"));
    let operator = Wallet::new(&anvil.url, ANVIL_KEYS[0]).expect("wallet");
    let payer = Wallet::new(&anvil.url, ANVIL_KEYS[1]).expect("wallet");
    let chain = payer.distributor(&contract);

    // A node with the wrong key refuses to start rather than failing at the first epoch.
    let (ok, _, err) = cli(&[
        "serve",
        "--data",
        dir.path().join("wrong").to_str().expect("path"),
        "--listen",
        "127.0.0.1:0",
        "--chain-rpc",
        &anvil.url,
        "--chain-contract",
        &contract.to_string(),
        "--chain-key-file",
        payer_key_file,
    ]);
    assert!(!ok && err.contains("owned by"), "{err}");

    let contract_text = contract.to_string();
    let chain_args = [
        "--chain-rpc",
        &anvil.url,
        "--chain-contract",
        &contract_text,
        "--chain-key-file",
        operator_key_file,
    ];
    let m = market(Node::start(&dir.path().join("node"), &chain_args)).await;
    m.infer(3).await;

    // Epoch 1: everyone with a payout address is paid out; Dave has none and keeps his earnings owed.
    let epoch1 = m.close_epoch().await;
    assert_eq!(epoch1["epoch"], 1);
    assert!(epoch1["tx_hash"].is_string() && epoch1["publish_error"].is_null(), "{epoch1}");
    assert_eq!(epoch1["contract"], contract.to_string());
    let root1 = parse_hex32(epoch1["root"].as_str().expect("root")).expect("root");
    assert_eq!(chain.current().await.expect("state"), (1, root1), "the root is on chain");
    assert_eq!(epoch1["payees"], 2, "A and B; Alice and Erin share B");
    for who in [&m.bob, &m.alice, &m.erin] {
        let (earned, settled, owed) = m.money(who).await;
        assert!(earned > 0);
        assert_eq!((settled, owed), (earned, 0), "{} is paid out whole", who.0);
        assert_eq!(common::balance(&m.node, &who.0).await.0, "0", "the payout left the ledger");
    }
    let (dave_earned, dave_settled, dave_owed) = m.money(&m.dave).await;
    assert!(dave_earned > 0);
    assert_eq!((dave_settled, dave_owed), (0, dave_earned));
    let (_, ledger) = m.node.call("GET", "/v1/ledger", Some(&m.node.operator_key), None).await;
    assert_eq!(ledger["balanced"], true, "{ledger}");
    let (b1, _) = m.claim(1, ADDRESS_B).await;
    let alice_erin = m.money(&m.alice).await.1 + m.money(&m.erin).await.1;
    assert_eq!(units(&b1["cumulative_amount"]), alice_erin, "accounts sharing an address form one leaf");

    // Unfunded, the contract pays nothing and marks nothing claimed.
    // By account id, a claim is the account's own business (or the operator's).
    let claim_path = format!("/v1/epochs/1/claims/{}", m.bob.0);
    assert_eq!(m.node.call("GET", &claim_path, None, None).await.0, 401);
    assert_eq!(m.node.call("GET", &claim_path, Some(&m.carol.1), None).await.0, 404);
    let (_, bob_claim) = m.claim_as(1, &m.bob.0, Some(&m.bob.1)).await;
    assert_eq!(bob_claim.address, address(ADDRESS_A));
    refused(chain.claim(&bob_claim).await, "pays nothing until funded");
    assert_eq!(chain.claimed(&address(ADDRESS_A)).await.expect("claimed"), 0);
    operator.mint_test_token(&token, &contract, units(&epoch1["total"])).await.expect("mint");

    // Bob claims through the CLI (the payer's key sends it; the tokens go to Bob's address).
    let (ok, out, err) = cli(&[
        "claim",
        ADDRESS_A,
        "--node",
        &m.node.base,
        "--send",
        "--chain-rpc",
        &anvil.url,
        "--chain-key-file",
        payer_key_file,
    ]);
    assert!(ok, "claim failed: {err}");
    let sent: Value = serde_json::from_str(&out).expect("claim prints JSON");
    assert_eq!(units(&sent["paid"]), m.money(&m.bob).await.1);
    assert_eq!(
        payer.token_balance(&token, &address(ADDRESS_A)).await.expect("balance"),
        m.money(&m.bob).await.1
    );
    // The same claim again, a wrong amount, a bent proof: all refused.
    refused(chain.claim(&bob_claim).await, "claimed already");
    let mut more = bob_claim.clone();
    more.cumulative_amount += 1;
    refused(chain.claim(&more).await, "does not prove");
    let (_, mut bent) = m.claim(1, ADDRESS_B).await;
    bent.proof[0][0] ^= 1;
    refused(chain.claim(&bent).await, "does not prove");

    // Epoch 2: Dave sets an address and his owed earnings enter the tree; B's epoch-1 proof is stale.
    call_ok(
        &m.node,
        "PATCH",
        &format!("/v1/accounts/{}", m.dave.0),
        &m.dave.1,
        Some(json!({"payout_address": ADDRESS_C})),
    )
    .await;
    m.infer(2).await;
    let epoch2 = m.close_epoch().await;
    assert_eq!(epoch2["payees"], 3);
    let (_, stale) = m.claim(1, ADDRESS_B).await;
    refused(chain.claim(&stale).await, "fetch a fresh proof");
    let (_, a2) = m.claim(2, ADDRESS_A).await;
    assert!(a2.cumulative_amount > bob_claim.cumulative_amount, "cumulative amounts grow");

    // Epoch 3: more earnings; B skipped epoch 2 and claims everything at once.
    m.infer(1).await;
    let epoch3 = m.close_epoch().await;
    // Fund it with exactly what is still due: the total, less what was claimed, less what it holds.
    let claimed_so_far = chain.claimed(&address(ADDRESS_A)).await.expect("claimed");
    let funds = payer.token_balance(&token, &contract).await.expect("balance");
    operator
        .mint_test_token(&token, &contract, units(&epoch3["total"]) - claimed_so_far - funds)
        .await
        .expect("mint");
    for payee in [ADDRESS_A, ADDRESS_B, ADDRESS_C] {
        let (_, claim) = m.claim(3, payee).await;
        chain.claim(&claim).await.expect("a valid claim pays");
    }
    // Token balances equal the ledger's earnings exactly (no one spent any), and the contract,
    // funded with exactly the epoch's total, is empty.
    let (bob_earned, bob_settled, _) = m.money(&m.bob).await;
    let (alice_earned, alice_settled, _) = m.money(&m.alice).await;
    let (erin_earned, erin_settled, _) = m.money(&m.erin).await;
    let (dave_earned, dave_settled, dave_owed) = m.money(&m.dave).await;
    assert_eq!(
        (bob_settled, alice_settled, erin_settled, dave_settled),
        (bob_earned, alice_earned, erin_earned, dave_earned)
    );
    assert_eq!(dave_owed, 0);
    let balance = |a: &'static str| {
        let payer = payer.clone();
        async move { payer.token_balance(&token, &address(a)).await.expect("balance") }
    };
    assert_eq!(balance(ADDRESS_A).await, bob_earned);
    assert_eq!(balance(ADDRESS_B).await, alice_earned + erin_earned);
    assert_eq!(balance(ADDRESS_C).await, dave_earned);
    assert_eq!(payer.token_balance(&token, &contract).await.expect("balance"), 0);
    assert_eq!(units(&epoch3["total"]), bob_earned + alice_earned + erin_earned + dave_earned);

    // Publishing fails when the node's key no longer owns the contract: the epoch still closes, the
    // error is recorded, and the operator publishes it once ownership is back.
    operator.distributor(&contract).transfer_ownership(&payer.address()).await.expect("hand over");
    m.infer(1).await;
    let epoch4 = m.close_epoch().await;
    assert!(epoch4["tx_hash"].is_null(), "{epoch4}");
    assert!(epoch4["publish_error"].as_str().is_some_and(|e| e.contains("owner")), "{epoch4}");
    assert_eq!(chain.current().await.expect("state").0, 3, "the contract still has epoch 3");
    chain.transfer_ownership(&operator.address()).await.expect("hand back");
    let (status, published) =
        m.node.call("POST", "/v1/epochs/4/publish", Some(&m.node.operator_key), None).await;
    assert_eq!(status, 200, "{published}");
    assert!(published["tx_hash"].is_string() && published["publish_error"].is_null(), "{published}");
    let root4 = parse_hex32(epoch4["root"].as_str().expect("root")).expect("root");
    assert_eq!(chain.current().await.expect("state"), (4, root4));
    let metrics =
        m.node.http.get(m.node.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(
        metrics.contains("tributary_epoch_root_publications_total{result=\"published\"} 4\n"),
        "{metrics}"
    );
    assert!(metrics.contains("tributary_epoch_root_publications_total{result=\"failed\"} 1\n"), "{metrics}");
    let (status, again) = m.node.call("POST", "/v1/epochs/4/publish", Some(&m.node.operator_key), None).await;
    assert_eq!((status, again["error"]["code"].as_str()), (409, Some("published")), "{again}");

    // A node that stops before its latest root reached the chain publishes it when it starts again.
    operator.distributor(&contract).transfer_ownership(&payer.address()).await.expect("hand over");
    m.infer(1).await;
    let epoch5 = m.close_epoch().await;
    assert!(epoch5["tx_hash"].is_null(), "{epoch5}");
    chain.transfer_ownership(&operator.address()).await.expect("hand back");
    let m = m.restart(&chain_args);
    let root5 = parse_hex32(epoch5["root"].as_str().expect("root")).expect("root");
    // Wait for the node to record the publication (it does so after the transaction is mined).
    let started = Instant::now();
    while !m.node.call("GET", "/v1/epochs/5", None, None).await.1["tx_hash"].is_string() {
        assert!(started.elapsed() < Duration::from_secs(30), "the restarted node published epoch 5");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(chain.current().await.expect("state"), (5, root5));

    // A root that reached the chain without the node recording it (here: published by hand, as a
    // node stopping between the two steps would leave it) is found in the contract's events.
    operator.distributor(&contract).transfer_ownership(&payer.address()).await.expect("hand over");
    m.infer(1).await;
    let epoch6 = m.close_epoch().await;
    assert!(epoch6["tx_hash"].is_null(), "{epoch6}");
    chain.transfer_ownership(&operator.address()).await.expect("hand back");
    let root6 = parse_hex32(epoch6["root"].as_str().expect("root")).expect("root");
    let by_hand = operator.distributor(&contract).set_root(6, &root6).await.expect("published by hand");
    let m = m.restart(&chain_args);
    let started = Instant::now();
    loop {
        let (_, epoch6) = m.node.call("GET", "/v1/epochs/6", None, None).await;
        if epoch6["tx_hash"].is_string() {
            assert_eq!(epoch6["tx_hash"], by_hand.tx_hash.as_str(), "{epoch6}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the restarted node recorded epoch 6's transaction"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // OpenZeppelin's library loads our tree dump, gives the same root and accepts our proofs.
    let (status, dump) = m.node.call("GET", "/v1/epochs/3/tree", None, None).await;
    assert_eq!(status, 200, "{dump}");
    let values: Vec<Value> =
        dump["values"].as_array().expect("values").iter().map(|v| v["value"].clone()).collect();
    let mut checks = Vec::new();
    for payee in [ADDRESS_A, ADDRESS_B, ADDRESS_C] {
        let (served, _) = m.claim(3, payee).await;
        checks.push(
            json!({"value": [served["address"], served["cumulative_amount"]], "proof": served["proof"]}),
        );
    }
    let oz = openzeppelin(&json!({"values": values, "dump": dump, "check": checks}));
    assert_eq!(oz["root"], epoch3["root"]);
    assert_eq!(oz["dump_root"], epoch3["root"]);
    assert_eq!(oz["valid"], json!([true, true, true]));

    // Receipts: the first one is proven part of epoch 1's receipts root, offline, by the CLI.
    let (status, proof) = m.node.call("GET", "/v1/receipts/rcpt_1/proof", Some(&m.carol.1), None).await;
    assert_eq!(status, 200, "{proof}");
    assert_eq!(proof["epoch"], 1);
    assert_eq!(proof["receipts_root"], epoch1["receipts_root"]);
    let proof_file = dir.path().join("receipt-proof.json");
    std::fs::write(&proof_file, proof.to_string()).expect("write");
    let (ok, out, err) = cli(&["verify-proof", proof_file.to_str().expect("path")]);
    assert!(ok && out.contains("valid"), "{out}{err}");
    let (ok, _, _) = cli(&[
        "verify-proof",
        proof_file.to_str().expect("path"),
        "--root",
        epoch2["root"].as_str().expect("root"),
    ]);
    assert!(!ok, "a proof checked against another root fails");
}

/// Runs contracts/scripts/oz-tree.mjs (OpenZeppelin's @openzeppelin/merkle-tree) on `request`.
fn openzeppelin(request: &Value) -> Value {
    use std::io::Write;
    contracts_tool("anvil");
    let mut child = std::process::Command::new("node")
        .arg(repository_root().join("contracts/scripts/oz-tree.mjs"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node runs");
    child.stdin.take().expect("stdin").write_all(request.to_string().as_bytes()).expect("write");
    let output = child.wait_with_output().expect("oz-tree finishes");
    assert!(output.status.success(), "oz-tree failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("oz-tree prints JSON")
}

#[tokio::test]
async fn epochs_close_on_the_embedded_default_and_guard_who_sees_what() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = market(Node::start(&dir.path().join("node"), &[])).await;
    let node = &m.node;
    m.infer(2).await;

    // Bad input and the wrong caller change nothing.
    assert_eq!(node.call("POST", "/v1/epochs", None, None).await.0, 401);
    assert_eq!(node.call("POST", "/v1/epochs", Some(&m.bob.1), None).await.0, 403);
    for (path, status) in
        [("/v1/epochs/abc", 400), ("/v1/epochs/0", 400), ("/v1/epochs/1", 404), ("/v1/epochs/1/tree", 404)]
    {
        assert_eq!(node.call("GET", path, None, None).await.0, status, "{path}");
    }
    let (status, body) = node.call("GET", "/v1/receipts/rcpt_1/proof", Some(&m.carol.1), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("not_in_epoch")), "{body}");
    assert_eq!(node.call("GET", "/v1/epochs?limit=5", None, None).await.1["data"], json!([]));

    // Bob spends part of his earnings inside the ledger first: only what he still holds is paid out,
    // and the part he spent is not owed to him later.
    let (bob_earned, _, _) = m.money(&m.bob).await;
    let spent = bob_earned / 3;
    call_ok(
        node,
        "POST",
        "/v1/transfers",
        &m.bob.1,
        Some(json!({"to": m.carol.0, "amount": spent.to_string()})),
    )
    .await;

    // The CLI closes the epoch with the operator's key file; without a chain there is no transaction.
    let key_file = dir.path().join("node/operator.key");
    let key_file = key_file.to_str().expect("path");
    let (ok, out, err) = cli(&["epoch", "close", "--node", &node.base, "--key-file", key_file]);
    assert!(ok, "{err}");
    let epoch1: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(epoch1["epoch"], 1);
    assert!(
        epoch1["tx_hash"].is_null() && epoch1["chain_id"].is_null() && epoch1["root"].is_string(),
        "{epoch1}"
    );
    assert_eq!(m.money(&m.bob).await, (bob_earned, bob_earned - spent, 0));
    let (status, body) = node.call("POST", "/v1/epochs/1/publish", Some(&node.operator_key), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("no_chain")), "{body}");

    // Claims: by address for anyone; unknown, malformed; by account id only for its owner.
    let (status, _) =
        node.call("GET", "/v1/epochs/1/claims/0x1111111111111111111111111111111111111111", None, None).await;
    assert_eq!(status, 404);
    assert_eq!(node.call("GET", "/v1/epochs/1/claims/0xnothex", None, None).await.0, 400);
    assert_eq!(node.call("GET", "/v1/epochs/1/claims/acct_x", Some(&m.bob.1), None).await.0, 400);
    let (status, body) =
        node.call("GET", &format!("/v1/epochs/1/claims/{}", m.dave.0), Some(&m.dave.1), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("no_payout_address")), "{body}");
    assert_eq!(
        node.call("GET", &format!("/v1/accounts/{}/settlements", m.bob.0), Some(&m.carol.1), None).await.0,
        404
    );
    let operator_view = node
        .call("GET", &format!("/v1/accounts/{}/settlements", m.bob.0), Some(&node.operator_key), None)
        .await;
    assert_eq!(operator_view.0, 200);

    // The CLI prints Bob's proof and checks it offline.
    let (ok, out, err) = cli(&["claim", &m.bob.0, "--node", &node.base, "--key", &m.bob.1]);
    assert!(ok, "{err}");
    let proof_file = dir.path().join("claim.json");
    std::fs::write(&proof_file, &out).expect("write");
    let (ok, out, _) = cli(&["verify-proof", proof_file.to_str().expect("path")]);
    assert!(ok && out.contains(": valid"), "{out}");
    let mut forged: Value =
        serde_json::from_str(&std::fs::read_to_string(&proof_file).expect("read")).expect("JSON");
    forged["cumulative_amount"] = json!((units(&forged["cumulative_amount"]) * 2).to_string());
    std::fs::write(&proof_file, forged.to_string()).expect("write");
    let (ok, out, _) = cli(&["verify-proof", proof_file.to_str().expect("path")]);
    assert!(!ok && out.contains("INVALID"), "{out}");

    // Receipt proofs: for the receipt's caller and payees only.
    assert_eq!(node.call("GET", "/v1/receipts/rcpt_1/proof", Some(&m.carol.1), None).await.0, 200);
    let (_, stranger) = account(node, "stranger").await;
    assert_eq!(node.call("GET", "/v1/receipts/rcpt_1/proof", Some(&stranger), None).await.0, 404);

    // A close retried with its Idempotency-Key returns the same epoch instead of closing another;
    // the same key for another request is a conflict.
    let key = [("Idempotency-Key", "close-2")];
    let (status, first) = node.call_with("POST", "/v1/epochs", Some(&node.operator_key), None, &key).await;
    assert_eq!(status, 201, "{first}");
    let (status, retry) = node.call_with("POST", "/v1/epochs", Some(&node.operator_key), None, &key).await;
    assert_eq!((status, &retry["epoch"]), (201, &first["epoch"]), "{retry}");
    let (status, _) = node
        .call_with(
            "POST",
            "/v1/deposits",
            Some(&node.operator_key),
            Some(json!({"account": m.carol.0, "amount": "1"})),
            &key,
        )
        .await;
    assert_eq!(status, 409, "a key reused for another request");
    let epoch2 = first;

    // An epoch with no new earnings pays nothing and keeps the same tree.
    assert_eq!((epoch2["epoch"].clone(), epoch2["settled"].clone()), (json!(2), json!("0")));
    assert_eq!(
        (epoch2["root"].clone(), epoch2["total"].clone()),
        (epoch1["root"].clone(), epoch1["total"].clone())
    );
    assert_eq!(epoch2["receipts"], 0);
    assert!(epoch2["receipts_root"].is_null());
    let (_, ledger) = node.call("GET", "/v1/ledger", Some(&node.operator_key), None).await;
    assert_eq!(ledger["balanced"], true, "{ledger}");
    let metrics =
        node.http.get(node.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("tributary_epochs_closed_total 2\n"), "a retried close counts once:\n{metrics}");
    assert!(metrics.contains("tributary_epoch_latest 2\n"), "{metrics}");
    let listed = node.call("GET", "/v1/epochs", None, None).await.1;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(listed["data"][0]["epoch"], 2, "newest first");
}
