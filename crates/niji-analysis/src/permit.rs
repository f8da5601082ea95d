//! What every run of a permit on its data shares (interactive queries, dummy data, jobs): the
//! permit's checks (active, Visiting track, the researcher named, its key still there) and
//! reading its granted tables from the lake, restricted to the permit's cohort
//! (`niji_lake::cohort`: its persons, and their event rows in its period and age range).

use niji_core::Role;
use niji_instance::Instance;
use niji_review::PermitPolicy;
use niji_sandbox::arrow::record_batch::RecordBatch;
use niji_sandbox::GrantedTable;
use sha2::{Digest, Sha256};

use niji_sdc::{Cell, Measure, MeasureKind, Table};

use crate::AnalysisError;

/// A permit a researcher may run on the real data: its policy and the workspace secret.
pub(crate) struct PermitContext {
    pub(crate) policy: PermitPolicy,
    /// The per-permit secret person ids are re-keyed with.
    pub(crate) secret: [u8; 32],
}

/// The checks every run of a permit on its data makes: an active permit of the Visiting track naming the
/// researcher, with its key.
pub(crate) async fn permit_context(instance: &Instance, user_id: i64, permit_id: i64) -> Result<PermitContext, AnalysisError> {
    let store = &instance.store;
    let permit = store.permit(permit_id).await.map_err(|_| AnalysisError::Internal)?.ok_or(AnalysisError::NoPermit)?;
    if permit.status != "active" {
        return Err(AnalysisError::Closed);
    }
    let policy: PermitPolicy = serde_json::from_str(&permit.policy).map_err(|_| AnalysisError::Internal)?;
    if !policy.active_on(niji_core::today_jst(time::OffsetDateTime::now_utc())) {
        return Err(AnalysisError::Closed);
    }
    let roles = store.active_roles(user_id).await.map_err(|_| AnalysisError::Internal)?;
    if !policy.names(user_id) || !roles.contains(&Role::Researcher) {
        return Err(AnalysisError::NotNamed);
    }
    if policy.track != niji_review::Track::Visiting {
        return Err(AnalysisError::WrongTrack);
    }
    // The permit's key must still exist; it is looked up, never created.
    let key = instance.existing_data_key(&permit.key_id).await.map_err(|_| AnalysisError::Internal)?.ok_or(AnalysisError::Closed)?;
    let secret: [u8; 32] = Sha256::new().chain_update(b"niji-analysis:person-ids\0").chain_update(key.0).finalize().into();
    Ok(PermitContext { policy, secret })
}

/// The permit's workspace over its granted tables' schemas with no rows: the static check of
/// interactive queries and jobs alike, whose refusals tell nothing about the rows.
pub(crate) fn empty_workspace(ctx: &PermitContext, limits: niji_sandbox::Limits) -> Result<niji_sandbox::Workspace, AnalysisError> {
    niji_sandbox::Workspace::open(empty_tables(&ctx.policy)?, &ctx.policy, ctx.secret, &Default::default(), limits).map_err(AnalysisError::Refused)
}

/// The granted tables with their schemas and no rows (for the static check).
fn empty_tables(policy: &PermitPolicy) -> Result<Vec<GrantedTable>, AnalysisError> {
    let mut tables = Vec::new();
    for grant in &policy.datasets {
        for t in &grant.tables {
            let schema = niji_lake::table_schema(&t.table).ok_or(AnalysisError::Internal)?;
            tables.push(GrantedTable { dataset: grant.dataset.clone(), table: t.table.clone(), schema, batches: Vec::new() });
        }
    }
    Ok(tables)
}

/// The rows of the permit's tables as the datasets' latest committed versions count them
/// (before the cohort and the registry's exclusions): per `(dataset, table)`, and the rows a run
/// reads and opens in all (the granted tables and those its cohort needs). What a run's slot is
/// judged from ([`crate::pace`]).
pub(crate) struct CommittedRows {
    pub per_table: std::collections::HashMap<(String, String), u64>,
    pub read: u64,
    /// The versions counted, `(dataset, number)`: the run reads these ([`read_tables`]).
    pub versions: Vec<(String, i64)>,
}

impl CommittedRows {
    /// The rows a run of a query with these scans reads: every table opened, and each scan.
    pub(crate) fn of_run(&self, scans: &[(String, String)]) -> u64 {
        self.read.saturating_add(self.of_scans(scans))
    }

