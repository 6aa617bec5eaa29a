/* Start a page's Python: Pyodide with numpy, the book's package and session.py.
 *
 * One file for both places the cells run: the browser's Web Worker (worker.js) and
 * Node (tests/runcells_node.js), so the tests start Python the way the page does.
 * `files` reads a file of the site's _pyodide/ folder as bytes (fetch, or fs).
 */
(function (root) {
  "use strict";

  async function bootPython(loadPyodide, indexURL, files) {
    const text = async (name) => new TextDecoder().decode(await files(name));
    const manifest = JSON.parse(await text("manifest.json"));
    const [pyodide, book, source] = await Promise.all([
      loadPyodide({ indexURL, packages: ["numpy"] }),
      files(manifest.book),
      text("session.py"),
    ]);
    const site = pyodide.runPython("import site; site.getsitepackages()[0]");
    pyodide.unpackArchive(book, "zip", { extractDir: site });
    pyodide.FS.writeFile(site + "/_page_session.py", source);
    const session = pyodide.pyimport("_page_session");
    const loaded = new Set(["numpy"]);

    // What the cell imports, fetched at once: Pyodide's own packages through its
    // lock, the others from their wheels (unpacked in the order session.py gives).
    async function load(code) {
      const names = session.needs(code).toJs().filter((name) => !loaded.has(name));
      const own = names.filter((name) => !manifest.wheels[name]);
      const wheels = names.filter((name) => manifest.wheels[name]);
      const [, ...fetched] = await Promise.all([
        own.length ? pyodide.loadPackage(own, { messageCallback: () => {} }) : null,
        ...wheels.map((name) => files(manifest.wheels[name])),
      ]);
      fetched.forEach((wheel) => pyodide.unpackArchive(wheel, "wheel", { extractDir: site }));
      names.forEach((name) => loaded.add(name));
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
