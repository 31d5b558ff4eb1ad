use std::fmt;

use oauth_common::config::is_loopback;

/// A registered redirect URI: absolute, no fragment, no credentials, and
/// `https` unless the host is loopback (RFC 9700 section 2.1, OAuth 2.1
/// section 2.3.1). Kept exactly as registered: requests are compared with
/// it as strings, including loopback ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri(String);

impl RedirectUri {
    pub fn parse(input: &str) -> Result<Self, String> {
        let url = url::Url::parse(input)
            .map_err(|e| format!("redirect URI {input:?} is not an absolute URL: {e}"))?;
        if url.fragment().is_some() || input.contains('#') {
            return Err(format!("redirect URI {input:?} must not contain a fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("redirect URI {input:?} must not contain credentials"));
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            "http" => {
                return Err(format!(
                    "redirect URI {input:?} must use https (http only on a loopback host)"
                ));
            }
            other => {
                return Err(format!(
                    "redirect URI {input:?}: scheme {other:?} is not supported"
                ));
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("redirect URI {input:?} has no host"));
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("redirect URI {input:?} contains whitespace"));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `scheme://host[:port]`, for CORS and the pages' `form-action`.
    pub fn origin(&self) -> Option<String> {
        let url = url::Url::parse(&self.0).ok()?;
        match url.origin() {
            url::Origin::Tuple(..) => Some(url.origin().ascii_serialization()),
            url::Origin::Opaque(_) => None,
        }
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_must_be_absolute_https_or_loopback_without_fragment() {
        assert!(RedirectUri::parse("https://app.example.com/cb").is_ok());
        assert!(RedirectUri::parse("http://127.0.0.1:3000/cb").is_ok());
        assert!(RedirectUri::parse("http://localhost:3000/cb").is_ok());
        assert!(RedirectUri::parse("/cb").is_err());
        assert!(RedirectUri::parse("https://app.example.com/cb#x").is_err());
        assert!(RedirectUri::parse("https://app.example.com/cb#").is_err());
        assert!(RedirectUri::parse("http://app.example.com/cb").is_err());
        assert!(RedirectUri::parse("javascript:alert(1)").is_err());
        assert!(RedirectUri::parse("https://u:p@app.example.com/cb").is_err());
    }

    #[test]
    fn origin_is_scheme_host_port() {
        let uri = RedirectUri::parse("http://127.0.0.1:3000/cb?x=1").unwrap();
        assert_eq!(uri.origin().unwrap(), "http://127.0.0.1:3000");
    }
}