    /// The rows these scans read (a query run on a workspace already open).
    pub(crate) fn of_scans(&self, scans: &[(String, String)]) -> u64 {
        scans.iter().fold(0, |sum, scan| sum.saturating_add(self.per_table.get(scan).copied().unwrap_or(0)))
    }
}

/// The permit's tables' rows in the datasets' latest committed versions ([`CommittedRows`]).
pub(crate) async fn committed_rows(instance: &Instance, policy: &PermitPolicy) -> Result<CommittedRows, AnalysisError> {
    let store = &instance.store;
    let spec = cohort_spec(policy);
    let needed = if spec.is_empty() { Vec::new() } else { niji_lake::cohort::needed_tables(&spec) };
    let mut out = CommittedRows { per_table: Default::default(), read: 0, versions: Vec::new() };
    for grant in &policy.datasets {
        let dataset = store.dataset_by_name(&grant.dataset).await.map_err(|_| AnalysisError::Internal)?.ok_or(AnalysisError::NoData)?;
        let version = store.latest_dataset_version(dataset.id).await.map_err(|_| AnalysisError::Internal)?.ok_or(AnalysisError::NoData)?;
        out.versions.push((grant.dataset.clone(), version.number));
        for t in store.dataset_version_tables(version.id).await.map_err(|_| AnalysisError::Internal)? {
            let rows = u64::try_from(t.rows).unwrap_or(0);
            if grant.tables.iter().any(|g| g.table == t.table_name) || needed.iter().any(|n| *n == t.table_name) {
                out.read = out.read.saturating_add(rows);
            }
            out.per_table.insert((grant.dataset.clone(), t.table_name), rows);
        }
    }
    Ok(out)
}

/// The real data a run reads: the granted tables (from `versions`, or the latest committed ones),
/// the persons the consent registry excludes from the permit's use as of `at`, and the receipt of
/// both (the versions read, the registry's version, how many persons it excluded).
pub(crate) async fn read_real(
    instance: &Instance,
    policy: &PermitPolicy,
    versions: Option<&[(String, i64)]>,
    at: time::OffsetDateTime,
) -> Result<(Vec<GrantedTable>, std::collections::HashSet<[u8; 32]>, crate::Receipt), AnalysisError> {
    let (tables, datasets) = read_tables(instance, policy, versions).await?;
    let use_ = niji_registry::use_of(policy, at);
    let (excluded, registry_version) = niji_registry::exclusions(instance, &use_).await.map_err(|_| AnalysisError::Internal)?;
    let receipt = crate::Receipt { datasets, registry_version, excluded: excluded.len() };
    Ok((tables, excluded, receipt))
}

