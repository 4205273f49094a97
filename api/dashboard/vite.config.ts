// Built by api/build.rs (`npm run build -- --outDir $OUT_DIR/dashboard`) and embedded in the binary.
// The api sends a strict Content-Security-Policy (script-src 'self', no inline code, no data: URLs),
// so nothing may be inlined: no module-preload polyfill, no assets as data: URLs.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: "es2022",
    reportCompressedSize: false,
  },
});
