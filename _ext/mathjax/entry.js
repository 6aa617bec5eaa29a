// The parts of MathJax 3.2.2 (npm package mathjax-full) that render.js uses;
// bundle.sh bundles them into vendor/mathjax-node/mathjax-svg.js.
export {mathjax} from 'mathjax-full/js/mathjax.js';
export {TeX} from 'mathjax-full/js/input/tex.js';
export {SVG} from 'mathjax-full/js/output/svg.js';
export {liteAdaptor} from 'mathjax-full/js/adaptors/liteAdaptor.js';
export {RegisterHTMLHandler} from 'mathjax-full/js/handlers/html.js';
export {AssistiveMmlHandler} from 'mathjax-full/js/a11y/assistive-mml.js';
export {AllPackages} from 'mathjax-full/js/input/tex/AllPackages.js';
