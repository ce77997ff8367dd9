//! Second factor and break-glass access (issue #15), wired from the crates:
//! crypto-vault's TOTP and recovery codes, tenant-guard's step-up rules and
//! signed support grants, rate-limit's per-account try limit, audit-log for
//! every enrolment, step-up, failure, recovery-code use and grant
//! issue/use/revoke.
//!
//! - **Policy.** `admin` and `owner` must have TOTP enrolled once the grace
//!   period (`HISN_MFA_GRACE_DAYS`, 14) from their first sign-in is over; the
//!   admin-only permissions (`manage_members`: members, roles, API keys,
//!   integration secrets, audit trail, exports; `manage_tenant`: erasure)
//!   need a second factor no older than `HISN_STEP_UP_MAX_AGE_SECS` (600).
//! - **Sessions** carry `amr` (`pwd`, `otp`), `mfa_time`,
//!   `must_change_password` and the facts the enrolment rule needs
//!   (`hisn_first_sign_in`, `hisn_mfa_enrolled`), all signed by the server.
//! - **Support grants** are signed with an Ed25519 key (EdDSA): the service
//!   verifies with the public key only; the console that signs lives here for
//!   the demo, in production it is the support tool holding the private key.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hisn_crypto_vault::{RecoveryCodes, SecretKey, TotpVerifier};
use hisn_rate_limit::{KeyKind, Policy, Tiers};
use hisn_tenant_guard::grant::{
    GrantAuditHook, GrantNotifier, GrantRevocation, GrantSigner, GrantUse, GrantVerifier,
    HookFuture,
};
use hisn_tenant_guard::jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use hisn_tenant_guard::{Permission, Role, RolePolicy};
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::{Zeroize, Zeroizing};

use crate::audit::Audit;
use crate::config::Config;
use crate::db::Platform;
use crate::shared::SharedLimiter;

/// File of the local MFA and grant keys inside the data directory.
pub const KEY_FILE: &str = "local-mfa-keys.json";
/// `iss` of support grants.
pub const GRANT_ISSUER: &str = "hisn-example-server/support-console";
/// `aud` of support grants (never the access tokens' audience).
pub const GRANT_AUDIENCE: &str = "hisn-example-api/break-glass";
/// `kid` of the local grant key.
pub const GRANT_KID: &str = "grant-local-1";
/// Issuer shown by authenticator apps.
pub const TOTP_ISSUER: &str = "Hisn Example";

/// Name of the permission of the sensitive admin actions (role changes,
/// new members and API keys, integration secrets, exports, erasure): only
/// `admin` and `owner` hold it, and it needs a recent second factor.
pub const STEP_UP_PERMISSION: &str = "admin_step_up";

static STEP_UP: LazyLock<Permission> =
    LazyLock::new(|| Permission::new(STEP_UP_PERMISSION).unwrap_or(Permission::MANAGE_TENANT));

/// The permission of the sensitive admin actions (see [`STEP_UP_PERMISSION`]).
pub fn step_up_permission() -> &'static Permission {
    &STEP_UP
}

/// The role policy: the default roles; `admin` and `owner` must enrol TOTP
/// within the grace period from their first sign-in (after it, their
/// admin-only permissions are refused until they do); the sensitive admin
/// actions ([`step_up_permission`]) and `manage_tenant` need a second factor
/// no older than `HISN_STEP_UP_MAX_AGE_SECS`. Within the grace period an
/// admin without TOTP keeps the other admin permissions (member list, audit
/// trail).
pub fn policy(config: &Config) -> RolePolicy {
    let grace = Duration::from_secs(config.mfa_grace_days.saturating_mul(86_400));
    let max_age = Some(Duration::from_secs(config.step_up_max_age_secs));
    RolePolicy::default()
        .grant(Role::ADMIN, [step_up_permission().clone()])
        .grant(Role::OWNER, [step_up_permission().clone()])
        .require_mfa_enrolment(Role::ADMIN, grace)
        .require_mfa_enrolment(Role::OWNER, grace)
        .require_second_factor(step_up_permission().clone(), max_age)
        .require_second_factor(Permission::MANAGE_TENANT, max_age)
}

