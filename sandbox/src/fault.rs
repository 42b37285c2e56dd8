//! Faults the emulator acts out on a host's (or the discovery service's) endpoints.
//!
//! Refusing connections is not among them: it closes the whole listener, so it is a switch on
//! the host itself (see `Sandbox::refuse_connections`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

/// One fault, as the control API takes it: `{"kind": "http_status", "status": 504}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Read the request, then hold it forever: the client must time out.
    NeverAnswer,
    /// Wait this long, then answer as usual.
    Delay { ms: u64 },
    /// Answer with this status and a short JSON body. 203 and 418 declare an emergency, 401
    /// rejects the key, 429 rate-limits, 5xx fail. `retry_after_secs` adds a `Retry-After`.
    HttpStatus {
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_secs: Option<u64>,
    },
    /// HTTP 200 with `code != 0`: ЧЗ refuses to decide.
    NotProcessed {
        code: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    /// A 5xx with `error_message` "5000": the cross-border check service is down.
    CrossBorderOutage {
        #[serde(default = "internal_server_error")]
        status: u16,
    },
    /// HTTP 200 with a body that is not the expected JSON (a cut-off answer by default).
    MalformedBody {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
    },
}

/// Why a fault cannot be acted out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidFault(String);

fn internal_server_error() -> u16 {
    500
}

/// What a fault makes of a request.
pub(crate) enum FaultEffect {
    /// Hold the request forever.
    Hang,
    /// Wait, then answer normally.
    Wait(Duration),
    /// Answer with this instead.
    Answer(Response),
}

impl Fault {
    /// Checks that the fault can be answered: a real HTTP status, a non-zero refusal code, a
    /// 5xx for the cross-border outage.
    ///
    /// # Errors
    /// Naming the field at fault.
    pub fn validate(&self) -> Result<(), InvalidFault> {
        match self {
            Self::HttpStatus { status, .. } if StatusCode::from_u16(*status).is_err() => {
                Err(InvalidFault(format!("{status} is not an HTTP status")))
            }
            Self::NotProcessed { code: 0, .. } => Err(InvalidFault(
                "code 0 means processed; a refusal needs another code".to_owned(),
            )),
            Self::CrossBorderOutage { status } if !(500..=599).contains(status) => Err(
                InvalidFault(format!("the cross-border outage is a 5xx, not {status}")),
            ),
            _ => Ok(()),
        }
    }

    pub(crate) fn effect(&self) -> FaultEffect {
        match self {
            Self::NeverAnswer => FaultEffect::Hang,
            Self::Delay { ms } => FaultEffect::Wait(Duration::from_millis(*ms)),
            Self::HttpStatus {
                status,
                retry_after_secs,
            } => FaultEffect::Answer(status_answer(*status, *retry_after_secs)),
            Self::NotProcessed { code, description } => {
                let description = description.as_deref().unwrap_or("Запрос не обработан");
                let body = json!({"code": code, "description": description});
                FaultEffect::Answer(json_answer(StatusCode::OK, body.to_string()))
            }
            Self::CrossBorderOutage { status } => {
                let body = json!({
                    "error_message": "5000",
                    "description": "Сервис трансграничной проверки недоступен",
                });
                FaultEffect::Answer(json_answer(to_status(*status), body.to_string()))
            }
            Self::MalformedBody { body } => {
                let body = body.clone().unwrap_or_else(|| CUT_OFF_ANSWER.to_owned());
                FaultEffect::Answer(json_answer(StatusCode::OK, body))
            }
        }
    }
}

/// An answer that stopped halfway, as a broken proxy delivers it.
const CUT_OFF_ANSWER: &str = r#"{"code":0,"description":"ok","codes":[{"cis":"01"#;

/// A bare status with a short JSON body, as the emulator answers for faults and for the
/// `http=` behaviour of a fixture row.
pub(crate) fn status_answer(status: u16, retry_after_secs: Option<u64>) -> Response {
    let status = to_status(status);
    let text = status
        .canonical_reason()
        .unwrap_or("status set by the sandbox");
    let body = if matches!(status.as_u16(), 203 | 418) {
        json!({"description": "ГИС МТ: объявлен аварийный режим", "status": text})
    } else {
        json!({"error_message": text})
    };

    let mut answer = json_answer(status, body.to_string());
    if let Some(seconds) = retry_after_secs {
        answer
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    answer
}

pub(crate) fn json_answer(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Statuses are validated when a fault is set; an invalid one that slips through answers 500.
fn to_status(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_read_from_their_control_api_json() {
        let fault: Fault =
            serde_json::from_str(r#"{"kind":"http_status","status":429,"retry_after_secs":3}"#)
                .unwrap();

        assert_eq!(
            fault,
            Fault::HttpStatus {
                status: 429,
                retry_after_secs: Some(3)
            }
        );
        assert_eq!(
            serde_json::from_str::<Fault>(r#"{"kind":"cross_border_outage"}"#).unwrap(),
            Fault::CrossBorderOutage { status: 500 }
        );
    }

    #[test]
    fn a_misspelt_field_is_refused_not_ignored() {
        let misspelt = r#"{"kind":"http_status","status":429,"retry_after":3}"#;

        assert!(serde_json::from_str::<Fault>(misspelt).is_err());
    }

    #[test]
    fn faults_that_cannot_be_answered_are_invalid() {
        assert!(
            Fault::HttpStatus {
                status: 1000,
                retry_after_secs: None
            }
            .validate()
            .is_err()
        );
        assert!(
            Fault::NotProcessed {
                code: 0,
                description: None
            }
            .validate()
            .is_err()
        );
        assert!(Fault::CrossBorderOutage { status: 200 }.validate().is_err());
        assert!(
            Fault::NotProcessed {
                code: 3,
                description: None
            }
            .validate()
            .is_ok()
        );
    }
}
