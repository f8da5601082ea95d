//! Code masters an operator loads (the MHLW 一般名処方マスタ, the 支払基金 basic masters of
//! レセ電 codes, the ICD-10 or MEDIS lists…): once a system's master is loaded, a code of that
//! system missing from it rejects its record; without one, only the code's shape is checked.
//!
//! A master is a text file as the publishers ship it or as a spreadsheet saves it: CSV or
//! tab-separated, UTF-8 (with or without a BOM) or Shift_JIS, title and header rows allowed.
//! The code system is named by the file name (`general-drug-name.csv`, `yj.csv`,
//! `receipt-drug.csv`, … — [`CodeSystem::from_name`]) or by the caller, and the codes are taken
//! from the one column in which the most cells have that system's shape, so that a master with
//! its code in the third column (the 支払基金's 医薬品マスター) and one with it in the second
//! (the 一般名処方マスタ) load the same way. Rows whose cell there has another shape (titles,
//! headers, notes) are skipped. Errors name the file, never a cell.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::codes::{check_shape, CodeSystem};
use crate::csv_map::split_line;

/// Code masters the caller loaded (one set of codes per system).
#[derive(Debug, Clone, Default)]
pub struct CodeMasters {
    sets: HashMap<CodeSystem, HashSet<String>>,
}

/// What one master file gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedMaster {
    pub system: CodeSystem,
    /// Distinct codes read from the file.
    pub codes: usize,
    /// The column the codes were taken from (1-based).
    pub column: usize,
    /// Rows skipped because that column held no code of the system's shape.
    pub skipped_rows: usize,
}

/// Why a master could not be loaded. Never quotes the file's content.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error("{file}: cannot read: {source}")]
    Read { file: String, source: io::Error },
    #[error("{file}: the file name does not name a code system with a master (for example general-drug-name.csv, yj.csv, receipt-disease.csv, receipt-drug.csv, icd10.csv)")]
    UnknownSystem { file: String },
    #[error("{file}: {system}: local or free-form codes have no master to check them against")]
    NoMasterForSystem { file: String, system: CodeSystem },
    #[error("{file}: no column holds {system} codes")]
    NoCodeColumn { file: String, system: CodeSystem },
    #[error("{file}: larger than the limit of {limit} bytes for a master")]
    TooLarge { file: String, limit: u64 },
}

/// The largest master file read (the largest published masters are a few tens of MB).
pub const MAX_MASTER_BYTES: u64 = 256 << 20;

impl CodeMasters {
    /// Loads the codes of `system` from `reader` (see the module documentation for the layout).
    /// `name` is the file's name, for messages.
    pub fn load(&mut self, system: CodeSystem, name: &str, reader: impl Read) -> Result<LoadedMaster, MasterError> {
        if !has_master(system) {
            return Err(MasterError::NoMasterForSystem { file: name.into(), system });
        }
        let mut bytes = Vec::new();
        reader.take(MAX_MASTER_BYTES + 1).read_to_end(&mut bytes).map_err(|source| MasterError::Read { file: name.into(), source })?;
        if bytes.len() as u64 > MAX_MASTER_BYTES {
            return Err(MasterError::TooLarge { file: name.into(), limit: MAX_MASTER_BYTES });
        }
        let text = decode(&bytes);
        let delimiter = if text.lines().take(50).filter(|l| l.contains('\t')).count() > text.lines().take(50).filter(|l| l.contains(',')).count() {
            '\t'
        } else {
            ','
        };
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut fields = Vec::new();
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            split_line(line, delimiter, &mut fields);
            rows.push(fields.iter().map(|f| f.trim().to_string()).collect());
        }
        let width = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut matches = vec![0usize; width];
        for row in &rows {
            for (i, cell) in row.iter().enumerate() {
                if check_shape(system, cell).is_ok() {
                    matches[i] += 1;
                }
            }
        }
        // The first column of the most matches.
        let Some((column, _)) = matches.iter().enumerate().filter(|(_, &n)| n > 0).fold(None, |best: Option<(usize, usize)>, (i, &n)| match best {
            Some((_, b)) if b >= n => best,
            _ => Some((i, n)),
        }) else {
            return Err(MasterError::NoCodeColumn { file: name.into(), system });
        };
        let set = self.sets.entry(system).or_default();
        let before = set.len();
        let mut skipped_rows = 0;
        for row in &rows {
            match row.get(column) {
                Some(cell) if check_shape(system, cell).is_ok() => {
                    set.insert(key(system, cell));
                }
                _ => skipped_rows += 1,
            }
        }
        Ok(LoadedMaster { system, codes: set.len() - before, column: column + 1, skipped_rows })
    }

    /// Loads a master file whose name names its system (`masters/general-drug-name.csv`).
    pub fn load_file(&mut self, path: &Path) -> Result<LoadedMaster, MasterError> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let stem = path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let system = CodeSystem::from_name(&stem).ok_or_else(|| MasterError::UnknownSystem { file: name.clone() })?;
        let file = std::fs::File::open(path).map_err(|source| MasterError::Read { file: name.clone(), source })?;
        self.load(system, &name, file)
    }

    /// Loads every `.csv`, `.tsv` and `.txt` file of `dir`, in name order (other files, such as a
    /// README, are left alone). A missing folder loads nothing. One file that cannot be loaded
    /// fails the whole call, so that an intake never runs with half the masters an operator
    /// meant to load.
    pub fn load_dir(&mut self, dir: &Path) -> Result<Vec<(PathBuf, LoadedMaster)>, MasterError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(MasterError::Read { file: dir.display().to_string(), source }),
        };
        let mut paths = Vec::new();
        for entry in entries {
            let path = entry.map_err(|source| MasterError::Read { file: dir.display().to_string(), source })?.path();
            let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
            if path.is_file() && matches!(ext.as_deref(), Some("csv" | "tsv" | "txt")) {
                paths.push(path);
            }
        }
        paths.sort();
        let mut loaded = Vec::with_capacity(paths.len());
        for path in paths {
            let master = self.load_file(&path)?;
            loaded.push((path, master));
        }
        Ok(loaded)
    }

    /// Adds one code (tests and callers building a master in memory).
    pub fn insert(&mut self, system: CodeSystem, code: &str) {
        self.sets.entry(system).or_default().insert(key(system, code));
    }

    /// `None` if no master is loaded for `system`.
    pub fn contains(&self, system: CodeSystem, code: &str) -> Option<bool> {
        self.sets.get(&system).map(|s| s.contains(&key(system, code)))
    }

    /// The systems a master is loaded for.
    pub fn systems(&self) -> impl Iterator<Item = CodeSystem> + '_ {
        self.sets.keys().copied()
    }
}

