/**
 * download() never follows what is at a download's path (`downloads/<sha256>.pkg`): a symbolic
 * link there is removed, never written through; a folder there is removed and the download
 * starts from byte 0. Real HTTP (Deno.serve), real files.
 */
import assert from "node:assert/strict";
import { download } from "../agent/download.ts";
import { type AgentLog, silentLog } from "../agent/log.ts";
import { sha256, toHex } from "../protocol/util/encoding.ts";
import { servingRanges } from "./_range_server.ts";

/** A log that keeps its warnings (event and fields). */
function keepingLog(): AgentLog & { warnings: Array<[string, Record<string, unknown>]> } {
  const warnings: Array<[string, Record<string, unknown>]> = [];
  return {
    ...silentLog,
    warnings,
    warn(event: string, fields?: Record<string, unknown>) {
      warnings.push([event, fields ?? {}]);
    },
  } as AgentLog & { warnings: Array<[string, Record<string, unknown>]> };
}

async function inTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const bytes = new Uint8Array(200_000).map((_, i) => (i * 7) % 251);
const digest = toHex(await sha256(bytes));

Deno.test("download() over a planted symbolic link removes the link and leaves its target untouched", async () => {
  await servingRanges(bytes, async (url, ranges) => {
    for (const victimSize of [0, 50_000, 300_000]) {
      await inTemp(async (dir) => {
        const victim = `${dir}/victim`;
        const before = new Uint8Array(victimSize).fill(0x41);
        await Deno.writeFile(victim, before, { mode: 0o644 });
        await Deno.mkdir(`${dir}/downloads`);
        const dest = `${dir}/downloads/${digest}.pkg`;
        await Deno.symlink(victim, dest);
        const log = keepingLog();
        ranges.length = 0;
        const got = await download(dest, {
          urls: [url],
          size: bytes.length,
          sha256: digest,
          label: "blob",
        }, {
          idleMs: 10_000,
          log,
        });
        assert.equal(got.sha256, digest);
        assert.deepEqual(
          await Deno.readFile(victim),
          before,
          `victim of ${victimSize} bytes untouched`,
        );
        assert.equal((await Deno.stat(victim)).mode! & 0o777, 0o644);
        const info = await Deno.lstat(dest);
        assert.ok(info.isFile && !info.isSymlink, "the download is a regular file of its own");
        assert.deepEqual(await Deno.readFile(dest), bytes);
        assert.deepEqual(ranges, [null], "downloaded from byte 0");
        assert.deepEqual(log.warnings, [[
          "download_discarded",
          { component: "blob", bytes: 0, reason: "not_a_file", kind: "symlink" },
        ]]);
      });
    }
  });
});

Deno.test("download() clears a folder planted at its path and downloads from byte 0", async () => {
  await servingRanges(bytes, async (url, ranges) => {
    await inTemp(async (dir) => {
      const dest = `${dir}/${digest}.pkg`;
      await Deno.mkdir(`${dest}/inner/deeper`, { recursive: true });
      await Deno.writeTextFile(`${dest}/inner/deeper/f`, "x");
      // A link inside the folder: removed itself, its target kept.
      await Deno.writeTextFile(`${dir}/kept`, "kept");
      await Deno.symlink(`${dir}/kept`, `${dest}/inner/link`);
      const log = keepingLog();
      const got = await download(dest, {
        urls: [url],
        size: bytes.length,
        sha256: digest,
        label: "blob",
      }, {
        idleMs: 10_000,
        log,
      });
      assert.equal(got.size, bytes.length);
      assert.ok((await Deno.lstat(dest)).isFile);
      assert.deepEqual(await Deno.readFile(dest), bytes);
      assert.equal(await Deno.readTextFile(`${dir}/kept`), "kept");
      assert.deepEqual(ranges, [null]);
      assert.deepEqual(log.warnings, [[
        "download_discarded",
        { component: "blob", bytes: 0, reason: "not_a_file", kind: "folder" },
      ]]);
    });
  });
});

Deno.test("download() still resumes a regular partial file and cuts one longer than what it hashed", async () => {
  await servingRanges(bytes, async (url, ranges) => {
    await inTemp(async (dir) => {
      const dest = `${dir}/${digest}.pkg`;
      await Deno.writeFile(dest, bytes.slice(0, 70_000));
      const spec = { urls: [url], size: bytes.length, sha256: digest, label: "blob" };
      await download(dest, spec, { idleMs: 10_000, log: silentLog });
      assert.deepEqual(ranges, ["bytes=70000-"]);
      assert.deepEqual(await Deno.readFile(dest), bytes);
      // A server that ignores Range: the held bytes are cut through the handle, not kept.
      await Deno.writeFile(dest, bytes.slice(0, 90_000));
      ranges.length = 0;
      const whole = Deno.serve(
        { hostname: "127.0.0.1", port: 0, onListen: () => {} },
        () => new Response(bytes),
      );
      try {
        await download(dest, { ...spec, urls: [`http://127.0.0.1:${whole.addr.port}/x`] }, {
          idleMs: 10_000,
          log: silentLog,
        });
      } finally {
        await whole.shutdown();
      }
      assert.deepEqual(await Deno.readFile(dest), bytes);
    });
  });
});
