//! The search for the globally optimal full-domain generalization.
//!
//! **Optimal** (the default) combines three things:
//! 1. *Lower bounds*. Every metric has a bound computed from the levels alone (the loss of
//!    generalization without suppression), valid for a node and all its successors. Nodes are
//!    visited in order of that bound; once the bound of the next node exceeds the best loss
//!    found, no remaining node can be better and the search stops. After a node's classes
//!    are known, a second bound (e.g. `Σ|E|²` for discernibility) prunes all its successors.
//! 2. *Predictive tagging* as in ARX's Flash: from an undecided node, a path is built upward
//!    through undecided nodes and searched by bisection; a node that satisfies a monotonic
//!    predicate tags all its successors as satisfying it, one that fails tags all its
//!    predecessors as failing. The predicate is the full privacy model when that is monotonic
//!    (always without suppression; with suppression only for k-anonymity and distinct
//!    l-diversity), and otherwise k-anonymity within the limit, a necessary condition, with
//!    the full model then checked node by node.
//! 3. *Roll-up*. A node's classes are computed from the cached classes of a finer node (the
//!    one with the fewest classes), or from the bottom node's classes, never from the records;
//!    cached snapshots are kept when they shrink the class count, least recently used first out.
//!    The hash table is sized by the node's own bound (the product of its attributes' label
//!    counts) when that is smaller, and a roll-up is abandoned as soon as the node has more
//!    classes than a k-anonymous node can have (`n / k` plus the records that may be
//!    suppressed): the node fails, and its predecessors with it.
//!
//! Ties in loss are broken by the lower height, then the lower node number, in both
//! strategies, so Optimal and Exhaustive return the same node.
//!
//! **Sweep** ([`crate::Anonymizer::evaluate_all`]) evaluates every node, bottom-up: a
//! depth-first walk over a spanning tree of the lattice rolls each node up from its parent's
//! classes (the parent lowers the node's last generalized attribute by one level), keeping
//! only the classes of the current path. On Adult the 4,320 nodes hold 6.8 million classes
//! in all, each computed from its parent's classes; regrouping the records instead would
//! take 4,320 × 30,162 = 130 million record groupings.
//!
//! **Exhaustive** evaluates every node directly from the records: no tagging, no bounds, no
//! roll-up. It is the baseline of the benchmark and the oracle of the tests.
//!
//! Invariants: a tag is only set with all the nodes it implies (so propagation can stop at an
//! already tagged node); the optimum returned satisfies the privacy model within the
//! suppression limit and no node has a smaller (loss, height, number).

use crate::engine::{Anonymizer, Bottom, ClassCheck, NodeEvaluation, SearchStrategy};
use crate::groupify::{Grouper, PackedKey, RollupPlan};
use crate::metric::ClassSummary;
use crate::privacy::{emd_equal, l_diverse};

/// The result of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchOutcome {
    /// The optimal node, if any node satisfies the privacy model.
    pub optimum: Option<NodeEvaluation>,
    pub stats: SearchStats,
}

/// What the search did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchStats {
    /// Nodes in the lattice.
    pub nodes: u64,
    /// Nodes whose classes were computed.
    pub classes_computed: u64,
    /// Of those, computed by roll-up from a cached finer node (not from the bottom node).
    pub rolled_up_from_cache: u64,
    /// Nodes whose loss was evaluated.
    pub losses_evaluated: u64,
    /// Nodes found to satisfy the privacy model (all of them for Exhaustive).
    pub anonymous_found: u64,
    /// Of the nodes whose classes were being computed, those abandoned once they had more
    /// classes than a k-anonymous node can have (`n / k` plus the suppression limit).
    pub abandoned: u64,
}

const P_PASS: u8 = 1;
const P_FAIL: u8 = 2;
const ANON: u8 = 4;
const NOT_ANON: u8 = 8;
const PRUNED: u8 = 16;
const EVALUATED: u8 = 32;

const CACHE_SIZE: usize = 48;

/// The classes of one node on the sweep's current path.
struct Frame<K> {
    levels: Vec<u32>,
    keys: Vec<K>,
    counts: Vec<u32>,
    bottom_map: Vec<u32>,
}

impl<K> Default for Frame<K> {
    fn default() -> Self {
        Frame { levels: Vec::new(), keys: Vec::new(), counts: Vec::new(), bottom_map: Vec::new() }
    }
}

