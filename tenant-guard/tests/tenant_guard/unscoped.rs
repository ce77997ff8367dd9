//! The escape hatch: every use is audited with its reason, or refused.

use std::sync::{Arc, Mutex};

use hisn_tenant_guard::Error;
use hisn_tenant_guard::db::{
    AuditFuture, PlatformAdmin, UnscopedAccess, UnscopedAuditHook, unscoped,
};
use hisn_tenant_guard::sqlx;

use crate::common::{TENANT_B, lite};

/// (admin, actor, reason, target tenant) of each recorded access.
type Seen = (String, String, String, Option<String>);

#[derive(Debug, Default)]
struct Recorder {
    seen: Mutex<Vec<Seen>>,
    fail: bool,
}

impl UnscopedAuditHook for Recorder {
    fn record<'a>(&'a self, access: UnscopedAccess<'a>) -> AuditFuture<'a> {
        Box::pin(async move {
            // An async store: the hook is awaited before access is granted.
            tokio::task::yield_now().await;
            if self.fail {
                return Err("audit store down".into());
            }
            self.seen.lock().unwrap().push((
                access.admin.to_owned(),
                access.actor.to_owned(),
                access.reason.to_owned(),
                access.target_tenant.map(|t| t.to_string()),
            ));
            Ok(())
        })
    }
}

#[tokio::test]
async fn unscoped_access_calls_the_hook_with_the_reason() {
    let hook = Arc::new(Recorder::default());
    let admin = PlatformAdmin::from_admin_pool(lite::pool().await, hook.clone(), "support-console");
    let mut conn = unscoped(
        &admin,
        Some(TENANT_B.parse().unwrap()),
        "operator:amal",
        "ticket 4711: count assets per tenant",
    )
    .await
    .unwrap();
    let n: i64 = sqlx::query_scalar("select count(*) from assets")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(n, 4, "unscoped sees every tenant");
    assert_eq!(
        *hook.seen.lock().unwrap(),
        vec![(
            "support-console".to_owned(),
            "operator:amal".to_owned(),
            "ticket 4711: count assets per tenant".to_owned(),
            Some(TENANT_B.to_owned()),
        )]
    );
    drop(conn);
    assert!(matches!(
        unscoped(&admin, None, "operator:amal", "   ").await,
        Err(Error::MissingReason)
    ));
    assert!(matches!(
        unscoped(&admin, None, " ", "a reason").await,
        Err(Error::MissingReason)
    ));
    assert_eq!(
        hook.seen.lock().unwrap().len(),
        1,
        "a refused access is not recorded as granted"
    );
}

/// A `MakeWriter` collecting formatted events in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn unscoped_access_emits_a_warning_event() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    // #[tokio::test] runs on the current thread, so the default subscriber
    // sees the event; hisn_test_support::set_default keeps a parallel test
    // without a subscriber from caching the warning's callsite as "never".
    let _guard = hisn_test_support::set_default(subscriber);
    let admin =
        PlatformAdmin::from_admin_pool(lite::pool().await, Arc::new(Recorder::default()), "ops");
    drop(
        unscoped(&admin, None, "oncall", "incident 99 data repair")
            .await
            .unwrap(),
    );
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("WARN"), "{log}");
    assert!(log.contains("unscoped database access"), "{log}");
    assert!(
        log.contains("incident 99 data repair") && log.contains("ops"),
        "{log}"
    );
}

#[tokio::test]
async fn failing_hook_refuses_the_access() {
    let hook = Arc::new(Recorder {
        fail: true,
        ..Recorder::default()
    });
    let admin = PlatformAdmin::from_admin_pool(lite::pool().await, hook, "batch");
    assert!(matches!(
        unscoped(&admin, None, "batch", "nightly export").await,
        Err(Error::AuditHook)
    ));
}
