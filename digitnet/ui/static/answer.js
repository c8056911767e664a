// The answer panel (digitnet/ui/answer.py): the page reads the drawing itself.
//
// On every 'digitnet-ink' event of the pad (pad.js; at most one per animation frame while
// drawing) it runs DigitNet.toMnist (digitnet-core.js) on the pad's ink, the forward pass of
// the three models with the weights this visitor draws with, and shows the chosen model's ten
// calibrated probabilities, its answer ("It's a 7 (98%)", "Not sure: 4 or 9?": the temperature
// and threshold come with each model's spec, from its checkpoint), the 28x28 it saw, and the
// three models side by side. No request goes to the server.
//
// Weights: the shipped specs are fetched once at page load (props.shipped: model -> URL). The
// visitor's own come in the panel's value, set by server events (a finished run, a chosen or
// uploaded file, a fine-tune; see answer.py's page_weights):
//   {"n": <changes each time>, "weights": {model: {"spec", "ckpt", "title"} | null}, "digits": b64 | null}
// where a model left out is unchanged, null means the shipped weights, "ckpt" is the checkpoint
// file's bytes in base64 and "digits" the my-digits file's. They are kept in localStorage, so a
// refresh (or a server restart) loses nothing: at load the page draws with them at once and
// hands them back to the server (the keeper component), which checks them like any upload.
(function () {
  'use strict';

  const STORE = 'digitnet-mine-v1';

  function readStore() {
    try {
      const kept = JSON.parse(window.localStorage.getItem(STORE) || '{}');
      return { weights: kept.weights || {}, digits: kept.digits || null };
    } catch (err) {
      return { weights: {}, digits: null };
    }
  }

  // Keeps what the server pushed. The browser's quota (~5 M characters) may not hold an MLP's
  // spec and checkpoint twice over: then only the checkpoints are kept (the server rebuilds specs).
  function writeStore(kept) {
    const attempts = [kept, {
      digits: kept.digits,
      weights: Object.fromEntries(Object.entries(kept.weights).map(([k, w]) => [k, { ckpt: w.ckpt, title: w.title }])),
    }];
    for (const attempt of attempts) {
      try {
        window.localStorage.setItem(STORE, JSON.stringify(attempt));
        return true;
      } catch (err) { /* quota: try smaller */ }
    }
    console.warn('digitnet: your weights are too large for this browser\'s storage; download them to keep them');
    return false;
  }

  const panels = [];

  // The page's words (words.js, from digitnet/ui/words.py) in the page's language; English without them.
  function T(key, values, english) {
    return window.DigitNetWords ? window.DigitNetWords.t(key, values, english) : english;
  }

  function mount(element, props, trigger, watch) {
    const MODELS = props.models;  // ["mlp", "cnnnet", "lenet"]
    const NAMES = props.names;  // model -> display name
    const BLANK = props.blank_message;
    const root = element.querySelector('.dn-answer');
    const label = root.querySelector('#prediction');
    const bars = root.querySelector('.dn-bars');
    const seen = root.querySelector('.dn-seen canvas');
    const seenCtx = seen.getContext('2d');
    const cards = root.querySelector('.dn-three');
    const source = root.querySelector('.dn-source');

    const shipped = {};  // model -> spec
    const mine = {};  // model -> {spec, title}
    const nets = {};  // model -> DigitNet.model(...) of the weights in use
    // The not-a-digit detector (digitnet/detector.py), shared by the three models as on the server.
    const detector = { spec: null, net: null };
    const state = { chosen: props.chosen, ink: null, side: 0, results: null, version: 0 };

    // ---- the markup, built once; each answer only changes text, widths and pixels ----
    const rows = [];
    for (let d = 0; d < 10; d++) {
      const row = document.createElement('div');
      row.className = 'dn-bar';
      row.innerHTML = '<span class="dn-digit">' + d + '</span><span class="dn-track"><span class="dn-fill"></span></span><span class="dn-pct"></span>';
      bars.appendChild(row);
      rows.push({ row, fill: row.querySelector('.dn-fill'), pct: row.querySelector('.dn-pct') });
    }
    const cardOf = {};
    for (const name of MODELS) {
      const card = document.createElement('div');
      card.className = 'dn-card';
      card.dataset.model = name;
      card.innerHTML = '<div class="dn-card-name"></div><div class="dn-card-digit"></div><div class="dn-card-pct"></div>';
      card.querySelector('.dn-card-name').textContent = NAMES[name];
      cards.appendChild(card);
      cardOf[name] = { card, digit: card.querySelector('.dn-card-digit'), pct: card.querySelector('.dn-card-pct') };
    }
    const pixels = seenCtx.createImageData(28, 28);

    function pct(p) { return Math.round(100 * p) + '%'; }

    function specOf(name) { return (mine[name] && mine[name].spec) || shipped[name] || null; }

    // digitnet-core.js comes with the page's <head> (inpage.py) and may run after this: until it
    // has (its 'digitnet-core-ready' event), there is nothing to build.
    function build(name) {
      const spec = specOf(name);
      if (!window.DigitNet || !spec || spec.error) { nets[name] = null; return; }
      try {
        nets[name] = window.DigitNet.model(spec);
      } catch (err) {
        console.error('digitnet: cannot build ' + name, err);
        nets[name] = null;
      }
    }

    function buildDetector() {
      if (!window.DigitNet || !detector.spec) return;
      try {
        detector.net = window.DigitNet.model(detector.spec);
      } catch (err) {
        console.error('digitnet: cannot build the not-a-digit detector', err);
      }
    }

    // ---- reading the drawing ----
    function compute() {
      const x = state.ink && window.DigitNet ? window.DigitNet.toMnist(state.ink, state.side) : null;
      let results = null;
      if (x) {
        results = { x };
        for (const name of MODELS) {
          const net = nets[name];
          if (!net) { results[name] = null; continue; }
          const out = net.run(x);
          const spec = specOf(name);
          results[name] = { probs: out.probs, answer: window.DigitNet.answer(out.probs, spec.unsure_below), layers: out.layers };
        }
        if (detector.net) {  // as digitnet.detector.Detector.not_digit: sigmoid of its one logit
          const z = detector.net.run(x).logits[0];
          results.notDigit = 1 / (1 + Math.exp(-z)) > detector.spec.not_digit_above;
        }
      }
      state.results = results;
      render();
    }

    function render() {
      const r = state.results;
      const chosen = r && r[state.chosen];
      state.version += 1;
      label.dataset.version = String(state.version);  // every answer is a change (benchmarks watch it)
      if (!r) {
        label.dataset.label = '';
        label.textContent = T('blank', {}, BLANK);
        label.classList.remove('dn-unsure');
      } else if (!chosen) {
        const spec = specOf(state.chosen);
        label.dataset.label = '';
        const name = NAMES[state.chosen];
        label.textContent = spec && spec.error ? T('unavailable', { name, error: spec.error }, name + ' is unavailable: ' + spec.error)
          : T('not_loaded', { name }, name + ' is not loaded yet');
        label.classList.remove('dn-unsure');
      } else if (r.notDigit) {  // letters, scribbles, shapes, "42": the bars stay, the answer says so
        label.dataset.label = 'not a digit';
        label.textContent = T('not_digit', {}, 'That doesn\'t look like a digit');
        label.classList.add('dn-unsure');
      } else {
        const a = chosen.answer;
        label.dataset.label = String(a.digit);
        label.textContent = a.unsure ? T('unsure', { digit: a.digit, other: a.runnerUp }, 'Not sure: ' + a.digit + ' or ' + a.runnerUp + '?')
          : T('answer', { digit: a.digit, pct: pct(a.confidence) }, 'It\'s a ' + a.digit + ' (' + pct(a.confidence) + ')');
        label.classList.toggle('dn-unsure', !!a.unsure);
      }
      for (let d = 0; d < 10; d++) {
        const p = chosen ? chosen.probs[d] : 0;
        rows[d].fill.style.width = (100 * p).toFixed(1) + '%';
        rows[d].pct.textContent = chosen ? pct(p) : '';
        rows[d].row.classList.toggle('dn-top', !!chosen && chosen.answer.digit === d);
      }
      const data = pixels.data;
      for (let i = 0; i < 784; i++) {
        const v = r ? Math.round(255 * Math.min(1, Math.max(0, r.x[i]))) : 0;
        data[4 * i] = data[4 * i + 1] = data[4 * i + 2] = v;
        data[4 * i + 3] = 255;
      }
      seenCtx.putImageData(pixels, 0, 0);
      for (const name of MODELS) {
        const c = cardOf[name];
        const res = r && r[name];
        c.card.classList.toggle('dn-chosen', name === state.chosen);
        c.digit.textContent = res ? String(res.answer.digit) : '–';
        c.pct.textContent = res ? (r.notDigit ? T('card_not_digit', {}, 'not a digit')
          : res.answer.unsure ? T('card_unsure', {}, 'not sure') : pct(res.answer.confidence)) : '';
      }
      const name = NAMES[state.chosen];
      source.textContent = mine[state.chosen]
        ? T('source_yours', { name, title: mine[state.chosen].title }, name + ': your ' + mine[state.chosen].title + ' · computed in this page')
        : T('source_shipped', { name }, name + ': shipped weights · computed in this page');
      // Every layer of the chosen model, for the layers view (layers.js), with each answer.
      document.dispatchEvent(new CustomEvent('digitnet-answer', {
        detail: { model: state.chosen, result: chosen || null },
      }));
    }

    // ---- weights ----
    function adopt(weights) {
      for (const name of Object.keys(weights)) {
        const w = weights[name];
        if (!w) delete mine[name];
        else if (w.spec) mine[name] = { spec: w.spec, title: w.title || 'weights' };
        build(name);
      }
    }

    for (const name of MODELS) {
      build(name);
      fetch(props.shipped[name]).then((r) => {
        if (!r.ok) throw new Error(r.status + ' ' + r.statusText);
        return r.json();
      }).then((spec) => {
        shipped[name] = spec;
        if (!mine[name]) { build(name); compute(); }
      }).catch((err) => console.error('digitnet: no shipped ' + name + ' spec', err));
    }
    if (props.shipped.notdigit) {
      fetch(props.shipped.notdigit).then((r) => {
        if (!r.ok) throw new Error(r.status + ' ' + r.statusText);
        return r.json();
      }).then((spec) => {
        detector.spec = spec;
        buildDetector();
        compute();
      }).catch((err) => console.error('digitnet: no not-a-digit detector', err));
    }
    adopt(readStore().weights);  // the visitor's own, kept from an earlier visit
    if (!window.DigitNet) {
      window.addEventListener('digitnet-core-ready', () => {
        for (const name of MODELS) build(name);
        buildDetector();
        compute();
      }, { once: true });
    }

    // The server pushed weights (or digits): draw with them and keep them.
    watch('value', () => {
      let push;
      try { push = JSON.parse(props.value || '{}'); } catch (err) { return; }
      const kept = readStore();
      if (push.weights) {
        adopt(push.weights);
        for (const name of Object.keys(push.weights)) {
          if (push.weights[name]) kept.weights[name] = push.weights[name];
          else delete kept.weights[name];
        }
      }
      if ('digits' in push) kept.digits = push.digits;
      if (push.weights || 'digits' in push) writeStore(kept);
      compute();
    });

    const panel = {
      ink(detail) { state.ink = detail.alpha; state.side = detail.side; compute(); },
      choose(name) { if (MODELS.includes(name)) { state.chosen = name; render(); } },
      latest() { const r = state.results; return r && r[state.chosen] ? r[state.chosen].answer : null; },
      probs(name) { const r = state.results; return r && r[name] ? Array.from(r[name].probs) : null; },
      seen() { const r = state.results; return r ? Array.from(r.x) : null; },
      layers(name) {
        const r = state.results;
        return r && r[name] ? r[name].layers.map((l) => ({ name: l.name, shape: l.shape, data: Array.from(l.data) })) : null;
      },
      ready(name) { return !!nets[name]; },
    };
    panels.push(panel);
    window.addEventListener('digitnet-language', render);  // the switch: the answer in the new language
    render();
  }

  // The pad's ink, to every panel (there is one).
  document.addEventListener('digitnet-ink', (e) => { for (const p of panels) p.ink(e.detail); });

  // The keeper: at page load, hands what this browser kept back to the server session
  // (its value becomes {"weights": {model: {"ckpt", "title"}}, "digits": b64}, firing "change").
  function mountKeeper(element, props) {
    const kept = readStore();
    const weights = {};
    for (const [name, w] of Object.entries(kept.weights)) if (w && w.ckpt) weights[name] = { ckpt: w.ckpt, title: w.title };
    if (!Object.keys(weights).length && !kept.digits) return;
    // After the page's first render, so that Gradio listens for the change.
    setTimeout(() => { props.value = JSON.stringify({ weights, digits: kept.digits }); }, 0);
  }

  const first = () => panels[0];
  window.DigitNetAnswer = {
    mount,
    mountKeeper,
    choose(name) { for (const p of panels) p.choose(name); },
    latest() { return first() ? first().latest() : null; },
    probs(name) { return first() ? first().probs(name) : null; },
    seen() { return first() ? first().seen() : null; },
    layers(name) { return first() ? first().layers(name) : null; },
    ready(name) { return !!first() && first().ready(name); },
    forget() { window.localStorage.removeItem(STORE); },
    STORE,
  };
})();
