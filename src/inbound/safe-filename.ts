/** What a name falls back to when nothing of the sender's name is usable. */
export const FALLBACK_FILENAME = 'attachment';
/** In UTF-8 bytes: under the 255 that ext4, NTFS and APFS allow for one name, with room for a suffix. */
export const MAX_FILENAME_BYTES = 200;

// C0 and C1 controls (CR/LF among them), DEL, and the bidirectional overrides and isolates that
// make "invoice\u202Efdp.exe" read as "invoiceexe.pdf".
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
// Refused by Windows in a file name (":" also opens an NTFS alternate data stream).
const RESERVED_CHARS = /[<>:"|?*]/g;
// Device names that Windows opens instead of a file, whatever the extension (CON.txt is CON).
const DEVICE_NAME = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\.|$)/i;

/**
 * A name an attachment can be saved under anywhere: the last segment of what the sender wrote (no
 * "/" or "\", so no "../" can climb out of a folder), without control characters, line breaks or
 * characters Windows refuses, no leading dots (a hidden file, "..") and no trailing dots or spaces,
 * not a Windows device name, at most MAX_FILENAME_BYTES (the extension kept), and "attachment" when
 * nothing is left. The sender's name itself is only ever data.
 */
export function safeFilename(name: string | null | undefined): string {
  if (typeof name !== 'string') return FALLBACK_FILENAME;
  const segments = name.normalize('NFC').replace(CONTROL, '').split(/[/\\]/);
  let s = (segments.filter((x) => x.trim() !== '').pop() ?? '').replace(RESERVED_CHARS, '_');
  s = s.replace(/^[\s.]+/, '').replace(/[\s.]+$/, '');
  if (DEVICE_NAME.test(s)) s = `_${s}`;
  s = truncateKeepingExtension(s, MAX_FILENAME_BYTES);
  return s === '' ? FALLBACK_FILENAME : s;
}

function truncateKeepingExtension(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s) <= maxBytes) return s;
  const dot = s.lastIndexOf('.');
  const ext = dot > 0 && s.length - dot <= 16 ? s.slice(dot) : '';
  return `${cutToBytes(s.slice(0, s.length - ext.length), maxBytes - Buffer.byteLength(ext)).replace(/[\s.]+$/, '')}${ext}`;
}

/** The longest prefix of `s` within `maxBytes` of UTF-8 that does not split a character. */
function cutToBytes(s: string, maxBytes: number): string {
  let bytes = 0;
  let out = '';
  for (const ch of s) {
    bytes += Buffer.byteLength(ch);
    if (bytes > maxBytes) break;
    out += ch;
  }
  return out;
}
