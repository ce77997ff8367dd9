//! scrypt: PHC strings, the `salt:hash` layouts, and the bounded cost type.

use std::cmp::Ordering;

use zeroize::Zeroizing;

use super::{Kdf, Settings, check_lengths, decimal, phc_b64, phc_b64_encode};
use crate::error::{Error, Result};

/// scrypt cost (N = 2^`log_n`, r, p), with a checked constructor.
///
/// Memory is 128 · r · N bytes; the work is that times p.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScryptCost {
    log_n: u8,
    r: u32,
    p: u32,
}

impl ScryptCost {
    /// Node.js `crypto.scrypt`'s defaults (N = 16384, r = 8, p = 1: 16 MiB),
    /// what most `salt:hash` stores were made with.
    pub const NODE_DEFAULT: Self = Self {
        log_n: 14,
        r: 8,
        p: 1,
    };
    /// Largest memory a stored hash may ask for (128 MiB).
    pub const MAX_MEMORY_BYTES: u64 = 128 << 20;
    /// Largest memory x p (the work of one verification, 256 MiB).
    pub const MAX_WORK_BYTES: u64 = 256 << 20;
    /// Largest log2(N).
    pub const MAX_LOG_N: u8 = 20;
    /// Largest r.
    pub const MAX_R: u32 = 32;
    /// Largest p.
    pub const MAX_P: u32 = 16;
    /// The largest ceiling within every bound (N = 2^17, r = 8, p = 2).
    pub const MAXIMUM: Self = Self {
        log_n: 17,
        r: 8,
        p: 2,
    };

    /// Checked cost.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `log_n` is 0 or above [`ScryptCost::MAX_LOG_N`],
    /// r or p is 0 or above its maximum, or memory or work exceeds its maximum.
    pub fn new(log_n: u8, r: u32, p: u32) -> Result<Self> {
        let c = Self { log_n, r, p };
        if !(1..=Self::MAX_LOG_N).contains(&log_n)
            || !(1..=Self::MAX_R).contains(&r)
            || !(1..=Self::MAX_P).contains(&p)
            || c.memory_bytes() > Self::MAX_MEMORY_BYTES
            || c.work_bytes() > Self::MAX_WORK_BYTES
        {
            return Err(Error::InvalidConfig("scrypt cost out of range"));
        }
        Ok(c)
    }

    /// log2(N).
    pub fn log_n(&self) -> u8 {
        self.log_n
    }
    /// r (block size).
    pub fn r(&self) -> u32 {
        self.r
    }
    /// p (parallelism).
    pub fn p(&self) -> u32 {
        self.p
    }
    /// Memory one run takes: 128 · r · N bytes.
    pub fn memory_bytes(&self) -> u64 {
        (128 * u64::from(self.r)) << self.log_n
    }

    /// Work of one run: memory x p (scrypt's time is proportional to it).
    pub fn work_bytes(&self) -> u64 {
        self.memory_bytes() * u64::from(self.p)
    }

    /// Whether this cost fits `max`'s budget: no more memory and no more work
    /// (its shape, N against r against p, may differ).
    pub(super) fn within(self, max: Self) -> bool {
        self.memory_bytes() <= max.memory_bytes() && self.work_bytes() <= max.work_bytes()
    }

    /// The parameter-wise maximum of two costs within bounds. If the result
    /// exceeds the memory or work bounds, the larger-memory one is kept.
    pub(super) fn max(self, other: Self) -> Self {
        Self::new(
            self.log_n.max(other.log_n),
            self.r.max(other.r),
            self.p.max(other.p),
        )
        .unwrap_or(match self.memory_bytes().cmp(&other.memory_bytes()) {
            Ordering::Less => other,
            _ => self,
        })
    }

    fn params(self) -> Option<::scrypt::Params> {
        ::scrypt::Params::new(self.log_n, self.r, self.p).ok()
    }
}

/// How a `salt:hash` layout feeds its salt to scrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaltInput {
    /// The salt's decoded bytes.
    Decoded,
    /// The salt's text as stored (the Node.js idiom
    /// `scrypt(password, randomBytes(16).toString("hex"), 64)`).
    AsWritten,
}

/// A `salt:hash` scrypt layout. Its parameters are not in the string, so the
/// policy states them.
///
/// The encoding is detected per string: both parts hex (even length) is hex,
/// otherwise both must be base64 (standard alphabet, padding optional). The
/// digest length is the decoded hash's (16 to 128 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaltHashLayout {
    cost: ScryptCost,
    salt: SaltInput,
}

