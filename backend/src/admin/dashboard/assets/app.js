// The console's own script: writes through the API with the session's CSRF token,
// the live picture and the event stream over WebSockets, countdowns and local times.
// htmx refreshes sections in place when the live feed says something changed.
'use strict';

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || '';
const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

function toast(message, bad = false) {
  const box = $('#toast');
  if (!box) return;
  const div = document.createElement('div');
  div.textContent = message;
  if (bad) div.className = 'bad';
  box.appendChild(div);
  setTimeout(() => div.remove(), bad ? 8000 : 3500);
}

// Calls the API; resolves to the envelope's data, rejects with its error message.
async function api(method, path, body, isForm = false) {
  const headers = { 'x-csrf-token': csrf() };
  let payload;
  if (isForm) payload = body;
  else if (body !== undefined) { headers['content-type'] = 'application/json'; payload = JSON.stringify(body); }
  const response = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  let envelope = null;
  try { envelope = await response.json(); } catch (_) { /* not JSON */ }
  if (response.status === 401) { location.href = '/login?next=' + encodeURIComponent(location.pathname + location.search); }
  if (!response.ok || !envelope || envelope.success === false) {
    const error = envelope && envelope.error;
    throw new Error(error ? error.message : `HTTP ${response.status}`);
  }
  return envelope.data;
}

// Links an X handle to the browser's wallet (an injected EIP-1193 provider,
// window.ethereum): the backend's EIP-4361 message, signed with personal_sign.
async function linkWallet(handle, say) {
  const wallet = window.ethereum;
  if (!wallet || typeof wallet.request !== 'function') {
    throw new Error('No browser wallet found: open this page in a browser with a wallet (MetaMask, Rabby, Coinbase Wallet), or link through the API (docs/chain.md).');
  }
  say('Asking your wallet for its account…');
  const [address] = await wallet.request({ method: 'eth_requestAccounts' });
  if (!address) throw new Error('The wallet gave no account.');
  const query = new URLSearchParams({ handle, address });
  const challenge = await api('GET', `/api/chain/link/nonce?${query}`);
  say(`Sign the message in your wallet (it names ${handle.startsWith('@') ? handle : '@' + handle} and this site).`);
  const hex = '0x' + Array.from(new TextEncoder().encode(challenge.message), (byte) => byte.toString(16).padStart(2, '0')).join('');
  const signature = await wallet.request({ method: 'personal_sign', params: [hex, address] });
  const link = await api('POST', '/api/chain/link', { handle, address, message: challenge.message, signature });
  say(`Linked: ${link.handle} bids with ${link.address}.`);
  document.body.dataset.linked = link.address;
}

// Re-reads every live section (htmx), for example after a write or a state change.
let refreshTimer = null;
function refresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    if (!window.htmx) return;
    $$('[data-refresh]').forEach((element) => window.htmx.trigger(element, 'refresh'));
  }, 150);
}

// Sets `value` at a dotted path (`lot.chain_id`) of `target`.
function put(target, path, value) {
  const keys = path.split('.');
  let node = target;
  keys.slice(0, -1).forEach((key) => { node = node[key] = node[key] || {}; });
  node[keys[keys.length - 1]] = value;
}

// A form's fields as the API's JSON: empty fields left out, `data-type` read.
function formBody(form) {
  const body = {};
  let antiSnipe = null;
  for (const field of form.elements) {
    if (!field.name || field.type === 'submit' || field.type === 'file') continue;
    const type = field.dataset.type || 'text';
    if (type === 'bool') { put(body, field.name, field.checked); continue; }
    if (type === 'anti-snipe') { antiSnipe = field.value; continue; }
    const raw = field.value.trim();
    if (raw === '') continue;
    let value = raw;
    if (type === 'number') value = Number(raw);
    if (type === 'json') value = JSON.parse(raw);
    if (type === 'datetime') value = new Date(raw).toISOString();
    put(body, field.name, value);
  }
  if (antiSnipe === 'default') delete body.anti_snipe;
  if (antiSnipe === 'none') body.anti_snipe = null;
  return body;
}

