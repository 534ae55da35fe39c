// Headless Chromium from Debian (/usr/bin/chromium); Playwright never downloads a browser
// (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 at `npm ci`). Run by hub/app/tests/console.rs, which
// starts the hub and passes the URLs and credentials in the environment.
const { defineConfig } = require('@playwright/test');

module.exports = defineConfig({
  testDir: '.',
  testMatch: /.*\.spec\.js$/,
  timeout: 180000,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  outputDir: process.env.CONSOLE_ARTIFACTS ? process.env.CONSOLE_ARTIFACTS + '/playwright' : 'test-results',
  use: {
    headless: true,
    baseURL: process.env.CONSOLE_URL,
    launchOptions: {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-dev-shm-usage'],
    },
    viewport: { width: 1400, height: 1000 },
  },
});
