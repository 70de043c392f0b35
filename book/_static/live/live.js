/* The live classifier (issue 39): a chapter's trained network runs in the reader's browser, in
   WebAssembly, with onnxruntime-web served from this site; nothing is sent anywhere.

   Each network is an ONNX file written by `cnnlib export` (cnnlib/export.py): uint8 RGBA pixels
   (1, H, W, 4) at the model's input size in, class probabilities out; the grey conversion, /255 and
   the training mean and std are in the graph. What depends on the image's own size is done here, as
   cnnlib.predict does it (cnnlib/data.py, fit_images; cnnlib/predict.py, should_invert):
   - a grey network trained on dark images (MNIST's white digits on black) inverts a grey image whose
     border is brighter than its centre (a dark digit on white paper), before fitting;
   - an image no larger than the input and at least 3/4 of it is centred on a black canvas (LeCun et al.
     1998, Sec. III-A: 28 -> 32); any other is resized, shorter side to the input and centre-cropped
     (Krizhevsky et al. 2012, Sec. 2). The resizing is the browser's canvas, not torch's antialiased
     bilinear filter, so the probabilities of an image that needs it differ a little from `cnnlib predict`'s;
     an image at the input size, or padded to it, gets the same pixels.
   The list of networks comes from models.js, written by the site's build (book/_ext/live_classifier.py). */
