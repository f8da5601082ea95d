//! Built-in hierarchy builders for the attributes Japanese health data always has.
//!
//! - [`age_bands`]: integer ages to bands (e.g. 5, 10, 20 years), optionally top-coded
//!   (`90+`), then `*`.
//! - [`dates`]: ISO dates (`YYYY-MM-DD`, also `YYYYMMDD` and `YYYY/MM/DD`) to month
//!   (`2024-03`), quarter (`2024-Q1`) and/or year (`2024`), then `*`.
//! - [`municipalities`]: JIS X 0402 municipality codes (5 digits, `13101`) to prefecture
//!   (JIS X 0401, 2 digits, `13`), to region (地方, e.g. `関東地方`), then `*`.
//! - [`icd10`]: ICD-10 codes (`E11.9`, `E119`, `E11`) to 3-character category (`E11`), to
//!   block (`E10-E14`), to chapter (`E00-E90`), then `*`.
//!
//! Invariants: every builder returns a hierarchy that satisfies [`Hierarchy`]'s invariants
//! (a tree, one `*` at the top) or an error giving the position of the offending value (never the value); the builders are pure
//! functions of their input, so the same values give the same hierarchy. Builders that take the
//! values to cover (dates, municipalities, ICD-10) make the domain exactly the distinct values
//! given, in order of first appearance: pass the column's dictionary.

use crate::hierarchy::Hierarchy;

/// Age bands: see [`age_bands`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgeBands {
    /// Smallest age in the domain.
    pub min: u32,
    /// Largest age in the domain.
    pub max: u32,
    /// Band widths, one generalization level each, finest first; each must divide the next
    /// (e.g. `[5, 10, 20]`) so that bands nest.
    pub widths: Vec<u32>,
    /// Ages at or above this are grouped as `"{top}+"` at every band level (e.g. 90: `90+`).
    /// The domain then also holds the value `"{top}+"` itself, so data already top-coded
    /// (for example by the PPC pipeline) generalizes too.
    pub top_code: Option<u32>,
}

/// A level of a date hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DateLevel {
    /// `YYYY-MM`.
    Month,
    /// `YYYY-Qn`.
    Quarter,
    /// `YYYY`.
    Year,
}

/// Why a built-in hierarchy could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuiltinError {
    #[error("age bands: {0}")]
    AgeBands(String),
    /// The value at this position of the input is not a date.
    #[error("a value is not a date (YYYY-MM-DD, YYYYMMDD or YYYY/MM/DD)")]
    Date(usize),
    #[error("date levels must be given finest first, without repeats: {0:?}")]
    DateLevels(Vec<DateLevel>),
    /// The value at this position of the input is not a municipality code.
    #[error("a value is not a JIS X 0402 municipality code (5 digits, prefecture 01-47)")]
    Municipality(usize),
    /// The value at this position of the input is not an ICD-10 code.
    #[error("a value is not an ICD-10 code (letter, two digits, optional subcategory)")]
    Icd10(usize),
    /// The ICD-10 category of the value at this position is in no block.
    #[error("a value's ICD-10 category is in no block of the classification")]
    Icd10Block(usize),
    /// Building the hierarchy from the generated rows failed (a bug, not bad data).
    #[error("internal: {0}")]
    Rows(String),
}

impl BuiltinError {
    /// Position in the input of the value the error is about (never the value itself: errors
    /// reach operators and logs).
    pub fn value_index(&self) -> Option<usize> {
        match self {
            BuiltinError::Date(i) | BuiltinError::Municipality(i) | BuiltinError::Icd10(i) | BuiltinError::Icd10Block(i) => Some(*i),
            _ => None,
        }
    }
}

