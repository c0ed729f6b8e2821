// A small element builder. Text always goes in as text nodes, never as HTML, so display names
// and room titles from other people cannot inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "testid") {
      el.dataset.testid = value;
    } else if (key === "class") {
      el.className = value;
    } else if (key in el && typeof value !== "string") {
      el[key] = value; // properties such as `value`, `checked`, `disabled` as booleans
    } else {
      el.setAttribute(key, value === true ? "" : value);
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/**
 * Replace a container's children while keeping keyboard focus: the element focused before
 * (found again by its data-testid) is focused after, so re-rendering on every room event does
 * not throw a keyboard or screen-reader user back to the top.
 */
export function replaceChildrenKeepingFocus(container, ...children) {
  const active = document.activeElement;
  const testid = active && container.contains(active) ? active.dataset.testid : null;
  container.replaceChildren(...children.flat().filter(Boolean));
  if (testid) {
    const again = container.querySelector(`[data-testid="${CSS.escape(testid)}"]`);
    if (again) again.focus({ preventScroll: true });
  }
}

/**
 * Note what has keyboard focus in `container` now; the function returned focuses it again
 * (found by its data-testid) if a redraw took it away. Read it before building the new
 * content: an element that is kept and moved into it (the audience list) loses focus as it
 * leaves the page.
 */
export function keepFocus(container) {
  const active = document.activeElement;
  const testid = active && container.contains(active) ? active.dataset.testid : null;
  return () => {
    if (!testid || document.activeElement?.dataset?.testid === testid) return;
    container.querySelector(`[data-testid="${CSS.escape(testid)}"]`)?.focus({ preventScroll: true });
  };
}

/** Initials for an avatar: first letters of the first two words, or one letter for scripts
 * (such as Persian) where initials are not a convention. */
export function initials(name) {
  const words = String(name || "?").trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return "?";
  const first = Array.from(words[0])[0];
  if (!/[A-Za-z]/.test(first) || words.length === 1) return first.toUpperCase();
  return (first + Array.from(words[words.length - 1])[0]).toUpperCase();
}

// Dark backgrounds that all keep white initials above 4.5:1 contrast (WCAG AA).
const AVATAR_COLOURS = ["#0b5f55", "#6b3fa0", "#a13d2d", "#1f5fa8", "#7a5a00", "#8a2f62", "#2f6a1f"];

export function avatarColour(id) {
  let hash = 0;
  for (const ch of String(id)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return AVATAR_COLOURS[hash % AVATAR_COLOURS.length];
}

// Line icons drawn here rather than emoji, so badges look the same on every phone and need
// no emoji font. Decorative: the meaning is always also in text for screen readers.
const ICONS = {
  "mic-off": ["M9 9V6a3 3 0 0 1 6 0v5", "M15 13.5A3 3 0 0 1 9 12", "M5 11a7 7 0 0 0 11.6 5.3",
    "M19 11a7 7 0 0 1-.7 3", "M12 18v3", "M4 4l16 16"],
  mic: ["M9 6a3 3 0 0 1 6 0v6a3 3 0 0 1-6 0z", "M5 11a7 7 0 0 0 14 0", "M12 18v3"],
  hand: ["M8 13V5.5a1.5 1.5 0 0 1 3 0V11", "M11 10V4a1.5 1.5 0 0 1 3 0v7",
    "M14 10.5V6a1.5 1.5 0 0 1 3 0v7.5A6.5 6.5 0 0 1 10.5 20h-.5a6 6 0 0 1-5-2.7L3.4 14.5a1.5 1.5 0 0 1 2.5-1.7L8 15"],
};

export function icon(name) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", `icon icon-${name}`);
  for (const d of ICONS[name]) {
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}
