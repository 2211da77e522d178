/** A colour for a user id, the same on every screen, dark enough for white text. */
export function userColor(userId: string): string {
  let hash = 0;
  for (let i = 0; i < userId.length; i++) hash = (hash * 31 + userId.charCodeAt(i)) >>> 0;
  return `hsl(${hash % 360} 65% 42%)`;
}
