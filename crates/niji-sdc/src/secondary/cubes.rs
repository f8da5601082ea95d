//! Hypercube certificates: a suppressed cell that is a corner of a *suppressed hypercube* (two
//! values in each dimension, every one of the 2^d cells they make suppressed) cannot be
//! recomputed from the lines' equations, however many other cells are suppressed.
//!
//! Why: give the corners the signs ±1 of the product of one weight per dimension (for a pair of
//! ordinary values +1 and −1; where one of the pair is the margin `*`, +1 and +1, since the
//! margin enters its line's equation as −1). Every line meeting the cube meets it in two
//! corners, which cancel in that line's equation; every other line does not meet it. So the
//! vector is in the null space of the equations over the suppressed cells: adding any multiple
//! of it to the suppressed values changes no line total, and each corner's value moves with
//! it. Suppressing more cells keeps the vector a solution (it is zero on them), so a certified
//! cell stays certified as complements are added.
//!
//! A dimension in which a line of the cell has no other cell (combinations missing from the
//! table, or a dimension of one value) makes no equation there; the cube then spans the other
//! dimensions, provided every one of its corners is alone along that dimension too (a corner
//! whose line there has two cells is in an equation the cube does not cancel).
//!
//! This is the certificate of the hypercube method of statistical offices (Repsilber's
//! GHMITER in τ-ARGUS): a cell without a certificate in a group too large for the exact audit
//! (elimination over a group's equations, cubic in its cells), and a cell the exact audit
//! solves, gets the cube through it of fewest new cells completed ([`Cubes::complete`]). It
//! protects against exact recomputation only;
//! with non-negative counts a cube's movement is bounded by its smallest corners (the interval
//! limit of the module above), which is why empty cells are the last choice for a corner.
//!
//! Two cubes each one cell short of being suppressed, short of the same cell, make a
//! certificate too: their difference, one scaled so that the cell cancels, is again in the null
//! space and zero outside the suppressed cells; it is not zero at a corner of one cube that is
//! not on the other. The search for the cube to complete finds the cubes one short through the
//! cell anyway, so each is tried ([`Cubes::complete`]) before a cell is suppressed for it.
//!
//! In three dimensions a longer cycle does the same as a cube's four corners: two slices of one
//! dimension whose suppressed cells share positions that make a cycle in the other two
//! ([`Cubes::certify_slice_pairs`], the proof at [`SLICE_PAIR_WORK`]). Compared as words of
//! bits, all pairs of slices of the benchmark's 100³ table take 50–90 ms on one thread, and
//! certify 32,595 of the 90,029 cells on no cube; with a little more suppressed (completed
//! cubes), most of the rest. A dimension of at least [`PAIRS_PER_THREAD`] pairs shares them
//! among up to four scoped threads ([`super::worker_threads`]): their marks only add up, so what is
//! certified does not depend on the threads (property-tested against one thread).
//!
//! Cycles between two slices need positions suppressed in both; sums of cycles of many slices
//! need not. A set of positions *glued* by half a dimension's slices (grown from one slice: a
//! slice adds each position whose two lines its glued positions already join) carries only
//! cycles that are sums of that half's cycles, so a cell of the other half on a cycle of glued
//! positions is not solved ([`Cubes::certify_glued_cycles`], the proof at
//! [`Cubes::glued_cycle_marks`]). A few passes over the slices' bits: on the benchmark's table
//! it leaves no cell for a cube to be completed.
//!
//! The searches are many (one per suppressed cell of a large group, most finding nothing), so
//! which cells are suppressed is kept here again as a bit set laid out by keys ([`Grid`]), with
//! each line's suppressed codes: a cube's corner is found by adding to a position, and in the
//! last dimension (whose lines are runs of bits) 64 candidates are tried at a time.

use super::DimLines;
use crate::hash::FxBuild;
use std::collections::HashMap;

/// The cells of a keyed table by their coded keys, and its lines: finds suppressed hypercubes
/// through a cell, and the cheapest cube to complete. It keeps its own copy of which cells are
/// suppressed (taken when it is made, then told of each cell suppressed, [`Cubes::hide`]), laid
/// out by keys for the searches' many lookups.
pub(super) struct Cubes<'a> {
    /// The codes of each row's keys, row-major (`d` per row).
    ids: &'a [u32],
    d: usize,
    dims: &'a [DimLines],
    /// Per dimension, the place of each code in the order of the keys (ties between equal
    /// costs go to the smallest keys, not to the order the rows came in).
    key_order: Vec<Vec<u32>>,
    /// A cell's position is the sum of its codes times these (the last dimension's is 1).
    stride: Vec<u64>,
    /// Per dimension, its number of codes.
    cardinality: Vec<u64>,
    /// Per dimension and line, the codes in that dimension of its suppressed cells.
    hidden: Vec<Vec<Vec<u32>>>,
    /// `None` when the positions do not fit in 64 bits, or past [`MAX_DIMENSIONS`] (no cube is
    /// then found).
    grid: Option<Grid>,
    /// Threads comparing slices whatever their number (the tests'); `None`: by the number of
    /// pairs ([`PAIRS_PER_THREAD`]) and the machine's threads.
    pair_threads: Option<usize>,
}

/// What suppressing one more corner of a cube costs: whether it is empty, whether it is a margin
/// (by [`super::Lines::class`]), its persons. A cube's cost counts its new corners first.
pub(super) type Cost = (u32, u32, u64);

/// Dimensions of a table whose cubes are sought at most (a cube has 2^d corners); past them, or
/// where the positions do not fit in 64 bits, no cube is found and a large group is refused.
const MAX_DIMENSIONS: usize = 12;

/// The unsuppressed corners per dimension considered when completing a cube, besides the
/// suppressed ones (the cheapest, by class, persons and keys).
const CANDIDATES: usize = 8;

