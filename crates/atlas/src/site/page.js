// guichet's map of the information system: one self-contained page, no
// request leaves it. The data is embedded below the page; the figures
// follow it-lanscape's rules on the same values (filters, Jaccard
// alignment, toFixed(1)), as guichet computes them in Rust.
'use strict';

const DATA = unpack(JSON.parse(document.getElementById('atlas-data').textContent));

// The data comes packed (site/data.rs): rows as arrays, repeated texts
// once in `strings` and named by index, a number that is a value in a
// one-element array. Unpacked here into the objects the views read.
function unpack(raw) {
  const S = raw.strings;
  const val = (v) => (typeof v === 'number' ? S[v] : Array.isArray(v) ? v[0] : v);
  const apps = raw.landscape.applications.map(([nom, editeur, hebergement, criticite, multi, filled, on, tri]) => ({
    nom: val(nom), editeur: val(editeur), referent: (filled & 1) !== 0, hebergement: val(hebergement),
    criticite: val(criticite), multiEtablissement: val(multi), lienPRTG: (filled & 2) !== 0,
    interfaces: Object.fromEntries(on.map(i => [S[i], true])), trigramme: S[tri],
  }));
  const etablissements = raw.landscape.etablissements.map(([nom, domaines]) => ({ nom: S[nom],
    domaines: domaines.map(([dnom, processus]) => ({ nom: S[dnom],
      processus: processus.map(([pnom, list]) => ({ nom: S[pnom], applications: list.map(i => apps[i]) })) })) }));
  const servers = raw.servers.map(([etab, vm, ip, role, declaredRole, os, tri]) => ({ etablissement: S[etab], vm, ip,
    role: S[role], declaredRole: S[declaredRole], os: S[os], trigramme: S[tri] }));
  const flowKinds = raw.flowKinds.map(([protocol, port, messageType, interfaceType, eai, marks]) => ({
    protocol: S[protocol], port: val(port), messageType: S[messageType], interfaceType: S[interfaceType], eai: S[eai],
    encrypted: (marks & 1) !== 0, observed: (marks & 2) !== 0 }));
  const flows = raw.flows.map(([etab, id, source, target, kind]) => ({
    etablissement: S[etab], id, source: S[source], target: S[target], ...flowKinds[kind] }));
  const q = raw.quality;
  const kinds = q.kinds.map(([severity, dimension, code, title, recommendation, extra]) => ({
    severity: S[severity], dimension: S[dimension], code: S[code], title: S[title], recommendation: S[recommendation],
    extra: extra === 1 }));
  const findings = q.findings.map(([kind, subject, message]) => ({ ...kinds[kind], subject: S[subject],
    message: typeof message === 'number' ? S[subject] + S[message] : message }));
  return { ...raw, landscape: { etablissements }, servers, flows, quality: { ...q, findings } };
}

