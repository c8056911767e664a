/* digitnet-core.js: the page's own MNIST-style preprocessing and the three models' forward
 * passes, so that drawing costs the server nothing. A plain script (no modules, no build step):
 * it defines window.DigitNet and then fires the window event "digitnet-core-ready".
 *
 *   DigitNet.toMnist(alpha, side)   pad ink (Uint8 alpha, side*side, 255 = full ink)
 *                                   -> Float32Array(784) in [0, 1], white ink on black; null if blank
 *   DigitNet.model(spec).run(x784)  -> {logits, probs, layers: [{name, shape, data}]}
 *   DigitNet.answer(probs, unsureBelow) -> {digit, confidence, runnerUp, unsure}
 *
 * Both halves mirror the server and are tested against it in Chromium
 * (tests/e2e/test_inpage_math.py; benchmarks/inpage.py runs 1,000 drawings):
 *
 * - toMnist is digitnet.preprocess._ink_to_mnist(alpha, 0, 255), the pad payload's path, step by
 *   step, down to the arithmetic: numpy's float32 operations are rounded with Math.fround,
 *   numpy's float32 sums are added in its own (pairwise) order, Python's round() rounds half to
 *   even, and PIL's resampling of mode "F" images (Resample.c: per output pixel, coefficients of
 *   the filter over its support, normalised to sum 1; a horizontal pass into a float32 image,
 *   then a vertical one) is reproduced with the same double-precision coefficients. On the
 *   1,000 drawings every 28x28 is identical to the server's, bit for bit.
 * - The forward pass is hand-written rather than a runtime. A runtime would take most of the
 *   page's 1.5 MB budget or more before any weights (ONNX Runtime Web ships a WebAssembly binary
 *   of several MB; TensorFlow.js's tf.min.js is over 1 MB), and the preprocessing would still be
 *   ours. Our models are a few small convolutions and linear layers (~1.7 million multiply-adds
 *   for all three, dense): a few hundred lines here, checked against PyTorch layer by layer, and
 *   computed in double precision, so that the only differences are PyTorch's own float32 rounding
 *   and the weights' transport (digitnet/webmodel.py: BatchNorm folded, 22-bit fixed point);
 *   the probabilities stay within ~1e-5 of the server's.
 */
