//! The most rows a query's output can have, from the numbers of distinct values its grouping
//! columns hold in the whole registered tables, never from the rows its conditions select.
//!
//! A large table joined on a code to a small table filtered to one rare row, then grouped by fine
//! columns of the large one, makes no groups or hundreds of thousands of them, each of one person
//! (withheld by output checking). A limit on the output rows counted at run time would refuse it
//! exactly when the rare row exists: one bit per query about one person. So before a query runs,
//! its output's groups are bounded ([`check`]) and a query whose bound passes
//! [`crate::Limits::max_groups`] is refused ([`crate::Refusal::TooManyGroups`]), the same whether
//! the rows it selects exist or not; within the bound no run-time row limit can be reached.
//!
//! The bound of a grouping column ([`Distinct`]) follows the column down to where its values come
//! from:
//! - a registered table's column: its distinct values (nulls as one), counted over the whole table
//!   when a query first needs them and rounded up to a power of two, so that a refusal never tells
//!   an exact count ([`Values`]); `date_trunc('month' | 'quarter' | 'year', d)` and
//!   `date_part('year', d)` of a table's date column count its distinct months or years instead,
//!   and `substr(x, 1, k)` or `left(x, k)` of its text the distinct first `k` characters (a
//!   diagnosis's category, a birth decade);
//! - `date_part` of a calendar field with few values (month 12, day 31, …): that many;
//! - a constant: one; `col = constant` or `col IN (constants)` in a filter: that many;
//! - any other expression: the product of the columns it reads (a function of them has no more
//!   values); a union adds up its parts; an outer join adds a null;
//! - an aggregate's value: its rows, and for a `count` grouped by person the most rows one person
//!   has (plus zero);
//! - never more than the node's rows in the worst case (`worst_case.rs`).
//!
//! An aggregate has at most the product of its grouping columns' bounds (summed over grouping
//! sets) and never more than its input. Where two or three grouping keys are columns (at their
//! grains) of the same scan of a table, the tuples they hold together in the whole table bound
//! them instead when that is smaller: a day-by-code count has no more groups than the table has
//! day-and-code pairs, far fewer than days × codes. Columns of two scans of one table (a
//! self-join) are never counted together. Only registered tables' own values are counted, through
//! a fixed set of derivations: a count of an expression the query chose (`CASE WHEN code = 'R'
//! …`) could be tuned to cross a power of two on one rare value.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, Date32Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::hash_utils::{create_hashes, QualityRandomState};
use datafusion::common::tree_node::TreeNode;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::expr::{Alias, Cast, InList, ScalarFunction, TryCast};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Distinct as DistinctPlan, Expr, ExprSchemable, GroupingSet, JoinType, LogicalPlan, Operator};

use crate::check::is_person_id;
use crate::{worst_case, Refusal, Registered, SandboxError, CATALOG};

/// Refuses a plan whose output could have more than `max_groups` rows.
pub(crate) fn check(
    plan: &LogicalPlan,
    tables: &BTreeMap<(String, String), Registered>,
    default_schema: &str,
    max_groups: u64,
) -> Result<(), SandboxError> {
    if bound(plan, tables, default_schema) > u128::from(max_groups) {
        return Err(SandboxError::NotAllowed(Refusal::TooManyGroups));
    }
    Ok(())
}

/// The most rows `plan`'s output can have.
pub(crate) fn bound(plan: &LogicalPlan, tables: &BTreeMap<(String, String), Registered>, default_schema: &str) -> u128 {
    Bounds { tables, default_schema, scans: std::cell::Cell::new(0) }.node(plan).rows.eval()
}

/// The values of a registered table, and the distinct counts queries asked for so far.
#[derive(Debug, Default)]
pub(crate) struct Values {
    batches: Vec<RecordBatch>,
    /// Counting stops past this many values (the workspace's `max_groups`): every bound made
    /// from a count only grows with it, so a column past it refuses what the whole count would.
    enough: u128,
    counted: Mutex<HashMap<(usize, Grain), u128>>,
    /// Distinct tuples of a few columns at their grains, counted as queries asked.
    joint: Mutex<HashMap<Vec<(usize, Grain)>, u128>>,
}

impl Values {
    pub(crate) fn new(batches: Vec<RecordBatch>, max_groups: u64) -> Self {
        Values { batches, enough: u128::from(max_groups), counted: Mutex::new(HashMap::new()), joint: Mutex::new(HashMap::new()) }
    }