impl<'a> Cubes<'a> {
    /// `ids` and `key_order` as [`super::intern`] gives them; `suppressed` the cells suppressed now.
    pub fn new(ids: &'a [u32], cardinality: &[u64], key_order: Vec<Vec<u32>>, dims: &'a [DimLines], suppressed: &[bool]) -> Self {
        let d = cardinality.len();
        let mut stride = vec![1u64; d];
        let mut product = Some(1u64);
        for k in (0..d).rev() {
            stride[k] = product.unwrap_or(0);
            product = product.and_then(|p| p.checked_mul(cardinality[k]));
        }
        let hidden = dims.iter().map(|lines| vec![Vec::new(); lines.lines()]).collect();
        let mut cubes = Cubes { ids, d, dims, key_order, stride, cardinality: cardinality.to_vec(), hidden, grid: None, pair_threads: None };
        cubes.grid = product.filter(|_| d <= MAX_DIMENSIONS).map(|p| Grid::new(p, (0..suppressed.len()).map(|r| cubes.position(r))));
        cubes.sync(suppressed);
        cubes
    }

    /// The same, over a hash map grid whatever the table's size (the tests compare the two).
    #[cfg(test)]
    pub fn with_sparse_grid(mut self, suppressed: &[bool]) -> Self {
        self.grid = Some(Grid::sparse((0..suppressed.len()).map(|r| self.position(r))));
        self.sync(suppressed);
        self
    }

    /// The same, comparing slices on `threads` threads whatever their number (the tests compare
    /// the marks with one thread's).
    #[cfg(test)]
    pub fn with_pair_threads(mut self, threads: usize) -> Self {
        self.pair_threads = Some(threads);
        self
    }

    /// Takes the suppressed cells from `suppressed` (the grid's flags and the lines' codes).
    fn sync(&mut self, suppressed: &[bool]) {
        self.hidden.iter_mut().flatten().for_each(Vec::clear);
        let Some(mut grid) = self.grid.take() else { return };
        for (r, &hidden) in suppressed.iter().enumerate() {
            let at = self.position(r);
            if grid.row(at) == Some(r as u32) {
                grid.set(at, hidden);
            }
            if hidden {
                self.note_hidden(r);
            }
        }
        self.grid = Some(grid);
    }

    /// Notes that `row` is now suppressed.
    pub fn hide(&mut self, row: usize) {
        let at = self.position(row);
        if let Some(grid) = &mut self.grid {
            if grid.row(at) == Some(row as u32) {
                grid.set(at, true);
            }
            self.note_hidden(row);
        }
    }

    fn note_hidden(&mut self, row: usize) {
        for (k, lines) in self.dims.iter().enumerate() {
            self.hidden[k][lines.line_of[row] as usize].push(self.ids[row * self.d + k]);
        }
    }

    /// Marks in `certified` the corners of the suppressed cubes among `rows` (a group of
    /// suppressed cells sharing lines: a cube's corners share lines, so a cube of the group's
    /// cells is found from its corner of smallest codes). Each cell's own cubes are enumerated up
    /// to [`ENUMERATED`]; where that bound cut one short, the cells left unmarked are searched
    /// from themselves ([`Cubes::certify`]). Afterwards every cell of `rows` on a suppressed
    /// cube (or with the keys of an earlier suppressed row) is marked, and so are those marked
    /// before for other certificates; no other is.
    pub fn certify_group(&self, rows: &[usize], suppressed: &[bool], certified: &mut [bool]) {
        let Some(grid) = &self.grid else { return };
        // A group audited before, with few cells left unmarked, is searched from those cells
        // alone (a search from one cell goes through all its cubes, not only those it is the
        // smallest corner of: 2^d times the work).
        let uncertified = rows.iter().filter(|&&r| !certified[r]).count();
        let mut enumerated = uncertified << self.d >= rows.len();
        if enumerated {
            for &row in rows {
                let mut search = Search::new(self, grid, row, Candidates::Hidden, Goal::Every { certified: &mut *certified, left: ENUMERATED });
                if search.extend(0, 1, 0) {
                    // Cut short: every cell is searched from itself below.
                    enumerated = false;
                    break;
                }
            }
        }
        for &row in rows {
            if enumerated {
                self.certify_twin(row, suppressed, certified);
            } else {
                self.certify(row, suppressed, certified);
            }
        }
    }

    /// Marks in `certified` the cells of `rows` (suppressed cells of a table of three dimensions,
    /// of one group or several) that lie on a *cycle between two slices*: two values `a`, `b`
    /// of one dimension, and a cycle of positions in the other two (alternately along each)
    /// where both slices' cells are suppressed. A cube is such a cycle of four; a longer one is
    /// the same certificate (see [`SLICE_PAIR_WORK`] for the proof). Cells marked before stay
    /// marked; a table of another number of dimensions marks nothing. A dimension is compared
    /// whole or not at all: when all its pairs of slices would take more than what is left of
    /// `work` (words compared and graph nodes, per pair: what it takes is taken off, so that
    /// one budget bounds every call for a table), or its slices more than [`SLICE_WORDS_HELD`],
    /// it is skipped, so that what is marked depends only on the keys, not on the order of the
    /// rows.
    pub fn certify_slice_pairs(&self, rows: &[usize], certified: &mut [bool], work: &mut usize) {
        let Some(grid) = &self.grid else { return };
        for i in (0..3).filter(|_| self.d == 3) {
            let Some(bits) = self.slice_bits(grid, rows, i, Some(certified)) else { continue };
            let Bits { j, k, words, ref codes, .. } = bits;
            let pairs = codes.len().checked_mul(codes.len().saturating_sub(1)).map(|p| p / 2);
            let Some(left) = pairs.and_then(|p| p.checked_mul(words + j + k)).and_then(|cost| work.checked_sub(cost)) else { continue };
            *work = left;
            // The pairs are shared among threads (their marks only add up, so the result does
            // not depend on how), a slice's pairs on one thread, slices dealt in turn.
            let threads = match self.pair_threads {
                Some(threads) => threads.max(1),
                None if pairs.unwrap_or(0) >= PAIRS_PER_THREAD => super::worker_threads(),
                None => 1,
            };
            let marks = super::on_threads((0..threads).collect(), &|t| self.slice_pair_marks(grid, &bits, t, threads));
            marks.into_iter().flatten().for_each(|row| certified[row as usize] = true);
        }
    }

