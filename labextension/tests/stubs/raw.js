// Jest has no `?raw` rule (webpack.config.js): a file imported as text is empty here, and
// graphlayout.ts lays out on the main thread (Node has no Worker).
module.exports = '';
