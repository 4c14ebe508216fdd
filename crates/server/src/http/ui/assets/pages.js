// The pages: overview, queues, one queue, topics, one topic, connections, one connection. Each takes the Scope app.js
// made for it, builds its static parts once (forms, buttons: they survive the refreshes)
// and refreshes the live parts from the API every poll.

import { ApiError, get, path, post, remove, subscribe } from './api.js';
import {
  History, badge, bodyText, bytes, card, count, definitions, duration, h, link, rate,
  showSuccess, sparkline, table, time,
} from './view.js';

/// Rows per page of the queue and topic lists.
const PAGE_SIZE = 100;
/// Messages a peek shows: the API's own maximum.
const PEEK_MAX = 100;
/// Events the live tail keeps on screen.
const TAIL_MAX = 200;

const plural = (n, noun) => `${count(n)} ${noun}${n === 1 ? '' : 's'}`;
const queueHref = (name) => `#/queues/${encodeURIComponent(name)}`;
const topicHref = (name) => `#/topics/${encodeURIComponent(name)}`;

// ---------------------------------------------------------------- overview

/// The counters behind the overview's rate charts: the node's totals on `/metrics`, summed by
/// the server over every queue and topic.
const RATE_SERIES = {
  sent: { name: 'wharf_node_events_total', labels: { event: 'sent' } },
  delivered: { name: 'wharf_node_events_total', labels: { event: 'delivered' } },
  acked: { name: 'wharf_node_events_total', labels: { event: 'acked' } },
  dead_lettered: { name: 'wharf_node_events_total', labels: { event: 'dead_lettered' } },
  published: { name: 'wharf_node_topic_events_total', labels: { event: 'published' } },
};

/// Everything the overview shows comes from one scrape of `/metrics` (the node's totals), one
/// `/readyz` and one `/v1/alerts`, never from listing the queues: its cost does not grow with
/// the number of queues and topics beyond the scrape's own.
export function overview(scope) {
  const cards = h('div', { class: 'cards', 'data-testid': 'overview-cards' });
  const charts = h('div', { class: 'charts', 'data-testid': 'overview-rates' });
  const ratesScope = h('p', { class: 'subtitle', 'data-testid': 'rates-scope' },
    'Summed over every queue and topic of the node.');
  const alerts = h('div', { 'data-testid': 'alerts' }, h('p', { class: 'empty' }, 'Loading…'));
  scope.main.append(
    h('h1', {}, 'Overview'),
    h('p', { class: 'subtitle' }, 'This node, refreshed every 2 seconds.'),
    cards, h('h2', {}, 'Message rates'), ratesScope, charts, h('h2', {}, 'Alerts'), alerts);
  const history = new History();
  const counters = new CounterSums(RATE_SERIES);
  scope.poll('overview', async (signal) => {
    const [metrics, readiness] = await Promise.all([
      get('/metrics', { signal, accept: 'text/plain' }).then(parseMetrics),
      get('/readyz', { signal }).catch((error) => {
        if (error instanceof ApiError && error.status === 503) return { status: 'not ready', warnings: [error.message] };
        throw error;
      }),
    ]);
    const messages = (state) => sample(metrics, 'wharf_messages', { state });
    const ready = messages('ready');
    history.add('node', Date.now(), { ready, ...counters.add(metrics) });
    const free = sample(metrics, 'wharf_storage_disk_free_bytes');
    const resident = sample(metrics, 'wharf_process_resident_memory_bytes');
    cards.replaceChildren(...[
      card('Status', readiness.status, { note: (readiness.warnings || []).join('; ') || 'no warnings', testId: 'status' }),
      card('Queues', count(sample(metrics, 'wharf_queues')), { testId: 'queue-count' }),
      card('Topics', count(sample(metrics, 'wharf_topics')), { testId: 'topic-count' }),
      card('Ready', count(ready), { testId: 'total-ready', chart: sparkline(history.values('node', 'ready')) }),
      card('Delayed', count(messages('delayed')), { testId: 'total-delayed' }),
      card('Leased', count(messages('leased')), { testId: 'total-leased' }),
      card('Disk free', bytes(free), {
        testId: 'disk-free',
        note: sample(metrics, 'wharf_storage_disk_reserve_spent') === 1 ? 'full: reserve spent' : 'for the data directory',
      }),
      resident === undefined ? null : card('Memory', bytes(resident), { note: 'resident', testId: 'memory' }),
    ].filter(Boolean));
    const rateCard = (label, field) => card(label, rate(history.rate('node', field)), {
      chart: sparkline(history.rates('node', field), { title: `${label} over the last 2 minutes` }),
      testId: `rate-${field}`,
    });
    charts.replaceChildren(
      rateCard('Sent', 'sent'), rateCard('Delivered', 'delivered'), rateCard('Acked', 'acked'),
      rateCard('Published', 'published'), rateCard('Dead-lettered', 'dead_lettered'));
  });
  scope.poll('alerts', async (signal) => {
    alerts.replaceChildren(alertTable((await get('/v1/alerts', { signal })).alerts));
  });
}

