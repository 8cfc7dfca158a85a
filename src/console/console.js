// The fund staff's console: one page, no build step, no dependency. It calls
// the same HTTP/JSON API a hospital calls, with the token the user signs in
// with, so every screen is bound by the same roles, region scopes and audit
// trail as any other client. The token lives in this tab's sessionStorage
// only; signing out forgets it.
'use strict';

// ---------------------------------------------------------------- words --

const WORDS = {
  zh: {
    title: '医疗救助 · 工作台', skip: '跳到正文', signOut: '退出', other: 'English',
    signInTitle: '登录', token: '访问令牌', signIn: '登录',
    signInHelp: '输入管理员发给您的令牌。令牌只保存在本标签页中，退出或关闭标签页即忘记。',
    signedInAs: '{0}（{1}）', open: '开放模式（仅本机）',
    role_hospital: '定点医院', role_insurer: '保险平台', role_roster_admin: '民政经办',
    role_auditor: '审计', role_caseworker: '医保经办（依申请）', role_officer: '医保经办（对账）',
    role_supervisor: '基金监管', role_operator: '运维', role_metrics: '监控', role_open: '开放',
    s_person: '救助对象', s_import: '名单导入', s_reconcile: '对账', s_referrals: '摆渡/转介',
    s_applications: '依申请救助', s_statistics: '统计', s_policy: '政策', s_audit: '审计日志',
    patientId: '身份证号', search: '查询', year: '年度', region: '区划代码', hospital: '医院编码',
    date: '日期', fromDate: '开始日期', toDate: '结束日期', name: '姓名',
    enrollments: '救助身份', noEnrollments: '无救助身份记录', disability: '精神残疾等级',
    paralysis: '瘫痪认定', yes: '是', no: '否', validFrom: '起', validTo: '止', stillValid: '至今',
    exit: '退出方式', EXIT_KIND_GRADUAL_EXIT: '渐退', EXIT_KIND_LEFT_POVERTY: '脱贫',
    cap: '年度限额', used: '已用', reserved: '已预留（待审批）', left: '剩余',
    settlements: '结算记录', noSettlements: '本年度无结算记录', settlementId: '结算号',
    claimId: '单据号', admission: '入院', discharge: '出院', totalCost: '总费用',
    inScope: '政策范围内', assistance: '医疗救助', patientPays: '个人自付', state: '状态',
    explanation: '计算说明', channel: '渠道', CHANNEL_WINDOW: '窗口结算', CHANNEL_APPLICATION: '依申请',
    SETTLEMENT_STATUS_SETTLED: '已结算', SETTLEMENT_STATUS_REVERSED: '已冲销',
    APPLICATION_STATE_PENDING: '待审批', APPLICATION_STATE_APPROVED: '已批准',
    APPLICATION_STATE_REJECTED: '已驳回', APPLICATION_STATE_WITHDRAWN: '已撤回',
    APPLICATION_STATE_UNSPECIFIED: '全部',
    notForRole: '您的角色不能查看此项。', more: '下一页', loading: '正在加载…',
    importTitle: '名单导入', csvFile: 'CSV 文件', encoding: '编码', enc_auto: '自动识别',
    enc_utf8: 'UTF-8', enc_gbk: 'GBK', startImport: '开始导入',
    importHelp: '每行一条救助身份，表头：{0}。同一人的多行须相邻。',
    importRead: '读到 {0} 行、{1} 人（编码 {2}）。', importDone: '导入完成：{0} 人成功，{1} 行被拒。',
    importProgress: '已处理 {0} / {1} 人', rejected: '被拒的行', line: '行', column: '列',
    problem: '问题', downloadRejected: '下载被拒的行（可修改后重新导入）', badHeader: '表头应为：{0}',
    reconcileTitle: '对账', hospitalFigures: '医院方数据', settledCount: '结算笔数',
    assistanceTotal: '救助金额合计', reversedCount: '冲销笔数', reversedTotal: '冲销金额合计',
    figuresFile: '或上传医院对账文件（CSV：settled_count,assistance_total,reversed_count,reversed_total）',
    reconcile: '对账', matched: '一致：基金与医院四项数据相同。', differ: '不一致：{0}。',
    fundFigures: '基金方数据', daySettlements: '当日结算明细', export: '导出 CSV',
    rangeTotals: '区间逐日汇总', rangeTooLong: '区间最多 31 天。',
    referralsTitle: '转介临时救助', reason: '原因', REFERRAL_REASON_CAP_REACHED: '已达年度限额',
    REFERRAL_REASON_HIGH_OUT_OF_POCKET: '自付费用过高', noReferrals: '该区间无转介',
    queue: '申请队列', noApplications: '该条件下无申请', documents: '材料', submittedBy: '提交人',
    paymentRef: '支付凭证号', approve: '批准', reject: '驳回', rejectReason: '驳回原因',
    approved: '已批准，支付凭证 {0}。', rejectedDone: '已驳回。', breakdown: '计算明细',
    candidates: '追溯候选（新纳入救助后应补的结算）', findCandidates: '查找', owed: '应补',
    assistanceNow: '现应救助', noCandidates: '未找到应补的结算', openApplication: '发起依申请救助',
    opened: '已发起申请，结算号 {0}。', showing: '查看',
    statisticsTitle: '年度统计', persons: '人数', settlementsCount: '结算笔数', referrals: '转介',
    byMonth: '按月', byClass: '按救助类别', byRegion: '按区划', byHospital: '按医院',
    byCostBand: '按费用段', byDisease: '按疾病分类（ICD-10 章）', asOf: '统计时间 {0}',
    total: '合计', key: '项目',
    policyTitle: '现行政策', policyId: '政策编号', assistanceRatio: '救助比例', capFraction: '限额比例',
    annualCap: '年度限额', referralThreshold: '转介线', classes: '分类待遇', assistedClass: '救助类别', deductible: '起付线',
    bands: '分段比例', upTo: '至', ratio: '比例', tilt: '倾斜救助', outpatientCap: '门诊慢特病限额',
    diseases: '病种', simulateTitle: '政策测算', policyToml: '拟议政策（TOML）', simulate: '测算',
    paid: '实付', wouldPay: '按拟议政策应付', changes: '变化的结算', withoutPolicy: '无政策可用的结算',
    auditTitle: '审计日志', principal: '调用者', from: '自', to: '至', time: '时间', call: '操作',
    subject: '对象', code: '结果', peer: '来源', noRecords: '无记录',
    err_UNAUTHENTICATED: '令牌无效或已过期：请重新登录。',
    err_PERMISSION_DENIED: '您的角色或区划不能执行此操作。',
    err_INVALID_ARGUMENT: '请更正以下内容后再试。',
    err_NOT_FOUND: '没有找到。', err_ALREADY_EXISTS: '已存在（可能已经提交过）。',
    err_FAILED_PRECONDITION: '当前状态不允许此操作。',
    err_RESOURCE_EXHAUSTED: '服务繁忙：请稍后再试。', err_UNAVAILABLE: '服务暂不可用：请稍后再试，已输入的内容不会丢失。',
    err_DEADLINE_EXCEEDED: '请求超时：请稍后再试。', err_network: '网络错误：请检查连接后重试，已输入的内容不会丢失。',
    err_other: '出错了：',
    err_fourEyes: '提交人不能审批自己提交的申请：请由另一位经办人审批。',
    required: '必填',
  },
  en: {
    title: 'Medical assistance · Console', skip: 'Skip to content', signOut: 'Sign out', other: '中文',
    signInTitle: 'Sign in', token: 'Access token', signIn: 'Sign in',
    signInHelp: 'Enter the token your administrator gave you. It is kept in this tab only and forgotten on sign-out or when the tab closes.',
    signedInAs: '{0} ({1})', open: 'open mode (this machine only)',
    role_hospital: 'hospital', role_insurer: 'insurer', role_roster_admin: 'roster clerk',
    role_auditor: 'auditor', role_caseworker: 'caseworker', role_officer: 'officer',
    role_supervisor: 'supervisor', role_operator: 'operator', role_metrics: 'metrics', role_open: 'open',
    s_person: 'Person', s_import: 'Roster import', s_reconcile: 'Reconciliation', s_referrals: 'Referrals',
    s_applications: 'Applications', s_statistics: 'Statistics', s_policy: 'Policy', s_audit: 'Audit',
    patientId: 'Resident ID', search: 'Search', year: 'Year', region: 'Region code', hospital: 'Hospital',
    date: 'Date', fromDate: 'From', toDate: 'To', name: 'Name',
    enrollments: 'Enrollments', noEnrollments: 'No enrollment on record', disability: 'Psychiatric disability grade',
    paralysis: 'Paralysis certified', yes: 'yes', no: 'no', validFrom: 'from', validTo: 'to', stillValid: 'now',
    exit: 'Exit', EXIT_KIND_GRADUAL_EXIT: 'gradual exit', EXIT_KIND_LEFT_POVERTY: 'left poverty',
    cap: 'Annual cap', used: 'Used', reserved: 'Reserved (pending)', left: 'Left',
    settlements: 'Settlements', noSettlements: 'No settlement this year', settlementId: 'Settlement',
    claimId: 'Claim', admission: 'Admitted', discharge: 'Discharged', totalCost: 'Total cost',
    inScope: 'In scope', assistance: 'Assistance', patientPays: 'Patient pays', state: 'State',
    explanation: 'Explanation', channel: 'Channel', CHANNEL_WINDOW: 'window', CHANNEL_APPLICATION: 'application',
    SETTLEMENT_STATUS_SETTLED: 'settled', SETTLEMENT_STATUS_REVERSED: 'reversed',
    APPLICATION_STATE_PENDING: 'pending', APPLICATION_STATE_APPROVED: 'approved',
    APPLICATION_STATE_REJECTED: 'rejected', APPLICATION_STATE_WITHDRAWN: 'withdrawn',
    APPLICATION_STATE_UNSPECIFIED: 'all',
    notForRole: 'Your role may not see this.', more: 'Next page', loading: 'Loading…',
    importTitle: 'Roster import', csvFile: 'CSV file', encoding: 'Encoding', enc_auto: 'detect',
    enc_utf8: 'UTF-8', enc_gbk: 'GBK', startImport: 'Import',
    importHelp: 'One enrollment a row, header: {0}. A person\'s rows must be adjacent.',
    importRead: 'Read {0} rows, {1} persons (encoding {2}).', importDone: 'Import finished: {0} persons taken, {1} rows rejected.',
    importProgress: '{0} of {1} persons done', rejected: 'Rejected rows', line: 'Line', column: 'Column',
    problem: 'Problem', downloadRejected: 'Download the rejected rows (fix and import again)', badHeader: 'The header must be: {0}',
    reconcileTitle: 'Reconciliation', hospitalFigures: 'Hospital\'s figures', settledCount: 'Settled',
    assistanceTotal: 'Assistance total', reversedCount: 'Reversed', reversedTotal: 'Reversed total',
    figuresFile: 'or upload the hospital\'s file (CSV: settled_count,assistance_total,reversed_count,reversed_total)',
    reconcile: 'Reconcile', matched: 'Matched: the fund\'s four figures equal the hospital\'s.', differ: 'Not matched: {0}.',
    fundFigures: 'Fund\'s figures', daySettlements: 'The day\'s settlements', export: 'Export CSV',
    rangeTotals: 'Day by day', rangeTooLong: 'At most 31 days.',
    referralsTitle: 'Referrals to temporary assistance', reason: 'Why', REFERRAL_REASON_CAP_REACHED: 'cap reached',
    REFERRAL_REASON_HIGH_OUT_OF_POCKET: 'high out of pocket', noReferrals: 'No referral in these days',
    queue: 'Queue', noApplications: 'No application matches', documents: 'Documents', submittedBy: 'Submitted by',
    paymentRef: 'Payment reference', approve: 'Approve', reject: 'Reject', rejectReason: 'Reason for rejection',
    approved: 'Approved, payment {0}.', rejectedDone: 'Rejected.', breakdown: 'Breakdown',
    candidates: 'Retroactive candidates (stays a late enrollment owes)', findCandidates: 'Find', owed: 'Owed',
    assistanceNow: 'Assistance now', noCandidates: 'No stay is owed more', openApplication: 'Open an application',
    opened: 'Application opened, settlement {0}.', showing: 'Open',
    statisticsTitle: 'The year\'s figures', persons: 'Persons', settlementsCount: 'Settlements', referrals: 'Referrals',
    byMonth: 'By month', byClass: 'By class', byRegion: 'By region', byHospital: 'By hospital',
    byCostBand: 'By cost band', byDisease: 'By disease group (ICD-10 chapter)', asOf: 'Counted at {0}',
    total: 'Total', key: 'Group',
    policyTitle: 'Policy in force', policyId: 'Policy', assistanceRatio: 'Assistance ratio', capFraction: 'Cap fraction',
    annualCap: 'Annual cap', referralThreshold: 'Referral threshold', classes: 'Classes', assistedClass: 'Class', deductible: 'Deductible',
    bands: 'Bands', upTo: 'up to', ratio: 'ratio', tilt: 'Tilted assistance', outpatientCap: 'Outpatient chronic cap',
    diseases: 'Diseases', simulateTitle: 'Simulation', policyToml: 'Proposed policy (TOML)', simulate: 'Simulate',
    paid: 'Paid', wouldPay: 'Would pay', changes: 'Settlements that change', withoutPolicy: 'Settlements with no policy',
    auditTitle: 'Audit trail', principal: 'Principal', from: 'From', to: 'To', time: 'Time', call: 'Call',
    subject: 'Subject', code: 'Result', peer: 'Peer', noRecords: 'No record',
    err_UNAUTHENTICATED: 'The token was not accepted: sign in again.',
    err_PERMISSION_DENIED: 'Your role or regions may not do this.',
    err_INVALID_ARGUMENT: 'Correct what is listed and try again.',
    err_NOT_FOUND: 'Not found.', err_ALREADY_EXISTS: 'Already there (perhaps sent before).',
    err_FAILED_PRECONDITION: 'Not possible in its present state.',
    err_RESOURCE_EXHAUSTED: 'The service is busy: try again shortly.', err_UNAVAILABLE: 'The service is unavailable: try again shortly; nothing you typed is lost.',
    err_DEADLINE_EXCEEDED: 'The request timed out: try again shortly.', err_network: 'Network error: check the connection and try again; nothing you typed is lost.',
    err_other: 'Something went wrong: ',
    err_fourEyes: 'Whoever submitted an application may not decide it: ask another caseworker.',
    required: 'required',
  },
};