struct Snapshot<K> {
    levels: Vec<u32>,
    keys: Vec<K>,
    counts: Vec<u32>,
    bottom_map: Vec<u32>,
    last_used: u64,
}

/// Result of checking the current classes.
struct Check {
    k_ok: bool,
    anonymous: bool,
}

pub(crate) struct Engine<'a, K> {
    a: &'a Anonymizer<'a>,
    bottom: &'a Bottom<K>,
    grouper: Grouper<K>,
    plan: RollupPlan<K>,
    cache: Vec<Snapshot<K>>,
    frames: Vec<Frame<K>>,
    /// The sweep's order of attributes.
    order: Vec<usize>,
    clock: u64,
    // Current node's classes.
    keys: Vec<K>,
    counts: Vec<u32>,
    bottom_map: Vec<u32>,
    class_map: Vec<u32>,
    outlier: Vec<bool>,
    levels: Vec<u32>,
    summary: ClassSummary,
    checks: Vec<Vec<ClassCheck>>,
    need_map: bool,
    // Scratch for sensitive checks.
    members: Vec<u32>,
    member_offsets: Vec<u32>,
    hist: Vec<Vec<u32>>,
    touched: Vec<u32>,
    pairs: Vec<(u32, u32)>,
    values: Vec<u32>,
    record_class: Vec<u32>,
    // Search state.
    flags: Vec<u8>,
    bound: Vec<f64>,
    best: Option<(f64, u32)>,
    stack: Vec<u32>,
    stats: SearchStats,
    monotone: bool,
}

impl<'a, K: PackedKey> Engine<'a, K> {
    pub fn new(a: &'a Anonymizer<'a>, bottom: &'a Bottom<K>) -> Self {
        let checks: Vec<Vec<ClassCheck>> = a.sensitive.iter().map(|s| s.checks.clone()).collect();
        let need_map = !checks.is_empty();
        let suppression = a.max_outliers > 0;
        Engine {
            a,
            bottom,
            grouper: Grouper::default(),
            plan: RollupPlan::default(),
            cache: Vec::new(),
            frames: Vec::new(),
            order: Vec::new(),
            clock: 0,
            keys: Vec::new(),
            counts: Vec::new(),
            bottom_map: Vec::new(),
            class_map: Vec::new(),
            outlier: Vec::new(),
            levels: Vec::new(),
            summary: ClassSummary::default(),
            hist: a.sensitive.iter().map(|s| vec![0; s.cardinality]).collect(),
            checks,
            need_map,
            members: Vec::new(),
            member_offsets: Vec::new(),
            touched: Vec::new(),
            pairs: Vec::new(),
            values: Vec::new(),
            record_class: Vec::new(),
            flags: Vec::new(),
            bound: Vec::new(),
            best: None,
            stack: Vec::new(),
            stats: SearchStats::default(),
            monotone: a.config.model.privacy.is_monotonic(suppression),
        }
    }

    pub fn search(mut self, strategy: SearchStrategy) -> SearchOutcome {
        let size = self.a.lattice.size();
        self.stats.nodes = size as u64;
        match strategy {
            SearchStrategy::Exhaustive => self.exhaustive(),
            SearchStrategy::Optimal => self.optimal(),
        }
        let optimum = self.best.map(|(_, node)| {
            // Re-evaluate the winner for its full description (cheap: one roll-up).
            let mut e = Engine::new(self.a, self.bottom);
            e.evaluate(node, false).0
        });
        SearchOutcome { optimum, stats: self.stats }
    }

    /// Evaluates a node; with `rows`, also says which records are suppressed.
    pub fn evaluate(&mut self, node: u32, rows: bool) -> (NodeEvaluation, Vec<bool>) {
        self.need_map |= rows;
        self.compute_rollup(node);
        let check = self.check_current();
        let loss = self.a.metric.loss(&self.levels, &self.summary);
        let mut suppressed = Vec::new();
        if rows {
            suppressed = self.bottom.record_class.iter().map(|&b| self.outlier[self.bottom_map[b as usize] as usize]).collect();
        }
        let evaluation = NodeEvaluation {
            levels: self.levels.clone(),
            anonymous: check.anonymous,
            classes: self.summary.classes,
            released_classes: self.summary.released_classes,
            suppressed_records: self.summary.suppressed_records,
            loss,
        };
        (evaluation, suppressed)
    }

