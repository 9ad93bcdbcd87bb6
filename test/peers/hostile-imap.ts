// An IMAP server (implicit TLS, LOGIN) that misbehaves on purpose, mailbox by mailbox: the username
// picks the mailbox, and each message of it can be normal or hostile — a literal far larger than its
// announced RFC822.SIZE (generated lazily, never held), an honest size past Mailroom's limit, an
// answer without a UID or with a garbled size, a BODYSTRUCTURE that does not parse, a server that
// goes silent in the middle of a FETCH, or FETCH answers that never end. Only what Mailroom's fetcher
// sends is understood (LOGIN, SELECT/EXAMINE, STATUS, UID FETCH, UID STORE, NOOP, LOGOUT).
import type { AddressInfo } from 'node:net';
import { createServer, type TLSSocket } from 'node:tls';

export interface HostileMessage {
  uid: number;
  /** The message as stored; its length is the RFC822.SIZE unless `announcedSize` says otherwise. */
  raw?: Buffer;
  /** RFC822.SIZE as sent, verbatim (a string can be garbage). */
  announcedSize?: number | string;
  /** The body literal has this many bytes (of generated text) whatever `raw` or the size say. */
  literalBytes?: number;
  /** Its FETCH answers carry no UID. */
  noUid?: boolean;
  /** Appended to its envelope answer verbatim, e.g. a BODYSTRUCTURE that does not parse. */
  extra?: string;
  /** With `announcedSize` and `literalBytes`: partial FETCHes are answered as asked, not with the whole literal. */
  honestPartials?: boolean;
  /** A FETCH of its body is never answered (the server goes silent mid-command). */
  silentBody?: boolean;
}

export interface HostileMailbox {
  messages: HostileMessage[];
  /** The envelope FETCH answers forever, with ever new UIDs. */
  endlessEnvelopes?: boolean;
  /** A body FETCH answers forever with the same flags-only answer. */
  endlessBodyAnswers?: boolean;
  /** IDLE is offered after login (it is never answered: nothing more is needed to watch). */
  idle?: boolean;
  /** SELECT and EXAMINE answer NO [NONEXISTENT], as for a folder that does not exist. */
  refuseSelect?: boolean;
}

export interface HostileImap {
  port: number;
  /** The mailbox of a username (created empty on first use); change it between fetches. */
  mailbox(user: string): HostileMailbox;
  /** UIDs whose body a client asked for, by username. */
  bodyRequests(user: string): number[];
  /** Connections still open. */
  openConnections(): number;
  /** Connections still open that logged in as `user`. */
  openConnectionsOf(user: string): number;
  stop(): Promise<void>;
}

export const PASSWORD = 'hostile-secret';

/** A plain message with this subject and Message-ID. */
export function plainMessage(subject: string, id: string, body = 'Hello'): Buffer {
  return Buffer.from(`From: sender@remote.example\r\nTo: clerk@example.test\r\nSubject: ${subject}\r\nMessage-ID: <${id}>\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n${body}\r\n`);
}

/** RFC 3501 sequence set over the mailbox's UIDs ("1:*", "4:9,12"); "n:*" always includes the highest. */
function uidsIn(set: string, uids: number[]): number[] {
  const max = uids.length ? Math.max(...uids) : 0;
  const want = new Set<number>();
  for (const part of set.split(',')) {
    const [a, b = a] = part.split(':');
    const lo = a === '*' ? max : Number(a);
    const hi = b === '*' ? max : Number(b);
    for (const u of uids) if (u >= Math.min(lo, hi) && u <= Math.max(lo, hi)) want.add(u);
  }
  return uids.filter((u) => want.has(u));
}

const quote = (s: string) => `"${s.replace(/["\\]/g, '')}"`;

