// The Train tab's curves, drawn in the page (digitnet/ui/curves.py mirrors the data it receives).
//
// Runs as a gr.HTML component's js_on_load: `element`, `props` and `watch` are Gradio's. The
// server streams small values into props.value; each is either a whole picture
// ({seq, reset: true, series: [...], ...}) or only what is new since the last one
// ({seq, add: {loss, loss_from, val, val_from}, progress, answers, caption}). Points:
//   loss: [epochs done, seconds since the run started, training loss]
//   val:  [epochs done, seconds, validation accuracy (0..1), validation loss, training accuracy]
// props.seed holds the seed article's recipe per model (benchmarks/results/seed_curves.json),
// drawn faintly when the visitor asks for it. Nothing here asks the server for anything: the
// only timer is the queue countdown, which counts down in the page.

const W = 420, H = 250, M = {left: 46, right: 12, top: 12, bottom: 34};
const COLORS = ['#2563eb', '#f97316', '#16a34a', '#dc2626', '#9333ea', '#0891b2', '#ca8a04', '#db2777'];
const SEED_COLOR = '#6b7280';
const SVGNS = 'http://www.w3.org/2000/svg';
const root = element.querySelector('.curves');
const progressBox = element.querySelector('.curves-progress');
const probeBox = element.querySelector('.curves-probe');
const seedBox = element.querySelector('input[data-role=seed]');
const charts = {loss: element.querySelector('[data-chart=loss]'), acc: element.querySelector('[data-chart=acc]')};
let state = {seq: null, series: [], seedModels: [], overlay: false, progress: null, probe: null, caption: {}};
let xAxis = 'epoch';
let countdown = null;

// ---- numbers ---------------------------------------------------------------------------------

// Round ticks (1, 2 or 5 x 10^k, never finer than 0.01) over [lo, hi]: the step and the values.
function niceTicks(lo, hi, count) {
  const span = Math.max(hi - lo, 1e-9);
  const raw = span / Math.max(count, 1);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / mag;
  let step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
  step = Math.max(step, 0.01);
  const values = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-6; v += step) values.push(v);
  return {step, values};
}

// A tick's label: as many decimals as its step needs, at most 2 ("0.25", "98.5", "120").
function tickLabel(v, step) {
  const decimals = Math.min(2, Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(decimals);
}

function clock(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
}

// ---- the data shown --------------------------------------------------------------------------

const X = (p) => (xAxis === 'epoch' ? p[0] : p[1]);

function seedCurves() {
  if (!seedBox || !seedBox.checked || !props.seed) return [];
  return state.seedModels.map((m) => props.seed[m]).filter(Boolean);
}

// Lines of one chart: {name, color, points: [[x, y]], dashed, markers, faint}.
function lines(chart) {
  const out = [];
  const many = state.overlay || state.series.length > 1;
  state.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    if (chart === 'loss') {
      out.push({name: many ? T('line_run_training', {name: s.name}, s.name + ' · training')
                             : T('line_training', {}, 'training (smoothed)'), color: many ? color : COLORS[0],
                points: s.loss.map((p) => [X(p), p[2]])});
      if (!many) {
        out.push({name: T('line_validation', {}, 'validation'), color: COLORS[1], markers: true, dashed: true,
                  points: s.val.filter((p) => p[3] !== null).map((p) => [X(p), p[3]])});
      }
    } else {
      out.push({name: many ? T('line_run_validation', {name: s.name}, s.name + ' · validation')
                             : T('line_validation', {}, 'validation'), color: many ? color : COLORS[1], markers: true,
                points: s.val.filter((p) => p[2] !== null).map((p) => [X(p), 100 * p[2]])});
      if (!many) {
        out.push({name: T('line_train_since', {}, 'training (since the previous point)'), color: COLORS[0], dashed: true,
                  points: s.val.filter((p) => p[4] !== null && p[4] !== undefined).map((p) => [X(p), 100 * p[4]])});
      }
    }
  });
  for (const seed of seedCurves()) {
    const pts = chart === 'loss' ? seed.loss.map((p) => [X(p), p[2]]) : seed.val.map((p) => [X(p), 100 * p[2]]);
    const label = seed.words ? T(seed.words, {name: seed.name, date: seed.date}, seed.label) : seed.label;
    out.push({name: label, color: SEED_COLOR, faint: true, points: pts});
  }
  return out;
}