    /// The distinct tuples the table's rows hold in `columns` at their grains (nulls as values),
    /// and a place for a tuple of nulls (an outer join's missing side), rounded up to a power of
    /// two (more than the workspace's `max_groups` once past it).
    fn joint(&self, columns: &[(usize, Grain)]) -> u128 {
        if let Some(&n) = self.joint.lock().unwrap_or_else(|p| p.into_inner()).get(columns) {
            return n;
        }
        let n = (count_tuples(&self.batches, columns, self.enough) + 1).next_power_of_two();
        self.joint.lock().unwrap_or_else(|p| p.into_inner()).insert(columns.to_vec(), n);
        n
    }

    /// The distinct values of column `column` at `grain` and a place for a null, rounded up to a
    /// power of two (more than the workspace's `max_groups` once past it).
    fn distinct(&self, column: usize, grain: Grain) -> u128 {
        if let Some(&n) = self.counted.lock().unwrap_or_else(|p| p.into_inner()).get(&(column, grain)) {
            return n;
        }
        let n = (count_distinct(self.batches.iter().map(|b| b.column(column)), grain, self.enough) + 1).next_power_of_two();
        self.counted.lock().unwrap_or_else(|p| p.into_inner()).insert((column, grain), n);
        n
    }
}

/// What of a column's values is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Grain {
    Value,
    /// Weeks of a date column, from Monday (`date_trunc('week', …)`).
    Week,
    /// Calendar months of a date column.
    Month,
    /// Calendar years of a date column.
    Year,
    /// The first so many characters of a text column (`substr(x, 1, k)`, `left(x, k)`).
    Prefix(u16),
}

/// The distinct values that are not null, or more than `enough` once past it.
fn count_distinct<'a>(columns: impl Iterator<Item = &'a ArrayRef>, grain: Grain, enough: u128) -> u128 {
    // 64-bit hashes of good quality (a collision would count two values as one: about one in
    // 10⁸ at 10⁶ values); the set keeps them as they are.
    let mut seen: HashSet<u64, BuildHasherDefault<Hashed>> = HashSet::default();
    let state = QualityRandomState::with_seed(0);
    let mut hashes = Vec::new();
    let mut unhashed = 0u128;
    for column in columns {
        if seen.len() as u128 + unhashed > enough {
            break;
        }
        if !grain_hashes(column, grain, &state, &mut hashes) {
            // A type that cannot be hashed: at most one value a row.
            unhashed += column.len() as u128;
            continue;
        }
        seen.extend(hashes.iter().enumerate().filter(|&(i, _)| column.is_valid(i)).map(|(_, &h)| h));
    }
    seen.len() as u128 + unhashed
}

/// The distinct tuples of `columns` at their grains over the rows of `batches` (a null is a value
/// of its own), or more than `enough` once past it. Each row's tuple is one 64-bit hash of its
/// parts' hashes (a collision counts two tuples as one, as in [`count_distinct`]).
fn count_tuples(batches: &[RecordBatch], columns: &[(usize, Grain)], enough: u128) -> u128 {
    let mut seen: HashSet<u64, BuildHasherDefault<Hashed>> = HashSet::default();
    let state = QualityRandomState::with_seed(0);
    let (mut row, mut part) = (Vec::new(), Vec::new());
    for batch in batches {
        if seen.len() as u128 > enough {
            break;
        }
        row.clear();
        row.resize(batch.num_rows(), 0x9e37_79b9_7f4a_7c15u64);
        for &(column, grain) in columns {
            if !grain_hashes(batch.column(column), grain, &state, &mut part) {
                // A type that cannot be hashed: at most one tuple a row.
                return batches.iter().map(|b| b.num_rows() as u128).sum();
            }
            for (r, p) in row.iter_mut().zip(&part) {
                *r = (r.rotate_left(23) ^ p).wrapping_mul(0xff51_afd7_ed55_8ccd);
            }
        }
        seen.extend(row.iter().copied());
    }
    seen.len() as u128
}

