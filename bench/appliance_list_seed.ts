/**
 * A big fleet for the appliance-list bench, seeded with set-based SQL (one
 * `insert … select … from generate_series(…)`): host names of several roles
 * and 60 cities, 5,000 sites, 12 models (one with 10 appliances), three
 * channels, 0–2 tags (one tag on 20 appliances), states (0.5 % revoked,
 * 1.5 % missing, 1 % late, the rest ok), an address each, and a last report
 * of 8 components (9 for every 10th) in which one application's version is
 * run by 60 % / 39 % / 1 % of the fleet and one version by one appliance only.
 *
 * @module
 */
import type { Sql } from "../noc/db/db.ts";

/** What {@link seedFleet} planted, for the queries that look for it. */
export interface SeededFleet {
  /** Appliances seeded. */
  n: number;
  /** The host name of appliance `i` (1-based). */
  hostname(i: number): string;
  /** The address of appliance `i`. */
  address(i: number): string;
  /** The number `i` of the one appliance that runs vscreen 4.3.0-rc1. */
  loneVersionAt: number;
}

const roles = ["mail-gw", "webfilter", "router", "fileserv", "printsrv", "vpn-gw"];
const cities = [
  "ams",
  "ber",
  "bos",
  "cdg",
  "chi",
  "dal",
  "den",
  "dub",
  "fra",
  "hel",
  "hkg",
  "iad",
  "lax",
  "lhr",
  "lis",
  "mad",
  "mel",
  "mia",
  "mil",
  "mtl",
  "mex",
  "nyc",
  "osl",
  "par",
  "phx",
  "prg",
  "rom",
  "sea",
  "sfo",
  "sin",
  "sto",
  "syd",
  "tyo",
  "tor",
  "vie",
  "waw",
  "zrh",
  "ath",
  "bcn",
  "bru",
  "buc",
  "cph",
  "gva",
  "ham",
  "ist",
  "jnb",
  "kul",
  "lim",
  "lyo",
  "man",
  "muc",
  "nce",
  "otp",
  "per",
  "rix",
  "scl",
  "sof",
  "tll",
  "vno",
  "yvr",
];

/** The clock the seed is relative to: appliances are due around it. */
export const seedNow = new Date("2026-06-01T12:00:00Z");

/**
 * Seeds `n` appliances into `sql`'s `appliances` table (empty, migrated) with
 * states relative to `now` and a `graceS` grace; returns what it planted.
 */
export async function seedFleet(
  sql: Sql,
  n: number,
  now: Date,
  graceS: number,
): Promise<SeededFleet> {
  const cutoff = new Date(now.getTime() - graceS * 1000);
  const lone = Math.max(1, Math.floor(n * 0.424242));
  await sql`
    insert into appliances (uid, model, hostname, site, channel, tags, sign_key, enc_key, interval_s,
      enrolled_at, last_beat_at, last_seq, last_sent_at, last_address, next_due_at, missing_since,
      revoked_at, revoked_reason, agent_version, last_report)
    select gen_random_uuid(),
      case when i % 100000 = 7 then 'vs-9000' else (array['vs-100', 'vs-200', 'vs-400', 'vs-800',
        'wf-10', 'wf-20', 'rt-1', 'rt-2', 'fs-5', 'ps-1', 'vpn-3'])[1 + i % 11] end,
      (${roles}::text[])[1 + i % 6] || '-' || (${cities}::text[])[1 + (i / 7) % 60] || '-' || lpad(i::text, 7, '0'),
      'site-' || (i % 5000),
      case when i % 100 = 0 then 'canary' when i % 10 = 0 then 'beta' else 'stable' end,
      case when i % 50000 = 3 then array['lab'] else case i % 4
        when 0 then '{}'::text[] when 1 then array['rack-' || (i % 200)]
        when 2 then array['rack-' || (i % 200), 'dmz'] else array['floor-' || (i % 30), 'pci'] end end,
      'k' || i, 'e' || i, 909,
      ${now}::timestamptz - interval '90 days', d.due - interval '909 seconds', i % 5000,
      d.due - interval '909 seconds',
      '10.' || (i / 65536) % 256 || '.' || (i / 256) % 256 || '.' || i % 256,
      d.due,
      case when s.state = 'missing' then d.due + interval '10 seconds' end,
      case when s.state = 'revoked' then ${now}::timestamptz - interval '3 days' end,
      case when s.state = 'revoked' then 'decommissioned' end,
      '2.' || (i % 3), jsonb_build_object(
        'seq', i % 5000, 'sentAt', ${now}::timestamptz - interval '5 minutes',
        'health', jsonb_build_object('load', jsonb_build_array(0.1, 0.2, 0.3),
          'memory', jsonb_build_object('totalBytes', 4294967296, 'availableBytes', 2147483648),
          'disks', jsonb_build_array(jsonb_build_object('mount', '/', 'totalBytes', 64000000000,
            'freeBytes', 32000000000)), 'uptimeS', 86400),
        'lastCycle', jsonb_build_object('outcome', 'ok'),
        'components', jsonb_build_array(
          jsonb_build_object('kind', 'package', 'app', 'vscreen', 'name', 'vscreen', 'version',
            case when i = ${lone} then '4.3.0-rc1' when i % 100 = 1 then '4.1.9'
              when i % 100 < 40 then '4.2.1' else '4.2.0' end),
          jsonb_build_object('kind', 'file', 'app', 'vscreen', 'name', 'rules.conf',
            'version', (i % 30)::text),
          jsonb_build_object('kind', 'package', 'app', 'base', 'name', 'openssl', 'version',
            case when i % 20 = 0 then '3.0.13' else '3.0.15' end),
          jsonb_build_object('kind', 'package', 'app', 'base', 'name', 'kernel', 'version',
            '6.1.' || (100 + i % 12)),
          jsonb_build_object('kind', 'package', 'app', 'agent', 'name', 'noc-agent',
            'version', '2.' || (i % 3)),
          jsonb_build_object('kind', 'file', 'app', 'agent', 'name', 'noc-agent.conf',
            'version', '1'),
          jsonb_build_object('kind', 'package', 'app', (array['webfilter', 'router', 'mailq',
            'smb', 'cups', 'wireguard'])[1 + i % 6], 'name', 'main', 'version',
            '1.' || (i % 7)),
          jsonb_build_object('kind', 'file', 'app', 'site', 'name', 'site.conf',
            'version', (i % 5000)::text))
          || case when i % 10 = 0 then jsonb_build_array(jsonb_build_object('kind', 'package',
            'app', 'beta-tools', 'name', 'diag', 'version', '0.9')) else '[]'::jsonb end,
        'apps', jsonb_build_object('vscreen', jsonb_build_object('mailsScanned', i % 100000)))
    from generate_series(1, ${n}::int) i
    cross join lateral (select case
      when i % 200 = 1 then 'revoked' when i % 67 = 2 then 'missing' when i % 100 = 5 then 'late'
      else 'ok' end as state) s
    cross join lateral (select case s.state
      when 'missing' then ${cutoff}::timestamptz - make_interval(secs => 60 + i % 3600)
      when 'late' then ${now}::timestamptz - make_interval(secs => 1 + i % (${graceS}::int - 1))
      else ${now}::timestamptz + make_interval(secs => 1 + i % 899) end as due) d`;
  return {
    n,
    hostname: (i) =>
      `${roles[i % 6]}-${cities[Math.floor(i / 7) % 60]}-${String(i).padStart(7, "0")}`,
    address: (i) => `10.${Math.floor(i / 65536) % 256}.${Math.floor(i / 256) % 256}.${i % 256}`,
    loneVersionAt: lone,
  };
}
