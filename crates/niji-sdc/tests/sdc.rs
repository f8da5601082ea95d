//! Each preset's rules on small hand-made tables, secondary suppression against the
//! line-peeling attacker, and differencing against earlier releases.

mod common;

use common::{check, grid, peel, two_way};
use niji_sdc::{
    check_against_earlier, Cell, CellRef, Dominance, Measure, Outcome, Preset, Reason, Release, Rules, SdcError, Shown, Table, TableError,
};

fn one_way(cells: Vec<Cell>) -> Table {
    let mut t = Table::new(["prefecture"], vec![Measure::count("persons")]);
    for (i, cell) in cells.into_iter().enumerate() {
        t.push([format!("p{i}")], vec![cell]);
    }
    t
}

fn reasons(checked: &niji_sdc::Checked, row: usize, measure: usize) -> Vec<&'static str> {
    checked.verdict(row, measure).reasons.iter().map(Reason::code).collect()
}

#[test]
fn ndb_threshold_zeros_shown_institutions() {
    let table =
        one_way(vec![Cell::count(25), Cell::count(9), Cell::count(0), Cell::count(30).with_institutions(2), Cell::count(40).with_institutions(3)]);
    let c = check(&table, &Rules::preset(Preset::Ndb), &[".", "P", ".", "P", "."]);
    assert_eq!(c.verdict(1, 0).reasons, [Reason::BelowThreshold { persons: 9, threshold: 10 }]);
    assert_eq!(c.verdict(3, 0).reasons, [Reason::FewInstitutions { institutions: 2, minimum: 3 }]);
    assert_eq!(c.released_row(&table, 2), [Shown::Value(0.0)]);
    assert_eq!(c.released_row(&table, 1), [Shown::Suppressed]);
    assert!(c.passes());
    // The rows of nine and of no persons go with their keys; the summary counts the rows shown.
    assert!(!c.shows_keys(1) && !c.shows_keys(2) && c.shows_keys(3));
    assert_eq!((c.summary.cells, c.summary.released, c.summary.primary, c.summary.secondary), (3, 2, 1, 0));
}

#[test]
fn ndb_leaves_out_a_keyed_row_of_fewer_institutions_than_three() {
    // By facility prefecture: 13 from three institutions, 27 from one, 40 unknown.
    let mut table = Table::new(["facility_prefecture"], vec![Measure::count("n")]);
    table.push_with_institutions(["13"], vec![Cell::count(25).with_institutions(3)], 25, Some(3));
    table.push_with_institutions(["27"], vec![Cell::count(15).with_institutions(1)], 15, Some(1));
    table.push_with_institutions(["40"], vec![Cell::count(12)], 12, None);
    let ndb = niji_sdc::check(&table, &Rules::preset(Preset::Ndb)).unwrap();
    assert!(ndb.shows_keys(0) && !ndb.shows_keys(1) && ndb.shows_keys(2));
    assert_eq!(ndb.verdict(1, 0).reasons, [Reason::FewInstitutions { institutions: 1, minimum: 3 }]);
    assert_eq!(ndb.summary.cells, 2);
    // ACRO counts no institutions: every row shown.
    let acro = niji_sdc::check(&table, &Rules::preset(Preset::Acro)).unwrap();
    assert!((0..3).all(|r| acro.shows_keys(r)));
    // A row without keys is shown, its cell suppressed.
    let mut total = Table::new(Vec::<String>::new(), vec![Measure::count("n")]);
    total.push_with_institutions(Vec::<String>::new(), vec![Cell::count(15).with_institutions(2)], 15, Some(2));
    let c = niji_sdc::check(&total, &Rules::preset(Preset::Ndb)).unwrap();
    assert!(c.shows_keys(0));
    assert_eq!(c.released_row(&total, 0), [Shown::Suppressed]);
    // A row's institutions bound its cells': a caller giving only the row's still suppresses the
    // cell (else the total less the rows shown would give it back).
    let mut rows = Table::new(["sex"], vec![Measure::count("n")]);
    rows.push_with_institutions(["F"], vec![Cell::count(30)], 30, Some(5));
    rows.push_with_institutions(["M"], vec![Cell::count(20)], 20, Some(2));
    let c = niji_sdc::check(&rows, &Rules::preset(Preset::Ndb)).unwrap();
    assert_eq!(c.verdict(1, 0).reasons, [Reason::FewInstitutions { institutions: 2, minimum: 3 }]);
}

#[test]
fn ndb_refuses_more_than_three_axes() {
    let mut table = Table::new(["a", "b", "c", "d"], vec![Measure::count("n")]);
    table.push(["1", "1", "1", "1"], vec![Cell::count(50)]);
    let c = niji_sdc::check(&table, &Rules::preset(Preset::Ndb)).unwrap();
    assert_eq!(c.table_reasons, [Reason::TooManyDimensions { dimensions: 4, maximum: 3 }]);
    assert!(!c.passes());
    assert!(niji_sdc::check(&table, &Rules::preset(Preset::Acro)).unwrap().passes());
}

