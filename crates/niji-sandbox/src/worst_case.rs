//! The most rows a query's joins can make, from the tables' sizes alone, so that whether a query
//! runs out of time does not depend on which rows exist.
//!
//! `SELECT count(*) FROM claim_lines a, claim_lines b, claim_lines c WHERE a.code = 'C'` makes no
//! rows or N² of them: it runs out of time exactly when a rare row exists. So before it runs,
//! every plan node's worst case is bounded ([`worst`]) from the registered tables' row counts and
//! the most rows one person has in each ([`TableSize`]), never from what the query's conditions
//! select, and a plan whose worst case passes [`crate::Limits::max_join_rows`] is refused
//! ([`crate::Refusal::JoinSize`]), whatever the data holds:
//! - a join on equal person ids (not where nulls match: the null ids of outer joins' missing
//!   sides would all meet) makes at most `rows(a) × most(b)` rows (each row of `a` meets its
//!   person's rows of `b`), and one person then has at most `most(a) × most(b)`;
//! - any other join (a cross join, a join on codes) makes at most `rows(a) × rows(b)`;
//! - a semi or anti join (`person_id IN (SELECT …)`) at most its probe side's rows, but tries
//!   every pair its keys meet against its filter, which is bounded like a join's rows;
//! - filters, projections, aggregates, windows, sorts and limits no more than their input; an
//!   aggregate grouped by a person id alone leaves one row a person.
//!
//! The sizes are rounded up to powers of two when the workspace opens: a refusal decided by the
//! exact most rows of one person would tell it (`LIMIT j` joined on persons is refused exactly
//! past 10⁹ / most).
//!
//! The plan read is DataFusion's optimized one, where `FROM a, b WHERE a.person_id =
//! b.person_id` is an equi-join and `IN (SELECT …)` a semi join. Slowness within the bound (a
//! join of 10⁷ rows or of none) is still seen by the researcher as time; a time limit that
//! the bound keeps out of reach no longer answers yes or no.

use std::collections::BTreeMap;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::NullEquality;
use datafusion::logical_expr::{Expr, GroupingSet, JoinType, LogicalPlan};

use crate::check::is_person_id;
use crate::{Refusal, Registered, SandboxError, CATALOG};

/// A registered table's size: what [`worst`] starts from.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TableSize {
    pub rows: u64,
    /// The most rows one person has.
    pub most_per_person: u64,
}

