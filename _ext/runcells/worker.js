/* The page's Python, off the page's thread: runcells.js posts {id, code}; each
 * output comes back as {id, kind, text}, then {id, kind: "done", ok}. */
importScripts("pyodide.js", "boot.js");

const files = async (name) => {
  const response = await fetch(name);
  if (!response.ok) throw new Error(`${name}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
};
let python = null;
let queue = Promise.resolve();

self.onmessage = (event) => {
  const { id, code } = event.data;
  queue = queue.then(async () => {
    let ok = false;
    try {
      python ??= bootPython(loadPyodide, new URL("./", self.location).href, files);
      const { run } = await python;
      ok = await run(code, (kind, text) => self.postMessage({ id, kind, text }));
    } catch (error) {
      self.postMessage({ id, kind: "error", text: String(error && error.message || error) });
    }
    self.postMessage({ id, kind: "done", ok });
  });
};
