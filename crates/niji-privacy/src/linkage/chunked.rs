//! A growing array of small values kept in chunks of [`CHUNK`] entries: past its first chunk it
//! holds no more room than the rest of its last chunk, where a `Vec`'s doubling room is up to
//! as much again as its entries (at the moment a first pass is largest), and it never moves
//! those entries as it grows. The per-unit and per-page arrays of
//! [`UnitList`](super::UnitList) are kept so.

/// Entries a chunk holds; the first chunk grows up to it, so that a short array stays small.
const CHUNK: usize = 1 << 16;

pub(crate) struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked { chunks: Vec::new(), len: 0 }
    }
}

impl<T: Copy> Chunked<T> {
    pub(crate) fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => {
                // The first chunk grows by doubling, up to a chunk exactly.
                if last.len() == last.capacity() {
                    last.reserve_exact((last.capacity() * 2).clamp(4, CHUNK) - last.len());
                }
                last.push(value);
            }
            _ => {
                let mut chunk = Vec::with_capacity(if self.chunks.is_empty() { 0 } else { CHUNK });
                chunk.push(value);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    /// The entry at `i`; panics past the end.
    pub(crate) fn get(&self, i: usize) -> T {
        assert!(i < self.len, "entry {i} of {}", self.len);
        self.chunks[i / CHUNK][i % CHUNK]
    }

    /// The entry at `i`, if there is one.
    pub(crate) fn try_get(&self, i: usize) -> Option<T> {
        (i < self.len).then(|| self.get(i))
    }

    pub(crate) fn set(&mut self, i: usize, value: T) {
        assert!(i < self.len, "entry {i} of {}", self.len);
        self.chunks[i / CHUNK][i % CHUNK] = value;
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The first index whose entry `pred` is false for, entries being true first and false
    /// after (as [`slice::partition_point`]).
    pub(crate) fn partition_point(&self, pred: impl Fn(T) -> bool) -> usize {
        // The chunk where the entries turn false, then the place in it.
        let chunk = self.chunks.partition_point(|c| c.last().is_some_and(|&v| pred(v)));
        match self.chunks.get(chunk) {
            Some(c) => chunk * CHUNK + c.partition_point(|&v| pred(v)),
            None => self.len,
        }
    }

    /// Frees the first chunk's growth room (the others are full size).
    pub(crate) fn shrink_to_fit(&mut self) {
        if let [only] = self.chunks.as_mut_slice() {
            only.shrink_to_fit();
        }
        self.chunks.shrink_to_fit();
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.capacity() * std::mem::size_of::<T>()).sum::<usize>() + self.chunks.capacity() * std::mem::size_of::<Vec<T>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries come back as pushed and set across chunks, and the partition point is the one
    /// of the same entries in one slice.
    #[test]
    fn entries_come_back_as_pushed_across_chunks() {
        for n in [0, 1, 5, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7] {
            let mut array = Chunked::default();
            let values: Vec<u32> = (0..n as u32).map(|i| i * 3).collect();
            values.iter().for_each(|&v| array.push(v));
            assert_eq!(array.len(), n);
            assert!((0..n).all(|i| array.get(i) == values[i]));
            assert_eq!(array.try_get(n), None);
            for bound in [0, 1, 2, 3, 4, CHUNK as u32 * 3 - 1, CHUNK as u32 * 3, CHUNK as u32 * 3 + 1, u32::MAX] {
                assert_eq!(array.partition_point(|v| v < bound), values.partition_point(|&v| v < bound), "n {n}, bound {bound}");
            }
            if n > 0 {
                array.set(n - 1, 1);
                assert_eq!(array.get(n - 1), 1);
            }
            array.shrink_to_fit();
            // No more than the entries and the last chunk's room.
            assert!(array.bytes() <= (n.div_ceil(CHUNK) * CHUNK).max(n) * 4 + 24 * n.div_ceil(CHUNK), "n {n}: {}", array.bytes());
        }
        // Pushed again after a shrink, the first chunk still stops at a chunk's size.
        let mut again = Chunked::default();
        (0..100u32).for_each(|v| again.push(v));
        again.shrink_to_fit();
        (100..CHUNK as u32 + 5).for_each(|v| again.push(v));
        assert_eq!((again.chunks.len(), again.chunks[0].capacity()), (2, CHUNK));
        assert!((0..CHUNK + 5).all(|i| again.get(i) == i as u32));
    }
}
