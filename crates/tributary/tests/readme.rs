//! The README's quick start is what a new user runs, so it is tested: it has exactly the two
//! commands, CI runs its test command, and its main-job command (the demo) works end to end.

use std::process::Command;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README.md")
}

/// The commands in the fenced block under "## Quick start".
fn quick_start_commands() -> Vec<String> {
    let readme = readme();
    let section = readme.split("## Quick start").nth(1).expect("a Quick start section");
    let block = section.split("```sh").nth(1).and_then(|rest| rest.split("```").next()).expect("a sh block");
    block.lines().map(str::trim).filter(|line| !line.is_empty()).map(str::to_owned).collect()
}

#[test]
fn quick_start_is_two_commands_and_ci_runs_the_second() {
    let commands = quick_start_commands();
    assert_eq!(commands, ["cargo run --release -- demo", "./scripts/test.sh"]);
    let ci = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.ci/run")).expect(".ci/run");
    assert!(ci.lines().any(|line| line.trim() == commands[1]), ".ci/run calls the README's test command");
}

#[test]
fn the_demo_runs_and_balances() {
    let main_job = &quick_start_commands()[0];
    let arguments: Vec<&str> =
        main_job.split(" -- ").nth(1).expect("cargo run -- <args>").split_whitespace().collect();
    let output = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(&arguments)
        .env("TRIBUTARY_LOG", "warn")
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "demo failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("first xfr_2 / retry xfr_2"), "the retry is idempotent: {stdout}");
    assert!(stdout.contains("402 insufficient_funds"), "the overdraft is refused: {stdout}");
    assert!(stdout.contains("receipt signed by the node's key: valid"), "{stdout}");
    assert!(stdout.contains("inference clearing                0        0"), "clearing is empty: {stdout}");
    assert!(stdout.contains("balanced: true"), "{stdout}");
    assert!(stdout.contains("Demo finished"), "{stdout}");
}