/// Per row of `column`, a hash of its value at `grain` (one fixed hash for a null; distinct
/// values at the grain hash apart, up to 64-bit collisions); `false` when the type cannot be
/// hashed. Weeks (from Monday: 1970-01-01 was a Thursday, so days + 3), months and years of
/// anything but a table's dates, and prefixes of anything but its text, hash its values (they
/// bound them).
fn grain_hashes(column: &ArrayRef, grain: Grain, state: &QualityRandomState, out: &mut Vec<u64>) -> bool {
    const NULL: u64 = 0x6e75_6c6c_6e75_6c6c;
    out.clear();
    let mix = |x: u64| x.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
    match (grain, column.as_any().downcast_ref::<Date32Array>()) {
        (Grain::Week, Some(dates)) => out.extend(dates.iter().map(|d| d.map_or(NULL, |d| mix((i64::from(d) + 3).div_euclid(7) as u64)))),
        (Grain::Month | Grain::Year, Some(dates)) => out.extend(dates.iter().map(|d| {
            d.map_or(NULL, |d| {
                let (year, month) = civil_from_days(d);
                mix(if grain == Grain::Month { year * 12 + i64::from(month) } else { year } as u64)
            })
        })),
        (Grain::Prefix(k), _) if column.as_any().is::<StringArray>() => {
            let texts = column.as_any().downcast_ref::<StringArray>().expect("a text column");
            out.extend(texts.iter().map(|t| {
                t.map_or(NULL, |text| {
                    let end = text.char_indices().nth(usize::from(k)).map_or(text.len(), |(at, _)| at);
                    state.hash_one(&text[..end])
                })
            }));
        }
        _ => {
            out.resize(column.len(), 0);
            if create_hashes([column], state, out).is_err() {
                return false;
            }
            for (i, h) in out.iter_mut().enumerate() {
                if column.is_null(i) {
                    *h = NULL;
                }
            }
        }
    }
    true
}

/// A hasher for values that are hashes already.
#[derive(Default)]
struct Hashed(u64);

impl Hasher for Hashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The year and month (1–12) of a day counted from 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i32) -> (i64, u32) {
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

/// An upper bound of a column's distinct values, evaluated only where a grouping needs it.
#[derive(Clone, Debug)]
enum Distinct {
    /// At most this many, known without reading data.
    At(u128),
    /// The values of a registered table's column at a grain, read by one scan of the plan.
    Column(Arc<Values>, Scan, usize, Grain),
    /// The tuples one scan's rows hold in a few columns at their grains.
    Joint(Arc<Values>, Vec<(usize, Grain)>),
    Sum(Vec<Distinct>),
    Product(Vec<Distinct>),
    Min(Vec<Distinct>),
}

impl Distinct {
    fn eval(&self) -> u128 {
        match self {
            Distinct::At(n) => *n,
            Distinct::Column(values, _, column, grain) => values.distinct(*column, *grain),
            Distinct::Joint(values, columns) => values.joint(columns),
            Distinct::Sum(parts) => parts.iter().fold(0u128, |a, p| a.saturating_add(p.eval())),
            // Stops at zero or at the first product past any limit.
            Distinct::Product(parts) => {
                let mut out = 1u128;
                for p in parts {
                    out = out.saturating_mul(p.eval());
                    if out == 0 || out == u128::MAX {
                        break;
                    }
                }
                out
            }
            Distinct::Min(parts) => {
                // The data-free bounds first: a column is counted only when they do not decide.
                let known = parts.iter().filter_map(|p| if let Distinct::At(n) = p { Some(*n) } else { None }).min().unwrap_or(u128::MAX);
                parts.iter().filter(|p| !matches!(p, Distinct::At(_))).fold(known, |m, p| if m == 0 { 0 } else { m.min(p.eval()) })
            }
        }
    }

    /// At most `n` as well.
    fn at_most(self, n: u128) -> Distinct {
        match self {
            Distinct::At(m) => Distinct::At(m.min(n)),
            Distinct::Min(mut parts) => {
                parts.push(Distinct::At(n));
                Distinct::Min(parts)
            }
            other => Distinct::Min(vec![other, Distinct::At(n)]),
        }
    }

    /// One more value (a null).
    fn with_null(self) -> Distinct {
        match self {
            Distinct::At(n) => Distinct::At(n.saturating_add(1)),
            // A table column's count keeps a place for a null.
            column @ Distinct::Column(..) => column,
            Distinct::Min(parts) => Distinct::Min(parts.into_iter().map(Distinct::with_null).collect()),
            other => other.plus_one(),
        }
    }

    /// The same values, as if read by a scan of their own: never counted together with other
    /// columns of their scan (their rows are not the table's rows).
    fn alone(self) -> Distinct {
        match self {
            Distinct::Column(values, _, column, grain) => Distinct::Column(values, fresh_scan(), column, grain),
            Distinct::Min(parts) => Distinct::Min(parts.into_iter().map(Distinct::alone).collect()),
            Distinct::Sum(parts) => Distinct::Sum(parts.into_iter().map(Distinct::alone).collect()),
            Distinct::Product(parts) => Distinct::Product(parts.into_iter().map(Distinct::alone).collect()),
            other => other,
        }
    }

    /// One more, whatever the values (the "all" of a `CUBE` column).
    fn plus_one(self) -> Distinct {
        match self {
            Distinct::At(n) => Distinct::At(n.saturating_add(1)),
            other => Distinct::Sum(vec![other, Distinct::At(1)]),
        }
    }

