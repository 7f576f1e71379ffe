//! The settlement contracts, checked from the Rust test suite: the committed artifacts equal a fresh
//! solc-js compile, the forge tests pass on forge's real EVM, and OpenZeppelin's own merkle-tree
//! package gives the known root of DESIGN.md. The npm tooling comes from `./scripts/fetch-test-data.sh`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The known vector of DESIGN.md ("Settlement").
const KNOWN_VALUES: &str = r#"[
    ["0x1111111111111111111111111111111111111111", "5000000000000000000"],
    ["0x2222222222222222222222222222222222222222", "2500000000000000000"],
    ["0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "42"]
]"#;
const KNOWN_ROOT: &str = "0x6a6ae7c251e3a925f68d2129d38ca330926fa0f42f4b47f93bbdf1a1824d5464";

/// `contracts/` at the repository root, with its npm tooling installed.
fn contracts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts");
    let dir = dir.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    assert!(
        dir.join("node_modules/.package-lock.json").is_file(),
        "the contracts' npm tooling is not installed in {}: run ./scripts/fetch-test-data.sh \
         (it runs `npm ci --prefix contracts`)",
        dir.join("node_modules").display()
    );
    dir
}

/// Runs `command` to its end, feeding it `stdin`, and returns its output.
fn run(command: &mut Command, stdin: Option<&str>) -> Output {
    let described = format!("{command:?}");
    let mut child = command
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {described}: {e} (is node installed?)"));
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(text.as_bytes()).expect("write the command's stdin");
    }
    child.wait_with_output().unwrap_or_else(|e| panic!("waiting for {described}: {e}"))
}

/// Panics with everything the command printed unless it succeeded; returns its stdout.
fn expect_success(what: &str, output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    stdout
}

fn oz_tree(request: &str) -> serde_json::Value {
    let dir = contracts_dir();
    let output = run(Command::new("node").arg("scripts/oz-tree.mjs").current_dir(&dir), Some(request));
    let stdout = expect_success("node scripts/oz-tree.mjs", &output);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("oz-tree printed no JSON ({e}): {stdout}"))
}

#[test]
fn committed_artifacts_equal_a_fresh_solc_js_compile() {
    let dir = contracts_dir();
    let output = run(Command::new("node").args(["scripts/compile.mjs", "--check"]).current_dir(&dir), None);
    let stdout = expect_success("node scripts/compile.mjs --check", &output);
    assert!(stdout.contains("artifacts match"), "unexpected output: {stdout}");
}

#[test]
fn forge_tests_pass() {
    let dir = contracts_dir();
    let output = run(
        Command::new(dir.join("node_modules/.bin/forge"))
            .args(["test", "--color", "never"])
            .env("NO_COLOR", "1")
            .current_dir(&dir),
        None,
    );
    let stdout = expect_success("forge test (in contracts/)", &output);
    assert!(stdout.contains(", 0 failed"), "forge reported failures:\n{stdout}");
    assert!(!stdout.contains(" 0 tests passed"), "forge ran no test:\n{stdout}");
}

#[test]
fn openzeppelin_merkle_tree_gives_the_known_root() {
    let reply = oz_tree(&format!(r#"{{"values": {KNOWN_VALUES}, "want_proofs": true}}"#));
    assert_eq!(reply["root"].as_str(), Some(KNOWN_ROOT), "reply: {reply}");
    assert!(reply["dump_root"].is_null(), "reply: {reply}");

    // OpenZeppelin's proofs verify against the root, and stop verifying once the amount changes.
    let proofs = reply["proofs"].as_array().expect("proofs is an array");
    assert_eq!(proofs.len(), 3, "one proof per value: {reply}");
    let values: serde_json::Value = serde_json::from_str(KNOWN_VALUES).expect("the known values are JSON");
    let checks = serde_json::json!([
        {"value": values[2], "proof": proofs[2]},
        {"value": values[0], "proof": proofs[0]},
        {"value": ["0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "43"], "proof": proofs[2]},
        {"value": values[2], "proof": proofs[0]},
    ]);
    let reply = oz_tree(&format!(r#"{{"values": {KNOWN_VALUES}, "check": {checks}}}"#));
    assert_eq!(reply["valid"], serde_json::json!([true, true, false, false]), "reply: {reply}");
}

/// A deterministic stream of pseudo-random words (xorshift64*), so failures reproduce.
fn words(mut state: u64) -> impl Iterator<Item = u64> {
    std::iter::repeat_with(move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// Our tree of `n` random payees, checked by OpenZeppelin's library: the same root from the same
/// values, our standard-v1 dump loads and validates, and a sample of our proofs verify.
fn cross_check(n: usize, seed: u64) {
    use tributary_core::EvmAddress;
    use tributary_settlement::{PayoutTree, hex32};
    let mut random = words(seed);
    let mut values = std::collections::BTreeMap::new();
    while values.len() < n {
        let mut address = [0u8; 20];
        for chunk in address.chunks_mut(8) {
            let word = random.next().expect("endless").to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        let amount = u128::from(random.next().expect("endless")) << (random.next().expect("endless") % 64);
        values.insert(EvmAddress(address), amount);
    }
    let tree = PayoutTree::new(values.into_iter().collect()).expect("distinct payees");
    let step = (n / 25).max(1);
    let checks: Vec<serde_json::Value> = tree
        .values()
        .iter()
        .step_by(step)
        .map(|(address, amount)| {
            let claim = tree.claim(address).expect("a payee");
            let proof: Vec<String> = claim.proof.iter().map(hex32).collect();
            serde_json::json!({"value": [address.to_string(), amount.to_string()], "proof": proof})
        })
        .collect();
    let dump = tree.dump();
    let request = serde_json::json!({"values": dump["values"].as_array().expect("values").iter().map(|v| &v["value"]).collect::<Vec<_>>(), "dump": dump, "check": checks});
    let reply = oz_tree(&request.to_string());
    let root = hex32(&tree.root());
    assert_eq!(reply["root"].as_str(), Some(root.as_str()), "{n} leaves: OpenZeppelin's root differs");
    assert_eq!(
        reply["dump_root"].as_str(),
        Some(root.as_str()),
        "{n} leaves: our dump loads to another root"
    );
    let valid = reply["valid"].as_array().expect("valid");
    assert_eq!(valid.len(), checks.len());
    assert!(valid.iter().all(|v| v == true), "{n} leaves: OpenZeppelin rejects some of our proofs: {reply}");
}

#[test]
fn openzeppelin_accepts_our_small_trees() {
    for (n, seed) in [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (7, 6), (8, 7), (33, 8), (1000, 9)] {
        cross_check(n, seed);
    }
}

#[test]
fn openzeppelin_accepts_our_tree_of_100_000_payees() {
    cross_check(100_000, 42);
}