function xDomain() {
  let hi = 0;
  for (const s of state.series) for (const p of [...s.loss, ...s.val]) hi = Math.max(hi, X(p));
  if (hi <= 0) {  // no run yet: the seed's whole curve, if shown
    for (const seed of seedCurves()) for (const p of seed.val) hi = Math.max(hi, X(p));
  }
  return [0, hi > 0 ? hi : 1];
}

function yDomain(chart, shown) {
  const ys = [];
  for (const l of shown) for (const p of l.points) ys.push(p[1]);
  if (!ys.length) return chart === 'acc' ? [0, 100] : [0, 1];
  let lo = Math.min(...ys), hi = Math.max(...ys);
  if (chart === 'loss') return [0, hi > 0 ? hi * 1.08 : 1];
  // Accuracy zooms to the data: 90-100 once every point is above 90.
  const pad = Math.max((hi - lo) * 0.1, 0.5);
  lo = Math.max(0, lo - pad);
  hi = Math.min(100, hi + pad);
  const {step} = niceTicks(lo, hi, 5);
  return [Math.max(0, Math.floor(lo / step) * step), Math.min(100, Math.ceil(hi / step) * step)];
}

// ---- drawing ---------------------------------------------------------------------------------

function el(name, attrs, parent) {
  const node = document.createElementNS(SVGNS, name);
  for (const k in attrs) node.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(node);
  return node;
}

function draw(chart) {
  const fig = charts[chart];
  const svg = fig.querySelector('svg');
  svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const all = lines(chart);
  const [x0, x1] = xDomain();
  const visible = all.map((l) => ({...l, points: l.points.filter((p) => p[0] <= x1 * 1.0001)}));
  const [y0, y1] = yDomain(chart, visible.filter((l) => l.points.length));
  const px = (x) => M.left + (x - x0) / (x1 - x0 || 1) * (W - M.left - M.right);
  const py = (y) => H - M.bottom - (y - y0) / (y1 - y0 || 1) * (H - M.top - M.bottom);
  const clipId = (root.dataset.uid || 'c') + '-' + chart;
  const clip = el('clipPath', {id: clipId}, el('defs', {}, svg));
  el('rect', {x: M.left, y: M.top - 4, width: W - M.left - M.right + 4, height: H - M.top - M.bottom + 8}, clip);
  const xt = niceTicks(x0, x1, 6), yt = niceTicks(y0, y1, 5);
  const axes = el('g', {class: 'axes'}, svg);
  for (const v of yt.values) {
    el('line', {x1: M.left, x2: W - M.right, y1: py(v), y2: py(v), class: 'grid'}, axes);
    el('text', {x: M.left - 5, y: py(v) + 3.5, 'text-anchor': 'end', class: 'tick'}, axes).textContent = tickLabel(v, yt.step);
  }
  for (const v of xt.values) {
    el('line', {x1: px(v), x2: px(v), y1: H - M.bottom, y2: H - M.bottom + 4, class: 'axis'}, axes);
    el('text', {x: px(v), y: H - M.bottom + 15, 'text-anchor': 'middle', class: 'tick'}, axes).textContent = tickLabel(v, xt.step);
  }
  el('line', {x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom, class: 'axis'}, axes);
  el('text', {x: (M.left + W - M.right) / 2, y: H - 3, 'text-anchor': 'middle', class: 'title'}, axes).textContent =
    xAxis === 'epoch' ? T('x_epochs', {}, 'epochs') : T('x_wall', {}, 'wall seconds (data loading included)');
  const plot = el('g', {'clip-path': 'url(#' + clipId + ')'}, svg);
  for (const l of all) {
    if (!l.points.length) continue;
    const g = el('g', {class: 'series' + (l.faint ? ' faint' : ''), 'data-name': l.name}, plot);
    if (l.points.length > 1) {
      const d = l.points.map((p, i) => (i ? 'L' : 'M') + px(p[0]).toFixed(1) + ',' + py(p[1]).toFixed(1)).join('');
      el('path', {d, fill: 'none', stroke: l.color, 'stroke-width': l.faint ? 1.5 : 2,
                  'stroke-dasharray': l.dashed ? '5 3' : 'none'}, g);
    }
    if (l.markers || l.points.length === 1) {  // a single point shows as a marker
      for (const p of l.points) {
        const c = el('circle', {cx: px(p[0]), cy: py(p[1]), r: l.points.length === 1 ? 4 : 2.6, fill: l.color}, g);
        const x = tickLabel(p[0], 0.01), y = tickLabel(p[1], chart === 'acc' ? 0.01 : 0.001) + (chart === 'acc' ? '%' : '');
        el('title', {}, c).textContent = xAxis === 'epoch' ? T('tip_epoch', {x, y}, 'epoch ' + x + ': ' + y)
          : T('tip_second', {x, y}, 'second ' + x + ': ' + y);
      }
    }
  }
  const legend = fig.querySelector('.curves-legend');
  legend.innerHTML = '';
  for (const l of all) {
    if (!l.points.length) continue;
    const item = document.createElement('span');
    item.className = 'curves-key' + (l.faint ? ' faint' : '');
    const swatch = document.createElement('i');
    swatch.style.background = l.color;
    item.append(swatch, document.createTextNode(l.name));
    legend.appendChild(item);
  }
  fig.querySelector('.curves-note').textContent = (state.caption || {})[chart] || '';
}

