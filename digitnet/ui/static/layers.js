// Every layer, live (digitnet/ui/layers.py): what each layer of the chosen model makes of the drawing.
//
// answer.js fires the document event 'digitnet-answer' with every answer it shows (at most one per
// animation frame while drawing): {model, result: {probs, layers: [{name, shape, data}]} | null}.
// The layers are those of the page's own forward pass (digitnet-core.js run(): each hidden layer
// after ReLU, and after pooling for a conv block), so this view costs one redraw, no computation
// and no request. Conv blocks: one small grey image per feature map (black 0, white the layer's
// largest value); fully connected layers: one bar per unit; the MLP's hidden layers: strips, one grey
// cell per unit; the last layer: the ten probabilities. Each row is labelled with its shape.
(function () {
  'use strict';

  const MAP_PX = 34;  // a feature map's side on screen (CSS pixels), whatever its size in units

  function shapeText(name, shape) { return name + ' ' + shape.join('\u00d7'); }
  // The page's words (words.js, from digitnet/ui/words_folds.py) in the page's language; English without them.
  function T(key, values, english) {
    return window.DigitNetWords ? window.DigitNetWords.t(key, values, english) : english;
  }

  function mount(element, props) {
    const root = element.querySelector('.dn-layers');
    const rowsBox = root.querySelector('.dn-layer-rows');
    const empty = root.querySelector('.dn-layers-empty');
    const fold = root.querySelector('details');
    // Open beside the answer on a desktop; folded on a phone, where the pad and the answer come first.
    if (fold && window.matchMedia && !window.matchMedia('(max-width: 640px)').matches) fold.open = true;
    const strips = new Set(props.strips || []);  // models whose hidden layers are shown as strips
    const outputs = props.outputs || {};  // model -> the name of its output layer
    let built = null;  // "model:shapes" of the rows on screen
    let rows = [];

    function row(label, kind) {
      const div = document.createElement('div');
      div.className = 'dn-layer dn-layer-' + kind;
      const name = document.createElement('div');
      name.className = 'dn-layer-name';
      name.textContent = label;
      const body = document.createElement('div');
      body.className = 'dn-layer-body';
      div.appendChild(name);
      div.appendChild(body);
      rowsBox.appendChild(div);
      return { div, body, kind };
    }

    function canvas(parent, w, h, cls) {
      const c = document.createElement('canvas');
      c.width = w;
      c.height = h;
      c.className = cls;
      parent.appendChild(c);
      return c;
    }

    function build(model, layers) {
      rowsBox.textContent = '';
      rows = layers.map((l) => {
        if (l.shape.length === 3) {
          const r = row(shapeText(l.name, l.shape), 'maps');
          r.maps = [];
          for (let c = 0; c < l.shape[0]; c++) {
            const cv = canvas(r.body, l.shape[2], l.shape[1], 'dn-map');
            cv.style.width = cv.style.height = MAP_PX + 'px';
            r.maps.push(cv);
          }
          return r;
        }
        const strip = strips.has(model);
        const r = row(shapeText(l.name, l.shape), strip ? 'strip' : 'bars');
        r.canvas = strip ? canvas(r.body, l.shape[0], 1, 'dn-strip') : canvas(r.body, l.shape[0] * 2, 40, 'dn-bars-c');
        return r;
      });
      const layer = shapeText(outputs[model] || 'output', [10]);
      const out = row(T('layers_output', { layer }, layer + ' (probabilities)'), 'bars');
      out.canvas = canvas(out.body, 10 * 2, 40, 'dn-bars-c');
      out.output = true;
      rows.push(out);
    }

    function peak(data) {
      let top = 0;
      for (let i = 0; i < data.length; i++) if (data[i] > top) top = data[i];
      return top > 0 ? top : 1;
    }

    function drawMaps(r, l) {
      const [C, H, W] = l.shape, top = peak(l.data);
      for (let c = 0; c < C; c++) {
        const ctx = r.maps[c].getContext('2d'), img = ctx.createImageData(W, H);
        for (let i = 0; i < H * W; i++) {
          const v = Math.round(255 * Math.min(1, l.data[c * H * W + i] / top));
          img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v;
          img.data[4 * i + 3] = 255;
        }
        ctx.putImageData(img, 0, 0);
      }
    }

    function drawStrip(r, data) {
      const ctx = r.canvas.getContext('2d'), img = ctx.createImageData(data.length, 1), top = peak(data);
      for (let i = 0; i < data.length; i++) {
        const v = Math.round(255 * Math.min(1, data[i] / top));
        img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v;
        img.data[4 * i + 3] = 255;
      }
      ctx.putImageData(img, 0, 0);
    }

    function drawBars(r, data, top) {
      const c = r.canvas, ctx = c.getContext('2d'), w = c.width / data.length;
      ctx.clearRect(0, 0, c.width, c.height);
      ctx.fillStyle = r.output ? '#f97316' : '#6b7280';
      for (let i = 0; i < data.length; i++) {
        const h = Math.round(c.height * Math.min(1, data[i] / top));
        ctx.fillRect(i * w, c.height - h, Math.max(1, w - (w > 2 ? 1 : 0)), h);
      }
    }

    let last = null;  // the latest answer's detail, redrawn in the new language after a switch
    function show(detail) {
      last = detail;
      const { model, result } = detail;
      root.dataset.model = model;
      if (!result) {
        empty.hidden = false;
        rowsBox.hidden = true;
        return;
      }
      empty.hidden = true;
      rowsBox.hidden = false;
      const key = model + ':' + result.layers.map((l) => l.shape.join('x')).join(',');
      if (key !== built) { build(model, result.layers); built = key; }
      result.layers.forEach((l, i) => {
        const r = rows[i];
        if (r.kind === 'maps') drawMaps(r, l);
        else if (r.kind === 'strip') drawStrip(r, l.data);
        else drawBars(r, l.data, peak(l.data));
      });
      drawBars(rows[rows.length - 1], result.probs, 1);
    }
    document.addEventListener('digitnet-answer', (e) => show(e.detail));
    window.addEventListener('digitnet-language', () => { built = null; if (last) show(last); });
  }

  window.DigitNetLayers = { mount };
})();
