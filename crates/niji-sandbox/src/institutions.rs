//! The institutions behind a cell, whether or not the permit grants the column naming them.
//!
//! NDB's rule (no cell counting fewer than three medical institutions) needs every row's
//! institution ([`crate::INSTITUTION_COLUMN`], the 医療機関コード) under the top aggregate. A
//! permit seldom grants it, and a query seldom keeps it through its subqueries, yet a cell of one
//! hospital's patients can be told from other columns (a rare procedure in a small area). So,
//! under rules that count institutions, the workspace registers the table the query sees (granted
//! columns only) and keeps a twin with the code as a last column, [`HIDDEN`]; [`carry`] rewrites
//! the query's plan before it is checked:
//! - each scan of such a table becomes a scan of its twin (the query was planned against the
//!   table without the column, so nothing it wrote, `*` included, can name it);
//! - each projection under the top aggregate passes on the hidden numbers of its input that it
//!   would drop (a subquery `SELECT person_id, sex FROM claims` keeps its rows' institutions), and
//!   a nested aggregate grouped by the granted code also groups by its number.
//!
//! Not through a `DISTINCT` (a column more would change its rows) nor a `UNION` (its branches must
//! match): above them the rows count no institution, and the check refuses reading the code there
//! ([`crate::Refusal::InstitutionsNotCountable`]). The rewrite adds columns only; the rows and
//! every value the query computes stay as they were.

use std::sync::Arc;

use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{Distinct, Expr, LogicalPlan, Projection, TableScan, TableScanBuilder};

use crate::{Registered, SandboxError, CATALOG};

/// The name of the hidden institution column of a table's twin (a query cannot name it: the
/// table it plans against has no such column).
pub(crate) const HIDDEN: &str = "__niji_institution";

/// `plan` with the scans of tables that have a hidden institution column reading their twins,
/// and the institution columns passed on by every projection (see the module's documentation).
pub(crate) fn carry(
    plan: &LogicalPlan,
    tables: &std::collections::BTreeMap<(String, String), Registered>,
    default_schema: &str,
) -> Result<LogicalPlan, SandboxError> {
    let mut carried = 0;
    rebuild(plan, Widen::Above, &Scans { tables, default_schema }, &mut carried)
        .map_err(|_| SandboxError::NotAllowed(crate::Refusal::InstitutionsNotCountable))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Widen {
    /// Above the top aggregate: a `DISTINCT` or `UNION` there reads its output, never a code.
    Above,
    Yes,
    /// Under a `DISTINCT` or a `UNION` below the top aggregate: no column may be added.
    No,
}

struct Scans<'a> {
    tables: &'a std::collections::BTreeMap<(String, String), Registered>,
    default_schema: &'a str,
}

impl Scans<'_> {
    /// The twin of a scanned table that has a hidden institution column.
    fn twin(&self, scan: &TableScan) -> Option<Arc<dyn datafusion::catalog::TableProvider>> {
        let resolved = scan.table_name.clone().resolve(CATALOG, self.default_schema);
        if &*resolved.catalog != CATALOG {
            return None;
        }
        self.tables.get(&(resolved.schema.to_string(), resolved.table.to_string())).and_then(|r| r.with_institutions.clone())
    }
}

fn rebuild(plan: &LogicalPlan, widen: Widen, scans: &Scans, carried: &mut usize) -> datafusion::common::Result<LogicalPlan> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            // Under a `DISTINCT` or a `UNION` the table the query planned: its rows name no
            // institution above, and the check refuses the query.
            let Some(twin) = scans.twin(scan).filter(|_| widen != Widen::No) else { return Ok(plan.clone()) };
            let hidden = twin.schema().fields().len() - 1;
            let projection = scan.projection.clone().map(|mut p| {
                p.push(hidden);
                p
            });
            TableScanBuilder::new(scan.table_name.clone(), provider_as_source(twin))
                .with_projection(projection)
                .with_filters(scan.filters.clone())
                .with_fetch(scan.fetch)
                .with_statistics_requests(scan.statistics_requests.clone())
                .build()
                .map(LogicalPlan::TableScan)
        }
        LogicalPlan::Projection(p) => {
            let input = rebuild(&p.input, widen, scans, carried)?;
            let mut exprs = p.expr.clone();
            // Above the top aggregate nothing is added: its output holds a code only as a key the
            // query chose, and a column more would be shown.
            if widen == Widen::Yes {
                for (i, column) in input.schema().columns().into_iter().enumerate() {
                    let named = !crate::check::counted_lineage(&input, i).is_empty();
                    let passed = exprs.iter().any(|e| matches!(e, Expr::Column(c) if *c == column));
                    if named && !passed {
                        // A name of its own at each level: two scans' columns never clash.
                        *carried += 1;
                        exprs.push(Expr::Column(column).alias(format!("{HIDDEN}_{carried}")));
                    }
                }
            }
            Projection::try_new(exprs, Arc::new(input)).map(LogicalPlan::Projection)
        }
        LogicalPlan::Distinct(Distinct::All(input)) if widen != Widen::Above => {
            let input = rebuild(input, Widen::No, scans, carried)?;
            Ok(LogicalPlan::Distinct(Distinct::All(Arc::new(input))))
        }
        LogicalPlan::Union(_) if widen != Widen::Above => with_inputs(plan, Widen::No, scans, carried),
        // Below the top aggregate (the first one down), a nested aggregate keeps the codes it
        // groups by.
        LogicalPlan::Aggregate(_) if widen == Widen::Above => with_inputs(plan, Widen::Yes, scans, carried),
        // A nested aggregate grouped by a granted code also groups by its scan's number (the two
        // go together, so its rows stay the same), which then goes on up.
        LogicalPlan::Aggregate(a) if widen == Widen::Yes && !a.group_expr.iter().any(|g| matches!(g, Expr::GroupingSet(_))) => {
            let input = rebuild(&a.input, widen, scans, carried)?;
            let mut group_expr = a.group_expr.clone();
            for g in &a.group_expr {
                let Expr::Column(c) = g else { continue };
                let Ok(k) = input.schema().index_of_column(c) else { continue };
                let code = crate::check::code_lineage(&input, k);
                if code.is_empty() {
                    continue;
                }
                let number = input.schema().columns().into_iter().enumerate().find(|(j, _)| crate::check::counted_lineage(&input, *j) == code);
                if let Some((_, column)) = number {
                    if !group_expr.iter().any(|e| matches!(e, Expr::Column(x) if *x == column)) {
                        group_expr.push(Expr::Column(column));
                    }
                }
            }
            datafusion::logical_expr::Aggregate::try_new(Arc::new(input), group_expr, a.aggr_expr.clone()).map(LogicalPlan::Aggregate)
        }
        _ => with_inputs(plan, widen, scans, carried),
    }
}

/// `plan` over its inputs rebuilt, its schema computed again from theirs.
fn with_inputs(plan: &LogicalPlan, widen: Widen, scans: &Scans, carried: &mut usize) -> datafusion::common::Result<LogicalPlan> {
    let inputs = plan.inputs().into_iter().map(|i| rebuild(i, widen, scans, carried)).collect::<datafusion::common::Result<Vec<_>>>()?;
    if inputs.iter().zip(plan.inputs()).all(|(new, old)| new == old) {
        return Ok(plan.clone());
    }
    plan.with_new_exprs(plan.expressions(), inputs)
}