/// Prometheus text (or OpenMetrics): each sample by metric name, as `{labels, value}`.
function parseMetrics(text) {
  const samples = new Map();
  for (const line of String(text).split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[^"}]|"(?:[^"\\]|\\.)*")*)\})? ([^ ]+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const [, key, value] of (match[2] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key] = value.replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    if (!samples.has(match[1])) samples.set(match[1], []);
    samples.get(match[1]).push({ labels, value: Number(match[3]) });
  }
  return samples;
}

/// The value of the sample of `name` whose labels include `labels`, or undefined.
function sample(metrics, name, labels = {}) {
  const found = (metrics.get(name) || []).find((s) => Object.entries(labels).every(([key, value]) => s.labels[key] === value));
  return found?.value;
}

/// Node-wide counters summed from per-resource series. The set of resources with series can
/// change between two scrapes (a queue becomes one of the busiest, or is deleted), so a sum of
/// the counters would jump; instead each scrape adds what every series present in both grew by.
class CounterSums {
  constructor(series) {
    this.series = series;
    this.previous = new Map();
    this.totals = Object.fromEntries(Object.keys(series).map((field) => [field, 0]));
  }

  /// Adds the growth since the previous scrape; returns the running totals. A counter that
  /// went down (a deleted queue left the sum, or the server restarted) adds nothing.
  add(metrics) {
    for (const [field, { name, labels }] of Object.entries(this.series)) {
      const value = sample(metrics, name, labels);
      const before = this.previous.get(field);
      if (value !== undefined && before !== undefined && value > before) this.totals[field] += value - before;
      this.previous.set(field, value);
    }
    return { ...this.totals };
  }
}

/// A rule's threshold or value: bytes for the node's `*_bytes` metrics.
const alertNumber = (alert, value) => (alert.metric.endsWith('_bytes') ? bytes(value) : count(value));

function alertTable(alerts) {
  const order = { firing: 0, pending: 1, ok: 2 };
  const sorted = [...alerts].sort((a, b) => (order[a.state] ?? 3) - (order[b.state] ?? 3) || String(a.name).localeCompare(String(b.name)));
  return table([
    { title: 'State', value: (a) => badge(a.state, a.state) },
    { title: 'Rule', value: (a) => a.name },
    { title: 'On', value: (a) => (a.queue ? link(queueHref(a.queue), `queue ${a.queue}`) : a.topic ? link(topicHref(a.topic), `topic ${a.topic}`) : 'node') },
    { title: 'Condition', value: (a) => `${a.metric}${a.rate ? ' per second' : ''} ${a.op} ${alertNumber(a, a.threshold)}${a.for_ms ? ` for ${duration(a.for_ms)}` : ''}` },
    { title: 'Value', num: true, value: (a) => (a.value === null || a.value === undefined ? '–' : alertNumber(a, a.value)) },
    { title: 'Since', value: (a) => time(a.since_ms) },
    { title: 'Readiness', value: (a) => (a.readiness ? 'fails /readyz when firing' : '–') },
  ], sorted, { empty: 'No alert rules.', testId: 'alert-table' });
}

// ---------------------------------------------------------------- lists

