// The operators' console (docs/console.md). Plain JavaScript, no framework; every value from
// the hub is written with textContent, never as HTML.
'use strict';

const I18N = {
  zh: {
    'title': '政务集成枢纽 · 运维控制台',
    'nav.overview': '总览', 'nav.adapters': '适配器', 'nav.dlq': '死信', 'nav.trace': '消息轨迹',
    'logout': '退出', 'lang.other': 'English',
    'login.heading': '登录', 'login.name': '用户名', 'login.password': '密码', 'login.submit': '登录',
    'overview.heading': '流量总览', 'overview.totals': '合计', 'overview.edges': '各环节速率',
    'overview.scope': '本副本自启动以来的计数（集群总览请看 Grafana）',
    'totals.ingress_ok': '接收', 'totals.ingress_rejected': '拒绝', 'totals.produced': '写入主题',
    'totals.delivered': '已投递', 'totals.dead_lettered': '死信',
    'window.since_start': '启动以来', 'window.hour': '近 1 小时', 'window.day': '近 1 天',
    'window.partial': '（副本运行不足该时长，即启动以来）',
    'edges.from': '从', 'edges.to': '到', 'edges.rate': '每分钟', 'edges.errors': '错误率',
    'edges.total': '累计', 'edges.hour': '近 1 小时', 'edges.day': '近 1 天',
    'apps.heading': '业务应用（消费者组）', 'apps.group': '应用（消费者组）', 'apps.topic': '主题',
    'apps.lag': '积压', 'apps.committed': '已提交位点', 'apps.high': '高水位', 'apps.partitions': '分区',
    'apps.note': '业务应用向 Kafka 提交消费位点后才会出现在这里（每 15 秒采样一次整个集群）；速率为已提交位点每分钟的增长，积压为主题高水位减已提交位点。',
    'apps.none': '暂无业务应用：尚无非枢纽的消费者组向 Kafka 提交位点',
    'apps.sampled': '消费者组采样于 {at}', 'apps.error': '消费者组采样失败：{error}',
    'apps.skipped': '，另有 {n} 个组未显示（上限 50）', 'apps.never': '消费者组尚未采样',
    'apps.lag_short': '积压',
    'adapters.heading': '适配器', 'adapters.partner': '合作方', 'adapters.health': '健康',
    'adapters.breaker': '熔断器', 'adapters.ingress': '接收/拒绝', 'adapters.lag': '拉取延迟',
    'adapters.open': '详情',
    'health.up': '正常', 'health.down': '故障', 'health.unknown': '暂无投递',
    'breaker.open': '打开', 'breaker.closed': '关闭', 'breaker.unknown': '未知',
    'adapter.routes': '投递路由', 'adapter.route': '路由', 'adapter.retries': '重试',
    'adapter.cursors': '拉取游标', 'adapter.pull': '拉取任务', 'adapter.cursor': '游标',
    'adapter.codes': '拒绝（按代码）', 'adapter.code': '代码', 'adapter.count': '次数',
    'adapter.rejections': '最近的拒绝', 'adapter.request': '请求编号', 'adapter.dead': '最近的死信',
    'col.at': '时间',
    'dlq.heading': '死信', 'dlq.reason': '原因', 'dlq.partner_code': '合作方代码', 'dlq.object': '对象',
    'dlq.status': '状态', 'dlq.any': '全部', 'dlq.about': '消息/工单号', 'dlq.since': '起始（如 2h、7d）',
    'dlq.search': '查询', 'dlq.actions': '操作', 'dlq.show': '查看', 'dlq.replay': '重放',
    'dlq.discard': '丢弃', 'dlq.detail': '死信详情（个人信息已脱敏）', 'dlq.none': '没有符合条件的死信',
    'status.pending': '待处理', 'status.replayed': '已重放', 'status.discarded': '已丢弃',
    'confirm.title': '请确认', 'confirm.note': '原因', 'confirm.cancel': '取消', 'confirm.ok': '确认',
    'confirm.replay': '重放死信 {id}（路由 {route}）？消息将以原消息编号重新投递。',
    'confirm.discard': '丢弃死信 {id}（路由 {route}）？请填写原因。',
    'done.replay': '已重放 {id}', 'done.discard': '已丢弃 {id}',
    'trace.heading': '消息轨迹', 'trace.id': '消息编号、关联编号或工单号', 'trace.search': '查找',
    'trace.message': '消息', 'trace.correlation': '关联编号', 'trace.object': '对象编号',
    'trace.stage': '环节', 'trace.actor': '执行者', 'trace.detail': '详情', 'trace.consumed': '已被消费者组读取',
    'refreshed': '已刷新', 'role': '角色',
  },
  en: {
    'title': 'Integration hub · operators\' console',
    'nav.overview': 'Overview', 'nav.adapters': 'Adapters', 'nav.dlq': 'Dead letters', 'nav.trace': 'Message trace',
    'logout': 'Sign out', 'lang.other': '中文',
    'login.heading': 'Sign in', 'login.name': 'Name', 'login.password': 'Password', 'login.submit': 'Sign in',
    'overview.heading': 'Traffic overview', 'overview.totals': 'Totals', 'overview.edges': 'Rates per hop',
    'overview.scope': 'This replica\'s counts since it started (for the cluster, use Grafana)',
    'totals.ingress_ok': 'Accepted', 'totals.ingress_rejected': 'Rejected', 'totals.produced': 'Produced',
    'totals.delivered': 'Delivered', 'totals.dead_lettered': 'Dead-lettered',
    'window.since_start': 'Since start', 'window.hour': 'Last hour', 'window.day': 'Last day',
    'window.partial': ' (replica younger than that: since start)',
    'edges.from': 'From', 'edges.to': 'To', 'edges.rate': 'Per minute', 'edges.errors': 'Error rate',
    'edges.total': 'Total', 'edges.hour': 'Last hour', 'edges.day': 'Last day',
    'apps.heading': 'Domain apps (consumer groups)', 'apps.group': 'App (consumer group)', 'apps.topic': 'Topic',
    'apps.lag': 'Lag', 'apps.committed': 'Committed offset', 'apps.high': 'High watermark', 'apps.partitions': 'Partitions',
    'apps.note': 'Domain apps appear here once they commit their offsets to Kafka (the whole cluster is sampled every 15 s); the rate is the growth of the committed offsets per minute, the lag the topic\'s high watermark minus the committed offset.',
    'apps.none': 'No domain apps yet: no consumer group other than the hub\'s has committed offsets to Kafka',
    'apps.sampled': 'Consumer groups sampled at {at}', 'apps.error': 'Consumer groups not sampled: {error}',
    'apps.skipped': '; {n} more groups not shown (limit 50)', 'apps.never': 'Consumer groups not sampled yet',
    'apps.lag_short': 'lag',
    'adapters.heading': 'Adapters', 'adapters.partner': 'Partner', 'adapters.health': 'Health',
    'adapters.breaker': 'Circuit breaker', 'adapters.ingress': 'Accepted/rejected', 'adapters.lag': 'Pull lag',
    'adapters.open': 'Details',
    'health.up': 'Up', 'health.down': 'Down', 'health.unknown': 'No deliveries yet',
    'breaker.open': 'Open', 'breaker.closed': 'Closed', 'breaker.unknown': 'Unknown',
    'adapter.routes': 'Delivery routes', 'adapter.route': 'Route', 'adapter.retries': 'Retries',
    'adapter.cursors': 'Pull cursors', 'adapter.pull': 'Pull job', 'adapter.cursor': 'Cursor',
    'adapter.codes': 'Rejections by code', 'adapter.code': 'Code', 'adapter.count': 'Count',
    'adapter.rejections': 'Recent rejections', 'adapter.request': 'Request id', 'adapter.dead': 'Recent dead letters',
    'col.at': 'Time',
    'dlq.heading': 'Dead letters', 'dlq.reason': 'Reason', 'dlq.partner_code': 'Partner code', 'dlq.object': 'Object',
    'dlq.status': 'Status', 'dlq.any': 'Any', 'dlq.about': 'Message or ticket', 'dlq.since': 'Since (e.g. 2h, 7d)',
    'dlq.search': 'Search', 'dlq.actions': 'Actions', 'dlq.show': 'Show', 'dlq.replay': 'Replay',
    'dlq.discard': 'Discard', 'dlq.detail': 'Dead letter (personal data masked)', 'dlq.none': 'No dead letters match',
    'status.pending': 'Pending', 'status.replayed': 'Replayed', 'status.discarded': 'Discarded',
    'confirm.title': 'Please confirm', 'confirm.note': 'Reason', 'confirm.cancel': 'Cancel', 'confirm.ok': 'Confirm',
    'confirm.replay': 'Replay dead letter {id} (route {route})? It is delivered again with its original message id.',
    'confirm.discard': 'Discard dead letter {id} (route {route})? Give a reason.',
    'done.replay': 'Replayed {id}', 'done.discard': 'Discarded {id}',
    'trace.heading': 'Message trace', 'trace.id': 'Message id, correlation id or ticket number', 'trace.search': 'Find',
    'trace.message': 'Message', 'trace.correlation': 'Correlation', 'trace.object': 'Object',
    'trace.stage': 'Stage', 'trace.actor': 'Actor', 'trace.detail': 'Detail', 'trace.consumed': 'read by consumer group',
    'refreshed': 'Refreshed', 'role': 'role',
  },
};