#[test]
fn acro_zeros_are_disclosive_and_get_a_complement() {
    let table = one_way(vec![Cell::count(20), Cell::count(0), Cell::count(15), Cell::count(30)]);
    let c = check(&table, &Rules::preset(Preset::Acro), &[".", "P", "S", "."]);
    assert_eq!(c.verdict(1, 0).reasons, [Reason::Zero]);
    assert_eq!(c.verdict(2, 0).reasons, [Reason::SecondarySuppression { because_of: CellRef { row: 1, measure: 0 } }]);
    assert!(c.passes());
}

/// A count and a cost (sum) per row, under ACRO.
fn costs(rows: &[(u64, [f64; 2], f64)]) -> Table {
    let mut t = Table::new(["hospital_type"], vec![Measure::count("persons"), Measure::sum("cost")]);
    for (i, &(persons, top, total)) in rows.iter().enumerate() {
        t.push([format!("h{i}")], vec![Cell::count(persons), Cell::new(total, persons).with_contributions(top, total)]);
    }
    t
}

#[test]
fn acro_dominance_n2_k09() {
    // Row 1: the two largest make 95 of 104 (> 90%): dominance; the count goes with it.
    let table = costs(&[(20, [10.0, 9.0], 200.0), (20, [50.0, 45.0], 104.0), (30, [10.0, 10.0], 300.0), (40, [5.0, 5.0], 400.0)]);
    // The complement is the row with the fewest persons (row 0).
    let c = check(&table, &Rules::preset(Preset::Acro), &["SS", "SP", "..", ".."]);
    assert_eq!(reasons(&c, 1, 1), ["dominance"]);
    assert_eq!(c.verdict(1, 0).reasons, [Reason::SameRow { because_of: CellRef { row: 1, measure: 1 } }]);
    // Exactly 90% is not dominance.
    let table = costs(&[(20, [50.0, 40.0], 100.0), (20, [10.0, 9.0], 200.0)]);
    check(&table, &Rules::preset(Preset::Acro), &["..", ".."]);
    // n = 1: only the largest counts.
    let rules = Rules { dominance: Some(Dominance { n: 1, k: 0.5 }), p_percent: None, ..Rules::preset(Preset::Acro) };
    let table = costs(&[(20, [60.0, 5.0], 100.0), (20, [40.0, 30.0], 100.0), (20, [10.0, 9.0], 200.0)]);
    let c = check(&table, &rules, &["SP", "SS", ".."]);
    assert_eq!(c.verdict(0, 1).reasons, [Reason::Dominance { n: 1, k: 0.5 }]);
}

#[test]
fn acro_p_percent() {
    // Without dominance: p-percent alone. Row 0: 100 − 60 − 35 = 5 < 0.1 × 60.
    let rules = Rules { dominance: None, ..Rules::preset(Preset::Acro) };
    let table = costs(&[(20, [60.0, 35.0], 100.0), (20, [60.0, 30.0], 100.0), (20, [10.0, 9.0], 200.0)]);
    let c = check(&table, &rules, &["SP", "SS", ".."]);
    assert_eq!(c.verdict(0, 1).reasons, [Reason::PPercent { p: 0.1 }]);
    // Under the full preset a p-percent cell is also dominated (with p = 0.1 and k = 0.9 the
    // one implies the other); both reasons are given.
    let c = niji_sdc::check(&table, &Rules::preset(Preset::Acro)).unwrap();
    assert_eq!(reasons(&c, 0, 1), ["dominance", "p_percent"]);
}

#[test]
fn acro_needs_contributions_for_magnitudes() {
    let mut t = Table::new(["k"], vec![Measure::sum("cost"), Measure::mean("age")]);
    t.push(["a"], vec![Cell::new(1000.0, 30), Cell::new(50.0, 30).with_contributions([90.0, 88.0], 1500.0)]);
    t.push(["b"], vec![Cell::new(1000.0, 30), Cell::new(50.0, 30)]);
    let c = niji_sdc::check(&t, &Rules::preset(Preset::Acro)).unwrap();
    assert_eq!(reasons(&c, 0, 0), ["missing_contributions"]);
    assert_eq!(reasons(&c, 1, 1), ["missing_contributions"]);
    // Under NDB (no magnitude rules) nothing is missing.
    check(&t, &Rules::preset(Preset::Ndb), &["..", ".."]);
}