/// A paged, filtered list of queues or topics; `columns` get the History of each row.
function listPage(scope, { title, resource, key, columns, sample, testId }) {
  let after = null;
  const before = [];
  const prefix = h('input', { type: 'search', placeholder: 'Name starts with…', 'aria-label': 'Name prefix', 'data-testid': 'prefix' });
  const previous = h('button', { type: 'button', disabled: true }, '← Previous');
  const next = h('button', { type: 'button', disabled: true }, 'Next →');
  const summary = h('span', { class: 'status-line' });
  const list = h('div', {}, h('p', { class: 'empty' }, 'Loading…'));
  scope.main.append(h('h1', {}, title),
    h('div', { class: 'toolbar' }, prefix, h('span', { class: 'grow' }), summary, previous, next), list);
  const history = new History();
  let nextAfter = null;
  const refresh = scope.poll(resource, async (signal) => {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (prefix.value) query.set('prefix', prefix.value);
    if (after) query.set('after', after);
    const answer = await get(`/v1/${resource}?${query}`, { signal });
    const now = Date.now();
    for (const item of answer[key]) history.add(item.name, now, sample(item));
    nextAfter = answer.next || null;
    next.disabled = !nextAfter;
    previous.disabled = !before.length;
    summary.textContent = `${answer[key].length} shown${nextAfter ? ', more on the next page' : ''}`;
    list.replaceChildren(table(columns(history), answer[key], { empty: `No ${resource}.`, testId }));
  });
  prefix.addEventListener('input', () => {
    after = null;
    before.length = 0;
    refresh();
  });
  next.addEventListener('click', () => {
    before.push(after);
    after = nextAfter;
    refresh();
  });
  previous.addEventListener('click', () => {
    after = before.pop() ?? null;
    refresh();
  });
}

export function queues(scope) {
  listPage(scope, {
    title: 'Queues',
    resource: 'queues',
    key: 'queues',
    testId: 'queue-table',
    sample: (q) => ({ ...q.stats.counters, depth: q.stats.ready + q.stats.delayed + q.stats.leased }),
    columns: (history) => [
      { title: 'Name', value: (q) => link(queueHref(q.name), q.name) },
      { title: 'Ready', num: true, value: (q) => count(q.stats.ready) },
      { title: 'Delayed', num: true, value: (q) => count(q.stats.delayed) },
      { title: 'Leased', num: true, value: (q) => count(q.stats.leased) },
      { title: 'Consumers', num: true, value: (q) => count(q.stats.consumers) },
      { title: 'Oldest ready', num: true, value: (q) => duration(q.stats.oldest_ready_age_ms) },
      { title: 'In', num: true, value: (q) => rate(history.rate(q.name, 'sent')) },
      { title: 'Out', num: true, value: (q) => rate(history.rate(q.name, 'delivered')) },
      { title: 'Acked', num: true, value: (q) => rate(history.rate(q.name, 'acked')) },
      { title: 'Depth', value: (q) => sparkline(history.values(q.name, 'depth'), { width: 120, height: 24, title: 'ready + delayed + leased' }) },
      { title: 'In / out', value: (q) => sparkline([history.rates(q.name, 'sent'), history.rates(q.name, 'delivered')], { width: 120, height: 24, title: 'sent (blue) and delivered (violet) per second' }) },
      { title: 'Dead letters to', value: (q) => (q.options.dead_letter_queue ? link(queueHref(q.options.dead_letter_queue), q.options.dead_letter_queue) : '–') },
    ],
  });
}

export function topics(scope) {
  listPage(scope, {
    title: 'Topics',
    resource: 'topics',
    key: 'topics',
    testId: 'topic-table',
    sample: (t) => ({ ...t.stats }),
    columns: (history) => [
      { title: 'Name', value: (t) => link(topicHref(t.name), t.name) },
      { title: 'Kind', value: (t) => t.kind },
      { title: 'Retain', value: (t) => (t.retain ? 'yes' : 'no') },
      { title: 'Bindings', num: true, value: (t) => count(t.stats.bindings) },
      { title: 'Published', num: true, value: (t) => count(t.stats.published) },
      { title: 'Routed', num: true, value: (t) => count(t.stats.routed) },
      { title: 'Unroutable', num: true, value: (t) => count(t.stats.unroutable) },
      { title: 'Rate', num: true, value: (t) => rate(history.rate(t.name, 'published')) },
      { title: 'Published/s', value: (t) => sparkline(history.rates(t.name, 'published'), { width: 120, height: 24 }) },
    ],
  });
}

// ---------------------------------------------------------------- one queue

