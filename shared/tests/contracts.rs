//! Issue 8, "strict contracts" and the range rule: every payload that breaks a function's contract
//! is `InvalidInput` naming what is wrong (a payload that is not an object or not JSON at all, an
//! unknown field, a value of the wrong type), and ranges before 1970 or before a provider's first
//! data are refused by name before anything is written.
//!
//! The functions here are wired exactly as their mains wire them, against a database that is not
//! there: a refusal that came after a database call would be `DatabaseUnavailable` instead.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{service_fn, Context, Diagnostic, LambdaEvent};
use serde_json::{json, Value};
use shared::config::{Config, RunDefaults};
use shared::contract::{
    parse_event, Contract, FetchBatchInput, FinalizeRunInput, SelectTickersInput,
};
use shared::handler::payload::{json_event, Payload};
use shared::handler::select_tickers::RunRequest;
use shared::handler::App;
use shared::model::{parse_date, DateRange, Interval, ProviderKind};
use shared::provider::budget::RateGate;
use shared::provider::polygon::PolygonProvider;
use shared::provider::yahoo::YahooProvider;
use shared::provider::PriceProvider;

const RUN_ID: &str = "backfill-20260309-120000-0a1b2c3d";

/// An app whose database refuses every connection (nothing listens on port 1).
fn app_without_database() -> App {
    let config = Config::from_lookup(|k| {
        (k == "DATABASE_URL").then(|| "postgres://backfill@127.0.0.1:1/none".to_string())
    })
    .unwrap();
    App::new(config, None).unwrap()
}

fn refusal<T: Contract + std::fmt::Debug>(payload: Value) -> String {
    let err = parse_event::<T>(payload.clone()).expect_err(&payload.to_string());
    let d = Diagnostic::from(err);
    assert_eq!(
        d.error_type, "InvalidInput",
        "{payload}: {}",
        d.error_message
    );
    d.error_message
}

// ---- the payload as a whole ----------------------------------------------------------------

#[test]
fn null_arrays_numbers_strings_and_booleans_are_refused_by_every_function() {
    for payload in [
        json!(null),
        json!([]),
        json!([{}]),
        json!(42),
        json!("{}"),
        json!(true),
    ] {
        let select = refusal::<SelectTickersInput>(payload.clone());
        assert!(
            select.starts_with(
                "invalid input: the select-tickers payload must be a JSON object such as \
                 {\"symbols\": [\"AAPL\"], \"start_date\": \"2026-03-09\"}, not "
            ),
            "{select}"
        );
        let fetch = refusal::<FetchBatchInput>(payload.clone());
        assert!(
            fetch.contains("the fetch-batch payload must be a JSON object"),
            "{fetch}"
        );
        let finalize = refusal::<FinalizeRunInput>(payload.clone());
        assert!(
            finalize.contains("the finalize-run payload must be a JSON object"),
            "{finalize}"
        );
    }
    assert!(refusal::<SelectTickersInput>(json!(null)).ends_with(", not null"));
    assert!(refusal::<SelectTickersInput>(json!([])).ends_with(", not an array"));
    assert!(refusal::<FetchBatchInput>(json!(7)).ends_with(", not a number (7)"));
}

#[test]
fn an_empty_object_is_still_a_select_tickers_request_with_every_default() {
    assert_eq!(
        parse_event::<SelectTickersInput>(json!({})).unwrap(),
        SelectTickersInput::default()
    );
}

#[test]
fn a_payload_that_is_not_json_is_invalid_input_saying_so() {
    for body in [&b"not json"[..], b"", b"{\"run_id\": ", b"{'run_id': 1}"] {
        let err = Payload::from_body(body).into_json().unwrap_err();
        let d = Diagnostic::from(err);
        assert_eq!(d.error_type, "InvalidInput");
        assert!(
            d.error_message
                .starts_with("invalid input: the payload is not JSON ("),
            "{}",
            d.error_message
        );
    }
}

// ---- fields --------------------------------------------------------------------------------