let lang = localStorage.getItem('medassist.lang') === 'en' ? 'en' : 'zh';

/** The text of `key` in the chosen language, with {0}, {1} filled in. */
function t(key, ...args) {
  const text = WORDS[lang][key] ?? WORDS.zh[key] ?? key;
  return text.replace(/\{(\d)\}/g, (_, i) => String(args[Number(i)] ?? ''));
}

// ---------------------------------------------------------- formatting --

/** "1234567.8" -> "1,234,567.80": money stays a string, never a float. */
function yuan(text) {
  if (text === undefined || text === null || text === '') return '';
  const negative = String(text).startsWith('-');
  const [whole, fraction = ''] = String(text).replace('-', '').split('.');
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return (negative ? '-' : '') + grouped + '.' + (fraction + '00').slice(0, 2);
}

/** Fen of a yuan string, exactly, as a BigInt. */
function fen(text) {
  if (!text) return 0n;
  const negative = String(text).startsWith('-');
  const [whole, fraction = ''] = String(text).replace('-', '').split('.');
  const value = BigInt(whole || '0') * 100n + BigInt((fraction + '00').slice(0, 2));
  return negative ? -value : value;
}

/** Fen back to a yuan string. */
function fromFen(value) {
  const negative = value < 0n;
  const abs = negative ? -value : value;
  return (negative ? '-' : '') + (abs / 100n) + '.' + String(abs % 100n).padStart(2, '0');
}

/** A date as the fund writes it: 2026年3月5日 (zh) or 2026-03-05. */
function day(text) {
  if (!text) return '';
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!m || lang !== 'zh') return text;
  return `${m[1]}年${Number(m[2])}月${Number(m[3])}日`;
}

/** A timestamp in the fund's local time, to the second. */
function when(text) {
  if (!text) return '';
  const at = new Date(text);
  if (Number.isNaN(at.getTime())) return text;
  const p = (n) => String(n).padStart(2, '0');
  const date = `${at.getFullYear()}-${p(at.getMonth() + 1)}-${p(at.getDate())}`;
  return `${day(date)} ${p(at.getHours())}:${p(at.getMinutes())}:${p(at.getSeconds())}`;
}

