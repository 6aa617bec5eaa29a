// Typeset the math of the built site, page by page, as the browser's MathJax would.
//
// Called by _ext/prerender_math.py with a JSON request on stdin:
//   {"macros": {name: body}, "pages": [[inner HTML of a math element, ...], ...]}
// and answers on stdout with
//   {"css": the stylesheet of the SVG output,
//    "pages": [{"elements": [the same elements typeset, ...],
//               "cache": the page's <svg> of shared glyph paths}, ...]}
//
// Each element keeps everything that is not math (an equation number, its link);
// each formula becomes an <mjx-container> holding an SVG for the eye and, beside
// it, MathML for screen readers (MathJax's assistive MathML). Glyph outlines are
// stored once per page ("fontCache: global"): each page gets a fresh TeX input, so
// that a \def on one page never leaks into another, as with one page per load.
'use strict';

const path = require('path');
const MJ = require(path.join(__dirname, '..', '..', 'vendor', 'mathjax-node', 'mathjax-svg.js'));

const adaptor = MJ.liteAdaptor();
MJ.AssistiveMmlHandler(MJ.RegisterHTMLHandler(adaptor));

// Everything MathJax's tex-svg-full component has, except the packages that load
// more code at run time (there is nothing to load and nowhere to load it from) and
// 'noundefined', which would print an unknown macro's name in red: without it an
// unknown macro is an error, and the build fails on it.
const PACKAGES = MJ.AllPackages.filter((name) => !['require', 'autoload', 'noundefined'].includes(name));

// TeX delimiters left in an element's text after typesetting: math MathJax did not
// find (unbalanced braces, say), which the reader would see as source.
const LEFT_OVER = /\\\(|\\\)|\\\[|\\\]|\$\$|\\begin\{|\\end\{/;

// Attributes that only MathJax's own scripts read (its explorer and menu), which
// a page without MathJax's scripts never runs: a fifth of a page's bytes.
const UNUSED = ['data-mml-node', 'data-c', 'data-mjx-texclass'];

function dropExplorerAttributes(node) {
  if (adaptor.kind(node) === '#text' || adaptor.kind(node) === '#comment') return;
  for (const name of UNUSED) adaptor.removeAttribute(node, name);
  for (const child of adaptor.childNodes(node)) dropExplorerAttributes(child);
}

// A formula TeX could not parse is typeset as its source in red, marked so.
function hasError(node) {
  if (adaptor.kind(node) === '#text' || adaptor.kind(node) === '#comment') return false;
  if (adaptor.getAttribute(node, 'data-mjx-error') || adaptor.getAttribute(node, 'data-mml-node') === 'merror') {
    return true;
  }
  return adaptor.childNodes(node).some(hasError);
}

function typesetPage(elements, macros) {
  const tex = new MJ.TeX({packages: PACKAGES, macros});
  const svg = new MJ.SVG({fontCache: 'global'});
  const body = elements.map((inner) => `<div>${inner}</div>`).join('');
  const html = MJ.mathjax.document(`<html><head></head><body>${body}</body></html>`, {
    InputJax: tex,
    OutputJax: svg,
  });
  html.render();
  const errors = [];
  for (const item of html.math) {
    const root = item.typesetRoot;
    if (hasError(root)) errors.push(item.math);
    dropExplorerAttributes(root);
    // The source, for the tests' check of what a formula holds, and for copying.
    // (The serializer escapes only quotes in attributes, so the ampersands here.)
    adaptor.setAttribute(root, 'data-tex', item.math.replace(/&/g, '&amp;'));
  }
  // The wrappers, in order: the body's element children (the glyph cache follows them).
  const wrappers = adaptor.childNodes(adaptor.body(html.document)).filter((node) => adaptor.kind(node) === 'div');
  const typeset = elements.map((_, k) => adaptor.innerHTML(wrappers[k]));
  wrappers.forEach((wrapper, k) => {
    const outside = adaptor.clone(wrapper);
    for (const container of adaptor.tags(outside, 'mjx-container')) adaptor.remove(container);
    if (LEFT_OVER.test(adaptor.textContent(outside))) errors.push(`not typeset: ${elements[k]}`);
  });
  // render() appended the shared glyphs to the body; hand them over separately.
  const glyphs = adaptor.elementById(adaptor.body(html.document), 'MJX-SVG-global-cache');
  return {
    elements: typeset,
    cache: glyphs ? adaptor.outerHTML(glyphs) : '',
    errors,
    css: adaptor.textContent(svg.styleSheet(html)),
  };
}

function main() {
  const chunks = [];
  process.stdin.on('data', (chunk) => chunks.push(chunk));
  process.stdin.on('end', () => {
    const request = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    const pages = request.pages.map((elements) => typesetPage(elements, request.macros || {}));
    const css = pages.length ? pages[0].css : '';
    pages.forEach((page) => delete page.css);
    process.stdout.write(JSON.stringify({css, pages}));
  });
}

main();
