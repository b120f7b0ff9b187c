/**
 * Issue 21, item 9: install programs run in an ordinary, documented environment (docs/agent.md,
 * "The install environment"; agent/install_env.ts). A real agent process, started with secrets and
 * `NOC_AGENT_*` settings in its own environment, installs a package whose `install` runs
 * `git config --global` (it needs `HOME`), dumps its environment and looks at its standard input.
 */
import assert from "node:assert/strict";
import { publishAndAssign } from "./_components.ts";
import { installBox, withNoc } from "./_agent_installs.ts";

/** What a shell may add of its own (`PWD`, and `SHLVL`/`OLDPWD`/`_` in some shells). */
const shellOwn = new Set(["PWD", "SHLVL", "OLDPWD", "_"]);

Deno.test({
  name:
    "install programs get HOME, USER, LOGNAME, SHELL, LANG, TZ, PATH and NOC_*, stdin /dev/null, and none of the agent's own variables",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withNoc(async (noc) => {
      const box = await installBox(noc);
      const dir = await Deno.makeTempDir({ prefix: "noc-env-" });
      const git = await new Deno.Command("sh", { args: ["-c", "command -v git"] }).output();
      try {
        const gitLine = git.success
          ? `git config --global user.name installer\ngit config --global user.name > "${dir}/git"\n`
          : `echo installer > "$HOME/.probe" && cp "$HOME/.probe" "${dir}/git"\n`;
        await publishAndAssign(noc, { app: "demo", name: "envy", version: "1.0.0" }, {
          install: `#!/bin/sh\nset -e\nenv > "${dir}/env"\n` +
            `readlink /proc/self/fd/0 > "${dir}/stdin"\n` +
            `if IFS= read -r line; then echo "read: $line" > "${dir}/read"; fi\n` + gitLine,
        });
        const r = await box.agent(["once", "--allow-http-files"], {
          SECRET_TOKEN: "hunter2",
          NOC_AGENT_NOC_TOKEN: "also-secret",
          HOME: "/root-of-the-agent",
          LANG: "de_DE.UTF-8",
        });
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.equal((await Deno.readTextFile(`${dir}/git`)).trim(), "installer");
        assert.equal((await Deno.readTextFile(`${dir}/stdin`)).trim(), "/dev/null");
        assert.equal(await Deno.readTextFile(`${dir}/read`).catch(() => null), null);

        const env = Object.fromEntries(
          (await Deno.readTextFile(`${dir}/env`)).trim().split("\n").map((l) => {
            const i = l.indexOf("=");
            return [l.slice(0, i), l.slice(i + 1)];
          }),
        );
        const user = new TextDecoder().decode(
          (await new Deno.Command("id", { args: ["-un"] }).output()).stdout,
        ).trim();
        assert.equal(env.HOME, `${box.state}/home`);
        assert.equal((await Deno.stat(env.HOME!)).mode! & 0o777, 0o700);
        assert.equal(env.USER, user);
        assert.equal(env.LOGNAME, user);
        assert.equal(env.SHELL, "/bin/sh");
        assert.equal(env.LANG, "C.UTF-8");
        assert.equal(env.TZ, ":/etc/localtime");
        assert.equal(env.PATH, "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        assert.equal(env.NOC_ACTION, "install");
        assert.equal(env.NOC_VERSION, "1.0.0");
        assert.match(env.NOC_REBOOT_MARKER!, new RegExp(`^${box.state}/reboot/[0-9a-f]{64}$`));
        const names = Object.keys(env).filter((k) => !shellOwn.has(k)).sort();
        assert.deepEqual(names, [
          "HOME",
          "LANG",
          "LOGNAME",
          "NOC_ACTION",
          "NOC_APP",
          "NOC_NAME",
          "NOC_PREVIOUS_VERSION",
          "NOC_REBOOT_MARKER",
          "NOC_ROOT",
          "NOC_STAGING",
          "NOC_STATE",
          "NOC_VERSION",
          "PATH",
          "SHELL",
          "TZ",
          "USER",
        ]);
        assert.ok(!Object.keys(env).some((k) => k.startsWith("NOC_AGENT_")));
        assert.ok(!Object.values(env).some((v) => v.includes("hunter2") || v.includes("secret")));
      } finally {
        await box.remove();
        await Deno.remove(dir, { recursive: true });
      }
    }),
});