function drawProgress() {
  const p = state.progress;
  clearInterval(countdown);
  countdown = null;
  progressBox.innerHTML = '';
  if (!p) return;
  const text = document.createElement('div');
  text.className = 'curves-progress-text';
  if (p.state === 'queued') {
    const started = performance.now();
    const say = () => {
      const left = p.starts_in === null ? null : p.starts_in - (performance.now() - started) / 1000;
      text.textContent = T('waiting', {position: p.position}, '🕒 waiting: number ' + p.position + ' in the queue') +
        (left === null ? '' : left > 0 ? T('starts_in', {clock: clock(left)}, ' · starts in about ' + clock(left))
          : T('starting', {}, ' · starting any moment'));
    };
    say();
    countdown = setInterval(say, 1000);  // counts down in the page: no request
    progressBox.appendChild(text);
    return;
  }
  const bar = document.createElement('progress');
  bar.max = 1;
  bar.value = p.state === 'done' ? 1 : Math.min(1, p.done / (p.epochs || 1));
  const parts = [];
  const at = {epoch: Math.max(p.epoch, 1), passes: p.passes, batch: p.batch, batches: p.batches};
  if (p.batches) parts.push(T('at_batch', at, 'epoch ' + at.epoch + '/' + p.passes + ' · batch ' + p.batch + '/' + p.batches));
  const done = tickLabel(Math.min(p.done, p.epochs), 0.01);
  if (p.passes !== p.epochs) parts.push(T('of_epochs', {done, epochs: p.epochs}, done + ' of ' + p.epochs + ' epochs'));
  // No ETA yet: before the first batch, the data is loading; after it, the pace is being measured.
  if (p.state === 'running') {
    parts.push(p.eta !== null ? T('eta', {clock: clock(p.eta)}, 'ETA ' + clock(p.eta))
      : p.batches ? T('eta_measuring', {}, 'ETA: measuring...') : T('loading', {}, 'loading data...'));
  }
  if (p.state === 'done') parts.push(T('done_in', {clock: clock(p.elapsed)}, 'done in ' + clock(p.elapsed)));
  if (p.state === 'stopped' || p.state === 'error') parts.push(T(p.state, {}, p.state));
  text.textContent = parts.join(' · ');
  progressBox.append(bar, text);
}

// The page's words (words.js, from digitnet/ui/words.py) in the page's language; English without them.
function T(key, values, english) {
  return window.DigitNetWords ? window.DigitNetWords.t(key, values, english) : english;
}

