//! Incremental linkage against linking everything: a simulated vault takes runs of records from a
//! small pool of namesakes, twins, people whose names are written in one script only, people
//! who change surname or insurance number, and records with nothing identifying. One vault links
//! each run against every earlier record; the other reads back only the persons the run
//! reaches (`reach`, through bucket rows written with `cluster_buckets`, the anchors and the
//! joined keys, as `niji-vault`'s link index keeps them). Every run's keys must be the same.

use std::collections::{BTreeSet, HashMap, HashSet};

use niji_ingest::{Date, IdentifierKind, Identity, IdentityItem};
use niji_privacy::{
    cluster_buckets, link_set, prepare_all, reach, unit_anchors, LinkBucket, LinkRecord, LinkageConfig, PersonKey, PriorKeys, Pseudonymizer, UnitSet,
    UnitsOfRecords, VaultKey,
};
use proptest::prelude::*;

use IdentifierKind::*;

fn keys() -> Pseudonymizer {
    Pseudonymizer::new(&VaultKey::from_bytes(&[5; 32]).unwrap())
}

/// One record drawn from small alphabets, so that blocks, names and numbers collide.
#[derive(Debug, Clone)]
struct Draw {
    holder: u8,
    surname: u8,
    given: u8,
    /// 0: kanji and kana, 1: kanji only, 2: kana only, 3: kanji given name only, 4: none.
    scripts: u8,
    birth: u8,
    sex: u8,
    patient: Option<u8>,
    member: Option<u8>,
    postal: Option<u8>,
    address: Option<u8>,
    /// 公費受給者番号.
    public: Option<u8>,
    /// Without a birth date (no block).
    unborn: bool,
    /// Names written without a space between surname and given name (no given name known).
    unspaced: bool,
    /// The month it was observed (2024), if known: identical units read back with different
    /// dates are held once, with the earliest.
    month: Option<u8>,
}

fn draw() -> impl Strategy<Value = Draw> {
    (
        (0u8..2, 0u8..4, 0u8..4, 0u8..5, 0u8..2, 0u8..2),
        (proptest::option::of(0u8..4), proptest::option::of(0u8..3), proptest::option::of(0u8..2), proptest::option::of(0u8..2)),
        (proptest::option::weighted(0.15, 0u8..2), proptest::bool::weighted(0.1), any::<bool>(), proptest::option::of(0u8..3)),
    )
        .prop_map(|((holder, surname, given, scripts, birth, sex), (patient, member, postal, address), (public, unborn, unspaced, month))| {
            Draw { holder, surname, given, scripts, birth, sex, patient, member, postal, address, public, unborn, unspaced, month }
        })
}

/// Everyone born the same day, male, of the first holder, named 山田太郎 in both scripts, with
/// nothing else: the fixed cases change what they need.
fn base() -> Draw {
    Draw {
        holder: 0,
        surname: 0,
        given: 0,
        scripts: 0,
        birth: 0,
        sex: 0,
        patient: None,
        member: None,
        postal: None,
        address: None,
        public: None,
        unborn: false,
        unspaced: false,
        month: None,
    }
}

/// Links `runs` both ways; the first run whose keys differ, if any.
fn replay(runs: &[Vec<Draw>], config: &LinkageConfig) -> Result<(), String> {
    let (mut everything, mut reached) = (SimVault::default(), SimVault::default());
    for (i, run) in runs.iter().enumerate() {
        let records: Vec<LinkRecord> = run.iter().map(record).collect();
        let all = everything.run_everything(&records, config);
        let (some, _) = reached.run_reached(&records, config);
        if some != all {
            return Err(format!("run {i}: {some:?} reading back the persons reached, {all:?} reading back everyone"));
        }
    }
    Ok(())
}

