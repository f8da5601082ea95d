// Real-browser end-to-end tests of the Niji portal.
//
// Drives Debian's Chromium (/usr/bin/chromium) through playwright-core against a real
// `niji serve` on a fresh instance folder. Run with `scripts/e2e` (or `node --test
// tests/e2e/`); install what it needs with `scripts/install-test-deps`.
//
// The binary comes from NIJI_BIN, else $CARGO_TARGET_DIR/debug/niji, else
// $HOME/.cache/niji-target/debug/niji (else <repo>/target/debug/niji).
//
// A TOTP code is accepted once per account (the server keeps the highest used time
// step), so every test that signs in uses its own account, created in setup.

import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { createHash, createHmac, createPublicKey, verify as verifySignature } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, '..', '..');
const artifacts = join(here, 'artifacts');
const CHROMIUM = process.env.NIJI_E2E_CHROMIUM || '/usr/bin/chromium';
const PASSWORD = 'e2e-password-123456';
const JAPANESE = /[\u3040-\u30ff\u3400-\u9fff]/; // kana or kanji
const ACTION_TIMEOUT_MS = 15_000;

function nijiBin() {
  if (process.env.NIJI_BIN) return process.env.NIJI_BIN;
  if (process.env.CARGO_TARGET_DIR) return join(process.env.CARGO_TARGET_DIR, 'debug', 'niji');
  const cache = join(homedir(), '.cache', 'niji-target', 'debug', 'niji');
  const local = join(repoRoot, 'target', 'debug', 'niji');
  return !existsSync(cache) && existsSync(local) ? local : cache;
}
const NIJI = nijiBin();

// ---------------------------------------------------------------------------------------
// TOTP (RFC 6238 over RFC 4226): HMAC-SHA1, 30-second steps, 6 digits.

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

// The RFC 6238 appendix B vector (SHA-1, T = 59 s) checks the code generator itself, so a
// failing login is never blamed on the portal for a bug in this file.
assert.equal(hotp(Buffer.from('12345678901234567890'), Math.floor(59 / 30)), '287082');

// ---------------------------------------------------------------------------------------
// Server and accounts.

const run = promisify(execFile);

function childEnv() {
  const env = { ...process.env };
  delete env.NIJI_DIR; // every command gets --dir explicitly
  delete env.NIJI_PASSWORD;
  return env;
}

async function niji(args) {
  try {
    return await run(NIJI, args, { env: childEnv(), timeout: 60_000, maxBuffer: 16 << 20 });
  } catch (e) {
    throw new Error(`niji ${args.join(' ')} failed (exit ${e.code}):\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

async function addUser(dir, username) {
  const { stdout } = await niji([
    'user', 'add', '--dir', dir,
    '--username', username,
    '--display-name', '試験 研究者',
    '--role', 'researcher',
    '--organization', '試験大学',
    '--password', PASSWORD,
    '--totp', 'now',
    '--json',
  ]);
  const line = stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('{')).pop();
  assert.ok(line, `user add printed no JSON object:\n${stdout}`);
  const created = JSON.parse(line);
  assert.equal(created.username, username, 'user add --json: username');
  assert.ok(created.user_id !== undefined && created.user_id !== null, 'user add --json: user_id');
  assert.match(created.totp_secret ?? '', /^[A-Z2-7]+=*$/i, 'user add --json: totp_secret is base32');
  return created;
}

function startServer(dir) {
  const child = spawn(NIJI, ['serve', '--dir', dir, '--port', '0', '--host', '127.0.0.1'], {
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const url = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`niji serve printed no address within 30 s.\nstdout:\n${stdout}\nstderr:\n${stderr.slice(-4000)}`)), 30_000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      const m = stdout.match(/http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(`http://127.0.0.1:${m[1]}`);
      }
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
      reject(new Error(`niji serve exited early (code ${code}, signal ${signal}).\nstdout:\n${stdout}\nstderr:\n${stderr.slice(-4000)}`));
    });
  });
  return { child, url, logs: () => stderr };
}

