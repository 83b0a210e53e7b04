/** A file imported as text (`webpack.config.js`'s `?raw` rule). */
declare module '*?raw' {
  const source: string;
  export default source;
}
