// ESLint (in .ci/test, as clippy is for Rust): the rules that catch bugs,
// not style — formatting is left alone. `npx eslint .`
import js from '@eslint/js';
import globals from 'globals';

export default [
  { ignores: ['www/pkg/**', 'target/**', 'fuzz/**', 'node_modules/**'] },
  js.configs.recommended,
  {
    rules: {
      // Bugs that recommended leaves out.
      'no-unused-vars': ['error', { args: 'after-used', argsIgnorePattern: '^_', caughtErrors: 'none' }],
      'no-shadow-restricted-names': 'error',
      'no-self-compare': 'error',
      'no-template-curly-in-string': 'error',
      'no-unreachable-loop': 'error',
      'no-constructor-return': 'error',
      'no-use-before-define': ['error', { functions: false, classes: false, variables: false }],
      'array-callback-return': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      'no-unused-expressions': ['error', { allowShortCircuit: true, allowTernary: true }],
      'no-unused-private-class-members': 'error',
      'no-sequences': 'error',
      'no-throw-literal': 'error',
      'default-case-last': 'error',
      'no-new-wrappers': 'error',
      'no-extend-native': 'error',
      'no-proto': 'error',
      radix: 'error',
      'no-implied-eval': 'error',
      'no-new-func': 'error',
      'no-eval': 'error',
    },
  },
  {
    files: ['www/**/*.js'],
    languageOptions: { globals: { ...globals.browser } },
  },
  {
    // Node, and the browser for the bodies of page.evaluate().
    files: ['tests/**/*.mjs', 'tests/**/*.js', '*.js', '.ci/**/*.mjs'],
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
  },
];
