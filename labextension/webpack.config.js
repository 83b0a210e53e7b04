// Extra build rules for the labextension (merged into @jupyter/builder's config).
// `import source from 'x.js?raw'` gives a file's text: graphlayout.ts starts elk's web worker
// from the text of elkjs/lib/elk-worker.min.js (a blob URL works whatever the page's public
// path of this module-federated bundle).
module.exports = {
  module: {
    rules: [{ resourceQuery: /raw/, type: 'asset/source' }]
  }
};
