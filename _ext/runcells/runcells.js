/* Run a chapter's cells in the page (see _ext/runnable_cells.py).
 *
 * Adds a Run button to every code cell and makes its code editable. Nothing is
 * downloaded until the first Run: that starts worker.js, which loads Python. The
 * cells of the page share that one Python, like a notebook's kernel; running a cell
 * first runs, once, every cell above it that has not run yet, so a reader can start
 * anywhere. Stop ends the worker (the page stays responsive, since Python never runs
 * on the page's thread) and the next Run starts a fresh Python.
 *
 * Each cell's element carries data-runcells = idle | queued | running | done | error.
 */
(() => {
  "use strict";
  const data = document.getElementById("runcells-data");
  if (!data) return;
  const cells = JSON.parse(data.textContent).cells;
  const base = new URL(".", document.currentScript.src).href;
  const elements = [...document.querySelectorAll("article div.cell")];
  const shown = cells.filter((cell) => cell.shown);
  if (elements.length !== shown.length) {
    console.warn(`runcells: ${elements.length} cells on the page, ${shown.length} in the notebook`);
    return;
  }

  let worker = null;
  let nextId = 0;
  const pending = new Map(); // id -> {onOutput, resolve}
  const ran = new Set(); // indices of the cells run in the current Python
  let busy = false;
  const status = document.createElement("div");
  status.className = "runcells-status";
  status.setAttribute("role", "status");
  status.hidden = true;
  const stop = document.createElement("button");
  stop.type = "button";
  stop.className = "runcells-stop";
  stop.textContent = "Stop";
  stop.addEventListener("click", () => restart("Stopped. The next Run starts a fresh Python."));
  const statusText = document.createElement("span");
  status.append(statusText, stop);
  document.body.append(status);

  function say(text, running) {
    status.hidden = !text;
    statusText.textContent = text || "";
    stop.hidden = !running;
  }

  function startWorker() {
    worker = new Worker(base + "worker.js");
    worker.onmessage = ({ data: message }) => {
      const job = pending.get(message.id);
      if (!job) return;
      if (message.kind === "done") {
        pending.delete(message.id);
        job.resolve(message.ok);
      } else {
        job.onOutput(message.kind, message.text);
      }
    };
    worker.onerror = (event) => {
      for (const job of pending.values()) job.onOutput("error", String(event.message));
      restart("Python stopped with an error; the next Run starts a fresh one.");
    };
  }

  function restart(message) {
    if (worker) worker.terminate();
    worker = null;
    ran.clear();
    for (const job of pending.values()) job.resolve(false);
    pending.clear();
    for (const element of elements) {
      const state = element.dataset.runcells;
      if (state === "queued" || state === "running") element.dataset.runcells = "idle";
    }
    busy = false;
    say(message, false);
  }

  function execute(code, onOutput) {
    if (!worker) startWorker();
    const id = nextId++;
    return new Promise((resolve) => {
      pending.set(id, { onOutput, resolve });
      worker.postMessage({ id, code });
    });
  }

  // The code a cell runs: what the reader sees and may have edited. textContent,
  // not innerText, which is empty for a cell in a folded solution (<details>).
  function codeOf(index) {
    const view = views.get(index);
    return view && view.code ? view.code.textContent.replace(/\n$/, "") : cells[index].source;
  }

  function outputArea(view) {
    if (!view.output) {
      view.output = document.createElement("div");
      view.output.className = "runcells-output";
      view.output.setAttribute("aria-live", "polite");
      const input = view.element.querySelector(".cell_input");
      (input || view.toolbar).after(view.output);
    }
    return view.output;
  }

  function show(view, kind, text) {
    const area = outputArea(view);
    if (kind === "png") {
      const image = document.createElement("img");
      image.src = "data:image/png;base64," + text;
      // the stored figure's description, when this is the figure it describes
      const stored = view.element.querySelectorAll(".cell_output img")[area.querySelectorAll("img").length];
      image.alt = (stored && stored.alt ? stored.alt + " " : "") + "(Drawn in your browser.)";
      image.dataset.kind = kind;
      area.append(image);
      return;
    }
    const last = area.lastElementChild;
    if (last && last.dataset.kind === kind && kind !== "text") {
      last.textContent += text;
      return;
    }
    const block = document.createElement("pre");
    block.dataset.kind = kind;
    block.textContent = text;
    area.append(block);
  }

  async function runCell(index) {
    const view = views.get(index);
    if (view) {
      view.element.dataset.runcells = "running";
      const area = outputArea(view);
      area.replaceChildren();
      // the stored output gives way to the live one; a figure's caption stays
      view.element.classList.add("runcells-ran");
    }
    const onOutput = (kind, text) => {
      if (view) show(view, kind, text);
      else if (kind === "error") console.error(`runcells: hidden cell ${index}:`, text);
    };
    const ok = await execute(codeOf(index), onOutput);
    if (view && view.element.dataset.runcells === "running") {
      view.element.dataset.runcells = ok ? "done" : "error";
    }
    ran.add(index);
    return ok;
  }

  async function runUpTo(target) {
    if (busy) return;
    if (location.protocol === "file:") {
      // a browser runs no Web Worker for a page opened from a file
      say("Running cells needs the site served over HTTP, e.g. python -m http.server -d _build/html", false);
      return;
    }
    busy = true;
    const todo = [];
    for (let index = 0; index < target; index++) {
      if (!ran.has(index) && !cells[index].skip) todo.push(index);
    }
    todo.push(target);
    for (const index of todo) {
      const view = views.get(index);
      if (view) view.element.dataset.runcells = "queued";
    }
    const first = !worker;
    for (const index of todo) {
      if (!busy) return; // stopped
      const label = index === target ? "this cell" : `cell ${index + 1} above it first`;
      const starting = first && !ran.size;
      say(starting ? "Starting Python in your browser (downloaded once)…" : `Running ${label}…`, true);
      await runCell(index);
    }
    busy = false;
    say("", false);
  }

  const views = new Map();
  let position = 0;
  cells.forEach((cell, index) => {
    if (!cell.shown) return;
    const element = elements[position++];
    const view = { element, code: element.querySelector(".cell_input pre") };
    views.set(index, view);
    const toolbar = document.createElement("div");
    toolbar.className = "runcells-toolbar";
    view.toolbar = toolbar;
    if (cell.skip) {
      element.dataset.runcells = "skipped";
      const note = document.createElement("p");
      note.className = "runcells-skip";
      note.textContent = "Runs in Jupyter only, not in this page: " + cell.skip;
      toolbar.append(note);
    } else {
      element.dataset.runcells = "idle";
      const button = document.createElement("button");
      button.type = "button";
      button.className = "runcells-run";
      button.textContent = "▶ Run";
      button.title = "Run this cell in your browser (Shift+Enter in the code)";
      button.addEventListener("click", () => runUpTo(index));
      toolbar.append(button);
      if (view.code) {
        view.code.contentEditable = "plaintext-only";
        view.code.spellcheck = false;
        view.code.setAttribute("aria-label", "Code of this cell, editable");
        view.code.addEventListener("keydown", (event) => {
          if (event.key === "Enter" && event.shiftKey) {
            event.preventDefault();
            runUpTo(index);
          }
        });
      }
    }
    element.prepend(toolbar);
  });
})();
