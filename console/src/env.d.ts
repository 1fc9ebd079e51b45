// Stylesheets are bundled by esbuild (console/build.mjs).
declare module '*.css';
