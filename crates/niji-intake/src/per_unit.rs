//! What the intake reads per linkage unit after linkage, held in as few bytes as it can be:
//! each unit's person (its number in memory, 4 bytes, while the bucket rows are made; the
//! persons' keys in sealed scratch pages, [`PersonKeys`], sealed cluster by cluster as linkage
//! makes them, [`ClusterKeys`]) and dates packed in 4 bytes ([`UnitDates`]); for pass 2 the
//! numbers and dates go to sealed pages too ([`PersonKeys::seal_units`]). A 32-byte key per
//! cluster, person or unit held in memory was the largest growth of the link and write phases,
//! and the three per-unit arrays then that of the write phase.

use std::io;
use std::path::Path;

use niji_ingest::{Date, PackedDate};
use niji_privacy::{number_clusters, PageStore, PersonKey};

use crate::scratch::SealedPages;

/// Bytes of records a scratch page holds at most (1 KiB).
const PAGE_BYTES: usize = 1024;
/// Pages kept opened at once, by page number modulo this (64 KiB).
const CACHED_PAGES: usize = 64;

/// Per unit its person's number and key, the keys sealed in an unnamed scratch file in the
/// instance folder (under a key held only by this process, as linkage's units are) and read
/// back a page at a time through a small cache. For pass 2 the per-unit numbers go to sealed
/// pages too, with each unit's birth date and observation date ([`PersonKeys::seal_units`]),
/// so that the write phase holds a bit a unit and no more (whether its first record came). The
/// records of one claim share a unit, so the last unit asked for is answered without a page.
pub(crate) struct PersonKeys {
    of_unit: OfUnit,
    keys: KeyPages,
    last: Option<(usize, UnitFacts)>,
}

/// Where each unit's person number lies.
enum OfUnit {
    Held(Vec<u32>),
    /// With the unit's dates, 12 bytes a unit: the number, the birth date and the observation
    /// date ([`PackedDate`]s).
    Sealed(RecordPages<12>),
}

/// What pass 2 reads of a unit.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UnitFacts {
    pub key: PersonKey,
    pub number: u32,
    /// The unit's full birth date (for the lake's `age`; known once the units are sealed).
    pub birth: Option<Date>,
    /// The earliest date this submission's records of the unit were observed (stored with the
    /// unit's first record; known once the units are sealed).
    pub observed: Option<Date>,
}

/// Keys in sealed pages, key `n` (a person's, or a cluster's) at `n`.
pub(crate) type KeyPages = RecordPages<32>;

/// Records of `N` bytes in sealed pages, record `n` at `n`.
pub(crate) struct RecordPages<const N: usize> {
    records: usize,
    pages: SealedPages,
    /// Per slot, the page it holds (`u64::MAX`: none) and that page's records.
    cache: Vec<(u64, Vec<u8>)>,
}

impl PersonKeys {
    /// Seals `keys`' persons' keys into a new scratch file in `folder`, keeping in memory only
    /// each unit's person number.
    #[cfg(test)]
    pub(crate) fn seal(folder: &Path, keys: niji_privacy::UnitKeys) -> io::Result<PersonKeys> {
        let (of_unit, keys) = keys.into_parts();
        let mut pages = KeyPagesWriter::new(folder)?;
        for key in keys {
            pages.push(&key.0)?;
        }
        Ok(PersonKeys { of_unit: OfUnit::Held(of_unit), keys: pages.finish("intake-person-keys-read", "a key")?, last: None })
    }

    /// Persons.
    pub(crate) fn persons(&self) -> usize {
        self.keys.records
    }

    /// Units.
    pub(crate) fn len(&self) -> usize {
        match &self.of_unit {
            OfUnit::Held(of_unit) => of_unit.len(),
            OfUnit::Sealed(pages) => pages.len(),
        }
    }

    /// Another reader from here on (the bucket rows, pass 2): the pages cached so far go
    /// (each reads in its own order), and a failed read is failpoint `read_failpoint`'s, so
    /// that the crash tests fail each reader on its own.
    pub(crate) fn begin_reading(&mut self, read_failpoint: &'static str) {
        self.keys.forget_pages();
        self.last = None;
        self.keys.pages.failpoints.read = read_failpoint;
    }

