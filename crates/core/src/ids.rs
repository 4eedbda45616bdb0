//! Identifiers and secrets: prefixed, sortable, unguessable ids and bearer tokens.
//!
//! An id is `<prefix>-<26 chars>`: a ULID-shaped value (48-bit Unix ms then 80
//! random bits from the OS CSPRNG) in Crockford base32, so ids sort by creation
//! time and cannot be guessed. A delivery or ask id gives 40 of the 80 bits
//! to its row's key ([`DeliveryId::with_seq`], [`key_of`]), so the store
//! needs no index on it. Tokens are 256 random bits; only their SHA-256
//! is ever stored.
//!
//! Each kind of id has its own newtype ([`PeerId`], [`AskId`], [`JobId`], …)
//! parsed once at the edge ([`PeerId::parse`]: prefix and shape, a coded
//! error naming the kind expected); past the edge an id is trusted. They are
//! the same string on the wire and in SQLite.

use crate::error::{Error, ErrorCode, Result};
use sha2::{Digest, Sha256};

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Which bytes are [`CROCKFORD`] digits, by byte value (a table: every
/// id from the outside is checked byte by byte).
const IS_CROCKFORD: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < CROCKFORD.len() {
        t[CROCKFORD[i] as usize] = true;
        i += 1;
    }
    t
};

/// Each [`CROCKFORD`] digit's value, by byte value (0 for other bytes):
/// a row key is read back out of an id on every look-up ([`key_of`]).
const CROCKFORD_VALUE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < CROCKFORD.len() {
        t[CROCKFORD[i] as usize] = i as u8;
        i += 1;
    }
    t
};

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

    /// The kind's name in messages (`ask`, `ask group`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::Peer => "peer",
            Self::Ask => "ask",
            Self::AskGroup => "ask group",
            Self::Delivery => "delivery",
            Self::Job => "job",
            Self::Review => "review",
            Self::Schedule => "schedule",
        }
    }

    /// The code of a malformed id of this kind: what a lookup of it would
    /// answer (`unknown_ask`, `unknown_peer`, `not_found`), except a delivery
    /// id, which only ever arrives in a confirm list (`bad_request`).
    fn parse_code(self) -> ErrorCode {
        match self {
            Self::Ask => ErrorCode::UnknownAsk,
            Self::Peer => ErrorCode::UnknownPeer,
            Self::Delivery => ErrorCode::BadRequest,
            Self::AskGroup | Self::Job | Self::Review | Self::Schedule => ErrorCode::NotFound,
        }
    }

    /// Check that `id` is a well-formed id of this kind.
    pub fn check(self, id: &str) -> Result<()> {
        if Self::of(id) == Some(self) {
            Ok(())
        } else {
            Err(Error::new(
                self.parse_code(),
                format!(
                    "{id:?} is not a valid {} id ({}-…)",
                    self.name(),
                    self.prefix()
                ),
            ))
        }
    }

    /// Which kind an id string is, if it is well-formed.
    pub fn of(id: &str) -> Option<Self> {
        let (prefix, body) = id.split_once('-')?;
        if body.len() != 26 || !body.bytes().all(|b| IS_CROCKFORD[b as usize]) {
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

/// Declares an id newtype: a checked string of one [`IdKind`].
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The kind of object it names.
            pub const KIND: IdKind = $kind;

            /// Parse an id from the outside (a path, a body, an argument).
            pub fn parse(s: &str) -> Result<Self> {
                Self::KIND.check(s)?;
                Ok(Self(s.to_string()))
            }

            /// A fresh id stamped with `now_ms`.
            pub fn generate(now_ms: i64) -> Self {
                Self(new_id(Self::KIND, now_ms))
            }

            /// An id read back from the store, trusted as written.
            pub fn trusted(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::KIND.check(&s).map_err(serde::de::Error::custom)?;
                Ok(Self(s))
            }
        }

        #[cfg(feature = "sqlite")]
        impl rusqlite::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                self.0.to_sql()
            }
        }

        // Read back as written: the store only ever writes parsed or
        // generated ids.
        #[cfg(feature = "sqlite")]
        impl rusqlite::types::FromSql for $name {
            fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                String::column_result(v).map(Self)
            }
        }
    };
}

id_type!(
    /// A peer's id (`peer-…`).
    PeerId,
    IdKind::Peer
);
id_type!(
    /// An ask's id, its correlation id (`ask-…`).
    AskId,
    IdKind::Ask
);
id_type!(
    /// An ask group's id, the parent of an ask-many (`askm-…`).
    AskGroupId,
    IdKind::AskGroup
);
id_type!(
    /// A delivery's id (`dlv-…`). One made by [`DeliveryId::with_seq`]
    /// carries its row's key, so the store finds it without an index.
    DeliveryId,
    IdKind::Delivery
);

