//! What pass 2 reads per linkage unit, held in as few bytes as it can be: each unit's person
//! (its number in memory, 4 bytes; the persons' keys in sealed scratch pages, [`PersonKeys`])
//! and dates packed in 4 bytes ([`UnitDates`]). At a million distinct units these were the
//! write phase's growth: a 32-byte key per person and two 6-byte optional dates per unit.

use std::io;
use std::path::Path;

use niji_ingest::dates::Precision;
use niji_ingest::Date;
use niji_privacy::{PageStore, PersonKey, UnitKeys};

use crate::scratch::SealedPages;

/// Keys a scratch page holds (1 KiB of keys).
const KEYS_A_PAGE: usize = 32;
/// Pages kept opened at once, by page number modulo this (64 KiB).
const CACHED_PAGES: usize = 64;

/// Per unit its person's number and key, the keys sealed in an unnamed scratch file in the
/// instance folder (under a key held only by this process, as linkage's units are) and read
/// back a page at a time through a small cache. The records of one claim share a unit, so the
/// last unit asked for is answered without a page.
pub(crate) struct PersonKeys {
    of_unit: Vec<u32>,
    persons: usize,
    pages: SealedPages,
    /// Per slot, the page it holds (`u64::MAX`: none) and that page's keys.
    cache: Vec<(u64, Vec<u8>)>,
    last: Option<(usize, PersonKey, u32)>,
}

impl PersonKeys {
    /// Seals `keys`' persons' keys into a new scratch file in `folder`, keeping in memory only
    /// each unit's person number.
    pub(crate) fn seal(folder: &Path, keys: UnitKeys) -> io::Result<PersonKeys> {
        let (of_unit, keys) = keys.into_parts();
        let mut pages = SealedPages::new(folder)?;
        let mut page = Vec::with_capacity(KEYS_A_PAGE * 32);
        for chunk in keys.chunks(KEYS_A_PAGE) {
            page.clear();
            for key in chunk {
                page.extend_from_slice(&key.0);
            }
            pages.put(&page)?;
        }
        Ok(PersonKeys { of_unit, persons: keys.len(), pages, cache: vec![(u64::MAX, Vec::new()); CACHED_PAGES], last: None })
    }

    /// Units.
    pub(crate) fn len(&self) -> usize {
        self.of_unit.len()
    }

    /// The key of `unit`'s person and its number. A page that cannot be read back (the file
    /// changed or failed under the intake) is an error, never a wrong key.
    pub(crate) fn of(&mut self, unit: usize) -> io::Result<(PersonKey, u32)> {
        if let Some((u, key, number)) = self.last {
            if u == unit {
                return Ok((key, number));
            }
        }
        let number = self.of_unit[unit];
        let n = number as usize;
        if n >= self.persons {
            return Err(io::Error::other("a unit's person number has no key"));
        }
        let page = (n / KEYS_A_PAGE) as u64;
        let slot = &mut self.cache[page as usize % CACHED_PAGES];
        if slot.0 != page {
            // Marked empty first: a failed read leaves no page under the wrong number.
            slot.0 = u64::MAX;
            fail::fail_point!("intake-person-keys-read", |_| Err(io::Error::other("a person's key could not be read back (failpoint)")));
            self.pages.get(page, &mut slot.1)?;
            slot.0 = page;
        }
        let at = (n % KEYS_A_PAGE) * 32;
        let bytes = slot.1.get(at..at + 32).ok_or_else(|| io::Error::other("a scratch page of keys is short"))?;
        let key = PersonKey(bytes.try_into().expect("32 bytes"));
        self.last = Some((unit, key, number));
        Ok((key, number))
    }
}

/// An optional date per unit in 4 bytes (`Option<Date>` takes 6): 0 for none, else a set top
/// bit, the precision (2 bits), the year (16), the month (4) and the day (5).
pub(crate) struct UnitDates(Vec<u32>);

impl UnitDates {
    /// `n` units without a date.
    pub(crate) fn none(n: usize) -> UnitDates {
        UnitDates(vec![0; n])
    }

    pub(crate) fn with_capacity(n: usize) -> UnitDates {
        UnitDates(Vec::with_capacity(n))
    }

    pub(crate) fn push(&mut self, date: Option<Date>) {
        self.0.push(pack(date));
    }

    pub(crate) fn set(&mut self, unit: usize, date: Option<Date>) {
        self.0[unit] = pack(date);
    }

    pub(crate) fn get(&self, unit: usize) -> Option<Date> {
        unpack(self.0[unit])
    }
}

fn pack(date: Option<Date>) -> u32 {
    let Some(d) = date else { return 0 };
    // `Date::new` gives months 1–12 and days 1–31: the 4 and 5 bits hold them.
    debug_assert!(d.month <= 15 && d.day <= 31);
    let precision = match d.precision {
        Precision::Year => 0,
        Precision::Month => 1,
        Precision::Day => 2,
    };
    1 << 31 | precision << 25 | u32::from(d.year) << 9 | u32::from(d.month & 0xF) << 5 | u32::from(d.day & 0x1F)
}

fn unpack(packed: u32) -> Option<Date> {
    if packed == 0 {
        return None;
    }
    let precision = match (packed >> 25) & 3 {
        0 => Precision::Year,
        1 => Precision::Month,
        _ => Precision::Day,
    };
    Some(Date { year: (packed >> 9) as u16, month: ((packed >> 5) & 0xF) as u8, day: (packed & 0x1F) as u8, precision })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn a_packed_date_comes_back_as_it_was(year in 0u16.., month in 1u8..=12, day in 1u8..=31, precision in 0u8..3, none: bool) {
            let precision = [Precision::Year, Precision::Month, Precision::Day][precision as usize];
            let date = (!none).then_some(Date { year, month, day, precision });
            let mut dates = UnitDates::with_capacity(1);
            dates.push(date);
            prop_assert_eq!(dates.get(0), date);
            let mut set = UnitDates::none(2);
            set.set(1, date);
            prop_assert_eq!((set.get(0), set.get(1)), (None, date));
        }
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
        assert!(sealed.pages.raw_bytes().windows(4).all(|w| w[..] != [0, 0, 0, 7] && w[..] != [0x5A, 0, 0, 0]));

        // A page changed on disk is an error, never another key.
        let mut fresh = PersonKeys::seal(dir.path(), unit_keys()).unwrap();
        let unit = (0..5_000).find(|&u| expected[u].1 as usize / KEYS_A_PAGE == 5).unwrap();
        fresh.pages.flip(5 * (KEYS_A_PAGE as u64 * 32 + 16) + 100);
        assert_eq!(fresh.of(unit).unwrap_err().kind(), io::ErrorKind::InvalidData);
        // And stays one: the failed page is not kept.
        assert_eq!(fresh.of(unit).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
