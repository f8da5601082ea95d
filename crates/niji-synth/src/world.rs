//! The fixed world a run takes place in, drawn once from the seed: the hospitals that hold
//! data (with 10-digit 医療機関コード and names like 〇〇市立病院), the insurers (協会けんぽ
//! branches, 健保組合, 共済, 国保 of every municipality, 後期高齢者医療広域連合), the way each
//! holder's system writes names and dates, and the samplers over the reference tables.

use std::collections::HashSet;

use niji_core::InsurerNumber;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use time::Date;

use crate::calendar::ymd;
use crate::random::{world_rng, Weighted};
use crate::tables::{Tables, PREVALENCE_BANDS};

/// The observation period: whole calendar years from `start` to `end` inclusive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Period {
    pub start_year: i32,
    pub start: Date,
    pub end: Date,
    pub months: u32,
}

impl Period {
    pub(crate) fn new(start_year: i32, end_year: i32) -> Self {
        Self { start_year, start: ymd(start_year, 1, 1), end: ymd(end_year, 12, 31), months: ((end_year - start_year + 1) * 12) as u32 }
    }
}

/// How one holder's system writes identifying fields. Drawn once per holder, so the same
/// person looks different at different holders but alike within one.
#[derive(Debug, Clone)]
pub(crate) struct HolderStyle {
    /// Between surname and given name: full-width space, half-width space or nothing.
    pub name_separator: &'static str,
    /// Kana stored half-width (ﾜﾀﾅﾍﾞ), as older systems do.
    pub kana_halfwidth: bool,
    /// Keeps a person's registered 異体字 (渡邊); otherwise writes the common form (渡辺).
    pub keeps_itaiji: bool,
    /// Share of UKE birth dates written as 和暦 `GYYMMDD` (old レセコン).
    pub wareki_share: f64,
    /// Block numbers as 1丁目2番3号 rather than 1-2-3.
    pub address_in_kanji: bool,
    /// Digits in addresses and insurance card numbers full-width (１−２−３).
    pub digits_fullwidth: bool,
    /// Phone numbers with hyphens (03-1234-5678) or without.
    pub phone_hyphens: bool,
    /// How dates are typed into the registry's spreadsheet.
    pub registry_date: RegistryDate,
}

/// Date forms of registry spreadsheets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegistryDate {
    /// 1970-03-02
    Iso,
    /// 1970/03/02
    Slashed,
    /// 昭和45年3月2日
    WarekiKanji,
    /// S45.03.02
    WarekiShort,
}

impl HolderStyle {
    pub(crate) fn draw(rng: &mut ChaCha8Rng) -> Self {
        let old_system = rng.gen_bool(0.3);
        Self {
            name_separator: match rng.gen_range(0..20) {
                0..=11 => "　",
                12..=16 => " ",
                _ => "",
            },
            kana_halfwidth: rng.gen_bool(if old_system { 0.6 } else { 0.1 }),
            keeps_itaiji: rng.gen_bool(0.5),
            wareki_share: if old_system { rng.gen_range(0.5..1.0) } else { rng.gen_range(0.0..0.05) },
            address_in_kanji: rng.gen_bool(0.5),
            digits_fullwidth: rng.gen_bool(0.3),
            phone_hyphens: rng.gen_bool(0.8),
            registry_date: match rng.gen_range(0..10) {
                0..=3 => RegistryDate::Slashed,
                4..=5 => RegistryDate::Iso,
                6..=7 => RegistryDate::WarekiKanji,
                _ => RegistryDate::WarekiShort,
            },
        }
    }
}

/// A hospital that hands in data.
#[derive(Debug, Clone)]
pub(crate) struct Hospital {
    /// 10-digit 医療機関コード: 都道府県 2 + 点数表 1 (医科) + 郡市区 2 + 番号 4 + check 1.
    pub code: String,
    pub name: String,
    pub prefecture: u8,
    pub address: String,
    pub postal_code: String,
    pub phone: String,
    pub beds: u32,
    /// Id of the hospital's Organization resource.
    pub(crate) organization_id: crate::random::Uuid,
    pub(crate) style: HolderStyle,
    /// How the hospital's registry staff fill in the 学会 registry's forms.
    pub(crate) registry_style: HolderStyle,
    /// Hands out drugs itself (IY records on outpatient claims) rather than 院外処方.
    pub in_house_dispensing: bool,
    /// Multiplier and offset of the bijection that turns person indices into this
    /// hospital's 10-digit patient numbers (unique, stateless, not the person index).
    patient_key: (u64, u64),
}

