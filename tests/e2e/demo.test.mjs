// Real-browser end-to-end tests of `niji demo`: the demo's own data, accounts, permit, job
// and release, driven through the portal in Debian's Chromium (/usr/bin/chromium) with
// playwright-core. Run with `scripts/e2e` (or `node --test tests/e2e/*.test.mjs`); install
// what it needs with `scripts/install-test-deps`.
//
// The binary comes from NIJI_BIN, else $CARGO_TARGET_DIR/debug/niji, else
// $HOME/.cache/niji-target/debug/niji (else <repo>/target/debug/niji).
//
// The demo prints its accounts (user name, role, password, TOTP secret), a citizen's access
// code and birth date, and its released job before it listens. A TOTP code is accepted once
// per account per 30-second step, so each account signs in once: the researcher's browser
// context is kept for every test that needs it.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, '..', '..');
const artifacts = join(here, 'artifacts');
const CHROMIUM = process.env.NIJI_E2E_CHROMIUM || '/usr/bin/chromium';
const JAPANESE = /[\u3040-\u30ff\u3400-\u9fff]/; // kana or kanji
const ACTION_TIMEOUT_MS = 15_000;
const SUPPRESSED = '秘匿';

function nijiBin() {
  if (process.env.NIJI_BIN) return process.env.NIJI_BIN;
  if (process.env.CARGO_TARGET_DIR) return join(process.env.CARGO_TARGET_DIR, 'debug', 'niji');
  const cache = join(homedir(), '.cache', 'niji-target', 'debug', 'niji');
  const local = join(repoRoot, 'target', 'debug', 'niji');
  return !existsSync(cache) && existsSync(local) ? local : cache;
}
const NIJI = nijiBin();

// ---------------------------------------------------------------------------------------
// TOTP (RFC 6238 over RFC 4226): HMAC-SHA1, 30-second steps, 6 digits. The same code as
// portal.test.mjs.

function base32Decode(input) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const clean = input.toUpperCase().replace(/[\s=-]/g, '');
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of clean) {
    const idx = alphabet.indexOf(ch);
    if (idx < 0) throw new Error(`not base32: ${JSON.stringify(ch)}`);
    value = (value << 5) | idx;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

function hotp(key, counter) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha1', key).update(msg).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const bin = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(bin % 1_000_000).padStart(6, '0');
}

function totp(secretBase32, atMs = Date.now()) {
  return hotp(base32Decode(secretBase32), Math.floor(atMs / 1000 / 30));
}

// The RFC 6238 appendix B vector (SHA-1, T = 59 s) checks the code generator itself.
assert.equal(hotp(Buffer.from('12345678901234567890'), Math.floor(59 / 30)), '287082');

// ---------------------------------------------------------------------------------------
// The demo.

function childEnv() {
  const env = { ...process.env };
  delete env.NIJI_DIR;
  delete env.NIJI_PASSWORD;
  return env;
}

/**
 * Starts `niji demo` and reads its stdout up to the address. Resolves to the address and
 * the lines printed before it. Stdout is read until the process ends, so the pipe stays open
 * (a closed pipe would kill the demo on its next line).
 */
function startDemo(dir) {
  // 1,000 persons give the first hospital a few dozen patients: enough for an ICD-10 chapter of
  // at least 10 persons (rows of fewer are left out of checked tables, keys and all).
  const child = spawn(NIJI, ['demo', '--dir', dir, '--port', '0', '--persons', '1000'], {
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`niji demo printed no address within 120 s.\nstdout:\n${stdout}\nstderr:\n${stderr.slice(-4000)}`)), 120_000);
    let done = false;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      if (done) return; // keep reading (and dropping) what the server prints later
      stdout += chunk;
      const lines = stdout.split('\n');
      const at = lines.findIndex((l) => l.startsWith('Niji is listening on http://'));
      if (at < 0) return;
      done = true;
      clearTimeout(timer);
      const addr = lines[at].slice('Niji is listening on http://'.length).split('/')[0];
      resolve({ base: `http://${addr}`, lines: lines.slice(0, at) });
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      if (stderr.length > 1 << 20) stderr = stderr.slice(-(1 << 19));
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`niji demo exited early (code ${code}, signal ${signal}).\nstdout:\n${stdout}\nstderr:\n${stderr.slice(-4000)}`));
    });
  });
  return { child, ready, logs: () => stderr };
}