/// The granted tables from each dataset's latest committed version (or from `versions`, those
/// a run's slot was judged from), and what was read.
async fn read_tables(
    instance: &Instance,
    policy: &PermitPolicy,
    versions: Option<&[(String, i64)]>,
) -> Result<(Vec<GrantedTable>, Vec<niji_registry::RunDataset>), AnalysisError> {
    let store = &instance.store;
    let latest = match versions {
        Some(v) => v.to_vec(),
        None => store.latest_committed_versions().await.map_err(|_| AnalysisError::Internal)?,
    };
    let spec = cohort_spec(policy);
    let mut tables = Vec::new();
    let mut read = Vec::new();
    // Per dataset, the tables the cohort is computed from (granted, and those it needs).
    let mut cohort_tables: Vec<Vec<(String, Vec<RecordBatch>)>> = Vec::new();
    for grant in &policy.datasets {
        let &(_, number) = latest.iter().find(|(d, _)| *d == grant.dataset).ok_or(AnalysisError::NoData)?;
        read.push(niji_registry::RunDataset { dataset: grant.dataset.clone(), version: number });
        let key_id = niji_intake::lake_key_id(&niji_intake::version_tag(&grant.dataset, number));
        let lake_key =
            niji_lake::LakeKey(instance.existing_data_key(&key_id).await.map_err(|_| AnalysisError::Internal)?.ok_or(AnalysisError::NoData)?.0);
        let dir = niji_intake::version_dir(&instance.paths, &grant.dataset, number);
        let read_one = |table: String| {
            let (dir, key) = (dir.clone(), lake_key.clone());
            async move {
                tokio::task::spawn_blocking(move || niji_lake::read_table(&dir, &table, &key))
                    .await
                    .map_err(|_| AnalysisError::Internal)?
                    .map_err(|_| AnalysisError::Internal)
            }
        };
        let mut extra = Vec::new();
        for t in &grant.tables {
            let batches = read_one(t.table.clone()).await?;
            let schema = niji_lake::table_schema(&t.table).ok_or(AnalysisError::Internal)?;
            tables.push(GrantedTable { dataset: grant.dataset.clone(), table: t.table.clone(), schema, batches });
        }
        if !spec.is_empty() {
            for needed in niji_lake::cohort::needed_tables(&spec) {
                if !grant.tables.iter().any(|t| t.table == needed) {
                    extra.push((needed.to_string(), read_one(needed.to_string()).await?));
                }
            }
        }
        cohort_tables.push(extra);
    }
    if spec.is_empty() {
        return Ok((tables, read));
    }
    // The cohort: persons from every dataset (linked persons are one person), then each granted
    // table restricted to them and to in-scope rows.
    let mut persons = std::collections::HashSet::new();
    for (i, grant) in policy.datasets.iter().enumerate() {
        let of_dataset: Vec<(&str, &[RecordBatch])> = tables
            .iter()
            .filter(|t| t.dataset == grant.dataset)
            .map(|t| (t.table.as_str(), t.batches.as_slice()))
            .chain(cohort_tables[i].iter().map(|(n, b)| (n.as_str(), b.as_slice())))
            .collect();
        persons.extend(niji_lake::cohort::cohort_persons(&spec, &of_dataset).map_err(|_| AnalysisError::Internal)?);
    }
    let mut restricted = Vec::with_capacity(tables.len());
    let datasets: Vec<String> = policy.datasets.iter().map(|d| d.dataset.clone()).collect();
    let snapshot: Vec<(String, String, Vec<RecordBatch>)> = tables.iter().map(|t| (t.dataset.clone(), t.table.clone(), t.batches.clone())).collect();
    for t in tables {
        let i = datasets.iter().position(|d| *d == t.dataset).unwrap_or(0);
        let of_dataset: Vec<(&str, &[RecordBatch])> = snapshot
            .iter()
            .filter(|(d, _, _)| *d == t.dataset)
            .map(|(_, n, b)| (n.as_str(), b.as_slice()))
            .chain(cohort_tables[i].iter().map(|(n, b)| (n.as_str(), b.as_slice())))
            .collect();
        let batches = niji_lake::cohort::restrict(&spec, &t.table, t.batches, &persons, &of_dataset).map_err(|_| AnalysisError::Internal)?;
        restricted.push(GrantedTable { batches, ..t });
    }
    Ok((restricted, read))
}

/// The permit's cohort in the lake's terms.
pub(crate) fn cohort_spec(policy: &PermitPolicy) -> niji_lake::cohort::CohortSpec {
    match &policy.cohort {
        None => niji_lake::cohort::CohortSpec::default(),
        Some(c) => niji_lake::cohort::CohortSpec {
            diseases: c.diseases.clone(),
            age: c.age.map(|a| (a.min, a.max)),
            period: c.period.map(|p| (p.from, p.to)),
        },
    }
}

/// The rules on a whole table that its shape alone decides (the NDB preset's three axes at most):
/// the code of the first the output breaks, judged from its run over empty tables, so that it is
/// refused before it reads the real data (no stop, no wait for its slot).
pub(crate) fn shape_refusal(shape: &niji_sandbox::AggregateResult, policy: &niji_review::PermitPolicy) -> Option<&'static str> {
    let preset: niji_sdc::Preset = policy.output_preset.parse().unwrap_or(niji_sdc::Preset::Ndb);
    let maximum = niji_sdc::Rules::preset(preset).max_dimensions?;
    (to_table(shape).dimensions.len() > maximum).then_some("too_many_dimensions")
}

