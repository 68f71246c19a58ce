//! The repository the stack runs from: its tools, its binaries, its state machine definition.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::error::{Error, Result};

/// The Lambda functions, as `cargo lambda watch` serves them (binary name = function name).
pub const FUNCTIONS: [&str; 3] = ["select-tickers", "fetch-batch", "finalize-run"];

/// The repository root (this crate lives in `<root>/tests/local-stack`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where cargo puts debug binaries (honours `CARGO_TARGET_DIR`).
pub fn target_debug_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir).join("debug"),
        None => root().join("target").join("debug"),
    }
}

/// A tool from the project's virtualenv (`scripts/ensure-tools venv` builds it).
pub fn venv_tool(name: &'static str) -> Result<PathBuf> {
    let path = root().join(".venv").join("bin").join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::MissingTool {
            what: name,
            path,
            hint: "run `scripts/ensure-tools venv` (or `make tools`) first",
        })
    }
}

/// The `cargo` that runs us, when cargo does; else the one on PATH.
pub fn cargo() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"))
}

/// Removes from `command`'s environment what cargo sets for the crate it runs (we may be a test
/// run by `cargo test`). A nested cargo must not inherit it: build scripts that watch
/// `CARGO_MANIFEST_DIR` (ring's does) would then see a change and rebuild, with everything that
/// depends on them, on every switch between a nested and a normal build.
pub fn without_cargo_crate_env(command: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let set_for_a_crate = key.starts_with("CARGO_PKG_")
            || matches!(
                key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_MANIFEST_LINKS"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
                    | "OUT_DIR"
            );
        if set_for_a_crate {
            command.env_remove(key);
        }
    }
    command
}

/// Builds `functions` (some of [`FUNCTIONS`]) and market-sim (debug), each once per process: the
/// stack then runs them without compiling.
///
/// The functions are built in one command and market-sim in another, so that each gets the
/// feature set it gets when built alone (`cargo build -p <function>`): a build of all of them at
/// once would unify features differently and rebuild them every time the two ways alternate.
pub fn build_binaries(functions: &[&str]) -> Result<()> {
    static BUILT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let missing: Vec<&str> = functions
        .iter()
        .copied()
        .filter(|f| !built.contains(*f))
        .collect();
    if !missing.is_empty() {
        let mut args = vec!["build".to_string(), "--quiet".to_string()];
        for f in &missing {
            args.extend(["-p".to_string(), f.to_string()]);
        }
        args.push("--bins".to_string());
        cargo_build("the Lambda functions", &args)?;
        built.extend(missing.iter().map(|f| f.to_string()));
    }
    if !built.contains("market-sim") {
        cargo_build(
            "market-sim",
            &[
                "build".into(),
                "--quiet".into(),
                "-p".into(),
                "market-sim".into(),
                "--bin".into(),
                "market-sim".into(),
            ],
        )?;
        built.insert("market-sim".to_string());
    }
    Ok(())
}

fn cargo_build(what: &str, args: &[String]) -> Result<()> {
    let cargo = cargo();
    let status = without_cargo_crate_env(&mut Command::new(&cargo))
        .args(args)
        .current_dir(root())
        .status()
        .map_err(|source| Error::Spawn {
            service: format!("{} {}", cargo.display(), args.join(" ")),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Build {
            what: what.to_string(),
            status: status.to_string(),
            command: format!("cargo {}", args.join(" ")),
        })
    }
}

/// Which way the Map states run their iterations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MapMode {
    /// The definition as deployed: Distributed Maps, one child execution per lane and per batch.
    #[default]
    AsDeployed,
    /// Every Map switched to INLINE, for measuring history sizes only: moto keeps no history for
    /// a Distributed Map's children, an inline iteration's events stay in the parent's history
    /// (see [`crate::ExecutionHistory::iterations`]).
    InlineForMeasuring,
}