#[test]
fn opensafely_redacts_at_or_below_7_then_rounds_to_5() {
    let table = one_way([8, 12, 13, 5, 6, 0, 100, 7].into_iter().map(Cell::count).collect());
    let c = check(&table, &Rules::preset(Preset::OpenSafely), &[".", ".", ".", "P", "P", ".", ".", "P"]);
    assert_eq!(c.verdict(3, 0).reasons, [Reason::SmallCount { at_or_below: 7 }]);
    let released: Vec<Shown> = (0..8).map(|r| c.released_row(&table, r)[0]).collect();
    let v = Shown::Value;
    assert_eq!(released, [v(10.0), v(10.0), v(15.0), Shown::Suppressed, Shown::Suppressed, v(0.0), v(100.0), Shown::Suppressed]);
    // The key of no persons is left out (a group exists only where rows do): 4 rows rounded.
    assert!(!c.shows_keys(5));
    assert_eq!(c.summary.rounded, 4);
    // Event counts: 6 prescriptions of 9 persons… cannot happen; 6 events of 6 persons is
    // redacted on either ground, and a small value of a count measure alone is redacted too.
    let mut t = Table::new(["k"], vec![Measure::count("prescriptions"), Measure::mean("dose")]);
    t.push(["a"], vec![Cell::new(5.0, 9), Cell::new(2.5, 9)]);
    t.push(["b"], vec![Cell::new(40.0, 9), Cell::new(2.5, 9)]);
    let c = check(&t, &Rules::preset(Preset::OpenSafely), &["PS", "SS"]);
    assert_eq!(c.released_row(&t, 1), [Shown::Suppressed, Shown::Suppressed]);
}

#[test]
fn secondary_suppression_3x3_with_margins() {
    let table = two_way(&[&[4, 20, 30], &[25, 22, 40], &[50, 35, 60]]);
    // Rows: r0c0 r0c1 r0c2 r0* | r1c0 r1c1 r1c2 r1* | r2c0 r2c1 r2c2 r2* | *c0 *c1 *c2 | **.
    let c = check(&table, &Rules::preset(Preset::Ndb), &["P", "S", ".", ".", "S", "S", ".", ".", ".", ".", ".", ".", ".", ".", ".", "."]);
    // Its row and its column each got a second suppression.
    let suppressed: Vec<&[String]> =
        (0..table.rows.len()).filter(|&r| common::hidden(&table, &c, r)).map(|r| table.rows[r].keys.as_slice()).collect();
    assert_eq!(suppressed, [["r0", "c0"], ["r0", "c1"], ["r1", "c0"], ["r1", "c1"]]);
    // Solving: every suppressed cell's row and column have ≥ 2 unknowns, so the margins recover nothing.
    for line in common::lines(&table) {
        let unknown = line.iter().filter(|&&r| common::hidden(&table, &c, r)).count();
        assert!(unknown == 0 || unknown >= 2, "line {line:?} has {unknown} unknowns");
    }
    assert_eq!(peel(&table, &c), Vec::<usize>::new());
    // Without secondary suppression the attacker recovers the small cell.
    let c = niji_sdc::check(&table, &Rules { secondary: false, ..Rules::preset(Preset::Ndb) }).unwrap();
    assert_eq!(grid(&c)[0], "P");
    assert_eq!(peel(&table, &c), [0]);
}

/// Two blocks of small cells joined by one small cell: every row and column holds two or more
/// suppressed cells, so line by line nothing is recovered, but the joining cell lies on no cycle
/// of suppressed cells and the lines' equations solved together give it away. It gets a
/// complement joining the two blocks: the smallest cell with its row in one and its column in
/// the other.
#[test]
fn a_cell_joining_two_blocks_of_suppressions_gets_a_complement() {
    let table = two_way(&[&[3, 4, 50, 60], &[5, 6, 7, 70], &[80, 90, 2, 3], &[55, 65, 4, 5]]);
    let c = niji_sdc::check(&table, &Rules::preset(Preset::Ndb)).unwrap();
    let hidden: Vec<[&str; 2]> = (0..table.rows.len())
        .filter(|&r| common::hidden(&table, &c, r))
        .map(|r| [table.rows[r].keys[0].as_str(), table.rows[r].keys[1].as_str()])
        .collect();
    let small = [["r0", "c0"], ["r0", "c1"], ["r1", "c0"], ["r1", "c1"], ["r1", "c2"], ["r2", "c2"], ["r2", "c3"], ["r3", "c2"], ["r3", "c3"]];
    let mut want: Vec<[&str; 2]> = small.to_vec();
    want.push(["r0", "c2"]);
    want.sort();
    let mut got = hidden.clone();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(grid(&c).iter().filter(|g| g.as_str() == "S").count(), 1);
    assert_eq!(peel(&table, &c), Vec::<usize>::new());
    assert_eq!(common::solve(&table, &c), Vec::<usize>::new());
}