    /// The same values counted at a coarser grain (months, years, prefixes): a function of the
    /// values never has more of them, so only the table columns they come from change grain.
    /// Safe whatever the argument: a table column reaches here only through casts that keep
    /// its values ([`keeps_values`]; others hide it in a `Product`, which keeps its grain), a
    /// time zone's cast included, and a grain of a column that is not dates (months, years) or
    /// text (prefixes) counts its values.
    fn regrain(&self, grain: Grain) -> Distinct {
        match self {
            Distinct::Column(values, scan, column, Grain::Value) => Distinct::Column(values.clone(), *scan, *column, grain),
            Distinct::Sum(parts) => Distinct::Sum(parts.iter().map(|p| p.regrain(grain)).collect()),
            Distinct::Min(parts) => Distinct::Min(parts.iter().map(|p| p.regrain(grain)).collect()),
            other => other.clone(),
        }
    }
}

/// A node's output: its rows and each column's distinct values.
struct Node {
    rows: Distinct,
    cols: Vec<Distinct>,
}

struct Bounds<'a> {
    tables: &'a BTreeMap<(String, String), Registered>,
    default_schema: &'a str,
    /// The next scan's number: columns of one scan come from the same rows.
    scans: std::cell::Cell<u32>,
}

/// One table scan of a plan (each visit of a scan node gets a number of its own, so two columns
/// with one number certainly come from the same rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Scan(u32);

