//! `serde` support: a [`Ciphertext`] serializes as its text form, so an encrypted
//! column in a JSON document or a text column round-trips as `"hv1:..."`.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::format::Ciphertext;

impl Serialize for Ciphertext {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_text())
    }
}

impl<'de> Deserialize<'de> for Ciphertext {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ciphertext::from_text(&s).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_as_text_form() {
        let ct = Ciphertext::from_bytes(&[1u8; 40]).unwrap();
        let j = serde_json::to_string(&ct).unwrap();
        assert!(j.starts_with("\"hv1:"));
        assert_eq!(serde_json::from_str::<Ciphertext>(&j).unwrap(), ct);
        assert!(serde_json::from_str::<Ciphertext>("\"hv1:!!\"").is_err());
    }
}