/// The same two blocks joined by one cell, in a table without margins where no cell joins the
/// blocks otherwise (those combinations have no rows): the joining cell is still its row's total
/// less the block's, so the table is refused as a whole, with the reason in both languages.
#[test]
fn a_bridge_no_cell_can_join_refuses_the_table() {
    let mut table = Table::new(["row", "column"], vec![Measure::count("persons")]);
    for (r, c, n) in [
        ("r0", "c0", 3),
        ("r0", "c1", 4),
        ("r1", "c0", 5),
        ("r1", "c1", 6),
        ("r1", "c2", 7),
        ("r2", "c2", 2),
        ("r2", "c3", 3),
        ("r3", "c2", 4),
        ("r3", "c3", 5),
    ] {
        table.push([r, c], vec![Cell::count(n)]);
    }
    let c = niji_sdc::check(&table, &Rules::preset(Preset::Ndb)).unwrap();
    assert_eq!(c.table_reasons, [Reason::SolvableSuppression { cells: 1 }]);
    assert!(!c.passes());
    let reason = &c.table_reasons[0];
    assert_eq!(reason.code(), "solvable_suppression");
    assert!(reason.is_refusal() && !reason.is_primary());
    assert!(reason.text_ja().contains("連立") && reason.text_en().contains("solving"), "{} / {}", reason.text_ja(), reason.text_en());
    // Nothing of a refused table is shown, not even its cells that passed on their own.
    assert!(c.released_table(&table).rows.iter().all(|row| row.values.iter().all(|v| matches!(v, niji_sdc::Shown::Refused))));
}

/// A three-way table with every margin and a quarter of its cells small: its suppressed cells
/// share lines as one group, past what is audited by elimination, so it is audited by
/// hypercubes. The attacker who solves every line equation at once recovers nothing.
#[test]
fn a_large_three_way_table_is_audited_by_cubes() {
    let mut state = 0x6e69_6a69_6375_6265u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let side = 12;
    let cells: Vec<Vec<Vec<u64>>> = (0..side)
        .map(|_| (0..side).map(|_| (0..side).map(|_| if next() % 4 == 0 { 1 + next() % 9 } else { 10 + next() % 290 }).collect()).collect())
        .collect();
    let table = common::three_way(&cells);
    let checked = niji_sdc::check(&table, &Rules::preset(Preset::Ndb)).expect("check");
    let hidden = (0..table.rows.len()).filter(|&r| common::hidden(&table, &checked, r)).count();
    assert!(hidden > 400, "{hidden} suppressed cells: the group must pass the elimination's bound");
    assert!(checked.passes(), "{:?}", checked.table_reasons);
    assert_eq!(common::solve(&table, &checked), Vec::<usize>::new());
    assert_eq!(common::peel(&table, &checked), Vec::<usize>::new());
}

#[test]
fn secondary_suppression_reaches_margins_when_needed() {
    // A 2×1 table: the only complement in the row is its margin, which then needs one in
    // the margin row, and so on.
    let table = two_way(&[&[3], &[40]]);
    // r0c0 r0* r1c0 r1* *c0 **
    let c = niji_sdc::check(&table, &Rules::preset(Preset::Ndb)).unwrap();
    for line in common::lines(&table) {
        let unknown = line.iter().filter(|&&r| common::hidden(&table, &c, r)).count();
        assert!(unknown == 0 || unknown >= 2 || line.len() == 1, "line {line:?}");
    }
    assert_eq!(peel(&table, &c), Vec::<usize>::new());
}

/// Persons per prefecture for a cohort.
fn by_prefecture(cells: &[(&str, u64)]) -> Table {
    let mut t = Table::new(["prefecture"], vec![Measure::count("persons")]);
    for &(key, n) in cells {
        t.push([key], vec![Cell::count(n)]);
    }
    t
}

