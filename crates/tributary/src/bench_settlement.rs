//! `tributary bench settlement`: the epoch's payout tree for many payees (next to OpenZeppelin's
//! JavaScript library on the same values), a whole epoch close through the embedded store, and gas
//! measured on a real local chain (anvil) with the cost of settling per inference versus by epochs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use tributary_core::registry::AccountKind;
use tributary_core::{AccountId, Amount, EvmAddress, ModelId};
use tributary_ledger::store::{BATCH_COMMANDS_MAX, NewReceipt, Payment, Request};
use tributary_ledger::{Command, Outcome, SqliteStore, Store, SystemClock};
use tributary_settlement::chain::Wallet;
use tributary_settlement::{PayoutTree, hex32};

#[derive(Args, Debug, Clone)]
pub struct SettlementBenchArgs {
    /// Payees in the tree and in the epoch close.
    #[arg(long, default_value_t = 1_000_000)]
    payees: usize,
    /// Payees for the OpenZeppelin JavaScript baseline (its whole tree is built in memory in Node).
    #[arg(long, default_value_t = 100_000)]
    baseline_payees: usize,
    /// Tree builds to time (the median is reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The repository's contracts/ directory, with its npm tooling installed
    /// (./scripts/fetch-test-data.sh): anvil for gas, @openzeppelin/merkle-tree for the baseline.
    #[arg(long, default_value = "contracts")]
    contracts: PathBuf,
    /// Skip the store's epoch close (it sets up one account and its earnings per payee first).
    #[arg(long)]
    no_store: bool,
}