/// Age bands: level 0 is each age from `min` to `max` (as decimal text), then one level per
/// width with labels `lo-hi` aligned to multiples of the width (`35-39`), where a band that
/// would cross the top code stops below it (`85-89`) and ages at or above the top code are
/// `"{top}+"`; the last level is `*`.
pub fn age_bands(config: &AgeBands) -> Result<Hierarchy, BuiltinError> {
    let bad = |m: &str| Err(BuiltinError::AgeBands(m.to_owned()));
    if config.min > config.max {
        return bad("min is above max");
    }
    if config.widths.contains(&0) {
        return bad("a width of 0");
    }
    if config.widths.windows(2).any(|w| w[1] % w[0] != 0) {
        return bad("each width must divide the next, so that bands nest");
    }
    let band = |age: u32, width: u32| -> String {
        match config.top_code {
            Some(top) if age >= top => format!("{top}+"),
            top => {
                let lo = age / width * width;
                let mut hi = lo + width - 1;
                if let Some(top) = top {
                    hi = hi.min(top - 1);
                }
                format!("{lo}-{hi}")
            }
        }
    };
    let mut rows = Vec::new();
    for age in config.min..=config.max {
        let mut row = vec![age.to_string()];
        row.extend(config.widths.iter().map(|&w| band(age, w)));
        row.push("*".into());
        rows.push(row);
    }
    if let Some(top) = config.top_code {
        let label = format!("{top}+");
        let mut row = vec![label.clone(); config.widths.len() + 1];
        row.push("*".into());
        rows.push(row);
    }
    Hierarchy::from_rows(rows).map_err(|e| BuiltinError::AgeBands(e.to_string()))
}

/// Dates to the given coarser levels (finest first, e.g. `[Month, Year]`), then `*`. The
/// domain is the distinct `values` given, each kept as written at level 0.
pub fn dates<S: AsRef<str>>(values: impl IntoIterator<Item = S>, levels: &[DateLevel]) -> Result<Hierarchy, BuiltinError> {
    if levels.windows(2).any(|w| w[0] >= w[1]) {
        return Err(BuiltinError::DateLevels(levels.to_vec()));
    }
    let mut rows = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (index, value) in values.into_iter().enumerate() {
        let value = value.as_ref();
        if !seen.insert(value.to_owned()) {
            continue;
        }
        let (y, m, _) = parse_date(value).ok_or(BuiltinError::Date(index))?;
        let mut row = vec![value.to_owned()];
        for level in levels {
            row.push(match level {
                DateLevel::Month => format!("{y:04}-{m:02}"),
                DateLevel::Quarter => format!("{y:04}-Q{}", (m - 1) / 3 + 1),
                DateLevel::Year => format!("{y:04}"),
            });
        }
        row.push("*".into());
        rows.push(row);
    }
    Hierarchy::from_rows(rows).map_err(|e| BuiltinError::Rows(e.to_string()))
}

/// Parses `YYYY-MM-DD`, `YYYY/MM/DD` or `YYYYMMDD` into (year, month, day), checking the day
/// against the month's length (leap years included).
pub fn parse_date(text: &str) -> Option<(i32, u32, u32)> {
    let b = text.as_bytes();
    let digits = |s: &[u8]| -> Option<u32> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(s.iter().fold(0u32, |acc, d| acc * 10 + (d - b'0') as u32))
    };
    let (y, m, d) = match b.len() {
        8 => (digits(&b[0..4])?, digits(&b[4..6])?, digits(&b[6..8])?),
        10 if (b[4] == b'-' && b[7] == b'-') || (b[4] == b'/' && b[7] == b'/') => (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?),
        _ => return None,
    };
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y as i32, m) {
        return None;
    }
    Some((y as i32, m, d))
}

/// Days in a month of the proleptic Gregorian calendar.
pub fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// The region (地方) of a prefecture code 1..=47, in the usual eight-region division
/// (沖縄県 belongs to 九州地方).
pub fn region_of_prefecture(prefecture: u32) -> Option<&'static str> {
    Some(match prefecture {
        1 => "北海道地方",
        2..=7 => "東北地方",
        8..=14 => "関東地方",
        15..=23 => "中部地方",
        24..=30 => "近畿地方",
        31..=35 => "中国地方",
        36..=39 => "四国地方",
        40..=47 => "九州地方",
        _ => return None,
    })
}

/// Municipality codes (JIS X 0402, 5 digits, without the check digit) to prefecture code
/// (the first 2 digits, JIS X 0401), to region (地方), then `*`.
pub fn municipalities<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> Result<Hierarchy, BuiltinError> {
    let mut rows = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (index, value) in values.into_iter().enumerate() {
        let value = value.as_ref();
        if !seen.insert(value.to_owned()) {
            continue;
        }
        let bad = || BuiltinError::Municipality(index);
        if value.len() != 5 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let prefecture: u32 = value[..2].parse().map_err(|_| bad())?;
        let region = region_of_prefecture(prefecture).ok_or_else(bad)?;
        rows.push(vec![value.to_owned(), value[..2].to_owned(), region.to_owned(), "*".to_owned()]);
    }
    Hierarchy::from_rows(rows).map_err(|e| BuiltinError::Rows(e.to_string()))
}