#[test]
fn differencing_against_an_earlier_release() {
    let rules = Rules::preset(Preset::Ndb);
    let a = by_prefecture(&[("東京都", 120), ("大阪府", 200), ("*", 320)]);
    let checked_a = niji_sdc::check(&a, &rules).unwrap();
    assert!(checked_a.passes());
    let release_a = Release::from_checked("A", &a, &checked_a);
    assert_eq!(release_a.rows.len(), 3);

    // Cohort X minus a filter: 2 persons fewer in Tokyo.
    let b = by_prefecture(&[("東京都", 118), ("大阪府", 200), ("*", 318)]);
    let c = check_against_earlier(&b, &rules, std::slice::from_ref(&release_a)).unwrap();
    assert_eq!(grid(&c), ["X", ".", "X"]);
    assert_eq!(c.verdict(0, 0).reasons, [Reason::Differencing { earlier_release: "A".into(), isolated: 2 }]);
    assert!(c.verdict(0, 0).reasons[0].text_en().contains("\"A\""));
    assert!(c.verdict(0, 0).reasons[0].text_ja().contains("「A」"));
    assert!(!c.passes());
    assert_eq!(c.released_row(&b, 0), [Shown::Refused]);

    // The same counts again, or a difference of at least the threshold: no refusal.
    assert!(check_against_earlier(&a, &rules, std::slice::from_ref(&release_a)).unwrap().passes());
    let far = by_prefecture(&[("東京都", 100), ("大阪府", 200), ("*", 300)]);
    assert!(check_against_earlier(&far, &rules, std::slice::from_ref(&release_a)).unwrap().passes());

    // Keys are matched as sets of values, in any order, whatever the dimensions are named
    // (callers may know only their positions).
    let mut two = Table::new(["sex", "prefecture"], vec![Measure::count("n")]);
    two.push(["F", "東京都"], vec![Cell::count(60)]);
    two.push(["M", "東京都"], vec![Cell::count(60)]);
    let checked_two = niji_sdc::check(&two, &rules).unwrap();
    let release_two = Release::from_checked("T", &two, &checked_two);
    let mut swapped = Table::new(["prefecture", "sex"], vec![Measure::count("n")]);
    swapped.push(["東京都", "F"], vec![Cell::count(59)]);
    swapped.push(["東京都", "M"], vec![Cell::count(60)]);
    let release_a_again = release_a.clone();
    let c = check_against_earlier(&swapped, &rules, &[release_a, release_two.clone()]).unwrap();
    assert_eq!(grid(&c), ["X", "."]);
    assert_eq!(c.verdict(0, 0).reasons, [Reason::Differencing { earlier_release: "T".into(), isolated: 1 }]);
    let mut positional = Table::new(["dimension_0", "dimension_1"], vec![Measure::count("n")]);
    positional.push(["東京都", "F"], vec![Cell::count(59)]);
    positional.push(["東京都", "M"], vec![Cell::count(60)]);
    let c = check_against_earlier(&positional, &rules, std::slice::from_ref(&release_two)).unwrap();
    assert_eq!(grid(&c), ["X", "."]);

    // A dimension of one value in every row is no key: a constant column added to the query
    // does not make another table.
    let mut padded = Table::new(["source", "prefecture"], vec![Measure::count("persons")]);
    for (key, n) in [("東京都", 117), ("大阪府", 200), ("*", 317)] {
        padded.push(["x", key], vec![Cell::count(n)]);
    }
    let c = check_against_earlier(&padded, &rules, std::slice::from_ref(&release_a_again)).unwrap();
    assert_eq!(grid(&c), ["X", ".", "X"]);
    // A one-row table is compared with every earlier one-row table: everyone, and everyone in
    // Tokyo but one.
    let total = by_prefecture(&[("*", 320)]);
    let release_total = Release::from_checked("total", &total, &niji_sdc::check(&total, &rules).unwrap());
    let mut tokyo = Table::new(["prefecture", "sex"], vec![Measure::count("persons")]);
    tokyo.push(["東京都", "any"], vec![Cell::count(319)]);
    let c = check_against_earlier(&tokyo, &rules, &[release_total]).unwrap();
    assert_eq!(grid(&c), ["X"]);
    // … and with the earlier row of its keys: Tokyo alone, pinned by the query, one person fewer.
    let pinned = by_prefecture(&[("東京都", 119)]);
    let c = check_against_earlier(&pinned, &rules, std::slice::from_ref(&release_a_again)).unwrap();
    assert_eq!(grid(&c), ["X"]);
    // A dimension repeated under another name is one key.
    let mut twice = Table::new(["prefecture", "again"], vec![Measure::count("persons")]);
    twice.push(["東京都", "東京都"], vec![Cell::count(118)]);
    twice.push(["大阪府", "大阪府"], vec![Cell::count(200)]);
    let c = check_against_earlier(&twice, &rules, std::slice::from_ref(&release_a_again)).unwrap();
    assert_eq!(grid(&c), ["X", "."]);
}

