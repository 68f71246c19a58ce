//! Flags → execution input, validated locally with the very rules select-tickers applies
//! (`shared::request`: `ValidRun::parse`, the provider's range rules included, and the batch cap),
//! so that bad input fails before any AWS call.

use chrono::{DateTime, NaiveDate, Utc};
use shared::config::RunDefaults;
use shared::contract::SelectTickersInput;
use shared::model::{Interval, ProviderKind, Reprocess, RunId, Selection, StrategyRequest, Symbol};
pub use shared::request::ValidRun;
use shared::request::{check_batch_cap, ExecutionParams};

use super::{ExecutionArgs, SelectionArgs};
use crate::error::CliError;
use crate::executions::MAX_EXECUTION_NAME;

/// The functions' run defaults as this process sees them (start date, provider, pacing, budget):
/// the same variables, read by the same code, and nothing else, so a missing DATABASE_URL or a
/// provider URL cannot fail a local validation.
pub fn defaults_from_env() -> Result<RunDefaults, CliError> {
    defaults_from(|k| std::env::var(k).ok())
}

pub fn defaults_from(get: impl Fn(&str) -> Option<String>) -> Result<RunDefaults, CliError> {
    RunDefaults::from_lookup(get).map_err(|e| CliError::Configuration(e.to_string()))
}

/// Whether this process knows which provider the functions would use for `input`: the request
/// names one, or `PRICE_PROVIDER` is set here. Otherwise the provider is the one `RunDefaults`
/// reads (Yahoo when `PRICE_PROVIDER` is unset, as in the functions), its rules are applied all
/// the same, and a refusal says which provider was assumed.
pub fn provider_is_known(input: &SelectTickersInput) -> bool {
    input.provider.is_some() || std::env::var("PRICE_PROVIDER").is_ok_and(|v| !v.trim().is_empty())
}

fn parse_knobs(input: &mut SelectTickersInput, exec: &ExecutionArgs) {
    input.max_concurrency = exec.max_concurrency;
    input.max_rate_limit_rounds = exec.max_rate_limit_rounds;
}

