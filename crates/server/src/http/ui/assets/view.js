// Building blocks of the pages: elements built with text nodes only (a message body is
// shown, never parsed as HTML), number and time formats, small SVG charts, the message area,
// and counter histories that turn counters into rates.

const SVG_NS = 'http://www.w3.org/2000/svg';

/// `h('td', {class: 'num'}, 'text', child)`: an element; attributes `on*` take listeners;
/// null, false and undefined children are skipped; strings become text nodes.
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  setAttributes(element, attributes);
  appendChildren(element, children);
  return element;
}

function setAttributes(element, attributes) {
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, '');
    else element.setAttribute(name, String(value));
  }
}

function appendChildren(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/// A table from column definitions `{title, value: row => node|text, num?}`.
export function table(columns, rows, { empty = 'Nothing here.', testId } = {}) {
  if (!rows.length) return h('p', { class: 'empty', 'data-testid': testId }, empty);
  const head = h('tr', {}, columns.map((column) => h('th', { class: column.num ? 'num' : null }, column.title)));
  const body = rows.map((row) => h('tr', { 'data-key': row.name ?? row.id ?? null },
    columns.map((column) => h('td', { class: column.num ? 'num' : column.class || null }, column.value(row)))));
  return h('div', { class: 'table-wrap' }, h('table', { 'data-testid': testId }, h('thead', {}, head), h('tbody', {}, body)));
}

/// A card with a label, a value and an optional note or chart.
export function card(label, value, { note, chart, testId } = {}) {
  return h('div', { class: 'card', 'data-testid': testId },
    h('div', { class: 'label' }, label),
    h('div', { class: 'value' }, value),
    note ? h('div', { class: 'note' }, note) : null,
    chart || null);
}

/// Key and value pairs as a definition list.
export function definitions(pairs) {
  return h('dl', { class: 'options' }, pairs.map(([key, value]) => [h('dt', {}, key), h('dd', {}, value)]));
}

export function link(href, text) {
  return h('a', { href }, text);
}

export function badge(text, kind = 'neutral') {
  return h('span', { class: `badge ${kind}` }, text);
}

// ---- formats ----

export function count(value) {
  if (value === null || value === undefined) return '–';
  return Number(value).toLocaleString('en-US');
}

export function rate(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  if (value === 0) return '0/s';
  if (value < 10) return `${value.toFixed(1)}/s`;
  return `${Math.round(value).toLocaleString('en-US')}/s`;
}

export function bytes(value) {
  if (value === null || value === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let amount = value;
  let unit = 0;
  while (amount >= 1024 && unit < units.length - 1) {
    amount /= 1024;
    unit += 1;
  }
  return `${amount.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

export function duration(ms) {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)} min`;
  if (ms < 86_400_000) return `${(ms / 3_600_000).toFixed(1)} h`;
  return `${(ms / 86_400_000).toFixed(1)} d`;
}

/// Epoch ms as local `YYYY-MM-DD HH:MM:SS`.
export function time(ms) {
  if (ms === null || ms === undefined) return '–';
  const date = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/// A message body in one line: JSON as JSON, base64 decoded when it is text.
export function bodyText(message, max = 200) {
  let text;
  if ('body' in message) {
    text = typeof message.body === 'string' ? message.body : JSON.stringify(message.body);
  } else if (message.body_base64 !== undefined) {
    text = decodeBase64(message.body_base64);
  } else {
    text = '';
  }
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function decodeBase64(encoded) {
  try {
    const binary = atob(encoded);
    const data = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const text = new TextDecoder('utf-8', { fatal: true }).decode(data);
    // eslint-disable-next-line no-control-regex
    if (!/[\u0000-\u0008\u000e-\u001f]/.test(text)) return text;
    return `(${data.length} bytes, binary)`;
  } catch {
    return `(base64) ${encoded}`;
  }
}

// ---- charts ----

/// A sparkline of `values` (one or two series) as inline SVG, scaled to its maximum.
export function sparkline(series, { width = 240, height = 36, title } = {}) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('role', 'img');
  if (title) {
    const label = document.createElementNS(SVG_NS, 'title');
    label.textContent = title;
    svg.append(label);
  }
  const lists = Array.isArray(series[0]) ? series : [series];
  const all = lists.flat().filter((v) => Number.isFinite(v));
  const max = Math.max(1e-9, ...all);
  lists.forEach((values, index) => {
    if (values.length < 2) return;
    const step = width / (values.length - 1);
    const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - ((Number.isFinite(v) ? v : 0) / max) * (height - 4)).toFixed(1)}`);
    if (index === 0) {
      const area = document.createElementNS(SVG_NS, 'polygon');
      area.setAttribute('class', 'area');
      area.setAttribute('points', `0,${height} ${points.join(' ')} ${width},${height}`);
      svg.append(area);
    }
    const line = document.createElementNS(SVG_NS, 'polyline');
    line.setAttribute('class', index === 0 ? 'line' : 'line second');
    line.setAttribute('points', points.join(' '));
    svg.append(line);
  });
  return svg;
}

/// Samples of counters over time, per key (a queue's name), for rates and depth charts.
/// A counter that went down (the server restarted) gives a rate of 0, not a negative one.
export class History {
  constructor(length = 60) {
    this.length = length;
    this.samples = new Map();
  }

  /// Records `values` (an object of numbers) for `key` at time `at` (ms).
  add(key, at, values) {
    const list = this.samples.get(key) || [];
    list.push({ at, values });
    if (list.length > this.length) list.shift();
    this.samples.set(key, list);
  }

  /// Per-second rates of `field` between consecutive samples.
  rates(key, field) {
    const list = this.samples.get(key) || [];
    const rates = [];
    for (let i = 1; i < list.length; i += 1) {
      const seconds = (list[i].at - list[i - 1].at) / 1000;
      const delta = list[i].values[field] - list[i - 1].values[field];
      rates.push(seconds > 0 && delta > 0 ? delta / seconds : 0);
    }
    return rates;
  }

  /// The latest rate of `field`, or null before two samples.
  rate(key, field) {
    const rates = this.rates(key, field);
    return rates.length ? rates[rates.length - 1] : null;
  }

  /// The recorded values of `field`.
  values(key, field) {
    return (this.samples.get(key) || []).map((sample) => sample.values[field]);
  }

  forget(key) {
    this.samples.delete(key);
  }
}

// ---- the message area ----

/// Long enough to read a sentence and an id.
const SUCCESS_SHOWN_MS = 10_000;
const shown = new Map();

/// Shows an error (an ApiError or any Error) until dismissed or until `clear(key)`; one
/// message per key, so a poll failing every 2 s shows one line, not a pile.
export function showError(error, key = error.message) {
  show('error', error.message || String(error), key);
}

/// Shows a success for a while: it confirms an action, nothing needs doing about it.
export function showSuccess(text, key = text) {
  show('success', text, key);
  const element = shown.get(key);
  setTimeout(() => {
    if (shown.get(key) === element) clear(key);
  }, SUCCESS_SHOWN_MS);
}

function show(kind, text, key) {
  const area = document.getElementById('messages');
  const old = shown.get(key);
  const element = h('div', { class: `message ${kind}`, 'data-testid': `message-${kind}` },
    h('span', { class: 'text' }, text),
    h('button', { type: 'button', title: 'Dismiss', 'aria-label': 'Dismiss', onclick: () => clear(key) }, '×'));
  if (old) old.replaceWith(element);
  else area.append(element);
  shown.set(key, element);
}

export function clear(key) {
  const element = shown.get(key);
  if (element) element.remove();
  shown.delete(key);
}

export function clearAll() {
  for (const key of [...shown.keys()]) clear(key);
}