/// Patient and registry numbers have 10 digits.
const NUMBER_SPACE: u64 = 10_000_000_000;

/// An affine bijection of `0..NUMBER_SPACE`: the multiplier is odd and not a multiple of 5,
/// so it is invertible modulo 10^10.
fn permutation_key(rng: &mut impl Rng) -> (u64, u64) {
    let a = loop {
        let a = rng.gen_range(1..NUMBER_SPACE);
        if a % 2 == 1 && a % 5 != 0 {
            break a;
        }
    };
    (a, rng.gen_range(0..NUMBER_SPACE))
}

fn permute((a, b): (u64, u64), n: u64) -> u64 {
    ((n as u128 * a as u128 + b as u128) % NUMBER_SPACE as u128) as u64
}

impl Hospital {
    /// This hospital's patient number (患者ID / カルテ番号) for a person: 10 digits, unique
    /// within the hospital.
    pub(crate) fn patient_number(&self, person: u64) -> u64 {
        permute(self.patient_key, person)
    }

    /// The 7-digit part of the 医療機関コード (after 都道府県 and 点数表).
    pub(crate) fn institution_number(&self) -> &str {
        &self.code[3..]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InsurerKind {
    /// 全国健康保険協会 (協会けんぽ), 法別 01, one branch per prefecture.
    Kyokai,
    /// 健康保険組合, 法別 06.
    Kumiai,
    /// 共済組合, 法別 31-34.
    Kyosai,
    /// 国民健康保険 of a municipality (6-digit number).
    Kokuho,
    /// 後期高齢者医療広域連合, 法別 39, for people aged 75 and over.
    Koki,
}

#[derive(Debug, Clone)]
pub(crate) struct Insurer {
    pub number: InsurerNumber,
    pub kind: InsurerKind,
}

/// Every insurer of the world, with the samplers used to enrol people.
#[derive(Debug)]
pub(crate) struct Insurers {
    pub all: Vec<Insurer>,
    kyokai_by_prefecture: Vec<usize>,
    koki_by_prefecture: Vec<usize>,
    kokuho_by_municipality: Vec<usize>,
    employers: Vec<usize>,
    employer_weights: Weighted,
}

impl Insurers {
    fn draw(tables: &Tables, count: u32, rng: &mut ChaCha8Rng) -> Self {
        let mut all = Vec::new();
        let mut kyokai_by_prefecture = vec![usize::MAX; 48];
        let mut koki_by_prefecture = vec![usize::MAX; 48];
        for p in &tables.prefectures {
            kyokai_by_prefecture[p.code as usize] = all.len();
            all.push(Insurer { number: InsurerNumber::from_parts(1, p.code, 1), kind: InsurerKind::Kyokai });
            koki_by_prefecture[p.code as usize] = all.len();
            all.push(Insurer { number: InsurerNumber::from_parts(39, p.code, 100 + p.code as u16), kind: InsurerKind::Koki });
        }
        // 国保: prefecture 2 digits + a 3-digit serial per municipality + check digit.
        let mut serial = [0u32; 48];
        let mut kokuho_by_municipality = Vec::with_capacity(tables.municipalities.len());
        for m in &tables.municipalities {
            let pref = m.prefecture_code as usize;
            serial[pref] += 1;
            let body = m.prefecture_code as u32 * 1000 + (serial[pref] % 1000);
            kokuho_by_municipality.push(all.len());
            all.push(Insurer { number: InsurerNumber::kokuho(body), kind: InsurerKind::Kokuho });
        }
        // 健保組合 and 共済: seated mostly where companies are (Tokyo and Osaka weigh more).
        let seat = Weighted::new(tables.prefectures.iter().map(|p| match p.code {
            13 => p.population * 4.0,
            27 | 23 => p.population * 1.5,
            _ => p.population,
        }))
        .expect("prefectures have population");
        let mut used = HashSet::new();
        let mut employers = Vec::new();
        for _ in 0..count {
            let prefecture = tables.prefectures[seat.sample(rng)].code;
            let (houbetsu, kind) =
                if rng.gen_bool(0.8) { (6, InsurerKind::Kumiai) } else { ([31, 32, 32, 32, 33, 34][rng.gen_range(0..6)], InsurerKind::Kyosai) };
            let mut n = rng.gen_range(1..1000u16);
            let mut tries = 0;
            while !used.insert((houbetsu, prefecture, n)) && tries < 2000 {
                n = n % 999 + 1;
                tries += 1;
            }
            employers.push(all.len());
            all.push(Insurer { number: InsurerNumber::from_parts(houbetsu, prefecture, n), kind });
        }
        // Members per employer insurer follow a long tail: a few large ones, many small.
        let employer_weights = Weighted::new((0..employers.len()).map(|r| 1.0 / (r as f64 + 1.0).powf(0.8)))
            .unwrap_or_else(|| Weighted::new([1.0]).expect("one weight"));
        Self { all, kyokai_by_prefecture, koki_by_prefecture, kokuho_by_municipality, employers, employer_weights }
    }

    pub(crate) fn kyokai(&self, prefecture: u8) -> usize {
        self.kyokai_by_prefecture[prefecture as usize]
    }

    pub(crate) fn koki(&self, prefecture: u8) -> usize {
        self.koki_by_prefecture[prefecture as usize]
    }

    pub(crate) fn kokuho(&self, municipality: usize) -> usize {
        self.kokuho_by_municipality[municipality]
    }

    /// A 健保組合 or 共済; falls back to 協会けんぽ when the world has none.
    pub(crate) fn employer(&self, rng: &mut impl Rng, prefecture: u8) -> usize {
        if self.employers.is_empty() {
            return self.kyokai(prefecture);
        }
        self.employers[self.employer_weights.sample(rng)]
    }
}

/// Samplers over the reference tables, built once per run.
#[derive(Debug)]
pub(crate) struct Samplers {
    pub surnames: Weighted,
    pub given_male: Weighted,
    pub given_female: Weighted,
    pub age_bands: Weighted,
    pub prefectures: Weighted,
    /// Municipality indices and their sampler, by prefecture code.
    pub municipalities: Vec<Option<(Vec<usize>, Weighted)>>,
    /// Range of town indices (into a sorted index) by municipality.
    pub towns: Vec<(u32, u32)>,
    pub town_order: Vec<u32>,
    /// Index into `tables.prefectures` by prefecture code.
    pub prefecture_row: Vec<usize>,
    /// Variant forms of each 異体字 standard form: (standard, variants).
    pub itaiji: Vec<(String, Vec<String>)>,
}

impl Samplers {
    fn new(tables: &Tables) -> Self {
        let weights = |names: &[crate::tables::Name]| {
            Weighted::new(names.iter().map(|n| n.weight)).unwrap_or_else(|| Weighted::new(names.iter().map(|_| 1.0)).expect("names"))
        };
        let mut municipalities: Vec<Option<(Vec<usize>, Weighted)>> = (0..48).map(|_| None).collect();
        for code in 1..=47u8 {
            let idx: Vec<usize> = tables.municipalities.iter().enumerate().filter(|(_, m)| m.prefecture_code == code).map(|(i, _)| i).collect();
            let w = Weighted::new(idx.iter().map(|&i| tables.municipalities[i].population_weight)).or_else(|| Weighted::new(idx.iter().map(|_| 1.0)));
            if let Some(w) = w {
                municipalities[code as usize] = Some((idx, w));
            }
        }
        let mut town_order: Vec<u32> = (0..tables.towns.len() as u32).collect();
        town_order.sort_by(|&a, &b| tables.towns[a as usize].jis_code.cmp(&tables.towns[b as usize].jis_code));
        let towns = tables
            .municipalities
            .iter()
            .map(|m| {
                let lo = town_order.partition_point(|&t| tables.towns[t as usize].jis_code < m.jis_code);
                let hi = town_order.partition_point(|&t| tables.towns[t as usize].jis_code <= m.jis_code);
                (lo as u32, hi as u32)
            })
            .collect();
        let mut prefecture_row = vec![usize::MAX; 48];
        for (i, p) in tables.prefectures.iter().enumerate() {
            prefecture_row[p.code as usize] = i;
        }
        let mut itaiji: Vec<(String, Vec<String>)> = Vec::new();
        for pair in &tables.itaiji {
            match itaiji.iter_mut().find(|(s, _)| *s == pair.standard) {
                Some((_, v)) => v.push(pair.variant.clone()),
                None => itaiji.push((pair.standard.clone(), vec![pair.variant.clone()])),
            }
        }
        Self {
            surnames: weights(&tables.surnames),
            given_male: weights(&tables.given_names_male),
            given_female: weights(&tables.given_names_female),
            age_bands: Weighted::new(tables.age_pyramid.iter().map(|b| b.male + b.female)).expect("age pyramid"),
            prefectures: Weighted::new(tables.prefectures.iter().map(|p| p.population)).expect("prefectures"),
            municipalities,
            towns,
            town_order,
            prefecture_row,
            itaiji,
        }
    }
}

/// Which drugs and labs go with which disease.
#[derive(Debug)]
pub(crate) struct ClinicalIndex {
    pub drugs_by_disease: Vec<Vec<usize>>,
    /// Labs not tied to a disease: the routine panel.
    pub routine_labs: Vec<usize>,
    /// The disease that moves each lab, if any (index into `tables.diseases`).
    pub lab_disease: Vec<Option<usize>>,
    /// Index of the prevalence band for each age 0..=125.
    pub band_of_age: Vec<u8>,
}

impl ClinicalIndex {
    fn new(tables: &Tables) -> Self {
        let n = tables.diseases.len();
        let mut drugs_by_disease = vec![Vec::new(); n];
        for (i, d) in tables.drugs.iter().enumerate() {
            if let Some(k) = tables.disease(&d.disease_key) {
                drugs_by_disease[k].push(i);
            }
        }
        let mut routine_labs = Vec::new();
        let mut lab_disease = Vec::with_capacity(tables.labs.len());
        for (i, l) in tables.labs.iter().enumerate() {
            let disease = tables.disease(&l.disease_key);
            if disease.is_none() {
                routine_labs.push(i);
            }
            lab_disease.push(disease);
        }
        let band_of_age = (0..=125u32).map(|a| PREVALENCE_BANDS.iter().position(|&(lo, hi)| a >= lo && a <= hi).unwrap_or(3) as u8).collect();
        Self { drugs_by_disease, routine_labs, lab_disease, band_of_age }
    }
}

/// Everything fixed for a run.
#[derive(Debug)]
pub(crate) struct World<'t> {
    pub tables: &'t Tables,
    pub seed: u64,
    pub period: Period,
    pub hospitals: Vec<Hospital>,
    /// Hospital sampler for people living in each prefecture (by code).
    pub hospital_choice: Vec<Weighted>,
    pub insurers: Insurers,
    pub samplers: Samplers,
    pub clinical: ClinicalIndex,
    /// Share of care that happens at the world's hospitals.
    pub hospital_share: f64,
    /// Diseases (indices into `tables.diseases`) the 学会 registry enrols.
    pub registry_diseases: Vec<usize>,
    /// Multiplier and offset of the bijection from person index to registry number.
    registry_key: (u64, u64),
}

/// Parts of the world, each with its own generator.
const HOSPITALS: u64 = 0;
const INSURERS: u64 = 1;
const REGISTRY: u64 = 2;

impl<'t> World<'t> {
    pub(crate) fn new(
        tables: &'t Tables,
        seed: u64,
        period: Period,
        hospitals: u32,
        insurers: u32,
        hospital_share: f64,
        registry_diseases: Vec<usize>,
    ) -> Self {
        let samplers = Samplers::new(tables);
        let hospitals = draw_hospitals(tables, &samplers, hospitals, &mut world_rng(seed, HOSPITALS));
        let hospital_choice = (0..48u8)
            .map(|code| {
                Weighted::new(hospitals.iter().map(|h| {
                    let local = if h.prefecture == code { 200.0 } else { 1.0 };
                    local * h.beds as f64
                }))
                .expect("at least one hospital")
            })
            .collect();
        Self {
            tables,
            seed,
            period,
            insurers: Insurers::draw(tables, insurers, &mut world_rng(seed, INSURERS)),
            hospital_choice,
            hospitals,
            clinical: ClinicalIndex::new(tables),
            samplers,
            hospital_share,
            registry_diseases,
            registry_key: permutation_key(&mut world_rng(seed, REGISTRY)),
        }
    }