const TEXT = {
  fr: {
    title: 'Cartographie du SI', indicators: 'Indicateurs', business: 'Carte métier', applications: 'Applications',
    flows: 'Flux', matrix: 'Matrice', incident: 'Simulation d’incident', quality: 'Qualité des données',
    etab: 'Établissement', domain: 'Domaine', criticality: 'Criticité', hosting: 'Hébergement', iface: 'Interface',
    multi: 'Multi-établissement', all: 'Tous', yes: 'Oui', no: 'Non', critical: 'Critique', standard: 'Standard',
    kApps: 'Applications (occurrences)', kProc: 'Alignement des processus', kAlign: 'Alignement applicatif',
    kMulti: 'Mutualisation', kCompl: 'Complétude', kFlows: 'Flux déclarés', kEnc: 'Flux chiffrés (déclarés)',
    kObs: 'Flux déclarés observés', kObsEnc: 'Flux chiffrés (observés)', kShadow: 'Flux non déclarés (shadow)',
    kCritClear: 'Applications critiques avec flux en clair', notObserved: 'sans observation',
    byCrit: 'Par criticité', byHosting: 'Par hébergement', byIface: 'Familles d’interface', byEai: 'Dépendance aux EAI',
    hubs: 'Applications les plus connectées', direct: '(sans EAI)', detailed: 'Détaillé', compact: 'Compact', print: 'Imprimer',
    editor: 'Éditeur', referent: 'Référent', servers: 'Serveurs', noServer: 'aucun serveur', search: 'Rechercher…',
    source: 'Source', target: 'Cible', protocol: 'Protocole', port: 'Port', msgType: 'Type de message',
    ifaceType: 'Type d’interface', eai: 'EAI', encrypted: 'Chiffré', observed: 'Observé', both: 'Source et cible',
    sources: 'Sources', targets: 'Cibles', diagram: 'Schéma des flux', list: 'Liste des flux', allEtabs: 'Tous les établissements',
    stEncrypted: 'chiffré', stClear: 'en clair', stObserved: 'observé', stDno: 'déclaré, non observé', stShadow: 'non déclaré (shadow)',
    start: 'Composant', status: 'Statut', simulate: 'Simuler', eaiNodes: 'EAI et routes guichet comme nœuds',
    impacted: 'Applications impactées', depth: 'Profondeur', causes: 'Causes', report: 'Télécharger le rapport (Markdown)',
    hs: 'Indisponible', degrade: 'Dégradé', intermittent: 'Intermittent', latence: 'Latence',
    application: 'Application', server: 'Serveur', flow: 'Flux', route: 'Route guichet', none: 'Aucun impact.',
    score: 'Score global', completeness: 'Complétude', coherence: 'Cohérence', validity: 'Validité', exploitability: 'Exploitabilité',
    findings: 'Constats', dimension: 'Dimension', checks: 'contrôles', severity: 'Sévérité', subject: 'Objet', message: 'Constat', noQuality: 'Analyse de qualité non calculée.',
    sevcritical: 'Critique', sevhigh: 'Forte', sevmedium: 'Moyenne', sevlow: 'Faible', generated: 'Données du',
    yesMark: 'oui', noMark: 'non', count: 'Messages', route_: 'Route', name: 'Nom', ip: 'IP', role: 'Rôle', os: 'OS',
  },
  en: {
    title: 'Information system map', indicators: 'Indicators', business: 'Business map', applications: 'Applications',
    flows: 'Flows', matrix: 'Matrix', incident: 'Incident simulation', quality: 'Data quality',
    etab: 'Establishment', domain: 'Domain', criticality: 'Criticality', hosting: 'Hosting', iface: 'Interface',
    multi: 'Multi-establishment', all: 'All', yes: 'Yes', no: 'No', critical: 'Critical', standard: 'Standard',
    kApps: 'Applications (occurrences)', kProc: 'Process alignment', kAlign: 'Application alignment',
    kMulti: 'Mutualisation', kCompl: 'Completeness', kFlows: 'Declared flows', kEnc: 'Encrypted flows (declared)',
    kObs: 'Declared flows observed', kObsEnc: 'Encrypted flows (observed)', kShadow: 'Undeclared flows (shadow)',
    kCritClear: 'Critical applications with flows in clear', notObserved: 'no observation',
    byCrit: 'By criticality', byHosting: 'By hosting', byIface: 'Interface families', byEai: 'Dependency on EAIs',
    hubs: 'Most connected applications', direct: '(no EAI)', detailed: 'Detailed', compact: 'Compact', print: 'Print',
    editor: 'Editor', referent: 'Referent', servers: 'Servers', noServer: 'no server', search: 'Search…',
    source: 'Source', target: 'Target', protocol: 'Protocol', port: 'Port', msgType: 'Message type',
    ifaceType: 'Interface type', eai: 'EAI', encrypted: 'Encrypted', observed: 'Observed', both: 'Source and target',
    sources: 'Sources', targets: 'Targets', diagram: 'Flow diagram', list: 'Flow list', allEtabs: 'All establishments',
    stEncrypted: 'encrypted', stClear: 'in clear', stObserved: 'observed', stDno: 'declared, not observed', stShadow: 'shadow (not declared)',
    start: 'Component', status: 'Status', simulate: 'Simulate', eaiNodes: 'EAIs and guichet routes as nodes',
    impacted: 'Impacted applications', depth: 'Depth', causes: 'Causes', report: 'Download the report (Markdown)',
    hs: 'Down', degrade: 'Degraded', intermittent: 'Intermittent', latence: 'Latency',
    application: 'Application', server: 'Server', flow: 'Flow', route: 'guichet route', none: 'No impact.',
    score: 'Overall score', completeness: 'Completeness', coherence: 'Coherence', validity: 'Validity', exploitability: 'Exploitability',
    findings: 'Findings', dimension: 'Dimension', checks: 'checks', severity: 'Severity', subject: 'Subject', message: 'Finding', noQuality: 'Data quality not computed.',
    sevcritical: 'Critical', sevhigh: 'High', sevmedium: 'Medium', sevlow: 'Low', generated: 'Data as of',
    yesMark: 'yes', noMark: 'no', count: 'Messages', route_: 'Route', name: 'Name', ip: 'IP', role: 'Role', os: 'OS',
  },
};

const DIMENSIONS = ['completeness', 'coherence', 'validity', 'exploitability'];
const SEVERITIES = ['critical', 'high', 'medium', 'low'];
const VIEWS = ['indicators', 'business', 'applications', 'flows', 'matrix', 'incident', 'quality'];
const COLOURS = { Medicale: '#4caf50', Administrative: '#ffeb3b', Planification: '#2196f3', Facturation: '#f44336', Autre: '#9e9e9e' };
const STATES = [['encrypted', 'stEncrypted'], ['clear', 'stClear'], ['observed', 'stObserved'],
  ['declared-not-observed', 'stDno'], ['shadow', 'stShadow']];

let state = { view: 'indicators', params: new URLSearchParams(), lang: DATA.lang };
const t = (key) => TEXT[state.lang][key] || key;

// --- small DOM helpers -------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}
const table = (heads, rows) => h('table', {}, h('thead', {}, h('tr', {}, heads.map(x => h('th', {}, x)))),
  h('tbody', {}, rows.map(r => h('tr', {}, r.map(c => h('td', {}, c))))));
const uniq = (list) => Array.from(new Set(list)).sort();
const appName = (tri) => DATA.trigrammes[tri] || tri;
const pct = (num, den) => den ? (num / den * 100).toFixed(1) : '0.0';

// --- the filters, as it-lanscape applies them -------------------------------
function filters() {
  const p = state.params;
  return {
    etab: p.getAll('etab'), domaine: p.getAll('domain'), criticite: p.get('criticality') || '',
    heberg: p.get('hosting') || '', interface: p.get('interface') || '', multi: p.get('multi') || '',
  };
}

function filtered(f) {
  return DATA.landscape.etablissements
    .filter(e => !f.etab.length || f.etab.includes(e.nom))
    .map(e => ({ ...e, domaines: e.domaines
      .filter(d => !f.domaine.length || f.domaine.includes(d.nom))
      .map(d => ({ ...d, processus: d.processus.map(p => ({ ...p, applications: p.applications.filter(app => {
        const crit = !f.criticite || (f.criticite === 'Standard' && app.criticite !== 'Critique')
          || (f.criticite === 'Critique' && app.criticite === 'Critique');
        const iface = !f.interface || (app.interfaces || {})[f.interface];
        const multi = !f.multi || (f.multi === 'Oui') === app.multiEtablissement;
        const heberg = !f.heberg || app.hebergement === f.heberg;
        return crit && iface && multi && heberg;
      }) })) })) }));
}