    /// Per unit its person's number, and the keys by number: for a reader that goes person by
    /// person (the link index's bucket rows) rather than unit by unit, before
    /// [`PersonKeys::seal_units`].
    pub(crate) fn by_person(&mut self) -> (&[u32], &mut KeyPages) {
        match &self.of_unit {
            OfUnit::Held(of_unit) => (of_unit, &mut self.keys),
            OfUnit::Sealed(_) => unreachable!("bucket rows are made before the units are sealed"),
        }
    }

    /// Seals each unit's person number with its birth date and observation date into a new
    /// scratch file in `folder`, and frees the numbers held (12 bytes a unit leave memory for
    /// pass 2; its records meet their units mostly in order: a holder's monthly files list the
    /// same patients in much the same order). A failed reading of those pages is failpoint
    /// `read_failpoint`'s.
    pub(crate) fn seal_units(&mut self, folder: &Path, births: UnitDates, observed: UnitDates, read_failpoint: &'static str) -> io::Result<()> {
        let OfUnit::Held(of_unit) = &self.of_unit else { return Ok(()) };
        assert!(births.0.len() == of_unit.len() && observed.0.len() == of_unit.len(), "a birth and an observation date per unit");
        fail::fail_point!("intake-units-sealing", |_| Err(io::Error::other("a unit's person and dates could not be written (failpoint)")));
        let mut pages = RecordPagesWriter::<12>::new(folder)?;
        for (u, &number) in of_unit.iter().enumerate() {
            let mut record = [0u8; 12];
            record[..4].copy_from_slice(&number.to_le_bytes());
            record[4..8].copy_from_slice(&births.0[u].to_bits().to_le_bytes());
            record[8..].copy_from_slice(&observed.0[u].to_bits().to_le_bytes());
            pages.push(&record)?;
        }
        self.of_unit = OfUnit::Sealed(pages.finish(read_failpoint, "a unit's person and dates")?);
        self.last = None;
        Ok(())
    }

    /// The key of `unit`'s person and its number. A page that cannot be read back (the file
    /// changed or failed under the intake) is an error, never a wrong key.
    pub(crate) fn of(&mut self, unit: usize) -> io::Result<(PersonKey, u32)> {
        self.facts(unit).map(|f| (f.key, f.number))
    }

    /// Whether [`PersonKeys::seal_units`] was called: the units' dates are known.
    pub(crate) fn units_sealed(&self) -> bool {
        matches!(self.of_unit, OfUnit::Sealed(_))
    }

    /// What pass 2 reads of `unit` (its dates are none before [`PersonKeys::seal_units`]).
    pub(crate) fn facts(&mut self, unit: usize) -> io::Result<UnitFacts> {
        if let Some((u, facts)) = self.last {
            if u == unit {
                return Ok(facts);
            }
        }
        if unit >= self.len() {
            return Err(io::Error::other("a unit past the units sealed"));
        }
        let (number, birth, observed) = match &mut self.of_unit {
            OfUnit::Held(of_unit) => (of_unit[unit], None, None),
            OfUnit::Sealed(pages) => {
                let record = pages.get(unit)?;
                let word = |at: usize| u32::from_le_bytes(record[at..at + 4].try_into().expect("four bytes"));
                (word(0), PackedDate::from_bits(word(4)).get(), PackedDate::from_bits(word(8)).get())
            }
        };
        let facts = UnitFacts { key: self.keys.of(number)?, number, birth, observed };
        self.last = Some((unit, facts));
        Ok(facts)
    }
}

/// Each cluster's key, sealed into scratch pages as linkage hands it over, with its first 8
/// bytes kept in memory for numbering: 8 bytes a cluster where the key took 32.
pub(crate) struct ClusterKeys {
    pages: KeyPagesWriter,
    prefixes: Vec<u64>,
    /// The first page that could not be written: every key after it is dropped.
    error: Option<io::Error>,
}

impl ClusterKeys {
    /// No cluster yet, the pages in a new scratch file in `folder`.
    pub(crate) fn new(folder: &Path) -> io::Result<ClusterKeys> {
        Ok(ClusterKeys { pages: KeyPagesWriter::new(folder)?, prefixes: Vec::new(), error: None })
    }

