//! Audit events: what happened, to what, by whom, about whom.

use std::fmt;
use std::net::IpAddr;

use crate::clock::{Clock, Timestamp};
use crate::error::{Error, Result};
use crate::limits;

/// A tenant identifier: 1..=64 bytes of `[A-Za-z0-9._-]`.
///
/// The restricted alphabet keeps tenant names safe in file names, checkpoint
/// origins and log lines.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TenantId(String);

impl TenantId {
    /// Parse a tenant identifier.
    ///
    /// # Errors
    /// [`Error::InvalidTenant`] when empty, longer than 64 bytes or outside the alphabet.
    pub fn parse(s: &str) -> Result<Self> {
        if s.is_empty()
            || s.len() > limits::MAX_TENANT_LEN
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(Error::InvalidTenant);
        }
        Ok(Self(s.to_owned()))
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One audit event. Build it with [`Event::builder`] or one of the shortcuts
/// ([`Event::login`], [`Event::role_change`], [`Event::data_export`],
/// [`Event::state_transition`], [`Event::escape_hatch`]).
///
/// Fields are private so that every `Event` satisfies the limits in
/// [`crate::limits`] and holds its diff in canonical (RFC 8785) form.
#[derive(Clone, PartialEq, Eq)]
pub struct Event {
    pub(crate) tenant: TenantId,
    pub(crate) time: Timestamp,
    pub(crate) actor: String,
    pub(crate) action: String,
    pub(crate) entity_type: String,
    pub(crate) entity_id: String,
    pub(crate) subjects: Vec<String>,
    pub(crate) from_state: Option<String>,
    pub(crate) to_state: Option<String>,
    pub(crate) diff: Option<String>,
    pub(crate) source_ip: Option<IpAddr>,
    pub(crate) request_id: Option<String>,
}

// Events name data subjects; keep them out of accidental `{:?}` logs.
impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("tenant", &self.tenant)
            .field("time", &self.time)
            .field("action", &self.action)
            .field("entity_type", &self.entity_type)
            .field("subjects", &self.subjects.len())
            .finish_non_exhaustive()
    }
}

impl Event {
    /// Start an event: `actor` did `action` in `tenant`.
    pub fn builder(tenant: &TenantId, actor: &str, action: &str) -> EventBuilder {
        EventBuilder {
            event: Event {
                tenant: tenant.clone(),
                time: Timestamp::from_unix_micros(0),
                actor: actor.to_owned(),
                action: action.to_owned(),
                entity_type: String::new(),
                entity_id: String::new(),
                subjects: Vec::new(),
                from_state: None,
                to_state: None,
                diff: None,
                source_ip: None,
                request_id: None,
            },
            time: None,
            error: None,
        }
    }

    /// A sign-in attempt by `user` (also the data subject), successful or not.
    pub fn login(tenant: &TenantId, user: &str, success: bool) -> EventBuilder {
        let action = if success {
            "auth.login"
        } else {
            "auth.login_failed"
        };
        Self::builder(tenant, user, action)
            .entity("user", user)
            .subject(user)
    }

    /// `actor` changed `user`'s role from `from_role` to `to_role`.
    pub fn role_change(
        tenant: &TenantId,
        actor: &str,
        user: &str,
        from_role: &str,
        to_role: &str,
    ) -> EventBuilder {
        Self::builder(tenant, actor, "rbac.role_change")
            .entity("user", user)
            .subject(user)
            .transition(from_role, to_role)
    }

