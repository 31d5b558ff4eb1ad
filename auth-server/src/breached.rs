//! Breached-password check (ASVS V6.2, NIST SP 800-63B section 3.1.1.2)
//! wherever a password is set.
//!
//! Two sources, either or both:
//! - a k-anonymity range API (`AUTH_BREACHED_PASSWORDS_URL`): only the
//!   first five hex characters of the password's SHA-1 are sent, to
//!   `{url}/range/{prefix}`; the answer lists `SUFFIX:COUNT` lines that are
//!   compared here. Padding lines (count 0, asked for with `Add-Padding`)
//!   are ignored. Two-second timeout; when the service cannot be reached,
//!   `AUTH_BREACHED_PASSWORDS_FAIL=open` lets the password through with a
//!   warning, `closed` refuses it;
//! - a local file (`AUTH_BREACHED_PASSWORDS_FILE`) in the published corpus
//!   format, `SHA1:COUNT` per line sorted by hash, binary-searched with
//!   seeks so a multi-gigabyte file is never loaded.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Seek as _, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use openssl::hash::{MessageDigest, hash};

const TIMEOUT: Duration = Duration::from_secs(2);

/// What to do when the range API cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    Open,
    Closed,
}

impl std::str::FromStr for FailMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(Self::Open),
            "closed" => Ok(Self::Closed),
            other => Err(format!("{other:?} is not open or closed")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreachedPasswords {
    pub range_url: Option<String>,
    pub file: Option<PathBuf>,
    pub fail: FailMode,
}

/// Why a password was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Seen in a breach `count` times.
    Breached { count: u64 },
    /// The range API could not be reached and the mode is `closed`.
    Unavailable(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Breached { count } => write!(
                f,
                "this password appears in {count} known data breach(es); choose another"
            ),
            Self::Unavailable(why) => write!(
                f,
                "the breached-password service cannot be reached ({why}) and AUTH_BREACHED_PASSWORDS_FAIL is closed"
            ),
        }
    }
}

/// The uppercase hex SHA-1 of `password`.
fn sha1_hex(password: &str) -> Result<String, String> {
    let digest = hash(MessageDigest::sha1(), password.as_bytes()).map_err(|e| e.to_string())?;
    Ok(digest.iter().map(|b| format!("{b:02X}")).collect())
}

impl BreachedPasswords {
    pub fn is_off(&self) -> bool {
        self.range_url.is_none() && self.file.is_none()
    }

    /// Refuses a password found in a breach. Blocking (network, disk).
    pub fn check(&self, password: &str) -> Result<(), Refusal> {
        if self.is_off() {
            return Ok(());
        }
        let digest = sha1_hex(password).map_err(Refusal::Unavailable)?;
        if let Some(path) = &self.file {
            // A configured file that cannot be read is a setup error: refuse
            // rather than silently skip the check.
            match search_file(path, &digest) {
                Ok(Some(count)) => return Err(Refusal::Breached { count }),
                Ok(None) => {}
                Err(e) => return Err(Refusal::Unavailable(format!("{}: {e}", path.display()))),
            }
        }
        if let Some(url) = &self.range_url {
            match query_range(url, &digest) {
                Ok(Some(count)) => return Err(Refusal::Breached { count }),
                Ok(None) => {}
                Err(why) if self.fail == FailMode::Open => {
                    tracing::warn!(reason = %why, "breached-password service unreachable; password accepted (fail open)");
                }
                Err(why) => return Err(Refusal::Unavailable(why)),
            }
        }
        Ok(())
    }
}

/// How often the range answer lists `digest`'s suffix (0 lines are padding).
fn count_in_range(body: &str, suffix: &str) -> Option<u64> {
    body.lines().find_map(|line| {
        let (s, count) = line.trim().split_once(':')?;
        if !s.eq_ignore_ascii_case(suffix) {
            return None;
        }
        count.trim().parse::<u64>().ok().filter(|c| *c > 0)
    })
}

fn query_range(base: &str, digest: &str) -> Result<Option<u64>, String> {
    let (prefix, suffix) = digest.split_at(5);
    let url = format!("{}/range/{prefix}", base.trim_end_matches('/'));
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::NativeTls)
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .tls_config(tls)
        .max_redirects(0)
        .http_status_as_error(true)
        .build()
        .into();
    let mut response = agent
        .get(&url)
        .header("Add-Padding", "true")
        .call()
        .map_err(|e| e.to_string())?;
    let body = response
        .body_mut()
        .with_config()
        .limit(4 * 1024 * 1024)
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok(count_in_range(&body, suffix))
}

