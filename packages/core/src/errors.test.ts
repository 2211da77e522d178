import { describe, expect, it } from 'vitest';
import { httpStatusOf, isErrorKind, kindOfHttpStatus, kindOfWsCloseCode, wsCloseCodeOf } from './errors.ts';

describe('error kinds', () => {
  it('maps KeyRotated to 409 / 4409 and back to the kind the status was first given to', () => {
    expect(isErrorKind('KeyRotated')).toBe(true);
    expect(httpStatusOf('KeyRotated')).toBe(409);
    expect(wsCloseCodeOf('KeyRotated')).toBe(4409);
    // A bare status cannot tell a rotation from a conflict: only the named kind can.
    expect(kindOfHttpStatus(409)).toBe('Conflict');
    expect(kindOfWsCloseCode(4409)).toBe('Conflict');
  });
});