/// ICD-10 codes to category (3 characters), block, chapter, then `*`. Blocks and chapters
/// follow the WHO ICD-10 tabulation (the 2013 edition that Japan's statistics use, with
/// `A90-A99`); codes are matched case-insensitively, with or without the dot.
pub fn icd10<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> Result<Hierarchy, BuiltinError> {
    let mut rows = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (index, value) in values.into_iter().enumerate() {
        let value = value.as_ref();
        if !seen.insert(value.to_owned()) {
            continue;
        }
        let category = icd10_category(value).ok_or(BuiltinError::Icd10(index))?;
        let block = icd10_block(&category).ok_or(BuiltinError::Icd10Block(index))?;
        let chapter = icd10_chapter(&category).ok_or(BuiltinError::Icd10Block(index))?;
        rows.push(vec![value.to_owned(), category, block.to_owned(), chapter.to_owned(), "*".to_owned()]);
    }
    Hierarchy::from_rows(rows).map_err(|e| BuiltinError::Rows(e.to_string()))
}

/// The 3-character category of an ICD-10 code (`e11.9` → `E11`), if the code is well formed:
/// a letter, two digits, then optionally a dot and up to four letters, digits or `-`.
pub fn icd10_category(code: &str) -> Option<String> {
    let code = code.trim();
    let b = code.as_bytes();
    if b.len() < 3 || !b[0].is_ascii_alphabetic() || !b[1].is_ascii_digit() || !b[2].is_ascii_digit() {
        return None;
    }
    let rest = code[3..].strip_prefix('.').unwrap_or(&code[3..]);
    if rest.len() > 4 || !rest.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
        return None;
    }
    Some(code[..3].to_ascii_uppercase())
}

/// The block (e.g. `E10-E14`) of a 3-character category.
pub fn icd10_block(category: &str) -> Option<&'static str> {
    ICD10_BLOCKS.iter().copied().find(|b| (&b[..3]..=&b[4..]).contains(&category))
}

/// The chapter, as its code range (e.g. `E00-E90`), of a 3-character category.
pub fn icd10_chapter(category: &str) -> Option<&'static str> {
    ICD10_CHAPTERS.iter().copied().find(|c| (&c[..3]..=&c[4..]).contains(&category))
}

/// The 22 chapters of ICD-10 as code ranges.
pub const ICD10_CHAPTERS: [&str; 22] = [
    "A00-B99", "C00-D48", "D50-D89", "E00-E90", "F00-F99", "G00-G99", "H00-H59", "H60-H95", "I00-I99", "J00-J99", "K00-K93", "L00-L99", "M00-M99",
    "N00-N99", "O00-O99", "P00-P96", "Q00-Q99", "R00-R99", "S00-T98", "V01-Y98", "Z00-Z99", "U00-U85",
];

