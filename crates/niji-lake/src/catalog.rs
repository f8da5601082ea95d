//! The data catalog of the standard tables, in Japanese and English: one static description per
//! table of [`TABLES`](crate::TABLES) and per column of its schema ([`table_schema`](crate::table_schema)).
//!
//! Invariants (checked by tests): [`tables`] lists the tables in [`TABLES`](crate::TABLES) order;
//! the columns of each [`TableDoc`] are exactly the fields of the table's schema, in order; every
//! title and description is non-empty in both languages. Column types are not written here but
//! read from the schema ([`column_type`]), so they cannot disagree.
//!
//! Descriptions describe the data and its codes, never data values. Code-system columns hold the
//! `niji-ingest` [`CodeSystem`](niji_ingest::CodeSystem) variant name; `code_systems` names the
//! code systems a column can hold as data people know them.

use arrow_schema::DataType;

/// Catalog entry of one standard table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableDoc {
    /// Table name, as in [`TABLES`](crate::TABLES) and the file name `<name>.parquet`.
    pub name: &'static str,
    pub title_ja: &'static str,
    pub title_en: &'static str,
    pub description_ja: &'static str,
    pub description_en: &'static str,
    /// The records the rows come from, e.g. `FHIR Encounter (JP Core)`.
    pub source: &'static str,
    /// The columns, in schema order.
    pub columns: &'static [ColumnDoc],
}

/// Catalog entry of one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnDoc {
    pub name: &'static str,
    pub description_ja: &'static str,
    pub description_en: &'static str,
    /// Code systems of the column's values (empty for columns that hold no codes).
    pub code_systems: &'static [&'static str],
}

impl TableDoc {
    /// One column's entry by name.
    pub fn column(&self, name: &str) -> Option<&'static ColumnDoc> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Every standard table, in [`TABLES`](crate::TABLES) order.
pub fn tables() -> &'static [TableDoc] {
    &DOCS
}

/// One table's entry by name.
pub fn table(name: &str) -> Option<&'static TableDoc> {
    DOCS.iter().find(|t| t.name == name)
}

/// The Arrow type of a column as a short readable name: `person key` (`FixedSizeBinary(32)`),
/// `string`, `int32`, `int64`, `float64`, `boolean` or `date` (`Date32`). Year-months are
/// `string` (`YYYY-MM`). `None` for an unknown table or column.
pub fn column_type(table: &str, column: &str) -> Option<&'static str> {
    let schema = crate::table_schema(table)?;
    let field = schema.field_with_name(column).ok()?;
    Some(match field.data_type() {
        DataType::FixedSizeBinary(32) => "person key",
        DataType::Utf8 => "string",
        DataType::Int32 => "int32",
        DataType::Int64 => "int64",
        DataType::Float64 => "float64",
        DataType::Boolean => "boolean",
        DataType::Date32 => "date",
        _ => "other",
    })
}

