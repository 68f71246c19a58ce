//! Logging set-up shared by every binary, following Lambda's advanced logging controls as
//! `lambda_runtime::tracing::init_default_subscriber` does: JSON lines when the function's log
//! format is JSON (`AWS_LAMBDA_LOG_FORMAT=JSON`), each with the current span (`run_id`, `batch`,
//! `symbol`, …); readable text otherwise. The level is `filter`'s.
//!
//! Not the runtime's function itself: it panics when a subscriber is already installed (a
//! second `init` in tests), colours text lines with ANSI escapes (CloudWatch shows them raw),
//! and reads Lambda's `FATAL` as `INFO`.

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::EnvFilter;

pub fn init() {
    let var = |key: &str| std::env::var(key).ok();
    let json = var("AWS_LAMBDA_LOG_FORMAT").is_some_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(
            var("AWS_LAMBDA_LOG_LEVEL").as_deref(),
            var("RUST_LOG").as_deref(),
        ))
        .with_target(false)
        // CloudWatch stamps every line itself.
        .without_time();
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = if json {
        builder.json().with_current_span(true).try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
}

/// What is logged, from `AWS_LAMBDA_LOG_LEVEL` (the function's log level, set by Lambda's
/// logging controls) and `RUST_LOG`, as the runtime reads them: `RUST_LOG`'s directives when it
/// has any (`warn`, `shared=debug,info`), so a developer's override still works; otherwise
/// everything at the Lambda level; otherwise at a bare level in `RUST_LOG`; otherwise `INFO`.
fn filter(aws_lambda_log_level: Option<&str>, rust_log: Option<&str>) -> EnvFilter {
    EnvFilter::builder()
        .with_default_directive(default_level(aws_lambda_log_level, rust_log).into())
        .parse_lossy(rust_log.unwrap_or_default())
}

/// The level where `RUST_LOG` gives no usable directive.
fn default_level<'a>(
    aws_lambda_log_level: Option<&'a str>,
    rust_log: Option<&'a str>,
) -> LevelFilter {
    // Blank means unset (`tracing` would read "" as ERROR).
    let set = |v: Option<&'a str>| v.map(str::trim).filter(|v| !v.is_empty());
    match set(aws_lambda_log_level).or(set(rust_log)) {
        // Lambda's most severe level; `tracing` has nothing above ERROR.
        Some(w) if w.eq_ignore_ascii_case("fatal") => LevelFilter::ERROR,
        Some(w) => w.parse().unwrap_or(LevelFilter::INFO),
        None => LevelFilter::INFO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chosen(aws_lambda_log_level: Option<&str>, rust_log: Option<&str>) -> String {
        filter(aws_lambda_log_level, rust_log).to_string()
    }

    #[test]
    fn info_when_neither_variable_is_set() {
        assert_eq!(chosen(None, None), "info");
        assert_eq!(chosen(None, Some("")), "info");
        assert_eq!(chosen(Some(" "), Some(" ")), "info");
    }

    #[test]
    fn the_lambda_log_level_applies_when_rust_log_is_unset() {
        assert_eq!(chosen(Some("DEBUG"), None), "debug");
        assert_eq!(chosen(Some("WARN"), Some("")), "warn");
        assert_eq!(chosen(Some(""), Some("debug")), "debug");
        assert_eq!(chosen(Some("TRACE"), None), "trace");
    }

    #[test]
    fn lambda_fatal_keeps_only_errors() {
        assert_eq!(chosen(Some("FATAL"), None), "error");
    }

    #[test]
    fn rust_log_directives_win_over_the_lambda_log_level() {
        assert_eq!(chosen(Some("DEBUG"), Some("warn")), "warn");
        assert_eq!(chosen(Some("ERROR"), Some("shared=debug")), "shared=debug");
        assert_eq!(chosen(None, Some("shared=debug,info")), "shared=debug,info");
    }

    #[test]
    fn unknown_words_fall_back_to_info() {
        assert_eq!(chosen(Some("LOUD"), None), "info");
        assert_eq!(chosen(None, Some("=")), "info");
    }
}