/** Roles that see resident IDs whole; the others see them masked. */
const WHOLE_ID_ROLES = ['roster_admin', 'caseworker', 'open'];

/** A resident ID as this role may see it: 320602********0612 unless whole. */
function rid(id) {
  if (!id) return '';
  if (WHOLE_ID_ROLES.includes(session.caller?.role)) return id;
  return id.length > 10 ? id.slice(0, 6) + '*'.repeat(id.length - 10) + id.slice(-4) : '****';
}

function count(n) {
  return Number(n || 0).toLocaleString(lang === 'zh' ? 'zh-CN' : 'en-US');
}

// ----------------------------------------------------------------- DOM --

/** Builds an element: h('td', {class: 'num'}, '12.00'). Text is never HTML. */
function h(tag, attrs = {}, ...children) {
  const el = tag.includes(':')
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.split(':')[1])
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function field(label, input) {
  return h('label', {}, label, input);
}

function input(name, attrs = {}) {
  return h('input', { name, id: 'f-' + name, ...attrs });
}

function table(headers, rows, empty) {
  if (!rows.length) return h('p', { class: 'muted' }, empty);
  return h('table', {},
    h('thead', {}, h('tr', {}, headers.map(([text, num]) => h('th', { class: num ? 'num' : null }, text)))),
    h('tbody', {}, rows));
}

function num(text) {
  return h('td', { class: 'num' }, text);
}

function stateTag(s) {
  if (s.application) {
    const state = s.application.state;
    return h('span', { class: 'tag ' + state.replace('APPLICATION_STATE_', '').toLowerCase() }, t(state));
  }
  const reversed = s.status === 'SETTLEMENT_STATUS_REVERSED';
  return h('span', { class: 'tag' + (reversed ? ' reversed' : '') }, t(s.status));
}

/** Offers `text` as a file to save. */
function download(name, text, type = 'text/csv;charset=utf-8') {
  const url = URL.createObjectURL(new Blob(['\ufeff' + text], { type }));
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function csvCell(value) {
  const text = String(value ?? '');
  return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
}

// ----------------------------------------------------------------- API --

/** What a failed call said: the gRPC code, its message, the fields at fault. */
class ApiError extends Error {
  constructor(code, message, violations = []) {
    super(message);
    this.code = code;
    this.violations = violations;
  }
}

const CODES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND',
  'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED',
  'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];

function headers(json) {
  const out = json ? { 'Content-Type': 'application/json' } : {};
  if (session.token) out.Authorization = 'Bearer ' + session.token;
  return out;
}

async function failure(response) {
  let status = {};
  try { status = await response.json(); } catch { /* not JSON: keep the HTTP status */ }
  const violations = (status.details || [])
    .flatMap((d) => d.fieldViolations || []);
  const code = CODES[status.code] || 'UNKNOWN';
  if (code === 'UNAUTHENTICATED') signOut(false);
  return new ApiError(code, status.message || response.statusText, violations);
}

/** One call of the HTTP/JSON API; resolves to its JSON answer. */
async function api(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError('network', e.message);
  }
  if (!response.ok) throw await failure(response);
  return response.json();
}

/** A streamed call (newline-delimited JSON): every message of it. */
async function apiStream(path) {
  let response;
  try {
    response = await fetch(path, { headers: headers(false), cache: 'no-store' });
  } catch (e) {
    throw new ApiError('network', e.message);
  }
  if (!response.ok) throw await failure(response);
  const messages = [];
  for (const line of (await response.text()).split('\n')) {
    if (!line.trim()) continue;
    const message = JSON.parse(line);
    if (message.error) throw new ApiError(CODES[message.error.code] || 'UNKNOWN', message.error.message);
    messages.push(message);
  }
  return messages;
}

/** An error as the user should read it: what happened and what to do. */
function errorBox(error) {
  const fourEyes = error.code === 'PERMISSION_DENIED' && /four eyes/.test(error.message);
  const known = fourEyes ? t('err_fourEyes') : WORDS[lang]['err_' + error.code];
  return h('div', { class: 'error', role: 'alert' },
    h('strong', {}, known || t('err_other')), ' ', error.message,
    error.violations?.length
      ? h('ul', {}, error.violations.map((v) => h('li', {}, `${v.field}: ${v.description}`)))
      : null);
}

/** Runs `work`, showing its error (or nothing) in `slot`. */
async function attempt(slot, work) {
  slot.replaceChildren(h('p', { class: 'muted' }, t('loading')));
  try {
    const shown = await work();
    slot.replaceChildren(...[shown].flat(Infinity).filter(Boolean));
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    slot.replaceChildren(error.code === 'PERMISSION_DENIED'
      ? h('p', { class: 'muted' }, t('notForRole'), ' ', error.message)
      : errorBox(error));
  }
}

const q = encodeURIComponent;

// ------------------------------------------------------------- session --

const session = {
  token: sessionStorage.getItem('medassist.token') || '',
  caller: JSON.parse(sessionStorage.getItem('medassist.caller') || 'null'),
};

function signOut(reload = true) {
  sessionStorage.removeItem('medassist.token');
  sessionStorage.removeItem('medassist.caller');
  session.token = '';
  session.caller = null;
  if (reload) { location.hash = ''; render(); }
}

async function signIn(token) {
  session.token = token;
  const caller = await api('GET', '/v1/caller');
  session.caller = caller;
  sessionStorage.setItem('medassist.token', token);
  sessionStorage.setItem('medassist.caller', JSON.stringify(caller));
}

/** The first region the caller is limited to, to fill region fields with. */
function homeRegion() {
  return session.caller?.regions?.[0] || '';
}

function thisYear() {
  return String(new Date().getFullYear());
}

function today() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

// ------------------------------------------------------------- screens --

/** Each screen, the roles it serves (the service still checks each call). */
const SCREENS = [
  { id: 'person', roles: ['roster_admin', 'insurer', 'officer', 'auditor', 'open'], render: personScreen },
  { id: 'import', roles: ['roster_admin', 'open'], render: importScreen },
  { id: 'reconcile', roles: ['hospital', 'officer', 'auditor', 'open'], render: reconcileScreen },
  { id: 'referrals', roles: ['roster_admin', 'officer', 'auditor', 'open'], render: referralsScreen },
  { id: 'applications', roles: ['caseworker', 'auditor', 'open'], render: applicationsScreen },
  { id: 'statistics', roles: ['officer', 'supervisor', 'auditor', 'open'], render: statisticsScreen },
  { id: 'policy', roles: ['insurer', 'caseworker', 'officer', 'supervisor', 'auditor', 'open'], render: policyScreen },
  { id: 'audit', roles: ['auditor', 'open'], render: auditScreen },
];

function screensOf(role) {
  return SCREENS.filter((s) => s.roles.includes(role));
}

/** The form's values by name. */
function values(form) {
  return Object.fromEntries(new FormData(form).entries());
}

function settlementRows(list, onOpen) {
  return list.map((s) => h('tr', { dataset: { settlement: s.settlementId } },
    h('td', {}, onOpen ? h('button', { type: 'button', class: 'quiet', onclick: () => onOpen(s) }, s.settlementId) : s.settlementId),
    h('td', {}, s.hospitalId, ' / ', s.claimId),
    h('td', {}, rid(s.patientId)),
    h('td', {}, day(s.admissionDate), ' – ', day(s.dischargeDate)),
    num(yuan(s.totalCost)), num(yuan(s.assistanceAmount)), num(yuan(s.patientPays)),
    h('td', {}, stateTag(s), s.referred ? [' ', h('span', { class: 'tag' }, t(s.referralReason))] : null)));
}

const SETTLEMENT_HEADERS = () => [[t('settlementId')], [t('claimId')], [t('patientId')], [t('admission')],
  [t('totalCost'), 1], [t('assistance'), 1], [t('patientPays'), 1], [t('state')]];

function explanation(s) {
  return h('details', {}, h('summary', {}, t('explanation'), ' · ', s.settlementId),
    h('div', { class: 'explain' }, s.breakdown?.explanation || '—'));
}

