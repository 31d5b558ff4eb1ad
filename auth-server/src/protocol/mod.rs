//! OAuth decisions, apart from HTTP and SQL: this module imports neither
//! actix nor diesel. Storage is reached through small traits defined next to
//! the code that uses them; time is always a parameter.

pub mod authorize;
pub mod client_auth;
pub mod client_credentials;
pub mod code;
pub mod engine;
mod error;
pub mod events;
pub mod grants;
pub mod introspect;
pub mod metadata;
pub mod oidc;
mod params;
pub mod pkce;
pub mod refresh;
pub mod revoke;
pub mod scope;
pub mod session;
pub mod throttle;
pub mod tokens;
pub mod userinfo;

pub use error::{OAuthError, StoreError};
pub use params::Params;
