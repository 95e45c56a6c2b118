//! Server-generated identifiers and the grammar every id in a path is checked against
//! before any lookup (DESIGN.md "Hostile input").

use rand::Rng;

const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
/// 20 random base-36 characters: about 103 bits, enough that ids are unguessable.
const RANDOM_LEN: usize = 20;

fn random_part() -> String {
    let mut rng = rand::thread_rng();
    (0..RANDOM_LEN)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

fn is_valid(prefix: &str, s: &str) -> bool {
    match s.strip_prefix(prefix) {
        Some(rest) => {
            rest.len() == RANDOM_LEN
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        }
        None => false,
    }
}

/// What every id type offers, so cursors and paths can be generic over them.
pub trait Id: Clone + PartialEq + std::fmt::Display + Sized {
    fn parse(s: &str) -> Option<Self>;
    fn as_str(&self) -> &str;
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, random_part()))
            }

            /// Accepts only what `generate` can produce; anything else is not an id of ours.
            pub fn parse(s: &str) -> Option<Self> {
                is_valid($prefix, s).then(|| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Id for $name {
            fn parse(s: &str) -> Option<Self> {
                $name::parse(s)
            }

            fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A stored file: `fil_` + 20 base-36 characters.
    FileId,
    "fil_"
);
id_type!(
    /// A media (a transcoded video or audio): `med_` + 20 base-36 characters.
    MediaId,
    "med_"
);
id_type!(
    /// An API key's public identifier, the part of a key that is not secret.
    KeyId,
    "key_"
);

id_type!(
    /// A resumable (tus) upload in progress. Its URL is a capability: knowing the id is what
    /// lets a client continue the upload, as with tusd and S3 presigned multipart.
    UploadId,
    "upl_"
);
id_type!(
    /// A direct upload: a one-time, expiring permission for an end user's device to upload.
    DirectUploadId,
    "dup_"
);

/// A random secret of `n` bytes, base64url without padding.
pub fn random_secret(n: usize) -> String {
    use base64::Engine;
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill(&mut bytes[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse() {
        let id = FileId::generate();
        assert_eq!(FileId::parse(id.as_str()), Some(id));
    }

    #[test]
    fn hostile_ids_are_refused() {
        for s in [
            "",
            "fil_",
            "../../etc/passwd",
            "fil_..%2f..%2f..%2fetcpasswd",
            "fil_abcdefghijklmnopqrs/",
            "fil_abcdefghijklmnopqrs\0",
            "fil_ABCDEFGHIJKLMNOPQRST",
            "fil_abcdefghijklmnopqrstu",
            "key_abcdefghijklmnopqrst",
            "fil_abcdefghijklmnopqrs\u{e9}",
        ] {
            assert_eq!(FileId::parse(s), None, "{s:?}");
        }
        assert!(FileId::parse("fil_abcdefghijklmnopqrst").is_some());
    }
}