// Person: the roster record, its enrollments on a timeline, the year's cap
// as a bar, and the year's settlements and applications with explanations.
function personScreen(view, params) {
  const form = h('form', { class: 'inline', id: 'person-search' },
    field(t('patientId'), input('patientId', { required: true, value: params.get('id') || '', autocomplete: 'off', size: 20 })),
    field(t('year'), input('year', { required: true, value: params.get('year') || thisYear(), size: 6, inputmode: 'numeric' })),
    h('button', { type: 'submit' }, t('search')));
  const record = h('section', { class: 'card', id: 'person-record', 'aria-live': 'polite' });
  const usage = h('section', { class: 'card', id: 'person-usage' });
  const list = h('section', { class: 'card', id: 'person-settlements' });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const { patientId, year } = values(form);
    const id = patientId.trim().toUpperCase();
    history.replaceState(null, '', `#/person?id=${q(id)}&year=${q(year)}`);
    showPerson(id, Number(year), record, usage, list);
  });
  view.append(h('h1', {}, t('s_person')), h('section', { class: 'card' }, form), record, usage, list);
  if (params.get('id')) form.requestSubmit();
}

function showPerson(id, year, record, usage, list) {
  const page = (token) => api('POST', '/v1/settlements:listForPatient', { patientId: id, year, pageSize: 100, pageToken: token });
  const first = page('');
  attempt(record, async () => {
    const p = await api('POST', '/v1/persons:get', { patientId: id });
    return [h('h2', {}, p.name, ' · ', rid(p.patientId)),
      h('dl', { class: 'kv' },
        h('dt', {}, t('region')), h('dd', {}, p.regionCode),
        h('dt', {}, t('disability')), h('dd', {}, String(p.psychiatricDisabilityGrade || 0)),
        h('dt', {}, t('paralysis')), h('dd', {}, p.paralysisCertified ? t('yes') : t('no'))),
      h('h2', {}, t('enrollments')), timeline(p.enrollments || [])];
  });
  attempt(usage, async () => {
    const u = await api('POST', '/v1/usages:get', { patientId: id, year });
    let pending = 0n;
    try {
      for (let r = await first; ; r = await page(r.nextPageToken)) {
        for (const s of r.settlements) {
          if (s.application?.state === 'APPLICATION_STATE_PENDING') pending += fen(s.assistanceAmount);
        }
        if (!r.nextPageToken) break;
      }
    } catch { /* the list below says why */ }
    return [h('h2', {}, t('cap'), ' ', year, ' · ', yuan(u.annualCap)), capBar(u, pending)];
  });
  attempt(list, async () => {
    const r = await first;
    const shown = table(SETTLEMENT_HEADERS(), settlementRows(r.settlements), t('noSettlements'));
    const rows = shown.querySelector('tbody');
    const explanations = h('div', {}, r.settlements.map(explanation));
    const more = (token) => token && h('button', {
      type: 'button', class: 'quiet',
      onclick: async (e) => {
        const next = await page(token);
        rows.append(...settlementRows(next.settlements));
        explanations.append(...next.settlements.map(explanation));
        e.target.replaceWith(more(next.nextPageToken) || '');
      },
    }, t('more'));
    return [h('h2', {}, t('settlements')), shown, more(r.nextPageToken), explanations];
  });
}

function timeline(enrollments) {
  if (!enrollments.length) return h('p', { class: 'muted' }, t('noEnrollments'));
  const years = (d) => Number(d.slice(0, 4)) + (Number(d.slice(5, 7)) - 1) / 12 + (Number(d.slice(8, 10)) - 1) / 365;
  const now = years(today());
  const start = Math.floor(Math.min(...enrollments.map((e) => years(e.validFrom))));
  const end = Math.ceil(Math.max(now, ...enrollments.map((e) => (e.validTo ? years(e.validTo) : now)))) + 0.001;
  const at = (y) => ((y - start) / (end - start)) * 100;
  const rows = enrollments.map((e) => {
    const span = h('div', { class: 'span' + (e.validTo ? '' : ' open') },
      `${t(e.kind.replace('ENROLLMENT_KIND_', 'kind_'))} ${day(e.validFrom)} – ${e.validTo ? day(e.validTo) : t('stillValid')}`,
      e.exit && e.exit !== 'EXIT_KIND_UNSPECIFIED' ? `（${t(e.exit)}）` : '');
    span.style.left = at(years(e.validFrom)) + '%';
    span.style.width = Math.max(2, at(e.validTo ? years(e.validTo) : now) - at(years(e.validFrom))) + '%';
    return h('div', { class: 'row' }, span);
  });
  return [h('div', { class: 'timeline', role: 'list' }, rows), h('div', { class: 'axis' }, h('span', {}, start), h('span', {}, Math.floor(end)))];
}

function capBar(u, pendingFen) {
  const cap = fen(u.annualCap);
  const used = fen(u.used) - pendingFen;
  const left = fen(u.remaining);
  const share = (part) => (cap > 0n ? Number((part * 10000n) / cap) / 100 : 0);
  const bar = h('div', { class: 'capbar', role: 'img', 'aria-label': `${t('used')} ${yuan(fromFen(used))}` },
    h('div', { class: 'used' }), h('div', { class: 'reserved' }));
  bar.children[0].style.width = share(used) + '%';
  bar.children[1].style.width = share(pendingFen) + '%';
  return [bar, h('div', { class: 'legend' },
    h('span', {}, h('span', { class: 'swatch used' }), t('used'), ' ', yuan(fromFen(used))),
    h('span', {}, h('span', { class: 'swatch reserved' }), t('reserved'), ' ', yuan(fromFen(pendingFen))),
    h('span', {}, h('span', { class: 'swatch left' }), t('left'), ' ', yuan(fromFen(left))))];
}

// Roster import: the CSV `medassist roster import` reads, in UTF-8 or GBK,
// sent person by person through UpsertPerson; rejected rows by line and
// column, downloadable to fix.
const ROSTER_HEADER = ['patient_id', 'name', 'region_code', 'psychiatric_disability_grade',
  'paralysis_certified', 'enrollment_kind', 'valid_from', 'valid_to', 'exit'];
const IMPORT_IN_FLIGHT = 4;

function importScreen(view) {
  const file = input('file', { type: 'file', accept: '.csv,text/csv', required: true });
  const encoding = h('select', { name: 'encoding', id: 'f-encoding' },
    ['auto', 'utf8', 'gbk'].map((e) => h('option', { value: e }, t('enc_' + e))));
  const form = h('form', { class: 'inline', id: 'import-form' },
    field(t('csvFile'), file), field(t('encoding'), encoding), h('button', { type: 'submit' }, t('startImport')));
  const progress = h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100 }, h('div'));
  const status = h('p', { id: 'import-status', 'aria-live': 'polite' });
  const result = h('div', { id: 'import-result' });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      await runImport(file.files[0], encoding.value, progress, status, result);
    } finally {
      button.disabled = false;
    }
  });
  view.append(h('h1', {}, t('importTitle')),
    h('section', { class: 'card' }, h('p', { class: 'muted' }, t('importHelp', ROSTER_HEADER.join(','))), form),
    h('section', { class: 'card' }, progress, status, result));
}

/** The text of the file: UTF-8 when it is valid UTF-8, else GBK (GB 18030). */
function decode(bytes, choice) {
  if (choice === 'gbk') return [new TextDecoder('gb18030').decode(bytes), 'GBK'];
  try {
    return [new TextDecoder('utf-8', { fatal: true }).decode(bytes).replace(/^\ufeff/, ''), 'UTF-8'];
  } catch (e) {
    if (choice === 'utf8') throw e;
    return [new TextDecoder('gb18030').decode(bytes), 'GBK'];
  }
}

/** RFC 4180 rows, each with the line it starts on. */
function parseCsv(text) {
  const rows = [];
  let row = [], cell = '', quoted = false, line = 1, startLine = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; }
      else if (c === '"') quoted = false;
      else { if (c === '\n') line++; cell += c; }
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(cell); cell = ''; }
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(cell);
      if (row.some((v) => v !== '')) rows.push({ line: startLine, cells: row });
      row = []; cell = ''; line++; startLine = line;
    } else cell += c;
  }
  row.push(cell);
  if (row.some((v) => v !== '')) rows.push({ line: startLine, cells: row });
  return rows;
}

function enumName(prefix, text) {
  if (!text) return undefined;
  if (!/^[\x20-\x7e]*$/.test(text) || text.startsWith(prefix)) return text;
  return prefix + text.toUpperCase();
}

