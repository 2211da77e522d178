/** Attributes and properties `h()` sets on a new element. */
export type Props = {
  /** Space-separated CSS classes. */
  class?: string;
  /** Stable hooks for tests and styles: `data-testid` and friends. */
  dataset?: Record<string, string>;
  /** Event listeners, keyed by event name (`click`, `input`, `submit`, …). */
  on?: { [K in keyof HTMLElementEventMap]?: (event: HTMLElementEventMap[K]) => void };
} & Record<string, unknown>;

/** A child `h()` accepts: nodes, text, or nothing (skipped, for conditional children). */
export type Child = Node | string | number | null | undefined | false;

/**
 * Creates an element: `h('button', { class: 'primary', on: { click } }, 'Save')`. Keys that
 * are properties of the element (`value`, `disabled`, `type`, …) are set as properties, the
 * rest as attributes, so the same call works for inputs and for `aria-*` attributes.
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') element.className = String(value);
      else if (key === 'dataset') Object.assign(element.dataset, value);
      else if (key === 'on') {
        for (const [event, listener] of Object.entries(value as Record<string, EventListener>)) {
          element.addEventListener(event, listener);
        }
      } else if (key in element && !key.includes('-')) {
        (element as unknown as Record<string, unknown>)[key] = value;
      } else element.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(element, children);
  return element;
}

/** Appends children, skipping empty ones and turning text into text nodes. */
export function append(parent: Node, children: readonly Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
}

/** Replaces every child of `parent`. */
export function replaceChildren(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}
