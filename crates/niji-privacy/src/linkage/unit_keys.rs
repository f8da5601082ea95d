//! The key linkage gives each unit, held as a person number per unit and a key per person: 4
//! bytes a unit and 32 a person, where a key per unit took 32 a unit (and numbering the persons
//! afterwards, as the intake must for the lake, held both).

use std::ops::Index;

use crate::pseudonym::PersonKey;

/// Per unit the key of its person ([`UnitKeys::of`], or `keys[unit]`), and per person a number:
/// persons are numbered 0, 1, 2, … in order of their first unit, one number a key (clusters
/// that got the same key are one person). Two `UnitKeys` are equal exactly when every unit has
/// the same key in both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitKeys {
    of_unit: Vec<u32>,
    persons: Vec<PersonKey>,
}

impl UnitKeys {
    /// Units numbered by cluster (`cluster_of`: clusters numbered in order of their first unit)
    /// with each cluster's key: clusters that share a key become one person. Also how a caller
    /// that numbered the keys of units itself (in order of their first unit) makes the keys.
    pub fn from_clusters(mut cluster_of: Vec<u32>, mut cluster_keys: Vec<PersonKey>) -> Self {
        debug_assert!(numbered_by_first_unit(&cluster_of), "clusters numbered in order of their first unit");
        let prefixes = cluster_keys.iter().map(PersonKey::prefix).collect();
        let Ok(number) = number_clusters(prefixes, |a, b| Ok::<_, std::convert::Infallible>(cluster_keys[a as usize] == cluster_keys[b as usize]));
        // The keys move down to their numbers in place (a number is never more than its
        // cluster, and a person's first cluster is met first): no second vector of keys.
        let mut persons = 0;
        for (c, &p) in number.iter().enumerate() {
            if p as usize == persons {
                cluster_keys[persons] = cluster_keys[c];
                persons += 1;
            }
        }
        cluster_keys.truncate(persons);
        if cluster_keys.capacity() > persons + persons / 8 {
            cluster_keys.shrink_to_fit();
        }
        for n in &mut cluster_of {
            *n = number[*n as usize];
        }
        UnitKeys { of_unit: cluster_of, persons: cluster_keys }
    }

    /// Units.
    pub fn len(&self) -> usize {
        self.of_unit.len()
    }

    pub fn is_empty(&self) -> bool {
        self.of_unit.is_empty()
    }

    /// Distinct persons (keys).
    pub fn persons(&self) -> usize {
        self.persons.len()
    }

    /// Per unit its person's number.
    pub fn person_numbers(&self) -> &[u32] {
        &self.of_unit
    }

    /// The number of `unit`'s person.
    pub fn person_of(&self, unit: usize) -> u32 {
        self.of_unit[unit]
    }

    /// The key of person `number`.
    pub fn key_of_person(&self, number: u32) -> &PersonKey {
        &self.persons[number as usize]
    }

    /// The key of `unit`'s person and its number.
    pub fn of(&self, unit: usize) -> (&PersonKey, u32) {
        let number = self.of_unit[unit];
        (&self.persons[number as usize], number)
    }

    /// Each unit's key, in unit order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &PersonKey> + '_ {
        self.of_unit.iter().map(|&n| &self.persons[n as usize])
    }

    /// Each unit's key, in unit order, as a vector.
    pub fn to_vec(&self) -> Vec<PersonKey> {
        self.iter().copied().collect()
    }

    /// Per unit its person's number, and per person its key (number `n` at `n`): for a caller
    /// that keeps the keys elsewhere (the intake seals them into scratch pages for pass 2).
    pub fn into_parts(self) -> (Vec<u32>, Vec<PersonKey>) {
        (self.of_unit, self.persons)
    }

    /// The keys of `units` (indices into these), in that order.
    pub fn select(&self, units: &[u32]) -> UnitKeys {
        units.iter().map(|&u| self[u as usize]).collect()
    }
}

/// Numbers clusters as persons, one number a key: clusters that share a key are one person, and
/// persons are numbered 0, 1, 2, … in order of their first cluster. `prefixes`: per cluster the
/// first 8 bytes of its key ([`PersonKey::prefix`]); `same_key(a, b)` says whether clusters `a`
/// and `b` have the same key, and is asked only of clusters whose prefixes are equal (so a
/// caller that keeps the keys elsewhere reads them back only for those), each cluster against
/// the first cluster of each key met before it among them. Per cluster its person's number;
/// a cluster is its person's first exactly when its number is one more than any before it.
/// 16 bytes a cluster at most (the prefixes and an order of them, then the numbers).
pub fn number_clusters<E>(prefixes: Vec<u64>, mut same_key: impl FnMut(u32, u32) -> Result<bool, E>) -> Result<Vec<u32>, E> {
    let clusters = prefixes.len();
    // Per cluster, the first cluster with its key (sorted by prefix, then cluster; within a
    // prefix, each cluster compared with the first of each key already met).
    let mut order: Vec<u32> = (0..clusters as u32).collect();
    order.sort_unstable_by_key(|&c| (prefixes[c as usize], c));
    let mut number = vec![0u32; clusters];
    let mut firsts: Vec<u32> = Vec::new();
    for run in order.chunk_by(|&a, &b| prefixes[a as usize] == prefixes[b as usize]) {
        firsts.clear();
        for &c in run {
            let mut first = c;
            for &f in &firsts {
                if same_key(f, c)? {
                    first = f;
                    break;
                }
            }
            if first == c {
                firsts.push(c);
            }
            number[c as usize] = first;
        }
    }
    drop(order);
    drop(prefixes);
    // In cluster order, the first cluster of a key takes the next number and the others the
    // number of that first one, which comes before them (in place: a cluster's entry turns
    // from its first cluster into its number).
    let mut persons = 0u32;
    for c in 0..clusters {
        let first = number[c] as usize;
        number[c] = if first == c {
            persons += 1;
            persons - 1
        } else {
            number[first]
        };
    }
    Ok(number)
}

