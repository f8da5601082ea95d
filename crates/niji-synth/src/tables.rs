//! The reference tables the generator draws from: names, 異体字, prefectures,
//! municipalities (JIS X 0401/0402), towns and postal codes, the age pyramid, diseases,
//! drugs, lab tests and procedures. They live in `data/*.tsv` (UTF-8, tab-separated, `#`
//! comment lines before a header line) and are compiled into the crate with `include_str!`;
//! [`Tables::embedded`] parses them once per process.
//!
//! A malformed row is an error naming `file:line`; so is a reference to a missing key
//! (a drug for an unknown disease, a town in an unknown municipality).

use std::collections::HashSet;
use std::sync::OnceLock;

/// A row that could not be read, with the file and 1-based line it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {problem}")]
pub struct TableError {
    pub file: String,
    pub line: usize,
    pub problem: String,
}

/// The text of every table, by file; [`TableSources::EMBEDDED`] holds the crate's own.
#[derive(Debug, Clone, Copy)]
pub struct TableSources<'a> {
    pub surnames: &'a str,
    pub given_names_male: &'a str,
    pub given_names_female: &'a str,
    pub itaiji: &'a str,
    pub prefectures: &'a str,
    pub municipalities: &'a str,
    pub towns: &'a str,
    pub age_pyramid: &'a str,
    pub diseases: &'a str,
    pub drugs: &'a str,
    pub labs: &'a str,
    pub procedures: &'a str,
}

impl TableSources<'static> {
    pub const EMBEDDED: TableSources<'static> = TableSources {
        surnames: include_str!("../data/surnames.tsv"),
        given_names_male: include_str!("../data/given_names_male.tsv"),
        given_names_female: include_str!("../data/given_names_female.tsv"),
        itaiji: include_str!("../data/itaiji.tsv"),
        prefectures: include_str!("../data/prefectures.tsv"),
        municipalities: include_str!("../data/municipalities.tsv"),
        towns: include_str!("../data/towns.tsv"),
        age_pyramid: include_str!("../data/age_pyramid.tsv"),
        diseases: include_str!("../data/diseases.tsv"),
        drugs: include_str!("../data/drugs.tsv"),
        labs: include_str!("../data/labs.tsv"),
        procedures: include_str!("../data/procedures.tsv"),
    };
}

/// A name with its reading and its weight (how common it is).
#[derive(Debug, Clone, PartialEq)]
pub struct Name {
    pub kanji: String,
    pub katakana: String,
    pub weight: f64,
}

/// A 異体字 pair: `variant` (渡邊, 髙) is written for `standard` (渡辺, 高) by people who
/// register the old form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Itaiji {
    pub variant: String,
    pub standard: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Prefecture {
    /// JIS X 0401 code, 1 (北海道) to 47 (沖縄県).
    pub code: u8,
    pub name: String,
    pub kana: String,
    pub population: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Municipality {
    /// JIS X 0402 code as the table gives it (5 digits, or 6 with the check digit).
    pub jis_code: String,
    pub prefecture_code: u8,
    pub prefecture: String,
    pub name: String,
    pub population_weight: f64,
}

/// A 町域 (town area) with its postal code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Town {
    pub jis_code: String,
    /// Seven digits, without the hyphen.
    pub postal_code: String,
    pub name: String,
}

/// Population of one age band, in thousands.
#[derive(Debug, Clone, PartialEq)]
pub struct AgeBand {
    pub age_from: u32,
    pub age_to: u32,
    pub male: f64,
    pub female: f64,
}

/// Age bands of the prevalence columns: 0-19, 20-39, 40-64, 65+.
pub const PREVALENCE_BANDS: [(u32, u32); 4] = [(0, 19), (20, 39), (40, 64), (65, 200)];

