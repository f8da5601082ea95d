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

use niji_ingest::Date;

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
/// own): no allocation per unit, about 12 bytes a unit besides its content, which is in memory
/// or in the store ([`UnitStorage`]). What a [`UnitSet`](super::UnitSet) holds its units in.
/// Read in order with [`UnitList::for_each`], by index with [`Units::unit`].
#[derive(Default)]
pub struct UnitList {
    pages: Vec<Page>,
    /// Per unit: its page, where it starts there and its length.
    spans: Vec<(u32, u32, u32)>,
    observed: Vec<Option<Date>>,
    spill: Option<Spill>,
    /// The store's first error, or one a list drained into this one had.
    error: Mutex<Option<std::io::Error>>,
}

/// Page size of a list held in memory only: few, large allocations.
const PAGE: usize = 256 * 1024;
/// Page size of a list with a store: a unit read by index costs reading and opening its page.
const STORED_PAGE: usize = 1024;
/// Pages read back that are kept (first in, first out: units read in order, and units of one
/// person, tend to share pages).
const CACHED_PAGES: usize = 2048;

enum Page {
    Held(Vec<u8>),
    Stored(u64),
    /// Freed by [`UnitList::drain`].
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

    /// Frees the per-unit arrays' growth slack (once no unit is added any more).
    pub fn shrink_to_fit(&mut self) {
        self.pages.shrink_to_fit();
        self.spans.shrink_to_fit();
        self.observed.shrink_to_fit();
    }

    /// Appends a unit; returns its index.
    pub fn push(&mut self, unit: UnitRef<'_>) -> u32 {
        let bytes = unit.bytes;
        let page_size = if self.spill.is_some() { STORED_PAGE } else { PAGE };
        let fits = matches!(self.pages.last(), Some(Page::Held(p)) if p.capacity() - p.len() >= bytes.len());
        if !fits {
            self.store_last_page();
            // The first page grows as it fills (a list of a few units stays small); the others
            // are made full size.
            let grow = match self.pages.as_mut_slice() {
                [Page::Held(p)] if p.capacity() < page_size && p.len() + bytes.len() <= page_size => {
                    let target = (p.capacity() * 2).max(p.len() + bytes.len()).min(page_size);
                    p.reserve_exact(target - p.len());
                    true
                }
                _ => false,
            };
            if !grow {
                let size = if self.pages.is_empty() { bytes.len().max(4096.min(page_size)) } else { page_size.max(bytes.len()) };
                self.pages.push(Page::Held(Vec::with_capacity(size)));
            }
        }
        let page_at = self.pages.len() - 1;
        let Some(Page::Held(page)) = self.pages.last_mut() else { unreachable!("the last page is held") };
        let start = page.len();
        page.extend_from_slice(bytes);
        self.spans.push((page_at as u32, start as u32, bytes.len() as u32));
        self.observed.push(unit.observed);
        (self.spans.len() - 1) as u32
    }

