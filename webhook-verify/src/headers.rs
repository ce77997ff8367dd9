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

    /// Every header as `(name, value)`, in request order, if the source is
    /// a plain list: the verifier then finds all the headers a scheme needs
    /// in one pass instead of one pass per name. The default, `None`, looks
    /// each name up with [`Headers::values`] (right for indexed sources such
    /// as `http::HeaderMap`).
    fn pairs<'a>(&'a self) -> Option<impl Iterator<Item = (&'a str, &'a [u8])> + 'a> {
        None::<std::iter::Empty<(&'a str, &'a [u8])>>
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>> Headers for [(K, V)] {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |(k, _)| k.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    fn pairs<'a>(&'a self) -> Option<impl Iterator<Item = (&'a str, &'a [u8])> + 'a> {
        Some(self.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>> Headers for Vec<(K, V)> {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.as_slice().values(name)
    }

    fn pairs<'a>(&'a self) -> Option<impl Iterator<Item = (&'a str, &'a [u8])> + 'a> {
        self.as_slice().pairs()
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>, const N: usize> Headers for [(K, V); N] {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.as_slice().values(name)
    }

    fn pairs<'a>(&'a self) -> Option<impl Iterator<Item = (&'a str, &'a [u8])> + 'a> {
        self.as_slice().pairs()
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

/// `lower` (a lower-case name) equals `name` ASCII case-insensitively. Most
/// headers differ in length; senders usually spell names in lower case, so
/// an exact compare (vectorised) settles most of the rest.
#[inline]
fn eq_name(lower: &str, name: &str) -> bool {
    lower.len() == name.len() && (lower == name || lower.eq_ignore_ascii_case(name))
}

/// The single values of `names` (distinct, lower-case; matched ASCII
/// case-insensitively): for
/// each, `Ok(None)` when absent and `Err(Malformed)` when repeated, exactly
/// as [`single`] answers name by name, in one pass over a source that lists
/// its headers ([`Headers::pairs`]).
pub(crate) fn singles<'a, H: Headers + ?Sized, const N: usize>(
    h: &'a H,
    names: [&'a str; N],
) -> [crate::Result<Option<&'a [u8]>>; N] {
    let Some(pairs) = h.pairs() else {
        return names.map(|n| single(h, n));
    };
    let mut found: [crate::Result<Option<&'a [u8]>>; N] = [const { Ok(None) }; N];
    for (k, v) in pairs {
        if let Some(i) = names.iter().position(|n| eq_name(n, k))
            && let Some(slot) = found.get_mut(i)
        {
            *slot = match slot {
                Ok(None) => Ok(Some(v)),
                _ => Err(crate::Error::Malformed),
            };
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_lookup_answers_as_name_by_name_lookup() {
        let names = ["a-b", "c", "missing", "x"];
        let lists: [&[(&str, &str)]; 4] = [
            &[("A-B", "1"), ("c", "2"), ("x", "3")],
            &[("x", "1"), ("X", "2"), ("a-b", "3"), ("x", "4")],
            &[],
            &[("c", "1"), ("a-b", "2"), ("C", "3"), ("zz", "4")],
        ];
        for list in lists {
            let by_name = names.map(|n| single(list, n));
            assert_eq!(singles(list, names), by_name, "{list:?}");
        }
    }

    /// `Headers::pairs` is public: a plain list (slice, `Vec`, array) offers
    /// every header as written, in request order, repeats included; an
    /// indexed source (`http::HeaderMap`) offers none and is read by name.
    #[test]
    fn lists_offer_every_pair_in_request_order() {
        let arr = [("B", "1"), ("a", "2"), ("B", "3")];
        let want: Vec<(&str, &[u8])> = vec![("B", &b"1"[..]), ("a", b"2"), ("B", b"3")];
        let from_array: Option<Vec<_>> = arr.pairs().map(Iterator::collect);
        let from_slice: Option<Vec<_>> = arr.as_slice().pairs().map(Iterator::collect);
        let v = arr.to_vec();
        let from_vec: Option<Vec<_>> = v.pairs().map(Iterator::collect);
        assert_eq!(from_array.as_ref(), Some(&want));
        assert_eq!(from_slice.as_ref(), Some(&want));
        assert_eq!(from_vec.as_ref(), Some(&want));
        #[cfg(feature = "http")]
        assert!(http::HeaderMap::new().pairs().is_none());
    }

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