    /// The classes of a node, sorted, by roll-up or directly from the records.
    pub fn classes_of(&mut self, node: u32, rollup: bool) -> Vec<(Vec<u32>, u32)> {
        if rollup {
            self.compute_rollup(node);
        } else {
            self.compute_direct(node);
        }
        let layout = &self.a.layout;
        let mut out: Vec<(Vec<u32>, u32)> = self
            .keys
            .iter()
            .zip(&self.counts)
            .map(|(k, &c)| ((0..layout.shifts.len()).map(|i| k.field(layout.shifts[i], layout.bits[i])).collect(), c))
            .collect();
        out.sort();
        out
    }

    /// Computes the `warm` nodes (filling the snapshot cache), then `node` by roll-up.
    pub fn classes_after(&mut self, warm: &[u32], node: u32) -> Vec<(Vec<u32>, u32)> {
        for &w in warm {
            self.compute_rollup(w);
        }
        self.classes_of(node, true)
    }

    /// Evaluates a node from the records (no roll-up): the oracle of the sweep's tests.
    pub fn evaluate_from_records(&mut self, node: u32) -> NodeEvaluation {
        self.compute_direct(node);
        self.describe_current()
    }

    /// The evaluation of the current classes.
    fn describe_current(&mut self) -> NodeEvaluation {
        let check = self.check_current();
        let loss = self.a.metric.loss(&self.levels, &self.summary);
        NodeEvaluation {
            levels: self.levels.clone(),
            anonymous: check.anonymous,
            classes: self.summary.classes,
            released_classes: self.summary.released_classes,
            suppressed_records: self.summary.suppressed_records,
            loss,
        }
    }

    /// Evaluates every node of the lattice, in node order, each by roll-up from a predecessor.
    ///
    /// The walk is depth-first over a spanning tree of the lattice in which the parent of a
    /// node is the node one level lower in its *last* generalized attribute (so a node's
    /// children raise an attribute at or after that one, and every node is reached exactly
    /// once), "last" in an order of attributes chosen so that the attributes whose first
    /// generalization merges the most classes come first. The classes of the nodes on the
    /// current path are kept, one set per depth (at most the lattice's height plus one), and
    /// each node's classes are rolled up from its parent's: the work per node is proportional
    /// to the parent's number of classes, never to the number of records.
    pub fn sweep(&mut self) -> Vec<NodeEvaluation> {
        let size = self.a.lattice.size() as usize;
        self.stats.nodes = size as u64;
        let dims = self.a.lattice.dimensions();
        let mut out: Vec<Option<NodeEvaluation>> = vec![None; size];
        // The bottom node: its classes are the prepared bottom classes.
        self.keys.clear();
        self.keys.extend_from_slice(&self.bottom.keys);
        self.counts.clear();
        self.counts.extend_from_slice(&self.bottom.counts);
        self.levels.clear();
        self.levels.resize(dims, 0);
        if self.need_map {
            self.bottom_map.clear();
            self.bottom_map.extend(0..self.bottom.keys.len() as u32);
        }
        self.stats.classes_computed += 1;
        out[0] = Some(self.describe_current());
        // Attributes in the order the tree raises them: those whose first generalization
        // merges the most classes first, so that the nodes with the most children (those
        // generalized only in early attributes) have the fewest classes to roll up.
        let heights = self.a.lattice.heights().to_vec();
        let mut first_step: Vec<(usize, usize)> = (0..dims)
            .map(|i| {
                if heights[i] < 2 {
                    return (usize::MAX, i);
                }
                let mut one = vec![0u32; dims];
                one[i] = 1;
                self.plan.prepare(&self.a.layout, &self.a.up, &self.levels, &one);
                self.plan.rollup(&self.bottom.keys, &self.bottom.counts, &mut self.grouper, None);
                (self.grouper.len(), i)
            })
            .collect();
        first_step.sort_unstable();
        self.order = first_step.into_iter().map(|(_, i)| i).collect();
        self.frames.clear();
        self.push_frame(0);
        self.sweep_children(0, 0, 0, &mut out);
        out.into_iter().map(|e| e.expect("every node is reached")).collect()
    }

    /// Moves the current classes into the frame at `depth`.
    fn push_frame(&mut self, depth: usize) {
        if self.frames.len() <= depth {
            self.frames.resize_with(depth + 1, Frame::default);
        }
        let frame = &mut self.frames[depth];
        frame.levels.clone_from(&self.levels);
        std::mem::swap(&mut frame.keys, &mut self.keys);
        std::mem::swap(&mut frame.counts, &mut self.counts);
        std::mem::swap(&mut frame.bottom_map, &mut self.bottom_map);
    }