impl fmt::Display for LoadedMaster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} codes (column {}", self.system, self.codes, self.column)?;
        if self.skipped_rows > 0 {
            write!(f, ", {} other rows skipped", self.skipped_rows)?;
        }
        f.write_str(")")
    }
}

/// Systems with a published master. Local codes, usage tokens and status codes have none.
fn has_master(system: CodeSystem) -> bool {
    use CodeSystem::*;
    !matches!(system, LocalLab | LocalDrug | Token | Status | NoStandardDrugCode)
}

/// How a code is compared: ICD-10 with and without its dot (`E11.9`, `E119`) alike.
fn key(system: CodeSystem, code: &str) -> String {
    let code = code.trim();
    if system == CodeSystem::Icd10 {
        code.replace('.', "")
    } else {
        code.to_string()
    }
}

/// UTF-8 (a BOM dropped) if the bytes are valid UTF-8, else Shift_JIS.
fn decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => encoding_rs::SHIFT_JIS.decode_without_bom_handling(bytes).0.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(system: CodeSystem, text: &[u8], expected: Result<(usize, usize, usize), &str>, present: &[&str], absent: &[&str]) {
        let mut masters = CodeMasters::default();
        match (masters.load(system, "m.csv", text), expected) {
            (Ok(got), Ok((codes, column, skipped))) => {
                assert_eq!((got.codes, got.column, got.skipped_rows), (codes, column, skipped));
                for c in present {
                    assert_eq!(masters.contains(system, c), Some(true), "{c}");
                }
                for c in absent {
                    assert_eq!(masters.contains(system, c), Some(false), "{c}");
                }
            }
            (Err(e), Err(message)) => assert_eq!(e.to_string(), message),
            (got, want) => panic!("{got:?} against {want:?}"),
        }
    }

    #[test]
    fn finds_the_code_column_in_the_layouts_publishers_use() {
        // One code a line, as the tests' fixture.
        check(CodeSystem::GeneralDrugName, b"# note\n1124030F2ZZZ\n", Ok((1, 1, 0)), &["1124030F2ZZZ"], &["2124030F2ZZZ"]);
        // The 一般名処方マスタ saved as CSV: a title row, a header, the code in column 2.
        let mhlw = "一般名処方マスタ（令和8年）,,\n区分,一般名コード,一般名処方の標準的な記載\n内用薬,1124030F2ZZZ,【般】クアゼパム錠２０ｍｇ\n内用薬,\"1124009F1ZZZ\",\"【般】トリアゾラム錠0.125mg\"\n";
        check(CodeSystem::GeneralDrugName, mhlw.as_bytes(), Ok((2, 2, 2)), &["1124030F2ZZZ", "1124009F1ZZZ"], &["2124030F2ZZZ"]);
        // Shift_JIS, code in column 3 as the 支払基金's masters have it, a nine-digit price
        // elsewhere that is not in the column of the most codes.
        let (ssk, _, _) = encoding_rs::SHIFT_JIS.encode("0,Y,620000001,医薬品Ａ,000001230\r\n0,Y,620000002,医薬品Ｂ,\r\n");
        check(CodeSystem::ReceiptDrug, &ssk, Ok((2, 3, 0)), &["620000001", "620000002"], &["000001230"]);
        // Tab-separated ICD-10, looked up with or without the dot.
        check(CodeSystem::Icd10, b"code\tname\nE11.9\tdiabetes\nI10\thypertension\n", Ok((2, 1, 1)), &["E119", "E11.9", "I10"], &["E10.9"]);
    }

    #[test]
    fn refuses_what_is_not_a_master() {
        check(CodeSystem::GeneralDrugName, b"name\nfoo\n", Err("m.csv: no column holds 一般名処方コード codes"), &[], &[]);
        check(CodeSystem::LocalDrug, b"X1\n", Err("m.csv: local drug code: local or free-form codes have no master to check them against"), &[], &[]);
    }

    #[test]
    fn a_folder_loads_by_file_name_and_one_bad_file_fails_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("general-drug-name.csv"), "1124030F2ZZZ\n").unwrap();
        std::fs::write(dir.path().join("README.md"), "masters go here").unwrap();
        let mut masters = CodeMasters::default();
        let loaded = masters.load_dir(dir.path()).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].1.system, CodeSystem::GeneralDrugName);
        assert_eq!(masters.contains(CodeSystem::Yj, "1124030F2021"), None);
        std::fs::write(dir.path().join("drugs.csv"), "620000001\n").unwrap();
        let err = CodeMasters::default().load_dir(dir.path()).unwrap_err();
        assert!(err.to_string().starts_with("drugs.csv: the file name does not name a code system"), "{err}");
        assert!(CodeMasters::default().load_dir(&dir.path().join("missing")).unwrap().is_empty());
    }
}
