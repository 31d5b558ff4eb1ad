//! The cache of verified tokens (`oauth_common::verified`), for this
//! server's claims.

use oauth_common::verified::Verified;
pub use oauth_common::verified::VerifiedCache;

use super::verify::Claims;

impl Verified for Claims {
    fn exp(&self) -> i64 {
        self.exp
    }
    fn kid(&self) -> &str {
        &self.kid
    }
}
