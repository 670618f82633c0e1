// gcheavy.js - churns short-lived objects through a sliding window (V8's scavenger and mark-compact both run); prints a checksum.
const n = Number(process.argv[2] || 2000000);
const w = Number(process.argv[3] || 200000);
let x = 12345;
const window = new Map();
let sum = 0;
for (let i = 0; i < n; i++) {
  x = (Math.imul(x, 1103515245) + 12345) >>> 0;
  // A string and an array per object: several allocations, most dying young.
  window.set(i, { v: x & 0xffff, s: 'k' + (x % 1000), a: [x & 0xff, (x >>> 8) & 0xff] });
  if (i >= w) {
    const o = window.get(i - w);
    sum = (sum + o.v + o.s.length + o.a[0] + o.a[1]) >>> 0;
    window.delete(i - w);
  }
}
console.log(window.size, sum);