/// How many bits of a keyed id hold its row's key ([`key_of`]).
const SEQ_BITS: u32 = 40;

/// The largest row key an id can carry.
pub const MAX_KEY: i64 = (1 << SEQ_BITS) - 1;

/// A fresh id of `kind` stamped with `now_ms` that carries `key`, the key
/// of its row: 48 bits of Unix ms, then `key` in 40 bits, then 40 random
/// bits. It still sorts by creation time; it is still not guessed from
/// another id (2^40 tries each, and the store checks who may see it
/// besides). `key` must be in `0..=MAX_KEY`.
fn keyed(kind: IdKind, now_ms: i64, key: i64) -> String {
    debug_assert!((0..=MAX_KEY).contains(&key), "{key}");
    let rand: [u8; 5] = random_bytes();
    let mut low: u128 = (key as u128 & MAX_KEY as u128) << 40;
    for (i, b) in rand.iter().enumerate() {
        low |= (*b as u128) << (8 * (4 - i));
    }
    encode(kind, now_ms, low)
}

/// The row key an id made with one carries (bits 40 to 79 of its value:
/// the 8 digits that start 16 from the end); for an id made without, a
/// number with no meaning (the store checks the row's id as well).
/// Anything shorter than an id body: 0.
pub fn key_of(id: &str) -> i64 {
    let Some(digits) = id
        .len()
        .checked_sub(16)
        .and_then(|at| id.as_bytes().get(at..at + 8))
    else {
        return 0;
    };
    digits.iter().fold(0i64, |key, b| {
        (key << 5) | CROCKFORD_VALUE[*b as usize] as i64
    })
}

impl DeliveryId {
    /// A fresh id that carries `seq`, the key of the delivery's row
    /// ([`keyed`]).
    pub fn with_seq(now_ms: i64, seq: i64) -> Self {
        Self(keyed(IdKind::Delivery, now_ms, seq))
    }

    /// The row key this id carries ([`key_of`]).
    pub fn seq(&self) -> i64 {
        key_of(&self.0)
    }
}

impl AskId {
    /// A fresh id that carries `seq`, the key of the ask's row ([`keyed`]).
    pub fn with_seq(now_ms: i64, seq: i64) -> Self {
        Self(keyed(IdKind::Ask, now_ms, seq))
    }

    /// The row key this id carries ([`key_of`]).
    pub fn seq(&self) -> i64 {
        key_of(&self.0)
    }
}

id_type!(
    /// A job's id (`job-…`).
    JobId,
    IdKind::Job
);
id_type!(
    /// A review's id (`rev-…`).
    ReviewId,
    IdKind::Review
);
id_type!(
    /// A schedule's id (`sch-…`).
    ScheduleId,
    IdKind::Schedule
);

/// How many bytes of OS randomness a thread draws at a time: an id takes
/// 10 and a token 32, so one `getrandom` call serves a few dozen of them
/// rather than one (a system call per delivered note).
const POOL: usize = 512;

thread_local! {
    /// Bytes drawn from the OS CSPRNG and not yet handed out, and how many
    /// of them have been. Each byte is handed out once and zeroed as it
    /// goes. (The binary never runs Rust code in a forked child, which
    /// would share the pool: child processes are spawned to `exec`.)
    static DRAWN: std::cell::RefCell<([u8; POOL], usize)> =
        const { std::cell::RefCell::new(([0; POOL], POOL)) };
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    if N > POOL {
        getrandom::fill(&mut out).expect("the OS random source failed");
        return out;
    }
    DRAWN.with_borrow_mut(|(pool, used)| {
        if *used + N > POOL {
            getrandom::fill(pool).expect("the OS random source failed");
            *used = 0;
        }
        let take = &mut pool[*used..*used + N];
        out.copy_from_slice(take);
        take.fill(0);
        *used += N;
    });
    out
}

/// A new id of `kind` stamped with `now_ms`.
pub fn new_id(kind: IdKind, now_ms: i64) -> String {
    let rand: [u8; 10] = random_bytes();
    let mut low: u128 = 0;
    for (i, b) in rand.iter().enumerate() {
        low |= (*b as u128) << (8 * (9 - i));
    }
    encode(kind, now_ms, low)
}