    /// `actor` exported `entity_type`/`entity_id`, holding data about `subjects`.
    pub fn data_export<'a>(
        tenant: &TenantId,
        actor: &str,
        entity_type: &str,
        entity_id: &str,
        subjects: impl IntoIterator<Item = &'a str>,
    ) -> EventBuilder {
        Self::builder(tenant, actor, "data.export")
            .entity(entity_type, entity_id)
            .subjects(subjects)
    }

    /// `actor` moved `entity_type`/`entity_id` from state `from` to state `to`;
    /// the action is `<entity_type>.transition`.
    pub fn state_transition(
        tenant: &TenantId,
        actor: &str,
        entity_type: &str,
        entity_id: &str,
        from: &str,
        to: &str,
    ) -> EventBuilder {
        let action = format!("{entity_type}.transition");
        Self::builder(tenant, actor, &action)
            .entity(entity_type, entity_id)
            .transition(from, to)
    }

    /// `actor` used an escape hatch (for example tenant-guard's `unscoped`)
    /// under `capability`, giving `reason`.
    pub fn escape_hatch(
        tenant: &TenantId,
        actor: &str,
        capability: &str,
        reason: &str,
    ) -> EventBuilder {
        Self::builder(tenant, actor, "security.escape_hatch")
            .entity("capability", capability)
            .diff(&serde_json::json!({ "reason": reason }))
    }

    /// Parse one JSON event line (the `hisn audit append` input format):
    /// `actor` and `action` are required; `entity_type`, `entity_id`,
    /// `subjects`, `from_state`, `to_state`, `diff`, `source_ip`, `request_id`
    /// and `time` (RFC 3339) are optional. Unknown fields are refused.
    ///
    /// # Errors
    /// [`Error::Malformed`] for bad JSON, otherwise the builder's errors.
    pub fn from_json(tenant: &TenantId, line: &str, clock: &dyn Clock) -> Result<Event> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Input {
            actor: String,
            action: String,
            #[serde(default)]
            entity_type: String,
            #[serde(default)]
            entity_id: String,
            #[serde(default)]
            subjects: Vec<String>,
            from_state: Option<String>,
            to_state: Option<String>,
            diff: Option<serde_json::Value>,
            source_ip: Option<IpAddr>,
            request_id: Option<String>,
            time: Option<String>,
        }
        let input: Input =
            serde_json::from_str(line).map_err(|_| crate::error::malformed("event JSON"))?;
        // Numbers are parsed into doubles: refuse any the parse would change.
        check_number_tokens(line)?;
        let mut b = Event::builder(tenant, &input.actor, &input.action)
            .entity(&input.entity_type, &input.entity_id)
            .subjects(input.subjects.iter().map(String::as_str));
        b.event.from_state = input.from_state;
        b.event.to_state = input.to_state;
        if let Some(d) = &input.diff {
            b = b.diff(d);
        }
        if let Some(ip) = input.source_ip {
            b = b.source_ip(ip);
        }
        if let Some(r) = &input.request_id {
            b = b.request_id(r);
        }
        if let Some(t) = &input.time {
            b = b.at(Timestamp::parse_rfc3339(t)?);
        }
        b.build(clock)
    }

    /// The tenant whose chain holds this event.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }
    /// When it happened (UTC, microseconds).
    pub fn time(&self) -> Timestamp {
        self.time
    }
    /// Who did it.
    pub fn actor(&self) -> &str {
        &self.actor
    }
    /// What was done (for example `work_order.transition`).
    pub fn action(&self) -> &str {
        &self.action
    }
    /// The kind of entity acted on (may be empty).
    pub fn entity_type(&self) -> &str {
        &self.entity_type
    }
    /// The entity's identifier (may be empty).
    pub fn entity_id(&self) -> &str {
        &self.entity_id
    }
    /// Data-subject keys (plain identifiers or [`Pseudonymizer`](crate::Pseudonymizer) pseudonyms).
    pub fn subjects(&self) -> &[String] {
        &self.subjects
    }
    /// The keys a subject index files this event under: every subject and the
    /// actor (actors are data subjects too), each once, as written.
    pub fn subject_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::with_capacity(self.subjects.len() + 1);
        for k in self
            .subjects
            .iter()
            .map(String::as_str)
            .chain([self.actor.as_str()])
        {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        keys
    }
    /// State before the change.
    pub fn from_state(&self) -> Option<&str> {
        self.from_state.as_deref()
    }
    /// State after the change.
    pub fn to_state(&self) -> Option<&str> {
        self.to_state.as_deref()
    }
    /// The payload diff as canonical (RFC 8785) JSON text.
    pub fn diff(&self) -> Option<&str> {
        self.diff.as_deref()
    }
    /// The client's IP address.
    pub fn source_ip(&self) -> Option<IpAddr> {
        self.source_ip
    }
    /// The request identifier, for correlation with other logs.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// The event as a JSON object (for reports and the CLI). The diff is embedded
    /// as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let diff = self
            .diff
            .as_deref()
            .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok());
        serde_json::json!({
            "tenant": self.tenant.as_str(),
            "time": self.time.to_rfc3339(),
            "actor": self.actor,
            "action": self.action,
            "entity_type": self.entity_type,
            "entity_id": self.entity_id,
            "subjects": self.subjects,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "diff": diff,
            "source_ip": self.source_ip.map(|ip| ip.to_string()),
            "request_id": self.request_id,
        })
    }

    /// Check every field against the limits (also used by the decoder, so that a
    /// decoded record is always a valid event).
    pub(crate) fn validate(&self) -> Result<()> {
        text(&self.actor, "actor", 1)?;
        text(&self.action, "action", 1)?;
        text(&self.entity_type, "entity_type", 0)?;
        text(&self.entity_id, "entity_id", 0)?;
        if self.subjects.len() > limits::MAX_SUBJECTS {
            return Err(Error::InvalidField { field: "subjects" });
        }
        for s in &self.subjects {
            text(s, "subjects", 1)?;
        }
        if let Some(s) = &self.from_state {
            text(s, "from_state", 0)?;
        }
        if let Some(s) = &self.to_state {
            text(s, "to_state", 0)?;
        }
        if let Some(s) = &self.request_id {
            text(s, "request_id", 0)?;
        }
        if self
            .diff
            .as_ref()
            .is_some_and(|d| d.len() > limits::MAX_DIFF_LEN)
        {
            return Err(Error::InvalidDiff);
        }
        Ok(())
    }
}