export function queue(scope, name) {
  const purge = h('button', { type: 'button', class: 'danger', id: 'purge' }, 'Purge…');
  const confirmPurge = h('button', { type: 'button', class: 'danger confirm', id: 'purge-confirm' }, 'Purge');
  const cancelPurge = h('button', { type: 'button', id: 'purge-cancel' }, 'Cancel');
  const confirmBar = h('div', { class: 'confirm-bar', hidden: true },
    h('span', { class: 'grow' }, `Remove every ready and delayed message of ${name}? Leased ones stay with their consumers.`),
    confirmPurge, cancelPurge);
  const deleteQuestion = h('span', { class: 'grow' });
  const confirmDelete = h('button', { type: 'button', class: 'danger confirm', id: 'delete-confirm' }, 'Delete');
  const cancelDelete = h('button', { type: 'button', id: 'delete-cancel' }, 'Cancel');
  const deleteBar = h('div', { class: 'confirm-bar', hidden: true }, deleteQuestion, confirmDelete, cancelDelete);
  let deleting = null;
  const askDelete = (message) => {
    deleting = message.id;
    deleteQuestion.textContent = `Delete message ${message.id} from ${name}? It cannot be brought back.`;
    deleteBar.hidden = false;
  };
  const cards = h('div', { class: 'cards', 'data-testid': 'queue-cards' });
  const options = h('div', { 'data-testid': 'queue-options' });
  const counters = h('div', { 'data-testid': 'queue-counters' });
  const messages = h('div', { 'data-testid': 'messages' });
  const deadLetters = h('div', { 'data-testid': 'dead-letters' });
  const redriveSelf = h('button', { type: 'button', id: 'redrive-self', hidden: true }, 'Redrive these dead letters to their queues');
  let state = 'ready';
  const tabs = h('div', { class: 'tabs', role: 'tablist' });
  const setTab = (value) => {
    state = value;
    for (const tab of tabs.children) tab.classList.toggle('active', tab.dataset.state === value);
  };
  for (const value of ['ready', 'delayed', 'leased']) {
    tabs.append(h('button', { type: 'button', 'data-state': value, id: `tab-${value}`, onclick: () => { setTab(value); refresh(); } }, value));
  }
  setTab('ready');
  const form = sendForm(scope, async (message) => {
    const answer = await post(path('queues', name, 'messages'), { messages: [message] });
    const sent = answer.messages[0];
    showSuccess(`Sent message ${sent.id} to ${name}${sent.duplicate ? ' (a duplicate: not stored again)' : ''}.`);
    refresh();
  });
  const deadLetterTitle = h('h2', {}, 'Dead letters');
  scope.main.append(
    h('p', { class: 'subtitle' }, link('#/queues', 'Queues'), ' / '),
    h('h1', { 'data-testid': 'queue-name' }, name),
    h('div', { class: 'toolbar' }, purge), confirmBar,
    cards,
    h('div', { class: 'columns' },
      h('div', {}, h('h2', {}, 'Options'), options),
      h('div', {}, h('h2', {}, 'Counters since the server started'), counters)),
    h('h2', {}, 'Messages'), h('div', { class: 'toolbar' }, tabs, h('span', { class: 'grow' }), redriveSelf), deleteBar, messages,
    deadLetterTitle, deadLetters,
    h('h2', {}, 'Send a test message'), form);

  const history = new History();
  let deadLetterQueue = null;
  const redriveDead = h('button', { type: 'button', id: 'redrive' }, 'Redrive all to their queues');
  const refresh = scope.poll(`queue-${name}`, async (signal) => {
    const info = await get(path('queues', name), { signal });
    const stats = info.stats;
    history.add(name, Date.now(), { ...stats.counters, ready: stats.ready, depth: stats.ready + stats.delayed + stats.leased });
    cards.replaceChildren(
      card('Ready', count(stats.ready), { testId: 'ready', chart: sparkline(history.values(name, 'ready')) }),
      card('Delayed', count(stats.delayed), { testId: 'delayed' }),
      card('Leased', count(stats.leased), { testId: 'leased' }),
      card('Oldest ready', duration(stats.oldest_ready_age_ms), { testId: 'oldest' }),
      card('In', rate(history.rate(name, 'sent')), { chart: sparkline(history.rates(name, 'sent')) }),
      card('Out', rate(history.rate(name, 'delivered')), { chart: sparkline([history.rates(name, 'delivered'), history.rates(name, 'acked')]), note: 'delivered, and acked (violet)' }));
    options.replaceChildren(definitions(Object.entries(info.options).map(([key, value]) => [key, optionText(key, value)])));
    counters.replaceChildren(definitions(Object.entries(stats.counters).map(([key, value]) => [key, count(value)])));
    const peeked = await get(`${path('queues', name, 'messages')}?state=${state}&max=${PEEK_MAX}`, { signal });
    const anyDead = peeked.messages.some((m) => m.dead_letter);
    redriveSelf.hidden = !anyDead;
    // A leased message is its consumer's to settle: the server refuses to delete it (409).
    const onDelete = state === 'leased' ? null : askDelete;
    messages.replaceChildren(messageTable(peeked.messages, anyDead, `No ${state} messages.`, onDelete));
    deadLetterQueue = info.options.dead_letter_queue;
    deadLetterTitle.hidden = !deadLetterQueue;
    deadLetters.hidden = !deadLetterQueue;
    if (deadLetterQueue) deadLetters.replaceChildren(...await deadLetterView(deadLetterQueue, redriveDead, signal));
  });

  purge.addEventListener('click', () => { confirmBar.hidden = false; });
  cancelPurge.addEventListener('click', () => { confirmBar.hidden = true; });
  confirmPurge.addEventListener('click', () => scope.act(confirmPurge, async () => {
    const answer = await post(path('queues', name, 'purge'));
    confirmBar.hidden = true;
    showSuccess(`Purged ${plural(answer.purged, 'message')} from ${name}.`);
    refresh();
  }));
  cancelDelete.addEventListener('click', () => { deleteBar.hidden = true; });
  confirmDelete.addEventListener('click', () => scope.act(confirmDelete, async () => {
    const id = deleting;
    await remove(path('queues', name, 'messages', id));
    deleteBar.hidden = true;
    showSuccess(`Deleted message ${id} from ${name}.`);
    refresh();
  }));
  const redrive = (target, button) => scope.act(button, async () => {
    const answer = await post(path('queues', target, 'redrive'));
    const skipped = answer.skipped_not_dead_letter + answer.skipped_source_missing;
    showSuccess(`Redrove ${plural(answer.redriven, 'dead letter')} from ${target} to their queues` +
      (skipped ? ` (skipped: ${answer.skipped_not_dead_letter} not dead letters, ${answer.skipped_source_missing} whose queue is gone).` : '.'));
    refresh();
  });
  redriveDead.addEventListener('click', () => redrive(deadLetterQueue, redriveDead));
  redriveSelf.addEventListener('click', () => redrive(name, redriveSelf));
}