function occurrences(etabs) {
  const out = [];
  for (const e of etabs) for (const d of e.domaines) for (const p of d.processus)
    for (const a of p.applications) out.push({ e, d, p, a });
  return out;
}

// --- it-lanscape's four figures ------------------------------------------------
function kpis(etabs) {
  let shown = 0, multi = 0, filled = 0;
  const presence = {}, apps = {};
  for (const e of etabs) for (const d of e.domaines) for (const p of d.processus) {
    const key = `${d.nom}::${p.nom}`;
    presence[key] = presence[key] || new Set();
    if (p.applications.length) presence[key].add(e.nom);
    apps[key] = apps[key] || {};
    for (const a of p.applications) {
      shown++;
      if (a.multiEtablissement) multi++;
      if (a.editeur) filled++;
      if (a.referent) filled++;
      if (a.lienPRTG) filled++;
      (apps[key][e.nom] = apps[key][e.nom] || new Set()).add(a.nom);
    }
  }
  let counted = 0, aligned = 0;
  for (const map of Object.values(apps)) {
    const sigs = Object.values(map).map(s => [...s].sort().join('|'));
    if (sigs.length > 1) { counted++; if (new Set(sigs).size === 1) aligned++; }
  }
  const names = etabs.map(e => e.nom);
  let sum = 0, pairs = 0;
  for (let i = 0; i < names.length; i++) for (let j = i + 1; j < names.length; j++) {
    const a = Object.keys(presence).filter(k => presence[k].has(names[i]));
    const b = new Set(Object.keys(presence).filter(k => presence[k].has(names[j])));
    const inter = a.filter(k => b.has(k)).length;
    const union = new Set([...a, ...b]).size;
    sum += union ? inter / union : 1; pairs++;
  }
  const proc = names.length === 1 ? 100 : pairs ? sum / pairs * 100 : 0;
  return { applications: shown, procPct: proc.toFixed(1), alignPct: pct(aligned, counted),
    multiPct: pct(multi, shown), complPct: pct(filled, 3 * shown) };
}

// --- guichet's own figures over the admitted establishments -----------------
function flowsOf(f) {
  return DATA.flows.filter(x => !f.etab.length || f.etab.includes(x.etablissement));
}

function ownFigures(f, etabs) {
  const flows = flowsOf(f);
  const critical = new Set(occurrences(etabs).filter(o => o.a.criticite === 'Critique').map(o => o.a.trigramme).filter(Boolean));
  const clear = [...critical].filter(tri => flows.some(x => !x.encrypted && (x.source === tri || x.target === tri))
    || DATA.observed.some(o => !(o.tls_in && o.tls_out) && (o.source_trigramme === tri || o.target_trigramme === tri)));
  const observed = DATA.observed.length > 0;
  return {
    flows: flows.length,
    encryptedPct: pct(flows.filter(x => x.encrypted).length, flows.length),
    observedPct: observed ? pct(flows.filter(x => x.observed).length, flows.length) : null,
    observedEncryptedPct: observed ? pct(DATA.observed.filter(o => o.tls_in && o.tls_out).length, DATA.observed.length) : null,
    shadow: DATA.shadowFlows,
    criticalInClear: clear.sort(),
    eai: countBy(flows, x => x.eai.trim()),
    hubs: hubs(flows),
  };
}