/// The blocks of ICD-10 (finest grouping of categories), in code order.
pub const ICD10_BLOCKS: &[&str] = &[
    "A00-A09", "A15-A19", "A20-A28", "A30-A49", "A50-A64", "A65-A69", "A70-A74", "A75-A79", "A80-A89", "A90-A99", "B00-B09", "B15-B19", "B20-B24",
    "B25-B34", "B35-B49", "B50-B64", "B65-B83", "B85-B89", "B90-B94", "B95-B98", "B99-B99", "C00-C14", "C15-C26", "C30-C39", "C40-C41", "C43-C44",
    "C45-C49", "C50-C50", "C51-C58", "C60-C63", "C64-C68", "C69-C72", "C73-C75", "C76-C80", "C81-C96", "C97-C97", "D00-D09", "D10-D36", "D37-D48",
    "D50-D53", "D55-D59", "D60-D64", "D65-D69", "D70-D77", "D80-D89", "E00-E07", "E10-E14", "E15-E16", "E20-E35", "E40-E46", "E50-E64", "E65-E68",
    "E70-E90", "F00-F09", "F10-F19", "F20-F29", "F30-F39", "F40-F48", "F50-F59", "F60-F69", "F70-F79", "F80-F89", "F90-F98", "F99-F99", "G00-G09",
    "G10-G14", "G20-G26", "G30-G32", "G35-G37", "G40-G47", "G50-G59", "G60-G64", "G70-G73", "G80-G83", "G90-G99", "H00-H06", "H10-H13", "H15-H22",
    "H25-H28", "H30-H36", "H40-H42", "H43-H45", "H46-H48", "H49-H52", "H53-H54", "H55-H59", "H60-H62", "H65-H75", "H80-H83", "H90-H95", "I00-I02",
    "I05-I09", "I10-I15", "I20-I25", "I26-I28", "I30-I52", "I60-I69", "I70-I79", "I80-I89", "I95-I99", "J00-J06", "J09-J18", "J20-J22", "J30-J39",
    "J40-J47", "J60-J70", "J80-J84", "J85-J86", "J90-J94", "J95-J99", "K00-K14", "K20-K31", "K35-K38", "K40-K46", "K50-K52", "K55-K64", "K65-K67",
    "K70-K77", "K80-K87", "K90-K93", "L00-L08", "L10-L14", "L20-L30", "L40-L45", "L50-L54", "L55-L59", "L60-L75", "L80-L99", "M00-M03", "M05-M14",
    "M15-M19", "M20-M25", "M30-M36", "M40-M43", "M45-M49", "M50-M54", "M60-M63", "M65-M68", "M70-M79", "M80-M85", "M86-M90", "M91-M94", "M95-M99",
    "N00-N08", "N10-N16", "N17-N19", "N20-N23", "N25-N29", "N30-N39", "N40-N51", "N60-N64", "N70-N77", "N80-N98", "N99-N99", "O00-O08", "O10-O16",
    "O20-O29", "O30-O48", "O60-O75", "O80-O84", "O85-O92", "O94-O99", "P00-P04", "P05-P08", "P10-P15", "P20-P29", "P35-P39", "P50-P61", "P70-P74",
    "P75-P78", "P80-P83", "P90-P96", "Q00-Q07", "Q10-Q18", "Q20-Q28", "Q30-Q34", "Q35-Q37", "Q38-Q45", "Q50-Q56", "Q60-Q64", "Q65-Q79", "Q80-Q89",
    "Q90-Q99", "R00-R09", "R10-R19", "R20-R23", "R25-R29", "R30-R39", "R40-R46", "R47-R49", "R50-R69", "R70-R79", "R80-R82", "R83-R89", "R90-R94",
    "R95-R99", "S00-S09", "S10-S19", "S20-S29", "S30-S39", "S40-S49", "S50-S59", "S60-S69", "S70-S79", "S80-S89", "S90-S99", "T00-T07", "T08-T14",
    "T15-T19", "T20-T25", "T26-T28", "T29-T32", "T33-T35", "T36-T50", "T51-T65", "T66-T78", "T79-T79", "T80-T88", "T90-T98", "V01-V09", "V10-V19",
    "V20-V29", "V30-V39", "V40-V49", "V50-V59", "V60-V69", "V70-V79", "V80-V89", "V90-V94", "V95-V97", "V98-V99", "W00-W19", "W20-W49", "W50-W64",
    "W65-W74", "W75-W84", "W85-W99", "X00-X09", "X10-X19", "X20-X29", "X30-X39", "X40-X49", "X50-X57", "X58-X59", "X60-X84", "X85-Y09", "Y10-Y34",
    "Y35-Y36", "Y40-Y59", "Y60-Y69", "Y70-Y82", "Y83-Y84", "Y85-Y89", "Y90-Y98", "Z00-Z13", "Z20-Z29", "Z30-Z39", "Z40-Z54", "Z55-Z65", "Z70-Z76",
    "Z80-Z99", "U00-U49", "U82-U85",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn check(h: &Hierarchy, value: &str, expected: &[&str]) {
        let got: Vec<&str> = (0..h.levels()).map(|l| h.generalize(value, l).unwrap()).collect();
        assert_eq!(got, expected, "{value}");
    }

    #[test]
    fn age_bands_nest_and_top_code() {
        let h = age_bands(&AgeBands { min: 0, max: 105, widths: vec![5, 10, 20], top_code: Some(90) }).unwrap();
        assert_eq!(h.levels(), 5);
        assert_eq!(h.domain_size(), 107);
        check(&h, "37", &["37", "35-39", "30-39", "20-39", "*"]);
        check(&h, "89", &["89", "85-89", "80-89", "80-89", "*"]);
        check(&h, "95", &["95", "90+", "90+", "90+", "*"]);
        check(&h, "90+", &["90+", "90+", "90+", "90+", "*"]);
        let plain = age_bands(&AgeBands { min: 17, max: 90, widths: vec![10], top_code: None }).unwrap();
        check(&plain, "90", &["90", "90-99", "*"]);
        assert!(age_bands(&AgeBands { min: 0, max: 9, widths: vec![5, 8], top_code: None }).is_err());
        assert!(age_bands(&AgeBands { min: 9, max: 0, widths: vec![5], top_code: None }).is_err());
    }

    #[test]
    fn dates_to_month_quarter_year() {
        let h = dates(["2024-02-29", "20231105", "2024/12/01", "2024-02-29"], &[DateLevel::Month, DateLevel::Quarter, DateLevel::Year]).unwrap();
        assert_eq!(h.domain_size(), 3);
        check(&h, "2024-02-29", &["2024-02-29", "2024-02", "2024-Q1", "2024", "*"]);
        check(&h, "20231105", &["20231105", "2023-11", "2023-Q4", "2023", "*"]);
        check(&h, "2024/12/01", &["2024/12/01", "2024-12", "2024-Q4", "2024", "*"]);
        assert_eq!(dates(["2023-02-28", "2023-02-29"], &[DateLevel::Year]).unwrap_err(), BuiltinError::Date(1));
        assert!(dates(["2023-01-01"], &[DateLevel::Year, DateLevel::Month]).is_err());
    }

    #[test]
    fn municipalities_to_prefecture_and_region() {
        let h = municipalities(["13101", "01100", "47201", "27100"]).unwrap();
        check(&h, "13101", &["13101", "13", "関東地方", "*"]);
        check(&h, "01100", &["01100", "01", "北海道地方", "*"]);
        check(&h, "47201", &["47201", "47", "九州地方", "*"]);
        check(&h, "27100", &["27100", "27", "近畿地方", "*"]);
        for bad in ["1310", "48101", "00101", "1310a"] {
            assert_eq!(municipalities([bad]).unwrap_err(), BuiltinError::Municipality(0));
        }
    }

    #[test]
    fn icd10_to_category_block_chapter() {
        let h = icd10(["E11.9", "e119", "I21", "C50.1", "U07.1", "A97.0"]).unwrap();
        check(&h, "E11.9", &["E11.9", "E11", "E10-E14", "E00-E90", "*"]);
        check(&h, "e119", &["e119", "E11", "E10-E14", "E00-E90", "*"]);
        check(&h, "I21", &["I21", "I21", "I20-I25", "I00-I99", "*"]);
        check(&h, "C50.1", &["C50.1", "C50", "C50-C50", "C00-D48", "*"]);
        check(&h, "U07.1", &["U07.1", "U07", "U00-U49", "U00-U85", "*"]);
        check(&h, "A97.0", &["A97.0", "A97", "A90-A99", "A00-B99", "*"]);
        assert_eq!(icd10(["E1"]).unwrap_err(), BuiltinError::Icd10(0));
        assert_eq!(icd10(["E11", "A10"]).unwrap_err(), BuiltinError::Icd10Block(1));
        // Errors never quote the value.
        assert!(!icd10(["SECRET"]).unwrap_err().to_string().contains("SECRET"));
    }

    #[test]
    fn icd10_blocks_are_ordered_disjoint_and_inside_chapters() {
        for pair in ICD10_BLOCKS.windows(2) {
            assert!(pair[0][4..] < pair[1][..3] || pair[1].starts_with('U'), "{pair:?}");
        }
        for block in ICD10_BLOCKS {
            assert!(block[..3] <= block[4..], "{block}");
            assert_eq!(icd10_chapter(&block[..3]), icd10_chapter(&block[4..]), "{block} crosses chapters");
            assert!(icd10_chapter(&block[..3]).is_some(), "{block}");
        }
    }
}