    /// Evaluates the subtree below the node whose classes are in the frame at `depth`; its
    /// children raise the attribute at position `first` of the sweep's order or a later one.
    fn sweep_children(&mut self, depth: usize, node: u32, first: usize, out: &mut Vec<Option<NodeEvaluation>>) {
        let frame = std::mem::take(&mut self.frames[depth]);
        let lattice = &self.a.lattice;
        let heights = lattice.heights();
        let dims = heights.len();
        let mut target = frame.levels.clone();
        for position in first..dims {
            let j = self.order[position];
            if frame.levels[j] + 1 >= heights[j] {
                continue;
            }
            let child = node + lattice.stride(j);
            target.copy_from_slice(&frame.levels);
            target[j] += 1;
            self.stats.classes_computed += 1;
            self.plan.prepare(&self.a.layout, &self.a.up, &frame.levels, &target);
            let map = if self.need_map { Some(&mut self.class_map) } else { None };
            self.plan.rollup(&frame.keys, &frame.counts, &mut self.grouper, map);
            std::mem::swap(&mut self.keys, &mut self.grouper.keys);
            std::mem::swap(&mut self.counts, &mut self.grouper.counts);
            if self.need_map {
                let class_map = &self.class_map;
                self.bottom_map.clear();
                self.bottom_map.extend(frame.bottom_map.iter().map(|&c| class_map[c as usize]));
            }
            self.levels.clone_from(&target);
            let evaluation = self.describe_current();
            if evaluation.anonymous {
                self.stats.anonymous_found += 1;
            }
            self.stats.losses_evaluated += 1;
            out[child as usize] = Some(evaluation);
            if self.order[position..].iter().any(|&i| target[i] + 1 < heights[i]) {
                self.push_frame(depth + 1);
                self.sweep_children(depth + 1, child, position, out);
            }
        }
        self.frames[depth] = frame;
    }

    fn exhaustive(&mut self) {
        self.need_map = !self.checks.is_empty();
        for node in 0..self.a.lattice.size() {
            self.compute_direct(node);
            let check = self.check_current();
            if check.anonymous {
                self.stats.anonymous_found += 1;
                self.stats.losses_evaluated += 1;
                let loss = self.a.metric.loss(&self.levels, &self.summary).value;
                self.offer(node, loss);
            }
        }
    }

    fn optimal(&mut self) {
        let lattice = &self.a.lattice;
        let size = lattice.size() as usize;
        self.flags = vec![0u8; size];
        let mut levels = Vec::new();
        self.bound = (0..size as u32)
            .map(|node| {
                lattice.levels_into(node, &mut levels);
                self.a.metric.static_bound(&levels)
            })
            .collect();
        let mut order: Vec<u32> = (0..size as u32).collect();
        let heights: Vec<u32> = (0..size as u32).map(|n| lattice.height(n)).collect();
        order.sort_by(|&x, &y| {
            self.bound[x as usize].total_cmp(&self.bound[y as usize]).then(heights[x as usize].cmp(&heights[y as usize])).then(x.cmp(&y))
        });
        for node in order {
            let i = node as usize;
            if let Some((best, best_node)) = self.best {
                let b = self.bound[i];
                if b > best || (b == best && self.tie_key(node) > self.tie_key(best_node)) {
                    break;
                }
            }
            if self.flags[i] & (NOT_ANON | PRUNED | EVALUATED) != 0 {
                continue;
            }
            if self.flags[i] & ANON == 0 {
                if self.flags[i] & (P_PASS | P_FAIL) == 0 {
                    self.probe(node);
                }
                if self.flags[i] & NOT_ANON != 0 {
                    continue;
                }
                if self.flags[i] & (ANON | EVALUATED) == 0 {
                    // The necessary condition holds; check the full model on this node.
                    self.check_node(node);
                    continue;
                }
            }
            if self.flags[i] & EVALUATED == 0 {
                self.evaluate_anonymous(node);
            }
        }
    }