    /// Marks in `certified` the cells of `rows` (suppressed cells of a table of three dimensions,
    /// of one group or several) that lie, in their slice of some dimension, on a cycle of
    /// positions *glued* by the other half of that dimension's slices (see
    /// [`Cubes::glued_cycle_marks`] for what that is and the proof). At most [`GLUE_PASSES`]
    /// passes over the slices' bits, no pairs: in a dense pattern it certifies most cells at
    /// once. Cells marked before stay marked; a table of another number of dimensions marks
    /// nothing, nor does a dimension whose slices take more than [`SLICE_WORDS_HELD`].
    pub fn certify_glued_cycles(&self, rows: &[usize], certified: &mut [bool]) {
        let Some(grid) = &self.grid else { return };
        for i in (0..3).filter(|_| self.d == 3) {
            let Some(bits) = self.slice_bits(grid, rows, i, None) else { continue };
            for row in self.glued_cycle_marks(grid, &bits) {
                certified[row as usize] = true;
            }
        }
    }

    /// The suppressed cells of `rows` in the slices of dimension `i` as words of bits ([`Bits`]),
    /// and, given what is `certified`, those not certified yet (else none); `None` where they
    /// would take more than [`SLICE_WORDS_HELD`] (counted before anything is held). Of rows with
    /// equal keys, the first (the grid's).
    fn slice_bits(&self, grid: &Grid, rows: &[usize], i: usize, certified: Option<&[bool]>) -> Option<Bits> {
        let [j, k] = [(i + 1) % 3, (i + 2) % 3].map(|k| self.cardinality[k] as usize);
        let (slices, plane) = (self.cardinality[i] as usize, j * k);
        let words = plane.div_ceil(64);
        let size = slices.checked_mul(words).filter(|&size| size <= SLICE_WORDS_HELD)?;
        let first = |r: usize| grid.row(self.position(r)) == Some(r as u32);
        let mut count = vec![0u32; slices];
        rows.iter().filter(|&&r| first(r)).for_each(|&r| count[self.code(r as u32, i) as usize] += 1);
        // A cycle has at least four cells in each slice.
        let codes: Vec<usize> = (0..slices).filter(|&a| count[a] >= 4).collect();
        let (mut hidden, mut open) = (vec![0u64; size], vec![0u64; if certified.is_some() { size } else { 0 }]);
        for &r in rows.iter().filter(|&&r| first(r)) {
            let at = self.code(r as u32, (i + 1) % 3) as usize * k + self.code(r as u32, (i + 2) % 3) as usize;
            let (word, bit) = (self.code(r as u32, i) as usize * words + at / 64, 1 << (at % 64));
            hidden[word] |= bit;
            if certified.is_some_and(|certified| !certified[r]) {
                open[word] |= bit;
            }
        }
        Some(Bits { i, j, k, words, codes, hidden, open })
    }

    /// The cells of `slices` on a cycle of positions that the other half of the slices glues.
    /// The slices are halved by the order of their keys (even places, odd places), so that the
    /// marks depend on the keys alone.
    ///
    /// Why it is a certificate (the signs of margins as at [`SLICE_PAIR_WORK`], so that every
    /// line's signed cells add up to 0). Take the slices of dimension `i`; in each slice `t` the
    /// suppressed cells are the edges of a graph `G_t` whose nodes are the slice's lines (as at
    /// [`SLICE_PAIR_WORK`]). A *cycle vector* of `t` is one of values on its edges that adds up
    /// to 0 along each of its lines. If a cycle vector `c` of slice `a` equals a sum of cycle
    /// vectors `c_t` of other slices `t`, then `c` in slice `a` less each `c_t` in its slice `t`
    /// is in the null space: each slice's lines add up to 0, and each line along `i` (one
    /// position, every slice) meets `c(p) − Σ c_t(p) = 0`. So every cell of `a` where `c` is
    /// not 0 is not solved.
    ///
    /// Which cycles are such sums, without linear algebra: call a set `K` of positions *glued*
    /// by a set `A` of slices when every family of values `g` on positions that is, on each
    /// slice of `A`, a difference of values on its lines (`g(y, z) = φ_t(z) − φ_t(y)`, a
    /// potential per slice), is such a difference of one potential `φ` on the positions of
    /// `K`. Then every cycle vector `c` on `K` is orthogonal to each such `g`
    /// (`Σ c·g = Σ φ·∂c = 0`), and those `g` are exactly the vectors orthogonal to every cycle
    /// vector of every slice of `A`; so `c` is a sum of such cycle vectors. The positions of one
    /// slice of `A` are glued (its own potential). And if `K` is glued, so is `K` with every
    /// position `e` of a slice `t` of `A` whose two lines are joined by a path of `t`'s
    /// positions in `K`: along that path `φ` and `φ_t` differ by the same constant at each line
    /// (they have the same differences there), so `g(e) = φ_t(z) − φ_t(y) = φ(z) − φ(y)`.
    /// Growing `K` so from one slice until nothing is added (or for [`GLUE_PASSES`] passes over
    /// the slices: `K` is glued after each addition), each cell of a slice not in `A` on a cycle
    /// of its positions in `K` (not a bridge of that graph) is certified. The slices are halved
    /// and each half certifies the other.
    ///
    /// In a table with a tenth of its cells small, a slice's positions are about a tenth of the
    /// plane and share about a tenth of them with the glued set at first, near the point where
    /// shared positions begin to join most lines; after a pass or two the glued set is nearly
    /// the half's positions, and most cells of the other half are certified at once.
    fn glued_cycle_marks(&self, grid: &Grid, slices: &Bits) -> Vec<u32> {
        let Bits { i, j, k, words, ref codes, .. } = *slices;
        let bits = |a: usize| slices.hidden_of(a);
        let cells = |a: usize| bits(a).iter().map(|w| w.count_ones()).sum::<u32>();
        let (mut joined, mut cycles, mut marks) = (super::UnionFind::default(), CycleSearch::default(), Vec::new());
        for half in [0, 1] {
            let (mut gluing, glued): (Vec<usize>, Vec<usize>) = codes.iter().partition(|&&a| self.key_order[i][a] % 2 == half);
            // In the order of their keys: where the passes stop before nothing is added, what was
            // glued depends on the order the slices added positions in.
            gluing.sort_unstable_by_key(|&a| self.key_order[i][a]);
            // The positions glued: from the slice of most cells (then of the smallest keys), each
            // gluing slice adds those of its positions whose two lines its positions glued
            // already join, until none does.
            let Some(&base) = gluing.iter().min_by_key(|&&a| (std::cmp::Reverse(cells(a)), self.key_order[i][a])) else { continue };
            let mut positions = bits(base).to_vec();
            let (mut grew, mut passes) = (true, 0);
            while grew && passes < GLUE_PASSES {
                (grew, passes) = (false, passes + 1);
                for &t in &gluing {
                    let own = bits(t);
                    if !(0..words).any(|w| own[w] & !positions[w] != 0) {
                        continue;
                    }
                    joined.reset(j + k);
                    for_each_position(own.iter().zip(&positions).map(|(&p, &g)| p & g), |at| {
                        joined.union(at / k, j + at % k);
                    });
                    let mut added = Vec::new();
                    for_each_position(own.iter().zip(&positions).map(|(&p, &g)| p & !g), |at| {
                        if joined.find(at / k) == joined.find(j + at % k) {
                            added.push(at);
                        }
                    });
                    grew |= !added.is_empty();
                    added.into_iter().for_each(|at| positions[at / 64] |= 1 << (at % 64));
                }
            }
            // Each slice of the other half: its cells on a cycle of positions glued.
            for &a in &glued {
                let on_glued = bits(a).iter().zip(&positions).map(|(&p, &g)| p & g);
                self.mark_cycles(grid, slices, on_glued, &[a], &mut cycles, &mut marks);
            }
        }
        marks
    }

