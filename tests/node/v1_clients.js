// Databunker's npm modules, unchanged, against a live Strongroom's v1 API:
// @databunker/store (users, app records, agreements) and @databunker/session-store (an Express
// app's sessions kept in the vault). Env: STRONGROOM_URL, STRONGROOM_ROOT_TOKEN.
'use strict';

const assert = require('assert/strict');
const express = require('express');
const session = require('express-session');
const { v4: uuidv4 } = require('uuid');
const DatabunkerStore = require('@databunker/store');
const SessionStore = require('@databunker/session-store')(session);

const url = process.env.STRONGROOM_URL;
const token = process.env.STRONGROOM_ROOT_TOKEN;
if (!url || !token) {
  console.error('set STRONGROOM_URL and STRONGROOM_ROOT_TOKEN');
  process.exit(2);
}

let checks = 0;
function check(what, fn) {
  fn();
  checks += 1;
  console.log(`ok ${checks} - ${what}`);
}

// A v1 call made directly (what the modules do not cover), answering status and body.
async function v1(method, path, body) {
  const res = await fetch(url + path, {
    method,
    headers: { 'X-Bunker-Token': token, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: res.status, body: json };
}

async function store() {
  const db = new DatabunkerStore({ url, token });
  const login = `ada-${uuidv4().slice(0, 8)}`;
  const email = `${login}@example.com`;

  // users.create posts to /v1/user/ and follows the 307 to /v1/user.
  const created = await db.users.create({ login, email, name: 'Ada', custom: `c-${login}` });
  check('users.create answers ok and a token', () => {
    assert.equal(created.status, 'ok', JSON.stringify(created));
    assert.match(created.token, /^[0-9a-f-]{36}$/);
  });
  const t = created.token;

  for (const [mode, identity] of [['token', t], ['login', login], ['email', email.toUpperCase()], ['custom', `c-${login}`]]) {
    const got = await db.users.get(mode, identity);
    check(`users.get by ${mode} reads the record`, () => {
      assert.equal(got.status, 'ok', JSON.stringify(got));
      assert.equal(got.token, t);
      assert.equal(got.data.name, 'Ada');
      assert.equal(got.data.email, email);
    });
  }

  const changed = await db.users.set('login', login, { name: 'Ada Lovelace', custom: null });
  check('users.set merges the change', () => assert.equal(changed.status, 'ok', JSON.stringify(changed)));
  const after = await db.users.get('token', t);
  check('the merged record keeps what was not sent and drops what was null', () => {
    assert.equal(after.data.name, 'Ada Lovelace');
    assert.equal(after.data.login, login);
    assert.equal(after.data.custom, undefined);
  });
  const gone = await db.users.get('custom', `c-${login}`);
  check('a removed index no longer finds the record', () => assert.deepEqual(gone, { status: 'error', message: 'not found' }));

  const missing = await db.users.get('login', 'nobody-' + uuidv4());
  check('an unknown user is the error "not found"', () => assert.deepEqual(missing, { status: 'error', message: 'not found' }));
  const badMode = await db.users.get('nick', 'x');
  check('a bad mode is the error "bad mode"', () => assert.deepEqual(badMode, { status: 'error', message: 'bad mode' }));
  const stranger = await new DatabunkerStore({ url, token: uuidv4() }).users.get('token', t);
  check('a wrong token is "Access denied"', () => assert.deepEqual(stranger, { status: 'error', message: 'Access denied' }));

  // App records: set creates, set again replaces.
  const shop = db.collection('shop');
  const s1 = await shop.set('token', t, { cart: [1, 2], coupon: 'X' });
  check('collection.set creates the app record', () => {
    assert.equal(s1.status, 'ok', JSON.stringify(s1));
    assert.equal(s1.token, t);
  });
  const s2 = await shop.set('login', login, { cart: [3] });
  check('collection.set again answers ok', () => assert.equal(s2.status, 'ok', JSON.stringify(s2)));
  const app = await shop.get('email', email);
  check('collection.get reads the replaced record', () => {
    assert.equal(app.status, 'ok', JSON.stringify(app));
    assert.deepEqual(app.data, { cart: [3] });
  });
  const noApp = await db.collection('other').get('token', t);
  check('an app record never written is "not found"', () => assert.deepEqual(noApp, { status: 'error', message: 'not found' }));

  // Agreements on a legal basis made through the v1 API.
  const brief = `news-${uuidv4().slice(0, 6)}`;
  const lb = await v1('POST', `/v1/lbasis/${brief}`, { basistype: 'consent', shortdesc: 'Newsletter', module: 'signup' });
  check('a legal basis is created', () => assert.equal(lb.body.status, 'ok', JSON.stringify(lb.body)));
  const list = await db.agreements.rawlist();
  check('agreements.rawlist lists it', () => {
    assert.equal(list.status, 'ok');
    assert.ok(list.rows.some((r) => r.brief === brief && r.shortdesc === 'Newsletter'), JSON.stringify(list));
    assert.equal(list.total, list.rows.length);
  });
  const acc = await db.agreements.accept('email', email, brief, { referencecode: 'form-7' });
  check('agreements.accept answers ok', () => assert.equal(acc.status, 'ok', JSON.stringify(acc)));
  let ag = await v1('GET', `/v1/agreement/${brief}/token/${t}`);
  check('the consent is given, with its reference', () => {
    assert.equal(ag.body.data.status, 'yes', JSON.stringify(ag.body));
    assert.equal(ag.body.data.referencecode, 'form-7');
  });
  const wd = await db.agreements.withdraw('login', login, brief);
  check('agreements.withdraw answers ok', () => assert.equal(wd.status, 'ok', JSON.stringify(wd)));
  ag = await v1('GET', `/v1/agreement/${brief}/token/${t}`);
  check('the consent is withdrawn', () => assert.equal(ag.body.data.status, 'no'));
  const unknownBasis = await db.agreements.accept('token', t, 'no-such-basis', {});
  check('accepting an unknown legal basis is "not found"', () => assert.deepEqual(unknownBasis, { status: 'error', message: 'not found' }));

  // The record as v2 sees it: one vault.
  const v2 = await fetch(`${url}/v2/UserGet`, {
    method: 'POST',
    headers: { 'X-Bunker-Token': token, 'Content-Type': 'application/json' },
    body: JSON.stringify({ mode: 'login', identity: login }),
  }).then((r) => r.json());
  check('v2 UserGet reads the record v1 made', () => {
    assert.equal(v2.token, t);
    assert.equal(v2.profile.name, 'Ada Lovelace');
  });

  const del = await v1('DELETE', `/v1/user/token/${t}`);
  check('forget-me answers done', () => assert.deepEqual(del.body, { status: 'ok', result: 'done' }));
  const afterDelete = await db.users.get('login', login);
  check('the forgotten user is not found', () => assert.deepEqual(afterDelete, { status: 'error', message: 'not found' }));
}

async function sessions() {
  const vaultStore = new SessionStore({ url, token });
  const app = express();
  // Databunker's session ids are UUIDs.
  app.use(session({ store: vaultStore, secret: 'test-secret', resave: false, saveUninitialized: false, genid: () => uuidv4() }));
  app.get('/set', (req, res) => { req.session.colour = req.query.v; res.json({ id: req.sessionID }); });
  app.get('/get', (req, res) => res.json({ colour: req.session.colour ?? null, id: req.sessionID }));
  app.get('/destroy', (req, res) => req.session.destroy((err) => res.json({ err: err ? String(err) : null })));
  const server = await new Promise((resolve) => { const s = app.listen(0, '127.0.0.1', () => resolve(s)); });
  const base = `http://127.0.0.1:${server.address().port}`;
  try {
    const set = await fetch(`${base}/set?v=teal`);
    const cookie = (set.headers.get('set-cookie') || '').split(';')[0];
    const { id } = await set.json();
    check('the app sets a session cookie', () => assert.match(cookie, /^connect\.sid=/));

    const stored = await v1('GET', `/v1/session/${id}`);
    check('the session is kept in the vault', () => {
      assert.equal(stored.status, 200, JSON.stringify(stored.body));
      assert.equal(stored.body.session, id);
      assert.equal(stored.body.data.colour, 'teal');
      assert.ok(Number.isInteger(stored.body.when) && stored.body.when > 1700000000, JSON.stringify(stored.body));
    });

    const got = await fetch(`${base}/get`, { headers: { cookie } }).then((r) => r.json());
    check('a second request reads the session back through the vault', () => {
      assert.equal(got.colour, 'teal');
      assert.equal(got.id, id);
    });

    const overwrite = await fetch(`${base}/set?v=plum`, { headers: { cookie } });
    const overwriteBody = await overwrite.text();
    check('the app changes the session', () => assert.equal(overwrite.status, 200, overwriteBody));
    const again = await fetch(`${base}/get`, { headers: { cookie } }).then((r) => r.json());
    check('an overwrite is read back', () => assert.equal(again.colour, 'plum'));

    const destroyed = await fetch(`${base}/destroy`, { headers: { cookie } }).then((r) => r.json());
    check('destroy succeeds', () => assert.equal(destroyed.err, null));
    const gone = await v1('GET', `/v1/session/${id}`);
    check('the destroyed session is "not found" in the vault', () => {
      assert.equal(gone.status, 405);
      assert.deepEqual(gone.body, { status: 'error', message: 'not found' });
    });
    const fresh = await fetch(`${base}/get`, { headers: { cookie } }).then((r) => r.json());
    check('the old cookie now gets an empty session', () => assert.equal(fresh.colour, null));

    const unknown = await new Promise((resolve) => vaultStore.get(uuidv4(), (err, s) => resolve({ err, s })));
    check('store.get of an unknown id is no session, not an error', () => assert.deepEqual(unknown, { err: null, s: null }));
    const refused = await new Promise((resolve) => new SessionStore({ url, token: uuidv4() }).get(uuidv4(), (err, s) => resolve({ err, s })));
    check('a store with a wrong token gets an error', () => assert.ok(refused.err, JSON.stringify(refused)));
  } finally {
    server.close();
  }
}

(async () => {
  try {
    await store();
    await sessions();
    console.log(`v1 node clients: ${checks} checks passed`);
    process.exit(0);
  } catch (e) {
    console.error(`FAILED after ${checks} checks: ${e.stack || e}`);
    process.exit(1);
  }
})();