const fn col(name: &'static str, description_ja: &'static str, description_en: &'static str, code_systems: &'static [&'static str]) -> ColumnDoc {
    ColumnDoc { name, description_ja, description_en, code_systems }
}

const PERSON_KEY: ColumnDoc = col(
    "person_key",
    "個人キー。同一人物の記録を名寄せした仮名化キー（32バイトの鍵付きハッシュ）で、バージョン内の全テーブルで同じ値になり、テーブル間の結合に使う。氏名・保険者番号などの識別子そのものは含まない。",
    "Pseudonymous person key (32-byte keyed hash from record linkage): the same person has the same key in every table of a version, so it joins the tables. It holds no identifier such as a name or insurance number.",
    &[],
);

const BIRTH_YEAR_MONTH_JA: &str = "生年月（YYYY-MM）。生年月日の日は保持しない。";
const BIRTH_YEAR_MONTH_EN: &str = "Year and month of birth (YYYY-MM); the day of birth is not kept.";

const ALT_CODES_JA: &str = "主たるコード以外のコーディング（「コード体系名:コード」を ; で連結）。";
const ALT_CODES_EN: &str = "The other codings besides the primary one, as `System:code` joined with `;`.";

const DISEASE_CODES: &[&str] = &["ICD-10 (MHLW)", "病名管理番号 (MEDIS)", "レセ電傷病名コード", "病名交換用コード (MEDIS)"];
const DRUG_CODES: &[&str] = &["YJコード", "HOTコード (MEDIS)", "一般名処方マスタ", "レセ電医薬品コード", "施設固有医薬品コード"];
const LAB_CODES: &[&str] = &["JLAC10", "JLAC11", "施設固有検査コード (JP-CLINS)", "LOINC"];
const ALLERGY_CODES: &[&str] = &["YJコード", "HOTコード (MEDIS)", "一般名処方マスタ", "JP-CLINS アレルゲンコード", "施設固有コード"];

static DOCS: [TableDoc; crate::TABLES.len()] = [
    TableDoc {
        name: "patients",
        title_ja: "患者",
        title_en: "Patients",
        description_ja: "患者の基本情報。FHIR Patient リソース1件につき1行で、複数の医療機関から提出された人物は複数行になる。性別、生年月、都道府県・市区町村、死亡の有無を持ち、氏名・住所・生年月日などの個人を特定する情報は含まない。",
        description_en: "Basic patient data: one row per FHIR Patient resource, so a person submitted by several providers has several rows. Sex, birth year-month, prefecture and municipality, death; no names, addresses, full birth dates or identifiers.",
        source: "FHIR Patient (JP Core)",
        columns: &[
            PERSON_KEY,
            col("sex", "性別（male: 男性、female: 女性、other: その他、unknown: 不明）。", "Administrative sex: male, female, other or unknown.", &["FHIR AdministrativeGender"]),
            col("birth_year_month", BIRTH_YEAR_MONTH_JA, BIRTH_YEAR_MONTH_EN, &[]),
            col(
                "prefecture",
                "都道府県コード（JIS X 0401、1〜47）。住所の都道府県から、なければ8桁の保険者番号の都道府県番号から得る。",
                "Prefecture, JIS X 0401 code 1–47: from the address, failing that from the prefecture digits of an 8-digit insurer number (保険者番号).",
                &["JIS X 0401"],
            ),
            col(
                "municipality",
                "市区町村コード（JIS X 0402、検査数字を除いた5桁）。データにコードがある場合のみで、住所の文字列からは導かない。",
                "Municipality, JIS X 0402 code (5 digits, check digit dropped); only when the data carries the code, never derived from address text.",
                &["JIS X 0402"],
            ),
            col("deceased", "死亡の有無（死亡日の記載があれば true）。", "Whether the patient has died (true when a date of death is given).", &[]),
            col("deceased_on", "死亡日。", "Date of death.", &[]),
        ],
    },
    TableDoc {
        name: "encounters",
        title_ja: "受診",
        title_en: "Encounters",
        description_ja: "外来受診・入院・救急受診などの受診1件につき1行。受診区分、状態、期間を持つ。",
        description_en: "One row per encounter (outpatient visit, inpatient stay, emergency visit, …): class, status and period.",
        source: "FHIR Encounter (JP Core)",
        columns: &[
            PERSON_KEY,
            col(
                "status",
                "受診の状態（planned: 予定、in-progress: 受診中、finished: 終了、cancelled: 取消 など）。",
                "Encounter status (planned, in-progress, finished, cancelled, …).",
                &["FHIR EncounterStatus"],
            ),
            col(
                "class",
                "受診区分（AMB: 外来、IMP: 入院、EMER: 救急 など）。",
                "Encounter class (AMB ambulatory, IMP inpatient, EMER emergency, …).",
                &["HL7 v3 ActCode"],
            ),
            col("start", "受診開始日（入院では入院日）。", "Start date of the encounter (admission date of an inpatient stay).", &[]),
            col("end", "受診終了日（入院では退院日）。", "End date of the encounter (discharge date of an inpatient stay).", &[]),
            col("age", "出来事の時点の年齢（満年齢）。生年月日は識別情報の保管庫にのみあり、取込み時に計算します。", "Age in whole years at the event, computed at intake from the full birth date, which only the identity vault holds.", &[]),
        ],
    },
    TableDoc {
        name: "conditions",
        title_ja: "傷病名",
        title_en: "Conditions",
        description_ja: "傷病名1件につき1行。電子カルテ由来（FHIR Condition）とレセプト由来（レセ電 SY 傷病名レコード）の両方を含み、source 列で区別する。レセプト由来の行は file・claim で claims と結合できる。",
        description_en: "One row per diagnosis, from EHR data (FHIR Condition) and from claims (UKE SY disease records); `source` tells which. Claim rows join `claims` on `file` and `claim`.",
        source: "FHIR Condition (JP Core / JP-CLINS), UKE SY",
        columns: &[
            PERSON_KEY,
            col("source", "データの出所（ehr: 電子カルテ、claim: レセプト）。", "Origin of the row: ehr (FHIR Condition) or claim (UKE SY).", &[]),
            col(
                "code_system",
                "code 列のコード体系（Icd10、DiseaseKeyNumber、ReceiptDisease など）。",
                "Code system of `code` (Icd10, DiseaseKeyNumber, ReceiptDisease, …).",
                &[],
            ),
            col(
                "code",
                "傷病名コード（主たるコード）。ICD-10、標準病名マスターの病名管理番号、レセ電傷病名コードのいずれか。",
                "Diagnosis code (primary coding): ICD-10, MEDIS disease key number (病名管理番号) or receipt disease code (レセ電傷病名コード).",
                DISEASE_CODES,
            ),
            col("alt_codes", ALT_CODES_JA, ALT_CODES_EN, DISEASE_CODES),
            col(
                "clinical_status",
                "臨床的状態（active: 活動性、recurrence: 再発、remission: 寛解、resolved: 治癒 など）。電子カルテ由来のみ。",
                "Clinical status (active, recurrence, relapse, inactive, remission, resolved); EHR rows only.",
                &["FHIR condition-clinical"],
            ),
            col(
                "verification_status",
                "診断の確からしさ（confirmed: 確定、provisional・unconfirmed: 疑い、refuted: 否定 など）。電子カルテ由来のみ。",
                "Verification status (confirmed, provisional, unconfirmed, differential, refuted, entered-in-error); EHR rows only.",
                &["FHIR condition-ver-status"],
            ),
            col(
                "categories",
                "区分（problem-list-item: 問題リスト、encounter-diagnosis: 受診時の診断 など。; 区切り）。",
                "Categories (problem-list-item, encounter-diagnosis, …), joined with `;`.",
                &["FHIR condition-category"],
            ),
            col("onset", "発症日。レセプト由来の行では診療開始日。", "Onset date; for claim rows the start of treatment (診療開始日).", &[]),
            col("abatement", "治癒・軽快した日。電子カルテ由来のみ。", "Date the condition abated; EHR rows only.", &[]),
            col("recorded", "記録日。電子カルテ由来のみ。", "Date the diagnosis was recorded; EHR rows only.", &[]),
            col(
                "file",
                "提出ファイルの番号。レセプト由来のみで、claims の file と結合する。",
                "Number of the submitted file; claim rows only, joins `claims.file`.",
                &[],
            ),
            col(
                "claim",
                "この傷病名が属するレセプト（RE レコード）のファイル内の行番号。レセプト由来のみで、file とあわせて claims と結合する。",
                "Line of the claim's RE record in its file; claim rows only, joins `claims` together with `file`.",
                &[],
            ),
            col("modifiers", "修飾語コード（4桁、; 区切り）。レセプト由来のみ。", "Disease modifier codes (修飾語コード, 4 digits), joined with `;`; claim rows only.", &["修飾語コード"]),
            col(
                "outcome",
                "転帰区分（1: 治ゆ・死亡・中止以外、2: 治ゆ、3: 死亡、4: 中止（転医））。レセプト由来のみ。",
                "Outcome (転帰区分: 1 none of the following, 2 cured, 3 died, 4 discontinued / transferred); claim rows only.",
                &["転帰区分"],
            ),
            col("main", "主傷病であれば true。レセプト由来のみ。", "True for the main disease (主傷病) of the claim; claim rows only.", &[]),
            col(
                "facility_code",
                "医療機関コード（7桁、IR レコード）。レセプト由来のみ。医療機関を表すもので、個人の情報ではない。",
                "Facility code (医療機関コード, 7 digits, from the IR record); claim rows only. It names a facility, not a person.",
                &["医療機関コード"],
            ),
            col("age", "出来事の時点の年齢（満年齢）。生年月日は識別情報の保管庫にのみあり、取込み時に計算します。", "Age in whole years at the event, computed at intake from the full birth date, which only the identity vault holds.", &[]),
        ],
    },
    TableDoc {
        name: "medications",
        title_ja: "処方",
        title_en: "Medication requests",
        description_ja: "処方（FHIR MedicationRequest）1件につき1行。医薬品コード、1回量、投与日数、総量、用法を持つ。レセプトの医薬品（IY レコード）は claim_lines に入る。",
        description_en: "One row per prescription (FHIR MedicationRequest): drug code, dose, duration, dispensed quantity and usage. Drugs on claims (UKE IY) are in `claim_lines`.",
        source: "FHIR MedicationRequest (JP Core / JP-CLINS)",
        columns: &[
            PERSON_KEY,
            col(
                "status",
                "処方の状態（active: 有効、completed: 完了、stopped: 中止、cancelled: 取消 など）。",
                "Prescription status (active, completed, stopped, cancelled, …).",
                &["FHIR medicationrequest-status"],
            ),
            col("intent", "処方の意図（order: 指示、plan: 計画、proposal: 提案 など）。", "Intent (order, plan, proposal, …).", &["FHIR medicationrequest-intent"]),
            col(
                "categories",
                "区分（院内処方・院外処方、内服・外用・注射 など。; 区切り）。",
                "Categories (in-house or outside pharmacy, oral, topical, injection, …), joined with `;`.",
                &["JP Core / FHIR medicationrequest-category"],
            ),
            col(
                "code_system",
                "code 列のコード体系（Yj、Hot、GeneralDrugName、ReceiptDrug、NoStandardDrugCode、LocalDrug など）。",
                "Code system of `code` (Yj, Hot, GeneralDrugName, ReceiptDrug, NoStandardDrugCode, LocalDrug, …).",
                &[],
            ),
            col(
                "code",
                "医薬品コード（主たるコード）。YJコード、HOTコード、一般名処方マスタのコード、レセ電医薬品コード、施設固有のコードのいずれか。",
                "Drug code (primary coding): YJ code, HOT code, general-name prescription code (一般名処方マスタ), receipt drug code or a facility's local code.",
                DRUG_CODES,
            ),
            col("alt_codes", ALT_CODES_JA, ALT_CODES_EN, DRUG_CODES),
            col("authored", "処方日。", "Date the prescription was written (authoredOn).", &[]),
            col("dose_value", "1回量。", "Dose per administration.", &[]),
            col("dose_unit", "1回量の単位（UCUM または「錠」などの単位）。", "Unit of the dose (UCUM or a Japanese unit word such as 錠).", &["UCUM"]),
            col("duration_days", "投与日数。", "Duration of the prescription in days.", &[]),
            col("dispense_value", "総量（調剤する量）。", "Total quantity to dispense.", &[]),
            col("dispense_unit", "総量の単位。", "Unit of the quantity to dispense.", &["UCUM"]),
            col("usage_codes", "用法コード（; 区切り）。", "Usage (dosage timing) codes, joined with `;`.", &["JAMI 用法コード"]),
            col("age", "出来事の時点の年齢（満年齢）。生年月日は識別情報の保管庫にのみあり、取込み時に計算します。", "Age in whole years at the event, computed at intake from the full birth date, which only the identity vault holds.", &[]),
        ],
    },
    TableDoc {
        name: "lab_results",
        title_ja: "検体検査結果",
        title_en: "Laboratory results",
        description_ja: "検体検査結果などの観察値（FHIR Observation）1件につき1行。血圧のように構成要素を持つ結果は、本体の行に続けて構成要素ごとに1行ずつ入る（component 列が 1 から）。",
        description_en: "One row per observation (FHIR Observation), chiefly laboratory results; an observation with components (such as blood pressure) is followed by one row per component (`component` 1, 2, …).",
        source: "FHIR Observation (JP Core / JP-CLINS)",
        columns: &[
            PERSON_KEY,
            col(
                "component",
                "構成要素の番号。本体の行は null、構成要素の行は 1 から。",
                "Component number: null for the observation itself, 1, 2, … for its components.",
                &[],
            ),
            col(
                "status",
                "結果の状態（final: 確定、preliminary: 速報、amended: 修正 など）。",
                "Result status (final, preliminary, amended, …).",
                &["FHIR observation-status"],
            ),
            col(
                "categories",
                "区分（laboratory: 検体検査、vital-signs: バイタルサイン など。; 区切り）。",
                "Categories (laboratory, vital-signs, …), joined with `;`.",
                &["FHIR observation-category"],
            ),
            col(
                "code_system",
                "code 列のコード体系（Jlac10、Jlac11、LocalLab など）。",
                "Code system of `code` (Jlac10, Jlac11, LocalLab, …).",
                &[],
            ),
            col(
                "code",
                "検査項目コード（主たるコード）。JLAC10、JLAC11、施設固有の検査コード、LOINC 形式のコードのいずれか。",
                "Test code (primary coding): JLAC10, JLAC11, a facility's local lab code or a LOINC-shaped code.",
                LAB_CODES,
            ),
            col("alt_codes", ALT_CODES_JA, ALT_CODES_EN, LAB_CODES),
            col(
                "effective",
                "検査日（検体採取日。期間の場合は開始日）。",
                "Date of the result (effectiveDateTime, or the start of effectivePeriod).",
                &[],
            ),
            col("value", "検査結果の数値。", "Numeric result value.", &[]),
            col("unit", "結果の単位（UCUM または「％」などの単位）。", "Unit of the value (UCUM or a Japanese unit word such as ％).", &["UCUM"]),
            col(
                "value_codes",
                "コード化された結果（定性結果など。「コード体系名:コード」を ; で連結）。",
                "Coded result values (qualitative results, …), as `System:code` joined with `;`.",
                &["JLAC10", "JP-CLINS"],
            ),
            col(
                "interpretation",
                "判定（H: 高値、L: 低値、N: 基準範囲内 など。; 区切り）。本体の行のみ。",
                "Interpretation (H high, L low, N normal, …), joined with `;`; observation rows only.",
                &["HL7 v3 ObservationInterpretation"],
            ),
            col("age", "出来事の時点の年齢（満年齢）。生年月日は識別情報の保管庫にのみあり、取込み時に計算します。", "Age in whole years at the event, computed at intake from the full birth date, which only the identity vault holds.", &[]),
        ],
    },
    TableDoc {
        name: "allergies",
        title_ja: "アレルギー",
        title_en: "Allergies and intolerances",
        description_ja: "アレルギー・不耐性（FHIR AllergyIntolerance）1件につき1行。原因物質のコード、区分、重篤度、状態を持つ。",
        description_en: "One row per allergy or intolerance (FHIR AllergyIntolerance): substance code, category, criticality and status.",
        source: "FHIR AllergyIntolerance (JP Core / JP-CLINS)",
        columns: &[
            PERSON_KEY,
            col("code_system", "code 列のコード体系。", "Code system of `code`.", &[]),
            col(
                "code",
                "アレルギーの原因物質（アレルゲン）のコード（主たるコード）。",
                "Code of the substance causing the allergy (primary coding).",
                ALLERGY_CODES,
            ),
            col(
                "alt_codes",
                "主たるコード以外のコーディングと、反応の症状（manifestation）のコード（「コード体系名:コード」を ; で連結）。",
                "The other codings, and the codes of the reactions' manifestations, as `System:code` joined with `;`.",
                ALLERGY_CODES,
            ),
            col(
                "categories",
                "区分（food: 食物、medication: 医薬品、environment: 環境、biologic: 生物由来。; 区切り）。",
                "Categories (food, medication, environment, biologic), joined with `;`.",
                &["FHIR allergy-intolerance-category"],
            ),
            col(
                "criticality",
                "重篤度（low: 低、high: 高、unable-to-assess: 評価不能）。",
                "Criticality (low, high, unable-to-assess).",
                &["FHIR allergy-intolerance-criticality"],
            ),
            col(
                "clinical_status",
                "臨床的状態（active: 活動性、inactive: 非活動性、resolved: 解消）。",
                "Clinical status (active, inactive, resolved).",
                &["FHIR allergyintolerance-clinical"],
            ),
            col(
                "verification_status",
                "確からしさ（confirmed: 確定、unconfirmed: 疑い、refuted: 否定、entered-in-error: 入力誤り）。",
                "Verification status (confirmed, unconfirmed, refuted, entered-in-error).",
                &["FHIR allergyintolerance-verification"],
            ),
            col("onset", "発症日。", "Onset date.", &[]),
            col("recorded", "記録日。", "Date recorded.", &[]),
            col("age", "出来事の時点の年齢（満年齢）。生年月日は識別情報の保管庫にのみあり、取込み時に計算します。", "Age in whole years at the event, computed at intake from the full birth date, which only the identity vault holds.", &[]),
        ],
    },
    TableDoc {
        name: "claims",
        title_ja: "レセプト",
        title_en: "Claims",
        description_ja: "レセプト（レセ電の RE レコード）1件につき1行。診療年月、レセプト種別、性別、生年月などを持ち、直前の IR レコード（医療機関情報レコード）から医療機関コード、都道府県、点数表、請求年月を付ける。明細は claim_lines、傷病名は conditions に入り、file・claim で結合する。",
        description_en: "One row per claim (UKE RE record): month of care, receipt kind, sex, birth year-month, …, with facility code, prefecture, fee table and billing month of the IR record before it. Lines are in `claim_lines` and diagnoses in `conditions`, joined on `file` and `claim`.",
        source: "UKE RE, IR (レセプト電算処理システム)",
        columns: &[
            PERSON_KEY,
            col(
                "file",
                "提出ファイルの番号（バージョン内で claim_lines・conditions と結合するため）。",
                "Number of the submitted file (joins `claim_lines` and `conditions` within a version).",
                &[],
            ),
            col(
                "claim",
                "RE レコードのファイル内の行番号。file とあわせてレセプトを一意に識別する。",
                "Line of the RE record in its file; with `file` it identifies the claim.",
                &[],
            ),
            col("receipt_no", "レセプト番号（ファイル内の通番）。", "Receipt number (running number within the file).", &[]),
            col(
                "receipt_kind",
                "レセプト種別（4桁。医科・歯科、医保・公費の別、本人・家族等、入院・入院外を表す）。",
                "Receipt kind (レセプト種別, 4 digits: medical or dental, insurance and public-expense combination, insured person or dependant, inpatient or outpatient).",
                &["レセプト種別コード"],
            ),
            col("month", "診療年月（YYYY-MM）。", "Month of care (診療年月, YYYY-MM).", &[]),
            col("sex", "性別（male: 男性、female: 女性。レセプトの男女区分）。", "Sex on the claim (male or female).", &[]),
            col("birth_year_month", BIRTH_YEAR_MONTH_JA, BIRTH_YEAR_MONTH_EN, &[]),
            col("benefit_ratio", "給付割合（レセプトの記載値）。", "Benefit ratio (給付割合) as given on the claim.", &[]),
            col("admitted_on", "入院年月日（入院のレセプトのみ）。", "Admission date (inpatient claims only).", &[]),
            col(
                "facility_code",
                "医療機関コード（7桁、IR レコード）。医療機関を表すもので、個人の情報ではない。",
                "Facility code (医療機関コード, 7 digits, from the IR record); it names a facility, not a person.",
                &["医療機関コード"],
            ),
            col(
                "facility_prefecture",
                "医療機関の所在する都道府県のコード（IR レコード）。",
                "Prefecture code of the facility (from the IR record).",
                &["JIS X 0401"],
            ),
            col("fee_table", "点数表（1: 医科 など。IR レコード）。", "Fee schedule (点数表: 1 medical, …; from the IR record).", &["点数表"]),
            col("billing_month", "請求年月（YYYY-MM、IR レコード）。", "Billing month (請求年月, YYYY-MM, from the IR record).", &[]),
            col("age", "出来事の時点の年齢（満年齢）。生年月日は識別情報の保管庫にのみあり、取込み時に計算します。", "Age in whole years at the event, computed at intake from the full birth date, which only the identity vault holds.", &[]),
        ],
    },
    TableDoc {
        name: "claim_lines",
        title_ja: "レセプト明細",
        title_en: "Claim lines",
        description_ja: "レセプトの明細（診療行為 SI、医薬品 IY、特定器材 TO、コメント CO の各レコード）1件につき1行。file・claim で claims と結合する。",
        description_en: "One row per claim line (UKE SI procedure, IY drug, TO material and CO comment records); joins `claims` on `file` and `claim`.",
        source: "UKE SI, IY, TO, CO (レセプト電算処理システム)",
        columns: &[
            PERSON_KEY,
            col("file", "提出ファイルの番号。", "Number of the submitted file.", &[]),
            col(
                "claim",
                "明細が属するレセプト（RE レコード）のファイル内の行番号。file とあわせて claims と結合する。",
                "Line of the claim's RE record in its file; joins `claims` together with `file`.",
                &[],
            ),
            col(
                "kind",
                "明細の種類（procedure: 診療行為、drug: 医薬品、material: 特定器材、comment: コメント）。",
                "Kind of line: procedure, drug, material or comment.",
                &[],
            ),
            col(
                "category",
                "診療識別（11: 初診、12: 再診、21: 内服、60: 検査 など）。",
                "Care category (診療識別: 11 first visit, 12 revisit, 21 oral drugs, 60 tests, …).",
                &["診療識別コード"],
            ),
            col("burden", "負担区分（医療保険・公費のどれが負担するか）。", "Burden category (負担区分: which insurance or public expense pays).", &["負担区分コード"]),
            col(
                "code_system",
                "code 列のコード体系（ReceiptProcedure、ReceiptDrug、ReceiptMaterial、ReceiptComment）。",
                "Code system of `code` (ReceiptProcedure, ReceiptDrug, ReceiptMaterial, ReceiptComment).",
                &[],
            ),
            col(
                "code",
                "レセ電コード（診療行為コード、医薬品コード、特定器材コード、コメントコード）。",
                "Receipt code of the line: procedure, drug, material or comment code.",
                &["レセ電診療行為コード", "レセ電医薬品コード", "レセ電特定器材コード", "レセ電コメントコード"],
            ),
            col("quantity", "数量データ（使用量など）。", "Quantity (amount used, …).", &[]),
            col("points", "点数。", "Points (点数).", &[]),
            col("times", "回数。", "Number of times.", &[]),
            col(
                "comment_codes",
                "明細に付いたコメントコード（9桁、; 区切り）。",
                "Comment codes attached to the line (9 digits), joined with `;`.",
                &["レセ電コメントコード"],
            ),
            col(
                "facility_code",
                "医療機関コード（7桁、IR レコード）。医療機関を表すもので、個人の情報ではない。",
                "Facility code (医療機関コード, 7 digits, from the IR record); it names a facility, not a person.",
                &["医療機関コード"],
            ),
        ],
    },
    TableDoc {
        name: "registry_values",
        title_ja: "登録データの値",
        title_en: "Registry values",
        description_ja: "対応表（マッピングファイル）付きで提出された CSV（疾患登録など）の値。CSV の1行の、空でない項目1つにつき1行の縦持ち形式で、どの対応表にも合う。内容項目と準識別子だけを持ち、準識別子は取込み時に一般化してある（生年月日は生年月、都道府県・市区町村は JIS コードのみで住所の文字列は持たない）。氏名・住所・電話番号・登録番号などの識別子の列は保管庫にのみ入り、ここには入らない。",
        description_en: "Values of CSV files submitted with a mapping file (disease registries and the like), in long form so that any mapping fits: one row per non-empty mapped value of a CSV row. Only content columns and quasi-identifiers, generalized at intake (a birth date as its year-month; prefecture and municipality as JIS codes, never address text). Identifier columns (names, addresses, phone numbers, registry ids, …) go to the identity vault only and never here.",
        source: "CSV with a mapping file (対応表付き CSV)",
        columns: &[
            PERSON_KEY,
            col("file", "提出ファイルの番号。", "Number of the submitted file.", &[]),
            col(
                "line",
                "CSV ファイル内の行番号（1行目は見出し）。file とあわせて同じ行の値をまとめる。",
                "Line of the row in its CSV file (line 1 is the header); with `file`, groups the values of one row.",
                &[],
            ),
            col(
                "variable",
                "値の列名（提出者の対応表の列名で、データそのものではない）。",
                "Column of the value: its name in the submitter's mapping file (a name from the mapping, never data).",
                &[],
            ),
            col(
                "value_type",
                "値の型（code: コード、number: 数値、date: 日付、year_month: 年月、sex: 性別、prefecture: 都道府県、municipality: 市区町村）。値は型に応じた列に入る。",
                "Type of the value, which says the column that holds it: code, number, date, year_month, sex, prefecture or municipality.",
                &[],
            ),
            col(
                "code_system",
                "value_type が code のとき、コード体系（Icd10、Jlac10、Yj、FacilityNumber、Token など）。",
                "For value_type code: the code system (Icd10, Jlac10, Yj, FacilityNumber, Token, …).",
                &[],
            ),
            col(
                "value_text",
                "文字で表す値：code はコード、year_month は YYYY-MM、sex は male/female/other/unknown、prefecture は JIS X 0401 の2桁、municipality は JIS X 0402 の5桁（検査数字を除く）。",
                "Values written as text: the code (code), YYYY-MM (year_month), male/female/other/unknown (sex), the 2-digit JIS X 0401 code (prefecture) or the 5-digit JIS X 0402 code without check digit (municipality).",
                &["ICD-10 (MHLW)", "JLAC10", "YJコード", "JIS X 0401", "JIS X 0402", "FHIR AdministrativeGender"],
            ),
            col("value_number", "value_type が number のときの数値。", "For value_type number: the number.", &[]),
            col(
                "unit",
                "数値の単位（対応表が単位の列を指定したとき。UCUM または定められた日本語の単位）。",
                "Unit of the number, when the mapping names a unit column (UCUM or a fixed Japanese unit word).",
                &["UCUM"],
            ),
            col("value_date", "value_type が date のときの日付。", "For value_type date: the date.", &[]),
        ],
    },
];
