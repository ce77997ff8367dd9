//! Identifier newtypes: parsed once, valid afterwards.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::Error;

/// Parse the canonical hyphenated form only (36 characters, any case), never the
/// nil UUID: a nil tenant is what a missing value defaults to in too many places.
fn parse_uuid(s: &str) -> Result<Uuid, Error> {
    if s.len() != 36 {
        return Err(Error::InvalidId);
    }
    let id = Uuid::try_parse(s).map_err(|_| Error::InvalidId)?;
    if id.is_nil() {
        return Err(Error::InvalidId);
    }
    Ok(id)
}

macro_rules! uuid_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            /// Wrap a UUID; the nil UUID is refused with [`Error::InvalidId`].
            pub fn from_uuid(id: Uuid) -> Result<Self, Error> {
                if id.is_nil() { Err(Error::InvalidId) } else { Ok(Self(id)) }
            }

            /// The UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = Error;
            /// Parse the hyphenated form (`6f1c...-...`); anything else, including
            /// the nil UUID, braces, URNs and the simple form, is [`Error::InvalidId`].
            fn from_str(s: &str) -> Result<Self, Error> {
                parse_uuid(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }
    };
}

uuid_newtype!(
    /// A tenant (the organisation in two-level tenancy): a non-nil UUID.
    TenantId
);
uuid_newtype!(
    /// A user, the token's `sub`: a non-nil UUID.
    UserId
);
uuid_newtype!(
    /// A client inside a tenant (the second level of two-level tenancy).
    ClientId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hyphenated_and_prints_lowercase() {
        let t: TenantId = "6F9619FF-8B86-D011-B42D-00C04FC964FF".parse().unwrap();
        assert_eq!(t.to_string(), "6f9619ff-8b86-d011-b42d-00c04fc964ff");
    }

    #[test]
    fn refuses_nil_and_non_canonical_forms() {
        for bad in [
            "",
            "00000000-0000-0000-0000-000000000000",
            "6f9619ff8b86d011b42d00c04fc964ff",
            "{6f9619ff-8b86-d011-b42d-00c04fc964ff}",
            "urn:uuid:6f9619ff-8b86-d011-b42d-00c04fc964ff",
            "6f9619ff-8b86-d011-b42d-00c04fc964fg",
            "' or 1=1 --",
        ] {
            assert!(
                matches!(bad.parse::<TenantId>(), Err(Error::InvalidId)),
                "{bad}"
            );
        }
        assert!(UserId::from_uuid(Uuid::nil()).is_err());
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Parsing never panics, and whatever parses prints back as the
        /// canonical form that parses to the same id.
        #[test]
        fn parse_is_total_and_round_trips(s in "\\PC{0,40}|[0-9a-fA-F-]{36}") {
            if let Ok(t) = s.parse::<TenantId>() {
                let printed = t.to_string();
                prop_assert_eq!(printed.len(), 36);
                prop_assert_eq!(printed.parse::<TenantId>().unwrap(), t);
                prop_assert_eq!(printed, s.to_ascii_lowercase());
            }
        }

        #[test]
        fn every_non_nil_uuid_round_trips(n in 1u128..) {
            let t = TenantId::from_uuid(Uuid::from_u128(n)).unwrap();
            prop_assert_eq!(t.to_string().parse::<TenantId>().unwrap(), t);
        }
    }
}