/** The persons of the rows: a person's adjacent rows become one record. */
function personsOf(rows, header) {
  const col = Object.fromEntries(header.map((name, i) => [name, i]));
  const persons = [];
  for (const { line, cells } of rows) {
    const get = (name) => (cells[col[name]] ?? '').trim();
    let person = persons[persons.length - 1];
    if (!person || person.body.patientId !== get('patient_id')) {
      person = {
        rows: [],
        body: {
          patientId: get('patient_id'), name: get('name'), regionCode: get('region_code'),
          psychiatricDisabilityGrade: Number(get('psychiatric_disability_grade') || 0),
          paralysisCertified: ['true', '1', '是'].includes(get('paralysis_certified').toLowerCase()),
          enrollments: [],
        },
      };
      persons.push(person);
    }
    person.rows.push({ line, cells });
    if (get('enrollment_kind')) {
      person.body.enrollments.push({
        kind: enumName('ENROLLMENT_KIND_', get('enrollment_kind')),
        validFrom: get('valid_from'),
        validTo: get('valid_to') || undefined,
        exit: enumName('EXIT_KIND_', get('exit')),
      });
    }
  }
  return persons;
}

/** The CSV column and row of a field the service named. */
const FIELD_COLUMNS = {
  patientId: 'patient_id', name: 'name', regionCode: 'region_code',
  psychiatricDisabilityGrade: 'psychiatric_disability_grade', paralysisCertified: 'paralysis_certified',
  kind: 'enrollment_kind', validFrom: 'valid_from', validTo: 'valid_to', exit: 'exit',
};

function placeViolation(person, violation) {
  const m = /enrollments\[(\d+)\]\.?(\w*)/.exec(violation.field || '');
  const last = (violation.field || '').split('.').pop();
  const withEnrollment = person.rows.filter((r) => r.cells.some((v, i) => i === 5 && v.trim()));
  const row = m ? (withEnrollment[Number(m[1])] || person.rows[0]) : person.rows[0];
  return { line: row.line, column: FIELD_COLUMNS[m ? m[2] : last] || violation.field, problem: violation.description };
}

async function runImport(file, choice, progress, status, result) {
  result.replaceChildren();
  const [text, used] = decode(new Uint8Array(await file.arrayBuffer()), choice);
  const rows = parseCsv(text);
  const header = (rows.shift()?.cells || []).map((c) => c.trim());
  if ([...header].sort().join() !== [...ROSTER_HEADER].sort().join()) {
    result.replaceChildren(h('div', { class: 'error', role: 'alert' }, t('badHeader', ROSTER_HEADER.join(','))));
    return;
  }
  const persons = personsOf(rows, header);
  status.textContent = t('importRead', rows.length, persons.length, used);
  const rejected = [];
  let done = 0, taken = 0, next = 0;
  const bar = progress.firstChild;
  const worker = async () => {
    while (next < persons.length) {
      const person = persons[next++];
      try {
        await api('POST', '/v1/persons:upsert', person.body);
        taken++;
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        const placed = error.violations.length
          ? error.violations.map((v) => placeViolation(person, v))
          : [{ line: person.rows[0].line, column: '', problem: `${t('err_' + error.code)} ${error.message}` }];
        rejected.push({ person, placed });
      }
      done++;
      bar.style.width = Math.round((done / persons.length) * 100) + '%';
      progress.setAttribute('aria-valuenow', Math.round((done / persons.length) * 100));
      status.textContent = t('importProgress', done, persons.length);
    }
  };
  await Promise.all(Array.from({ length: IMPORT_IN_FLIGHT }, worker));
  const rejectedRows = rejected.flatMap((r) => r.person.rows).sort((a, b) => a.line - b.line);
  status.textContent = t('importDone', taken, rejectedRows.length);
  if (!rejected.length) return;
  const lines = rejected.flatMap((r) => r.placed).sort((a, b) => a.line - b.line);
  result.append(h('h2', {}, t('rejected')),
    table([[t('line')], [t('column')], [t('problem')]],
      lines.map((l) => h('tr', {}, h('td', {}, l.line), h('td', {}, l.column), h('td', {}, l.problem))), ''),
    h('p', {}, h('button', {
      type: 'button', class: 'quiet', id: 'download-rejected',
      onclick: () => download('rejected-' + file.name.replace(/\.csv$/i, '') + '.csv',
        [header, ...rejectedRows.map((r) => r.cells)].map((c) => c.map(csvCell).join(',')).join('\r\n') + '\r\n'),
    }, t('downloadRejected'))));
}

// Reconciliation: a hospital's day against the fund's figures, the day's
// settlements, a range day by day, and the export.
function reconcileScreen(view, params) {
  const own = session.caller?.role === 'hospital' ? session.caller.hospitalId : '';
  const form = h('form', { class: 'inline', id: 'reconcile-form' },
    field(t('hospital'), input('hospitalId', { required: true, value: own || params.get('hospital') || '', readonly: own ? true : null, size: 10 })),
    field(t('fromDate'), input('fromDate', { type: 'date', required: true, value: params.get('from') || today() })),
    field(t('toDate'), input('toDate', { type: 'date', value: params.get('to') || '' })),
    field(t('settledCount'), input('settledCount', { inputmode: 'numeric', value: '0', size: 6 })),
    field(t('assistanceTotal'), input('assistanceTotal', { inputmode: 'decimal', value: '0.00', size: 12 })),
    field(t('reversedCount'), input('reversedCount', { inputmode: 'numeric', value: '0', size: 6 })),
    field(t('reversedTotal'), input('reversedTotal', { inputmode: 'decimal', value: '0.00', size: 12 })),
    h('button', { type: 'submit' }, t('reconcile')));
  const upload = input('figuresFile', { type: 'file', accept: '.csv,text/csv' });
  upload.addEventListener('change', async () => {
    const [text] = decode(new Uint8Array(await upload.files[0].arrayBuffer()), 'auto');
    const rows = parseCsv(text);
    const head = rows[0]?.cells.map((c) => c.trim()) || [];
    const cells = rows[1]?.cells || [];
    for (const [i, name] of head.entries()) {
      const key = name.replace(/_(\w)/g, (_, c) => c.toUpperCase());
      if (form.elements[key]) form.elements[key].value = (cells[i] || '').trim();
    }
  });
  const answer = h('section', { class: 'card', id: 'reconcile-result', 'aria-live': 'polite' });
  const detail = h('section', { class: 'card', id: 'reconcile-settlements' });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const v = values(form);
    const to = v.toDate || v.fromDate;
    history.replaceState(null, '', `#/reconcile?hospital=${q(v.hospitalId)}&from=${q(v.fromDate)}&to=${q(to)}`);
    if (to === v.fromDate) reconcileDay(v, answer, detail);
    else reconcileRange(v, to, answer, detail);
  });
  view.append(h('h1', {}, t('reconcileTitle')),
    h('section', { class: 'card' }, h('h2', {}, t('hospitalFigures')), form, h('p', {}, field(t('figuresFile'), upload))),
    answer, detail);
}

function totalsRows(fund, hospital) {
  const names = [['settledCount', false], ['assistanceTotal', true], ['reversedCount', false], ['reversedTotal', true]];
  return names.map(([name, money]) => h('tr', {}, h('td', {}, t(name)),
    num(money ? yuan(hospital[name]) : count(hospital[name])), num(money ? yuan(fund[name]) : count(fund[name]))));
}

function reconcileDay(v, answer, detail) {
  const hospitalTotals = {
    settledCount: Number(v.settledCount || 0), assistanceTotal: v.assistanceTotal || '0.00',
    reversedCount: Number(v.reversedCount || 0), reversedTotal: v.reversedTotal || '0.00',
  };
  const path = `/v1/hospitals/${q(v.hospitalId)}/days/${q(v.fromDate)}`;
  attempt(answer, async () => {
    const r = await api('POST', path + ':reconcile', hospitalTotals);
    const differing = (r.differingFields || []).map((f) => t(f.replace(/_(\w)/g, (_, c) => c.toUpperCase())));
    return [r.matched ? h('div', { class: 'ok', role: 'status' }, t('matched'))
      : h('div', { class: 'error', role: 'status' }, t('differ', differing.join('、'))),
    table([[t('key')], [t('hospitalFigures'), 1], [t('fundFigures'), 1]], totalsRows(r.fundTotals, hospitalTotals), '')];
  });
  const page = (token) => attempt(detail, async () => {
    const r = await api('GET', `${path}/settlements?pageSize=50${token ? '&pageToken=' + q(token) : ''}`);
    return [h('h2', {}, t('daySettlements'), ' · ', day(v.fromDate)),
      table(SETTLEMENT_HEADERS(), settlementRows(r.settlements), t('noSettlements')),
      r.nextPageToken ? h('button', { type: 'button', class: 'quiet', onclick: () => page(r.nextPageToken) }, t('more')) : null,
      exportButton(v.hospitalId, v.fromDate, v.fromDate)];
  });
  page('');
}