/// The MFA and break-glass components of the server.
pub struct Mfa {
    /// TOTP verification (window ±1 step, replay refused through the stored last step).
    pub totp: TotpVerifier,
    /// Tries per account per 30-second step ([`hisn_crypto_vault::totp::RECOMMENDED_TRIES_PER_STEP`]);
    /// on Redis when `REDIS_URL` is set, so the limit holds across instances.
    pub limiter: Arc<SharedLimiter>,
    /// Consecutive failures after which the factor is locked
    /// ([`hisn_crypto_vault::totp::RECOMMENDED_MAX_FAILURES`]); unlocked by a recovery code.
    pub max_failures: i64,
    /// Recovery codes (peppered hashes).
    pub recovery: RecoveryCodes,
    /// Signs support grants (the support console).
    pub signer: GrantSigner,
    /// Verifies support grants (public key only) and runs the hooks on every use.
    pub verifier: Arc<GrantVerifier>,
}

impl std::fmt::Debug for Mfa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mfa")
            .field("max_failures", &self.max_failures)
            .finish_non_exhaustive()
    }
}

/// Why the MFA components could not be built (operator-facing).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MfaError {
    /// The key file could not be read, written or parsed.
    #[error("mfa key file: {0}")]
    Keys(String),
    /// A component refused its configuration.
    #[error("mfa configuration: {0}")]
    Config(String),
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    grant_ed25519_seed: String,
    recovery_pepper: String,
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        self.grant_ed25519_seed.zeroize();
        self.recovery_pepper.zeroize();
    }
}

/// The PKCS#8 v1 encoding of an Ed25519 private key (RFC 8410 §7): a fixed
/// 16-byte prefix, then the 32-byte seed.
fn ed25519_pkcs8(seed: &[u8; 32]) -> Zeroizing<Vec<u8>> {
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut der = Zeroizing::new(Vec::with_capacity(48));
    der.extend_from_slice(&PREFIX);
    der.extend_from_slice(seed);
    der
}

fn load_or_generate(dir: &Path) -> Result<(Zeroizing<[u8; 32]>, SecretKey), MfaError> {
    let path = dir.join(KEY_FILE);
    let err = |e: &dyn std::fmt::Display| MfaError::Keys(format!("{}: {e}", path.display()));
    if !path.exists() {
        let r = |_| MfaError::Keys("random generator failed".into());
        let file = KeyFile {
            grant_ed25519_seed: STANDARD.encode(SecretKey::generate().map_err(r)?.expose_secret()),
            recovery_pepper: STANDARD.encode(SecretKey::generate().map_err(r)?.expose_secret()),
        };
        let text = Zeroizing::new(serde_json::to_string_pretty(&file).map_err(|e| err(&e))?);
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&path).map_err(|e| err(&e))?;
        f.write_all(text.as_bytes()).map_err(|e| err(&e))?;
        f.sync_all().map_err(|e| err(&e))?;
    }
    let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| err(&e))?);
    let file: KeyFile = serde_json::from_str(&text).map_err(|_| err(&"malformed"))?;
    let bytes = |s: &str| -> Result<Zeroizing<Vec<u8>>, MfaError> {
        Ok(Zeroizing::new(
            STANDARD.decode(s).map_err(|_| err(&"malformed"))?,
        ))
    };
    let seed = bytes(&file.grant_ed25519_seed)?;
    let seed: [u8; 32] = seed.as_slice().try_into().map_err(|_| err(&"malformed"))?;
    let pepper =
        SecretKey::from_slice(&bytes(&file.recovery_pepper)?).map_err(|_| err(&"malformed"))?;
    Ok((Zeroizing::new(seed), pepper))
}

/// The grant signer over the local key in `dir` (tests sign grants with it
/// on their own clock).
pub fn grant_signer(dir: &Path) -> Result<GrantSigner, MfaError> {
    let (seed, _) = load_or_generate(dir)?;
    signer_from_seed(&seed)
}

fn signer_from_seed(seed: &[u8; 32]) -> Result<GrantSigner, MfaError> {
    let key = EncodingKey::from_ed_der(&ed25519_pkcs8(seed));
    GrantSigner::new(
        GRANT_ISSUER,
        GRANT_AUDIENCE,
        Algorithm::EdDSA,
        GRANT_KID,
        key,
    )
    .map_err(|e| MfaError::Config(e.to_string()))
}

