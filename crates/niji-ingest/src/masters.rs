//! Code masters an operator loads (the MHLW 一般名処方マスタ, the 支払基金 basic masters of
//! レセ電 codes, the ICD-10 or MEDIS lists…): once a system's master is loaded, a code of that
//! system missing from it rejects its record; without one, only the code's shape is checked.
//!
//! A master is a text file as the publishers ship it or as a spreadsheet saves it: CSV or
//! tab-separated, UTF-8 (with or without a BOM), UTF-16 with a BOM (Excel's "Unicode text") or
//! Shift_JIS, title and header rows allowed. The code system is named by the file name
//! (`general-drug-name.csv`, `yj.csv`, `receipt-drug.csv`, … — [`CodeSystem::from_name`]) or by
//! the caller, and the codes are taken from the one column holding the most distinct values of
//! that system's shape (dates that happen to have a code's shape repeat; codes do not), so that
//! a master with its code in the third column (the 支払基金's 医薬品マスター) and one with it in
//! the second (the 一般名処方マスタ) load the same way; HOT codes from every column of their
//! shapes (a MEDIS HOT master has HOT7, HOT9 and HOT13 side by side). Rows whose cell there has
//! another shape (titles, headers, notes) are skipped, but a column where more than a tenth of
//! the rows are not codes refuses the file: a spreadsheet that dropped leading zeros (`0000999`
//! saved as `999`) would otherwise reject valid records. A quoted cell may span lines (a
//! spreadsheet saves a note with line breaks so); a quote still open at the end refuses the
//! file, naming the line it opened on, since the codes after it would be lost. Codes the
//! recording rules define beside the master (`0000999`, 未コード化傷病名) are always known.
//! Errors name the file, never a cell.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::codes::{check_shape, CodeSystem};
use crate::csv_map::{split_line, Rows};
use crate::model::Location;
use crate::report::FileReport;

/// Code masters the caller loaded (one set of codes per system). Cloning shares the sets (each
/// intake's settings hold the masters; a change copies them first).
#[derive(Debug, Clone, Default)]
pub struct CodeMasters {
    sets: Arc<HashMap<CodeSystem, HashSet<String>>>,
}

/// The masters of one folder, read again only when its files change: the server reads them for
/// every upload, and the largest published masters (tens of MB) take seconds to read. A file
/// counts as changed when its size, modification time, inode or status-change time differs
/// (a file swapped in by `mv` or `cp -p` keeping size and time, or made unreadable, is a new
/// inode or a new ctime), or when files come or go.
#[derive(Debug, Default)]
pub struct MastersCache {
    held: Mutex<Option<HeldMasters>>,
}

#[derive(Debug)]
struct HeldMasters {
    /// The master files as they were when read.
    files: Vec<FileStamp>,
    masters: CodeMasters,
    loaded: MastersLoaded,
}

/// What tells one version of a master file from another.
#[derive(Debug, PartialEq, Eq)]
struct FileStamp {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
    /// Inode and status-change time (seconds, nanoseconds) where the platform has them.
    inode: (u64, i64, i64),
}

impl FileStamp {
    fn of(path: PathBuf, meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = {
            use std::os::unix::fs::MetadataExt;
            (meta.ino(), meta.ctime(), meta.ctime_nsec())
        };
        #[cfg(not(unix))]
        let inode = (0, 0, 0);
        FileStamp { path, len: meta.len(), modified: meta.modified().ok(), inode }
    }
}

impl MastersCache {
    /// [`CodeMasters::load_dir`] into a new set of masters, or the set read last time if no
    /// file of `dir` changed since. A folder that fails to load is read again next time.
    pub fn load_dir(&self, dir: &Path) -> Result<(CodeMasters, MastersLoaded), MasterError> {
        let paths = master_files(dir)?;
        let mut files = Vec::with_capacity(paths.len());
        for path in &paths {
            let meta = std::fs::metadata(path).map_err(|source| MasterError::Read { file: path.display().to_string(), source })?;
            files.push(FileStamp::of(path.clone(), &meta));
        }
        let mut held = self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(h) = held.as_ref().filter(|h| h.files == files) {
            return Ok((h.masters.clone(), h.loaded.clone()));
        }
        // Listed before reading: a file changed while it is read differs next time.
        let mut masters = CodeMasters::default();
        let loaded = masters.load_files(paths)?;
        *held = Some(HeldMasters { files, masters: masters.clone(), loaded: loaded.clone() });
        Ok((masters, loaded))
    }
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
    #[error(
        "{file}: column {column} holds {system} codes, but {skipped} of its {rows} rows hold something else (leading zeros lost in a spreadsheet?)"
    )]
    NotMostlyCodes { file: String, system: CodeSystem, column: usize, skipped: usize, rows: usize },
    #[error("{file}: larger than the limit of {limit} bytes for a master")]
    TooLarge { file: String, limit: u64 },
    #[error("{file}: line {line}: a quoted cell opened here is not closed by the end of the file")]
    UnclosedQuote { file: String, line: usize },
}