    /// A person's 10-digit registry number (unique, not the person index).
    pub(crate) fn registry_number(&self, person: u64) -> u64 {
        permute(self.registry_key, person)
    }

    pub(crate) fn prefecture_name(&self, code: u8) -> &'t str {
        &self.tables.prefectures[self.samplers.prefecture_row[code as usize]].name
    }
}

/// The part of a municipality's name a hospital is named after: 高知市 → 高知,
/// 札幌市中央区 → 札幌, 港区 → 港.
pub(crate) fn place_stem(municipality: &str) -> &str {
    if let Some(pos) = municipality.find('市') {
        if pos > 0 {
            return &municipality[..pos];
        }
    }
    let trimmed = municipality.trim_end_matches(['町', '村', '区']);
    if trimmed.is_empty() || trimmed.chars().count() < 1 {
        municipality
    } else {
        trimmed
    }
}

fn draw_hospitals(tables: &Tables, samplers: &Samplers, count: u32, rng: &mut ChaCha8Rng) -> Vec<Hospital> {
    let mut hospitals: Vec<Hospital> = Vec::with_capacity(count as usize);
    let mut codes = HashSet::new();
    let mut names = HashSet::new();
    for _ in 0..count.max(1) {
        let pref_row = samplers.prefectures.sample(rng);
        let prefecture = tables.prefectures[pref_row].code;
        let municipality = match &samplers.municipalities[prefecture as usize] {
            Some((idx, w)) => idx[w.sample(rng)],
            None => 0,
        };
        let muni = &tables.municipalities[municipality];
        let pref_name = &tables.prefectures[pref_row].name;
        let stem = place_stem(&muni.name);
        let beds = match rng.gen_range(0..10) {
            0..=4 => rng.gen_range(50..200),
            5..=8 => rng.gen_range(200..500),
            _ => rng.gen_range(500..1200),
        };
        let mut name = hospital_name(tables, rng, pref_name, &muni.name, stem);
        while !names.insert(name.clone()) {
            name =
                format!("{}{}", hospital_name(tables, rng, pref_name, &muni.name, stem), ["分院", "東病院", "西病院", "南病院"][rng.gen_range(0..4)]);
        }
        // 医療機関コード: 都道府県 + 1 (医科) + 郡市区番号 2 + 医療機関番号 4 + check digit.
        let code = loop {
            let body = [rng.gen_range(1..100u32), rng.gen_range(0..10_000u32)];
            let digits: Vec<u8> = format!("{:02}{:04}", body[0], body[1]).bytes().map(|b| b - b'0').collect();
            let check = niji_core::insurer::check_digit(&digits);
            let code = format!("{:02}1{:02}{:04}{}", prefecture, body[0], body[1], check);
            if codes.insert(code.clone()) {
                break code;
            }
        };
        let (lo, hi) = samplers.towns[municipality];
        let (town, postal_code) = if hi > lo {
            let t = &tables.towns[samplers.town_order[rng.gen_range(lo..hi) as usize] as usize];
            (t.name.clone(), t.postal_code.clone())
        } else {
            (String::new(), String::new())
        };
        let address = format!("{pref_name}{}{town}{}丁目{}番{}号", muni.name, rng.gen_range(1..6), rng.gen_range(1..30), rng.gen_range(1..20));
        let phone = crate::person::landline(rng, prefecture, true);
        hospitals.push(Hospital {
            code,
            name,
            prefecture,
            address,
            postal_code,
            phone,
            beds,
            organization_id: crate::random::uuid(rng),
            style: HolderStyle::draw(rng),
            registry_style: HolderStyle::draw(rng),
            in_house_dispensing: rng.gen_bool(0.4),
            patient_key: permutation_key(rng),
        });
    }
    hospitals
}

