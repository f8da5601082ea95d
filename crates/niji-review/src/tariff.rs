//! The published, versioned tariff (手数料) and fee estimates.
//!
//! The tariff is a TOML document (default `tariff/2026.1.toml`, embedded as
//! [`DEFAULT_TARIFF_TOML`]): a base fee, a fee per dataset, a monthly fee on the Visiting track,
//! the fee of an anonymized extract, of statistics tables, and a review fee per tier. An
//! estimate lists its lines in Japanese and English; sums saturate rather than overflow.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::Date;

use crate::application::{Application, Track};
use crate::criteria::Tier;

/// The tariff Niji ships: version 2026.1.
pub const DEFAULT_TARIFF_TOML: &str = include_str!("../tariff/2026.1.toml");

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tariff {
    pub version: String,
    pub published: Date,
    pub base_fee: u64,
    pub per_dataset: u64,
    pub visiting_per_month: u64,
    pub anonymized_extract: u64,
    pub statistics_tables: u64,
    /// In [`Tier::ALL`] order.
    review_fee: [u64; 5],
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeLine {
    pub label_ja: String,
    pub label_en: String,
    pub yen: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeEstimate {
    pub lines: Vec<FeeLine>,
    pub total_yen: u64,
    pub tariff_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TariffError {
    #[error("tariff is not valid TOML or does not have the expected keys: {0}")]
    Toml(String),
    #[error("tariff version is empty")]
    EmptyVersion,
    #[error("tariff `published` must be a local date (YYYY-MM-DD)")]
    BadPublished,
    #[error("unknown tier {0:?} in review_fee")]
    UnknownTier(String),
    #[error("review_fee has no fee for tier {}", .0.as_str())]
    MissingTier(Tier),
}

impl Tariff {
    /// The tariff Niji ships ([`DEFAULT_TARIFF_TOML`]).
    pub fn builtin() -> Tariff {
        Tariff::from_toml(DEFAULT_TARIFF_TOML).expect("the embedded tariff is valid (tested)")
    }

    pub fn from_toml(text: &str) -> Result<Tariff, TariffError> {
        let raw: RawTariff = toml::from_str(text).map_err(|e| TariffError::Toml(e.message().to_owned()))?;
        if raw.version.trim().is_empty() {
            return Err(TariffError::EmptyVersion);
        }
        let published = crate::date::from_toml(&raw.published).ok_or(TariffError::BadPublished)?;
        if let Some(name) = raw.review_fee.keys().find(|name| name.parse::<Tier>().is_err()) {
            return Err(TariffError::UnknownTier(name.clone()));
        }
        let mut review_fee = [0u64; 5];
        for (i, tier) in Tier::ALL.into_iter().enumerate() {
            review_fee[i] = *raw.review_fee.get(tier.as_str()).ok_or(TariffError::MissingTier(tier))?;
        }
        Ok(Tariff {
            version: raw.version,
            published,
            base_fee: raw.base_fee,
            per_dataset: raw.per_dataset,
            visiting_per_month: raw.visiting_per_month,
            anonymized_extract: raw.anonymized_extract,
            statistics_tables: raw.statistics_tables,
            review_fee,
        })
    }

    /// The tariff as TOML that [`Tariff::from_toml`] reads back equal.
    pub fn to_toml(&self) -> String {
        let raw = RawTariff {
            version: self.version.clone(),
            published: crate::date::to_toml(self.published),
            base_fee: self.base_fee,
            per_dataset: self.per_dataset,
            visiting_per_month: self.visiting_per_month,
            anonymized_extract: self.anonymized_extract,
            statistics_tables: self.statistics_tables,
            review_fee: Tier::ALL.iter().map(|t| (t.as_str().to_owned(), self.review_fee(*t))).collect(),
        };
        toml::to_string(&raw).expect("tariff serializes to TOML")
    }

    pub fn review_fee(&self, tier: Tier) -> u64 {
        self.review_fee[Tier::ALL.iter().position(|t| *t == tier).unwrap_or(0)]
    }
}

/// The fees of an application reviewed at `tier`.
pub fn estimate(application: &Application, tariff: &Tariff, tier: Tier) -> FeeEstimate {
    let datasets = application.datasets().len() as u64;
    let months = u64::from(application.duration_months);
    let mut lines = vec![
        FeeLine { label_ja: "基本手数料".into(), label_en: "Base fee".into(), yen: tariff.base_fee },
        FeeLine {
            label_ja: format!("データセット利用料（{datasets} 件）"),
            label_en: format!("Datasets ({datasets})"),
            yen: tariff.per_dataset.saturating_mul(datasets),
        },
    ];
    lines.push(match application.track {
        Track::Visiting => FeeLine {
            label_ja: format!("Visiting解析環境利用料（{months} か月）"),
            label_en: format!("Visiting analysis environment ({months} months)"),
            yen: tariff.visiting_per_month.saturating_mul(months),
        },
        Track::AnonymizedExtract => {
            FeeLine { label_ja: "匿名加工情報の作成・提供".into(), label_en: "Anonymized extract".into(), yen: tariff.anonymized_extract }
        }
        Track::StatisticsTables => {
            FeeLine { label_ja: "統計表の作成".into(), label_en: "Statistics tables".into(), yen: tariff.statistics_tables }
        }
    });
    lines.push(FeeLine {
        label_ja: format!("審査手数料（{}）", tier.label_ja()),
        label_en: format!("Review fee ({})", tier.label_en()),
        yen: tariff.review_fee(tier),
    });
    let total_yen = lines.iter().fold(0u64, |sum, line| sum.saturating_add(line.yen));
    FeeEstimate { lines, total_yen, tariff_version: tariff.version.clone() }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTariff {
    version: String,
    published: toml::value::Datetime,
    base_fee: u64,
    per_dataset: u64,
    visiting_per_month: u64,
    anonymized_extract: u64,
    statistics_tables: u64,
    review_fee: BTreeMap<String, u64>,
}
