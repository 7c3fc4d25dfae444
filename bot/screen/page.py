"""The screen's one HTML page: big type for the back of a room, a little JS, no outside files.

The page loads nothing from elsewhere (no fonts, no CDN, not even Telegram's script): a Mini
App finds its initData in the URL fragment (``#tgWebAppData=…``) that Telegram opens it with.
Texts come from the catalog (``screen.page.*`` keys, both languages embedded, the viewer's
chosen once known). Live data arrives by server-sent events (one connection per viewer, one
event a second at most), or by fetching once a second where EventSource is missing.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from surveys.i18n import catalog, t

LOCALES = ("zh_CN", "en")
PAGE_PREFIX = "screen.page."


def _texts() -> dict[str, dict[str, str]]:
    return {
        locale: {
            key[len(PAGE_PREFIX) :]: value
            for key, value in catalog(locale).items()
            if key.startswith(PAGE_PREFIX)
        }
        for locale in LOCALES
    }


def render_page(locale: str, *, refused: str | None = None) -> str:
    """The page in a locale; with ``refused``, only that message (an expired link…)."""
    texts = json.dumps(_texts(), ensure_ascii=False).replace("</", "<\\/")
    title = html.escape(t("screen.page.title", locale))
    if refused is not None:
        body = f'<main class="refused"><p id="refused">{html.escape(refused)}</p></main>'
        script = ""
    else:
        body = BODY
        script = (
            f"<script>const TEXTS={texts};let L={json.dumps(locale)};</script>"
            f"<script>{SCRIPT}</script>"
        )
    lang = "zh-CN" if locale == "zh_CN" else "en"
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{STYLE}</style></head>"
        f"<body>{body}{script}</body></html>"
    )


def font_path() -> Path | None:
    """Noto Sans SC from the font package the charts use too, for screens without CJK fonts."""
    try:
        import pylopdf_fonts_zh_cn
    except ImportError:
        return None
    path = Path(pylopdf_fonts_zh_cn.sans_path())
    return path if path.is_file() else None


# The bundled font comes last and only for CJK characters: a device with a Chinese font of
# its own (nearly all in China) never downloads it.
STYLE = """
@font-face { font-family:"ScreenCJK"; src:url("font.otf") format("opentype");
  unicode-range:U+2E80-2FFF, U+3000-303F, U+3400-9FFF, U+F900-FAFF, U+FF00-FFEF; }