    /// The key of the next cluster, of `clusters` in all. A page that cannot be written is kept
    /// as the error [`ClusterKeys::into_persons`] gives (linkage hands keys over without asking
    /// back).
    pub(crate) fn push(&mut self, key: PersonKey, clusters: usize) {
        if self.error.is_some() {
            return;
        }
        // Room for every prefix at once (grown by doubling, they took up to twice their bytes).
        self.prefixes.reserve_exact(clusters.saturating_sub(self.prefixes.len()));
        fail::fail_point!("intake-cluster-keys-write", |_| self.error = Some(io::Error::other("a cluster's key could not be written (failpoint)")));
        self.prefixes.push(key.prefix());
        if let Err(e) = self.pages.push(&key.0) {
            self.error = Some(e);
        }
    }

    /// The persons of the clusters (`cluster_of`: per unit its cluster), one a key, numbered
    /// by first cluster as `niji_privacy::number_clusters` does: their keys sealed anew into
    /// a scratch file in `folder`, person by person, and the clusters' file dropped.
    /// `clusters`: how many linkage made; a key missing or too many is an error.
    pub(crate) fn into_persons(self, folder: &Path, mut cluster_of: Vec<u32>, clusters: usize) -> io::Result<PersonKeys> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.prefixes.len() != clusters || cluster_of.iter().any(|&c| c as usize >= clusters) {
            return Err(io::Error::other("a unit's cluster has no key"));
        }
        let mut by_cluster = self.pages.finish("intake-cluster-keys-read", "a key")?;
        let number = number_clusters(self.prefixes, |a, b| Ok::<_, io::Error>(by_cluster.of(a)? == by_cluster.of(b)?))?;
        let mut persons = KeyPagesWriter::new(folder)?;
        for (c, &p) in number.iter().enumerate() {
            if p as usize == persons.records {
                persons.push(&by_cluster.of(c as u32)?.0)?;
            }
        }
        drop(by_cluster);
        for c in &mut cluster_of {
            *c = number[*c as usize];
        }
        Ok(PersonKeys { of_unit: OfUnit::Held(cluster_of), keys: persons.finish("intake-person-keys-read", "a key")?, last: None })
    }
}

type KeyPagesWriter = RecordPagesWriter<32>;

/// Records of `N` bytes sealed into pages in order, as many as fit in [`PAGE_BYTES`]. After a
/// page fails to be written nothing more is taken (its records are not kept for another try).
struct RecordPagesWriter<const N: usize> {
    pages: SealedPages,
    page: Vec<u8>,
    records: usize,
    failed: bool,
}

impl<const N: usize> RecordPagesWriter<N> {
    const A_PAGE: usize = PAGE_BYTES / N;

    fn new(folder: &Path) -> io::Result<RecordPagesWriter<N>> {
        Ok(RecordPagesWriter { pages: SealedPages::new(folder)?, page: Vec::with_capacity(Self::A_PAGE * N), records: 0, failed: false })
    }

    fn push(&mut self, record: &[u8; N]) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("a page of sealed records failed earlier"));
        }
        self.page.extend_from_slice(record);
        self.records += 1;
        if self.page.len() == Self::A_PAGE * N {
            self.failed = true;
            self.pages.put(&self.page)?;
            self.failed = false;
            self.page.clear();
        }
        Ok(())
    }

    /// The records written, to be read back; a failed read is the failpoint `read_failpoint`'s
    /// (the crash tests fail each reading on its own), its error naming `what` a record is.
    fn finish(mut self, read_failpoint: &'static str, what: &'static str) -> io::Result<RecordPages<N>> {
        if self.failed {
            return Err(io::Error::other("a page of sealed records failed earlier"));
        }
        if !self.page.is_empty() {
            self.pages.put(&self.page)?;
        }
        self.pages.failpoints.read = read_failpoint;
        self.pages.failpoints.what = what;
        Ok(RecordPages { records: self.records, pages: self.pages, cache: vec![(u64::MAX, Vec::new()); CACHED_PAGES] })
    }
}

impl<const N: usize> RecordPages<N> {
    const A_PAGE: usize = PAGE_BYTES / N;

    /// Records sealed.
    pub(crate) fn len(&self) -> usize {
        self.records
    }