async function stopServer(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGINT'); // the server shuts down gracefully on Ctrl-C
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------
// Browser helpers.

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

/** A code that is certainly wrong now (not the code of the previous, current or next step). */
function wrongCode(secret) {
  const now = Date.now();
  const valid = new Set([-30_000, 0, 30_000].map((d) => totp(secret, now + d)));
  return ['000000', '111111', '222222'].find((c) => !valid.has(c));
}

/** Signs in with password and the current TOTP code; ends on /account. */
async function signIn(page, base, user) {
  await page.goto(`${base}/login`);
  await page.fill('#username', user.username);
  await page.fill('#password', PASSWORD);
  await Promise.all([page.waitForURL((u) => u.pathname === '/login/totp', { timeout: ACTION_TIMEOUT_MS }), page.click('#sign-in')]);
  await page.fill('#code', totp(user.totp_secret));
  await Promise.all([page.waitForURL((u) => u.pathname === '/account', { timeout: ACTION_TIMEOUT_MS }), page.click('#verify')]);
  assert.equal((await page.textContent('#account-username'))?.trim(), user.username);
}

/**
 * The fonts Chromium actually used to draw an element's text, with glyph counts (from the
 * DevTools protocol). Japanese drawn with no CJK font shows as boxes ("tofu").
 */
async function fontsUsedFor(page, selector) {
  const cdp = await page.context().newCDPSession(page);
  try {
    await cdp.send('DOM.enable');
    await cdp.send('CSS.enable');
    const { root } = await cdp.send('DOM.getDocument', { depth: -1 });
    const { nodeId } = await cdp.send('DOM.querySelector', { nodeId: root.nodeId, selector });
    assert.ok(nodeId, `no element ${selector}`);
    const { fonts } = await cdp.send('CSS.getPlatformFontsForNode', { nodeId });
    return fonts;
  } finally {
    await cdp.detach();
  }
}

// ---------------------------------------------------------------------------------------
// Citizens and the transparency log.

/**
 * A patient of the holder's FHIR export: the holder's local patient number (the Patient's
 * `identifier` whose system is an `urn:oid:`) and the birth date that goes with it.
 */
function aPatient(ndjsonDir) {
  for (const facility of readdirSync(ndjsonDir).sort()) {
    const file = join(ndjsonDir, facility, 'Patient.ndjson');
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      const patient = JSON.parse(line);
      const id = (patient.identifier ?? []).find((i) => String(i.system ?? '').startsWith('urn:oid:'))?.value;
      if (id && /^\d{4}-\d{2}-\d{2}$/.test(patient.birthDate ?? '')) return { id, birthDate: patient.birthDate, facility };
    }
  }
  throw new Error(`no Patient with a local number and a birth date under ${ndjsonDir}`);
}

/** The day before `date` (YYYY-MM-DD): a birth date that is certainly wrong. */
function dayBefore(date) {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() - 1);
  return d.toISOString().slice(0, 10);
}

/** Whether an Ed25519 signature (all hex) checks with a raw 32-byte public key. */
function ed25519Verify(publicKeyHex, messageHex, signatureHex) {
  const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(publicKeyHex, 'hex')]);
  const key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  return verifySignature(null, Buffer.from(messageHex, 'hex'), key, Buffer.from(signatureHex, 'hex'));
}