/// The largest master file read (the largest published masters are a few tens of MB).
pub const MAX_MASTER_BYTES: u64 = 64 << 20;

/// What [`CodeMasters::load_dir`] did with a folder's files.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MastersLoaded {
    pub loaded: Vec<(PathBuf, LoadedMaster)>,
    /// `.csv`, `.tsv` and `.txt` files whose name names no code system (a `README.txt`, a
    /// publisher's `y_ALL20240601.csv` not yet renamed): left alone, for the caller to warn about.
    pub ignored: Vec<PathBuf>,
}

/// The `.csv`, `.tsv` and `.txt` files of `dir`, sorted by name (none if it does not exist).
fn master_files(dir: &Path) -> Result<Vec<PathBuf>, MasterError> {
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
    Ok(paths)
}

/// Calls `each` with every row of `text` that is neither blank nor a `#` comment, read as the
/// CSV intake reads rows ([`Rows`]: a quoted cell may span lines); a quote still open at the end
/// refuses the master, naming the line it opened on.
fn for_each_row(text: &str, delimiter: char, file: &str, mut each: impl FnMut(&str)) -> Result<(), MasterError> {
    let delimiter = u8::try_from(delimiter).expect("a master's delimiter is ASCII");
    let mut report = FileReport::new(file);
    // No line limit: the file is held whole already (at most `MAX_MASTER_BYTES`).
    let mut rows = Rows::new(text.as_bytes(), delimiter, false, usize::MAX - 1);
    while let Some(row) = rows.next_row(&mut report).map_err(|source| MasterError::Read { file: file.into(), source })? {
        // Rows of UTF-8 text end at ASCII bytes: valid UTF-8 (borrowed, not copied).
        let line = String::from_utf8_lossy(row.bytes);
        if !line.trim().is_empty() && !line.starts_with('#') {
            each(&line);
        }
    }
    match report.rejected.first().map(|problem| &problem.location) {
        Some(&Location::Line(line)) => Err(MasterError::UnclosedQuote { file: file.into(), line: line as usize }),
        _ => Ok(()),
    }
}

