// ESLint for the JupyterLab extension (`jlpm eslint:check`; `jlpm eslint` fixes what it can).
// Modelled on the jupyterlab/extension-template config, with the tests linted as well.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';
import prettierRecommended from 'eslint-plugin-prettier/recommended';
import globals from 'globals';
import jupyterPlugin from '@jupyter/eslint-plugin';

export default defineConfig([
  {
    ignores: ['node_modules', 'lib', 'coverage', '.yarn', '**/*.d.ts']
  },
  js.configs.recommended,
  tseslint.configs.recommended,
  jupyterPlugin.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      globals: { ...globals.browser, ...globals.es2015 },
      parserOptions: { project: 'tsconfig.json', sourceType: 'module' }
    },
    rules: {
      '@typescript-eslint/naming-convention': [
        'error',
        {
          selector: 'interface',
          format: ['PascalCase'],
          custom: { regex: '^I[A-Z]', match: true }
        }
      ],
      '@typescript-eslint/no-unused-vars': ['warn', { args: 'none' }],
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-namespace': 'off',
      '@typescript-eslint/no-use-before-define': 'off',
      // The template's '@typescript-eslint/quotes' no longer exists in typescript-eslint 8:
      // prettier's singleQuote keeps the quotes consistent instead.
      // nb2pipe ships no translations (no catalog for a language pack to fill), so wrapping
      // every string in trans.__() would change nothing a user sees.
      'jupyter/no-untranslated-string': 'off',
      curly: ['error', 'all'],
      eqeqeq: 'error',
      'prefer-arrow-callback': 'error'
    }
  },
  {
    // the jest tests compile with their own tsconfig (CommonJS, jest types)
    files: ['tests/**/*.ts'],
    languageOptions: {
      globals: { ...globals.node, ...globals.jest },
      parserOptions: { project: 'tsconfig.test.json' }
    }
  },
  {
    files: ['jest.config.js', 'webpack.config.js', 'tests/stubs/*.js'],
    languageOptions: { sourceType: 'commonjs', globals: globals.node }
  },
  prettierRecommended
]);