    /// Pushes to `marks` the cells, in each slice of `slices_marked` (of dimension `slices.i`), at
    /// the positions set in `positions` (words of bits, laid out as [`Cubes::slice_bits`] lays
    /// them) that lie on a cycle of the graph they make: nodes the lines along the third
    /// dimension (by the second's code), then those along the second (by the third's); a
    /// position on a cycle is one that is not a bridge. Most sets of a sparse pattern make a
    /// forest: a union-find tells so before any graph is made.
    fn mark_cycles(
        &self,
        grid: &Grid,
        slices: &Bits,
        positions: impl Iterator<Item = u64>,
        slices_marked: &[usize],
        search: &mut CycleSearch,
        marks: &mut Vec<u32>,
    ) {
        let Bits { i, j, k, .. } = *slices;
        let CycleSearch { edges, on_cycle, joined, graph } = search;
        edges.clear();
        for_each_position(positions, |at| edges.push((at / k, j + at % k)));
        if edges.len() < 4 || {
            joined.reset(j + k);
            edges.iter().all(|&(y, z)| joined.union(y, z))
        } {
            return;
        }
        graph.refill(j + k, edges.iter().copied());
        on_cycle.clear();
        on_cycle.resize(edges.len(), true);
        graph.bridges().into_iter().for_each(|e| on_cycle[e] = false);
        for (&(y, z), _) in edges.iter().zip(on_cycle.iter()).filter(|(_, &on)| on) {
            for &slice in slices_marked {
                let mut codes = [0u64; 3];
                codes[i] = slice as u64;
                codes[(i + 1) % 3] = y as u64;
                codes[(i + 2) % 3] = (z - j) as u64;
                let at = codes.iter().zip(&self.stride).fold(0u64, |at, (&c, &s)| at.wrapping_add(c.wrapping_mul(s)));
                marks.push(grid.row(at).expect("a suppressed position is a cell"));
            }
        }
    }

    /// The cells on a cycle between two slices of `slices`, of the pairs whose first slice is the
    /// `part`-th of every `parts` ([`Cubes::certify_slice_pairs`]).
    fn slice_pair_marks(&self, grid: &Grid, slices: &Bits, part: usize, parts: usize) -> Vec<u32> {
        let (words, codes) = (slices.words, &slices.codes);
        let (mut cycles, mut marks) = (CycleSearch::default(), Vec::new());
        for (x, &a) in codes.iter().enumerate().skip(part).step_by(parts) {
            let (one, one_open) = (slices.hidden_of(a), slices.open_of(a));
            for &b in &codes[x + 1..] {
                let (other, other_open) = (slices.hidden_of(b), slices.open_of(b));
                // Only a pair where some cell of the graph is not certified yet can add one.
                if !(0..words).any(|w| one[w] & other[w] & (one_open[w] | other_open[w]) != 0) {
                    continue;
                }
                let both = one.iter().zip(other).map(|(&p, &q)| p & q);
                self.mark_cycles(grid, slices, both, &[a, b], &mut cycles, &mut marks);
            }
        }
        marks
    }

    /// Whether `row` is a corner of a hypercube of suppressed cells: `certified[row]` already,
    /// or one is found now, whose corners are then all marked in `certified` (a certified cell
    /// stays certified, whatever is suppressed next). A row with the keys of an earlier
    /// suppressed row is certified by it (their difference changes no line).
    pub fn certify(&self, row: usize, suppressed: &[bool], certified: &mut [bool]) -> bool {
        if self.certify_twin(row, suppressed, certified) {
            return true;
        }
        let Some(grid) = &self.grid else { return false };
        let mut search = Search::new(self, grid, row, Candidates::Hidden, Goal::First { avoiding: None });
        search.extend(0, 1, 0);
        let Some(best) = search.best else { return false };
        for at in best.corners {
            certified[grid.row(at).expect("a corner is a cell") as usize] = true;
        }
        true
    }