export async function startHostileImap(tls: { cert: string; key: string }): Promise<HostileImap> {
  const boxes = new Map<string, HostileMailbox>();
  const requests = new Map<string, number[]>();
  const sockets = new Set<TLSSocket>();
  const loggedIn = new Map<TLSSocket, string>();
  const mailbox = (user: string) => {
    let b = boxes.get(user);
    if (!b) boxes.set(user, (b = { messages: [] }));
    return b;
  };

  const server = createServer({ cert: tls.cert, key: tls.key }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => {
      sockets.delete(socket);
      loggedIn.delete(socket);
    });
    socket.on('error', () => socket.destroy());
    let user = '';
    let buffered = '';
    let busy: Promise<void> = Promise.resolve();
    const alive = () => !socket.destroyed && socket.writable;
    /** Writes with backpressure: a client that stops reading stops the server too. */
    const write = async (data: string | Buffer) => {
      if (!alive()) return false;
      if (!socket.write(data)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            socket.off('drain', done);
            socket.off('close', done);
            resolve();
          };
          socket.on('drain', done);
          socket.on('close', done);
        });
      }
      return alive();
    };
    /**
     * `n` bytes from `start` of a generated message (a header, then 1,000-byte text lines), a
     * megabyte at a time: the same bytes at the same offsets whichever partial FETCH asks.
     */
    const streamLiteral = async (n: number, start = 0) => {
      const head = Buffer.from('From: flood@remote.example\r\nSubject: generated\r\nContent-Type: text/plain\r\n\r\n');
      const block = Buffer.concat(Array.from({ length: 1024 }, () => Buffer.from(`${'x'.repeat(998)}\r\n`)));
      for (let pos = start, end = start + n; pos < end && alive(); ) {
        const piece = pos < head.length ? head.subarray(pos, Math.min(head.length, end)) : block.subarray((pos - head.length) % 1000, Math.min(block.length, (pos - head.length) % 1000 + end - pos));
        if (!(await write(piece))) return;
        pos += piece.length;
      }
    };
    const box = () => mailbox(user);

    const fetch = async (tag: string, set: string, items: string, byUid: boolean) => {
      const b = box();
      const all = b.messages.map((m) => m.uid);
      const chosen = byUid ? uidsIn(set, all) : uidsIn(set, all.map((_, k) => k + 1)).map((seq) => all[seq - 1]!);
      const wantsBody = /BODY(\.PEEK)?\[\]/i.test(items);
      const partial = /BODY(?:\.PEEK)?\[\]<(\d+)\.(\d+)>/i.exec(items);
      if (!wantsBody && b.endlessEnvelopes) {
        for (let uid = 1; alive(); uid++) if (!(await write(`* ${uid} FETCH (UID ${uid} RFC822.SIZE 100 ENVELOPE (NIL "endless" NIL NIL NIL NIL NIL NIL NIL "<endless-${uid}@hostile.test>"))\r\n`))) return;
        return;
      }
      if (wantsBody && b.endlessBodyAnswers) {
        const line = `* 1 FETCH (UID ${all[0] ?? 1} FLAGS (\\Seen))\r\n`.repeat(100);
        while (alive()) if (!(await write(line))) return;
        return;
      }
      for (const uid of chosen) {
        const m = b.messages.find((x) => x.uid === uid)!;
        const seq = b.messages.indexOf(m) + 1;
        const size = m.announcedSize ?? m.literalBytes ?? m.raw?.length ?? 0;
        const parts: string[] = [];
        if (!m.noUid && /UID/i.test(items)) parts.push(`UID ${uid}`);
        if (/RFC822\.SIZE/i.test(items)) parts.push(`RFC822.SIZE ${size}`);
        if (/ENVELOPE/i.test(items)) parts.push(`ENVELOPE (NIL ${quote(`message ${uid}`)} NIL NIL NIL NIL NIL NIL NIL ${quote(`<hostile-${uid}@hostile.test>`)})`);
        if (m.extra && !wantsBody) parts.push(m.extra);
        if (!wantsBody) {
          if (!(await write(`* ${seq} FETCH (${parts.join(' ')})\r\n`))) return;
          continue;
        }
        (requests.get(user) ?? requests.set(user, []).get(user)!).push(uid);
        if (m.silentBody) return; // never answers, never ends the command
        const start = partial ? Number(partial[1]) : 0;
        if (m.literalBytes !== undefined) {
          const n = partial ? Math.max(0, Math.min(Number(partial[2]), m.literalBytes - start)) : m.literalBytes;
          // A lying server ignores the partial range and sends all it has.
          const sent = m.announcedSize !== undefined && !m.honestPartials ? m.literalBytes : n;
          if (!(await write(`* ${seq} FETCH (${[...parts, `BODY[]${partial ? `<${start}>` : ''} {${sent}}`].join(' ')}\r\n`))) return;
          await streamLiteral(sent, sent === n ? start : 0);
          if (!(await write(')\r\n'))) return;
          continue;
        }
        const raw = m.raw ?? Buffer.alloc(0);
        const body = partial ? raw.subarray(start, start + Number(partial[2])) : raw;
        if (!(await write(Buffer.concat([Buffer.from(`* ${seq} FETCH (${[...parts, `BODY[]${partial ? `<${start}>` : ''} {${body.length}}`].join(' ')}\r\n`), body, Buffer.from(')\r\n')])))) return;
      }
      await write(`${tag} OK FETCH completed\r\n`);
    };

    const handle = async (line: string) => {
      const m = /^(\S+) (?:(UID) )?(\S+)\s*(.*)$/i.exec(line);
      if (!m) return void (await write('* BAD what?\r\n'));
      const [, tag, uid, cmd, args] = m as unknown as [string, string, string | undefined, string, string];
      switch (cmd.toUpperCase()) {
        case 'CAPABILITY':
          return void (await write(`* CAPABILITY IMAP4rev1\r\n${tag} OK done\r\n`));
        case 'LOGIN': {
          const [u, p] = [...args.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((x) => x[1] ?? x[2]!);
          if (p !== PASSWORD) return void (await write(`${tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n`));
          user = u!.toLowerCase();
          loggedIn.set(socket, user);
          return void (await write(`${tag} OK [CAPABILITY IMAP4rev1${box().idle ? ' IDLE' : ''}] Logged in\r\n`));
        }
        case 'SELECT':
        case 'EXAMINE': {
          const b = box();
          if (b.refuseSelect) return void (await write(`${tag} NO [NONEXISTENT] Unknown Mailbox: ${args.trim()}\r\n`));
          const next = b.messages.length ? Math.max(...b.messages.map((x) => x.uid)) + 1 : 1;
          return void (await write(`* ${b.messages.length} EXISTS\r\n* 0 RECENT\r\n* FLAGS (\\Seen)\r\n* OK [UIDVALIDITY 7] UIDs valid\r\n* OK [UIDNEXT ${next}] Predicted next UID\r\n${tag} OK [${cmd.toUpperCase() === 'SELECT' ? 'READ-WRITE' : 'READ-ONLY'}] done\r\n`));
        }
        case 'SEARCH': {
          const range = /UID (\S+)/i.exec(args)?.[1] ?? '1:*';
          const all = box().messages.map((x) => x.uid);
          return void (await write(`* SEARCH ${uidsIn(range, all).join(' ')}\r\n${tag} OK done\r\n`));
        }
        case 'STATUS':
          return void (await write(`* STATUS INBOX (MESSAGES ${box().messages.length} UNSEEN 0)\r\n${tag} OK done\r\n`));
        case 'FETCH': {
          const f = /^(\S+)\s+(.*)$/.exec(args)!;
          return fetch(tag, f[1]!, f[2]!, !!uid);
        }
        case 'LOGOUT':
          await write(`* BYE bye\r\n${tag} OK done\r\n`);
          return void socket.end();
        default:
          return void (await write(`${tag} OK done\r\n`));
      }
    };

    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      let k: number;
      while ((k = buffered.indexOf('\r\n')) >= 0) {
        const line = buffered.slice(0, k);
        buffered = buffered.slice(k + 2);
        // One command at a time, in order; a hostile answer may still be under way.
        busy = busy.then(() => handle(line)).catch(() => void socket.destroy());
      }
    });
    void write('* OK [CAPABILITY IMAP4rev1] hostile IMAP ready\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    mailbox,
    bodyRequests: (u) => requests.get(u.toLowerCase()) ?? [],
    openConnections: () => sockets.size,
    openConnectionsOf: (u) => [...loggedIn.values()].filter((x) => x === u.toLowerCase()).length,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