/// Binary search of a sorted `SHA1:COUNT` file for `digest`.
fn search_file(path: &std::path::Path, digest: &str) -> std::io::Result<Option<u64>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    // Invariant: every line starting before `low` sorts before `digest`;
    // no line starting at or after `high` can be it.
    let (mut low, mut high) = (0u64, len);
    while low < high {
        let mid = low + (high - low) / 2;
        let Some(line) = line_at_or_after(&mut file, mid)? else {
            high = mid;
            continue;
        };
        let hash = line.text.split(':').next().unwrap_or("").trim();
        match hash.to_ascii_uppercase().as_str().cmp(digest) {
            std::cmp::Ordering::Equal => {
                let count = line.text.split(':').nth(1).and_then(|c| c.trim().parse().ok());
                return Ok(Some(count.unwrap_or(1)));
            }
            std::cmp::Ordering::Less => low = line.start + line.bytes,
            std::cmp::Ordering::Greater => high = mid,
        }
    }
    Ok(None)
}

/// One line of the corpus file.
struct Line {
    start: u64,
    /// Its length in the file, newline included.
    bytes: u64,
    text: String,
}

/// The first whole line that starts at or after `offset` (the line at 0
/// when `offset` is 0).
fn line_at_or_after(file: &mut File, offset: u64) -> std::io::Result<Option<Line>> {
    let mut start = offset;
    if offset > 0 {
        // Step back one byte: if it is a newline, `offset` starts a line.
        file.seek(SeekFrom::Start(offset - 1))?;
        let mut skipped = Vec::new();
        BufReader::new(&mut *file).read_until(b'\n', &mut skipped)?;
        start = offset - 1 + skipped.len() as u64;
    }
    file.seek(SeekFrom::Start(start))?;
    let mut raw = Vec::new();
    BufReader::new(&mut *file).read_until(b'\n', &mut raw)?;
    if raw.is_empty() {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&raw);
    let text = if start == 0 {
        text.trim_start_matches('\u{feff}')
    } else {
        &text
    };
    Ok(Some(Line {
        start,
        bytes: raw.len() as u64,
        text: text.trim_end_matches(['\n', '\r']).to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn the_sha1_is_uppercase_hex() {
        assert_eq!(
            sha1_hex("password").unwrap(),
            "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8"
        );
    }

    #[test]
    fn range_answers_are_matched_on_the_suffix_and_padding_is_ignored() {
        let body = "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n1E4C9B93F3F0682250B6CF8331B7EE68FD8:3730471\r\nAAAA:0\r\n";
        assert_eq!(
            count_in_range(body, "1E4C9B93F3F0682250B6CF8331B7EE68FD8"),
            Some(3_730_471)
        );
        assert_eq!(count_in_range(body, "AAAA"), None);
        assert_eq!(count_in_range(body, "BBBB"), None);
    }

    #[test]
    fn crlf_lowercase_a_bom_and_no_final_newline_are_understood() {
        let mut hashes: Vec<String> = (0..7u32).map(|i| sha1_hex(&format!("x{i}")).unwrap()).collect();
        hashes.sort();
        let dir = std::env::temp_dir().join(format!("breached-crlf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("corpus.txt");
        let body = hashes
            .iter()
            .map(|h| format!("{}:3", h.to_ascii_lowercase()))
            .collect::<Vec<_>>()
            .join("\r\n");
        std::fs::write(&path, format!("\u{feff}{body}")).unwrap();
        for h in &hashes {
            assert_eq!(search_file(&path, h).unwrap(), Some(3), "{h}");
        }
        assert_eq!(search_file(&path, &sha1_hex("absent").unwrap()).unwrap(), None);
        std::fs::write(&path, "").unwrap();
        assert_eq!(search_file(&path, &hashes[0]).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_file_is_searched_for_every_line_and_only_those() {
        let mut hashes: Vec<String> = (0..500u32)
            .map(|i| sha1_hex(&format!("pw{i}")).unwrap())
            .collect();
        hashes.sort();
        let dir = std::env::temp_dir().join(format!("breached-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("corpus.txt");
        let mut file = File::create(&path).unwrap();
        for (i, h) in hashes.iter().enumerate() {
            writeln!(file, "{h}:{}", i + 1).unwrap();
        }
        drop(file);
        for (i, h) in hashes.iter().enumerate() {
            assert_eq!(search_file(&path, h).unwrap(), Some(i as u64 + 1), "{h}");
        }
        for i in 500..600u32 {
            let h = sha1_hex(&format!("pw{i}")).unwrap();
            assert_eq!(search_file(&path, &h).unwrap(), None);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
