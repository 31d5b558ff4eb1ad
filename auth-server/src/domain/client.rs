use std::fmt;

/// Public clients cannot keep a secret (SPAs, native apps); confidential
/// clients authenticate with one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    Public,
    Confidential,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Public => "public",
            ClientKind::Confidential => "confidential",
        }
    }

    pub fn parse(input: &str) -> Result<Self, String> {
        match input {
            "public" => Ok(ClientKind::Public),
            "confidential" => Ok(ClientKind::Confidential),
            other => Err(format!("unknown client type {other:?}")),
        }
    }
}

/// The grant types this server implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub fn parse(input: &str) -> Result<Self, String> {
        match input {
            "authorization_code" => Ok(GrantType::AuthorizationCode),
            "refresh_token" => Ok(GrantType::RefreshToken),
            "client_credentials" => Ok(GrantType::ClientCredentials),
            other => Err(format!(
                "unknown grant type {other:?} (expected authorization_code, refresh_token or client_credentials)"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