#[test]
fn a_misspelt_field_is_refused_naming_it_and_the_field_meant() {
    let symbol = refusal::<SelectTickersInput>(json!({"symbol": ["ZZZ"]}));
    assert!(
        symbol.starts_with(
            "invalid input: unknown field \"symbol\" (did you mean \"symbols\"?) in the \
             select-tickers payload; its fields are run_id, new_run_id, execution_name, symbols,"
        ),
        "{symbol}"
    );
    let knob = refusal::<SelectTickersInput>(json!({"symbols": ["AAPL"], "max_concurency": 2}));
    assert!(
        knob.contains("unknown field \"max_concurency\" (did you mean \"max_concurrency\"?)"),
        "{knob}"
    );
    let two = refusal::<SelectTickersInput>(json!({"startDate": "2026-01-01", "tickers": ["A"]}));
    assert!(
        two.contains(
            "unknown fields \"startDate\" (did you mean \"start_date\"?), \"tickers\" in the"
        ),
        "{two}"
    );
    let batch = refusal::<FetchBatchInput>(json!({"run_id": RUN_ID, "batch": 0, "batchs": 1}));
    assert!(
        batch.contains("unknown field \"batchs\" (did you mean \"batch\"?) in the fetch-batch"),
        "{batch}"
    );
    let finalize = refusal::<FinalizeRunInput>(json!({"run_id": RUN_ID, "batch_result": []}));
    assert!(
        finalize.contains("\"batch_result\" (did you mean \"batch_results\"?)"),
        "{finalize}"
    );
}

#[test]
fn a_value_of_the_wrong_type_or_form_names_its_field() {
    let cases: [(Value, &str); 6] = [
        (
            json!({"symbols": "AAPL"}),
            "field \"symbols\" of the select-tickers payload: invalid type: string \"AAPL\", \
             expected a sequence",
        ),
        (
            json!({"top_n": "5"}),
            "field \"top_n\" of the select-tickers payload: invalid type: string \"5\"",
        ),
        (
            json!({"symbols": ["AAPL", "A/B"]}),
            "field \"symbols\" of the select-tickers payload: malformed symbol \"A/B\"",
        ),
        (
            json!({"interval": "2h"}),
            "field \"interval\" of the select-tickers payload: unknown variant `2h`",
        ),
        (
            json!({"register_tickers": "yes"}),
            "field \"register_tickers\" of the select-tickers payload: invalid type",
        ),
        (
            json!({"run_id": "not-a-run-id"}),
            "field \"run_id\" of the select-tickers payload: run_id \"not-a-run-id\" is malformed",
        ),
    ];
    for (payload, expected) in cases {
        let message = refusal::<SelectTickersInput>(payload);
        assert!(
            message.contains(expected),
            "{message}\nexpected: {expected}"
        );
    }
    let batch = refusal::<FetchBatchInput>(json!({"run_id": RUN_ID, "batch": "zero"}));
    assert_eq!(
        batch,
        "invalid input: field \"batch\" of the fetch-batch payload: invalid type: string \
         \"zero\", expected i32"
    );
    let missing = refusal::<FetchBatchInput>(json!({"batch": 0}));
    assert_eq!(
        missing,
        "invalid input: the fetch-batch payload: missing field `run_id`"
    );
}

#[test]
fn the_lease_execution_is_accepted_by_every_function() {
    let select: SelectTickersInput =
        parse_event(json!({"run_id": RUN_ID, "lease_execution": "exec-1"})).unwrap();
    assert_eq!(select.lease_execution.as_deref(), Some("exec-1"));
    let fetch: FetchBatchInput =
        parse_event(json!({"run_id": RUN_ID, "batch": 3, "lease_execution": "exec-1"})).unwrap();
    assert_eq!(fetch.batch, 3);
    let finalize: FinalizeRunInput =
        parse_event(json!({"run_id": RUN_ID, "lease_execution": "exec-1"})).unwrap();
    assert_eq!(finalize.run_id.as_str(), RUN_ID);
    // Accepted, not anything: it is a string.
    let wrong =
        refusal::<FetchBatchInput>(json!({"run_id": RUN_ID, "batch": 3, "lease_execution": 5}));
    assert!(wrong.contains("\"lease_execution\""), "{wrong}");
}

#[test]
fn the_execution_input_takes_the_state_machine_knobs() {
    let input: SelectTickersInput = parse_event(json!({
        "symbols": ["AAPL"], "max_concurrency": 2, "max_rate_limit_rounds": 3,
        "register_tickers": true, "execution_name": "scheduled-d32c5kddcf5bb8c3",
    }))
    .unwrap();
    assert_eq!(input.max_concurrency, Some(2));
    assert_eq!(input.max_rate_limit_rounds, Some(3));
    assert_eq!(input.register_tickers, Some(true));
}

// ---- through the handlers, before any database call ----------------------------------------

fn event(payload: Value) -> LambdaEvent<Value> {
    LambdaEvent::new(payload, Context::default())
}

