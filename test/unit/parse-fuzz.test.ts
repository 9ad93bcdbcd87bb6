import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { prng, type Rng } from '../helpers/prng.ts';
import { parseMessage } from '../../src/inbound/parse-message.ts';

// A seeded MIME fuzz through the parse path: real-looking messages mutated the ways hostile mail is
// (deep nesting, many parts, broken boundaries, bad transfer encodings and charsets, huge headers,
// NULs, bare CRs, cut and spliced bytes). Whatever comes in, parseMessage resolves in time with the
// fields or with a problem; it never throws, rejects or hangs. FUZZ_SEED and FUZZ_CASES repeat or
// widen a run.
const SEED = Number(process.env.FUZZ_SEED ?? 18);
const CASES = Number(process.env.FUZZ_CASES ?? 200);
/** Per message: the largest ones here parse in well under a second. */
const CASE_MS = 5000;


const b64 = (s: string) => Buffer.from(s).toString('base64');

function seedMessages(r: Rng): string[] {
  const id = `<fuzz-${r.int(0, 1e9)}@sender.example>`;
  const h = (ct: string, extra = '') =>
    `From: =?UTF-8?B?${b64('Jörg Müller')}?= <joerg@sender.example>\r\nTo: "Billing" <billing@contoso.example>, ap@contoso.example\r\nSubject: =?ISO-8859-1?Q?Rechnung_f=FCr_Oktober?=\r\nDate: Sat, 28 Nov 2026 09:00:00 +0000\r\nMessage-ID: ${id}\r\nReferences: <a@x.example> <b@x.example>\r\nMIME-Version: 1.0\r\n${extra}Content-Type: ${ct}\r\n\r\n`;
  return [
    h('text/plain; charset=utf-8', 'Content-Transfer-Encoding: quoted-printable\r\n') + 'Gr=C3=BC=C3=9Fe,=\r\n die Rechnung.\r\n',
    h('multipart/alternative; boundary="alt"') +
      '--alt\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nF=FCr Sie.\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>F&uuml;r <b>Sie</b></p>\r\n--alt--\r\n',
    h('multipart/mixed; boundary="mix"') +
      `--mix\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--mix\r\nContent-Type: application/pdf; name="inv.pdf"\r\nContent-Disposition: attachment; filename="inv.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n${Buffer.alloc(600, 7).toString('base64').replace(/.{76}/g, '$&\r\n')}\r\n--mix\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\nFrom: inner@x.example\r\nSubject: inner\r\nContent-Type: multipart/related; boundary="rel"\r\n\r\n--rel\r\nContent-Type: text/html\r\n\r\n<img src="cid:a@b">\r\n--rel\r\nContent-Type: image/png\r\nContent-ID: <a@b>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--rel--\r\n--mix--\r\n`,
    h('multipart/report; report-type=delivery-status; boundary="rep"') +
      '--rep\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n--rep\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\nFinal-Recipient: rfc822; a@b.example\r\nAction: failed\r\nStatus: 5.1.1\r\n--rep--\r\n',
  ];
}

function nest(r: Rng, inner: string, levels: number): string {
  let s = inner;
  for (let i = 0; i < levels; i++) {
    const b = `n${i}_${r.int(0, 99)}`;
    s = `Content-Type: ${r.pick(['multipart/mixed', 'multipart/alternative', 'multipart/related'])}; boundary="${b}"\r\n\r\n--${b}\r\n${s}\r\n--${b}--\r\n`;
  }
  return `From: a@b.example\r\nSubject: nested ${levels}\r\nMIME-Version: 1.0\r\n${s}`;
}

