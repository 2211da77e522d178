import { describeError } from '../describe-error.ts';
import { h } from './dom.ts';

/** The tone of a message: what went wrong, what went right, or what to know. */
export type Tone = 'error' | 'ok' | 'info' | 'warn';

/**
 * A message area that shows one message at a time, in words. Errors go through
 * `describeError`, so a person reads "Only admins can change the announcement", not a kind
 * or a status code.
 */
export class Notice {
  /** The element to place in the page; hidden while there is nothing to say. */
  readonly element: HTMLElement;

  constructor(testId: string) {
    this.element = h('div', { class: 'notice', role: 'status', dataset: { testid: testId }, hidden: true });
  }

  /** Shows `text` in the given tone. */
  show(tone: Tone, text: string): void {
    this.element.className = `notice ${tone}`;
    this.element.textContent = text;
    this.element.hidden = false;
  }

  /** Shows an error, described for a person. */
  error(error: unknown, context?: string): void {
    this.show('error', describeError(error, context));
  }

  /** Hides the message. */
  clear(): void {
    this.element.hidden = true;
    this.element.textContent = '';
  }
}