const RANGE_DAYS_MAX = 31;

function reconcileRange(v, to, answer, detail) {
  detail.replaceChildren();
  attempt(answer, async () => {
    const days = [];
    for (let d = new Date(v.fromDate + 'T00:00:00Z'); d <= new Date(to + 'T00:00:00Z'); d.setUTCDate(d.getUTCDate() + 1)) {
      days.push(d.toISOString().slice(0, 10));
      if (days.length > RANGE_DAYS_MAX) return h('div', { class: 'error' }, t('rangeTooLong'));
    }
    const zero = { settledCount: 0, assistanceTotal: '0.00', reversedCount: 0, reversedTotal: '0.00' };
    const rows = [];
    for (const d of days) {
      const r = await api('POST', `/v1/hospitals/${q(v.hospitalId)}/days/${q(d)}:reconcile`, zero);
      const f = r.fundTotals;
      rows.push(h('tr', {}, h('td', {}, day(d)), num(count(f.settledCount)), num(yuan(f.assistanceTotal)),
        num(count(f.reversedCount)), num(yuan(f.reversedTotal))));
    }
    return [h('h2', {}, t('rangeTotals')),
      table([[t('date')], [t('settledCount'), 1], [t('assistanceTotal'), 1], [t('reversedCount'), 1], [t('reversedTotal'), 1]], rows, ''),
      exportButton(v.hospitalId, v.fromDate, to)];
  });
}

function exportButton(hospital, from, to) {
  if (!['officer', 'auditor', 'open'].includes(session.caller?.role)) return null;
  const slot = h('span');
  const button = h('button', {
    type: 'button', class: 'quiet', id: 'export',
    onclick: () => attempt(slot, async () => {
      const rows = await apiStream(`/v1/settlements:export?fromDate=${q(from)}&toDate=${q(to)}&hospitalId=${q(hospital)}`);
      const cols = ['settlementId', 'hospitalId', 'claimId', 'settledDay', 'reversedDay', 'status', 'channel',
        'totalCost', 'inScopeCost', 'basicInsurancePaid', 'criticalIllnessPaid', 'assistanceAmount', 'patientPays'];
      download(`settlements-${hospital}-${from}-${to}.csv`,
        [cols, ...rows.map((r) => cols.map((c) => r[c]))].map((r) => r.map(csvCell).join(',')).join('\r\n') + '\r\n');
      return h('span', { class: 'muted' }, ` ${rows.length}`);
    }),
  }, t('export'));
  return h('p', {}, button, slot);
}

// Referrals to temporary assistance, by region and days, with why.
function referralsScreen(view) {
  const form = h('form', { class: 'inline', id: 'referrals-form' },
    field(t('region'), input('regionCode', { required: true, value: homeRegion(), size: 8 })),
    field(t('fromDate'), input('fromDate', { type: 'date', required: true, value: today().slice(0, 8) + '01' })),
    field(t('toDate'), input('toDate', { type: 'date', required: true, value: today() })),
    h('button', { type: 'submit' }, t('search')));
  const out = h('section', { class: 'card', id: 'referrals-list' });
  const page = (v, token) => attempt(out, async () => {
    const r = await api('GET', `/v1/regions/${q(v.regionCode)}/referrals?fromDate=${q(v.fromDate)}&toDate=${q(v.toDate)}&pageSize=50${token ? '&pageToken=' + q(token) : ''}`);
    const rows = r.settlements.map((s) => h('tr', {}, h('td', {}, day(s.settledDay)), h('td', {}, rid(s.patientId)),
      h('td', {}, s.hospitalId, ' / ', s.claimId), num(yuan(s.patientPays)), num(yuan(s.remainingAfter)),
      h('td', {}, t(s.referralReason))));
    return [table([[t('date')], [t('patientId')], [t('claimId')], [t('patientPays'), 1], [t('left'), 1], [t('reason')]], rows, t('noReferrals')),
      r.nextPageToken ? h('button', { type: 'button', class: 'quiet', onclick: () => page(v, r.nextPageToken) }, t('more')) : null];
  });
  form.addEventListener('submit', (e) => { e.preventDefault(); page(values(form), ''); });
  view.append(h('h1', {}, t('referralsTitle')), h('section', { class: 'card' }, form), out);
}

// Applications (依申请救助): the queue, one application with its breakdown,
// approve or reject, and the stays a late enrollment owes.
function applicationsScreen(view) {
  const states = ['APPLICATION_STATE_PENDING', 'APPLICATION_STATE_APPROVED', 'APPLICATION_STATE_REJECTED',
    'APPLICATION_STATE_WITHDRAWN', 'APPLICATION_STATE_UNSPECIFIED'];
  const form = h('form', { class: 'inline', id: 'queue-form' },
    field(t('region'), input('regionCode', { required: true, value: homeRegion(), size: 8 })),
    field(t('state'), h('select', { name: 'state', id: 'f-state' }, states.map((s) => h('option', { value: s }, t(s))))),
    field(t('fromDate'), input('fromDate', { type: 'date', required: true, value: today().slice(0, 5) + '01-01' })),
    field(t('toDate'), input('toDate', { type: 'date', required: true, value: today() })),
    h('button', { type: 'submit' }, t('search')));
  const queue = h('section', { class: 'card', id: 'queue' });
  const one = h('section', { class: 'card', id: 'application', 'aria-live': 'polite' });
  const page = (v, token) => attempt(queue, async () => {
    const r = await api('POST', `/v1/regions/${q(v.regionCode)}/applications:list`,
      { state: v.state, fromDate: v.fromDate, toDate: v.toDate, pageSize: 50, pageToken: token });
    const rows = r.applications.map((s) => h('tr', {},
      h('td', {}, h('button', { type: 'button', class: 'quiet', onclick: () => showApplication(s, one, () => page(v, token)) }, s.claimId)),
      h('td', {}, s.hospitalId), h('td', {}, rid(s.patientId)), h('td', {}, day(s.settledDay)),
      num(yuan(s.assistanceAmount)), h('td', {}, stateTag(s))));
    return [h('h2', {}, t('queue')),
      table([[t('claimId')], [t('hospital')], [t('patientId')], [t('date')], [t('assistance'), 1], [t('state')]], rows, t('noApplications')),
      r.nextPageToken ? h('button', { type: 'button', class: 'quiet', onclick: () => page(v, r.nextPageToken) }, t('more')) : null];
  });
  form.addEventListener('submit', (e) => { e.preventDefault(); one.replaceChildren(); page(values(form), ''); });
  const candidates = h('section', { class: 'card', id: 'candidates' });
  const candidateForm = h('form', { class: 'inline', id: 'candidates-form' },
    field(t('region'), input('regionCode', { required: true, value: homeRegion(), size: 8 })),
    field(t('year'), input('year', { required: true, value: thisYear(), size: 6 })),
    h('button', { type: 'submit' }, t('findCandidates')));
  candidateForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const v = values(candidateForm);
    attempt(candidates, async () => {
      const r = await api('POST', `/v1/regions/${q(v.regionCode)}/retroactiveCandidates:list`, { year: Number(v.year), pageSize: 50 });
      const rows = r.candidates.map((c) => {
        const s = c.settlement;
        const slot = h('span');
        const docs = input('documents-' + s.settlementId, { placeholder: t('documents'), size: 14 });
        const open = h('button', {
          type: 'button', class: 'quiet',
          onclick: () => attempt(slot, async () => {
            const opened = await api('POST', '/v1/applications:open', { settlementId: s.settlementId, documents: docs.value });
            return h('span', { class: 'ok' }, t('opened', opened.settlementId));
          }),
        }, t('openApplication'));
        return h('tr', {}, h('td', {}, s.settlementId), h('td', {}, rid(s.patientId)),
          num(yuan(s.assistanceAmount)), num(yuan(c.assistanceNow)), num(yuan(c.owed)),
          h('td', {}, session.caller.role === 'auditor' ? null : [docs, ' ', open, slot]));
      });
      return table([[t('settlementId')], [t('patientId')], [t('assistance'), 1], [t('assistanceNow'), 1], [t('owed'), 1], ['']], rows, t('noCandidates'));
    });
  });
  view.append(h('h1', {}, t('s_applications')), h('section', { class: 'card' }, form), queue, one,
    h('section', { class: 'card' }, h('h2', {}, t('candidates')), candidateForm), candidates);
}

