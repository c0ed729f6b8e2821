// Sign in and sign up, in one modal dialog. <dialog> gives focus trapping and Escape for free.

import * as api from "../sdk/api.js";
import { h } from "../dom.js";
import { errorText, locale, t } from "../i18n.js";
import { limit } from "./common.js";

export class AuthDialog {
  constructor(app) {
    this.app = app;
    this.dialog = null;
  }

  open(mode) {
    this.close();
    const error = h("p", { class: "form-error", role: "alert", testid: "auth-error" });
    const field = (name, label, attrs) =>
      h("label", { class: "field" }, h("span", {}, label),
        h("input", { name, testid: `auth-${name.replace("_", "-")}`, required: true, ...attrs }));
    const form = h("form", { class: "stack", onsubmit: (e) => this.submit(e, mode, error) },
      h("h2", { id: "auth-title" }, t(mode === "signup" ? "auth.signup_title" : "auth.signin_title")),
      field("handle", t("auth.handle"), {
        autocomplete: "username", autocapitalize: "none", spellcheck: "false", dir: "ltr",
        pattern: handlePattern(this.app),
      }),
      mode === "signup"
        ? field("display_name", t("auth.display_name"), { autocomplete: "name", dir: "auto",
            maxlength: limit(this.app, "display_name_max") })
        : null,
      field("password", t("auth.password"), {
        type: "password", dir: "ltr",
        autocomplete: mode === "signup" ? "new-password" : "current-password",
        minlength: mode === "signup" ? limit(this.app, "password_min") : null,
        maxlength: limit(this.app, "password_max"),
      }),
      error,
      h("div", { class: "row" },
        h("button", { type: "submit", class: "primary", testid: "auth-submit" },
          t(mode === "signup" ? "auth.signup" : "auth.signin")),
        h("button", { type: "button", testid: "auth-cancel", onclick: () => this.close() },
          t("common.cancel")),
      ),
      h("button", {
        type: "button", class: "link", testid: "auth-switch",
        onclick: () => this.open(mode === "signup" ? "signin" : "signup"),
      }, t(mode === "signup" ? "auth.have_account" : "auth.no_account")),
    );
    // The close event comes after close() returns, when "switch to sign up" may already have
    // opened the next dialog: each dialog removes itself, never whichever is current.
    const dialog = h("dialog", { class: "dialog", "aria-labelledby": "auth-title",
      testid: "auth-dialog", onclose: () => {
        dialog.remove();
        if (this.dialog === dialog) this.dialog = null;
      } }, form);
    this.dialog = dialog;
    document.body.append(dialog);
    dialog.showModal();
  }

  close() {
    if (this.dialog?.open) this.dialog.close();
    this.dialog?.remove();
    this.dialog = null;
  }

  async submit(event, mode, errorEl) {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(event.target));
    const button = event.target.querySelector("[type=submit]");
    button.disabled = true;
    errorEl.textContent = "";
    try {
      const result = mode === "signup"
        ? await api.signUp({ ...data, locale: locale() })
        : await api.signIn(data);
      this.close();
      this.app.setUser(result.user);
      this.app.announce(t("auth.signed_in_as", { name: result.user.display_name }));
      this.app.view?.render();
    } catch (err) {
      errorEl.textContent = errorText(err.code);
      button.disabled = false;
    }
  }
}

/**
 * The server's handle rule (/api/config) as an input pattern. The server lower-cases a handle
 * before checking it, and a pattern attribute cannot ignore case, so upper case is let through.
 */
function handlePattern(app) {
  const pattern = limit(app, "handle_pattern");
  return pattern && pattern.replaceAll("a-z", "A-Za-z");
}