fn record(d: &Draw) -> LinkRecord {
    // Endings shared and not: 郎/ウ twice, 子/コ, 美/ミ.
    const SURNAMES: [(&str, &str); 4] = [("山田", "ヤマダ"), ("佐藤", "サトウ"), ("鈴木", "スズキ"), ("田中", "タナカ")];
    const GIVEN: [(&str, &str); 4] = [("太郎", "タロウ"), ("花子", "ハナコ"), ("一郎", "イチロウ"), ("直美", "ナオミ")];
    let (sk, sn) = SURNAMES[d.surname as usize];
    let (gk, gn) = GIVEN[d.given as usize];
    let mut items: Vec<(IdentifierKind, &str, String)> = Vec::new();
    if matches!(d.scripts, 0 | 1) {
        items.push((NameKanji, "name", format!("{sk}{}{gk}", if d.unspaced { "" } else { " " })));
    }
    if matches!(d.scripts, 0 | 2) {
        items.push((NameKana, "name_kana", format!("{sn}{}{gn}", if d.unspaced { "" } else { " " })));
    }
    if d.scripts == 3 {
        items.push((NameKanji, "name.given", gk.to_string()));
    }
    if !d.unborn {
        items.push((BirthDate, "birth", ["19700302", "19700303"][d.birth as usize].to_string()));
    }
    items.push((Sex, "sex", ["1", "2"][d.sex as usize].to_string()));
    if let Some(p) = d.patient {
        items.push((PatientId, "pid", format!("{}", p + 1)));
    }
    if let Some(m) = d.member {
        items.push((InsurerNumber, "ins", "06132013".to_string()));
        items.push((InsuredSymbol, "sym", "1".to_string()));
        items.push((InsuredNumber, "num", format!("{}", m + 1)));
        items.push((BranchNumber, "br", "01".to_string()));
    }
    if let Some(p) = d.postal {
        items.push((PostalCode, "postal", ["100-0001", "150-0001"][p as usize].to_string()));
    }
    if let Some(a) = d.address {
        items.push((Address, "address", ["東京都千代田区千代田1-1", "東京都渋谷区渋谷2-2"][a as usize].to_string()));
    }
    if let Some(r) = d.public {
        items.push((PublicExpenseRecipient, "recipient", ["1234567", "7654321"][r as usize].to_string()));
    }
    LinkRecord {
        holder: ["H1", "H2"][d.holder as usize].to_string(),
        observed: d.month.map(|m| Date::new(2024, 1 + m, 1).unwrap()),
        identity: Identity { items: items.into_iter().map(|(kind, field, value)| IdentityItem { kind, field: field.into(), value }).collect() },
    }
}

/// What a vault keeps of earlier runs.
#[derive(Default)]
struct SimVault {
    /// Every record stored, in order, with the key it was stored under.
    records: Vec<(LinkRecord, PersonKey)>,
    /// Anchors in the order stored (the last wins).
    anchors: Vec<(PersonKey, PersonKey)>,
    buckets: HashSet<(LinkBucket, PersonKey)>,
    /// Stored key → current keys, where they differ (one key can be stored for two persons:
    /// namesakes kept apart get the key of their name).
    clusters: HashMap<PersonKey, BTreeSet<PersonKey>>,
    /// Whether the index covers every record (else the next run reads everything, rebuilds).
    stale: bool,
}

impl SimVault {
    /// Undoes the last run, as the intake undoes a version whose commit failed after the vault's:
    /// its records and anchors go, and the index is marked for a rebuild.
    fn undo(&mut self, records: usize, anchors: usize) {
        self.records.truncate(records);
        self.anchors.truncate(anchors);
        self.stale = true;
    }

    /// The persons records stored under `k` belong to now.
    fn currents(&self, k: PersonKey) -> Vec<PersonKey> {
        self.clusters.get(&k).map_or_else(|| vec![k], |s| s.iter().copied().collect())
    }

    /// One of them, as the vault reports a record's person.
    fn current(&self, k: PersonKey) -> PersonKey {
        self.currents(k)[0]
    }

    fn prior(&self, only: Option<&HashSet<PersonKey>>) -> PriorKeys {
        let mut prior = PriorKeys::default();
        for (a, p) in &self.anchors {
            if only.is_none_or(|o| o.contains(a)) {
                prior.insert(*a, *p);
            }
        }
        prior
    }

    /// Links `new` against every earlier record; returns the new records' keys.
    fn run_everything(&mut self, new: &[LinkRecord], config: &LinkageConfig) -> Vec<PersonKey> {
        let k = keys();
        let mut set = UnitSet::default();
        for (unit, (_, key)) in prepare_all(&self.records.iter().map(|r| r.0.clone()).collect::<Vec<_>>()).into_iter().zip(&self.records) {
            set.push_stored(unit.as_ref(), *key);
        }
        let mut later = UnitSet::default();
        let of: Vec<u32> = prepare_all(new).into_iter().map(|u| later.push(u)).collect();
        let moved = set.append(later);
        let linkage = link_set(&set, config, &k, &self.prior(None));
        let out: Vec<PersonKey> = of.iter().map(|&u| linkage.keys[moved.of(u as usize) as usize]).collect();
        self.records.extend(new.iter().cloned().zip(out.iter().copied()));
        self.anchors.extend(linkage.anchors);
        out
    }

    /// The units of records `read`, as the intake holds records read back: identical units
    /// once, in a set of their own, and each record's unit there.
    fn read_back(&self, read: &[usize]) -> (UnitSet, Vec<u32>) {
        let mut set = UnitSet::default();
        let unit_of = prepare_all(&read.iter().map(|&i| self.records[i].0.clone()).collect::<Vec<_>>()).into_iter().map(|u| set.push(u)).collect();
        set.close();
        (set, unit_of)
    }

