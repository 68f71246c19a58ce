//! The payload as the runtime hands it over, before any contract: JSON, or the reason it is not.
//!
//! lambda_runtime 1.5 deserializes each event body into the handler's payload type itself
//! (`deserializer::deserialize` in `src/deserializer.rs`: `serde_path_to_error::deserialize`
//! over `serde_json::Deserializer::from_slice(body)`), and when that fails it answers the
//! invocation on its own, without calling the handler, with a `Diagnostic` whose `errorType` is
//! the Rust type name of its private `DeserializeError` (`src/diagnostic.rs`,
//! `From<DeserializeError> for Diagnostic` uses `type_name_of_val`; `src/layers/api_response.rs`
//! builds the error request). For a body that is not JSON, even `serde_json::Value` fails there,
//! and that type name escaped our error contract (issue 8).
//!
//! So the functions take a [`Payload`], whose `Deserialize` never fails: a body that does not
//! parse becomes [`Payload::NotJson`] with serde_json's reason, and [`json_event`] turns that into
//! `InvalidInput` inside the handler, where every other error gets its name.
//!
//! Lambda's own Invoke API refuses a body that is not JSON before any function runs
//! (`InvalidRequestContentException`, "the request body could not be parsed as JSON", in the
//! Invoke API reference), and Step Functions only ever sends JSON; local emulators such as
//! `cargo lambda watch` pass anything through, which is where this shows. The runtime reads one
//! JSON value and ignores what follows it, so a body such as `{} x` still arrives as `{}`.

use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::BackfillError;

/// An event payload: JSON, or why it is not JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Json(Value),
    /// serde_json's reason, e.g. "expected ident at line 1 column 2".
    NotJson(String),
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(deserializer) {
            Ok(value) => Payload::Json(value),
            Err(e) => Payload::NotJson(e.to_string()),
        })
    }
}

impl Payload {
    /// Reads an event body the way lambda_runtime does (one JSON value from the start).
    pub fn from_body(body: &[u8]) -> Self {
        let mut json = serde_json::Deserializer::from_slice(body);
        match Payload::deserialize(&mut json) {
            Ok(payload) => payload,
            Err(e) => Payload::NotJson(e.to_string()),
        }
    }

    /// The JSON, or `InvalidInput` saying the payload is not JSON.
    pub fn into_json(self) -> Result<Value, BackfillError> {
        match self {
            Payload::Json(value) => Ok(value),
            Payload::NotJson(reason) => Err(BackfillError::InvalidInput(format!(
                "the payload is not JSON ({reason}): send a JSON object"
            ))),
        }
    }
}

/// The event with its payload as JSON, for a handler; `InvalidInput` when it is not JSON.
pub fn json_event(event: LambdaEvent<Payload>) -> Result<LambdaEvent<Value>, BackfillError> {
    let LambdaEvent { payload, context } = event;
    Ok(LambdaEvent::new(payload.into_json()?, context))
}

#[cfg(test)]
mod tests {
    use lambda_runtime::Diagnostic;
    use serde_json::json;

    use super::*;

    fn error_of(body: &[u8]) -> Diagnostic {
        Diagnostic::from(Payload::from_body(body).into_json().unwrap_err())
    }

    #[test]
    fn a_body_that_is_not_json_is_invalid_input_saying_so() {
        for body in [
            &b"not json"[..],
            b"",
            b"{\"run_id\":",
            b"\xff\xfe",
            b"{'a': 1}",
        ] {
            let d = error_of(body);
            assert_eq!(d.error_type, "InvalidInput", "{body:?}");
            assert!(
                d.error_message
                    .starts_with("invalid input: the payload is not JSON ("),
                "{body:?}: {}",
                d.error_message
            );
        }
        assert!(error_of(b"").error_message.contains("EOF while parsing"));
    }

    #[test]
    fn json_bodies_pass_through_whatever_their_shape() {
        for (body, value) in [
            (&b"null"[..], Value::Null),
            (b"[]", json!([])),
            (b" {\"batch\": 0} ", json!({"batch": 0})),
            (b"\"text\"", json!("text")),
        ] {
            assert_eq!(Payload::from_body(body), Payload::Json(value));
        }
    }
}
