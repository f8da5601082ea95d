//! Where a run's units lie: packed one after another in pages ([`UnitList`]), the first pages in
//! memory and, when the caller gives a [`PageStore`], the rest handed to it as they fill (the
//! intake seals them into a scratch file), so that what linkage holds in memory per unit is a
//! few numbers, not the unit.
//!
//! This module does no I/O: a store is the caller's. A store that fails does not stop the run
//! (the rules have no error path): a page that cannot be kept stays in memory, a page that cannot
//! be read back reads as empty units, and the first error is kept for the caller, who must ask
//! [`UnitList::store_error`] before using anything linkage made from the list.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Mutex;

use niji_ingest::{Date, PackedDate};

use super::chunked::Chunked;
use super::{LinkUnit, UnitRef};

/// Keeps the pages a [`UnitList`] does not hold in memory, and gives them back.
pub trait PageStore: Send + Sync {
    /// Keeps `page`; returns the number to ask for it by.
    fn put(&mut self, page: &[u8]) -> std::io::Result<u64>;
    /// The page kept under `id`, into `out` (replacing what it held).
    fn get(&self, id: u64, out: &mut Vec<u8>) -> std::io::Result<()>;
}

/// How a [`UnitSet`](super::UnitSet) holds its units beyond memory.
pub struct UnitStorage {
    pub store: Box<dyn PageStore>,
    /// Bytes of pages kept in memory (the first ones) before pages go to the store.
    pub held_bytes: usize,
}

impl fmt::Debug for UnitStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnitStorage").field("held_bytes", &self.held_bytes).finish_non_exhaustive()
    }
}

/// Units one after another, encoded ([`UnitRef`]), in pages (a larger unit gets a page of its
/// own): no allocation per unit. Each page ends with its units' entries (where each ends and
/// the ordinal of its first record, 8 bytes a unit) and where the entries begin, written when
/// the page is closed, so that
/// what the list holds in memory per unit is its observation date alone (4 bytes), besides 12
/// bytes a page (where it lies and its first unit); the units are in memory or in the store
/// ([`UnitStorage`]). Those arrays are [`Chunked`]: no doubling room. What a
/// [`UnitSet`](super::UnitSet) holds its units in. Read in order with [`UnitList::for_each`], by
/// index with [`Units::unit`].
#[derive(Default)]
pub struct UnitList {
    /// Per page, where it lies.
    pages: Chunked<PageAt>,
    /// The pages held in memory, by their place here ([`Place::Held`]): the first ones, the
    /// open one (always the last here) and any the store did not take.
    held: Vec<Vec<u8>>,
    /// Per page: the index of its first unit (a page holds the units up to the next page's
    /// first; every page holds at least one).
    page_first: Chunked<u32>,
    /// The entries of the last page while it is open (units are still added to it): written at
    /// its end when it is closed.
    open: Vec<Entry>,
    /// Whether the last page is open.
    last_open: bool,
    count: usize,
    observed: Chunked<PackedDate>,
    spill: Option<Spill>,
    /// The store's first error, or one a list drained into this one had.
    error: Mutex<Option<std::io::Error>>,
}

/// Where a unit ends in its page and the arrival ordinal of its first record.
#[derive(Clone, Copy)]
struct Entry {
    end: u32,
    first_record: u32,
}

/// Bytes of an entry at a page's end: its `end` and `first_record`, little-endian.
const ENTRY: usize = 8;
/// Bytes after the entries: where the units end (the entries begin), so that a page given back
/// longer or shorter than it was kept is found out.
const FOOTER: usize = 4;

/// Page size of a list held in memory only: few, large allocations.
const PAGE: usize = 256 * 1024;
/// Page size of a list with a store: a unit read by index costs reading and opening its page.
const STORED_PAGE: usize = 1024;
/// Pages read back that are kept (first in, first out: units read in order, and units of one
/// person, tend to share pages).
const CACHED_PAGES: usize = 2048;

/// Where a page lies, in 8 bytes: its id in the store, or its place among the pages held (the
/// top bit set), or nowhere (all bits set: freed by [`UnitList::drain`]).
#[derive(Clone, Copy)]
struct PageAt(u64);

const HELD_BIT: u64 = 1 << 63;

impl PageAt {
    const FREED: PageAt = PageAt(u64::MAX);