/// What `scripts/render-asl` fills in besides the ARNs: the functions' timeouts (each Task's
/// `TimeoutSeconds` is the timeout plus 60 s) and the transient-error retry budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderSettings {
    pub timeouts: crate::FunctionTimeouts,
    pub retry_budget_seconds: u32,
}

impl Default for RenderSettings {
    /// The Terraform module's defaults: what `make lint` checks.
    fn default() -> Self {
        RenderSettings {
            timeouts: crate::FunctionTimeouts::default(),
            retry_budget_seconds: 1800,
        }
    }
}

/// The state machine definition exactly as deployment renders it (`scripts/render-asl`: the
/// ARN placeholders filled in, the timeouts and the retry budget from `settings`), optionally with
/// every Map made inline.
pub fn render_definition(out: &Path, mode: MapMode, settings: &RenderSettings) -> Result<String> {
    let script = root().join("scripts").join("render-asl");
    let seconds = |d: std::time::Duration| d.as_secs().max(1).to_string();
    let output = Command::new(&script)
        .arg(out)
        .current_dir(root())
        .env_remove("ASL_REGION")
        .env_remove("ASL_ACCOUNT_ID")
        .env(
            "ASL_SELECT_TICKERS_TIMEOUT_SECONDS",
            seconds(settings.timeouts.select_tickers),
        )
        .env(
            "ASL_FETCH_BATCH_TIMEOUT_SECONDS",
            seconds(settings.timeouts.fetch_batch),
        )
        .env(
            "ASL_FINALIZE_RUN_TIMEOUT_SECONDS",
            seconds(settings.timeouts.finalize_run),
        )
        .env(
            "ASL_RETRY_BUDGET_SECONDS",
            settings.retry_budget_seconds.to_string(),
        )
        .output()
        .map_err(|source| Error::Spawn {
            service: script.display().to_string(),
            source,
        })?;
    if !output.status.success() {
        return Err(Error::Definition(format!(
            "{} failed ({}): {}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let text = std::fs::read_to_string(out).map_err(Error::io(out))?;
    match mode {
        MapMode::AsDeployed => Ok(text),
        MapMode::InlineForMeasuring => {
            let mut definition: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Error::Definition(format!("{} is not JSON: {e}", out.display())))?;
            make_maps_inline(&mut definition);
            Ok(definition.to_string())
        }
    }
}

fn make_maps_inline(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(config) = map.get_mut("ProcessorConfig") {
                *config = serde_json::json!({ "Mode": "INLINE" });
            }
            map.values_mut().for_each(make_maps_inline);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(make_maps_inline),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rendered_definition_names_real_functions_and_is_json() {
        let out = std::env::temp_dir().join(format!("render-asl-{}.json", std::process::id()));
        let text =
            render_definition(&out, MapMode::AsDeployed, &RenderSettings::default()).unwrap();
        let _ = std::fs::remove_file(&out);
        let definition: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(!text.contains("${"), "placeholders left: {text}");
        for f in FUNCTIONS {
            assert!(
                text.contains(&format!(
                    "\"arn:aws:lambda:us-east-1:123456789012:function:{f}\""
                )),
                "no ARN for {f}"
            );
        }
        assert_eq!(definition["StartAt"], "PrepareSelection");
        let fetch = &definition["States"]["FetchBatches"]["ItemProcessor"]["States"]["FetchLane"]
            ["ItemProcessor"]["States"]["FetchBatch"];
        assert_eq!(fetch["TimeoutSeconds"], 960, "{fetch}");
        assert_eq!(fetch["Retry"][1]["MaxAttempts"], 64, "{fetch}");
    }

    #[test]
    fn measuring_mode_makes_every_map_inline() {
        let mut definition = serde_json::json!({
            "States": {"M": {"Type": "Map", "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "States": {"N": {"Type": "Map", "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}}}}}}}
        });
        make_maps_inline(&mut definition);
        let text = definition.to_string();
        assert!(!text.contains("DISTRIBUTED"), "{text}");
        assert_eq!(text.matches("INLINE").count(), 2);
    }
}