function optionText(key, value) {
  if (value === null || value === undefined) return '–';
  if (key.endsWith('_ms')) return `${count(value)} ms (${duration(value)})`;
  if (key === 'dead_letter_queue') return link(queueHref(value), value);
  return String(value);
}

/// The dead-letter queue's count, a Redrive button and its first messages with their reasons.
async function deadLetterView(deadLetterQueue, redriveButton, signal) {
  const intro = h('p', {}, 'Dead letters go to ', link(queueHref(deadLetterQueue), deadLetterQueue), '. ');
  let info;
  try {
    info = await get(path('queues', deadLetterQueue), { signal });
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      return [intro, h('p', { class: 'empty' }, 'None yet: that queue is created with the first dead letter.')];
    }
    throw error;
  }
  const peeked = await get(`${path('queues', deadLetterQueue, 'messages')}?state=ready&max=${PEEK_MAX}`, { signal });
  intro.append(h('span', { 'data-testid': 'dead-letter-count' }, count(info.stats.ready)), ' ready there.');
  redriveButton.disabled = info.stats.ready === 0;
  const rows = peeked.messages.filter((m) => m.dead_letter);
  return [h('div', { class: 'toolbar' }, intro, h('span', { class: 'grow' }), redriveButton),
    table([
      { title: 'ID', class: 'mono', value: (m) => m.id },
      { title: 'Reason', value: (m) => h('span', { class: 'reason' }, m.dead_letter.reason) },
      { title: 'From', value: (m) => link(queueHref(m.dead_letter.source_queue), m.dead_letter.source_queue) },
      { title: 'When', value: (m) => time(m.dead_letter.at) },
      { title: 'Deliveries', num: true, value: (m) => count(m.dead_letter.delivery_count) },
      { title: 'Last error', value: (m) => m.dead_letter.last_error ?? '–' },
      { title: 'Body', class: 'body mono', value: (m) => bodyText(m) },
    ], rows, { empty: 'No dead letters.', testId: 'dead-letter-table' })];
}

