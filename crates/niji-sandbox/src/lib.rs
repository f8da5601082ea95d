//! The permit's analysis workspace (issue 5, first increment): a DataFusion session built by hand
//! over the tables and columns a [`PermitPolicy`] grants, answering aggregate SQL queries only, each
//! output row with the number of distinct persons behind it for output checking.
//!
//! # Data
//! [`Workspace::open`] takes the decrypted batches of each granted table ([`GrantedTable`]; the caller
//! reads them with `niji_lake`, this crate does no file I/O) and registers one in-memory table
//! (`MemTable`) per table, under the SQL schema named after the dataset with `-` replaced by `_`
//! (`"ndb-2024"` → `ndb_2024.claims`). Bare table names resolve in the dataset of the first table
//! passed; qualify them when the permit grants several datasets. Only granted columns are kept. `person_key` is
//! re-keyed per permit: `person_id = HMAC-SHA256(permit_secret, person_key)[..16]`
//! (`FixedSizeBinary(16)`), so the ids of two permits never join. Rows of excluded persons (opt-outs)
//! are dropped before anything is registered. In this increment the tables live in memory,
//! decrypted (MemTable: not counted by the memory pool); reading the encrypted lake as a stream is
//! for a later increment.
//!
//! # Hardening
//! - The session has no table factories, no file formats, no table functions (`read_parquet`,
//!   `read_csv`, `CREATE EXTERNAL TABLE` do not exist), `information_schema` off, no default catalog
//!   but ours.
//! - SQL longer than [`Limits::max_sql_chars`] is refused before parsing; exactly one statement is
//!   parsed and it must be a query (the AST is checked before planning).
//! - Every plan is checked with `SQLOptions` (no DDL, DML or statements) **and** this crate's own
//!   visitor ([`check`]): no `EXPLAIN`/`ANALYZE`, `COPY`, DML, DDL, recursive queries, extensions,
//!   `UNNEST`, scans of tables that were not registered, linkage of two datasets the permit does
//!   not pair; the output must be an aggregate (an `Aggregate` under at most Projection, Filter
//!   (`HAVING`), Sort, Limit, alias or `DISTINCT`), with allowed aggregate functions only, not grouped
//!   by a person id, and with no column named `person_id` or holding a person id's type.
//! - Queries run under a memory pool ([`Limits::memory_bytes`], `GreedyMemoryPool`) with the disk
//!   manager disabled (nothing spills, so nothing lands unencrypted in a temp folder), and under a
//!   time limit that drops (cancels) the stream. Results longer than [`Limits::max_rows`] are refused.
//! - Errors are the fixed [`SandboxError`] enum: its `Display` never includes DataFusion's text,
//!   which can quote cell values.
//!
//! # Persons count
//! The top `Aggregate` is rewritten in the same plan to also compute `count(DISTINCT c)` for every
//! person-id column `c` of its input whose lineage leads to a table scan, and the nodes above it
//! carry those columns through; the smallest of the counts is a row's `persons`. The person columns
//! must cover every table scanned under the aggregate (so values of one person cannot be padded
//! with other persons' ids); subqueries below it must be `person_id IN (SELECT person_id …)` with
//! the same property; window functions must be partitioned by person. Otherwise the query is
//! refused with [`Refusal::PersonsNotCountable`] (or the more specific code).

mod check;
mod data;
mod deadline;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, Int64Array};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemoryCatalogProviderList, MemorySchemaProvider, SchemaProvider};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::execution::SessionStateDefaults;
use datafusion::physical_plan::execute_stream;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use niji_review::PermitPolicy;

pub use datafusion::arrow;
pub use datafusion::common::ScalarValue as Scalar;

/// The catalog holding one schema per granted dataset.
pub const CATALOG: &str = "niji";
/// The re-keyed person column of every table.
pub const PERSON_ID: &str = "person_id";

/// One granted table of one dataset version, already decrypted by the caller.
#[derive(Clone, Debug)]
pub struct GrantedTable {
    /// The dataset name as in the permit (e.g. `ndb-2024`).
    pub dataset: String,
    /// The lake table (e.g. `claim_lines`).
    pub table: String,
    /// The table's schema (`niji_lake::table_schema`): needed when there are no batches.
    pub schema: SchemaRef,
    /// Rows as read from the lake, with `person_key` (`FixedSizeBinary(32)`).
    pub batches: Vec<RecordBatch>,
}

/// Resource limits of one workspace's queries.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Memory the execution of one query may reserve (hash tables, sorts); nothing spills.
    pub memory_bytes: usize,
    /// Wall time of one query, planning included; the query is cancelled when it passes.
    pub timeout: Duration,
    /// Longest SQL text accepted, in characters.
    pub max_sql_chars: usize,
    /// Most output rows returned.
    pub max_rows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_bytes: 2 << 30, timeout: Duration::from_secs(120), max_sql_chars: 20_000, max_rows: 100_000 }
    }
}