#[tokio::test]
async fn the_handlers_refuse_bad_payloads_before_touching_the_database() {
    let app = app_without_database();
    let e = app.select_tickers(event(json!(null))).await.unwrap_err();
    assert_eq!(e.name(), "InvalidInput", "{e}");
    let e = app
        .select_tickers(event(json!({"symbol": ["ZZZ"]})))
        .await
        .unwrap_err();
    assert_eq!(e.name(), "InvalidInput", "{e}");
    let e = app.fetch_batch(event(json!([]))).await.unwrap_err();
    assert_eq!(e.name(), "InvalidInput", "{e}");
    let e = app
        .finalize_run(event(
            json!({"run_id": RUN_ID, "batch_results": [], "extra": 1}),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.name(), "InvalidInput", "{e}");
    // The control: a valid payload does reach the database, and fails there.
    let e = app
        .fetch_batch(event(json!({"run_id": RUN_ID, "batch": 0})))
        .await
        .unwrap_err();
    assert_eq!(e.name(), "DatabaseUnavailable", "{e}");
}

// ---- range rules ----------------------------------------------------------------------------

fn today() -> chrono::NaiveDate {
    parse_date("today", "2026-03-12").unwrap()
}

fn request(start: &str, interval: &str, provider: Option<&str>) -> SelectTickersInput {
    parse_event(json!({
        "symbols": ["AAPL"],
        "start_date": start,
        "end_date": "2026-03-11",
        "interval": interval,
        "provider": provider,
    }))
    .unwrap()
}

fn range_refusal(start: &str, interval: &str, provider: Option<&str>) -> String {
    let defaults = RunDefaults::from_lookup(|_| None).unwrap();
    let err = RunRequest::parse(&request(start, interval, provider), &defaults, today())
        .expect_err(start);
    assert_eq!(err.name(), "InvalidInput", "{err}");
    err.to_string()
}

#[test]
fn polygon_hourly_from_1800_is_refused_by_name() {
    let e = range_refusal("1800-01-01", "1h", Some("polygon"));
    assert_eq!(
        e,
        "invalid input: start_date 1800-01-01 is before 1970-01-01: price history before 1970 \
         is not supported; use a start_date on or after 1970-01-01"
    );
}

#[test]
fn polygon_before_its_first_data_is_refused_by_name_and_its_first_day_accepted() {
    for interval in ["1h", "1d"] {
        let e = range_refusal("2003-09-09", interval, Some("polygon"));
        assert_eq!(
            e,
            "invalid input: Polygon has no stock aggregates before 2003-09-10 (the oldest data \
             of any plan; smaller plans reach back less far), and start_date 2003-09-09 is \
             older: use a start_date on or after 2003-09-10"
        );
        let defaults = RunDefaults::from_lookup(|_| None).unwrap();
        let ok = RunRequest::parse(
            &request("2003-09-10", interval, Some("polygon")),
            &defaults,
            today(),
        );
        assert!(ok.is_ok(), "{ok:?}");
    }
}

#[test]
fn year_1_and_1900_are_refused_for_every_provider_and_interval() {
    for provider in [None, Some("yahoo"), Some("polygon")] {
        for interval in ["1h", "1d"] {
            for start in ["0001-01-01", "1900-01-01", "1969-12-31"] {
                let e = range_refusal(start, interval, provider);
                assert!(
                    e.starts_with(&format!(
                        "invalid input: start_date {start} is before 1970-01-01"
                    )),
                    "{provider:?} {interval} {start}: {e}"
                );
            }
        }
    }
    // Yahoo's daily history has no other floor: 1970 itself is fine.
    let defaults = RunDefaults::from_lookup(|_| None).unwrap();
    assert!(RunRequest::parse(&request("1970-01-01", "1d", None), &defaults, today()).is_ok());
}

#[test]
fn the_default_provider_is_the_one_price_provider_names() {
    // Neither request names a provider: PRICE_PROVIDER decides whose rules apply.
    let polygon =
        RunDefaults::from_lookup(|k| (k == "PRICE_PROVIDER").then(|| "polygon".into())).unwrap();
    let yahoo = RunDefaults::from_lookup(|_| None).unwrap();
    let hourly_2010 = request("2010-01-04", "1h", None);
    let parsed = RunRequest::parse(&hourly_2010, &polygon, today()).unwrap();
    assert_eq!(parsed.provider, ProviderKind::Polygon);
    let e = RunRequest::parse(&hourly_2010, &yahoo, today()).unwrap_err();
    assert!(e.to_string().contains("730 days"), "{e}");
    let e = RunRequest::parse(&request("2001-01-02", "1d", None), &polygon, today()).unwrap_err();
    assert!(
        e.to_string().contains("Polygon has no stock aggregates"),
        "{e}"
    );
}

#[test]
fn each_providers_check_range_applies_the_same_rules() {
    let http = reqwest::Client::new();
    let url = url::Url::parse("http://127.0.0.1:1").unwrap();
    let pacer = || Arc::new(RateGate::unlimited());
    let polygon = PolygonProvider::new(
        http.clone(),
        url.clone(),
        secrecy::SecretString::from("k"),
        pacer(),
    );
    let yahoo = YahooProvider::new(http, url, pacer());
    let range = |start: &str| {
        DateRange::new(
            parse_date("start", start).unwrap(),
            parse_date("end", "2026-03-11").unwrap(),
        )
        .unwrap()
    };
    let e = polygon
        .check_range(&range("1800-01-01"), Interval::Hour)
        .unwrap_err();
    assert!(e.to_string().contains("before 1970-01-01"), "{e}");
    let e = polygon
        .check_range(&range("1999-01-04"), Interval::Day)
        .unwrap_err();
    assert!(
        e.to_string().contains("Polygon has no stock aggregates"),
        "{e}"
    );
    assert!(polygon
        .check_range(&range("2003-09-10"), Interval::Hour)
        .is_ok());
    let e = yahoo
        .check_range(&range("1900-01-01"), Interval::Day)
        .unwrap_err();
    assert!(e.to_string().contains("before 1970-01-01"), "{e}");
    assert!(yahoo
        .check_range(&range("1970-01-01"), Interval::Day)
        .is_ok());
}

#[tokio::test]
async fn select_tickers_refuses_polygon_from_1800_before_any_database_call() {
    let app = app_without_database();
    for payload in [
        json!({"symbols": ["AAPL"], "start_date": "1800-01-01", "interval": "1h", "provider": "polygon"}),
        json!({"symbols": ["AAPL"], "start_date": "1999-01-04", "interval": "1h", "provider": "polygon"}),
        json!({"symbols": ["AAPL"], "start_date": "0001-01-01", "interval": "1d"}),
    ] {
        let e = app
            .select_tickers(event(payload.clone()))
            .await
            .unwrap_err();
        assert_eq!(e.name(), "InvalidInput", "{payload}: {e}");
    }
}

// ---- through the real runtime ---------------------------------------------------------------

/// A stand-in for the Lambda Runtime API (`/2018-06-01/runtime/invocation/…`): hands out the
/// given bodies as invocations and reports what the function posted back.
struct FakeRuntimeApi {
    address: String,
    posted: mpsc::Receiver<(String, Value)>,
}

impl FakeRuntimeApi {
    fn start(bodies: &[&[u8]]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let queue: VecDeque<(String, Vec<u8>)> = bodies
            .iter()
            .enumerate()
            .map(|(n, body)| (format!("request-{n}"), body.to_vec()))
            .collect();
        let queue = Arc::new(Mutex::new(queue));
        let (tx, posted) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let (queue, tx) = (queue.clone(), tx.clone());
                std::thread::spawn(move || serve_connection(stream.unwrap(), &queue, &tx));
            }
        });
        FakeRuntimeApi { address, posted }
    }

    /// The next invocation's outcome: (`response` or `error`, the JSON body posted).
    fn next_outcome(&self) -> (String, Value) {
        self.posted
            .recv_timeout(Duration::from_secs(30))
            .expect("the function answers within 30 s")
    }
}

