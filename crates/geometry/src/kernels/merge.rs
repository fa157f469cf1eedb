//! Partial results that merge: computed on some rows (a shard, a batch), combined into the
//! result of all of them, and carried between processes as versioned bytes.

use crate::error::{GeometryError, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A partial result over some rows that merges exactly with the partial result of other rows
/// (in any order, up to rounding) and travels as versioned bytes: a magic tag, the
/// little-endian version, then bincode's standard encoding of the value.
pub trait Merge: Sized + Serialize + DeserializeOwned {
    /// The tag the bytes start with.
    const MAGIC: [u8; 8];
    /// The version of the bytes; bytes of another version are refused.
    const VERSION: u32;
    /// What the bytes hold, for messages (`"an embgeom state"`).
    const WHAT: &'static str;

    /// Add the rows of `other` (computed with the same options) to these.
    fn merge(&mut self, other: &Self) -> Result<()>;

    /// A decoded value, once its parts are checked to fit together (by default, as decoded).
    fn checked(self) -> Result<Self> {
        Ok(self)
    }

    /// The value as versioned bytes.
    fn to_bytes(&self) -> Vec<u8> {
        encode(&Self::MAGIC, Self::VERSION, self)
    }

    /// A value from [`Merge::to_bytes`]; other data, another version, trailing bytes or parts
    /// that do not fit together are an error.
    fn from_bytes(bytes: &[u8]) -> Result<Self> {
        decode::<Self>(bytes, &Self::MAGIC, Self::VERSION, Self::WHAT)?.checked()
    }

    /// The merge of every part, given as bytes, in order; an error when there is none.
    fn merge_bytes<B: AsRef<[u8]>>(parts: &[B]) -> Result<Self> {
        let mut merged: Option<Self> = None;
        for part in parts {
            let part = Self::from_bytes(part.as_ref())?;
            match merged.as_mut() {
                None => merged = Some(part),
                Some(all) => all.merge(&part)?,
            }
        }
        merged.ok_or_else(|| GeometryError::InvalidState {
            what: format!("nothing to merge: no part of {}", Self::WHAT),
        })
    }
}

/// `magic`, the little-endian `version`, then the value in bincode's standard encoding.
pub(crate) fn encode<T: Serialize>(magic: &[u8; 8], version: u32, value: &T) -> Vec<u8> {
    let mut out = magic.to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    // Encoding plain data into a Vec cannot fail.
    if let Ok(body) = bincode::serde::encode_to_vec(value, bincode::config::standard()) {
        out.extend_from_slice(&body);
    }
    out
}

/// The value of [`encode`]'s bytes; other data, another version or trailing bytes are an
/// error naming `what`.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    magic: &[u8; 8],
    version: u32,
    what: &str,
) -> Result<T> {
    let bad = |what: String| GeometryError::InvalidState { what };
    if bytes.len() < 12 || &bytes[..8] != magic {
        return Err(bad(format!("not {what}")));
    }
    let found = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if found != version {
        return Err(bad(format!(
            "{what} of version {found}; this embgeom reads version {version}"
        )));
    }
    let config = bincode::config::standard().with_limit::<{ 1 << 34 }>();
    match bincode::serde::decode_from_slice(&bytes[12..], config) {
        Ok((value, used)) if used == bytes.len() - 12 => Ok(value),
        Ok(_) => Err(bad(format!("a corrupt {what}: trailing bytes"))),
        Err(e) => Err(bad(format!("a corrupt {what}: {e}"))),
    }
}
