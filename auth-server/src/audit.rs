//! Audit events (ASVS V16.3): one structured log event per security
//! decision, on the `audit` target, so they can be routed and kept apart
//! from the operational log. Each names the event, the client address, the
//! client id and the user id where they are known; the request id comes
//! from the request's root span, which every JSON log line carries. Never a
//! password, token, code, secret or cookie: the only values that can be
//! passed in are identifiers.

use std::net::IpAddr;

use uuid::Uuid;

/// The security decisions that are audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    SignInSucceeded,
    SignInFailed,
    /// Refused before any password check: the address or client is over
    /// its failure limit.
    Throttled,
    /// Refused before any password check: the account is locked by its
    /// failed sign-ins (the answer looks like a wrong password).
    AccountLocked,
    ConsentGranted,
    ConsentDenied,
    RefreshReuseDetected,
    TokenRevoked,
    LoggedOut,
    ClientAuthenticationFailed,
    ClientCreated,
    UserCreated,
    KeyRotated,
    UserPasswordChanged,
    UserRolesChanged,
    UserDisabled,
    UserEnabled,
    UserUnlocked,
    UserDeleted,
    ClientUpdated,
    ClientSecretRotated,
    ClientSecretRetired,
    ClientDeleted,
    KeyRetired,
    KeysRewrapped,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignInSucceeded => "sign_in_succeeded",
            Self::SignInFailed => "sign_in_failed",
            Self::Throttled => "throttled",
            Self::AccountLocked => "account_locked",
            Self::ConsentGranted => "consent_granted",
            Self::ConsentDenied => "consent_denied",
            Self::RefreshReuseDetected => "refresh_reuse_detected",
            Self::TokenRevoked => "token_revoked",
            Self::LoggedOut => "logged_out",
            Self::ClientAuthenticationFailed => "client_authentication_failed",
            Self::ClientCreated => "client_created",
            Self::UserCreated => "user_created",
            Self::KeyRotated => "key_rotated",
            Self::UserPasswordChanged => "user_password_changed",
            Self::UserRolesChanged => "user_roles_changed",
            Self::UserDisabled => "user_disabled",
            Self::UserEnabled => "user_enabled",
            Self::UserUnlocked => "user_unlocked",
            Self::UserDeleted => "user_deleted",
            Self::ClientUpdated => "client_updated",
            Self::ClientSecretRotated => "client_secret_rotated",
            Self::ClientSecretRetired => "client_secret_retired",
            Self::ClientDeleted => "client_deleted",
            Self::KeyRetired => "key_retired",
            Self::KeysRewrapped => "keys_rewrapped",
        }
    }
}

/// Who and where, as far as known.
#[derive(Debug, Clone, Copy, Default)]
pub struct Actor<'a> {
    pub client_ip: Option<IpAddr>,
    pub client_id: Option<&'a str>,
    pub user_id: Option<Uuid>,
}

impl<'a> Actor<'a> {
    pub fn ip(client_ip: IpAddr) -> Self {
        Self {
            client_ip: Some(client_ip),
            ..Self::default()
        }
    }

    pub fn client(mut self, client_id: &'a str) -> Self {
        self.client_id = Some(client_id);
        self
    }

    pub fn user(mut self, user_id: Uuid) -> Self {
        self.user_id = Some(user_id);
        self
    }
}

/// Records `event` with a short free-text `detail` (a fixed phrase, never
/// request data).
pub fn record(event: Event, actor: Actor<'_>, detail: &'static str) {
    let ip = actor.client_ip.map(|ip| ip.to_string());
    // A client id can be whatever a request said; keep the log line bounded.
    let client_id: String = actor.client_id.unwrap_or("-").chars().take(128).collect();
    let user = actor.user_id.map(|u| u.to_string());
    tracing::info!(
        target: "audit",
        audit = event.as_str(),
        client_ip = ip.as_deref().unwrap_or("-"),
        client_id = client_id.as_str(),
        user_id = user.as_deref().unwrap_or("-"),
        detail,
        "audit: {}",
        event.as_str()
    );
}