function countBy(list, key) {
  const m = new Map();
  for (const x of list) m.set(key(x), (m.get(key(x)) || 0) + 1);
  return [...m.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
}

function hubs(flows) {
  const ends = flows.flatMap(x => [x.source, x.target]).filter(Boolean);
  return countBy(ends.map(tri => ({ tri })), o => o.tri).slice(0, 10);
}

// --- views ---------------------------------------------------------------------
function select(name, label, options, multiple) {
  const current = multiple ? state.params.getAll(name) : [state.params.get(name) || ''];
  const el = h('select', { name, multiple, onchange: (ev) => {
    state.params.delete(name);
    for (const o of ev.target.selectedOptions) if (o.value) state.params.append(name, o.value);
    go(state.view);
  } }, multiple ? [] : h('option', { value: '' }, t('all')),
  options.map(([value, text]) => h('option', { value, selected: current.includes(value) }, text)));
  return h('label', {}, label, el);
}

function filterBar() {
  const all = occurrences(DATA.landscape.etablissements);
  const families = uniq(all.flatMap(o => Object.entries(o.a.interfaces || {}).filter(([, on]) => on).map(([k]) => k)));
  const pairs = (list) => list.map(x => [x, x]);
  return h('div', { class: 'filters' },
    select('etab', t('etab'), pairs(uniq(DATA.landscape.etablissements.map(e => e.nom))), true),
    select('domain', t('domain'), pairs(uniq(all.map(o => o.d.nom))), true),
    select('criticality', t('criticality'), [['Critique', t('critical')], ['Standard', t('standard')]]),
    select('hosting', t('hosting'), pairs(uniq(all.map(o => o.a.hebergement).filter(x => x !== null && x !== undefined)))),
    select('interface', t('iface'), pairs(families)),
    select('multi', t('multi'), [['Oui', t('yes')], ['Non', t('no')]]));
}

function card(id, key, value, own) {
  const figure = /^[0-9]/.test(String(value));
  return h('div', { class: own ? 'card own' : 'card', id }, h('div', { class: figure ? 'v' : 'v s' }, value), h('div', { class: 'k' }, t(key)));
}

function bars(title, entries) {
  const max = Math.max(1, ...entries.map(([, n]) => n));
  return h('div', { class: 'chart' }, h('h3', {}, title), entries.map(([label, n]) => h('div', { class: 'bar' },
    h('span', { class: 't', title: label }, label), h('span', {}, h('div', { class: 'f', style: { width: `${n / max * 100}%` } })),
    h('span', {}, n))));
}

function viewIndicators() {
  const f = filters();
  const etabs = filtered(f);
  const k = kpis(etabs);
  const own = ownFigures(f, etabs);
  const occ = occurrences(etabs);
  const families = Object.keys(COLOURS).map(fam => [fam, occ.filter(o => (o.a.interfaces || {})[fam]).length]);
  return [h('h2', {}, t('indicators')), filterBar(),
    h('div', { class: 'cards' },
      card('k-applications', 'kApps', k.applications), card('k-proc', 'kProc', `${k.procPct} %`),
      card('k-align', 'kAlign', `${k.alignPct} %`), card('k-multi', 'kMulti', `${k.multiPct} %`),
      card('k-compl', 'kCompl', `${k.complPct} %`)),
    h('div', { class: 'cards' },
      card('k-flows', 'kFlows', own.flows, true), card('k-encrypted', 'kEnc', `${own.encryptedPct} %`, true),
      card('k-observed', 'kObs', own.observedPct === null ? t('notObserved') : `${own.observedPct} %`, true),
      card('k-observed-encrypted', 'kObsEnc', own.observedEncryptedPct === null ? t('notObserved') : `${own.observedEncryptedPct} %`, true),
      card('k-shadow', 'kShadow', own.shadow, true), card('k-critical-clear', 'kCritClear', own.criticalInClear.length, true)),
    h('div', { class: 'charts' },
      bars(t('byCrit'), [[t('critical'), occ.filter(o => o.a.criticite === 'Critique').length],
        [t('standard'), occ.filter(o => o.a.criticite !== 'Critique').length]]),
      bars(t('byHosting'), countBy(occ, o => String(o.a.hebergement ?? ''))),
      bars(t('byIface'), families),
      bars(t('byEai'), own.eai.map(([e, n]) => [e || t('direct'), n])),
      bars(t('hubs'), own.hubs.map(([tri, n]) => [`${tri} · ${appName(tri)}`, n])),
      h('div', { class: 'chart' }, h('h3', {}, t('kCritClear')),
        own.criticalInClear.map(tri => h('span', { class: 'badge crit', title: appName(tri) }, `${tri} · ${appName(tri)}`))))];
}

function appCard(a) {
  const fams = Object.entries(a.interfaces || {}).filter(([, on]) => on).map(([k]) => k);
  const first = Object.keys(COLOURS).find(k => fams.includes(k));
  return h('div', { class: 'app', style: { '--c': COLOURS[first] || '#64748b' } },
    h('div', {}, h('span', { class: 'n' }, a.nom ?? ''), h('span', { class: 'badge' }, a.trigramme),
      a.criticite === 'Critique' ? h('span', { class: 'badge crit' }, t('critical')) : null),
    h('div', { class: 'm' }, [a.editeur, a.hebergement].filter(Boolean).join(' · ')),
    h('div', { class: 'chips' }, fams.map(k => h('span', { class: 'chip', style: { '--c': COLOURS[k] || '#ddd' } }, k))));
}

function viewBusiness() {
  const compact = state.params.get('mode') === 'compact';
  const mode = (m) => () => { state.params.set('mode', m); go('business'); };
  return [h('h2', {}, t('business')), filterBar(),
    h('div', { class: 'noprint', style: { marginBottom: '10px' } },
      h('button', { class: 'act', onclick: mode('detailed') }, t('detailed')), ' ',
      h('button', { class: 'act', onclick: mode('compact') }, t('compact')), ' ',
      h('button', { class: 'act', onclick: () => window.print() }, t('print'))),
    h('div', { class: compact ? 'compact' : '' }, filtered(filters()).map(e => h('section', { class: 'etab' },
      h('h3', {}, e.nom), h('div', { class: 'domains' }, e.domaines.map(d => h('div', { class: 'domain' },
        h('b', {}, d.nom), d.processus.map(p => h('div', { class: 'process' },
          h('i', {}, p.nom), p.applications.map(appCard))))))))) ];
}

function viewApplications() {
  const q = (state.params.get('q') || '').toLowerCase();
  const byTri = new Map();
  for (const o of occurrences(filtered(filters()))) {
    const tri = o.a.trigramme || '—';
    if (!byTri.has(tri)) byTri.set(tri, { a: o.a, etabs: new Set() });
    byTri.get(tri).etabs.add(o.e.nom);
  }
  const rows = [...byTri.entries()].sort((x, y) => (x[0] < y[0] ? -1 : 1))
    .filter(([tri, v]) => !q || `${tri} ${v.a.nom} ${v.a.editeur}`.toLowerCase().includes(q))
    .map(([tri, v]) => {
      const servers = DATA.servers.filter(s => s.trigramme === tri);
      return [tri, String(v.a.nom ?? ''), String(v.a.editeur ?? ''), String(v.a.hebergement ?? ''),
        v.a.criticite === 'Critique' ? h('span', { class: 'badge crit' }, t('critical')) : t('standard'),
        [...v.etabs].join(', '),
        servers.length ? h('div', {}, servers.map(s => h('div', {}, `${s.vm} · ${s.ip} · ${s.role} · ${s.os}`)))
          : h('span', { class: 'muted' }, t('noServer'))];
    });
  const search = h('input', { type: 'search', placeholder: t('search'), value: state.params.get('q') || '',
    onchange: (ev) => { state.params.set('q', ev.target.value); go('applications'); } });
  return [h('h2', {}, t('applications')), filterBar(), h('div', { class: 'filters' }, search),
    table(['Trigramme', t('name'), t('editor'), t('hosting'), t('criticality'), t('etab'), t('servers')], rows)];
}

function etabSelect(view) {
  const current = state.params.get('etab') || '';
  return h('div', { class: 'filters' }, h('label', {}, t('etab'), h('select', { onchange: (ev) => {
    state.params.delete('etab'); if (ev.target.value) state.params.set('etab', ev.target.value); go(view);
  } }, h('option', { value: '' }, t('allEtabs')),
  uniq(DATA.flows.map(x => x.etablissement)).map(e => h('option', { value: e, selected: e === current }, e)))));
}

function flowDiagram(flows) {
  const out = new Set(flows.map(x => x.source)), inn = new Set(flows.map(x => x.target));
  const all = uniq([...out, ...inn].filter(Boolean));
  const cols = [all.filter(a => out.has(a) && !inn.has(a)), all.filter(a => out.has(a) && inn.has(a)),
    all.filter(a => !out.has(a) && inn.has(a))];
  const W = 230, BW = 170, BH = 26, GAP = 8, X = [0, 330, 660];
  const at = new Map();
  cols.forEach((col, c) => col.forEach((tri, r) => at.set(tri, { x: X[c], y: 30 + r * (BH + GAP) })));
  const height = 40 + Math.max(...cols.map(c => c.length), 1) * (BH + GAP);
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('width', X[2] + W); svg.setAttribute('height', height);
  const el = (tag, attrs, text) => { const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (text) e.textContent = text; svg.append(e); return e; };
  [t('sources'), t('both'), t('targets')].forEach((title, c) => el('text', { x: X[c], y: 16, 'font-weight': 600 }, title));
  for (const x of flows) {
    const a = at.get(x.source), b = at.get(x.target);
    if (!a || !b || a === b) continue;
    const line = el('line', { x1: a.x + BW, y1: a.y + BH / 2, x2: b.x, y2: b.y + BH / 2,
      stroke: x.encrypted ? '#15803d' : '#b45309', 'stroke-width': 1.2, opacity: 0.7 });
    line.append(Object.assign(document.createElementNS(ns, 'title'), { textContent: `${x.source} → ${x.target} · ${x.protocol} ${x.messageType}` }));
  }
  for (const [tri, p] of at) {
    el('rect', { x: p.x, y: p.y, width: BW, height: BH, rx: 5, fill: '#fff', stroke: '#475569' });
    el('text', { x: p.x + 6, y: p.y + 17 }, `${tri} · ${appName(tri)}`.slice(0, 26));
  }
  return svg;
}

function viewFlows() {
  const etab = state.params.get('etab');
  const flows = DATA.flows.filter(x => !etab || x.etablissement === etab);
  const mark = (b) => (b ? t('yesMark') : t('noMark'));
  const rows = flows.map(x => [x.id, `${x.source} · ${appName(x.source)}`, `${x.target} · ${appName(x.target)}`, x.protocol,
    x.port ?? '', x.messageType, x.interfaceType, x.eai, mark(x.encrypted), DATA.observed.length ? mark(x.observed) : '—']);
  return [h('h2', {}, t('flows')), etabSelect('flows'), h('h3', {}, t('diagram')),
    h('div', { class: 'scroll', style: { maxHeight: '60vh', background: '#fff' } }, flowDiagram(flows)),
    h('h3', {}, t('list')),
    table(['Id', t('source'), t('target'), t('protocol'), t('port'), t('msgType'), t('ifaceType'), t('eai'), t('encrypted'), t('observed')], rows)];
}

function legend() {
  return h('div', { class: 'legend' }, STATES.map(([s, key]) => h('span', {}, h('i', { class: `s-${s}` }), t(key))));
}

// Rust's order of texts (code point by code point), which the matrix's
// rows and exchanges follow.
function byCodePoint(a, b) {
  let i = 0;
  while (i < a.length && i < b.length) {
    const x = a.codePointAt(i), y = b.codePointAt(i);
    if (x !== y) return x < y ? -1 : 1;
    i += x > 0xffff ? 2 : 1;
  }
  return (a.length > i) - (b.length > i);
}
// What Rust's str::trim takes off: Unicode White_Space.
const trimmed = (text) => text.replace(/^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g, '');

// The application × application matrix, as matrix.rs makes it: a cell per
// pair a declared or observed flow joins, with the exchanges between them
// and what is known of the pair. Made once, when first shown.
let MATRIX = null;
function flowMatrix() {
  if (MATRIX) return MATRIX;
  const pairs = new Map();
  const pair = (source, target) => {
    const key = `${source}\u0000${target}`;
    if (!pairs.has(key)) pairs.set(key, { source, target, exchanges: new Set(), declared: false, seen: false,
      shadow: false, encrypted: true, count: 0 });
    return pairs.get(key);
  };
  const exchange = (protocol, type) => trimmed(`${protocol} ${type}`);
  for (const f of DATA.flows) {
    const p = pair(f.source, f.target);
    p.exchanges.add(exchange(f.protocol, f.messageType));
    p.declared = true;
    p.seen ||= f.observed;
    p.encrypted &&= f.encrypted;
  }
  for (const o of DATA.observed) {
    if (o.source_trigramme === null || o.target_trigramme === null) continue;
    const p = pair(o.source_trigramme, o.target_trigramme);
    p.exchanges.add(exchange(o.kind.toUpperCase(), o.message_type));
    p.shadow ||= !o.declared;
    p.encrypted &&= o.tls_in && o.tls_out;
    p.count += o.count;
  }
  const observing = DATA.observed.length > 0;
  const stateOf = (p) => (p.shadow || !p.declared ? 'shadow' : !observing ? (p.encrypted ? 'encrypted' : 'clear')
    : p.seen ? 'observed' : 'declared-not-observed');
  const cells = [...pairs.values()].sort((a, b) => byCodePoint(a.source, b.source) || byCodePoint(a.target, b.target))
    .map(p => ({ source: p.source, target: p.target, exchanges: [...p.exchanges].sort(byCodePoint), state: stateOf(p),
      observedCount: p.count }));
  const applications = [...new Set(cells.flatMap(c => [c.source, c.target]).filter(Boolean))].sort(byCodePoint);
  MATRIX = { applications, cells };
  return MATRIX;
}

function viewMatrix() {
  const etab = state.params.get('etab');
  const keep = etab ? new Set(DATA.flows.filter(x => x.etablissement === etab).flatMap(x => [x.source, x.target])) : null;
  const matrix = flowMatrix();
  const apps = matrix.applications.filter(a => !keep || keep.has(a));
  const cells = new Map(matrix.cells.map(c => [`${c.source}\u0000${c.target}`, c]));
  const label = Object.fromEntries(STATES.map(([s, key]) => [s, t(key)]));
  const head = h('tr', {}, h('th', { class: 'row' }, '↓ ' + t('source') + ' / ' + t('target') + ' →'), apps.map(a => h('th', { title: appName(a) }, a)));
  const rows = apps.map(s => h('tr', {}, h('th', { class: 'row', title: appName(s) }, s), apps.map(tg => {
    const c = cells.get(`${s}\u0000${tg}`);
    if (!c) return h('td', {});
    return h('td', { class: `c s-${c.state}`, 'data-pair': `${s}-${tg}`, 'data-state': c.state,
      title: `${s} → ${tg}\n${c.exchanges.join('\n')}\n${label[c.state]}${c.observedCount ? ` · ${c.observedCount}` : ''}` },
    c.exchanges.length);
  })));
  return [h('h2', {}, t('matrix')), etabSelect('matrix'), legend(),
    h('div', { class: 'scroll matrix' }, h('table', {}, h('thead', {}, head), h('tbody', {}, rows)))];
}

// --- incident simulation: it-lanscape's rules, EAIs and routes as nodes on demand
const RANK = { hs: 4, degrade: 3, intermittent: 2, latence: 1 };
const worse = (a, b) => (!a ? b : RANK[b] > RANK[a] ? b : a);
const lower = (s) => (s === 'hs' ? 'degrade' : s);

function propagate(status, depth, iface) {
  if (depth >= 5) return null;
  if (depth === 0) return status;
  const sync = /(sync|temps.r[eé]el|eai|middleware|api)/i.test(iface || '');
  if (depth === 1) return sync ? lower(status) : (RANK[status] >= RANK.degrade ? 'latence' : null);
  return RANK[status] >= RANK.degrade ? 'latence' : null;
}

// The graph is guichet's own (the same links `guichet map incident` walks,
// computed when the site was built); the walk and the starts follow
// it-lanscape's runAnalysis.
// The graph by it-lanscape's rules is the declared flows, one link each;
// guichet's adds a hop out of the EAI node each flow crosses, and the
// links of observed traffic. Made once, when first walked.
const NETWORKS = new Map();
function network(eaiNodes) {
  if (NETWORKS.has(eaiNodes)) return NETWORKS.get(eaiNodes);
  const inc = DATA.incident;
  const label = (node) => (node.startsWith('eai:') ? node.slice(4) : node.startsWith('route:') ? node.slice(6)
    : Object.hasOwn(inc.labels, node) ? inc.labels[node] : node);
  const link = (source, target, iface) => ({ source, target, iface, sourceLabel: label(source), targetLabel: label(target) });
  const links = [];
  for (const f of DATA.flows) {
    links.push(link(f.source, f.target, f.interfaceType));
    if (eaiNodes && Object.hasOwn(inc.relays, f.eai)) links.push(link(inc.relays[f.eai], f.target, f.interfaceType));
  }
  const net = eaiNodes ? { links: links.concat(inc.observed), eais: inc.eais, routes: inc.routes }
    : { links, eais: {}, routes: [] };
  NETWORKS.set(eaiNodes, net);
  return net;
}

function simulate(kind, value, status, eaiNodes) {
  const net = network(eaiNodes);
  const impacted = new Map();
  const add = (node, st, cause, depth) => {
    if (!node) return false;
    const cur = impacted.get(node);
    if (!cur) { impacted.set(node, { node, status: st, causes: [cause], depth }); return true; }
    const merged = worse(cur.status, st);
    if (!cur.causes.includes(cause)) cur.causes.push(cause);
    const improved = merged !== cur.status || depth < cur.depth;
    cur.status = merged; cur.depth = Math.min(depth, cur.depth);
    return improved;
  };
  const out = new Map();
  for (const l of net.links) (out.get(l.source) || out.set(l.source, []).get(l.source)).push(l);
  if (kind === 'app') add(value, status, `${appName(value)} (${value})`, 0);
  if (kind === 'eai' && net.eais[value]) add(net.eais[value], status, value, 0);
  if (kind === 'route') add(`route:${value}`, status, value, 0);
  if (kind === 'server') startServer(value, status, add);
  if (kind === 'flow') {
    const flow = DATA.flows.find(x => x.id === value);
    if (flow) {
      const label = `${flow.id} • ${flow.etablissement}`;
      const tgt = propagate(status, 1, flow.interfaceType) || 'latence';
      add(flow.target, tgt, label, 0);
      add(flow.source, lower(tgt), label, 0);
    }
  }
  const queue = [...impacted.values()].map(i => ({ node: i.node, status: i.status, depth: i.depth }));
  const seen = new Set();
  while (queue.length) {
    const cur = queue.shift();
    const key = `${cur.node}\u0000${cur.depth}`;
    if (seen.has(key)) continue;
    seen.add(key);
    for (const l of out.get(cur.node) || []) {
      const st = propagate(cur.status, cur.depth + 1, l.iface);
      if (!st) continue;
      if (add(l.target, st, `${l.sourceLabel} → ${l.targetLabel}`, cur.depth + 1)) queue.push({ node: l.target, status: st, depth: cur.depth + 1 });
    }
  }
  const crit = new Set(occurrences(DATA.landscape.etablissements).filter(o => o.a.criticite === 'Critique').map(o => o.a.trigramme));
  return [...impacted.values()].filter(i => !/^(eai|route):/.test(i.node)).map(i => ({ ...i, critical: crit.has(i.node) }))
    .sort((a, b) => (b.critical - a.critical) || (RANK[b.status] - RANK[a.status]) || (a.depth - b.depth) || (a.node < b.node ? -1 : 1));
}

// A server passes its full status to its application when its role looks
// like a database or the application has one server, else hs → dégradé.
function startServer(value, status, add) {
  const [etab, vm] = value.includes('::') ? value.split('::') : [null, value];
  const srv = DATA.servers.find(s => s.trigramme && s.vm === vm && (!etab || s.etablissement === etab));
  if (!srv) return;
  const all = DATA.servers.filter(s => s.trigramme === srv.trigramme);
  const judged = all.find(s => s.vm === vm);
  const db = /(^|[^a-z0-9_])(db|database|base|bdd|sql|oracle|mysql|postgres|mongo|data)($|[^a-z0-9_])/.test((judged.declaredRole || '').toLowerCase());
  add(srv.trigramme, db || all.length <= 1 ? status : lower(status), `${vm} (${srv.trigramme}) • ${srv.etablissement}`, 0);
}

function download(name, text) {
  const a = h('a', { href: URL.createObjectURL(new Blob([text], { type: 'text/markdown' })), download: name });
  document.body.append(a); a.click(); a.remove();
}

function incidentMarkdown(start, status, list) {
  const lines = [`# ${t('incident')}`, '', `- ${t('start')} : ${start}`, `- ${t('status')} : ${t(status)}`, `- ${t('generated')} ${DATA.generated}`, '',
    `## ${t('impacted')} (${list.length})`, '', `| Trigramme | ${t('name')} | ${t('status')} | ${t('depth')} | ${t('criticality')} |`, '|---|---|---|---|---|'];
  for (const i of list) lines.push(`| ${i.node} | ${appName(i.node)} | ${t(i.status)} | ${i.depth} | ${i.critical ? t('critical') : t('standard')} |`);
  return lines.join('\n') + '\n';
}

function viewIncident() {
  const p = state.params;
  const kind = p.get('kind') || 'app', status = p.get('status') || 'hs', eaiNodes = p.get('eaiNodes') === '1';
  const value = p.get('value') || '';
  const choices = {
    app: uniq(occurrences(DATA.landscape.etablissements).map(o => o.a.trigramme).filter(Boolean)).map(x => [x, `${x} · ${appName(x)}`]),
    server: DATA.servers.map(s => [`${s.etablissement}::${s.vm}`, `${s.vm} (${s.trigramme}) · ${s.etablissement}`]),
    flow: DATA.flows.map(x => [x.id, `${x.id} · ${x.source} → ${x.target}`]),
    eai: Object.keys(DATA.incident.eais).map(x => [x, x]),
    route: DATA.incident.routes.map(x => [x, x]),
  };
  const set = (k) => (ev) => { p.set(k, ev.target.type === 'checkbox' ? (ev.target.checked ? '1' : '0') : ev.target.value); if (k === 'kind') p.delete('value'); go('incident'); };
  const kinds = [['app', t('application')], ['server', t('server')], ['flow', t('flow')]]
    .concat(eaiNodes ? [['eai', t('eai')], ['route', t('route')]] : []);
  const form = h('div', { class: 'filters' },
    h('label', {}, t('start'), h('select', { onchange: set('kind') }, kinds.map(([v, l]) => h('option', { value: v, selected: v === kind }, l)))),
    h('label', {}, '\u00a0', h('select', { id: 'incident-value', onchange: set('value') }, h('option', { value: '' }, '—'),
      (choices[kind] || []).map(([v, l]) => h('option', { value: v, selected: v === value }, l)))),
    h('label', {}, t('status'), h('select', { onchange: set('status') }, Object.keys(RANK).map(s => h('option', { value: s, selected: s === status }, t(s))))),
    h('label', {}, t('eaiNodes'), h('input', { type: 'checkbox', checked: eaiNodes, onchange: set('eaiNodes') })));
  const out = [h('h2', {}, t('incident')), form];
  if (!value) return out;
  const list = simulate(kind, value, status, eaiNodes);
  out.push(h('h3', {}, `${t('impacted')} (${list.length})`),
    list.length ? h('table', { id: 'impacted' },
      h('thead', {}, h('tr', {}, ['Trigramme', t('name'), t('status'), t('depth'), t('criticality'), t('causes')].map(x => h('th', {}, x)))),
      h('tbody', {}, list.map(i => h('tr', { 'data-node': i.node, 'data-status': i.status, 'data-depth': i.depth },
        [i.node, appName(i.node), h('span', { class: `st-${i.status}` }, t(i.status)), i.depth,
          i.critical ? h('span', { class: 'badge crit' }, t('critical')) : t('standard'), i.causes.join(' ; ')].map(c => h('td', {}, c)))))) : t('none'),
    h('p', {}, h('button', { class: 'act', onclick: () => download('incident.md', incidentMarkdown(value, status, list)) }, t('report'))));
  return out;
}

// The data-quality report in Markdown, as `guichet map check` writes it
// (quality/markdown.rs), in the language the site was built in: a
// summary, the dimensions, the findings by severity, guichet's own apart.
function qualityMarkdown() {
  const q = DATA.quality;
  const pick = (fr, en) => (DATA.lang === 'fr' ? fr : en);
  const cell = (text) => String(text).replaceAll('|', '\\|').replaceAll('\r\n', '<br>').replaceAll('\n', '<br>');
  const mdTable = (headers, rows) => {
    if (!rows.length) return pick('_Aucune donnée._', '_No data._');
    const line = (cells) => `| ${cells.join(' | ')} |`;
    return [line(headers.map(cell)), line(headers.map(() => '---')), ...rows.map(r => line(r.map(cell)))].join('\n');
  };
  const own = q.findings.filter(f => !f.extra), extra = q.findings.filter(f => f.extra);
  const count = (severity) => String(own.filter(f => f.severity === severity).length);
  const m = q.metrics;
  const summary = mdTable([pick('Indicateur', 'Indicator'), pick('Valeur', 'Value')], [
    [pick('Score global', 'Overall score'), `${q.score}/100`], ['Applications', String(m.applications)],
    [pick('Établissements', 'Establishments'), String(m.establishments)], [pick('Serveurs', 'Servers'), String(m.servers)],
    [pick('Serveurs réseau', 'Network servers'), String(m.networkServers)], [pick('Flux', 'Flows'), String(m.flows)],
    [pick('Anomalies', 'Findings'), String(own.length)], [pick('Critiques', 'Critical'), count('critical')],
    [pick('Fortes', 'High'), count('high')]]);
  const dims = mdTable(['Dimension', 'Score', pick('Contrôles conformes', 'Checks passed')], DIMENSIONS.map(d => {
    const s = q.dimensions[d];
    return [q.labels[d], `${s.score}%`, `${s.passed}/${s.total}`];
  }));
  const bySeverity = (findings) => {
    const headers = ['Dimension', pick('Anomalie', 'Finding'), pick('Détail', 'Detail'), pick('Recommandation', 'Recommendation')];
    const out = [];
    for (const severity of SEVERITIES) {
      const rows = findings.filter(f => f.severity === severity).map(f => [q.labels[f.dimension], f.title, f.message, f.recommendation]);
      if (rows.length) out.push(`### ${q.labels[severity]} (${rows.length})\n\n${mdTable(headers, rows)}\n`);
    }
    if (!out.length) out.push(`${pick('_Aucune anomalie._', '_No findings._')}\n`);
    return out;
  };
  const parts = [`# ${pick('Qualité des données', 'Data quality')}\n`, `## ${pick('Synthèse', 'Summary')}\n\n${summary}\n`,
    `## Dimensions\n\n${dims}\n`, `## ${pick('Anomalies', 'Findings')}\n`, ...bySeverity(own)];
  if (extra.length) {
    parts.push(`## ${pick('Contrôles propres à guichet (hors score)', "guichet's own checks (not scored)")}\n\n${
      pick('Ces constats ne comptent ni dans les dimensions ni dans le score.', 'These findings count in no dimension and not in the score.')}\n`,
    ...bySeverity(extra));
  }
  return parts.join('\n');
}

function viewQuality() {
  const q = DATA.quality;
  if (!q) return [h('h2', {}, t('quality')), h('p', {}, t('noQuality'))];
  const dims = DIMENSIONS;
  return [h('h2', {}, t('quality')),
    h('div', { class: 'cards' }, card('q-score', 'score', q.score),
      dims.map(d => h('div', { class: 'card', id: `q-${d}` }, h('div', { class: 'v' }, q.dimensions[d].score),
        h('div', { class: 'k' }, `${t(d)} · ${q.dimensions[d].passed}/${q.dimensions[d].total} ${t('checks')}`)))),
    h('p', {}, h('button', { class: 'act', onclick: () => download('qualite.md', qualityMarkdown()) }, t('report'))),
    h('h3', {}, `${t('findings')} (${q.findings.length})`),
    table([t('severity'), t('dimension'), 'Code', t('subject'), t('message')], q.findings.map(f => [
      h('span', { class: `sev-${f.severity}` }, t(`sev${f.severity}`)), t(f.dimension), f.code, f.subject, f.message]))];
}

const RENDER = { indicators: viewIndicators, business: viewBusiness, applications: viewApplications, flows: viewFlows,
  matrix: viewMatrix, incident: viewIncident, quality: viewQuality };

// --- navigation: the view and its settings live in the address's fragment ----
function go(view) {
  const q = state.params.toString();
  const hash = `#${view}${q ? `?${q}` : ''}`;
  if (location.hash !== hash) history.replaceState(null, '', hash);
  render(view);
}

function read() {
  const [view, query] = location.hash.slice(1).split('?');
  state.view = VIEWS.includes(view) ? view : 'indicators';
  state.params = new URLSearchParams(query || '');
  if (state.params.get('lang') in TEXT) state.lang = state.params.get('lang');
}

function render(view) {
  state.view = view;
  document.documentElement.lang = state.lang;
  document.title = `${t('title')} — guichet`;
  const nav = document.getElementById('nav');
  nav.replaceChildren(...VIEWS.map(v => h('a', { href: `#${v}`, class: v === view ? 'on' : null,
    onclick: (ev) => { ev.preventDefault(); const lang = state.params.get('lang'); state.params = new URLSearchParams(lang ? { lang } : {}); go(v); } }, t(v))));
  document.getElementById('brand').textContent = t('title');
  const langs = document.getElementById('langs');
  langs.replaceChildren(...Object.keys(TEXT).map(l => h('button', { class: l === state.lang ? 'on' : null,
    onclick: () => { state.lang = l; state.params.set('lang', l); go(state.view); } }, l.toUpperCase())));
  document.getElementById('view').replaceChildren(...RENDER[view]());
  document.getElementById('footer').textContent = `${t('generated')} ${DATA.generated} · guichet`;
}

window.addEventListener('hashchange', () => { read(); render(state.view); });
read();
render(state.view);
// When the first view was on screen, in ms since navigation began: what a
// monitoring probe or the benchmark reads.
document.body.dataset.renderedMs = performance.now().toFixed(0);