type Queue = Mutex<VecDeque<(String, Vec<u8>)>>;

fn serve_connection(stream: TcpStream, queue: &Queue, posted: &mpsc::Sender<(String, Value)>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let (mut length, mut chunked) = (0usize, false);
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            let header = header.trim_end().to_ascii_lowercase();
            if header.is_empty() {
                break;
            }
            if let Some(v) = header.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            chunked |= header == "transfer-encoding: chunked";
        }
        let body = if chunked {
            read_chunked(&mut reader)
        } else {
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            body
        };
        if path.ends_with("/invocation/next") {
            let Some((id, payload)) = queue.lock().unwrap().pop_front() else {
                // No more invocations: hold the runtime here for good.
                loop {
                    std::thread::park();
                }
            };
            let deadline = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 60_000;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                 lambda-runtime-aws-request-id: {id}\r\nlambda-runtime-deadline-ms: {deadline}\r\n\
                 lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:contracts\r\n\
                 lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000\r\n\
                 content-length: {}\r\n\r\n",
                payload.len()
            );
            writer.write_all(head.as_bytes()).unwrap();
            writer.write_all(&payload).unwrap();
        } else {
            let kind = path.rsplit('/').next().unwrap_or_default().to_string();
            let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            posted.send((kind, value)).unwrap();
            writer
                .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}")
                .unwrap();
        }
    }
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).unwrap();
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