    /// Forgets the pages cached (the next reader reads its own).
    fn forget_pages(&mut self) {
        for slot in &mut self.cache {
            *slot = (u64::MAX, Vec::new());
        }
    }

    /// Record `n`. A page that cannot be read back is an error, never a wrong record.
    fn get(&mut self, n: usize) -> io::Result<[u8; N]> {
        if n >= self.records {
            return Err(io::Error::other("a number past the records sealed"));
        }
        let page = (n / Self::A_PAGE) as u64;
        let slot = &mut self.cache[page as usize % CACHED_PAGES];
        if slot.0 != page {
            // Marked empty first: a failed read leaves no page under the wrong number.
            slot.0 = u64::MAX;
            self.pages.get(page, &mut slot.1)?;
            slot.0 = page;
        }
        let at = (n % Self::A_PAGE) * N;
        let bytes = slot.1.get(at..at + N).ok_or_else(|| io::Error::other("a scratch page of sealed records is short"))?;
        Ok(bytes.try_into().expect("N bytes"))
    }
}

impl KeyPages {
    /// Key `number`. A page that cannot be read back is an error, never a wrong key.
    pub(crate) fn of(&mut self, number: u32) -> io::Result<PersonKey> {
        self.get(number as usize).map(PersonKey)
    }
}

/// An optional date per unit in 4 bytes ([`PackedDate`]).
pub(crate) struct UnitDates(Vec<PackedDate>);

impl UnitDates {
    /// `n` units without a date.
    pub(crate) fn none(n: usize) -> UnitDates {
        UnitDates(vec![PackedDate::NONE; n])
    }

    pub(crate) fn with_capacity(n: usize) -> UnitDates {
        UnitDates(Vec::with_capacity(n))
    }

    pub(crate) fn push(&mut self, date: Option<Date>) {
        self.0.push(PackedDate::new(date));
    }

    pub(crate) fn set(&mut self, unit: usize, date: Option<Date>) {
        self.0[unit] = PackedDate::new(date);
    }

    pub(crate) fn get(&self, unit: usize) -> Option<Date> {
        self.0[unit].get()
    }
}

#[cfg(test)]
mod tests {
    use niji_ingest::dates::Precision;
    use niji_privacy::UnitKeys;
    use proptest::prelude::*;

    use super::*;

    /// Dates set, pushed and left unset per unit come back as they were (the packing itself is
    /// `PackedDate`'s, tested in `niji-ingest`).
    #[test]
    fn unit_dates_come_back_per_unit() {
        let date = |d| Some(Date { year: 2024, month: 4, day: d, precision: Precision::Day });
        let mut pushed = UnitDates::with_capacity(2);
        pushed.push(date(1));
        pushed.push(None);
        let mut set = UnitDates::none(3);
        set.set(2, date(30));
        assert_eq!([pushed.get(0), pushed.get(1), set.get(0), set.get(1), set.get(2)], [date(1), None, None, None, date(30)]);
    }

    /// 5,000 units of 3,000 persons: 94 pages, more than the cache holds.
    fn unit_keys() -> UnitKeys {
        (0..5_000u32)
            .map(|u| {
                let person = (u * 7919) % 3_000;
                let mut key = [0u8; 32];
                key[..4].copy_from_slice(&person.to_be_bytes());
                key[31] = 0x5A;
                PersonKey(key)
            })
            .collect()
    }