    /// Flash's path and bisection from an undecided node.
    fn probe(&mut self, start: u32) {
        let lattice = &self.a.lattice;
        let mut path = vec![start];
        let mut current = start;
        loop {
            let next = lattice
                .successors(current)
                .filter(|&s| self.flags[s as usize] & (P_PASS | P_FAIL) == 0)
                .min_by(|&x, &y| self.bound[x as usize].total_cmp(&self.bound[y as usize]).then(x.cmp(&y)));
            match next {
                Some(s) => {
                    path.push(s);
                    current = s;
                }
                None => break,
            }
        }
        let (mut lo, mut hi) = (0isize, path.len() as isize - 1);
        while lo <= hi {
            let mid = (lo + hi) / 2;
            let node = path[mid as usize];
            let flags = self.flags[node as usize];
            let pass = if flags & P_PASS != 0 {
                true
            } else if flags & P_FAIL != 0 {
                false
            } else {
                self.check_node(node)
            };
            if pass {
                hi = mid - 1;
            } else {
                lo = mid + 1;
            }
        }
    }

    /// Computes a node's classes, checks it, tags, evaluates its loss if anonymous and prunes
    /// its successors by bound. Returns whether the tagging predicate holds.
    fn check_node(&mut self, node: u32) -> bool {
        // A node with more classes than `n / k + max_outliers` fails k-anonymity within the
        // limit (released classes hold k records or more, suppressed ones at least one):
        // its roll-up stops as soon as it has that many.
        let limit = (self.a.table.num_rows() / self.a.config.model.privacy.k.max(1) as usize).saturating_add(self.a.max_outliers as usize);
        if !self.compute_rollup_at_most(node, limit) {
            self.stats.abandoned += 1;
            self.tag_down(node, P_FAIL | NOT_ANON);
            return false;
        }
        let check = self.check_current();
        let pass = if !check.k_ok {
            self.tag_down(node, P_FAIL | NOT_ANON);
            false
        } else if self.monotone {
            if check.anonymous {
                self.tag_up(node, P_PASS | ANON);
            } else {
                self.tag_down(node, P_FAIL | NOT_ANON);
            }
            check.anonymous
        } else {
            self.tag_up(node, P_PASS);
            self.flags[node as usize] |= if check.anonymous { ANON } else { NOT_ANON };
            true
        };
        if check.anonymous {
            self.record_loss(node);
        }
        let bound = self.a.metric.successor_bound(&self.levels, &self.summary);
        self.prune_successors(node, bound);
        pass
    }

    /// A node known to be anonymous: its loss, from its classes unless it cannot suppress.
    fn evaluate_anonymous(&mut self, node: u32) {
        if self.a.max_outliers == 0 && self.a.metric.static_when_unsuppressed() {
            self.flags[node as usize] |= EVALUATED;
            self.stats.losses_evaluated += 1;
            self.stats.anonymous_found += 1;
            let loss = self.bound[node as usize];
            self.offer(node, loss);
            return;
        }
        self.check_node(node);
    }

    fn record_loss(&mut self, node: u32) {
        if self.flags[node as usize] & EVALUATED != 0 {
            return;
        }
        self.flags[node as usize] |= EVALUATED;
        self.stats.losses_evaluated += 1;
        self.stats.anonymous_found += 1;
        let loss = self.a.metric.loss(&self.levels, &self.summary).value;
        self.offer(node, loss);
    }

    fn offer(&mut self, node: u32, loss: f64) {
        let better = match self.best {
            None => true,
            Some((best, best_node)) => loss < best || (loss == best && self.tie_key(node) < self.tie_key(best_node)),
        };
        if better {
            self.best = Some((loss, node));
        }
    }

    fn tie_key(&self, node: u32) -> (u32, u32) {
        (self.a.lattice.height(node), node)
    }

    fn prune_successors(&mut self, node: u32, bound: f64) {
        let Some((best, best_node)) = self.best else { return };
        if bound > best || (bound == best && self.tie_key(best_node) <= self.tie_key(node)) {
            let successors: Vec<u32> = self.a.lattice.successors(node).collect();
            for s in successors {
                self.tag_up(s, PRUNED);
            }
        }
    }

    fn tag_up(&mut self, node: u32, flag: u8) {
        self.tag(node, flag, true);
    }

    fn tag_down(&mut self, node: u32, flag: u8) {
        self.tag(node, flag, false);
    }