/// Linked tables: persons by prefecture with one small cell, a second cell suppressed so that
/// the total does not give it away; then the second cell asked alone (the query pins its
/// prefecture, or moves it into a filter under another key). Shown, it would give the small
/// cell as total − the others − it. The earlier release remembers the samples of the cells it
/// withheld, and a cell of (nearly) their persons is refused naming it.
#[test]
fn a_cell_suppressed_to_protect_another_is_not_released_later() {
    use niji_sdc::CellSample;
    let people = |ids: std::ops::Range<u32>| CellSample { persons: ids.len() as u64, smallest: ids.take(16).collect() };
    let cell = |ids: std::ops::Range<u32>| Cell::count(ids.len() as u64).with_sample(people(ids));
    let rules = Rules::preset(Preset::Ndb);
    let mut a = Table::new(["prefecture"], vec![Measure::count("persons")]);
    a.push(["鳥取県"], vec![cell(0..4)]);
    a.push(["島根県"], vec![cell(100..130)]);
    a.push(["岡山県"], vec![cell(200..260)]);
    a.push(["広島県"], vec![cell(300..400)]);
    let mut all: Vec<u32> = (0..4).chain(100..130).chain(200..260).chain(300..400).collect();
    all.sort();
    a.push(["*"], vec![Cell::count(all.len() as u64).with_sample(CellSample { persons: all.len() as u64, smallest: all[..16].to_vec() })]);
    let checked = niji_sdc::check(&a, &rules).unwrap();
    let hidden: Vec<usize> = (0..a.rows.len()).filter(|&r| !checked.is_released(r)).collect();
    assert_eq!(hidden.len(), 2, "{:?}", grid(&checked));
    let protecting = hidden[1];
    let sample = a.rows[protecting].cells[0].sample.clone().unwrap();
    let sampled = |s: &CellSample| Cell::count(s.persons).with_sample(s.clone());
    let release = Release::from_checked("A", &a, &checked);
    assert_eq!(release.withheld.len(), 1, "only the protecting row's cells");

    // Asked alone, under its own key or another: refused, naming the release.
    for key in [a.rows[protecting].keys[0].as_str(), "any"] {
        let mut alone = Table::new(["prefecture"], vec![Measure::count("persons")]);
        alone.push([key], vec![sampled(&sample)]);
        let c = check_against_earlier(&alone, &rules, std::slice::from_ref(&release)).unwrap();
        assert!(!c.passes());
        assert_eq!(c.verdict(0, 0).reasons, [Reason::RevealsWithheld { earlier_release: "A".into() }]);
        assert!(c.verdict(0, 0).reasons[0].text_ja().contains("「A」") && c.verdict(0, 0).reasons[0].text_en().contains("\"A\""));
        assert_eq!(c.verdict(0, 0).reasons[0].code(), "reveals_withheld");
    }
    // Its persons and others (a cell of the same code over a wider cohort): released; only the
    // same persons are compared (see the limits in `differencing`).
    let mut more = Table::new(["prefecture"], vec![Measure::count("persons")]);
    more.push(["any"], vec![sampled(&CellSample { persons: sample.persons + 7, smallest: sample.smallest.clone() })]);
    assert!(check_against_earlier(&more, &rules, std::slice::from_ref(&release)).unwrap().passes());
    // As many other persons: released. So is the same cell once another release showed it (it
    // is public), and anything when the release kept no withheld cells (before this rule).
    let mut others = Table::new(["prefecture"], vec![Measure::count("persons")]);
    others.push(["any"], vec![cell(1000..1000 + sample.persons as u32)]);
    assert!(check_against_earlier(&others, &rules, std::slice::from_ref(&release)).unwrap().passes());
    let mut alone = Table::new(["prefecture"], vec![Measure::count("persons")]);
    alone.push(["any"], vec![sampled(&sample)]);
    let shown = Release::from_checked("B", &alone, &niji_sdc::check(&alone, &rules).unwrap());
    assert!(check_against_earlier(&alone, &rules, &[release.clone(), shown]).unwrap().passes());
    let forgetful = Release { withheld: Vec::new(), ..release };
    assert!(check_against_earlier(&alone, &rules, &[forgetful]).unwrap().passes());
    // The other way round: the cell shown first, then the table whose secondary suppression
    // picks it. Refused, naming the release that showed it.
    let shown_first = Release::from_checked("B", &alone, &niji_sdc::check(&alone, &rules).unwrap());
    let c = check_against_earlier(&a, &rules, std::slice::from_ref(&shown_first)).unwrap();
    assert!(!c.passes());
    assert!(c.verdict(protecting, 0).reasons.contains(&Reason::RevealsWithheld { earlier_release: "B".into() }), "{:?}", c.verdict(protecting, 0));
    // Rows withheld for their own values are not remembered (asked again they are suppressed
    // again; the cells withheld with them tell nothing of them).
    let mut small = Table::new(["prefecture"], vec![Measure::count("persons")]);
    small.push(["鳥取県"], vec![cell(0..4)]);
    small.push(["島根県"], vec![cell(100..105)]);
    let checked = niji_sdc::check(&small, &rules).unwrap();
    assert!((0..2).all(|r| !checked.is_released(r) && !checked.protects(r)));
    assert!(Release::from_checked("C", &small, &checked).withheld.is_empty());
}

/// The cell chosen to protect another does not depend on the order the rows came in: the same
/// query run twice without `ORDER BY` must not protect with one cell, then with the other.
#[test]
fn secondary_suppression_picks_the_same_cell_in_any_row_order() {
    let rows = [("鳥取県", 4), ("島根県", 30), ("岡山県", 30), ("広島県", 30)];
    let mut chosen = Vec::new();
    for order in [[0, 1, 2, 3], [3, 2, 1, 0], [0, 2, 3, 1]] {
        let table = by_prefecture(&order.map(|i| rows[i]));
        let c = niji_sdc::check(&table, &Rules::preset(Preset::Ndb)).unwrap();
        let protecting: Vec<String> = (0..4).filter(|&r| c.protects(r)).map(|r| table.rows[r].keys[0].clone()).collect();
        chosen.push(protecting);
    }
    assert_eq!(chosen[0].len(), 1);
    assert!(chosen.iter().all(|c| c == &chosen[0]), "{chosen:?}");
}