    fn held(place: usize) -> PageAt {
        PageAt(HELD_BIT | place as u64)
    }

    /// A stored page's place, if the store's id leaves the top bit clear.
    fn stored(id: u64) -> Option<PageAt> {
        (id < HELD_BIT).then_some(PageAt(id))
    }

    fn place(self) -> Place {
        if self.0 == PageAt::FREED.0 {
            Place::Freed
        } else if self.0 & HELD_BIT != 0 {
            Place::Held((self.0 & !HELD_BIT) as usize)
        } else {
            Place::Stored(self.0)
        }
    }
}

enum Place {
    Held(usize),
    Stored(u64),
    Freed,
}

struct Spill {
    store: Box<dyn PageStore>,
    /// Pages (the first ones) that stay in memory.
    held_pages: usize,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    pages: HashMap<u32, Vec<u8>>,
    order: VecDeque<u32>,
}

impl UnitList {
    /// An empty list that hands its pages past the first `storage.held_bytes` to the store.
    pub fn with_storage(storage: UnitStorage) -> Self {
        UnitList {
            spill: Some(Spill { store: storage.store, held_pages: storage.held_bytes / STORED_PAGE, cache: Mutex::default() }),
            ..UnitList::default()
        }
    }

    /// Whether pages go to a store.
    pub fn has_storage(&self) -> bool {
        self.spill.is_some()
    }

    /// No more units are coming for now: closes the last page (to the store, if it is past the
    /// pages held) and frees the per-unit arrays' growth slack. Units may still be added: they
    /// start a new page.
    pub fn finish(&mut self) {
        self.close_last_page();
        self.open = Vec::new();
        self.pages.shrink_to_fit();
        self.held.shrink_to_fit();
        self.page_first.shrink_to_fit();
        self.observed.shrink_to_fit();
    }

    /// Appends a unit whose first record is the one at its own index; returns its index.
    pub fn push(&mut self, unit: UnitRef<'_>) -> u32 {
        self.push_with_first(unit, self.count as u32)
    }

    /// Appends a unit whose first record arrived `first_record`-th ([`UnitList::first_record`]);
    /// returns its index.
    pub(super) fn push_with_first(&mut self, unit: UnitRef<'_>, first_record: u32) -> u32 {
        let bytes = unit.bytes;
        let page_size = if self.spill.is_some() { STORED_PAGE } else { PAGE };
        let at = self.count as u32;
        // The unit, the entries of the page's units (this one's included) and the footer.
        let needed = bytes.len() + (self.open.len() + 1) * ENTRY + FOOTER;
        let last_open = self.last_open;
        // The open page is the last one held.
        let fits = last_open && self.held.last().is_some_and(|p| p.capacity() - p.len() >= needed);
        if !fits {
            // The first page grows as it fills (a list of a few units stays small); the others
            // are made full size.
            let grow = last_open
                && self.pages.len() == 1
                && match self.held.as_mut_slice() {
                    [p] if p.capacity() < page_size && p.len() + needed <= page_size => {
                        let target = (p.capacity() * 2).max(p.len() + needed).min(page_size);
                        p.reserve_exact(target - p.len());
                        true
                    }
                    _ => false,
                };
            if !grow {
                self.close_last_page();
                let own = bytes.len() + ENTRY + FOOTER;
                let size = if self.pages.len() == 0 { own.max(4096.min(page_size)) } else { page_size.max(own) };
                self.held.push(Vec::with_capacity(size));
                self.pages.push(PageAt::held(self.held.len() - 1));
                self.page_first.push(at);
                self.last_open = true;
            }
        }
        let page = self.held.last_mut().expect("the open page is held");
        page.extend_from_slice(bytes);
        self.open.push(Entry { end: page.len() as u32, first_record });
        self.observed.push(PackedDate::new(unit.observed));
        self.count += 1;
        at
    }

