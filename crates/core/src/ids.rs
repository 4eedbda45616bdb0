//! Identifiers and secrets: prefixed, sortable, unguessable ids and bearer tokens.
//!
//! An id is `<prefix>-<26 chars>`: a ULID-shaped value (48-bit Unix ms then 80
//! random bits from the OS CSPRNG) in Crockford base32, so ids sort by creation
//! time and cannot be guessed. Tokens are 256 random bits; only their SHA-256
//! is ever stored.

use sha2::{Digest, Sha256};

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The kinds of object that carry an id, with their prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Peer,
    Ask,
    AskGroup,
    Delivery,
    Job,
    Review,
    Schedule,
}

impl IdKind {
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Peer => "peer",
            Self::Ask => "ask",
            Self::AskGroup => "askm",
            Self::Delivery => "dlv",
            Self::Job => "job",
            Self::Review => "rev",
            Self::Schedule => "sch",
        }
    }

    /// Which kind an id string is, if it is well-formed.
    pub fn of(id: &str) -> Option<Self> {
        let (prefix, body) = id.split_once('-')?;
        if body.len() != 26 || !body.bytes().all(|b| CROCKFORD.contains(&b)) {
            return None;
        }
        [
            Self::Peer,
            Self::Ask,
            Self::AskGroup,
            Self::Delivery,
            Self::Job,
            Self::Review,
            Self::Schedule,
        ]
        .into_iter()
        .find(|k| k.prefix() == prefix)
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the OS random source failed");
    buf
}

/// A new id of `kind` stamped with `now_ms`.
pub fn new_id(kind: IdKind, now_ms: i64) -> String {
    let rand: [u8; 10] = random_bytes();
    let mut value: u128 = (now_ms.max(0) as u128 & 0xFFFF_FFFF_FFFF) << 80;
    for (i, b) in rand.iter().enumerate() {
        value |= (*b as u128) << (8 * (9 - i));
    }
    let mut out = String::with_capacity(kind.prefix().len() + 27);
    out.push_str(kind.prefix());
    out.push('-');
    for i in (0..26).rev() {
        let idx = ((value >> (5 * i)) & 0x1F) as usize;
        out.push(CROCKFORD[idx] as char);
    }
    out
}

/// A new bearer token (`rw_` + 64 hex chars).
pub fn new_token() -> String {
    let bytes: [u8; 32] = random_bytes();
    let mut s = String::with_capacity(67);
    s.push_str("rw_");
    push_hex(&mut s, &bytes);
    s
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xF) as usize] as char);
    }
}

/// SHA-256 of a token, hex; what the store keeps instead of the token.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut s = String::with_capacity(64);
    push_hex(&mut s, &digest);
    s
}

/// Compare two secrets without an early exit on the first differing byte.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_sortable_and_distinct() {
        let a = new_id(IdKind::Ask, 1_000);
        let b = new_id(IdKind::Ask, 2_000);
        let c = new_id(IdKind::Ask, 2_000);
        assert!(a.starts_with("ask-") && a.len() == 30);
        assert!(a < b, "later ms sorts later");
        assert_ne!(b, c, "random part differs");
        assert_eq!(IdKind::of(&a), Some(IdKind::Ask));
        assert_eq!(
            IdKind::of(&new_id(IdKind::Delivery, 5)),
            Some(IdKind::Delivery)
        );
        assert_eq!(IdKind::of("ask-short"), None);
        assert_eq!(IdKind::of("zzz-0123456789ABCDEFGHJKMNPQ"), None);
    }

    #[test]
    fn tokens_hash_and_compare() {
        let t = new_token();
        assert_eq!(t.len(), 67);
        assert_ne!(t, new_token());
        assert_eq!(token_hash(&t), token_hash(&t));
        assert_eq!(token_hash(&t).len(), 64);
        assert!(secrets_equal(&t, &t.clone()));
        assert!(!secrets_equal(&t, &new_token()));
        assert!(!secrets_equal("a", "ab"));
    }
}