impl Index<usize> for UnitKeys {
    type Output = PersonKey;

    fn index(&self, unit: usize) -> &PersonKey {
        &self.persons[self.of_unit[unit] as usize]
    }
}

impl<'a> IntoIterator for &'a UnitKeys {
    type Item = &'a PersonKey;
    type IntoIter = Box<dyn ExactSizeIterator<Item = &'a PersonKey> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// A key per unit, numbered.
/// Whether every number in `of_unit` is at most one more than the largest before it (numbers
/// given in order of first unit, from 0).
fn numbered_by_first_unit(of_unit: &[u32]) -> bool {
    let mut next = 0u32;
    for &n in of_unit {
        match n.cmp(&next) {
            std::cmp::Ordering::Less => {}
            std::cmp::Ordering::Equal => next += 1,
            std::cmp::Ordering::Greater => return false,
        }
    }
    true
}

impl From<Vec<PersonKey>> for UnitKeys {
    fn from(keys: Vec<PersonKey>) -> Self {
        UnitKeys::from_clusters((0..keys.len() as u32).collect(), keys)
    }
}

impl FromIterator<PersonKey> for UnitKeys {
    fn from_iter<I: IntoIterator<Item = PersonKey>>(iter: I) -> Self {
        UnitKeys::from(iter.into_iter().collect::<Vec<_>>())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Keys that share their first 8 bytes but not the rest are two persons, keys equal
        /// throughout one; persons are numbered by first cluster; full keys are compared only
        /// for clusters whose prefixes are equal; and a failing comparison is the result.
        #[test]
        fn clusters_are_numbered_by_their_whole_keys(keys in proptest::collection::vec((0u8..3, 0u8..3), 0..60), fail_at in 0usize..8) {
            let keys: Vec<PersonKey> = keys.into_iter().map(|(head, tail)| { let mut k = [head; 32]; k[31] = tail; PersonKey(k) }).collect();
            let mut firsts: Vec<PersonKey> = Vec::new();
            let want: Vec<u32> = keys.iter().map(|k| {
                if !firsts.contains(k) {
                    firsts.push(*k);
                }
                firsts.iter().position(|f| f == k).unwrap() as u32
            }).collect();
            let mut asked = 0;
            let number = number_clusters(keys.iter().map(PersonKey::prefix).collect(), |a, b| {
                let (a, b) = (keys[a as usize], keys[b as usize]);
                assert_eq!(a.prefix(), b.prefix(), "compared across prefixes");
                asked += 1;
                Ok::<_, ()>(a == b)
            });
            prop_assert_eq!(number, Ok(want));
            // Comparisons stop at the first that fails.
            let (mut left, mut after) = (fail_at, 0);
            let failed = number_clusters(keys.iter().map(PersonKey::prefix).collect(), |a, b| {
                if left == 0 {
                    after += 1;
                    return Err(());
                }
                left -= 1;
                Ok(keys[a as usize] == keys[b as usize])
            });
            prop_assert_eq!(failed.is_err(), fail_at < asked);
            prop_assert!(after <= 1);
        }

        /// Whatever the keys, each unit keeps its key, persons are numbered in order of their
        /// first unit without gaps, and equal keys are one number.
        #[test]
        fn units_keep_their_keys_and_persons_are_numbered_by_first_unit(keys in proptest::collection::vec(0u8..6, 0..40)) {
            let keys: Vec<PersonKey> = keys.into_iter().map(|b| PersonKey([b; 32])).collect();
            let numbered = UnitKeys::from(keys.clone());
            prop_assert_eq!(numbered.len(), keys.len());
            prop_assert!(numbered.iter().eq(keys.iter()));
            let mut firsts: Vec<PersonKey> = Vec::new();
            for (u, k) in keys.iter().enumerate() {
                if !firsts.contains(k) {
                    firsts.push(*k);
                }
                let (key, number) = numbered.of(u);
                prop_assert_eq!(key, k);
                prop_assert_eq!(number as usize, firsts.iter().position(|f| f == k).unwrap());
            }
            prop_assert_eq!(numbered.persons(), firsts.len());
        }

        /// Clusters that share a key are one person, and the result is the numbering of the keys
        /// per unit (so that equality is equality of keys per unit).
        #[test]
        fn clusters_sharing_a_key_are_one_person(cluster_keys in proptest::collection::vec(0u8..5, 1..12), units in proptest::collection::vec(0usize..100, 0..40)) {
            let cluster_keys: Vec<PersonKey> = cluster_keys.into_iter().map(|b| PersonKey([b; 32])).collect();
            // Clusters in order of their first unit: unit i's cluster is at most the clusters
            // seen so far.
            let mut cluster_of = Vec::new();
            let mut seen = 0u32;
            for u in units {
                let c = (u as u32) % (seen + 1).min(cluster_keys.len() as u32);
                seen = seen.max(c + 1);
                cluster_of.push(c);
            }
            let mut cluster_keys = cluster_keys;
            cluster_keys.truncate(seen as usize);
            let want: Vec<PersonKey> = cluster_of.iter().map(|&c| cluster_keys[c as usize]).collect();
            let numbered = UnitKeys::from_clusters(cluster_of, cluster_keys);
            prop_assert_eq!(&numbered, &UnitKeys::from(want.clone()));
            prop_assert!(numbered.iter().eq(want.iter()));
        }
    }
}
