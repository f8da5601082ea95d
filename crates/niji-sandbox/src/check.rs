//! The checks of a statement and of its logical plan, and the persons-count rewrite.
//!
//! Order: the parsed statement must be a query ([`statement`]); the unoptimized plan passes this
//! crate's visitor (forbidden nodes, registered scans only, linkage), then DataFusion's
//! `SQLOptions` (no DDL, DML or statements) as a second net; then the output's shape (an aggregate
//! at the top, no person id in or behind its groups, allowed aggregate functions, no subquery above
//! the aggregate), then the persons rule below the aggregate, then what aggregates of values may
//! read ([`check_values`]; see [`Checker::check`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion, TreeNodeVisitor};
use datafusion::common::{Column, DataFusionError, ExprSchema, ScalarValue};
use datafusion::execution::context::SQLOptions;
use datafusion::functions_aggregate::expr_fn::count_distinct;
use datafusion::logical_expr::expr::{Case, Cast, TryCast};
use datafusion::logical_expr::{Aggregate, Distinct, Expr, ExprSchemable, JoinType, LogicalPlan, Operator, Projection};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use niji_review::PermitPolicy;

use crate::{Refusal, Registered, SandboxError, CATALOG, PERSON_ID};

/// Aggregate functions allowed at the top of an output: ones that summarize, not ones that return
/// row-level values (`array_agg`, `string_agg`, `first_value`, `last_value`, `nth_value`, `any_value`).
/// `min` and `max` are not among them: each is one person's value whatever the group's size (SDC
/// guidance, NDB's included, does not release them); nor are percentiles near the ends.
const ALLOWED_AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "median",
    "approx_distinct",
    "approx_median",
    "approx_percentile_cont",
    "percentile_cont",
    "stddev",
    "stddev_pop",
    "var",
    "var_pop",
    "corr",
    "covar_samp",
    "covar_pop",
    "regr_slope",
    "regr_intercept",
    "regr_r2",
    "regr_avgx",
    "regr_avgy",
    "regr_sxx",
    "regr_syy",
    "regr_sxy",
    "bool_and",
    "bool_or",
    "grouping",
];

/// Aggregates that may take a person id as argument (they count, never show, it).
const PERSON_AGGREGATES: &[&str] = &["count", "approx_distinct"];

/// Prefix of the persons-count columns added by the rewrite.
pub(crate) const PERSONS_PREFIX: &str = "__niji_persons_";

fn not(r: Refusal) -> SandboxError {
    SandboxError::NotAllowed(r)
}

/// The deepest chain of operators a query may write ([`operator_depth`]). The parser loops over
/// `a + b + c …` instead of recursing (its nesting limit does not see it), but DataFusion names,
/// plans and evaluates the chain by recursion: 300 levels overflowed a 2 MiB thread's stack in a
/// debug build and aborted the process. A list of codes is written `IN (…)` or with
/// `regexp_like`, not as 200 `OR`s.
pub(crate) const MAX_OPERATOR_DEPTH: usize = 128;

/// An upper bound of the deepest chain of operators in `sql`, read from its tokens (the
/// parser's own tokenizer and dialect, so that quotes and comments are read as the parser reads
/// them) before parsing: the operators (symbols, `AND`, `OR`, `NOT`, `IS`, `LIKE`, `ILIKE`, `IN`,
/// `BETWEEN`) since the last comma or clause keyword at each level of parentheses, summed over
/// the levels around. Text the tokenizer refuses counts 0: the parser refuses it too.
pub(crate) fn operator_depth(sql: &str, dialect: &dyn datafusion::sql::sqlparser::dialect::Dialect) -> usize {
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let Ok(tokens) = Tokenizer::new(dialect, sql).tokenize() else { return 0 };
    // The operators since the last reset at each open level of parentheses.
    let mut levels: Vec<usize> = vec![0];
    let mut deepest = 0;
    for token in &tokens {
        let level = levels.last_mut().expect("a level");
        match token {
            Token::LParen => levels.push(0),
            Token::RParen => {
                if levels.len() > 1 {
                    levels.pop();
                }
            }
            Token::Comma => *level = 0,
            Token::Word(w) if w.quote_style.is_none() => match w.value.to_ascii_uppercase().as_str() {
                "AND" | "OR" | "NOT" | "IS" | "LIKE" | "ILIKE" | "IN" | "BETWEEN" => *level += 1,
                "SELECT" | "FROM" | "WHERE" | "GROUP" | "HAVING" | "ORDER" | "WHEN" | "THEN" | "ELSE" | "END" | "ON" | "JOIN" | "UNION" | "LIMIT"
                | "OFFSET" | "FILTER" | "OVER" => *level = 0,
                _ => {}
            },
            Token::Word(_)
            | Token::Number(..)
            | Token::Char(_)
            | Token::Whitespace(_)
            | Token::Period
            | Token::SemiColon
            | Token::EOF
            | Token::LBracket
            | Token::RBracket
            | Token::LBrace
            | Token::RBrace
            | Token::Placeholder(_) => {}
            Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_) => {}
            // Anything else may join two expressions (a token not listed only makes the bound
            // larger).
            _ => *level += 1,
        }
        deepest = deepest.max(levels.iter().sum());
    }
    deepest
}

/// The parsed statement must be a query.
pub(crate) fn statement(s: &DfStatement) -> Result<(), SandboxError> {
    match s {
        DfStatement::Statement(st) => match st.as_ref() {
            SqlStatement::Query(_) => Ok(()),
            SqlStatement::Insert(_) | SqlStatement::Update(_) | SqlStatement::Delete(_) | SqlStatement::Merge(_) | SqlStatement::Truncate(_) => {
                Err(not(Refusal::Dml))
            }
            SqlStatement::Copy { .. } | SqlStatement::CopyIntoSnowflake { .. } | SqlStatement::Unload { .. } | SqlStatement::ExportData(_) => {
                Err(not(Refusal::Copy))
            }
            SqlStatement::Explain { .. } | SqlStatement::ExplainTable { .. } | SqlStatement::Analyze(_) => Err(not(Refusal::Explain)),
            SqlStatement::CreateTable(_)
            | SqlStatement::CreateView(_)
            | SqlStatement::CreateVirtualTable { .. }
            | SqlStatement::CreateIndex(_)
            | SqlStatement::CreateSchema { .. }
            | SqlStatement::CreateDatabase { .. }
            | SqlStatement::CreateFunction(_)
            | SqlStatement::CreateExtension(_)
            | SqlStatement::CreateMacro { .. }
            | SqlStatement::CreateStage { .. }
            | SqlStatement::CreateSecret { .. }
            | SqlStatement::AlterTable(_)
            | SqlStatement::AlterSchema(_)
            | SqlStatement::AlterView { .. }
            | SqlStatement::Drop { .. }
            | SqlStatement::DropFunction(_)
            | SqlStatement::RenameTable(_)
            | SqlStatement::AttachDatabase { .. }
            | SqlStatement::AttachDuckDBDatabase { .. } => Err(not(Refusal::Ddl)),
            _ => Err(not(Refusal::Statement)),
        },
        DfStatement::CreateExternalTable(_) => Err(not(Refusal::Ddl)),
        DfStatement::CopyTo(_) => Err(not(Refusal::Copy)),
        DfStatement::Explain(_) => Err(not(Refusal::Explain)),
        DfStatement::Reset(_) => Err(not(Refusal::Statement)),
    }
}

/// The policy side of a workspace.
pub(crate) struct Checker<'a> {
    pub tables: &'a BTreeMap<(String, String), Registered>,
    pub default_schema: &'a str,
    pub policy: &'a PermitPolicy,
    /// Whether the permit's output rules check single contributions: only then are magnitudes
    /// looked for.
    pub contributions: bool,
    /// Whether the permit's output rules count each cell's institutions (NDB's rule of three):
    /// only then are they counted, and must be countable.
    pub institutions: bool,
}

/// What the checks found: the person-id columns of the top aggregate's input that are counted.
pub(crate) struct Checked {
    pub counted: Vec<usize>,
    /// The top aggregate's aggregates that show values (magnitudes); none when the rules do not
    /// check contributions.
    pub magnitudes: Vec<Magnitude>,
    /// For each output column, the magnitudes it shows or is computed from: each as the index of
    /// its contributions among the computed ones, or `None` if they are not computed.
    pub magnitude_of: Vec<Vec<Option<usize>>>,
    /// How the persons can be counted: in order, unless an aggregate or window below the top
    /// aggregate regroups the rows (its output follows a hash table, not the persons' order, so the
    /// fast count would only fail and run again).
    pub count: PersonsCount,
    /// The distinct conditions on rows that the top aggregate's aggregates tell apart
    /// ([`conditions`]): the persons of each are counted beside the row's. The last
    /// `differences.len()` are the rows where exactly one of two others holds
    /// ([`differences_between_cells`]): `differences`, in order, name the two.
    pub conditions: Vec<Expr>,
    pub differences: Vec<(usize, usize)>,
    /// The persons sampled for differencing across outputs ([`crate::samples`]): of the rows
    /// (`None`) or of a condition's rows; and for each output column, its sample (an index
    /// into `sampled`): of its aggregate's value condition when it has one, else of the row.
    pub sampled: Vec<Option<usize>>,
    pub sample_of: Vec<Option<usize>>,
    /// For each output column, the conditions (indices into `conditions`) of the aggregates it
    /// shows or is computed from, with how each bears on its cells ([`Bearing`]).
    pub conditions_of: Vec<Vec<(usize, Bearing)>>,
    /// For each output column, whether it shows or is computed from an aggregate (a value to
    /// check, never a released key, even as text: `min(birth_month)` is one person's value).
    pub aggregated: Vec<bool>,
    /// Whether the top aggregate has groups (a row then stands for rows that exist).
    pub grouped: bool,
    /// The top aggregate's percentiles (medians included): the rows each reads are counted beside
    /// the persons ([`Percentile`]).
    pub percentiles: Vec<Percentile>,
    /// For each output column, the percentiles (indices into `percentiles`) it shows or is
    /// computed from.
    pub percentiles_of: Vec<Vec<usize>>,
    /// The columns of the top aggregate's input holding an institution's code, whose distinct
    /// values are counted for the row and each condition; none when the rules do not count
    /// institutions (or no table read has them).
    pub institutions: Vec<usize>,
}