    /// Writes the open page's entries at its end (in the room kept for them) and hands it to the
    /// store, if it is past the pages held. A page the store does not take stays in memory (the
    /// error is kept), and so do the pages after it: a store that failed once is not asked again.
    fn close_last_page(&mut self) {
        if !std::mem::replace(&mut self.last_open, false) {
            return;
        }
        let page = self.held.last_mut().expect("the open page is held");
        let data_end = page.len() as u32;
        for e in self.open.drain(..) {
            page.extend_from_slice(&e.end.to_le_bytes());
            page.extend_from_slice(&e.first_record.to_le_bytes());
        }
        page.extend_from_slice(&data_end.to_le_bytes());
        let Some(spill) = self.spill.as_mut() else { return };
        let at = self.pages.len();
        if at <= spill.held_pages || self.error.lock().expect("not poisoned").is_some() {
            return;
        }
        let page = self.held.last().expect("the open page is held");
        let put = spill.store.put(page);
        match put.and_then(|id| PageAt::stored(id).ok_or_else(|| std::io::Error::other("a store gave a page an id out of range"))) {
            Ok(stored) => {
                self.pages.set(at - 1, stored);
                self.held.pop();
            }
            Err(e) => self.keep_error(e),
        }
    }

    /// Keeps `e` unless an error is kept already.
    pub(super) fn keep_error(&self, e: std::io::Error) {
        self.error.lock().expect("not poisoned").get_or_insert(e);
    }

