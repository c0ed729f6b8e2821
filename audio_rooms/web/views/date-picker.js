// A date and time picker in the reader's calendar: Solar Hijri (Jalali) in Persian, Gregorian in
// English. The browser's own datetime-local input is Gregorian whatever the page's language,
// while the lobby shows Persian readers Solar Hijri dates: a Persian host would have to convert
// in their head. Plain <select>s: every phone has a good wheel for them, and screen readers
// name each part.

import {
  gregorianMonthLength, jalaliMonthLength, toGregorian, toJalali,
} from "../calendar.js";
import { h } from "../dom.js";
import { formatDateTime, locale, t, toPersianDigits } from "../i18n.js";

const JALALI_MONTHS = ["فروردین", "اردیبهشت", "خرداد", "تیر", "مرداد", "شهریور", "مهر", "آبان",
  "آذر", "دی", "بهمن", "اسفند"];
const YEARS_AHEAD = 2;
const MINUTE_STEP = 5;

/** A number as the calendar writes it: no grouping (a year is ۱۴۰۵, not ۱٬۴۰۵). */
function digits(n, width = 1) {
  const text = String(n).padStart(width, "0");
  return locale() === "fa" ? toPersianDigits(text) : text;
}

function gregorianMonths() {
  const format = new Intl.DateTimeFormat("en-GB", { month: "long", timeZone: "UTC" });
  return Array.from({ length: 12 }, (_, i) => format.format(new Date(Date.UTC(2000, i, 1))));
}

export class DateTimePicker {
  /** `onChange(date)` after every pick. Starts at the next whole hour at least 30 min away. */
  constructor({ testid = "schedule", onChange = () => {} } = {}) {
    this.testid = testid;
    this.onChange = onChange;
    this.jalali = locale() === "fa";
    const start = new Date(Date.now() + 30 * 60 * 1000);
    start.setMinutes(60, 0, 0);
    this.setDate(start);
    this.element = h("fieldset", { class: "date-picker", testid });
    this.draw();
  }

  /** The picked wall-clock time, in this device's time zone, as a Date. */
  value() {
    const { year, month, day, hour, minute } = this;
    const g = this.jalali ? toGregorian(year, month, day) : { gy: year, gm: month, gd: day };
    return new Date(g.gy, g.gm - 1, g.gd, hour, minute, 0, 0);
  }

  setDate(date) {
    const gy = date.getFullYear();
    const gm = date.getMonth() + 1;
    const gd = date.getDate();
    if (this.jalali) {
      const j = toJalali(gy, gm, gd);
      [this.year, this.month, this.day] = [j.jy, j.jm, j.jd];
    } else {
      [this.year, this.month, this.day] = [gy, gm, gd];
    }
    this.hour = date.getHours();
    this.minute = Math.floor(date.getMinutes() / MINUTE_STEP) * MINUTE_STEP;
  }

  monthLength() {
    return this.jalali
      ? jalaliMonthLength(this.year, this.month)
      : gregorianMonthLength(this.year, this.month);
  }

  draw() {
    const thisYear = this.jalali
      ? toJalali(new Date().getFullYear(), new Date().getMonth() + 1, new Date().getDate()).jy
      : new Date().getFullYear();
    const months = this.jalali ? JALALI_MONTHS : gregorianMonths();
    const select = (part, label, options) =>
      h("label", { class: "picker-part" }, h("span", { class: "picker-label" }, label),
        h("select", { name: `${this.testid}-${part}`, testid: `${this.testid}-${part}`,
          onchange: (e) => this.pick(part, Number(e.target.value)) },
          options.map(([value, text]) =>
            h("option", { value: String(value), selected: value === this[part] }, text))));
    const range = (from, to, step = 1) =>
      Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step);
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    this.preview = h("output", { class: "picker-preview", testid: `${this.testid}-preview`,
      "aria-live": "polite" });
    this.element.replaceChildren(
      h("legend", { class: "visually-hidden" }, t("lobby.schedule_optional")),
      h("div", { class: "picker-row" },
        select("day", t("picker.day"), range(1, this.monthLength()).map((d) => [d, digits(d)])),
        select("month", t("picker.month"), months.map((name, i) => [i + 1, name])),
        select("year", t("picker.year"),
          range(thisYear, thisYear + YEARS_AHEAD).map((y) => [y, digits(y)]))),
      // Hours and minutes read left to right in both languages (۲۰:۳۰), like a clock.
      h("div", { class: "picker-row picker-time", dir: "ltr" },
        select("hour", t("picker.hour"), range(0, 23).map((x) => [x, digits(x, 2)])),
        h("span", { class: "picker-colon", "aria-hidden": "true" }, ":"),
        select("minute", t("picker.minute"),
          range(0, 60 - MINUTE_STEP, MINUTE_STEP).map((x) => [x, digits(x, 2)]))),
      this.preview,
      h("small", { class: "field-hint" }, t("picker.zone", { zone })),
    );
    this.showPreview();
  }

  pick(part, value) {
    this[part] = value;
    if (part === "year" || part === "month") {
      // 30 Esfand in a year without it, 31 February: the month's last day instead.
      const last = this.monthLength();
      const redraw = this.element.querySelector(`[data-testid="${this.testid}-day"]`)
        ?.options.length !== last;
      this.day = Math.min(this.day, last);
      if (redraw) {
        this.draw();
        this.element.querySelector(`[data-testid="${this.testid}-${part}"]`)?.focus();
      }
    }
    this.showPreview();
    this.onChange(this.value());
  }

  showPreview() {
    this.preview.textContent = t("lobby.schedule_preview", {
      when: formatDateTime(this.value().toISOString()),
    });
  }
}
