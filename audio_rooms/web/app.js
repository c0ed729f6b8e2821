// Start-up, the router and the shared page chrome (header, live regions, toasts).
//
// Routes (the server serves index.html for every one of them):
//   /                      lobby
//   /r/<room_id>           a room; `?invite=<token>` carries an invite for closed rooms
//   /f/<room_id>@<server>  a room on another server, through this one (docs/federation.md)

import * as api from "./sdk/api.js";
import { h } from "./dom.js";
import { detectLocale, errorText, locale, LOCALES, onLocaleChange, setLocale, t } from "./i18n.js";
import { AuthDialog } from "./views/auth.js";
import { LobbyView } from "./views/lobby.js";
import { RemoteRoomView } from "./views/remote-room.js";
import { RoomView } from "./views/room.js";

const TOAST_MS = 6000;

class App {
  constructor() {
    this.config = null;
    this.user = null;
    this.view = null;
    this.main = document.getElementById("main");
    this.header = document.getElementById("header");
    this.polite = document.getElementById("announce-polite");
    this.assertive = document.getElementById("announce-assertive");
    this.toasts = document.getElementById("toasts");
    this.auth = new AuthDialog(this);
  }

  async start() {
    await setLocale(detectLocale());
    onLocaleChange(() => {
      document.title = this.siteName;
      this.renderHeader();
      this.view?.render();
    });
    document.title = t("app.title");
    addEventListener("popstate", () => this.route());
    document.addEventListener("click", (event) => this.interceptLink(event));
    try {
      [this.config, this.user] = await Promise.all([api.getConfig(), api.me()]);
    } catch (err) {
      this.toast(errorText(err.code));
    }
    this.applyBranding();
    this.renderHeader();
    this.route();
  }

  /** The operator's name for the site (brand_name), else the translated product name. */
  get siteName() {
    return this.config?.branding?.name || t("app.title");
  }

  /** The accent colour on the page and the browser's title bar. The server has checked that
   * white text on it is readable (settings.py, brand_colour). */
  applyBranding() {
    document.title = this.siteName;
    const colour = this.config?.branding?.colour;
    if (!colour) return;
    document.documentElement.style.setProperty("--primary", colour);
    document.querySelector("meta[name=theme-color]")?.setAttribute("content", colour);
  }

  setUser(user) {
    this.user = user;
    this.renderHeader();
  }

  navigate(path) {
    if (path !== location.pathname + location.search) history.pushState(null, "", path);
    this.route();
  }

  route() {
    this.view?.unmount();
    this.view = null;
    const match = location.pathname.match(/^\/r\/([^/]+)\/?$/);
    const remote = location.pathname.match(/^\/f\/([^/]+)\/?$/);
    if (remote && decodeURIComponent(remote[1]).includes("@")) {
      this.view = new RemoteRoomView(this, decodeURIComponent(remote[1]));
    } else if (match) {
      const invite = new URLSearchParams(location.search).get("invite");
      this.view = new RoomView(this, decodeURIComponent(match[1]), invite);
    } else {
      if (location.pathname !== "/") history.replaceState(null, "", "/");
      this.view = new LobbyView(this);
    }
    this.view.mount(this.main);
  }

  /** Same-origin links navigate in place so that a room's audio is not torn down by a reload. */
  interceptLink(event) {
    const a = event.target.closest?.("a[href]");
    if (!a || a.target || a.hasAttribute("download")) return;
    if (a.getAttribute("href").startsWith("#")) return; // in-page, such as the skip link
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin) return;
    event.preventDefault();
    this.navigate(url.pathname + url.search);
  }

  renderHeader() {
    document.querySelector(".skip-link").textContent = t("app.skip");
    const next = LOCALES.find((l) => l !== locale());
    const userArea = this.user
      ? [
          h("span", { class: "header-user", dir: "auto", testid: "current-user" },
            this.user.display_name),
          this.user.is_guest
            ? h("button", { type: "button", class: "link", testid: "signin-open",
                onclick: () => this.auth.open("signin") }, t("auth.signin"))
            : null,
          // A guest signs out too: the server then refuses their token, on a shared computer
          // as well as anywhere it was copied to.
          h("button", { type: "button", class: "link", testid: "signout",
            onclick: () => this.signOut() }, t("auth.signout")),
        ].filter(Boolean)
      : [
          h("button", { type: "button", class: "link", testid: "signin-open",
            onclick: () => this.auth.open("signin") }, t("auth.signin")),
          h("button", { type: "button", class: "link", testid: "signup-open",
            onclick: () => this.auth.open("signup") }, t("auth.signup")),
        ];
    this.header.replaceChildren(
      h("a", { href: "/", class: "brand", testid: "home-link" },
        this.config?.branding?.logo
          ? h("img", { src: this.config.branding.logo, alt: "", class: "brand-logo" })
          : h("img", { src: "/favicon.svg", alt: "", class: "brand-logo" }),
        h("span", { testid: "site-name", dir: "auto" }, this.siteName)),
      h("nav", { class: "header-actions", "aria-label": t("header.account") },
        userArea,
        h("button", {
          type: "button",
          class: "lang-switch",
          testid: "lang-switch",
          lang: next,
          "aria-label": t(`lang.switch_to_${next}`),
          onclick: () => setLocale(next, { remember: true }),
        }, t(`lang.name_${next}`)),
      ),
    );
  }

  async signOut() {
    try {
      await api.signOut();
    } catch (err) {
      this.toast(errorText(err.code));
      return;
    }
    this.setUser(null);
    this.navigate("/");
  }

  /** Tell screen-reader users: `urgent` interrupts (invitations, own role changes). */
  announce(text, { urgent = false } = {}) {
    const region = urgent ? this.assertive : this.polite;
    // Clearing first makes a repeated sentence be read again.
    region.textContent = "";
    setTimeout(() => {
      region.textContent = text;
    }, 50);
  }

  toast(text) {
    const item = h("div", { class: "toast", role: "status", testid: "toast" }, text);
    this.toasts.append(item);
    setTimeout(() => item.remove(), TOAST_MS);
  }
}

const app = new App();
window.audioRooms = app; // a handle for browser tests and for debugging from the console
app.start();
