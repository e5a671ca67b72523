// Library build: one UMD file the Airflow UI imports (react_apps), with React taken from the host page.
// The host sets globalThis.React and globalThis.ReactJSXRuntime before it loads a plugin, clears
// globalThis.AirflowPlugin, imports the bundle and renders what the bundle left in globalThis.AirflowPlugin.
import { defineConfig } from "vite";

export default defineConfig({
  publicDir: "public", // the nav icon, copied beside the bundle
  define: { "process.env.NODE_ENV": JSON.stringify("production") },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2020",
    sourcemap: false,
    lib: {
      entry: "src/main.tsx",
      name: "AirflowPlugin",
      formats: ["umd"],
      fileName: () => "clickstream.umd.js",
    },
    rollupOptions: {
      external: ["react", "react/jsx-runtime", "react-dom"],
      output: {
        exports: "default",
        globals: { react: "React", "react/jsx-runtime": "ReactJSXRuntime", "react-dom": "ReactDOM" },
      },
    },
  },
});