    /// Makes `row` a corner of a suppressed hypercube: returns the cells to suppress for it
    /// (none when it is one already), having marked the cube's corners in `certified` (only
    /// `row` when it is one already); `None` when no cube can be made (combinations missing
    /// from the table, or a dimension of one value). The cube is the one of fewest cells to
    /// suppress, then of fewest corners marked already, then the cheapest by the `cost` of the
    /// cells to suppress, then of the smallest keys; it is sought among the suppressed cells of
    /// `row`'s lines first, then among those and the [`CANDIDATES`] cheapest others of each.
    pub fn complete(&self, row: usize, suppressed: &[bool], certified: &mut [bool], cost: &dyn Fn(usize) -> Cost) -> Option<Vec<usize>> {
        if self.certify_twin(row, suppressed, certified) {
            return Some(Vec::new());
        }
        let grid = self.grid.as_ref()?;
        let mut short = Vec::new();
        let corners = match self.fewest_new(grid, row, Candidates::Hidden, (cost, certified), &mut short) {
            Some(corners) => corners,
            None => {
                let candidates: Vec<Vec<u32>> = (0..self.d)
                    .map(|k| {
                        let (mut taken, mut others): (Vec<u32>, Vec<u32>) = self.along(row, k).partition(|&r| suppressed[r as usize]);
                        let order = |r: u32| (cost(r as usize), self.key_order[k][self.code(r, k) as usize]);
                        if others.len() > CANDIDATES {
                            others.select_nth_unstable_by_key(CANDIDATES, |&r| order(r));
                            others.truncate(CANDIDATES);
                        }
                        taken.extend(others);
                        taken.into_iter().map(|r| self.code(r, k)).collect()
                    })
                    .collect();
                let candidates: Vec<&[u32]> = candidates.iter().map(Vec::as_slice).collect();
                self.fewest_new(grid, row, Candidates::These(&candidates), (cost, certified), &mut Vec::new())?
            }
        };
        let new: Vec<usize> = corners.iter().copied().filter(|&corner| !suppressed[corner]).collect();
        // A cube suppressed already, or two one cell short of it (which ones came first depends
        // on the rows' order, so only the cell is marked: the marks choose between cubes).
        if new.is_empty() || (new.len() == 1 && self.two_short_of_one(grid, row, short)) {
            certified[row] = true;
            return Some(Vec::new());
        } else {
            corners.iter().for_each(|&corner| certified[corner] = true);
        }
        Some(new)
    }

    /// The corners of the cube through `row` over `candidates` of fewest new corners (searched
    /// with one more allowed at a time, each search pruned hard; a cube of none ends the first),
    /// then of fewest corners `certified` already (the more cells it covers, the fewer cubes
    /// are completed), then the cheapest by `cost` and keys. The positions of the one corner
    /// not suppressed of each cube one short are added to `short`.
    fn fewest_new(
        &self,
        grid: &Grid,
        row: usize,
        candidates: Candidates,
        (cost, certified): (&dyn Fn(usize) -> Cost, &[bool]),
        short: &mut Vec<u64>,
    ) -> Option<Vec<usize>> {
        let corners = 1u32.checked_shl(self.d as u32).unwrap_or(u32::MAX);
        for limit in 1..corners {
            let goal = Goal::Cheapest { cost, limit, certified, short: &mut *short };
            let mut search = Search::new(self, grid, row, candidates, goal);
            search.extend(0, 1, 0);
            if let Some(best) = search.best {
                return Some(best.corners.into_iter().map(|at| grid.row(at).expect("a corner is a cell") as usize).collect());
            }
        }
        None
    }

    /// Whether `row` is on two cubes each one cell short of being suppressed, short of the same
    /// cell: one through `row` short of a cell of `short` (positions), and one of the cubes of
    /// that cell whose other corners are all suppressed, not through `row`. Their difference
    /// (one scaled so that the cell cancels) changes no line, is zero outside the suppressed
    /// cells, and not at `row`: `row` is not solved. It spares completing a cube for many cells
    /// of a large scattered group.
    fn two_short_of_one(&self, grid: &Grid, row: usize, mut short: Vec<u64>) -> bool {
        short.sort_unstable();
        short.dedup();
        let at = self.position(row);
        short.into_iter().any(|cell| {
            let Some(other) = grid.row(cell) else { return false };
            let mut search = Search::new(self, grid, other as usize, Candidates::Hidden, Goal::First { avoiding: Some(at) });
            search.extend(0, 1, 0);
            search.best.is_some()
        })
    }

    /// Whether `row` is certified: marked already, or a row with the keys of an earlier
    /// suppressed row (their difference changes no line; the grid holds the earlier one).
    fn certify_twin(&self, row: usize, suppressed: &[bool], certified: &mut [bool]) -> bool {
        let Some(grid) = &self.grid else { return certified[row] };
        if !certified[row] && grid.row(self.position(row)).is_some_and(|first| first as usize != row && suppressed[first as usize]) {
            certified[row] = true;
        }
        certified[row]
    }

    /// The codes in `k` of the suppressed cells of `row`'s line along `k` (its own among them
    /// when it is suppressed).
    fn hidden_along(&self, row: usize, k: usize) -> &[u32] {
        &self.hidden[k][self.dims[k].line_of[row] as usize]
    }

    /// The rows of `row`'s line along `k` with another key in `k` than `row`'s.
    fn along(&self, row: usize, k: usize) -> impl Iterator<Item = u32> + '_ {
        let own = self.code(row as u32, k);
        let line = self.dims[k].line_of[row];
        self.dims[k].members(line).iter().copied().filter(move |&r| self.code(r, k) != own)
    }

    fn code(&self, row: u32, k: usize) -> u32 {
        self.ids[row as usize * self.d + k]
    }

    fn position(&self, row: usize) -> u64 {
        let keys = &self.ids[row * self.d..(row + 1) * self.d];
        keys.iter().zip(&self.stride).fold(0u64, |at, (&id, &stride)| at.wrapping_add(u64::from(id).wrapping_mul(stride)))
    }

    /// Whether `row`'s line along `k` has fewer than two cells (it makes no equation).
    fn alone(&self, row: u32, k: usize) -> bool {
        self.dims[k].members(self.dims[k].line_of[row as usize]).len() < 2
    }
}