/// Codes the recording rules define outside the masters.
const ALWAYS_KNOWN: &[(CodeSystem, &str)] = &[(CodeSystem::ReceiptDisease, "0000999")];

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
        drop(bytes);
        let head = || text.lines().take(50);
        let tabs = head().filter(|l| l.contains('\t')).count();
        let delimiter = if tabs > 0 && tabs >= head().filter(|l| l.contains(',')).count() { '\t' } else { ',' };
        let mut fields = Vec::new();
        // First pass: the distinct values of the system's shape in each column.
        let mut distinct: Vec<HashSet<String>> = Vec::new();
        let mut rows = 0usize;
        for_each_row(&text, delimiter, name, |line| {
            rows += 1;
            split_line(line, delimiter, &mut fields);
            distinct.resize_with(distinct.len().max(fields.len()), HashSet::new);
            for (i, cell) in fields.iter().enumerate() {
                if let Some(code) = code_of(system, cell) {
                    distinct[i].insert(code);
                }
            }
        })?;
        let best = distinct.iter().map(HashSet::len).max().unwrap_or(0);
        if best == 0 {
            return Err(MasterError::NoCodeColumn { file: name.into(), system });
        }
        // The first column of the most distinct codes; for HOT every column of codes.
        let columns: Vec<usize> = if system == CodeSystem::Hot {
            (0..distinct.len()).filter(|&i| !distinct[i].is_empty()).collect()
        } else {
            vec![distinct.iter().position(|d| d.len() == best).expect("the best column")]
        };
        drop(distinct);
        // Second pass: the codes of the chosen columns.
        let mut codes = HashSet::new();
        let mut skipped_rows = 0;
        for_each_row(&text, delimiter, name, |line| {
            split_line(line, delimiter, &mut fields);
            let mut any = false;
            for &c in &columns {
                if let Some(code) = fields.get(c).and_then(|cell| code_of(system, cell)) {
                    codes.insert(code);
                    any = true;
                }
            }
            skipped_rows += usize::from(!any);
        })?;
        // Titles and headers are a few rows; many more is a column of something else.
        if skipped_rows > 5 && skipped_rows * 10 > rows {
            return Err(MasterError::NotMostlyCodes { file: name.into(), system, column: columns[0] + 1, skipped: skipped_rows, rows });
        }
        let set = Arc::make_mut(&mut self.sets).entry(system).or_default();
        let before = set.len();
        set.extend(codes);
        for &(s, code) in ALWAYS_KNOWN {
            if s == system {
                set.insert(code.to_string());
            }
        }
        Ok(LoadedMaster { system, codes: set.len() - before, column: columns[0] + 1, skipped_rows })
    }

    /// Loads a master file whose name names its system (`masters/general-drug-name.csv`).
    pub fn load_file(&mut self, path: &Path) -> Result<LoadedMaster, MasterError> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let stem = path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let system = CodeSystem::from_name(&stem).ok_or_else(|| MasterError::UnknownSystem { file: name.clone() })?;
        let file = std::fs::File::open(path).map_err(|source| MasterError::Read { file: name.clone(), source })?;
        self.load(system, &name, file)
    }

    /// Loads every `.csv`, `.tsv` and `.txt` file of `dir` whose name names a code system, in
    /// name order; other files are left alone (listed in [`MastersLoaded::ignored`]). A missing
    /// folder loads nothing. One master that cannot be loaded fails the whole call, so that an
    /// intake never runs with part of the masters an operator meant to load.
    pub fn load_dir(&mut self, dir: &Path) -> Result<MastersLoaded, MasterError> {
        self.load_files(master_files(dir)?)
    }

    /// [`CodeMasters::load_dir`] of files already listed.
    fn load_files(&mut self, paths: Vec<PathBuf>) -> Result<MastersLoaded, MasterError> {
        let mut out = MastersLoaded::default();
        for path in paths {
            match self.load_file(&path) {
                Ok(master) => out.loaded.push((path, master)),
                Err(MasterError::UnknownSystem { .. }) => out.ignored.push(path),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Adds one code (tests and callers building a master in memory).
    pub fn insert(&mut self, system: CodeSystem, code: &str) {
        Arc::make_mut(&mut self.sets).entry(system).or_default().insert(key(system, code));
    }

    /// `None` if no master is loaded for `system`.
    pub fn contains(&self, system: CodeSystem, code: &str) -> Option<bool> {
        self.sets.get(&system).map(|s| s.contains(&key(system, code)))
    }

    /// The systems a master is loaded for and how many codes each holds, by system name (for
    /// the intake's log entry: which masters a version was checked against).
    pub fn summary(&self) -> Vec<(&'static str, usize)> {
        let mut out: Vec<(&'static str, usize)> = self.sets.iter().map(|(s, codes)| (s.name(), codes.len())).collect();
        out.sort();
        out
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
    !matches!(system, LocalLab | LocalDrug | Token | Status | NoStandardDrugCode | Usage)
}

/// How a code is compared: ICD-10 with and without its dot and its dagger or asterisk
/// (`E11.9`, `E119`, `A17.0†`) alike.
fn key(system: CodeSystem, code: &str) -> String {
    let code = code.trim();
    if system == CodeSystem::Icd10 {
        code.chars().filter(|c| !matches!(c, '.' | '†' | '*' | '+')).collect()
    } else {
        code.to_string()
    }
}

/// A cell's code as compared, if it has the system's shape.
fn code_of(system: CodeSystem, cell: &str) -> Option<String> {
    let code = key(system, cell);
    check_shape(system, &code).is_ok().then_some(code)
}

/// UTF-16 with a BOM, UTF-8 (a BOM dropped) if the bytes are valid UTF-8, else Shift_JIS.
fn decode(bytes: &[u8]) -> String {
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        if encoding != encoding_rs::UTF_8 {
            return encoding.decode_without_bom_handling(&bytes[bom..]).0.into_owned();
        }
    }
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
        // Shift_JIS, code in column 3 as the 支払基金's masters have it, and a column of nine-digit
        // prices that repeat: the codes are the column of the most distinct values.
        let (ssk, _, _) = encoding_rs::SHIFT_JIS.encode("0,Y,620000001,医薬品Ａ,000001230\r\n0,Y,620000002,医薬品Ｂ,000001230\r\n");
        check(CodeSystem::ReceiptDrug, &ssk, Ok((2, 3, 0)), &["620000001", "620000002"], &["000001230"]);
        // Tab-separated ICD-10 with commas in the names, looked up with or without the dot and
        // the dagger.
        check(
            CodeSystem::Icd10,
            "code\tname\nE11.9\tdiabetes, type 2\nA17.0†\ttuberculous meningitis\n".as_bytes(),
            Ok((2, 1, 1)),
            &["E119", "E11.9", "A17.0"],
            &["E10.9"],
        );
        // Excel's "Unicode text": UTF-16 with a BOM.
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend("620000001\t医薬品\r\n".encode_utf16().flat_map(u16::to_le_bytes));
        check(CodeSystem::ReceiptDrug, &utf16, Ok((1, 1, 0)), &["620000001"], &[]);
        // Key numbers beside dates of their shape (変更年月日, 廃止年月日 99999999): the dates repeat.
        let keys = "20240401,99999999,20000001,病名Ａ\n20240401,99999999,20000002,病名Ｂ\n20240401,99999999,20000003,病名Ｃ\n";
        check(CodeSystem::DiseaseKeyNumber, keys.as_bytes(), Ok((3, 3, 0)), &["20000002"], &["20240401"]);
        // A MEDIS HOT master: HOT13, HOT7 and HOT9 side by side, all loaded.
        let hot = "1234567010101,1234567,123456701,薬Ａ\n1234568010101,1234568,123456801,薬Ｂ\n";
        check(CodeSystem::Hot, hot.as_bytes(), Ok((6, 1, 0)), &["1234567", "123456801", "1234568010101"], &["7654321"]);
        // A note with line breaks (a spreadsheet's cell saved as CSV): a line inside it that looks
        // like a row with a code is part of the note.
        let noted = "一般名処方マスタ,,,\n区分,一般名コード,一般名処方の標準的な記載,備考\n内用薬,1124030F2ZZZ,【般】クアゼパム錠２０ｍｇ,\"旧記載:\r\n内用薬,2124030F2ZZZ,旧\"\"名\"\"\"\r\n内用薬,1124009F1ZZZ,【般】トリアゾラム錠0.125mg,\n";
        check(CodeSystem::GeneralDrugName, noted.as_bytes(), Ok((2, 2, 2)), &["1124030F2ZZZ", "1124009F1ZZZ"], &["2124030F2ZZZ"]);
        // 0000999 (未コード化傷病名) is known whatever the master holds.
        check(CodeSystem::ReceiptDisease, b"8833421\n", Ok((2, 1, 0)), &["0000999", "8833421"], &["8833422"]);
    }

    #[test]
    fn refuses_what_is_not_a_master() {
        check(CodeSystem::GeneralDrugName, b"name\nfoo\n", Err("m.csv: no column holds 一般名処方コード codes"), &[], &[]);
        check(CodeSystem::LocalDrug, b"X1\n", Err("m.csv: local drug code: local or free-form codes have no master to check them against"), &[], &[]);
        // A quote left open would swallow the codes after it.
        check(
            CodeSystem::GeneralDrugName,
            b"code\n1124030F2ZZZ\n\"1124009F1ZZZ\n1124010F1ZZZ\n",
            Err("m.csv: line 3: a quoted cell opened here is not closed by the end of the file"),
            &[],
            &[],
        );
        // Leading zeros lost in a spreadsheet: most of the column is no longer codes.
        let mangled: String = (0..20).map(|i| if i < 3 { format!("880{i:04}\n") } else { format!("{i}\n") }).collect();
        check(
            CodeSystem::ReceiptDisease,
            mangled.as_bytes(),
            Err("m.csv: column 1 holds レセ電傷病名コード codes, but 17 of its 20 rows hold something else (leading zeros lost in a spreadsheet?)"),
            &[],
            &[],
        );
    }

    #[test]
    fn a_folder_loads_by_file_name_and_one_bad_master_fails_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("general-drug-name.csv"), "1124030F2ZZZ\n").unwrap();
        std::fs::write(dir.path().join("README.md"), "masters go here").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "620000001\n").unwrap();
        let mut masters = CodeMasters::default();
        let loaded = masters.load_dir(dir.path()).unwrap();
        assert_eq!(loaded.loaded.len(), 1);
        assert_eq!(loaded.loaded[0].1.system, CodeSystem::GeneralDrugName);
        assert_eq!(loaded.ignored, [dir.path().join("notes.txt")]);
        assert_eq!(masters.contains(CodeSystem::Yj, "1124030F2021"), None);
        assert_eq!(masters.summary(), [("GeneralDrugName", 1)]);
        std::fs::write(dir.path().join("yj.csv"), "name\nfoo\n").unwrap();
        let err = CodeMasters::default().load_dir(dir.path()).unwrap_err();
        assert_eq!(err.to_string(), "yj.csv: no column holds YJ code codes");
        assert!(CodeMasters::default().load_dir(&dir.path().join("missing")).unwrap().loaded.is_empty());
    }

    /// The cache hands out the masters it read while no file changes (the same sets, not read
    /// again), and reads the folder again when a file changes, comes or goes, or failed.
    #[test]
    fn the_cache_reads_a_folder_again_only_when_its_files_change() {
        let dir = tempfile::tempdir().unwrap();
        let drugs = dir.path().join("general-drug-name.csv");
        std::fs::write(&drugs, "1124030F2ZZZ\n").unwrap();
        let cache = MastersCache::default();
        let (first, loaded) = cache.load_dir(dir.path()).unwrap();
        let (again, loaded_again) = cache.load_dir(dir.path()).unwrap();
        assert!(Arc::ptr_eq(&first.sets, &again.sets), "read again though nothing changed");
        assert_eq!(loaded, loaded_again);
        assert_eq!(again.contains(CodeSystem::GeneralDrugName, "1124030F2ZZZ"), Some(true));

        // A changed file (another size) is read again.
        std::fs::write(&drugs, "1124030F2ZZZ\n2124030F2ZZZ\n").unwrap();
        let (changed, _) = cache.load_dir(dir.path()).unwrap();
        assert!(!Arc::ptr_eq(&first.sets, &changed.sets));
        assert_eq!(changed.contains(CodeSystem::GeneralDrugName, "2124030F2ZZZ"), Some(true));
        // A file of the same size and modification time moved into place is read again.
        let staged = dir.path().join("staged.tmp");
        std::fs::write(&staged, "1124030F2ZZZ\n3124030F2ZZZ\n").unwrap();
        std::fs::File::options().write(true).open(&staged).unwrap().set_modified(std::fs::metadata(&drugs).unwrap().modified().unwrap()).unwrap();
        std::fs::rename(&staged, &drugs).unwrap();
        let (swapped, _) = cache.load_dir(dir.path()).unwrap();
        assert_eq!(swapped.contains(CodeSystem::GeneralDrugName, "3124030F2ZZZ"), Some(true));
        // The masters handed out before keep what they held.
        assert_eq!(first.contains(CodeSystem::GeneralDrugName, "2124030F2ZZZ"), Some(false));

        // A new file is read; a bad one fails every call until it is mended, then loads.
        std::fs::write(dir.path().join("yj.csv"), "name\nfoo\n").unwrap();
        for _ in 0..2 {
            assert_eq!(cache.load_dir(dir.path()).unwrap_err().to_string(), "yj.csv: no column holds YJ code codes");
        }
        std::fs::write(dir.path().join("yj.csv"), "1124030F2021\n").unwrap();
        let (mended, loaded) = cache.load_dir(dir.path()).unwrap();
        assert_eq!(mended.summary(), [("GeneralDrugName", 2), ("Yj", 1)]);
        assert_eq!(loaded.loaded.len(), 2);

        // A file gone is gone from the masters.
        std::fs::remove_file(dir.path().join("yj.csv")).unwrap();
        assert_eq!(cache.load_dir(dir.path()).unwrap().0.contains(CodeSystem::Yj, "1124030F2021"), None);
    }
}