async function stopDemo(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGINT'); // the server shuts down gracefully on Ctrl-C
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/** The account lines `demo.<role> <role> <password> <TOTP secret>`, by user name. */
function demoAccounts(lines) {
  const accounts = {};
  for (const line of lines) {
    if (!line.startsWith('demo.')) continue;
    const [username, role, password, secret] = line.trim().split(/\s+/);
    accounts[username] = { username, role, password, totp_secret: /^[A-Z2-7]{16,}$/.test(secret ?? '') ? secret : null };
  }
  return accounts;
}

/** `Citizen portal (/citizen/login): access code CODE with birth date DATE (patient PID of HOLDER)`. */
function demoCitizen(lines) {
  const line = lines.find((l) => l.startsWith('Citizen portal'));
  assert.ok(line, `the demo printed no citizen credential:\n${lines.join('\n')}`);
  const m = line.match(/access code (\S+) with birth date (\d{4}-\d{2}-\d{2}) \(patient (\S+) of (.+)\)$/);
  assert.ok(m, `unexpected citizen line: ${line}`);
  return { line, accessCode: m[1], birthDate: m[2], patientId: m[3], holder: m[4] };
}

// ---------------------------------------------------------------------------------------
// Browser helpers (as in portal.test.mjs).

const LAUNCH = {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
};

async function waitForLang(page, lang) {
  await page.waitForFunction((l) => document.documentElement.lang === l, lang, { timeout: ACTION_TIMEOUT_MS }).catch(async () => {
    const got = await page.evaluate(() => document.documentElement.lang);
    assert.fail(`expected html[lang=${lang}] on ${page.url()}, got lang=${JSON.stringify(got)}`);
  });
}

function pathOf(page) {
  return new URL(page.url()).pathname;
}

async function waitForPath(page, path) {
  await page.waitForURL((u) => u.pathname === path, { timeout: ACTION_TIMEOUT_MS }).catch(() => {
    assert.fail(`expected to be on ${path}, but the browser is on ${page.url()}`);
  });
}

/** An element's text if it is on the page now, else '' (never waits for it). */
async function textIfAny(page, selector) {
  const el = page.locator(selector);
  return (await el.count()) > 0 ? ((await el.first().textContent()) ?? '').trim() : '';
}

/** The page's #error text, if any: for assertion messages. */
function errorText(page) {
  return textIfAny(page, '#error');
}

/** Clicks something that submits a form or follows a link, and waits for the next page. */
async function clickAndWait(page, selector) {
  const [resp] = await Promise.all([page.waitForNavigation({ timeout: ACTION_TIMEOUT_MS }), page.click(selector)]);
  return resp;
}

/** Signs in with password and the current TOTP code (once per account); ends on /account. */
async function signIn(page, base, user) {
  assert.ok(user?.totp_secret, `no TOTP secret printed for ${user?.username}`);
  await page.goto(`${base}/login`);
  await page.fill('#username', user.username);
  await page.fill('#password', user.password);
  await Promise.all([page.waitForURL((u) => u.pathname === '/login/totp', { timeout: ACTION_TIMEOUT_MS }), page.click('#sign-in')]);
  await page.fill('#code', totp(user.totp_secret));
  await Promise.all([page.waitForURL((u) => u.pathname === '/account', { timeout: ACTION_TIMEOUT_MS }), page.click('#verify')]);
  assert.equal((await page.textContent('#account-username'))?.trim(), user.username);
}

/**
 * Asserts the 10-or-秘匿 rule on a checked table: every cell under one of `measures` is a
 * number of at least 10, or withheld and marked 秘匿. Returns how many of each it saw.
 */
async function assertCheckedTable(table, measures, what) {
  const header = (await table.locator('thead th').allTextContents()).map((t) => t.trim());
  const measureAt = new Set(measures.map((m) => {
    const i = header.indexOf(m);
    assert.ok(i >= 0, `${what}: no column ${m} in ${JSON.stringify(header)}`);
    return i;
  }));
  let released = 0;
  let withheld = 0;
  for (const row of await table.locator('tbody tr').all()) {
    const cells = await row.locator('td').all();
    assert.equal(cells.length, header.length, `${what}: a row has ${cells.length} cells for ${header.length} columns`);
    for (const [i, cell] of cells.entries()) {
      const text = (await cell.textContent()).trim();
      const isWithheld = ((await cell.getAttribute('class')) ?? '').split(/\s+/).includes('suppressed');
      if (!measureAt.has(i)) {
        assert.ok(!isWithheld, `${what}: a dimension cell is marked withheld`);
        continue;
      }
      if (isWithheld) {
        assert.equal(text, SUPPRESSED, `${what}: a withheld cell shows ${JSON.stringify(text)}, not ${SUPPRESSED}`);
        withheld += 1;
        continue;
      }
      const n = Number(text.replaceAll(',', ''));
      assert.ok(text !== '' && Number.isFinite(n) && n >= 10, `${what}: ${header[i]} = ${JSON.stringify(text)} is not a number of at least 10 and not marked ${SUPPRESSED}`);
      released += 1;
    }
  }
  return { released, withheld };
}

// ---------------------------------------------------------------------------------------

describe('niji demo in a real browser', () => {
  let workDir;
  let demo;
  let base;
  let printed; // the demo's stdout before it listened
  let accounts;
  let citizen;
  let browser;
  let researcher; // { context, page }: signed in once, kept for every test
  let jobId; // the job the researcher submits in the first test

  before(async () => {
    assert.ok(existsSync(NIJI), `the niji binary is missing at ${NIJI}: build it (cargo build -p niji) or set NIJI_BIN`);
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/install-test-deps`);
    workDir = mkdtempSync(join(tmpdir(), 'niji-e2e-demo-'));
    demo = startDemo(join(workDir, 'demo'));
    ({ base, lines: printed } = await demo.ready);
    accounts = demoAccounts(printed);
    citizen = demoCitizen(printed);
    browser = await chromium.launch(LAUNCH);
    mkdirSync(artifacts, { recursive: true });
  });

  after(async () => {
    await researcher?.context.close().catch(() => {});
    await browser?.close().catch(() => {});
    await stopDemo(demo?.child);
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  const newPage = async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(ACTION_TIMEOUT_MS);
    return { context, page: await context.newPage() };
  };

  /** The researcher's page, signed in on first use (a TOTP code counts once per step). */
  const researcherPage = async () => {
    if (!researcher) {
      researcher = await newPage();
      await signIn(researcher.page, base, accounts['demo.researcher']);
    }
    return researcher.page;
  };

  it('prints one account per role, with TOTP secrets for staff, and the released job', () => {
    for (const name of ['demo.researcher', 'demo.checker']) {
      assert.ok(accounts[name], `no ${name} line in:\n${printed.join('\n')}`);
      assert.ok(accounts[name].totp_secret, `${name} has no TOTP secret`);
    }
    assert.equal(accounts['demo.checker'].role, 'output_checker');
    assert.ok(printed.some((l) => l.startsWith('Analysis workspace') && /→ release #\d+/.test(l)), 'the demo has a released job');
    // The second output checker is created without a printed password.
    assert.ok(!printed.some((l) => l.startsWith('output.checker2')), 'output.checker2 is not printed as an account line');
  });

  it('the researcher signs in, opens permit 1\'s workspace, queries dummy and real data, and submits a job', async () => {
    const page = await researcherPage();
    await waitForLang(page, 'ja');

    // The permits page, from the navigation, then the link to the workspace.
    await clickAndWait(page, '#nav-permits');
    await waitForPath(page, '/permits');
    assert.equal((await page.textContent('main h1'))?.trim(), '利用許可');
    await page.locator('#permit-1').waitFor({ state: 'visible' });
    const link = page.locator('#workspace-1');
    assert.equal(await link.getAttribute('href'), '/permits/1/workspace');
    assert.match((await link.textContent()).trim(), JAPANESE);
    const resp = await clickAndWait(page, '#workspace-1');
    await waitForPath(page, '/permits/1/workspace');
    assert.equal(resp.status(), 200);
    await waitForLang(page, 'ja');
    assert.match((await page.textContent('main h1')).trim(), /^分析環境 — 許可 #1$/);

    // The schema: the granted tables of sakura-ehr, person_id first.
    const tables = (await page.locator('#schema section.table-doc h3 code').allTextContents()).map((t) => t.trim());
    assert.ok(tables.includes('sakura_ehr.conditions'), `the schema does not list sakura_ehr.conditions: ${JSON.stringify(tables)}`);
    const first = page.locator('#schema section.table-doc', { has: page.locator('h3 code', { hasText: /^sakura_ehr\.conditions$/ }) });
    const columns = (await first.locator('table.variables tbody tr td:first-child').allTextContents()).map((t) => t.trim());
    assert.equal(columns[0], 'person_id');
    assert.ok(columns.includes('code'), `sakura_ehr.conditions has no code column: ${JSON.stringify(columns)}`);

    // Dummy data: rows come back as they are.
    await page.fill('#sql-dummy', 'SELECT * FROM sakura_ehr.conditions LIMIT 5');
    const dummyResp = await clickAndWait(page, '#run-dummy');
    assert.equal(dummyResp.status(), 200, `dummy query: ${await errorText(page)}`);
    assert.equal(await page.locator('#error').count(), 0);
    const dummyRows = await page.locator('#dummy-result tbody tr.dummy-row').count();
    assert.ok(dummyRows >= 1 && dummyRows <= 5, `the dummy query shows ${dummyRows} rows`);
    assert.equal(await page.inputValue('#sql-dummy'), 'SELECT * FROM sakura_ehr.conditions LIMIT 5', 'the SQL is kept in the form');

    // Real data: only a checked aggregate table; every number is at least 10 or 秘匿.
    await page.fill('#sql-real', 'SELECT substr(code, 1, 1) AS chapter, count(*) AS n FROM sakura_ehr.conditions GROUP BY chapter');
    const realResp = await clickAndWait(page, '#run-real');
    assert.equal(realResp.status(), 200, `real query: ${await errorText(page)}`);
    assert.equal(await page.locator('#error').count(), 0);
    const real = page.locator('#real-result');
    await real.waitFor({ state: 'visible' });
    assert.deepEqual((await real.locator('thead th').allTextContents()).map((t) => t.trim()), ['chapter', 'n']);
    assert.equal(await page.locator('#rows-left-out').count(), 1, 'the page says rows of few persons are left out');
    assert.ok((await real.locator('tbody tr').count()) >= 1, 'the checked table has rows');
    const { released, withheld } = await assertCheckedTable(real, ['n'], 'real query');
    assert.ok(released + withheld >= 1, 'the checked table shows some count');
    assert.equal(Number((await page.textContent('#suppressed-count')).trim()), withheld, '#suppressed-count matches the cells marked 秘匿');
    assert.equal(await page.locator('#dummy-result').count(), 0, 'no dummy rows beside a real result');
    await page.evaluate(() => document.fonts.ready);
    const realShot = join(artifacts, 'demo-workspace-query.png');
    await page.locator('#real').screenshot({ path: realShot });
    assert.ok(statSync(realShot).size > 5_000, `${realShot} looks empty`);

    // A job with one output: an aggregate on a granted table, two of whose counts (drugs of two
    // YJ classes) are held by a few of the hospital's patients.
    const before = new Set(await page.locator('#job-list tr.job').evaluateAll((rows) => rows.map((r) => r.id)));
    await page.fill('#job-name-1', 'drug_classes');
    await page.fill('#job-sql-1', "SELECT substr(code, 1, 1) AS kind, count(*) AS n, count(*) FILTER (WHERE code LIKE '2189%') AS statins, count(*) FILTER (WHERE code LIKE '3969%') AS diabetes FROM sakura_ehr.medications GROUP BY kind");
    await clickAndWait(page, '#submit-job');
    await waitForPath(page, '/permits/1/workspace');
    assert.equal(await page.locator('#error').count(), 0, `job refused: ${await errorText(page)}`);
    const hash = new URL(page.url()).hash;
    assert.match(hash, /^#job-\d+$/, `the job form redirects to the job: ${page.url()}`);
    jobId = Number(hash.slice('#job-'.length));
    assert.ok(!before.has(`job-${jobId}`), 'the job is new');
    const row = page.locator(`#job-${jobId}`);
    await row.waitFor({ state: 'visible' });
    // The job runs in the background: while it is listed as running the page says so, and a
    // reload shows how it ended.
    // (Up to about 200 s: an output that passes its slot answers at the time limit and a grace.)
    for (let i = 0; i < 400 && (await row.getAttribute('data-status')) === 'checking'; i++) {
      assert.equal(await page.locator('#jobs-running').count(), 1, 'a running job is announced');
      await page.waitForTimeout(500);
      await page.reload();
      await row.waitFor({ state: 'visible' });
    }
    assert.equal(await page.locator('#jobs-running').count(), 0);
    const status = (await row.locator('td.job-status').textContent()).trim();
    assert.match(status, JAPANESE, `the job status is not Japanese: ${status}`);
    assert.equal(await row.getAttribute('data-status'), 'awaiting_review', `the job is ${status}`);
    assert.equal(status, '出力確認待ち');
    assert.match(await row.textContent(), /drug_classes/);
    assert.equal((await row.locator('td.count').textContent()).trim(), '0 / 2');
    // The demo's own job is listed too, released.
    const seeded = page.locator('#job-list tr.job[data-status="released"]');
    assert.ok((await seeded.count()) >= 1, 'the demo\'s released job is listed');
    assert.equal((await seeded.first().locator('td.job-status').textContent()).trim(), '公開済み');

    await page.evaluate(() => document.fonts.ready);
    const shot = join(artifacts, 'demo-workspace.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(statSync(shot).size > 5_000, `${shot} looks empty`);
  });

  it('the output checker sees the job with per-cell verdicts and approves it (1 of 2 approvals)', async () => {
    assert.ok(jobId, 'the previous test submitted no job');
    const { context, page } = await newPage();
    try {
      await signIn(page, base, accounts['demo.checker']);
      await clickAndWait(page, '#nav-checks');
      await waitForPath(page, '/checks');
      await waitForLang(page, 'ja');
      assert.equal((await page.textContent('main h1')).trim(), '出力チェック');
      const check = page.locator(`#check-${jobId}`);
      await check.waitFor({ state: 'visible' });
      assert.equal((await check.locator('h2').textContent()).trim(), `ジョブ #${jobId}`);
      assert.match(await check.locator('dl.facts').first().textContent(), /demo\.researcher/);
      const output = check.locator(`#check-${jobId}-drug_classes`);
      await output.waitFor({ state: 'visible' });
      assert.match(await output.locator('h3').textContent(), /チェック通過/);
      const table = output.locator('table.checked-table');
      await table.waitFor({ state: 'visible' });
      await assertCheckedTable(table, ['n', 'statins', 'diabetes'], 'checked table of the job');
      // Per-cell verdicts: one line per cell that is not released as it is, each with a
      // Japanese verdict and its reasons.
      const verdicts = output.locator('table.verdicts tr.verdict');
      const n = await verdicts.count();
      assert.ok(n >= 1, 'the job shows per-cell verdicts (a drug class of few persons is suppressed)');
      for (const v of await verdicts.all()) {
        const outcome = (await v.locator('td:nth-child(3)').textContent()).trim();
        assert.ok(['秘匿', '不可', '公開'].includes(outcome), `verdict ${JSON.stringify(outcome)}`);
        if (outcome !== '公開') assert.match(await v.locator('td:nth-child(4)').textContent(), JAPANESE, 'a withheld cell gives its reason in Japanese');
      }
      assert.match(await output.locator('dl.differencing').textContent(), /差分の判定/);
      assert.equal(await check.locator('ul.signoffs').count(), 0, 'no sign-off yet');

      await page.evaluate(() => document.fonts.ready);
      const shot = join(artifacts, 'demo-checks.png');
      await page.screenshot({ path: shot, fullPage: true });
      assert.ok(statSync(shot).size > 5_000, `${shot} looks empty`);

      // Approve: the job stays in the queue (a release needs two checkers) with this sign-off.
      await clickAndWait(page, `#approve-${jobId}`);
      await waitForPath(page, '/checks');
      assert.equal(await page.locator('#error').count(), 0, `approve refused: ${await errorText(page)}`);
      const signoffs = check.locator('ul.signoffs li');
      assert.equal(await signoffs.count(), 1);
      assert.match((await signoffs.first().textContent()).trim(), /^demo\.checker: 承認する \(approved\)$/);

      // Signing twice is refused with a Japanese message.
      await clickAndWait(page, `#approve-${jobId}`);
      await page.locator('#error').waitFor({ state: 'visible' });
      assert.equal((await page.textContent('#error')).trim(), 'この確認者はこのジョブにすでに署名しています。');
    } finally {
      await context.close().catch(() => {});
    }

    // output.checker2's password is not printed, so the job has 1 of the 2 approvals it needs.
    const page2 = await researcherPage();
    await page2.goto(`${base}/permits/1/workspace`);
    const row = page2.locator(`#job-${jobId}`);
    await row.waitFor({ state: 'visible' });
    assert.equal((await row.locator('td.count').textContent()).trim(), '1 / 2');
    assert.equal(await row.getAttribute('data-status'), 'awaiting_review');
    assert.equal((await row.locator('td.job-status').textContent()).trim(), '出力確認待ち');
  });

  it('the researcher downloads the demo\'s released job as CSV from the workspace', async () => {
    const page = await researcherPage();
    await page.goto(`${base}/permits/1/workspace`);
    await waitForLang(page, 'ja');
    const releases = page.locator('#release-list tr.release');
    assert.ok((await releases.count()) >= 1, 'the workspace lists the demo\'s release');
    const link = releases.first().locator('a[id^="download-"]');
    assert.equal((await link.textContent()).trim(), 'CSV をダウンロード');
    const href = await link.getAttribute('href');
    assert.match(href ?? '', /^\/releases\/\d+\/file$/);
    const sha = (await releases.first().locator('td:nth-child(4) code').textContent()).trim();
    assert.match(sha, /^[0-9a-f]{64}$/);

    // Through the browser: the link downloads a file.
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: ACTION_TIMEOUT_MS }), link.click()]);
    assert.match(download.suggestedFilename(), /\.csv$/);

    // And with the session's cookies: 200, text/csv, the hash the page shows.
    const resp = await page.context().request.get(`${base}${href}`);
    assert.equal(resp.status(), 200);
    assert.match(resp.headers()['content-type'] ?? '', /^text\/csv/);
    assert.match(resp.headers()['content-disposition'] ?? '', /^attachment/);
    const body = await resp.body();
    assert.ok(body.length > 0, 'the CSV is empty');
    // The demo's output (conditions_by_chapter): every released count is at least 10, the rest
    // `suppressed`.
    const lines = body.toString('utf8').replace(/^\uFEFF/, '').split('\r\n').filter((l) => l);
    assert.equal(lines[0], 'output,chapter,n');
    assert.ok(lines.length >= 2, `the CSV has no rows:\n${lines.join('\n')}`);
    for (const line of lines.slice(1)) {
      const n = line.split(',').pop();
      assert.ok(n === 'suppressed' || Number(n) >= 10, `the released CSV has a small count: ${line}`);
    }
    assert.equal(createHash('sha256').update(body).digest('hex'), sha, 'the CSV matches the SHA-256 on the page');

    // Without a session the file is not served.
    const anon = await browser.newContext();
    try {
      const r = await anon.request.get(`${base}${href}`, { maxRedirects: 0 });
      assert.ok(r.status() >= 300 && r.status() < 400, `an anonymous download got ${r.status()}`);
    } finally {
      await anon.close().catch(() => {});
    }
  });

  it('the demo\'s patient signs in to the citizen portal and sees permit 1 among the uses', async () => {
    const { context, page } = await newPage();
    try {
      await page.goto(`${base}/citizen/login`);
      await waitForLang(page, 'ja');
      await page.fill('#access_code', citizen.accessCode);
      await page.fill('#birth_date', citizen.birthDate);
      await clickAndWait(page, '#citizen-sign-in');
      await waitForPath(page, '/citizen');
      assert.equal(await page.locator('#error').count(), 0);
      assert.equal((await page.textContent('main h1'))?.trim(), 'わたしのデータ');
      const uses = page.locator('#uses');
      await uses.waitFor({ state: 'visible' });
      assert.equal((await uses.locator('h2').textContent()).trim(), 'あなたのデータを使った利用');
      assert.equal(await page.locator('#no-uses').count(), 0,
        `the demo's queries on sakura-ehr did not include patient ${citizen.patientId}: ${await textIfAny(page, '#no-uses')}`);
      const rows = uses.locator('tbody tr.use');
      const permits = (await rows.locator('td:first-child').allTextContents()).map((t) => t.trim());
      assert.ok(permits.includes('#1'), `permit 1 is not among the uses: ${JSON.stringify(permits)}`);
      const one = rows.filter({ has: page.locator('td:first-child', { hasText: /^#1$/ }) });
      assert.match(await one.textContent(), /東都大学 医学部/, 'the use names the recipient');
      const runs = Number((await one.locator('td:last-child').textContent()).trim());
      assert.ok(runs >= 1, `permit 1 used the data ${runs} times`);
      // The demo's notice is listed.
      assert.match(await page.locator('#notices').textContent(), /さくら市立病院/);
    } finally {
      await context.close().catch(() => {});
    }
  });
});