/// Why a query (or the opening of a workspace) was refused; stable codes for the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// A statement other than a query (`SET`, `SHOW`, `PREPARE`, …).
    Statement,
    /// DDL (`CREATE`, `DROP`, `ALTER`, `CREATE EXTERNAL TABLE`, …).
    Ddl,
    /// DML (`INSERT`, `UPDATE`, `DELETE`, …).
    Dml,
    /// `COPY … TO`.
    Copy,
    /// `EXPLAIN` or `EXPLAIN ANALYZE`.
    Explain,
    /// `WITH RECURSIVE`.
    RecursiveQuery,
    /// A plan node the workspace does not run (extensions, `UNNEST`, `DESCRIBE`).
    UnsupportedNode,
    /// A scan of a table that the workspace did not register.
    UnregisteredTable,
    /// Tables of two datasets whose linkage the permit does not allow.
    Linkage,
    /// A `UNION` (or other set operation) of aggregates at the top: run each part on its own.
    Union,
    /// A subquery where it could carry row-level values into the output.
    Subquery,
    /// A window function not partitioned by person.
    Window,
    /// An aggregate function that returns row-level values (`array_agg`, `string_agg`,
    /// `first_value`, …) or one applied to a person id.
    AggregateFunction,
    /// `DISTINCT ON` above the aggregate.
    DistinctOn,
    /// The persons behind the output rows cannot be counted.
    PersonsNotCountable,
    /// More output rows than [`Limits::max_rows`].
    TooManyRows,
    /// `Workspace::open`: a table the permit does not grant.
    TableNotGranted,
    /// `Workspace::open`: a table without a `person_key` column (`FixedSizeBinary(32)`).
    NoPersonKey,
    /// `Workspace::open`: the batches do not have the table's schema.
    SchemaMismatch,
    /// `Workspace::open`: two tables under the same SQL name.
    NameClash,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Statement => "statement",
            Refusal::Ddl => "ddl",
            Refusal::Dml => "dml",
            Refusal::Copy => "copy",
            Refusal::Explain => "explain",
            Refusal::RecursiveQuery => "recursive_query",
            Refusal::UnsupportedNode => "unsupported_node",
            Refusal::UnregisteredTable => "unregistered_table",
            Refusal::Linkage => "linkage",
            Refusal::Union => "union",
            Refusal::Subquery => "subquery",
            Refusal::Window => "window",
            Refusal::AggregateFunction => "aggregate_function",
            Refusal::DistinctOn => "distinct_on",
            Refusal::PersonsNotCountable => "persons_not_countable",
            Refusal::TooManyRows => "too_many_rows",
            Refusal::TableNotGranted => "table_not_granted",
            Refusal::NoPersonKey => "no_person_key",
            Refusal::SchemaMismatch => "schema_mismatch",
            Refusal::NameClash => "name_clash",
        }
    }
}

/// Errors of the workspace. `Display` is a fixed text per variant (plus a fixed code): it never
/// includes DataFusion's message, which can quote cell values or probed names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    #[error("the query could not be parsed or planned")]
    Parse,
    #[error("the query names a table, column or function that does not exist in this workspace")]
    UnknownName,
    #[error("not allowed: {}", .0.code())]
    NotAllowed(Refusal),
    #[error("only aggregate results can be returned")]
    NotAggregate,
    #[error("person ids cannot be output or grouped by")]
    PersonIdInOutput,
    #[error("the query is too long")]
    TooLong,
    #[error("the query took too long and was cancelled")]
    Timeout,
    #[error("the query needed more memory than allowed")]
    MemoryLimit,
    /// The query failed while running (e.g. a value could not be cast).
    #[error("the query failed while running")]
    Execution,
    #[error("internal error")]
    Internal,
}

/// An aggregate result, for output checking.
#[derive(Clone, Debug, PartialEq)]
pub struct AggregateResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<ScalarValue>>,
    /// For each row, the number of distinct persons behind it.
    pub persons: Vec<u64>,
}

/// A registered table: its SQL schema and name and the dataset it came from.
#[derive(Clone, Debug)]
pub(crate) struct Registered {
    pub dataset: String,
}

/// The permit's workspace.
pub struct Workspace {
    ctx: SessionContext,
    /// (sql schema, table) → what it is.
    tables: BTreeMap<(String, String), Registered>,
    default_schema: String,
    policy: PermitPolicy,
    limits: Limits,
}