fn text(s: &str, field: &'static str, min: usize) -> Result<()> {
    if s.len() < min || s.len() > limits::MAX_FIELD_LEN || s.chars().any(char::is_control) {
        return Err(Error::InvalidField { field });
    }
    Ok(())
}

/// Canonicalise a JSON value (RFC 8785, JCS).
/// Deepest nesting of arrays and objects in a diff. The decoder's JSON parser
/// stops at 128 levels; the encoder refuses more than this, so every record it
/// writes can be read back.
pub(crate) const MAX_DIFF_DEPTH: usize = 64;

/// Largest integer magnitude a diff may hold: 2^53, beyond which JSON
/// canonicalisation (RFC 8785 renders numbers as IEEE-754 doubles) could
/// change the value.
pub(crate) const MAX_SAFE_INTEGER: u64 = 1 << 53;

/// Refuse what canonicalisation would change or the decoder would refuse:
/// integers beyond ±2^53 and nesting deeper than [`MAX_DIFF_DEPTH`].
/// (`serde_json::Value` cannot hold a non-finite number.)
fn check_diff_value(v: &serde_json::Value, depth: usize) -> Result<()> {
    use serde_json::Value;
    match v {
        Value::Number(n) => {
            let safe = n
                .as_u64()
                .map(|u| u <= MAX_SAFE_INTEGER)
                .or_else(|| n.as_i64().map(|i| i.unsigned_abs() <= MAX_SAFE_INTEGER))
                .unwrap_or_else(|| n.as_f64().is_some_and(f64::is_finite));
            if safe {
                Ok(())
            } else {
                Err(Error::InvalidDiff)
            }
        }
        Value::Array(a) => {
            if depth >= MAX_DIFF_DEPTH {
                return Err(Error::InvalidDiff);
            }
            a.iter().try_for_each(|x| check_diff_value(x, depth + 1))
        }
        Value::Object(o) => {
            if depth >= MAX_DIFF_DEPTH {
                return Err(Error::InvalidDiff);
            }
            o.values().try_for_each(|x| check_diff_value(x, depth + 1))
        }
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
    }
}

/// Check the number tokens of JSON `text` (a diff as the caller wrote it):
/// each must keep its value through parsing and canonicalisation (so
/// `1.0000000000000000001` or `9007199254740993` is refused, not rounded),
/// and an integer must be within ±2^53.
pub(crate) fn check_number_tokens(text: &str) -> Result<()> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Skip the string, escapes included.
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                check_number_token(&text[start..i])?;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