/// Whether `user_id` is named on the permit or on any other version of its project: an output
/// checker who is (or was) one of its researchers may neither sign off its jobs nor clear its
/// stops, which every version shares.
pub(crate) async fn named_on_any_version(store: &niji_store::Store, permit_id: i64, user_id: i64) -> Result<bool, AnalysisError> {
    for version in store.permit_versions(permit_id).await.map_err(|_| AnalysisError::Internal)? {
        let policy: niji_review::PermitPolicy = serde_json::from_str(&version.policy).map_err(|_| AnalysisError::Internal)?;
        if policy.names(user_id) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The sandbox's result as a table to check: columns computed from aggregates are measures
/// (whatever their type), the others (group keys) dimensions; every cell counts the persons
/// behind it ([`niji_sandbox::AggregateResult::cell_persons`]), every row those of its group. A column the sandbox marks as a
/// magnitude (a sum or mean, or computed from one) is a [`MeasureKind::Sum`] measure with the two
/// largest single-person contributions and the total when the sandbox computed them, so that the
/// dominance and p-percent rules apply (without them, rules that need them fail the cell);
/// other measures are counts.
pub(crate) fn to_table(result: &niji_sandbox::AggregateResult) -> Table {
    let magnitude = |c: usize| result.magnitude.get(c).copied().unwrap_or(false);
    // A column computed from aggregates is a measure whatever its type (`min(birth_month)`,
    // `CAST(sum(x) AS VARCHAR)`): its text never becomes a released key (a value that does not
    // read as a number is checked as NaN). Without that mark (dummy rows), numeric columns are.
    let aggregated = |c: usize| result.aggregated.get(c).copied().unwrap_or(result.numeric[c]);
    let measure: Vec<bool> = (0..result.columns.len()).map(|c| aggregated(c) || magnitude(c)).collect();
    let dimensions: Vec<String> = result.columns.iter().zip(&measure).filter(|(_, m)| !**m).map(|(c, _)| c.clone()).collect();
    let measures: Vec<Measure> = result
        .columns
        .iter()
        .enumerate()
        .filter(|(c, _)| measure[*c])
        .map(|(c, name)| if magnitude(c) { Measure::new(name.clone(), MeasureKind::Sum) } else { Measure::count(name.clone()) })
        .collect();
    let mut table = Table::new(dimensions, measures);
    for (r, (row, row_persons)) in result.rows.iter().zip(&result.persons).enumerate() {
        let keys: Vec<String> =
            row.iter().zip(&measure).filter(|(_, m)| !**m).map(|(v, _)| if v.is_null() { String::new() } else { v.to_string() }).collect();
        let cells: Vec<Cell> = row
            .iter()
            .enumerate()
            .filter(|(c, _)| measure[*c])
            .map(|(c, v)| {
                // Never more than the row's persons, whatever the sandbox says.
                let persons = result.cell_persons.get(r).and_then(|p| p.get(c)).map_or(*row_persons, |p| (*p).min(*row_persons));
                let mut cell = Cell::new(v.to_string().parse().unwrap_or(f64::NAN), persons);
                if let Some(s) = result.cell_samples.get(r).and_then(|ss| ss.get(c)).cloned().flatten() {
                    cell = cell.with_sample(niji_sdc::CellSample { persons: s.persons, smallest: s.smallest });
                }
                if let Some(n) = result.cell_institutions.get(r).and_then(|ns| ns.get(c)).copied().flatten() {
                    cell = cell.with_institutions(n);
                }
                match result.contributions.get(r).and_then(|cs| cs.get(c)).copied().flatten() {
                    Some(k) if usable(&k) => cell.with_contributions([k.largest, k.second], k.total),
                    _ => cell,
                }
            })
            .collect();
        // A group's row, or a row of values, with no persons counted (an outer join's missing
        // ids): taken for one of few persons, never for a zero.
        let valued = cells.iter().any(|c| c.value != 0.0 && !c.value.is_nan());
        let row_persons = if *row_persons == 0 && (valued || result.grouped) { 1 } else { *row_persons };
        table.push_with_institutions(keys, cells, row_persons, result.institutions.get(r).copied().flatten());
    }
    table
}

/// Contributions the output check can use: finite, non-negative, largest first, within the total
/// (negative values, such as refunds, leave the magnitude's contributions unknown).
fn usable(k: &niji_sandbox::Contributions) -> bool {
    let finite = k.largest.is_finite() && k.second.is_finite() && k.total.is_finite();
    finite && k.second >= 0.0 && k.largest >= k.second && k.largest + k.second <= k.total + 1e-9 * k.total.abs().max(1.0)
}

#[cfg(test)]
mod tests {
    use niji_sandbox::{AggregateResult, Contributions, Scalar};
    use niji_sdc::{Outcome, Preset, Reason, Rules};

    use super::to_table;

    /// Two rows of `code, n, s` where `s` is a sum: in row 0 one person makes up 950 of 970; the
    /// contributions of row 1 are as given.
    fn result(second_row: Option<Contributions>) -> AggregateResult {
        let row = |code: &str, n: i64, s: i64| vec![Scalar::Utf8(Some(code.into())), Scalar::Int64(Some(n)), Scalar::Int64(Some(s))];
        AggregateResult {
            columns: vec!["code".into(), "n".into(), "s".into()],
            numeric: vec![false, true, true],
            rows: vec![row("C1", 40, 970), row("C2", 40, 900)],
            persons: vec![20, 20],
            cell_persons: vec![vec![20; 3]; 2],
            aggregated: vec![false, true, true],
            grouped: true,
            window: None,
            magnitude: vec![false, false, true],
            contributions: vec![vec![None, None, Some(Contributions { largest: 950.0, second: 10.0, total: 970.0 })], vec![None, None, second_row]],
            institutions: Vec::new(),
            cell_institutions: Vec::new(),
            cell_samples: vec![],
        }
    }

    fn has(reasons: &[Reason], r: &Reason) -> bool {
        reasons.iter().any(|x| std::mem::discriminant(x) == std::mem::discriminant(r))
    }

    /// Per row of `s`: the outcome, a reason it must have, a reason it must not have.
    fn check(preset: Preset, second_row: Option<Contributions>, expected: [(Outcome, Option<Reason>, Option<Reason>); 2]) {
        let checked = niji_sdc::check(&to_table(&result(second_row)), &Rules::preset(preset)).unwrap();
        for (row, (outcome, with, without)) in expected.into_iter().enumerate() {
            let v = checked.verdict(row, 1);
            assert_eq!(v.outcome, outcome, "row {row}: {v:?}");
            assert!(with.is_none_or(|r| has(&v.reasons, &r)), "row {row}: {v:?}");
            assert!(without.is_none_or(|r| !has(&v.reasons, &r)), "row {row}: {v:?}");
        }
    }

    #[test]
    fn a_sum_shown_as_text_is_checked_as_a_measure_not_released_as_a_key() {
        let mut r = result(None);
        r.rows = r
            .rows
            .into_iter()
            .map(|mut row| {
                row[2] = Scalar::Utf8(Some(format!("total {}", row[2])));
                row
            })
            .collect();
        r.numeric = vec![false, true, false];
        let table = to_table(&r);
        assert_eq!(table.dimensions, ["code"]);
        assert_eq!(table.measures.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["n", "s"]);
        let checked = niji_sdc::check(&table, &Rules::preset(Preset::Acro)).unwrap();
        let released = checked.released_table(&table);
        assert!(!format!("{:?}", released.rows).contains("total 970"), "{:?}", released.rows);
    }

    #[test]
    fn sums_are_checked_for_dominance_with_the_contributions_the_sandbox_computed() {
        let dominance = || Some(Reason::Dominance { n: 2, k: 0.9 });
        let missing = || Some(Reason::MissingContributions);
        // Row 1's own contributions pass (it is suppressed only so that row 0 cannot be
        // recomputed).
        let spread = Some(Contributions { largest: 40.0, second: 35.0, total: 900.0 });
        check(Preset::Acro, spread, [(Outcome::Suppressed, dominance(), None), (Outcome::Suppressed, None, dominance())]);
        let table = to_table(&result(spread));
        let checked = niji_sdc::check(&table, &Rules::preset(Preset::Acro)).unwrap();
        assert!(!has(&checked.verdict(1, 1).reasons, &Reason::MissingContributions));
        // Unknown (the exact count ran) or unusable (negative values): the rule cannot pass it.
        check(Preset::Acro, None, [(Outcome::Suppressed, dominance(), None), (Outcome::Suppressed, missing(), None)]);
        let negative = Some(Contributions { largest: 40.0, second: -5.0, total: 900.0 });
        check(Preset::Acro, negative, [(Outcome::Suppressed, dominance(), None), (Outcome::Suppressed, missing(), None)]);
        // The NDB rules have no dominance rule: persons decide.
        check(Preset::Ndb, None, [(Outcome::Released, None, None), (Outcome::Released, None, None)]);
    }

    #[test]
    fn the_institutions_the_sandbox_counted_reach_the_check() {
        // Row 0 from four institutions, its sum from two; row 1 from one.
        let mut r = result(None);
        r.institutions = vec![Some(4), Some(1)];
        r.cell_institutions = vec![vec![Some(4), Some(4), Some(2)], vec![Some(1); 3]];
        let table = to_table(&r);
        assert_eq!((table.rows[0].institutions, table.rows[0].cells[1].institutions), (Some(4), Some(2)));
        let checked = niji_sdc::check(&table, &Rules::preset(Preset::Ndb)).unwrap();
        assert_eq!(checked.verdict(0, 1).outcome, Outcome::Suppressed);
        assert!(has(&checked.verdict(0, 1).reasons, &Reason::FewInstitutions { institutions: 2, minimum: 3 }));
        // Row 1's keys would name the one institution's code: left out.
        assert!(checked.shows_keys(0) && !checked.shows_keys(1));
    }
}
