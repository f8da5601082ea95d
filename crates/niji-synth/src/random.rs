//! Where randomness comes from. Every person's draws come from ChaCha8 generators keyed by
//! (seed, person index) with one stream per aspect (identity, life course, clinical course,
//! record noise), so a person is the same whatever else is generated, in whatever order and
//! on however many threads. The fixed world (hospitals, insurers) has its own keys.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What a person's generator is drawn for. Each aspect has its own ChaCha stream so that
/// changing how one aspect is drawn leaves the others as they were.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Aspect {
    Identity = 0,
    Life = 1,
    Clinical = 2,
    /// Noise and ids of the FHIR records (Bundle and NDJSON share them).
    Fhir = 3,
    Uke = 4,
    Registry = 5,
}

const PERSON_DOMAIN: &[u8; 8] = b"niji-per";
const WORLD_DOMAIN: &[u8; 8] = b"niji-wld";

/// The generator for one aspect of person `index` in a run with `seed`.
pub(crate) fn person_rng(seed: u64, index: u64, aspect: Aspect) -> ChaCha8Rng {
    keyed(seed, index, PERSON_DOMAIN, aspect as u64)
}

/// The generator for a part of the fixed world (hospitals = 0, insurers = 1, …).
pub(crate) fn world_rng(seed: u64, part: u64) -> ChaCha8Rng {
    keyed(seed, part, WORLD_DOMAIN, 0)
}

fn keyed(seed: u64, index: u64, domain: &[u8; 8], stream: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&index.to_le_bytes());
    key[16..24].copy_from_slice(domain);
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(stream);
    rng
}

/// Draws an index with probability proportional to its weight (cumulative sums and a
/// binary search: lists here have at most a few thousand entries).
#[derive(Debug, Clone)]
pub(crate) struct Weighted {
    cumulative: Vec<f64>,
}

impl Weighted {
    /// `None` when there is nothing to draw from (no positive weight).
    pub(crate) fn new(weights: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut total = 0.0;
        let cumulative: Vec<f64> = weights
            .into_iter()
            .map(|w| {
                total += if w.is_finite() && w > 0.0 { w } else { 0.0 };
                total
            })
            .collect();
        (total > 0.0).then_some(Self { cumulative })
    }

    pub(crate) fn sample(&self, rng: &mut impl Rng) -> usize {
        let total = *self.cumulative.last().expect("non-empty");
        let x = rng.gen::<f64>() * total;
        self.cumulative.partition_point(|&c| c <= x).min(self.cumulative.len() - 1)
    }
}

/// A standard normal draw (Box–Muller).
pub(crate) fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A version-4 UUID in its 36-character text form, kept inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Uuid([u8; 36]);

impl Uuid {
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ascii")
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Uuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A random version-4 UUID drawn from `rng` (so it is reproducible).
pub(crate) fn uuid(rng: &mut impl Rng) -> Uuid {
    let mut bytes: [u8; 16] = rng.gen();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut s = [0u8; 36];
    let mut j = 0;
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s[j] = b'-';
            j += 1;
        }
        s[j] = HEX[(b >> 4) as usize];
        s[j + 1] = HEX[(b & 15) as usize];
        j += 2;
    }
    Uuid(s)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_draws_follow_weights() {
        let w = Weighted::new([1.0, 0.0, 3.0]).unwrap();
        let mut rng = person_rng(7, 0, Aspect::Identity);
        let mut counts = [0u32; 3];
        for _ in 0..40_000 {
            counts[w.sample(&mut rng)] += 1;
        }
        assert_eq!(counts[1], 0);
        let share = counts[2] as f64 / 40_000.0;
        assert!((0.73..0.77).contains(&share), "{share}");
        assert!(Weighted::new([0.0, f64::NAN]).is_none());
    }

    #[test]
    fn streams_are_independent_and_reproducible() {
        let a: u64 = person_rng(1, 5, Aspect::Identity).gen();
        let b: u64 = person_rng(1, 5, Aspect::Identity).gen();
        let c: u64 = person_rng(1, 5, Aspect::Life).gen();
        let d: u64 = person_rng(1, 6, Aspect::Identity).gen();
        let e: u64 = person_rng(2, 5, Aspect::Identity).gen();
        assert_eq!(a, b);
        assert!(a != c && a != d && a != e);
        let id = uuid(&mut person_rng(1, 1, Aspect::Fhir));
        assert_eq!(id.as_str().len(), 36);
        assert_eq!(&id.as_str()[14..15], "4");
        assert_eq!(id.as_str().matches('-').count(), 4);
    }
}