fn check_number_token(token: &str) -> Result<()> {
    let x: f64 = token.parse().map_err(|_| Error::InvalidDiff)?;
    if !x.is_finite() {
        return Err(Error::InvalidDiff);
    }
    let integer = !token.contains(['.', 'e', 'E']);
    // 2^53 as a double (exact).
    if integer && x.abs() > 9_007_199_254_740_992.0 {
        return Err(Error::InvalidDiff);
    }
    let rendered = serde_json::Number::from_f64(x)
        .map(serde_json::Value::Number)
        .and_then(|v| serde_json_canonicalizer::to_string(&v).ok())
        .ok_or(Error::InvalidDiff)?;
    if decimal_value(token) != decimal_value(&rendered) {
        return Err(Error::InvalidDiff);
    }
    Ok(())
}

/// A decimal number's exact value as (negative, significant digits,
/// exponent of the last digit), for comparing two spellings of it.
fn decimal_value(token: &str) -> Option<(bool, String, i64)> {
    let (neg, rest) = match token.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, token),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(p) => (&rest[..p], rest[p + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: String = format!("{int}{frac}");
    let mut exp = exp.checked_sub(i64::try_from(frac.len()).ok()?)?;
    while digits.ends_with('0') && digits.len() > 1 {
        digits.pop();
        exp += 1;
    }
    let digits = digits.trim_start_matches('0').to_owned();
    if digits.is_empty() {
        return Some((false, String::new(), 0));
    }
    Some((neg, digits, exp))
}

/// The limits a diff value must keep (see `check_diff_value`).
pub(crate) fn check_diff(v: &serde_json::Value) -> Result<()> {
    check_diff_value(v, 0)
}

pub(crate) fn canonical_json(v: &serde_json::Value) -> Result<String> {
    check_diff_value(v, 0)?;
    let s = serde_json_canonicalizer::to_string(v).map_err(|_| Error::InvalidDiff)?;
    if s.len() > limits::MAX_DIFF_LEN {
        return Err(Error::InvalidDiff);
    }
    Ok(s)
}

/// Builder for [`Event`]; errors are reported by [`EventBuilder::build`].
#[derive(Debug)]
#[must_use = "call build() to get the event"]
pub struct EventBuilder {
    event: Event,
    time: Option<Timestamp>,
    error: Option<Error>,
}

impl EventBuilder {
    /// The entity acted on.
    pub fn entity(mut self, entity_type: &str, entity_id: &str) -> Self {
        entity_type.clone_into(&mut self.event.entity_type);
        entity_id.clone_into(&mut self.event.entity_id);
        self
    }

    /// Add a data-subject key (the DSAR report finds the event by it).
    pub fn subject(mut self, subject: &str) -> Self {
        if !self.event.subjects.iter().any(|s| s == subject) {
            self.event.subjects.push(subject.to_owned());
        }
        self
    }

    /// Add several data-subject keys.
    pub fn subjects<'a>(mut self, subjects: impl IntoIterator<Item = &'a str>) -> Self {
        for s in subjects {
            self = self.subject(s);
        }
        self
    }

    /// The state before and after the change.
    pub fn transition(mut self, from: &str, to: &str) -> Self {
        self.event.from_state = Some(from.to_owned());
        self.event.to_state = Some(to.to_owned());
        self
    }

    /// The payload diff; canonicalised (RFC 8785) here, once, at write time.
    /// Encrypt sensitive values before putting them here if they must be
    /// erasable (crypto-shredding).
    pub fn diff(mut self, diff: &serde_json::Value) -> Self {
        match canonical_json(diff) {
            Ok(s) => self.event.diff = Some(s),
            Err(e) => self.error = self.error.or(Some(e)),
        }
        self
    }

    /// The client's IP address.
    pub fn source_ip(mut self, ip: IpAddr) -> Self {
        self.event.source_ip = Some(ip);
        self
    }

    /// The request identifier.
    pub fn request_id(mut self, id: &str) -> Self {
        self.event.request_id = Some(id.to_owned());
        self
    }

    /// Use this time instead of the clock's.
    pub fn at(mut self, t: Timestamp) -> Self {
        self.time = Some(t);
        self
    }

    /// Finish the event, taking its time from `clock` unless [`at`](Self::at) set one.
    ///
    /// The action [`PRUNE_ACTION`](crate::PRUNE_ACTION) is reserved for the
    /// stores' own `prune`: an application (or anyone who can reach its append
    /// path) cannot write a prune record, so a routine checkpoint can never come
    /// to cover a forged one before the records it names are deleted.
    ///
    /// # Errors
    /// [`Error::InvalidField`] (`action`) for the reserved action;
    /// [`Error::InvalidField`] or [`Error::InvalidDiff`] when a field breaks the limits.
    pub fn build(self, clock: &dyn Clock) -> Result<Event> {
        if self.event.action == crate::verify::PRUNE_ACTION {
            return Err(Error::InvalidField { field: "action" });
        }
        self.build_reserved(clock)
    }

    /// [`build`](Self::build) without the reserved-action check: for the
    /// stores' own prune record, and for tests that play an attacker who writes
    /// the store directly. Never call it with input from outside.
    #[doc(hidden)]
    pub fn danger_build_reserved(self, clock: &dyn Clock) -> Result<Event> {
        self.build_reserved(clock)
    }

    fn build_reserved(self, clock: &dyn Clock) -> Result<Event> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut event = self.event;
        event.time = self.time.unwrap_or_else(|| clock.now());
        event.validate()?;
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;

    fn t() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    #[test]
    fn tenant_alphabet_is_enforced() {
        assert!(TenantId::parse("acme-1.eu_west").is_ok());
        for bad in ["", "a/b", "a b", "ä", &"x".repeat(65)] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
    }

    /// Class: forged prune records through the ordinary append path. Root
    /// cause: any caller could build an event with the store's own prune
    /// action; a routine checkpoint (the writer's automatic ones sign without
    /// verifying) then covered it, and once the records it named were deleted
    /// the pruned chain verified `intact`. The action is now reserved: only the
    /// stores' `prune` builds it.
    #[test]
    fn reserved_prune_action_cannot_be_built_by_callers() {
        let clock = FakeClock::new(Timestamp::from_unix_micros(7));
        let r = Event::builder(&t(), "u", crate::verify::PRUNE_ACTION).build(&clock);
        assert!(
            matches!(r, Err(Error::InvalidField { field: "action" })),
            "{r:?}"
        );
        // Only the exact action is reserved.
        assert!(
            Event::builder(&t(), "u", "audit.prune2")
                .build(&clock)
                .is_ok()
        );
        assert!(
            Event::builder(&t(), "u", crate::verify::PRUNE_ACTION)
                .danger_build_reserved(&clock)
                .is_ok()
        );
    }

    #[test]
    fn diff_is_canonicalised_once() {
        let clock = FakeClock::new(Timestamp::from_unix_micros(7));
        let e = Event::builder(&t(), "u", "a")
            .diff(&serde_json::json!({"b": 1, "a": [1.0, "x"]}))
            .build(&clock)
            .unwrap();
        assert_eq!(e.diff(), Some(r#"{"a":[1,"x"],"b":1}"#));
        assert_eq!(e.time().unix_micros(), 7);
    }

    #[test]
    fn shortcuts_fill_the_common_fields() {
        let clock = FakeClock::default();
        let e = Event::role_change(&t(), "admin", "u-2", "viewer", "owner")
            .build(&clock)
            .unwrap();
        assert_eq!(e.action(), "rbac.role_change");
        assert_eq!(e.subjects(), ["u-2"]);
        assert_eq!(
            (e.from_state(), e.to_state()),
            (Some("viewer"), Some("owner"))
        );
        let e = Event::state_transition(&t(), "u", "work_order", "wo-9", "open", "closed")
            .build(&clock)
            .unwrap();
        assert_eq!(e.action(), "work_order.transition");
        let e = Event::escape_hatch(&t(), "ops", "unscoped", "incident 42")
            .build(&clock)
            .unwrap();
        assert_eq!(e.diff(), Some(r#"{"reason":"incident 42"}"#));
        assert_eq!(
            Event::login(&t(), "u", false)
                .build(&clock)
                .unwrap()
                .action(),
            "auth.login_failed"
        );
    }

    #[test]
    fn limits_are_enforced() {
        let clock = FakeClock::default();
        assert!(Event::builder(&t(), "", "a").build(&clock).is_err());
        assert!(Event::builder(&t(), "u\n", "a").build(&clock).is_err());
        let long = "x".repeat(limits::MAX_FIELD_LEN + 1);
        assert!(Event::builder(&t(), "u", &long).build(&clock).is_err());
        let many: Vec<String> = (0..=limits::MAX_SUBJECTS).map(|i| i.to_string()).collect();
        let b = Event::builder(&t(), "u", "a").subjects(many.iter().map(String::as_str));
        assert!(b.build(&clock).is_err());
    }

    #[test]
    fn json_input_line_parses() {
        let clock = FakeClock::new(Timestamp::from_unix_micros(5));
        let line = r#"{"actor":"u-1","action":"work_order.transition","entity_type":"work_order","entity_id":"wo-9","subjects":["emp-4"],"from_state":"open","to_state":"closed","diff":{"status":["open","closed"]},"source_ip":"203.0.113.7","request_id":"r-1"}"#;
        let e = Event::from_json(&t(), line, &clock).unwrap();
        assert_eq!(e.source_ip().unwrap().to_string(), "203.0.113.7");
        assert_eq!(e.time().unix_micros(), 5);
        assert!(Event::from_json(&t(), r#"{"actor":"u"}"#, &clock).is_err());
        assert!(Event::from_json(&t(), r#"{"actor":"u","action":"a","evil":1}"#, &clock).is_err());
    }

    /// Class: numbers that RFC 8785 canonicalisation (IEEE-754 doubles) would
    /// change are refused, never silently altered: integers beyond ±2^53
    /// (given as values or as text), text numbers whose parse rounds them.
    ///
    /// Root cause: the diff was canonicalised as given, so
    /// `12345678901234567890` was stored as `12345678901234567000` and the
    /// record no longer said what the caller wrote.
    #[test]
    fn diff_numbers_canonicalisation_would_change_are_refused() {
        let clock = FakeClock::default();
        let build = |v: serde_json::Value| Event::builder(&t(), "u", "a").diff(&v).build(&clock);
        for bad in [
            serde_json::json!({ "n": 12_345_678_901_234_567_890_u64 }),
            serde_json::json!([9_007_199_254_740_993_u64]),
            serde_json::json!({ "a": { "b": -9_007_199_254_740_993_i64 } }),
        ] {
            assert!(matches!(build(bad), Err(Error::InvalidDiff)));
        }
        for good in [
            serde_json::json!({ "n": 9_007_199_254_740_992_u64, "m": -9_007_199_254_740_992_i64 }),
            serde_json::json!([0.1, 1e300, -2.5e-8, 0]),
        ] {
            build(good).unwrap();
        }
        for bad in [
            r#"{"actor":"u","action":"a","diff":{"n":12345678901234567890}}"#,
            r#"{"actor":"u","action":"a","diff":[9007199254740993]}"#,
            r#"{"actor":"u","action":"a","diff":[1.0000000000000000001]}"#,
            r#"{"actor":"u","action":"a","diff":[1e400]}"#,
            r#"{"actor":"u","action":"a","diff":[123456789012345678901234567890]}"#,
        ] {
            assert!(Event::from_json(&t(), bad, &clock).is_err(), "{bad}");
        }
        for good in [
            r#"{"actor":"u","action":"a","diff":{"x":"12345678901234567890","n":[1.5,1.0,100,-0,2e3]}}"#,
            r#"{"actor":"u","action":"a","diff":[9007199254740992, 0.1]}"#,
        ] {
            Event::from_json(&t(), good, &clock).unwrap();
        }
    }

    /// Class: the encoder refuses what the decoder refuses. A diff nested
    /// deeper than the decoder's JSON parser reads (128) was written and
    /// then read back as a malformed record, which verification reports as
    /// tampering.
    #[test]
    fn diff_nesting_the_decoder_refuses_is_refused_when_built() {
        let clock = FakeClock::default();
        let nest = |n: usize| {
            let mut v = serde_json::json!(1);
            for _ in 0..n {
                v = serde_json::json!([v]);
            }
            v
        };
        let ok = Event::builder(&t(), "u", "a")
            .diff(&nest(MAX_DIFF_DEPTH))
            .build(&clock)
            .unwrap();
        let rec = crate::encoding::encode_record(0, &ok).unwrap();
        assert_eq!(
            crate::encoding::decode_record(&rec).unwrap().1.diff(),
            ok.diff()
        );
        for n in [MAX_DIFF_DEPTH + 1, 129, 500] {
            assert!(matches!(
                Event::builder(&t(), "u", "a").diff(&nest(n)).build(&clock),
                Err(Error::InvalidDiff)
            ));
        }
    }
}