#[derive(Debug, Clone, PartialEq)]
pub struct Disease {
    pub key: String,
    pub icd10: String,
    /// レセ電 傷病名コード (7 digits); empty when the table has none.
    pub receden_code: String,
    /// 標準病名 病名管理番号 (8 digits); empty when the table has none.
    pub byomei_code: String,
    pub name_ja: String,
    pub name_en: String,
    pub chronic: bool,
    /// Share of people with the disease, by sex (0 male, 1 female) and [`PREVALENCE_BANDS`].
    pub prevalence: [[f64; 4]; 2],
}

#[derive(Debug, Clone, PartialEq)]
pub struct Drug {
    pub key: String,
    pub disease_key: String,
    /// YJ code (12 characters).
    pub yj_code: String,
    /// レセ電 医薬品コード (9 digits).
    pub receden_code: String,
    pub name_ja: String,
    pub dose_unit: String,
    pub daily_dose: f64,
    /// Days per prescription.
    pub days: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lab {
    pub key: String,
    /// JLAC10 (17 characters).
    pub jlac10: String,
    pub name_ja: String,
    pub unit: String,
    /// Mean and standard deviation by sex (0 male, 1 female).
    pub mean: [f64; 2],
    pub sd: [f64; 2],
    /// Plausible range: values are clamped into it.
    pub low: f64,
    pub high: f64,
    /// The disease that moves this test, if any, and by how much (added to the mean).
    pub disease_key: String,
    pub disease_shift: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Procedure {
    pub key: String,
    /// レセ電 診療行為コード (9 digits).
    pub receden_code: String,
    pub name_ja: String,
    pub points: u32,
    /// Where it is billed, as the table says (e.g. `outpatient`, `inpatient`, `any`).
    pub setting: String,
}

/// All reference tables, parsed.
#[derive(Debug, Clone)]
pub struct Tables {
    pub surnames: Vec<Name>,
    pub given_names_male: Vec<Name>,
    pub given_names_female: Vec<Name>,
    pub itaiji: Vec<Itaiji>,
    pub prefectures: Vec<Prefecture>,
    pub municipalities: Vec<Municipality>,
    pub towns: Vec<Town>,
    pub age_pyramid: Vec<AgeBand>,
    pub diseases: Vec<Disease>,
    pub drugs: Vec<Drug>,
    pub labs: Vec<Lab>,
    pub procedures: Vec<Procedure>,
}

impl Tables {
    /// The tables compiled into the crate, parsed on first use.
    pub fn embedded() -> Result<&'static Tables, TableError> {
        static TABLES: OnceLock<Result<Tables, TableError>> = OnceLock::new();
        TABLES.get_or_init(|| Tables::parse(&TableSources::EMBEDDED)).as_ref().map_err(Clone::clone)
    }

    /// Parses and cross-checks every table.
    pub fn parse(src: &TableSources<'_>) -> Result<Tables, TableError> {
        let tables = Tables {
            surnames: parse_names("surnames.tsv", src.surnames)?,
            given_names_male: parse_names("given_names_male.tsv", src.given_names_male)?,
            given_names_female: parse_names("given_names_female.tsv", src.given_names_female)?,
            itaiji: parse_table("itaiji.tsv", src.itaiji, &["variant", "standard"], |r| Ok(Itaiji { variant: r.text(0)?, standard: r.text(1)? }))?,
            prefectures: parse_table("prefectures.tsv", src.prefectures, &["code", "name", "kana", "population"], |r| {
                let code = r.number::<u8>(0)?;
                if !(1..=47).contains(&code) {
                    return Err(r.error(format!("prefecture code {code} is not 1-47")));
                }
                Ok(Prefecture { code, name: r.text(1)?, kana: r.text(2)?, population: r.weight(3)? })
            })?,
            municipalities: parse_table(
                "municipalities.tsv",
                src.municipalities,
                &["jis_code", "prefecture_code", "prefecture", "municipality", "population_weight"],
                |r| {
                    Ok(Municipality {
                        jis_code: r.digits(0, &[5, 6])?,
                        prefecture_code: r.number(1)?,
                        prefecture: r.text(2)?,
                        name: r.text(3)?,
                        population_weight: r.weight(4)?,
                    })
                },
            )?,
            towns: parse_table("towns.tsv", src.towns, &["jis_code", "postal_code", "town"], |r| {
                Ok(Town { jis_code: r.digits(0, &[5, 6])?, postal_code: r.digits(1, &[7])?, name: r.text(2)? })
            })?,
            age_pyramid: parse_table("age_pyramid.tsv", src.age_pyramid, &["age_from", "age_to", "male", "female"], |r| {
                let band = AgeBand { age_from: r.number(0)?, age_to: r.number(1)?, male: r.weight(2)?, female: r.weight(3)? };
                if band.age_to < band.age_from || band.age_to > 125 {
                    return Err(r.error("age_to must be at least age_from and at most 125".into()));
                }
                Ok(band)
            })?,
            diseases: parse_table(
                "diseases.tsv",
                src.diseases,
                &[
                    "key",
                    "icd10",
                    "receden_code",
                    "byomei_code",
                    "name_ja",
                    "name_en",
                    "chronic",
                    "prev_m_0_19",
                    "prev_m_20_39",
                    "prev_m_40_64",
                    "prev_m_65_plus",
                    "prev_f_0_19",
                    "prev_f_20_39",
                    "prev_f_40_64",
                    "prev_f_65_plus",
                ],
                |r| {
                    let mut prevalence = [[0.0; 4]; 2];
                    for (i, p) in prevalence.iter_mut().flatten().enumerate() {
                        *p = r.share(7 + i)?;
                    }
                    Ok(Disease {
                        key: r.text(0)?,
                        icd10: r.text(1)?,
                        receden_code: r.optional_digits(2, &[7])?,
                        byomei_code: r.optional_digits(3, &[8])?,
                        name_ja: r.text(4)?,
                        name_en: r.cell(5).to_string(),
                        chronic: r.flag(6)?,
                        prevalence,
                    })
                },
            )?,
            drugs: parse_table(
                "drugs.tsv",
                src.drugs,
                &["key", "disease_key", "yj_code", "receden_code", "name_ja", "dose_unit", "daily_dose", "days"],
                |r| {
                    Ok(Drug {
                        key: r.text(0)?,
                        disease_key: r.text(1)?,
                        yj_code: r.cell(2).to_string(),
                        receden_code: r.optional_digits(3, &[9])?,
                        name_ja: r.text(4)?,
                        dose_unit: r.text(5)?,
                        daily_dose: r.weight(6)?,
                        days: r.number::<u32>(7)?.max(1),
                    })
                },
            )?,
            labs: parse_table(
                "labs.tsv",
                src.labs,
                &["key", "jlac10", "name_ja", "unit", "mean_m", "sd_m", "mean_f", "sd_f", "low", "high", "disease_key", "disease_shift"],
                |r| {
                    let lab = Lab {
                        key: r.text(0)?,
                        jlac10: r.cell(1).to_string(),
                        name_ja: r.text(2)?,
                        unit: r.cell(3).to_string(),
                        mean: [r.float(4)?, r.float(6)?],
                        sd: [r.float(5)?, r.float(7)?],
                        low: r.float(8)?,
                        high: r.float(9)?,
                        disease_key: r.cell(10).to_string(),
                        disease_shift: if r.cell(11).is_empty() { 0.0 } else { r.float(11)? },
                    };
                    if lab.high < lab.low {
                        return Err(r.error("high is below low".into()));
                    }
                    Ok(lab)
                },
            )?,
            procedures: parse_table("procedures.tsv", src.procedures, &["key", "receden_code", "name_ja", "points", "setting"], |r| {
                Ok(Procedure {
                    key: r.text(0)?,
                    receden_code: r.optional_digits(1, &[9])?,
                    name_ja: r.text(2)?,
                    points: r.number(3)?,
                    setting: r.cell(4).to_string(),
                })
            })?,
        };
        tables.cross_check(src)?;
        Ok(tables)
    }

    fn cross_check(&self, src: &TableSources<'_>) -> Result<(), TableError> {
        let prefectures: HashSet<u8> = self.prefectures.iter().map(|p| p.code).collect();
        check_refs(
            "municipalities.tsv",
            src.municipalities,
            self.municipalities.iter().map(|m| (prefectures.contains(&m.prefecture_code), format!("unknown prefecture_code {}", m.prefecture_code))),
        )?;
        let municipalities: HashSet<&str> = self.municipalities.iter().map(|m| m.jis_code.as_str()).collect();
        check_refs(
            "towns.tsv",
            src.towns,
            self.towns.iter().map(|t| (municipalities.contains(t.jis_code.as_str()), format!("unknown municipality jis_code {}", t.jis_code))),
        )?;
        let diseases: HashSet<&str> = self.diseases.iter().map(|d| d.key.as_str()).collect();
        check_refs(
            "drugs.tsv",
            src.drugs,
            self.drugs.iter().map(|d| (diseases.contains(d.disease_key.as_str()), format!("unknown disease_key {}", d.disease_key))),
        )?;
        check_refs(
            "labs.tsv",
            src.labs,
            self.labs
                .iter()
                .map(|l| (l.disease_key.is_empty() || diseases.contains(l.disease_key.as_str()), format!("unknown disease_key {}", l.disease_key))),
        )?;
        let empty = |file: &str, text: &str, n: usize| {
            if n == 0 {
                Err(TableError { file: file.into(), line: text.lines().count(), problem: "table has no rows".into() })
            } else {
                Ok(())
            }
        };
        empty("surnames.tsv", src.surnames, self.surnames.len())?;
        empty("given_names_male.tsv", src.given_names_male, self.given_names_male.len())?;
        empty("given_names_female.tsv", src.given_names_female, self.given_names_female.len())?;
        empty("prefectures.tsv", src.prefectures, self.prefectures.len())?;
        empty("municipalities.tsv", src.municipalities, self.municipalities.len())?;
        empty("age_pyramid.tsv", src.age_pyramid, self.age_pyramid.len())?;
        Ok(())
    }

    pub fn disease(&self, key: &str) -> Option<usize> {
        self.diseases.iter().position(|d| d.key == key)
    }
}

/// Fails on the first row whose reference does not resolve, naming its line.
fn check_refs(file: &str, text: &str, rows: impl Iterator<Item = (bool, String)>) -> Result<(), TableError> {
    for ((ok, problem), line) in rows.zip(data_lines(text)) {
        if !ok {
            return Err(TableError { file: file.into(), line, problem });
        }
    }
    Ok(())
}

/// 1-based line numbers of the data rows (after comments, blank lines and the header).
fn data_lines(text: &str) -> impl Iterator<Item = usize> + '_ {
    text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#')).skip(1).map(|(i, _)| i + 1)
}