/// The work [`Cubes::certify_slice_pairs`] is given for one table, all its calls together (a
/// pair of slices costs the words of one slice and the nodes of its graph): the benchmark's
/// table of 100³ takes about 5.3 million a call (50–90 ms), and makes three. The audit makes one
/// call a round, and the completion of cubes up to [`super::SLICE_PASSES`] more; past the
/// budget, a dimension is not compared and its cells wait for cubes.
///
/// Why a cycle between two slices is a certificate: multiply each cell's value by −1 for each
/// of its keys that is a margin `*`. Every line's equation (its cells less its total) becomes
/// "the (signed) values of all its cells, the total among them, add up to 0". In the two
/// slices `a` and `b` of dimension `i`, let `w` be +1 and −1 alternately around the cycle
/// (the other two dimensions' lines are its nodes, the positions its edges: a cycle of such a
/// graph is even), and let the vector be `w` in slice `a` and `−w` in slice `b`, 0 elsewhere.
/// A line along `i` meets it in the two cells of one position, which cancel; a line along
/// another dimension lies in one slice and meets the cycle in no cell or in two consecutive
/// ones, which cancel. So it is in the null space of the equations over the suppressed
/// cells, and the cell's value moves with it while nothing published changes. A position on
/// a cycle is exactly one that is not a bridge of the graph ([`super::LineGraph::bridges`]).
/// In a table with a tenth of its cells small, few are corners of a suppressed cube and most
/// are on such a cycle once a little more is suppressed (the graphs of two slices then pass
/// the point where cycles appear everywhere).
pub(super) const SLICE_PAIR_WORK: usize = 1 << 26;

/// The slices of one dimension as the certificates read them ([`Cubes::certify_slice_pairs`],
/// [`Cubes::certify_glued_cycles`], made by [`Cubes::slice_bits`]): dimension `i`, the other two
/// of `j` and `k` codes, per slice `words` words of bits (of its suppressed cells in `hidden`,
/// of those not certified yet in `open`, empty for the glued cycles), the slices with enough
/// cells in `codes`.
struct Bits {
    i: usize,
    j: usize,
    k: usize,
    words: usize,
    codes: Vec<usize>,
    hidden: Vec<u64>,
    open: Vec<u64>,
}

impl Bits {
    /// Slice `a`'s suppressed cells.
    fn hidden_of(&self, a: usize) -> &[u64] {
        &self.hidden[a * self.words..(a + 1) * self.words]
    }

    /// Slice `a`'s cells not certified yet.
    fn open_of(&self, a: usize) -> &[u64] {
        &self.open[a * self.words..(a + 1) * self.words]
    }
}

/// Passes over a half's slices at most while the positions they glue grow
/// ([`Cubes::glued_cycle_marks`]): a pass adds at least one position, and a plane has many, so
/// the passes are bounded (each reads every slice of the half). The benchmark's table needs
/// three in each half of each dimension.
const GLUE_PASSES: usize = 16;

/// The buffers of [`Cubes::mark_cycles`], kept from one set of positions to the next
/// (thousands a table).
#[derive(Default)]
struct CycleSearch {
    edges: Vec<(usize, usize)>,
    on_cycle: Vec<bool>,
    joined: super::UnionFind,
    graph: super::LineGraph,
}

/// Calls `f` with the place of each bit set in `words` (word by word, lowest bit first).
fn for_each_position(words: impl Iterator<Item = u64>, mut f: impl FnMut(usize)) {
    for (w, mut word) in words.enumerate() {
        while word != 0 {
            f(w * 64 + word.trailing_zeros() as usize);
            word &= word - 1;
        }
    }
}

/// Pairs of slices of one dimension below which they are compared on the calling thread alone.
const PAIRS_PER_THREAD: usize = 1_024;

/// Words of bits (4 MiB) the slices of one dimension may take in [`Cubes::certify_slice_pairs`],
/// twice (their suppressed cells, and those not certified yet); a table whose slices take more
/// (a dimension of many values, each slice a large plane) is not compared along that dimension.
const SLICE_WORDS_HELD: usize = 1 << 19;

/// Cubes enumerated from one cell in [`Cubes::certify_group`] at most (a dense pattern has many).
const ENUMERATED: usize = 16;

/// What a [`Search`] looks for.
enum Goal<'s> {
    /// The first cube of suppressed cells (but the one it starts from) not through the
    /// position `avoiding`; it ends the search.
    First { avoiding: Option<u64> },
    /// Every cube of suppressed cells, marking their corners, until `left` are found.
    Every { certified: &'s mut [bool], left: usize },
    /// The cube of the cheapest new corners by `cost` (after the fewest, then the fewest
    /// corners `certified` already), then the smallest keys, of at most `limit` new corners;
    /// the position of the one new corner of each cube found with one is added to `short`.
    Cheapest { cost: &'s dyn Fn(usize) -> Cost, limit: u32, certified: &'s [bool], short: &'s mut Vec<u64> },
}

/// One depth-first search for cubes through a cell, dimension by dimension, pruned by the
/// number of corners not suppressed.
struct Search<'s, 'a> {
    cubes: &'s Cubes<'a>,
    grid: &'s Grid,
    row: usize,
    candidates: Candidates<'s>,
    /// Scratch words for [`Search::extend_last`].
    words: [Vec<u64>; 4],
    goal: Goal<'s>,
    /// The positions of the cube's corners so far, the newest last (doubled by each dimension).
    corners: Vec<u64>,
    /// The key order of the cube's second value in each dimension so far.
    keys: Vec<u32>,
    best: Option<Best>,
}

/// The codes a [`Search`] tries as a cube's second value in each dimension (the cell's own is
/// skipped; when enumerating every cube, so is any smaller, the cell being the cube's smallest
/// corner).
#[derive(Clone, Copy)]
enum Candidates<'s> {
    /// Those of the suppressed cells of the cell's lines (in a dense grid the last dimension is
    /// then searched a word of the bit set at a time).
    Hidden,
    /// These, per dimension.
    These(&'s [&'s [u32]]),
}

