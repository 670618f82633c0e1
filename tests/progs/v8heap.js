// v8heap.js - holds about MB megabytes in V8's heap (reserved, then committed with mprotect), checks it, prints its peak anonymous RSS.
const fs = require('fs');
const mb = Number(process.argv[2] || 300);
const held = [];
for (let i = 0; i < mb; i++) held.push(new Array(1 << 17).fill(i + 0.5)); // 1 MiB of doubles in V8's own heap
let sum = 0;
for (const b of held) sum += b[12345];
const want = mb * mb / 2;
const status = fs.readFileSync('/proc/self/status', 'utf8');
const anon = Number(/RssAnon:\s+(\d+)/.exec(status)[1]);
console.log(sum === want ? 'v8heap ok' : `v8heap WRONG sum ${sum} want ${want}`, `rss_anon_kb ${anon}`);