/// A scan number no other column has (from the upper half, which plans' scans never reach).
fn fresh_scan() -> Scan {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1 << 31);
    Scan(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

impl Bounds<'_> {
    fn worst(&self, plan: &LogicalPlan) -> (u128, u128) {
        worst_case::unbounded(plan, self.tables, self.default_schema).unwrap_or((u128::MAX, u128::MAX))
    }

    fn node(&self, plan: &LogicalPlan) -> Node {
        let width = plan.schema().fields().len();
        let node = self.node_unchecked(plan);
        if node.cols.len() == width {
            return node;
        }
        // A shape not followed: every column as many values as rows.
        let rows = node.rows;
        let n = rows.eval();
        Node { rows: Distinct::At(n), cols: vec![Distinct::At(n); width] }
    }

    fn node_unchecked(&self, plan: &LogicalPlan) -> Node {
        let worst_rows = |plan: &LogicalPlan| Distinct::At(self.worst(plan).0);
        match plan {
            LogicalPlan::TableScan(scan) => {
                let rows = self.worst(plan).0;
                let resolved = scan.table_name.clone().resolve(CATALOG, self.default_schema);
                let Some(table) = self.tables.get(&(resolved.schema.to_string(), resolved.table.to_string())) else {
                    return Node { rows: Distinct::At(rows), cols: Vec::new() };
                };
                let width = scan.source.schema().fields().len();
                let indices: Vec<usize> = scan.projection.clone().unwrap_or_else(|| (0..width).collect());
                let id = Scan(self.scans.get());
                self.scans.set(id.0 + 1);
                let mut cols: Vec<Distinct> =
                    indices.iter().map(|&i| Distinct::Column(table.values.clone(), id, i, Grain::Value).at_most(rows)).collect();
                for filter in &scan.filters {
                    narrow(filter, &scan.projected_schema, &mut cols);
                }
                Node { rows: Distinct::At(rows), cols }
            }
            LogicalPlan::Projection(p) => {
                let input = self.node(&p.input);
                let cols = p.expr.iter().map(|e| expression(e, &p.input, &input).at_most(input.rows.eval_known())).collect();
                Node { rows: input.rows, cols }
            }
            LogicalPlan::Filter(f) => {
                let mut input = self.node(&f.input);
                narrow(&f.predicate, f.input.schema(), &mut input.cols);
                input
            }
            LogicalPlan::Sort(_) | LogicalPlan::Limit(_) | LogicalPlan::Repartition(_) | LogicalPlan::SubqueryAlias(_) => {
                let [input] = plan.inputs()[..] else { return Node { rows: worst_rows(plan), cols: Vec::new() } };
                self.node(input)
            }
            LogicalPlan::Distinct(DistinctPlan::All(input)) => {
                let input = self.node(input);
                let rows = Distinct::Min(vec![input.rows.clone(), keys_product(input.cols.clone())]);
                Node { rows, cols: input.cols }
            }
            LogicalPlan::Join(j) => {
                let (left, right) = (self.node(&j.left), self.node(&j.right));
                let rows = self.worst(plan).0;
                let nulls = |cols: Vec<Distinct>| cols.into_iter().map(Distinct::with_null).collect::<Vec<_>>();
                let cols: Vec<Distinct> = match j.join_type {
                    JoinType::Inner => [left.cols, right.cols].concat(),
                    JoinType::Left => [left.cols, nulls(right.cols)].concat(),
                    JoinType::Right => [nulls(left.cols), right.cols].concat(),
                    JoinType::Full => [nulls(left.cols), nulls(right.cols)].concat(),
                    JoinType::LeftSemi | JoinType::LeftAnti => left.cols,
                    JoinType::RightSemi | JoinType::RightAnti => right.cols,
                    // A mark is true, false or null.
                    JoinType::LeftMark => [left.cols, vec![Distinct::At(3)]].concat(),
                    JoinType::RightMark => [right.cols, vec![Distinct::At(3)]].concat(),
                };
                Node { rows: Distinct::At(rows), cols: cols.into_iter().map(|c| c.at_most(rows)).collect() }
            }
            LogicalPlan::Union(u) => {
                let parts: Vec<Node> = u.inputs.iter().map(|i| self.node(i)).collect();
                let width = plan.schema().fields().len();
                let cols = (0..width).map(|c| Distinct::Sum(parts.iter().filter_map(|p| p.cols.get(c).cloned()).collect())).collect();
                Node { rows: Distinct::Sum(parts.into_iter().map(|p| p.rows).collect()), cols }
            }
            // Never fewer than one (`worst_case.rs`): an aggregate above makes a row of none.
            LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_) => {
                let n = if let LogicalPlan::Values(v) = plan { (v.values.len() as u128).max(1) } else { 1 };
                Node { rows: Distinct::At(n), cols: vec![Distinct::At(n); plan.schema().fields().len()] }
            }
            LogicalPlan::Window(w) => {
                let input = self.node(&w.input);
                let n = input.rows.eval_known();
                let cols = input.cols.into_iter().chain(w.window_expr.iter().map(|_| Distinct::At(n))).collect();
                Node { rows: input.rows, cols }
            }
            LogicalPlan::Aggregate(a) => {
                let input = self.node(&a.input);
                let (_, per_person) = self.worst(&a.input);
                let of = |e: &Expr| expression(e, &a.input, &input);
                // Every input row lands in every grouping set.
                let sets = worst_case::grouping_sets(a);
                let (groups, group_cols): (Distinct, Vec<Distinct>) = match &a.group_expr[..] {
                    [Expr::GroupingSet(set)] => {
                        let groups = match set {
                            GroupingSet::GroupingSets(sets) => Distinct::Sum(sets.iter().map(|s| keys_product(s.iter().map(of).collect())).collect()),
                            GroupingSet::Rollup(exprs) => {
                                Distinct::Sum((0..=exprs.len()).map(|k| keys_product(exprs[..k].iter().map(of).collect())).collect())
                            }
                            // The sum over all subsets of the columns' products.
                            GroupingSet::Cube(exprs) => Distinct::Product(exprs.iter().map(|e| of(e).plus_one()).collect()),
                        };
                        // Rows of a set leave out the other sets' columns: `(day, null)` is not a
                        // pair of the table, so a column comes out alone.
                        let mut cols: Vec<Distinct> = set.distinct_expr().into_iter().map(|e| of(e).alone().with_null()).collect();
                        // The grouping id.
                        cols.push(Distinct::At(sets));
                        (groups, cols)
                    }
                    exprs => (keys_product(exprs.iter().map(of).collect()), exprs.iter().map(of).collect()),
                };
                // The input's rows never pass its worst case (`worst_case.rs`).
                let input_rows = if sets == 1 { input.rows.clone() } else { Distinct::Product(vec![input.rows.clone(), Distinct::At(sets)]) };
                let rows = Distinct::Min(vec![input_rows, groups]);
                let by_person = matches!(&a.group_expr[..], [Expr::Column(c)] if is_person_id(&a.input, c));
                let n = rows.eval_known();
                let value_cols = a.aggr_expr.iter().map(|e| {
                    let count = matches!(unalias(e), Expr::AggregateFunction(f) if f.func.name() == "count");
                    if count && by_person {
                        // From none to the most rows one person has, and the null person's
                        // group (an outer join's missing side) any count.
                        Distinct::At(per_person.saturating_add(2).min(n))
                    } else {
                        Distinct::At(n)
                    }
                });
                let cols = group_cols.into_iter().map(|c| c.at_most(n)).chain(value_cols).collect();
                Node { rows, cols }
            }
            // Nothing else runs in the workspace ([`crate::check`]).
            _ => Node { rows: worst_rows(plan), cols: Vec::new() },
        }
    }
}