let lang = localStorage.getItem('hub-console-lang') === 'en' ? 'en' : 'zh';
let session = null;
let view = 'overview';
let timer = null;
let chart = null;
let lastOverview = null;

const $ = (id) => document.getElementById(id);
function t(key, vars) {
  let s = (I18N[lang] && I18N[lang][key]) || I18N.zh[key] || key;
  for (const [k, v] of Object.entries(vars || {})) s = s.replace('{' + k + '}', v);
  return s;
}
function msg(body) { return body ? (lang === 'en' ? body.message_en : body.message_zh) || body.code : ''; }
function fmtTime(ms) {
  if (ms === null || ms === undefined) return '';
  return new Date(ms).toLocaleString(lang === 'en' ? 'en-GB' : 'zh-CN', { timeZone: 'Asia/Shanghai', hour12: false });
}
function num(v) { return v === null || v === undefined ? '—' : (Math.round(v * 100) / 100).toString(); }
function pct(v) { return v === null || v === undefined ? '—' : (Math.round(v * 1000) / 10) + '%'; }

function applyLang() {
  document.documentElement.lang = lang === 'en' ? 'en' : 'zh-CN';
  document.title = t('title');
  document.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
  $('lang-toggle').textContent = t('lang.other');
  showWho();
  if (lastOverview) renderOverview(lastOverview);
}