/// Runs `lambda_runtime::run` with a function wired as its main wires it, against a fake Runtime
/// API serving `bodies`, and returns what the runtime posted for each.
async fn invoke_through_the_runtime(function: &str, bodies: &[&[u8]]) -> Vec<(String, Value)> {
    let api = FakeRuntimeApi::start(bodies);
    // The runtime reads these when it starts (below), one function after another.
    std::env::set_var("AWS_LAMBDA_RUNTIME_API", &api.address);
    std::env::set_var("AWS_LAMBDA_FUNCTION_NAME", function);
    std::env::set_var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128");
    std::env::set_var("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");
    let app: &'static App = Box::leak(Box::new(app_without_database()));
    let runtime = match function {
        "select-tickers" => tokio::spawn(lambda_runtime::run(service_fn(
            move |event: LambdaEvent<Payload>| async move {
                app.select_tickers(json_event(event)?).await
            },
        ))),
        "fetch-batch" => tokio::spawn(lambda_runtime::run(service_fn(
            move |event: LambdaEvent<Payload>| async move { app.fetch_batch(json_event(event)?).await },
        ))),
        "finalize-run" => tokio::spawn(lambda_runtime::run(service_fn(
            move |event: LambdaEvent<Payload>| async move { app.finalize_run(json_event(event)?).await },
        ))),
        other => panic!("no function {other}"),
    };
    let count = bodies.len();
    let outcomes = tokio::task::spawn_blocking(move || {
        (0..count).map(|_| api.next_outcome()).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    runtime.abort();
    outcomes
}

/// A payload sent, and what the error message it gets back must contain.
type Invocation<'a> = (&'a [u8], &'a str);

/// Issue 8: a non-JSON payload came back with errorType `&lambda_runtime::…DeserializeError`.
#[tokio::test(flavor = "multi_thread")]
async fn the_real_runtime_answers_every_bad_payload_with_invalid_input() {
    let cases: [(&str, &[Invocation]); 3] = [
        (
            "select-tickers",
            &[
                (
                    b"not json",
                    "invalid input: the payload is not JSON (expected ident",
                ),
                (
                    b"",
                    "invalid input: the payload is not JSON (EOF while parsing",
                ),
                (b"null", "must be a JSON object such as"),
                (b"[]", "must be a JSON object such as"),
                (
                    br#"{"symbol": ["ZZZ"]}"#,
                    "unknown field \"symbol\" (did you mean \"symbols\"?)",
                ),
                (
                    br#"{"symbols": ["AAPL"], "max_concurency": 2}"#,
                    "unknown field \"max_concurency\" (did you mean \"max_concurrency\"?)",
                ),
                (
                    br#"{"symbols": ["AAPL"], "start_date": "1800-01-01", "provider": "polygon"}"#,
                    "start_date 1800-01-01 is before 1970-01-01",
                ),
            ],
        ),
        (
            "fetch-batch",
            &[
                (b"not json", "the payload is not JSON"),
                (b"{\"run_id\": ", "the payload is not JSON"),
                (b"42", "must be a JSON object such as"),
                (
                    br#"{"run_id": "backfill-20260309-120000-0a1b2c3d", "batch": "zero"}"#,
                    "field \"batch\" of the fetch-batch payload",
                ),
            ],
        ),
        (
            "finalize-run",
            &[
                (b"not json", "the payload is not JSON"),
                (b"\"finalize\"", "must be a JSON object such as"),
            ],
        ),
    ];
    for (function, invocations) in cases {
        let bodies: Vec<&[u8]> = invocations.iter().map(|(body, _)| *body).collect();
        let outcomes = invoke_through_the_runtime(function, &bodies).await;
        for ((body, expected), (kind, posted)) in invocations.iter().zip(outcomes) {
            let body = String::from_utf8_lossy(body);
            assert_eq!(kind, "error", "{function} {body}: {posted}");
            assert_eq!(
                posted["errorType"], "InvalidInput",
                "{function} {body}: {posted}"
            );
            let message = posted["errorMessage"].as_str().unwrap_or_default();
            assert!(
                message.contains(expected),
                "{function} {body}: {message}\nexpected: {expected}"
            );
        }
    }
}
