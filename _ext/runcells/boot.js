/* Start a page's Python: Pyodide with numpy, the book's package and session.py.
 *
 * One file for both places the cells run: the browser's Web Worker (worker.js) and
 * Node (tests/runcells_node.js), so the tests start Python the way the page does.
 * `files` reads a file of the site's _pyodide/ folder as bytes (fetch, or fs).
 */
(function (root) {
  "use strict";

  async function bootPython(loadPyodide, indexURL, files) {
    const pyodide = await loadPyodide({ indexURL, packages: ["numpy"] });
    const text = async (name) => new TextDecoder().decode(await files(name));
    const manifest = JSON.parse(await text("manifest.json"));
    const site = pyodide.runPython("import site; site.getsitepackages()[0]");
    pyodide.unpackArchive(await files(manifest.book), "zip", { extractDir: site });
    pyodide.FS.writeFile(site + "/_page_session.py", await text("session.py"));
    const session = pyodide.pyimport("_page_session");
    const loaded = new Set(["numpy"]);

    async function load(code) {
      for (const name of session.needs(code).toJs()) {
        if (loaded.has(name)) continue;
        loaded.add(name);
        if (manifest.wheels[name]) {
          const wheel = await files(manifest.wheels[name]);
          pyodide.unpackArchive(wheel, "wheel", { extractDir: site });
        } else {
          await pyodide.loadPackage(name, { messageCallback: () => {} });
        }
      }
    }

    /* Run one cell; `emit(kind, text)` gets its output as it comes. */
    async function run(code, emit) {
      await load(code);
      return session.run(code, emit);
    }

    return { pyodide, run };
  }

  if (typeof module !== "undefined") module.exports = bootPython;
  else root.bootPython = bootPython;
})(this);