/// The person id a permit's workspace gives a lake person key (what `person_id` holds):
/// `HMAC-SHA256(permit_secret, "niji-sandbox:person-id:" ‖ person_key)`, first 16 bytes.
pub fn person_id(permit_secret: &[u8; 32], person_key: &[u8; 32]) -> [u8; 16] {
    data::Rekeyer::new(permit_secret).person_id(person_key)
}

/// The SQL schema name of a dataset.
pub fn schema_name(dataset: &str) -> String {
    dataset.replace('-', "_")
}

impl Workspace {
    /// Registers the granted tables (granted columns only, `person_key` re-keyed to `person_id`,
    /// excluded persons dropped) in a hardened session.
    pub fn open(
        tables: Vec<GrantedTable>,
        policy: &PermitPolicy,
        permit_secret: [u8; 32],
        excluded: &HashSet<[u8; 32]>,
        limits: Limits,
    ) -> Result<Workspace, SandboxError> {
        let mut by_schema: BTreeMap<String, Vec<(String, Arc<MemTable>)>> = BTreeMap::new();
        let mut registered = BTreeMap::new();
        let partitions = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let rekey = data::Rekeyer::new(&permit_secret);
        // Bare table names resolve in the dataset of the first table passed.
        let default_schema = tables.first().map(|t| schema_name(&t.dataset)).unwrap_or_else(|| "none".to_owned());
        for t in tables {
            if !policy.allows_table(&t.dataset, &t.table) {
                return Err(SandboxError::NotAllowed(Refusal::TableNotGranted));
            }
            let schema = schema_name(&t.dataset);
            if registered.contains_key(&(schema.clone(), t.table.clone())) {
                return Err(SandboxError::NotAllowed(Refusal::NameClash));
            }
            let (out_schema, batches) = data::prepare(&t, policy, &rekey, excluded)?;
            let mem = MemTable::try_new(out_schema, data::split(batches, partitions)).map_err(|_| SandboxError::Internal)?;
            registered.insert((schema.clone(), t.table.clone()), Registered { dataset: t.dataset.clone() });
            by_schema.entry(schema).or_default().push((t.table, Arc::new(mem)));
        }

        let state = session_state(&default_schema, limits, partitions)?;
        let catalog = MemoryCatalogProvider::new();
        for (schema, tables) in by_schema {
            let provider = MemorySchemaProvider::new();
            for (name, mem) in tables {
                provider.register_table(name, mem).map_err(|_| SandboxError::Internal)?;
            }
            catalog.register_schema(&schema, Arc::new(provider)).map_err(|_| SandboxError::Internal)?;
        }
        state.catalog_list().register_catalog(CATALOG.to_owned(), Arc::new(catalog));
        Ok(Workspace { ctx: SessionContext::new_with_state(state), tables: registered, default_schema, policy: policy.clone(), limits })
    }

    /// The registered tables as `(sql schema, table, dataset)`.
    pub fn tables(&self) -> Vec<(String, String, String)> {
        self.tables.iter().map(|((s, t), r)| (s.clone(), t.clone(), r.dataset.clone())).collect()
    }

    /// Runs an aggregate query; each output row comes with the number of distinct persons behind it.
    pub async fn run(&self, sql: &str) -> Result<AggregateResult, SandboxError> {
        let limit = self.limits.timeout;
        match tokio::time::timeout(limit, self.run_inner(sql, true)).await {
            Ok(r) => r,
            Err(_) => Err(SandboxError::Timeout),
        }
    }

    /// The same checks and limits as [`Workspace::run`] without the persons count; returns only the
    /// number of output rows. For the overhead benchmark.
    #[doc(hidden)]
    pub async fn run_checks_only(&self, sql: &str) -> Result<usize, SandboxError> {
        match tokio::time::timeout(self.limits.timeout, self.run_inner(sql, false)).await {
            Ok(r) => r.map(|r| r.rows.len()),
            Err(_) => Err(SandboxError::Timeout),
        }
    }

