//! The command line as an operator uses it: the real binary on a real instance folder.

use std::path::Path;
use std::process::{Command, Output};

fn niji(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_niji")).args(args).env("NIJI_LOG", "error").output().expect("runs niji")
}

fn ok(args: &[&str]) -> String {
    let out = niji(args);
    assert!(out.status.success(), "niji {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn init(dir: &Path) -> String {
    let d = dir.join("inst");
    ok(&["init", "--dir", d.to_str().unwrap()]);
    d.to_str().unwrap().to_string()
}

fn add_user(dir: &str, name: &str, role: &str) -> Output {
    niji(&[
        "user",
        "add",
        "--dir",
        dir,
        "--username",
        name,
        "--display-name",
        "佐藤 次郎",
        "--role",
        role,
        "--password",
        "cli-test-password-1",
        "--json",
    ])
}

#[test]
fn a_third_party_verifies_a_proof_with_independent_code() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    assert!(add_user(&dir, "sato", "reviewer").status.success());
    let head = ok(&["log", "head", "--dir", &dir]);
    let head_json: serde_json::Value = serde_json::from_str(&head).unwrap();
    assert_eq!(head_json["tree_size"], 2);
    for index in ["0", "1"] {
        let proof = ok(&["log", "proof", "--dir", &dir, "--index", index]);
        let entry = ok(&["log", "show", "--dir", &dir, "--index", index]);
        std::fs::write(tmp.path().join("head.json"), &head).unwrap();
        std::fs::write(tmp.path().join("proof.json"), &proof).unwrap();
        std::fs::write(tmp.path().join("entry"), entry.strip_suffix('\n').unwrap()).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/verify_inclusion.py");
        let out = Command::new("python3")
            .arg(script)
            .args(["head.json", "proof.json", "entry"].map(|f| tmp.path().join(f)))
            .output()
            .expect("python3 is on every machine of this project");
        assert!(out.status.success(), "independent verifier rejected entry {index}: {}", String::from_utf8_lossy(&out.stdout));
        // A changed entry must not verify.
        std::fs::write(tmp.path().join("entry"), entry.replace("cli:", "cl1:").trim_end()).unwrap();
        let out = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/verify_inclusion.py"))
            .args(["head.json", "proof.json", "entry"].map(|f| tmp.path().join(f)))
            .output()
            .unwrap();
        assert!(!out.status.success(), "a forged entry verified");
    }
}

#[test]
fn verify_names_the_first_altered_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    for (i, name) in ["aoki", "baba", "chiba"].iter().enumerate() {
        let out = add_user(&dir, name, ["researcher", "reviewer", "operator"][i]);
        assert!(out.status.success());
    }
    assert!(ok(&["log", "verify", "--dir", &dir]).starts_with("OK: 4 entries"));
    let path = Path::new(&dir).join("log/entries.dat");
    let mut bytes = std::fs::read(&path).unwrap();
    let entry2 = ok(&["log", "show", "--dir", &dir, "--index", "2"]);
    let needle = entry2.trim_end().as_bytes();
    let at = bytes.windows(needle.len()).position(|w| w == needle).unwrap();
    bytes[at + 5] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let out = niji(&["log", "verify", "--dir", &dir]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("First bad position: entry 2"), "{err}");
}

