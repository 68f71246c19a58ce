//! The repository the stack runs from: its tools, its binaries, its state machine definition.

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

/// Builds the function binaries and market-sim (debug), once per process: `cargo lambda watch`
/// then starts the functions without compiling, and market-sim is run directly.
///
/// The functions are built in one command and market-sim in another so that each gets the
/// same feature set as `cargo lambda watch`'s own `cargo build --bin <function>`: a different set
/// would make watch rebuild them on the first invocation.
pub fn build_binaries() -> Result<()> {
    static BUILT: Mutex<bool> = Mutex::new(false);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if *built {
        return Ok(());
    }
    let mut functions = vec!["build".to_string(), "--quiet".to_string()];
    for f in FUNCTIONS {
        functions.extend(["-p".to_string(), f.to_string()]);
    }
    functions.push("--bins".to_string());
    cargo_build("the Lambda functions", &functions)?;
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
    *built = true;
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

/// The state machine definition exactly as `make lint` checks it (`scripts/render-asl`: the
/// deployment's ARN placeholders filled in), optionally with every Map made inline.
pub fn render_definition(out: &Path, mode: MapMode) -> Result<String> {
    let script = root().join("scripts").join("render-asl");
    let output = Command::new(&script)
        .arg(out)
        .current_dir(root())
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
        let text = render_definition(&out, MapMode::AsDeployed).unwrap();
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
        assert_eq!(definition["StartAt"], "SelectTickers");
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