impl Distinct {
    /// The bound known without counting any table's values (what caps a node's columns).
    fn eval_known(&self) -> u128 {
        match self {
            Distinct::At(n) => *n,
            Distinct::Column(..) | Distinct::Joint(..) => u128::MAX,
            Distinct::Sum(parts) => parts.iter().fold(0u128, |a, p| a.saturating_add(p.eval_known())),
            Distinct::Product(parts) => parts.iter().fold(1u128, |a, p| a.saturating_mul(p.eval_known())),
            Distinct::Min(parts) => parts.iter().map(Distinct::eval_known).min().unwrap_or(u128::MAX),
        }
    }
}

/// The most distinct tuples of grouping keys: the product of their bounds, or, where two or three
/// of them are columns of one scan (a day and a code of the same rows), the tuples those
/// columns hold together in the whole table times the other keys' bounds, whichever is smaller.
/// Columns of two scans of one table (a self-join) are never counted together: their pairs are
/// not the table's.
fn keys_product(keys: Vec<Distinct>) -> Distinct {
    // Per scan, its table's values and the keys that are its columns (key, column at its grain).
    type Columns = Vec<(usize, (usize, Grain))>;
    let mut by_scan: BTreeMap<Scan, (Arc<Values>, Columns)> = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        if let Some((values, scan, column)) = scan_column(k) {
            by_scan.entry(scan).or_insert_with(|| (values.clone(), Vec::new())).1.push((i, column));
        }
    }
    // Two or three columns of a scan: each set is one more whole-table count a refusal could
    // turn on, so sets stay small.
    let joint: Vec<_> = by_scan.into_values().filter(|(_, at)| (2..=3).contains(&at.len())).collect();
    if joint.is_empty() {
        return Distinct::Product(keys);
    }
    let mut used = vec![false; keys.len()];
    let mut factors = Vec::new();
    for (values, at) in joint {
        let mut columns: Vec<(usize, Grain)> = Vec::with_capacity(at.len());
        for &(i, column) in &at {
            used[i] = true;
            columns.push(column);
        }
        columns.sort_unstable();
        columns.dedup();
        factors.push(Distinct::Joint(values, columns));
    }
    factors.extend(keys.iter().zip(&used).filter(|(_, &u)| !u).map(|(k, _)| k.clone()));
    Distinct::Min(vec![Distinct::Product(keys), Distinct::Product(factors)])
}

/// The table column a key is, with or without caps known from the plan (`Min` of it and
/// constants): its table's values, the scan it comes from, and the column at its grain.
fn scan_column(key: &Distinct) -> Option<(&Arc<Values>, Scan, (usize, Grain))> {
    let column = match key {
        Distinct::Min(parts) => {
            let mut columns = parts.iter().filter(|p| !matches!(p, Distinct::At(_)));
            match (columns.next(), columns.next()) {
                (Some(c), None) => c,
                _ => return None,
            }
        }
        other => other,
    };
    match column {
        Distinct::Column(values, scan, column, grain) => Some((values, *scan, (*column, *grain))),
        _ => None,
    }
}

fn unalias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(Alias { expr, .. }) => unalias(expr),
        other => other,
    }
}