/** The root an RFC 6962 audit path leads to (RFC 9162 §2.1.3.2), or null if it cannot. */
function rootFromAuditPath(leafIndex, treeSize, leafHashHex, pathHex) {
  const node = (l, r) => createHash('sha256').update(Buffer.from([1])).update(l).update(r).digest();
  if (leafIndex >= treeSize) return null;
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = Buffer.from(leafHashHex, 'hex');
  for (const hex of pathHex) {
    const p = Buffer.from(hex, 'hex');
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = node(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = node(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r.toString('hex') : null;
}

// ---------------------------------------------------------------------------------------

describe('portal in a real browser', () => {
  let workDir;
  let instanceDir;
  let server;
  let base;
  let browser;
  let context;
  let page;
  const users = {};
  let patient; // a patient of e2e病院's export, for the citizen portal
  let citizen; // `niji citizen issue --json` for that patient

  before(async () => {
    assert.ok(existsSync(NIJI), `the niji binary is missing at ${NIJI}: build it (cargo build -p niji) or set NIJI_BIN`);
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/install-test-deps`);
    workDir = mkdtempSync(join(tmpdir(), 'niji-e2e-'));
    instanceDir = join(workDir, 'instance');
    await niji(['init', '--dir', instanceDir]);
    // One account per sign-in: a TOTP code is accepted once per account.
    users.main = await addUser(instanceDir, 'e2e.researcher');
    users.lang = await addUser(instanceDir, 'e2e.language');
    users.logout = await addUser(instanceDir, 'e2e.logout');
    users.shots = await addUser(instanceDir, 'e2e.screens');
    users.apply = await addUser(instanceDir, 'e2e.applicant');
    // Datasets for the catalog: a hospital's FHIR Bulk Data export and an insurer's claims,
    // handed in through `niji ingest` as holders' files (beside the instance, not in it).
    const holderFiles = join(workDir, 'holder-files');
    await niji(['synth', '--persons', '300', '--out', holderFiles]);
    await niji(['ingest', '--dir', instanceDir, '--holder', 'e2e病院', '--register-holder', 'hospital', '--dataset', 'e2e-ehr', join(holderFiles, 'ndjson')]);
    await niji(['ingest', '--dir', instanceDir, '--holder', 'e2e保険者', '--register-holder', 'insurer', '--dataset', 'e2e-claims', join(holderFiles, 'uke')]);
    // Every facility folder of the export went into e2e-ehr: any of its patients will do.
    patient = aPatient(join(holderFiles, 'ndjson'));
    // The holder issues the patient's access code. Before `niji serve`: the CLI cannot open
    // an instance whose log a running server holds for appending.
    const { stdout } = await niji([
      'citizen', 'issue', '--dir', instanceDir,
      '--holder', 'e2e病院', '--patient-id', patient.id, '--json',
    ]);
    const line = stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('{')).pop();
    assert.ok(line, `citizen issue printed no JSON object:\n${stdout}`);
    citizen = JSON.parse(line);
    server = startServer(instanceDir);
    base = await server.url;
    browser = await chromium.launch(LAUNCH);
    mkdirSync(artifacts, { recursive: true });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await stopServer(server?.child);
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  // Each test gets a fresh browser context: no cookies carried between tests.
  const fresh = async () => {
    context = await browser.newContext({ viewport: { width: 1024, height: 768 } });
    context.setDefaultTimeout(ACTION_TIMEOUT_MS);
    page = await context.newPage();
    return page;
  };
  afterEach(async () => {
    await context?.close().catch(() => {});
    context = undefined;
  });

  it('shows the home page in Japanese by default', async () => {
    const page = await fresh();
    const resp = await page.goto(`${base}/`);
    assert.equal(resp.status(), 200);
    await waitForLang(page, 'ja');
    assert.equal((await page.textContent('#nav-login'))?.trim(), 'ログイン');
    assert.match(await page.textContent('h1'), JAPANESE);
    assert.equal((await page.textContent('#switch-language'))?.trim(), 'English');
  });

  it('rejects a wrong password with a Japanese message and stays on /login', async () => {
    const page = await fresh();
    await page.goto(`${base}/login`);
    await page.fill('#username', users.main.username);
    await page.fill('#password', 'not-the-password-at-all');
    await Promise.all([page.waitForNavigation({ timeout: ACTION_TIMEOUT_MS }), page.click('#sign-in')]);
    await page.locator('#error').waitFor({ state: 'visible' });
    const message = (await page.textContent('#error')).trim();
    assert.match(message, JAPANESE, `error message is not Japanese: ${message}`);
    assert.equal(pathOf(page), '/login');
    await waitForLang(page, 'ja');
    // The user name is kept; the password is not echoed back.
    assert.equal(await page.inputValue('#username'), users.main.username);
    assert.equal(await page.inputValue('#password'), '');
    const cookies = await context.cookies();
    assert.ok(!cookies.some((c) => c.name === 'niji_session' && c.value), 'a failed login must not set a session cookie');
  });

  it('signs in with password and TOTP, refusing a wrong code first', async () => {
    const page = await fresh();
    const user = users.main;
    await page.goto(`${base}/login`);
    await page.fill('#username', user.username);
    await page.fill('#password', PASSWORD);
    await Promise.all([page.waitForNavigation({ timeout: ACTION_TIMEOUT_MS }), page.click('#sign-in')]);
    await waitForPath(page, '/login/totp');
    assert.equal(await page.locator('#error').count(), 0, 'no error before a code is entered');

    // A wrong code: an error on the same page.
    await page.fill('#code', wrongCode(user.totp_secret));
    await Promise.all([page.waitForNavigation({ timeout: ACTION_TIMEOUT_MS }), page.click('#verify')]);
    await page.locator('#error').waitFor({ state: 'visible' });
    assert.match((await page.textContent('#error')).trim(), JAPANESE);
    assert.equal(pathOf(page), '/login/totp');

    // The current code: signed in.
    await page.fill('#code', totp(user.totp_secret));
    await Promise.all([page.waitForNavigation({ timeout: ACTION_TIMEOUT_MS }), page.click('#verify')]);
    await waitForPath(page, '/account');
    assert.equal((await page.textContent('#account-username')).trim(), 'e2e.researcher');
    assert.equal((await page.textContent('h1')).trim(), 'アカウント');
    await page.locator('#logout').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#nav-login').count(), 0, 'no sign-in link once signed in');
    const session = (await context.cookies()).find((c) => c.name === 'niji_session');
    assert.ok(session?.value, 'a session cookie is set');
    assert.ok(session.httpOnly, 'the session cookie is HttpOnly');
    assert.equal(session.sameSite, 'Strict');
  });

  it('switches language to English and back, and keeps it across pages', async () => {
    const page = await fresh();
    await signIn(page, base, users.lang);
    await waitForLang(page, 'ja');

    await Promise.all([page.waitForNavigation({ timeout: ACTION_TIMEOUT_MS }), page.click('#switch-language')]);
    await waitForLang(page, 'en');
    assert.equal(pathOf(page), '/account', 'the switch returns to the same page');
    assert.equal((await page.textContent('h1')).trim(), 'Account');
    assert.equal((await page.textContent('#switch-language')).trim(), '日本語');
    assert.equal((await page.textContent('#logout')).trim(), 'Sign out');
    const lang = (await context.cookies()).find((c) => c.name === 'niji_lang');
    assert.equal(lang?.value, 'en', 'the language is kept in a cookie');

    // Persists across navigation: a link click, a typed URL, and a reload.
    await Promise.all([page.waitForNavigation({ timeout: ACTION_TIMEOUT_MS }), page.click('nav a[href="/status"]')]);
    await waitForLang(page, 'en');
    assert.equal((await page.textContent('h1')).trim(), 'Status');
    await page.goto(`${base}/`);
    await waitForLang(page, 'en');
    assert.doesNotMatch(await page.textContent('h1'), JAPANESE);
    await page.reload();
    await waitForLang(page, 'en');

    await page.goto(`${base}/account`);
    await Promise.all([page.waitForNavigation({ timeout: ACTION_TIMEOUT_MS }), page.click('#switch-language')]);
    await waitForLang(page, 'ja');
    assert.equal(pathOf(page), '/account');
    assert.equal((await page.textContent('h1')).trim(), 'アカウント');
    assert.equal((await page.textContent('#switch-language')).trim(), 'English');
    await page.goto(`${base}/status`);
    await waitForLang(page, 'ja');
    assert.equal((await page.textContent('h1')).trim(), '稼働状況');
  });

  it('signs out: back on the home page, and /account then asks to sign in', async () => {
    const page = await fresh();
    await signIn(page, base, users.logout);
    await Promise.all([page.waitForNavigation({ timeout: ACTION_TIMEOUT_MS }), page.click('#logout')]);
    await waitForPath(page, '/');
    await page.locator('#nav-login').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#logout').count(), 0, 'no sign-out button once signed out');
    assert.ok(!(await context.cookies()).some((c) => c.name === 'niji_session' && c.value), 'the session cookie is cleared');

    await page.goto(`${base}/account`);
    await waitForPath(page, '/login');
    await page.locator('#username').waitFor({ state: 'visible' });
  });

  it('shows the public data catalog in Japanese with at least one dataset and no count below 10', async () => {
    const page = await fresh();
    const resp = await page.goto(`${base}/catalog`);
    assert.equal(resp.status(), 200);
    await waitForLang(page, 'ja');
    assert.equal((await page.textContent('main h1'))?.trim(), 'データカタログ');
    assert.equal((await page.textContent('#nav-catalog'))?.trim(), 'データカタログ');
    const rows = page.locator('#datasets tbody tr.dataset');
    assert.ok((await rows.count()) >= 1, 'the catalog lists no dataset');
    // Counts are rounded to 10 or shown as 10未満, never a small number.
    for (const text of await page.locator('#datasets td.count').allTextContents()) {
      const t = text.trim();
      if (t === '10未満' || t === '—') continue;
      const n = Number(t.replaceAll(',', ''));
      assert.ok(Number.isInteger(n) && n >= 10 && n % 10 === 0, `catalog count ${JSON.stringify(t)} is not rounded or is below 10`);
    }
    // The first dataset's page: its tables and variables.
    await Promise.all([page.waitForNavigation({ timeout: ACTION_TIMEOUT_MS }), rows.first().locator('a').first().click()]);
    assert.match(pathOf(page), /^\/catalog\/[a-z0-9-]+$/);
    await waitForLang(page, 'ja');
    assert.match(await page.textContent('main h1'), /\S/);
    assert.ok((await page.locator('table.variables').count()) >= 1, 'the dataset page describes no table');
  });

  it('drafts an application: the form, a saved draft, and the list shows it as 下書き', async () => {
    const page = await fresh();
    await signIn(page, base, users.apply);
    await Promise.all([page.waitForNavigation({ timeout: ACTION_TIMEOUT_MS }), page.click('#nav-applications')]);
    await waitForPath(page, '/applications');
    await waitForLang(page, 'ja');
    await Promise.all([page.waitForNavigation({ timeout: ACTION_TIMEOUT_MS }), page.click('#new-application')]);
    await waitForPath(page, '/applications/new');
    // The researchers field starts with the applicant's own user name; the rest is typed.
    assert.equal(await page.inputValue('#researchers'), users.apply.username);
    await page.fill('#title', 'e2e 糖尿病の治療経過');
    await page.fill('#purpose', '治療薬の切替えと予後を調べる');
    await page.selectOption('#purpose_category', 'academic_research');
    await page.fill('#diseases', 'E11');
    await page.fill('#recipient0_organization', '試験大学');
    await page.selectOption('#recipient0_kind', 'academia');
    await page.check('#recipient0_similar');
    await page.fill('#variables', 'e2e-ehr.conditions.code: 病名の把握に必要');
    await page.fill('#analysis_plan', '記述統計と生存時間解析');
    await page.fill('#duration_months', '12');
    await Promise.all([page.waitForNavigation({ timeout: ACTION_TIMEOUT_MS }), page.click('#save-draft')]);
    assert.match(pathOf(page), /^\/applications\/\d+$/, `not on the application page: ${page.url()}`);
    await page.locator('#notice').waitFor({ state: 'visible' });
    assert.equal((await page.textContent('#application-status'))?.trim(), '下書き');
    assert.equal((await page.textContent('main h1'))?.trim(), 'e2e 糖尿病の治療経過');

    await page.goto(`${base}/applications`);
    const row = page.locator('#applications tr.application', { hasText: 'e2e 糖尿病の治療経過' });
    assert.equal(await row.count(), 1, 'the draft is listed once');
    assert.equal((await row.locator('td.status').textContent())?.trim(), '下書き');
  });

  it('renders the TOTP and account pages legibly (screenshots in tests/e2e/artifacts)', async () => {
    const page = await fresh();
    const user = users.shots;
    await page.goto(`${base}/login`);
    await page.fill('#username', user.username);
    await page.fill('#password', PASSWORD);
    await Promise.all([page.waitForNavigation({ timeout: ACTION_TIMEOUT_MS }), page.click('#sign-in')]);
    await waitForPath(page, '/login/totp');
    await page.evaluate(() => document.fonts.ready);
    const totpShot = join(artifacts, 'totp.png');
    await page.screenshot({ path: totpShot, fullPage: true });

    await page.fill('#code', totp(user.totp_secret));
    await Promise.all([page.waitForNavigation({ timeout: ACTION_TIMEOUT_MS }), page.click('#verify')]);
    await waitForPath(page, '/account');
    await page.evaluate(() => document.fonts.ready);
    const accountShot = join(artifacts, 'account.png');
    await page.screenshot({ path: accountShot, fullPage: true });

    for (const f of [totpShot, accountShot]) assert.ok(statSync(f).size > 5_000, `${f} looks empty`);

    // Japanese text is drawn with a font that has the glyphs (no tofu): every glyph of
    // the heading and of the organization comes from a CJK-capable font.
    for (const selector of ['main h1', '.facts dd:nth-of-type(3)']) {
      const fonts = await fontsUsedFor(page, selector);
      const cjk = fonts.filter((f) => /CJK|JP|Japanese|IPA|Gothic|Mincho|Hiragino|Takao|VL |Droid Sans Fallback|WenQuanYi|Source Han/i.test(f.familyName));
      assert.ok(cjk.length > 0 && cjk.reduce((n, f) => n + f.glyphCount, 0) > 0,
        `no CJK font drew ${selector} (fonts used: ${JSON.stringify(fonts)}); run scripts/install-test-deps for fonts-noto-cjk`);
    }
    assert.equal((await page.textContent('.facts dd:nth-of-type(3)')).trim(), '試験大学');
    assert.equal((await page.textContent('.facts dd:nth-of-type(2)')).trim(), '試験 研究者');
  });

  it('a patient signs in with an access code and birth date, stops every use, and withdraws it', async () => {
    const issued = citizen;
    assert.match(issued.access_code ?? '', /^[A-Z0-9]{4}(-[A-Z0-9]{4}){4}$/, `citizen issue --json: access_code ${JSON.stringify(issued.access_code)}`);
    assert.equal(issued.acting_as, 'self');
    assert.equal(issued.valid_until, null, 'a credential for the patient themself does not end at majority');
    assert.ok(issued.user_id !== undefined && issued.user_id !== null, 'citizen issue --json: user_id');

    // Without a session, /citizen asks to sign in (a context that never signed in).
    const stranger = await browser.newContext({ viewport: { width: 1024, height: 768 } });
    try {
      stranger.setDefaultTimeout(ACTION_TIMEOUT_MS);
      const other = await stranger.newPage();
      await other.goto(`${base}/citizen`);
      await waitForPath(other, '/citizen/login');
      await other.locator('#access_code').waitFor({ state: 'visible' });
      await waitForLang(other, 'ja');
    } finally {
      await stranger.close().catch(() => {});
    }

    const page = await fresh();
    await page.goto(`${base}/`);
    await Promise.all([page.waitForNavigation({ timeout: ACTION_TIMEOUT_MS }), page.click('#nav-citizen')]);
    await waitForPath(page, '/citizen/login');
    await waitForLang(page, 'ja');
    assert.match(await page.textContent('main h1'), JAPANESE);
    assert.equal(await page.getAttribute('#birth_date', 'type'), 'date');
    assert.equal(await page.locator('#error').count(), 0, 'no error before anything is entered');

    // The right code with a wrong birth date: a Japanese error, still on the sign-in page.
    await page.fill('#access_code', issued.access_code);
    await page.fill('#birth_date', dayBefore(patient.birthDate));
    await Promise.all([page.waitForNavigation({ timeout: ACTION_TIMEOUT_MS }), page.click('#citizen-sign-in')]);
    await page.locator('#error').waitFor({ state: 'visible' });
    const message = (await page.textContent('#error')).trim();
    assert.match(message, JAPANESE, `error message is not Japanese: ${message}`);
    assert.equal(pathOf(page), '/citizen/login');
    assert.ok(!(await context.cookies()).some((c) => c.name === 'niji_session' && c.value), 'a failed sign-in must not set a session cookie');

    // The right birth date: the patient's own page, in Japanese, with nothing chosen yet.
    await page.fill('#access_code', issued.access_code);
    await page.fill('#birth_date', patient.birthDate);
    await Promise.all([page.waitForNavigation({ timeout: ACTION_TIMEOUT_MS }), page.click('#citizen-sign-in')]);
    await waitForPath(page, '/citizen');
    await waitForLang(page, 'ja');
    assert.equal((await page.textContent('main h1'))?.trim(), 'わたしのデータ');
    assert.match(await page.textContent('#acting'), JAPANESE);
    for (const section of ['#now', '#uses', '#change', '#history']) {
      await page.locator(section).waitFor({ state: 'visible' });
    }
    await page.locator('#no-choice').waitFor({ state: 'visible' });
    assert.match(await page.textContent('#no-choice'), JAPANESE);
    assert.equal(await page.locator('#opt-outs li').count(), 0, 'no opt-out before any is recorded');
    assert.equal(await page.locator('#saved').count(), 0, 'nothing saved yet');
    const session = (await context.cookies()).find((c) => c.name === 'niji_session');
    assert.ok(session?.value && session.httpOnly, 'an HttpOnly session cookie is set');

    // Stop every use.
    await Promise.all([page.waitForNavigation({ timeout: ACTION_TIMEOUT_MS }), page.click('#stop-all')]);
    await waitForPath(page, '/citizen');
    await page.locator('#saved').waitFor({ state: 'visible' });
    assert.match(await page.textContent('#saved'), JAPANESE);
    assert.equal(await page.locator('#error').count(), 0);
    const optOuts = page.locator('#opt-outs li');
    assert.equal(await optOuts.count(), 1, 'the opt-out is listed once');
    assert.equal(await page.locator('#no-choice').count(), 0, '#no-choice is gone once a choice is recorded');
    const withdraw = optOuts.first().locator('button[id^="withdraw-"]');
    assert.equal(await withdraw.count(), 1, 'the opt-out has a withdraw button');
    const entry = (await withdraw.getAttribute('id')).slice('withdraw-'.length);
    assert.match(entry, /^\d+$/, `withdraw button id ${entry}`);

    await page.evaluate(() => document.fonts.ready);
    const citizenShot = join(artifacts, 'citizen.png');
    await page.screenshot({ path: citizenShot, fullPage: true });
    assert.ok(statSync(citizenShot).size > 5_000, `${citizenShot} looks empty`);

    // Withdraw it: the page says so, the list is empty, and the history has both entries.
    await Promise.all([page.waitForNavigation({ timeout: ACTION_TIMEOUT_MS }), page.click(`#withdraw-${entry}`)]);
    await waitForPath(page, '/citizen');
    await page.locator('#saved').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#error').count(), 0);
    assert.equal(await page.locator('#opt-outs li').count(), 0, 'the withdrawn opt-out is no longer listed');
    const history = page.locator('#history tbody tr');
    assert.ok((await history.count()) >= 2, `the history has ${await history.count()} rows, expected the opt-out and its withdrawal`);
    const historyText = (await page.locator('#history tbody').textContent()) ?? '';
    assert.ok(historyText.includes(entry), `the history does not name the withdrawn entry ${entry}: ${historyText}`);

    // The same page in English.
    await Promise.all([page.waitForNavigation({ timeout: ACTION_TIMEOUT_MS }), page.click('#switch-language')]);
    await waitForLang(page, 'en');
    assert.equal(pathOf(page), '/citizen', 'the switch returns to the citizen page');
    assert.equal((await page.textContent('main h1'))?.trim(), 'My data');
    assert.equal((await page.textContent('#history h2'))?.trim(), 'History');
    assert.equal(await page.locator('#opt-outs li').count(), 0);
  });

  it('the public dashboard draws checked charts readable without JavaScript', async () => {
    context = await browser.newContext({ viewport: { width: 1024, height: 768 }, javaScriptEnabled: false });
    context.setDefaultTimeout(ACTION_TIMEOUT_MS);
    const page = await context.newPage();

    const list = await page.goto(`${base}/dashboard`);
    assert.equal(list.status(), 200);
    await waitForLang(page, 'ja');
    assert.match(await page.textContent('main h1'), JAPANESE);
    const link = page.locator('#dashboards tr.dataset[data-name="e2e-ehr"] a');
    assert.equal(await link.count(), 1, 'the dashboard list links e2e-ehr');
    const [resp] = await Promise.all([page.waitForNavigation({ timeout: ACTION_TIMEOUT_MS }), link.click()]);
    await waitForPath(page, '/dashboard/e2e-ehr');
    assert.equal(resp.status(), 200);

    const svgs = page.locator('section.chart figure svg');
    const tables = page.locator('section.chart table.chart-table');
    const nSvg = await svgs.count();
    assert.ok(nSvg >= 3, `only ${nSvg} charts drawn`);
    assert.equal(await tables.count(), nSvg, 'every chart has its table');
    for (const svg of await svgs.all()) {
      const box = await svg.boundingBox();
      assert.ok(box && box.width > 100 && box.height > 10, `a chart is not drawn without JavaScript: ${JSON.stringify(box)}`);
    }

    // Every released count is at least 10; the others are the suppressed marker, never a value.
    const marker = '秘匿';
    let counted = 0;
    let suppressed = 0;
    for (const section of await page.locator('section.chart').all()) {
      const id = await section.getAttribute('id');
      const cells = section.locator('table.chart-table td.count');
      const rows = await section.locator('table.chart-table tbody tr').count();
      if (rows === 0) continue;
      assert.equal(await cells.count(), rows, `${id}: one count per row`);
      assert.equal(await section.locator('svg g.bar').count(), rows, `${id}: the chart and the table show the same rows`);
      for (const cell of await cells.all()) {
        const t = (await cell.textContent()).trim();
        const isSuppressed = ((await cell.getAttribute('class')) ?? '').split(/\s+/).includes('suppressed');
        if (isSuppressed) {
          assert.equal(t, marker, `${id}: a suppressed cell shows ${JSON.stringify(t)}`);
          suppressed += 1;
          continue;
        }
        const n = Number(t.replaceAll(',', ''));
        assert.ok(Number.isFinite(n) && n >= 10, `${id}: count ${JSON.stringify(t)} is below 10 and not suppressed`);
        counted += 1;
      }
      assert.equal(await section.locator('svg rect.suppressed').count(), await section.locator('td.count.suppressed').count(),
        `${id}: the chart marks the same cells as suppressed as the table`);
    }
    assert.ok(counted > 0, `no released count at all (${suppressed} suppressed)`);

    // A chart's CSV.
    const href = await page.locator('section.chart a.csv').first().getAttribute('href');
    assert.match(href ?? '', /^\/dashboard\/e2e-ehr\/[a-z0-9-]+\.csv$/);
    const csv = await context.request.get(`${base}${href}`);
    assert.equal(csv.status(), 200);
    assert.match(csv.headers()['content-type'] ?? '', /^text\/csv/);
    const body = await csv.text();
    const lines = body.replace(/^\uFEFF/, '').split('\r\n').filter((l) => l);
    assert.ok(lines.length >= 2, `the CSV has no data rows:\n${body.slice(0, 500)}`);
    assert.match(lines[0], JAPANESE, 'the CSV header is in the page language');
  });

  it('the transparency register shows its statistics and links to proofs', async () => {
    const page = await fresh();
    const resp = await page.goto(`${base}/register`);
    assert.equal(resp.status(), 200);
    await waitForLang(page, 'ja');
    assert.match(await page.textContent('main h1'), JAPANESE);
    await page.locator('#optout-rate').waitFor({ state: 'visible' });
    const row = page.locator('#opt-outs tbody tr', { has: page.locator('td:first-child', { hasText: /^e2e-ehr$/ }) });
    assert.equal(await row.count(), 1, 'the opt-out table has one e2e-ehr row');
    const [persons, refusing] = (await row.locator('td.count').allTextContents()).map((t) => t.trim());
    for (const t of [persons, refusing]) {
      if (t === '<10') continue;
      const n = Number(t.replaceAll(',', ''));
      assert.ok(Number.isInteger(n) && n >= 10, `opt-out count ${JSON.stringify(t)} is below 10 and not suppressed`);
    }
    assert.notEqual(persons, '<10', 'e2e-ehr has more than 10 persons');
    const pageTreeSize = Number((await page.textContent('#signed-head dd:nth-of-type(1)')).trim());
    assert.ok(pageTreeSize >= 1, 'the log has entries');

    // The JSON export the page links to: its signed head checks, and a proof leads to its root.
    assert.equal(await page.getAttribute('#register-json', 'href'), '/api/v1/register');
    const json = await context.request.get(`${base}/api/v1/register`);
    assert.equal(json.status(), 200);
    assert.match(json.headers()['content-type'] ?? '', /^application\/json/);
    const register = await json.json();
    const head = register.signed_head;
    assert.ok(head && typeof head === 'object', 'the register has a signed_head');
    assert.ok(head.tree_size >= pageTreeSize, `signed_head.tree_size ${head.tree_size} < the page's ${pageTreeSize}`);
    assert.match(head.root_hash, /^[0-9a-f]{64}$/);
    assert.ok(head.signed_message.includes(head.root_hash), 'the signed message covers the root hash');
    assert.ok(ed25519Verify(head.public_key, head.signed_message, head.signature), 'the signed head does not verify');
    const e2e = register.statistics?.opt_outs_by_dataset?.find((o) => o.dataset === 'e2e-ehr');
    assert.ok(e2e, 'the JSON opt-out statistics have e2e-ehr');
    assert.equal(String(e2e.persons), persons, 'the page and the JSON agree on e2e-ehr persons');

    const last = head.tree_size - 1;
    const proofResp = await context.request.get(`${base}/api/v1/log/proof/${last}?tree_size=${head.tree_size}`);
    assert.equal(proofResp.status(), 200);
    const proof = await proofResp.json();
    assert.equal(proof.tree_size, head.tree_size);
    assert.equal(proof.root_hash, head.root_hash);
    assert.equal(rootFromAuditPath(proof.leaf_index, proof.tree_size, proof.leaf_hash, proof.audit_path), head.root_hash,
      'the inclusion proof does not lead to the signed root');
  });
});