fn hospital_name(tables: &Tables, rng: &mut ChaCha8Rng, pref_name: &str, muni: &str, stem: &str) -> String {
    let pref_stem = pref_name.trim_end_matches(['都', '府', '県']);
    let pref_stem = if pref_stem.is_empty() { pref_name } else { pref_stem };
    match rng.gen_range(0..10) {
        0 | 1 if muni.ends_with('市') => format!("{muni}立病院"),
        0 | 1 => format!("{stem}市民病院"),
        2 => format!("{stem}市民病院"),
        3 if pref_name == "北海道" => format!("道立{stem}病院"),
        3 if pref_name.ends_with('都') => format!("都立{stem}病院"),
        3 => format!("{pref_name}立中央病院"),
        4 => format!("{stem}赤十字病院"),
        5 => format!("国立病院機構{stem}医療センター"),
        6 => format!("{pref_stem}大学医学部附属病院"),
        7 => {
            let s = &tables.surnames[rng.gen_range(0..tables.surnames.len())].kanji;
            format!("医療法人{s}会{s}病院")
        }
        8 => format!("{stem}総合病院"),
        _ => format!("{stem}中央病院"),
    }
}

/// Index of the prevalence band for an age.
pub(crate) fn band(world: &World<'_>, age: u32) -> usize {
    world.clinical.band_of_age[age.min(125) as usize] as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hospital_names_come_from_place_names() {
        assert_eq!(place_stem("高知市"), "高知");
        assert_eq!(place_stem("札幌市中央区"), "札幌");
        assert_eq!(place_stem("港区"), "港");
        assert_eq!(place_stem("白川村"), "白川");
    }
}
