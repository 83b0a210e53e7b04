/** Jest config: unit tests in tests/, TypeScript through ts-jest, Node environment
 * (Node >= 18 provides fetch/Request/Response/Headers as globals). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/tests'],
  testRegex: '\\.test\\.ts$',
  moduleNameMapper: { '\\?raw$': '<rootDir>/tests/stubs/raw.js' },
  transform: {
    '^.+\\.tsx?$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }]
  }
};
