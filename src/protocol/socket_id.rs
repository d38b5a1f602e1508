//! Socket ids: `"{seq}.{nonce}"`, unique per server. `seq` carries the shard in its low
//! 8 bits, so any core can tell which shard owns a connection without a lookup.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketId {
    seq: u64,
    nonce: u32,
}

impl SocketId {
    /// `counter` is the shard's connection counter; `nonce` makes ids hard to guess.
    pub fn new(shard: usize, counter: u64, nonce: u32) -> Self {
        SocketId {
            seq: (counter << 8) | (shard as u64 & 0xff),
            nonce,
        }
    }

    pub fn shard(&self) -> usize {
        (self.seq & 0xff) as usize
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.seq, self.nonce)
    }
}

/// A string that does not match `^\d+\.\d+$` (or overflows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidSocketId;

impl FromStr for SocketId {
    type Err = InvalidSocketId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s.split_once('.').ok_or(InvalidSocketId)?;
        let digits = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
        if !digits(a) || !digits(b) {
            return Err(InvalidSocketId);
        }
        Ok(SocketId {
            seq: a.parse().map_err(|_| InvalidSocketId)?,
            nonce: b.parse().map_err(|_| InvalidSocketId)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_shard() {
        let id = SocketId::new(3, 41, 987654);
        let s = id.to_string();
        assert_eq!(s.parse::<SocketId>(), Ok(id));
        assert_eq!(id.shard(), 3);
        for bad in [
            "",
            "1",
            "1.",
            ".1",
            "1.2.3",
            "a.1",
            "1.-2",
            " 1.2",
            "99999999999999999999999.1",
        ] {
            assert!(bad.parse::<SocketId>().is_err(), "{bad}");
        }
    }
}
