import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { resolveSettings, SETTINGS, SettingError } from './settings.ts';

const RELAY_DOC = readFileSync(new URL('../../../docs/relay.md', import.meta.url), 'utf8');

describe('settings of scopesync-relay start', () => {
  it('are each one row of the table in docs/relay.md, with the same variable and default', () => {
    const rows = RELAY_DOC.split('\n').filter((line) => line.startsWith('| `--'));
    expect(rows).toHaveLength(SETTINGS.length);
    for (const s of SETTINGS) {
      const row = rows.find((r) => r.startsWith(`| \`--${s.flag}\``) || r.startsWith(`| \`--${s.flag} `));
      expect(row, `no row for --${s.flag}`).toBeDefined();
      const cells = (row ?? '').split(/(?<!\\)\|/).map((cell) => cell.trim());
      expect(cells[2]).toBe(`\`${s.env}${s.placeholder === '' ? '=1' : ''}\``);
      expect(cells[3]).toBe(s.shownDefault);
    }
  });

  it('have distinct flags and variables', () => {
    expect(new Set(SETTINGS.map((s) => s.flag)).size).toBe(SETTINGS.length);
    expect(new Set(SETTINGS.map((s) => s.env)).size).toBe(SETTINGS.length);
  });

  it('take the flag over the variable over the default, and name what is wrong', () => {
    expect(resolveSettings({ port: '1' }, { PORT: '2' }).get('port')).toBe('1');
    expect(resolveSettings({}, { PORT: '2' }).get('port')).toBe('2');
    expect(resolveSettings({}, { PORT: '' }).get('port')).toBe('8787');
    expect(resolveSettings({}, {}).has('static-dir')).toBe(false);
    expect(() => resolveSettings({}, { SCOPESYNC_MAX_PAGE_BYTES: '0' })).toThrow(
      new SettingError('SCOPESYNC_MAX_PAGE_BYTES must be a whole number ≥ 1, got "0"'),
    );
  });

  it('check the lists of origins, proxies and scope bounds item by item', () => {
    const ok = resolveSettings(
      {
        'cors-origins': 'https://a.example, http://localhost:5173',
        'trusted-proxies': '10.0.0.0/8,::1',
        'max-doc-bytes-by-scope': 'PUBLIC_RW=1024,blob=2048',
      },
      {},
    );
    expect(ok.get('trusted-proxies')).toBe('10.0.0.0/8,::1');
    expect(() => resolveSettings({ 'cors-origins': 'https://a.example/path' }, {})).toThrow(/--cors-origins/);
    expect(() => resolveSettings({ 'trusted-proxies': '10.0.0.0/40' }, {})).toThrow(/--trusted-proxies/);
    expect(() => resolveSettings({}, { SCOPESYNC_MAX_DOC_BYTES_BY_SCOPE: 'NOPE=1' })).toThrow(
      /SCOPESYNC_MAX_DOC_BYTES_BY_SCOPE/,
    );
    expect(() => resolveSettings({ 'metrics-token': 'short' }, {})).toThrow(/--metrics-token/);
  });
});
