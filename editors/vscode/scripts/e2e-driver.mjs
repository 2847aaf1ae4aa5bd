// Drives code-server in Debian's chromium (playwright-core) through what a user does with the
// CodeMLM extension, checks each result on screen and saves a screenshot of each step.
// Run by e2e.sh: node e2e-driver.mjs --url URL --out DIR --workspace DIR
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

const require = createRequire(path.join(process.env.NODE_PATH ?? process.cwd(), 'noop.js'));
const { chromium } = require('playwright-core');

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    out: { type: 'string' },
    workspace: { type: 'string' },
    'machine-settings': { type: 'string' },
  },
});
const OUT = args.out;
const QUERY = 'euclidean distance between two points';
const steps = [];

function check(condition, message) {
  if (!condition) {
    throw new Error(`check failed: ${message}`);
  }
  steps.push({ ok: true, check: message });
  console.log(`ok - ${message}`);
}

async function shot(page, name) {
  const file = path.join(OUT, `${name}.png`);
  await page.screenshot({ path: file });
  console.log(`   screenshot ${file}`);
}

/** The status bar item of the extension: its text contains "CodeMLM" (case-sensitive, unlike
 *  a string hasText: VS Code's own progress item for the server's "codemlm: indexing" differs). */
function statusItem(page) {
  return page.locator('.statusbar-item', { hasText: /CodeMLM/ }).first();
}

/** Text of line n (1-based) of the active editor, without inline-completion ghost text.
 *  Monaco reuses line elements, so their DOM order is not line order: sort by position. */
async function lineText(page, n) {
  return page.evaluate((n) => {
    const editor = document.querySelector('.editor-group-container.active .monaco-editor');
    const lines = [...editor.querySelectorAll('.view-lines .view-line')].sort(
      (a, b) => parseFloat(a.style.top) - parseFloat(b.style.top),
    );
    const line = lines[n - 1];
    if (line === undefined) {
      return null;
    }
    const clone = line.cloneNode(true);
    clone.querySelectorAll('[class*="ghost-text"]').forEach((e) => e.remove());
    return clone.textContent.replace(/\u00a0/g, ' ');
  }, n);
}

/** Error toasts the extension or the language client raised (e.g. "Request ... failed"). */
async function errorToasts(page) {
  const texts = await page.locator('.notifications-toasts .notification-toast', { hasText: /CodeMLM|codemlm/ }).allInnerTexts();
  // The one-time "CodeMLM is indexing this workspace" notice is information, not an error.
  return texts.filter((text) => !/is indexing this workspace/.test(text));
}

async function runCommand(page, title) {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible' });
  await input.fill(`>${title}`);
  const row = page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
  await row.waitFor({ state: 'visible', timeout: 15000 });
  await page.keyboard.press('Enter');
}

/** Quick Open (F1 without the ">"): a file by name, or ":N" for a line. */
async function quickOpen(page, text, expectRow = true) {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible' });
  await input.fill(text);
  if (expectRow) {
    await page.locator('.quick-input-list .monaco-list-row').first().waitFor({ state: 'visible', timeout: 15000 });
  }
  await page.keyboard.press('Enter');
}

