//! Logging set-up shared by every binary. JSON lines on Lambda when the function's log format is
//! JSON (`AWS_LAMBDA_LOG_FORMAT=JSON`), readable text otherwise. `RUST_LOG` filters as usual.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
