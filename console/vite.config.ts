import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

/**
 * The console's build: `npm run console:build` writes console/build/ (committed, served by
 * src/http/console.ts). Hashed file names under assets/, no inline script (the page's CSP
 * allows none), no source maps, nothing fetched from another host at run time.
 */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/console/',
  logLevel: 'warn',
  // The same output whatever NODE_ENV the build runs under (vitest sets "test").
  mode: 'production',
  define: { 'process.env.NODE_ENV': JSON.stringify('production') },
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact', development: false } },
  build: {
    outDir: 'build',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: 'es2022',
    reportCompressedSize: false,
  },
});