(function () {
  "use strict";

  const here = new URL(".", document.currentScript.src);
  const SAMPLES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];
  const DRAW_SIDE = 224;
  const sessions = new Map();

  function element(tag, properties = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(properties)) {
      if (key === "className" || key === "textContent" || key === "hidden") node[key] = value;
      else node.setAttribute(key, value);
    }
    node.append(...children);
    return node;
  }

  function megabytes(bytes) {
    return (bytes / 1e6).toFixed(bytes < 1e6 ? 2 : 1) + " MB";
  }

  function canvas(width, height) {
    const made = element("canvas", { width: String(width), height: String(height) });
    return [made, made.getContext("2d", { willReadFrequently: true })];
  }

  // Pillow's RGB -> L (libImaging/Convert.c), as the ONNX graph and cnnlib.data.read_image compute it.
  function luma(data, index) {
    return Math.floor((19595 * data[index] + 38470 * data[index + 1] + 7471 * data[index + 2] + 32768) / 65536);
  }

  // cnnlib.predict.Classifier.should_invert: the border ring brighter than the centre.
  function shouldInvert(grey, height, width) {
    const ring = Math.max(1, Math.floor(Math.min(height, width) / 8));
    const top = Math.floor(height / 4), left = Math.floor(width / 4);
    let border = 0, borderCount = 0, centre = 0, centreCount = 0;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const value = grey[y * width + x];
        if (y < ring || y >= height - ring || x < ring || x >= width - ring) { border += value; borderCount++; }
        if (y >= top && y < height - top && x >= left && x < width - left) { centre += value; centreCount++; }
      }
    }
    return border / borderCount > centre / centreCount;
  }

  // The RGBA pixels the network takes, from an ImageBitmap or a canvas (see the comment at the top).
  function modelInput(source, entry) {
    const [channels, size] = entry.input_shape;
    const width = source.width, height = source.height;
    const [original, context] = canvas(width, height);
    context.drawImage(source, 0, 0);
    if (channels === 1 && entry.mean[0] < 0.5) {
      const image = context.getImageData(0, 0, width, height);
      const grey = new Uint8Array(width * height);
      for (let pixel = 0; pixel < grey.length; pixel++) grey[pixel] = luma(image.data, 4 * pixel);
      if (shouldInvert(grey, height, width)) {
        for (let pixel = 0; pixel < grey.length; pixel++) {
          image.data.fill(255 - grey[pixel], 4 * pixel, 4 * pixel + 3);
        }
        context.putImageData(image, 0, 0);
      }
    }
    const [fitted, target] = canvas(size, size);
    target.fillStyle = "#000";
    target.fillRect(0, 0, size, size);
    if (width <= size && height <= size && Math.min(width, height) >= 0.75 * size) {
      target.drawImage(original, (size - width) >> 1, (size - height) >> 1);
    } else {
      // Shorter side to `size`, then the centred crop: in the image, the centred square of the shorter side.
      const side = Math.min(width, height);
      target.imageSmoothingQuality = "high";
      target.drawImage(original, (width - side) / 2, (height - side) / 2, side, side, 0, 0, size, size);
    }
    return target.getImageData(0, 0, size, size);
  }

  // A drawing in MNIST's form, as cnnlib.classifier_app.drawing_to_image makes it: the digit's bounding box
  // fitted into a 20 x 20 box, keeping its aspect ratio, and centred by its centre of mass in a 28 x 28 field
  // (the MNIST page, https://yann.lecun.com/exdb/mnist/). Null when nothing is drawn.
  function mnistDigit(drawing) {
    const side = drawing.width;
    const ink = drawing.getContext("2d").getImageData(0, 0, side, side).data;
    let top = side, left = side, bottom = -1, right = -1;
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        if (ink[4 * (y * side + x)] > 0) {
          top = Math.min(top, y); bottom = Math.max(bottom, y); left = Math.min(left, x); right = Math.max(right, x);
        }
      }
    }
    if (bottom < 0) return null;
    const [boxWidth, boxHeight] = [right - left + 1, bottom - top + 1];
    const scale = 20 / Math.max(boxWidth, boxHeight);
    const [width, height] = [Math.max(1, Math.round(boxWidth * scale)), Math.max(1, Math.round(boxHeight * scale))];
    const [digit, context] = canvas(width, height);
    context.imageSmoothingQuality = "high";
    context.drawImage(drawing, left, top, boxWidth, boxHeight, 0, 0, width, height);
    const pixels = context.getImageData(0, 0, width, height).data;
    let mass = 0, row = 0, column = 0;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const value = pixels[4 * (y * width + x)];
        mass += value; row += y * value; column += x * value;
      }
    }
    const clip = (value, high) => Math.min(Math.max(value, 0), high);
    const [field, target] = canvas(28, 28);
    target.fillStyle = "#000";
    target.fillRect(0, 0, 28, 28);
    target.drawImage(digit, clip(Math.round(14 - column / mass), 28 - width), clip(Math.round(14 - row / mass), 28 - height));
    return field;
  }

  function sessionFor(entry) {
    if (!sessions.has(entry.name)) {
      const loading = (async () => {
        const start = performance.now();
        const session = await ort.InferenceSession.create(new URL("models/" + entry.onnx, here).href,
          { executionProviders: ["wasm"] });
        // The first run prepares the kernels: a one-time cost, counted in the loading, not in an image's time.
        const [, size] = entry.input_shape;
        await session.run({ image: new ort.Tensor("uint8", new Uint8Array(size * size * 4), [1, size, size, 4]) });
        return { session, loadMs: performance.now() - start };
      })();
      loading.catch(() => sessions.delete(entry.name));
      sessions.set(entry.name, loading);
    }
    return sessions.get(entry.name);
  }

  function setUp(panel) {
    const models = window.cnnlibLiveModels || [];
    const message = element("p", { className: "cnnlib-live-message", role: "status" });
    if (!models.length) {
      message.textContent = "No trained network was shipped with this build of the site: ship the chapters' " +
        "checkpoints (benchmarks/ship_checkpoints.py) and build it again with `make book`.";
      panel.replaceChildren(message);
      return;
    }
    if (typeof ort === "undefined") {
      message.textContent = "This build of the site lacks onnxruntime-web: build it with `make book`, " +
        "which installs it with npm.";
      panel.replaceChildren(message);
      return;
    }
    ort.env.wasm.wasmPaths = new URL("ort/", here).href;
    ort.env.wasm.numThreads = 1;  // threads need a cross-origin-isolated page, which a static server does not give

    const chosen = panel.dataset.network;
    const select = element("select", { className: "cnnlib-live-network", "aria-label": "Network" },
      ...models.map(entry => element("option", { value: entry.name },
        `${entry.name} (${entry.model}, test accuracy ${(100 * entry.test_accuracy).toFixed(1)} %)`)));
    if (models.some(entry => entry.name === chosen)) select.value = chosen;
    const download = element("p", { className: "cnnlib-live-download" });
    const file = element("input", { type: "file", accept: "image/*", className: "cnnlib-live-file",
      "aria-label": "Upload an image" });
    const samples = element("div", { className: "cnnlib-live-samples" },
      element("span", { textContent: "or a CIFAR-10 test image: " }),
      ...SAMPLES.map(name => {
        const button = element("button", { type: "button", title: name, "aria-label": `Classify the ${name}` },
          element("img", { src: new URL("samples/" + name + ".png", here).href, alt: name, width: "32",
            height: "32" }));
        button.addEventListener("click", async () => {
          const response = await fetch(new URL("samples/" + name + ".png", here));
          classify(await createImageBitmap(await response.blob(), { colorSpaceConversion: "none" }),
            `the CIFAR-10 ${name}`);
        });
        return button;
      }));
    const [drawing, pen] = canvas(DRAW_SIDE, DRAW_SIDE);
    drawing.className = "cnnlib-live-canvas";
    drawing.setAttribute("aria-label", "Draw a digit");
    const clear = () => { pen.fillStyle = "#000"; pen.fillRect(0, 0, DRAW_SIDE, DRAW_SIDE); };
    clear();
    let last = null;
    const at = event => {
      const box = drawing.getBoundingClientRect();
      return [(event.clientX - box.left) * DRAW_SIDE / box.width, (event.clientY - box.top) * DRAW_SIDE / box.height];
    };
    drawing.addEventListener("pointerdown", event => { last = at(event); drawing.setPointerCapture(event.pointerId); });
    drawing.addEventListener("pointerup", () => { last = null; });
    drawing.addEventListener("pointermove", event => {
      if (!last) return;
      const next = at(event);
      Object.assign(pen, { strokeStyle: "#fff", lineWidth: 22, lineCap: "round", lineJoin: "round" });
      pen.beginPath();
      pen.moveTo(...last);
      pen.lineTo(...next);
      pen.stroke();
      last = next;
    });
    const classifyDrawing = element("button", { type: "button", textContent: "Classify drawing" });
    const clearDrawing = element("button", { type: "button", textContent: "Clear" });
    clearDrawing.addEventListener("click", clear);
    classifyDrawing.addEventListener("click", () => {
      const digit = mnistDigit(drawing);
      if (digit) classify(digit, "your drawing");
      else message.textContent = "The canvas is empty: draw a digit first.";
    });
    const draw = element("div", { className: "cnnlib-live-draw" }, drawing,
      element("div", {}, classifyDrawing, " ", clearDrawing));
    const table = element("table", { className: "cnnlib-live-top" });
    const time = element("p", { className: "cnnlib-live-time" });

    function current() {
      return models.find(entry => entry.name === select.value);
    }

    function showNetwork() {
      const entry = current();
      const weights = new URL("models/" + entry.checkpoint, here).href;
      download.replaceChildren("Download the weights: ",
        element("a", { href: weights, download: entry.checkpoint, textContent: entry.checkpoint }),
        ` (${megabytes(entry.checkpoint_bytes)}, ${entry.weights}, SHA-256 ${entry.sha256.slice(0, 12)}…; ` +
        "`cnnlib predict --checkpoint` reads it) or the ONNX file the page runs: ",
        element("a", { href: new URL("models/" + entry.onnx, here).href, download: entry.onnx,
          textContent: entry.onnx }), ` (${megabytes(entry.onnx_bytes)}).`);
      const grey = entry.input_shape[0] === 1;
      samples.hidden = grey;
      draw.hidden = !grey;
      table.replaceChildren();
      time.textContent = "";
      message.textContent = grey ? "Draw a digit, or upload an image." : "Upload an image, or pick a test image.";
    }

    async function classify(source, label) {
      const entry = current();
      table.replaceChildren();
      time.textContent = "";
      if (location.protocol === "file:") {
        message.textContent = "This page was opened as a file, from which the browser will not load a network: " +
          "serve the site (python -m http.server -d _build/html) and open it from there.";
        return;
      }
      message.textContent = `Running ${entry.name} on ${label}…`;
      try {
        const { session, loadMs } = await sessionFor(entry);
        const [, size] = entry.input_shape;
        const pixels = modelInput(source, entry);
        const input = new ort.Tensor("uint8", pixels.data, [1, size, size, 4]);
        const start = performance.now();
        const output = await session.run({ image: input });
        const elapsed = performance.now() - start;
        const probabilities = Array.from(output.probabilities.data);
        const top = probabilities.map((probability, index) => [probability, index])
          .sort((a, b) => b[0] - a[0]).slice(0, 5);
        table.replaceChildren(element("tr", {}, element("th", { textContent: "class" }),
          element("th", { textContent: "probability" })),
          ...top.map(([probability, index]) => element("tr",
            { "data-class": entry.classes[index], "data-probability": String(probability) },
            element("td", { textContent: entry.classes[index] }),
            element("td", {}, element("span", { className: "cnnlib-live-bar",
              style: `width: ${(8 * probability).toFixed(2)}rem` }), ` ${(100 * probability).toFixed(2)} %`))));
        message.textContent = `${entry.name} reads ${label} as ${entry.classes[top[0][1]]}.`;
        time.dataset.ms = String(elapsed);
        time.textContent = `Computed in your browser in ${elapsed.toFixed(1)} ms (onnxruntime-web, WebAssembly); ` +
          `loading the network took ${loadMs.toFixed(0)} ms, once.`;
      } catch (error) {
        message.textContent = `${entry.name} could not run here (${error.message || error}): reload the page ` +
          "or try another browser.";
      }
    }

    file.addEventListener("change", async () => {
      const chosenFile = file.files[0];
      if (!chosenFile) return;
      let bitmap;
      try {
        bitmap = await createImageBitmap(chosenFile, { colorSpaceConversion: "none" });
      } catch (error) {
        table.replaceChildren();
        time.textContent = "";
        message.textContent = `“${chosenFile.name}” is not an image your browser can read: choose a PNG or JPEG file.`;
        return;
      }
      classify(bitmap, `“${chosenFile.name}”`);
    });
    select.addEventListener("change", showNetwork);
    panel.replaceChildren(
      element("div", { className: "cnnlib-live-controls" },
        element("label", {}, "Network ", select), " ", element("label", {}, "Upload an image ", file)),
      download, samples, draw, message, table, time);
    showNetwork();
  }

  function setUpAll() {
    document.querySelectorAll(".cnnlib-live").forEach(setUp);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setUpAll);
  else setUpAll();
})();