    fn tag(&mut self, node: u32, flag: u8, up: bool) {
        if self.flags[node as usize] & flag == flag {
            return;
        }
        let lattice = &self.a.lattice;
        self.flags[node as usize] |= flag;
        self.stack.clear();
        self.stack.push(node);
        while let Some(n) = self.stack.pop() {
            let step = |m: u32, flags: &mut Vec<u8>, stack: &mut Vec<u32>| {
                if flags[m as usize] & flag != flag {
                    flags[m as usize] |= flag;
                    stack.push(m);
                }
            };
            if up {
                for m in lattice.successors(n) {
                    step(m, &mut self.flags, &mut self.stack);
                }
            } else {
                for m in lattice.predecessors(n) {
                    step(m, &mut self.flags, &mut self.stack);
                }
            }
        }
    }

    /// Computes the classes of `node` into the current buffers by roll-up.
    fn compute_rollup(&mut self, node: u32) {
        let complete = self.compute_rollup_at_most(node, usize::MAX);
        debug_assert!(complete);
    }

    /// [`Engine::compute_rollup`], abandoned (returning `false`; the current classes are then
    /// incomplete and nothing is cached) once the node has more than `limit` classes.
    fn compute_rollup_at_most(&mut self, node: u32, limit: usize) -> bool {
        self.stats.classes_computed += 1;
        let mut target = std::mem::take(&mut self.levels);
        self.a.lattice.levels_into(node, &mut target);
        self.clock += 1;
        // The cached finer node with the fewest classes.
        let source = self
            .cache
            .iter()
            .enumerate()
            .filter(|(_, s)| s.levels.iter().zip(&target).all(|(a, b)| a <= b))
            .min_by_key(|(_, s)| s.keys.len())
            .map(|(i, _)| i);
        let zeros = vec![0u32; target.len()];
        let (src_levels, src_keys, src_counts) = match source {
            Some(i) => {
                self.stats.rolled_up_from_cache += 1;
                self.cache[i].last_used = self.clock;
                let s = &self.cache[i];
                (&s.levels, &s.keys, &s.counts)
            }
            None => (&zeros, &self.bottom.keys, &self.bottom.counts),
        };
        let source_classes = src_keys.len();
        self.plan.prepare(&self.a.layout, &self.a.up, src_levels, &target);
        let map = if self.need_map { Some(&mut self.class_map) } else { None };
        let complete = self.plan.rollup_at_most(src_keys, src_counts, &mut self.grouper, map, limit);
        std::mem::swap(&mut self.keys, &mut self.grouper.keys);
        std::mem::swap(&mut self.counts, &mut self.grouper.counts);
        if !complete {
            self.levels = target;
            return false;
        }
        if self.need_map {
            self.bottom_map.clear();
            match source {
                Some(i) => {
                    let class_map = &self.class_map;
                    self.bottom_map.extend(self.cache[i].bottom_map.iter().map(|&c| class_map[c as usize]));
                }
                None => self.bottom_map.extend_from_slice(&self.class_map),
            }
        }
        self.levels = target;
        // Keep a snapshot when it is a real reduction.
        if self.keys.len() * 10 <= source_classes * 8 && self.keys.len() > 1 {
            let snapshot = Snapshot {
                levels: self.levels.clone(),
                keys: self.keys.clone(),
                counts: self.counts.clone(),
                bottom_map: if self.need_map { self.bottom_map.clone() } else { Vec::new() },
                last_used: self.clock,
            };
            if self.cache.len() < CACHE_SIZE {
                self.cache.push(snapshot);
            } else if let Some(oldest) = self.cache.iter_mut().min_by_key(|s| s.last_used) {
                *oldest = snapshot;
            }
        }
        true
    }

    /// Computes the classes of `node` directly from the records (no roll-up).
    fn compute_direct(&mut self, node: u32) {
        self.stats.classes_computed += 1;
        let mut target = std::mem::take(&mut self.levels);
        self.a.lattice.levels_into(node, &mut target);
        let n = self.a.table.num_rows();
        let layout = &self.a.layout;
        let maps: Vec<&[u32]> = self.a.qis.iter().zip(&target).map(|(q, &l)| q.hierarchy.level_map(l as usize)).collect();
        self.grouper.begin(n.min(crate::groupify::target_classes_bound(&self.a.up, &target)));
        self.record_class.clear();
        for r in 0..n {
            let mut key = K::default();
            for (i, q) in self.a.qis.iter().enumerate() {
                key = key.or(K::field_value(maps[i][q.leaf[r] as usize], layout.shifts[i]));
            }
            let class = self.grouper.add(key, 1);
            self.record_class.push(class);
        }
        std::mem::swap(&mut self.keys, &mut self.grouper.keys);
        std::mem::swap(&mut self.counts, &mut self.grouper.counts);
        if self.need_map {
            self.bottom_map.clear();
            self.bottom_map.resize(self.bottom.keys.len(), 0);
            for (r, &b) in self.bottom.record_class.iter().enumerate() {
                self.bottom_map[b as usize] = self.record_class[r];
            }
        }
        self.levels = target;
    }

