//! Operations whose failure would tell about the data: a query must not be able to fail on some
//! rows' values and not on others.
//!
//! A failed query is one bit, and a query can aim it at one row:
//! `sum(CASE WHEN <a rare diagnosis and a birth month> THEN 1 / (points - points) ELSE 0 END)`
//! fails exactly when such a row exists, whatever the persons count says about the cells. So
//! every expression of the plan (subqueries included), after DataFusion's type coercion and
//! constant folding ([`planned`]), must be one that cannot fail on any value it reads
//! ([`check`]):
//! - casts that cannot fail (to text, widening numbers, dates to timestamps); a cast that can
//!   (text to a number or a date, narrowing, a float to an integer) must be written `TRY_CAST`,
//!   which gives a null, and a null is a part the persons count sees (`count(TRY_CAST(…))`);
//! - arithmetic that wraps or gives infinities (integers `+ − ×`, floats); an integer division
//!   or remainder only by a constant other than 0 and −1 or by a grouped `count(*)` (a mean
//!   written `sum(x) / count(*)`; every group has a row), otherwise divide as floats
//!   (`CAST(x AS DOUBLE) / y`); decimals only between constants; a table's own dates (checked at
//!   intake: 1800 to 2150) moved by constant intervals of a century in all, and only those made
//!   nanosecond timestamps (`date_trunc` does; they hold 1677–2262), never a date the query made
//!   from text or numbers (`TRY_CAST('99999-01-01' AS DATE)`);
//! - functions known not to fail on any value, some with constant arguments in a safe range
//!   (`substr(x, 1, 4)`, `split_part(x, '-', 1)`, `date_part('year', d)`, a `regexp_like`
//!   pattern that compiles); every other function (`make_date`, `to_date`, `chr`, `abs` of an
//!   integer, `power` of integers, …) is refused;
//! - `LIKE` with a constant pattern, `~` with a constant pattern that compiles; no `SIMILAR TO`
//!   and no scalar subquery (more than one row fails);
//! - text grown only from a table's own text (`concat`, `||`, `lpad`, `replace`), never from
//!   text grown below (doubled 31 times across subqueries it passes what a string holds, for the
//!   rare row only); paddings of 10,000 characters a query; over a window, only aggregates of one
//!   value a row (a `string_agg` of a partition would be held once per row).
//!
//! A constant expression that fails is left in place by the folding and refused here: it would
//! fail or not depending on whether any row reaches it.
//!
//! What stays a bit of the data: time and memory. A join whose size follows a rare row
//! (`FROM claim_lines a, claim_lines b, claim_lines c WHERE a.code = 'C'` is empty or N² rows)
//! runs out of time, or is merely slow, only if the row exists. Closing it needs a bound on each
//! join's worst case from the tables' sizes and keys, refused before running; every query is
//! logged with its SQL hash meanwhile.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::expr::{Cast, Like, TryCast, WindowFunction, WindowFunctionParams};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator, Volatility, WindowFunctionDefinition};
use datafusion::optimizer::simplify_expressions::SimplifyExpressions;
use datafusion::optimizer::Optimizer;

use crate::{Refusal, SandboxError};

/// `plan` checked and optimized as it will run, in one pass: DataFusion's analyzer (type
/// coercion, which adds the casts the query does not write), the text-growth rules (before the
/// folding, which would build a huge constant itself), constant folding, [`check`] on the folded
/// plan (before the optimizer merges and prunes projections), then the rest of the optimizer, as
/// `SessionState::optimize` would. The result is what `worst_case` reads and what runs, not
/// optimized again. No step reads data: what fails here (`points = '7x'`, a literal the coercion
/// cannot cast) fails for every database, as [`SandboxError::Parse`].
pub(crate) fn planned(state: &SessionState, plan: &LogicalPlan) -> Result<LogicalPlan, SandboxError> {
    let coerced = state.analyzer().execute_and_check(plan.clone(), state.config_options(), |_, _| {}).map_err(|_| SandboxError::Parse)?;
    // Before folding: the folding itself would build `lpad('', 2147483647, 'A')` (2 GiB, while
    // planning, outside the memory pool).
    let (mut growing, mut padding) = (false, 0i64);
    let _ = coerced.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|x| {
                if let Expr::ScalarFunction(f) = x {
                    growing |= growth_may_fail(f.name(), &f.args);
                    if matches!(f.name(), "lpad" | "rpad") {
                        padding += f.args.get(1).map(peel).and_then(constant_int).unwrap_or(MAX_PADDING + 1).max(0);
                    }
                }
                Ok(if growing { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
            })
        })
    });
    if growing || padding > MAX_PADDING {
        return Err(SandboxError::NotAllowed(Refusal::MayFail));
    }
    let folded = Optimizer::with_rules(vec![std::sync::Arc::new(SimplifyExpressions::new())])
        .optimize(coerced, state, |_, _| {})
        .map_err(|_| SandboxError::Parse)?;
    check(&folded)?;
    state.optimizer().optimize(folded, state, |_, _| {}).map_err(|_| SandboxError::Parse)
}

