//! Which key an operation touches, and the values written.

use std::time::{Duration, Instant};

use super::options::{digits, Common, TIMESTAMP_BYTES};

/// Picks keys from the key space: key `i` is `i` in decimal, zero-padded to the key size.
#[derive(Debug, Clone)]
pub struct Keys {
    size: usize,
    space: u64,
    sequential: bool,
    rng: SplitMix64,
}

impl Keys {
    /// `client` seeds the random walk, so clients differ and runs repeat.
    pub fn new(common: &Common, client: usize) -> Self {
        Self {
            size: common.key_size,
            space: common.key_space,
            sequential: common.sequential_keys,
            rng: SplitMix64(client as u64),
        }
    }

    /// The key for operation `n` (operations are numbered across all clients).
    pub fn pick(&mut self, n: u64) -> Vec<u8> {
        let index = if self.sequential {
            n % self.space
        } else {
            self.rng.below(self.space)
        };
        self.key(index)
    }

    pub fn key(&self, index: u64) -> Vec<u8> {
        format!("{index:0width$}", width = self.size).into_bytes()
    }

    /// The prefix every key of the space shares (empty when the numbers fill the whole key).
    pub fn common_prefix(&self) -> Vec<u8> {
        vec![b'0'; self.size - digits(self.space - 1)]
    }

    /// A number in `0..100`, for mixing operations.
    pub fn percent(&mut self) -> u64 {
        self.rng.below(100)
    }
}

/// The value of every put: `size` bytes of filler.
pub fn value(size: usize) -> Vec<u8> {
    vec![b'v'; size]
}

/// A watch value: the send time (nanoseconds since `epoch`, big-endian) and then filler.
pub fn stamped_value(size: usize, epoch: Instant) -> Vec<u8> {
    let nanos = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let mut v = value(size.max(TIMESTAMP_BYTES));
    v[..TIMESTAMP_BYTES].copy_from_slice(&nanos.to_be_bytes());
    v
}

/// How long ago (relative to `epoch`) a [`stamped_value`] was made; `None` if it carries no stamp.
pub fn age(value: &[u8], epoch: Instant) -> Option<Duration> {
    let stamp: [u8; TIMESTAMP_BYTES] = value.get(..TIMESTAMP_BYTES)?.try_into().ok()?;
    let sent = epoch + Duration::from_nanos(u64::from_be_bytes(stamp));
    Some(Instant::now().saturating_duration_since(sent))
}

/// A small, fast, seeded generator (Steele, Lea, Flood 2014); quality is ample for key choice.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::bench::options::Cli;

    fn keys(args: &str) -> Keys {
        let cli = Cli::try_parse_from(format!("cairn-bench put {args}").split_whitespace()).expect("valid");
        Keys::new(&cli.common, 0)
    }

    #[test]
    fn sequential_keys_walk_the_space_in_order() {
        let mut k = keys("--key-size 4 --key-space 3 --sequential-keys");
        let got: Vec<Vec<u8>> = (0..4).map(|n| k.pick(n)).collect();
        assert_eq!(
            got,
            [b"0000".to_vec(), b"0001".to_vec(), b"0002".to_vec(), b"0000".to_vec()]
        );
    }

    #[test]
    fn random_keys_stay_in_the_space_and_cover_it() {
        let mut k = keys("--key-size 3 --key-space 10");
        let mut seen = [false; 10];
        for n in 0..1000 {
            let key = String::from_utf8(k.pick(n)).expect("decimal");
            assert_eq!(key.len(), 3);
            seen[key.parse::<usize>().expect("decimal")] = true;
        }
        assert!(seen.iter().all(|s| *s), "1000 draws reach all 10 keys");
        assert_eq!(keys("").pick(5), b"00000000", "default: one 8-byte key");
    }

    #[test]
    fn common_prefix_of_the_space() {
        assert_eq!(keys("--key-size 8 --key-space 1000").common_prefix(), b"00000");
        assert_eq!(keys("--key-size 2 --key-space 100").common_prefix(), b"");
        assert_eq!(keys("").common_prefix(), b"0000000");
    }

    #[test]
    fn stamped_values_carry_their_send_time() {
        let epoch = Instant::now();
        let v = stamped_value(256, epoch);
        assert_eq!(v.len(), 256);
        let age = age(&v, epoch).expect("stamped");
        assert!(age < Duration::from_secs(60));
        assert_eq!(stamped_value(2, epoch).len(), TIMESTAMP_BYTES);
        assert_eq!(super::age(b"short", epoch), None);
    }
}
