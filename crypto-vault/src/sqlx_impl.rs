//! `sqlx` support: [`Ciphertext`] is stored as bytes (`bytea` in PostgreSQL,
//! `BLOB` in SQLite) and [`TextCiphertext`] as its text form (`text`). Decoding
//! validates the format, so a malformed column value is a decode error, never a
//! panic. Decryption stays explicit: a row holds ciphertexts, and the caller
//! decrypts with the row's context.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};

use crate::format::Ciphertext;

impl<DB: Database> Type<DB> for Ciphertext
where
    Vec<u8>: Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <Vec<u8> as Type<DB>>::type_info()
    }
    fn compatible(ty: &DB::TypeInfo) -> bool {
        <Vec<u8> as Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: Database> Encode<'q, DB> for Ciphertext
where
    Vec<u8>: Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <Vec<u8> as Encode<'q, DB>>::encode_by_ref(&self.as_bytes().to_vec(), buf)
    }
}

impl<'r, DB: Database> Decode<'r, DB> for Ciphertext
where
    Vec<u8>: Decode<'r, DB>,
{
    fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        let bytes = <Vec<u8> as Decode<'r, DB>>::decode(value)?;
        Ok(Ciphertext::from_vec(bytes)?)
    }
}

/// A [`Ciphertext`] stored in a text column as `hv1:<base64url>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextCiphertext(pub Ciphertext);

impl<DB: Database> Type<DB> for TextCiphertext
where
    String: Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <String as Type<DB>>::type_info()
    }
    fn compatible(ty: &DB::TypeInfo) -> bool {
        <String as Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: Database> Encode<'q, DB> for TextCiphertext
where
    String: Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, DB>>::encode_by_ref(&self.0.to_text(), buf)
    }
}

impl<'r, DB: Database> Decode<'r, DB> for TextCiphertext
where
    String: Decode<'r, DB>,
{
    fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        let s = <String as Decode<'r, DB>>::decode(value)?;
        Ok(TextCiphertext(Ciphertext::from_text(&s)?))
    }
}
