//! Parsed values: once one of these exists it is known to be well formed.
//! Each `parse` returns a `Result` whose error text is fit to show a user.

mod client;
mod password;
mod redirect_uri;
mod role;
mod scope;
mod username;

pub use client::{ClientKind, GrantType};
pub use password::{Password, PasswordHash};
pub use redirect_uri::RedirectUri;
pub use role::{Role, Roles};
pub use scope::{Scope, ScopeSet};
pub use username::Username;