#[test]
fn bad_requests_are_explained_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    let size = || serde_json::from_str::<serde_json::Value>(&ok(&["log", "head", "--dir", &dir])).unwrap()["tree_size"].as_u64().unwrap();
    let before = size();
    let out = add_user(&dir, "kato", "admin");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("known roles"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = niji(&["user", "add", "--dir", &dir, "--username", "kato", "--display-name", "加藤", "--role", "researcher", "--password", "short"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 12"));
    assert_eq!(size(), before);
    let out = niji(&["init", "--dir", &dir]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a Niji instance"));
    let out = niji(&["log", "head", "--dir", tmp.path().to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("niji init"));
}

#[test]
fn demo_creates_data_accounts_and_serves() {
    use std::io::{BufRead, BufReader, Read, Write};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let mut child = Command::new(env!("CARGO_BIN_EXE_niji"))
        .args(["demo", "--dir", dir.to_str().unwrap(), "--port", "0", "--persons", "300"])
        .env("NIJI_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut addr = None;
    // Keep reading the demo's stdout open: a closed pipe would kill it on its next line.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    for line in (&mut stdout).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("Niji is listening on http://") {
            addr = Some(rest.split('/').next().unwrap().to_string());
            break;
        }
        lines.push(line);
    }
    let addr = addr.expect("demo prints its address");
    // The demo's citizen: "… access code CODE with birth date DATE (patient PID of HOLDER)".
    let citizen = lines.iter().find(|l| l.starts_with("Citizen portal")).expect("the demo issues a citizen credential").clone();
    let words: Vec<&str> = citizen.split_whitespace().collect();
    let after = |w: &str| words[words.iter().position(|x| *x == w).unwrap() + 1].to_string();
    let (access_code, patient) = (after("code"), after("(patient"));
    assert_eq!(access_code.len(), 24, "{citizen}");
    assert!(lines.iter().any(|l| l.starts_with("Consent registry:")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("Analysis workspace") && l.contains("→ release #")), "the demo has a released job: {lines:?}");
    let accounts: Vec<&String> = lines.iter().filter(|l| l.starts_with("demo.")).collect();
    assert_eq!(accounts.len(), 7, "one account per role: {lines:?}");
    let staff_with_secret = accounts.iter().filter(|l| l.split_whitespace().nth(3).is_some_and(|s| s.len() == 32)).count();
    assert_eq!(staff_with_secret, 6, "every staff account is enrolled in TOTP");
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    write!(stream, "GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    stream.read_to_string(&mut resp).unwrap();
    drop(stdout);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(resp.starts_with("HTTP/1.1 200") && resp.contains("\"status\":\"ok\""), "{resp}");
    for sub in ["log", "keys", "lake/sakura-ehr/v1", "lake/minato-ehr/v1", "lake/kyokai-claims/v1", "vault"] {
        assert!(dir.join(sub).is_dir(), "{sub} missing");
    }
    // The holders' files are beside the instance, not in it.
    let holder_files = tmp.path().join("demo-holder-files");
    for sub in ["fhir", "uke", "ndjson", "csv", "truth"] {
        assert!(holder_files.join(sub).is_dir(), "{sub} missing");
        assert!(!dir.join(sub).exists() && !dir.join("synth").exists());
    }
    // Three datasets, the insurer's claims linked to the hospitals' patients.
    let committed: Vec<&String> = lines.iter().filter(|l| l.contains(" version 1 committed")).collect();
    assert_eq!(committed.len(), 3, "{lines:?}");
    let listed: serde_json::Value = serde_json::from_str(&ok(&["datasets", "--dir", dir.to_str().unwrap(), "--json"])).unwrap();
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["kyokai-claims", "minato-ehr", "sakura-ehr"]);
    let claims = &listed[0]["versions"][0];
    assert!(claims["persons"].as_i64().unwrap() > 50 && claims["persons_shared"].as_i64().unwrap() > 0, "{claims}");
    assert_eq!(listed[2]["title_ja"], "さくら市立病院 電子カルテ（CLINS）");
    // One application per case of the seed, decided or waiting; permits for the accepted ones.
    let apps: serde_json::Value = serde_json::from_str(&ok(&["applications", "--dir", dir.to_str().unwrap(), "--json"])).unwrap();
    let cases: Vec<(i64, &str)> = apps.as_array().unwrap().iter().map(|a| (a["case"].as_i64().unwrap(), a["status"].as_str().unwrap())).collect();
    assert_eq!(cases, [(1, "notified"), (2, "under_review"), (3, "approved_with_conditions"), (4, "changes_requested")]);
    assert!(apps[3]["reasons"].as_array().unwrap().iter().any(|r| r["code"] == "linkage"), "{}", apps[3]);
    let permits: serde_json::Value = serde_json::from_str(&ok(&["permits", "--dir", dir.to_str().unwrap(), "--json"])).unwrap();
    let of: Vec<i64> = permits.as_array().unwrap().iter().map(|p| p["application_id"].as_i64().unwrap()).collect();
    assert_eq!(of, [1, 3]);
    assert_eq!(permits[1]["output_preset"], "strict");
    // The notified permit's researcher queries the real data: only checked aggregates come out.
    let d = dir.to_str().unwrap();
    let out = niji(&[
        "query",
        "--dir",
        d,
        "--permit",
        "1",
        "--as",
        "demo.researcher",
        "--real",
        "SELECT code, count(*) AS n FROM sakura_ehr.conditions GROUP BY code",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8(out.stdout).unwrap();
    let mut lines = table.lines();
    assert_eq!(lines.next(), Some("code\tn"));
    for line in lines {
        let n = line.rsplit('\t').next().unwrap();
        assert!(n == "秘匿 (suppressed)" || n.parse::<f64>().unwrap() >= 10.0, "a small count left the platform: {line}");
    }
    let refused =
        niji(&["query", "--dir", d, "--permit", "1", "--as", "demo.researcher", "--real", "SELECT person_id, code FROM sakura_ehr.conditions"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("person ids cannot be output"));
    let not_named = niji(&["query", "--dir", d, "--permit", "1", "--as", "demo.reviewer", "--real", "SELECT count(*) FROM sakura_ehr.conditions"]);
    assert!(String::from_utf8_lossy(&not_named.stderr).contains("not named on the permit"));

    // The consent registry at run time: a patient's opt-out made now removes them from the next
    // run, and the run before (yesterday's release) keeps its receipt unchanged.
    let runs = |d: &str| -> Vec<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_str(&ok(&["runs", "--dir", d, "--json"])).unwrap();
        v.as_array().unwrap().clone()
    };
    let sql = "SELECT code, count(*) AS n FROM sakura_ehr.conditions GROUP BY code";
    let before = runs(d);
    let first = before.iter().find(|r| r["kind"] == "query" && r["outcome"] == "released").expect("the first query was released").clone();
    assert!(first["registry_version"].as_i64().unwrap() > 0, "the demo's notices are in the registry: {first}");
    ok(&["citizen", "record", "--dir", d, "--holder", "さくら市立病院", "--patient-id", &patient, "--opt-out", "all"]);
    assert!(niji(&["query", "--dir", d, "--permit", "1", "--as", "demo.researcher", "--real", sql]).status.success());
    let after_runs = runs(d);
    let next = after_runs.last().unwrap();
    assert_eq!(next["outcome"], "released");
    assert!(next["registry_version"].as_i64() > first["registry_version"].as_i64(), "{next}");
    assert_eq!(next["excluded_persons"].as_i64().unwrap(), first["excluded_persons"].as_i64().unwrap() + 1, "{first} {next}");
    assert_eq!(after_runs.iter().find(|r| r["id"] == first["id"]).unwrap(), &first, "an earlier run's receipt never changes");
    // The permit's stops: none spent by these runs; clearing needs a checker not named on it.
    let stops: serde_json::Value = serde_json::from_str(&ok(&["job", "stops", "--dir", d, "--permit", "1", "--json"])).unwrap();
    assert_eq!((stops["max_stops"].as_u64(), stops["left"].as_u64()), (Some(5), Some(5)), "{stops}");
    let refused = niji(&["job", "clear-stops", "--dir", d, "--permit", "1", "--as", "demo.researcher", "--through", "0"]);
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("output checker"));
    assert!(ok(&["job", "clear-stops", "--dir", d, "--permit", "1", "--as", "demo.checker", "--through", "0"]).contains("0 stops cleared"));
    // The operator's settings: read from the instance folder; a bad one stops the command, naming
    // the file and the key.
    let settings = std::path::Path::new(d).join("analysis.toml");
    std::fs::write(&settings, "max_stops = 3\n").unwrap();
    let stops: serde_json::Value = serde_json::from_str(&ok(&["job", "stops", "--dir", d, "--permit", "1", "--json"])).unwrap();
    assert_eq!(stops["max_stops"].as_u64(), Some(3), "{stops}");
    std::fs::write(&settings, "timeout_seconds = 0\n").unwrap();
    let bad = niji(&["query", "--dir", d, "--permit", "1", "--as", "demo.researcher", "--real", sql]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("analysis.toml") && err.contains("timeout_seconds"), "{err}");
    std::fs::remove_file(&settings).unwrap();
    // Dummy data: rows come back freely; DDL is still refused.
    let dummy = |sql: &str| niji(&["query", "--dir", d, "--permit", "1", "--as", "demo.researcher", "--dummy", sql]);
    let out = dummy("SELECT code, count(*) FROM sakura_ehr.conditions GROUP BY code");
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).lines().count() > 1, "{}", String::from_utf8_lossy(&out.stderr));
    let out = dummy("SELECT * FROM sakura_ehr.conditions LIMIT 5");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 6, "a header and 5 rows: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(dummy("DROP TABLE x").status.code(), Some(1));
    assert!(!niji(&["query", "--dir", d, "--permit", "1", "--as", "demo.researcher", "--dummy", "--real", "SELECT 1"]).status.success());
    // A bad opt-out list is refused with its line, and changes nothing.
    let list = tmp.path().join("optouts.csv");
    std::fs::write(&list, format!("patient_id,choice,scope,date\n{patient},opt_out,all,\nnobody-0000,opt_out,all,\n")).unwrap();
    let refused = niji(&["citizen", "import", "--dir", d, "--holder", "さくら市立病院", list.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("optouts.csv:3:patient_id"), "{}", String::from_utf8_lossy(&refused.stderr));
    // Running the demo again replaces its own folder; a folder it did not make is refused.
    let other = tmp.path().join("mine");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("thesis.txt"), "keep me").unwrap();
    let out = niji(&["demo", "--dir", other.to_str().unwrap(), "--port", "0"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not a demo instance"));
    assert!(other.join("thesis.txt").exists());
}

#[test]
fn check_reports_rejects_with_their_place_and_accepts_synthetic_data() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets");
    let out = niji(&["check", shared.join("clins").to_str().unwrap(), shared.join("uke").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "Observation-ErrorExample-ObsLabo-eGFR.json:entry 0:Observation.code.coding: JP_Observation_LabResult_eCS needs a local lab code"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("MedicationRequest-ErrorExample-JP-MedReq-ExtEye-Total1.json:entry 0:"), "{stdout}");
    assert!(stdout.contains("2 rejected"), "{stdout}");

    let tmp = tempfile::tempdir().unwrap();
    let synth = tmp.path().join("synth");
    ok(&["synth", "--persons", "200", "--seed", "7", "--out", synth.to_str().unwrap()]);
    let stdout = ok(&["check", synth.join("fhir").to_str().unwrap(), synth.join("ndjson").to_str().unwrap(), synth.join("uke").to_str().unwrap()]);
    assert!(stdout.contains(" 0 rejected, 0 files not read."), "{stdout}");
}

/// With the 一般名処方マスタ in the instance's `masters/` folder, the third CLINS ErrorExample (a
/// 一般名処方コード of the right shape that does not exist) is rejected too, by `niji check
/// --masters` and by `niji ingest`; a master file that names no code system stops the intake
/// before anything is read.
#[test]
fn every_clins_error_example_is_rejected_with_the_instance_masters() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets");
    let clins = shared.join("clins");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../niji-ingest/tests/fixtures/general_drug_name_master.txt");
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    let masters = Path::new(&dir).join("masters");
    std::fs::create_dir(&masters).unwrap();
    std::fs::copy(&fixture, masters.join("general-drug-name.csv")).unwrap();
    let wrong_code = "MedicationRequest-ErrorExample-JP-MedReq-PO-SID-28days.json:entry 0:MedicationRequest.medicationCodeableConcept.coding[0].code: code is not in the loaded 一般名処方コード master";

    let out = niji(&["check", "--masters", masters.to_str().unwrap(), clins.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(wrong_code), "{stdout}");
    assert!(stdout.contains("3 rejected"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("一般名処方コード: "), "{}", String::from_utf8_lossy(&out.stderr));

    // A single resource refers to a Patient outside the submission (rejected for that too); the
    // intake names the master's reason beside it.
    let file = clins.join("MedicationRequest-ErrorExample-JP-MedReq-PO-SID-28days.json");
    let ingest = |extra: &[&str]| {
        let mut a = vec!["ingest", "--dir", &dir, "--holder", "病院", "--register-holder", "hospital", "--dataset", "clins", file.to_str().unwrap()];
        a.extend_from_slice(extra);
        niji(&a)
    };
    let out = ingest(&[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(wrong_code), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("masters/general-drug-name.csv: 一般名処方コード"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A file whose name names no system is left alone, with a warning; a master without codes of
    // its system stops the intake.
    std::fs::write(masters.join("drugs.csv"), "620000001\n").unwrap();
    let out = ingest(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("drugs.csv is not read as a code master"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(wrong_code));
    std::fs::write(masters.join("yj.csv"), "name\nfoo\n").unwrap();
    let out = ingest(&["--quarantine"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("yj.csv: no column holds YJ code codes"), "{stderr}");
    assert_eq!(ok(&["datasets", "--dir", &dir, "--json"]).trim(), "[]");
}

#[test]
fn a_master_key_from_the_environment_never_touches_the_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inst");
    let d = dir.to_str().unwrap();
    let key = "7f".repeat(32);
    let run = |args: &[&str], env_key: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_niji"));
        c.args(args).env("NIJI_LOG", "error").env_remove("NIJI_MASTER_KEY");
        if let Some(k) = env_key {
            c.env("NIJI_MASTER_KEY", k);
        }
        c.output().unwrap()
    };
    assert!(run(&["init", "--dir", d], Some(&key)).status.success());
    assert!(!dir.join("keys/master.key").exists());
    let out = run(&["keys", "status", "--dir", d], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NIJI_MASTER_KEY"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["keys", "status", "--dir", d], Some("not-hex"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not 64 hex characters"));
    let out = run(&["keys", "status", "--dir", d], Some(&key));
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("from NIJI_MASTER_KEY"));
    let out = run(&["keys", "rotate-master", "--dir", d], Some(&key));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success() && stdout.contains("Set NIJI_MASTER_KEY="), "{stdout}");
    assert!(!dir.join("keys/master.key").exists());
}

/// `niji ingest` end to end from the command line: a refused submission exits 1 and lists the
/// rejects; `--quarantine` stores it; the server's start clears an interrupted upload.
#[test]
fn ingest_refuses_then_quarantines_and_serve_clears_interrupted_uploads() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    let synth = tmp.path().join("holder-files");
    ok(&["synth", "--persons", "150", "--out", synth.to_str().unwrap()]);
    let bad = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/datasets/clins/MedicationRequest-ErrorExample-JP-MedReq-ExtEye-Total1.json");
    let ndjson = synth.join("ndjson");
    let args = |extra: &[&str]| {
        let mut a =
            vec!["ingest", "--dir", &dir, "--holder", "病院", "--register-holder", "hospital", "--dataset", "ehr", ndjson.to_str().unwrap(), bad];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let refused = niji(&args(&[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(refused.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&refused.stdout);
    assert!(
        stdout.contains("MedicationRequest-ErrorExample-JP-MedReq-ExtEye-Total1.json:entry 0:MedicationRequest.medicationCodeableConcept.coding:"),
        "{stdout}"
    );
    assert!(stdout.contains("Refused: 1 rejected records; nothing was stored."), "{stdout}");
    assert_eq!(ok(&["datasets", "--dir", &dir, "--json"]).trim(), "[]");

    let stored: serde_json::Value =
        serde_json::from_str(&ok(&args(&["--quarantine", "--json"]).iter().map(String::as_str).collect::<Vec<_>>())).unwrap();
    assert_eq!(stored["outcome"], "committed");
    assert_eq!(stored["version"], 1);
    assert_eq!(stored["records_rejected"], 1);
    assert!(stored["persons"].as_u64().unwrap() > 10);

    // A crash mid-upload leaves holders' files in <instance>/uploads: `serve` removes them first.
    let leftover = Path::new(&dir).join("uploads/abc");
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("Patient.ndjson"), "山田太郎").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_niji"))
        .args(["serve", "--dir", &dir, "--port", "0"])
        .env("NIJI_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let listening = (&mut stdout).lines().map_while(Result::ok).any(|l| l.starts_with("Niji is listening on http://"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(listening);
    assert!(!Path::new(&dir).join("uploads").exists(), "the interrupted upload is still there");
}

/// An operator sets up review from the command line; others cannot; bad values are named.
#[test]
fn review_setup_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    assert!(add_user(&dir, "ops", "operator").status.success());
    assert!(add_user(&dir, "res", "researcher").status.success());
    let review = |args: &[&str]| {
        let mut a = vec!["review"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--dir", &dir]);
        niji(&a)
    };
    assert!(review(&["defaults", "--as", "ops"]).status.success());
    assert!(review(&["committee", "--as", "ops", "--name", "委員会"]).status.success());
    let out =
        review(&["member", "--as", "ops", "--committee", "委員会", "--user", "res", "--field", "general_public", "--external", "--gender", "female"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(review(&["accredit", "--as", "ops", "--user", "res", "--course", "研究倫理", "--completed", "2026-01-01", "--expires", "2027-01-01"])
        .status
        .success());
    // Refusals say why and change nothing.
    let not_operator = review(&["committee", "--as", "res", "--name", "別の委員会"]);
    assert!(!not_operator.status.success() && String::from_utf8_lossy(&not_operator.stderr).contains("this needs the role operator"));
    let bad_field = review(&["member", "--as", "ops", "--committee", "委員会", "--name", "x", "--field", "astrology", "--gender", "male"]);
    assert!(!bad_field.status.success() && String::from_utf8_lossy(&bad_field.stderr).contains("--field"));
    let bad_date = review(&["accredit", "--as", "ops", "--user", "res", "--course", "c", "--completed", "2026/01/01", "--expires", "2027-01-01"]);
    assert!(!bad_date.status.success() && String::from_utf8_lossy(&bad_date.stderr).contains("--completed: expected YYYY-MM-DD"));
    let log = ok(&["log", "head", "--dir", &dir]);
    assert!(log.contains("tree_size"));
}
