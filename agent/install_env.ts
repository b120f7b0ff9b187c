/**
 * The ordinary environment install programs run in (a package's `install`, `health` and rollback,
 * a file's action), on top of their `NOC_*` variables:
 *
 * | Variable          | Value                                                                   |
 * | ----------------- | ----------------------------------------------------------------------- |
 * | `PATH`            | `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`          |
 * | `HOME`            | `<state>/home` (made 0700; kept across installs)                        |
 * | `USER`, `LOGNAME` | the name of the user the agent runs as (`id -un`; its uid if unnamed)  |
 * | `SHELL`           | `/bin/sh`                                                               |
 * | `LANG`            | `C.UTF-8`                                                               |
 * | `TZ`              | `:/etc/localtime` (the system's time zone)                              |
 *
 * Standard input is `/dev/null`. Nothing else of the agent's own environment is passed on: no
 * secret it was started with, no `NOC_AGENT_*` setting.
 *
 * @module
 */

/** The state folder's subfolder that is `HOME` for install programs. */
export function installHome(state: string): string {
  return `${state}/home`;
}

/** The name of the user the agent runs as (its uid when `id -un` cannot name it). */
function agentUser(): Promise<string> {
  return (async () => {
    const uid = (() => {
      try {
        return String(Deno.uid() ?? "");
      } catch {
        return "";
      }
    })();
    try {
      const out = await new Deno.Command("id", {
        args: ["-un"],
        clearEnv: true,
        env: { PATH: "/usr/bin:/bin" },
        stdin: "null",
        stdout: "piped",
        stderr: "null",
      }).output();
      const name = new TextDecoder().decode(out.stdout).trim();
      if (out.success && /^[A-Za-z0-9._-]{1,64}$/.test(name)) return name;
    } catch {
      // No `id`: the uid below.
    }
    return uid || "root";
  })();
}

/** The ordinary variables for an install program of the agent with state folder `state`. */
export async function installEnv(state: string): Promise<Record<string, string>> {
  const home = installHome(state);
  await Deno.mkdir(home, { recursive: true, mode: 0o700 }).catch(() => {});
  const user = await agentUser();
  return {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: home,
    USER: user,
    LOGNAME: user,
    SHELL: "/bin/sh",
    LANG: "C.UTF-8",
    TZ: ":/etc/localtime",
  };
}