/// The peeked messages; with `onDelete`, each row has a Delete button that calls it.
function messageTable(messages, withDeadLetters, empty, onDelete) {
  const columns = [
    { title: 'ID', class: 'mono', value: (m) => m.id },
    { title: 'State', value: (m) => m.state },
    { title: 'Priority', num: true, value: (m) => m.priority },
    { title: 'Deliveries', num: true, value: (m) => count(m.delivery_count) },
    { title: 'Sent', value: (m) => time(m.sent_at) },
    { title: 'Until', value: (m) => time(m.state_until) },
    { title: 'Body', class: 'body mono', value: (m) => bodyText(m) },
  ];
  if (withDeadLetters) {
    columns.push(
      { title: 'Reason', value: (m) => (m.dead_letter ? h('span', { class: 'reason' }, m.dead_letter.reason) : '–') },
      { title: 'From', value: (m) => (m.dead_letter ? link(queueHref(m.dead_letter.source_queue), m.dead_letter.source_queue) : '–') },
      { title: 'Last error', value: (m) => m.dead_letter?.last_error ?? '–' });
  }
  if (onDelete) {
    columns.push({
      title: '',
      value: (m) => h('button', { type: 'button', class: 'danger', 'data-testid': 'delete', onclick: () => onDelete(m) }, 'Delete…'),
    });
  }
  return table(columns, messages, { empty, testId: 'message-table' });
}

/// A form for one message: a body (JSON if it parses, else text), optionally a routing key
/// (for topics), a priority and a delay. `send` gets the message of the API's send body.
function sendForm(scope, send, { routingKey = false } = {}) {
  const key = h('input', { type: 'text', id: 'send-key', placeholder: 'orders.eu.created' });
  const body = h('textarea', { id: 'send-body', rows: 3 }, '{"hello": "from the dashboard"}');
  // No max: the server checks the range and its answer says why (a browser bubble would not).
  const priority = h('input', { type: 'number', id: 'send-priority', min: 0, placeholder: '0-9' });
  const delay = h('input', { type: 'number', id: 'send-delay', min: 0, placeholder: '0' });
  const button = h('button', { type: 'submit', class: 'primary', id: 'send' }, routingKey ? 'Publish' : 'Send');
  const form = h('form', { class: 'stack', 'data-testid': 'send-form' },
    routingKey ? h('label', {}, 'Routing key', key) : null,
    h('label', {}, 'Body (JSON, or any text)', body),
    h('div', { class: 'toolbar' },
      h('label', {}, 'Priority ', priority), h('label', {}, 'Delay (ms) ', delay), button));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    scope.act(button, async () => {
      const message = {};
      try {
        message.body = JSON.parse(body.value);
      } catch {
        message.body = body.value;
      }
      if (routingKey) message.routing_key = key.value;
      if (priority.value !== '') message.priority = Number(priority.value);
      if (delay.value !== '') message.delay_ms = Number(delay.value);
      await send(message);
    });
  });
  return form;
}

// ---------------------------------------------------------------- one topic

export function topic(scope, name) {
  const cards = h('div', { class: 'cards', 'data-testid': 'topic-cards' });
  const definition = h('div', { 'data-testid': 'topic-definition' });
  const bindings = h('div', { 'data-testid': 'bindings' });
  const form = sendForm(scope, async (message) => {
    const answer = await post(path('topics', name, 'publish'), { messages: [message] });
    const published = answer.messages[0];
    showSuccess(`Published message ${published.id} to ${name}: routed to ${plural(published.routed, 'destination')}.`);
    refresh();
  }, { routingKey: true });
  scope.main.append(
    h('p', { class: 'subtitle' }, link('#/topics', 'Topics'), ' / '),
    h('h1', { 'data-testid': 'topic-name' }, name),
    cards,
    h('div', { class: 'columns' },
      h('div', {}, h('h2', {}, 'Definition'), definition),
      h('div', {}, h('h2', {}, 'Publish a test message'), form)),
    h('h2', {}, 'Bindings'), bindings,
    h('h2', {}, 'Live tail'), liveTail(scope, name));
  const history = new History();
  const refresh = scope.poll(`topic-${name}`, async (signal) => {
    const [info, bound] = await Promise.all([
      get(path('topics', name), { signal }),
      get(path('topics', name, 'bindings'), { signal }),
    ]);
    history.add(name, Date.now(), info.stats);
    cards.replaceChildren(
      card('Published', count(info.stats.published), { testId: 'published', chart: sparkline(history.rates(name, 'published'), { title: 'published per second' }) }),
      card('Routed', count(info.stats.routed), { testId: 'routed' }),
      card('Unroutable', count(info.stats.unroutable), { testId: 'unroutable' }),
      card('Bindings', count(info.stats.bindings), { testId: 'binding-count' }),
      card('Retained', count(info.stats.retained), { testId: 'retained' }));
    definition.replaceChildren(definitions([
      ['kind', info.kind],
      ['retain', info.retain ? 'yes' : 'no'],
      ['alternate', info.alternate ? destination(info.alternate) : '–'],
      ['rules_mode', info.rules_mode],
      ['rules', info.rules.length ? info.rules.map((rule) => h('div', {}, `${rule.filter} → `, destination(rule))) : '–'],
    ]));
    bindings.replaceChildren(table([
      { title: 'Pattern', class: 'mono', value: (b) => b.pattern ?? '–' },
      { title: 'Syntax', value: (b) => b.syntax },
      { title: 'Filter', class: 'mono', value: (b) => b.filter ?? '–' },
      { title: 'Headers', class: 'mono', value: (b) => (b.headers ? JSON.stringify(b.headers) : '–') },
      { title: 'Destination', value: (b) => destination(b) },
      { title: 'Matched', num: true, value: (b) => count(b.matched) },
      { title: 'ID', class: 'mono', value: (b) => b.id },
    ], bound.bindings, { empty: 'No bindings: published messages go to the alternate, if any.', testId: 'binding-table' }));
  });
}