fn random_payees(n: usize) -> Vec<(EvmAddress, u128)> {
    use rand::{Rng, SeedableRng};
    let mut random = rand::rngs::StdRng::seed_from_u64(7);
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut payees = Vec::with_capacity(n);
    while payees.len() < n {
        let address = EvmAddress(random.random());
        if seen.insert(address) {
            payees.push((address, random.random_range(1..1_000_000_000_000u128)));
        }
    }
    payees
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time_tree(payees: &[(EvmAddress, u128)], rounds: usize) -> anyhow::Result<(Duration, PayoutTree)> {
    let mut times = Vec::new();
    let mut tree = None;
    for _ in 0..rounds.max(1) {
        let values = payees.to_vec();
        let started = Instant::now();
        let built = PayoutTree::new(values)?;
        times.push(started.elapsed());
        tree = Some(built);
    }
    Ok((median(times), tree.context("at least one round")?))
}

/// OpenZeppelin's StandardMerkleTree.of on the same values, in Node; returns its wall time and root.
fn openzeppelin(contracts: &Path, payees: &[(EvmAddress, u128)]) -> anyhow::Result<(Duration, String)> {
    let values: Vec<serde_json::Value> =
        payees.iter().map(|(a, m)| serde_json::json!([a.to_string(), m.to_string()])).collect();
    let request = serde_json::json!({ "values": values }).to_string();
    let started = Instant::now();
    let mut child = std::process::Command::new("node")
        .arg(contracts.join("scripts/oz-tree.mjs"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting node (is Node.js installed?)")?;
    child.stdin.take().context("stdin")?.write_all(request.as_bytes())?;
    let output = child.wait_with_output()?;
    let elapsed = started.elapsed();
    anyhow::ensure!(output.status.success(), "oz-tree.mjs failed");
    let reply: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok((elapsed, reply["root"].as_str().unwrap_or_default().to_owned()))
}

struct Signer;

impl tributary_ledger::store::ReceiptSigner for Signer {
    fn sign(&self, hash: &[u8; 32]) -> [u8; 64] {
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(hash);
        signature
    }
}

fn expect_outcome(result: Result<Outcome, tributary_ledger::StoreError>) -> anyhow::Result<Outcome> {
    result.map_err(|error| anyhow::anyhow!("store refused: {error}"))
}

/// One account per payee with a payout address and earnings, then one epoch close, timed.
async fn store_close(payees: &[(EvmAddress, u128)]) -> anyhow::Result<(Duration, Duration, u64)> {
    let dir = tempfile::tempdir()?;
    let store =
        SqliteStore::open_with_signer(&dir.path().join("db"), Arc::new(SystemClock), Some(Arc::new(Signer)))?;
    let started = Instant::now();
    let create = |kind, name: String, address| Command::CreateAccount {
        kind,
        name: name.clone(),
        payout_address: address,
        api_key_hash: *blake3::hash(name.as_bytes()).as_bytes(),
    };
    let operator = match expect_outcome(
        store.execute(create(AccountKind::Operator, "operator".into(), None).into()).await,
    )? {
        Outcome::AccountCreated(id) => id,
        other => anyhow::bail!("unexpected {other:?}"),
    };
    let payer =
        match expect_outcome(store.execute(create(AccountKind::User, "payer".into(), None).into()).await)? {
            Outcome::AccountCreated(id) => id,
            other => anyhow::bail!("unexpected {other:?}"),
        };
    store.execute(Command::Deposit { account: payer, amount: Amount(u128::MAX / 2) }.into()).await?;
    let mut accounts: Vec<AccountId> = Vec::with_capacity(payees.len());
    for (chunk_index, chunk) in payees.chunks(BATCH_COMMANDS_MAX).enumerate() {
        let requests: Vec<Request> = chunk
            .iter()
            .enumerate()
            .map(|(i, (address, _))| {
                create(
                    AccountKind::User,
                    format!("payee {}", chunk_index * BATCH_COMMANDS_MAX + i),
                    Some(*address),
                )
                .into()
            })
            .collect();
        for result in store.execute_batch(requests).await? {
            match expect_outcome(result)? {
                Outcome::AccountCreated(id) => accounts.push(id),
                other => anyhow::bail!("unexpected {other:?}"),
            }
        }
    }
    // Earnings: one settled inference per 1,000 payees.
    let clearing = store.system_accounts().clearing;
    for (chunk, amounts) in accounts.chunks(1000).zip(payees.chunks(1000)) {
        let fee: u128 = amounts.iter().map(|(_, amount)| amount).sum();
        let hold = match expect_outcome(
            store
                .execute(
                    Command::Hold { from: payer, to: clearing, amount: Amount(fee), timeout_ms: 600_000 }
                        .into(),
                )
                .await,
        )? {
            Outcome::Transfer(transfer) => transfer.id,
            other => anyhow::bail!("unexpected {other:?}"),
        };
        let payments = chunk
            .iter()
            .zip(amounts)
            .map(|(account, (_, amount))| Payment {
                account: *account,
                role: "data".into(),
                amount: Amount(*amount),
            })
            .collect();
        let receipt = NewReceipt { caller: payer, model: ModelId(1), body: "{}".into() };
        expect_outcome(
            store
                .execute(Command::SettleInference { hold, fee: Amount(fee), payments, receipt }.into())
                .await,
        )?;
    }
    let setup = started.elapsed();
    let started = Instant::now();
    let record = match expect_outcome(store.execute(Command::CloseEpoch { caller: operator }.into()).await)? {
        Outcome::EpochClosed(record) => record,
        other => anyhow::bail!("unexpected {other:?}"),
    };
    let close = started.elapsed();
    anyhow::ensure!(record.payees == payees.len() as u64, "every payee is in the tree");
    store.shutdown().await;
    Ok((setup, close, record.accounts_settled))
}

struct Gas {
    set_root_first: u64,
    set_root_later: u64,
    claim_first: u64,
    claim_later: u64,
    transfer_new_holder: u64,
    transfer_existing_holder: u64,
    proof_len: usize,
}

/// anvil's own executable under contracts/node_modules (the .bin entry is a Node wrapper).
fn anvil_binary(contracts: &Path) -> anyhow::Result<PathBuf> {
    let packages = contracts.join("node_modules/@foundry-rs");
    std::fs::read_dir(&packages)
        .with_context(|| format!("{} (run ./scripts/fetch-test-data.sh)", packages.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin/anvil"))
        .find(|path| path.is_file())
        .context("no anvil binary under contracts/node_modules/@foundry-rs")
}

async fn gas(contracts: &Path, tree: &PayoutTree) -> anyhow::Result<Gas> {
    use std::io::BufRead;
    let mut anvil = std::process::Command::new(anvil_binary(contracts)?)
        .args(["--host", "127.0.0.1", "--port", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let stdout = anvil.stdout.take().context("stdout")?;
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(address) = line.trim().strip_prefix("Listening on ") {
                let _ = sender.send(address.to_owned());
            }
        }
    });
    let result = async {
        let address = receiver.recv_timeout(Duration::from_secs(30)).context("anvil did not start")?;
        // anvil's first development key (a public test key).
        let wallet = Wallet::new(
            &format!("http://{address}"),
            "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        )?;
        let token = wallet.deploy_test_token().await?;
        let contract = wallet.deploy_distributor(&token, &wallet.address()).await?;
        let distributor = wallet.distributor(&contract);
        let set_root_first = distributor.set_root(1, &tree.root()).await?.gas_used;
        let (payee, amount) = tree.values()[tree.values().len() / 2];
        wallet.mint_test_token(&token, &contract, amount * 2).await?;
        let claim = tree.claim(&payee).context("a payee")?;
        let proof_len = claim.proof.len();
        let claim_first = distributor.claim(&claim).await?.gas_used;
        // The next epoch: the same payee earned as much again.
        let mut values = tree.values().to_vec();
        values.iter_mut().filter(|(a, _)| *a == payee).for_each(|(_, m)| *m += amount);
        let next = PayoutTree::new(values)?;
        let set_root_later = distributor.set_root(2, &next.root()).await?.gas_used;
        let claim_later = distributor.claim(&next.claim(&payee).context("a payee")?).await?.gas_used;
        wallet.mint_test_token(&token, &wallet.address(), 1_000_000).await?;
        let fresh = EvmAddress([0x5a; 20]);
        let transfer_new_holder = wallet.token_transfer(&token, &fresh, 1).await?.gas_used;
        let transfer_existing_holder = wallet.token_transfer(&token, &fresh, 1).await?.gas_used;
        Ok::<_, anyhow::Error>(Gas {
            set_root_first,
            set_root_later,
            claim_first,
            claim_later,
            transfer_new_holder,
            transfer_existing_holder,
            proof_len,
        })
    }
    .await;
    let _ = anvil.kill();
    let _ = anvil.wait();
    result
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmHWM:")?.trim().strip_suffix(" kB")?.trim().parse::<f64>().ok()
            })
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

pub async fn settlement(args: SettlementBenchArgs) -> anyhow::Result<()> {
    println!(
        "settlement benchmark: {} payees, {} for the OpenZeppelin baseline",
        args.payees, args.baseline_payees
    );
    let payees = random_payees(args.payees.max(args.baseline_payees));
    let (ours_small, small_tree) = time_tree(&payees[..args.baseline_payees], args.rounds)?;
    let (ours, tree) = time_tree(&payees[..args.payees], args.rounds)?;
    println!(
        "tree of {} payees: {:.3} s (median of {}), {:.0} payees/s",
        args.payees,
        ours.as_secs_f64(),
        args.rounds,
        args.payees as f64 / ours.as_secs_f64()
    );
    println!("tree of {} payees: {:.3} s", args.baseline_payees, ours_small.as_secs_f64());
    match openzeppelin(&args.contracts, &payees[..args.baseline_payees]) {
        Ok((theirs, root)) => {
            anyhow::ensure!(
                root == hex32(&small_tree.root()),
                "OpenZeppelin's root {root} differs from ours"
            );
            println!(
                "baseline: OpenZeppelin StandardMerkleTree.of (Node.js), {} payees: {:.2} s (process wall time) — ours {:.0}x faster, same root",
                args.baseline_payees,
                theirs.as_secs_f64(),
                theirs.as_secs_f64() / ours_small.as_secs_f64()
            );
        }
        Err(error) => println!("baseline skipped: {error:#}"),
    }
    if !args.no_store {
        let (setup, close, settled) = store_close(&payees[..args.payees]).await?;
        println!(
            "epoch close through the embedded store, {} payees ({} paid out this epoch, one ledger transfer each): {:.2} s (set-up of accounts and earnings {:.1} s)",
            args.payees,
            settled,
            close.as_secs_f64(),
            setup.as_secs_f64()
        );
    }
    match gas(&args.contracts, &tree).await {
        Ok(gas) => {
            println!("gas on anvil (whole transactions, 21,000 base included):");
            println!("  setRoot, first epoch        {:>8}", gas.set_root_first);
            println!("  setRoot, later epoch        {:>8}", gas.set_root_later);
            println!("  claim, first (proof of {:>2})  {:>8}", gas.proof_len, gas.claim_first);
            println!("  claim, later (proof of {:>2})  {:>8}", gas.proof_len, gas.claim_later);
            println!("  ERC-20 transfer, new holder {:>8}", gas.transfer_new_holder);
            println!("  ERC-20 transfer, existing   {:>8}", gas.transfer_existing_holder);
            // 10^6 inferences with 10 payees each, over 30 daily epochs.
            let per_inference = 10_000_000u128 * u128::from(gas.transfer_existing_holder);
            println!("cost of settling 10^6 inferences with 10 payees each (gas):");
            println!(
                "  one by one on chain: 10^7 transfers x {} = {:.3e}",
                gas.transfer_existing_holder, per_inference as f64
            );
            for distinct in [1_000u128, 100_000, 1_000_000] {
                let epochs = 30 * u128::from(gas.set_root_later) + distinct * u128::from(gas.claim_first);
                println!(
                    "  by 30 daily epochs, {distinct:>9} distinct payees each claiming once: {:.3e} ({:.0}x less)",
                    epochs as f64,
                    per_inference as f64 / epochs as f64
                );
            }
        }
        Err(error) => println!("gas skipped: {error:#}"),
    }
    println!("peak memory: {:.0} MiB", peak_rss_mib());
    Ok(())
}