/// Refuses a plan (and every subquery in it) whose worst case passes `budget` rows at any node.
pub(crate) fn check(
    plan: &LogicalPlan,
    tables: &BTreeMap<(String, String), Registered>,
    default_schema: &str,
    budget: u64,
) -> Result<(), SandboxError> {
    let sizes = Sizes { tables, default_schema, budget: u128::from(budget) };
    let mut over = sizes.worst(plan).is_none();
    let _ = plan.apply_with_subqueries(|node| {
        // Subqueries left in expressions (not made joins) run too.
        let _ = node.apply_subqueries(|sub| {
            over |= sizes.worst(sub).is_none();
            Ok(TreeNodeRecursion::Continue)
        });
        Ok(if over { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    if over {
        return Err(SandboxError::NotAllowed(Refusal::JoinSize));
    }
    Ok(())
}

/// A plan's worst case without a budget: its rows and the most of them one person has; `None`
/// for a node the workspace does not run.
pub(crate) fn unbounded(plan: &LogicalPlan, tables: &BTreeMap<(String, String), Registered>, default_schema: &str) -> Option<(u128, u128)> {
    let sizes = Sizes { tables, default_schema, budget: u128::MAX };
    sizes.worst(plan).map(|w| (w.rows, w.per_person))
}

/// The tables a plan's scans read, as `(dataset, table)`, once per scan of it and of its
/// subqueries (a self-join twice), whatever the query's conditions select. From them and the
/// tables' committed sizes `niji-analysis` fixes when a run's answer comes.
pub(crate) fn scans(plan: &LogicalPlan, tables: &BTreeMap<(String, String), Registered>, default_schema: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let resolved = scan.table_name.clone().resolve(CATALOG, default_schema);
            if let Some(table) = tables.get(&(resolved.schema.to_string(), resolved.table.to_string())) {
                out.push((table.dataset.clone(), resolved.table.to_string()));
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

struct Sizes<'a> {
    tables: &'a BTreeMap<(String, String), Registered>,
    default_schema: &'a str,
    budget: u128,
}

/// A node's worst case: its rows, and the most of them one person has.
#[derive(Clone, Copy, Debug)]
struct Worst {
    rows: u128,
    per_person: u128,
}

impl Sizes<'_> {
    /// The worst case of `plan`, `None` past the budget (at it or at any node below).
    fn worst(&self, plan: &LogicalPlan) -> Option<Worst> {
        let w = match plan {
            LogicalPlan::TableScan(scan) => {
                let resolved = scan.table_name.clone().resolve(CATALOG, self.default_schema);
                let size = self.tables.get(&(resolved.schema.to_string(), resolved.table.to_string()))?.size;
                let rows = u128::from(size.rows).min(scan.fetch.map_or(u128::MAX, |f| f as u128));
                Worst { rows, per_person: u128::from(size.most_per_person).min(rows) }
            }
            LogicalPlan::EmptyRelation(e) => Worst { rows: u128::from(e.produce_one_row), per_person: 1 },
            LogicalPlan::Values(v) => Worst { rows: v.values.len() as u128, per_person: v.values.len() as u128 },
            LogicalPlan::Union(u) => {
                let parts = u.inputs.iter().map(|i| self.worst(i)).collect::<Option<Vec<Worst>>>()?;
                Worst { rows: parts.iter().map(|w| w.rows).sum(), per_person: parts.iter().map(|w| w.per_person).sum() }
            }
            LogicalPlan::Join(j) => {
                let (l, r) = (self.worst(&j.left)?, self.worst(&j.right)?);
                // Not where nulls match (`IS NOT DISTINCT FROM`): the null ids of an outer
                // join's missing side would all meet.
                let on_person =
                    j.null_equality == NullEquality::NullEqualsNothing && j.on.iter().any(|(a, b)| person(a, &j.left) && person(b, &j.right));
                let inner = if on_person {
                    Worst {
                        rows: l.rows.saturating_mul(r.per_person).min(r.rows.saturating_mul(l.per_person)),
                        per_person: l.per_person.saturating_mul(r.per_person),
                    }
                } else {
                    let rows = l.rows.saturating_mul(r.rows);
                    Worst { rows, per_person: rows }
                };
                // Every pair of rows the keys meet is tried against a filter, a semi join's too.
                if j.filter.is_some() && inner.rows > self.budget {
                    return None;
                }
                match j.join_type {
                    JoinType::Inner => inner,
                    JoinType::Left | JoinType::Right | JoinType::Full => Worst {
                        rows: inner.rows.saturating_add(l.rows).saturating_add(r.rows),
                        per_person: inner.per_person.saturating_add(l.per_person).saturating_add(r.per_person),
                    },
                    JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => l,
                    JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => r,
                }
            }
            // Grouped by a person id alone: one row a person.
            LogicalPlan::Aggregate(a) if matches!(&a.group_expr[..], [Expr::Column(c)] if is_person_id(&a.input, c)) => {
                let input = self.worst(&a.input)?;
                Worst { rows: input.rows, per_person: 1 }
            }
            // Every row lands in every grouping set.
            LogicalPlan::Aggregate(a) => {
                let input = self.worst(&a.input)?;
                let sets = grouping_sets(a);
                Worst { rows: input.rows.saturating_mul(sets), per_person: input.per_person.saturating_mul(sets) }
            }
            LogicalPlan::Limit(_)
            | LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Repartition(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Subquery(_)
            | LogicalPlan::Distinct(_)
            | LogicalPlan::Window(_) => {
                let [input] = plan.inputs()[..] else { return None };
                self.worst(input)?
            }
            // Nothing else runs in the workspace ([`crate::check`]).
            _ => return None,
        };
        // Never fewer than one: an aggregate without `GROUP BY` makes a row of none, and a zero
        // would hide every join above it.
        let w = Worst { rows: w.rows.max(1), per_person: w.per_person.max(1) };
        (w.rows <= self.budget).then_some(w)
    }
}

/// How many grouping sets an aggregate has (one without `GROUPING SETS`, `ROLLUP` or `CUBE`).
pub(crate) fn grouping_sets(a: &datafusion::logical_expr::Aggregate) -> u128 {
    match &a.group_expr[..] {
        [Expr::GroupingSet(GroupingSet::GroupingSets(sets))] => sets.len().max(1) as u128,
        [Expr::GroupingSet(GroupingSet::Rollup(exprs))] => exprs.len() as u128 + 1,
        [Expr::GroupingSet(GroupingSet::Cube(exprs))] => 1u128.checked_shl(exprs.len() as u32).unwrap_or(u128::MAX),
        _ => 1,
    }
}

/// Whether `e`, a join key over `side`, is a person id read from a table.
fn person(e: &Expr, side: &LogicalPlan) -> bool {
    matches!(e, Expr::Column(c) if is_person_id(side, c))
}