/// The best cube a [`Search`] found.
struct Best {
    /// Its new corners, its corners certified already, then its new corners' empty cells,
    /// margins and persons.
    cost: (u32, u32, u32, u32, u64),
    keys: Vec<u32>,
    corners: Vec<u64>,
}

impl<'s, 'a> Search<'s, 'a> {
    fn new(cubes: &'s Cubes<'a>, grid: &'s Grid, row: usize, candidates: Candidates<'s>, goal: Goal<'s>) -> Self {
        let corners = vec![cubes.position(row)];
        Search { cubes, grid, row, candidates, words: Default::default(), goal, corners, keys: Vec::with_capacity(cubes.d), best: None }
    }

    /// Extends the cube of the last `count` corners (spanning the dimensions before `k`, `new`
    /// of them not suppressed) by a second value in dimension `k`. Returns whether the search
    /// is over.
    fn extend(&mut self, k: usize, count: usize, new: u32) -> bool {
        let (cubes, grid) = (self.cubes, self.grid);
        if k == cubes.d {
            return self.found(count);
        }
        if cubes.alone(self.row as u32, k) {
            // A dimension in which the cell's line has no other cell: the cube spans the others,
            // and every corner's line along it must make no equation either (checked for the
            // corners so far here, for all of them in `found`).
            if self.corners.iter().all(|&at| grid.row(at).is_some_and(|r| cubes.alone(r, k))) {
                self.keys.push(u32::MAX);
                let over = self.extend(k + 1, count, new);
                self.keys.pop();
                return over;
            }
            return false;
        }
        // Corners not suppressed allowed: none but when looking for the cheapest, and then no
        // more than the best so far.
        let allowed = match (&self.goal, &self.best) {
            (Goal::Cheapest { limit, .. }, Some(best)) => best.cost.0.min(*limit),
            (Goal::Cheapest { limit, .. }, None) => *limit,
            _ => 0,
        };
        if new > allowed {
            return false;
        }
        if k + 1 == cubes.d && matches!(self.candidates, Candidates::Hidden) && allowed - new <= 1 {
            if let Grid::Dense { hidden, .. } = grid {
                return self.extend_last(hidden, count, allowed - new);
            }
        }
        let own = cubes.code(self.row as u32, k);
        let smallest_corner = matches!(self.goal, Goal::Every { .. });
        let stride = cubes.stride[k];
        let candidates = match self.candidates {
            Candidates::Hidden => cubes.hidden_along(self.row, k),
            Candidates::These(candidates) => candidates[k],
        };
        for &code in candidates {
            if code == own || (smallest_corner && code < own) {
                continue;
            }
            let mut more = new;
            for i in 0..count {
                // Every corner so far has the cell's code in `k`. One not suppressed may not be
                // in the table either: `found` looks.
                let at = self.corners[i] - u64::from(own) * stride + u64::from(code) * stride;
                if !grid.hidden(at) {
                    more += 1;
                    if more > allowed {
                        break;
                    }
                }
                self.corners.push(at);
            }
            if self.corners.len() == 2 * count {
                self.keys.push(cubes.key_order[k][code as usize]);
                let over = self.extend(k + 1, 2 * count, more);
                self.keys.pop();
                if over {
                    return true;
                }
            }
            self.corners.truncate(count);
        }
        false
    }

    /// [`Search::extend`] in the last dimension (stride 1: a line is a run of bits), with at most
    /// `left` (0 or 1) more corners not suppressed: the second values allowed are those where
    /// the lines of the `count` corners so far miss at most `left` bits, and the cell's own line
    /// has one, found 64 at a time.
    fn extend_last(&mut self, bits: &[u64], count: usize, left: u32) -> bool {
        let k = self.cubes.d - 1;
        let own = u64::from(self.cubes.code(self.row as u32, k));
        let length = self.cubes.cardinality[k] as usize;
        let [mask, one, two, line] = &mut self.words;
        let words = length.div_ceil(64);
        one.clear();
        one.resize(words, 0);
        two.clear();
        two.resize(words, 0);
        for (i, &corner) in self.corners[..count].iter().enumerate() {
            window(bits, corner - own, length, line);
            if i == 0 {
                mask.clone_from(line);
            }
            for ((one, two), &word) in one.iter_mut().zip(two.iter_mut()).zip(line.iter()) {
                let missing = !word;
                *two |= *one & missing;
                *one |= missing;
            }
        }
        for (word, (one, two)) in mask.iter_mut().zip(one.iter().zip(two.iter())) {
            *word &= if left == 0 { !one } else { !two };
        }
        // Not the cell's own code; when enumerating, nothing below it either.
        let (own_word, own_bit) = ((own / 64) as usize, own % 64);
        if matches!(self.goal, Goal::Every { .. }) {
            mask[..own_word].fill(0);
            mask[own_word] &= !(u64::MAX >> (63 - own_bit));
        } else {
            mask[own_word] &= !(1u64 << own_bit);
        }
        let mask = std::mem::take(mask);
        let mut over = false;
        'codes: for (j, &word) in mask.iter().enumerate() {
            let mut word = word;
            while word != 0 {
                let code = 64 * j as u64 + u64::from(word.trailing_zeros());
                word &= word - 1;
                for i in 0..count {
                    let at = self.corners[i] - own + code;
                    self.corners.push(at);
                }
                self.keys.push(self.cubes.key_order[k][code as usize]);
                over = self.found(2 * count);
                self.keys.pop();
                self.corners.truncate(count);
                if over {
                    break 'codes;
                }
            }
        }
        self.words[0] = mask;
        over
    }

    /// A whole cube of `count` corners is found. Returns whether the search is over.
    fn found(&mut self, count: usize) -> bool {
        let corners = &self.corners[..count];
        // The dimensions left out (the cell's line along them has no other cell) must be so
        // for every corner, or a corner's line there is an equation the cube does not cancel.
        let (cubes, grid) = (self.cubes, self.grid);
        for k in (0..cubes.d).filter(|&k| self.keys[k] == u32::MAX) {
            if !corners.iter().all(|&at| grid.row(at).is_some_and(|r| cubes.alone(r, k))) {
                return false;
            }
        }
        match &mut self.goal {
            Goal::First { avoiding } => {
                if avoiding.is_some_and(|at| corners.contains(&at)) {
                    return false;
                }
                self.best = Some(Best { cost: (0, 0, 0, 0, 0), keys: Vec::new(), corners: corners.to_vec() });
                true
            }
            Goal::Every { certified, left } => {
                for &at in corners {
                    certified[self.grid.row(at).expect("a corner is a cell") as usize] = true;
                }
                *left -= 1;
                *left == 0
            }
            Goal::Cheapest { cost: cost_of, certified, short, .. } => {
                let mut cost = (0, 0, 0, 0, 0);
                let mut new_at = None;
                for &at in corners {
                    let Some(row) = self.grid.row(at) else { return false };
                    if self.grid.hidden(at) {
                        cost.1 += u32::from(certified[row as usize]);
                    } else {
                        new_at = Some(at);
                        let (empty, margin, persons) = cost_of(row as usize);
                        cost = (cost.0 + 1, cost.1, cost.2 + empty, cost.3 + margin, cost.4 + persons);
                    }
                }
                if cost.0 == 1 {
                    short.extend(new_at);
                }
                if self.best.as_ref().is_none_or(|best| (cost, self.keys.as_slice()) < (best.cost, best.keys.as_slice())) {
                    self.best = Some(Best { cost, keys: self.keys.clone(), corners: corners.to_vec() });
                }
                // A cube already suppressed: nothing is cheaper (which one does not matter).
                cost.0 == 0
            }
        }
    }
}

