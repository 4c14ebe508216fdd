// The dashboard's only way to the server: the same `/v1` API as any client, with the
// credentials the user typed in sent as the Authorization header on every call.
//
// Browser rules the server enforces (crates/server/src/http/browser.rs) shape this file:
// a request with a body is sent as `application/json` (a form or text type is refused), a
// POST or DELETE without a body sends no content type, and `credentials: 'omit'` keeps the
// browser from attaching (or prompting for) credentials of its own; only ours travel.

const AUTH_KEY = 'wharf.authorization';

/// The stored Authorization header value, if any (session storage: gone with the tab).
export const auth = {
  header() {
    return sessionStorage.getItem(AUTH_KEY);
  },
  useToken(token) {
    sessionStorage.setItem(AUTH_KEY, `Bearer ${token}`);
  },
  useUser(user, password) {
    const bytes = new TextEncoder().encode(`${user}:${password}`);
    let binary = '';
    for (const byte of bytes) binary += String.fromCharCode(byte);
    sessionStorage.setItem(AUTH_KEY, `Basic ${btoa(binary)}`);
  },
  clear() {
    sessionStorage.removeItem(AUTH_KEY);
  },
};

/// A refused or failed call: the problem+json `title` and `detail` when the server sent one.
export class ApiError extends Error {
  constructor(status, title, detail, problem) {
    super(detail ? `${title}: ${detail}` : title);
    this.name = 'ApiError';
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.problem = problem;
  }
}

function headersFor(hasBody, accept) {
  const headers = { accept };
  const authorization = auth.header();
  if (authorization) headers.authorization = authorization;
  if (hasBody) headers['content-type'] = 'application/json';
  return headers;
}

/// One call; resolves to the parsed JSON (or text) answer, rejects with an ApiError.
export async function request(method, path, body, { signal, accept = 'application/json' } = {}) {
  const hasBody = body !== undefined;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: headersFor(hasBody, accept),
      body: hasBody ? JSON.stringify(body) : undefined,
      credentials: 'omit',
      cache: 'no-store',
      signal,
    });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, 'The server did not answer', `${method} ${path}: ${error.message}`);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) throw problemOf(response, data, method, path);
  return data;
}

function problemOf(response, data, method, path) {
  const problem = data && typeof data === 'object' ? data : {};
  const title = problem.title || response.statusText || `HTTP ${response.status}`;
  const detail = problem.detail || (typeof data === 'string' ? data.slice(0, 300) : '');
  return new ApiError(response.status, title, `${detail || ''} (${method} ${path})`.trim(), problem);
}

export const get = (path, options) => request('GET', path, undefined, options);
export const post = (path, body) => request('POST', path, body);
/// DELETE, without a body (so without a content type).
export const remove = (path) => request('DELETE', path);

/// `/v1/...` with each part of `parts` URL-encoded: names may hold `.`, `-`, `_` only today,
/// but the page never builds a path from raw text.
export function path(...parts) {
  return `/v1/${parts.map(encodeURIComponent).join('/')}`;
}

/// A topic subscription over Server-Sent Events, read with `fetch` so the Authorization
/// header goes with it (EventSource cannot send one). Calls `onMessage` with each message
/// and `onEnd` with null (the server ended it) or the ApiError; `abort` ends it.
export function subscribe(topic, query, { onOpen, onMessage, onEnd }) {
  const controller = new AbortController();
  const url = `${path('topics', topic, 'subscribe')}?${new URLSearchParams(query)}`;
  (async () => {
    try {
      const response = await fetch(url, {
        headers: headersFor(false, 'text/event-stream'),
        credentials: 'omit',
        cache: 'no-store',
        signal: controller.signal,
      });
      if (!response.ok) {
        const text = await response.text();
        let data = text;
        try { data = JSON.parse(text); } catch { /* not JSON: shown as text */ }
        throw problemOf(response, data, 'GET', url);
      }
      onOpen();
      await readEvents(response.body, onMessage);
      onEnd(null);
    } catch (error) {
      if (error.name === 'AbortError') return;
      onEnd(error instanceof ApiError ? error : new ApiError(0, 'The stream failed', error.message));
    }
  })();
  return { abort: () => controller.abort() };
}

/// Splits an event stream into events (WHATWG HTML, "Parsing an event stream"): lines of
/// `field: value`, `:` comments, an empty line ends an event.
async function readEvents(stream, onMessage) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let event = { type: 'message', data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let newline;
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1));
      if (line === '') {
        if (event.data.length && event.type === 'message') onMessage(parseData(event.data.join('\n')));
        event = { type: 'message', data: [] };
      } else if (!line.startsWith(':')) {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'data') event.data.push(text);
        else if (field === 'event') event.type = text;
      }
    }
  }
}

function parseData(text) {
  try {
    return JSON.parse(text);
  } catch {
    return { body: text };
  }
}