function destination(target) {
  if (target.queue) return h('span', {}, 'queue ', link(queueHref(target.queue), target.queue));
  if (target.topic) return h('span', {}, 'topic ', link(topicHref(target.topic), target.topic));
  return '–';
}

/// A subscription shown as it happens; stopped with its button or by leaving the page.
function liveTail(scope, name) {
  const pattern = h('input', { type: 'text', id: 'tail-pattern', value: '#', 'aria-label': 'Pattern' });
  const syntax = h('select', { id: 'tail-syntax', 'aria-label': 'Syntax' },
    ['amqp', 'mqtt', 'nats'].map((value) => h('option', { value }, value)));
  const filter = h('input', { type: 'text', id: 'tail-filter', placeholder: 'amount > 10', 'aria-label': 'Filter' });
  const toggle = h('button', { type: 'button', id: 'tail-toggle', class: 'primary' }, 'Start');
  const status = h('span', { class: 'status-line', id: 'tail-status' }, 'Stopped.');
  const events = h('div', { class: 'tail', 'data-testid': 'tail' }, h('p', { class: 'empty event' }, 'Start the tail to see messages as they are published.'));
  let subscription = null;
  let received = 0;
  const stop = (text) => {
    if (subscription) subscription.abort();
    subscription = null;
    toggle.textContent = 'Start';
    status.textContent = text;
  };
  toggle.addEventListener('click', () => {
    if (subscription) {
      stop(`Stopped after ${received} messages.`);
      return;
    }
    received = 0;
    events.replaceChildren();
    const query = { pattern: pattern.value, syntax: syntax.value };
    if (filter.value) query.filter = filter.value;
    toggle.textContent = 'Stop';
    status.textContent = 'Connecting…';
    subscription = subscribe(name, query, {
      onOpen: () => { status.textContent = `Listening for ${query.pattern} (${query.syntax})…`; },
      onMessage: (message) => {
        received += 1;
        status.textContent = `Listening for ${query.pattern} (${query.syntax}): ${received} messages.`;
        events.prepend(h('div', { class: 'event', 'data-testid': 'tail-event' },
          h('span', { class: 'when' }, time(message.sent_at)), h('span', { class: 'id' }, message.id ?? ''), ' ', bodyText(message, 1000)));
        while (events.children.length > TAIL_MAX) events.lastChild.remove();
      },
      onEnd: (error) => {
        subscription = null;
        if (error) scope.fail(error, `tail-${name}`);
        stop(error ? 'Stopped by an error.' : 'The server ended the stream.');
      },
    });
  });
  scope.onStop(() => stop('Stopped.'));
  return h('div', {},
    h('div', { class: 'toolbar tail-controls' },
      h('label', {}, 'Pattern', pattern), h('label', {}, 'Syntax', syntax), h('label', {}, 'Filter', filter), toggle, status),
    events);
}

// ---------------------------------------------------------------- connections

const connectionHref = (id) => `#/connections/${encodeURIComponent(id)}`;

/// Who a connection acts for: its user, a token of no user, or the anonymous caller.
const connectionUser = (c) => c.user ?? (c.token ? `token ${c.token}` : 'anonymous');

/// What the client said of itself: product and version, and the name it gave the connection.
function clientText(client) {
  const parts = [client.product, client.version].filter(Boolean);
  if (client.connection_name) parts.push(`(${client.connection_name})`);
  return parts.length ? parts.join(' ') : '–';
}

