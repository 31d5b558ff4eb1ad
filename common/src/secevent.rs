//! The event types of the revocation feed's Security Event Tokens (RFC
//! 8417), shared by the auth-server that signs them and the resource
//! servers that read them (`docs/revocation-feed.md`).

/// OpenID CAEP 1.0 section 3.1: a session (`sub_id` format `opaque`), or
/// every session of a user (`iss_sub`).
pub const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// Ours, where no registered type fits: a refresh family (`grant_id`).
pub const GRANT_REVOKED: &str = "urn:x-oauth-notes:secevent:grant-revoked";
/// Ours: one access token (`jti`).
pub const TOKEN_REVOKED: &str = "urn:x-oauth-notes:secevent:token-revoked";
/// Ours: a client (`client_id`).
pub const CLIENT_REVOKED: &str = "urn:x-oauth-notes:secevent:client-revoked";