impl Checker<'_> {
    pub(crate) fn check(&self, plan: &LogicalPlan) -> Result<Checked, SandboxError> {
        self.check_access(plan)?;
        // 4. The output's shape.
        for field in plan.schema().fields() {
            if field.name().eq_ignore_ascii_case(PERSON_ID) || is_person_type(field.data_type()) {
                return Err(SandboxError::PersonIdInOutput);
            }
        }
        let aggregate = top_aggregate(plan)?;
        check_aggregate(aggregate)?;
        // The conditions of each aggregate, the same ones counted once.
        let input = aggregate.input.schema();
        let mut conditions: Vec<Expr> = Vec::new();
        let of_aggregate: Vec<Vec<(usize, Bearing)>> = aggregate
            .aggr_expr
            .iter()
            .map(|e| {
                let mut ks: Vec<(usize, Bearing)> = self::conditions(e, input)
                    .into_iter()
                    .map(|(c, bearing)| match conditions.iter().position(|x| *x == c) {
                        Some(k) => (k, bearing),
                        None => {
                            conditions.push(c);
                            (conditions.len() - 1, bearing)
                        }
                    })
                    .collect();
                ks.sort_unstable();
                ks.dedup();
                ks
            })
            .collect();
        let mut of_aggregate = of_aggregate;
        let differences = differences_between_cells(&mut conditions, &mut of_aggregate);
        if conditions.len() > MAX_CONDITIONS {
            return Err(not(Refusal::TooManyConditions));
        }
        // Which rows are shown (HAVING) and in what order (ORDER BY) may only depend on aggregates
        // of all a group's rows: a row's presence or place is not a cell that can be suppressed.
        if selected_by(plan).iter().any(|&i| of_aggregate.get(i).is_some_and(|ks| !ks.is_empty())) {
            return Err(not(Refusal::HiddenAggregate));
        }
        // 5. The persons behind each output row must be countable, and so must its institutions
        // where the rules count them.
        let counted = persons_columns(&aggregate.input)?;
        let institutions = if self.institutions { institution_columns(&aggregate.input, &|s| self.names_institutions(s))? } else { Vec::new() };
        // 6. What aggregates of values read, and where the rows they count come from.
        check_values(aggregate)?;
        if !rows_follow_data(&aggregate.input) {
            return Err(not(Refusal::RowsMadeBelow));
        }
        let regrouped = aggregate.input.exists(|n| Ok(matches!(n, LogicalPlan::Aggregate(_) | LogicalPlan::Window(_)))).unwrap_or(true);
        let count = if regrouped { PersonsCount::Distinct } else { PersonsCount::InOrder };
        let magnitudes = if self.contributions { magnitudes(aggregate) } else { Vec::new() };
        // Each magnitude's place among those whose contributions are computed.
        let mut computed = 0;
        let computed_index: Vec<Option<usize>> = magnitudes
            .iter()
            .map(|m| {
                m.computed.as_ref().map(|_| {
                    computed += 1;
                    computed - 1
                })
            })
            .collect();
        let sources: Vec<BTreeSet<usize>> = (0..plan.schema().fields().len()).map(|c| aggregates_behind(plan, c)).collect();
        let magnitude_of = sources
            .iter()
            .map(|sources| magnitudes.iter().zip(&computed_index).filter(|(m, _)| sources.contains(&m.aggregate)).map(|(_, k)| *k).collect())
            .collect();
        let conditions_of = sources
            .iter()
            .map(|sources| {
                let mut ks: Vec<(usize, Bearing)> = sources.iter().flat_map(|&i| of_aggregate.get(i).cloned().unwrap_or_default()).collect();
                ks.sort_unstable();
                ks.dedup();
                ks
            })
            .collect();
        let aggregated: Vec<bool> = sources.iter().map(|s| !s.is_empty()).collect();
        let mut sampled: Vec<Option<usize>> = Vec::new();
        let sample_of = sources
            .iter()
            .map(|sources| {
                if sources.is_empty() {
                    return None;
                }
                let mut values: Vec<usize> = sources
                    .iter()
                    .filter_map(|&i| of_aggregate.get(i).and_then(|ks| ks.iter().find(|(_, b)| *b == Bearing::Value)).map(|(k, _)| *k))
                    .collect();
                values.dedup();
                let which = if values.len() == 1 && sources.len() == 1 { Some(values[0]) } else { None };
                Some(sampled.iter().position(|s| *s == which).unwrap_or_else(|| {
                    sampled.push(which);
                    sampled.len() - 1
                }))
            })
            .collect();
        let grouped = !aggregate.group_expr.is_empty();
        let mut percentiles = Vec::new();
        let mut percentile_at = BTreeMap::new();
        for (i, e) in aggregate.aggr_expr.iter().enumerate() {
            if let Some(p) = Percentile::of(e) {
                percentile_at.insert(i, percentiles.len());
                percentiles.push(p);
            }
        }
        let percentiles_of = sources.iter().map(|s| s.iter().filter_map(|i| percentile_at.get(i).copied()).collect()).collect();
        Ok(Checked {
            counted,
            magnitudes,
            magnitude_of,
            count,
            conditions,
            differences,
            sampled,
            sample_of,
            conditions_of,
            aggregated,
            grouped,
            percentiles,
            percentiles_of,
            institutions,
        })
    }

    /// Whether a scan reads a table whose rows name institutions (granted or hidden; a scan of
    /// the table the query planned against is one too: [`crate::institutions::carry`] left it).
    fn names_institutions(&self, scan: &datafusion::logical_expr::TableScan) -> bool {
        let resolved = scan.table_name.clone().resolve(CATALOG, self.default_schema);
        scan.source.schema().fields().iter().any(|f| Root::Institution.is(f))
            || self.tables.get(&(resolved.schema.to_string(), resolved.table.to_string())).is_some_and(|r| r.names_institutions)
    }

    /// Steps 1–3 of [`Checker::check`], all a query on dummy data must pass: forbidden nodes,
    /// registered scans only, DataFusion's `SQLOptions`, linkage.
    pub(crate) fn check_access(&self, plan: &LogicalPlan) -> Result<(), SandboxError> {
        // 1. Our visitor over the whole plan, subqueries included.
        let mut visitor = PolicyVisitor { checker: self, datasets: BTreeSet::new(), refusal: None };
        let visited = plan.visit_with_subqueries(&mut visitor);
        if let Some(r) = visitor.refusal {
            return Err(r);
        }
        visited.map_err(|_| SandboxError::Internal)?;
        // 2. DataFusion's own net.
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(plan)
            .map_err(|_| not(Refusal::Statement))?;
        // 3. Linkage: every pair of datasets touched must be allowed.
        let datasets: Vec<&String> = visitor.datasets.iter().collect();
        for (i, a) in datasets.iter().enumerate() {
            for b in &datasets[i + 1..] {
                if !self.policy.allows_linkage(a, b) {
                    return Err(not(Refusal::Linkage));
                }
            }
        }
        Ok(())
    }

    /// Rewrites the plan to carry persons-count columns (one per counted person column) from the
    /// top aggregate to the output, then the persons of each condition (one column per condition
    /// and counted person column), and in the fast mode the contributions of each magnitude that
    /// has them computed (one column per such magnitude and counted person column), then the rows
    /// each percentile reads (one column each), and in the fast mode the most of those rows any
    /// one person has (one column per percentile and counted person column), and last a sample of
    /// the persons of each sampled condition or of the row ([`crate::samples`], by the first
    /// counted person column), then the distinct institutions of the row and of each condition
    /// (one column per institution column each). Returns the plan and how many of each kind of
    /// hidden column it added.
    pub(crate) fn with_persons(
        &self,
        plan: &LogicalPlan,
        checked: &Checked,
        (count, samples): (PersonsCount, Samples),
    ) -> Result<(LogicalPlan, Added), SandboxError> {
        let computed: Vec<&(Expr, Option<Box<Expr>>)> =
            if count == PersonsCount::InOrder { checked.magnitudes.iter().filter_map(|m| m.computed.as_ref()).collect() } else { Vec::new() };
        let hidden = Hidden {
            counted: &checked.counted,
            conditions: &checked.conditions,
            differences: &checked.differences,
            sampled: if samples == Samples::Taken { &checked.sampled } else { &[] },
            magnitudes: &computed,
            percentiles: &checked.percentiles,
            institutions: &checked.institutions,
            count,
        };
        let added = Added { persons: checked.counted.len(), magnitudes: computed.len(), institutions: hidden.institutions().len() };
        Ok((rebuild(plan, &hidden)?, added))
    }
}

/// How many hidden columns of each kind a rewrite added ([`Checker::with_persons`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Added {
    /// Counted person columns: the persons of the row and of each condition come once per each.
    pub persons: usize,
    /// Magnitudes whose contributions were computed (once per counted person column each).
    pub magnitudes: usize,
    /// Institution columns: the institutions of the row and of each condition come once per each.
    pub institutions: usize,
}

struct PolicyVisitor<'a, 'b> {
    checker: &'a Checker<'b>,
    datasets: BTreeSet<String>,
    refusal: Option<SandboxError>,
}

impl PolicyVisitor<'_, '_> {
    fn refuse(&mut self, r: Refusal) -> datafusion::common::Result<TreeNodeRecursion> {
        self.refusal = Some(not(r));
        Ok(TreeNodeRecursion::Stop)
    }
}

impl<'n> TreeNodeVisitor<'n> for PolicyVisitor<'_, '_> {
    type Node = LogicalPlan;

    fn f_down(&mut self, node: &'n LogicalPlan) -> datafusion::common::Result<TreeNodeRecursion> {
        match node {
            LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) => self.refuse(Refusal::Explain),
            LogicalPlan::Copy(_) => self.refuse(Refusal::Copy),
            LogicalPlan::Dml(_) => self.refuse(Refusal::Dml),
            LogicalPlan::Ddl(_) => self.refuse(Refusal::Ddl),
            LogicalPlan::Statement(_) => self.refuse(Refusal::Statement),
            LogicalPlan::RecursiveQuery(_) => self.refuse(Refusal::RecursiveQuery),
            LogicalPlan::DescribeTable(_) | LogicalPlan::Extension(_) | LogicalPlan::Unnest(_) => self.refuse(Refusal::UnsupportedNode),
            LogicalPlan::TableScan(scan) => {
                let resolved = scan.table_name.clone().resolve(CATALOG, self.checker.default_schema);
                let key = (resolved.schema.to_string(), resolved.table.to_string());
                match self.checker.tables.get(&key) {
                    Some(reg) if &*resolved.catalog == CATALOG => {
                        self.datasets.insert(reg.dataset.clone());
                        Ok(TreeNodeRecursion::Continue)
                    }
                    _ => self.refuse(Refusal::UnregisteredTable),
                }
            }
            _ => Ok(TreeNodeRecursion::Continue),
        }
    }
}

/// Whether a type is, or contains, a person id's type.
pub(crate) fn is_person_type(t: &datafusion::arrow::datatypes::DataType) -> bool {
    t.to_string().contains(&format!("FixedSizeBinary({})", crate::data::PERSON_ID_BYTES))
}

fn unalias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => unalias(&a.expr),
        other => other,
    }
}

