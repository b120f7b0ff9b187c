/**
 * Install windows as the NOC and the agent read them (protocol/install_window.ts) and the agent's
 * decision (agent/install_window.ts): open and closed, over midnight, in a time zone with its
 * daylight saving, urgent lines, an unknown time zone.
 */
import assert from "node:assert/strict";
import { windowAt } from "../protocol/install_window.ts";
import { installDecision } from "../agent/install_window.ts";

const at = (iso: string) => new Date(iso);
const utc = (start: string, end: string) => ({ start, end, timeZone: "UTC" });

Deno.test("windowAt() is open from start, closed at end, and says when it opens next", () => {
  const w = utc("02:00", "04:00");
  assert.deepEqual(windowAt(w, at("2026-12-01T02:00:00Z")), { open: true, opensAt: null });
  assert.deepEqual(windowAt(w, at("2026-12-01T03:59:59Z")), { open: true, opensAt: null });
  assert.deepEqual(windowAt(w, at("2026-12-01T04:00:00Z")), {
    open: false,
    opensAt: at("2026-12-02T02:00:00Z"),
  });
  assert.deepEqual(windowAt(w, at("2026-12-01T01:59:30.250Z")), {
    open: false,
    opensAt: at("2026-12-01T02:00:00Z"),
  });
});

Deno.test("windowAt() runs a window whose end is before its start over midnight", () => {
  const w = utc("22:00", "04:00");
  assert.equal(windowAt(w, at("2026-12-01T23:30:00Z")).open, true);
  assert.equal(windowAt(w, at("2026-12-02T01:00:00Z")).open, true);
  assert.deepEqual(windowAt(w, at("2026-12-01T12:00:00Z")), {
    open: false,
    opensAt: at("2026-12-01T22:00:00Z"),
  });
});

Deno.test("windowAt() reads local time in the window's zone, summer and winter", () => {
  const w = { start: "02:00", end: "04:00", timeZone: "Europe/Berlin" };
  // Winter: UTC+1, so 02:00–04:00 Berlin is 01:00–03:00 UTC.
  assert.equal(windowAt(w, at("2026-12-01T01:30:00Z")).open, true);
  assert.equal(windowAt(w, at("2026-12-01T03:30:00Z")).open, false);
  // Summer: UTC+2, so 00:00–02:00 UTC.
  assert.equal(windowAt(w, at("2026-07-01T00:30:00Z")).open, true);
  assert.equal(windowAt(w, at("2026-07-01T02:30:00Z")).open, false);
  assert.deepEqual(windowAt(w, at("2026-07-01T02:30:00Z")).opensAt, at("2026-07-02T00:00:00Z"));
  assert.throws(() => windowAt({ ...w, timeZone: "Mars/Olympus" }, new Date()), RangeError);
});

Deno.test("installDecision() defers outside the window, except urgent lines and bad zones", () => {
  const now = at("2026-12-01T12:00:00Z");
  const doc = { installWindow: { ...utc("02:00", "04:00"), source: "site:lab" } };
  const d = installDecision(doc, {}, now);
  assert.equal(d.install, false);
  if (!d.install) {
    assert.deepEqual(d.opensAt, at("2026-12-02T02:00:00Z"));
    assert.match(d.message, /02:00–04:00 UTC \(site:lab\).*2026-12-02T02:00:00\.000Z/);
  }
  assert.deepEqual(installDecision(doc, { urgent: true }, now), { install: true });
  assert.deepEqual(installDecision({}, {}, now), { install: true });
  const bad = installDecision(
    { installWindow: { ...doc.installWindow, timeZone: "Mars/Olympus" } },
    {},
    now,
  );
  assert.equal(bad.install, true);
  assert.match((bad as { invalid: string }).invalid, /not applied/);
});