fn parse_names(file: &'static str, text: &str) -> Result<Vec<Name>, TableError> {
    parse_table(file, text, &["kanji", "katakana", "weight"], |r| {
        let katakana = r.text(1)?;
        if let Some(bad) = katakana.chars().find(|&c| !is_katakana(c)) {
            return Err(r.error(format!("katakana column holds {bad:?}")));
        }
        Ok(Name { kanji: r.text(0)?, katakana, weight: r.weight(2)? })
    })
}

fn is_katakana(c: char) -> bool {
    matches!(c, '\u{30A1}'..='\u{30FA}' | 'ー' | '・')
}

/// One data row being read, for error messages that name the file and line.
struct Row<'t> {
    file: &'static str,
    line: usize,
    cells: Vec<&'t str>,
}

impl<'t> Row<'t> {
    fn error(&self, problem: String) -> TableError {
        TableError { file: self.file.into(), line: self.line, problem }
    }

    fn cell(&self, i: usize) -> &'t str {
        self.cells[i].trim()
    }

    fn text(&self, i: usize) -> Result<String, TableError> {
        let s = self.cell(i);
        if s.is_empty() {
            return Err(self.error(format!("column {} is empty", i + 1)));
        }
        Ok(s.to_string())
    }

    fn number<T: std::str::FromStr>(&self, i: usize) -> Result<T, TableError> {
        self.cell(i).parse().map_err(|_| self.error(format!("column {} is not a whole number: {:?}", i + 1, self.cell(i))))
    }

    fn float(&self, i: usize) -> Result<f64, TableError> {
        let v: f64 = self.cell(i).parse().map_err(|_| self.error(format!("column {} is not a number: {:?}", i + 1, self.cell(i))))?;
        if !v.is_finite() {
            return Err(self.error(format!("column {} is not finite", i + 1)));
        }
        Ok(v)
    }

    fn weight(&self, i: usize) -> Result<f64, TableError> {
        let v = self.float(i)?;
        if v < 0.0 {
            return Err(self.error(format!("column {} is negative", i + 1)));
        }
        Ok(v)
    }

    fn share(&self, i: usize) -> Result<f64, TableError> {
        let v = self.weight(i)?;
        if v > 1.0 {
            return Err(self.error(format!("column {} is a share and must be at most 1, found {v}", i + 1)));
        }
        Ok(v)
    }

    fn flag(&self, i: usize) -> Result<bool, TableError> {
        match self.cell(i).to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "y" => Ok(true),
            "0" | "false" | "no" | "n" => Ok(false),
            other => Err(self.error(format!("column {} is not a flag (1/0): {other:?}", i + 1))),
        }
    }

    fn digits(&self, i: usize, lengths: &[usize]) -> Result<String, TableError> {
        let s = self.optional_digits(i, lengths)?;
        if s.is_empty() {
            return Err(self.error(format!("column {} is empty", i + 1)));
        }
        Ok(s)
    }

    /// A code of ASCII digits of one of the given lengths, or empty.
    fn optional_digits(&self, i: usize, lengths: &[usize]) -> Result<String, TableError> {
        let s = self.cell(i);
        if s.is_empty() {
            return Ok(String::new());
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) || !lengths.contains(&s.len()) {
            return Err(self.error(format!("column {} must be {lengths:?} digits: {s:?}", i + 1)));
        }
        Ok(s.to_string())
    }
}

