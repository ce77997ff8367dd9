//! Where header values come from: any type that can list the values of a header
//! by (ASCII case-insensitive) name.

/// Read access to request headers.
///
/// Names are compared ASCII case-insensitively. A header that occurs more than
/// once is refused by the verifier as [`crate::Error::Malformed`] (two values
/// are ambiguous, and a proxy that concatenates them could change the meaning).
pub trait Headers {
    /// Every value of header `name`, in request order.
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a;
}

impl<K: AsRef<str>, V: AsRef<[u8]>> Headers for [(K, V)] {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |(k, _)| k.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>> Headers for Vec<(K, V)> {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.as_slice().values(name)
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>, const N: usize> Headers for [(K, V); N] {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.as_slice().values(name)
    }
}

#[cfg(feature = "http")]
impl Headers for http::HeaderMap {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.get_all(name)
            .into_iter()
            .map(http::HeaderValue::as_bytes)
    }
}

/// The single value of `name`: `Ok(None)` when absent, `Err(Malformed)` when
/// repeated.
pub(crate) fn single<'a, H: Headers + ?Sized>(
    h: &'a H,
    name: &'a str,
) -> crate::Result<Option<&'a [u8]>> {
    let mut it = h.values(name);
    let first = it.next();
    if it.next().is_some() {
        return Err(crate::Error::Malformed);
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive_and_repeats_are_refused() {
        let h = [("Webhook-Id", "a"), ("x", "b"), ("x", "c")];
        assert_eq!(single(&h, "webhook-id"), Ok(Some(&b"a"[..])));
        assert_eq!(single(&h, "missing"), Ok(None));
        assert_eq!(single(&h, "X"), Err(crate::Error::Malformed));
    }

    #[cfg(feature = "http")]
    #[test]
    fn http_header_map_is_a_header_source() {
        let mut m = http::HeaderMap::new();
        m.insert("webhook-id", http::HeaderValue::from_static("msg_1"));
        m.append("x", http::HeaderValue::from_static("1"));
        m.append("x", http::HeaderValue::from_static("2"));
        assert_eq!(single(&m, "Webhook-Id"), Ok(Some(&b"msg_1"[..])));
        assert_eq!(single(&m, "x"), Err(crate::Error::Malformed));
        assert_eq!(single(&m, "not a header name"), Ok(None));
    }
}
