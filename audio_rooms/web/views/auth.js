// Sign in and sign up, in one modal dialog. <dialog> gives focus trapping and Escape for free.

import * as api from "../sdk/api.js";
import { h } from "../dom.js";
import { errorText, locale, t, toAsciiDigits } from "../i18n.js";
import { limit } from "./common.js";

export class AuthDialog {
  constructor(app) {
    this.app = app;
    this.dialog = null;
  }

  open(mode) {
    this.close();
    const error = h("p", { class: "form-error", role: "alert", testid: "auth-error" });
    const signup = mode === "signup";
    // Each field states its rule under it, and a broken rule replaces that line with a
    // sentence in the page's language (the browser's own bubbles would speak its language, and
    // say only "match the requested format"): the form is `novalidate`, checked here.
    const field = (name, label, attrs, rule = null) => {
      const id = `auth-${name.replace("_", "-")}`;
      const hint = h("small", { class: "field-hint", id: `${id}-hint`, testid: `${id}-hint` },
        rule ?? "");
      const input = h("input", { name, id, testid: id, required: true,
        "aria-describedby": `${id}-hint`, ...attrs });
      input.rule = rule;
      input.hint = hint;
      input.addEventListener("input", () => this.check(input, false));
      input.addEventListener("blur", () => this.check(input, true));
      return h("label", { class: "field" }, h("span", {}, label), input, hint);
    };
    const handleMin = Number(limit(this.app, "handle_min") ?? 3);
    const handleMax = Number(limit(this.app, "handle_max") ?? 32);
    const passwordMin = limit(this.app, "password_min");
    const form = h("form", { class: "stack", novalidate: true,
      onsubmit: (e) => this.submit(e, mode, error) },
      h("h2", { id: "auth-title" }, t(signup ? "auth.signup_title" : "auth.signin_title")),
      field("handle", t("auth.handle"), {
        autocomplete: "username", autocapitalize: "none", spellcheck: "false", dir: "ltr",
        pattern: handlePattern(this.app), maxlength: String(handleMax),
      }, signup ? t("auth.handle_rule", { min: handleMin, max: handleMax }) : null),
      signup
        ? field("display_name", t("auth.display_name"), { autocomplete: "name", dir: "auto",
            maxlength: limit(this.app, "display_name_max") }, t("auth.display_name_rule"))
        : null,
      field("password", t("auth.password"), {
        type: "password", dir: "ltr",
        autocomplete: signup ? "new-password" : "current-password",
        minlength: signup ? passwordMin : null,
        maxlength: limit(this.app, "password_max"),
      }, signup && passwordMin ? t("auth.password_rule", { min: Number(passwordMin) }) : null),
      error,
      h("div", { class: "row" },
        h("button", { type: "submit", class: "primary", testid: "auth-submit" },
          t(signup ? "auth.signup" : "auth.signin")),
        h("button", { type: "button", testid: "auth-cancel", onclick: () => this.close() },
          t("common.cancel")),
      ),
      h("button", {
        type: "button", class: "link", testid: "auth-switch",
        onclick: () => this.open(signup ? "signin" : "signup"),
      }, t(signup ? "auth.have_account" : "auth.no_account")),
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

  /**
   * The sentence for what is wrong with an input, or "" when it keeps its rule. Shown in place
   * of the field's hint; `final` (on leaving the field, on submitting) also reports an empty
   * field or one still too short, which would only nag while someone is typing.
   */
  problem(input, final) {
    const value = input.value;
    if (value === "") return final ? t("auth.required") : "";
    if (input.name === "handle" && input.pattern) {
      const handle = normaliseHandle(value);
      if (new RegExp(`^(?:${input.pattern})$`, "i").test(handle)) return "";
      const min = Number(limit(this.app, "handle_min") ?? 3);
      // Letters of any other script (Persian first of all) get their own sentence: the rule
      // that handles are Latin is the one people do not guess.
      if (/\p{L}/u.test(handle.replace(/[A-Za-z]/g, ""))) return t("auth.handle_latin");
      if (/[^A-Za-z0-9_]/.test(handle)) return t("auth.handle_chars");
      if (handle.length < min) return final ? t("auth.handle_short", { min }) : "";
      return t("auth.handle_chars");
    }
    if (input.minLength > 0 && value.length < input.minLength) {
      return final ? t("auth.password_rule", { min: input.minLength }) : "";
    }
    return "";
  }

  check(input, final) {
    const problem = this.problem(input, final);
    input.setCustomValidity(problem);
    input.setAttribute("aria-invalid", problem ? "true" : "false");
    input.hint.textContent = problem || input.rule || "";
    input.hint.classList.toggle("invalid", Boolean(problem));
    return !problem;
  }

  async submit(event, mode, errorEl) {
    event.preventDefault();
    const inputs = [...event.target.querySelectorAll("input")];
    const wrong = inputs.filter((input) => !this.check(input, true));
    if (wrong.length > 0) {
      wrong[0].focus();
      return;
    }
    const data = Object.fromEntries(new FormData(event.target));
    data.handle = normaliseHandle(data.handle);
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

/** What the server will check: Persian and Arabic digits typed on a Persian keyboard are the
 * same digits, and the server ignores surrounding spaces and case. */
function normaliseHandle(value) {
  return toAsciiDigits(value).trim();
}

/**
 * The server's handle rule (/api/config) as an input pattern. The server lower-cases a handle
 * before checking it, and a pattern attribute cannot ignore case, so upper case is let through.
 */
function handlePattern(app) {
  const pattern = limit(app, "handle_pattern");
  return pattern && pattern.replaceAll("a-z", "A-Za-z");
}