function breakdownTable(b) {
  if (!b) return null;
  return h('dl', { class: 'kv' },
    h('dt', {}, t('assistedClass')), h('dd', {}, b.assistedClassName || b.assistedClass || '—'),
    h('dt', {}, t('deductible')), h('dd', {}, yuan(b.deductible), ' (', yuan(b.deductibleConsumed), ')'),
    h('dt', {}, t('bands')), h('dd', {}, (b.bands || []).map((band) =>
      h('div', {}, `${yuan(band.from)} – ${band.upTo ? yuan(band.upTo) : '∞'}: ${yuan(band.base)} × ${band.ratio} = ${band.amount}`))),
    h('dt', {}, t('tilt')), h('dd', {}, yuan(b.tiltedAmount)));
}

function showApplication(s, slot, refresh) {
  const a = s.application || {};
  const result = h('div', { id: 'decision', 'aria-live': 'polite' });
  const decide = (path, body, done) => async (e) => {
    e.preventDefault();
    const buttons = slot.querySelectorAll('button');
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const r = await api('POST', path, { hospitalId: s.hospitalId, claimId: s.claimId, ...body() });
      // Shown as it now stands (approved or rejected: no more buttons), with what was done.
      showApplication(r, slot, refresh);
      slot.querySelector('#decision').replaceChildren(h('div', { class: 'ok', role: 'status' }, done(r)));
      refresh();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      result.replaceChildren(errorBox(error));
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  };
  const pending = a.state === 'APPLICATION_STATE_PENDING' && session.caller.role !== 'auditor';
  const approveForm = h('form', { class: 'inline', id: 'approve-form' },
    field(t('paymentRef'), input('paymentRef', { required: true, size: 20, autocomplete: 'off' })),
    h('button', { type: 'submit', id: 'approve' }, t('approve')));
  approveForm.addEventListener('submit', decide('/v1/applications:approve',
    () => ({ paymentRef: approveForm.elements.paymentRef.value.trim() }),
    (r) => t('approved', r.application.paymentRef)));
  const rejectForm = h('form', { class: 'inline', id: 'reject-form' },
    field(t('rejectReason'), input('reason', { required: true, size: 30 })),
    h('button', { type: 'submit', class: 'danger', id: 'reject' }, t('reject')));
  rejectForm.addEventListener('submit', decide('/v1/applications:reject',
    () => ({ reason: rejectForm.elements.reason.value.trim() }), () => t('rejectedDone')));
  slot.replaceChildren(...[
    h('h2', {}, s.hospitalId, ' / ', s.claimId, ' ', stateTag(s)),
    h('dl', { class: 'kv' },
      h('dt', {}, t('patientId')), h('dd', {}, rid(s.patientId)),
      h('dt', {}, t('admission')), h('dd', {}, day(s.admissionDate), ' – ', day(s.dischargeDate)),
      h('dt', {}, t('totalCost')), h('dd', {}, yuan(s.totalCost)),
      h('dt', {}, t('inScope')), h('dd', {}, yuan(s.inScopeCost)),
      h('dt', {}, t('assistance')), h('dd', {}, yuan(s.assistanceAmount)),
      h('dt', {}, t('documents')), h('dd', {}, a.documents || ''),
      h('dt', {}, t('submittedBy')), h('dd', {}, s.settledBy),
      a.paymentRef ? [h('dt', {}, t('paymentRef')), h('dd', {}, a.paymentRef)] : null),
    h('h2', {}, t('breakdown')), breakdownTable(s.breakdown),
    h('div', { class: 'explain' }, s.breakdown?.explanation || ''),
    pending ? [approveForm, rejectForm] : null, result].flat().filter(Boolean));
}

// Statistics: the year by month, class, region, hospital, cost band and
// disease group, as charts and the numbers under them.
function statisticsScreen(view) {
  const form = h('form', { class: 'inline', id: 'statistics-form' },
    field(t('region'), input('regionCode', { required: true, value: homeRegion(), size: 8 })),
    field(t('year'), input('year', { required: true, value: thisYear(), size: 6 })),
    h('button', { type: 'submit' }, t('search')));
  const out = h('div', { id: 'statistics' });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const v = values(form);
    attempt(out, async () => {
      const s = await api('GET', `/v1/regions/${q(v.regionCode)}/statistics/${q(v.year)}`);
      return [
        h('section', { class: 'card' }, h('h2', {}, `${s.regionCode} · ${s.year} · ${t('total')}`),
          figuresTable([{ key: 'total', label: t('total'), figures: s.total }]),
          h('p', { class: 'muted' }, t('asOf', when(s.asOf)))),
        h('section', { class: 'card' }, h('h2', {}, t('byMonth')), monthChart(s.byMonth), figuresTable(s.byMonth)),
        h('div', { class: 'grid2' },
          [['byClass', s.byClass], ['byRegion', s.byRegion], ['byHospital', s.byHospital],
            ['byCostBand', s.byCostBand], ['byDisease', s.byDiseaseGroup]].map(([title, groups]) =>
            h('section', { class: 'card' }, h('h2', {}, t(title)), bars(groups), figuresTable(groups))))];
    });
  });
  view.append(h('h1', {}, t('statisticsTitle')), h('section', { class: 'card' }, form), out);
}

function figuresTable(groups) {
  return table([[t('key')], [t('persons'), 1], [t('settlementsCount'), 1], [t('assistance'), 1], [t('totalCost'), 1], [t('referrals'), 1]],
    groups.map((g) => h('tr', {}, h('td', {}, g.label || g.key), num(count(g.figures.persons)),
      num(count(g.figures.settlements)), num(yuan(g.figures.assistanceTotal)), num(yuan(g.figures.totalCost)),
      num(count(g.figures.referrals)))), '—');
}

/** Widths for drawing only: a bar's share of the largest, from exact fen. */
function shares(groups) {
  const amounts = groups.map((g) => fen(g.figures.assistanceTotal));
  const top = amounts.reduce((a, b) => (b > a ? b : a), 0n);
  return amounts.map((a) => (top > 0n ? Number((a * 1000n) / top) / 10 : 0));
}

function monthChart(months) {
  const width = 720, height = 180, pad = 24, step = (width - pad) / months.length;
  const share = shares(months);
  return h('svg:svg', { viewBox: `0 0 ${width} ${height + 20}`, role: 'img', 'aria-label': t('byMonth'), class: 'chart' },
    months.map((m, i) => {
      const barHeight = (share[i] / 100) * height;
      return [h('svg:rect', { class: 'month', x: pad + i * step + 4, y: height - barHeight, width: step - 8, height: barHeight },
        h('svg:title', {}, `${m.label} ${yuan(m.figures.assistanceTotal)}`)),
      h('svg:text', { x: pad + i * step + step / 2, y: height + 14, 'text-anchor': 'middle' }, String(i + 1))];
    }));
}

function bars(groups) {
  const share = shares(groups);
  return h('div', { class: 'bars' }, groups.map((g, i) => {
    const fill = h('div', { class: 'fill' });
    fill.style.width = share[i] + '%';
    return h('div', { class: 'bar' }, h('span', { class: 'label', title: g.label }, g.label), h('div', {}, fill),
      h('span', { class: 'num' }, yuan(g.figures.assistanceTotal)));
  }));
}

