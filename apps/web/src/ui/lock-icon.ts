const SVG = 'http://www.w3.org/2000/svg';

/** A small padlock, drawn as SVG so it looks the same without an emoji font. */
export function lockIcon(): SVGSVGElement {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 16 16');
  svg.setAttribute('width', '14');
  svg.setAttribute('height', '14');
  svg.setAttribute('aria-hidden', 'true');
  const shackle = document.createElementNS(SVG, 'path');
  shackle.setAttribute('d', 'M4.5 7V5a3.5 3.5 0 0 1 7 0v2');
  shackle.setAttribute('fill', 'none');
  shackle.setAttribute('stroke', 'currentColor');
  shackle.setAttribute('stroke-width', '1.6');
  const body = document.createElementNS(SVG, 'rect');
  for (const [name, value] of Object.entries({
    x: '2.5',
    y: '7',
    width: '11',
    height: '8',
    rx: '1.5',
    fill: 'currentColor',
  })) {
    body.setAttribute(name, value);
  }
  svg.append(shackle, body);
  return svg;
}