const mutations: Array<(r: Rng, s: string) => string> = [
  // deep nesting
  (r, s) => nest(r, 'Content-Type: text/plain\r\n\r\ndeep text', r.pick([2, 10, 49, 51, 120, r.int(1, 400)])),
  // many parts
  (r, s) => {
    const n = r.pick([3, 50, 1001, r.int(1, 1500)]);
    let m = 'From: a@b.example\r\nSubject: many\r\nContent-Type: multipart/mixed; boundary="m"\r\n\r\n';
    for (let i = 0; i < n; i++) m += `--m\r\nContent-Type: ${r.pick(['text/plain', 'application/octet-stream', 'text/html'])}\r\n\r\n${i}\r\n`;
    return m + (r.next() < 0.5 ? '--m--\r\n' : '');
  },
  // broken boundaries: closing removed, changed, or an outer one reused inside
  (r, s) => s.replace(/--(\w+)--\r\n/g, () => r.pick(['', '--other--\r\n', '--mix\r\n', '--alt'])),
  (r, s) => s.replace(/boundary="?(\w+)"?/, r.pick(['boundary=""', 'boundary=', 'boundary="--"', `boundary="${'b'.repeat(r.int(60, 2000))}"`, 'boundary="alt"; boundary="mix"'])),
  // bad transfer encodings and charsets
  (r, s) => s.replace(/Content-Transfer-Encoding: \S+/g, () => `Content-Transfer-Encoding: ${r.pick(['base64', 'quoted-printable', 'x-uuencode', '8bit', 'bogus'])}`).replace(/\r\n\r\n([^\r]*)/, (_m, body: string) => `\r\n\r\n${body}${r.pick(['=', '=ZZ', '!!!!', '====', '=\r\n=\r\n', '\u00ff\u00fe'])}`),
  (r, s) => s.replace(/charset=[\w-]+/g, () => `charset=${r.pick(['utf-7', 'x-unknown', 'iso-2022-jp', 'utf-16', 'shift_jis', '', '"'])}`).replace(/Subject: .*/, `Subject: =?${r.pick(['utf-7', 'bogus', 'utf-8'])}?${r.pick(['Q', 'B', 'X'])}?${r.pick(['+AGA-', '====', '=FF=FE', '%%%'])}?=`),
  // huge headers: one long line, or thousands of lines
  (r, s) => s.replace('MIME-Version: 1.0\r\n', `X-Long: ${'a'.repeat(r.pick([1000, 70_000, 300_000]))}\r\nMIME-Version: 1.0\r\n`),
  (r, s) => s.replace('MIME-Version: 1.0\r\n', `${'Received: from relay.example by mx.example; Sat, 28 Nov 2026 09:00:00 +0000\r\n'.repeat(r.pick([10, 3000, 40_000]))}MIME-Version: 1.0\r\n`),
  (r, s) => s.replace(/To: .*/, `To: ${Array.from({ length: r.int(1, 5000) }, (_, i) => `"R ${i}" <r${i}@x.example>`).join(', ')}`),
  // NULs, bare CRs and LFs, random bytes
  (r, s) => { const a = s.split(''); for (let i = r.int(1, 50); i > 0; i--) a.splice(r.int(0, a.length), 0, '\u0000'); return a.join(''); },
  (r, s) => s.replace(/\r\n/g, () => r.pick(['\r\n', '\n', '\r', '\r\r\n'])),
  (r, s) => { const a = Buffer.from(s, 'latin1'); for (let i = r.int(1, 40); i > 0; i--) a[r.int(0, a.length - 1)] = r.int(0, 255); return a.toString('latin1'); },
  // cut, spliced and repeated
  (r, s) => s.slice(0, r.int(0, s.length)),
  (r, s) => { const k = r.int(0, s.length); const j = r.int(0, s.length); return s.slice(0, k) + s.slice(j); },
  (r, s) => { const k = r.int(0, s.length - 1); const j = r.int(k, Math.min(s.length, k + 400)); return s.slice(0, j) + s.slice(k, j).repeat(r.int(2, 200)) + s.slice(j); },
  // a header block never ended
  (r, s) => s.replace(/\r\n\r\n/g, '\r\n'),
];

test('fuzzed MIME always parses to fields or a problem, in time', async () => {
  const r = prng(SEED);
  const seeds = seedMessages(r);
  const codes = new Map<string, number>();
  let slowest = 0;
  for (let k = 0; k < CASES; k++) {
    let s = r.pick(seeds);
    for (let m = r.int(1, 3); m > 0; m--) s = r.pick(mutations)(r, s);
    const raw = Buffer.from(s, 'latin1');
    const asStream = r.next() < 0.3;
    const start = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const p = await Promise.race([
      parseMessage(asStream ? Readable.from([raw.subarray(0, raw.length >> 1), raw.subarray(raw.length >> 1)]) : raw),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`case ${k} (seed ${SEED}) did not finish within ${CASE_MS} ms`)), CASE_MS))),
    ]).finally(() => clearTimeout(timer));
    slowest = Math.max(slowest, performance.now() - start);
    const what = `case ${k} (seed ${SEED})`;
    assert.equal(typeof p.subject, 'string', what);
    assert.equal(typeof p.from, 'string', what);
    assert.ok(Array.isArray(p.to) && Array.isArray(p.attachments), what);
    assert.ok(p.text === null || typeof p.text === 'string', what);
    assert.equal(p.sizeBytes, raw.length, what);
    assert.match(p.sha256, /^[0-9a-f]{64}$/, what);
    for (const a of p.attachments) assert.ok(a.filename !== '' && !/[/\\\r\n\u0000]/.test(a.filename) && !a.filename.startsWith('.'), `${what}: ${JSON.stringify(a.filename)}`);
    if (p.problem) {
      assert.ok(['too_many_parts', 'too_deep', 'malformed'].includes(p.problem.code), `${what}: ${p.problem.code}`);
      assert.ok(p.problem.message.length > 20 && !/[\r\n]/.test(p.problem.message), what);
    }
    if (process.env.FUZZ_VERBOSE && p.problem) console.log(k, p.problem.message);
    codes.set(p.problem?.code ?? 'read', (codes.get(p.problem?.code ?? 'read') ?? 0) + 1);
  }
  // The mutations reach every outcome, or the fuzz proves less than it claims.
  for (const c of ['read', 'too_many_parts', 'too_deep', 'malformed']) assert.ok((codes.get(c) ?? 0) > 0, `no case ended as ${c}: ${JSON.stringify([...codes])}`);
  if (process.env.FUZZ_VERBOSE) console.log('slowest', Math.round(slowest), 'ms');
  assert.ok(slowest < CASE_MS);
});