/// A table without keys (`SELECT count(*) … GROUP BY code`) is one line whose total is asked
/// apart: a row left out for its few persons gets a second row withheld with it, the same one
/// whatever the order of the rows (by persons, then by persons sample).
#[test]
fn a_table_without_keys_gets_a_second_suppression() {
    use niji_sdc::CellSample;
    let cell = |ids: std::ops::Range<u32>| {
        Cell::count(ids.len() as u64).with_sample(CellSample { persons: ids.len() as u64, smallest: ids.take(16).collect() })
    };
    let rows = [0..4, 500..530, 100..130, 200..260];
    let mut chosen = Vec::new();
    for order in [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]] {
        let mut t = Table::new(Vec::<String>::new(), vec![Measure::count("n")]);
        for i in order {
            t.push(Vec::<String>::new(), vec![cell(rows[i].clone())]);
        }
        let c = niji_sdc::check(&t, &Rules::preset(Preset::Ndb)).unwrap();
        let withheld: Vec<u64> = (0..4).filter(|&r| !c.is_released(r)).map(|r| t.rows[r].cells[0].persons).collect();
        assert_eq!(withheld.iter().sum::<u64>(), 34, "the small row and one of 30: {withheld:?}");
        let protecting: Vec<u32> = (0..4).filter(|&r| c.protects(r)).map(|r| t.rows[r].cells[0].sample.as_ref().unwrap().smallest[0]).collect();
        chosen.push(protecting);
    }
    assert_eq!(chosen[0], [100], "the smaller sample of the two rows of 30");
    assert!(chosen.iter().all(|c| c == &chosen[0]), "{chosen:?}");
}

#[test]
fn releases_remember_only_published_rows() {
    let rules = Rules::preset(Preset::Acro);
    let a = by_prefecture(&[("東京都", 3), ("大阪府", 200), ("京都府", 150), ("*", 353)]);
    let checked = niji_sdc::check(&a, &rules).unwrap();
    let release = Release::from_checked("A", &a, &checked);
    let kept: Vec<&str> = release.rows.iter().map(|r| r.keys[0].as_str()).collect();
    assert_eq!(kept, ["大阪府", "*"]);
    // A suppressed row is not compared (Tokyo's 5 are suppressed anyway), but the published
    // totals differ by 2: the margin is refused.
    let b = by_prefecture(&[("東京都", 5), ("大阪府", 200), ("京都府", 150), ("*", 355)]);
    let c = check_against_earlier(&b, &rules, &[release]).unwrap();
    assert_eq!(grid(&c), ["P", ".", "S", "X"]);
    assert_eq!(c.verdicts().filter(|v| v.outcome == Outcome::Refused).count(), 1);
}

#[test]
fn shape_errors_are_located() {
    let mut t = Table::new(["a", "b"], vec![Measure::count("n")]);
    t.push(["x", "y"], vec![Cell::count(10)]);
    t.push(["x"], vec![Cell::count(10)]);
    assert_eq!(niji_sdc::check(&t, &Rules::preset(Preset::Ndb)), Err(SdcError::Table(TableError::Keys { row: 1, expected: 2, found: 1 })));
    let mut t = Table::new(["a"], vec![Measure::sum("s")]);
    t.push(["x"], vec![Cell::new(10.0, 20).with_contributions([3.0, 5.0], 10.0)]);
    assert_eq!(niji_sdc::check(&t, &Rules::preset(Preset::Acro)), Err(SdcError::Table(TableError::Contributions { row: 0, measure: 0 })));
    let bad = Rules { p_percent: Some(2.0), ..Rules::preset(Preset::Acro) };
    assert!(matches!(niji_sdc::check(&t, &bad), Err(SdcError::Rules(_))));
}

/// Under `ORDER BY count(*) DESC` a withheld count between two released ones would be bounded
/// by them (and with it the small cell it protects): withheld rows come last, by their keys,
/// wherever their values put them.
#[test]
fn withheld_rows_come_last_by_key_whatever_their_values() {
    let check = |counts: [u64; 6]| {
        let mut t = Table::new(["sex", "code"], vec![Measure::count("n")]);
        let keys = [["f", "C1"], ["m", "C1"], ["f", "C2"], ["m", "C2"], ["f", "C3"], ["m", "C3"]];
        // Rows in the order the query sorted them (by count, descending).
        let mut rows: Vec<([&str; 2], u64)> = keys.into_iter().zip(counts).collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.1));
        for (k, n) in &rows {
            t.push(*k, vec![Cell::count(*n)]);
        }
        let c = niji_sdc::check(&t, &Rules::preset(Preset::Ndb)).unwrap();
        let released = c.released_table(&t);
        let suppressed: Vec<String> = released.rows.iter().filter(|r| r.values == [Shown::Suppressed]).map(|r| r.keys.join("/")).collect();
        let released_keys: Vec<String> = released.rows.iter().map(|r| r.keys.join("/")).collect();
        (released_keys, suppressed)
    };
    // C1 of men is small (left out); f/C1, f/C2 and m/C2 are suppressed to protect it. In
    // the query's order f/C1 (90) would come first and f/C2 between 80 and 50.
    let (order, suppressed) = check([90, 4, 60, 50, 80, 70]);
    assert_eq!(suppressed, ["f/C1", "f/C2", "m/C2"]);
    assert_eq!(order, ["f/C3", "m/C3", "f/C1", "f/C2", "m/C2"]);
    // Other counts, other places in the query's order: the withheld rows stay where they were.
    let (order, suppressed) = check([90, 4, 60, 50, 85, 95]);
    assert_eq!(suppressed, ["f/C1", "f/C2", "m/C2"]);
    assert_eq!(order, ["m/C3", "f/C3", "f/C1", "f/C2", "m/C2"]);
}