    /// Checks the current classes against the privacy model and summarizes them for the
    /// metric. Classes failing any model are marked as outliers.
    fn check_current(&mut self) -> Check {
        let k = self.a.config.model.privacy.k;
        let classes = self.keys.len();
        let dims = self.levels.len();
        self.summary.reset(dims);
        self.outlier.clear();
        let mut k_outliers = 0u64;
        for &c in &self.counts {
            let out = c < k;
            self.outlier.push(out);
            if out {
                k_outliers += c as u64;
            }
        }
        let k_ok = k_outliers <= self.a.max_outliers;
        if k_ok && !self.checks.is_empty() {
            self.check_sensitive();
        }
        let n = self.a.table.num_rows() as u128;
        for c in 0..classes {
            let count = self.counts[c] as u128;
            let sq = count * count;
            self.summary.sum_squares += sq;
            if self.outlier[c] {
                self.summary.discernibility += n * count;
            } else {
                self.summary.discernibility += sq;
                self.summary.released_classes += 1;
            }
        }
        self.a.metric.add_suppressed_classes(&mut self.summary, &self.levels, &self.a.layout, &self.keys, &self.counts, &self.outlier);
        self.summary.classes = classes as u64;
        let anonymous = k_ok && self.summary.suppressed_records <= self.a.max_outliers;
        Check { k_ok, anonymous }
    }

    /// Marks classes failing l-diversity or t-closeness as outliers.
    fn check_sensitive(&mut self) {
        let classes = self.keys.len();
        // Group bottom classes by current class (counting sort).
        self.member_offsets.clear();
        self.member_offsets.resize(classes + 1, 0);
        for &c in &self.bottom_map {
            self.member_offsets[c as usize + 1] += 1;
        }
        for c in 0..classes {
            self.member_offsets[c + 1] += self.member_offsets[c];
        }
        self.members.clear();
        self.members.resize(self.bottom_map.len(), 0);
        let mut next: Vec<u32> = self.member_offsets[..classes].to_vec();
        for (b, &c) in self.bottom_map.iter().enumerate() {
            self.members[next[c as usize] as usize] = b as u32;
            next[c as usize] += 1;
        }
        for c in 0..classes {
            if self.outlier[c] {
                continue;
            }
            let members = &self.members[self.member_offsets[c] as usize..self.member_offsets[c + 1] as usize];
            let size = self.counts[c];
            let mut ok = true;
            for (s, checks) in self.checks.iter_mut().enumerate() {
                let csr = &self.bottom.sensitive[s];
                let hist = &mut self.hist[s];
                self.touched.clear();
                for &b in members {
                    for &(v, count) in &csr.entries[csr.offsets[b as usize] as usize..csr.offsets[b as usize + 1] as usize] {
                        if hist[v as usize] == 0 {
                            self.touched.push(v);
                        }
                        hist[v as usize] += count;
                    }
                }
                self.pairs.clear();
                self.pairs.extend(self.touched.iter().map(|&v| (v, hist[v as usize])));
                for &v in &self.touched {
                    hist[v as usize] = 0;
                }
                for check in checks.iter_mut() {
                    let pass = match check {
                        ClassCheck::L(variant) => {
                            self.values.clear();
                            self.values.extend(self.pairs.iter().map(|p| p.1));
                            l_diverse(*variant, &mut self.values)
                        }
                        ClassCheck::TEqual { t, global } => emd_equal(&self.pairs, size, global) <= *t + 1e-12,
                        ClassCheck::THierarchical { t, leaf_of_code, emd } => {
                            let leaves: Vec<(u32, u32)> = self.pairs.iter().map(|&(v, n)| (leaf_of_code[v as usize], n)).collect();
                            emd.distance(&leaves, size) <= *t + 1e-12
                        }
                    };
                    if !pass {
                        ok = false;
                        break;
                    }
                }
                if !ok {
                    break;
                }
            }
            if !ok {
                self.outlier[c] = true;
            }
        }
    }
}