async function main() {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(30000);
  try {
    await page.goto(args.url);
    await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: 90000 });
    check(true, 'code-server workbench loaded');

    // 1. Opening the folder alone does not start CodeMLM (no activation on every workspace);
    //    opening a file of a language it serves does: it starts the server and builds the index.
    await page.waitForTimeout(3000);
    check((await statusItem(page).count()) === 0, 'not started by opening the folder alone');
    await quickOpen(page, 'src/geometry/shapes.py');
    await page.locator('.tab.active', { hasText: 'shapes.py' }).waitFor({ state: 'visible' });
    const item = statusItem(page);
    await item.waitFor({ state: 'visible', timeout: 60000 });
    check(true, `status bar item shown: "${(await item.innerText()).trim()}"`);
    await page.waitForFunction(
      () => {
        const el = [...document.querySelectorAll('.statusbar-item')].find((e) => e.textContent?.includes('CodeMLM'));
        return el !== undefined && el.querySelector('.codicon-check, .codicon-error, .codicon-warning') !== null;
      },
      undefined,
      { timeout: 180000, polling: 500 },
    );
    const tooltip = await item.getAttribute('aria-label');
    if ((await item.locator('.codicon-check').count()) === 0) {
      await shot(page, '01-not-ready');
      throw new Error(`the status bar says the server is not ready: ${tooltip}`);
    }
    check(true, `status bar shows the index ready (${tooltip})`);
    await shot(page, '01-ready');

    // 2. CodeMLM: Search Repository, typed as a user types; server-ranked rows appear.
    await runCommand(page, 'CodeMLM: Search Repository');
    const input = page.locator('.quick-input-widget input');
    await page.locator('.quick-input-widget', { hasText: 'CodeMLM: Search Repository' }).waitFor({ state: 'visible' });
    await input.pressSequentially(QUERY, { delay: 30 });
    const hit = page.locator('.quick-input-list .monaco-list-row', { hasText: 'distance' }).first();
    await hit.waitFor({ state: 'visible', timeout: 30000 });
    const rows = await page.locator('.quick-input-list .monaco-list-row').allInnerTexts();
    console.log(`   rows: ${JSON.stringify(rows.slice(0, 5))}`);
    check(rows.length >= 1, `search shows ${rows.length} result rows`);
    const firstThree = rows.slice(0, 3).join('\n');
    check(/distance/.test(firstThree) && /shapes\.py:9/.test(firstThree), 'distance (shapes.py:9) is among the first three rows');
    await shot(page, '02-search');
    // Open the row that names distance.
    const rowIndex = rows.findIndex((r) => /distance/.test(r) && /shapes\.py:9/.test(r));
    for (let i = 0; i < rowIndex; i++) {
      await page.keyboard.press('ArrowDown');
    }
    await page.keyboard.press('Enter');
    await page.locator('.tab.active', { hasText: 'shapes.py' }).waitFor({ state: 'visible' });
    await page.waitForTimeout(500);
    const cursorLine = await page.locator('.editor-status-selection, [id="status.editor.selection"]').first().innerText();
    check(/Ln 9\b/.test(cursorLine), `opened shapes.py at the hit (${cursorLine.trim()})`);
    await shot(page, '03-opened');

    // 2b. Go to Symbol in Workspace (Quick Open "#"): VS Code's own UI over workspace/symbol,
    //     which the server answers with the same hybrid search. VS Code re-filters the rows by
    //     fuzzy match on the symbol name, so this UI suits name queries (natural language goes
    //     through Search Repository above, whose rows are alwaysShow).
    await page.keyboard.press('F1');
    await page.locator('.quick-input-widget input').fill('#distance');
    const symbolRow = page.locator('.quick-input-list .monaco-list-row', { hasText: 'distance' }).first();
    await symbolRow.waitFor({ state: 'visible', timeout: 30000 });
    const symbolRows = await page.locator('.quick-input-list .monaco-list-row').allInnerTexts();
    console.log(`   symbols: ${JSON.stringify(symbolRows.slice(0, 3))}`);
    check(symbolRows.length >= 1, `workspace symbol search lists ${symbolRows.length} symbol(s), "distance" among them`);
    await shot(page, '03b-workspace-symbols');
    await page.keyboard.press('Escape');

    // 2c. CodeMLM: Reindex — the server takes the command and comes back ready.
    await runCommand(page, 'CodeMLM: Reindex');
    await page.locator('.statusbar-item', { hasText: 'CodeMLM: reindex started' }).first().waitFor({ state: 'visible', timeout: 30000 });
    await page.waitForFunction(
      () => {
        const el = [...document.querySelectorAll('.statusbar-item')].find((e) => e.textContent?.includes('CodeMLM'));
        return el?.querySelector('.codicon-check') != null;
      },
      undefined,
      { timeout: 120000, polling: 250 },
    );
    check(true, 'Reindex ran and the status bar is back to ready');

    // 3. Inline completion: ghost text at the hole in e2e_infill.py (line 6, `    return a - `).
    await quickOpen(page, 'e2e_infill.py');
    await page.locator('.tab.active', { hasText: 'e2e_infill.py' }).waitFor({ state: 'visible' });
    await quickOpen(page, ':6', false);
    await page.keyboard.press('End');
    const hole = await lineText(page, 6);
    check(hole === '    return a - ', `cursor at the hole: "${hole}"`);
    await runCommand(page, 'Trigger Inline Suggestion');
    const ghost = page.locator('.editor-group-container.active [class*="ghost-text"]').first();
    await ghost.waitFor({ state: 'visible', timeout: 30000 });
    const ghostText = await page.locator('.editor-group-container.active [class*="ghost-text"]').allInnerTexts();
    check(ghostText.join('').trim().length > 0, `inline completion shows ghost text: ${JSON.stringify(ghostText)}`);
    await shot(page, '04-inline-completion');
    await page.keyboard.press('Escape');

    // 4. Completion list: Ctrl+Space lists codemlm's candidates; Enter inserts the first.
    await page.keyboard.press('Control+Space');
    const suggest = page.locator('.editor-widget.suggest-widget .monaco-list-row').first();
    await suggest.waitFor({ state: 'visible', timeout: 30000 });
    const labels = await page.locator('.editor-widget.suggest-widget .monaco-list-row').allInnerTexts();
    console.log(`   suggestions: ${JSON.stringify(labels)}`);
    check(labels.length >= 1, `completion shows ${labels.length} suggestion(s)`);
    const widgetText = await page.locator('.editor-widget.suggest-widget').innerText();
    check(/codemlm/.test(widgetText), 'the suggestion comes from codemlm (detail "codemlm  score …")');
    const first = labels[0].split('\n')[0].trim();
    await shot(page, '05-completion');
    await page.keyboard.press('Enter');
    await page.waitForTimeout(300);
    await page.keyboard.press('Escape');
    const completed = await lineText(page, 6);
    check(completed === `    return a - ${first}`, `accepting "${first}" edits line 6: "${completed}"`);
    await shot(page, '06-accepted');

    // 4. Fill Selection: select `a * b` on line 10 and let the server replace it.
    await quickOpen(page, ':10', false);
    await page.keyboard.press('End');
    for (let i = 0; i < 5; i++) {
      await page.keyboard.press('Shift+ArrowLeft');
    }
    const before = await lineText(page, 10);
    await runCommand(page, 'CodeMLM: Fill Selection');
    let after = before;
    for (let i = 0; i < 150 && after === before; i++) {
      await page.waitForTimeout(200);
      after = await lineText(page, 10);
    }
    console.log(`   fill: "${before}" -> "${after}"`);
    await shot(page, '07-fill-selection');
    check(after !== before, `Fill Selection replaced the selection: "${before}" -> "${after}"`);
    check(after.startsWith('    return '), 'only the selection changed (the text before it is intact)');
    const toasts = await errorToasts(page);
    check(toasts.length === 0, `no error notifications from CodeMLM (${JSON.stringify(toasts)})`);

    // 6. A wrong interpreter: changing the setting restarts the server, and the user is told
    //    what is wrong and how to fix it (notification + status bar), instead of a dead server.
    const settingsFile = args['machine-settings'];
    const settings = JSON.parse(readFileSync(settingsFile, 'utf8'));
    settings['codemlm.interpreter'] = '/nonexistent/bin/python3';
    writeFileSync(settingsFile, JSON.stringify(settings, null, 2));
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'was not found' }).first();
    await toast.waitFor({ state: 'visible', timeout: 30000 });
    const toastText = (await toast.innerText()).replace(/\s+/g, ' ');
    check(/codemlm\.interpreter/.test(toastText) && /Open Settings/.test(toastText), `bad interpreter explained: "${toastText}"`);
    await page.waitForFunction(
      () => {
        const el = [...document.querySelectorAll('.statusbar-item')].find((e) => e.textContent?.includes('CodeMLM'));
        return el?.querySelector('.codicon-error') != null;
      },
      undefined,
      { timeout: 10000, polling: 200 },
    );
    check(true, 'status bar shows the error');
    await shot(page, '08-bad-interpreter');
  } catch (error) {
    steps.push({ ok: false, error: String(error?.stack ?? error) });
    console.error(`not ok - ${error?.message ?? error}`);
    await shot(page, '99-failure').catch(() => undefined);
    process.exitCode = 1;
  } finally {
    writeFileSync(path.join(OUT, 'e2e-report.json'), JSON.stringify(steps, null, 2));
    await browser.close();
  }
}

await main();
