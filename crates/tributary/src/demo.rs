//! `tributary demo`: a throwaway node on a temporary directory, driven through its real HTTP API,
//! that shows the whole money path a new user cares about and ends with a summary of balances.

use anyhow::Context;
use serde_json::json;

use crate::client::{ApiFailure, Client, field};

const VERSES: [(&str, &str); 4] = [
    ("Psalm 23:1", "The LORD is my shepherd; I shall not want."),
    ("Psalm 23:2", "He maketh me to lie down in green pastures: he leadeth me beside the still waters."),
    ("Psalm 23:3", "He restoreth my soul: he leadeth me in the paths of righteousness for his name's sake."),
    (
        "Psalm 23:4",
        "Yea, though I walk through the valley of the shadow of death, I will fear no evil: for thou art with me; thy rod and thy staff they comfort me.",
    ),
];

pub async fn run() -> anyhow::Result<()> {
    let data = tempfile::tempdir().context("creating a temporary data directory")?;
    let node = crate::node::LocalNode::start(data.path()).await?;
    println!("Tributary demo: a node on {} with its data in {}", node.base, data.path().display());

    let anonymous = Client::new(&node.base, None);
    let operator = node.operator();
    let step = |text: &str| println!("\n== {text}");

    step("Accounts: a data contributor, a model owner and a consumer sign up");
    let mut people = Vec::new();
    for name in ["alice (contributor)", "bob (model owner)", "carol (consumer)"] {
        let created = anonymous.post("/v1/accounts", json!({"name": name})).await?;
        let id = field(&created, "id")?;
        println!("   {name:<22} {id}");
        people.push((name, id, anonymous.with_key(&field(&created, "api_key")?)));
    }
    let [(_, alice_id, alice), (_, bob_id, bob), (_, carol_id, carol)] = &people[..] else {
        unreachable!("three accounts were created")
    };

    step("Alice creates a datanet and contributes four verses (King James Bible, public domain)");
    let datanet = field(
        &alice
            .post("/v1/datanets", json!({"name": "psalms", "description": "Psalm 23, verse by verse", "license": "public-domain"}))
            .await?,
        "id",
    )?;
    let items: Vec<_> =
        VERSES.iter().map(|(title, text)| json!({"title": title, "text": text, "source": "KJV"})).collect();
    let batch = alice.post(&format!("/v1/datanets/{datanet}/contributions/batch"), json!(items)).await?;
    for result in batch["results"].as_array().into_iter().flatten() {
        println!("   {} {}", result["id"].as_str().unwrap_or("?"), result["status"].as_str().unwrap_or("?"));
    }

    step("Mallory tries to earn from Alice's verses: the same text re-spaced, then in capitals");
    let mallory = anonymous.post("/v1/accounts", json!({"name": "mallory (copier)"})).await?;
    let mallory = anonymous.with_key(&field(&mallory, "api_key")?);
    let verse = VERSES[3].1;
    for (what, text) in [("re-spaced", verse.replace(' ', "  ")), ("in capitals", verse.to_uppercase())] {
        let outcome = mallory
            .post(
                &format!("/v1/datanets/{datanet}/contributions"),
                json!({"title": "my verse", "text": text}),
            )
            .await?;
        let shown = mallory.get(&format!("/v1/contributions/{}", field(&outcome, "id")?)).await?;
        let findings = &shown["findings"];
        let of = findings["duplicate_of"].as_str().or(findings["near_duplicate_of"].as_str()).unwrap_or("?");
        let similarity =
            findings["similarity"].as_f64().map(|s| format!(", similarity {s:.2}")).unwrap_or_default();
        println!(
            "   {what:<11} {} {}: {} of {of}{similarity}",
            field(&outcome, "id")?,
            field(&outcome, "status")?,
            outcome["reason"].as_str().unwrap_or("?"),
        );
        anyhow::ensure!(outcome["status"] == "rejected", "a copy was accepted");
    }

    step(
        "Bob registers a model over the datanet: 2000 per 1k input tokens, 6000 per 1k output, 10 per request",
    );
    let model = field(
        &bob.post(
            "/v1/models",
            json!({
                "name": "shepherd-1",
                "datanets": [datanet],
                "backend": {"kind": "infinigram"},
                "price": {"input_per_1k": "2000", "output_per_1k": "6000", "request": "10"},
                "split": {"owner_bps": 5000, "data_bps": 3500, "validators_bps": 1000, "protocol_bps": 500}
            }),
        )
        .await?,
        "id",
    )?;
    println!("   {model}: split owner 50% / data 35% / validators 10% / protocol 5%");

    step("The operator deposits 1,000,000 units for Carol");
    operator.post("/v1/deposits", json!({"account": carol_id, "amount": "1000000"})).await?;

    step("Carol pays Bob 1,200 directly, retrying once with the same Idempotency-Key");
    let first = carol
        .post_keyed("/v1/transfers", json!({"to": bob_id, "amount": "1200"}), Some("demo-pay-1"))
        .await?;
    let retry = carol
        .post_keyed("/v1/transfers", json!({"to": bob_id, "amount": "1200"}), Some("demo-pay-1"))
        .await?;
    println!(
        "   first {} / retry {} (same transfer, charged once)",
        field(&first, "id")?,
        field(&retry, "id")?
    );

    step("Carol holds 5,000 for Bob, then posts 3,200 of it; the other 1,800 returns to her");
    let hold = carol.post("/v1/holds", json!({"to": bob_id, "amount": "5000", "timeout_ms": 60_000})).await?;
    let hold_id = field(&hold, "id")?;
    let held = carol.get(&format!("/v1/accounts/{carol_id}")).await?;
    println!("   while held: balance {} held {}", field(&held, "balance")?, field(&held, "held")?);
    carol.post(&format!("/v1/holds/{hold_id}/post"), json!({"amount": "3200"})).await?;

    step("Carol holds 700 for Alice and voids it");
    let hold =
        carol.post("/v1/holds", json!({"to": alice_id, "amount": "700", "timeout_ms": 60_000})).await?;
    carol.post(&format!("/v1/holds/{}/void", field(&hold, "id")?), json!({})).await?;

    step("Bob tries to spend more than he has: refused, nothing changes");
    match bob.post("/v1/transfers", json!({"to": alice_id, "amount": "999999999"})).await {
        Err(error) => match error.downcast_ref::<ApiFailure>() {
            Some(failure) => println!("   {} {}: {}", failure.status.as_u16(), failure.code, failure.message),
            None => return Err(error),
        },
        Ok(_) => anyhow::bail!("an overdraft was accepted"),
    }
    println!("   Bob pays Alice 400 for her data instead");
    bob.post("/v1/transfers", json!({"to": alice_id, "amount": "400"})).await?;

    step("Carol asks Bob's model two questions through the OpenAI-compatible API, paying per token");
    operator.post(&format!("/v1/datanets/{datanet}/index"), json!({})).await?;
    let node_info = anonymous.get("/v1/node").await?;
    for prompt in ["The LORD is my", "He leadeth me"] {
        let answer = carol
            .post(
                "/v1/chat/completions",
                json!({"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 12, "seed": 23}),
            )
            .await?;
        let content = answer["choices"][0]["message"]["content"].as_str().unwrap_or_default();
        let tributary = &answer["tributary"];
        println!("   Q: {prompt:?}");
        println!("   A: {content:?}");
        println!(
            "   usage {} + {} tokens, fee {} (receipt {})",
            answer["usage"]["prompt_tokens"],
            answer["usage"]["completion_tokens"],
            field(tributary, "fee")?,
            field(tributary, "receipt_id")?
        );
        for line in tributary["splits"].as_array().into_iter().flatten() {
            println!(
                "      {:<11} {:<8} {:>6}",
                field(line, "role")?,
                field(line, "account")?,
                field(line, "amount")?
            );
        }
        for share in tributary["attribution"]["contributions"].as_array().into_iter().flatten() {
            println!(
                "      from {} ({}): {:.0}% of the words",
                field(share, "id")?,
                field(share, "contributor")?,
                share["share"].as_f64().unwrap_or(0.0) * 100.0
            );
        }
        let receipt = carol.get(&format!("/v1/receipts/{}", field(tributary, "receipt_id")?)).await?;
        let valid = crate::receipts::verify_receipt(&receipt, &node_info)?;
        println!("      receipt signed by the node's key: {}", if valid { "valid" } else { "INVALID" });
        anyhow::ensure!(valid, "a receipt failed its signature check");
    }

    step(
        "Settlement: Alice sets a payout address; the operator closes epoch 1 (no chain: the embedded default)",
    );
    alice
        .patch(
            &format!("/v1/accounts/{alice_id}"),
            json!({"payout_address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"}),
        )
        .await?;
    let epoch = operator.post("/v1/epochs", json!({})).await?;
    println!(
        "   epoch {}: {} paid out to {} address(es), payout root {}",
        epoch["epoch"],
        field(&epoch, "settled")?,
        epoch["payees"],
        field(&epoch, "root")?
    );
    println!("   receipts root {} over {} receipt(s)", field(&epoch, "receipts_root")?, epoch["receipts"]);
    let claim = alice.get(&format!("/v1/epochs/1/claims/{alice_id}")).await?;
    let claim = crate::settle_cli::parse_claim(&claim)?;
    let leaf = tributary_settlement::tree::payout_leaf(&claim.address, claim.cumulative_amount);
    let valid = tributary_settlement::tree::verify(&claim.root, &leaf, &claim.proof);
    println!(
        "   Alice's claim: {} to {}, proof of {} hashes checked here against the root: {}",
        claim.cumulative_amount,
        claim.address,
        claim.proof.len(),
        if valid { "valid" } else { "INVALID" }
    );
    anyhow::ensure!(valid, "a claim proof failed to verify");
    println!(
        "   (her earnings left the ledger; with --chain-rpc the root goes on chain and she claims tokens)"
    );

    step("Balances");
    println!("   {:<22} {:>12} {:>8}", "account", "balance", "held");
    for (name, id, client) in &people {
        let account = client.get(&format!("/v1/accounts/{id}")).await?;
        println!("   {name:<22} {:>12} {:>8}", field(&account, "balance")?, field(&account, "held")?);
    }
    let system = [("protocol", "acct_2"), ("validators pool", "acct_3"), ("inference clearing", "acct_4")];
    for (name, id) in system {
        let account = operator.get(&format!("/v1/accounts/{id}")).await?;
        println!("   {name:<22} {:>12} {:>8}", field(&account, "balance")?, field(&account, "held")?);
    }
    let ledger = operator.get("/v1/ledger").await?;
    println!(
        "   ledger: {} deposited, posted debits {} = credits {}, {} transfers, balanced: {}",
        field(&ledger, "deposited")?,
        field(&ledger, "debits_posted")?,
        field(&ledger, "credits_posted")?,
        ledger["transfers"],
        ledger["balanced"]
    );
    if ledger["balanced"] != json!(true) {
        anyhow::bail!("the ledger is not balanced");
    }

    node.stop().await?;
    println!("\nDemo finished; the node shut down cleanly and its temporary data was removed.");
    Ok(())
}