// Policy: the policy in force, readable, and a simulation of a proposal.
function policyScreen(view) {
  const form = h('form', { class: 'inline', id: 'policy-form' },
    field(t('region'), input('regionCode', { required: true, value: homeRegion(), size: 8 })),
    field(t('year'), input('year', { required: true, value: thisYear(), size: 6 })),
    h('button', { type: 'submit' }, t('search')));
  const out = h('section', { class: 'card', id: 'policy' });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const v = values(form);
    attempt(out, async () => {
      const p = await api('GET', `/v1/regions/${q(v.regionCode)}/policies/${q(v.year)}`);
      return [h('h2', {}, p.policyId, ' · ', p.regionCode, ' · ', p.effectiveYear),
        h('dl', { class: 'kv' },
          h('dt', {}, t('annualCap')), h('dd', {}, yuan(p.annualCap)),
          h('dt', {}, t('assistanceRatio')), h('dd', {}, p.assistanceRatio),
          h('dt', {}, t('referralThreshold')), h('dd', {}, yuan(p.referralThreshold)),
          h('dt', {}, t('outpatientCap')), h('dd', {}, yuan(p.outpatientChronicCap)),
          p.tilt ? [h('dt', {}, t('tilt')), h('dd', {}, `${yuan(p.tilt.threshold)} · ${p.tilt.ratio} · ${yuan(p.tilt.cap)}`)] : null),
        h('h2', {}, t('classes')),
        table([[t('classes')], [t('deductible'), 1], [t('bands')], [t('annualCap'), 1]],
          (p.classes || []).map((c) => h('tr', {}, h('td', {}, t(c.kind.replace('ENROLLMENT_KIND_', 'kind_'))),
            num(yuan(c.deductible)),
            h('td', {}, (c.bands || []).map((b) => `${b.upTo ? t('upTo') + ' ' + yuan(b.upTo) : '∞'}: ${b.ratio}`).join('；')),
            num(yuan(c.annualCap)))), '—'),
        (p.diseases || []).length ? [h('h2', {}, t('diseases')),
          h('ul', {}, p.diseases.map((d) => h('li', {}, d.name, ': ', (d.codes || []).join(', '))))] : null];
    });
  });
  view.append(h('h1', {}, t('policyTitle')), h('section', { class: 'card' }, form), out);
  if (['supervisor', 'auditor', 'open'].includes(session.caller?.role)) view.append(simulation());
}

function simulation() {
  const form = h('form', { id: 'simulate-form' },
    field(t('policyToml'), h('textarea', { name: 'policyToml', id: 'f-policyToml', required: true, spellcheck: 'false' })),
    h('div', { class: 'inline' },
      field(t('region'), input('regionCode', { value: homeRegion(), size: 8 })),
      field(t('year'), input('year', { required: true, value: thisYear(), size: 6 })),
      h('button', { type: 'submit' }, t('simulate'))));
  const out = h('div', { id: 'simulation' });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const v = values(form);
    attempt(out, async () => {
      const r = await api('POST', '/v1/policies:simulate', { policyToml: v.policyToml, year: Number(v.year), regionCode: v.regionCode });
      const rows = (list) => list.map((x) => h('tr', {}, h('td', {}, x.key), num(count(x.persons)), num(count(x.settlements)),
        num(yuan(x.paid)), num(yuan(x.wouldPay))));
      const heads = [[t('key')], [t('persons'), 1], [t('settlementsCount'), 1], [t('paid'), 1], [t('wouldPay'), 1]];
      return [table(heads, rows([r.total, ...(r.byClass || []), ...(r.byRegion || [])]), '—'),
        h('p', { class: 'muted' }, t('withoutPolicy'), ': ', count(r.withoutPolicy)),
        h('h2', {}, t('changes')),
        table([[t('settlementId')], [t('patientId')], [t('paid'), 1], [t('wouldPay'), 1]],
          (r.changes || []).slice(0, 200).map((c) => h('tr', {}, h('td', {}, c.settlementId), h('td', {}, c.patientIdMasked),
            num(yuan(c.paid)), num(yuan(c.wouldPay)))), '—')];
    });
  });
  return h('section', { class: 'card' }, h('h2', {}, t('simulateTitle')), form, out);
}

/** Midnight `days` from today, as a datetime-local field holds it. */
function localMinute(days) {
  const d = new Date();
  d.setDate(d.getDate() + days);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T00:00`;
}

// Audit (auditors): who accessed a person or did what, by time and principal.
function auditScreen(view) {
  const form = h('form', { class: 'inline', id: 'audit-form' },
    field(t('patientId'), input('patientId', { size: 20, autocomplete: 'off' })),
    field(t('principal'), input('principal', { size: 22 })),
    field(t('from'), input('from', { type: 'datetime-local', required: true, value: localMinute(-7) })),
    field(t('to'), input('to', { type: 'datetime-local', required: true, value: localMinute(1) })),
    h('button', { type: 'submit' }, t('search')));
  const out = h('section', { class: 'card', id: 'audit' });
  const page = (v, token) => attempt(out, async () => {
    const body = { patientId: v.patientId.trim(), principal: v.principal.trim(), pageSize: 100, pageToken: token };
    body.fromTime = new Date(v.from).toISOString();
    body.toTime = new Date(v.to).toISOString();
    const r = await api('POST', '/v1/audit:list', body);
    const rows = r.records.map((a) => h('tr', {}, h('td', {}, when(a.at)),
      h('td', {}, a.principalName, h('br'), h('span', { class: 'muted' }, a.role ? t('role_' + a.role) : '')),
      h('td', {}, a.call.replace(/^\/?medassist\.v1\./, '')), h('td', {}, a.subject), h('td', {}, a.code || a.phase), h('td', {}, a.peer)));
    return [table([[t('time')], [t('principal')], [t('call')], [t('subject')], [t('code')], [t('peer')]], rows, t('noRecords')),
      r.nextPageToken ? h('button', { type: 'button', class: 'quiet', onclick: () => page(v, r.nextPageToken) }, t('more')) : null];
  });
  form.addEventListener('submit', (e) => { e.preventDefault(); page(values(form), ''); });
  view.append(h('h1', {}, t('auditTitle')), h('section', { class: 'card' }, form), out);
}

// --------------------------------------------------------------- frame --

function signInScreen(view) {
  const form = h('form', { id: 'signin-form' },
    field(t('token'), input('token', { type: 'password', autocomplete: 'off', size: 40 })),
    h('p', {}, h('button', { type: 'submit' }, t('signIn'))));
  const out = h('div', { 'aria-live': 'polite' });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await signIn(form.elements.token.value.trim());
      render();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      session.token = '';
      out.replaceChildren(errorBox(error));
    }
  });
  view.append(h('section', { class: 'card signin' }, h('h1', {}, t('signInTitle')),
    h('p', { class: 'muted' }, t('signInHelp')), form, out));
}

function render() {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  document.title = t('title');
  document.getElementById('brand').textContent = t('title');
  document.querySelector('.skip').textContent = t('skip');
  document.getElementById('lang').textContent = t('other');
  const signout = document.getElementById('signout');
  signout.textContent = t('signOut');
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  const view = document.getElementById('view');
  view.replaceChildren();
  if (!session.caller) {
    nav.replaceChildren();
    who.textContent = '';
    signout.hidden = true;
    signInScreen(view);
    return;
  }
  const role = session.caller.role;
  const screens = screensOf(role);
  const [path, query] = location.hash.replace(/^#\/?/, '').split('?');
  const screen = screens.find((s) => s.id === path) || screens[0];
  nav.replaceChildren(...screens.map((s) => h('a', {
    href: '#/' + s.id, id: 'nav-' + s.id, 'aria-current': s === screen ? 'page' : null,
  }, t('s_' + s.id))));
  who.textContent = role === 'open' ? t('open')
    : t('signedInAs', session.caller.name, t('role_' + role));
  signout.hidden = false;
  if (!screen) {
    view.append(h('p', { class: 'muted' }, t('notForRole')));
    return;
  }
  view.dataset.screen = screen.id;
  screen.render(view, new URLSearchParams(query || ''));
}

for (const kind of ['DIBAO', 'TEKUN', 'LOW_INCOME_FAMILY', 'REGISTERED_POOR', 'MONITORED_FOR_RETURN',
  'LOW_INCOME_MARGIN', 'IMPOVERISHED_BY_ILLNESS']) {
  const zh = { DIBAO: '低保对象', TEKUN: '特困人员', LOW_INCOME_FAMILY: '低收入家庭', REGISTERED_POOR: '建档立卡低收入人口',
    MONITORED_FOR_RETURN: '防返贫监测对象', LOW_INCOME_MARGIN: '低保边缘', IMPOVERISHED_BY_ILLNESS: '因病致贫重病患者' };
  WORDS.zh['kind_' + kind] = zh[kind];
  WORDS.en['kind_' + kind] = kind.toLowerCase().replace(/_/g, ' ');
}

window.addEventListener('hashchange', render);
document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('lang').addEventListener('click', () => {
    lang = lang === 'zh' ? 'en' : 'zh';
    localStorage.setItem('medassist.lang', lang);
    render();
  });
  document.getElementById('signout').addEventListener('click', () => signOut(true));
  render();
});
