//! HMAC-SHA256 signed URLs (DESIGN.md "Signatures").
//!
//! The MAC covers a canonical string: the method class (`read`), the scope (a file's path, or a
//! media's path prefix so one signature covers every segment), and every query parameter but
//! `sig`, sorted, `exp` and `kid` included. Parameters that shape the response (`disposition`,
//! `filename`) are therefore covered, and adding one breaks the signature. A repeated parameter
//! is refused outright: two canonicalizations of one URL must never both exist.

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The longest a signed URL may live.
pub const MAX_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// Tolerance for clock skew between the signing node and the verifying node.
const CLOCK_SKEW: u64 = 60;

const RESERVED: [&str; 3] = ["exp", "kid", "sig"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("this resource needs a signed URL")]
    Missing,
    #[error("the signature parameters are malformed")]
    Malformed,
    #[error("a query parameter is repeated")]
    Repeated,
    #[error("the signed URL has expired")]
    Expired,
    #[error("the signed URL lives longer than allowed")]
    TooLong,
    #[error("the signing key is unknown")]
    UnknownKey,
    #[error("the signature does not match")]
    Invalid,
}

impl SignatureError {
    pub fn code(self) -> &'static str {
        match self {
            SignatureError::Missing => "signature_required",
            SignatureError::Expired => "signature_expired",
            _ => "signature_invalid",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedParams {
    /// The signed parameters other than `exp`, `kid` and `sig`.
    pub params: BTreeMap<String, String>,
    pub expires_at: u64,
}

struct SigningKey {
    kid: String,
    secret: Vec<u8>,
}

/// The configured keys: the first signs, all verify (rotation).
pub struct Signer {
    keys: Vec<SigningKey>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("Signer").field("kids", &kids).finish()
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl Signer {
    /// Parses `kid:secret,kid:secret`. Secrets must be at least 16 bytes.
    pub fn from_spec(spec: &str) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kid, secret) = pair
                .split_once(':')
                .context("each signing key must be written kid:secret")?;
            anyhow::ensure!(
                !kid.is_empty()
                    && kid.len() <= 32
                    && kid
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "signing key id {kid:?} must be 1-32 letters, digits, '-' or '_'"
            );
            anyhow::ensure!(
                secret.len() >= 16,
                "the secret of signing key {kid:?} is shorter than 16 bytes"
            );
            anyhow::ensure!(
                keys.iter().all(|k: &SigningKey| k.kid != kid),
                "signing key id {kid:?} is listed twice"
            );
            keys.push(SigningKey {
                kid: kid.to_owned(),
                secret: secret.as_bytes().to_vec(),
            });
        }
        anyhow::ensure!(!keys.is_empty(), "no signing keys given");
        Ok(Self { keys })
    }

    /// Reads the keys kept at `path`, creating one random key there on first start.
    pub async fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        match tokio::fs::read_to_string(path).await {
            Ok(spec) => Self::from_spec(spec.trim())
                .with_context(|| format!("reading signing keys from {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let spec = format!("k1:{}", crate::ids::random_secret(32));
                write_private(path, &spec)
                    .await
                    .with_context(|| format!("writing signing keys to {}", path.display()))?;
                Self::from_spec(&spec)
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn mac(key: &SigningKey, scope: &str, canonical_query: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&key.secret).expect("HMAC takes any key");
        mac.update(b"read\n");
        mac.update(scope.as_bytes());
        mac.update(b"\n");
        mac.update(canonical_query.as_bytes());
        mac
    }

    /// Returns the query string (without '?') that signs `scope` with `params` until `expires_at`.
    pub fn sign(&self, scope: &str, params: &[(&str, &str)], expires_at: u64) -> String {
        let key = &self.keys[0];
        let exp = expires_at.to_string();
        let mut all: BTreeMap<&str, &str> = params.iter().copied().collect();
        all.insert("exp", &exp);
        all.insert("kid", &key.kid);
        let canonical = canonical_query(all.iter().map(|(k, v)| (*k, *v)));
        let sig = URL_SAFE_NO_PAD.encode(Self::mac(key, scope, &canonical).finalize().into_bytes());
        format!("{canonical}&sig={sig}")
    }

    /// Checks a request's query string against `scope`. Expiry is checked before the MAC, and
    /// the MAC is compared in constant time.
    pub fn verify(
        &self,
        scope: &str,
        query: &str,
        now: u64,
    ) -> Result<SignedParams, SignatureError> {
        let mut pairs: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if pairs.insert(k.into_owned(), v.into_owned()).is_some() {
                return Err(SignatureError::Repeated);
            }
        }
        let (Some(sig), Some(exp), Some(kid)) =
            (pairs.get("sig"), pairs.get("exp"), pairs.get("kid"))
        else {
            return Err(SignatureError::Missing);
        };
        let expires_at: u64 = exp.parse().map_err(|_| SignatureError::Malformed)?;
        if expires_at < now {
            return Err(SignatureError::Expired);
        }
        if expires_at > now + MAX_LIFETIME.as_secs() + CLOCK_SKEW {
            return Err(SignatureError::TooLong);
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == *kid)
            .ok_or(SignatureError::UnknownKey)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| SignatureError::Invalid)?;
        let canonical = canonical_query(
            pairs
                .iter()
                .filter(|(k, _)| k.as_str() != "sig")
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        Self::mac(key, scope, &canonical)
            .verify_slice(&sig)
            .map_err(|_| SignatureError::Invalid)?;
        pairs.retain(|k, _| !RESERVED.contains(&k.as_str()));
        Ok(SignedParams {
            params: pairs,
            expires_at,
        })
    }

    /// True when the query carries any signature parameter, so a broken signature on a public
    /// resource is reported instead of silently ignored.
    pub fn looks_signed(query: &str) -> bool {
        form_urlencoded::parse(query.as_bytes()).any(|(k, _)| RESERVED.contains(&k.as_ref()))
    }
}

/// Sorted `k=v` pairs joined with '&', form-encoded, so the same parameters always give the
/// same string however the client spelled their escapes.
fn canonical_query<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut sorted: Vec<(&str, &str)> = pairs.collect();
    sorted.sort();
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in sorted {
        out.append_pair(k, v);
    }
    out.finish()
}

async fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path).await?;
    file.write_all(contents.as_bytes()).await?;
    file.sync_all().await
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn signer() -> Signer {
        Signer::from_spec("new:0123456789abcdef0123,old:fedcba9876543210fedc").unwrap()
    }

    #[test]
    fn a_signed_query_verifies_with_its_params() {
        let s = signer();
        let q = s.sign("/files/x", &[("disposition", "attachment")], NOW + 60);
        let v = s.verify("/files/x", &q, NOW).unwrap();
        assert_eq!(
            v.params.get("disposition").map(String::as_str),
            Some("attachment")
        );
        assert_eq!(v.expires_at, NOW + 60);
    }

    #[test]
    fn every_mutation_is_refused() {
        let s = signer();
        let q = s.sign("/files/x", &[("filename", "a b.txt")], NOW + 60);
        assert_eq!(s.verify("/files/y", &q, NOW), Err(SignatureError::Invalid));
        assert_eq!(
            s.verify("/files/x", &q, NOW + 61),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            s.verify("/files/x", &format!("{q}&extra=1"), NOW),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            s.verify("/files/x", &format!("{q}&filename=b"), NOW),
            Err(SignatureError::Repeated)
        );
        assert_eq!(
            s.verify("/files/x", &q.replace("kid=new", "kid=zzz"), NOW),
            Err(SignatureError::UnknownKey)
        );
        assert_eq!(s.verify("/files/x", "", NOW), Err(SignatureError::Missing));
    }

    #[test]
    fn expiry_is_checked_before_the_mac() {
        let s = signer();
        let q = format!("exp={}&kid=new&sig=AAAA", NOW - 1);
        assert_eq!(s.verify("/files/x", &q, NOW), Err(SignatureError::Expired));
    }

    #[test]
    fn lifetimes_past_the_cap_are_refused() {
        let s = signer();
        let q = s.sign("/files/x", &[], NOW + MAX_LIFETIME.as_secs() + 3600);
        assert_eq!(s.verify("/files/x", &q, NOW), Err(SignatureError::TooLong));
    }

    #[test]
    fn a_rotated_out_key_verifies_while_listed() {
        let old = Signer::from_spec("old:fedcba9876543210fedc").unwrap();
        let q = old.sign("/files/x", &[], NOW + 60);
        assert!(signer().verify("/files/x", &q, NOW).is_ok());
        let without = Signer::from_spec("new:0123456789abcdef0123").unwrap();
        assert_eq!(
            without.verify("/files/x", &q, NOW),
            Err(SignatureError::UnknownKey)
        );
    }

    #[test]
    fn escapes_do_not_change_the_canonical_form() {
        let s = signer();
        let q = s.sign("/files/x", &[("filename", "a b.txt")], NOW + 60);
        let respelled = q.replace("a+b.txt", "a%20b.txt");
        assert_ne!(q, respelled);
        assert!(s.verify("/files/x", &respelled, NOW).is_ok());
    }

    #[test]
    fn bad_specs_are_refused() {
        for spec in [
            "",
            "nocolon",
            "k:short",
            "a:0123456789abcdef,a:0123456789abcdef",
            "bad kid:0123456789abcdef",
        ] {
            assert!(Signer::from_spec(spec).is_err(), "{spec:?}");
        }
    }
}
