//! The generalization lattice: one node per combination of levels, one level per
//! quasi-identifier (full-domain generalization).
//!
//! A node is numbered in mixed radix with the first quasi-identifier most significant, so
//! numbering order is the lexicographic order of level vectors. Node `a` precedes node `b`
//! (`a <= b`) when every level of `a` is at most the one of `b`; successors differ by one level
//! in one attribute. The *height* of a node is the sum of its levels.
//!
//! Invariants: the number of nodes fits in `u32` (and [`Lattice::new`] refuses lattices above
//! [`MAX_NODES`]); a node's levels are each below that attribute's number of levels.

/// Largest lattice the engine accepts (the search keeps a few bytes per node).
pub const MAX_NODES: u64 = 1 << 28;

/// The lattice of full-domain generalizations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lattice {
    /// Number of levels of each attribute (the hierarchy's levels).
    heights: Vec<u32>,
    strides: Vec<u32>,
    size: u32,
}

impl Lattice {
    /// A lattice over attributes with the given numbers of levels (each at least 1); `None`
    /// when it would have more than [`MAX_NODES`] nodes.
    pub fn new(heights: &[u32]) -> Option<Lattice> {
        let mut size: u64 = 1;
        let mut strides = vec![0u32; heights.len()];
        for i in (0..heights.len()).rev() {
            strides[i] = size as u32;
            size = size.checked_mul(heights[i].max(1) as u64)?;
            if size > MAX_NODES {
                return None;
            }
        }
        Some(Lattice { heights: heights.iter().map(|&h| h.max(1)).collect(), strides, size: size as u32 })
    }

    /// Number of nodes.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Number of attributes.
    pub fn dimensions(&self) -> usize {
        self.heights.len()
    }

    /// Number of levels of each attribute.
    pub fn heights(&self) -> &[u32] {
        &self.heights
    }

    /// The node with the given levels, if they are in range.
    pub fn node(&self, levels: &[u32]) -> Option<u32> {
        if levels.len() != self.heights.len() || levels.iter().zip(&self.heights).any(|(l, h)| l >= h) {
            return None;
        }
        Some(levels.iter().zip(&self.strides).map(|(l, s)| l * s).sum())
    }

    /// The levels of a node, written into `out`.
    pub fn levels_into(&self, node: u32, out: &mut Vec<u32>) {
        out.clear();
        out.extend(self.heights.iter().zip(&self.strides).map(|(h, s)| (node / s) % h));
    }

    /// The levels of a node.
    pub fn levels(&self, node: u32) -> Vec<u32> {
        let mut out = Vec::new();
        self.levels_into(node, &mut out);
        out
    }

    /// How much a node's number grows when attribute `i` goes one level up.
    pub fn stride(&self, i: usize) -> u32 {
        self.strides[i]
    }

    /// The level of attribute `i` in `node`.
    pub fn level(&self, node: u32, i: usize) -> u32 {
        (node / self.strides[i]) % self.heights[i]
    }

    /// Sum of the levels of a node.
    pub fn height(&self, node: u32) -> u32 {
        (0..self.heights.len()).map(|i| self.level(node, i)).sum()
    }

    /// The direct successors (one level higher in one attribute).
    pub fn successors(&self, node: u32) -> impl Iterator<Item = u32> + '_ {
        (0..self.heights.len()).filter(move |&i| self.level(node, i) + 1 < self.heights[i]).map(move |i| node + self.strides[i])
    }

    /// The direct predecessors (one level lower in one attribute).
    pub fn predecessors(&self, node: u32) -> impl Iterator<Item = u32> + '_ {
        (0..self.heights.len()).filter(move |&i| self.level(node, i) > 0).map(move |i| node - self.strides[i])
    }

    /// Whether `a <= b` in every attribute.
    pub fn precedes(&self, a: u32, b: u32) -> bool {
        (0..self.heights.len()).all(|i| self.level(a, i) <= self.level(b, i))
    }

    /// The top node (every attribute at its last level).
    pub fn top(&self) -> u32 {
        self.size - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_neighbours_and_order() {
        let l = Lattice::new(&[5, 4, 3, 3, 2, 2, 2, 3]).unwrap();
        assert_eq!(l.size(), 4320);
        let n = l.node(&[4, 3, 2, 2, 1, 0, 0, 0]).unwrap();
        assert_eq!(l.levels(n), [4, 3, 2, 2, 1, 0, 0, 0]);
        assert_eq!(l.height(n), 12);
        assert_eq!(l.successors(n).count(), 3);
        assert_eq!(l.predecessors(n).count(), 5);
        for s in l.successors(n) {
            assert!(l.precedes(n, s) && !l.precedes(s, n));
            assert_eq!(l.height(s), 13);
        }
        assert_eq!(l.node(&[5, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(l.levels(l.top()), [4, 3, 2, 2, 1, 1, 1, 2]);
        assert!(Lattice::new(&[100; 8]).is_none());
    }
}
