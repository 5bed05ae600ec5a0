// The naive Lambda handler of bench-lambda, in Node.js with node-postgres (`pg`): on each line of
// stdin (one "invocation") it connects, runs SELECT 1, closes, and prints "ok <wall ms> <cpu ms>"
// (its own clocks around the work) or "err <message>". It prints "ready <versions>" at start.
// BENCH_SSL is "default" (node-postgres's own: no TLS), "disable" or "require" (TLS, certificate
// unchecked).
'use strict';
const { Client } = require('pg');
const readline = require('readline');

// The connection comes from the libpq variables node-postgres reads too (PGHOST, PGPORT, PGUSER,
// PGPASSWORD, PGDATABASE); no PGSSLMODE, which it would also read.
const config = { connectionTimeoutMillis: 10000 };
if (process.env.BENCH_SSL === 'disable') config.ssl = false;
if (process.env.BENCH_SSL === 'require') config.ssl = { rejectUnauthorized: false };

async function invoke() {
  const wall = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  const client = new Client(config);
  await client.connect();
  await client.query('SELECT 1');
  await client.end();
  const used = process.cpuUsage(cpu);
  const wallMs = Number(process.hrtime.bigint() - wall) / 1e6;
  return `ok ${wallMs.toFixed(3)} ${((used.user + used.system) / 1000).toFixed(3)}`;
}

async function main() {
  const version = require('pg/package.json').version;
  console.log(`ready node-postgres ${version} (node ${process.version})`);
  for await (const _ of readline.createInterface({ input: process.stdin })) {
    const line = await invoke().catch((e) => `err ${String(e.message).replace(/\n/g, ' ')}`);
    console.log(line);
  }
}
main();