fn has_subquery(e: &Expr) -> bool {
    let mut found = false;
    let _ = e.apply(|x| {
        if matches!(x, Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) | Expr::SetComparison(_)) {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// The top aggregate of an output: an `Aggregate` under Projection, Filter, Sort, Limit, alias or
/// `DISTINCT`, none of which may hold a subquery.
pub(crate) fn top_aggregate(plan: &LogicalPlan) -> Result<&Aggregate, SandboxError> {
    match plan {
        LogicalPlan::Aggregate(a) => Ok(a),
        LogicalPlan::Projection(_) | LogicalPlan::Filter(_) | LogicalPlan::Sort(_) | LogicalPlan::Limit(_) | LogicalPlan::SubqueryAlias(_) => {
            if plan.expressions().iter().any(has_subquery) {
                return Err(not(Refusal::Subquery));
            }
            top_aggregate(plan.inputs()[0])
        }
        LogicalPlan::Distinct(Distinct::All(input)) => top_aggregate(input),
        LogicalPlan::Distinct(Distinct::On(_)) => Err(not(Refusal::DistinctOn)),
        LogicalPlan::Union(u) => {
            if u.inputs.iter().all(|i| top_aggregate(i).is_ok()) {
                Err(not(Refusal::Union))
            } else {
                Err(SandboxError::NotAggregate)
            }
        }
        _ => Err(SandboxError::NotAggregate),
    }
}

/// The top aggregate: not grouped by a person id, allowed functions only, no subquery.
fn check_aggregate(a: &Aggregate) -> Result<(), SandboxError> {
    let input = a.input.schema();
    let touches_person = |e: &Expr| {
        e.column_refs()
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(PERSON_ID) || input.field_from_column(c).map(|f| is_person_type(f.data_type())).unwrap_or(true))
    };
    for g in &a.group_expr {
        if has_subquery(g) {
            return Err(not(Refusal::Subquery));
        }
        if touches_person(g) {
            return Err(SandboxError::PersonIdInOutput);
        }
    }
    for e in &a.aggr_expr {
        if has_subquery(e) {
            return Err(not(Refusal::Subquery));
        }
        let mut bad = false;
        let _ = e.apply(|x| {
            match x {
                Expr::AggregateFunction(f) => {
                    let name = f.func.name().to_ascii_lowercase();
                    if !ALLOWED_AGGREGATES.contains(&name.as_str()) {
                        bad = true;
                    }
                    let person_arg = f.params.args.iter().any(&touches_person) || f.params.order_by.iter().any(|s| touches_person(&s.expr));
                    if person_arg && !PERSON_AGGREGATES.contains(&name.as_str()) {
                        bad = true;
                    }
                    // A percentile's fraction (the second argument, `WITHIN GROUP` or not): a
                    // constant within [0.1, 0.9] (0 and 1 are min and max).
                    if name.contains("percentile") {
                        let central =
                            |v: &ScalarValue| matches!(v.cast_to(&DataType::Float64), Ok(ScalarValue::Float64(Some(p))) if (0.1..=0.9).contains(&p));
                        if !matches!(f.params.args.get(1).map(unalias), Some(Expr::Literal(v, _)) if central(v)) {
                            bad = true;
                        }
                        // A t-digest of two centroids clamps its estimate to the maximum.
                        if name == "approx_percentile_cont" && f.params.args.len() > 2 {
                            bad = true;
                        }
                    }
                }
                Expr::WindowFunction(_) => bad = true,
                _ => {}
            }
            Ok(if bad { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
        });
        if bad {
            return Err(not(Refusal::AggregateFunction));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Values: what an aggregate of values may read.

/// The highest degree of a product of values inside an aggregate of values: `sum(x * y)` and a
/// variance's `sum(x * x)` are fine, `sum(x * x * x * …)` raises the largest value above the
/// rest (`power(sum(power(x, 32)), 1 / 32)` is about `max(x)`). Aggregates that square their
/// argument themselves (variances, correlations) take degree 1 only.
const MAX_DEGREE: u8 = 2;

/// Aggregates that square their arguments.
const SECOND_MOMENTS: &[&str] = &[
    "stddev",
    "stddev_pop",
    "var",
    "var_pop",
    "corr",
    "covar_samp",
    "covar_pop",
    "regr_slope",
    "regr_intercept",
    "regr_r2",
    "regr_sxx",
    "regr_syy",
    "regr_sxy",
];

/// The largest constant an aggregate of values may read (and the inverse of the smallest but
/// zero): beyond it, float rounding is a step function (`points + 2^60 - 2^60` counts in steps
/// of 256), and so is a 32-bit integer's wrapping.
const MAX_CONSTANT: f64 = 16_777_216.0;

/// The calendar fields `date_part` may read inside an aggregate of values: small numbers (not
/// `epoch`, whose seconds times a constant reach float rounding).
const CALENDAR_FIELDS: &[&str] = &["year", "isoyear", "quarter", "month", "week", "day", "dow", "isodow", "doy"];

/// The arguments of the top aggregate's aggregates of values (and of distinct counts) must be
/// plain values ([`degree`]): the persons count sees a few persons' rows only through a
/// condition (a `FILTER`, a `CASE` branch, a boolean, a null, a non-zero column; see
/// [`conditions`]). A step function makes the same indicator without one:
/// `sum(floor(age / 90) + 5) - 5 * count(*)` counts the persons of 90 and over, and
/// `sum(abs(x - t) + x - t)` adds only the values above `t`. A `DISTINCT` sum or mean is refused
/// too: a value only one person has weighs as much as one all have.
fn check_values(a: &Aggregate) -> Result<(), SandboxError> {
    let mut memo = Memo::new();
    for e in &a.aggr_expr {
        let Expr::AggregateFunction(f) = unalias(e) else { continue };
        let name = f.func.name().to_ascii_lowercase();
        let counts = COUNTING_AGGREGATES.contains(&name.as_str());
        // A count reads only whether its argument is null (a condition); a distinct count also
        // how many values there are, which a step function can make into a few persons' bit.
        let distinct_count = f.params.distinct || name == "approx_distinct";
        if counts && !distinct_count {
            continue;
        }
        if !counts && f.params.distinct {
            return Err(not(Refusal::ValueExpression));
        }
        let most = if SECOND_MOMENTS.contains(&name.as_str()) { 1 } else { MAX_DEGREE };
        let person = |x: &Expr| matches!(unalias(x), Expr::Column(c) if !column_origin(&a.input, c).is_empty());
        let read = f.params.args.iter().chain(f.params.order_by.iter().map(|s| &s.expr)).filter(|x| !person(x));
        for x in read {
            if degree(x, &a.input, &mut memo).is_none_or(|d| d > most) {
                return Err(not(Refusal::ValueExpression));
            }
        }
    }
    Ok(())
}

/// Plain-value degrees of columns already found, by plan node and column.
type Memo = std::collections::HashMap<(usize, usize), Option<u8>>;

/// The degree of `e`, an argument of the top aggregate evaluated over `input`'s rows, as a plain
/// value: a column ([`column_degree`]: 1), a constant (0), or built from plain values with `+`,
/// `−`, `×` and `÷` by a constant (into a float: integer and decimal division truncate), casts
/// that lose nothing ([`exact_cast`]), `CASE`, `coalesce` and booleans (whose parts are counted,
/// see [`parts`]). `None`: not a plain value.
fn degree(e: &Expr, input: &LogicalPlan, memo: &mut Memo) -> Option<u8> {
    let schema = input.schema();
    if e.get_type(schema).is_ok_and(|t| t == DataType::Boolean) {
        return Some(1);
    }
    let both = |l: Option<u8>, r: Option<u8>| Some(l?.max(r?));
    match e {
        Expr::Alias(a) => degree(&a.expr, input, memo),
        Expr::Literal(v, _) => small_constant(v).then_some(0),
        Expr::Column(c) => column_degree(input, schema.index_of_column(c).ok()?, memo),
        Expr::Negative(x) => degree(x, input, memo),
        // A constant written as a cast (`DATE '2024-12-31'`), held to the same bounds once cast
        // (`CAST('1152921504606846976' AS DOUBLE)` is 2^60).
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) if matches!(**expr, Expr::Literal(..)) => match &**expr {
            Expr::Literal(v, _) => v.cast_to(field.data_type()).ok().filter(small_constant).map(|_| 0),
            _ => None,
        },
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
            let from = expr.get_type(schema).ok()?;
            if field_of_column(e, input) {
                return Some(1);
            }
            exact_cast(&from, field.data_type()).then(|| degree(expr, input, memo)).flatten()
        }
        Expr::BinaryExpr(b) => {
            let (l, r) = (degree(&b.left, input, memo), degree(&b.right, input, memo));
            // Constants are written out, not computed (`1073741824.0 * 1073741824.0` is 2^60).
            // (Text is not added to numbers: DataFusion refuses `x + '1152921504606846976'`.)
            if l == Some(0) && r == Some(0) {
                return None;
            }
            match b.op {
                Operator::Plus | Operator::Minus => both(l, r),
                // A constant factor counts as a value's: `x * c1 * c2` scales like `x * x * x`.
                // Not in a narrow integer, which wraps (`age * 24000000` in 32 bits).
                Operator::Multiply => {
                    let narrow = e.get_type(schema).is_ok_and(|t| t.is_integer() && t.primitive_width().is_some_and(|w| w < 8));
                    Some(l?.max(1) + r?.max(1)).filter(|&d| d <= MAX_DEGREE && !narrow)
                }
                Operator::Divide => {
                    let nonzero = |v: &ScalarValue| matches!(v.cast_to(&DataType::Float64), Ok(ScalarValue::Float64(Some(x))) if x != 0.0);
                    let by_constant = matches!(unalias(&b.right), Expr::Literal(v, _) if small_constant(v) && nonzero(v));
                    let float = e.get_type(schema).is_ok_and(|t| t == DataType::Float64);
                    (by_constant && float).then_some(l?)
                }
                _ => None,
            }
        }
        Expr::Case(case) => {
            let mut d = Some(0);
            for (_, then) in &case.when_then_expr {
                d = both(d, degree(then, input, memo));
            }
            if let Some(otherwise) = &case.else_expr {
                d = both(d, degree(otherwise, input, memo));
            }
            d
        }
        // Each argument's rows are a part ([`parts`]).
        Expr::ScalarFunction(f) if f.name() == "coalesce" => f.args.iter().try_fold(0, |d, x| Some(d.max(degree(x, input, memo)?))),
        // A calendar field of a table's date (`date_part('year', admission_date)`): its steps
        // are the calendar's, not the query's.
        Expr::ScalarFunction(f) if f.name() == "date_part" => field_of_column(e, input).then_some(1),
        _ => None,
    }
}

/// Whether a constant is small enough that adding it cannot round a float in steps.
fn small_constant(v: &ScalarValue) -> bool {
    match v.cast_to(&DataType::Float64) {
        Ok(ScalarValue::Float64(Some(x))) => x == 0.0 || (x.is_finite() && x.abs() < MAX_CONSTANT && x.abs() > 1.0 / MAX_CONSTANT),
        Ok(ScalarValue::Float64(None)) => true,
        // Not a number (a date, a text): compared or subtracted, not rounded.
        _ => !v.data_type().is_numeric(),
    }
}

/// Whether `e` is a field read from a column as the table holds it: the column itself, a
/// number read from its text (`TRY_CAST(substr(birth_year_month, 1, 4) AS BIGINT)`), or a
/// `date_part` of it. Not of a computed value: `date_part('year', d + INTERVAL '37 days')` or
/// `substr(CAST(points + 30 AS VARCHAR), 1, 1)` would put a step where the query chooses.
fn field_of_column(e: &Expr, input: &LogicalPlan) -> bool {
    let e = unalias(e);
    if !read_field(e, input.schema()) {
        return false;
    }
    let stored = |x: &Expr| passed(input, x);
    let constant = |x: &Expr| matches!(unalias(x), Expr::Literal(..));
    match e {
        Expr::Cast(Cast { expr, .. }) | Expr::TryCast(TryCast { expr, .. }) => match unalias(expr) {
            Expr::ScalarFunction(f) if f.name() == "substr" => f.args.first().is_some_and(stored) && f.args.iter().skip(1).all(constant),
            other => stored(other),
        },
        Expr::ScalarFunction(f) if f.args.len() == 2 => {
            let calendar = matches!(unalias(&f.args[0]), Expr::Literal(ScalarValue::Utf8(Some(field)), _) if CALENDAR_FIELDS.contains(&field.to_ascii_lowercase().as_str()));
            calendar && stored(&f.args[1])
        }
        _ => false,
    }
}

/// Whether the rows under the top aggregate are the tables' own, kept, dropped or joined (not
/// through `IN (SELECT …)`, where only persons count): a `UNION` of chosen rows, or a `GROUP BY`
/// or `DISTINCT` on a computed key, would make how many rows a person has an indicator no
/// condition counts (`count(*) - count(DISTINCT person_id)` over `patients UNION ALL
/// (claim_lines WHERE code = 'C')` counts the C rows).
fn rows_follow_data(plan: &LogicalPlan) -> bool {
    let key = |input: &LogicalPlan, e: &Expr| passed(input, e) || matches!(unalias(e), Expr::Column(c) if !column_origin(input, c).is_empty());
    let here = match plan {
        LogicalPlan::Union(_) => whole_tables(plan),
        LogicalPlan::Aggregate(a) => a.group_expr.iter().all(|g| key(&a.input, g)),
        LogicalPlan::Distinct(Distinct::All(input)) => input.schema().columns().iter().all(|c| key(input, &Expr::Column(c.clone()))),
        _ => true,
    };
    here && plan.inputs().iter().all(|i| rows_follow_data(i))
}

/// Whether `plan` is a `UNION` of whole tables: each branch only projections and aliases over a
/// scan (a branch with a `WHERE`, a join or a `LIMIT` chooses rows that are never counted).
fn whole_tables(plan: &LogicalPlan) -> bool {
    fn whole_table(plan: &LogicalPlan) -> bool {
        match plan {
            LogicalPlan::TableScan(_) => true,
            LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_) => whole_table(plan.inputs()[0]),
            _ => false,
        }
    }
    matches!(plan, LogicalPlan::Union(u) if u.inputs.iter().all(|i| whole_table(i)))
}

/// Whether output column `idx` of `plan` is a table's column passed on unchanged.
fn stored_column(plan: &LogicalPlan, idx: usize) -> bool {
    match plan {
        LogicalPlan::TableScan(_) => true,
        LogicalPlan::Union(u) => whole_tables(plan) && u.inputs.iter().all(|i| stored_column(i, idx)),
        LogicalPlan::Projection(p) => p.expr.get(idx).is_some_and(|e| passed(&p.input, e)),
        LogicalPlan::Aggregate(a) if !a.group_expr.iter().any(|g| matches!(g, Expr::GroupingSet(_))) => {
            a.group_expr.get(idx).is_some_and(|g| passed(&a.input, g))
        }
        _ => passed_on(plan, idx).is_some_and(|(input, i)| stored_column(input, i)),
    }
}

/// Whether `e` over `input` is a table's column passed on unchanged.
pub(crate) fn passed(input: &LogicalPlan, e: &Expr) -> bool {
    matches!(unalias(e), Expr::Column(c) if input.schema().index_of_column(c).is_ok_and(|i| stored_column(input, i)))
}

/// Whether a cast from `from` to `to` keeps every value apart and whole (a boolean is 0 or 1,
/// and plain only where its sides are counted, see [`degree`]): to a 64-bit float, to an integer
/// at least as wide, to a decimal with at least the digits. Not to a 32-bit float (it rounds
/// from 2^24), not a narrowing one (an overflow fails: a bit of the data).
fn exact_cast(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    match (from, to) {
        _ if from == to => true,
        (Null | Boolean, _) => true,
        (f, Float64) => f.is_numeric(),
        (f, t) if f.is_integer() && t.is_integer() => crate::may_fail::integer_fits(f, t),
        (f, Decimal128(p, s) | Decimal256(p, s)) if f.is_integer() => i16::from(*p) - i16::from(*s) >= 20,
        (Decimal128(fp, fs) | Decimal256(fp, fs), Decimal128(tp, ts) | Decimal256(tp, ts)) => {
            ts >= fs && i16::from(*tp) - i16::from(*ts) >= i16::from(*fp) - i16::from(*fs)
        }
        _ => false,
    }
}

/// The degree of output column `idx` of `plan`, a column read by the top aggregate from below,
/// as a plain value: a table's column passed on unchanged, a field read from one
/// ([`field_of_column`]), a constant, or a per-person `count(*)`, `count`, `sum`, `avg`,
/// `median`, `min` or `max` of a table's column (1). Nothing computed: `+ 5` or a `CASE` below
/// the aggregate hides the rows it sets apart from the non-zero and null checks at the top
/// (`sum(rare_cost + 1) - count(*)`). Not a window's own column (over a join not on the person
/// it mixes persons). A `UNION` only of whole tables ([`whole_tables`]): a branch's `WHERE` is
/// not counted.
fn column_degree(plan: &LogicalPlan, idx: usize, memo: &mut Memo) -> Option<u8> {
    if let Some(&d) = memo.get(&(addr(plan), idx)) {
        return d;
    }
    let plain = |input: &LogicalPlan, e: &Expr, memo: &mut Memo| match unalias(e) {
        Expr::Column(c) => column_degree(input, input.schema().index_of_column(c).ok()?, memo),
        // A constant, taken for a value: a divisor or a factor must be a literal of the top.
        Expr::Literal(v, _) if small_constant(v) => Some(1),
        other => field_of_column(other, input).then_some(1),
    };
    let d = match plan {
        LogicalPlan::TableScan(_) => Some(1),
        LogicalPlan::Projection(p) => p.expr.get(idx).and_then(|e| plain(&p.input, e, memo)),
        LogicalPlan::Aggregate(a) => {
            if a.group_expr.iter().any(|g| matches!(g, Expr::GroupingSet(_))) {
                None
            } else if idx < a.group_expr.len() {
                plain(&a.input, &a.group_expr[idx], memo)
            } else {
                a.aggr_expr.get(idx - a.group_expr.len()).and_then(|e| match unalias(e) {
                    Expr::AggregateFunction(f)
                        if f.params.filter.is_none()
                            && matches!(f.func.name().to_ascii_lowercase().as_str(), "count" | "sum" | "avg" | "mean" | "median" | "min" | "max") =>
                    {
                        // `count(*)` is `count(1)`: a constant argument of a count is fine.
                        let count = f.func.name().eq_ignore_ascii_case("count");
                        let arguments = f.params.args.iter().all(|x| (count && matches!(unalias(x), Expr::Literal(..))) || passed(&a.input, x));
                        ((count || !f.params.distinct) && arguments).then_some(1)
                    }
                    _ => None,
                })
            }
        }
        // Whole tables one after the other: no branch chooses its rows.
        LogicalPlan::Union(u) if whole_tables(plan) => u.inputs.iter().try_fold(0, |d, i| Some(d.max(column_degree(i, idx, memo)?))),
        _ => passed_on(plan, idx).and_then(|(input, i)| column_degree(input, i, memo)),
    };
    memo.insert((addr(plan), idx), d);
    d
}

// ---------------------------------------------------------------------------------------------
// Persons: lineage of person-id columns back to table scans.

type Scans = BTreeSet<usize>;

fn addr(plan: &LogicalPlan) -> usize {
    plan as *const LogicalPlan as usize
}

/// The table scans whose `person_id` flows unchanged into output column `idx` of `plan` (empty when
/// the column is anything else, or when some rows of it may hold a value that is not a scanned
/// person id).
fn origin(plan: &LogicalPlan, idx: usize) -> Scans {
    lineage(plan, idx, Root::Person)
}

/// The table scans whose hidden institution number ([`crate::institutions::HIDDEN`]) flows
/// unchanged into output column `idx` of `plan`.
pub(crate) fn counted_lineage(plan: &LogicalPlan, idx: usize) -> Scans {
    lineage(plan, idx, Root::Counted)
}

/// The table scans whose institution code, as granted ([`crate::INSTITUTION_COLUMN`]), flows
/// unchanged into output column `idx` of `plan`.
pub(crate) fn code_lineage(plan: &LogicalPlan, idx: usize) -> Scans {
    let all = lineage(plan, idx, Root::Institution);
    if all.is_empty() || !lineage(plan, idx, Root::Counted).is_empty() {
        Scans::new()
    } else {
        all
    }
}

/// What a lineage is traced back to: a table's column of this kind.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Root {
    /// `person_id`.
    Person,
    /// [`crate::INSTITUTION_COLUMN`] as granted, or its hidden number: a medical institution.
    Institution,
    /// The hidden number of an institution ([`crate::institutions::HIDDEN`]), which is counted.
    Counted,
}

impl Root {
    fn is(self, f: &datafusion::arrow::datatypes::Field) -> bool {
        match self {
            Root::Person => f.name() == PERSON_ID && is_person_type(f.data_type()),
            Root::Institution => f.name() == crate::INSTITUTION_COLUMN || f.name() == crate::institutions::HIDDEN,
            Root::Counted => f.name() == crate::institutions::HIDDEN,
        }
    }
}

/// The table scans whose column of kind `root` flows unchanged into output column `idx` of
/// `plan` (empty when the column is anything else, or when some rows of it may hold a value that
/// is not such a column's).
fn lineage(plan: &LogicalPlan, idx: usize, root: Root) -> Scans {
    let of_column = |input: &LogicalPlan, c: &Column| match input.schema().index_of_column(c) {
        Ok(i) => lineage(input, i, root),
        Err(_) => Scans::new(),
    };
    match plan {
        LogicalPlan::TableScan(s) => match s.projected_schema.fields().get(idx) {
            Some(f) if root.is(f) => Scans::from([addr(plan)]),
            _ => Scans::new(),
        },
        LogicalPlan::Projection(p) => match p.expr.get(idx).map(unalias) {
            Some(Expr::Column(c)) => of_column(&p.input, c),
            _ => Scans::new(),
        },
        LogicalPlan::Aggregate(a) => {
            if a.group_expr.iter().any(|g| matches!(g, Expr::GroupingSet(_))) {
                return Scans::new();
            }
            match a.group_expr.get(idx).map(unalias) {
                Some(Expr::Column(c)) => of_column(&a.input, c),
                _ => Scans::new(),
            }
        }
        LogicalPlan::Union(u) => {
            let mut all = Scans::new();
            for input in &u.inputs {
                let o = lineage(input, idx, root);
                if o.is_empty() {
                    return Scans::new();
                }
                all.extend(o);
            }
            all
        }
        _ => passed_on(plan, idx).map(|(input, i)| lineage(input, i, root)).unwrap_or_default(),
    }
}

/// The input column that output column `idx` of `plan` passes on unchanged: through the nodes
/// that keep, drop or order rows, a join's sides, a window's input columns. `None` for other
/// nodes (and a window's or a mark join's own columns).
fn passed_on(plan: &LogicalPlan, idx: usize) -> Option<(&LogicalPlan, usize)> {
    match plan {
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Repartition(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Distinct(Distinct::All(_)) => Some((plan.inputs()[0], idx)),
        LogicalPlan::Join(j) => {
            let left = j.left.schema().fields().len();
            match j.join_type {
                JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full if idx < left => Some((&j.left, idx)),
                JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full => Some((&j.right, idx - left)),
                JoinType::LeftSemi | JoinType::LeftAnti => Some((&j.left, idx)),
                JoinType::RightSemi | JoinType::RightAnti => Some((&j.right, idx)),
                _ => None,
            }
        }
        LogicalPlan::Window(w) if idx < w.input.schema().fields().len() => Some((&w.input, idx)),
        _ => None,
    }
}

/// Whether column `c` of `plan` is a person id read unchanged from a table.
pub(crate) fn is_person_id(plan: &LogicalPlan, c: &Column) -> bool {
    !column_origin(plan, c).is_empty()
}

fn column_origin(input: &LogicalPlan, c: &Column) -> Scans {
    match input.schema().index_of_column(c) {
        Ok(i) => origin(input, i),
        Err(_) => Scans::new(),
    }
}

/// Every table scan under `plan` through its inputs (not through expression subqueries).
fn scans(plan: &LogicalPlan, out: &mut Scans) {
    if let LogicalPlan::TableScan(_) = plan {
        out.insert(addr(plan));
    }
    for input in plan.inputs() {
        scans(input, out);
    }
}

/// The columns of `plan` holding scanned person ids, which together must cover every scan under it;
/// the subqueries and windows under it must keep rows tied to persons.
fn persons_columns(plan: &LogicalPlan) -> Result<Vec<usize>, SandboxError> {
    let mut all = Scans::new();
    scans(plan, &mut all);
    let mut covered = Scans::new();
    let mut counted = Vec::new();
    for i in 0..plan.schema().fields().len() {
        let o = origin(plan, i);
        if !o.is_empty() {
            counted.push(i);
            covered.extend(o);
        }
    }
    if !all.is_subset(&covered) {
        return Err(not(Refusal::PersonsNotCountable));
    }
    check_below(plan)?;
    Ok(counted)
}

/// The columns of `plan` holding an institution's code read unchanged from a table
/// ([`crate::INSTITUTION_COLUMN`], granted or hidden; [`crate::institutions::carry`] carried
/// them through projections): a cell's institutions are counted from them (NDB's rule of three;
/// after a join each side's, the fewest kept).
///
/// Where a scan's codes cannot reach the aggregate (under a nested aggregate, a `DISTINCT`, a
/// `UNION`, on a semi join's other side, in an `IN`/`EXISTS` subquery), the rows it gives are
/// not counted, so nothing there may read a code: `person_id IN (SELECT person_id FROM claims
/// WHERE facility_code = …)`, or the same under a nested aggregate or in a window, would count
/// one facility's patients by the institutions of all their other rows. Refused
/// ([`Refusal::InstitutionsNotCountable`]). Not covered: such a place choosing persons by another
/// column that only one institution has (a rare code): the cell's institutions are then those of
/// the rows counted.
fn institution_columns(plan: &LogicalPlan, naming: &dyn Fn(&datafusion::logical_expr::TableScan) -> bool) -> Result<Vec<usize>, SandboxError> {
    let mut covered = Scans::new();
    let mut columns = Vec::new();
    for i in 0..plan.schema().fields().len() {
        let o = lineage(plan, i, Root::Counted);
        if !o.is_empty() {
            columns.push(i);
            covered.extend(o);
        }
    }
    // The scans of tables naming institutions whose codes do not reach the aggregate (under a
    // nested aggregate, a `DISTINCT`, a `UNION`, a semi join's other side).
    fn uncovered(plan: &LogicalPlan, naming: &dyn Fn(&datafusion::logical_expr::TableScan) -> bool, covered: &Scans) -> bool {
        matches!(plan, LogicalPlan::TableScan(s) if naming(s) && !covered.contains(&addr(plan)))
            || plan.inputs().iter().any(|i| uncovered(i, naming, covered))
    }
    // No node may read an institution's code where the rows it chooses or makes are not the
    // ones whose codes are counted: above an uncovered scan, in a subquery, in a window.
    let mut refused = false;
    plan.apply(|n| {
        refused |= reads_institutions(n) && (matches!(n, LogicalPlan::Window(_)) || uncovered(n, naming, &covered));
        Ok(if refused { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    })
    .map_err(|_| SandboxError::Internal)?;
    plan.apply_with_subqueries(|n| {
        if let LogicalPlan::Subquery(s) = n {
            refused |= s.subquery.exists(|inner| Ok(reads_institutions(inner))).unwrap_or(true);
        }
        Ok(if refused { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    })
    .map_err(|_| SandboxError::Internal)?;
    if refused {
        return Err(not(Refusal::InstitutionsNotCountable));
    }
    Ok(columns)
}

/// Whether a node's own expressions read an institution's code (a column whose lineage is one,
/// or a correlated reference to one by name); passing one on unchanged in a projection is no
/// reading.
fn reads_institutions(node: &LogicalPlan) -> bool {
    let inputs = node.inputs();
    let reads = |e: &Expr| {
        e.exists(|x| {
            Ok(match x {
                Expr::Column(c) => inputs.iter().any(|i| i.schema().index_of_column(c).is_ok_and(|k| !lineage(i, k, Root::Institution).is_empty())),
                Expr::OuterReferenceColumn(_, c) => c.name == crate::INSTITUTION_COLUMN || c.name.starts_with(crate::institutions::HIDDEN),
                _ => false,
            })
        })
        .unwrap_or(true)
    };
    match node {
        LogicalPlan::Projection(p) => p.expr.iter().any(|e| !matches!(unalias(e), Expr::Column(_)) && reads(e)),
        _ => node.expressions().iter().any(reads),
    }
}

/// Under the top aggregate: subqueries only as `person IN (SELECT person …)` (whose plan obeys the
/// persons rule), windows only partitioned by person, and a person id's value never made into
/// another value ([`person_value_escapes`]).
fn check_below(plan: &LogicalPlan) -> Result<(), SandboxError> {
    let inputs = plan.inputs();
    let is_person = |c: &Column| {
        c.name.eq_ignore_ascii_case(PERSON_ID)
            || inputs.iter().any(|i| i.schema().field_from_column(c).is_ok_and(|f| is_person_type(f.data_type())))
            // A column of no input (an outer reference) is taken for one.
            || !inputs.iter().any(|i| i.schema().has_column(c))
    };
    if plan.expressions().iter().any(|e| person_value_escapes(e, &is_person)) {
        return Err(SandboxError::PersonIdInOutput);
    }
    if let LogicalPlan::Window(w) = plan {
        // Over a join, a partition of one person holds other persons' rows (`max(a.points)
        // OVER (PARTITION BY b.person_id)` on a cross join is everyone's maximum).
        if w.input.exists(|n| Ok(matches!(n, LogicalPlan::Join(_)))).unwrap_or(true) {
            return Err(not(Refusal::Window));
        }
        for e in &w.window_expr {
            match unalias(e) {
                Expr::WindowFunction(f) => {
                    let by_person =
                        f.params.partition_by.iter().any(|p| matches!(unalias(p), Expr::Column(c) if !column_origin(&w.input, c).is_empty()));
                    if !by_person {
                        return Err(not(Refusal::Window));
                    }
                }
                _ => return Err(not(Refusal::Window)),
            }
        }
    }
    let mut result = Ok(());
    let _ = plan.apply_expressions(|e| {
        e.apply(|x| {
            let r = match x {
                Expr::InSubquery(s) => match unalias(&s.expr) {
                    Expr::Column(c) if inputs.iter().any(|i| !column_origin(i, c).is_empty()) => {
                        let sub = &s.subquery.subquery;
                        if sub.schema().fields().len() == 1 && !origin(sub, 0).is_empty() {
                            persons_columns(sub).map(|_| ())
                        } else {
                            Err(not(Refusal::Subquery))
                        }
                    }
                    _ => Err(not(Refusal::Subquery)),
                },
                Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::SetComparison(_) => Err(not(Refusal::Subquery)),
                _ => Ok(()),
            };
            if let Err(e) = r {
                result = Err(e);
                return Ok(TreeNodeRecursion::Stop);
            }
            // A subquery's own expressions are checked by `persons_columns` of its plan.
            Ok(if matches!(x, Expr::InSubquery(_)) { TreeNodeRecursion::Jump } else { TreeNodeRecursion::Continue })
        })
    });
    result?;
    for input in inputs {
        check_below(input)?;
    }
    Ok(())
}

/// Whether `e` (an expression of a node under the top aggregate) makes a person id's value into
/// another value that could be aggregated as content: `max(encode(person_id, 'hex'))` over a
/// subquery would otherwise output one person's id, counted as everyone. A person column may be
/// the whole expression (a projected or grouped column, a join or sort key), be compared
/// (`=`, `<`, `IN`, `IS NULL`; through casts, which the comparison's types may need), be counted
/// (`count`), or be a window's partition or order key; nothing else.
fn person_value_escapes(e: &Expr, is_person: &dyn Fn(&Column) -> bool) -> bool {
    fn compared(e: &Expr, is_person: &dyn Fn(&Column) -> bool) -> bool {
        match e {
            Expr::Column(_) => false,
            Expr::Cast(c) => compared(&c.expr, is_person),
            Expr::TryCast(c) => compared(&c.expr, is_person),
            Expr::Alias(a) => compared(&a.expr, is_person),
            other => within(other, is_person),
        }
    }
    fn within(e: &Expr, is_person: &dyn Fn(&Column) -> bool) -> bool {
        match e {
            Expr::Column(c) => is_person(c),
            Expr::Alias(a) => within(&a.expr, is_person),
            Expr::BinaryExpr(b)
                if matches!(
                    b.op,
                    Operator::Eq
                        | Operator::NotEq
                        | Operator::Lt
                        | Operator::LtEq
                        | Operator::Gt
                        | Operator::GtEq
                        | Operator::IsDistinctFrom
                        | Operator::IsNotDistinctFrom
                ) =>
            {
                compared(&b.left, is_person) || compared(&b.right, is_person)
            }
            Expr::InList(l) => compared(&l.expr, is_person) || l.list.iter().any(|x| compared(x, is_person)),
            Expr::InSubquery(s) => compared(&s.expr, is_person),
            Expr::IsNull(x) | Expr::IsNotNull(x) => compared(x, is_person),
            Expr::AggregateFunction(f) if PERSON_AGGREGATES.contains(&f.func.name().to_ascii_lowercase().as_str()) => {
                f.params.args.iter().any(|a| compared(a, is_person))
                    || f.params.filter.as_deref().is_some_and(|x| within(x, is_person))
                    || f.params.order_by.iter().any(|s| within(&s.expr, is_person))
            }
            Expr::WindowFunction(w) => {
                w.params.args.iter().any(|a| within(a, is_person))
                    || w.params.partition_by.iter().any(|p| compared(p, is_person))
                    || w.params.order_by.iter().any(|s| compared(&s.expr, is_person))
                    || w.params.filter.as_deref().is_some_and(|x| within(x, is_person))
            }
            other => {
                let mut escapes = false;
                let _ = other.apply_children(|child| {
                    escapes = within(child, is_person);
                    Ok(if escapes { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
                });
                escapes
            }
        }
    }
    match e {
        // The whole expression: a column passed on, grouped by, sorted or joined on (a sort's
        // expressions come as the bare keys).
        Expr::Column(_) => false,
        Expr::Alias(a) => person_value_escapes(&a.expr, is_person),
        other => within(other, is_person),
    }
}

/// How the persons behind an output row are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PersonsCount {
    /// Over ascending ids ([`crate::persons`]); fails if the order does not hold.
    InOrder,
    /// `count(DISTINCT person)`: exact whatever the order, a hash set per group.
    Distinct,
}

/// An aggregate of the top aggregate that shows values, not counts (a magnitude): `aggregate` is
/// its index among the aggregate expressions. Its contributions are computed (`computed`: the
/// value and the aggregate's filter) for a plain `sum(x)` or `avg(x)`; for the others (`min`,
/// `max`, `median`, percentiles, `DISTINCT` sums…) they stay unknown, which rules that need them
/// cannot pass.
#[derive(Clone, Debug)]
pub(crate) struct Magnitude {
    aggregate: usize,
    computed: Option<(Expr, Option<Box<Expr>>)>,
}

/// Aggregates that count (persons, rows, groups) or give booleans: not magnitudes.
const COUNTING_AGGREGATES: &[&str] = &["count", "approx_distinct", "grouping", "regr_count", "bool_and", "bool_or"];

/// The top aggregate's magnitudes.
fn magnitudes(a: &Aggregate) -> Vec<Magnitude> {
    a.aggr_expr
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match unalias(e) {
            Expr::AggregateFunction(f) => {
                let name = f.func.name().to_ascii_lowercase();
                if COUNTING_AGGREGATES.contains(&name.as_str()) {
                    return None;
                }
                let plain = matches!(name.as_str(), "sum" | "avg" | "mean") && !f.params.distinct && f.params.args.len() == 1;
                Some(Magnitude { aggregate: i, computed: plain.then(|| (f.params.args[0].clone(), f.params.filter.clone())) })
            }
            // Not an aggregate function as such: a magnitude of unknown contributions.
            _ => Some(Magnitude { aggregate: i, computed: None }),
        })
        .collect()
}

/// A percentile of the top aggregate (a median is the one at 1/2). It is one row's value, or
/// between two; with `p` chosen so that it falls on a row (`p = k / (n − 1)`) any middle row's
/// value can be read, and near the ends a group of ten gives away its largest. So its cell counts
/// only the persons on its thinner side: of the `rows` it reads, `share` of them lie there, and
/// rows beyond one per person may all be one person's ([`Percentile::thinner_side`]).
#[derive(Clone, Debug)]
pub(crate) struct Percentile {
    /// `p` or `1 − p`, the smaller.
    pub share: f64,
    /// The rows it reads, as a condition: its argument not null, within its `FILTER`.
    pub read: Expr,
}

impl Percentile {
    fn of(e: &Expr) -> Option<Percentile> {
        let Expr::AggregateFunction(f) = unalias(e) else { return None };
        let name = f.func.name().to_ascii_lowercase();
        let share = if name.contains("median") {
            0.5
        } else if name.contains("percentile") {
            match f.params.args.get(1).map(unalias) {
                Some(Expr::Literal(v, _)) => match v.cast_to(&DataType::Float64) {
                    Ok(ScalarValue::Float64(Some(p))) if (0.0..=1.0).contains(&p) => p.min(1.0 - p),
                    _ => 0.0,
                },
                _ => 0.0,
            }
        } else {
            return None;
        };
        // The value ordered is the first argument, `WITHIN GROUP` or not.
        let value = f.params.args.first()?.clone();
        let read = match &f.params.filter {
            Some(filter) => value.is_not_null().and((**filter).clone()),
            None => value.is_not_null(),
        };
        Some(Percentile { share, read })
    }

    /// The persons on the thinner side, at least: of `rows` rows of `persons` persons, the
    /// thinner side holds `rows × share`; at most `rows − persons` of them repeat a person, and
    /// no person has more than `most` of them (when counted).
    pub(crate) fn thinner_side(&self, rows: u64, persons: u64, most: Option<u64>) -> u64 {
        // (`1 − 0.9` is a hair under 0.1 in floats.)
        let thin = (rows as f64 * self.share + 1e-9).floor() as u64;
        let by_repeats = thin.saturating_sub(rows.saturating_sub(persons));
        let by_most = most.filter(|&m| m > 0).map_or(0, |m| thin.div_ceil(m));
        by_repeats.max(by_most).min(persons)
    }
}

/// How the persons of a condition bear on a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Bearing {
    /// The rows that give the aggregate a value: the cell counts their persons (none: a zero).
    Value,
    /// A part of the rows that the aggregate treats apart from the others (a `FILTER` and its
    /// complement, a `CASE` branch, either side of a boolean, the rows where an argument is
    /// null or a numeric column is not zero): the cell counts its persons unless it has none,
    /// since a released cell with the rest known (the group's count, say) would tell the part.
    Part,
}

impl Bearing {
    /// A cell's persons, `cell` so far, bounded by those of one of its conditions: the fewest
    /// persons any counted person column counts among those that count anyone (after an outer
    /// join, the side that found no match counts no one: the other side's persons stand behind
    /// the rows), none if no column counts anyone.
    pub(crate) fn bound(self, cell: u64, fewest_counted: u64) -> u64 {
        match self {
            Bearing::Value => cell.min(fewest_counted),
            // A part no one is in tells nothing.
            Bearing::Part if fewest_counted == 0 => cell,
            Bearing::Part => cell.min(fewest_counted),
        }
    }
}

/// Two cells of one row tell the persons of the rows one counts and the other does not:
/// `count(*) FILTER (WHERE sex = 'F') - count(*) FILTER (WHERE sex = 'F' AND born <> 1931)` is the
/// women born in 1931, though each cell counts many persons and so does each complement. So for
/// every two aggregates with different value conditions, the rows where exactly one of them holds
/// are a [`Bearing::Part`] of both.
///
/// The rows where exactly one holds, not each side apart: `a - b` shows one side only when the
/// other is empty (one condition within the other), and then the two are the same rows. (Each
/// side apart would suppress two cells whose difference tells nothing, e.g. the men and the
/// persons under 40 of a "Table 1" row, whenever few are men over 40.)
///
/// The two cells in two outputs are output checking's to compare, by the cells' persons samples
/// ([`crate::samples`]). Not covered: a side whose size is known from another output (`b`
/// widened by rows of a known count); an aggregate without a value condition against one with
/// (`count(*) - sum(flag)` over a stored 0/1 integer column: a `CASE` or a boolean cast has parts
/// of its own).
fn differences_between_cells(conditions: &mut Vec<Expr>, of_aggregate: &mut [Vec<(usize, Bearing)>]) -> Vec<(usize, usize)> {
    let values: Vec<Option<usize>> =
        of_aggregate.iter().map(|ks| ks.iter().find(|(_, bearing)| *bearing == Bearing::Value).map(|(k, _)| *k)).collect();
    let first = conditions.len();
    let mut differences: Vec<(usize, usize)> = Vec::new();
    for i in 0..values.len() {
        for j in i + 1..values.len() {
            let (Some(a), Some(b)) = (values[i], values[j]) else { continue };
            if a == b {
                continue;
            }
            let pair = (a.min(b), a.max(b));
            let k = match differences.iter().position(|d| *d == pair) {
                Some(d) => first + d,
                None => {
                    // Evaluated from the two conditions' columns (`conditions_below`); the
                    // expression is what they stand for.
                    conditions.push(Expr::BinaryExpr(datafusion::logical_expr::BinaryExpr::new(
                        Box::new(conditions[pair.0].clone().is_true()),
                        datafusion::logical_expr::Operator::NotEq,
                        Box::new(conditions[pair.1].clone().is_true()),
                    )));
                    differences.push(pair);
                    conditions.len() - 1
                }
            };
            for side in [i, j] {
                if !of_aggregate[side].contains(&(k, Bearing::Part)) {
                    of_aggregate[side].push((k, Bearing::Part));
                    of_aggregate[side].sort_unstable();
                }
            }
        }
    }
    differences
}

/// At most this many distinct conditions per query (each costs a persons count): a "Table 1"
/// of a dozen `sum(CASE …)` columns fits (about 30 conditions of their own and 66 differences
/// between cells); one of more than about twenty is refused (split it into outputs).
const MAX_CONDITIONS: usize = 256;

/// The conditions on rows that aggregate `e` tells apart (see [`Bearing`]):
/// - [`Bearing::Value`]: its `FILTER`, each argument not null, and for a sum or mean each
///   argument not zero (a zero adds nothing to a sum, and a mean of one value among zeros tells
///   the value): `sum(CASE WHEN rare THEN cost END)` counts the rare persons;
/// - [`Bearing::Part`]: the `FILTER`'s complement (`count(*) - count(*) FILTER (WHERE NOT rare)`),
///   the rows where an argument is null (`nullif`), each branch of a `CASE` (with the branches
///   around it: `CASE WHEN rare THEN cost ELSE 1000000 END` is no longer all the group's), each
///   side of a boolean used as a value (`bool_or(rare)`, `CAST(rare AS INT)`), and for aggregates
///   of values the rows where a numeric column is not zero (`sum(rare_drug_cost + 1) - count(*)`).
///
/// Arithmetic that would make an indicator without a condition (`floor(age / 90) + 5`) is
/// refused before ([`check_values`]).
fn conditions(e: &Expr, input: &datafusion::common::DFSchema) -> Vec<(Expr, Bearing)> {
    let Expr::AggregateFunction(f) = unalias(e) else { return Vec::new() };
    let name = f.func.name().to_ascii_lowercase();
    if name == "grouping" {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut value: Vec<Expr> = Vec::new();
    if let Some(filter) = &f.params.filter {
        value.push((**filter).clone());
        out.push((filter.clone().is_not_true(), Bearing::Part));
    }
    let sum = matches!(name.as_str(), "sum" | "avg" | "mean");
    let of_values = !COUNTING_AGGREGATES.contains(&name.as_str());
    for a in &f.params.args {
        // A constant (`count(*)`), or a person id counted: the row's persons already are those
        // of non-null ids.
        let person = matches!(a, Expr::Column(c) if c.name.eq_ignore_ascii_case(PERSON_ID) || input.field_from_column(c).is_ok_and(|f| is_person_type(f.data_type())));
        if matches!(a, Expr::Literal(v, _) if !v.is_null()) || person {
            continue;
        }
        let nonzero = sum.then(|| a.get_type(input).ok()).flatten().and_then(|t| not_zero(a, &t));
        let nullable = a.nullable(input).unwrap_or(true);
        match nonzero {
            // Null is not unequal to zero either.
            Some(c) => value.push(c),
            None if nullable => value.push(a.clone().is_not_null()),
            None => {}
        }
        // The rows where a count's argument is null: `count(*) - count(x)` counts them. (A null
        // adds to a sum or mean what it leaves out; a mean's divisor tells their number only with
        // the sum beside it, a derivation left to the checkers' review.)
        if nullable && name == "count" {
            out.push((a.clone().is_null(), Bearing::Part));
        }
        let reading = Reading { values: of_values, nulls_apart: !(name == "sum" || name.starts_with("bool_")) };
        parts(a, None, reading, input, &mut out);
    }
    if let Some(v) = value.into_iter().reduce(Expr::and) {
        out.push((v, Bearing::Value));
    }
    out
}

/// How an aggregate reads its argument, for [`parts`].
#[derive(Clone, Copy, Debug)]
struct Reading {
    /// It adds up or orders values (not a count, a boolean aggregate or `grouping`): a numeric
    /// column's non-zero rows are a part.
    values: bool,
    /// It tells a boolean's null rows from its false ones (a count, a mean's divisor); a sum,
    /// `bool_or` and `bool_and` do not, so a few persons with a missing flag do not suppress them.
    nulls_apart: bool,
}

/// The [`Bearing::Part`] conditions of an aggregate's argument `e`, each within `path` (the
/// conditions of the `CASE` branches around `e`).
fn parts(e: &Expr, path: Option<&Expr>, reading: Reading, input: &datafusion::common::DFSchema, out: &mut Vec<(Expr, Bearing)>) {
    let within = |c: Expr| match path {
        Some(p) => p.clone().and(c),
        None => c,
    };
    match e {
        Expr::Case(case) => {
            // Branch i: no earlier condition held, its own does.
            let mut none_before: Option<Expr> = path.cloned();
            for (when, then) in &case.when_then_expr {
                let condition = match &case.expr {
                    Some(base) => (**base).clone().eq((**when).clone()),
                    None => (**when).clone(),
                };
                let taken = match &none_before {
                    Some(n) => n.clone().and(condition.clone().is_true()),
                    None => condition.clone().is_true(),
                };
                out.push((taken.clone(), Bearing::Part));
                parts(then, Some(&taken), reading, input, out);
                let not_taken = condition.is_not_true();
                none_before = Some(match none_before {
                    Some(n) => n.and(not_taken),
                    None => not_taken,
                });
            }
            if let Some(otherwise) = none_before {
                out.push((otherwise.clone(), Bearing::Part));
                if let Some(else_expr) = &case.else_expr {
                    parts(else_expr, Some(&otherwise), reading, input, out);
                }
            }
        }
        // Three sides where nulls are told apart: `avg(CAST(nullif(points, 70) > 40 AS BIGINT))`
        // leaves the null rows out of its divisor.
        e if e.get_type(input).is_ok_and(|t| t == DataType::Boolean) => {
            out.push((within(e.clone().is_true()), Bearing::Part));
            if reading.nulls_apart && e.nullable(input).unwrap_or(true) {
                out.push((within(e.clone().is_false()), Bearing::Part));
                out.push((within(e.clone().is_null()), Bearing::Part));
            } else {
                out.push((within(e.clone().is_not_true()), Bearing::Part));
            }
        }
        // As the `CASE` it stands for: the rows of each argument that is not null are a part
        // (`coalesce(x, 1000000)` would otherwise count the nulls into a sum).
        Expr::ScalarFunction(f) if f.name() == "coalesce" && f.args.len() > 1 => {
            let (last, first) = f.args.split_last().expect("two arguments or more");
            let branches = first.iter().map(|a| (Box::new(a.clone().is_not_null()), Box::new(a.clone()))).collect();
            parts(&Expr::Case(Case::new(None, branches, Some(Box::new(last.clone())))), path, reading, input, out);
        }
        // A number read from a table's text or date ([`field_of_column`]) is a column's value.
        Expr::Column(_) | Expr::Cast(_) | Expr::TryCast(_) | Expr::ScalarFunction(_) if matches!(e, Expr::Column(_)) || read_field(e, input) => {
            if reading.values {
                if let Some(c) = e.get_type(input).ok().and_then(|t| not_zero(e, &t)) {
                    out.push((within(c), Bearing::Part));
                }
            }
            // And what the field is read from (a `CASE` inside a cast's text).
            let _ = e.apply_children(|child| {
                parts(child, path, reading, input, out);
                Ok(TreeNodeRecursion::Continue)
            });
        }
        other => {
            let _ = other.apply_children(|child| {
                parts(child, path, reading, input, out);
                Ok(TreeNodeRecursion::Continue)
            });
        }
    }
}

/// Whether `e` has the shape of a number read from text or a date (`CAST(… AS BIGINT)` of text,
/// `date_part(…)`); [`field_of_column`] also asks that it be read from a stored column.
fn read_field(e: &Expr, input: &datafusion::common::DFSchema) -> bool {
    match e {
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
            field.data_type().is_numeric() && expr.get_type(input).is_ok_and(|t| t.is_string())
        }
        Expr::ScalarFunction(f) => f.name() == "date_part",
        _ => false,
    }
}

/// The rows a `LIMIT … OFFSET …` above the top aggregate keeps, applied by output checking to
/// the rows it shows ([`crate::AggregateResult::window`]), never in the plan: a row of a few
/// persons, left out of the released table, must not take a place in the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowsWindow {
    pub skip: usize,
    pub fetch: Option<usize>,
}

/// The plan without the `Limit` (or a sort's fetch) between its output and the top aggregate,
/// and the window it kept; a limit that is not a constant, or two, are refused.
pub(crate) fn without_limit(plan: &LogicalPlan) -> Result<(LogicalPlan, Option<RowsWindow>), SandboxError> {
    let only = |inner: Option<RowsWindow>, window: RowsWindow| if inner.is_some() { Err(not(Refusal::Limit)) } else { Ok(Some(window)) };
    match plan {
        LogicalPlan::Limit(l) => {
            let skip = match l.get_skip_type() {
                Ok(datafusion::logical_expr::SkipType::Literal(n)) => n,
                _ => return Err(not(Refusal::Limit)),
            };
            let fetch = match l.get_fetch_type() {
                Ok(datafusion::logical_expr::FetchType::Literal(n)) => n,
                _ => return Err(not(Refusal::Limit)),
            };
            let (input, inner) = without_limit(&l.input)?;
            Ok((input, only(inner, RowsWindow { skip, fetch })?))
        }
        LogicalPlan::Sort(s) if s.fetch.is_some() => {
            let (input, inner) = without_limit(&s.input)?;
            let sort = datafusion::logical_expr::Sort { expr: s.expr.clone(), input: Arc::new(input), fetch: None };
            Ok((LogicalPlan::Sort(sort), only(inner, RowsWindow { skip: 0, fetch: s.fetch })?))
        }
        LogicalPlan::Projection(_)
        | LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Distinct(Distinct::All(_)) => {
            let (input, inner) = without_limit(plan.inputs()[0])?;
            Ok((plan.with_new_exprs(plan.expressions(), vec![input]).map_err(|_| SandboxError::Internal)?, inner))
        }
        _ => Ok((plan.clone(), None)),
    }
}

/// The top aggregate's aggregates (by index) that decide which rows are shown and in what order:
/// in a `Filter` (`HAVING`) above it, and in the sort keys.
fn selected_by(plan: &LogicalPlan) -> BTreeSet<usize> {
    fn walk(plan: &LogicalPlan, out: &mut BTreeSet<usize>) {
        match plan {
            LogicalPlan::Filter(f) => {
                out.extend(aggregates_in(&f.input, &f.predicate));
                walk(&f.input, out);
            }
            LogicalPlan::Sort(s) => {
                for key in &s.expr {
                    out.extend(aggregates_in(&s.input, &key.expr));
                }
                walk(&s.input, out);
            }
            LogicalPlan::Limit(_) | LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_) | LogicalPlan::Distinct(Distinct::All(_)) => {
                walk(plan.inputs()[0], out)
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(plan, &mut out);
    out
}

/// `a` is not zero, compared in its own type (no cast per row; DataFusion compares `-0.0` equal
/// to `0.0`); `None` for a type without a zero.
fn not_zero(a: &Expr, t: &DataType) -> Option<Expr> {
    if !t.is_numeric() {
        return None;
    }
    ScalarValue::new_zero(t).ok().map(|zero| a.clone().not_eq(Expr::Literal(zero, None)))
}

/// The distinct persons of a person column over the rows meeting `condition` (all rows: `None`).
fn persons_of(column: Expr, condition: Option<&Expr>, count: PersonsCount) -> Expr {
    match count {
        PersonsCount::InOrder => with_filter(crate::persons::count_persons(column), condition.map(|c| Box::new(c.clone()))),
        PersonsCount::Distinct => {
            // As Binary: count(DISTINCT) has a fast accumulator for it, not for FixedSizeBinary.
            let id = Expr::Cast(Cast::new(Box::new(column), DataType::Binary));
            match condition {
                None => count_distinct(id),
                Some(c) => count_distinct(Expr::Case(Case::new(None, vec![(Box::new(c.clone()), Box::new(id))], None))),
            }
        }
    }
}

/// An aggregate call with `filter` as its `FILTER`.
fn with_filter(e: Expr, filter: Option<Box<Expr>>) -> Expr {
    match e {
        Expr::AggregateFunction(mut f) => {
            f.params.filter = filter;
            Expr::AggregateFunction(f)
        }
        other => other,
    }
}

/// The top aggregate's aggregate expressions (by index) that expression `e` over `input`'s columns
/// reads.
fn aggregates_in(input: &LogicalPlan, e: &Expr) -> BTreeSet<usize> {
    e.column_refs().into_iter().flat_map(|c| input.schema().index_of_column(c).ok()).flat_map(|i| aggregates_behind(input, i)).collect()
}

/// The top aggregate's aggregate expressions (by index) that output column `idx` of `plan` shows
/// or is computed from, through the nodes [`top_aggregate`] allows above it.
fn aggregates_behind(plan: &LogicalPlan, idx: usize) -> BTreeSet<usize> {
    match plan {
        // Grouping sets output every grouping column and an internal id before the aggregates.
        LogicalPlan::Aggregate(a) => a.group_expr_len().ok().and_then(|n| idx.checked_sub(n)).into_iter().collect(),
        LogicalPlan::Projection(p) => p.expr.get(idx).map(|e| aggregates_in(&p.input, e)).unwrap_or_default(),
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Distinct(Distinct::All(_)) => aggregates_behind(plan.inputs()[0], idx),
        _ => BTreeSet::new(),
    }
}

/// The hidden columns a rewrite adds.
struct Hidden<'a> {
    counted: &'a [usize],
    conditions: &'a [Expr],
    /// The two conditions of each difference, which end `conditions`.
    differences: &'a [(usize, usize)],
    /// The persons sampled, by the first counted person column: of the rows or of a condition's.
    sampled: &'a [Option<usize>],
    /// The value and filter of each magnitude whose contributions are computed.
    magnitudes: &'a [&'a (Expr, Option<Box<Expr>>)],
    /// The rows each percentile reads (one column each), then in the fast mode the most of them
    /// one person has (one column per percentile and counted person column).
    percentiles: &'a [Percentile],
    /// The columns whose distinct institutions are counted, for the row and each condition.
    institutions: &'a [usize],
    count: PersonsCount,
}

impl Hidden<'_> {
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = (0..self.counted.len()).map(|k| format!("{PERSONS_PREFIX}{k}")).collect();
        for k in 0..self.conditions.len() {
            names.extend((0..self.counted.len()).map(|j| format!("{CONDITION_PERSONS_PREFIX}{k}_{j}")));
        }
        for k in 0..self.magnitudes.len() {
            names.extend((0..self.counted.len()).map(|j| format!("{CONTRIBUTIONS_PREFIX}{k}_{j}")));
        }
        names.extend((0..self.percentiles().len()).map(|k| format!("{PERCENTILE_ROWS_PREFIX}{k}")));
        if self.count == PersonsCount::InOrder {
            for k in 0..self.percentiles().len() {
                names.extend((0..self.counted.len()).map(|j| format!("{PERCENTILE_ROWS_PREFIX}most_{k}_{j}")));
            }
        }
        names.extend((0..self.samples().len()).map(|k| format!("{SAMPLE_PREFIX}{k}")));
        for k in 0..=self.conditions.len() {
            names.extend((0..self.institutions().len()).map(|j| format!("{INSTITUTIONS_PREFIX}{k}_{j}")));
        }
        names
    }

    /// The institution columns counted: none without persons counts.
    fn institutions(&self) -> &[usize] {
        if self.counted.is_empty() {
            &[]
        } else {
            self.institutions
        }
    }

    /// The samples added: none without persons counts.
    fn samples(&self) -> &[Option<usize>] {
        if self.counted.is_empty() {
            &[]
        } else {
            self.sampled
        }
    }

    /// The percentiles whose rows are counted: all, beside persons counts (a query of no table
    /// has none).
    fn percentiles(&self) -> &[Percentile] {
        if self.counted.is_empty() {
            &[]
        } else {
            self.percentiles
        }
    }
}

/// Whether a rewrite samples the cells' persons ([`crate::samples`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Samples {
    Taken,
    /// Not for an output that could have so many rows that its samples might not fit in memory:
    /// its cells are compared by rows only.
    #[default]
    Left,
}

/// Prefix of the columns, added by the rewrite, counting the institutions of a row or condition.
pub(crate) const INSTITUTIONS_PREFIX: &str = "__niji_institutions_";

/// Prefix of the columns, added by the rewrite, sampling the persons of a cell.
pub(crate) const SAMPLE_PREFIX: &str = "__niji_sample_";

/// Prefix of the columns, added by the rewrite, counting the rows a percentile reads.
pub(crate) const PERCENTILE_ROWS_PREFIX: &str = "__niji_percentile_rows_";

/// Prefix of the columns, added by the rewrite, counting the persons of a condition.
pub(crate) const CONDITION_PERSONS_PREFIX: &str = "__niji_condition_persons_";

/// Prefix of the contributions columns added by the rewrite.
pub(crate) const CONTRIBUTIONS_PREFIX: &str = "__niji_contributions_";

/// Prefix of the columns, added by the rewrite to the top aggregate, holding the counts of a row and
/// its conditions (`by_condition.rs`); not above it.
const BY_CONDITION_PREFIX: &str = "__niji_by_condition_";

/// The fewest conditions counted by condition (`by_condition.rs`). With fewer, one aggregate
/// each costs less than making each row's mask: `SELECT code, count(*), sum(points) … GROUP BY
/// code` (one condition, `points` not zero) took 2.2 times the plain query that way and 2.8
/// counted by condition (`cargo bench -p niji-sandbox --bench overhead`).
const FEWEST_BY_CONDITION: usize = 3;

/// The conditions and outputs of the counts by condition (`by_condition.rs`): output 0 the rows,
/// then each condition, then each difference, as the hidden columns have them.
struct ConditionCounts {
    /// The own conditions (a difference's are among them), as the aggregate's arguments.
    conditions: Vec<Expr>,
    outputs: Vec<crate::by_condition::Counted>,
}

impl ConditionCounts {
    /// Counts by condition for a rewrite with at least [`FEWEST_BY_CONDITION`] conditions;
    /// `None` with fewer (one count each).
    fn of(hidden: &Hidden, filters: &[Expr]) -> Option<ConditionCounts> {
        use crate::by_condition::Counted;
        let own = hidden.conditions.len().checked_sub(hidden.differences.len())?;
        if hidden.conditions.len() < FEWEST_BY_CONDITION
            || filters.len() != hidden.conditions.len()
            || hidden.differences.iter().any(|&(a, b)| a >= own || b >= own)
        {
            return None;
        }
        let outputs = std::iter::once(Counted::Rows)
            .chain((0..own).map(Counted::Condition))
            .chain(hidden.differences.iter().map(|&(a, b)| Counted::Differ(a, b)))
            .collect();
        Some(ConditionCounts { conditions: filters[..own].to_vec(), outputs })
    }

    /// The aggregates counting `what` of each of `counted` (input columns), in chunks of
    /// [`crate::by_condition::MAX_OUTPUTS`] outputs.
    fn aggregates(
        &self,
        what: &str,
        counted: &[usize],
        columns: &[Column],
        count: fn(Expr, &[Expr], Vec<crate::by_condition::Counted>) -> Expr,
    ) -> Vec<Expr> {
        let mut out = Vec::new();
        for (j, &i) in counted.iter().enumerate() {
            for (c, chunk) in self.outputs.chunks(crate::by_condition::MAX_OUTPUTS).enumerate() {
                out.push(
                    count(Expr::Column(columns[i].clone()), &self.conditions, chunk.to_vec()).alias(format!("{BY_CONDITION_PREFIX}{what}_{j}_{c}")),
                );
            }
        }
        out
    }

    /// The outputs of [`ConditionCounts::aggregates`] over `columns` counted columns, in the
    /// hidden columns' order: by output (the rows, each condition, each difference), then by
    /// column.
    fn outputs_in_order<'a>(&'a self, what: &'a str, columns: usize) -> impl Iterator<Item = Expr> + 'a {
        (0..self.outputs.len()).flat_map(move |k| {
            (0..columns).map(move |j| {
                let chunk = k / crate::by_condition::MAX_OUTPUTS;
                let counts = Expr::Column(Column::new_unqualified(format!("{BY_CONDITION_PREFIX}{what}_{j}_{chunk}")));
                crate::by_condition::output(counts, k % crate::by_condition::MAX_OUTPUTS)
            })
        })
    }
}

/// Prefix of the columns, added by the rewrite below the top aggregate, holding whether a row meets
/// a condition.
pub(crate) const CONDITION_PREFIX: &str = "__niji_condition_";

/// The top aggregate's input with a column per condition after its own, and the filters that
/// count each condition's persons over it: a condition's column, or for a difference between two
/// conditions whether their columns differ.
///
/// Without differences, the conditions themselves are the filters (a projection costs a query of
/// one conditional sum a tenth more).
///
/// A column is `condition OR NULL`: true where it holds, null where it does not (a filter and the
/// counts by condition take neither). Nullable in the logical plan as in the physical one, which
/// DataFusion checks below an aggregate: the condition alone can be non-null in the first and
/// nullable in the second (`x IS NOT TRUE` is planned as `x IS DISTINCT FROM true`), and
/// `CASE WHEN condition THEN true END` made the simplifier evaluate the condition twice. A
/// difference's filter compares whether each holds.
fn conditions_below(input: &Arc<LogicalPlan>, hidden: &Hidden) -> Result<(Arc<LogicalPlan>, Vec<Expr>), SandboxError> {
    if hidden.differences.is_empty() {
        return Ok((input.clone(), hidden.conditions.to_vec()));
    }
    let own = hidden.conditions.len() - hidden.differences.len();
    let column = |k: usize| Expr::Column(Column::new_unqualified(format!("{CONDITION_PREFIX}{k}")));
    let mut exprs: Vec<Expr> = input.schema().columns().into_iter().map(Expr::Column).collect();
    let holds = |c: &Expr| c.clone().or(Expr::Literal(ScalarValue::Boolean(None), None));
    exprs.extend(hidden.conditions[..own].iter().enumerate().map(|(k, c)| holds(c).alias(format!("{CONDITION_PREFIX}{k}"))));
    let projected = Projection::try_new(exprs, input.clone()).map(LogicalPlan::Projection).map_err(|_| SandboxError::Internal)?;
    let mut filters: Vec<Expr> = (0..own).map(column).collect();
    filters.extend(hidden.differences.iter().map(|&(a, b)| {
        Expr::BinaryExpr(datafusion::logical_expr::BinaryExpr::new(
            Box::new(column(a).is_true()),
            datafusion::logical_expr::Operator::NotEq,
            Box::new(column(b).is_true()),
        ))
    }));
    Ok((Arc::new(projected), filters))
}

/// The output plan with persons-count (and contributions) columns added to the top aggregate and
/// carried up.
fn rebuild(plan: &LogicalPlan, hidden: &Hidden) -> Result<LogicalPlan, SandboxError> {
    let internal = |_: DataFusionError| SandboxError::Internal;
    match plan {
        LogicalPlan::Aggregate(a) => {
            let columns = a.input.schema().columns();
            let mut aggr = a.aggr_expr.clone();
            let names = hidden.names();
            let mut names = names.into_iter();
            let mut next_name = || names.next().ok_or(SandboxError::Internal);
            // The hidden columns, in the order of `names`: a column of the aggregate, or an
            // output of a count by condition.
            let mut tail: Vec<Expr> = Vec::new();
            let add = |e: Expr, name: String, aggr: &mut Vec<Expr>, tail: &mut Vec<Expr>| {
                aggr.push(e.alias(&name));
                tail.push(Expr::Column(Column::new_unqualified(name)));
            };
            // Each condition is evaluated once per row, as a column of a projection below the
            // aggregate (its input's columns first, in their order); a difference between two
            // compares their columns. (Evaluated in each FILTER instead, a "Table 1" of six
            // conditional columns took 2.6 times as long.)
            let (input, filters) = conditions_below(&a.input, hidden)?;
            let by_condition = ConditionCounts::of(hidden, &filters);
            // The persons of the rows, then of each condition's rows, by each counted person column:
            // in the fast count, one aggregate per column for all of them.
            let mut counted_by_condition = false;
            match &by_condition {
                Some(by) if hidden.count == PersonsCount::InOrder => {
                    aggr.extend(by.aggregates("persons", hidden.counted, &columns, crate::by_condition::persons_by_condition));
                    for output in by.outputs_in_order("persons", hidden.counted.len()) {
                        tail.push(output.alias(next_name()?));
                    }
                    counted_by_condition |= !hidden.counted.is_empty();
                }
                _ => {
                    for condition in std::iter::once(None).chain(filters.iter().map(Some)) {
                        for &i in hidden.counted {
                            add(persons_of(Expr::Column(columns[i].clone()), condition, hidden.count), next_name()?, &mut aggr, &mut tail);
                        }
                    }
                }
            }
            // Per magnitude, its contributions by each counted person column (a join not on the
            // person pairs two persons per row: the output check takes the strictest).
            for &(value, filter) in hidden.magnitudes {
                for &person in hidden.counted {
                    let value = Expr::Cast(Cast::new(Box::new(value.clone()), DataType::Float64));
                    let top = crate::contributions::contributions(Expr::Column(columns[person].clone()), value);
                    add(with_filter(top, filter.clone()), next_name()?, &mut aggr, &mut tail);
                }
            }
            for p in hidden.percentiles() {
                let rows = datafusion::functions_aggregate::expr_fn::count(Expr::Literal(ScalarValue::Int64(Some(1)), None));
                add(with_filter(rows, Some(Box::new(p.read.clone()))), next_name()?, &mut aggr, &mut tail);
            }
            // Per percentile, the most rows one person has among those it reads (the largest
            // contribution of a 1 per row), by each counted person column.
            if hidden.count == PersonsCount::InOrder {
                for p in hidden.percentiles() {
                    for &person in hidden.counted {
                        let one = Expr::Literal(ScalarValue::Float64(Some(1.0)), None);
                        let top = crate::contributions::contributions(Expr::Column(columns[person].clone()), one);
                        add(with_filter(top, Some(Box::new(p.read.clone()))), next_name()?, &mut aggr, &mut tail);
                    }
                }
            }
            // The persons sampled for differencing, by the first counted person column.
            if let Some(&person) = hidden.counted.first() {
                for which in hidden.samples() {
                    let filter = which.and_then(|k| filters.get(k)).map(|f| Box::new(f.clone()));
                    let sample = with_filter(crate::samples::sample_persons(Expr::Column(columns[person].clone())), filter);
                    add(sample, next_name()?, &mut aggr, &mut tail);
                }
            }
            // The institutions of the rows, then of each condition's rows, by each column naming
            // them (only under rules that count institutions): with conditions, one aggregate per
            // column for all of them.
            match &by_condition {
                Some(by) if !hidden.institutions().is_empty() => {
                    aggr.extend(by.aggregates("institutions", hidden.institutions(), &columns, crate::by_condition::institutions_by_condition));
                    for output in by.outputs_in_order("institutions", hidden.institutions().len()) {
                        tail.push(output.alias(next_name()?));
                    }
                    counted_by_condition = true;
                }
                _ => {
                    for condition in std::iter::once(None).chain(filters.iter().map(Some)) {
                        for &i in hidden.institutions() {
                            let counted = crate::institution_count::count_institutions(Expr::Column(columns[i].clone()));
                            add(with_filter(counted, condition.map(|c| Box::new(c.clone()))), next_name()?, &mut aggr, &mut tail);
                        }
                    }
                }
            }
            let added = aggr.len() - a.aggr_expr.len();
            let aggregate = Aggregate::try_new(input, a.group_expr.clone(), aggr).map(LogicalPlan::Aggregate).map_err(internal)?;
            if !counted_by_condition {
                return Ok(aggregate);
            }
            // Counted by condition: a projection reads the outputs into the hidden columns, after
            // the aggregate's own columns (by position: its keys, then the query's aggregates), as
            // the aggregate itself would have them.
            let own_columns = aggregate.schema().fields().len() - added;
            let mut exprs: Vec<Expr> = aggregate.schema().columns().into_iter().take(own_columns).map(Expr::Column).collect();
            exprs.extend(tail);
            Projection::try_new(exprs, Arc::new(aggregate)).map(LogicalPlan::Projection).map_err(internal)
        }
        LogicalPlan::Projection(p) => {
            let input = rebuild(&p.input, hidden)?;
            let mut exprs = p.expr.clone();
            exprs.extend(hidden.names().into_iter().map(|n| Expr::Column(Column::new_unqualified(n))));
            Projection::try_new(exprs, Arc::new(input)).map(LogicalPlan::Projection).map_err(internal)
        }
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Distinct(Distinct::All(_)) => {
            let input = rebuild(plan.inputs()[0], hidden)?;
            plan.with_new_exprs(plan.expressions(), vec![input]).map_err(internal)
        }
        _ => Err(SandboxError::Internal),
    }
}
