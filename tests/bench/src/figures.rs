//! One line per figure, with its ratio and goal, printed and written to `target/bench/`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde_json::json;

/// What a ratio must be to pass.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    AtMost(f64),
    AtLeast(f64),
    /// Within `±tolerance` of 1 (e.g. an estimate over the measured time).
    Near(f64),
    /// Reported without a goal.
    Info,
}

impl Goal {
    fn met(self, ratio: f64) -> Option<bool> {
        match self {
            Goal::AtMost(limit) => Some(ratio <= limit),
            Goal::AtLeast(limit) => Some(ratio >= limit),
            Goal::Near(tolerance) => Some((ratio - 1.0).abs() <= tolerance),
            Goal::Info => None,
        }
    }

    fn describe(self) -> String {
        match self {
            Goal::AtMost(limit) => format!("goal <= {limit}"),
            Goal::AtLeast(limit) => format!("goal >= {limit}"),
            Goal::Near(tolerance) => format!("goal {:.2}..{:.2}", 1.0 - tolerance, 1.0 + tolerance),
            Goal::Info => "no goal".to_string(),
        }
    }
}

/// One measured figure: a ratio (or a plain value when `ratio` is `None`) and what it is made of.
#[derive(Debug, Clone)]
pub struct Figure {
    pub name: String,
    /// `None`: not measured (the reason is in `detail`); never a pass.
    pub ratio: Option<f64>,
    pub goal: Goal,
    /// The numbers behind the ratio, for the reader.
    pub detail: String,
}

impl Figure {
    pub fn new(name: impl Into<String>, ratio: f64, goal: Goal, detail: impl Into<String>) -> Self {
        Figure {
            name: name.into(),
            ratio: Some(ratio),
            goal,
            detail: detail.into(),
        }
    }

    /// A figure that could not be measured in this tree (e.g. a feature not there yet). It does
    /// not fail the bench: `detail` says why.
    pub fn unavailable(name: impl Into<String>, goal: Goal, detail: impl Into<String>) -> Self {
        Figure {
            name: name.into(),
            ratio: None,
            goal,
            detail: detail.into(),
        }
    }

    /// `Some(false)` only for a measured ratio that misses its goal.
    pub fn verdict(&self) -> Option<bool> {
        self.ratio.and_then(|r| self.goal.met(r))
    }

    pub fn line(&self) -> String {
        let mark = match (self.ratio, self.verdict()) {
            (None, _) => "n/a ",
            (_, Some(true)) => "PASS",
            (_, Some(false)) => "FAIL",
            (_, None) => "info",
        };
        // Small plain values (dollars per run) keep their significant digits.
        let ratio = self.ratio.map_or("not available".to_string(), |r| {
            if matches!(self.goal, Goal::Info) && r != 0.0 && r.abs() < 0.1 {
                format!("{r:.6}")
            } else {
                format!("{r:.3}")
            }
        });
        format!(
            "{mark} {}: {ratio} ({}); {}",
            self.name,
            self.goal.describe(),
            self.detail
        )
    }
}

#[derive(Debug, Default)]
pub struct Figures {
    pub list: Vec<Figure>,
}

impl Figures {
    /// Adds a figure and prints its line at once, so a long run shows progress.
    pub fn push(&mut self, figure: Figure) {
        println!("{}", figure.line());
        self.list.push(figure);
    }

    pub fn failed(&self) -> usize {
        self.list
            .iter()
            .filter(|f| f.verdict() == Some(false))
            .count()
    }

    /// `figures.txt` (the lines as printed, then `header`'s context) and `figures.json`.
    pub fn write(&self, dir: &Path, header: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut text = String::new();
        let _ = writeln!(text, "{header}");
        for f in &self.list {
            let _ = writeln!(text, "{}", f.line());
        }
        let txt = dir.join("figures.txt");
        std::fs::write(&txt, text).with_context(|| format!("writing {}", txt.display()))?;
        let json: Vec<_> = self
            .list
            .iter()
            .map(|f| {
                json!({
                    "name": f.name,
                    "ratio": f.ratio,
                    "goal": f.goal.describe(),
                    "pass": f.verdict(),
                    "detail": f.detail,
                })
            })
            .collect();
        let out = dir.join("figures.json");
        std::fs::write(
            &out,
            serde_json::to_string_pretty(&json!({"header": header, "figures": json}))? + "\n",
        )
        .with_context(|| format!("writing {}", out.display()))
    }
}
