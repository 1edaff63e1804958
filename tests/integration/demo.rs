//! The demo the dev server prints on first start: its two curl commands, run by `sh` exactly as
//! printed, give an accepted webhook and then a succeeded execution with its steps.

use std::time::Duration;

use serde_json::Value;
use switchyard_local::demo;
use switchyard_tests::{Kind, platform, spawn_app, system_clock};

/// The `curl …` commands of the printed text, continuation lines joined.
fn commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim_end();
        match current.as_mut() {
            Some(cmd) => cmd.push_str(line.trim_end_matches('\\')),
            None if line.starts_with("curl ") => current = Some(line.trim_end_matches('\\').to_string()),
            None => continue,
        }
        if !line.ends_with('\\') {
            out.extend(current.take());
        }
    }
    out
}

async fn sh(command: &str) -> String {
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .output()
        .await
        .expect("sh runs");
    assert!(out.status.success(), "{command}\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn the_printed_demo_commands_run_a_flow_to_success() {
    let app = spawn_app(platform(Kind::Embedded, system_clock()).await).await;
    let state = tempfile::tempdir().unwrap();
    let demo = demo::ensure(&app.platform, &app.base, state.path()).await.expect("demo set up");
    let printed = demo::instructions(&demo, &app.base);
    let commands = commands(&printed);
    assert_eq!(commands.len(), 2, "{printed}");

    let answer = sh(&commands[0]).await;
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    assert!(answer.contains("\"status\":\"accepted\""), "{answer}");
    // The same delivery again: a duplicate, nothing runs.
    let again = sh(&commands[0]).await;
    assert!(again.starts_with("HTTP/1.1 200") && again.contains("duplicate"), "{again}");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let execution = loop {
        let listed: Value = serde_json::from_str(&sh(&commands[1]).await).expect("JSON");
        let first = listed["items"][0].clone();
        if first["status"] == "succeeded" {
            break first;
        }
        assert!(tokio::time::Instant::now() < deadline, "no succeeded execution: {listed}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let steps: Vec<&str> = execution["steps"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(steps, ["summary", "notify", "result"], "{execution}");
    assert!(execution["steps"].as_array().unwrap().iter().all(|s| s["status"] == "succeeded"), "{execution}");

    // A restart reuses the demo (and its key).
    let second = demo::ensure(&app.platform, &app.base, state.path()).await.unwrap();
    assert_eq!(second.api_key, demo.api_key);
}
