/**
 * Review 20b of issue 20 (phased rollouts), attacker with the source: races between a rollout
 * with rollback being created and the previous version's assignment being deleted. The serial
 * case is refused (review20_attack_rollback_test.ts: DELETE → 409 `managed_by_rollout`), but the
 * assignment routes' check (`refuseManaged` → `rolloutRelyingOn`) takes no lock, while
 * `createRollout`'s coverage check reads the assignment without locking it either: both commit,
 * and a failed phase rolls back to nothing. Likewise appliance moves (PATCH, bulk) against a
 * rollout being created. PostgreSQL only (two connections).
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import {
  assigned,
  catalogVersion,
  deliver,
  fleet,
  listed,
  outcome,
  plan,
  ref,
} from "./_rollouts.ts";
import {
  createRollout,
  getRollout,
  refuseMovesFromRollouts,
} from "../noc/services/phased_rollouts.ts";
import { rolloutPass } from "../noc/jobs/rollout_daemon.ts";
import type { Db } from "../noc/db/db.ts";

/** Waits (bounded, polling the database) until a session other than `not` is blocked by `by`. */
async function blockedBy(db: Db, by: number[], not: number[] = []): Promise<number> {
  for (let i = 0; i < 400; i++) {
    const [w] = await db.sql<{ pid: number }>`
      select pid from pg_stat_activity
      where pg_blocking_pids(pid) && ${by}::int[] and not (pid = any(${not}::int[]))
      limit 1`;
    if (w) return w.pid;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no session blocked by ${by}`);
}

// Found by review 20b, now fixed: a rollback rollout created while its previous version's assignment is
// deleted: both commit, and the failed canaries' catalogs list no version to go back to.
dbTest(
  "review20b: creating a rollback rollout and deleting its fall-back assignment at once cannot both commit",
  async ({ db, another }) => {
    const { noc } = await fleet(db, 20, [], { components: [ref("1"), ref("2")] });
    const [prev] = await db.sql<{ id: number }>`select id from assignments where version = '1'`;
    // A third session holds the catalog epoch row: both transactions stop at their epoch bump,
    // after their checks, until it lets go (their order there is the only thing it decides).
    const holder = another();
    let release!: () => void;
    const held = new Promise<void>((r) => release = r);
    let locked!: (pid: number) => void;
    const isLocked = new Promise<number>((r) => locked = r);
    const holding = holder.begin(async (tx) => {
      const [me] = await tx<{ pid: number }>`select pg_backend_pid() as pid`;
      await tx`select epoch from catalog_epoch for update`;
      locked(me!.pid);
      await held;
    });
    const holderPid = await isLocked;
    const creating = createRollout(
      noc.deps,
      plan([{ count: 5, soakS: 0 }, { percent: 100, soakS: 0 }], { rollback: true }),
      "alice",
    ).then((r) => r.id, (e: unknown) => e as Error);
    const first = await blockedBy(db, [holderPid]);
    const deleting = noc.admin("DELETE", `/v1/admin/assignments/${prev!.id}`);
    await blockedBy(db, [holderPid, first], [first]);
    release();
    await holding;
    const id = await creating;
    const deleted = await deleting;
    if (typeof id !== "number" || deleted.status !== 204) return; // one was refused: fine
    // Both committed. Fail the canaries: the rollback has nothing to send them back to.
    const members = (await db.sql<{ uid: string }>`
      select uid from rollout_members where rollout_id = ${id} and phase = 0`).map((m) => m.uid);
    await deliver(noc, members, "2");
    await listed(noc, members, "2");
    noc.clock.advance(1);
    await outcome(noc, members, "2", "failed");
    noc.clock.advance(60);
    const p = await rolloutPass(noc.deps);
    assert.deepEqual(p.failed, [id], JSON.stringify(p));
    const got = await getRollout(db.sql, id);
    const versions = await Promise.all(members.map((u) => catalogVersion(noc, u)));
    assert.deepEqual(
      versions,
      members.map(() => "1"),
      `rollout ${id} (rollback ${got.rollback}, previous ${got.previousVersion}) was created and ` +
        `assignment ${prev!.id} of version 1 deleted (${deleted.status}) at the same time; after ` +
        `the canaries failed and were rolled back, their catalogs list ${JSON.stringify(versions)}`,
    );
  },
  { instances: 2 },
);

// Found by review 20b, now fixed: appliances moved under a more specific assignment while their rollout
// is created: both commit, and the members sit in their phase without the release (the fix
// "moves out of rollouts" holds only serially: PATCH /v1/admin/appliances/:uid checks
// refuseMovesFromRollouts before it commits, createRollout checks refuseOvershadowed before it
// inserts its members, and neither waits for the other).
dbTest(
  "review20b: moving appliances under a more specific assignment while their rollout is created cannot both commit",
  async ({ db, another }) => {
    const { noc, uids } = await fleet(db, 8, [assigned(ref("1"), "site", "s9")], {
      site: () => "s0",
      components: [ref("1"), ref("2")],
    });
    // PATCH /v1/admin/appliances/:uid's transaction (noc/http/admin/appliances.ts), step by step,
    // for every appliance: lock, move to s9, its check against rollouts (none yet)...
    const other = another();
    let release!: () => void;
    const held = new Promise<void>((r) => release = r);
    let checked!: (pid: number) => void;
    const isChecked = new Promise<number>((r) => checked = r);
    const moving = other.begin(async (tx) => {
      const [me] = await tx<{ pid: number }>`select pg_backend_pid() as pid`;
      for (const uid of uids) {
        await tx`select site from appliances where uid = ${uid} for update`;
        await tx`update appliances set site = 's9' where uid = ${uid}`;
        await refuseMovesFromRollouts(tx, [uid]);
        await tx`update appliances set catalog_epoch = 0 where uid = ${uid}`;
      }
      checked(me!.pid);
      await held; // ...and its commit, once the rollout's transaction has made its checks.
    }).then(() => "committed", (e: unknown) => e as Error);
    const movePid = await isChecked;
    const creating = createRollout(
      noc.deps,
      plan([{ count: 8, soakS: 0 }]),
      "alice",
    ).then((r) => r.id, (e: unknown) => e as Error);
    // The rollout's transaction has made its checks (every appliance still at s0 to it) and waits
    // on the appliances' row locks to add its members.
    await blockedBy(db, [movePid]);
    release();
    const moved = await moving;
    const id = await creating;
    if (typeof id !== "number" || moved !== "committed") return; // one was refused: fine
    const versions = await Promise.all(uids.map((u) => catalogVersion(noc, u)));
    const members = await db.sql<{ uid: string }>`
      select uid from rollout_members where rollout_id = ${id}`;
    const stuck = members.filter((m) => versions[uids.indexOf(m.uid)] !== "2");
    assert.deepEqual(
      stuck.map((m) => m.uid),
      [],
      `rollout ${id} committed with ${members.length} members, and the move of all ${uids.length} ` +
        `to site s9 committed too; members whose catalog gives them app/pkg 1 (the site s9 ` +
        `assignment wins) instead of the release: ${stuck.length}, versions ` +
        `${JSON.stringify(versions)}`,
    );
  },
  { instances: 2 },
);

// Found by review 20b, now fixed: the same through the real routes, with no step simulated: a bulk move
// (POST /v1/admin/appliances/bulk, a plain UPDATE that does not wait on the rollout's uncommitted
// member rows) while a rollout is created. Both commit; the members never get the release.
dbTest(
  "review20b: a bulk move under a more specific assignment while a rollout is created cannot both commit",
  async ({ db, another }) => {
    const { noc, uids } = await fleet(db, 8, [assigned(ref("1"), "site", "s9")], {
      site: () => "s0",
      components: [ref("1"), ref("2")],
    });
    const holder = another();
    let release!: () => void;
    const held = new Promise<void>((r) => release = r);
    let locked!: (pid: number) => void;
    const isLocked = new Promise<number>((r) => locked = r);
    // A third session holds the catalog epoch row for a moment (as any concurrent admin write
    // does): the rollout's transaction, checks made and members added, waits at its epoch bump.
    const holding = holder.begin(async (tx) => {
      const [me] = await tx<{ pid: number }>`select pg_backend_pid() as pid`;
      await tx`select epoch from catalog_epoch for update`;
      locked(me!.pid);
      await held;
    });
    const holderPid = await isLocked;
    const creating = createRollout(noc.deps, plan([{ count: 8, soakS: 0 }]), "alice")
      .then((r) => r.id, (e: unknown) => e as Error);
    const creatorPid = await blockedBy(db, [holderPid]);
    // The move may answer at once (it does not wait for the rollout) or wait for it: either way
    // the held transaction is let go once it has answered or is seen waiting on the rollout's.
    const moving = noc.admin("POST", "/v1/admin/appliances/bulk", {
      uids,
      action: { type: "move", site: "s9" },
    });
    await Promise.race([moving, blockedBy(db, [creatorPid])]);
    release();
    const moved = await moving;
    await holding;
    const id = await creating;
    if (typeof id !== "number" || moved.status !== 200) return; // one was refused: fine
    const versions = await Promise.all(uids.map((u) => catalogVersion(noc, u)));
    const members = await db.sql<{ uid: string }>`
      select uid from rollout_members where rollout_id = ${id}`;
    const stuck = members.filter((m) => versions[uids.indexOf(m.uid)] !== "2");
    assert.deepEqual(
      stuck.map((m) => m.uid),
      [],
      `rollout ${id} committed with ${members.length} members, and the bulk move of all ` +
        `${uids.length} to site s9 answered ${moved.status} ${JSON.stringify(moved.body)}; ` +
        `members whose catalog gives them app/pkg 1 instead of the release: ${stuck.length}`,
    );
  },
  { instances: 2 },
);
