// The drawing pad (digitnet/ui/pad.py): strokes on a canvas; the ink goes to the page's answer
// panel on every animation frame of pointer movement, and to the server only when a button
// that needs it is clicked (the pad's value, set when a stroke ends).
//
// Strokes are kept in pad units (0..1, y down) and drawn twice: on the screen canvas
// (devicePixelRatio x its CSS size, sharp) and on a small ink canvas of SIDE px whose alpha
// channel is the ink. Each time the ink changes the pad dispatches, on its element,
//   new CustomEvent('digitnet-ink', {bubbles: true, detail: {alpha, side, source}})
// with alpha a Uint8Array(SIDE * SIDE) (255 = full ink) or null when the pad is blank.
// Listeners handle it synchronously (the answer panel, answer.js).
//
// The value (props.value) is "" or the PNG data URL of the ink canvas (RGBA, ink in alpha).
// A server event may set it: "" clears the pad; a PNG of SIDE x SIDE becomes the pad's
// picture (a random MNIST digit, a photo as the model reads it), which strokes then draw over.
(function () {
  'use strict';

  const loading = new Set();  // server-set pictures still being decoded, on every pad

  function mount(element, props, trigger, watch) {
    const SIDE = props.payload_side;
    const BRUSH = props.brush_fraction;  // brush radius / pad side
    // > 0 only for benchmarks/browser_latency.py's old server pad: send the value while drawing.
    const SEND_MS = props.send_interval_ms || 0;
    const surface = element.querySelector('.digit-pad-surface');
    const canvas = element.querySelector('canvas');
    const screen = canvas.getContext('2d');
    const ink = document.createElement('canvas');
    ink.width = ink.height = SIDE;
    const inkCtx = ink.getContext('2d', { willReadFrequently: true });
    const undoButton = element.querySelector('button[data-action=undo]');
    const clearButton = element.querySelector('button[data-action=clear]');
    canvas.style.touchAction = 'none';  // also set here in case the scoped CSS is not applied
    let strokes = [];
    let picture = null;  // an Image set by the server (its value), under the strokes
    let current = null;  // the stroke being drawn
    let pointer = null;  // its pointerId: a second finger or a pen hovering nearby is ignored
    let sent = '';  // the last value this pad set itself
    let frameBusy = false;  // the ink went out in this animation frame already
    let dirty = false;  // ...and changed since
    let lastSend = -Infinity;
    let timer = null;

    function pen(ctx, side) {
      ctx.lineCap = 'round';
      ctx.lineJoin = 'round';
      ctx.lineWidth = 2 * BRUSH * side;
      ctx.strokeStyle = '#000';
      ctx.fillStyle = '#000';
    }

    // Draws stroke[from - 1 ..] as ONE path (a lone point as a dot): anti-aliased edges are not
    // darkened twice where segments meet, so the ink canvas holds the stroke's true coverage.
    function trace(ctx, side, stroke, from) {
      pen(ctx, side);
      ctx.beginPath();
      if (stroke.length === 1) {
        ctx.arc(stroke[0][0] * side, stroke[0][1] * side, BRUSH * side, 0, 2 * Math.PI);
        ctx.fill();
        return;
      }
      const start = Math.max(from - 1, 0);
      ctx.moveTo(stroke[start][0] * side, stroke[start][1] * side);
      for (let i = start + 1; i < stroke.length; i++) ctx.lineTo(stroke[i][0] * side, stroke[i][1] * side);
      ctx.stroke();
    }

    function paint(ctx, side) {
      ctx.clearRect(0, 0, side, side);
      if (picture) {
        ctx.imageSmoothingEnabled = side !== SIDE;
        ctx.drawImage(picture, 0, 0, side, side);
      }
      for (const stroke of strokes) trace(ctx, side, stroke, 0);
    }

    // Backing store = CSS size x devicePixelRatio (sharp on hi-DPI); the brush is a fraction of
    // the side, so the drawing looks and reads the same at any size or zoom.
    function fit() {
      const css = canvas.getBoundingClientRect().width;
      const px = Math.max(1, Math.round(css * (window.devicePixelRatio || 1)));
      if (css > 0 && canvas.width !== px) {
        canvas.width = canvas.height = px;
        paint(screen, px);
      }
    }
    new ResizeObserver(fit).observe(canvas);
    fit();

    const blank = () => !strokes.length && !picture;

    // The ink as it is now: to the listeners (the answer panel), synchronously.
    function emit(source) {
      let alpha = null;
      if (!blank()) {
        paint(inkCtx, SIDE);
        const rgba = inkCtx.getImageData(0, 0, SIDE, SIDE).data;
        alpha = new Uint8Array(SIDE * SIDE);
        for (let i = 0; i < alpha.length; i++) alpha[i] = rgba[4 * i + 3];
      }
      element.dispatchEvent(new CustomEvent('digitnet-ink', { bubbles: true, detail: { alpha, side: SIDE, source } }));
    }

    // At most once per animation frame while drawing: the first move of a frame goes out at once,
    // later ones in the same frame are folded into one at the next frame.
    function moved() {
      if (frameBusy) { dirty = true; return; }
      frameBusy = true;
      emit('move');
      requestAnimationFrame(function next() {
        if (dirty) {
          dirty = false;
          emit('move');
          requestAnimationFrame(next);
        } else {
          frameBusy = false;
        }
      });
    }

    // The value the server reads when a button is clicked: set when a stroke ends (or Clear, Undo).
    // Setting props.value is enough for Gradio to fire "change" (no trigger('change'): it would fire twice).
    function send() {
      clearTimeout(timer);
      timer = null;
      lastSend = performance.now();
      let v = '';
      if (!blank()) {
        paint(inkCtx, SIDE);
        v = ink.toDataURL('image/png');
      }
      sent = v;
      if (v !== props.value) props.value = v;
    }

    function soon() {  // the old server pad: a value at most every SEND_MS while drawing
      if (!SEND_MS || timer !== null) return;
      const wait = SEND_MS - (performance.now() - lastSend);
      if (wait <= 0) send();
      else timer = setTimeout(send, wait);
    }

    function refresh() {
      const empty = blank();
      undoButton.disabled = !strokes.length && !picture;
      clearButton.disabled = empty;
      surface.classList.toggle('digit-pad-empty', empty);
    }

    function at(e, box) {
      return [(e.clientX - box.left) / box.width, (e.clientY - box.top) / box.height];
    }

    canvas.addEventListener('pointerdown', (e) => {
      // Only the main button (a mouse's left, a finger, a pen's tip): not a right-click or a pen's eraser.
      if (pointer !== null || e.button !== 0) return;
      e.preventDefault();
      fit();
      pointer = e.pointerId;
      try { canvas.setPointerCapture(e.pointerId); } catch (err) { /* synthetic events */ }
      current = [at(e, canvas.getBoundingClientRect())];
      strokes.push(current);
      trace(screen, canvas.width, current, 0);
      refresh();
      lastSend = performance.now();
      moved();
    });

    canvas.addEventListener('pointermove', (e) => {
      if (e.pointerId !== pointer) return;
      e.preventDefault();
      const box = canvas.getBoundingClientRect();
      const from = current.length;
      const events = (e.getCoalescedEvents && e.getCoalescedEvents()) || [];
      for (const c of (events.length ? events : [e])) current.push(at(c, box));
      trace(screen, canvas.width, current, from);
      moved();
      soon();
    });

    function end(e) {
      if (e.pointerId !== pointer) return;
      pointer = null;
      current = null;
      dirty = false;
      emit('end');  // the whole stroke, at once
      send();
    }
    canvas.addEventListener('pointerup', end);
    canvas.addEventListener('pointercancel', end);
    canvas.addEventListener('lostpointercapture', end);

    function changed() {
      paint(screen, canvas.width);
      refresh();
      emit('edit');
      send();
    }

    undoButton.addEventListener('click', () => {
      if (pointer !== null) return;
      if (strokes.length) strokes.pop();
      else picture = null;
      changed();
    });

    clearButton.addEventListener('click', () => {
      strokes = [];
      picture = null;
      current = null;
      pointer = null;
      changed();
    });

    // A server event set the value: "" clears the pad, a pad PNG becomes its picture.
    watch('value', () => {
      const v = props.value || '';
      if (v === sent || pointer !== null) return;
      sent = v;
      strokes = [];
      if (!v) {
        picture = null;
        paint(screen, canvas.width);
        refresh();
        emit('server');
        return;
      }
      const image = new Image();
      // Gradio fires the pad's "change" at once, before the picture is decoded and read:
      // settled() lets its listeners wait for the page's answer to this picture.
      const decoded = new Promise((resolve) => {
        image.onload = () => {
          if (sent === v) {  // else another value came meanwhile
            picture = image;
            paint(screen, canvas.width);
            refresh();
            emit('server');
          }
          resolve();
        };
        image.onerror = resolve;
      });
      loading.add(decoded);
      decoded.then(() => loading.delete(decoded));
      image.src = v;
    });

    refresh();
  }

  // Resolves once every picture the server set has been decoded and its ink sent to the listeners.
  async function settled() {
    while (loading.size) await Promise.all([...loading]);
  }

  window.DigitNetPad = { mount, settled };
})();
