// Lint for the browser tests and for the UI's own script. Run from the repository root
// (scripts/ui-tests.sh): eslint --config ui-tests/eslint.config.js ui-tests crates/countersign-server/static
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["ui-tests/node_modules/**", "target/**"] },
  js.configs.recommended,
  {
    files: ["ui-tests/**/*.mjs", "ui-tests/**/*.js"],
    languageOptions: { ecmaVersion: 2023, sourceType: "module", globals: { ...globals.node } },
  },
  {
    files: ["crates/countersign-server/static/**/*.js"],
    languageOptions: { ecmaVersion: 2022, sourceType: "script", globals: { ...globals.browser } },
  },
];