function showResult(form, data) {
  const slot = $('[data-result]', form);
  const key = form.dataset.show;
  if (slot && key && data && data[key] !== undefined) slot.textContent = `${key}: ${data[key]}`;
}

document.addEventListener('submit', async (event) => {
  const form = event.target;
  const error = $('[data-error]', form);
  if (form.matches('[data-wallet-link]')) {
    event.preventDefault();
    const status = $('[data-status]', form);
    const say = (text, bad = false) => { status.textContent = text; status.className = bad ? 'error' : 'muted'; };
    try {
      await linkWallet(formBody(form).handle || '', say);
    } catch (failure) { say(failure.message, true); }
    return;
  }
  if (form.matches('[data-login]')) {
    event.preventDefault();
    try {
      const body = formBody(form);
      const response = await fetch('/api/admin/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const envelope = await response.json();
      if (!response.ok) throw new Error(envelope.error ? envelope.error.message : `HTTP ${response.status}`);
      const next = new URLSearchParams(location.search).get('next');
      // Only a page of this console: anything that resolves elsewhere goes home.
      let target = '/';
      try {
        const url = new URL(next || '/', location.origin);
        if (url.origin === location.origin) target = url.pathname + url.search + url.hash;
      } catch (_) { /* not a URL */ }
      location.href = target;
    } catch (failure) { if (error) error.textContent = failure.message; }
    return;
  }
  if (!form.dataset.api && !form.dataset.upload) return;
  event.preventDefault();
  const button = $('button[type=submit]', form);
  if (button) button.disabled = true;
  if (error) error.textContent = '';
  try {
    let data;
    if (form.dataset.upload) {
      data = await api('POST', form.dataset.upload, new FormData(form), true);
    } else if (form.matches('[data-file-json]')) {
      const file = $('input[type=file]', form).files[0];
      data = await api(form.dataset.method || 'POST', form.dataset.api, JSON.parse(await file.text()));
    } else {
      data = await api(form.dataset.method || 'POST', form.dataset.api, formBody(form));
    }
    showResult(form, data);
    toast('Done.');
    if (form.matches('[data-reset]')) form.reset();
    refresh();
  } catch (failure) {
    if (error) error.textContent = failure.message; else toast(failure.message, true);
  } finally {
    if (button) button.disabled = false;
  }
});

document.addEventListener('click', async (event) => {
  const button = event.target.closest('button');
  if (!button) return;
  if (button.matches('[data-logout]')) {
    try { await api('POST', '/api/admin/logout'); } catch (_) { /* signed out already */ }
    location.href = '/login';
    return;
  }
  if (!button.dataset.api) return;
  if (button.dataset.confirm && !confirm(button.dataset.confirm)) return;
  let body = button.dataset.body ? JSON.parse(button.dataset.body) : undefined;
  if (button.dataset.prompt) {
    const answer = prompt(button.dataset.prompt);
    if (answer === null) return;
    body = Object.assign(body || {}, { [button.dataset.promptField || 'value']: answer });
  }
  button.disabled = true;
  try {
    const data = await api(button.dataset.method || 'POST', button.dataset.api, body);
    toast(button.dataset.show && data && data[button.dataset.show] ? `${button.dataset.show}: ${data[button.dataset.show]}` : 'Done.');
    refresh();
  } catch (failure) {
    toast(failure.message, true);
  } finally {
    button.disabled = false;
  }
});

// The start time of a new auction in UTC and on the show's clock, beside the input.
document.addEventListener('input', (event) => {
  const field = event.target;
  if (field.dataset.type !== 'datetime') return;
  const hint = field.parentElement.querySelector('.time-hint');
  if (!hint) return;
  if (!field.value) { hint.textContent = ''; return; }
  const at = new Date(field.value);
  const zone = document.body.dataset.timezone;
  hint.textContent = `${at.toISOString().replace('.000', '')} · on the show's clock (${zone}): ${at.toLocaleString('en-US', { timeZone: zone })}`;
});

// Countdowns: every element with data-ends-at.
function tick() {
  const now = Date.now();
  $$('[data-ends-at]').forEach((element) => {
    const ends = Date.parse(element.dataset.endsAt);
    if (Number.isNaN(ends)) return;
    const left = Math.max(0, Math.round((ends - now) / 1000));
    element.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`;
  });
}
setInterval(tick, 250);

function socketUrl(path) {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`;
}

// Keeps a WebSocket open, reconnecting after a pause when it drops.
function follow(path, onMessage) {
  let socket;
  const open = () => {
    socket = new WebSocket(socketUrl(path));
    socket.onmessage = (message) => { try { onMessage(JSON.parse(message.data)); } catch (_) { /* not JSON */ } };
    socket.onclose = () => setTimeout(open, 2000);
  };
  open();
}

// The renderer's picture, state and outputs (one renderer connection for all dashboards).
if ($('#preview')) {
  follow('/api/admin/live', (message) => {
    if (message.type === 'stream:frame') {
      $('#preview').src = `data:image/jpeg;base64,${message.data.image}`;
      $('#preview').dataset.frame = message.data.frame;
    } else if (message.type === 'stream:state') {
      const state = message.data;
      const line = $('#stream-state');
      if (line) line.textContent = `${state.state} · scene ${state.scene} · ${state.resolution} · ${Number(state.fps).toFixed(1)} fps · ${state.frames_dropped} dropped · ${state.encoder}`;
      const outputs = $('#stream-outputs');
      if (outputs) {
        outputs.replaceChildren(...state.outputs.map((output) => {
          const tile = document.createElement('div');
          tile.className = `tile ${output.state}`;
          tile.textContent = output.url;
          const small = document.createElement('small');
          small.textContent = `${output.state} · ${output.bitrate_kbps} kbps · ${output.reconnects} reconnects`;
          tile.appendChild(small);
          return tile;
        }));
      }
    } else if (message.type === 'stream:down') {
      const line = $('#stream-state');
      if (line) line.textContent = 'renderer not running';
    } else if (message.type === 'stream:layer' || message.type === 'stream:scene:update') {
      if ($('#layers') || $('#scenes')) refresh();
    }
  });
}

// Bids, lots and the host as they happen.
function bidRow(bid) {
  const li = document.createElement('li');
  li.className = `fresh ${bid.status}`;
  const who = bid.bidder.handle || bid.bidder.id;
  li.textContent = bid.status === 'accepted' ? `${who} bid ${bid.amount} ETH` : `${who}: ${bid.amount || '?'} ETH refused (${bid.reason})`;
  return li;
}

if ($('[data-live-page]') || $('[data-lot-page]') || $('#auction-list')) {
  follow('/api/events/stream?types=auction:*,agent:message,agent:mood', (event) => {
    const type = event.type;
    const data = event.data || {};
    if (type === 'auction:bid:accepted' || type === 'auction:bid:rejected') {
      const bid = data.bid || data;
      const feed = $('#bid-feed');
      if (feed) { feed.prepend(bidRow(bid)); while (feed.children.length > 50) feed.lastChild.remove(); }
      if (type === 'auction:bid:accepted') {
        const auction = data.auction;
        $$(`[data-high-bid="${bid.auction_id}"]`).forEach((element) => {
          element.textContent = `${bid.amount} ETH by ${bid.bidder.handle || bid.bidder.id}`;
        });
        if (auction) {
          $$(`[data-bid-count="${bid.auction_id}"]`).forEach((element) => { element.textContent = auction.bid_count; });
          $$(`[data-auction="${bid.auction_id}"] [data-ends-at]`).forEach((element) => { if (auction.ends_at) element.dataset.endsAt = auction.ends_at; });
        }
        if (bid.extended_to) {
          $$(`[data-auction="${bid.auction_id}"] [data-ends-at]`).forEach((element) => { element.dataset.endsAt = bid.extended_to; });
        }
      }
      if ($('[data-lot-page]')) refresh();
    } else if (type === 'agent:message') {
      const line = $('#host-line');
      if (line && data.channel !== 'x') line.textContent = data.text;
    } else if (type === 'agent:mood') {
      const mood = $('#host-mood');
      if (mood) mood.textContent = data.mood;
    } else if (type.startsWith('auction:')) {
      // A lot opened, closed, was extended or cancelled: re-read the sections.
      refresh();
    }
  });
}
tick();
