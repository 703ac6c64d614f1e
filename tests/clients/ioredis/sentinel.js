// Drives a Tandem cluster with ioredis in Sentinel mode, for SentinelTests.
//   node sentinel.js HOST:PORT[,HOST:PORT...] SERVICE-NAME
// Prints "primary PORT" once it wrote and read through the primary it found, then waits for a line on stdin (the
// test kills that primary meanwhile), then retries until it writes and reads through another primary and prints
// "switched PORT". Any failure, or no new primary within the deadline, exits 1 with the reason on stderr.
const Redis = require("ioredis");

const [list, name] = process.argv.slice(2);
const sentinels = list.split(",").map((entry) => {
  const colon = entry.lastIndexOf(":");
  return { host: entry.slice(0, colon), port: Number(entry.slice(colon + 1)) };
});
const deadlineMs = 60_000;

const redis = new Redis({
  sentinels,
  name,
  commandTimeout: 2_000,
  connectTimeout: 2_000,
  retryStrategy: () => 100,
  sentinelRetryStrategy: () => 100,
  maxRetriesPerRequest: 1,
});
redis.on("error", () => {}); // reconnects are expected during the failover

const port = () => redis.stream && redis.stream.remotePort;

async function untilWorks(what, check) {
  const start = Date.now();
  let last = "";
  while (Date.now() - start < deadlineMs) {
    try {
      if (await check()) return;
      last = "not yet";
    } catch (e) {
      last = e.message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: nothing within ${deadlineMs} ms (last: ${last})`);
}

async function main() {
  await untilWorks("first write", async () => (await redis.set("ioredis-key", "before")) === "OK");
  if ((await redis.get("ioredis-key")) !== "before") throw new Error("read back a different value");
  const first = port();
  console.log(`primary ${first}`);

  await new Promise((resolve) => process.stdin.once("data", resolve));

  await untilWorks("write after the failover", async () =>
    port() !== first && (await redis.set("ioredis-after", "after")) === "OK");
  const before = await redis.get("ioredis-key");
  if (before !== "before") throw new Error(`the write before the failover reads ${before}`);
  if ((await redis.get("ioredis-after")) !== "after") throw new Error("read back a different value after the failover");
  console.log(`switched ${port()}`);
  redis.disconnect();
  process.exit(0);
}

main().catch((e) => {
  console.error(e.stack || e.message);
  process.exit(1);
});
