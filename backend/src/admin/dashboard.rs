//! The dashboard page served at `/` on the gateway: what is on air (the renderer's
//! latest frame and outputs, through the `/api/stream` proxy), health, auctions and
//! event consumers at a glance, refreshed every two seconds from `/api/admin/status`,
//! the auction status and the public event history.

pub const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>SothebAIs control room</title>
<style>
  :root { --bg:#0f1115; --panel:#181b22; --text:#e8e6e3; --muted:#8a8f98; --ok:#2ecc71; --bad:#e74c3c; --gold:#d4af37; }
  * { box-sizing: border-box; }
  body { margin:0; font:15px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--text); }
  header { display:flex; align-items:baseline; gap:1rem; padding:1rem 1.5rem; border-bottom:1px solid #262a33; }
  header h1 { margin:0; font-size:1.3rem; color:var(--gold); letter-spacing:.05em; }
  header .meta { color:var(--muted); }
  main { display:grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap:1rem; padding:1.5rem; }
  section { background:var(--panel); border-radius:10px; padding:1rem 1.2rem; }
  section h2 { margin:0 0 .8rem; font-size:.85rem; text-transform:uppercase; letter-spacing:.1em; color:var(--muted); }
  .tiles { display:flex; flex-wrap:wrap; gap:.6rem; }
  .tile { padding:.6rem .9rem; border-radius:8px; font-weight:600; background:#222631; border-left:6px solid var(--muted); }
  .tile.ok { border-color:var(--ok); } .tile.bad { border-color:var(--bad); }
  .tile small { display:block; font-weight:400; color:var(--muted); }
  ol { margin:0; padding-left:1.2rem; } li { margin:.2rem 0; }
  code { color:var(--gold); }
  #error { color:var(--bad); }
  #air { grid-column: 1 / -1; }
  #air .frame { display:flex; gap:1rem; flex-wrap:wrap; align-items:flex-start; }
  #preview { width:480px; max-width:100%; aspect-ratio:16/9; border-radius:6px; background:#000; }
</style>
</head>
<body>
<header><h1>SothebAIs</h1><span class="meta" id="meta">connecting…</span><span id="error"></span></header>
<main>
  <section id="air"><h2>On air</h2><div class="frame"><img id="preview" alt="the stream's latest frame">
    <div><div class="tiles" id="outputs"><span class="meta">renderer not running</span></div><p class="meta" id="stream"></p></div></div></section>
  <section><h2>Roles</h2><div class="tiles" id="roles"></div></section>
  <section><h2>Dependencies</h2><div class="tiles" id="checks"></div></section>
  <section><h2>Auctions</h2><div class="tiles" id="auctions"><span class="meta">none open or scheduled</span></div></section>
  <section><h2>Event consumers</h2><div class="tiles" id="consumers"><span class="meta">none registered</span></div></section>
  <section><h2>Latest show events</h2><ol id="events"></ol></section>
</main>
<script>
const el = (id) => document.getElementById(id);
function tile(name, ok, detail) {
  const div = document.createElement('div');
  div.className = 'tile ' + (ok ? 'ok' : 'bad');
  div.textContent = name;
  const small = document.createElement('small');
  small.textContent = detail;
  div.appendChild(small);
  return div;
}
async function refreshStream() {
  try {
    const response = await fetch('/api/stream/status');
    if (!response.ok) throw new Error(response.status);
    const stream = (await response.json()).data;
    el('preview').src = `/api/stream/frame?format=jpeg&width=480&t=${Date.now()}`;
    el('stream').textContent = `${stream.state} · scene ${stream.scene} · ${stream.resolution} · ${stream.fps} fps · ` +
      `${stream.frames_dropped} dropped · ${stream.encoder}${stream.following ? '' : ' · not following the backend'}`;
    el('outputs').replaceChildren(...stream.outputs.map((output) =>
      tile(output.url, output.state === 'live', `${output.state} · ${output.bitrate_kbps} kbps · ${output.reconnects} reconnects`)));
  } catch (error) {
    el('preview').removeAttribute('src');
    el('stream').textContent = '';
    el('outputs').replaceChildren(Object.assign(document.createElement('span'), { className: 'meta', textContent: 'renderer not running' }));
  }
}
async function refresh() {
  refreshStream();
  try {
    const status = (await (await fetch('/api/admin/status')).json()).data;
    el('meta').textContent = `${status.mode} mode · ${status.storage} · ${status.bus} bus · up ${status.uptime_secs}s · v${status.version}`;
    const failing = Object.entries(status.checks).filter(([, value]) => value !== 'ok').map(([name]) => name);
    const roles = status.roles.map((role) =>
      tile(role, failing.length === 0, failing.length ? `degraded: ${failing.join(', ')} failing` : 'running'));
    const x = (await (await fetch('/api/social/status')).json()).data;
    if (x && x.configured) {
      roles.push(tile(`X @${x.handle || '?'}`, x.connected && !x.last_error,
        `${x.last_error || 'reading'} · ${x.replies_sent} replies · ${x.replies_pending} pending · $${x.spend_usd.show.toFixed(3)}${x.dry_run ? ' · dry run' : ''}`));
    }
    el('roles').replaceChildren(...roles);
    el('checks').replaceChildren(...Object.entries(status.checks).map(([name, value]) => tile(name, value === 'ok', value)));
    const consumers = (status.consumers || []).map((consumer) =>
      tile(consumer.name, consumer.dead_letters === 0 && consumer.pending < 1000,
           `${consumer.pending} pending · ${consumer.dead_letters} dead letters · ${consumer.patterns.join(', ')}`));
    if (consumers.length) el('consumers').replaceChildren(...consumers);
    const board = (await (await fetch('/api/auction/status')).json()).data;
    const now = new Date(board.now).getTime();
    const auctions = board.auctions.map((auction) => {
      const ends = auction.ends_at ? Math.max(0, Math.round((new Date(auction.ends_at).getTime() - now) / 1000)) : null;
      const high = auction.high_bid ? `${auction.high_bid.amount} ETH by @${auction.high_bid.bidder.handle || auction.high_bid.bidder.id}` : `opens at ${auction.starting_price} ETH`;
      const clock = auction.state === 'scheduled' ? 'scheduled' : auction.state === 'closing' ? 'closing' : `${ends}s left${auction.extended ? ' · extended' : ''}`;
      return tile(auction.title, auction.state !== 'closing', `${high} · ${clock} · ${auction.bid_count} bids`);
    });
    if (auctions.length) el('auctions').replaceChildren(...auctions);
    const history = (await (await fetch('/api/events/auction:*/history?limit=12')).json()).data;
    el('events').replaceChildren(...history.events.map((event) => {
      const li = document.createElement('li');
      li.innerHTML = `<code></code> <span></span>`;
      li.children[0].textContent = event.type;
      li.children[1].textContent = new Date(event.timestamp).toLocaleTimeString();
      return li;
    }));
    el('error').textContent = '';
  } catch (error) {
    el('error').textContent = 'backend unreachable: ' + error;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
"##;