    /// Reads back only the persons the new records reach, as the intake does.
    fn run_reached(&mut self, new: &[LinkRecord], config: &LinkageConfig) -> (Vec<PersonKey>, usize) {
        let k = keys();
        let new_units = prepare_all(new);
        let mut later = UnitSet::default();
        let of: Vec<u32> = new_units.into_iter().map(|u| later.push(u)).collect();
        let mut read: Vec<usize> = Vec::new();
        let mut persons: HashSet<PersonKey> = HashSet::new();
        let rebuild = std::mem::take(&mut self.stale);
        let anchors = loop {
            if rebuild {
                read = (0..self.records.len()).collect();
                break self.anchors.iter().map(|(a, _)| *a).collect::<HashSet<_>>();
            }
            let (read_set, unit_of) = self.read_back(&read);
            let units = UnitsOfRecords { units: read_set.units(), unit_of: &unit_of };
            let current: Vec<PersonKey> = read.iter().map(|&i| self.current(self.records[i].1)).collect();
            let wanted: HashSet<LinkBucket> = reach(&units, &current, later.units(), &k).into_iter().collect();
            let anchors: HashSet<PersonKey> = unit_anchors(&units, &k).into_iter().chain(unit_anchors(later.units(), &k)).collect();
            let mut found: HashSet<PersonKey> = self.buckets.iter().filter(|(b, _)| wanted.contains(b)).map(|(_, p)| *p).collect();
            found.extend(self.anchors.iter().filter(|(a, _)| anchors.contains(a)).map(|(_, p)| *p));
            // The keys found and every person they now stand for.
            let found: HashSet<PersonKey> =
                found.into_iter().flat_map(|p| std::iter::once(p).chain(self.currents(p))).filter(|p| !persons.contains(p)).collect();
            let more: Vec<usize> = (0..self.records.len())
                .filter(|i| {
                    let stored = self.records[*i].1;
                    found.contains(&stored) || self.currents(stored).iter().any(|p| found.contains(p))
                })
                .collect();
            persons.extend(found);
            if more.is_empty() {
                break anchors;
            }
            read.extend(more);
            read.sort_unstable();
            read.dedup();
        };
        let (read_set, unit_of) = self.read_back(&read);
        let units = UnitsOfRecords { units: read_set.units(), unit_of: &unit_of };
        let old_current: Vec<PersonKey> = read.iter().map(|&i| self.current(self.records[i].1)).collect();
        let retired = cluster_buckets(&units, &old_current.clone().into(), &k);
        let mut set = UnitSet::default();
        let stored: Vec<PersonKey> = read.iter().map(|&i| self.records[i].1).collect();
        let at: Vec<u32> = set.push_stored_units(&units, |i| stored[i], None);
        let moved = set.append(later);
        let linkage = link_set(&set, config, &k, &self.prior(Some(&anchors)));
        let out: Vec<PersonKey> = of.iter().map(|&u| linkage.keys[moved.of(u as usize) as usize]).collect();
        if rebuild {
            self.buckets.clear();
            self.clusters.clear();
        }
        for b in retired {
            self.buckets.remove(&b);
        }
        self.buckets.extend(cluster_buckets(set.units(), &linkage.keys, &k));
        // Per stored key read back, the persons its records belong to now, this run's records
        // stored under it among them; listed where that is not the key alone.
        let mut finals: HashMap<PersonKey, BTreeSet<PersonKey>> = HashMap::new();
        for (&i, &u) in read.iter().zip(&at) {
            finals.entry(self.records[i].1).or_default().insert(linkage.keys[u as usize]);
        }
        for key in &out {
            if let Some(f) = finals.get_mut(key) {
                f.insert(*key);
            }
        }
        for (stored, f) in finals {
            self.clusters.remove(&stored);
            if !(f.len() == 1 && f.contains(&stored)) {
                self.clusters.insert(stored, f);
            }
        }
        self.records.extend(new.iter().cloned().zip(out.iter().copied()));
        self.anchors.extend(linkage.anchors);
        (out, read.len())
    }
}

