/** Styles that decide where a character of a textarea ends up on screen. */
const MIRRORED = [
  'boxSizing',
  'width',
  'paddingTop',
  'paddingRight',
  'paddingBottom',
  'paddingLeft',
  'borderTopWidth',
  'borderRightWidth',
  'borderBottomWidth',
  'borderLeftWidth',
  'borderStyle',
  'fontFamily',
  'fontSize',
  'fontWeight',
  'fontStyle',
  'lineHeight',
  'letterSpacing',
  'tabSize',
  'textIndent',
  'textTransform',
  'wordSpacing',
] as const;

/** A caret position inside a textarea's padding box, in CSS pixels, already scrolled. */
export interface CaretPoint {
  readonly top: number;
  readonly left: number;
  readonly height: number;
}

/**
 * Where the caret would be drawn before character `index` of a textarea. Textareas do not
 * expose layout per character, so this lays the same text out in an invisible copy with the
 * same box and font (the "mirror div" technique) and measures a marker placed at `index`.
 */
export function caretCoordinates(textarea: HTMLTextAreaElement, index: number): CaretPoint {
  const style = getComputedStyle(textarea);
  const mirror = document.createElement('div');
  for (const property of MIRRORED) mirror.style[property] = style[property];
  Object.assign(mirror.style, {
    position: 'absolute',
    visibility: 'hidden',
    top: '0',
    left: '-9999px',
    whiteSpace: 'pre-wrap',
    overflowWrap: 'break-word',
    overflow: 'hidden',
    height: 'auto',
  });
  mirror.textContent = textarea.value.slice(0, index);
  const marker = document.createElement('span');
  // A zero-width space gives the marker a line box even at the end of the text.
  marker.textContent = textarea.value.slice(index) || '\u200b';
  mirror.appendChild(marker);
  document.body.appendChild(mirror);
  const lineHeight = Number.parseFloat(style.lineHeight) || Number.parseFloat(style.fontSize) * 1.4;
  const point = {
    top: marker.offsetTop - textarea.scrollTop,
    left: marker.offsetLeft - textarea.scrollLeft,
    height: lineHeight,
  };
  mirror.remove();
  return point;
}
