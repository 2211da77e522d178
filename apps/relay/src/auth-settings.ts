import { readFileSync } from 'node:fs';
import type { Level } from '@scopesync/core';
import { type JwtAuthOptions, type JwtKeySource, JwtVerifier, type RelayAuthOptions } from '@scopesync/relay';
import { listItems, type ResolvedSettings, SettingError } from './settings.ts';

const KEY_FLAGS = ['jwt-secret-file', 'jwt-public-key-file', 'jwt-jwks-file'] as const;

/**
 * The relay's `auth` options from the settings: registration, and the JWT verifier when
 * `--jwt-issuer` is given. Throws SettingError for an incomplete JWT set-up (no audience, not
 * exactly one key) or a key file that cannot be read: a relay meant to check tokens never starts
 * without checking them.
 */
export function authOptionsOf(settings: ResolvedSettings): RelayAuthOptions {
  const registration = settings.get('registration') === 'closed' ? 'closed' : 'open';
  const issuer = settings.get('jwt-issuer');
  const keys = KEY_FLAGS.filter((flag) => settings.get(flag) !== undefined);
  const audience = settings.get('jwt-audience');
  if (issuer === undefined) {
    const stray = [...keys, ...(audience === undefined ? [] : ['jwt-audience'])];
    if (stray.length > 0) throw new SettingError(`--${stray[0]} needs --jwt-issuer`);
    return { registration };
  }
  if (audience === undefined) throw new SettingError('--jwt-issuer needs --jwt-audience');
  if (keys.length !== 1)
    throw new SettingError(
      '--jwt-issuer needs exactly one of --jwt-secret-file, --jwt-public-key-file, --jwt-jwks-file',
    );
  const roles = listItems(settings.get('jwt-roles'));
  const jwt: JwtAuthOptions = {
    ...keySource(keys[0] as (typeof KEY_FLAGS)[number], settings.get(keys[0] as string) as string),
    issuer: listItems(issuer),
    audience: listItems(audience),
    claims: {
      subject: settings.get('jwt-subject-claim'),
      level: settings.get('jwt-level-claim'),
      roles: settings.get('jwt-roles-claim'),
    },
    maxLevel: Number(settings.get('jwt-max-level') ?? 1) as Level,
    ...(roles.length === 0
      ? {}
      : {
          roleLevels: Object.fromEntries(
            roles.map((item) => {
              const at = item.lastIndexOf('=');
              return [item.slice(0, at), Number(item.slice(at + 1)) as Level];
            }),
          ),
        }),
  };
  try {
    // Load the key and check the set-up now: a bad one stops the command (exit 2), not the relay.
    new JwtVerifier(jwt);
  } catch (error) {
    throw new SettingError(`--jwt-issuer: ${(error as Error).message}`);
  }
  return { registration, jwt };
}

function keySource(flag: (typeof KEY_FLAGS)[number], file: string): JwtKeySource {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new SettingError(`--${flag}: cannot read ${file}: ${(error as Error).message}`);
  }
  if (flag === 'jwt-secret-file') return { secret: text.trim() };
  if (flag === 'jwt-jwks-file') return { jwksFile: file };
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    try {
      return { publicKey: JSON.parse(trimmed) };
    } catch {
      throw new SettingError(`--${flag}: ${file} is neither a PEM public key nor a JWK`);
    }
  }
  return { publicKey: trimmed };
}
