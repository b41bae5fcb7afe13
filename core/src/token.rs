//! Lock tokens: the value written under each key, proving who holds it.

use crate::error::Error;
use crate::limits::MIN_TOKEN_BYTES;
use crate::sha1::HEX;
use bytes::Bytes;
use std::fmt;

/// A lock token: random bytes from the caller, stored on the nodes as lowercase hex, as other
/// Redlock clients do (so `redis-cli GET resource` shows a readable holder id).
///
/// The core never draws randomness itself: adapters fill it from the OS CSPRNG.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(Bytes);

impl Token {
    /// Makes a token from `random` bytes (at least [`MIN_TOKEN_BYTES`]; 20 is what the adapters use).
    ///
    /// Returns [`Error::TokenTooShort`] for fewer bytes: short tokens make collisions between
    /// holders plausible, and a collision breaks mutual exclusion.
    ///
    /// ```
    /// let t = redlock_core::Token::from_random(&[0xab; 20]).unwrap();
    /// assert_eq!(t.as_str().len(), 40);
    /// assert!(redlock_core::Token::from_random(&[1; 8]).is_err());
    /// ```
    pub fn from_random(random: &[u8]) -> Result<Token, Error> {
        if random.len() < MIN_TOKEN_BYTES {
            return Err(Error::TokenTooShort { len: random.len() });
        }
        let mut hex = Vec::with_capacity(random.len() * 2);
        for b in random {
            hex.push(HEX[usize::from(b >> 4)]);
            hex.push(HEX[usize::from(b & 0xf)]);
        }
        Ok(Token(Bytes::from(hex)))
    }

    /// The token as stored on the nodes (lowercase hex).
    pub fn as_str(&self) -> &str {
        // Only ever built from HEX digits.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    pub(crate) fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// The token an acquire's `attempt` (from 1) writes: the first attempt uses the token as
    /// given; later ones flip bits of its last 32, so a cleanup release of one attempt that
    /// reaches a node late (on a connection since given up) cannot delete the key a later
    /// attempt of the same acquire took there.
    pub(crate) fn for_attempt(&self, attempt: u32) -> Token {
        if attempt <= 1 {
            return self.clone();
        }
        let mut hex = self.0.to_vec();
        let tail = hex.len() - 8;
        let old = std::str::from_utf8(&hex[tail..])
            .ok()
            .and_then(|t| u32::from_str_radix(t, 16).ok());
        let new = old.unwrap_or(0) ^ (attempt - 1);
        for (i, b) in hex[tail..].iter_mut().enumerate() {
            let nibble = (new >> (28 - 4 * i)) & 0xf;
            *b = HEX[nibble as usize];
        }
        Token(Bytes::from(hex))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({})", self.as_str())
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
