/** Permission levels of a caller, as numbers so they can be compared with `>=`. */
export const Level = {
  Guest: 0,
  User: 1,
  Moderator: 5,
  Admin: 10,
} as const;

/** One of the permission levels in {@link Level}. */
export type Level = (typeof Level)[keyof typeof Level];

/** True when `value` is one of the defined levels (0, 1, 5, 10). */
export function isLevel(value: unknown): value is Level {
  return value === 0 || value === 1 || value === 5 || value === 10;
}
