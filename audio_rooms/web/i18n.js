// Translation catalogues, locale choice, and locale-aware numbers and dates.
//
// Catalogues are flat JSON objects (web/i18n/<locale>.json) fetched from the same origin.
// A key with plural forms is stored as "<key>.<category>" with Intl.PluralRules categories
// ("one", "other"); t() picks the form from params.count.

export const LOCALES = ["fa", "en"];
const RTL = new Set(["fa"]);
const STORAGE_KEY = "ar.locale";

let current = "en";
let catalogue = {};
let fallback = {};
const listeners = new Set();

/** The locale to start with: the remembered choice, else the browser's, else English. */
export function detectLocale(stored = safeStorageGet(), languages = navigator.languages || []) {
  if (LOCALES.includes(stored)) return stored;
  for (const tag of languages) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (LOCALES.includes(base)) return base;
  }
  return "en";
}

export async function setLocale(locale, { remember = false } = {}) {
  if (!LOCALES.includes(locale)) throw new Error(`unsupported locale ${locale}`);
  catalogue = await loadCatalogue(locale);
  if (locale !== "en" && Object.keys(fallback).length === 0) fallback = await loadCatalogue("en");
  current = locale;
  if (remember) safeStorageSet(locale);
  document.documentElement.lang = locale;
  document.documentElement.dir = direction(locale);
  for (const fn of listeners) fn(locale);
}

export function locale() {
  return current;
}

export function direction(loc = current) {
  return RTL.has(loc) ? "rtl" : "ltr";
}

export function onLocaleChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

const cache = new Map();
async function loadCatalogue(loc) {
  if (!cache.has(loc)) {
    const res = await fetch(`/i18n/${loc}.json`, { credentials: "same-origin" });
    if (!res.ok) throw new Error(`catalogue ${loc}: HTTP ${res.status}`);
    cache.set(loc, await res.json());
  }
  return cache.get(loc);
}

/**
 * Translate `key`, filling {placeholders} from params. Numbers in params are written with the
 * locale's digits. A missing key falls back to English, then to the key itself, so a gap is
 * visible instead of blank.
 */
export function t(key, params = {}) {
  let template;
  if (typeof params.count === "number") {
    const form = new Intl.PluralRules(current).select(params.count);
    // The locale's own "other" form before English: Persian has only "other", and PluralRules
    // says "one" for 0 and 1 in Persian, which must not fall back to English "listener".
    template = catalogue[`${key}.${form}`] ?? catalogue[`${key}.other`]
      ?? lookup(`${key}.${form}`) ?? lookup(`${key}.other`);
  }
  template ??= lookup(key) ?? key;
  return template.replace(/\{(\w+)\}/g, (whole, name) => {
    if (!(name in params)) return whole;
    const value = params[name];
    return typeof value === "number" ? formatNumber(value) : String(value);
  });
}

export function has(key) {
  return lookup(key) !== undefined;
}

function lookup(key) {
  return catalogue[key] ?? fallback[key];
}

/** The sentence for a server error code; unknown codes get a generic sentence. */
export function errorText(code) {
  return has(`error.${code}`) ? t(`error.${code}`) : t("error.unknown");
}

const PERSIAN_DIGITS = "۰۱۲۳۴۵۶۷۸۹";

/** Replace ASCII digits with Persian ones (for strings that already hold numbers). */
export function toPersianDigits(text) {
  return String(text).replace(/[0-9]/g, (d) => PERSIAN_DIGITS[Number(d)]);
}

/** Replace Persian and Arabic-Indic digits with ASCII ones (for parsing user input). */
export function toAsciiDigits(text) {
  return String(text).replace(/[۰-۹٠-٩]/g, (d) => {
    const code = d.charCodeAt(0);
    return String(code >= 0x06f0 ? code - 0x06f0 : code - 0x0660);
  });
}

export function formatNumber(n, loc = current) {
  // Intl already uses Persian digits for "fa"; the explicit pass covers engines whose ICU data
  // lacks them, so a listener count never shows Latin digits in Persian text.
  const text = new Intl.NumberFormat(loc === "fa" ? "fa-IR" : "en-US").format(n);
  return loc === "fa" ? toPersianDigits(text) : text;
}

/** A room's start time: the Solar Hijri calendar in Persian, Gregorian in English. */
export function formatDateTime(iso, loc = current) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const text = new Intl.DateTimeFormat(loc === "fa" ? "fa-IR" : "en-GB", {
    weekday: "short",
    day: "numeric",
    month: "long",
    hour: "2-digit",
    minute: "2-digit",
  }).format(date);
  return loc === "fa" ? toPersianDigits(text) : text;
}

function safeStorageGet() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null; // private browsing modes may refuse storage; the browser language still works
  }
}

function safeStorageSet(value) {
  try {
    localStorage.setItem(STORAGE_KEY, value);
  } catch {
    // Not remembered across visits, but the switch still applies to this page.
  }
}