/// Under a rounding preset, rows whose counts show the same keep no exact order among
/// themselves: `ORDER BY count(*)` would tell 12 from 11 where both show as 10.
#[test]
fn rows_whose_rounded_counts_are_equal_are_released_by_key() {
    let released = |counts: &[(&str, u64)]| {
        let mut t = Table::new(["code"], vec![Measure::count("n")]);
        for (k, n) in counts {
            t.push([*k], vec![Cell::count(*n)]);
        }
        let c = niji_sdc::check(&t, &Rules::preset(Preset::OpenSafely)).unwrap();
        c.released_table(&t).rows.into_iter().map(|r| (r.keys[0].clone(), r.values[0])).collect::<Vec<_>>()
    };
    // In the query's order (count descending): C (48), then B (12) before A (11).
    let out = released(&[("C", 48), ("B", 12), ("A", 11)]);
    let keys: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["C", "A", "B"], "{out:?}");
    assert_eq!(out[1].1, out[2].1, "A and B show the same rounded count");
    // The same rows with B and A swapped in exact value release in the same order.
    let again = released(&[("C", 48), ("A", 12), ("B", 11)]);
    assert_eq!(again.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["C", "A", "B"]);
}

#[test]
fn released_table_leaves_out_rows_of_few_persons_keys_and_all() {
    // p1 has three persons: its key would tell that someone has it. p2 is suppressed only so
    // that p1 cannot be recomputed from the margin: its key stays.
    let table = one_way(vec![Cell::count(20), Cell::count(3), Cell::count(15)]);
    let c = niji_sdc::check(&table, &Rules::preset(Preset::Ndb)).unwrap();
    let released = c.released_table(&table);
    let keys: Vec<&str> = released.rows.iter().map(|r| r.keys[0].as_str()).collect();
    assert_eq!(keys, ["p0", "p2"]);
    assert_eq!(released.rows[0].values, [Shown::Value(20.0)]);
    assert_eq!(released.rows[1].values, [Shown::Suppressed]);
    assert_eq!(c.verdict(2, 0).reasons, [Reason::SecondarySuppression { because_of: CellRef { row: 1, measure: 0 } }]);
    assert_eq!(c.verdict_grid().len(), 3);

    // A row's own persons decide, not its cells': a large group whose only cell counts a few
    // (`count(*) FILTER (…)`) keeps its key. A margin of a few persons goes too (`*` may be a
    // data value, and the total tells that they exist), and so does a keyed row of none (its
    // persons were not counted: an outer join's missing ids).
    let mut t = Table::new(["sex", "code"], vec![Measure::count("n")]);
    t.push_with_persons(["female", "C1"], vec![Cell::count(2)], 40);
    t.push(["male", "C1"], vec![Cell::count(4)]);
    t.push(["*", "*"], vec![Cell::count(6)]);
    t.push(["male", "C2"], vec![Cell::count(0)]);
    let c = niji_sdc::check(&t, &Rules::preset(Preset::Ndb)).unwrap();
    let shown: Vec<bool> = (0..4).map(|r| c.shows_keys(r)).collect();
    assert_eq!(shown, [true, false, false, false]);
    assert!(!c.is_released(0), "the cell of two persons is still suppressed");
    assert_eq!(c.released_table(&t).rows.len(), 1);
    // Without keys: a row of no one is a zero and is shown; one of a few is left out, so that
    // `GROUP BY code` without the code in the output does not list one row per rare code.
    let mut t = Table::new(Vec::<String>::new(), vec![Measure::count("n")]);
    t.push(Vec::<String>::new(), vec![Cell::count(0)]);
    t.push(Vec::<String>::new(), vec![Cell::count(3)]);
    let c = niji_sdc::check(&t, &Rules::preset(Preset::Ndb)).unwrap();
    assert_eq!((c.shows_keys(0), c.shows_keys(1)), (true, false));
    // A LIMIT over the rows shown: the left-out row takes no place, and the suppressed one
    // (p2) comes after the released ones.
    let t = one_way(vec![Cell::count(20), Cell::count(3), Cell::count(15), Cell::count(30), Cell::count(40)]);
    let mut c = niji_sdc::check(&t, &Rules::preset(Preset::Ndb)).unwrap();
    c.keep_window(&t, 1, Some(2));
    let kept: Vec<String> = c.released_table(&t).rows.into_iter().map(|r| r.keys[0].clone()).collect();
    assert_eq!(kept, ["p3", "p4"]);
    assert_eq!(c.summary.cells, 2);
    // A value with no one counted behind it is suppressed, never shown as it is.
    let mut t = Table::new(Vec::<String>::new(), vec![Measure::count("n")]);
    t.push(Vec::<String>::new(), vec![Cell::new(57.0, 0)]);
    let c = niji_sdc::check(&t, &Rules::preset(Preset::Ndb)).unwrap();
    assert_eq!(c.verdict(0, 0).reasons, [Reason::BelowThreshold { persons: 0, threshold: 10 }]);
}
