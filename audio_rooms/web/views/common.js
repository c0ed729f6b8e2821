// Helpers the views share: room links, avatars, sharing, and the server's limits.

import { avatarColour, h, initials } from "../dom.js";
import { t } from "../i18n.js";

/**
 * A limit the server enforces, from /api/config (`limits`), as an attribute value; null (no
 * attribute, the server still checks) when the configuration could not be loaded.
 */
export function limit(app, name) {
  const value = app.config?.limits?.[name];
  return value === undefined ? null : String(value);
}

export function roomPath(id) {
  return `/r/${encodeURIComponent(id)}`;
}

export function avatar(userId, name, size = "") {
  const el = h("span", { class: `avatar ${size}`.trim(), "aria-hidden": "true" }, initials(name));
  // Through the CSSOM rather than a style attribute, which a strict CSP would block.
  el.style.setProperty("--avatar-bg", avatarColour(userId));
  return el;
}

/** The system share sheet on phones; the clipboard elsewhere. */
export async function shareLink(app, title, url) {
  if (navigator.share) {
    try {
      await navigator.share({ title, url });
      return;
    } catch (err) {
      if (err.name === "AbortError") return;
    }
  }
  try {
    await navigator.clipboard.writeText(url);
    app.toast(t("room.link_copied"));
  } catch {
    app.toast(url);
  }
}
