#!/usr/bin/env node
// Runs before `npm test` (the root `pretest` script): the browser tests drive a system
// Chromium through playwright-core and never download one. Finds it; when it is missing and
// this is a root shell on a Debian-like system, installs Debian's `chromium` package with
// apt-get; otherwise stops with one line saying what to install. Nothing else is downloaded.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Where the tests look (test/support/chromium.ts); SCOPESYNC_CHROMIUM points elsewhere. */
const CHROMIUM = process.env.SCOPESYNC_CHROMIUM || '/usr/bin/chromium';

/** Prints one line on stderr and exits 1. */
function fail(line) {
  process.stderr.write(`ensure-chromium: ${line}\n`);
  process.exit(1);
}

/** True when `command` is an executable file on PATH. */
function onPath(command) {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    if (dir === '') return false;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Runs a command with its output shown; false when it could not run or failed. */
function run(command, args) {
  const result = spawnSync(command, args, {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  return result.status === 0;
}

if (existsSync(CHROMIUM)) process.exit(0);

if (process.env.SCOPESYNC_CHROMIUM) {
  fail(`SCOPESYNC_CHROMIUM=${CHROMIUM} does not exist; point it at a Chromium or Chrome binary`);
}
const isRoot = process.getuid?.() === 0;
if (process.platform !== 'linux' || !onPath('apt-get')) {
  fail(
    `${CHROMIUM} is missing: install Chromium there (Debian/Ubuntu: apt-get install chromium) or set SCOPESYNC_CHROMIUM to a Chromium binary`,
  );
}
if (!isRoot) {
  fail(`${CHROMIUM} is missing: run \`sudo apt-get install -y chromium\`, then npm test again`);
}

process.stderr.write("ensure-chromium: installing Debian's chromium for the browser tests (apt-get)\n");
if (!run('apt-get', ['update', '-qq']) || !run('apt-get', ['install', '-y', '-qq', 'chromium'])) {
  fail('apt-get could not install chromium; install it by hand (apt-get install -y chromium)');
}
if (!existsSync(CHROMIUM)) fail(`apt-get installed chromium but ${CHROMIUM} is still missing`);
process.stderr.write(`ensure-chromium: ${CHROMIUM} installed\n`);