impl Mfa {
    /// Build the components: keys from `dir` (generated on first start),
    /// grant hooks over `audit` and `db`, the TOTP try limit on Redis under
    /// `redis_prefix` when `redis` is given, else in process.
    pub async fn new(
        config: &Config,
        dir: &Path,
        audit: Audit,
        db: Platform,
        redis: Option<&redis::Client>,
        redis_prefix: &str,
    ) -> Result<Self, MfaError> {
        use hisn_crypto_vault::totp::{RECOMMENDED_MAX_FAILURES, RECOMMENDED_TRIES_PER_STEP};
        let (seed, pepper) = load_or_generate(dir)?;
        let signer = signer_from_seed(&seed)?;
        let public = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        let hooks = Arc::new(GrantHooks { audit, db });
        let verifier = GrantVerifier::builder(GRANT_ISSUER, GRANT_AUDIENCE, Algorithm::EdDSA)
            .key(GRANT_KID, DecodingKey::from_ed_der(&public))
            .leeway(config.grant_leeway_secs)
            .revocation(hooks.clone())
            .audit(hooks.clone())
            .notifier(hooks)
            .build()
            .map_err(|e| MfaError::Config(e.to_string()))?;
        let rl = |e: hisn_rate_limit::Error| MfaError::Config(e.to_string());
        let per_step = std::num::NonZeroU32::new(RECOMMENDED_TRIES_PER_STEP)
            .unwrap_or(std::num::NonZeroU32::MIN);
        let tier = Policy::new(
            "totp_account",
            per_step,
            Duration::from_secs(30),
            KeyKind::Account,
        )
        .and_then(Policy::strict)
        .map_err(rl)?
        // The operator's choice for every Redis-backed tier; open still
        // leaves the failure ceiling in the database (100 tries in all).
        .on_backend_failure(config.rate_limit_on_redis_failure.mode());
        Ok(Self {
            totp: TotpVerifier::default(),
            limiter: Arc::new(
                SharedLimiter::new(Tiers::new(vec![tier]).map_err(rl)?, redis, redis_prefix)
                    .await
                    .map_err(rl)?,
            ),
            max_failures: i64::from(RECOMMENDED_MAX_FAILURES),
            recovery: RecoveryCodes::new(pepper),
            signer,
            verifier: Arc::new(verifier),
        })
    }
}

/// The grant hooks: revocation from the `support_grants` table (a grant
/// this server has no record of counts as revoked), every use appended to
/// the tenant's audit chain, and a notification row for the tenant's admins.
#[derive(Debug, Clone)]
struct GrantHooks {
    audit: Audit,
    db: Platform,
}

impl GrantRevocation for GrantHooks {
    fn is_revoked<'a>(
        &'a self,
        grant: &'a hisn_tenant_guard::grant::Grant,
    ) -> HookFuture<'a, bool> {
        Box::pin(async move {
            Ok(
                !crate::db::mfa::grant_live(&self.db, grant.tenant(), &grant.id().to_string())
                    .await?,
            )
        })
    }
}

impl GrantAuditHook for GrantHooks {
    fn record<'a>(&'a self, u: GrantUse<'a>) -> HookFuture<'a, ()> {
        Box::pin(async move {
            let at = crate::audit::audit_tenant(u.grant.tenant()).map_err(|_| "tenant id")?;
            let (ip, request_id, action) = crate::routes::parse_grant_action(u.action);
            let mut event =
                hisn_audit_log::Event::builder(&at, u.grant.support_user(), "grant.use")
                    .entity("support_grant", &u.grant.id().to_string())
                    .diff(&json!({ "action": action, "ticket": u.grant.ticket() }));
            if let Some(ip) = ip {
                event = event.source_ip(ip);
            }
            if let Some(id) = request_id {
                event = event.request_id(id);
            }
            self.audit
                .append(event)
                .await
                .map_err(|_| "audit append failed")?;
            crate::metrics::global().grant_use();
            Ok(())
        })
    }
}

impl GrantNotifier for GrantHooks {
    fn notify<'a>(&'a self, u: GrantUse<'a>) -> HookFuture<'a, ()> {
        Box::pin(async move {
            let (_, _, action) = crate::routes::parse_grant_action(u.action);
            let body = json!({
                "grant_id": u.grant.id().to_string(),
                "support_user": u.grant.support_user(),
                "action": action,
                "reason": u.grant.reason(),
                "ticket": u.grant.ticket(),
                "expires_at": u.grant.expires_at(),
                "at": u.at,
            });
            crate::db::mfa::notify_admins(&self.db, u.grant.tenant(), "support_grant.used", &body)
                .await?;
            Ok(())
        })
    }
}
