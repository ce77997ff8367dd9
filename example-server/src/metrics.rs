//! Prometheus metrics of security decisions (`GET /metrics`): denials by
//! layer, 429s by tier, webhook replays and rejections, escape-hatch uses,
//! audit append latency. Counters are process-wide and carry no tenant or
//! user label (no personal data, bounded cardinality).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Upper bounds of the audit latency histogram, in seconds.
const BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
];

/// The process's security-decision counters.
#[derive(Debug, Default)]
pub struct Metrics {
    denials: Mutex<BTreeMap<&'static str, u64>>,
    rate_limited: Mutex<BTreeMap<String, u64>>,
    webhook_replays: AtomicU64,
    webhook_rejected: AtomicU64,
    escape_hatch: AtomicU64,
    grant_uses: AtomicU64,
    hash_busy: AtomicU64,
    panics: AtomicU64,
    audit_buckets: [AtomicU64; BUCKETS.len()],
    audit_count: AtomicU64,
    audit_sum_micros: AtomicU64,
}

static GLOBAL: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    &GLOBAL
}

fn bump<K: Ord>(m: &Mutex<BTreeMap<K, u64>>, k: K) {
    let mut g = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    *g.entry(k).or_insert(0) += 1;
}

impl Metrics {
    /// A request denied by `layer` (`auth`, `tenant_path`, `rbac`, `read_only`, `query_guard`, `signed_url`, `api_key`,
    /// `step_up`, `mfa_enrolment`, `password_change`, `grant`, `totp`).
    pub fn deny(&self, layer: &'static str) {
        bump(&self.denials, layer);
    }

    /// A `429` by `tier`.
    pub fn rate_limited(&self, tier: &str) {
        bump(&self.rate_limited, tier.to_owned());
    }

    /// A replayed webhook delivery (answered as a no-op).
    pub fn webhook_replay(&self) {
        self.webhook_replays.fetch_add(1, Ordering::Relaxed);
    }

    /// A webhook delivery refused (bad signature, stale, malformed).
    pub fn webhook_rejected(&self) {
        self.webhook_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// One use of the escape hatch.
    pub fn escape_hatch(&self) {
        self.escape_hatch.fetch_add(1, Ordering::Relaxed);
    }

    /// One use of a break-glass support grant.
    pub fn grant_use(&self) {
        self.grant_uses.fetch_add(1, Ordering::Relaxed);
    }

    /// A request refused because password hashing stayed at capacity.
    pub fn hash_busy(&self) {
        self.hash_busy.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests refused so far because password hashing was at capacity.
    pub fn hash_busy_count(&self) -> u64 {
        self.hash_busy.load(Ordering::Relaxed)
    }

    /// A request whose handler panicked (answered `500`).
    pub fn panic(&self) {
        self.panics.fetch_add(1, Ordering::Relaxed);
    }

    /// Handler panics so far.
    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    /// One audit append and how long it took to be durable.
    pub fn audit_append(&self, took: Duration) {
        let secs = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b
                && let Some(c) = self.audit_buckets.get(i)
            {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.audit_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.audit_sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Denials counted for `layer` so far.
    pub fn denials(&self, layer: &str) -> u64 {
        let g = self
            .denials
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.get(layer).copied().unwrap_or(0)
    }

    /// Webhook replays so far.
    pub fn webhook_replays(&self) -> u64 {
        self.webhook_replays.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP hisn_denials_total Requests denied, by isolation or access layer."
        );
        let _ = writeln!(s, "# TYPE hisn_denials_total counter");
        for (k, v) in self
            .denials
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(s, "hisn_denials_total{{layer=\"{k}\"}} {v}");
        }
        let _ = writeln!(s, "# HELP hisn_rate_limited_total 429 responses, by tier.");
        let _ = writeln!(s, "# TYPE hisn_rate_limited_total counter");
        for (k, v) in self
            .rate_limited
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(s, "hisn_rate_limited_total{{tier=\"{k}\"}} {v}");
        }
        let _ = writeln!(
            s,
            "# HELP hisn_webhook_replays_total Webhook deliveries answered as replays (no-op)."
        );
        let _ = writeln!(s, "# TYPE hisn_webhook_replays_total counter");
        let _ = writeln!(
            s,
            "hisn_webhook_replays_total {}",
            self.webhook_replays.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP hisn_webhook_rejected_total Webhook deliveries refused by verification."
        );
        let _ = writeln!(s, "# TYPE hisn_webhook_rejected_total counter");
        let _ = writeln!(
            s,
            "hisn_webhook_rejected_total {}",
            self.webhook_rejected.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP hisn_escape_hatch_uses_total Audited unscoped database accesses."
        );
        let _ = writeln!(s, "# TYPE hisn_escape_hatch_uses_total counter");
        let _ = writeln!(
            s,
            "hisn_escape_hatch_uses_total {}",
            self.escape_hatch.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP hisn_grant_uses_total Uses of break-glass support grants (each audited)."
        );
        let _ = writeln!(s, "# TYPE hisn_grant_uses_total counter");
        let _ = writeln!(
            s,
            "hisn_grant_uses_total {}",
            self.grant_uses.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP hisn_password_hash_busy_total Requests answered 503 because password hashing was at capacity."
        );
        let _ = writeln!(s, "# TYPE hisn_password_hash_busy_total counter");
        let _ = writeln!(
            s,
            "hisn_password_hash_busy_total {}",
            self.hash_busy.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP hisn_handler_panics_total Requests whose handler panicked (answered 500)."
        );
        let _ = writeln!(s, "# TYPE hisn_handler_panics_total counter");
        let _ = writeln!(
            s,
            "hisn_handler_panics_total {}",
            self.panics.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP hisn_audit_append_seconds Time until an audit record is durable."
        );
        let _ = writeln!(s, "# TYPE hisn_audit_append_seconds histogram");
        for (b, c) in BUCKETS.iter().zip(&self.audit_buckets) {
            let _ = writeln!(
                s,
                "hisn_audit_append_seconds_bucket{{le=\"{b}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let count = self.audit_count.load(Ordering::Relaxed);
        let _ = writeln!(s, "hisn_audit_append_seconds_bucket{{le=\"+Inf\"}} {count}");
        let sum =
            Duration::from_micros(self.audit_sum_micros.load(Ordering::Relaxed)).as_secs_f64();
        let _ = writeln!(s, "hisn_audit_append_seconds_sum {sum}");
        let _ = writeln!(s, "hisn_audit_append_seconds_count {count}");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.deny("rbac");
        m.deny("rbac");
        m.rate_limited("session");
        m.audit_append(Duration::from_micros(300));
        let text = m.render();
        assert!(text.contains("hisn_denials_total{layer=\"rbac\"} 2"));
        assert!(text.contains("hisn_rate_limited_total{tier=\"session\"} 1"));
        assert!(text.contains("hisn_audit_append_seconds_bucket{le=\"0.00025\"} 0"));
        assert!(text.contains("hisn_audit_append_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("hisn_audit_append_seconds_count 1"));
    }
}
