import type { SessionStart } from './session.ts';
import { h } from './ui/dom.ts';
import { Notice } from './ui/notice.ts';
import { type ScopeRules, scopeBadge } from './ui/scope-rules.ts';

/** The scopes the tour shows, in one line each: the whole idea of scopesync at a glance. */
const OVERVIEW: readonly [string, ScopeRules['tone'], string][] = [
  ['USER_PRIVATE', 'private', 'Private notes — only you, end-to-end encrypted'],
  ['USER_PUBLIC', 'public', 'Your profile — everyone reads it, only you write it'],
  ['PUBLIC_READ', 'read', 'The announcement — everyone reads it, admins write it'],
  ['PUBLIC_RW', 'rw', 'The guestbook — everyone reads and writes it'],
  ['blob', 'blob', 'Shared documents — you and the people you share them with'],
];

/**
 * The first page: what scopesync is, and signing up as a device. `start` opens the session;
 * a rejection is shown in words and the form stays usable.
 */
export function welcomePage(start: (how: SessionStart) => Promise<void>): HTMLElement {
  const notice = new Notice('welcome-error');
  const deviceName = h('input', {
    type: 'text',
    value: defaultDeviceName(),
    'aria-label': 'Device name',
    dataset: { testid: 'device-name' },
    class: 'grow',
  });
  const apiKey = h('input', {
    type: 'text',
    placeholder: 'API key from `scopesync-relay admin create`',
    'aria-label': 'API key',
    dataset: { testid: 'api-key' },
    class: 'grow',
  });

  const submit = async (how: SessionStart, button: HTMLButtonElement) => {
    notice.clear();
    button.disabled = true;
    try {
      await start(how);
    } catch (error) {
      const action = {
        key: 'sign in with this key',
        link: 'link this browser',
        'sign-up': 'register this device',
      };
      notice.error(error, how.kind === 'resume' ? 'open this device' : action[how.kind]);
      button.disabled = false;
    }
  };

  const phrase = h('input', {
    type: 'text',
    placeholder: 'Your 24-word recovery phrase',
    'aria-label': 'Recovery phrase',
    autocomplete: 'off',
    dataset: { testid: 'recovery-phrase' },
    class: 'grow',
  });
  const link = h('button', { type: 'submit', dataset: { testid: 'link-device' } }, 'Link this browser');
  const signUp = h(
    'button',
    { type: 'submit', class: 'primary', dataset: { testid: 'sign-up' } },
    'Create my device',
  );
  const useKey = h('button', { type: 'submit', dataset: { testid: 'use-key' } }, 'Use this key');

  return h(
    'div',
    { class: 'welcome', dataset: { testid: 'welcome' } },
    h('h1', null, 'scopesync'),
    h(
      'p',
      { class: 'lead' },
      'A local-first sync engine. Your data lives in this browser first and works offline; a relay syncs it ' +
        'and enforces, on every message, who may read and write it. Every piece of data sits in a ',
      h('b', null, 'scope'),
      ' that says who that is:',
    ),
    h(
      'div',
      { class: 'card' },
      h(
        'table',
        { class: 'scope-table' },
        h(
          'tbody',
          null,
          ...OVERVIEW.map(([scope, tone, text]) =>
            h('tr', null, h('td', null, scopeBadge(scope, tone)), h('td', null, text)),
          ),
        ),
      ),
    ),
    h(
      'form',
      {
        class: 'card',
        on: {
          submit: (event) => {
            event.preventDefault();
            const name = deviceName.value.trim();
            if (!name) {
              notice.show('error', 'Give this device a name, for example “Ada’s laptop”.');
              return;
            }
            void submit({ kind: 'sign-up', deviceName: name }, signUp);
          },
        },
      },
      h('h3', null, 'Start: register this browser as a device'),
      h(
        'p',
        { class: 'muted small' },
        'The relay gives this device an API key (kept encrypted in this browser) and you a user id that others use to find you.',
      ),
      h('div', { class: 'row' }, deviceName, signUp),
    ),
    h(
      'details',
      { class: 'card' },
      h('summary', { class: 'small' }, 'I already have a user: link this browser, or sign in as an admin'),
      h(
        'form',
        {
          class: 'row',
          on: {
            submit: (event) => {
              event.preventDefault();
              const words = phrase.value.trim().split(/\s+/).join(' ');
              if (!words) {
                notice.show('error', 'Paste your 24-word recovery phrase first.');
                return;
              }
              const name = deviceName.value.trim() || defaultDeviceName();
              void submit({ kind: 'link', recoveryPhrase: words, deviceName: name }, link);
            },
          },
        },
        phrase,
        link,
      ),
      h(
        'p',
        { class: 'muted small' },
        'The recovery phrase is on the “Your device” page of a browser you use already. It carries your keys, so this browser reads your private notes too.',
      ),
      h(
        'form',
        {
          class: 'row',
          on: {
            submit: (event) => {
              event.preventDefault();
              const key = apiKey.value.trim();
              if (!key) {
                notice.show('error', 'Paste an API key first.');
                return;
              }
              void submit({ kind: 'key', apiKey: key }, useKey);
            },
          },
        },
        apiKey,
        useKey,
      ),
    ),
    notice.element,
  );
}

/** A friendly default such as "Chrome on Linux". */
function defaultDeviceName(): string {
  const ua = navigator.userAgent;
  const browser = /Firefox\//.test(ua)
    ? 'Firefox'
    : /Edg\//.test(ua)
      ? 'Edge'
      : /Chrome\//.test(ua)
        ? 'Chrome'
        : 'Browser';
  const os = /Windows/.test(ua)
    ? 'Windows'
    : /Mac OS/.test(ua)
      ? 'macOS'
      : /Android/.test(ua)
        ? 'Android'
        : /Linux/.test(ua)
          ? 'Linux'
          : '';
  return os ? `${browser} on ${os}` : browser;
}