/// An id of `kind`: `now_ms` in the top 48 bits of 128, `low` (80 bits)
/// under it, in Crockford base32.
fn encode(kind: IdKind, now_ms: i64, low: u128) -> String {
    let value: u128 = ((now_ms.max(0) as u128 & 0xFFFF_FFFF_FFFF) << 80) | low;
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

/// `N` random bytes as lowercase hex.
pub fn new_hex<const N: usize>() -> String {
    let bytes: [u8; N] = random_bytes();
    let mut s = String::with_capacity(2 * N);
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

    /// Random parts come from a pool refilled from the OS: across many
    /// refills no bytes are handed out twice (a pool read past its refill,
    /// or not advanced, would repeat a random part).
    #[test]
    fn random_parts_never_repeat_across_pool_refills() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..(20 * POOL / 10) {
            let id = new_id(IdKind::Delivery, 5);
            // The last 16 characters are the 80 random bits.
            assert!(
                seen.insert(id[id.len() - 16..].to_string()),
                "{id} repeated"
            );
            let t = new_token();
            assert!(seen.insert(t), "a token repeated");
        }
        // What the pool hands out is gone from it.
        DRAWN.with_borrow(|(pool, used)| assert!(pool[..*used].iter().all(|b| *b == 0)));
    }

    /// A delivery id made with its row's key carries it back out, whatever
    /// the key (0, the largest, any between), still parses as a delivery id
    /// of 30 characters, still sorts by time, and still has random bits.
    #[test]
    fn a_delivery_id_carries_its_seq() {
        for seq in [0, 1, 41, 1 << 20, MAX_KEY - 1, MAX_KEY] {
            let id = DeliveryId::with_seq(1_733_000_000_000, seq);
            assert_eq!(id.seq(), seq, "{id}");
            assert_eq!(DeliveryId::parse(id.as_str()).unwrap(), id);
            assert_eq!(id.len(), 30);
        }
        let (a, b) = (DeliveryId::with_seq(5, 9), DeliveryId::with_seq(5, 9));
        assert_ne!(a, b, "random part differs");
        assert!(DeliveryId::with_seq(6, 1) > a, "later ms sorts later");
        assert_eq!(DeliveryId::trusted(a.to_string()).seq(), 9);
        let ask = AskId::with_seq(5, 77);
        assert_eq!((ask.seq(), key_of(ask.as_str())), (77, 77));
        assert_eq!(AskId::parse(ask.as_str()).unwrap(), ask);
        assert_eq!(key_of("short"), 0);
    }

    #[test]
    fn typed_ids_parse_once_with_a_coded_error() {
        let a = AskId::generate(7);
        assert_eq!(AskId::parse(a.as_str()).unwrap(), a);
        assert_eq!(a.to_string(), a.as_str());
        let e = AskId::parse("nonsense").unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownAsk);
        assert!(e.message.contains("ask id"), "{}", e.message);
        // A well-formed id of another kind is not an ask id.
        let j = JobId::generate(7);
        assert_eq!(
            AskId::parse(j.as_str()).unwrap_err().code,
            ErrorCode::UnknownAsk
        );
        assert_eq!(
            JobId::parse(a.as_str()).unwrap_err().code,
            ErrorCode::NotFound
        );
        assert_eq!(
            ScheduleId::parse("sch-x").unwrap_err().code,
            ErrorCode::NotFound
        );
        assert_eq!(
            DeliveryId::parse("x").unwrap_err().code,
            ErrorCode::BadRequest
        );
        assert_eq!(PeerId::parse("x").unwrap_err().code, ErrorCode::UnknownPeer);
        // The same string on the wire, checked on the way in.
        let json = serde_json::to_string(&j).unwrap();
        assert_eq!(json, format!("\"{j}\""));
        assert_eq!(serde_json::from_str::<JobId>(&json).unwrap(), j);
        assert!(serde_json::from_str::<JobId>("\"job-nope\"").is_err());
    }

    /// An id's body takes exactly the 32 Crockford digits: every other byte
    /// (lower case, `I`, `L`, `O`, `U`, punctuation, non-ASCII) at any
    /// place makes it no id.
    #[test]
    fn id_bodies_take_exactly_the_crockford_digits() {
        let id = new_id(IdKind::Job, 3);
        assert_eq!(IdKind::of(&id), Some(IdKind::Job));
        let at = id.len() - 7;
        for b in 0..=255u8 {
            let mut bytes = id.clone().into_bytes();
            bytes[at] = b;
            let Ok(s) = String::from_utf8(bytes) else {
                continue; // not a string: cannot reach IdKind::of
            };
            let digit = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(&b);
            assert_eq!(IdKind::of(&s).is_some(), digit, "byte {b:#04x}");
        }
        let wide = format!("{}é", &id[..id.len() - 2]);
        assert_eq!(IdKind::of(&wide), None);
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