    async fn run_inner(&self, sql: &str, count_persons: bool) -> Result<AggregateResult, SandboxError> {
        let deadline = Instant::now() + self.limits.timeout;
        if sql.chars().count() > self.limits.max_sql_chars {
            return Err(SandboxError::TooLong);
        }
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state.sql_to_statement(sql, &dialect).map_err(map_error)?;
        check::statement(&statement)?;
        let plan = state.statement_to_plan(statement).await.map_err(map_error)?;
        let checker = check::Checker { tables: &self.tables, default_schema: &self.default_schema, policy: &self.policy };
        let checked = checker.check(&plan)?;
        let (plan, persons_columns) = if count_persons { checker.with_persons(&plan, &checked)? } else { (plan, 0) };
        let df = self.ctx.execute_logical_plan(plan).await.map_err(map_error)?;
        let physical = df.create_physical_plan().await.map_err(map_error)?;
        let physical = deadline::wrap(physical, deadline).map_err(map_error)?;
        let mut stream = execute_stream(physical, self.ctx.task_ctx()).map_err(map_error)?;
        let schema = stream.schema();
        let width = schema.fields().len() - persons_columns;
        let columns = schema.fields().iter().take(width).map(|f| f.name().clone()).collect();
        let mut rows = Vec::new();
        let mut persons = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(map_error)?;
            if rows.len() + batch.num_rows() > self.limits.max_rows {
                return Err(SandboxError::NotAllowed(Refusal::TooManyRows));
            }
            for row in 0..batch.num_rows() {
                let mut values = Vec::with_capacity(width);
                for c in 0..width {
                    values.push(ScalarValue::try_from_array(batch.column(c), row).map_err(|_| SandboxError::Internal)?);
                }
                rows.push(values);
                if count_persons {
                    persons.push(min_persons(&batch, width, row)?);
                }
            }
        }
        Ok(AggregateResult { columns, rows, persons })
    }
}

fn min_persons(batch: &RecordBatch, width: usize, row: usize) -> Result<u64, SandboxError> {
    let mut min: Option<u64> = None;
    for c in width..batch.num_columns() {
        let counts = batch.column(c).as_any().downcast_ref::<Int64Array>().ok_or(SandboxError::Internal)?;
        let n = if counts.is_null(row) { 0 } else { u64::try_from(counts.value(row)).unwrap_or(0) };
        min = Some(min.map_or(n, |m| m.min(n)));
    }
    Ok(min.unwrap_or(0))
}

/// The hand-built session: default functions and planners only; no table factories, file formats or
/// table functions; no information_schema; our catalog only; memory pool; no disk manager.
fn session_state(default_schema: &str, limits: Limits, partitions: usize) -> Result<SessionState, SandboxError> {
    let config = SessionConfig::new()
        .with_information_schema(false)
        .with_create_default_catalog_and_schema(false)
        .with_default_catalog_and_schema(CATALOG, default_schema)
        .with_target_partitions(partitions);
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(GreedyMemoryPool::new(limits.memory_bytes)))
        .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
        .build_arc()
        .map_err(|_| SandboxError::Internal)?;
    Ok(SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_catalog_list(Arc::new(MemoryCatalogProviderList::new()))
        .with_expr_planners(SessionStateDefaults::default_expr_planners())
        .with_scalar_functions(SessionStateDefaults::default_scalar_functions())
        .with_aggregate_functions(SessionStateDefaults::default_aggregate_functions())
        .with_window_functions(SessionStateDefaults::default_window_functions())
        .build())
}

/// Maps DataFusion's error to the fixed enum by its kind, never by copying its text.
pub(crate) fn map_error(e: DataFusionError) -> SandboxError {
    classify(&e)
}

fn classify(e: &DataFusionError) -> SandboxError {
    match e {
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => classify(inner),
        DataFusionError::Shared(inner) => classify(inner),
        DataFusionError::Collection(errors) => errors.first().map(classify).unwrap_or(SandboxError::Internal),
        DataFusionError::ResourcesExhausted(_) => SandboxError::MemoryLimit,
        DataFusionError::SQL(..) => SandboxError::Parse,
        DataFusionError::SchemaError(..) => SandboxError::UnknownName,
        DataFusionError::Plan(msg) => {
            let m = msg.to_ascii_lowercase();
            if m.contains("not found") || m.contains("invalid function") || m.contains("no field named") || m.contains("does not exist") {
                SandboxError::UnknownName
            } else {
                SandboxError::Parse
            }
        }
        DataFusionError::NotImplemented(_) | DataFusionError::Configuration(_) => SandboxError::Parse,
        DataFusionError::ArrowError(inner, _) => match inner.as_ref() {
            datafusion::arrow::error::ArrowError::ExternalError(ext) => match ext.downcast_ref::<DataFusionError>() {
                Some(d) => classify(d),
                None if ext.is::<deadline::DeadlineExceeded>() => SandboxError::Timeout,
                None => SandboxError::Execution,
            },
            _ => SandboxError::Execution,
        },
        DataFusionError::External(ext) => match ext.downcast_ref::<DataFusionError>() {
            Some(d) => classify(d),
            None if ext.is::<deadline::DeadlineExceeded>() => SandboxError::Timeout,
            None => SandboxError::Execution,
        },
        DataFusionError::Execution(_) | DataFusionError::ExecutionJoin(_) | DataFusionError::IoError(_) => SandboxError::Execution,
        _ => SandboxError::Internal,
    }
}