/// The distinct values of `e` over the rows of `plan` (whose columns are `node`'s).
fn expression(e: &Expr, plan: &LogicalPlan, node: &Node) -> Distinct {
    let rows = node.rows.eval_known();
    match e {
        Expr::Column(c) => match plan.schema().index_of_column(c) {
            Ok(i) => node.cols.get(i).cloned().unwrap_or(Distinct::At(rows)),
            Err(_) => Distinct::At(rows),
        },
        Expr::Literal(..) => Distinct::At(1),
        Expr::Alias(Alias { expr, .. }) => expression(expr, plan, node),
        // A cast has no more values than its input, but only one that keeps them as they are
        // may pass a table column on to be counted at a grain (a number read from a code and
        // written back as text is not that code's text: its prefixes are not the code's).
        Expr::Cast(Cast { expr, field }) => {
            let inner = expression(expr, plan, node);
            if keeps_values(expr, field.data_type(), plan) {
                inner
            } else {
                Distinct::Product(vec![inner])
            }
        }
        // A value or a null.
        Expr::TryCast(TryCast { expr, field }) => {
            let inner = expression(expr, plan, node);
            // Its nulls are not the table's (a value past a type's range): counted alone, never
            // with other columns of its scan.
            if keeps_values(expr, field.data_type(), plan) {
                inner.alone().with_null()
            } else {
                Distinct::Product(vec![inner]).plus_one()
            }
        }
        // The first characters of a table's text: its prefixes are counted.
        Expr::ScalarFunction(ScalarFunction { func, args }) if matches!(func.name(), "substr" | "left") => {
            let (x, length) = match (func.name(), &args[..]) {
                ("substr", [x, start, length]) if integer(start) == Some(1) => (x, integer(length)),
                ("left", [x, length]) => (x, integer(length)),
                _ => return product(e, plan, node),
            };
            let inner = expression(x, plan, node);
            // Up to four characters (a code's chapter or category, a year, a decade): each
            // length is one more whole-table count a refusal could turn on.
            match length.filter(|k| (0..=4).contains(k)).and_then(|k| u16::try_from(k).ok()) {
                Some(k) => inner.regrain(Grain::Prefix(k)),
                None => inner,
            }
        }
        Expr::ScalarFunction(ScalarFunction { func, args }) if matches!(func.name(), "date_trunc" | "date_part") => {
            let (
                Some(Expr::Literal(ScalarValue::Utf8(Some(unit)) | ScalarValue::Utf8View(Some(unit)) | ScalarValue::LargeUtf8(Some(unit)), _)),
                Some(x),
            ) = (args.first(), args.get(1))
            else {
                return product(e, plan, node);
            };
            let inner = expression(x, plan, node);
            // Calendar fields have few values only of dates and times (of an interval they are
            // its raw fields).
            let calendar =
                x.get_type(plan.schema().as_ref()).is_ok_and(|t| t.is_temporal() && !matches!(t, DataType::Interval(_) | DataType::Duration(_)));
            let unit = unit.to_ascii_lowercase();
            match (func.name(), unit.as_str()) {
                ("date_trunc", "week") => inner.regrain(Grain::Week),
                ("date_trunc", "month" | "quarter") => inner.regrain(Grain::Month),
                ("date_trunc", "year") | ("date_part", "year") => inner.regrain(Grain::Year),
                ("date_part", field) if calendar => match calendar_values(field) {
                    Some(n) => inner.at_most(n + 1),
                    None => inner,
                },
                _ => inner,
            }
        }
        // A CASE whose every result is a constant: one of them, or a null.
        Expr::Case(case)
            if case.when_then_expr.iter().all(|(_, then)| matches!(then.as_ref(), Expr::Literal(..)))
                && case.else_expr.as_deref().is_none_or(|x| matches!(x, Expr::Literal(..))) =>
        {
            Distinct::At(case.when_then_expr.len() as u128 + 1).at_most(rows)
        }
        _ => product(e, plan, node),
    }
}

/// A function of columns has no more values than the columns it reads together.
fn product(e: &Expr, plan: &LogicalPlan, node: &Node) -> Distinct {
    let rows = node.rows.eval_known();
    if e.is_volatile() || has_subquery(e) {
        return Distinct::At(rows);
    }
    let mut columns: Vec<_> = e.column_refs().into_iter().collect();
    columns.sort();
    Distinct::Product(columns.into_iter().map(|c| expression(&Expr::Column(c.clone()), plan, node)).collect()).at_most(rows)
}

fn has_subquery(e: &Expr) -> bool {
    e.exists(|x| Ok(matches!(x, Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) | Expr::OuterReferenceColumn(..)))).unwrap_or(true)
}

/// A constant integer (the constant folding has removed casts of constants).
fn integer(e: &Expr) -> Option<i64> {
    match e {
        Expr::Literal(ScalarValue::Int64(Some(n)), _) => Some(*n),
        Expr::Literal(ScalarValue::Int32(Some(n)), _) => Some(i64::from(*n)),
        Expr::Literal(ScalarValue::UInt64(Some(n)), _) => i64::try_from(*n).ok(),
        _ => None,
    }
}

/// Whether casting `e` to `to` keeps every value as it is: text to text, a date to a timestamp
/// without a time zone, or no change of type.
fn keeps_values(e: &Expr, to: &DataType, plan: &LogicalPlan) -> bool {
    let text = |t: &DataType| matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8);
    e.get_type(plan.schema().as_ref()).is_ok_and(|from| {
        from == *to
            || (text(&from) && text(to))
            || (matches!(from, DataType::Date32) && matches!(to, DataType::Date64 | DataType::Timestamp(_, None)))
    })
}

/// How many values a calendar field read by `date_part` takes.
fn calendar_values(field: &str) -> Option<u128> {
    Some(match field {
        "quarter" => 4,
        "month" => 12,
        "week" => 53,
        "day" => 31,
        "dow" | "isodow" => 7,
        "doy" => 366,
        "hour" => 24,
        _ => return None,
    })
}

/// Columns a filter pins: `col = constant` (either way round), `col IN (constants)`, and `OR`s of
/// those on one column.
fn narrow(predicate: &Expr, schema: &datafusion::common::DFSchema, cols: &mut [Distinct]) {
    for conjunct in split_conjunction(predicate) {
        if let Some((c, n)) = pinned(conjunct) {
            if let Ok(i) = schema.index_of_column(c) {
                if let Some(col) = cols.get_mut(i) {
                    *col = std::mem::replace(col, Distinct::At(0)).at_most(n);
                }
            }
        }
    }
}