impl SaltHashLayout {
    /// A layout made with `cost`, feeding the salt as `salt` says.
    pub fn new(cost: ScryptCost, salt: SaltInput) -> Self {
        Self { cost, salt }
    }
    /// Node.js's `crypto.scrypt` defaults with the hex salt text as salt.
    pub const NODE_DEFAULT: Self = Self {
        cost: ScryptCost::NODE_DEFAULT,
        salt: SaltInput::AsWritten,
    };
    /// The cost.
    pub fn cost(&self) -> ScryptCost {
        self.cost
    }
    /// How the salt is fed.
    pub fn salt_input(&self) -> SaltInput {
        self.salt
    }
}

fn rejected(why: &'static str) -> Error {
    Error::PasswordHashRejected(why)
}

fn is_hex(s: &str) -> bool {
    s.len().is_multiple_of(2) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_b64(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

/// `<salt>:<hash>` with both parts hex or both base64, nothing else.
pub(super) fn looks_salt_hash(s: &str) -> bool {
    match s.split_once(':') {
        Some((salt, hash)) => {
            !salt.is_empty()
                && !hash.is_empty()
                && ((is_hex(salt) && is_hex(hash)) || (is_b64(salt) && is_b64(hash)))
        }
        None => false,
    }
}

/// Parse `ln=..,r=..,p=..[,l=..]` (any order, each once).
fn parse_params(s: &str) -> Result<(ScryptCost, Option<u32>)> {
    let (mut ln, mut r, mut p, mut l) = (None, None, None, None);
    for kv in s.split(',') {
        let (k, v) = kv
            .split_once('=')
            .ok_or(rejected("malformed scrypt params"))?;
        let slot = match k {
            "ln" => &mut ln,
            "r" => &mut r,
            "p" => &mut p,
            "l" => &mut l,
            _ => return Err(rejected("unknown scrypt param")),
        };
        if slot.replace(decimal(v)?).is_some() {
            return Err(rejected("repeated scrypt param"));
        }
    }
    let (Some(ln), Some(r), Some(p)) = (ln, r, p) else {
        return Err(rejected("missing scrypt params"));
    };
    let ln = u8::try_from(ln).map_err(|_| rejected("scrypt cost out of range"))?;
    let cost = ScryptCost::new(ln, r, p).map_err(|_| rejected("scrypt cost out of range"))?;
    if cost.params().is_none() {
        return Err(rejected("scrypt cost out of range"));
    }
    Ok((cost, l))
}

/// `$scrypt$ln=..,r=..,p=..$<salt>$<hash>`.
pub(super) fn parse_phc(s: &str) -> Result<(Settings, Vec<u8>)> {
    let mut parts = s.split('$');
    let (Some(""), Some("scrypt"), Some(params), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(rejected("malformed scrypt PHC string"));
    };
    let (cost, l) = parse_params(params)?;
    let salt = phc_b64(salt)?;
    let digest = phc_b64(hash)?;
    if l.is_some_and(|l| usize::try_from(l).ok() != Some(digest.len())) {
        return Err(rejected("scrypt length param disagrees with the hash"));
    }
    check_lengths(&salt, digest.len())?;
    let out_len = digest.len();
    Ok((
        Settings {
            kdf: Kdf::Scrypt(cost),
            salt,
            out_len,
        },
        digest,
    ))
}

/// A wrapped hash's inner settings: `$scrypt$ln=..,r=..,p=..,l=..$<salt>`.
pub(super) fn parse_settings(s: &str) -> Result<Settings> {
    let mut parts = s.split('$');
    let (Some(""), Some("scrypt"), Some(params), Some(salt), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(rejected("malformed scrypt settings"));
    };
    let (cost, l) = parse_params(params)?;
    let out_len = l
        .and_then(|l| usize::try_from(l).ok())
        .ok_or(rejected("scrypt settings need l="))?;
    let salt = phc_b64(salt)?;
    check_lengths(&salt, out_len)?;
    Ok(Settings {
        kdf: Kdf::Scrypt(cost),
        salt,
        out_len,
    })
}

/// Normalised settings text (no leading `$`).
pub(super) fn settings_text(c: ScryptCost, salt: &[u8], out_len: usize) -> String {
    format!(
        "scrypt$ln={},r={},p={},l={out_len}${}",
        c.log_n,
        c.r,
        c.p,
        phc_b64_encode(salt)
    )
}

/// `<salt>:<hash>` under `layout`.
pub(super) fn parse_salt_hash(s: &str, layout: SaltHashLayout) -> Result<(Settings, Vec<u8>)> {
    let (salt_text, hash_text) = s.split_once(':').ok_or(rejected("malformed salt:hash"))?;
    let (salt, digest) = if is_hex(salt_text) && is_hex(hash_text) {
        let d = |t: &str| hex::decode(t).map_err(|_| rejected("malformed hex"));
        (d(salt_text)?, d(hash_text)?)
    } else {
        (phc_b64(salt_text)?, phc_b64(hash_text)?)
    };
    let salt = match layout.salt {
        SaltInput::Decoded => salt,
        SaltInput::AsWritten => salt_text.as_bytes().to_vec(),
    };
    check_lengths(&salt, digest.len())?;
    let out_len = digest.len();
    Ok((
        Settings {
            kdf: Kdf::Scrypt(layout.cost),
            salt,
            out_len,
        },
        digest,
    ))
}

/// scrypt's digest of `password`. The cost was checked (and `Params` built)
/// when parsed or configured; `None` (no match) should that ever fail here.
pub(super) fn derive(
    c: ScryptCost,
    salt: &[u8],
    password: &[u8],
    out_len: usize,
) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(vec![0u8; out_len]);
    ::scrypt::scrypt(password, salt, &c.params()?, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_bounds() {
        assert!(ScryptCost::new(14, 8, 1).is_ok());
        assert!(ScryptCost::new(17, 8, 2).is_ok());
        assert!(ScryptCost::new(18, 8, 1).is_err(), "256 MiB memory");
        assert!(ScryptCost::new(17, 8, 3).is_err(), "work");
        assert!(ScryptCost::new(0, 8, 1).is_err());
        assert!(ScryptCost::new(14, 0, 1).is_err());
        assert!(ScryptCost::new(14, 8, 0).is_err());
        assert!(ScryptCost::new(21, 1, 1).is_err());
        assert_eq!(ScryptCost::NODE_DEFAULT.memory_bytes(), 16 << 20);
        assert!(ScryptCost::new(17, 8, 2).unwrap() == ScryptCost::MAXIMUM);
    }

    #[test]
    fn phc_params_are_strict() {
        for bad in [
            "$scrypt$ln=14,r=8$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=14,r=8,p=1,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=14,r=8,p=1,x=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=300,r=8,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=14,r=8,p=1,l=17$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=14,r=8,p=1$c2FsdA$aGFzaA",
            "$scrypt$ln=14,r=8,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA$",
        ] {
            assert!(parse_phc(bad).is_err(), "{bad}");
        }
        let (s, d) = parse_phc("$scrypt$ln=14,r=8,p=1,l=16$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA").unwrap();
        assert_eq!(s.salt, b"salt");
        assert_eq!(d, b"hashhashhashhash");
        let again = parse_settings(&format!(
            "${}",
            settings_text(ScryptCost::NODE_DEFAULT, b"salt", 16)
        ))
        .unwrap();
        assert!(again == s);
    }

    #[test]
    fn salt_hash_detection() {
        // Hex means an even number of hex digits.
        assert!(is_hex("abcd") && is_hex("00FF") && is_hex(""));
        assert!(!is_hex("abc") && !is_hex("zz"));
        // Hex only when both parts are: a hex-looking salt with a base64 hash
        // is read as base64 on both sides.
        let layout = SaltHashLayout::new(ScryptCost::NODE_DEFAULT, SaltInput::Decoded);
        let (s, d) = parse_salt_hash("00ff:aGFzaGhhc2hoYXNoaGFzaA", layout).unwrap();
        assert_eq!(d, b"hashhashhashhash");
        assert_eq!(s.salt, phc_b64("00ff").unwrap());
        assert!(looks_salt_hash("00ff:abcd"));
        assert!(looks_salt_hash("c2FsdA==:aGFzaA=="));
        assert!(!looks_salt_hash("salt"));
        assert!(!looks_salt_hash(":abcd"));
        assert!(!looks_salt_hash("ab:cd:ef"));
        assert!(!looks_salt_hash("$2b$:x"));
    }

    /// The accessors return the checked parameters; `within` needs both no
    /// more memory and no more work; `max` of two costs whose parameter-wise
    /// maximum is out of bounds keeps the one with more memory, whichever
    /// side it is on.
    #[test]
    fn cost_accessors_within_and_max() {
        let c = ScryptCost::new(12, 4, 3).unwrap();
        assert_eq!((c.log_n(), c.r(), c.p()), (12, 4, 3));
        let big_memory = ScryptCost::new(17, 8, 1).unwrap();
        let big_work = ScryptCost::new(10, 8, 16).unwrap();
        assert!(ScryptCost::NODE_DEFAULT.within(big_memory));
        assert!(big_memory.within(big_memory));
        assert!(!big_memory.within(ScryptCost::NODE_DEFAULT), "more memory");
        let more_work = ScryptCost::new(14, 8, 2).unwrap();
        assert!(
            !more_work.within(ScryptCost::NODE_DEFAULT),
            "same memory, more work"
        );
        assert_eq!(big_memory.max(big_work), big_memory);
        assert_eq!(big_work.max(big_memory), big_memory);
        assert_eq!(
            ScryptCost::NODE_DEFAULT.max(more_work),
            ScryptCost::new(14, 8, 2).unwrap()
        );
    }
}
