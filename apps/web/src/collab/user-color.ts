/** A colour for a user id, the same on every screen, dark enough for white text. */
export function userColor(userId: string): string {
  return `hsl(${hueOf(userId)} 65% 42%)`;
}

/** The same colour, translucent: a user's text selection as the others see it. */
export function userColorLight(userId: string): string {
  return `hsl(${hueOf(userId)} 65% 42% / 0.22)`;
}

function hueOf(userId: string): number {
  let hash = 0;
  for (let i = 0; i < userId.length; i++) hash = (hash * 31 + userId.charCodeAt(i)) >>> 0;
  return hash % 360;
}
