/**
 * A minimal appliance for trying the NOC by hand: enrols on first use (keys
 * kept in a JSON state file), then sends one signed SecureBeat and prints the
 * reply.
 *
 *   deno run --allow-net --allow-read --allow-write --allow-sys examples/beat_once.ts \
 *     --noc http://localhost:8000 --token noc_enr_… [--state appliance.json] [--hostname gw-1]
 *
 * @module
 */
import {
  enroll,
  generateApplianceKeys,
  signedCall,
  signingKeyFromSeed,
} from "../protocol/client.ts";

function flag(name: string, fallback?: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  const v = i >= 0 ? Deno.args[i + 1] : fallback;
  if (v === undefined) {
    console.error(`Missing --${name}`);
    Deno.exit(2);
  }
  return v;
}

interface State {
  noc: string;
  uid: string;
  signingSeed: string;
  seq: number;
}

const statePath = flag("state", "appliance.json");
let state: State;
try {
  state = JSON.parse(await Deno.readTextFile(statePath));
} catch {
  const noc = flag("noc");
  const keys = await generateApplianceKeys();
  const e = await enroll(fetch, noc, {
    token: flag("token"),
    model: flag("model", "demo"),
    hostname: flag("hostname", "demo-appliance"),
    keys,
  });
  state = { noc, uid: e.uid, signingSeed: keys.signingSeed, seq: 0 };
  console.log(`Enrolled as ${e.uid}; NOC keys pinned: ${e.nocKeys.map((k) => k.kid).join(", ")}`);
}
state.seq++;
const reply = await signedCall(fetch, {
  baseUrl: state.noc,
  uid: state.uid,
  key: await signingKeyFromSeed(state.signingSeed),
  method: "POST",
  path: "/v1/beats",
  body: {
    seq: state.seq,
    sentAt: new Date().toISOString(),
    health: {
      load: Deno.loadavg(),
      memory: {
        totalBytes: Deno.systemMemoryInfo().total,
        availableBytes: Deno.systemMemoryInfo().available,
      },
      disks: [],
      uptimeS: Deno.osUptime(),
    },
    components: [],
    lastCycle: { outcome: "none" },
    apps: {},
  },
});
await Deno.writeTextFile(statePath, JSON.stringify(state, null, 2), { mode: 0o600 });
console.log(JSON.stringify(reply, null, 2));