proptest! {
    // `REACH_CASES=20000` for a longer search.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("REACH_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn reading_back_the_persons_reached_gives_the_keys_of_reading_back_everyone(
        runs in proptest::collection::vec((proptest::collection::vec(draw(), 1..7), proptest::bool::weighted(0.2)), 2..6),
        small_groups in any::<bool>(),
    ) {
        // Groups of more than two clusters left to identifier links, or the default guard.
        let config = LinkageConfig { max_block_clusters: if small_groups { 2 } else { 2_000 }, ..LinkageConfig::default() };
        let (mut everything, mut reached) = (SimVault::default(), SimVault::default());
        for (i, (run, undone)) in runs.iter().enumerate() {
            let records: Vec<LinkRecord> = run.iter().map(record).collect();
            let (before, anchors_e, anchors_r) = (everything.records.len(), everything.anchors.len(), reached.anchors.len());
            let all = everything.run_everything(&records, &config);
            let (some, read) = reached.run_reached(&records, &config);
            prop_assert_eq!(&some, &all, "run {}", i);
            prop_assert!(read <= before);
            // Some runs are undone after their vault batch committed (a failed lake or
            // metadata commit): the next run must still give the keys of reading everything.
            if *undone {
                everything.undo(before, anchors_e);
                reached.undo(before, anchors_r);
            }
        }
    }
}

/// A review's case: two namesakes kept apart by their postal codes both get the key of their
/// name; later each is joined by a member id, so records stored under that one key now belong to
/// two persons. A record that conflicts with only one of them must meet both.
#[test]
fn a_key_stored_for_two_persons_leads_to_both() {
    let d = |scripts: u8, member: Option<u8>, postal: Option<u8>, address: Option<u8>| Draw {
        scripts,
        member,
        postal,
        address,
        unspaced: true,
        ..base()
    };
    for members in [(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)] {
        let runs = [
            vec![d(0, None, Some(0), Some(0))],
            vec![d(2, None, Some(1), None)],
            vec![d(1, Some(members.0), Some(0), None), d(2, Some(members.1), Some(1), None)],
            vec![d(1, None, None, Some(1))],
        ];
        if let Err(e) = replay(&runs, &LinkageConfig::default()) {
            panic!("members {members:?}: {e}");
        }
    }
}

/// A second review's case: a key whose records split, some staying with the key itself (a
/// namesake stored under the key of their name while the name's first bearer was joined to a
/// member id), must still be found as a person of its own, with every key now joined to it.
#[test]
fn a_key_that_keeps_some_of_its_records_is_still_a_person() {
    let d = |surname: u8, scripts: u8, member: Option<u8>, postal: Option<u8>| Draw { surname, scripts, member, postal, ..base() };
    let runs = [
        vec![d(0, 0, None, Some(0))],
        vec![d(0, 0, Some(0), Some(0))],
        vec![d(0, 0, None, Some(1))],
        vec![d(1, 0, None, None)],
        vec![d(1, 1, None, Some(1))],
        vec![d(1, 2, None, None)],
    ];
    replay(&runs, &LinkageConfig::default()).unwrap();
}

/// A third review's case: a run splits a person (a namesake with another patient number at
/// the same hospital takes one of its records), and is then undone after the vault committed
/// (its lake or metadata commit failed). The rows it retired led to the whole person: the next
/// run must rebuild the index to find it.
#[test]
fn a_split_that_is_undone_is_not_left_in_the_index() {
    let config = LinkageConfig::default();
    let kanji_at = |birth: u8, patient: Option<u8>| Draw { scripts: 1, birth, patient, ..base() };
    let (mut everything, mut reached) = (SimVault::default(), SimVault::default());
    let run = |v: &mut SimVault, draws: &[Draw], reading: bool| {
        let records: Vec<LinkRecord> = draws.iter().map(record).collect();
        if reading {
            v.run_reached(&records, &config).0
        } else {
            v.run_everything(&records, &config)
        }
    };
    // The person: a claim born B and one born B2 with the same patient number, and a registry
    // row born B with both scripts and no number.
    let person = [kanji_at(0, Some(0)), kanji_at(1, Some(0)), base()];
    assert_eq!(run(&mut reached, &person, true), run(&mut everything, &person, false));
    // The namesake with another patient number takes the registry row; then the run is undone.
    let (records, anchors_e, anchors_r) = (everything.records.len(), everything.anchors.len(), reached.anchors.len());
    let namesake = [Draw { patient: Some(1), ..base() }];
    assert_eq!(run(&mut reached, &namesake, true), run(&mut everything, &namesake, false));
    everything.undo(records, anchors_e);
    reached.undo(records, anchors_r);
    // Kana only, born B2: it meets the person through the registry row's kana.
    let later = [Draw { scripts: 2, birth: 1, ..base() }];
    let all = run(&mut everything, &later, false);
    assert_eq!(run(&mut reached, &later, true), all);
    // Without the rebuild the index would have lost the person's (B2, ウ) row.
    let mut forgetful = SimVault::default();
    run(&mut forgetful, &person, true);
    let (records, anchors) = (forgetful.records.len(), forgetful.anchors.len());
    run(&mut forgetful, &namesake, true);
    forgetful.undo(records, anchors);
    forgetful.stale = false;
    assert_ne!(run(&mut forgetful, &later, true), all, "the case needs the rebuild");
}
