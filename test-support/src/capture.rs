//! Capturing the `tracing` events a piece of code emits, so a test can assert
//! that it warned (and with which reason) or that it stayed quiet.
//!
//! [`capture_events`] runs a closure with a recording subscriber as the
//! thread's default and returns what the closure returned together with every
//! event it emitted, in order. The subscriber is scoped to the closure and the
//! current thread: tests running in parallel never see each other's events.
//!
//! ```
//! use hisn_test_support::capture_events;
//!
//! let (n, events) = capture_events(|| {
//!     tracing::warn!(reason = "too big", size = 9, "refused");
//!     7
//! });
//! assert_eq!(n, 7);
//! assert_eq!(events.len(), 1);
//! assert_eq!(events[0].level, tracing::Level::WARN);
//! assert_eq!(events[0].message, "refused");
//! assert_eq!(events[0].field("reason"), Some("too big"));
//! assert_eq!(events[0].field("size"), Some("9"));
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// One event recorded by [`capture_events`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedEvent {
    /// The event's level.
    pub level: Level,
    /// The event's target (by default the module path that emitted it).
    pub target: String,
    /// The formatted message (the `message` field); empty when there is none.
    pub message: String,
    /// Every other field, in the order recorded: `&str` values as they are,
    /// anything else in its `Debug` form (so `%x` gives `x`'s `Display`).
    pub fields: Vec<(String, String)>,
}

impl CapturedEvent {
    /// The value of the field `name`, if the event has one.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Run `f` with a subscriber that records every event as the current thread's
/// default; return `f`'s result and the events it emitted, in order.
pub fn capture_events<T>(f: impl FnOnce() -> T) -> (T, Vec<CapturedEvent>) {
    let recorder = Recorder::default();
    let events = recorder.events.clone();
    let out = {
        let _guard = set_default(recorder);
        f()
    };
    let events = std::mem::take(&mut *events.lock().unwrap_or_else(PoisonError::into_inner));
    (out, events)
}

/// Make `subscriber` the current thread's default until the guard drops, so
/// that it sees every event of this thread even while other test threads,
/// with no subscriber, reach the same callsites.
///
/// Why not plain [`tracing::subscriber::set_default`]: `tracing` caches one
/// interest per callsite for the whole process. While at most one dispatcher
/// is registered, a callsite first reached on a thread with no subscriber is
/// cached as "never" (the interest is asked of *that* thread's default), and
/// a subscriber set on another thread afterwards never sees its events: a
/// parallel test that runs the same code path without a subscriber made a
/// capturing test read an empty log now and then. Here a second dispatcher
/// (an inert anchor that lives as long as the process) stays registered, so
/// every registration asks all live dispatchers, and the interest cache is
/// rebuilt once this subscriber is in place.
pub fn set_default<S>(subscriber: S) -> tracing::subscriber::DefaultGuard
where
    S: Subscriber + Send + Sync + 'static,
{
    static ANCHOR: OnceLock<tracing::Dispatch> = OnceLock::new();
    ANCHOR.get_or_init(|| tracing::Dispatch::new(Inert));
    let guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    guard
}

/// The anchor of [`set_default`]: registered, interested in nothing.
struct Inert;

impl Subscriber for Inert {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::never()
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::OFF)
    }
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        false
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// The subscriber behind [`capture_events`]: every level enabled, spans
/// accepted (and otherwise ignored), events recorded.
#[derive(Default)]
struct Recorder {
    events: Arc<Mutex<Vec<CapturedEvent>>>,
    next_span: AtomicU64,
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        // Span ids must be non-zero.
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let captured = CapturedEvent {
            level: *meta.level(),
            target: meta.target().to_owned(),
            message: fields.message,
            fields: fields.rest,
        };
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(captured);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: Vec<(String, String)>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = value;
        } else {
            self.rest.push((field.name().to_owned(), value));
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warn_from_one_callsite() {
        tracing::warn!("from the shared callsite");
    }

    /// Class: a capturing test read an empty log now and then. Root cause:
    /// with one dispatcher registered, a callsite first reached on a thread
    /// without a subscriber was cached as "never" for the whole process, so
    /// the capturing thread's events from it were dropped. Pinned
    /// interleaving: the capture is in place, another thread (no subscriber)
    /// reaches the callsite first, then the capturing thread emits there.
    #[test]
    fn a_callsite_first_reached_on_a_thread_without_a_subscriber_is_still_captured() {
        let ((), events) = capture_events(|| {
            std::thread::spawn(warn_from_one_callsite).join().unwrap();
            warn_from_one_callsite();
        });
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].message, "from the shared callsite");
    }

    #[test]
    fn records_level_target_message_and_fields_in_order() {
        let ((), events) = capture_events(|| {
            tracing::debug!(target: "t1", reason = "a", "first {}", 1);
            let span = tracing::info_span!("s", k = 1);
            let _g = span.enter();
            tracing::warn!(n = 3, flag = true, shown = %"x y", dbg = ?"q", "second");
            tracing::error!(only = "field");
        });
        let want = [
            (Level::DEBUG, "t1", "first 1", vec![("reason", "a")]),
            (
                Level::WARN,
                module_path!(),
                "second",
                vec![
                    ("n", "3"),
                    ("flag", "true"),
                    ("shown", "x y"),
                    ("dbg", "\"q\""),
                ],
            ),
            (Level::ERROR, module_path!(), "", vec![("only", "field")]),
        ];
        assert_eq!(events.len(), want.len(), "{events:?}");
        for (e, (level, target, message, fields)) in events.iter().zip(want) {
            assert_eq!(e.level, level);
            assert_eq!(e.target, target);
            assert_eq!(e.message, message);
            let fields: Vec<_> = fields
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect();
            assert_eq!(e.fields, fields);
        }
        assert_eq!(events[1].field("n"), Some("3"));
        assert_eq!(events[1].field("reason"), None);
    }

    #[test]
    fn events_outside_the_closure_or_on_another_thread_are_not_captured() {
        tracing::warn!("before");
        let ((), events) = capture_events(|| {
            std::thread::spawn(|| tracing::warn!("elsewhere"))
                .join()
                .unwrap();
        });
        tracing::warn!("after");
        assert_eq!(events, []);
        let (out, events) = capture_events(|| 5);
        assert_eq!((out, events), (5, vec![]));
    }
}