:root { --bg:#0f1b2d; --panel:#17263d; --text:#f4f6fa; --dim:#a9b6c9; --good:#3ecf8e;
  --mid:#f2c14e; --bad:#ef5b5b; --red:#c8102e; }
* { box-sizing:border-box; }
body { margin:0; background:var(--bg); color:var(--text);
  font-family:"Noto Sans CJK SC","PingFang SC","Microsoft YaHei","ScreenCJK",sans-serif;
  font-size:clamp(16px, 2.2vw, 34px); line-height:1.3; }
header { background:var(--red); padding:.5em 1em; display:flex; align-items:baseline;
  justify-content:space-between; gap:1em; flex-wrap:wrap; }
h1 { margin:0; font-size:clamp(28px, 4.4vw, 80px); }
#round { color:#ffe3e3; font-size:.9em; }
main { padding:1em; display:grid; gap:1em; grid-template-columns:1fr; }
@media (min-width: 900px) {
  main { grid-template-columns:2fr 1fr; } #announce { grid-column:1 / 3; } }
section { background:var(--panel); border-radius:.6em; padding:.8em 1em; }
h2 { margin:0 0 .4em; font-size:1.1em; color:var(--dim); font-weight:normal; }
.audience { margin:.3em 0 .8em; }
.count { font-size:clamp(40px, 7vw, 140px); font-weight:bold; }
.count small { font-size:.45em; color:var(--dim); font-weight:normal; }
.bar { height:.8em; background:#2b3d58; border-radius:.4em; overflow:hidden; position:relative; }
.bar > span { display:block; height:100%; background:var(--mid); }
.bar.met > span { background:var(--good); }
.sub { color:var(--dim); font-size:.8em; }
#qr img { width:100%; max-width:420px; background:#fff; border-radius:.3em; display:block; }
.rates { display:flex; gap:1.2em; flex-wrap:wrap; }
.rate { flex:1 1 8em; text-align:center; }
.rate b { display:block; font-size:clamp(36px, 6vw, 120px); color:var(--good); }
.item { margin:.5em 0; }
.item .label { font-size:.8em; }
.stack { display:flex; height:1.4em; border-radius:.3em; overflow:hidden; background:#2b3d58; }
.stack span { display:flex; align-items:center; justify-content:center; font-size:.75em;
  color:#0f1b2d; font-weight:bold; min-width:0; overflow:hidden; }
.sign { display:flex; gap:2em; flex-wrap:wrap; margin-top:.6em; }
.sign .done { color:var(--good); } .sign .todo { color:var(--mid); }
footer { padding:0 1em 1em; color:var(--dim); font-size:.7em; }
.refused { display:block; padding:3em 1em; text-align:center; font-size:1.4em; }
.hidden { display:none; }
"""

BODY = """
<header><h1 id="branch">…</h1><span id="round"></span></header>
<main id="screen">
  <section id="participation"><h2 data-t="participation"></h2><div id="coverage"></div></section>
  <section id="qr" class="hidden"><h2 data-t="qr_caption"></h2><img id="qr-img" alt="QR"></section>
  <section id="announce"><h2 data-t="announcement"></h2><div id="tally"></div>
    <h2 data-t="signoffs" style="margin-top:.8em"></h2>
    <div id="signed" class="sign"></div></section>
</main>
<main id="message" class="refused hidden"><p id="refused"></p><div id="choices"></div></main>
<footer id="status"></footer>
"""

SCRIPT = r"""
const $ = (id) => document.getElementById(id);
const base = location.pathname.replace(/\/?$/, '/');
const query = new URLSearchParams(location.search);
function tr(key, params) {
  const text = (TEXTS[L] && TEXTS[L][key]) || TEXTS.zh_CN[key] || key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (params && name in params) ? params[name] : '');
}
function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}
function statics() {
  document.title = tr('title');
  document.querySelectorAll('[data-t]').forEach((n) => { n.textContent = tr(n.dataset.t); });
}
function refuse(message) {
  $('screen').classList.add('hidden');
  $('message').classList.remove('hidden');
  $('refused').textContent = message;
  $('status').textContent = '';
}
function telegramReady() {
  const payload = JSON.stringify({eventType: 'web_app_ready', eventData: {}});
  try {
    if (window.TelegramWebviewProxy) window.TelegramWebviewProxy.postEvent('web_app_ready', '{}');
    else if (window.parent !== window) window.parent.postMessage(payload, '*');
  } catch (e) { /* not inside Telegram */ }
}
function renderCoverage(rows) {
  const box = $('coverage');
  box.replaceChildren();
  for (const row of rows) {
    const part = el('div', 'audience');
    part.dataset.audience = row.audience;
    const count = el('div', 'count');
    count.append(el('span', '', row.label + ' '));
    const answered = el('span', 'answered', String(row.answered));
    count.append(answered, el('small', '', ' / ' + row.target));
    const bar = el('div', 'bar' + (row.met ? ' met' : ''));
    const fill = el('span');
    fill.style.width = Math.min(100, row.target ? 100 * row.answered / row.target : 0) + '%';
    bar.append(fill);
    const counts = {target: row.target, roster: row.roster};
    const sub = el('div', 'sub', tr(row.met ? 'target_met' : 'target', counts));
    part.append(count, bar, sub);
    box.append(part);
  }
}
const COLORS = ['#3ecf8e', '#9be38c', '#f2c14e', '#ef5b5b', '#b58cf2'];
function renderTally(note) {
  const box = $('tally');
  box.replaceChildren();
  if (!note.published) {
    box.append(el('p', 'small-group', tr('not_published', {})));
    return;
  }
  if (note.small_group) {
    const counts = {ballots: note.ballots, threshold: note.threshold};
    box.append(el('p', 'small-group', tr('small_group', counts)));
    return;
  }
  box.append(el('p', 'sub', tr('ballots', {ballots: note.ballots})));
  const rates = el('div', 'rates');
  for (const key of ['satisfaction', 'awareness', 'participation']) {
    const rate = el('div', 'rate');
    rate.append(el('b', '', note.rates[key] || '—'), el('span', '', tr('rate_' + key)));
    rates.append(rate);
  }
  box.append(rates);
  if (note.score) box.append(el('p', 'sub', tr('score', {score: note.score})));
  for (const item of note.items || []) {
    const row = el('div', 'item');
    const total = item.options.reduce((sum, o) => sum + o.count, 0);
    const legend = item.options.map((o) => o.label + ' ' + o.count).join(' · ');
    const colon = /[？?：:]$/.test(item.label) ? ' ' : '：';
    row.append(el('div', 'label', item.id + ' ' + item.label + colon + legend));
    const stack = el('div', 'stack');
    item.options.forEach((o, i) => {
      if (!o.count) return;
      const seg = el('span', 'option-count', String(o.count));
      seg.style.width = (100 * o.count / total) + '%';
      seg.style.background = COLORS[i % COLORS.length];
      seg.title = o.label;
      stack.append(seg);
    });
    row.append(stack);
    box.append(row);
  }
}
function renderSigned(signed) {
  const box = $('signed');
  box.replaceChildren();
  for (const role of ['secretary', 'work_group_leader']) {
    const who = signed[role];
    const text = tr('role_' + role) + '：' + (who ? tr('signed', who) : tr('unsigned'));
    box.append(el('span', who ? 'done' : 'todo', text));
  }
}
function render(data) {
  $('branch').textContent = data.branch;
  $('round').textContent = data.round;
  renderCoverage(data.coverage);
  renderTally(data.announcement);
  renderSigned(data.signed);
  $('status').textContent = tr('live') + ' · ' + new Date().toLocaleTimeString();
}
function connect(token) {
  const params = 't=' + encodeURIComponent(token) + '&lang=' + encodeURIComponent(L);
  const qr = $('qr-img');
  qr.onload = () => $('qr').classList.remove('hidden');
  qr.src = base + 'api/qr.svg?' + params;
  if (window.EventSource) {
    const feed = new EventSource(base + 'api/stream?' + params);
    feed.onmessage = (event) => render(JSON.parse(event.data));
    feed.addEventListener('expired', () => { feed.close(); refuse(tr('expired')); });
    feed.onerror = () => {
      $('status').textContent = tr('offline');
      // A refused feed (an expired link, a role removed) says so once; then stop retrying.
      fetch(base + 'api/data?' + params).then((r) => {
        if (r.status === 403) { feed.close(); refuse(tr('expired')); }
      }).catch(() => {});
    };
    return;
  }
  const poll = async () => {  // at most one request a second
    try {
      const r = await fetch(base + 'api/data?' + params);
      if (r.status === 403) { refuse(tr('expired')); return; }
      render(await r.json());
    } catch (e) { $('status').textContent = tr('offline'); }
    setTimeout(poll, 1000);
  };
  poll();
}
function choose(branches) {
  refuse(tr('choose'));
  for (const branch of branches) {
    const link = el('a', '', branch.name);
    link.href = base + '?b=' + branch.id + location.hash;
    link.style.cssText = 'display:block;color:#f4f6fa;margin:.4em';
    link.onclick = () => setTimeout(() => location.reload(), 0);
    $('choices').append(link);
  }
}
async function start() {
  statics();
  $('status').textContent = tr('loading');
  let token = query.get('t');
  if (!token) {
    telegramReady();
    const fragment = new URLSearchParams(location.hash.slice(1));
    const initData = fragment.get('tgWebAppData') || '';
    if (!initData) { refuse(tr('open_in_telegram')); return; }
    const response = await fetch(base + 'api/grant', {
      method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({init_data: initData, branch: query.get('b')}),
    });
    const answer = await response.json().catch(() => ({}));
    if (answer.locale) { L = answer.locale; statics(); }
    if (response.status !== 200) { refuse(answer.message || tr('refused')); return; }
    if (answer.branches) { choose(answer.branches); return; }
    token = answer.token;
  }
  connect(token);
}
start();
"""