function drawProbe() {
  const pr = state.probe;
  probeBox.innerHTML = '';
  if (!pr || !pr.images || !pr.images.length) {
    root.dataset.probeAnswers = '';
    return;
  }
  const title = document.createElement('div');
  title.className = 'curves-probe-title';
  title.textContent = T('probe', {}, 'The model reading 16 test digits (6 hard ones), at every validation point');
  const grid = document.createElement('div');
  grid.className = 'curves-probe-grid';
  let right = 0;
  pr.images.forEach((src, i) => {
    const cell = document.createElement('figure');
    const img = document.createElement('img');
    img.src = src;
    img.alt = T('probe_alt', {label: pr.labels[i]}, 'test digit ' + pr.labels[i]);
    const answer = pr.answers ? pr.answers[i] : null;
    const cap = document.createElement('figcaption');
    cap.textContent = answer === null ? '?' : String(answer);
    cell.className = answer === null ? 'waiting' : answer === pr.labels[i] ? 'right' : 'wrong';
    if (answer === pr.labels[i]) right += 1;
    cell.title = T('probe_true', {label: pr.labels[i]}, 'true ' + pr.labels[i]) +
      (answer === null ? '' : T('probe_read', {answer}, ', read as ' + answer));
    cell.append(img, cap);
    grid.appendChild(cell);
  });
  root.dataset.probeAnswers = pr.answers ? pr.answers.join('') : '';
  root.dataset.probeRight = String(right);
  probeBox.append(title, grid);
  drawOwn(pr.own);
}

// The visitor's own last drawing (from the Draw tab), with the model's probability for its digit as it
// learns: "your 7: 12% → 64% → 98%".
function drawOwn(own) {
  const probs = own ? own.probs.filter((p) => p !== null) : [];
  root.dataset.ownProbs = probs.map((p) => Math.round(100 * p)).join(' ');
  if (!own) return;
  const box = document.createElement('figure');
  box.className = 'curves-own';
  const img = document.createElement('img');
  img.src = own.image;
  img.alt = T('own_alt', {digit: own.digit}, 'your drawing of a ' + own.digit);
  const cap = document.createElement('figcaption');
  // At most five, evenly spaced from the first to the latest, so the climb shows.
  const shown = probs.length > 5 ? [0, 1, 2, 3, 4].map((i) => probs[Math.round(i * (probs.length - 1) / 4)]) : probs;
  const words = shown.map((p) => Math.round(100 * p) + '%');
  const shownProbs = words.length ? words.join(' → ') : T('own_waiting', {}, 'waiting for the first validation point');
  cap.textContent = T('own', {digit: own.digit, probs: shownProbs}, 'your ' + own.digit + ': ' + shownProbs);
  box.append(img, cap);
  probeBox.appendChild(box);
}

function render() {
  let loss = 0, val = 0;
  for (const s of state.series) { loss += s.loss.length; val += s.val.length; }
  root.dataset.lossPoints = String(loss);
  root.dataset.valPoints = String(val);
  root.dataset.series = String(state.series.length);
  const live = state.series[0];
  root.dataset.lastEpoch = live && live.loss.length ? String(live.loss[live.loss.length - 1][0]) : '';
  root.dataset.seedShown = String(seedCurves().length);
  root.dataset.x = xAxis;
  draw('loss');
  draw('acc');
  drawProgress();
  drawProbe();
}

// ---- updates from the server -----------------------------------------------------------------

function apply(v) {
  if (!v || typeof v !== 'object' || v.seq === state.seq) return;
  if (v.reset) {
    state = {seq: v.seq, series: (v.series || []).map((s) => ({name: s.name, loss: s.loss || [], val: s.val || []})),
             seedModels: v.seed_models || [], overlay: !!v.overlay, progress: v.progress || null,
             probe: v.probe || null, caption: v.caption || {}};
  } else {
    state.seq = v.seq;
    const s = state.series[0];
    if (v.add && s) {
      if (v.add.loss) s.loss.splice(v.add.loss_from, s.loss.length, ...v.add.loss);
      if (v.add.val) s.val.splice(v.add.val_from, s.val.length, ...v.add.val);
    }
    if ('progress' in v) state.progress = v.progress;
    if (v.answers && state.probe) state.probe.answers = v.answers;
    if (v.own && state.probe && state.probe.own) state.probe.own.probs = v.own;
    if (v.caption) state.caption = v.caption;
  }
  render();
}

root.dataset.uid = 'curves-' + Math.random().toString(36).slice(2, 9);
for (const radio of element.querySelectorAll('input[data-role=x]')) {
  radio.name = root.dataset.uid + '-x';
  radio.checked = radio.value === xAxis;  // set here: the template's attributes may not survive rendering
  radio.addEventListener('change', () => { if (radio.checked) { xAxis = radio.value; render(); } });
}
if (seedBox) {
  seedBox.checked = true;
  seedBox.addEventListener('change', render);
}
watch('value', () => apply(props.value));
window.addEventListener('digitnet-language', render);  // the switch: legends, captions, the probe in the new language
apply(props.value);
render();