/// The open client connections of the doors (AMQP), the first PAGE_SIZE of them by id: the
/// caller's own, or every one for an administrator.
export function connections(scope) {
  const summary = h('span', { class: 'status-line' });
  const list = h('div', {}, h('p', { class: 'empty' }, 'Loading…'));
  scope.main.append(h('h1', {}, 'Connections'),
    h('div', { class: 'toolbar' }, h('span', { class: 'grow' }), summary), list);
  scope.poll('connections', async (signal) => {
    const answer = await get(`/v1/connections?limit=${PAGE_SIZE}`, { signal });
    summary.textContent = `${answer.connections.length} shown${answer.next ? `, more after the first ${PAGE_SIZE}` : ''}`;
    list.replaceChildren(table([
      { title: 'ID', value: (c) => link(connectionHref(c.id), String(c.id)) },
      { title: 'Door', value: (c) => c.door },
      { title: 'Peer', class: 'mono', value: (c) => c.peer },
      { title: 'User', value: connectionUser },
      { title: 'Client', value: (c) => clientText(c.client) },
      { title: 'Connected', value: (c) => time(c.connected_at_ms) },
      { title: 'Channels', num: true, value: (c) => count(c.channel_count) },
      { title: 'Consumers', num: true, value: (c) => count(c.consumer_count) },
    ], answer.connections, { empty: 'No connections.', testId: 'connection-table' }));
  });
}

/// One connection: its channels and their consumers, and a button to close it
/// (administrators).
export function connection(scope, id) {
  const close = h('button', { type: 'button', class: 'danger', id: 'close-connection' }, 'Close…');
  const confirmClose = h('button', { type: 'button', class: 'danger confirm', id: 'close-confirm' }, 'Close');
  const cancelClose = h('button', { type: 'button', id: 'close-cancel' }, 'Cancel');
  const confirmBar = h('div', { class: 'confirm-bar', hidden: true },
    h('span', { class: 'grow' }, `Close connection ${id}? Its client is told it was closed by an operator; its unsettled messages go back to their queues.`),
    confirmClose, cancelClose);
  const about = h('div', { 'data-testid': 'connection-definition' });
  const channels = h('div', { 'data-testid': 'channels' });
  scope.main.append(
    h('p', { class: 'subtitle' }, link('#/connections', 'Connections'), ' / '),
    h('h1', { 'data-testid': 'connection-id' }, `Connection ${id}`),
    h('div', { class: 'toolbar' }, close), confirmBar,
    about, h('h2', {}, 'Channels'), channels);
  scope.poll(`connection-${id}`, async (signal) => {
    const c = await get(path('connections', id), { signal });
    about.replaceChildren(definitions([
      ['door', c.door],
      ['peer', c.peer],
      ['user', connectionUser(c)],
      ['virtual host', c.virtual_host ?? '–'],
      ['client', clientText(c.client)],
      ['platform', c.client.platform ?? '–'],
      ['connected', time(c.connected_at_ms)],
    ]));
    const rows = c.channels.flatMap((channel) => (channel.consumers.length
      ? channel.consumers.map((consumer) => ({ channel, consumer }))
      : [{ channel, consumer: null }]));
    channels.replaceChildren(table([
      { title: 'Channel', num: true, value: (r) => r.channel.number },
      { title: 'Confirms', value: (r) => (r.channel.confirm ? 'yes' : 'no') },
      { title: 'Consumer', class: 'mono', value: (r) => r.consumer?.tag ?? '–' },
      { title: 'Queue', value: (r) => (r.consumer ? link(queueHref(r.consumer.queue), r.consumer.queue) : '–') },
      { title: 'Prefetch', num: true, value: (r) => (r.consumer ? (r.consumer.prefetch || 'unlimited') : '–') },
      { title: 'Acks', value: (r) => (r.consumer ? (r.consumer.no_ack ? 'none (no_ack)' : 'manual') : '–') },
    ], rows, { empty: 'No open channels.', testId: 'channel-table' }));
  });
  close.addEventListener('click', () => { confirmBar.hidden = false; });
  cancelClose.addEventListener('click', () => { confirmBar.hidden = true; });
  confirmClose.addEventListener('click', () => scope.act(confirmClose, async () => {
    await remove(path('connections', id));
    confirmBar.hidden = true;
    // Back to the list, which the page change clears the messages for: the message is shown
    // once the list is there (this listener runs after the router's).
    window.addEventListener('hashchange', () => showSuccess(`Closed connection ${id}.`), { once: true });
    location.hash = '#/connections';
  }));
}
