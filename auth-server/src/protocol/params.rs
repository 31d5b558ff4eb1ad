//! Request parameters of the protocol endpoints.
//!
//! RFC 6749 section 3.1: parameters sent without a value are treated as
//! omitted, and request and response parameters must not be included more
//! than once. A repeated parameter is remembered here and refused by the
//! endpoint before any engine sees it (oxide-auth would treat it as absent,
//! which for `scope` means the default scope).

use std::collections::HashMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    values: HashMap<String, String>,
    repeated: Vec<String>,
}

impl Params {
    /// From decoded `name=value` pairs in order.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut params = Params::default();
        let mut seen: HashMap<String, ()> = HashMap::new();
        for (name, value) in pairs {
            let name = name.into();
            let value = value.into();
            if seen.insert(name.clone(), ()).is_some() {
                if !params.repeated.contains(&name) {
                    params.repeated.push(name.clone());
                }
                params.values.remove(&name);
                continue;
            }
            if !value.is_empty() {
                params.values.insert(name, value);
            }
        }
        params
    }

    /// Parses `application/x-www-form-urlencoded` text (a query string or a
    /// form body).
    pub fn parse(encoded: &str) -> Self {
        Self::from_pairs(
            url::form_urlencoded::parse(encoded.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())),
        )
    }

    /// A single-valued parameter; `None` when absent, empty or repeated.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn is_repeated(&self, name: &str) -> bool {
        self.repeated.iter().any(|n| n == name)
    }

    /// The first repeated parameter, if any.
    pub fn first_repeated(&self) -> Option<&str> {
        self.repeated.first().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_remembered_and_not_readable() {
        let p = Params::parse("scope=a&client_id=x&scope=b");
        assert!(p.is_repeated("scope"));
        assert_eq!(p.get("scope"), None);
        assert_eq!(p.get("client_id"), Some("x"));
        assert_eq!(p.first_repeated(), Some("scope"));
    }

    #[test]
    fn empty_values_count_as_omitted() {
        let p = Params::parse("state=&client_id=x");
        assert_eq!(p.get("state"), None);
        assert_eq!(p.first_repeated(), None);
    }

    #[test]
    fn percent_encoding_is_decoded() {
        let p = Params::parse("redirect_uri=https%3A%2F%2Fa.example%2Fcb&scope=notes%3Aread+profile");
        assert_eq!(p.get("redirect_uri"), Some("https://a.example/cb"));
        assert_eq!(p.get("scope"), Some("notes:read profile"));
    }
}
