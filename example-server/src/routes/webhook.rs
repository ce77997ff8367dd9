//! The payment provider's webhook (Standard Webhooks signatures over the raw
//! body, 5-minute tolerance), rate-limited per source and processed at most
//! once: a replayed delivery is answered `200` and changes nothing.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use hisn_rate_limit::http::{write_ratelimit_headers, write_retry_after};
use hisn_rate_limit::{KeyKind, KeyValue, RequestKeys};
use hisn_tenant_guard::{Permission, TenantId};
use hisn_webhook_verify::replay::{Claim, ReplayKey, ReplayPolicy, ReplayStore};
use serde::Deserialize;
use serde_json::json;

use super::extract::{Meta, require};
use super::grants::Session;
use crate::db::platform;
use crate::error::ApiError;
use crate::metrics;
use crate::state::AppState;

/// Replay scope of this endpoint.
const SCOPE: &str = "payments";

/// The event the provider sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PaymentEvent {
    #[serde(rename = "type")]
    kind: String,
    data: SubscriptionData,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscriptionData {
    tenant_id: String,
    plan: String,
    status: String,
}

fn valid(e: &PaymentEvent) -> bool {
    e.kind == "subscription.updated"
        && matches!(e.data.plan.as_str(), "free" | "pro" | "enterprise")
        && matches!(e.data.status.as_str(), "active" | "past_due" | "canceled")
}

/// `POST /webhooks/payments`.
pub(super) async fn payments(
    State(s): State<AppState>,
    meta: Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let source = meta.ip.to_string();
    let keys = RequestKeys::new().with(
        KeyKind::WebhookSource,
        KeyValue::text(&source).map_err(|e| ApiError::internal("webhook key", &e))?,
    );
    let decision = s
        .webhook_limiter
        .check(&keys)
        .await
        .map_err(|e| ApiError::internal("webhook limiter", &e))?;
    if !decision.is_allowed() {
        metrics::global().rate_limited("webhook");
        let mut resp = ApiError::TooManyRequests.into_response();
        write_retry_after(resp.headers_mut(), decision.retry_after());
        return Ok(resp);
    }
    let verified = match s.webhook.verify(&headers, &body) {
        Ok(v) => v,
        Err(_) => {
            metrics::global().webhook_rejected();
            return Err(ApiError::Unauthorized);
        }
    };
    // Parsed only after the signature checked out.
    let event: PaymentEvent =
        serde_json::from_slice(&body).map_err(|_| ApiError::BadRequest("invalid_event"))?;
    if !valid(&event) {
        return Err(ApiError::BadRequest("invalid_event"));
    }
    let replay_id = verified.replay_id(&body);
    let provider = s.webhook.scheme().name();
    let key = ReplayKey::new(SCOPE, provider, &replay_id)
        .map_err(|_| ApiError::BadRequest("invalid_event"))?;
    // The claim's policy comes from the delivery: the done marker outlives
    // the time the same signed request still verifies (at least the 72 h
    // default). A delivery no TTL can cover is refused (fail closed).
    let (claim, policy) = match s
        .replay
        .claim_verified(&key, &s.webhook, &verified, ReplayPolicy::DEFAULT)
        .await
    {
        Ok(c) => c,
        Err(hisn_webhook_verify::Error::ReplayWindowTooLong) => {
            metrics::global().webhook_rejected();
            return Err(ApiError::Unauthorized);
        }
        Err(e) => return Err(ApiError::internal("replay store", &e)),
    };
    let token = match claim {
        Claim::New(t) => t,
        Claim::Done => {
            metrics::global().webhook_replay();
            tracing::info!(target: "hisn::example_server::webhook", "webhook replay ignored");
            let mut resp = Json(json!({ "status": "duplicate" })).into_response();
            write_ratelimit_headers(
                resp.headers_mut(),
                &decision,
                s.webhook_limiter.tiers(),
                false,
            );
            return Ok(resp);
        }
        // In progress (another worker or instance is processing this event;
        // any unknown outcome is treated alike, failing closed): not done
        // yet, and it may still fail and release its claim. A 2xx would end
        // the provider's retries and could lose the event, so 409 with
        // Retry-After (webhook-verify's documented answer).
        _ => {
            tracing::info!(target: "hisn::example_server::webhook", "webhook delivery while the same event is in progress: retry asked");
            let mut resp = ApiError::Conflict("in_progress").into_response();
            write_retry_after(resp.headers_mut(), std::time::Duration::from_secs(5));
            return Ok(resp);
        }
    };
    let event_key = format!("{SCOPE}:{provider}:{replay_id}");
    let result = apply(&s, &meta, &event, &replay_id, &event_key).await;
    match result {
        Ok(applied) => {
            s.replay
                .complete(&key, &token, &policy)
                .await
                .map_err(|e| ApiError::internal("replay store", &e))?;
            let status = if applied {
                "processed"
            } else {
                // Applied before, though the replay store no longer said so.
                metrics::global().webhook_replay();
                tracing::info!(target: "hisn::example_server::webhook", "webhook delivery applied before: nothing changed");
                "duplicate"
            };
            let mut resp = Json(json!({ "status": status })).into_response();
            write_ratelimit_headers(
                resp.headers_mut(),
                &decision,
                s.webhook_limiter.tiers(),
                false,
            );
            Ok(resp)
        }
        Err(e) => {
            // Let the provider's retry run it.
            let _ = s.replay.release(&key, &token).await;
            Err(e)
        }
    }
}

/// Apply `event` once per `event_key`: `false` if it was applied before
/// (the replay store's marker lost: a completion that never landed, a lease
/// taken over, a flushed or restarted store). The key is recorded in the
/// same transaction as the change, so the change is made at most once; the
/// audit record is appended only for a delivery not seen applied.
async fn apply(
    s: &AppState,
    meta: &Meta,
    event: &PaymentEvent,
    replay_id: &str,
    event_key: &str,
) -> Result<bool, ApiError> {
    let Ok(tenant) = event.data.tenant_id.parse::<TenantId>() else {
        return Ok(true); // not ours: acknowledged, nothing to do
    };
    // Built (and so validated) before anything changes.
    let actor = meta.actor_named("webhook:payments");
    let record = actor
        .event(tenant, "subscription.update")?
        .entity("subscription", &tenant.to_string());
    let before = match platform::set_subscription_once(
        &s.platform,
        tenant,
        &event.data.plan,
        &event.data.status,
        event_key,
    )
    .await?
    {
        platform::Applied::Now(before) => before,
        // Not ours, or applied before (a delivery the replay store forgot,
        // or a concurrent one that took the claim over): nothing changed,
        // nothing to record.
        platform::Applied::NoTenant => return Ok(true),
        platform::Applied::Before => return Ok(false),
    };
    // Recorded once the change is made, with the state the change's own
    // transaction read: a record for each change, none for a change not
    // made. Should the append fail, the change stands (the provider's retry
    // would find it applied): the failure is logged as any failed append.
    s.audit
        .append(
            record
                .transition(&before.1, &event.data.status)
                .diff(&json!({ "plan": event.data.plan, "event": replay_id })),
        )
        .await?;
    Ok(true)
}

/// `GET /t/{tenant}/subscription`.
pub(super) async fn subscription(
    State(s): State<AppState>,
    ctx: Session,
) -> Result<Json<serde_json::Value>, ApiError> {
    require(&s, &ctx, &Permission::READ)?;
    let (plan, status) = platform::subscription(&s.platform, ctx.tenant())
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(json!({ "plan": plan, "status": status })))
}
