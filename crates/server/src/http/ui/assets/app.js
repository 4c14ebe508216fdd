// The dashboard's shell: login, hash routing between pages, and the scope each page runs
// in (its polls, its aborts). The pages themselves are in pages.js; every server call goes
// through api.js.
//
// Routes: #/ (overview), #/queues, #/queues/NAME, #/topics, #/topics/NAME, #/connections,
// #/connections/ID.

import { auth, get } from './api.js';
import { h, showError, clear, clearAll } from './view.js';
import { overview, queues, queue, topics, topic, connections, connection } from './pages.js';

/// How often a page asks again: often enough for rates to look live, rarely enough that a
/// forgotten tab costs the server nothing worth measuring.
const POLL_MS = 2000;

/// What one page owns while it is shown; `stop` ends its polls, aborts its requests and
/// streams, so that leaving a page leaves nothing running.
class Scope {
  constructor(main) {
    this.main = main;
    this.stopped = false;
    this.controller = new AbortController();
    this.timers = new Set();
    this.cleanups = [];
  }

  get signal() {
    return this.controller.signal;
  }

  /// Runs `task(signal)` now and again `POLL_MS` after each run ends; its failure shows in
  /// the message area under `key` until a run succeeds. Returns `refresh()`, which runs it
  /// again at once.
  poll(key, task) {
    let timer = null;
    let running = false;
    let again = false;
    const run = async () => {
      if (this.stopped) return;
      if (running) {
        again = true;
        return;
      }
      running = true;
      this.timers.delete(timer);
      clearTimeout(timer);
      try {
        await task(this.signal);
        clear(key);
      } catch (error) {
        if (!this.stopped && error.name !== 'AbortError') failed(error, key);
      }
      running = false;
      if (this.stopped) return;
      if (again) {
        again = false;
        run();
        return;
      }
      timer = setTimeout(run, POLL_MS);
      this.timers.add(timer);
    };
    run();
    return run;
  }

  /// Runs a user's action from `button`: disabled while it runs, its error shown until the
  /// same action succeeds.
  async act(button, action) {
    const key = `action-${button.id || button.textContent}`;
    button.disabled = true;
    try {
      await action();
      clear(key);
    } catch (error) {
      failed(error, key);
    } finally {
      button.disabled = false;
    }
  }

  /// Shows an error that happened outside a poll or an action (a stream that broke).
  fail(error, key) {
    if (!this.stopped) failed(error, key);
  }

  onStop(cleanup) {
    this.cleanups.push(cleanup);
  }

  stop() {
    this.stopped = true;
    this.controller.abort();
    for (const timer of this.timers) clearTimeout(timer);
    for (const cleanup of this.cleanups) cleanup();
  }
}

let current = null;

/// An error for the user; a 401 also asks for credentials again.
function failed(error, key) {
  showError(error, key);
  if (error.status === 401) showLogin();
}

function route() {
  if (current) current.stop();
  // The messages were about the page being left.
  clearAll();
  const main = document.getElementById('main');
  main.replaceChildren();
  current = new Scope(main);
  let parts;
  try {
    parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    parts = ['?'];
  }
  const [section, name] = parts;
  highlight(section || 'overview');
  if (!section) overview(current);
  else if (section === 'queues' && name) queue(current, name);
  else if (section === 'queues') queues(current);
  else if (section === 'topics' && name) topic(current, name);
  else if (section === 'topics') topics(current);
  else if (section === 'connections' && name) connection(current, name);
  else if (section === 'connections') connections(current);
  else main.append(h('h1', {}, 'Not found'), h('p', {}, 'No such page. ', h('a', { href: '#/' }, 'Overview')));
}

function highlight(section) {
  for (const link of document.querySelectorAll('#nav a')) {
    link.classList.toggle('active', link.dataset.page === section);
  }
}

function showLogin() {
  if (current) current.stop();
  current = null;
  document.getElementById('main').replaceChildren();
  document.getElementById('login').hidden = false;
  document.getElementById('logout').hidden = !auth.header();
  document.getElementById('login-token').focus();
}

/// Asks the server who we are: an open server answers without credentials (`anonymous`).
async function start() {
  try {
    const who = await get('/v1/whoami');
    clear('login');
    document.getElementById('login').hidden = true;
    document.getElementById('identity').textContent = describe(who);
    document.getElementById('logout').hidden = !auth.header();
    route();
  } catch (error) {
    if (error.status === 401) {
      document.getElementById('identity').textContent = '';
      if (auth.header()) showError(error, 'login');
      showLogin();
    } else {
      showError(error, 'login');
      route();
    }
  }
}

function describe(who) {
  if (who.kind === 'anonymous') return 'open server (no security)';
  if (who.kind === 'user') return `user ${who.name}`;
  return `token ${who.name || who.id}${who.owner ? ` of ${who.owner}` : ''}`;
}

function logIn(event) {
  event.preventDefault();
  const byToken = event.target.id === 'login-token-form';
  const token = document.getElementById('login-token').value.trim();
  const user = document.getElementById('login-user').value.trim();
  const password = document.getElementById('login-password').value;
  if (byToken && token) auth.useToken(token);
  else if (!byToken && user) auth.useUser(user, password);
  else {
    showError(new Error(byToken ? 'Type a token.' : 'Type a user and its password.'), 'login');
    return;
  }
  for (const id of ['login-token', 'login-user', 'login-password']) document.getElementById(id).value = '';
  start();
}

function logOut() {
  auth.clear();
  clearAll();
  document.getElementById('identity').textContent = '';
  showLogin();
}

document.getElementById('login-token-form').addEventListener('submit', logIn);
document.getElementById('login-user-form').addEventListener('submit', logIn);
document.getElementById('logout').addEventListener('click', logOut);
window.addEventListener('hashchange', () => {
  if (document.getElementById('login').hidden) route();
});
start();