async function api(path, options) {
  const opts = Object.assign({ credentials: 'same-origin', headers: {} }, options || {});
  if (opts.method && opts.method !== 'GET' && session) opts.headers['X-CSRF-Token'] = session.csrf_token;
  if (opts.body && typeof opts.body !== 'string') {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(opts.body);
  }
  const r = await fetch('/console/api' + path, opts);
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if ((r.status === 401) && path !== '/login' && path !== '/session') signedOut(msg(body));
  return { ok: r.ok, status: r.status, body };
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function row(cells) {
  const tr = document.createElement('tr');
  for (const c of cells) {
    const td = document.createElement('td');
    if (c instanceof Node) td.appendChild(c); else td.textContent = c === null || c === undefined ? '' : String(c);
    tr.appendChild(td);
  }
  return tr;
}
function fill(tbody, rows) { tbody.replaceChildren(...rows); }
function setStatus(text) { $('status').textContent = text || ''; }

function showWho() {
  $('whoami').textContent = session ? session.operator + ' (' + t('role') + ': ' + session.role + ')' : '';
}

function show(name) {
  view = name;
  for (const v of ['login', 'overview', 'adapters', 'dlq', 'trace']) $('view-' + v).hidden = v !== name;
  document.querySelectorAll('#nav button').forEach((b) => {
    if (b.dataset.view === name) b.setAttribute('aria-current', 'page'); else b.removeAttribute('aria-current');
  });
  refresh();
}

function signedIn(s) {
  session = s;
  $('nav').hidden = false;
  $('logout').hidden = false;
  showWho();
  show('overview');
  if (timer) clearInterval(timer);
  timer = setInterval(refresh, 3000);
}

function signedOut(text) {
  session = null;
  if (timer) clearInterval(timer);
  timer = null;
  $('nav').hidden = true;
  $('logout').hidden = true;
  showWho();
  for (const v of ['overview', 'adapters', 'dlq', 'trace']) $('view-' + v).hidden = true;
  $('view-login').hidden = false;
  $('login-error').textContent = text || '';
}

async function refresh() {
  if (!session) return;
  if (view === 'overview') await loadOverview();
  else if (view === 'adapters') await loadAdapters();
}

// ---- overview ----
async function loadOverview() {
  const r = await api('/overview');
  if (!r.ok) { setStatus(msg(r.body)); return; }
  lastOverview = r.body;
  renderOverview(r.body);
  setStatus(t('refreshed') + ' ' + fmtTime(Date.now()));
}

function renderOverview(o) {
  const keys = ['ingress_ok', 'ingress_rejected', 'produced', 'delivered', 'dead_lettered'];
  const rows = [['since_start', false], ['hour', o.hour_since_start], ['day', o.day_since_start]].map(([w, partial]) => {
    const tr = row([t('window.' + w) + (partial ? t('window.partial') : '')].concat(keys.map((k) => num(o.totals[w][k]))));
    tr.id = 'totals-' + w;
    keys.forEach((k, i) => { tr.children[i + 1].dataset.key = k; tr.children[i + 1].className = 'num'; });
    return tr;
  });
  fill(document.querySelector('#overview-totals tbody'), rows);
  const names = {};
  for (const n of o.graph.nodes) names[n.id] = n.name;
  fill(document.querySelector('#edges-table tbody'), o.graph.edges.map((e) => {
    if (e.kind === 'consumption') {
      const c = e.consumption;
      const tr = row([names[e.source], names[e.target], num(c.per_minute), t('apps.lag_short') + ' ' + num(c.lag), '—', '—', '—']);
      tr.dataset.kind = 'consumption';
      return tr;
    }
    const f = e.flow;
    const tr = row([names[e.source], names[e.target], num(f.per_minute), pct(f.error_ratio),
      num(f.ok.since_start + f.errors.since_start), num(f.ok.hour + f.errors.hour), num(f.ok.day + f.errors.day)]);
    if (f.error_ratio > 0) tr.children[3].className = 'bad';
    return tr;
  }));
  renderApps(o);
  drawChart(o);
}

function renderApps(o) {
  const st = o.apps_status || {};
  let text = st.sampled_at_ms ? t('apps.sampled', { at: fmtTime(st.sampled_at_ms) }) : t('apps.never');
  if (st.groups_skipped) text += t('apps.skipped', { n: st.groups_skipped });
  if (st.error) text += ' · ' + t('apps.error', { error: st.error });
  $('apps-status').textContent = text;
  const rows = [];
  for (const a of o.apps || []) {
    for (const x of a.topics) {
      const tr = row([a.group, x.topic, num(x.per_minute), num(x.lag), num(x.committed), num(x.high_watermark), num(x.partitions)]);
      tr.dataset.group = a.group;
      for (let i = 2; i < 7; i++) tr.children[i].className = 'num';
      rows.push(tr);
    }
  }
  if (!rows.length) rows.push(row([t('apps.none')]));
  fill(document.querySelector('#apps-table tbody'), rows);
}

function drawChart(o) {
  if (!window.echarts) return;
  if (!chart) chart = window.echarts.init($('flow-chart'));
  // Delivery routes and domain apps share the column right of the topics (routes first).
  const columns = { partner: 0, hub: 1, topic: 2, route: 3, app: 3 };
  const counts = [0, 0, 0, 0];
  const perColumn = [0, 0, 0, 0];
  for (const n of o.graph.nodes) perColumn[columns[n.kind]]++;
  const colors = { partner: '#1f6feb', hub: '#8250df', topic: '#bf8700', route: '#1a7f37', app: '#bc4c00' };
  const nodes = o.graph.nodes.map((n) => {
    const c = columns[n.kind];
    const i = counts[c]++;
    return {
      id: n.id, name: n.id, value: n.name,
      x: 100 + c * 300, y: 50 + (i + 1) * (400 / (perColumn[c] + 1)),
      symbolSize: n.kind === 'hub' ? 50 : 28,
      symbol: n.kind === 'app' ? 'roundRect' : 'circle',
      itemStyle: { color: colors[n.kind] },
      label: { show: true, formatter: n.kind === 'hub' ? (lang === 'en' ? 'hub' : '枢纽') : n.name, position: n.kind === 'route' || n.kind === 'app' ? 'right' : 'top' },
    };
  });
  const links = o.graph.edges.map((e) => {
    if (e.kind === 'consumption') {
      const c = e.consumption;
      return {
        source: e.source, target: e.target,
        lineStyle: { width: 1 + Math.min(8, Math.log2(1 + (c.per_minute || 0))), color: '#d4a373', type: 'dashed' },
        label: {
          show: true,
          formatter: num(c.per_minute) + (lang === 'en' ? '/min' : '/分') + ' · ' + t('apps.lag_short') + ' ' + num(c.lag),
        },
      };
    }
    const f = e.flow;
    const bad = f.error_ratio > 0;
    return {
      source: e.source, target: e.target,
      lineStyle: { width: 1 + Math.min(8, Math.log2(1 + (f.per_minute || 0))), color: bad ? '#cf222e' : '#8c959f' },
      label: {
        show: true,
        formatter: num(f.per_minute) + (lang === 'en' ? '/min' : '/分') + ' · ' + (lang === 'en' ? 'err ' : '错 ') + pct(f.error_ratio),
      },
    };
  });
  chart.setOption({
    animation: false,
    tooltip: { show: false },
    series: [{ type: 'graph', layout: 'none', roam: true, data: nodes, links,
      edgeSymbol: ['none', 'arrow'], edgeLabel: { fontSize: 11 } }],
  }, true);
}

// ---- adapters ----
async function loadAdapters() {
  const r = await api('/adapters');
  if (!r.ok) { setStatus(msg(r.body)); return; }
  fill(document.querySelector('#adapters-table tbody'), r.body.adapters.map((a) => {
    const b = el('button', t('adapters.open'));
    b.type = 'button';
    b.dataset.partner = a.partner;
    b.addEventListener('click', () => loadAdapter(a.partner));
    const ing = a.ingress ? num(a.ingress.ok.since_start) + ' / ' + num(a.ingress.errors.since_start) : '—';
    const tr = row([a.partner, t('health.' + a.health), t('breaker.' + a.breaker), ing,
      a.max_pull_lag_seconds === null ? '—' : num(a.max_pull_lag_seconds) + ' s', b]);
    tr.children[1].className = a.health === 'down' ? 'bad' : (a.health === 'up' ? 'good' : '');
    return tr;
  }));
  setStatus(t('refreshed') + ' ' + fmtTime(Date.now()));
}

async function loadAdapter(partner) {
  const r = await api('/adapters/' + encodeURIComponent(partner));
  if (!r.ok) { setStatus(msg(r.body)); return; }
  const a = r.body;
  $('adapter-detail').hidden = false;
  $('adapter-title').textContent = a.partner + ' — ' + t('health.' + a.health) + ', ' + t('adapters.breaker') + ': ' + t('breaker.' + a.breaker);
  fill(document.querySelector('#adapter-routes tbody'), a.routes.map((x) => row([x.route,
    num(x.deliveries.ok.since_start), num(x.deliveries.errors.since_start), num(x.retries.since_start), t('breaker.' + x.breaker)])));
  fill(document.querySelector('#adapter-cursors tbody'), a.cursors.map((c) => row([c.pull,
    c.lag_seconds === null ? '—' : num(c.lag_seconds) + ' s', c.cursor || '—'])));
  fill(document.querySelector('#adapter-codes tbody'), a.rejected_by_code.map((c) => row([c.code, num(c.count)])));
  fill(document.querySelector('#adapter-rejections tbody'), a.recent_rejections.map((x) => row([fmtTime(x.at_ms), x.route, x.code, x.request_id])));
  fill(document.querySelector('#adapter-dead tbody'), a.recent_dead_letters.map((d) => row([fmtTime(d.dead_lettered_at_ms), d.route,
    d.reason_code, d.partner_code || '', d.object_id, t('status.' + d.status)])));
}

// ---- dead letters ----
async function loadDeadLetters() {
  const q = new URLSearchParams();
  for (const k of ['route', 'reason', 'status', 'about', 'since']) {
    const v = $('dlq-' + k).value.trim();
    if (v) q.set(k, v);
  }
  const r = await api('/dead-letters?' + q.toString());
  if (!r.ok) { setStatus(msg(r.body)); return; }
  const rows = r.body.dead_letters.map((d) => {
    const actions = el('span');
    const showBtn = el('button', t('dlq.show'));
    showBtn.type = 'button';
    showBtn.addEventListener('click', () => showDeadLetter(d.id));
    actions.appendChild(showBtn);
    if (session && session.can_replay && d.status === 'pending') {
      const rb = el('button', t('dlq.replay'), 'replay');
      rb.type = 'button';
      rb.dataset.id = d.id;
      rb.addEventListener('click', () => act('replay', d));
      const db = el('button', t('dlq.discard'), 'discard');
      db.type = 'button';
      db.addEventListener('click', () => act('discard', d));
      actions.append(' ', rb, ' ', db);
    }
    const tr = row([fmtTime(d.dead_lettered_at_ms), d.route, d.reason_code, d.partner_code || '', d.object_id,
      t('status.' + d.status) + (d.status_by ? ' (' + d.status_by + ')' : ''), actions]);
    tr.dataset.id = d.id;
    tr.dataset.status = d.status;
    return tr;
  });
  if (!rows.length) rows.push(row([t('dlq.none')]));
  fill(document.querySelector('#dlq-table tbody'), rows);
}

async function showDeadLetter(id) {
  const r = await api('/dead-letters/' + encodeURIComponent(id));
  $('dlq-detail').hidden = false;
  $('dlq-detail-body').textContent = r.ok ? JSON.stringify(r.body, null, 2) : msg(r.body);
}

function confirmDialog(text, withNote) {
  return new Promise((resolve) => {
    const d = $('confirm-dialog');
    $('confirm-text').textContent = text;
    $('confirm-note-row').hidden = !withNote;
    $('confirm-note').value = '';
    $('confirm-note').required = withNote;
    d.returnValue = '';
    d.addEventListener('close', () => resolve(d.returnValue === 'ok' ? { note: $('confirm-note').value } : null), { once: true });
    d.showModal();
  });
}

async function act(kind, d) {
  const answer = await confirmDialog(t('confirm.' + kind, { id: d.id, route: d.route }), kind === 'discard');
  if (!answer) return;
  const r = await api('/dead-letters/' + encodeURIComponent(d.id) + '/' + kind,
    { method: 'POST', body: kind === 'discard' ? { note: answer.note } : {} });
  setStatus(r.ok ? t('done.' + kind, { id: d.id }) : msg(r.body));
  await loadDeadLetters();
}

// ---- trace ----
async function findTrace(id) {
  $('trace-error').textContent = '';
  const out = $('trace-result');
  out.replaceChildren();
  const r = await api('/trace/' + encodeURIComponent(id));
  if (!r.ok) { $('trace-error').textContent = msg(r.body); return; }
  for (const m of r.body.messages) {
    const box = el('article', null, 'trace-message');
    box.appendChild(el('h3', t('trace.message') + ' ' + m.message_id));
    box.appendChild(el('p', t('trace.correlation') + ': ' + (m.correlation_id || '—') + ' · ' + t('trace.object') + ': ' + (m.object_id || '—')));
    const table = el('table');
    const head = row([t('col.at'), t('trace.stage'), t('trace.actor'), t('trace.detail')]);
    head.querySelectorAll('td').forEach((td) => { const th = el('th', td.textContent); th.scope = 'col'; td.replaceWith(th); });
    const tbody = el('tbody');
    for (const e of m.events) {
      const detail = Object.entries(e.detail || {}).filter(([, v]) => v !== null).map(([k, v]) => k + '=' + (typeof v === 'object' ? JSON.stringify(v) : v)).join(' ');
      const tr = row([fmtTime(e.at_ms), e.stage, e.actor, detail]);
      tr.dataset.stage = e.stage;
      tbody.appendChild(tr);
    }
    for (const c of m.consumed || []) tbody.appendChild(row(['', 'consumed', c.group, t('trace.consumed') + ' ' + c.topic + '[' + c.partition + ']@' + c.offset]));
    table.append(el('thead'), tbody);
    table.tHead.appendChild(head);
    box.appendChild(table);
    out.appendChild(box);
  }
}

// ---- wiring ----
document.addEventListener('DOMContentLoaded', async () => {
  applyLang();
  $('lang-toggle').addEventListener('click', () => {
    lang = lang === 'en' ? 'zh' : 'en';
    localStorage.setItem('hub-console-lang', lang);
    applyLang();
  });
  document.querySelectorAll('#nav button').forEach((b) => b.addEventListener('click', () => {
    show(b.dataset.view);
    if (b.dataset.view === 'dlq') loadDeadLetters();
  }));
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('login-error').textContent = '';
    const r = await api('/login', { method: 'POST', body: { name: $('login-name').value, password: $('login-password').value } });
    $('login-password').value = '';
    if (r.ok) signedIn(r.body); else $('login-error').textContent = msg(r.body);
  });
  $('logout').addEventListener('click', async () => {
    await api('/logout', { method: 'POST', body: {} });
    signedOut('');
  });
  $('dlq-filter').addEventListener('submit', (ev) => { ev.preventDefault(); loadDeadLetters(); });
  $('trace-form').addEventListener('submit', (ev) => { ev.preventDefault(); findTrace($('trace-id').value.trim()); });
  window.addEventListener('resize', () => { if (chart) chart.resize(); });
  const r = await api('/session');
  if (r.ok) signedIn(r.body); else signedOut('');
});
