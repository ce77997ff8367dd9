//! Errors sent to remote callers: a status and a fixed code, nothing else.
//! Detail (the underlying error) goes to the log, which is redacted.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// `Retry-After` (seconds) of [`ApiError::Overloaded`].
pub const OVERLOADED_RETRY_AFTER_SECS: u64 = 1;

/// An error answered to a remote caller. Its body is `{"error": "<code>"}`
/// with a code from a fixed list, so it reveals no internals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the request is malformed (body, query, unknown or oversized field).
    BadRequest(&'static str),
    /// 401: no or an invalid credential.
    Unauthorized,
    /// 403: authenticated but not permitted.
    Forbidden,
    /// 403 with a code the client acts on (`mfa_enrolment_required`,
    /// `password_change_required`, `invalid_code`, `totp_locked`).
    Denied(&'static str),
    /// 401: the action needs a (more recent) second factor; answered with an
    /// RFC 9470 `WWW-Authenticate: Bearer error="insufficient_user_authentication"`
    /// challenge and `max_age` (seconds) when the rule has one.
    StepUpRequired(Option<u64>),
    /// 404: missing, or not yours (the same answer).
    NotFound,
    /// 409: conflicts with the current state.
    Conflict(&'static str),
    /// 413: body too large.
    PayloadTooLarge,
    /// 415: not JSON.
    UnsupportedMediaType,
    /// 422: well-formed but refused (for example an invalid state transition).
    Unprocessable(&'static str),
    /// 429: rate-limited (headers are set by the caller).
    TooManyRequests,
    /// 503: a dependency is unavailable (circuit open).
    Unavailable,
    /// 503 with `Retry-After` ([`OVERLOADED_RETRY_AFTER_SECS`]): a bounded
    /// resource (password hashing, [`crate::hashing`]) stayed full for its
    /// whole wait. The body is the same as [`ApiError::Unavailable`]'s.
    Overloaded,
    /// 500: anything else (logged, never described).
    Internal,
}

impl ApiError {
    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::Denied(_) => StatusCode::FORBIDDEN,
            Self::StepUpRequired(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable | Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code in the body.
    pub fn code(self) -> &'static str {
        match self {
            Self::BadRequest(c) | Self::Conflict(c) | Self::Unprocessable(c) | Self::Denied(c) => c,
            Self::StepUpRequired(_) => "step_up_required",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::TooManyRequests => "rate_limited",
            Self::Unavailable | Self::Overloaded => "unavailable",
            Self::Internal => "internal",
        }
    }

    /// The generic code for a bare status (responses produced by layers
    /// with an empty body).
    pub fn code_for_status(status: StatusCode) -> &'static str {
        match status.as_u16() {
            400 => "bad_request",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            405 => "method_not_allowed",
            409 => "conflict",
            413 => "payload_too_large",
            415 => "unsupported_media_type",
            422 => "unprocessable",
            429 => "rate_limited",
            503 => "unavailable",
            _ if status.is_server_error() => "internal",
            _ => "error",
        }
    }

    /// A crypto-vault failure. A tenant whose keys were crypto-shredded
    /// (erased, possibly by another instance) answers like a missing
    /// resource: its data is gone, and sessions issued before the erase
    /// find nothing (README, "Erasure"). Anything else is internal.
    pub fn vault(what: &'static str, err: &hisn_crypto_vault::Error) -> Self {
        if matches!(err, hisn_crypto_vault::Error::TenantShredded) {
            tracing::info!(target: "hisn::example_server", what, "use of an erased tenant's keys refused");
            Self::NotFound
        } else {
            Self::internal(what, err)
        }
    }

    /// Log `err` (operator detail) and return [`ApiError::Internal`].
    pub fn internal(what: &'static str, err: &dyn std::fmt::Display) -> Self {
        tracing::error!(target: "hisn::example_server", what, error = %err, "internal error");
        Self::Internal
    }

    /// A blocking task that did not finish: logged as panicked or cancelled,
    /// never with the `JoinError`'s text, which carries the panic message
    /// (a formatted one may hold request data or a password the task held;
    /// the panic hook withholds those too).
    pub fn task(what: &'static str, err: &tokio::task::JoinError) -> Self {
        let how = if err.is_panic() {
            "panicked"
        } else {
            "cancelled"
        };
        tracing::error!(target: "hisn::example_server", what, how, "internal error: a blocking task did not finish");
        Self::Internal
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status(),
            Json(serde_json::json!({ "error": self.code() })),
        )
            .into_response();
        if self == Self::Overloaded {
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(OVERLOADED_RETRY_AFTER_SECS),
            );
        }
        if self == Self::Unauthorized {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Self::StepUpRequired(max_age) = self {
            let challenge = match max_age {
                Some(age) => format!(
                    "Bearer error=\"insufficient_user_authentication\", error_description=\"a more recent second factor is required\", max_age={age}"
                ),
                None => "Bearer error=\"insufficient_user_authentication\", error_description=\"a second factor is required\"".to_owned(),
            };
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        r
    }
}

impl From<hisn_tenant_guard::Error> for ApiError {
    fn from(e: hisn_tenant_guard::Error) -> Self {
        use hisn_tenant_guard::Error as E;
        match e {
            E::Unauthenticated => Self::Unauthorized,
            E::NotFound | E::InvalidId => Self::NotFound,
            E::Forbidden => {
                crate::metrics::global().deny("rbac");
                Self::Forbidden
            }
            E::OutsideGrant => {
                crate::metrics::global().deny("grant");
                Self::Forbidden
            }
            E::StepUpRequired { max_age } => {
                crate::metrics::global().deny("step_up");
                Self::StepUpRequired(max_age)
            }
            E::MfaEnrolmentRequired => {
                crate::metrics::global().deny("mfa_enrolment");
                Self::Denied("mfa_enrolment_required")
            }
            E::PasswordChangeRequired => {
                crate::metrics::global().deny("password_change");
                Self::Denied("password_change_required")
            }
            E::Refused(g) => {
                crate::metrics::global().deny("query_guard");
                Self::internal("query guard refused a statement", &g)
            }
            E::Database(sqlx::Error::Database(d))
                if d.is_unique_violation() || d.is_foreign_key_violation() =>
            {
                Self::Conflict("conflict")
            }
            other => Self::internal("tenant-guard", &other),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() || d.is_foreign_key_violation() => {
                Self::Conflict("conflict")
            }
            _ => Self::internal("database", &e),
        }
    }
}

impl From<hisn_audit_log::Error> for ApiError {
    fn from(e: hisn_audit_log::Error) -> Self {
        Self::internal("audit log", &e)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::logging::tests::Buf;

    /// A blocking task that panicked with a formatted message (here holding
    /// a password) is logged as panicked, without the message: a
    /// `JoinError`'s text carries it.
    #[test]
    fn a_panicked_task_is_logged_without_its_message() {
        let buf = Buf::default();
        let sink = buf.clone();
        let sub = crate::logging::subscriber("info", move || sink.clone());
        let _g = hisn_test_support::set_default(sub);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = rt
            .block_on(async {
                tokio::task::spawn_blocking(|| {
                    let password = String::from("hunter2-correct-horse");
                    panic!("hash failed for {password}")
                })
                .await
            })
            .unwrap_err();
        assert!(err.to_string().contains("hunter2"), "the text carries it");
        assert!(matches!(
            ApiError::task("hash task", &err),
            ApiError::Internal
        ));
        let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(
            log.contains("panicked") && log.contains("hash task"),
            "{log}"
        );
        assert!(!log.contains("hunter2"), "leaked: {log}");
    }
}