/// Reads a table: skips `#` comments and blank lines, checks the header, then hands each
/// row (with exactly as many cells as the header) to `read`.
fn parse_table<T>(
    file: &'static str,
    text: &str,
    header: &[&str],
    mut read: impl FnMut(&Row<'_>) -> Result<T, TableError>,
) -> Result<Vec<T>, TableError> {
    let mut out = Vec::new();
    let mut seen_header = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let content = raw.strip_suffix('\r').unwrap_or(raw);
        if content.trim().is_empty() || content.starts_with('#') {
            continue;
        }
        let cells: Vec<&str> = content.split('\t').collect();
        if !seen_header {
            let found: Vec<&str> = cells.iter().map(|c| c.trim().trim_start_matches('\u{feff}')).collect();
            if found != header {
                return Err(TableError {
                    file: file.into(),
                    line,
                    problem: format!("header must be {:?}, found {:?}", header.join("\t"), found.join("\t")),
                });
            }
            seen_header = true;
            continue;
        }
        if cells.len() != header.len() {
            return Err(TableError {
                file: file.into(),
                line,
                problem: format!("expected {} tab-separated columns, found {}", header.len(), cells.len()),
            });
        }
        out.push(read(&Row { file, line, cells })?);
    }
    if !seen_header {
        return Err(TableError { file: file.into(), line: text.lines().count(), problem: "no header line".into() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> TableSources<'static> {
        TableSources {
            surnames: "# source: test\nkanji\tkatakana\tweight\n渡辺\tワタナベ\t10\n",
            given_names_male: "kanji\tkatakana\tweight\n太郎\tタロウ\t1\n",
            given_names_female: "kanji\tkatakana\tweight\n花子\tハナコ\t1\n",
            itaiji: "variant\tstandard\n邊\t辺\n",
            prefectures: "code\tname\tkana\tpopulation\n13\t東京都\tトウキョウト\t14000000\n",
            municipalities: "jis_code\tprefecture_code\tprefecture\tmunicipality\tpopulation_weight\n13103\t13\t東京都\t港区\t1\n",
            towns: "jis_code\tpostal_code\ttown\n13103\t1050004\t新橋\n",
            age_pyramid: "age_from\tage_to\tmale\tfemale\n0\t99\t1\t1\n",
            diseases: "key\ticd10\treceden_code\tbyomei_code\tname_ja\tname_en\tchronic\tprev_m_0_19\tprev_m_20_39\tprev_m_40_64\tprev_m_65_plus\tprev_f_0_19\tprev_f_20_39\tprev_f_40_64\tprev_f_65_plus\nhtn\tI10\t4019004\t20059411\t本態性高血圧症\tHypertension\t1\t0\t0.05\t0.3\t0.6\t0\t0.03\t0.25\t0.6\n",
            drugs: "key\tdisease_key\tyj_code\treceden_code\tname_ja\tdose_unit\tdaily_dose\tdays\namlo\thtn\t2171022F1020\t610443047\tアムロジピン錠５ｍｇ\t錠\t1\t28\n",
            labs: "key\tjlac10\tname_ja\tunit\tmean_m\tsd_m\tmean_f\tsd_f\tlow\thigh\tdisease_key\tdisease_shift\nsbp\t\t収縮期血圧\tmmHg\t125\t12\t118\t12\t80\t220\thtn\t20\n",
            procedures: "key\treceden_code\tname_ja\tpoints\tsetting\nsaishin\t112007410\t再診料\t73\toutpatient\n",
        }
    }

    fn check(mutate: impl FnOnce(&mut TableSources<'static>), expected: Result<(), &str>) {
        let mut src = fixture();
        mutate(&mut src);
        let got = Tables::parse(&src).map(|_| ()).map_err(|e| e.to_string());
        assert_eq!(got, expected.map_err(str::to_string));
    }

    #[test]
    fn the_fixture_parses() {
        check(|_| {}, Ok(()));
        let t = Tables::parse(&fixture()).unwrap();
        assert_eq!(t.diseases[0].prevalence[1][3], 0.6);
        assert_eq!(t.drugs[0].days, 28);
        assert_eq!(t.labs[0].disease_shift, 20.0);
    }

    #[test]
    fn malformed_rows_name_file_and_line() {
        check(|s| s.surnames = "# c\nkanji\tkatakana\tweight\n渡辺\tワタナベ\n", Err("surnames.tsv:3: expected 3 tab-separated columns, found 2"));
        check(|s| s.surnames = "kanji\tkatakana\tweight\n渡辺\twatanabe\t1\n", Err("surnames.tsv:2: katakana column holds 'w'"));
        check(
            |s| s.prefectures = "code\tname\tkana\tpopulation\n48\t架空県\tカクウケン\t1\n",
            Err("prefectures.tsv:2: prefecture code 48 is not 1-47"),
        );
        check(|s| s.towns = "jis_code\tpostal_code\ttown\n13103\t105-0004\t新橋\n", Err("towns.tsv:2: column 2 must be [7] digits: \"105-0004\""));
        check(
            |s| s.drugs = "key\tdisease_key\tyj_code\treceden_code\tname_ja\tdose_unit\tdaily_dose\tdays\n\nx\tdm\t\t\tX\t錠\t1\t28\n",
            Err("drugs.tsv:3: unknown disease_key dm"),
        );
        check(
            |s| s.age_pyramid = "from\tto\tmale\tfemale\n",
            Err("age_pyramid.tsv:1: header must be \"age_from\\tage_to\\tmale\\tfemale\", found \"from\\tto\\tmale\\tfemale\""),
        );
        check(|s| s.itaiji = "# nothing\n", Err("itaiji.tsv:1: no header line"));
    }

    #[test]
    fn the_embedded_tables_parse() {
        let t = Tables::embedded().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.prefectures.len(), 47);
        assert!(t.surnames.len() >= 100);
        assert!(!t.diseases.is_empty() && !t.drugs.is_empty() && !t.labs.is_empty());
    }
}