/// Bits `start..start + length` of `bits` into `out`, from its first word on (bits past the end
/// of `bits` are 0).
fn window(bits: &[u64], start: u64, length: usize, out: &mut Vec<u64>) {
    out.clear();
    let (first, shift) = ((start / 64) as usize, start % 64);
    for w in 0..length.div_ceil(64) {
        let low = bits.get(first + w).copied().unwrap_or(0) >> shift;
        let high = if shift == 0 { 0 } else { bits.get(first + w + 1).copied().unwrap_or(0) << (64 - shift) };
        out.push(low | high);
    }
    if !length.is_multiple_of(64) {
        if let Some(last) = out.last_mut() {
            *last &= (1u64 << (length % 64)) - 1;
        }
    }
}

/// Rows by position, and which are suppressed: an array and a bit set where the positions are
/// few, a hash map otherwise. Of rows with equal keys, the first.
enum Grid {
    Dense { rows: Vec<u32>, hidden: Vec<u64> },
    Sparse(HashMap<u64, (u32, bool), FxBuild>),
}

impl Grid {
    /// The grid of rows at `of_rows` (their positions, in row order) among `positions`.
    fn new(positions: u64, of_rows: impl ExactSizeIterator<Item = u64>) -> Self {
        let n = of_rows.len() as u64;
        if positions <= (4 * n).max(1024) {
            Grid::dense(positions, of_rows)
        } else {
            Grid::sparse(of_rows)
        }
    }

    fn dense(positions: u64, of_rows: impl Iterator<Item = u64>) -> Self {
        let mut rows = vec![u32::MAX; positions as usize];
        for (r, at) in of_rows.enumerate() {
            let slot = &mut rows[at as usize];
            if *slot == u32::MAX {
                *slot = r as u32;
            }
        }
        Grid::Dense { rows, hidden: vec![0; (positions as usize).div_ceil(64)] }
    }

    fn sparse(of_rows: impl Iterator<Item = u64>) -> Self {
        let mut rows: HashMap<u64, (u32, bool), FxBuild> = HashMap::default();
        for (r, at) in of_rows.enumerate() {
            rows.entry(at).or_insert((r as u32, false));
        }
        Grid::Sparse(rows)
    }

    fn row(&self, at: u64) -> Option<u32> {
        match self {
            Grid::Dense { rows, .. } => rows.get(at as usize).copied().filter(|&r| r != u32::MAX),
            Grid::Sparse(rows) => rows.get(&at).map(|&(r, _)| r),
        }
    }

    fn hidden(&self, at: u64) -> bool {
        match self {
            Grid::Dense { hidden, .. } => hidden.get((at / 64) as usize).is_some_and(|word| word >> (at % 64) & 1 == 1),
            Grid::Sparse(rows) => rows.get(&at).is_some_and(|&(_, hidden)| hidden),
        }
    }

    fn set(&mut self, at: u64, to: bool) {
        match self {
            Grid::Dense { hidden, .. } => {
                let (word, bit) = ((at / 64) as usize, 1u64 << (at % 64));
                if to {
                    hidden[word] |= bit;
                } else {
                    hidden[word] &= !bit;
                }
            }
            Grid::Sparse(rows) => {
                if let Some(entry) = rows.get_mut(&at) {
                    entry.1 = to;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Grid;
    use proptest::prelude::*;

    proptest! {
        /// The array and the hash map answer alike: the first row at each position, and which
        /// positions are suppressed after any sequence of changes.
        #[test]
        fn both_grids_agree(positions in 1u64..300, at in prop::collection::vec(0u64..300, 0..200), changes in prop::collection::vec((0u64..320, any::<bool>()), 0..100)) {
            let at: Vec<u64> = at.into_iter().map(|a| a % positions).collect();
            let (mut dense, mut sparse) = (Grid::dense(positions, at.iter().copied()), Grid::sparse(at.iter().copied()));
            for (position, to) in changes {
                if dense.row(position).is_some() {
                    dense.set(position, to);
                    sparse.set(position, to);
                }
            }
            for position in 0..positions + 20 {
                prop_assert_eq!(dense.row(position), sparse.row(position));
                prop_assert_eq!(dense.row(position), at.iter().position(|&a| a == position).map(|r| r as u32));
                prop_assert_eq!(dense.hidden(position), sparse.hidden(position));
            }
        }
    }
}