/// Refuses ([`Refusal::MayFail`]) a coerced and folded plan (see [`planned`]) with an
/// expression that can fail on some values.
fn check(plan: &LogicalPlan) -> Result<(), SandboxError> {
    let mut failing = false;
    let walked = plan.apply_with_subqueries(|node| {
        let inputs = node.inputs();
        // The schema a node's expressions read: its input's, or a join's both sides (a semi or
        // anti join's own schema has only one).
        let both = match node {
            LogicalPlan::Join(j) => j.left.schema().join(j.right.schema()).ok(),
            _ => None,
        };
        let schema = match (inputs.as_slice(), &both) {
            (_, Some(both)) => both,
            ([input], None) => input.schema().as_ref(),
            _ => node.schema().as_ref(),
        };
        let scope = Scope { schema, inputs: &inputs };
        node.apply_expressions(|e| {
            e.apply(|x| {
                if may_fail(x, &scope) {
                    failing = true;
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(if failing { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    walked.map_err(|_| SandboxError::Internal)?;
    if failing {
        return Err(SandboxError::NotAllowed(Refusal::MayFail));
    }
    Ok(())
}

/// Functions that fail on no value of the types DataFusion coerces their arguments to.
const TOTAL_FUNCTIONS: &[&str] = &[
    "ascii",
    "bit_length",
    "btrim",
    "ltrim",
    "rtrim",
    "character_length",
    "coalesce",
    "contains",
    "ends_with",
    "starts_with",
    "find_in_set",
    "initcap",
    "lower",
    "upper",
    "octet_length",
    "reverse",
    "strpos",
    "translate",
    "to_hex",
    "left",
    "right",
    "nullif",
    "nvl",
    "nvl2",
    "greatest",
    "least",
    "uuid",
    "random",
    "pi",
    "now",
    "current_date",
    "current_time",
    "arrow_typeof",
    "version",
];

/// Functions of floats (NaN and infinities, no errors); refused with a decimal argument, which
/// has its own overflowing paths. Not `sqrt`: DataFusion fails on a negative number.
const FLOAT_FUNCTIONS: &[&str] = &[
    "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "cbrt", "cos", "cosh", "cot", "degrees", "exp", "ln", "log", "log10", "log2",
    "radians", "sin", "sinh", "tan", "tanh", "ceil", "floor", "signum", "isnan", "iszero", "nanvl",
];

/// Fields `date_part` reads from a date or a timestamp.
const DATE_PARTS: &[&str] = &[
    "year",
    "isoyear",
    "quarter",
    "month",
    "week",
    "day",
    "dow",
    "isodow",
    "doy",
    "hour",
    "minute",
    "second",
    "millisecond",
    "microsecond",
    "epoch",
];

/// Granularities of `date_trunc`.
const TRUNC_UNITS: &[&str] = &["year", "quarter", "month", "week", "day", "hour", "minute", "second", "millisecond", "microsecond"];

/// The longest a constant padding may ask for (`lpad(x, n)`), and the longest constant
/// replacement text: text that grows with the query's constants could be made too long to hold
/// (a string's offsets overflow at 2 GiB) for one row only.
const MAX_PAD: i64 = 1000;

/// The longest a table's date may be moved by, in days (a month counted as 31): a century keeps
/// the dates of records (1800 to 2150, checked at intake) inside a nanosecond timestamp's range
/// (1677–2262).
const MAX_SHIFT_DAYS: i64 = 1200 * 31;

/// Text functions whose result can be longer than their text: a replacement, which multiplies
/// its text's length, may not read one (`replace(replace(x, 'a', 'aaaa…'), 'a', 'aaaa…')`, or of
/// a long padding).
const GROWING: &[&str] = &["replace", "regexp_replace", "lpad", "rpad", "concat", "concat_ws"];

/// The most characters all paddings of one query may ask for together (`concat(lpad(x, 1000),
/// lpad(x, 1000), …)` would make megabytes a row).
const MAX_PADDING: i64 = 10_000;

/// What a node's expressions read: the schema, and the inputs a column comes from.
struct Scope<'a> {
    schema: &'a DFSchema,
    inputs: &'a [&'a LogicalPlan],
}

impl Scope<'_> {
    /// Whether `e` is a grouped aggregate's `count(*)`, read just above it (a mean written
    /// `sum(x) / count(*)`): every group has a row, so it is at least 1. Not of a global aggregate,
    /// which counts 0 when no row is selected. Through projections that pass the column on as it
    /// is (the rewrite's reading of its counts by condition puts one above the aggregate).
    fn rows_of_group(&self, e: &Expr) -> bool {
        let e = match e {
            Expr::Alias(a) => a.expr.as_ref(),
            e => e,
        };
        let Expr::Column(c) = e else { return false };
        self.inputs.iter().any(|&input| {
            let mut input = input;
            while let LogicalPlan::Projection(p) = input {
                match p.schema.index_of_column(c).ok().and_then(|i| p.expr.get(i)) {
                    Some(Expr::Column(passed)) if passed == c => input = &p.input,
                    _ => break,
                }
            }
            let LogicalPlan::Aggregate(a) = input else { return false };
            let Ok(i) = a.schema.index_of_column(c) else { return false };
            let Some(Expr::AggregateFunction(f)) = i.checked_sub(a.group_expr.len()).and_then(|k| a.aggr_expr.get(k)).map(|e| e.clone().unalias())
            else {
                return false;
            };
            !a.group_expr.is_empty()
                && f.func.name() == "count"
                && f.params.filter.is_none()
                && !f.params.distinct
                && matches!(&f.params.args[..], [Expr::Literal(v, _)] if !v.is_null())
        })
    }

    /// Whether `e` is a table's column passed on unchanged (its values are the holder's, checked at
    /// intake, not made by the query).
    fn stored(&self, e: &Expr) -> bool {
        let Expr::Column(c) = e else { return false };
        self.inputs.iter().any(|input| input.schema().has_column(c) && crate::check::passed(input, e))
    }
}

/// Whether `x` (this node only; its children are visited on their own) can fail on some value.
fn may_fail(x: &Expr, scope: &Scope) -> bool {
    if unfolded_constant(x) {
        return true;
    }
    let schema = scope.schema;
    let type_of = |e: &Expr| e.get_type(schema).ok();
    match x {
        // (A cast of a constant is folded, or refused above as a constant that failed.)
        Expr::Cast(Cast { expr, field }) => match expr.as_ref() {
            // A date made a nanosecond timestamp (`date_trunc` does) fits only from 1677 to 2262:
            // it must be a table's date moved by at most a century, not one made from text or
            // numbers (`TRY_CAST('99999-01-01' AS DATE)` chosen by a `CASE`).
            inner if matches!(field.data_type(), DataType::Timestamp(..)) && type_of(inner).is_some_and(|t| t.is_temporal()) => {
                days_from_stored(inner, scope).is_none_or(|d| d > MAX_SHIFT_DAYS)
            }
            inner => !type_of(inner).is_some_and(|from| cannot_fail_cast(&from, field.data_type())),
        },
        // A date or time only from text or another date: `TRY_CAST(points AS DATE)` makes days
        // outside the calendar, which fail when shown as text.
        Expr::TryCast(TryCast { expr, field })
            if field.data_type().is_temporal() || matches!(field.data_type(), DataType::Interval(_) | DataType::Duration(_)) =>
        {
            !type_of(expr).is_some_and(|t| t.is_string() || t.is_null() || t.is_temporal())
        }
        Expr::BinaryExpr(b) if b.op == Operator::StringConcat && !(reads_stored(&b.left, scope) && reads_stored(&b.right, scope)) => true,
        Expr::BinaryExpr(b) => binary_may_fail(b, scope),
        Expr::Like(Like { pattern, escape_char, .. }) => {
            !matches!(constant_text(pattern), Some(p) if p.chars().count() <= 1000) || escape_char.is_some_and(|c| c != '\\')
        }
        Expr::SimilarTo(_) | Expr::ScalarSubquery(_) | Expr::ScalarVariable(..) | Expr::Placeholder(_) => true,
        // Text that grows reads only a table's own text: growth fed into growth across
        // subqueries (`concat(s, s)` over a column made by `concat(s, s)`, 31 times) doubles past
        // what a string holds, for the rare row only. (Within one expression: [`planned`].)
        Expr::ScalarFunction(f) if GROWING.contains(&f.name()) && !f.args.iter().all(|a| reads_stored(a, scope)) => true,
        Expr::ScalarFunction(f) => function_may_fail(f.name(), &f.args, schema),
        Expr::WindowFunction(w) => window_may_fail(w) || w.params.args.iter().any(|a| type_of(a).is_none_or(|t| decimal(&t))),
        // Integers wrap and floats do not fail (a constant whose negation failed,
        // `-(-9223372036854775807 - 1)`, is refused above); intervals and decimals are checked.
        Expr::Negative(inner) => !type_of(inner).is_some_and(|t| t.is_integer() || t.is_floating()),
        // Sums and means of decimals overflow; of integers they wrap, of floats they do not fail.
        Expr::AggregateFunction(f) => f.params.args.iter().any(|a| type_of(a).is_none_or(|t| decimal(&t))),
        // A date outside the calendar's range fails when shown or read as text.
        Expr::Literal(ScalarValue::Date32(Some(d)), _) => !(-719_162..=2_932_896).contains(d),
        Expr::Literal(ScalarValue::Date64(Some(_)), _) => true,
        _ => false,
    }
}

/// Whether every value of the integer type `from` is a value of the integer type `to`.
pub(crate) fn integer_fits(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let width = |t: &DataType| match t {
        Int8 | UInt8 => 1,
        Int16 | UInt16 => 2,
        Int32 | UInt32 => 4,
        Int64 | UInt64 => 8,
        _ => 0,
    };
    from.is_integer()
        && to.is_integer()
        && (width(to) > width(from) && (to.is_signed_integer() || !from.is_signed_integer())
            || (width(to) == width(from) && from.is_signed_integer() == to.is_signed_integer()))
}

/// Whether `x` is a step of constants the folding left in place: it failed there
/// (`TIMESTAMP '1700-12-31' - INTERVAL '1199 months'`), and would fail where a row reaches it.
/// Not what the folding never evaluates: volatile functions, aggregates, subqueries.
fn unfolded_constant(x: &Expr) -> bool {
    let step = matches!(
        x,
        Expr::BinaryExpr(_)
            | Expr::ScalarFunction(_)
            | Expr::Cast(_)
            | Expr::TryCast(_)
            | Expr::Negative(_)
            | Expr::Case(_)
            | Expr::Like(_)
            | Expr::Between(_)
    );
    step && !x
        .exists(|e| {
            Ok(match e {
                Expr::ScalarFunction(f) => f.func.signature().volatility == Volatility::Volatile,
                Expr::Column(_)
                | Expr::OuterReferenceColumn(..)
                | Expr::Placeholder(_)
                | Expr::ScalarVariable(..)
                | Expr::AggregateFunction(_)
                | Expr::WindowFunction(_)
                | Expr::ScalarSubquery(_)
                | Expr::Exists(_)
                | Expr::InSubquery(_) => true,
                _ => false,
            })
        })
        .unwrap_or(true)
}

/// Casts that succeed for every value of `from`.
fn cannot_fail_cast(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    match (from, to) {
        _ if from == to => true,
        (Null, _) => true,
        (f, t) if t.is_string() => f.is_string() || f.is_numeric() || matches!(f, Boolean | Date32 | Date64 | Timestamp(..)),
        (Boolean, t) => t.is_numeric(),
        (f, t) if f.is_integer() && t.is_integer() => integer_fits(f, t),
        (f, Float32 | Float64) => f.is_numeric(),
        (f, Decimal128(p, s) | Decimal256(p, s)) if f.is_integer() => i16::from(*p) - i16::from(*s) >= 20,
        (Decimal128(fp, fs) | Decimal256(fp, fs), Decimal128(tp, ts) | Decimal256(tp, ts)) => {
            ts >= fs && i16::from(*tp) - i16::from(*ts) >= i16::from(*fp) - i16::from(*fs)
        }
        // To a timestamp only from a table's date: see [`may_fail`].
        (Date32, Date64 | Int32 | Int64) => true,
        // The rewrite's person ids, read as bytes.
        (FixedSizeBinary(_), Binary) => true,
        (Date64 | Timestamp(..), Int64) => true,
        (Timestamp(..) | Date64, Date32) => true,
        (Timestamp(from, _), Timestamp(to, _)) => unit_rank(to) <= unit_rank(from),
        _ => false,
    }
}

fn unit_rank(u: &TimeUnit) -> u8 {
    match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 1,
        TimeUnit::Microsecond => 2,
        TimeUnit::Nanosecond => 3,
    }
}

fn binary_may_fail(b: &BinaryExpr, scope: &Scope) -> bool {
    use Operator::*;
    let schema = scope.schema;
    let (l, r) = (b.left.get_type(schema).ok(), b.right.get_type(schema).ok());
    let (Some(l), Some(r)) = (l, r) else { return true };
    let temporal = |t: &DataType| t.is_temporal() || matches!(t, DataType::Interval(_) | DataType::Duration(_));
    match b.op {
        Eq | NotEq | Lt | LtEq | Gt | GtEq | IsDistinctFrom | IsNotDistinctFrom | And | Or | StringConcat => false,
        BitwiseAnd | BitwiseOr | BitwiseXor | BitwiseShiftLeft | BitwiseShiftRight => false,
        RegexMatch | RegexNotMatch => !compiles(&b.right, None, ""),
        RegexIMatch | RegexNotIMatch => !compiles(&b.right, Some(&Expr::Literal(ScalarValue::Utf8(Some("i".into())), None)), "i"),
        LikeMatch | ILikeMatch | NotLikeMatch | NotILikeMatch => constant_text(&b.right).is_none_or(|p| p.chars().count() > 1000),
        // Decimals overflow (between constants they are folded, or refused as a failed constant).
        Plus | Minus | Multiply | Divide | Modulo if decimal(&l) || decimal(&r) => true,
        // Days between two dates (an integer) cannot fail; a date or timestamp moved by an
        // interval only within a century of a table's own date ([`days_from_stored`]).
        Minus if matches!((&l, &r), (DataType::Date32, DataType::Date32)) => false,
        Plus | Minus if temporal(&l) || temporal(&r) => days_from_stored(&Expr::BinaryExpr(b.clone()), scope).is_none_or(|d| d > MAX_SHIFT_DAYS),
        Multiply | Divide | Modulo if temporal(&l) || temporal(&r) => true,
        Plus | Minus | Multiply => false,
        Divide | Modulo => {
            let float = l.is_floating() || r.is_floating();
            // `i64::MIN / -1` overflows; `x / 0` fails.
            let safe_divisor = matches!(&*b.right, Expr::Literal(v, _) if !v.is_null() && matches!(v.cast_to(&DataType::Float64), Ok(ScalarValue::Float64(Some(d))) if d != 0.0 && d != -1.0));
            !(float || safe_divisor || scope.rows_of_group(&b.right))
        }
        _ => true,
    }
}

/// How far, in days, the date or timestamp `e` may be from a table's own date: 0 for a stored
/// column or a date constant between 1800 and 2150 (as intake's), plus each constant interval added or
/// subtracted, through casts between dates and timestamps. `None`: made some other way (from
/// text or numbers), whose range the query chooses.
fn days_from_stored(e: &Expr, scope: &Scope) -> Option<i64> {
    match e {
        Expr::Alias(a) => days_from_stored(&a.expr, scope),
        Expr::Column(_) => scope.stored(e).then_some(0),
        Expr::Literal(v, _) => {
            let days = match v {
                ScalarValue::Date32(Some(d)) => i64::from(*d),
                ScalarValue::TimestampSecond(Some(t), _) => t / 86_400,
                ScalarValue::TimestampMillisecond(Some(t), _) => t / 86_400_000,
                ScalarValue::TimestampMicrosecond(Some(t), _) => t / 86_400_000_000,
                ScalarValue::TimestampNanosecond(Some(t), _) => t / 86_400_000_000_000,
                _ => return None,
            };
            // 1800-01-01 and 2150-12-31 in days from 1970.
            (-62_091..=66_108).contains(&days).then_some(0)
        }
        Expr::Cast(Cast { expr, field }) if field.data_type().is_temporal() => days_from_stored(expr, scope),
        Expr::BinaryExpr(b) if matches!(b.op, Operator::Plus | Operator::Minus) => {
            if let Some(d) = interval_days(&b.right) {
                return Some(days_from_stored(&b.left, scope)? + d);
            }
            match (b.op, interval_days(&b.left)) {
                (Operator::Plus, Some(d)) => Some(days_from_stored(&b.right, scope)? + d),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The length in days of a constant interval (a month counted as 31 days, rounded up).
fn interval_days(e: &Expr) -> Option<i64> {
    let days = match e {
        Expr::Literal(ScalarValue::IntervalYearMonth(Some(m)), _) => i64::from(*m).abs() * 31,
        Expr::Literal(ScalarValue::IntervalDayTime(Some(v)), _) => i64::from(v.days).abs() + 1,
        Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _) => {
            i64::from(v.months).abs() * 31 + i64::from(v.days).abs() + (v.nanoseconds / 86_400_000_000_000).abs() + 1
        }
        Expr::Literal(ScalarValue::DurationSecond(Some(s)), _) => s.abs() / 86_400 + 1,
        _ => return None,
    };
    Some(days)
}

fn decimal(t: &DataType) -> bool {
    matches!(t, DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..) | DataType::Decimal256(..))
}

/// Whether every column `e` reads is a table's own, passed on unchanged.
fn reads_stored(e: &Expr, scope: &Scope) -> bool {
    !e.exists(|x| Ok(matches!(x, Expr::Column(_)) && !scope.stored(x))).unwrap_or(true)
}

/// Whether `e` holds a text-growing function ([`GROWING`]) anywhere inside.
fn grows(e: &Expr) -> bool {
    e.exists(|x| {
        Ok(matches!(x, Expr::ScalarFunction(f) if GROWING.contains(&f.name())) || matches!(x, Expr::BinaryExpr(b) if b.op == Operator::StringConcat))
    })
    .unwrap_or(true)
}

/// The rules on text that grows (checked before constant folding too): paddings of at most
/// [`MAX_PAD`] characters, no `repeat`, replacements by short constants (no `\1` or `$1`: a
/// group copied many times multiplies) of text that did not grow ([`grows`]).
fn growth_may_fail(name: &str, args: &[Expr]) -> bool {
    let text = |i: usize| args.get(i).map(peel).and_then(constant_text);
    match name {
        "repeat" => true,
        "lpad" | "rpad" => !args.get(1).map(peel).and_then(constant_int).is_some_and(|n| (0..=MAX_PAD).contains(&n)),
        "replace" => {
            !(args.len() == 3
                && text(1).is_some_and(|from| !from.is_empty())
                && text(2).is_some_and(|to| to.chars().count() as i64 <= MAX_PAD)
                && !grows(&args[0]))
        }
        "regexp_replace" => {
            !(matches!(args.len(), 3 | 4)
                && text(2).is_some_and(|r| r.chars().count() as i64 <= MAX_PAD && !r.contains(['\\', '$']))
                && !grows(&args[0]))
        }
        _ => false,
    }
}

/// A constant's literal under a cast the type coercion put around it.
fn peel(e: &Expr) -> &Expr {
    match e {
        Expr::Cast(Cast { expr, .. }) if matches!(**expr, Expr::Literal(..)) => expr,
        _ => e,
    }
}

fn constant_text(e: &Expr) -> Option<&str> {
    match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)), _) => Some(s),
        _ => None,
    }
}

/// Whether `e` is an integer constant between `lo` and `hi`.
fn int_in(e: Option<&Expr>, lo: i64, hi: i64) -> bool {
    e.and_then(constant_int).is_some_and(|n| (lo..=hi).contains(&n))
}

fn constant_int(e: &Expr) -> Option<i64> {
    match e {
        Expr::Literal(v, _) if v.data_type().is_integer() && !v.is_null() => match v.cast_to(&DataType::Int64) {
            Ok(ScalarValue::Int64(Some(n))) => Some(n),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `pattern` (with `flags`) compiles as DataFusion's regular expression functions build it.
fn compiles(pattern: &Expr, flags: Option<&Expr>, allowed_flags: &str) -> bool {
    let Some(p) = constant_text(pattern) else { return false };
    let flags = match flags {
        None => "",
        Some(f) => match constant_text(f) {
            Some(f) if f.chars().all(|c| allowed_flags.contains(c)) => f,
            _ => return false,
        },
    };
    let inline: String = flags.chars().filter(|c| *c != 'g').collect();
    let full = if inline.is_empty() { p.to_string() } else { format!("(?{inline}){p}") };
    p.chars().count() <= 1000 && regex::Regex::new(&full).is_ok()
}

fn function_may_fail(name: &str, args: &[Expr], schema: &DFSchema) -> bool {
    let type_of = |e: &Expr| e.get_type(schema).ok();
    let float = |e: &Expr| type_of(e).is_some_and(|t| t.is_floating());
    let in_list = |e: &Expr, list: &[&str]| constant_text(e).is_some_and(|s| list.contains(&s.to_ascii_lowercase().as_str()));
    match name {
        n if TOTAL_FUNCTIONS.contains(&n) => false,
        n if FLOAT_FUNCTIONS.contains(&n) => args.iter().any(|a| type_of(a).is_none_or(|t| decimal(&t))),
        "abs" => !args.iter().all(|a| float(a) || type_of(a).is_some_and(|t| matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)))),
        // Floats, to a constant power of at least 0: DataFusion fails on zero to a negative
        // power (as PostgreSQL does).
        "power" => {
            let exponent = args.get(1).map(peel).and_then(|e| match e {
                Expr::Literal(v, _) => match v.cast_to(&DataType::Float64) {
                    Ok(ScalarValue::Float64(Some(x))) => Some(x),
                    _ => None,
                },
                _ => None,
            });
            !(args.iter().all(float) && exponent.is_some_and(|x| x >= 0.0))
        }
        "round" | "trunc" => !(args.first().is_some_and(float) && (args.len() == 1 || int_in(args.get(1), -20, 20))),
        "substr" => !(int_in(args.get(1), -1_000_000_000, 1_000_000_000) && (args.len() == 2 || int_in(args.get(2), 0, 1_000_000_000))),
        "split_part" => !int_in(args.get(2), -1000, 1000) || int_in(args.get(2), 0, 0),
        "substr_index" => !int_in(args.get(2), -1000, 1000),
        // Their growth is checked before the folding ([`planned`]).
        "lpad" | "rpad" | "replace" | "concat" | "concat_ws" => false,
        // A field a struct has, named by a constant: how the rewrite reads its counts by condition
        // (`by_condition.rs`). It fails on no value (no table holds a struct; one a query folds
        // from constants, `named_struct('a', 1)`, is read the same way).
        "get_field" => {
            !(args.len() == 2
                && constant_text(&args[1])
                    .is_some_and(|name| matches!(type_of(&args[0]), Some(DataType::Struct(fields)) if fields.iter().any(|f| f.name() == name))))
        }
        "encode" => !args.get(1).is_some_and(|e| in_list(e, &["hex", "base64"])),
        "date_part" => !args.first().is_some_and(|p| in_list(p, DATE_PARTS)),
        "date_trunc" => !args.first().is_some_and(|p| in_list(p, TRUNC_UNITS)),
        "regexp_like" => !(matches!(args.len(), 2 | 3) && compiles(&args[1], args.get(2), "i")),
        "regexp_count" => !(args.len() == 2 && compiles(&args[1], None, "")),
        "regexp_replace" => !compiles(&args[1], args.get(3), "gi"),
        _ => true,
    }
}

fn window_may_fail(w: &WindowFunction) -> bool {
    let WindowFunctionParams { args, .. } = &w.params;
    let f = match &w.fun {
        // An aggregate over a window gives every row of a partition its value: a list or a text
        // of the whole partition would be held once per row (p² for a person of p rows).
        WindowFunctionDefinition::AggregateUDF(a) => {
            return !matches!(a.name(), "count" | "sum" | "avg" | "mean" | "min" | "max" | "bool_and" | "bool_or")
        }
        WindowFunctionDefinition::WindowUDF(f) => f,
    };
    match f.name() {
        "row_number" | "rank" | "dense_rank" | "percent_rank" | "cume_dist" | "first_value" | "last_value" => false,
        "lag" | "lead" => args.len() > 1 && !int_in(args.get(1), -1_000_000, 1_000_000),
        "ntile" => !int_in(args.first(), 1, 1_000_000),
        "nth_value" => !int_in(args.get(1), 1, 1_000_000),
        _ => true,
    }
}
