import { h } from './dom.ts';

/**
 * A small "Copy" button for an id. Says "Copied" for a moment so the person knows it worked;
 * where the clipboard is unavailable (plain http on another host) it selects nothing and
 * says so instead of failing silently.
 */
export function copyButton(getText: () => string, label = 'Copy'): HTMLButtonElement {
  const button = h('button', {
    type: 'button',
    class: 'small',
    title: 'Copy to the clipboard',
    on: {
      click: async () => {
        try {
          await navigator.clipboard.writeText(getText());
          button.textContent = 'Copied';
        } catch {
          // Clipboard access needs a secure context and a user gesture; show the id instead.
          button.textContent = 'Copy failed — select it by hand';
        }
        setTimeout(() => {
          button.textContent = label;
        }, 1500);
      },
    },
  });
  button.textContent = label;
  return button;
}
