// Lint settings for the widget front ends in js/ (plain ESM run in the browser).
import js from "@eslint/js";
import globals from "globals";

export default [
  {
    ignores: ["node_modules/**", ".venv/**", "build/**", "dist/**"],
  },
  js.configs.recommended,
  {
    files: ["js/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: { ...globals.browser },
    },
    rules: {
      "no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
      "no-var": "error",
      "prefer-const": "error",
      eqeqeq: ["error", "always"],
      "no-restricted-syntax": [
        "error",
        {
          selector: "AssignmentExpression[left.property.name=/^(innerHTML|outerHTML)$/]",
          message: "Insert text with textContent; markup from data would allow script injection.",
        },
        {
          selector: "CallExpression[callee.property.name='insertAdjacentHTML']",
          message: "Insert text with textContent; markup from data would allow script injection.",
        },
        {
          selector: "ImportDeclaration[source.value=/^https?:/]",
          message: "Widget ESM must not import from the network; the offline export has no network.",
        },
        {
          selector: "ImportExpression[source.value=/^https?:/]",
          message: "Widget ESM must not import from the network; the offline export has no network.",
        },
      ],
    },
  },
];
