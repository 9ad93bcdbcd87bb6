// Messages that took the parser down or held it whole before the parse limits (issue #18): shared by
// the parse unit tests, the MIME fuzz and the end-to-end quarantine test.

const head = (subject: string, messageId: string, contentType: string) =>
  ['From: Sender <sender@hostile.example>', 'To: inbox@example.test', `Subject: ${subject}`, `Message-ID: ${messageId}`, 'Date: Sat, 28 Nov 2026 09:00:00 +0000', 'MIME-Version: 1.0', `Content-Type: ${contentType}`, '', ''].join('\r\n');

/** `parts` text parts in one multipart/mixed (1,001 and more is past the limit; 1.08 MB at 1,000 in the audit). */
export function manyPartsMessage(parts: number, messageId = `<many-${parts}@hostile.example>`, partBytes = 0): Buffer {
  let s = head(`${parts} parts`, messageId, 'multipart/mixed; boundary="p"');
  for (let i = 0; i < parts; i++) s += `--p\r\nContent-Type: text/plain\r\n\r\npart ${i} ${'x'.repeat(partBytes)}\r\n`;
  return Buffer.from(`${s}--p--\r\n`);
}

/** `levels` multiparts nested in one another (5,000 levels was 342 KB in the audit). */
export function deepMessage(levels: number, messageId = `<deep-${levels}@hostile.example>`): Buffer {
  let s = head(`${levels} levels`, messageId, 'multipart/mixed; boundary="d0"');
  for (let i = 1; i < levels; i++) s += `--d${i - 1}\r\nContent-Type: multipart/mixed; boundary="d${i}"\r\n\r\n`;
  s += `--d${levels - 1}\r\nContent-Type: text/plain\r\n\r\ninnermost\r\n`;
  for (let i = levels - 1; i >= 0; i--) s += `--d${i}--\r\n`;
  return Buffer.from(s);
}

/** A part whose header is one 300 KB line: past the 256 KB a part's header may have. */
export function hugeHeaderMessage(messageId = '<huge-header@hostile.example>'): Buffer {
  return Buffer.from(
    head('Huge part header', messageId, 'multipart/mixed; boundary="h"') +
      `--h\r\nContent-Type: text/plain\r\n\r\nreadable part\r\n--h\r\nContent-Type: text/plain\r\nX-Filler: ${'a'.repeat(300 * 1024)}\r\n\r\nafter\r\n--h--\r\n`,
  );
}

/** A text/plain message of `bytes` of text (lines of 76 characters). */
export function bigTextMessage(bytes: number, messageId = `<big-text-${bytes}@hostile.example>`): Buffer {
  const line = `${'0123456789'.repeat(7)}abcdef\r\n`;
  return Buffer.concat([Buffer.from(head('Big text', messageId, 'text/plain; charset=utf-8')), Buffer.from(line.repeat(Math.ceil(bytes / line.length)))]);
}

/** An attachment named `filename` (quoted as given: CR/LF and all, the way a hostile sender writes it). */
export function namedAttachmentMessage(filename: string, messageId = '<named@hostile.example>'): Buffer {
  return Buffer.from(
    head('Named attachment', messageId, 'multipart/mixed; boundary="n"') +
      `--n\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--n\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=UTF-8''${encodeURIComponent(filename)}\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD\r\n--n--\r\n`,
  );
}
