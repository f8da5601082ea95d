//! Criteria and tariff documents: defaults, round trips and validation errors.

mod common;

use niji_review::*;

fn with(replace: &str, by: &str) -> String {
    assert!(DEFAULT_CRITERIA_TOML.contains(replace), "{replace}");
    DEFAULT_CRITERIA_TOML.replacen(replace, by, 1)
}

#[test]
fn criteria_round_trip() {
    let c = Criteria::builtin();
    let text = c.to_toml();
    assert_eq!(Criteria::from_toml(&text).unwrap(), c, "{text}");
    let mut changed = c.clone().with_deadline(Tier::Full, 120).unwrap();
    changed.version = "2026.2".into();
    changed.escalations.small_population_below = None;
    changed.related_disease = RelatedDiseaseRule::SameCategory;
    assert_eq!(Criteria::from_toml(&changed.to_toml()).unwrap(), changed);
}

#[test]
fn criteria_validation_errors() {
    let check = |text: String, expected: CriteriaError| assert_eq!(Criteria::from_toml(&text), Err(expected));
    check(with("[tiers.light]", "[tiers.quick]"), CriteriaError::UnknownTier("quick".into()));
    check(with("deadline_days = 7", "deadline_days = -7"), CriteriaError::BadDeadline(Tier::Light));
    check(with("deadline_days = 30", "deadline_days = 10"), CriteriaError::DeadlinesDecrease(Tier::Standard));
    check(with("version = \"2026.1\"", "version = \" \""), CriteriaError::EmptyVersion);
    check(with("published = 2026-04-01", "published = 2026-04-01T09:00:00Z"), CriteriaError::BadPublished);
    check(with("min_members = 5", "min_members = 0"), CriteriaError::Committee("min_members must be at least 1"));
    check(with("numerator = 2", "numerator = 4"), CriteriaError::Committee("quorum must be a fraction in (0, 1]"));
    check(with("min_external = 2", "min_external = 6"), CriteriaError::Committee("min_external cannot exceed min_members"));
    let missing = with("[tiers.full]           # 本審査: different purpose (case 4)\ndeadline_days = 90\n", "");
    check(missing, CriteriaError::MissingTier(Tier::Full));
    for bad in [with("rule = \"same_block\"", "rule = \"same_family\""), with("genomic_data = true", "genomics = true"), "version = 1".into()] {
        assert!(matches!(Criteria::from_toml(&bad), Err(CriteriaError::Toml(_))), "{bad}");
    }
    assert_eq!(Criteria::builtin().with_deadline(Tier::Light, 20), Err(CriteriaError::DeadlinesDecrease(Tier::MedicalValidity)));
}

#[test]
fn tariff_round_trip_validation_and_estimates() {
    let t = Tariff::builtin();
    assert_eq!(Tariff::from_toml(&t.to_toml()).unwrap(), t);
    assert_eq!(t.review_fee(Tier::Notification), 0);
    assert!(matches!(Tariff::from_toml(&DEFAULT_TARIFF_TOML.replace("light = ", "quick = ")), Err(TariffError::UnknownTier(_))));
    assert!(matches!(Tariff::from_toml(&DEFAULT_TARIFF_TOML.replace("base_fee = 30000", "base_fee = -1")), Err(TariffError::Toml(_))));

    let mut a = common::application();
    a.variables.push(common::var("dpc", "encounters", "los"));
    let e = estimate(&a, &t, Tier::Standard);
    let yen: Vec<u64> = e.lines.iter().map(|l| l.yen).collect();
    assert_eq!(yen, [30_000, 40_000, 600_000, 60_000]);
    assert_eq!(e.total_yen, 730_000);
    assert_eq!(e.lines[3].label_ja, "審査手数料（通常審査）");
    assert_eq!(e.tariff_version, "2026.1");

    a.track = Track::AnonymizedExtract;
    assert_eq!(estimate(&a, &t, Tier::Notification).total_yen, 30_000 + 40_000 + 150_000);
    a.track = Track::StatisticsTables;
    assert_eq!(estimate(&a, &t, Tier::Full).lines[2].label_en, "Statistics tables");
    let mut huge = t.clone();
    huge.visiting_per_month = u64::MAX;
    a.track = Track::Visiting;
    assert_eq!(estimate(&a, &huge, Tier::Full).total_yen, u64::MAX);
}
