import assert from "node:assert/strict";

Deno.test({
  name:
    "deno task demo: a real NOC process and three real agents converge, then upgrade when woken",
  sanitizeResources: false,
  fn: async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "examples/demo.ts", "--quick"],
      cwd: new URL("..", import.meta.url),
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, text + new TextDecoder().decode(out.stderr));
    assert.match(text, /converged:(\n\s+gw-\d\s+state=ok\s+demo-app=1\.0\.0){3}/);
    assert.match(text, /upgraded:(\n\s+gw-\d\s+state=ok\s+demo-app=2\.0\.0){3}/);
    assert.match(text, /demo finished/);
  },
});
