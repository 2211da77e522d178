import { SyncError } from '@scopesync/core';
import { describe, expect, it, vi } from 'vitest';
import { DeviceRegistration } from './device-registration.ts';
import type { Identity } from './identity.ts';

const REGISTERED: Identity = { userId: 'user_00000000000000a1', level: 1, apiKey: 'k' };

describe('DeviceRegistration (a device that started offline)', () => {
  it('keeps trying while the relay is unreachable and reports the identity once it answers', async () => {
    let attempts = 0;
    const registered = vi.fn();
    const registration = new DeviceRegistration({
      register: async () => {
        attempts++;
        if (attempts < 3) throw new SyncError('Unavailable', 'relay down');
        return REGISTERED;
      },
      registered,
      failed: () => expect.unreachable(),
      backoff: { initialMs: 1, maxMs: 2 },
    });
    registration.start();
    await vi.waitFor(() => expect(registered).toHaveBeenCalledWith(REGISTERED));
    expect(attempts).toBe(3);
    registration.start(); // done: no second registration
    await new Promise((r) => setTimeout(r, 10));
    expect(attempts).toBe(3);
  });

  it('stops for good and says why when the relay refuses (registration closed)', async () => {
    let attempts = 0;
    const failed = vi.fn();
    const registration = new DeviceRegistration({
      register: async () => {
        attempts++;
        throw new SyncError('Forbidden', 'registration is closed');
      },
      registered: () => expect.unreachable(),
      failed,
      backoff: { initialMs: 1, maxMs: 2 },
    });
    registration.start();
    await vi.waitFor(() =>
      expect(failed).toHaveBeenCalledWith(expect.objectContaining({ kind: 'Forbidden' })),
    );
    registration.start();
    await new Promise((r) => setTimeout(r, 10));
    expect(attempts).toBe(1);
  });

  it('makes no attempt while stopped (the app went offline on purpose)', async () => {
    let attempts = 0;
    const registration = new DeviceRegistration({
      register: async () => {
        attempts++;
        throw new SyncError('Unavailable', 'relay down');
      },
      registered: () => expect.unreachable(),
      failed: () => expect.unreachable(),
      backoff: { initialMs: 5, maxMs: 5 },
    });
    registration.start();
    await vi.waitFor(() => expect(attempts).toBe(1));
    registration.stop();
    await new Promise((r) => setTimeout(r, 30));
    expect(attempts).toBe(1);
  });
});