    /// Every unit in order, with its index. Pages in the store are read once each.
    pub fn for_each(&self, mut f: impl FnMut(usize, UnitRef<'_>)) {
        let mut buffer = Vec::new();
        for p in 0..self.pages.len() {
            let bytes = self.page_bytes(self.pages.get(p), &mut buffer);
            self.visit_page(p, bytes, &mut |i, unit, _| f(i, unit));
        }
    }

    /// Calls `f` with each unit of page `p` (whose content is `bytes`), its index and its first
    /// record.
    fn visit_page(&self, p: usize, bytes: &[u8], f: &mut impl FnMut(usize, UnitRef<'_>, u32)) {
        let first = self.page_first.get(p) as usize;
        for j in 0..self.units_on(p) {
            let (unit, first_record) = self.unit_in(bytes, p, j);
            f(first + j, unit, first_record);
        }
    }

    /// As [`UnitList::for_each`], with each unit's first record, freeing each page once its
    /// units are read: the list is not held twice while its units are copied elsewhere. Returns
    /// the store's error, if any.
    pub(super) fn drain(mut self, mut f: impl FnMut(usize, UnitRef<'_>, u32)) -> Option<std::io::Error> {
        let mut buffer = Vec::new();
        let mut taken;
        for p in 0..self.pages.len() {
            let at = self.pages.get(p);
            self.pages.set(p, PageAt::FREED);
            let bytes = match at.place() {
                Place::Held(k) => {
                    taken = std::mem::take(&mut self.held[k]);
                    &taken[..]
                }
                _ => self.page_bytes(at, &mut buffer),
            };
            self.visit_page(p, bytes, &mut f);
        }
        self.store_error()
    }

    /// A page's bytes: held, or read from the store into `buffer` (empty if the store fails).
    fn page_bytes<'a>(&'a self, page: PageAt, buffer: &'a mut Vec<u8>) -> &'a [u8] {
        match page.place() {
            Place::Held(k) => &self.held[k],
            Place::Stored(id) => {
                if !self.read_page(id, buffer) {
                    buffer.clear();
                }
                buffer
            }
            Place::Freed => panic!("a unit read after its page was freed"),
        }
    }

    /// How many units page `p` holds.
    fn units_on(&self, p: usize) -> usize {
        let next = self.page_first.try_get(p + 1).map_or(self.count, |f| f as usize);
        next - self.page_first.get(p) as usize
    }

    /// The page that holds unit `i`.
    fn page_of(&self, i: usize) -> usize {
        assert!(i < self.count, "unit {i} of {}", self.count);
        self.page_first.partition_point(|f| f as usize <= i) - 1
    }

    /// The `j`-th unit of page `p`, whose content is `page`, and its first record; an empty unit
    /// if the page does not hold it (a page the store failed to give back, or gave back short:
    /// kept as an error too).
    fn unit_in<'a>(&self, page: &'a [u8], p: usize, j: usize) -> (UnitRef<'a>, u32) {
        let observed = self.observed.get(self.page_first.get(p) as usize + j).get();
        match self.locate(page, p, j) {
            Some((range, first_record)) => (UnitRef { bytes: &page[range], observed }, first_record),
            None => {
                if !page.is_empty() {
                    self.keep_error(std::io::Error::new(std::io::ErrorKind::InvalidData, "a page came back from the store other than it was kept"));
                }
                (UnitRef { bytes: empty_unit(), observed }, 0)
            }
        }
    }

    /// Where the `j`-th unit of page `p` lies in `page`, and its first record: from the open
    /// page's entries, or from those at the page's end.
    fn locate(&self, page: &[u8], p: usize, j: usize) -> Option<(std::ops::Range<usize>, u32)> {
        let (start, entry, data_end) = if self.last_open && p + 1 == self.pages.len() {
            let start = if j == 0 { 0 } else { self.open.get(j - 1)?.end };
            (start, *self.open.get(j)?, page.len())
        } else {
            let data_end = page.len().checked_sub(self.units_on(p) * ENTRY + FOOTER)?;
            let footer = u32::from_le_bytes(page[page.len() - FOOTER..].try_into().expect("four bytes"));
            if footer as usize != data_end {
                return None;
            }
            let entry = |k: usize| {
                let at = data_end + k * ENTRY;
                let word = |w: usize| u32::from_le_bytes(page[at + w..at + w + 4].try_into().expect("four bytes"));
                Entry { end: word(0), first_record: word(4) }
            };
            // The last unit ends where the entries begin: with the footer, a page given back at
            // another length is all but certain to fail one of the two.
            if entry(self.units_on(p) - 1).end as usize != data_end {
                return None;
            }
            let start = if j == 0 { 0 } else { entry(j - 1).end };
            (start, entry(j), data_end)
        };
        let range = start as usize..entry.end as usize;
        (range.start <= range.end && range.end <= data_end).then_some((range, entry.first_record))
    }

    /// Reads a stored page; on failure keeps the error and returns false.
    fn read_page(&self, id: u64, out: &mut Vec<u8>) -> bool {
        let spill = self.spill.as_ref().expect("stored pages have a store");
        match spill.store.get(id, out) {
            Ok(()) => true,
            Err(e) => {
                self.keep_error(e);
                false
            }
        }
    }

    /// `f` of the unit at `i` and its first record, where its page lies (read back through a
    /// small cache if stored).
    fn with_unit<R>(&self, i: usize, f: impl FnOnce(UnitRef<'_>, u32) -> R) -> R {
        let p = self.page_of(i);
        let j = i - self.page_first.get(p) as usize;
        match self.pages.get(p).place() {
            Place::Held(k) => {
                let (unit, first_record) = self.unit_in(&self.held[k], p, j);
                f(unit, first_record)
            }
            Place::Stored(id) => {
                let spill = self.spill.as_ref().expect("stored pages have a store");
                let mut cache = spill.cache.lock().expect("not poisoned");
                if let Some(page) = cache.pages.get(&(p as u32)) {
                    let (unit, first_record) = self.unit_in(page, p, j);
                    return f(unit, first_record);
                }
                let mut buffer = Vec::new();
                if !self.read_page(id, &mut buffer) {
                    buffer.clear();
                }
                let (unit, first_record) = self.unit_in(&buffer, p, j);
                let out = f(unit, first_record);
                if cache.order.len() == CACHED_PAGES {
                    let gone = cache.order.pop_front().expect("full");
                    cache.pages.remove(&gone);
                }
                cache.order.push_back(p as u32);
                cache.pages.insert(p as u32, buffer);
                out
            }
            Place::Freed => panic!("unit {i} read after its page was freed"),
        }
    }

    /// The unit at `i`, copied out of its page (read back through a small cache if stored).
    pub fn unit_at(&self, i: usize) -> LinkUnit {
        self.with_unit(i, |unit, _| LinkUnit { bytes: unit.bytes.into(), observed: unit.observed })
    }

    /// The arrival ordinal of the first record of the unit at `i` (read from its page, as
    /// [`UnitList::unit_at`]; 0 if the store failed to give the page back).
    pub fn first_record(&self, i: usize) -> u32 {
        self.with_unit(i, |_, first_record| first_record)
    }

    /// The first error of the store, if any: a page it did not take (still held) or did not
    /// give back (its units read as empty). Whatever was made from this list's units since is
    /// not to be used.
    pub fn store_error(&self) -> Option<std::io::Error> {
        let held = self.error.lock().expect("not poisoned");
        held.as_ref().map(|e| std::io::Error::new(e.kind(), e.to_string()))
    }

    /// When the unit at `i` was observed.
    pub fn observed(&self, i: usize) -> Option<Date> {
        self.observed.get(i).get()
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes held in memory, for the memory accounts of tests and benches.
    pub fn bytes_held(&self) -> usize {
        let held: usize = self.held.iter().map(Vec::capacity).sum();
        let cache = self.spill.as_ref().map_or(0, |s| s.cache.lock().expect("not poisoned").pages.values().map(Vec::capacity).sum());
        held + cache
            + self.held.capacity() * std::mem::size_of::<Vec<u8>>()
            + self.page_first.bytes()
            + self.open.capacity() * std::mem::size_of::<Entry>()
            + self.observed.bytes()
            + self.pages.bytes()
    }

    /// Pages handed to the store.
    pub fn pages_stored(&self) -> usize {
        (0..self.pages.len()).filter(|&p| matches!(self.pages.get(p).place(), Place::Stored(_))).count()
    }

    pub(super) fn set_observed(&mut self, i: usize, observed: Option<Date>) {
        self.observed.set(i, PackedDate::new(observed));
    }
}

/// The encoding of a unit with nothing in it.
fn empty_unit() -> &'static [u8] {
    static EMPTY: std::sync::OnceLock<LinkUnit> = std::sync::OnceLock::new();
    &EMPTY.get_or_init(LinkUnit::empty).bytes
}

/// Units by index, held in a [`UnitList`] or one by one.
pub trait Units {
    fn count(&self) -> usize;
    /// The unit at `i`: borrowed where it is held as a [`LinkUnit`], copied out of a
    /// [`UnitList`]'s page (which may be in its store).
    fn unit(&self, i: usize) -> Cow<'_, LinkUnit>;
}

impl Units for UnitList {
    fn count(&self) -> usize {
        self.len()
    }

    fn unit(&self, i: usize) -> Cow<'_, LinkUnit> {
        Cow::Owned(self.unit_at(i))
    }
}

/// Records, each standing for a unit of a list that holds identical units once (a
/// [`crate::UnitSet`]'s): the units by record, as [`crate::reach`], [`crate::cluster_buckets`]
/// and [`crate::UnitSet::push_stored_units`] read records read back. A record reads as its
/// unit, with the unit's earliest observation date: the first two do not read dates, and a set
/// keeps the earliest date of identical units anyway.
#[derive(Clone, Copy)]
pub struct UnitsOfRecords<'a> {
    pub units: &'a UnitList,
    /// Per record, the index of its unit in `units`.
    pub unit_of: &'a [u32],
}

impl Units for UnitsOfRecords<'_> {
    fn count(&self) -> usize {
        self.unit_of.len()
    }

