/** A permission level in words: "User (level 1)". */
export function levelName(level: number): string {
  const name = level >= 10 ? 'Admin' : level >= 5 ? 'Moderator' : level >= 1 ? 'User' : 'Guest';
  return `${name} (level ${level})`;
}