(function (root) {
  'use strict';

  // ------------------------------------------------------------------ constants (preprocess.py)
  var P = {
    MNIST_SIZE: 28,
    DIGIT_BOX: 20,
    MNIST_CENTER: 14.0,
    WORK_SIDE: 80,
    INK_THRESHOLD: 0.2,
    STROKE_THIN: 0.07,
    STROKE_TARGET: 0.10,
    STROKE_MASK_LEVEL: 0.1,
  };
  var f32 = Math.fround;
  var MASK_LEVEL_F32 = f32(P.STROKE_MASK_LEVEL);  // numpy compares float32 with 0.1 as float32
  var THRESHOLD_F32 = f32(P.INK_THRESHOLD);
  var CUT_SCALE_F32 = f32(1.0 / (1.0 - P.INK_THRESHOLD));
  var INV_FULL_F32 = f32(1.0 / 255.0);

  // Python's round(): to the nearest integer, halves to the even one.
  function pyRound(x) {
    var r = Math.round(x);  // halves up
    if (r - x === 0.5 && r % 2 !== 0) r -= 1;
    return r;
  }

  // numpy's sum of n float32 values a[start], a[start+step], ...: pairwise, 8 partial sums per
  // block of up to 128 (numpy/_core/src/umath/loops_utils.h.src), each addition rounded to float32.
  function sumF32(a, start, n, step) {
    step = step || 1;
    var i, res;
    if (n < 8) {
      res = 0;
      for (i = 0; i < n; i++) res = f32(res + a[start + i * step]);
      return res;
    }
    if (n <= 128) {
      var r = [];
      for (i = 0; i < 8; i++) r.push(a[start + i * step]);
      for (i = 8; i < n - (n % 8); i += 8) {
        for (var j = 0; j < 8; j++) r[j] = f32(r[j] + a[start + (i + j) * step]);
      }
      res = f32(f32(f32(r[0] + r[1]) + f32(r[2] + r[3])) + f32(f32(r[4] + r[5]) + f32(r[6] + r[7])));
      for (; i < n; i++) res = f32(res + a[start + i * step]);
      return res;
    }
    var n2 = Math.floor(n / 2);
    n2 -= n2 % 8;
    return f32(sumF32(a, start, n2, step) + sumF32(a, start + n2 * step, n - n2, step));
  }

  // The same order in float64 (numpy's sum of a float64 array).
  function sumF64(a) {
    var n = a.length, i, res;
    if (n < 8) {
      res = 0;
      for (i = 0; i < n; i++) res += a[i];
      return res;
    }
    if (n <= 128) {
      var r = a.slice(0, 8);
      for (i = 8; i < n - (n % 8); i += 8) {
        for (var j = 0; j < 8; j++) r[j] += a[i + j];
      }
      res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
      for (; i < n; i++) res += a[i];
      return res;
    }
    var n2 = Math.floor(n / 2);
    n2 -= n2 % 8;
    return sumF64(a.slice(0, n2)) + sumF64(a.slice(n2));
  }

  // ------------------------------------------------------------------ PIL's resampling, mode "F"
  var FILTERS = {
    box: {
      support: 0.5,
      f: function (x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; },
    },
    lanczos: {
      support: 3.0,
      f: function (x) { return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3) : 0.0; },
    },
  };
  function sinc(x) {
    if (x === 0.0) return 1.0;
    x = x * Math.PI;
    return Math.sin(x) / x;
  }

  // Resample.c precompute_coeffs for box (0, inSize): per output pixel its first input pixel,
  // how many it reads, and their normalised weights.
  function coefficients(inSize, outSize, filter) {
    var scale = inSize / outSize;
    var filterscale = scale < 1.0 ? 1.0 : scale;
    var support = filter.support * filterscale;
    var ss = 1.0 / filterscale;
    var first = new Int32Array(outSize), count = new Int32Array(outSize), weights = [];
    for (var xx = 0; xx < outSize; xx++) {
      var center = (xx + 0.5) * scale;
      var xmin = Math.trunc(center - support + 0.5);
      if (xmin < 0) xmin = 0;
      var xmax = Math.trunc(center + support + 0.5);
      if (xmax > inSize) xmax = inSize;
      xmax -= xmin;
      var k = new Float64Array(Math.max(xmax, 0)), ww = 0.0;
      for (var x = 0; x < xmax; x++) {
        var w = filter.f((x + xmin - center + 0.5) * ss);
        k[x] = w;
        ww += w;
      }
      if (ww !== 0.0) for (x = 0; x < xmax; x++) k[x] /= ww;
      first[xx] = xmin;
      count[xx] = Math.max(xmax, 0);
      weights.push(k);
    }
    return { first: first, count: count, weights: weights };
  }

  function resizeH(src, h, w, outW, filter) {
    var c = coefficients(w, outW, filter), out = new Float32Array(h * outW);
    for (var y = 0; y < h; y++) {
      var row = y * w;
      for (var xx = 0; xx < outW; xx++) {
        var k = c.weights[xx], x0 = row + c.first[xx], ss = 0.0;
        for (var x = 0; x < c.count[xx]; x++) ss += src[x0 + x] * k[x];
        out[y * outW + xx] = ss;  // a float32 image: rounded here, as PIL stores it
      }
    }
    return out;
  }

  function resizeV(src, h, w, outH, filter) {
    var c = coefficients(h, outH, filter), out = new Float32Array(outH * w);
    for (var yy = 0; yy < outH; yy++) {
      var k = c.weights[yy], y0 = c.first[yy], n = c.count[yy];
      for (var xx = 0; xx < w; xx++) {
        var ss = 0.0;
        for (var y = 0; y < n; y++) ss += src[(y0 + y) * w + xx] * k[y];
        out[yy * w + xx] = ss;
      }
    }
    return out;
  }

  // Image.fromarray(a, "F").resize((outW, outH), filter): a pass is skipped when its side does not
  // change; images over 100x taller than wide are resized vertically first (Image.resize does so).
  function resize(src, h, w, outH, outW, filterName) {
    var filter = FILTERS[filterName];
    if (h > w * 100 && outH < h) {
      var tall = outH !== h ? resizeV(src, h, w, outH, filter) : src;
      return outW !== w ? resizeH(tall, outH, w, outW, filter) : Float32Array.from(tall);
    }
    var wide = outW !== w ? resizeH(src, h, w, outW, filter) : src;
    return outH !== h ? resizeV(wide, h, outW, outH, filter) : Float32Array.from(wide);
  }

  // ------------------------------------------------------------------ stroke width (preprocess.py)
  function strokeWidth(ink, h, w) {
    var inked = [], mask = new Uint8Array(h * w);
    for (var i = 0; i < h * w; i++) {
      if (ink[i] > MASK_LEVEL_F32) { mask[i] = 1; inked.push(ink[i]); }
    }
    var area = sumF32(inked, 0, inked.length);
    if (area <= 0) return 0.0;
    // Ink/background transitions with a background frame around the map.
    var perimeter = 0, y, x, above, left;
    for (x = 0; x < w; x++) {
      above = 0;
      for (y = 0; y < h; y++) { if (mask[y * w + x] !== above) perimeter++; above = mask[y * w + x]; }
      if (above) perimeter++;
    }
    for (y = 0; y < h; y++) {
      left = 0;
      for (x = 0; x < w; x++) { if (mask[y * w + x] !== left) perimeter++; left = mask[y * w + x]; }
      if (left) perimeter++;
    }
    return 2.0 * area / Math.max(perimeter, 1);
  }

  function isqrt(n) {
    var r = Math.floor(Math.sqrt(n));
    while (r * r > n) r--;
    while ((r + 1) * (r + 1) <= n) r++;
    return r;
  }

  // dilate_disk: binary dilation by a disk of `radius`; the result is padded by ceil(radius).
  function dilateDisk(mask, h, w, radius) {
    var r = Math.ceil(radius), H = h + 2 * r, W = w + 2 * r;
    // Per mask row, a prefix count of inked columns.
    var csum = new Int32Array(h * (w + 1));
    for (var y = 0; y < h; y++) {
      for (var x = 0; x < w; x++) csum[y * (w + 1) + x + 1] = csum[y * (w + 1) + x] + mask[y * w + x];
    }
    var out = new Float32Array(H * W);
    for (var dy = -r; dy <= r; dy++) {
      var reach = radius * radius + 0.5 - dy * dy;
      if (reach < 0) continue;
      var half = reach >= 1 ? isqrt(Math.trunc(reach)) : 0;
      for (var i = 0; i < H; i++) {
        var my = i - dy - r;  // the mask row that reaches output row i at this offset
        if (my < 0 || my >= h) continue;
        var base = my * (w + 1);
        for (var j = 0; j < W; j++) {
          if (out[i * W + j]) continue;
          var lo = Math.max(j - r - half, 0), hi = Math.min(j - r + half + 1, w);
          if (hi > lo && csum[base + hi] - csum[base + lo] > 0) out[i * W + j] = 1;
        }
      }
    }
    return { data: out, h: H, w: W };
  }

  function normalizeStroke(ink, h, w) {
    var side = Math.max(h, w);
    var width = strokeWidth(ink, h, w);
    if (width <= 0 || width >= P.STROKE_THIN * side) return { data: ink, h: h, w: w };
    var mask = new Uint8Array(h * w), ones = new Float32Array(h * w);
    for (var i = 0; i < h * w; i++) if (ink[i] > MASK_LEVEL_F32) { mask[i] = 1; ones[i] = 1; }
    var radius = (P.STROKE_TARGET * side - strokeWidth(ones, h, w)) / 2;
    if (radius < 0.5) return { data: ink, h: h, w: w };
    return dilateDisk(mask, h, w, radius);
  }

  // ------------------------------------------------------------------ fit into 20x20, centre in 28x28
  function fitAndCenter(ink, h, w) {
    var N = P.MNIST_SIZE, out = new Float32Array(N * N);
    var scale = P.DIGIT_BOX / Math.max(h, w);
    var nh = Math.max(1, pyRound(h * scale)), nw = Math.max(1, pyRound(w * scale));
    var small = resize(ink, h, w, nh, nw, 'lanczos');
    for (var i = 0; i < small.length; i++) small[i] = Math.min(Math.max(small[i], 0.0), 1.0);
    var total = sumF32(small, 0, small.length);
    if (total <= 0) return out;
    var y, x;
    // small.sum(axis=1): each row pairwise; small.sum(axis=0): row after row (a single column: pairwise).
    var rowTerms = new Float64Array(nh), colTerms = new Float64Array(nw);
    for (y = 0; y < nh; y++) rowTerms[y] = sumF32(small, y * nw, nw) * y;
    for (x = 0; x < nw; x++) {
      var col;
      if (nw === 1) {
        col = sumF32(small, x, nh, nw);
      } else {
        col = small[x];
        for (y = 1; y < nh; y++) col = f32(col + small[y * nw + x]);
      }
      colTerms[x] = col * x;
    }
    var cy = sumF64(rowTerms) / total, cx = sumF64(colTerms) / total;
    var top = pyRound(P.MNIST_CENTER - cy), left = pyRound(P.MNIST_CENTER - cx);
    for (y = Math.max(top, 0); y < Math.min(top + nh, N); y++) {
      for (x = Math.max(left, 0); x < Math.min(left + nw, N); x++) {
        out[y * N + x] = small[(y - top) * nw + (x - left)];
      }
    }
    return out;
  }

  // ------------------------------------------------------------------ toMnist
  function toMnist(alpha, side, height) {
    var W = side, H = height || side;
    // One ink value per pixel: an RGBA array (4 per pixel) passed by mistake is refused, not misread.
    if (!alpha || alpha.length !== W * H) {
      throw new Error('toMnist: expected ' + W * H + ' ink values (' + W + 'x' + H + '), got ' + (alpha && alpha.length));
    }
    var threshold = 0.0 + P.INK_THRESHOLD * (255.0 - 0.0);
    var top = H, bottom = -1, left = W, right = -1, x, y;
    for (y = 0; y < H; y++) {
      for (x = 0; x < W; x++) {
        if (alpha[y * W + x] > threshold) {
          if (y < top) top = y;
          if (y > bottom) bottom = y;
          if (x < left) left = x;
          if (x > right) right = x;
        }
      }
    }
    if (bottom < 0) return null;  // blank: nothing above the noise threshold
    var h = bottom - top + 1, w = right - left + 1;
    var ink = new Float32Array(h * w);
    for (y = 0; y < h; y++) {
      for (x = 0; x < w; x++) {
        var v = f32(alpha[(top + y) * W + left + x] * INV_FULL_F32);  // ink strength
        v = f32(f32(v - THRESHOLD_F32) * CUT_SCALE_F32);  // _cut_noise
        ink[y * w + x] = v < 0 ? 0 : (v > 1 ? 1 : v);
      }
    }
    var longest = Math.max(h, w);
    if (longest > P.WORK_SIDE) {
      var s = P.WORK_SIDE / longest;
      var nh = Math.max(1, pyRound(h * s)), nw = Math.max(1, pyRound(w * s));
      ink = resize(ink, h, w, nh, nw, 'box');
      h = nh;
      w = nw;
    }
    var stroked = normalizeStroke(ink, h, w);
    return fitAndCenter(stroked.data, stroked.h, stroked.w);
  }

  // ------------------------------------------------------------------ weights (digitnet/webmodel.py)
  function bytesOf(b64) {
    var bin = atob(b64), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function float32s(b64) {
    var bytes = bytesOf(b64), view = new DataView(bytes.buffer), n = bytes.length / 4;
    var out = new Float64Array(n);
    for (var i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
    return out;
  }

  // A layer's weights as float64, one row (output channel / unit) after another.
  function decodeWeights(enc, rows, perRow, where) {
    var n = rows * perRow, out;
    if (enc.encoding === 'f32') {
      out = float32s(enc.data);
    } else if (enc.encoding === 'fixed') {
      var bits = enc.bits, top = Math.pow(2, bits - 1) - 1, unit = Math.pow(2, bits);
      var scale = float32s(enc.scale), bytes = bytesOf(enc.data);
      if (scale.length !== rows || bytes.length * 8 < n * bits) throw new Error(where + ': truncated weights');
      out = new Float64Array(n);
      var acc = 0, accBits = 0, p = 0;  // a little-endian bit stream, least significant bit first
      for (var i = 0; i < n; i++) {
        while (accBits < bits) { acc += bytes[p++] * Math.pow(2, accBits); accBits += 8; }
        var u = acc % unit;
        acc = (acc - u) / unit;
        accBits -= bits;
        out[i] = (u - top) * scale[Math.floor(i / perRow)];
      }
    } else {
      throw new Error(where + ': unknown weight encoding ' + enc.encoding);
    }
    if (out.length !== n) throw new Error(where + ': ' + out.length + ' weights, expected ' + n);
    return out;
  }

  // ------------------------------------------------------------------ layers
  // Every conv and linear layer is affine: out = base + W (x - ref) with base = W ref + b, for any
  // reference input ref. A run adds only the entries where x differs from ref, so ref is chosen to
  // be what x mostly is. For the first layer and the convolutions it is the layer's input on a
  // blank pad (the network is run once on one when the model is built): the background is most of
  // a drawing, and there every layer's values are exactly the blank pad's, the same numbers computed
  // the same way. For the later linear layers it is 0, which ReLU makes most of their inputs
  // (measured on drawn digits: 24% of the pixels differ from a blank pad's; of LeNet's conv2 input
  // 42% differ from the blank pad's, 68% from 0; of its fc1 input 45% and 24%). Weights are kept
  // transposed ([input][output]), so an entry adds one contiguous run. In exact arithmetic this is
  // PyTorch's sum; in double precision it differs by ~1e-15.
  function transpose(w, rows, cols) {
    var out = new Float64Array(rows * cols);
    for (var r = 0; r < rows; r++) for (var c = 0; c < cols; c++) out[c * rows + r] = w[r * cols + c];
    return out;
  }

  function prepareConv(L, C, H, W) {
    var O = L.out_channels;
    L.inC = C; L.inH = H; L.inW = W;
    L.outH = H + 2 * L.padding - L.kernel + 1;
    L.outW = W + 2 * L.padding - L.kernel + 1;
    var P = L.outH * L.outW, base = new Float64Array(O * P);
    for (var o = 0; o < O; o++) for (var q = 0; q < P; q++) base[o * P + q] = L.b[o];
    L.base = base;  // the bias, until prepareBlank
    L.wT = transpose(L.w, O, C * L.kernel * L.kernel);
  }

  function conv(input, L) {
    var O = L.out_channels, K = L.kernel, pad = L.padding, C = L.inC, H = L.inH, W = L.inW;
    var Ho = L.outH, Wo = L.outW, P = Ho * Wo, wT = L.wT, base = L.base;
    var out = new Float64Array(O * P), acc = new Float64Array(O), o;
    for (var y = 0; y < Ho; y++) {
      for (var x = 0; x < Wo; x++) {
        var p = y * Wo + x, k = 0;
        for (o = 0; o < O; o++) acc[o] = base[o * P + p];
        for (var c = 0; c < C; c++) {
          for (var ky = 0; ky < K; ky++) {
            var iy = y + ky - pad;
            if (iy < 0 || iy >= H) { k += K; continue; }
            var ib = (c * H + iy) * W;
            for (var kx = 0; kx < K; kx++, k++) {
              var ix = x + kx - pad;
              if (ix < 0 || ix >= W) continue;
              var v = input[ib + ix];
              if (v === 0) continue;
              var r = k * O;
              for (o = 0; o < O; o++) acc[o] += wT[r + o] * v;
            }
          }
        }
        for (o = 0; o < O; o++) out[o * P + p] = acc[o];
      }
    }
    return { data: out, C: O, H: Ho, W: Wo };
  }

  function pool2(t) {  // 2x2 max pooling, stride 2 (even sides: models.MaxPool2x2)
    var Ho = t.H >> 1, Wo = t.W >> 1, out = new Float64Array(t.C * Ho * Wo), d = t.data;
    for (var c = 0; c < t.C; c++) {
      for (var y = 0; y < Ho; y++) {
        for (var x = 0; x < Wo; x++) {
          var i = (c * t.H + 2 * y) * t.W + 2 * x;
          out[(c * Ho + y) * Wo + x] = Math.max(Math.max(d[i], d[i + 1]), Math.max(d[i + t.W], d[i + t.W + 1]));
        }
      }
    }
    return { data: out, C: t.C, H: Ho, W: Wo };
  }

  function prepareLinear(L) {
    L.base = Float64Array.from(L.b);  // the bias, until prepareBlank
    L.wT = transpose(L.w, L.out_features, L.in_features);
  }

  // A layer's output before pooling and ReLU, from the difference of its input from the blank pad's.
  function affine(L, input) {
    var d = input;
    if (L.blank) {
      d = new Float64Array(input.length);
      for (var i = 0; i < input.length; i++) d[i] = input[i] - L.blank[i];
    }
    return L.kind === 'conv' ? conv(d, L) : { data: linear(d, L), C: L.out_features, H: 1, W: 1 };
  }

  // One layer: affine, then pooling and ReLU as the spec says (a new array: `base` is never changed).
  function forwardLayer(L, input) {
    var t = affine(L, input);
    if (L.kind === 'conv' && L.pool === 2) t = pool2(t);
    if (L.relu) relu(t.data);
    return t;
  }

  // Run the network on a blank pad once; the first layer and the convolutions take it as their
  // reference (`blank`, their input there, and `base`, their output there), the others keep 0 and the bias.
  function prepareBlank(layers, input) {
    layers.forEach(function (L, index) {
      var pre = affine(L, input);  // base is still the bias: the full sum
      if (index === 0 || L.kind === 'conv') {
        L.base = Float64Array.from(pre.data);
        L.blank = input;
      }
      var t = { data: Float64Array.from(pre.data), C: pre.C, H: pre.H, W: pre.W };
      if (L.kind === 'conv' && L.pool === 2) t = pool2(t);
      if (L.relu) relu(t.data);
      input = t.data;
    });
  }

  function linear(input, L) {
    var I = L.in_features, O = L.out_features, wT = L.wT, out = Float64Array.from(L.base);
    for (var i = 0; i < I; i++) {
      var v = input[i];
      if (v === 0) continue;
      var r = i * O;
      for (var o = 0; o < O; o++) out[o] += wT[r + o] * v;
    }
    return out;
  }

  function relu(a) {
    for (var i = 0; i < a.length; i++) if (a[i] < 0) a[i] = 0;
    return a;
  }

  function softmax(logits, temperature) {
    var n = logits.length, top = -Infinity, i, out = new Float64Array(n), total = 0;
    for (i = 0; i < n; i++) top = Math.max(top, logits[i] / temperature);
    for (i = 0; i < n; i++) { out[i] = Math.exp(logits[i] / temperature - top); total += out[i]; }
    for (i = 0; i < n; i++) out[i] /= total;
    return out;
  }

  // ------------------------------------------------------------------ model
  function model(spec) {
    if (!spec || spec.format !== 'digitnet-page-model' || spec.version !== 1) {
      throw new Error('DigitNet.model: not a digitnet page model (format ' + (spec && spec.format) + ')');
    }
    var temperature = spec.temperature > 0 ? spec.temperature : 1.0;
    var mean = f32(spec.mean), std = f32(spec.std);
    var shape = [1, P.MNIST_SIZE, P.MNIST_SIZE];  // walked through the layers: a spec that does not fit fails here
    var layers = spec.layers.map(function (l) {
      var where = spec.arch + '.' + l.name, L = Object.assign({}, l);
      var inputs = shape.reduce(function (a, b) { return a * b; }, 1);
      L.b = float32s(l.bias.data);
      if (l.kind === 'conv') {
        if (shape.length !== 3 || shape[0] !== l.in_channels) throw new Error(where + ': input shape ' + shape);
        L.w = decodeWeights(l.weight, l.out_channels, l.in_channels * l.kernel * l.kernel, where);
        prepareConv(L, shape[0], shape[1], shape[2]);
        shape = l.pool === 2 ? [l.out_channels, L.outH >> 1, L.outW >> 1] : [l.out_channels, L.outH, L.outW];
      } else if (l.kind === 'linear') {
        if (inputs !== l.in_features) throw new Error(where + ': ' + inputs + ' inputs, expected ' + l.in_features);
        L.w = decodeWeights(l.weight, l.out_features, l.in_features, where);
        prepareLinear(L);
        shape = [l.out_features];
      } else {
        throw new Error(where + ': unknown layer kind ' + l.kind);
      }
      if (L.b.length !== shape[0]) throw new Error(where + ': ' + L.b.length + ' biases, expected ' + shape[0]);
      L.w = null;  // kept transposed (wT)
      L.shape = shape;
      return L;
    });
    var outputs = spec.outputs || 10;  // 10 digits; the not-a-digit detector (digitnet/detector.py) has 1
    if (shape.length !== 1 || shape[0] !== outputs) throw new Error(spec.arch + ': the last layer gives ' + shape + ', not ' + outputs + ' logits');
    var N = P.MNIST_SIZE;
    prepareBlank(layers, new Float64Array(N * N).fill(f32(f32(0 - mean) / std)));  // a blank pixel, normalised

    function run(x784) {
      if (!x784 || x784.length !== N * N) throw new Error('run: expected 784 inputs');
      var x = new Float64Array(N * N);
      for (var i = 0; i < N * N; i++) x[i] = f32(f32(x784[i] - mean) / std);  // preprocess.to_tensor, in float32
      var t = { data: x }, seen = [], logits = null;
      layers.forEach(function (L) {
        t = forwardLayer(L, t.data);
        if (L.relu) seen.push({ name: L.name, shape: L.shape.slice(), data: Float32Array.from(t.data) });
        else logits = t.data;
      });
      return {
        logits: Float32Array.from(logits),
        probs: Float32Array.from(softmax(logits, temperature)),
        layers: seen,
      };
    }

    return {
      arch: spec.arch,
      temperature: temperature,
      unsureBelow: spec.unsure_below,
      notDigitAbove: spec.not_digit_above,
      metrics: spec.metrics || {},
      run: run,
    };
  }

  // digitnet.predict.prediction_from_probs: the top digit (ties: the lower), the runner-up, and
  // "not sure" when the top probability is below the threshold.
  function answer(probs, unsureBelow) {
    var order = [];
    for (var i = 0; i < probs.length; i++) order.push(i);
    order.sort(function (a, b) { return probs[b] - probs[a] || a - b; });
    var digit = order[0];
    return {
      digit: digit,
      confidence: probs[digit],
      runnerUp: order[1],
      unsure: probs[digit] < unsureBelow,
    };
  }

  root.DigitNet = {
    PREPROCESS: P,
    toMnist: toMnist,
    model: model,
    answer: answer,
    // Exposed for tests: PIL-compatible resampling of a float32 image.
    resize: resize,
  };
  if (typeof root.dispatchEvent === 'function' && typeof Event === 'function') {
    root.dispatchEvent(new Event('digitnet-core-ready'));
  }
})(typeof window !== 'undefined' ? window : this);