    fn unit(&self, i: usize) -> Cow<'_, LinkUnit> {
        self.units.unit(self.unit_of[i] as usize)
    }
}

impl Units for [LinkUnit] {
    fn count(&self) -> usize {
        self.len()
    }

    fn unit(&self, i: usize) -> Cow<'_, LinkUnit> {
        Cow::Borrowed(&self[i])
    }
}

impl FromIterator<LinkUnit> for UnitList {
    fn from_iter<I: IntoIterator<Item = LinkUnit>>(iter: I) -> Self {
        let mut out = UnitList::default();
        for u in iter {
            out.push(u.as_ref());
        }
        out
    }
}

impl fmt::Debug for UnitList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnitList").field("units", &self.len()).field("pages", &self.pages.len()).field("stored", &self.pages_stored()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Pages kept in memory behind the store interface; each page given back is `cut` bytes
    /// shorter (longer, zeros added, if negative).
    #[derive(Clone, Default)]
    struct Pages {
        pages: Arc<Mutex<Vec<Vec<u8>>>>,
        cut: isize,
    }

    impl PageStore for Pages {
        fn put(&mut self, page: &[u8]) -> std::io::Result<u64> {
            let mut pages = self.pages.lock().unwrap();
            pages.push(page.to_vec());
            Ok(pages.len() as u64 - 1)
        }

        fn get(&self, id: u64, out: &mut Vec<u8>) -> std::io::Result<()> {
            let pages = self.pages.lock().unwrap();
            let page = &pages[id as usize];
            out.clear();
            out.extend_from_slice(&page[..page.len().saturating_sub(self.cut.max(0) as usize)]);
            out.resize(out.len() + (-self.cut).max(0) as usize, 0);
            Ok(())
        }
    }

    /// Unit `i` of the test lists: its bytes (some larger than a stored page, one larger than a
    /// page held in memory), first record and observation date.
    fn unit(i: usize) -> (Vec<u8>, u32, Option<Date>) {
        let len = match i {
            7 => STORED_PAGE * 3,
            40 => PAGE + 5,
            _ => 1 + (i * 37) % 300,
        };
        let bytes = (0..len).map(|b| (b * 7 + i) as u8).collect();
        (bytes, (i * 3 + i % 2) as u32, Date::new(2000 + (i % 20) as u16, 1 + (i % 12) as u8, 1).ok())
    }

    /// The list of units `0..n` with a `finish` after `finish_at` of them, held in memory or
    /// handed to `store` past `held_bytes`.
    fn list(n: usize, finish_at: usize, storage: Option<(Pages, usize)>) -> UnitList {
        let mut list = match storage {
            Some((store, held_bytes)) => UnitList::with_storage(UnitStorage { store: Box::new(store), held_bytes }),
            None => UnitList::default(),
        };
        for i in 0..n {
            if i == finish_at {
                list.finish();
            }
            let (bytes, first, observed) = unit(i);
            assert_eq!(list.push_with_first(UnitRef { bytes: &bytes, observed }, first), i as u32);
        }
        list
    }

    /// Whether the list holds units `0..n` as pushed: by index, in order and drained.
    fn check(list: UnitList, n: usize) {
        assert_eq!(list.len(), n);
        for i in (0..n).rev() {
            let (bytes, first, observed) = unit(i);
            assert_eq!((&*list.unit_at(i).bytes, list.unit_at(i).observed, list.first_record(i)), (&bytes[..], observed, first), "unit {i}");
        }
        let mut seen = 0;
        list.for_each(|i, u| {
            assert_eq!((i, u.bytes), (seen, &unit(i).0[..]));
            seen += 1;
        });
        assert_eq!(seen, n);
        assert!(list.store_error().is_none());
        let mut drained = Vec::new();
        assert!(list.drain(|i, u, first| drained.push((i, u.bytes.to_vec(), first))).is_none());
        assert_eq!(drained, (0..n).map(|i| (i, unit(i).0, unit(i).1)).collect::<Vec<_>>());
    }

    /// Units and their first records come back as pushed wherever their page lies: held, open,
    /// closed by `finish` and continued, in the store, read back in any order.
    #[test]
    fn units_and_first_records_come_back_wherever_their_page_lies() {
        for n in [0, 1, 6, 60] {
            for finish_at in [0, 3, 30, usize::MAX] {
                check(list(n, finish_at, None), n);
                for held_bytes in [0, 2 * STORED_PAGE, usize::MAX / 2] {
                    let store = Pages::default();
                    let list = list(n, finish_at, Some((store.clone(), held_bytes)));
                    if held_bytes == 0 && n > 6 {
                        assert!(list.pages_stored() > 10, "{list:?}");
                    }
                    check(list, n);
                }
            }
        }
    }

    /// A stored page given back shorter or longer than it was kept (by part of an entry, or by
    /// whole entries, which would shift every unit onto its neighbour's bytes) reads as empty
    /// units and leaves an error. The footer checks a page's length only: a page changed in its
    /// content is the store's to find out (the intake's pages are sealed and authenticated).
    #[test]
    fn a_page_given_back_changed_reads_as_empty_units_and_is_an_error() {
        for cut in [3, ENTRY as isize, 2 * ENTRY as isize, -(ENTRY as isize), -1] {
            let store = Pages { cut, ..Pages::default() };
            let mut list = list(30, usize::MAX, Some((store, 0)));
            list.finish();
            assert!(list.pages_stored() > 5);
            assert!(list.store_error().is_none());
            for i in 0..30 {
                assert_eq!(&*list.unit_at(i).bytes, empty_unit(), "unit {i}, {cut} bytes cut");
            }
            assert_eq!(list.store_error().map(|e| e.kind()), Some(std::io::ErrorKind::InvalidData));
        }
    }
}