    /// Hands the last page to the store, if it is past the pages held. A page the store does not
    /// take stays in memory (the error is kept), and so do the pages after it: a store that
    /// failed once is not asked again.
    fn store_last_page(&mut self) {
        let Some(spill) = self.spill.as_mut() else { return };
        let at = self.pages.len();
        if at == 0 || at <= spill.held_pages || self.error.lock().expect("not poisoned").is_some() {
            return;
        }
        let Some(Page::Held(page)) = self.pages.last() else { return };
        match spill.store.put(page) {
            Ok(id) => self.pages[at - 1] = Page::Stored(id),
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
        let mut i = 0;
        for on_page in self.spans.chunk_by(|a, b| a.0 == b.0) {
            self.visit_page(&self.pages[on_page[0].0 as usize], on_page, &mut i, &mut buffer, &mut f);
        }
    }

    /// Calls `f` with the units of `page`, whose spans are `on_page` and the first of which is
    /// unit `*i` (advanced past them).
    fn visit_page(&self, page: &Page, on_page: &[(u32, u32, u32)], i: &mut usize, buffer: &mut Vec<u8>, f: &mut impl FnMut(usize, UnitRef<'_>)) {
        let page = self.page_bytes(page, buffer);
        for &(_, start, len) in on_page {
            f(*i, self.unit_in(page, start, len, *i));
            *i += 1;
        }
    }

    /// As [`UnitList::for_each`], freeing each page once its units are read: the list is not
    /// held twice while its units are copied elsewhere. Returns the store's error, if any.
    pub(super) fn drain(mut self, mut f: impl FnMut(usize, UnitRef<'_>)) -> Option<std::io::Error> {
        let spans = std::mem::take(&mut self.spans);
        let mut buffer = Vec::new();
        let mut i = 0;
        for on_page in spans.chunk_by(|a, b| a.0 == b.0) {
            let taken = std::mem::replace(&mut self.pages[on_page[0].0 as usize], Page::Freed);
            self.visit_page(&taken, on_page, &mut i, &mut buffer, &mut f);
        }
        self.store_error()
    }

    /// A page's bytes: held, or read from the store into `buffer` (empty if the store fails).
    fn page_bytes<'a>(&self, page: &'a Page, buffer: &'a mut Vec<u8>) -> &'a [u8] {
        match page {
            Page::Held(p) => p,
            Page::Stored(id) => {
                if !self.read_page(*id, buffer) {
                    buffer.clear();
                }
                buffer
            }
            Page::Freed => panic!("a unit read after its page was freed"),
        }
    }

    /// The unit at `i`, which lies at `start..start + len` of `page`, or an empty unit if the
    /// page does not hold it (a page the store failed to give back, or gave back short: kept as
    /// an error too).
    fn unit_in<'a>(&self, page: &'a [u8], start: u32, len: u32, i: usize) -> UnitRef<'a> {
        let bytes = page.get(start as usize..(start + len) as usize).unwrap_or_else(|| {
            if !page.is_empty() {
                self.keep_error(std::io::Error::new(std::io::ErrorKind::InvalidData, "a page came back from the store shorter than it was kept"));
            }
            empty_unit()
        });
        UnitRef { bytes, observed: self.observed[i] }
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

    /// The unit at `i`, copied out of its page (read back through a small cache if stored).
    pub fn unit_at(&self, i: usize) -> LinkUnit {
        let (page, start, len) = self.spans[i];
        let range = start as usize..(start + len) as usize;
        let observed = self.observed[i];
        match &self.pages[page as usize] {
            Page::Held(p) => LinkUnit { bytes: p[range].into(), observed },
            Page::Stored(id) => {
                let spill = self.spill.as_ref().expect("stored pages have a store");
                let mut cache = spill.cache.lock().expect("not poisoned");
                if let Some(p) = cache.pages.get(&page) {
                    return LinkUnit { bytes: self.unit_in(p, start, len, i).bytes.into(), observed };
                }
                let mut buffer = Vec::new();
                if !self.read_page(*id, &mut buffer) {
                    buffer.clear();
                }
                let unit = LinkUnit { bytes: self.unit_in(&buffer, start, len, i).bytes.into(), observed };
                if cache.order.len() == CACHED_PAGES {
                    let gone = cache.order.pop_front().expect("full");
                    cache.pages.remove(&gone);
                }
                cache.order.push_back(page);
                cache.pages.insert(page, buffer);
                unit
            }
            Page::Freed => panic!("unit {i} read after its page was freed"),
        }
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
        self.observed[i]
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Bytes held in memory, for the memory accounts of tests and benches.
    pub fn bytes_held(&self) -> usize {
        let pages: usize = self.pages.iter().map(|p| if let Page::Held(p) = p { p.capacity() } else { 0 }).sum();
        let cache = self.spill.as_ref().map_or(0, |s| s.cache.lock().expect("not poisoned").pages.values().map(Vec::capacity).sum());
        pages + cache + self.spans.capacity() * 12 + self.observed.capacity() * std::mem::size_of::<Option<Date>>() + self.pages.capacity() * 16
    }

    /// Pages handed to the store.
    pub fn pages_stored(&self) -> usize {
        self.pages.iter().filter(|p| matches!(p, Page::Stored(_))).count()
    }

    pub(super) fn set_observed(&mut self, i: usize, observed: Option<Date>) {
        self.observed[i] = observed;
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