    /// Clusters' keys (`key(c)`, each byte of the form 0xA0–0xA3) sealed as linkage hands them
    /// over, numbered from the pages: each unit's key and person number are those of a
    /// first-seen list of keys over the units, and no page holds 8 key bytes in the clear.
    fn check_clusters_numbered(cluster_of: Vec<u32>, clusters: usize, key: impl Fn(u32) -> PersonKey) {
        let dir = tempfile::tempdir().unwrap();
        let mut firsts: Vec<PersonKey> = Vec::new();
        let want: Vec<(PersonKey, u32)> = cluster_of
            .iter()
            .map(|&c| {
                let k = key(c);
                if !firsts.contains(&k) {
                    firsts.push(k);
                }
                (k, firsts.iter().position(|f| *f == k).unwrap() as u32)
            })
            .collect();
        let in_clear = |raw: Vec<u8>| raw.windows(8).any(|w| w.iter().all(|&b| b & 0xFC == 0xA0));
        let mut sealing = ClusterKeys::new(dir.path()).unwrap();
        for c in 0..clusters as u32 {
            sealing.push(key(c), clusters);
        }
        assert!(!in_clear(sealing.pages.pages.raw_bytes()), "a cluster's key in the clear");
        let mut persons = sealing.into_persons(dir.path(), cluster_of, clusters).unwrap();
        assert_eq!(persons.len(), want.len());
        assert_eq!(persons.persons(), firsts.len());
        for u in (0..want.len()).rev() {
            assert_eq!(persons.of(u).unwrap(), want[u], "unit {u}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(!in_clear(persons.keys.pages.raw_bytes()), "a person's key in the clear");
    }

    /// Clusters in order of their first unit, as linkage numbers them: unit `i`'s cluster from
    /// `units[i]`, at most one past the clusters seen. Per unit its cluster, and the clusters.
    fn clusters_of(units: &[u32], most: u32) -> (Vec<u32>, usize) {
        let (mut cluster_of, mut seen) = (Vec::new(), 0u32);
        for &u in units {
            let c = u % (seen + 1).min(most);
            seen = seen.max(c + 1);
            cluster_of.push(c);
        }
        (cluster_of, seen as usize)
    }

    proptest! {
        /// Keys that share their first 8 bytes but not the rest are two persons.
        #[test]
        fn clusters_sealed_then_numbered_are_the_persons_of_their_keys(
            keys in proptest::collection::vec((0u8..4, 0u8..3), 1..200),
            units in proptest::collection::vec(0u32..1_000, 1..400),
        ) {
            let (cluster_of, clusters) = clusters_of(&units, keys.len() as u32);
            check_clusters_numbered(cluster_of, clusters, |c| {
                let (head, tail) = keys[c as usize];
                let mut k = [0xA0 | head; 32];
                k[31] = 0xA0 | tail;
                PersonKey(k)
            });
        }
    }

    /// 5,000 clusters of 3,000 keys over 12,000 units: more cluster and person pages than the
    /// cache holds.
    #[test]
    fn thousands_of_clusters_are_numbered_through_the_page_cache() {
        // Every other unit opens the next cluster; the others go back to one already open.
        let (mut cluster_of, mut open) = (Vec::new(), 0u32);
        for u in 0..12_000u32 {
            if u % 2 == 0 && open < 5_000 {
                cluster_of.push(open);
                open += 1;
            } else {
                cluster_of.push(u.wrapping_mul(2_654_435_761) % open);
            }
        }
        let clusters = open as usize;
        assert_eq!(clusters, 5_000);
        check_clusters_numbered(cluster_of, clusters, |c| {
            let n = (c * 7919) % 3_000;
            let mut k = [0xA0; 32];
            for (i, b) in k[..6].iter_mut().enumerate() {
                *b = 0xA0 | ((n >> (2 * i)) & 3) as u8;
            }
            PersonKey(k)
        });
    }

    /// A cluster number past the keys handed over, or a page that could not be written, is an
    /// error, never persons.
    #[test]
    fn clusters_without_keys_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut sealing = ClusterKeys::new(dir.path()).unwrap();
        sealing.push(PersonKey([1; 32]), 1);
        assert_eq!(sealing.into_persons(dir.path(), vec![0, 1], 2).err().unwrap().to_string(), "a unit's cluster has no key");
        let mut sealing = ClusterKeys::new(dir.path()).unwrap();
        sealing.push(PersonKey([1; 32]), 1);
        assert_eq!(sealing.into_persons(dir.path(), vec![0], 2).err().unwrap().to_string(), "a unit's cluster has no key");
        let mut failing = ClusterKeys::new(dir.path()).unwrap();
        failing.error = Some(io::Error::other("no space"));
        failing.push(PersonKey([1; 32]), 1);
        assert_eq!(failing.into_persons(dir.path(), vec![0], 1).err().unwrap().to_string(), "no space");
    }

    #[test]
    fn each_unit_gets_its_persons_key_and_number_from_the_sealed_pages() {
        let dir = tempfile::tempdir().unwrap();
        let keys = unit_keys();
        let expected: Vec<(PersonKey, u32)> = (0..keys.len()).map(|u| (*keys.of(u).0, keys.of(u).1)).collect();
        let mut sealed = PersonKeys::seal(dir.path(), keys).unwrap();
        assert_eq!(sealed.len(), 5_000);
        // Forwards, backwards and in jumps: every answer linkage gave.
        let order = (0..5_000).chain((0..5_000).rev()).chain((0..5_000).map(|u| (u * 389) % 5_000));
        for unit in order {
            assert_eq!(sealed.of(unit).unwrap(), expected[unit], "unit {unit}");
        }
        // Nothing named in the folder, and no key in the clear in the scratch file.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(sealed.keys.pages.raw_bytes().windows(4).all(|w| w[..] != [0, 0, 0, 7] && w[..] != [0x5A, 0, 0, 0]));

        // A page changed on disk is an error, never another key.
        let mut fresh = PersonKeys::seal(dir.path(), unit_keys()).unwrap();
        let unit = (0..5_000).find(|&u| expected[u].1 as usize / KeyPages::A_PAGE == 5).unwrap();
        fresh.keys.pages.flip(5 * (KeyPages::A_PAGE as u64 * 32 + 16) + 100);
        assert_eq!(fresh.of(unit).unwrap_err().kind(), io::ErrorKind::InvalidData);
        // And stays one: the failed page is not kept.
        assert_eq!(fresh.of(unit).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    /// Units sealed with their dates for pass 2 answer as before, with their dates: forwards,
    /// backwards and in jumps (more pages than the cache), nothing in the clear, a changed page
    /// an error; a unit past the units is an error.
    #[test]
    fn units_sealed_with_their_dates_give_their_person_and_dates() {
        let dir = tempfile::tempdir().unwrap();
        let keys = unit_keys();
        let expected: Vec<(PersonKey, u32)> = (0..keys.len()).map(|u| (*keys.of(u).0, keys.of(u).1)).collect();
        let date = |u: usize, d| {
            (!u.is_multiple_of(3)).then(|| Date { year: 1900 + (u % 120) as u16, month: 1 + (u % 12) as u8, day: d, precision: Precision::Day })
        };
        let (mut births, mut observed) = (UnitDates::with_capacity(5_000), UnitDates::none(5_000));
        for u in 0..5_000 {
            births.push(date(u, 13));
            observed.set(u, date(u + 1, 27));
        }
        let mut sealed = PersonKeys::seal(dir.path(), keys).unwrap();
        assert!(sealed.facts(3).unwrap().birth.is_none(), "no dates before sealing");
        sealed.seal_units(dir.path(), births, observed, "intake-pass2-units-read").unwrap();
        assert!(sealed.units_sealed(), "the numbers are no longer held");
        let order = (0..5_000).chain((0..5_000).rev()).chain((0..5_000).map(|u| (u * 389) % 5_000));
        for unit in order {
            let facts = sealed.facts(unit).unwrap();
            assert_eq!(
                (facts.key, facts.number, facts.birth, facts.observed),
                (expected[unit].0, expected[unit].1, date(unit, 13), date(unit + 1, 27)),
                "unit {unit}"
            );
        }
        assert_eq!(sealed.facts(5_000).unwrap_err().to_string(), "a unit past the units sealed");
        let OfUnit::Sealed(pages) = &sealed.of_unit else { unreachable!() };
        // No unit's record (number and dates) in the clear.
        let raw = pages.pages.raw_bytes();
        for (u, (_, number)) in expected.iter().enumerate().take(200) {
            let mut record = number.to_le_bytes().to_vec();
            record.extend(PackedDate::new(date(u, 13)).to_bits().to_le_bytes());
            record.extend(PackedDate::new(date(u + 1, 27)).to_bits().to_le_bytes());
            assert!(!raw.windows(12).any(|w| w == record), "unit {u} in the clear");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // A page changed on disk is an error, never another unit's person.
        let OfUnit::Sealed(pages) = &mut sealed.of_unit else { unreachable!() };
        pages.forget_pages();
        pages.pages.flip(100);
        sealed.last = None;
        assert_eq!(sealed.facts(1).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