/// The execution input of a new run named `run_id`; absent flags stay absent (the functions
/// apply their defaults).
pub fn new_run_input(
    sel: &SelectionArgs,
    exec: &ExecutionArgs,
    run_id: RunId,
) -> Result<SelectTickersInput, CliError> {
    let symbols = sel
        .symbols
        .as_ref()
        .map(|list| {
            list.iter()
                .map(|s| Symbol::parse(s))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let interval = sel
        .interval
        .as_deref()
        .map(str::parse::<Interval>)
        .transpose()?;
    let provider = sel
        .provider
        .as_deref()
        .map(str::parse::<ProviderKind>)
        .transpose()?;
    let strategy = sel
        .strategy
        .as_deref()
        .map(str::parse::<StrategyRequest>)
        .transpose()?;
    let mut input = SelectTickersInput {
        new_run_id: Some(run_id),
        symbols,
        top_n: sel.top_n,
        min_articles: sel.min_articles,
        mentions_within_days: sel.mentions_within_days,
        start_date: sel.start_date.clone(),
        end_date: sel.end_date.clone(),
        lookback_days: sel.lookback_days,
        interval,
        batch_size: sel.batch_size,
        provider,
        register_tickers: sel.register_tickers.then_some(true),
        strategy,
        ..SelectTickersInput::default()
    };
    parse_knobs(&mut input, exec);
    Ok(input)
}

/// select-tickers' checks that need no database, every one of them: the request with the range
/// rules of its provider (the functions' default provider when the request names none: see
/// [`provider_is_known`]), the state machine's knobs and, for an explicit list, the strategy
/// and the batch cap.
pub fn validate_new_run(
    input: &SelectTickersInput,
    defaults: &RunDefaults,
    provider_known: bool,
    today: NaiveDate,
) -> Result<ValidRun, CliError> {
    let valid = ValidRun::parse(input, defaults, today)
        .map_err(|e| with_assumed_provider(e, input, defaults, provider_known, today))?;
    if let Selection::Explicit { symbols } = &valid.request.selection {
        let decision = valid.request.choose_strategy(symbols.len())?;
        check_batch_cap(&decision, valid.request.batch_size)?;
    }
    Ok(valid)
}

/// A refusal by the default provider's rules, when neither the flags nor this environment named
/// the provider, says which provider was assumed and how to name another. (A refusal another
/// provider would not make is one of the assumed provider's own.)
fn with_assumed_provider(
    e: shared::BackfillError,
    input: &SelectTickersInput,
    defaults: &RunDefaults,
    provider_known: bool,
    today: NaiveDate,
) -> CliError {
    let alternative = match defaults.provider {
        ProviderKind::Yahoo => ProviderKind::Polygon,
        ProviderKind::Polygon => ProviderKind::Yahoo,
    };
    let with_other = SelectTickersInput {
        provider: Some(alternative),
        ..input.clone()
    };
    match CliError::from(e) {
        CliError::InvalidInput(message)
            if !provider_known && ValidRun::parse(&with_other, defaults, today).is_ok() =>
        {
            CliError::InvalidInput(format!(
                "{message} (provider {} assumed: neither --provider nor PRICE_PROVIDER is set \
                 here; if the functions run with PRICE_PROVIDER={alternative}, pass --provider {alternative})",
                defaults.provider
            ))
        }
        other => other,
    }
}

/// The execution input of a resume, validated.
pub fn resume_input(
    run_id: RunId,
    reprocess: Option<&str>,
    register_tickers: bool,
    exec: &ExecutionArgs,
) -> Result<SelectTickersInput, CliError> {
    Ok(SelectTickersInput {
        run_id: Some(run_id),
        ..resume_options(reprocess, register_tickers, exec)?
    })
}

/// The validated flags of a resume, before the run id is known (it may still have to be looked
/// up from an execution name).
pub fn resume_options(
    reprocess: Option<&str>,
    register_tickers: bool,
    exec: &ExecutionArgs,
) -> Result<SelectTickersInput, CliError> {
    let reprocess = reprocess.map(str::parse::<Reprocess>).transpose()?;
    let mut input = SelectTickersInput {
        reprocess,
        register_tickers: register_tickers.then_some(true),
        ..SelectTickersInput::default()
    };
    parse_knobs(&mut input, exec);
    ExecutionParams::parse(&input)?;
    Ok(input)
}

/// `<run_id>-resume-<UTC yyyymmddHHMMSS>`: unique per second, within Step Functions' 80 characters.
pub fn execution_name_for_resume(run_id: &RunId, now: DateTime<Utc>) -> String {
    let name = format!("{run_id}-resume-{}", now.format("%Y%m%d%H%M%S"));
    debug_assert!(name.len() <= MAX_EXECUTION_NAME);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 12).unwrap()
    }

    fn defaults() -> RunDefaults {
        defaults_from(|_| None).unwrap()
    }

    fn run_id() -> RunId {
        RunId::parse("backfill-20260312-101500-0a1b2c3d").unwrap()
    }

    fn input(sel: SelectionArgs) -> Result<SelectTickersInput, CliError> {
        new_run_input(&sel, &ExecutionArgs::default(), run_id())
    }

    #[test]
    fn absent_flags_stay_absent_in_the_input() {
        let i = input(SelectionArgs::default()).unwrap();
        let json = serde_json::to_value(&i).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"new_run_id": "backfill-20260312-101500-0a1b2c3d"})
        );
    }

    #[test]
    fn the_strategy_flag_reaches_the_input_and_grouped_is_refused_where_it_cannot_work() {
        let sel = |provider: &str, interval: &str, strategy: &str| SelectionArgs {
            symbols: Some(vec!["AAPL".into()]),
            start_date: Some("2026-03-02".into()),
            end_date: Some("2026-03-06".into()),
            provider: Some(provider.into()),
            interval: Some(interval.into()),
            strategy: Some(strategy.into()),
            ..Default::default()
        };
        let i = input(sel("polygon", "1d", "grouped")).unwrap();
        assert_eq!(i.strategy, Some(StrategyRequest::Grouped));
        assert!(validate_new_run(&i, &defaults(), true, today()).is_ok());
        for (provider, interval) in [("yahoo", "1d"), ("polygon", "1h")] {
            let i = input(sel(provider, interval, "grouped")).unwrap();
            let e = validate_new_run(&i, &defaults(), true, today()).unwrap_err();
            assert!(matches!(e, CliError::InvalidInput(_)), "{e:?}");
        }
        assert!(input(sel("polygon", "1d", "sometimes")).is_err());
    }

    #[test]
    fn symbols_are_parsed_and_upper_cased() {
        let i = input(SelectionArgs {
            symbols: Some(vec!["aapl".into(), " brk.b".into()]),
            ..Default::default()
        })
        .unwrap();
        let names: Vec<String> = i.symbols.unwrap().iter().map(|s| s.to_string()).collect();
        assert_eq!(names, ["AAPL", "BRK.B"]);
    }

    #[test]
    fn malformed_values_are_invalid_input() {
        for sel in [
            SelectionArgs {
                symbols: Some(vec!["A/B".into()]),
                ..Default::default()
            },
            SelectionArgs {
                interval: Some("2h".into()),
                ..Default::default()
            },
            SelectionArgs {
                provider: Some("alpaca".into()),
                ..Default::default()
            },
        ] {
            assert!(matches!(input(sel), Err(CliError::InvalidInput(_))));
        }
    }

    #[test]
    fn validation_uses_select_tickers_rules() {
        let bad = [
            SelectionArgs {
                start_date: Some("2026-03-10".into()),
                end_date: Some("2026-03-09".into()),
                ..Default::default()
            },
            SelectionArgs {
                end_date: Some("2026-03-13".into()),
                ..Default::default()
            },
            SelectionArgs {
                start_date: Some("2026-02-30".into()),
                ..Default::default()
            },
            SelectionArgs {
                batch_size: Some(0),
                ..Default::default()
            },
            SelectionArgs {
                symbols: Some(vec!["AAPL".into()]),
                top_n: Some(3),
                ..Default::default()
            },
        ];
        for sel in bad {
            let i = input(sel.clone()).unwrap();
            let err = validate_new_run(&i, &defaults(), true, today()).unwrap_err();
            assert!(matches!(err, CliError::InvalidInput(_)), "{sel:?}: {err}");
        }
    }

    #[test]
    fn the_default_providers_range_rules_apply_and_the_refusal_names_it() {
        let i = input(SelectionArgs {
            start_date: Some("2020-01-01".into()),
            end_date: Some("2026-03-01".into()),
            ..Default::default()
        })
        .unwrap();
        let known = validate_new_run(&i, &defaults(), true, today()).unwrap_err();
        assert!(known.to_string().contains("730 days"), "{known}");
        assert!(!known.to_string().contains("assumed"), "{known}");
        // Unknown here: the functions' default (Yahoo when PRICE_PROVIDER is unset) applies.
        let assumed = validate_new_run(&i, &defaults(), false, today()).unwrap_err();
        assert!(matches!(assumed, CliError::InvalidInput(_)), "{assumed}");
        assert!(
            assumed.to_string().contains("730 days")
                && assumed
                    .to_string()
                    .contains("provider yahoo assumed: neither --provider nor PRICE_PROVIDER")
                && assumed.to_string().contains("--provider polygon"),
            "{assumed}"
        );
        // PRICE_PROVIDER=polygon, read as the functions read it: Polygon's rules, not Yahoo's.
        let polygon = defaults_from(|k| (k == "PRICE_PROVIDER").then(|| "polygon".into())).unwrap();
        let v = validate_new_run(&i, &polygon, true, today()).unwrap();
        assert_eq!(v.request.provider, ProviderKind::Polygon);
    }

    #[test]
    fn ranges_before_1970_or_a_providers_first_data_are_refused_by_name() {
        let refused = |start: &str, interval: &str, provider: Option<&str>| {
            let i = input(SelectionArgs {
                start_date: Some(start.into()),
                end_date: Some("2026-03-01".into()),
                interval: Some(interval.into()),
                provider: provider.map(String::from),
                ..Default::default()
            })
            .unwrap();
            validate_new_run(&i, &defaults(), provider.is_some(), today())
                .unwrap_err()
                .to_string()
        };
        for (start, interval, provider) in [
            ("1900-01-01", "1h", None),
            ("0001-01-01", "1d", None),
            ("1969-12-31", "1d", Some("yahoo")),
            ("1800-01-01", "1h", Some("polygon")),
        ] {
            let e = refused(start, interval, provider);
            assert!(
                e.starts_with("invalid input: start_date ") && e.contains("is before 1970-01-01"),
                "{start} {interval} {provider:?}: {e}"
            );
            // Every provider refuses these: no provider is blamed.
            assert!(!e.contains("assumed"), "{e}");
        }
        let e = refused("2003-09-09", "1d", Some("polygon"));
        assert!(
            e.contains("Polygon has no stock aggregates before 2003-09-10"),
            "{e}"
        );
    }

    #[test]
    fn explicit_lists_are_held_to_the_batch_cap() {
        let symbols: Vec<String> = (0..1001).map(|n| format!("T{n}")).collect();
        let i = input(SelectionArgs {
            symbols: Some(symbols),
            batch_size: Some(1),
            start_date: Some("2026-03-01".into()),
            ..Default::default()
        })
        .unwrap();
        let err = validate_new_run(&i, &defaults(), true, today()).unwrap_err();
        assert!(matches!(err, CliError::InvalidInput(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains("1001 tickers in batches of 1 make 1001 batches; at most 1000 per run: raise batch_size"),
            "{err}"
        );
    }

    #[test]
    fn a_grouped_explicit_list_is_capped_by_its_days_not_its_tickers() {
        // 1001 tickers in batches of 1 would be 1001 batches per ticker; grouped, the five
        // weekdays make five.
        let symbols: Vec<String> = (0..1001).map(|n| format!("T{n}")).collect();
        let i = input(SelectionArgs {
            symbols: Some(symbols),
            batch_size: Some(1),
            start_date: Some("2026-03-02".into()),
            end_date: Some("2026-03-06".into()),
            provider: Some("polygon".into()),
            interval: Some("1d".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(validate_new_run(&i, &defaults(), true, today()).is_ok());
    }

    #[test]
    fn an_explicit_grouped_run_over_a_weekend_is_refused_before_anything_starts() {
        let i = input(SelectionArgs {
            symbols: Some(vec!["AAPL".into()]),
            start_date: Some("2026-03-07".into()),
            end_date: Some("2026-03-08".into()),
            provider: Some("polygon".into()),
            interval: Some("1d".into()),
            strategy: Some("grouped".into()),
            ..Default::default()
        })
        .unwrap();
        let err = validate_new_run(&i, &defaults(), true, today()).unwrap_err();
        assert!(err.to_string().contains("has none"), "{err}");
    }

    #[test]
    fn a_bad_knob_is_not_blamed_on_the_assumed_provider() {
        let i = new_run_input(
            &SelectionArgs::default(),
            &ExecutionArgs {
                max_concurrency: Some(101),
                max_rate_limit_rounds: None,
            },
            run_id(),
        )
        .unwrap();
        let err = validate_new_run(&i, &defaults(), false, today()).unwrap_err();
        assert!(err.to_string().contains("max_concurrency 101"), "{err}");
        assert!(!err.to_string().contains("assumed"), "{err}");
    }

    #[test]
    fn knobs_are_validated_for_resumes() {
        let exec = ExecutionArgs {
            max_concurrency: Some(0),
            max_rate_limit_rounds: None,
        };
        assert!(resume_input(run_id(), None, false, &exec).is_err());
        assert!(resume_input(run_id(), Some("some"), false, &ExecutionArgs::default()).is_err());
        let ok = resume_input(run_id(), Some("all"), false, &ExecutionArgs::default()).unwrap();
        assert_eq!(
            serde_json::to_value(ok).unwrap(),
            serde_json::json!({"run_id": "backfill-20260312-101500-0a1b2c3d", "reprocess": "all"})
        );
    }

    #[test]
    fn resume_execution_names_fit_step_functions() {
        let now = DateTime::parse_from_rfc3339("2026-03-12T10:20:30Z")
            .unwrap()
            .with_timezone(&Utc);
        let name = execution_name_for_resume(&run_id(), now);
        assert_eq!(
            name,
            "backfill-20260312-101500-0a1b2c3d-resume-20260312102030"
        );
        assert!(name.len() <= MAX_EXECUTION_NAME);
    }

    #[test]
    fn bad_defaults_in_the_environment_are_configuration_errors() {
        let err =
            defaults_from(|k| (k == "BACKFILL_START_DATE").then(|| "soon".into())).unwrap_err();
        assert!(matches!(err, CliError::Configuration(_)));
    }
}