/// The column a condition pins to a few constants, and how many.
fn pinned(condition: &Expr) -> Option<(&datafusion::common::Column, u128)> {
    match condition {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) => match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(..)) | (Expr::Literal(..), Expr::Column(c)) => Some((c, 1)),
            _ => None,
        },
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Or, right }) => {
            let ((a, n), (b, m)) = (pinned(left)?, pinned(right)?);
            (a == b).then_some((a, n + m))
        }
        Expr::InList(InList { expr, list, negated: false }) if list.iter().all(|x| matches!(x, Expr::Literal(..))) => match expr.as_ref() {
            Expr::Column(c) => Some((c, list.len() as u128)),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_from_days_reads_the_calendar() {
        assert_eq!(civil_from_days(0), (1970, 1));
        assert_eq!(civil_from_days(31), (1970, 2));
        assert_eq!(civil_from_days(-1), (1969, 12));
        // 2024-02-29 and 2024-03-01.
        assert_eq!(civil_from_days(19_782), (2024, 2));
        assert_eq!(civil_from_days(19_783), (2024, 3));
        // 1900-01-01.
        assert_eq!(civil_from_days(-25_567), (1900, 1));
    }

    #[test]
    fn tuples_are_counted_at_their_grains_with_nulls_as_values() {
        use datafusion::arrow::datatypes::{Field, Schema};
        let days: ArrayRef = Arc::new(Date32Array::from(vec![Some(19_782), Some(19_782), Some(19_783), None, None, Some(19_783)]));
        let codes: ArrayRef = Arc::new(StringArray::from(vec![Some("E11.9"), Some("E11.9"), Some("E11.2"), Some("E11.9"), None, Some("I10")]));
        let schema = Arc::new(Schema::new(vec![Field::new("d", DataType::Date32, true), Field::new("c", DataType::Utf8, true)]));
        let batch = RecordBatch::try_new(schema, vec![days, codes]).unwrap();
        let batches = [batch.clone(), batch];
        let count = |columns: &[(usize, Grain)]| count_tuples(&batches, columns, 1_000);
        // (d, c): the first two rows are one tuple; (null, E11.9) and (null, null) count.
        assert_eq!(count(&[(0, Grain::Value), (1, Grain::Value)]), 5);
        // Months and three-character categories: (Feb, E11), (Mar, E11), (null, E11), (null, null), (Mar, I10).
        assert_eq!(count(&[(0, Grain::Month), (1, Grain::Prefix(3))]), 5);
        // One column: its values and the null.
        assert_eq!(count(&[(1, Grain::Prefix(1))]), 3);
        // Counting stops past enough, at a batch's end.
        assert_eq!(count_tuples(&batches, &[(0, Grain::Value), (1, Grain::Value)], 2), 5);
        // With a place for an outer join's tuple of nulls, rounded up.
        let values = Values::new(batches.to_vec(), 1_000);
        assert_eq!(values.joint(&[(0, Grain::Value), (1, Grain::Value)]), 8);
    }

    #[test]
    fn dates_are_counted_by_week_month_and_year() {
        let dates: ArrayRef = Arc::new(Date32Array::from(vec![Some(19_782), Some(19_783), Some(19_784), None, Some(0)]));
        let count = |grain| count_distinct([&dates].into_iter(), grain, 1_000);
        assert_eq!(count(Grain::Value), 4);
        assert_eq!(count(Grain::Month), 3);
        assert_eq!(count(Grain::Year), 2);
        // 2024-02-29 to 2024-03-02 are one week (from Monday 26 February), 1970-01-01 another.
        assert_eq!(count(Grain::Week), 2);
        // Sunday 3 March and Monday 4 March 2024 are two.
        let turn: ArrayRef = Arc::new(Date32Array::from(vec![19_785, 19_786]));
        assert_eq!(count_distinct([&turn].into_iter(), Grain::Week, 1_000), 2);
        // Counting stops at the end of the batch that passes enough.
        let many: ArrayRef = Arc::new(Date32Array::from((0..5_000).collect::<Vec<i32>>()));
        assert_eq!(count_distinct([&many, &dates, &many].into_iter(), Grain::Value, 4_000), 5_000);
        assert_eq!(count_distinct([&dates, &many, &dates].into_iter(), Grain::Value, 4_000), 5_003);
        assert_eq!(count_distinct([&dates, &many].into_iter(), Grain::Value, 3), 4);
    }
}
